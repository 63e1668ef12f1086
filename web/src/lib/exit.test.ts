import { describe, expect, it } from "vitest";
import { exitKind, exitLabel } from "./exit";

describe("exit", () => {
  it("tells success, failure and a signal apart", () => {
    expect([exitKind({ code: 0, signal: null }), exitLabel({ code: 0, signal: null })]).toEqual(["success", "exit 0"]);
    expect([exitKind({ code: 3, signal: null }), exitLabel({ code: 3, signal: null })]).toEqual(["failure", "exit 3"]);
    expect([exitKind({ code: null, signal: "SIGHUP" }), exitLabel({ code: null, signal: "SIGHUP" })]).toEqual([
      "signal",
      "SIGHUP",
    ]);
  });
});
