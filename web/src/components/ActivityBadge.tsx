import { ACTIVITY_LABEL, activityTooltip, shortSince } from "../lib/activity";
import type { Activity, ActivitySource } from "../lib/protocol";

const STYLES: Record<Activity, string> = {
  working: "bg-sky-500/15 text-sky-300 ring-sky-500/30",
  // Needs someone: solid and loud, the one state meant to catch the eye across a grid.
  waiting_for_input: "bg-amber-400 text-slate-950 ring-amber-300 font-semibold shadow-[0_0_0_3px_rgba(251,191,36,0.25)]",
  idle: "bg-slate-500/15 text-slate-400 ring-slate-500/30",
};

interface Props {
  activity: Activity;
  since: string | null;
  source: ActivitySource | null;
  now: number;
  /** Only the dot and, when it needs input, the label: for tabs. */
  compact?: boolean;
}

/** "working · 12s", "needs input · now", "idle · 5m", with when and why in the tooltip. */
export function ActivityBadge({ activity, since, source, now, compact = false }: Props) {
  const age = shortSince(since, now);
  const tooltip = activityTooltip(activity, since, source);
  const showLabel = !compact || activity === "waiting_for_input";
  return (
    <span
      title={tooltip}
      data-activity={activity}
      className={`inline-flex shrink-0 items-center gap-1 rounded-full text-xs whitespace-nowrap ring-1 ${STYLES[activity]} ${
        showLabel ? "px-2 py-0.5" : "p-1"
      }`}
    >
      <span
        aria-hidden="true"
        className={`h-1.5 w-1.5 rounded-full bg-current ${activity === "working" ? "animate-pulse" : ""}`}
      />
      <span className={showLabel ? "" : "sr-only"}>{ACTIVITY_LABEL[activity]}</span>
      {age && !compact && (
        <span>
          <span aria-hidden="true">·</span> {age}
        </span>
      )}
    </span>
  );
}
