// Workspace sessions, for people: the `changes` event folded into the session list, a summary
// ("3 files +12 −4"), and how each changed file is marked.

import type { ChangeSummary, ChangesEvent, FileStatus, Session, Workspace, WorkspaceSpec } from "./protocol";

/** The sessions with one session's workspace summary replaced (HQ sends no `session` event for it). */
export function withChanges<T extends Pick<Session, "id" | "workspace">>(sessions: T[], event: ChangesEvent): T[] {
  const index = sessions.findIndex((s) => s.id === event.session_id);
  const session = sessions[index];
  if (!session?.workspace) return sessions;
  const changes: ChangeSummary = { files: event.files, additions: event.additions, deletions: event.deletions };
  const next = sessions.slice();
  next[index] = { ...session, workspace: { ...session.workspace, changes } };
  return next;
}

/** Parses a `changes` event's data; null for anything else. */
export function parseChangesEvent(data: string): ChangesEvent | null {
  try {
    const value = JSON.parse(data) as Partial<ChangesEvent> | null;
    if (
      value &&
      typeof value.session_id === "string" &&
      [value.files, value.additions, value.deletions].every((n) => typeof n === "number")
    ) {
      return value as ChangesEvent;
    }
  } catch {
    // Not JSON: ignored.
  }
  return null;
}

/** "no changes", "1 file +3 −0", "3 files +12 −4". */
export function summaryText(summary: ChangeSummary | null | undefined): string {
  if (!summary || summary.files === 0) return "no changes";
  return `${summary.files} ${summary.files === 1 ? "file" : "files"} +${summary.additions} −${summary.deletions}`;
}

/** A key that moves whenever the summary does: what the changes and diffs are fetched for. */
export function summaryKey(workspace: Workspace | null | undefined): string {
  const c = workspace?.changes;
  return c ? `${c.files}:${c.additions}:${c.deletions}` : "none";
}

/** One letter per status, as git status shows them, and the word for a tooltip. */
export const FILE_STATUS: Record<FileStatus, { letter: string; label: string; className: string }> = {
  added: { letter: "A", label: "added", className: "text-emerald-300" },
  untracked: { letter: "U", label: "new, untracked", className: "text-emerald-300" },
  modified: { letter: "M", label: "modified", className: "text-amber-300" },
  deleted: { letter: "D", label: "deleted", className: "text-red-300" },
  renamed: { letter: "R", label: "renamed", className: "text-sky-300" },
  other: { letter: "?", label: "changed", className: "text-slate-300" },
};

/** The status as this build knows it (a newer HQ may send one it does not). */
export function fileStatus(status: string): (typeof FILE_STATUS)[FileStatus] {
  return Object.hasOwn(FILE_STATUS, status) ? FILE_STATUS[status as FileStatus] : FILE_STATUS.other;
}


/** What the New session form holds for a workspace: no repository means none. */
export interface WorkspaceChoice {
  repo: string;
  branch: string;
  base: string;
}

export const NO_WORKSPACE: WorkspaceChoice = Object.freeze({ repo: "", branch: "", base: "" });

/** The `workspace` of POST /api/sessions, or null for none; blank fields take HQ's defaults. */
export function workspaceSpec(choice: WorkspaceChoice): WorkspaceSpec | null {
  const repo = choice.repo.trim();
  if (!repo) return null;
  const branch = choice.branch.trim();
  const base = choice.base.trim();
  return { repo, ...(branch ? { branch } : {}), ...(base ? { base } : {}) };
}
