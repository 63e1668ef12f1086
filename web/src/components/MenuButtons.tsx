import type { Menu } from "../lib/protocol";

interface Props {
  menu: Menu;
  /** Types `keys` into the session. */
  onPick(keys: string): void;
  /** Smaller, for an overview tile. */
  compact?: boolean;
}

/** A recognized menu's options as buttons ("1. Yes", "2. No", "Esc"): answer without aiming at a terminal. */
export function MenuButtons({ menu, onPick, compact = false }: Props) {
  const button = `rounded-lg border border-amber-400/50 bg-amber-400/10 text-amber-100 hover:bg-amber-400/20 ${
    compact ? "px-2 py-1 text-xs" : "px-3 py-1.5 text-sm"
  }`;
  return (
    <div role="group" aria-label={menu.prompt || "Menu"} data-testid="menu-buttons" className="flex flex-wrap items-center gap-1.5">
      {menu.prompt && !compact && <span className="mr-1 text-sm text-amber-100">{menu.prompt}</span>}
      {menu.options.map((option) => (
        <button key={option.key} onClick={() => onPick(option.key)} className={button} title={`Types ${option.key}`}>
          {option.key}. {option.label}
        </button>
      ))}
      <button onClick={() => onPick("\x1b")} className={button} title="Types Escape">
        Esc
      </button>
    </div>
  );
}
