import { useState, type FormEvent } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError } from "../lib/api";
import type { CreatedToken, User } from "../lib/protocol";

interface Props {
  me: User | undefined;
  onError(message: string): void;
}

type Kind = "user" | "runner" | "shared-runner" | "admin";

/** Your tokens (every token, for admins): make one (its secret shown once), revoke one. */
export function TokensPage({ me, onError }: Props) {
  const client = useQueryClient();
  const { data: tokens } = useQuery({ queryKey: ["tokens"], queryFn: api.tokens });
  const [name, setName] = useState("");
  const [kind, setKind] = useState<Kind>("user");
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const admin = me?.role === "admin";

  const refresh = () => void client.invalidateQueries({ queryKey: ["tokens"] });

  async function create(event: FormEvent) {
    event.preventDefault();
    try {
      const scope = kind === "shared-runner" ? "runner" : kind;
      setCreated(await api.createToken({ name: name.trim(), scope, shared: kind === "shared-runner" || undefined }));
      setName("");
      refresh();
    } catch (e) {
      onError((e as ApiError).message);
    }
  }

  const revoke = (id: string) => api.revokeToken(id).then(refresh, (e: ApiError) => onError(e.message));
  const field = "rounded-lg border border-slate-700 bg-slate-950 px-3 py-1.5 text-sm text-slate-100";
  const describe = (scope: string, shared?: boolean) =>
    scope === "runner" ? (shared ? "shared runner" : "personal runner") : scope;
  return (
    <section aria-labelledby="tokens-title" className="absolute inset-0 overflow-y-auto p-4 sm:p-6">
      <h2 id="tokens-title" className="mb-1 text-lg font-semibold text-white">
        Tokens
      </h2>
      <p className="mb-4 text-sm text-slate-400">
        {admin ? "Every active token." : "Your active tokens."} A runner token enrolls a personal runner: only you
        see it and start sessions on it.
      </p>
      <form onSubmit={create} className="mb-6 flex max-w-4xl flex-wrap items-end gap-2" aria-label="New token">
        <label className="space-y-1">
          <span className="block text-xs text-slate-400">Name</span>
          <input required value={name} onChange={(e) => setName(e.target.value)} className={field} />
        </label>
        <label className="space-y-1">
          <span className="block text-xs text-slate-400">Kind</span>
          <select value={kind} onChange={(e) => setKind(e.target.value as Kind)} className={field}>
            <option value="user">User (CLI, scripts)</option>
            <option value="runner">Personal runner</option>
            {admin && <option value="shared-runner">Shared runner</option>}
            {admin && <option value="admin">Admin</option>}
          </select>
        </label>
        <button type="submit" className="rounded-lg bg-emerald-500 px-3 py-1.5 text-sm font-semibold text-slate-950 hover:bg-emerald-400">
          Create token
        </button>
      </form>
      {created && (
        <div role="status" className="mb-6 max-w-4xl rounded-lg border border-emerald-500/40 bg-emerald-500/10 p-3 text-sm text-emerald-100">
          <p>
            <strong>{created.name}</strong>: copy it now, it is shown once.
          </p>
          <input
            readOnly
            value={created.token}
            onFocus={(e) => e.target.select()}
            aria-label="The new token"
            data-testid="new-token"
            className="mt-2 w-full rounded-md border border-slate-700 bg-slate-950 px-2 py-1 font-mono text-xs text-slate-100"
          />
        </div>
      )}
      <table className="w-full max-w-4xl text-left text-sm">
        <thead className="text-xs text-slate-400">
          <tr>
            <th className="py-2 pr-3 font-medium">Name</th>
            <th className="py-2 pr-3 font-medium">Kind</th>
            {admin && <th className="py-2 pr-3 font-medium">User</th>}
            <th className="py-2 pr-3 font-medium">Expires</th>
            <th className="py-2 font-medium">
              <span className="sr-only">Revoke</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(tokens ?? []).map((token) => (
            <tr key={token.id} className="border-t border-slate-800 text-slate-200" data-testid="token-row">
              <td className="py-2 pr-3">{token.name}</td>
              <td className="py-2 pr-3 text-slate-400">{describe(token.scope, token.shared)}</td>
              {admin && <td className="py-2 pr-3 text-slate-400">{token.user?.name ?? "—"}</td>}
              <td className="py-2 pr-3 text-slate-400">
                {token.expires_at ? new Date(token.expires_at).toLocaleString() : "never"}
              </td>
              <td className="py-2 text-right">
                <button
                  onClick={() => void revoke(token.id)}
                  className="rounded-md border border-slate-600 px-2 py-1 text-xs hover:border-red-400 hover:text-red-200"
                >
                  Revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
