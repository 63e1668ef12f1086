import type { Workspace } from "../lib/protocol";
import { summaryText } from "../lib/workspace";

/** A workspace session's branch and what changed on it so far: "⎇ fix/login · 3 files +12 −4". */
export function WorkspaceBadge({ workspace, className = "" }: { workspace: Workspace | null | undefined; className?: string }) {
  if (!workspace) return null;
  const summary = workspace.removed ? "worktree removed" : summaryText(workspace.changes);
  return (
    <span
      data-testid="workspace-badge"
      title={`${workspace.repo}: branch ${workspace.branch} from ${workspace.base}, ${summary}`}
      className={`flex min-w-0 items-center gap-1.5 text-xs text-slate-400 ${className}`}
    >
      <svg viewBox="0 0 16 16" className="h-3 w-3 shrink-0" aria-hidden="true" fill="currentColor">
        <path d="M5 3.25a.75.75 0 11-1.5 0 .75.75 0 011.5 0zm0 2.12a2.25 2.25 0 10-1.5 0v5.26a2.25 2.25 0 101.5 0v-.88A2.5 2.5 0 017.5 7.5h1a4 4 0 004-4v-.13a2.25 2.25 0 10-1.5 0v.13a2.5 2.5 0 01-2.5 2.5h-1A3.98 3.98 0 005 7.04V5.37zM4.25 12a.75.75 0 100 1.5.75.75 0 000-1.5zm7.5-9.5a.75.75 0 100 1.5.75.75 0 000-1.5z" />
      </svg>
      <span className="sr-only">Branch</span>
      <code className="min-w-0 truncate text-slate-300">{workspace.branch}</code>
      <span aria-hidden="true">·</span>
      <span className="shrink-0" data-testid="workspace-changes">
        {summary}
      </span>
    </span>
  );
}
