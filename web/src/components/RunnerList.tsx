import { Link } from "react-router";
import type { Runner } from "../lib/protocol";
import { runnerPath } from "../hooks/useTabs";
import { elapsed, relativeTime } from "../lib/time";
import { RunnerOwnerBadge } from "./OwnerBadge";
import { StatusBadge } from "./StatusBadge";

/** `stale`: HQ is unreachable, so statuses are as last heard (shown so, and no longer counting). */
export function RunnerList({ runners, now, stale = false }: { runners: Runner[]; now: number; stale?: boolean }) {
  const sorted = [...runners].sort(
    (a, b) => Number(b.status === "online") - Number(a.status === "online") || a.name.localeCompare(b.name),
  );
  return (
    <section aria-labelledby="runners-heading" className="space-y-2">
      <h2 id="runners-heading" className="px-1 text-xs font-semibold uppercase tracking-wider text-slate-400">
        <Link to="/runners" className="hover:text-slate-300">
          Runners
        </Link>
      </h2>
      {sorted.length === 0 ? (
        <p className="rounded-lg border border-dashed border-slate-800 px-3 py-4 text-sm text-slate-400">
          No runners yet. Start one with <code className="text-slate-300">agentrelay-runner --hq …</code>
        </p>
      ) : (
        <ul className="space-y-1.5" data-testid="runner-list">
          {sorted.map((runner) => (
            <li key={runner.id}>
              <Link
                to={runnerPath(runner.id)}
                className="block rounded-lg border border-slate-800 bg-slate-900/60 px-3 py-2 hover:border-slate-700"
              >
              <div className="flex items-center justify-between gap-2">
                <span className="truncate font-medium text-slate-100" title={runner.hostname}>
                  {runner.name}
                </span>
                <StatusBadge status={runner.status} />
              </div>
              <div className="mt-1 flex flex-wrap items-center gap-1.5 text-xs text-slate-400">
                <RunnerOwnerBadge owner={runner.owner} />
                <span>{runner.os}</span>
                <span aria-hidden="true">·</span>
                {stale ? (
                  <span title={`Last heard at ${runner.last_seen_at}`}>{runner.status} when HQ was last reached</span>
                ) : runner.status === "online" ? (
                  <span title={`Connected at ${runner.connected_at}`}>online for {elapsed(runner.connected_at, now)}</span>
                ) : (
                  <span title={runner.last_seen_at}>seen {relativeTime(runner.last_seen_at, now)}</span>
                )}
                {Object.entries(runner.labels).map(([key, value]) => (
                  <span key={key} className="rounded bg-slate-800 px-1.5 py-0.5 font-mono text-[11px] text-slate-300">
                    {key}={value}
                  </span>
                ))}
              </div>
              </Link>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
