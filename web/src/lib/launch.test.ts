import { describe, expect, it } from "vitest";
import { splitCommand } from "./argv";
import { defaultPreset, launchFields, presetInUse, presetLine } from "./launch";
import type { Preset } from "./protocol";

const preset = (name: string, command: string[]): Preset => ({ name, description: name, command, prompt_patterns: [] });
const presets = [preset("claude", ["claude"]), preset("shell", ["bash", "-l"]), preset("aider", ["aider", "--model", "a b"])];

describe("launch", () => {
  it("sends the preset while the command line is still its argv", () => {
    const line = presetLine(presets[2]);
    expect(line).toBe("aider --model 'a b'");
    const chosen = presetInUse(presets, "aider", splitCommand(line));
    expect(chosen?.name).toBe("aider");
    expect(launchFields(chosen, splitCommand(line))).toEqual({ preset: "aider" });
  });

  it("sends the command once it is edited, or when the preset is not on this runner", () => {
    const edited = splitCommand("aider --model 'a b' --yes");
    expect(presetInUse(presets, "aider", edited)).toBeNull();
    expect(launchFields(null, edited)).toEqual({ command: ["aider", "--model", "a b", "--yes"] });
    expect(presetInUse(presets, "codex", splitCommand("codex"))).toBeNull();
    expect(presetInUse(presets, null, splitCommand("claude"))).toBeNull();
    expect(launchFields(null, splitCommand("'oops"))).toBeNull();
  });

  it("opens with the shell preset, else the first, else none", () => {
    expect(defaultPreset(presets)?.name).toBe("shell");
    expect(defaultPreset([presets[0]])?.name).toBe("claude");
    expect(defaultPreset([])).toBeNull();
  });
});
