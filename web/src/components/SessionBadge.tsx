import { activityOf, type ShownSession } from "../lib/activity";
import { ActivityBadge } from "./ActivityBadge";
import { ExitBadge } from "./ExitBadge";
import { StatusBadge } from "./StatusBadge";

/** A running session's activity, or its status when it has none (starting, ended). */
export function SessionBadge({ session, now, compact }: { session: ShownSession; now: number; compact?: boolean }) {
  if (session.runnerOffline) {
    return (
      <span
        data-testid="runner-offline"
        title="The session's runner is disconnected: nothing it shows is current until it is back"
        className="inline-flex shrink-0 items-center gap-1 rounded-full bg-slate-500/15 px-2 py-0.5 text-xs whitespace-nowrap text-slate-300 ring-1 ring-slate-500/40"
      >
        <span aria-hidden="true" className="h-1.5 w-1.5 rounded-full border border-current" />
        runner offline
      </span>
    );
  }
  const activity = activityOf(session);
  if (activity) {
    return (
      <ActivityBadge
        activity={activity}
        since={session.activity_since}
        source={session.activity_source}
        now={now}
        compact={compact}
      />
    );
  }
  if (session.status === "exited") return <ExitBadge session={session} />;
  return <StatusBadge status={session.status} />;
}
