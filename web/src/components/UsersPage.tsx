import { useState, type FormEvent } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError } from "../lib/api";
import type { Role, User } from "../lib/protocol";

interface Props {
  me: User | undefined;
  onError(message: string): void;
}

/** Admins: everyone, their role and whether they may sign in; add people by e-mail. */
export function UsersPage({ me, onError }: Props) {
  const client = useQueryClient();
  const { data: users } = useQuery({ queryKey: ["users"], queryFn: api.users });
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("member");

  const refresh = () => void client.invalidateQueries({ queryKey: ["users"] });
  const change = (user: User, update: { role?: Role; disabled?: boolean }) =>
    api.updateUser(user.id, update).then(refresh, (e: ApiError) => onError(e.message));

  async function add(event: FormEvent) {
    event.preventDefault();
    try {
      await api.createUser({ name: name.trim(), email: email.trim(), role });
      setName("");
      setEmail("");
      refresh();
    } catch (e) {
      onError((e as ApiError).message);
    }
  }

  const field = "rounded-lg border border-slate-700 bg-slate-950 px-3 py-1.5 text-sm text-slate-100";
  return (
    <section aria-labelledby="users-title" className="absolute inset-0 overflow-y-auto p-4 sm:p-6">
      <h2 id="users-title" className="mb-1 text-lg font-semibold text-white">
        Users
      </h2>
      <p className="mb-4 text-sm text-slate-400">
        Disabling someone, or changing their role, signs them out and cuts their connections at once.
      </p>
      <table className="w-full max-w-4xl text-left text-sm">
        <thead className="text-xs text-slate-400">
          <tr>
            <th className="py-2 pr-3 font-medium">Name</th>
            <th className="py-2 pr-3 font-medium">E-mail</th>
            <th className="py-2 pr-3 font-medium">Role</th>
            <th className="py-2 pr-3 font-medium">Status</th>
            <th className="py-2 font-medium">Last seen</th>
          </tr>
        </thead>
        <tbody>
          {(users ?? []).map((user) => (
            <tr key={user.id} className="border-t border-slate-800 text-slate-200" data-testid="user-row">
              <td className="py-2 pr-3">{user.name}</td>
              <td className="py-2 pr-3 text-slate-400">{user.email || "—"}</td>
              <td className="py-2 pr-3">
                <select
                  aria-label={`Role of ${user.name}`}
                  value={user.role}
                  disabled={user.id === me?.id}
                  onChange={(e) => void change(user, { role: e.target.value as Role })}
                  className={field}
                >
                  <option value="member">Member</option>
                  <option value="admin">Admin</option>
                </select>
              </td>
              <td className="py-2 pr-3">
                <button
                  disabled={user.id === me?.id}
                  onClick={() => void change(user, { disabled: !user.disabled })}
                  className="rounded-md border border-slate-600 px-2 py-1 text-xs hover:border-emerald-400 disabled:opacity-40"
                >
                  {user.disabled ? "Disabled · enable" : "Active · disable"}
                </button>
              </td>
              <td className="py-2 text-slate-400">
                {user.last_seen_at ? new Date(user.last_seen_at).toLocaleString() : "never"}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form onSubmit={add} className="mt-6 flex max-w-4xl flex-wrap items-end gap-2" aria-label="Add a user">
        <label className="space-y-1">
          <span className="block text-xs text-slate-400">Name</span>
          <input required value={name} onChange={(e) => setName(e.target.value)} className={field} />
        </label>
        <label className="space-y-1">
          <span className="block text-xs text-slate-400">E-mail</span>
          <input required type="email" value={email} onChange={(e) => setEmail(e.target.value)} className={field} />
        </label>
        <label className="space-y-1">
          <span className="block text-xs text-slate-400">Role</span>
          <select value={role} onChange={(e) => setRole(e.target.value as Role)} className={field}>
            <option value="member">Member</option>
            <option value="admin">Admin</option>
          </select>
        </label>
        <button type="submit" className="rounded-lg bg-emerald-500 px-3 py-1.5 text-sm font-semibold text-slate-950 hover:bg-emerald-400">
          Add user
        </button>
      </form>
    </section>
  );
}
