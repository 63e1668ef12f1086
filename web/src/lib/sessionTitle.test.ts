import { describe, expect, it } from "vitest";
import { sessionTitle } from "./sessionTitle";

describe("sessionTitle", () => {
  it("names a session by its name first", () => {
    expect(sessionTitle({ name: "fix login", preset: "claude", command: ["claude"] })).toEqual({
      title: "fix login",
      command: "claude",
    });
  });

  it("names a preset's session by the preset, keeping the command for the tooltip", () => {
    expect(sessionTitle({ preset: "claude", command: ["claude", "--dangerously-skip-permissions"] })).toEqual({
      title: "claude",
      command: "claude --dangerously-skip-permissions",
    });
  });

  it("names any other session by its command line, quoted as a shell would", () => {
    expect(sessionTitle({ preset: null, command: ["bash", "-l"] })).toEqual({ title: "bash -l", command: "bash -l" });
    expect(sessionTitle({ preset: null, name: null, command: ["sh", "-c", 'echo "Done"; sleep 60'] }).title).toBe(
      `sh -c 'echo "Done"; sleep 60'`,
    );
  });
});
