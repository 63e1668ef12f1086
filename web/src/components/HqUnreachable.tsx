/** The banner while HQ cannot be reached: everything shown is as of `since`, and may be stale. */
export function HqUnreachable({ since }: { since: number }) {
  return (
    <div
      role="alert"
      data-testid="hq-unreachable"
      className="border-b border-amber-500/40 bg-amber-500/15 px-3 py-1.5 text-center text-sm text-amber-100"
    >
      HQ is unreachable since {new Date(since).toLocaleTimeString()}: runners and sessions are shown as they were then,
      and may have changed. Reconnecting…
    </div>
  );
}
