import type { NotificationSetting } from "../hooks/useNotifications";

interface Props {
  setting: NotificationSetting;
  onEnable(): void;
  onDisable(): void;
}

/** Asks for notification permission only when clicked. */
export function NotificationToggle({ setting, onEnable, onDisable }: Props) {
  if (setting === "unsupported") return null;
  const base = "rounded-lg px-2.5 py-1.5 text-sm whitespace-nowrap";
  if (setting === "blocked") {
    return (
      <span className={`${base} hidden text-slate-400 lg:inline`} title="Notifications are blocked in this browser's site settings">
        Notifications blocked
      </span>
    );
  }
  const on = setting === "on";
  return (
    <button
      onClick={on ? onDisable : onEnable}
      aria-pressed={on}
      title={on ? "Notify me when a session needs input (click to turn off)" : "Get a notification when a session needs input"}
      className={`${base} ${on ? "text-amber-300 hover:bg-slate-800" : "text-slate-300 hover:bg-slate-800"}`}
    >
      <svg viewBox="0 0 16 16" className="inline h-4 w-4 align-[-3px]" aria-hidden="true" fill="currentColor">
        <path d="M8 1.5a4 4 0 00-4 4v2.8L2.6 11h10.8L12 8.3V5.5a4 4 0 00-4-4zM6.3 12.5a1.8 1.8 0 003.4 0z" />
      </svg>
      <span className="sr-only sm:not-sr-only sm:ml-1.5">{on ? "Notifications on" : "Enable notifications"}</span>
    </button>
  );
}
