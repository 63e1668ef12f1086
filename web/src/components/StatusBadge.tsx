import type { RunnerStatus, SessionStatus } from "../lib/protocol";

const STYLES: Record<RunnerStatus | SessionStatus, string> = {
  online: "bg-emerald-500/15 text-emerald-300 ring-emerald-500/30",
  running: "bg-emerald-500/15 text-emerald-300 ring-emerald-500/30",
  starting: "bg-sky-500/15 text-sky-300 ring-sky-500/30",
  offline: "bg-slate-500/15 text-slate-400 ring-slate-500/30",
  exited: "bg-slate-500/15 text-slate-300 ring-slate-500/30",
  failed: "bg-red-500/15 text-red-300 ring-red-500/30",
  lost: "bg-amber-500/15 text-amber-300 ring-amber-500/30",
};

export function StatusBadge({ status }: { status: RunnerStatus | SessionStatus }) {
  return (
    <span className={`inline-flex items-center gap-1 rounded-full px-2 py-0.5 text-xs font-medium ring-1 ${STYLES[status]}`}>
      <span className={`h-1.5 w-1.5 rounded-full bg-current ${status === "running" || status === "online" ? "animate-pulse" : ""}`} />
      {status === "failed" ? "did not start" : status}
    </span>
  );
}
