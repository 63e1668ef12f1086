// How a session's process ended, for people: success, failure or a signal, each with its own
// label and colour (exit 0 and exit 3 must not look alike).

import type { ExitStatus } from "./protocol";

export type ExitKind = "success" | "failure" | "signal";

export function exitKind(exit: ExitStatus): ExitKind {
  if (exit.signal) return "signal";
  return exit.code === 0 ? "success" : "failure";
}

/** "exit 0", "exit 3", "SIGTERM". */
export function exitLabel(exit: ExitStatus): string {
  if (exit.signal) return exit.signal;
  return `exit ${exit.code ?? "?"}`;
}

/** Badge colours per kind: green, red, violet (each with text at AA contrast on the dark page). */
export const EXIT_STYLES: Record<ExitKind, string> = {
  success: "bg-emerald-500/15 text-emerald-300 ring-emerald-500/40",
  failure: "bg-red-500/15 text-red-300 ring-red-500/40",
  signal: "bg-violet-500/15 text-violet-300 ring-violet-500/40",
};

/** Words for the kind, before the label: "succeeded", "failed", "killed". */
export const EXIT_WORDS: Record<ExitKind, string> = {
  success: "succeeded",
  failure: "failed",
  signal: "killed",
};
