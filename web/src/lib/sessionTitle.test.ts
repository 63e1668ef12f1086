import { describe, expect, it } from "vitest";
import { sessionTitle } from "./sessionTitle";

describe("sessionTitle", () => {
  it("names a preset's session by the preset, keeping the command for the tooltip", () => {
    expect(sessionTitle({ preset: "claude", command: ["claude", "--dangerously-skip-permissions"] })).toEqual({
      title: "claude",
      command: "claude --dangerously-skip-permissions",
    });
  });

  it("names any other session by its command line", () => {
    expect(sessionTitle({ preset: null, command: ["bash", "-l"] })).toEqual({ title: "bash -l", command: "bash -l" });
  });
});
