import { describe, expect, it } from "vitest";
import {
  filterFromSearch,
  filterSessions,
  filterToSearch,
  labelOptions,
  NO_FILTER,
  overviewSummary,
  parseLabel,
  previewColumns,
  previewLines,
  stateCounts,
} from "./overview";
import type { Activity, Runner, Session, SessionStatus } from "./protocol";
import { makeSession } from "./testSessions";

function runner(id: string, labels: Record<string, string>): Runner {
  return {
    id,
    name: `runner-${id}`,
    labels,
    status: "online",
    hostname: id,
    os: "linux",
    version: "0.1.0",
    presets: [],
    connected_at: "2026-11-24T00:00:00Z",
    last_seen_at: "2026-11-24T00:00:00Z",
  };
}

function session(id: string, runnerId: string, status: SessionStatus, activity: Activity | null, created = id): Session {
  return makeSession({ id, runner_id: runnerId, status, activity, created_at: `2026-11-24T02:00:0${created}Z` });
}

const runners = [runner("a", { gpu: "true", zone: "eu" }), runner("b", { gpu: "false" }), runner("c", {})];
const sessions = [
  session("5", "a", "running", "working"),
  session("1", "a", "running", "waiting_for_input"),
  session("2", "b", "running", "idle"),
  session("3", "c", "starting", null),
  session("4", "b", "exited", null),
  session("6", "c", "running", "waiting_for_input"),
];
const ids = (list: Session[]) => list.map((s) => s.id);

describe("overview filters", () => {
  it("shows live sessions only, oldest first", () => {
    expect(ids(filterSessions(sessions, runners, NO_FILTER))).toEqual(["1", "2", "3", "5", "6"]);
  });

  it("filters by runner", () => {
    expect(ids(filterSessions(sessions, runners, { ...NO_FILTER, runner: "a" }))).toEqual(["1", "5"]);
    expect(ids(filterSessions(sessions, runners, { ...NO_FILTER, runner: "nope" }))).toEqual([]);
  });

  it("filters by a runner label, value included", () => {
    expect(ids(filterSessions(sessions, runners, { ...NO_FILTER, label: "gpu=true" }))).toEqual(["1", "5"]);
    expect(ids(filterSessions(sessions, runners, { ...NO_FILTER, label: "gpu=false" }))).toEqual(["2"]);
    expect(ids(filterSessions(sessions, runners, { ...NO_FILTER, label: "zone=us" }))).toEqual([]);
    // A label on a runner HQ no longer lists matches nothing.
    expect(ids(filterSessions([session("9", "gone", "running", "idle")], runners, { ...NO_FILTER, label: "gpu=true" }))).toEqual([]);
  });

  it("filters by state and activity", () => {
    expect(ids(filterSessions(sessions, runners, { ...NO_FILTER, state: "waiting_for_input" }))).toEqual(["1", "6"]);
    expect(ids(filterSessions(sessions, runners, { ...NO_FILTER, state: "starting" }))).toEqual(["3"]);
    expect(ids(filterSessions(sessions, runners, { ...NO_FILTER, state: "idle" }))).toEqual(["2"]);
  });

  it("combines filters", () => {
    expect(ids(filterSessions(sessions, runners, { runner: "a", label: "gpu=true", state: "working" }))).toEqual(["5"]);
    expect(ids(filterSessions(sessions, runners, { runner: "b", label: "gpu=true", state: "any" }))).toEqual([]);
  });

  it("lists label options and parses them", () => {
    expect(labelOptions(runners)).toEqual(["gpu=false", "gpu=true", "zone=eu"]);
    expect(parseLabel("gpu=true")).toEqual({ key: "gpu", value: "true" });
    expect(parseLabel("url=a=b")).toEqual({ key: "url", value: "a=b" });
    expect(parseLabel("flag")).toEqual({ key: "flag", value: "" });
    expect(parseLabel("=x")).toBeNull();
  });

  it("counts live sessions by state", () => {
    expect(stateCounts(sessions)).toEqual({ any: 5, starting: 1, working: 1, waiting_for_input: 2, idle: 1 });
  });

  it("previews the screen down to the cursor or the last text", () => {
    const screen = (row: number, lines: string[]) => ({ rows: lines.length, cols: 80, cursor: { row, col: 0 }, lines });
    expect(previewLines(screen(1, ["$ ls", "$", "", ""]))).toEqual(["$ ls", "$"]);
    expect(previewLines(screen(0, ["top", "", "status line", ""]))).toEqual(["top", "", "status line"]);
    expect(previewLines(screen(3, ["a", "", "", ""]))).toEqual(["a", "", "", ""]);
    expect(previewLines(screen(0, []))).toEqual([]);
  });

  it("sizes the preview for its widest line, within limits", () => {
    expect(previewColumns(["Proceed? (y/n)"], 80)).toBe(40);
    expect(previewColumns(["x".repeat(63), "y"], 80)).toBe(63);
    expect(previewColumns(["x".repeat(200)], 120)).toBe(120);
    expect(previewColumns([], 30)).toBe(30);
  });
});

describe("overview summary", () => {
  it("counts sessions needing input among those shown only", () => {
    const all = filterSessions(sessions, runners, NO_FILTER);
    expect(overviewSummary(sessions, all)).toEqual({ live: "5 live", waiting: "2 need input" });
    const onA = filterSessions(sessions, runners, { ...NO_FILTER, runner: "a" });
    expect(overviewSummary(sessions, onA)).toEqual({ live: "2 of 5 live", waiting: "1 needs input" });
    const onB = filterSessions(sessions, runners, { ...NO_FILTER, runner: "b" });
    expect(overviewSummary(sessions, onB)).toEqual({ live: "1 of 5 live", waiting: null });
  });
});

describe("overview addresses", () => {
  it("reads and writes the filter as a query string", () => {
    const filter = { runner: "r1", label: "gpu=true", state: "idle" as const };
    const search = filterToSearch(filter);
    expect(search).toBe("?runner=r1&label=gpu%3Dtrue&state=idle");
    expect(filterFromSearch(new URLSearchParams(search))).toEqual(filter);
    expect(filterToSearch(NO_FILTER)).toBe("");
    expect(filterFromSearch(new URLSearchParams("state=asleep"))).toEqual(NO_FILTER);
  });
});
