import { describe, expect, it } from "vitest";
import { splitCommand } from "./argv";

describe("splitCommand", () => {
  it.each([
    ["bash -l", ["bash", "-l"]],
    ["  gh   copilot  ", ["gh", "copilot"]],
    [`sh -c 'echo "hi there"; exit 3'`, ["sh", "-c", 'echo "hi there"; exit 3']],
    [`echo "a \\"b\\" c" d\\ e`, ["echo", 'a "b" c', "d e"]],
    [`printf ''`, ["printf", ""]],
    ["claude --model 'opus 4'", ["claude", "--model", "opus 4"]],
  ])("%s", (line, argv) => {
    expect(splitCommand(line)).toEqual({ ok: true, argv });
  });

  it("reports unclosed quotes and empty input", () => {
    expect(splitCommand(`echo 'oops`)).toEqual({ ok: false, error: "unclosed single quote" });
    expect(splitCommand(`echo "oops`)).toEqual({ ok: false, error: "unclosed double quote" });
    expect(splitCommand("   ")).toEqual({ ok: false, error: "enter a command" });
  });
});
