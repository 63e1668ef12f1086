import { Link } from "react-router";
import type { Runner, Session } from "../lib/protocol";
import { sessionPath } from "../hooks/useTabs";
import { activityOf } from "../lib/activity";
import { sessionTitle } from "../lib/sessionTitle";
import { relativeTime } from "../lib/time";
import { SessionBadge } from "./SessionBadge";

interface Props {
  sessions: Session[];
  runners: Runner[];
  activeId: string | null;
  now: number;
}

export function SessionList({ sessions, runners, activeId, now }: Props) {
  const names = new Map(runners.map((r) => [r.id, r.name]));
  const sorted = [...sessions].sort((a, b) => b.created_at.localeCompare(a.created_at));
  return (
    <section aria-labelledby="sessions-heading" className="space-y-2">
      <h2 id="sessions-heading" className="px-1 text-xs font-semibold uppercase tracking-wider text-slate-500">
        Sessions
      </h2>
      {sorted.length === 0 ? (
        <p className="rounded-lg border border-dashed border-slate-800 px-3 py-4 text-sm text-slate-500">
          No sessions yet. Press <kbd className="rounded bg-slate-800 px-1 text-slate-300">Alt</kbd>+
          <kbd className="rounded bg-slate-800 px-1 text-slate-300">N</kbd> to start one.
        </p>
      ) : (
        <ul className="space-y-1.5" data-testid="session-list">
          {sorted.map((session) => (
            <li key={session.id}>
              <Link
                to={sessionPath(session.id)}
                aria-current={session.id === activeId ? "page" : undefined}
                className={`block w-full rounded-lg border px-3 py-2 text-left transition ${
                  activityOf(session) === "waiting_for_input"
                    ? "border-amber-400/70 bg-amber-400/10"
                    : session.id === activeId
                      ? "border-emerald-500/50 bg-emerald-500/5"
                      : "border-slate-800 bg-slate-900/60 hover:border-slate-700"
                }`}
              >
                <div className="flex items-center justify-between gap-2">
                  <code className="truncate text-sm text-slate-100" title={sessionTitle(session).command}>
                    {sessionTitle(session).title}
                  </code>
                  <SessionBadge session={session} now={now} />
                </div>
                <div className="mt-1 flex flex-wrap gap-x-2 text-xs text-slate-400">
                  <span>{names.get(session.runner_id) ?? session.runner_id.slice(0, 8)}</span>
                  <span aria-hidden="true">·</span>
                  <span title={session.created_at}>{relativeTime(session.created_at, now)}</span>
                  {session.status === "exited" && (
                    <>
                      <span aria-hidden="true">·</span>
                      <span>{session.signal ?? `exit ${session.exit_code}`}</span>
                    </>
                  )}
                  {session.error && <span className="w-full truncate text-red-300">{session.error}</span>}
                  {session.log_error && (
                    <span className="w-full truncate text-amber-300" title={session.log_error}>
                      {session.log_error}
                    </span>
                  )}
                </div>
              </Link>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
