import { Link } from "react-router";
import type { Runner, Session } from "../lib/protocol";
import { sessionTitle } from "../lib/sessionTitle";
import { elapsed, relativeTime } from "../lib/time";
import { runnerPath, sessionPath } from "../hooks/useTabs";
import { SessionBadge } from "./SessionBadge";
import { StatusBadge } from "./StatusBadge";

interface Props {
  id: string;
  runners: Runner[];
  sessions: Session[];
  now: number;
}

/** `/runners/:id`: one runner, what it offers and allows, and its sessions. */
export function RunnerPage({ id, runners, sessions, now }: Props) {
  const runner = runners.find((r) => r.id === id);
  if (!runner) {
    return (
      <div className="flex h-full flex-col items-center justify-center gap-3 px-6 text-center">
        <p className="text-lg font-medium text-slate-200">No such runner</p>
        <Link to="/runners" className="text-sm text-sky-300 hover:underline">
          All runners
        </Link>
      </div>
    );
  }
  const mine = sessions
    .filter((s) => s.runner_id === runner.id)
    .sort((a, b) => b.created_at.localeCompare(a.created_at));
  return (
    <section aria-labelledby="runner-heading" className="h-full overflow-y-auto p-4">
      <div className="mx-auto max-w-3xl space-y-5">
        <div className="flex flex-wrap items-center gap-3">
          <h2 id="runner-heading" className="text-xl font-semibold text-white">
            <Link to={runnerPath(runner.id)}>{runner.name}</Link>
          </h2>
          <StatusBadge status={runner.status} />
          <span className="text-sm text-slate-400">
            {runner.status === "online"
              ? `online for ${elapsed(runner.connected_at, now)}`
              : `seen ${relativeTime(runner.last_seen_at, now)}`}
          </span>
        </div>
        <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
          <dt className="text-slate-400">Host</dt>
          <dd className="text-slate-200">{runner.hostname}</dd>
          <dt className="text-slate-400">System</dt>
          <dd className="text-slate-200">{runner.os}</dd>
          <dt className="text-slate-400">Version</dt>
          <dd className="text-slate-200">{runner.version}</dd>
          <dt className="text-slate-400">Labels</dt>
          <dd className="flex flex-wrap gap-1.5">
            {Object.entries(runner.labels).length === 0 && <span className="text-slate-400">none</span>}
            {Object.entries(runner.labels).map(([key, value]) => (
              <code key={key} className="rounded bg-slate-800 px-1.5 text-slate-200">
                {key}={value}
              </code>
            ))}
          </dd>
          <dt className="text-slate-400">Presets</dt>
          <dd className="flex flex-wrap gap-1.5">
            {runner.presets.map((p) => (
              <code key={p.name} className="rounded bg-slate-800 px-1.5 text-slate-200" title={p.command.join(" ")}>
                {p.name}
              </code>
            ))}
          </dd>
          {runner.policy?.locked && (
            <>
              <dt className="text-slate-400">Policy</dt>
              <dd className="text-slate-200">presets only</dd>
            </>
          )}
        </dl>
        <div className="space-y-2">
          <h3 className="text-xs font-semibold tracking-wider text-slate-400 uppercase">Sessions ({mine.length})</h3>
          <ul className="space-y-1.5" data-testid="runner-sessions">
            {mine.map((session) => (
              <li key={session.id}>
                <Link
                  to={sessionPath(session.id)}
                  className="flex items-center justify-between gap-3 rounded-lg border border-slate-800 bg-slate-900/60 px-3 py-2 hover:border-slate-700"
                >
                  <code className="truncate text-sm text-slate-100">{sessionTitle(session).title}</code>
                  <SessionBadge session={session} now={now} />
                </Link>
              </li>
            ))}
          </ul>
        </div>
      </div>
    </section>
  );
}
