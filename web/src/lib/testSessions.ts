// A session object for unit tests: every field the API sends, with `overrides` on top.
import type { Session } from "./protocol";

export function makeSession(overrides: Partial<Session> & Pick<Session, "id">): Session {
  return {
    runner_id: "r1",
    command: ["sh"],
    status: "running",
    exit_code: null,
    signal: null,
    error: null,
    created_by: "admin",
    created_at: "2026-11-24T02:00:00Z",
    ended_at: null,
    output_bytes: 0,
    activity: null,
    activity_since: null,
    activity_source: null,
    preset: null,
    viewers: [],
    ...overrides,
  };
}
