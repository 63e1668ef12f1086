import { useLayoutEffect, useRef } from "react";
import { activityOf } from "../lib/activity";
import { previewColumns, previewLines } from "../lib/overview";
import { Link } from "react-router";
import type { Session } from "../lib/protocol";
import { sessionPath } from "../hooks/useTabs";
import { sessionTitle } from "../lib/sessionTitle";
import { useScreenPreview } from "../hooks/useScreenPreview";
import { api } from "../lib/api";
import { MenuButtons } from "./MenuButtons";
import { SessionBadge } from "./SessionBadge";
import { UsageFigures } from "./UsageFigures";
import { WorkspaceBadge } from "./WorkspaceBadge";

interface Props {
  session: Session;
  runnerName: string;
  now: number;
  onError?(message: string): void;
}

/** The smallest font a preview is drawn at. */
const PREVIEW_MIN_PX = 10;

/** One live session in the overview: a small live preview of its screen, where and what it runs. */
export function OverviewTile({ session, runnerName, now, onError }: Props) {
  const preview = useRef<HTMLDivElement>(null);
  const waiting = activityOf(session) === "waiting_for_input";
  const screen = useScreenPreview(session.id, preview, `${session.activity}:${session.activity_since}`);
  const lines = screen ? previewLines(screen) : [];
  const columns = previewColumns(lines, screen?.cols ?? 80);
  const pre = useRef<HTMLPreElement>(null);
  // A screen taller than the tile shows its bottom, where the prompt is; a short one its top.
  useLayoutEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [screen]);
  const { title, command } = sessionTitle(session);
  return (
    <li
      className={`flex flex-col overflow-hidden rounded-xl border transition hover:border-slate-500 ${
        waiting ? "border-amber-400 bg-amber-400/5 ring-2 ring-amber-400/40" : "border-slate-800 bg-slate-900/60"
      }`}
    >
      <Link
        to={sessionPath(session.id)}
        data-testid="overview-tile"
        data-session={session.id}
        className="flex w-full flex-col text-left focus-visible:outline-2 focus-visible:outline-emerald-400"
      >
        <div className="flex items-center gap-2 px-3 pt-2">
          <span className="min-w-0 flex-1 truncate text-xs font-medium text-slate-300" title={runnerName}>
            {runnerName}
          </span>
          <UsageFigures usage={session.usage} />
          <SessionBadge session={session} now={now} />
        </div>
        <code className="truncate px-3 pt-1 pb-2 text-sm text-slate-100" title={command}>
          {title}
        </code>
        <WorkspaceBadge workspace={session.workspace} className="-mt-1 px-3 pb-2" />
        {/* The preview is a picture of the screen; the button's label says what it opens. */}
        <div ref={preview} aria-hidden="true" className="@container h-36 overflow-hidden border-t border-slate-800 bg-slate-950">
          <pre
            ref={pre}
            data-testid="overview-preview"
            className="h-full overflow-hidden px-1.5 py-1 font-mono leading-[1.2] text-slate-300"
            // Sized so the widest line fills the tile (a monospace cell is ~0.6 em wide), but never
            // below a readable 10 px: a wide screen shows its bottom-left, where prompts are.
            style={{ fontSize: `clamp(${PREVIEW_MIN_PX}px, calc((100cqw - 12px) / ${(columns * 0.61).toFixed(2)}), 12px)` }}
          >
            {screen === null ? (
              <span className="text-slate-400">…</span>
            ) : (
              lines.map((line, i) => (
                <span key={i} className="block min-h-[1.2em] whitespace-pre">
                  {line}
                </span>
              ))
            )}
          </pre>
        </div>
      </Link>
      {/* Answer a recognized menu from here (a phone, a glance): its options as buttons. */}
      {waiting && screen?.menu && (
        <div data-testid="overview-menu" data-session={session.id} className="border-t border-amber-400/30 px-2 py-1.5">
          <MenuButtons
            compact
            menu={screen.menu}
            onPick={(keys) => void api.input(session.id, keys).catch((e: Error) => onError?.(e.message))}
          />
        </div>
      )}
    </li>
  );
}
