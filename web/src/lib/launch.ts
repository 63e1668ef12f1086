// What the New session form sends: a runner's preset by name while the command line is still that
// preset's argv, otherwise the command itself.

import { joinCommand, type SplitResult } from "./argv";
import type { Preset } from "./protocol";

/** The preset chosen in the form, if the command line still runs exactly its argv. */
export function presetInUse(presets: readonly Preset[], chosen: string | null, split: SplitResult): Preset | null {
  if (!chosen || !split.ok) return null;
  const preset = presets.find((p) => p.name === chosen);
  if (!preset) return null;
  const same = preset.command.length === split.argv.length && preset.command.every((arg, i) => arg === split.argv[i]);
  return same ? preset : null;
}

/** The preset a form opens with: the runner's "shell", else its first, else none. */
export function defaultPreset(presets: readonly Preset[]): Preset | null {
  return presets.find((p) => p.name === "shell") ?? presets[0] ?? null;
}

export function presetLine(preset: Preset): string {
  return joinCommand(preset.command);
}

/** The launch part of the POST /api/sessions body. */
export function launchFields(preset: Preset | null, split: SplitResult): { preset: string } | { command: string[] } | null {
  if (preset) return { preset: preset.name };
  return split.ok ? { command: split.argv } : null;
}
