// The session list, grouped by what each session needs: input first, then working, idle, and
// finished last; and searched by name, command, preset, runner or id. Pure, for the list and its
// tests.

import { activityOf, isLive, type ShownSession } from "./activity";
import type { Runner } from "./protocol";
import { sessionTitle } from "./sessionTitle";

export type GroupKey = "waiting" | "working" | "idle" | "finished";

export const GROUP_LABELS: Record<GroupKey, string> = {
  waiting: "Needs input",
  working: "Working",
  idle: "Idle",
  finished: "Finished",
};

const ORDER: GroupKey[] = ["waiting", "working", "idle", "finished"];

export function groupOf(session: ShownSession): GroupKey {
  if (!isLive(session)) return "finished";
  const activity = activityOf(session);
  if (activity === "waiting_for_input") return "waiting";
  if (activity === "working" || session.status === "starting") return "working";
  return "idle";
}

/** Whether `query` (words, any order, any case) matches the session's name, command, runner or id. */
export function matches(session: ShownSession, runnerName: string, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const { title, command } = sessionTitle(session);
  const haystack = [title, command, session.preset ?? "", runnerName, session.id, session.created_by].join(" ").toLowerCase();
  return words.every((word) => haystack.includes(word));
}

/** The non-empty groups, in order, each newest first. */
export function groupSessions(
  sessions: readonly ShownSession[],
  runners: readonly Runner[],
  query: string,
): { key: GroupKey; label: string; sessions: ShownSession[] }[] {
  const names = new Map(runners.map((r) => [r.id, r.name]));
  const shown = sessions
    .filter((s) => matches(s, names.get(s.runner_id) ?? "", query))
    .sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id));
  return ORDER.map((key) => ({ key, label: GROUP_LABELS[key], sessions: shown.filter((s) => groupOf(s) === key) })).filter(
    (group) => group.sessions.length > 0,
  );
}
