import { useState, type FormEvent } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError } from "../lib/api";
import type { Access } from "../lib/protocol";

interface Props {
  sessionId: string;
  onError(message: string): void;
}

/** "Share with a teammate": let someone (by e-mail) watch or drive the session; take it back. */
export function TeammateAccess({ sessionId, onError }: Props) {
  const client = useQueryClient();
  const key = ["grants", sessionId];
  const { data: grants } = useQuery({ queryKey: key, queryFn: () => api.grants(sessionId) });
  const [email, setEmail] = useState("");
  const [access, setAccess] = useState<Access>("view");
  const [busy, setBusy] = useState(false);

  const refresh = () => void client.invalidateQueries({ queryKey: key });

  async function grant(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    try {
      await api.grant(sessionId, email.trim(), access);
      setEmail("");
      refresh();
    } catch (e) {
      onError((e as ApiError).message);
    } finally {
      setBusy(false);
    }
  }

  const revoke = (userId: string) => api.revokeGrant(sessionId, userId).then(refresh, (e: ApiError) => onError(e.message));
  const field = "rounded-lg border border-slate-700 bg-slate-950 px-3 py-2 text-sm text-slate-100";
  return (
    <section aria-labelledby="teammate-title" className="space-y-3 border-t border-slate-800 pt-4">
      <h3 id="teammate-title" className="text-sm font-semibold text-white">
        Share with a teammate
      </h3>
      <p className="text-sm text-slate-400">
        They see it in their dashboard: <em>view</em> watches read-only, <em>drive</em> types too. Taking it back
        closes their terminal at once.
      </p>
      <form onSubmit={grant} className="flex flex-wrap items-end gap-2">
        <label className="min-w-0 flex-1 space-y-1.5">
          <span className="block text-sm font-medium text-slate-300">Teammate's e-mail</span>
          <input
            required
            type="email"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            className={`w-full ${field}`}
            data-testid="grant-email"
          />
        </label>
        <label className="space-y-1.5">
          <span className="block text-sm font-medium text-slate-300">Access</span>
          <select value={access} onChange={(e) => setAccess(e.target.value as Access)} className={field}>
            <option value="view">View</option>
            <option value="drive">Drive</option>
          </select>
        </label>
        <button
          type="submit"
          disabled={busy}
          className="rounded-lg bg-sky-500 px-4 py-2 text-sm font-semibold text-slate-950 hover:bg-sky-400 disabled:opacity-50"
        >
          Share
        </button>
      </form>
      {grants && grants.length > 0 && (
        <ul className="space-y-1 text-sm" aria-label="Shared with">
          {grants.map((grant) => (
            <li key={grant.user.id} className="flex items-center justify-between gap-2 text-slate-200" data-testid="grant">
              <span className="truncate">
                {grant.user.name} {grant.user.email && <span className="text-slate-400">({grant.user.email})</span>} ·{" "}
                {grant.access}
              </span>
              <button onClick={() => void revoke(grant.user.id)} className="text-xs text-slate-400 underline hover:text-red-300">
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
