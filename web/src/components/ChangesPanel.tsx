// Beside a workspace session's terminal: what the agent changed in its worktree (live, from the
// `changes` event), each file's diff with comments on its lines, the review sent back to the agent,
// and Commit and Push. Server state comes through the query cache (hooks/useWorkspace.ts).

import { lazy, Suspense, useMemo, useState } from "react";
import { useChanges, useFileDiff, useRefreshWorkspace } from "../hooks/useWorkspace";
import { useReviewDraft } from "../hooks/useReviewDraft";
import { useStoredChoice } from "../hooks/useStoredChoice";
import { isLive } from "../lib/activity";
import type { Session, Workspace } from "../lib/protocol";
import { commentsByLine } from "../lib/reviewDraft";
import { sessionTitle } from "../lib/sessionTitle";
import { summaryText } from "../lib/workspace";
import { ChangedFileList } from "./ChangedFileList";
import type { DiffLayout } from "./FileDiff";
import { ReviewBar } from "./ReviewBar";
import { WorkspaceActions } from "./WorkspaceActions";

const FileDiff = lazy(() => import("./FileDiff").then((m) => ({ default: m.FileDiff })));

const LAYOUTS = ["unified", "split"] as const;
const STATES = ["open", "closed", "wide"] as const;
// Beside the terminal on a wide screen; over it on a phone, so closed there until asked for.
const wideScreen = () => window.matchMedia?.("(min-width: 768px)").matches ?? true;

interface Props {
  session: Session & { workspace: Workspace };
}

export function ChangesPanel({ session }: Props) {
  const { workspace } = session;
  const [state, setState] = useStoredChoice("agentrelay.changes.panel", STATES, wideScreen() ? "open" : "closed");
  const [layout, setLayout] = useStoredChoice<DiffLayout>("agentrelay.changes.layout", LAYOUTS, "unified");
  const changes = useChanges(session.id, workspace);
  const refresh = useRefreshWorkspace(session.id);
  const review = useReviewDraft(session.id);
  const files = useMemo(() => changes.data?.files ?? [], [changes.data]);
  const [picked, setPicked] = useState<string | null>(null);
  // The file picked, while it is still changed; else the first one.
  const selected = files.find((f) => f.path === picked) ?? files[0] ?? null;
  const diff = useFileDiff(session.id, workspace, selected?.path ?? null);
  const commented = useMemo(() => {
    const counts = new Map<string, number>();
    for (const c of review.draft.comments) counts.set(c.path, (counts.get(c.path) ?? 0) + 1);
    return counts;
  }, [review.draft]);
  const comments = useMemo(
    () => (selected ? commentsByLine(review.draft, selected.path) : new Map()),
    [review.draft, selected],
  );
  const summary = summaryText(changes.data?.summary ?? workspace.changes);

  if (state === "closed") {
    return (
      <aside aria-label="Changes" className="flex shrink-0 border-l border-slate-800 bg-slate-900/60">
        <button
          type="button"
          onClick={() => setState("open")}
          aria-expanded="false"
          title={`Show the changes on ${workspace.branch}`}
          className="px-1.5 py-3 text-xs text-slate-300 [writing-mode:vertical-rl] hover:bg-slate-800 hover:text-white"
        >
          Changes · {summary}
        </button>
      </aside>
    );
  }
  return (
    <aside
      aria-label="Changes"
      data-testid="changes-panel"
      className={`absolute inset-0 z-10 flex flex-col border-l border-slate-800 bg-slate-950 md:static md:z-auto md:shrink-0 ${
        state === "wide" ? "md:w-[70%]" : "md:w-[min(36rem,45%)]"
      }`}
    >
      <header className="flex flex-wrap items-center gap-x-2 gap-y-1 border-b border-slate-800 bg-slate-900/60 px-3 py-1.5 text-xs">
        <h2 className="text-sm font-semibold text-slate-100">Changes</h2>
        <code className="truncate text-slate-300" title={`${workspace.repo}: ${workspace.branch} from ${workspace.base}`}>
          {workspace.branch}
        </code>
        <span className="text-slate-400" aria-live="polite" data-testid="changes-summary">
          {summary}
        </span>
        <span className="flex-1" />
        <div role="group" aria-label="Diff layout" className="flex overflow-hidden rounded ring-1 ring-slate-700">
          {LAYOUTS.map((value) => (
            <button
              key={value}
              type="button"
              aria-pressed={layout === value}
              onClick={() => setLayout(value)}
              className={`px-2 py-0.5 capitalize ${layout === value ? "bg-slate-700 text-white" : "text-slate-300 hover:bg-slate-800"}`}
            >
              {value}
            </button>
          ))}
        </div>
        <button
          type="button"
          onClick={refresh}
          title="Look at the worktree again"
          className="rounded px-1.5 py-0.5 text-slate-300 hover:bg-slate-800"
        >
          Refresh
        </button>
        <button
          type="button"
          onClick={() => setState(state === "wide" ? "open" : "wide")}
          className="hidden rounded px-1.5 py-0.5 text-slate-300 hover:bg-slate-800 md:inline"
          aria-pressed={state === "wide"}
        >
          Wide
        </button>
        <button
          type="button"
          onClick={() => setState("closed")}
          aria-expanded="true"
          aria-label="Hide the changes"
          className="rounded px-1.5 py-0.5 text-slate-300 hover:bg-slate-800"
        >
          ×
        </button>
      </header>
      {workspace.removed ? (
        <p className="p-3 text-sm text-slate-400">
          The worktree was removed; the branch <code>{workspace.branch}</code> stays in the repository.
        </p>
      ) : (
        <>
          <div className="max-h-[35%] shrink-0 overflow-y-auto border-b border-slate-800">
            {changes.error ? (
              <p role="alert" className="px-3 py-2 text-sm text-red-300">
                {changes.error.message}
              </p>
            ) : changes.isPending ? (
              <p className="px-3 py-2 text-sm text-slate-400">Looking at the worktree…</p>
            ) : (
              <ChangedFileList files={files} selected={selected?.path ?? null} commented={commented} onSelect={setPicked} />
            )}
          </div>
          <div className="min-h-0 flex-1 overflow-auto">
            {selected &&
              (diff.error ? (
                <p role="alert" className="p-3 text-sm text-red-300">
                  {diff.error.message}
                </p>
              ) : diff.data ? (
                <Suspense fallback={<p className="p-3 text-sm text-slate-400">Loading the diff viewer…</p>}>
                  {diff.data.truncated && (
                    <p className="border-b border-slate-800 px-3 py-1 text-xs text-amber-300">
                      The diff is longer than {Math.round(diff.data.limit_bytes / 1024)} KiB: part of it is left out.
                    </p>
                  )}
                  <FileDiff
                    key={selected.path}
                    file={selected}
                    diff={diff.data.diff}
                    layout={layout}
                    comments={comments}
                    onAddComment={(line, body) => review.add(selected.path, line, body)}
                    onRemoveComment={review.remove}
                  />
                </Suspense>
              ) : (
                <p className="p-3 text-sm text-slate-400">Loading the diff…</p>
              ))}
          </div>
        </>
      )}
      <ReviewBar
        sessionId={session.id}
        draft={review.draft}
        live={isLive(session) && !workspace.removed}
        onSummary={review.setSummary}
        onSent={review.clear}
      />
      <WorkspaceActions sessionId={session.id} workspace={workspace} title={sessionTitle(session).title} onCommitted={refresh} />
    </aside>
  );
}
