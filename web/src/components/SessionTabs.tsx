import { useState } from "react";
import { Link } from "react-router";
import { sessionPath } from "../hooks/useTabs";
import { activityOf, isLive } from "../lib/activity";
import type { Session } from "../lib/protocol";
import { sessionTitle } from "../lib/sessionTitle";
import { ActivityBadge } from "./ActivityBadge";

interface Props {
  tabs: Session[];
  activeId: string | null;
  /** The overview grid is in front instead of a terminal. */
  overview: boolean;
  /** Live sessions waiting for input, shown on the Overview switch. */
  waiting: number;
  now: number;
  /** Runner names by id, for each tab. */
  runnerNames: ReadonlyMap<string, string>;
  onOverview(): void;
  onClose(id: string): void;
  onKill(id: string): void;
  onShare(id: string): void;
  /** Names a session (`null`: takes its name away); resolves once HQ has it. */
  onRename(id: string, name: string | null): Promise<void>;
}

function TabIndicator({ tab, now }: { tab: Session; now: number }) {
  const activity = activityOf(tab);
  if (activity) {
    return <ActivityBadge activity={activity} since={tab.activity_since} source={tab.activity_source} now={now} compact />;
  }
  return (
    <span
      className={`h-2 w-2 shrink-0 rounded-full ${
        tab.status === "running" ? "bg-emerald-400" : tab.status === "starting" ? "bg-sky-400" : "bg-slate-600"
      }`}
    />
  );
}

export function SessionTabs({
  tabs,
  activeId,
  overview,
  waiting,
  now,
  runnerNames,
  onOverview,
  onClose,
  onKill,
  onShare,
  onRename,
}: Props) {
  const active = overview ? undefined : tabs.find((t) => t.id === activeId);
  // The session whose End is waiting for a yes; another tab in front forgets it.
  const [confirming, setConfirming] = useState<string | null>(null);
  // The session being renamed, and the name typed so far.
  const [renaming, setRenaming] = useState<{ id: string; name: string } | null>(null);
  return (
    <div className="flex items-stretch border-b border-slate-800 bg-slate-900/60">
      <button
        onClick={onOverview}
        aria-pressed={overview}
        title="All live sessions at a glance (Alt+O)"
        className={`flex shrink-0 items-center gap-1.5 border-r border-slate-800 px-3 text-sm ${
          overview ? "bg-slate-950 text-white" : "text-slate-400 hover:text-slate-200"
        }`}
      >
        <svg viewBox="0 0 16 16" className="h-3.5 w-3.5" aria-hidden="true" fill="currentColor">
          <rect x="1" y="1" width="6" height="6" rx="1" />
          <rect x="9" y="1" width="6" height="6" rx="1" />
          <rect x="1" y="9" width="6" height="6" rx="1" />
          <rect x="9" y="9" width="6" height="6" rx="1" />
        </svg>
        {/* One label: only for screen readers on a phone, shown from sm up. */}
        <span className="sr-only sm:not-sr-only">Overview</span>
        {waiting > 0 && (
          <span
            className="rounded-full bg-amber-400 px-1.5 text-xs font-semibold text-slate-950"
            title={`${waiting} waiting for input`}
          >
            {waiting}
          </span>
        )}
      </button>
      {/* Each tab is a link to its session's address: navigation, with a close button beside it. */}
      <nav aria-label="Open sessions" className="min-w-0 flex-1 overflow-x-auto">
        <ul className="flex">
          {tabs.map((tab, index) => {
            const { title, command } = sessionTitle(tab);
            const runner = runnerNames.get(tab.runner_id) ?? tab.runner_id.slice(0, 8);
            return (
              <li
                key={tab.id}
                data-tab={tab.id}
                className={`group flex shrink-0 items-center border-r border-slate-800 ${
                  tab.id === active?.id ? "bg-slate-950 text-white" : "text-slate-400 hover:text-slate-200"
                }`}
              >
                <Link
                  to={sessionPath(tab.id)}
                  aria-current={tab.id === active?.id ? "page" : undefined}
                  title={`${command} on ${runner} (Alt+${index + 1})`}
                  className="flex max-w-64 items-center gap-2 py-2 pr-1 pl-3 text-sm"
                >
                  <TabIndicator tab={tab} now={now} />
                  <code className="truncate">{title}</code>
                  <span className="shrink-0 text-xs text-slate-400" data-testid="tab-runner">
                    {runner}
                  </span>
                </Link>
                <button
                  onClick={() => onClose(tab.id)}
                  aria-label={`Close tab ${title}`}
                  className="px-2 text-slate-400 hover:text-white"
                >
                  ×
                </button>
              </li>
            );
          })}
        </ul>
      </nav>
      {active && isLive(active) && confirming === active.id && (
        <div
          role="group"
          aria-label="End this session?"
          className="flex shrink-0 items-center gap-1 px-2 text-xs"
          onKeyDown={(event) => {
            if (event.key === "Escape") setConfirming(null);
          }}
        >
          <span className="text-slate-300">End this session?</span>
          <button
            onClick={() => {
              setConfirming(null);
              onKill(active.id);
            }}
            className="rounded px-2 py-1 font-semibold text-red-300 hover:bg-red-500/15"
          >
            End it
          </button>
          <button
            // Focused first: the safe choice is the one a stray Enter picks.
            autoFocus
            onClick={() => setConfirming(null)}
            className="rounded px-2 py-1 text-slate-300 hover:bg-slate-800"
          >
            Cancel
          </button>
        </div>
      )}
      {active && renaming?.id === active.id && (
        <form
          className="flex shrink-0 items-center gap-1 px-2 text-xs"
          onSubmit={(event) => {
            event.preventDefault();
            const name = renaming.name.trim();
            void onRename(active.id, name === "" ? null : name).then(() => setRenaming(null));
          }}
          onKeyDown={(event) => {
            if (event.key === "Escape") setRenaming(null);
          }}
        >
          <input
            autoFocus
            aria-label="Session name"
            value={renaming.name}
            maxLength={100}
            placeholder={sessionTitle({ ...active, name: null }).title}
            onChange={(event) => setRenaming({ id: active.id, name: event.target.value })}
            className="w-40 rounded border border-slate-700 bg-slate-950 px-2 py-1 text-slate-100 outline-none focus:border-emerald-400"
          />
          <button type="submit" className="rounded px-2 py-1 font-semibold text-emerald-300 hover:bg-emerald-500/10">
            Save
          </button>
          <button type="button" onClick={() => setRenaming(null)} className="rounded px-2 py-1 text-slate-300 hover:bg-slate-800">
            Cancel
          </button>
        </form>
      )}
      {active && renaming?.id !== active.id && confirming !== active.id && (
        <button
          onClick={() => setRenaming({ id: active.id, name: active.name ?? "" })}
          className="shrink-0 px-3 text-xs text-slate-400 hover:text-slate-200"
          title="Give this session a name"
        >
          Rename
        </button>
      )}
      {active && isLive(active) && confirming !== active.id && renaming?.id !== active.id && (
        <>
          <button
            onClick={() => onShare(active.id)}
            className="shrink-0 px-3 text-xs text-slate-400 hover:text-sky-300"
            title="Create a read-only link to this session"
          >
            Share
          </button>
          <button
            // A running process is asked about first; one still starting just goes.
            onClick={() => (active.status === "running" ? setConfirming(active.id) : onKill(active.id))}
            className="shrink-0 px-3 text-xs text-slate-400 hover:text-red-300"
            title="Hang up the session's processes"
          >
            End session
          </button>
        </>
      )}
    </div>
  );
}
