import { useEffect, useState, type FormEvent } from "react";
import { api, ApiError } from "../lib/api";
import { nextFromLocation } from "../lib/next";
import type { AuthConfig } from "../lib/protocol";
import { rememberSharedSession, SHARE_PATH } from "../lib/share";
import { Logo } from "./Logo";

/** `notice`: why this page is showing (a sign-in that expired under an open dashboard). */
export function LoginPage({ notice, onSignedIn }: { notice?: string; onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [config, setConfig] = useState<AuthConfig | null>(null);
  // Where to go once signed in: `?next=` (the CLI's sign-in page, a deep link), else right here.
  const next = nextFromLocation(window.location);

  useEffect(() => {
    api.authConfig().then(setConfig, () => setConfig({ sso: null }));
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await api.login(token.trim());
      setToken("");
      if (answer?.scope === "share" && answer.session_id) {
        // A share's token opens one session read-only, not the dashboard.
        rememberSharedSession(answer.session_id);
        window.location.assign(SHARE_PATH);
        return;
      }
      if (next) {
        window.location.assign(next);
        return;
      }
      onSignedIn();
    } catch (e) {
      setError(e instanceof ApiError && e.status === 401 ? "That token is not valid." : String((e as Error).message));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="flex min-h-full items-center justify-center bg-slate-950 px-4">
      <form
        onSubmit={submit}
        className="w-full max-w-sm space-y-5 rounded-2xl border border-slate-800 bg-slate-900/80 p-8 shadow-2xl"
      >
        <div className="flex items-center gap-3">
          <Logo />
          <div>
            <h1 className="text-lg font-semibold text-white">AgentRelay</h1>
            <p className="text-sm text-slate-400">Mission control for your coding agents</p>
          </div>
        </div>
        {notice && (
          <p role="status" className="rounded-lg border border-amber-500/40 bg-amber-500/10 px-3 py-2 text-sm text-amber-200">
            {notice}
          </p>
        )}
        {config?.sso && (
          <>
            <a
              href={`${config.sso.login_url}?next=${encodeURIComponent(
                next ?? `${window.location.pathname}${window.location.search}`,
              )}`}
              className="block w-full rounded-lg bg-sky-500 px-4 py-2 text-center text-sm font-semibold text-slate-950 hover:bg-sky-400"
              data-testid="sso-sign-in"
            >
              Sign in with {config.sso.name}
            </a>
            <p className="text-center text-xs text-slate-400">or with a token</p>
          </>
        )}
        <label className="block space-y-2">
          <span className="text-sm font-medium text-slate-300">Access token</span>
          <input
            type="password"
            autoComplete="current-password"
            autoFocus={!config?.sso}
            required
            value={token}
            onChange={(e) => setToken(e.target.value)}
            className="w-full rounded-lg border border-slate-700 bg-slate-950 px-3 py-2 font-mono text-sm text-slate-100 outline-none focus:border-emerald-400 focus:ring-1 focus:ring-emerald-400"
          />
        </label>
        {error && (
          <p role="alert" className="text-sm text-red-400">
            {error}
          </p>
        )}
        <button
          type="submit"
          disabled={busy || token.trim() === ""}
          className="w-full rounded-lg bg-emerald-500 px-4 py-2 text-sm font-semibold text-slate-950 hover:bg-emerald-400 disabled:opacity-50"
        >
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <div className="space-y-1 text-xs">
          <p className="text-slate-400">Sign in with an admin or user token.</p>
          <p className="text-slate-400">
            A new HQ started without an admin token prints a bootstrap admin token on its first start.
          </p>
        </div>
      </form>
    </main>
  );
}
