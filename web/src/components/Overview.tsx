import { filterSessions, labelOptions, overviewSummary, STATE_FILTERS, stateCounts, type OverviewFilter } from "../lib/overview";
import type { Runner, Session } from "../lib/protocol";
import { OverviewTile } from "./OverviewTile";

interface Props {
  sessions: Session[];
  runners: Runner[];
  filter: OverviewFilter;
  now: number;
  onFilter(filter: OverviewFilter): void;
  onNew(): void;
  /** A phone: no keyboard shortcut hints. */
  phone?: boolean;
}

/** Every live session as a tile with a live preview, filtered by runner, label and state. */
export function Overview({ sessions, runners, filter, now, onFilter, onNew, phone = false }: Props) {
  const shown = filterSessions(sessions, runners, filter);
  const counts = stateCounts(sessions);
  const summary = overviewSummary(sessions, shown);
  const labels = labelOptions(runners);
  const names = new Map(runners.map((r) => [r.id, r.name]));
  const runnersWithSessions = runners
    .filter((r) => r.id === filter.runner || sessions.some((s) => s.runner_id === r.id))
    .sort((a, b) => a.name.localeCompare(b.name));
  const select =
    "min-w-0 rounded-lg border border-slate-700 bg-slate-950 px-2 py-1.5 text-sm text-slate-100 outline-none focus:border-emerald-400";
  const filtered = filter.runner !== "" || filter.label !== "" || filter.state !== "any";

  return (
    <section aria-label="Overview" className="flex h-full flex-col overflow-y-auto">
      <div className="flex flex-wrap items-center gap-2 border-b border-slate-800 px-3 py-2">
        <label className="flex min-w-0 items-center gap-1.5 text-xs text-slate-400">
          Runner
          <select className={select} value={filter.runner} onChange={(e) => onFilter({ ...filter, runner: e.target.value })}>
            <option value="">All</option>
            {runnersWithSessions.map((r) => (
              <option key={r.id} value={r.id}>
                {r.name}
              </option>
            ))}
          </select>
        </label>
        <label className="flex min-w-0 items-center gap-1.5 text-xs text-slate-400">
          Label
          <select className={select} value={filter.label} onChange={(e) => onFilter({ ...filter, label: e.target.value })}>
            <option value="">Any</option>
            {labels.map((label) => (
              <option key={label} value={label}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label className="flex min-w-0 items-center gap-1.5 text-xs text-slate-400">
          State
          <select
            className={select}
            value={filter.state}
            onChange={(e) => onFilter({ ...filter, state: e.target.value as OverviewFilter["state"] })}
          >
            {STATE_FILTERS.map((option) => (
              <option key={option.value} value={option.value}>
                {option.label} ({counts[option.value]})
              </option>
            ))}
          </select>
        </label>
        {filtered && (
          <button
            onClick={() => onFilter({ runner: "", label: "", state: "any" })}
            className="rounded-lg px-2 py-1.5 text-xs text-slate-400 hover:bg-slate-800 hover:text-slate-200"
          >
            Clear
          </button>
        )}
        <span className="ml-auto text-xs text-slate-400" aria-live="polite">
          {summary.live}
          {summary.waiting && <span className="text-amber-300"> · {summary.waiting}</span>}
        </span>
      </div>

      {shown.length === 0 ? (
        <div className="flex flex-1 flex-col items-center justify-center gap-3 px-6 py-12 text-center">
          <p className="text-lg font-medium text-slate-200">{filtered ? "No session matches" : "No live sessions"}</p>
          {!filtered && (
            <button
              onClick={onNew}
              className="rounded-lg border border-slate-700 px-4 py-2 text-sm text-slate-200 hover:border-emerald-400"
            >
              New session {!phone && <span className="text-slate-400">Alt+N</span>}
            </button>
          )}
        </div>
      ) : (
        <ul className="grid grid-cols-[repeat(auto-fill,minmax(min(100%,19rem),1fr))] gap-3 p-3" data-testid="overview-grid">
          {shown.map((session) => (
            <OverviewTile
              key={session.id}
              session={session}
              runnerName={names.get(session.runner_id) ?? session.runner_id.slice(0, 8)}
              now={now}
            />
          ))}
        </ul>
      )}
    </section>
  );
}
