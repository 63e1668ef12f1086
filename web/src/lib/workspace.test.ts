import { describe, expect, it } from "vitest";
import type { Session, Workspace } from "./protocol";
import { fileStatus, NO_WORKSPACE, parseChangesEvent, summaryKey, summaryText, withChanges, workspaceSpec } from "./workspace";

const workspace: Workspace = {
  repo: "demo",
  branch: "agentrelay/0a1b2c3d",
  base: "main",
  base_commit: "4f2c",
  path: "/state/workspaces/x",
  changes: null,
  removed: false,
};

type Row = Pick<Session, "id" | "workspace">;

describe("workspace", () => {
  it("folds a changes event into its session, and leaves the others alone", () => {
    const sessions: Row[] = [{ id: "plain", workspace: null }, { id: "ws", workspace }];
    const next = withChanges(sessions, { session_id: "ws", files: 2, additions: 5, deletions: 1 });
    expect(next[1].workspace?.changes).toEqual({ files: 2, additions: 5, deletions: 1 });
    expect(next[1].workspace?.branch).toBe("agentrelay/0a1b2c3d");
    expect(next[0]).toBe(sessions[0]);
    expect(sessions[1].workspace?.changes).toBeNull();
    // A session without a workspace, or one not listed: nothing to fold into.
    expect(withChanges(sessions, { session_id: "plain", files: 1, additions: 1, deletions: 0 })).toBe(sessions);
    expect(withChanges(sessions, { session_id: "gone", files: 1, additions: 1, deletions: 0 })).toBe(sessions);
  });

  it("reads the changes event as HQ sends it", () => {
    expect(parseChangesEvent('{"session_id":"s","files":1,"additions":2,"deletions":0}')).toEqual({
      session_id: "s",
      files: 1,
      additions: 2,
      deletions: 0,
    });
    expect(parseChangesEvent('{"session_id":"s","files":1}')).toBeNull();
    expect(parseChangesEvent("nope")).toBeNull();
    expect(parseChangesEvent("null")).toBeNull();
  });

  it("summarises changes", () => {
    expect(summaryText(null)).toBe("no changes");
    expect(summaryText({ files: 0, additions: 0, deletions: 0 })).toBe("no changes");
    expect(summaryText({ files: 1, additions: 3, deletions: 0 })).toBe("1 file +3 −0");
    expect(summaryText({ files: 3, additions: 12, deletions: 4 })).toBe("3 files +12 −4");
  });

  it("keys what is fetched by the summary", () => {
    expect(summaryKey(workspace)).toBe("none");
    expect(summaryKey({ ...workspace, changes: { files: 1, additions: 2, deletions: 3 } })).toBe("1:2:3");
  });

  it("marks each status, and one it does not know", () => {
    expect(fileStatus("untracked").letter).toBe("U");
    expect(fileStatus("renamed").label).toBe("renamed");
    expect(fileStatus("type_changed").letter).toBe("?");
    expect(fileStatus("toString").letter).toBe("?");
  });
});

describe("workspaceSpec", () => {
  it("asks for a workspace only with a repository, leaving blanks to HQ", () => {
    expect(workspaceSpec(NO_WORKSPACE)).toBeNull();
    expect(workspaceSpec({ repo: " ", branch: "x", base: "y" })).toBeNull();
    expect(workspaceSpec({ repo: "demo", branch: " ", base: "" })).toEqual({ repo: "demo" });
    expect(workspaceSpec({ repo: "demo", branch: " fix/login ", base: "main" })).toEqual({
      repo: "demo",
      branch: "fix/login",
      base: "main",
    });
  });
});
