import type { Usage } from "../lib/protocol";
import { usageDetails, usageSpoken, usageSummary } from "../lib/usage";

/**
 * What a session's agent used, compact ("↑12.3k ↓4.1k · $0.42"), with the breakdown and the model
 * in the tooltip and in words for screen readers. Nothing until the agent reports.
 */
export function UsageFigures({ usage, className = "" }: { usage: Usage | null | undefined; className?: string }) {
  if (!usage) return null;
  return (
    <span
      data-testid="usage"
      title={usageDetails(usage)}
      className={`shrink-0 font-mono text-xs whitespace-nowrap text-slate-400 tabular-nums ${className}`}
    >
      <span aria-hidden="true">{usageSummary(usage)}</span>
      <span className="sr-only">{usageSpoken(usage)}</span>
    </span>
  );
}
