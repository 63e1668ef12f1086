import { useState } from "react";
import { Link } from "react-router";
import type { Runner } from "../lib/protocol";
import { sessionPath } from "../hooks/useTabs";
import { activityOf, type ShownSession } from "../lib/activity";
import { groupSessions } from "../lib/sessionGroups";
import { sessionTitle } from "../lib/sessionTitle";
import { relativeTime } from "../lib/time";
import { SessionBadge } from "./SessionBadge";
import { SessionOwner } from "./OwnerBadge";
import { UsageFigures } from "./UsageFigures";
import { WorkspaceBadge } from "./WorkspaceBadge";

interface Props {
  sessions: ShownSession[];
  runners: Runner[];
  activeId: string | null;
  now: number;
  /** A phone: no keyboard shortcut hints. */
  phone?: boolean;
  /** Removes finished sessions and their output (DELETE on each). */
  onClearFinished(ids: string[]): void;
}

/** Every session, grouped by what it needs (input first, finished last), with a search. */
export function SessionList({ sessions, runners, activeId, now, phone = false, onClearFinished }: Props) {
  const names = new Map(runners.map((r) => [r.id, r.name]));
  const [query, setQuery] = useState("");
  const [confirming, setConfirming] = useState(false);
  const groups = groupSessions(sessions, runners, query);
  return (
    <section aria-labelledby="sessions-heading" className="space-y-2">
      <h2 id="sessions-heading" className="px-1 text-xs font-semibold tracking-wider text-slate-400 uppercase">
        Sessions
      </h2>
      {sessions.length === 0 ? (
        <p className="rounded-lg border border-dashed border-slate-800 px-3 py-4 text-sm text-slate-400">
          No sessions yet.
          {!phone && (
            <>
              {" "}
              Press <kbd className="rounded bg-slate-800 px-1 text-slate-300">Alt</kbd>+
              <kbd className="rounded bg-slate-800 px-1 text-slate-300">N</kbd> to start one.
            </>
          )}
        </p>
      ) : (
        <>
          <input
            type="search"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            aria-label="Search sessions"
            placeholder="Search name, command, runner…"
            className="w-full rounded-lg border border-slate-700 bg-slate-950 px-2.5 py-1.5 text-sm text-slate-100 outline-none placeholder:text-slate-400 focus:border-emerald-400"
          />
          {groups.length === 0 && <p className="px-1 text-sm text-slate-400">No session matches.</p>}
          <div className="space-y-3" data-testid="session-list">
            {groups.map((group) => (
              <section key={group.key} aria-labelledby={`group-${group.key}`} data-group={group.key} className="space-y-1.5">
                <div className="flex items-center justify-between gap-2 px-1">
                  <h3 id={`group-${group.key}`} className="text-xs font-medium text-slate-300">
                    {group.label} <span className="text-slate-400">({group.sessions.length})</span>
                  </h3>
                  {group.key === "finished" && !confirming && (
                    <button onClick={() => setConfirming(true)} className="text-xs text-slate-400 hover:text-red-300">
                      Clear finished
                    </button>
                  )}
                </div>
                {group.key === "finished" && confirming && (
                  <div
                    role="group"
                    aria-label="Clear finished sessions?"
                    className="flex flex-wrap items-center gap-2 rounded-lg border border-red-500/30 bg-red-500/10 px-2 py-1.5 text-xs text-slate-200"
                  >
                    <span className="flex-1">
                      Remove {group.sessions.length} finished {group.sessions.length === 1 ? "session" : "sessions"} and
                      their output for good?
                    </span>
                    <button
                      onClick={() => {
                        setConfirming(false);
                        onClearFinished(group.sessions.map((s) => s.id));
                      }}
                      className="rounded px-2 py-0.5 font-semibold text-red-300 hover:bg-red-500/15"
                    >
                      Remove
                    </button>
                    <button autoFocus onClick={() => setConfirming(false)} className="rounded px-2 py-0.5 hover:bg-slate-800">
                      Cancel
                    </button>
                  </div>
                )}
                <ul className="space-y-1.5">
                  {group.sessions.map((session) => (
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
                        <div className="mt-1 flex flex-wrap items-center gap-x-2 gap-y-1 text-xs text-slate-400">
                          <span>{names.get(session.runner_id) ?? session.runner_id.slice(0, 8)}</span>
                          <span aria-hidden="true">·</span>
                          <span title={session.created_at}>{relativeTime(session.created_at, now)}</span>
                          {session.owner && <span aria-hidden="true">·</span>}
                          <SessionOwner owner={session.owner} />
                          <UsageFigures usage={session.usage} className="ml-auto" />
                          <WorkspaceBadge workspace={session.workspace} className="w-full" />
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
              </section>
            ))}
          </div>
        </>
      )}
    </section>
  );
}
