import { describe, expect, it } from "vitest";
import { groupSessions } from "./sessionGroups";
import type { Runner } from "./protocol";
import { makeSession } from "./testSessions";

const runners = [{ id: "r1", name: "laptop" }, { id: "r2", name: "gpu-box" }] as Runner[];

describe("session groups", () => {
  const sessions = [
    makeSession({ id: "done", status: "exited", exit_code: 0, created_at: "2026-11-24T02:00:05Z" }),
    makeSession({ id: "idle", activity: "idle", created_at: "2026-11-24T02:00:04Z" }),
    makeSession({ id: "busy", activity: "working", created_at: "2026-11-24T02:00:03Z", runner_id: "r2" }),
    makeSession({ id: "asks", activity: "waiting_for_input", created_at: "2026-11-24T02:00:01Z", name: "deploy" }),
    makeSession({ id: "asks2", activity: "waiting_for_input", created_at: "2026-11-24T02:00:02Z" }),
    makeSession({ id: "new", status: "starting", created_at: "2026-11-24T02:00:06Z" }),
    { ...makeSession({ id: "away", created_at: "2026-11-24T02:00:00Z" }), runnerOffline: true },
  ];

  it("puts sessions that need input first, then working, idle and finished, newest first in each", () => {
    const groups = groupSessions(sessions, runners, "");
    expect(groups.map((g) => [g.label, g.sessions.map((s) => s.id)])).toEqual([
      ["Needs input", ["asks2", "asks"]],
      ["Working", ["new", "busy"]],
      ["Idle", ["idle", "away"]],
      ["Finished", ["done"]],
    ]);
  });

  it("searches names, commands, runners and ids, every word", () => {
    expect(groupSessions(sessions, runners, "deploy").flatMap((g) => g.sessions.map((s) => s.id))).toEqual(["asks"]);
    expect(groupSessions(sessions, runners, "GPU").flatMap((g) => g.sessions.map((s) => s.id))).toEqual(["busy"]);
    expect(groupSessions(sessions, runners, "sh laptop done").flatMap((g) => g.sessions.map((s) => s.id))).toEqual(["done"]);
    expect(groupSessions(sessions, runners, "nothing-like-it")).toEqual([]);
  });
});
