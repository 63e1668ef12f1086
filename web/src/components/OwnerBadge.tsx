import type { Owner } from "../lib/protocol";

/** A runner's kind: whose personal runner it is, or shared (every member uses it). */
export function RunnerOwnerBadge({ owner }: { owner?: Owner | null }) {
  return owner ? (
    <span
      className="rounded bg-violet-500/15 px-1.5 py-0.5 text-[11px] text-violet-200"
      title={`Personal runner of ${owner.name}${owner.email ? ` (${owner.email})` : ""}: only they use it`}
      data-testid="runner-personal"
    >
      personal · {owner.name}
    </span>
  ) : (
    <span className="rounded bg-slate-800 px-1.5 py-0.5 text-[11px] text-slate-300" title="Shared: every member may use it" data-testid="runner-shared">
      shared
    </span>
  );
}

/** Who started a session. */
export function SessionOwner({ owner }: { owner?: Owner | null }) {
  if (!owner) return null;
  return (
    <span className="truncate text-slate-400" title={owner.email || owner.name} data-testid="session-owner">
      {owner.name}
    </span>
  );
}
