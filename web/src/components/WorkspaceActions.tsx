import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { api, type ApiError } from "../lib/api";
import type { Committed, Pushed, Workspace } from "../lib/protocol";

interface Props {
  sessionId: string;
  workspace: Workspace;
  /** A default message: the session's name. */
  title: string;
  onCommitted(): void;
}

/** Commit everything in the worktree on the session's branch, and push the branch. */
export function WorkspaceActions({ sessionId, workspace, title, onCommitted }: Props) {
  const [message, setMessage] = useState("");
  const commit = useMutation<Committed, ApiError, string>({
    mutationFn: (text) => api.commitWorkspace(sessionId, text),
    onSuccess: () => {
      setMessage("");
      onCommitted();
    },
  });
  const push = useMutation<Pushed, ApiError>({ mutationFn: () => api.pushWorkspace(sessionId) });
  const busy = commit.isPending || push.isPending;
  const last = commit.submittedAt >= push.submittedAt ? "commit" : "push";
  const result =
    last === "commit"
      ? commit.error
        ? { ok: false, text: `Not committed: ${commit.error.message}` }
        : commit.data && { ok: true, text: `Committed ${commit.data.commit.slice(0, 8)} on ${commit.data.branch}` }
      : push.error
        ? { ok: false, text: `Not pushed: ${push.error.message}` }
        : push.data && { ok: true, text: `Pushed ${push.data.branch} to ${push.data.remote} (${push.data.commit.slice(0, 8)})` };
  return (
    <section aria-label="Commit and push" className="space-y-1.5 border-t border-slate-800 px-3 py-2">
      <form
        className="flex items-center gap-2"
        onSubmit={(event) => {
          event.preventDefault();
          commit.mutate(message.trim() || `Changes from ${title}`);
        }}
      >
        <input
          value={message}
          onChange={(event) => setMessage(event.target.value)}
          aria-label="Commit message"
          placeholder={`Changes from ${title}`}
          className="min-w-0 flex-1 rounded-md border border-slate-700 bg-slate-950 px-2 py-1.5 text-sm text-slate-100 outline-none focus:border-emerald-400"
        />
        <button
          type="submit"
          disabled={busy || workspace.removed}
          title={`git add --all and commit on ${workspace.branch}`}
          className="rounded-md px-3 py-1.5 text-sm text-slate-100 ring-1 ring-slate-600 hover:bg-slate-800 disabled:opacity-50"
        >
          {commit.isPending ? "Committing…" : "Commit"}
        </button>
        <button
          type="button"
          onClick={() => push.mutate()}
          disabled={busy || workspace.removed}
          title={`Push ${workspace.branch} to the repository's remote`}
          className="rounded-md px-3 py-1.5 text-sm text-slate-100 ring-1 ring-slate-600 hover:bg-slate-800 disabled:opacity-50"
        >
          {push.isPending ? "Pushing…" : "Push"}
        </button>
      </form>
      {result && (
        <p role="status" data-testid="workspace-status" className={`text-xs ${result.ok ? "text-emerald-300" : "text-red-300"}`}>
          {result.text}
        </p>
      )}
    </section>
  );
}
