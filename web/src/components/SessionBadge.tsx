import { activityOf } from "../lib/activity";
import type { Session } from "../lib/protocol";
import { ActivityBadge } from "./ActivityBadge";
import { StatusBadge } from "./StatusBadge";

/** A running session's activity, or its status when it has none (starting, ended). */
export function SessionBadge({ session, now, compact }: { session: Session; now: number; compact?: boolean }) {
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
  return <StatusBadge status={session.status} />;
}
