// A workspace session's changed files and diffs, in the query cache. They are fetched again
// whenever the session's summary moves (the `changes` event keeps it current), so the panel
// follows the agent's edits without polling; what was shown stays until the new answer is in.

import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback } from "react";
import { api } from "../lib/api";
import type { Workspace } from "../lib/protocol";
import { summaryKey } from "../lib/workspace";

const workspaceKey = (sessionId: string) => ["workspace", sessionId] as const;

/** `GET /api/sessions/{id}/changes`, current with the session's summary. */
export function useChanges(sessionId: string, workspace: Workspace) {
  return useQuery({
    queryKey: [...workspaceKey(sessionId), "changes", summaryKey(workspace)],
    queryFn: () => api.changes(sessionId),
    enabled: !workspace.removed,
    placeholderData: keepPreviousData,
  });
}

/** One file's diff, current with the session's summary; nothing while no file is chosen. */
export function useFileDiff(sessionId: string, workspace: Workspace, path: string | null) {
  return useQuery({
    queryKey: [...workspaceKey(sessionId), "diff", path, summaryKey(workspace)],
    queryFn: () => api.diff(sessionId, path ?? undefined),
    enabled: path !== null && !workspace.removed,
    // The same file's last diff while its new one loads; another file's never.
    placeholderData: (previous, query) => (query?.queryKey[3] === path ? previous : undefined),
  });
}

/** Fetches the session's changes and diffs again (an edit that left the summary as it was). */
export function useRefreshWorkspace(sessionId: string): () => void {
  const client = useQueryClient();
  return useCallback(() => void client.invalidateQueries({ queryKey: workspaceKey(sessionId) }), [client, sessionId]);
}
