// What sessions are doing, for people: badge labels, the "(2) AgentRelay" title, and which
// sessions just started waiting for someone (for notifications).

import type { Activity, ActivitySource, Runner, Session } from "./protocol";

/** A session as the dashboard shows it: `runnerOffline` when its runner is disconnected now. */
export type ShownSession = Session & { runnerOffline?: boolean };

/**
 * The sessions as they may be shown: a live session whose runner is offline has no activity
 * (what it last did may be long over, and it needs nobody until the runner is back), and says so.
 */
export function withRunnerState(sessions: readonly Session[], runners: readonly Runner[]): ShownSession[] {
  const offline = new Set(runners.filter((r) => r.status !== "online").map((r) => r.id));
  return sessions.map((session) =>
    isLive(session) && offline.has(session.runner_id)
      ? { ...session, activity: null, activity_since: null, activity_source: null, runnerOffline: true }
      : session,
  );
}

export const ACTIVITY_LABEL: Record<Activity, string> = {
  working: "working",
  waiting_for_input: "needs input",
  idle: "idle",
};

const SOURCE_TEXT: Record<ActivitySource, string> = {
  output: "from its output",
  screen: "from a prompt on its screen",
  hook: "reported by the agent",
};

export const BASE_TITLE = "AgentRelay";

/** Sessions that may still do something. */
export function isLive(session: Pick<Session, "status">): boolean {
  return session.status === "starting" || session.status === "running";
}

/** The activity worth showing: only a running session has one. */
export function activityOf(session: Pick<Session, "status" | "activity">): Activity | null {
  return session.status === "running" ? (session.activity ?? null) : null;
}

export function waitingCount(sessions: readonly Pick<Session, "status" | "activity">[]): number {
  return sessions.filter((s) => activityOf(s) === "waiting_for_input").length;
}

/** "(2) AgentRelay" while two sessions wait for input, plain "AgentRelay" otherwise. */
export function documentTitle(waiting: number, base: string = BASE_TITLE): string {
  return waiting > 0 ? `(${waiting}) ${base}` : base;
}

/** Compact age for badges: "now", "42s", "5m", "3h", "2d". */
export function shortSince(iso: string | null, now: number = Date.now()): string | null {
  if (!iso) return null;
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return null;
  const seconds = Math.max(0, Math.floor((now - then) / 1000));
  if (seconds < 5) return "now";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/** "Needs input since 14:02:05, detected from a prompt on its screen". */
export function activityTooltip(activity: Activity, since: string | null, source: ActivitySource | null): string {
  const label = ACTIVITY_LABEL[activity];
  let text = label.charAt(0).toUpperCase() + label.slice(1);
  const then = since ? Date.parse(since) : NaN;
  if (!Number.isNaN(then)) text += ` since ${new Date(then).toLocaleTimeString()}`;
  if (source) text += `, ${source === "hook" ? "" : "detected "}${SOURCE_TEXT[source]}`;
  return text;
}

/**
 * Remembers each session's activity between updates and says which sessions entered
 * `waiting_for_input` since the last one. A session first seen already waiting (the initial
 * list after a reload, say) is not news.
 */
export class WaitingWatch {
  private readonly last = new Map<string, Activity | null>();

  update(sessions: readonly Session[]): Session[] {
    const entered: Session[] = [];
    for (const session of sessions) {
      const activity = activityOf(session);
      const known = this.last.has(session.id);
      const before = this.last.get(session.id) ?? null;
      if (known && activity === "waiting_for_input" && before !== "waiting_for_input") entered.push(session);
      this.last.set(session.id, activity);
    }
    return entered;
  }
}
