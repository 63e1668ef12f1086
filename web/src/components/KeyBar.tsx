/** Keys a phone's keyboard lacks, as a bar under the terminal. */
const KEYS: readonly { label: string; name?: string; keys: string }[] = [
  { label: "Esc", keys: "\x1b" },
  { label: "Tab", keys: "\t" },
  { label: "Ctrl-C", keys: "\x03" },
  { label: "←", name: "Left", keys: "\x1b[D" },
  { label: "↑", name: "Up", keys: "\x1b[A" },
  { label: "↓", name: "Down", keys: "\x1b[B" },
  { label: "→", name: "Right", keys: "\x1b[C" },
  { label: "Enter", keys: "\r" },
];

/** Esc, Tab, Ctrl-C, arrows and Enter for a phone, typed into the session. */
export function KeyBar({ onKeys }: { onKeys(keys: string): void }) {
  return (
    <div role="toolbar" aria-label="Keys" data-testid="key-bar" className="flex gap-1 overflow-x-auto border-t border-slate-800 bg-slate-900 px-2 py-1.5">
      {KEYS.map((key) => (
        <button
          key={key.label}
          aria-label={key.name}
          // Keep the terminal's focus (and the phone's keyboard) where it is.
          onPointerDown={(event) => event.preventDefault()}
          onClick={() => onKeys(key.keys)}
          className="min-w-11 shrink-0 rounded-md border border-slate-700 bg-slate-800 px-2 py-1.5 text-sm text-slate-100 active:bg-slate-700"
        >
          {key.label}
        </button>
      ))}
    </div>
  );
}
