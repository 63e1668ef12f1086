import { describe, expect, it } from "vitest";
import { activityTooltip, documentTitle, shortSince, waitingCount, WaitingWatch, withRunnerState } from "./activity";
import type { Activity, Runner, Session, SessionStatus } from "./protocol";
import { makeSession } from "./testSessions";

function session(id: string, status: SessionStatus, activity: Activity | null): Session {
  const since = activity ? "2026-11-24T02:00:00Z" : null;
  return makeSession({ id, status, activity, activity_since: since, activity_source: activity ? "output" : null });
}

describe("activity", () => {
  it("counts running sessions waiting for input in the title", () => {
    const sessions = [
      session("a", "running", "waiting_for_input"),
      session("b", "running", "working"),
      session("c", "running", "waiting_for_input"),
      // An ended session never counts, whatever a stale field says.
      session("d", "exited", "waiting_for_input"),
      session("e", "running", "idle"),
    ];
    expect(waitingCount(sessions)).toBe(2);
    expect(documentTitle(2)).toBe("(2) AgentRelay");
    expect(documentTitle(0)).toBe("AgentRelay");
    expect(waitingCount([])).toBe(0);
  });

  it("shortens ages", () => {
    const now = Date.parse("2026-11-24T12:00:00Z");
    expect(shortSince("2026-11-24T11:59:58Z", now)).toBe("now");
    expect(shortSince("2026-11-24T11:59:18Z", now)).toBe("42s");
    expect(shortSince("2026-11-24T11:55:00Z", now)).toBe("5m");
    expect(shortSince("2026-11-24T09:00:00Z", now)).toBe("3h");
    expect(shortSince("2026-11-22T12:00:00Z", now)).toBe("2d");
    // A clock a little behind HQ's is "now", not negative.
    expect(shortSince("2026-11-24T12:00:03Z", now)).toBe("now");
    expect(shortSince(null, now)).toBeNull();
    expect(shortSince("yesterday", now)).toBeNull();
  });

  it("says where an activity came from", () => {
    expect(activityTooltip("waiting_for_input", null, "screen")).toBe("Needs input, detected from a prompt on its screen");
    expect(activityTooltip("working", null, "hook")).toBe("Working, reported by the agent");
    expect(activityTooltip("idle", "2026-11-24T02:00:00Z", "output")).toMatch(/^Idle since .+, detected from its output$/);
  });

  it("reports only sessions that enter waiting_for_input after they were first seen", () => {
    const watch = new WaitingWatch();
    expect(watch.update([session("old", "running", "waiting_for_input"), session("a", "starting", null)])).toEqual([]);
    expect(watch.update([session("a", "running", "working")])).toEqual([]);
    const entered = watch.update([session("a", "running", "waiting_for_input"), session("old", "running", "waiting_for_input")]);
    expect(entered.map((s) => s.id)).toEqual(["a"]);
    // Still waiting: not news again; back to work and waiting again: news again.
    expect(watch.update([session("a", "running", "waiting_for_input")])).toEqual([]);
    expect(watch.update([session("a", "running", "working")])).toEqual([]);
    expect(watch.update([session("a", "running", "waiting_for_input")]).map((s) => s.id)).toEqual(["a"]);
    // A session first seen while already waiting (it appeared between two updates) is not news.
    expect(watch.update([session("new", "running", "waiting_for_input")])).toEqual([]);
  });
});

describe("runner state", () => {
  it("takes a session's activity away while its runner is offline, and says why", () => {
    const runners = [
      { id: "up", status: "online" },
      { id: "down", status: "offline" },
    ] as Runner[];
    const sessions = [
      makeSession({ id: "a", runner_id: "up", activity: "waiting_for_input" }),
      makeSession({ id: "b", runner_id: "down", activity: "waiting_for_input" }),
      makeSession({ id: "c", runner_id: "down", status: "exited" }),
    ];
    const shown = withRunnerState(sessions, runners);
    expect(waitingCount(shown)).toBe(1);
    expect(shown.map((s) => s.runnerOffline ?? false)).toEqual([false, true, false]);
  });
});
