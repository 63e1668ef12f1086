import { describe, expect, it } from "vitest";
import { joinCommand, splitCommand } from "./argv";

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

describe("joinCommand", () => {
  it("leaves plain words alone and quotes the rest", () => {
    expect(joinCommand(["gh", "copilot"])).toBe("gh copilot");
    expect(joinCommand(["bash", "-l"])).toBe("bash -l");
    expect(joinCommand(["claude", "--model", "opus 4"])).toBe("claude --model 'opus 4'");
    expect(joinCommand(["printf", ""])).toBe("printf ''");
  });

  it.each([
    [["sh", "-c", `printf "Proceed? (y/n) "; read a; echo it's $a`]],
    [["echo", "'", '"', "\\", "a b\tc", "$HOME", "*"]],
    [["x", "", "  ", "\n"]],
  ])("splits back into the same argv: %j", (argv) => {
    expect(splitCommand(joinCommand(argv))).toEqual({ ok: true, argv });
  });
});
