// The overview grid's filters: by runner, by runner label (key=value) and by status or activity.
// Pure functions over the live lists, so the grid and its tests agree.

import { activityOf, isLive } from "./activity";
import type { Runner, Screen, Session } from "./protocol";

/** "any", a session status the grid shows, or an activity. */
export type StateFilter = "any" | "starting" | "working" | "waiting_for_input" | "idle";

export interface OverviewFilter {
  /** A runner id, or "" for all. */
  runner: string;
  /** "key=value", or "" for all. */
  label: string;
  state: StateFilter;
}

export const NO_FILTER: OverviewFilter = { runner: "", label: "", state: "any" };

/** The filter an overview address names (`/?runner=…&label=…&state=…`); unknown values are ignored. */
export function filterFromSearch(params: URLSearchParams): OverviewFilter {
  const state = params.get("state") ?? "any";
  return {
    runner: params.get("runner") ?? "",
    label: params.get("label") ?? "",
    state: STATE_FILTERS.some((f) => f.value === state) ? (state as StateFilter) : "any",
  };
}

/** The query string of an overview address for `filter` ("" when it filters nothing). */
export function filterToSearch(filter: OverviewFilter): string {
  const params = new URLSearchParams();
  if (filter.runner) params.set("runner", filter.runner);
  if (filter.label) params.set("label", filter.label);
  if (filter.state !== "any") params.set("state", filter.state);
  const text = params.toString();
  return text ? `?${text}` : "";
}

export const STATE_FILTERS: readonly { value: StateFilter; label: string }[] = [
  { value: "any", label: "Any state" },
  { value: "waiting_for_input", label: "Needs input" },
  { value: "working", label: "Working" },
  { value: "idle", label: "Idle" },
  { value: "starting", label: "Starting" },
];

/** Splits "key=value" at the first "="; null when there is no key. */
export function parseLabel(text: string): { key: string; value: string } | null {
  const at = text.indexOf("=");
  const key = (at === -1 ? text : text.slice(0, at)).trim();
  if (!key) return null;
  return { key, value: at === -1 ? "" : text.slice(at + 1).trim() };
}

/** Every "key=value" any runner has, sorted, each once. */
export function labelOptions(runners: readonly Runner[]): string[] {
  const all = new Set<string>();
  for (const runner of runners) for (const [key, value] of Object.entries(runner.labels)) all.add(`${key}=${value}`);
  return [...all].sort((a, b) => a.localeCompare(b));
}

export function stateOf(session: Session): StateFilter {
  return session.status === "starting" ? "starting" : (activityOf(session) ?? "any");
}

/** Live sessions that pass the filter, oldest first (tiles keep their place as others come and go). */
export function filterSessions(sessions: readonly Session[], runners: readonly Runner[], filter: OverviewFilter): Session[] {
  const byId = new Map(runners.map((r) => [r.id, r]));
  const label = filter.label ? parseLabel(filter.label) : null;
  return sessions
    .filter((session) => {
      if (!isLive(session)) return false;
      if (filter.runner && session.runner_id !== filter.runner) return false;
      if (label) {
        const labels = byId.get(session.runner_id)?.labels ?? {};
        if (!Object.hasOwn(labels, label.key) || labels[label.key] !== label.value) return false;
      }
      if (filter.state !== "any" && stateOf(session) !== filter.state) return false;
      return true;
    })
    .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
}

/** How many live sessions are in each state, for the filter's options. */
export function stateCounts(sessions: readonly Session[]): Record<StateFilter, number> {
  const counts: Record<StateFilter, number> = { any: 0, starting: 0, working: 0, waiting_for_input: 0, idle: 0 };
  for (const session of sessions) {
    if (!isLive(session)) continue;
    counts.any++;
    const state = stateOf(session);
    if (state !== "any") counts[state]++;
  }
  return counts;
}

/**
 * The grid's summary: "5 live" or "2 of 5 live", and how many of the sessions shown need input
 * (a filter that hides the waiting ones must not still announce them).
 */
export function overviewSummary(sessions: readonly Session[], shown: readonly Session[]): { live: string; waiting: string | null } {
  const total = stateCounts(sessions).any;
  const waiting = stateCounts(shown).waiting_for_input;
  return {
    live: shown.length === total ? `${total} live` : `${shown.length} of ${total} live`,
    waiting: waiting === 0 ? null : `${waiting} ${waiting === 1 ? "needs" : "need"} input`,
  };
}

/** A tile's lines: the screen down to the cursor or the last line with text, whichever is lower. */
export function previewLines(screen: Screen): string[] {
  let last = Math.min(screen.cursor.row, screen.lines.length - 1);
  for (let i = screen.lines.length - 1; i > last; i--) {
    if (screen.lines[i].trim() !== "") {
      last = i;
      break;
    }
  }
  return screen.lines.slice(0, last + 1);
}

/** Columns a tile's font is sized for: the widest line shown (at least 40), never past the screen. */
export function previewColumns(lines: readonly string[], cols: number): number {
  const widest = lines.reduce((max, line) => Math.max(max, line.length), 0);
  return Math.min(Math.max(widest, 40), Math.max(cols, 1));
}
