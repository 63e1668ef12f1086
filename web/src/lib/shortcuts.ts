// The dashboard's keyboard shortcuts, in one table for the key handler and the `?` cheat sheet.
//
// Scheme: outside a terminal, Alt+key (and `?`). Inside a terminal every key belongs to the
// program (Alt+N is Meta-n to Emacs or readline, Alt+W is Meta-w), so the dashboard's keys are
// reached with the prefix Ctrl+] then the key, as in the CLI; Ctrl+] twice sends one Ctrl+].

export type ShortcutAction = "new" | "overview" | "close" | "help" | { tab: number };

export interface Shortcut {
  /** The key after Alt (or after the Ctrl+] prefix). */
  key: string;
  does: string;
}

export const SHORTCUTS: readonly Shortcut[] = [
  { key: "N", does: "New session" },
  { key: "O", does: "Overview of all live sessions" },
  { key: "1…9", does: "Switch to tab 1…9" },
  { key: "W", does: "Close the tab in front" },
  { key: "?", does: "This list of shortcuts" },
];

/** The action a key names (after Alt, or after the prefix), by its code or, failing that, its character. */
export function shortcutFor(event: Pick<KeyboardEvent, "code" | "key">): ShortcutAction | null {
  const key = event.key.toLowerCase();
  const digit = /^Digit([1-9])$/.exec(event.code) ?? /^([1-9])$/.exec(event.key);
  if (event.code === "KeyN" || key === "n") return "new";
  if (event.code === "KeyO" || key === "o") return "overview";
  if (event.code === "KeyW" || key === "w") return "close";
  if (event.key === "?" || event.code === "Slash") return "help";
  if (digit) return { tab: Number(digit[1]) - 1 };
  return null;
}

/** Whether a keydown is the terminal prefix, Ctrl+]. */
export function isPrefix(event: Pick<KeyboardEvent, "ctrlKey" | "altKey" | "metaKey" | "key" | "code">): boolean {
  return event.ctrlKey && !event.altKey && !event.metaKey && (event.key === "]" || event.code === "BracketRight");
}
