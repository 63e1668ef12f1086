import type { Session } from "../lib/protocol";

interface Props {
  tabs: Session[];
  activeId: string | null;
  onSelect(id: string): void;
  onClose(id: string): void;
  onKill(id: string): void;
}

export function SessionTabs({ tabs, activeId, onSelect, onClose, onKill }: Props) {
  const active = tabs.find((t) => t.id === activeId);
  return (
    <div className="flex items-stretch border-b border-slate-800 bg-slate-900/60">
      <div role="tablist" aria-label="Open sessions" className="flex min-w-0 flex-1 overflow-x-auto">
        {tabs.map((tab, index) => (
          <div
            key={tab.id}
            className={`group flex shrink-0 items-center border-r border-slate-800 ${
              tab.id === activeId ? "bg-slate-950 text-white" : "text-slate-400 hover:text-slate-200"
            }`}
          >
            <button
              role="tab"
              aria-selected={tab.id === activeId}
              title={`${tab.command.join(" ")} (Alt+${index + 1})`}
              onClick={() => onSelect(tab.id)}
              className="flex max-w-56 items-center gap-2 py-2 pr-1 pl-3 text-sm"
            >
              <span
                className={`h-2 w-2 shrink-0 rounded-full ${
                  tab.status === "running" ? "bg-emerald-400" : tab.status === "starting" ? "bg-sky-400" : "bg-slate-600"
                }`}
              />
              <code className="truncate">{tab.command.join(" ")}</code>
            </button>
            <button
              onClick={() => onClose(tab.id)}
              aria-label={`Close tab ${tab.command.join(" ")}`}
              className="px-2 text-slate-500 hover:text-white"
            >
              ×
            </button>
          </div>
        ))}
      </div>
      {active && (active.status === "running" || active.status === "starting") && (
        <button
          onClick={() => onKill(active.id)}
          className="shrink-0 px-3 text-xs text-slate-400 hover:text-red-300"
          title="Hang up the session's processes"
        >
          End session
        </button>
      )}
    </div>
  );
}
