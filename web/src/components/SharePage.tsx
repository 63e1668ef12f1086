// `/share#<token>`: one session, watched read-only. main.tsx has already taken the token out of the
// address bar; here it is traded for a read-only cookie (POST /api/login) and then forgotten.

import { useEffect, useState } from "react";
import { api, ApiError } from "../lib/api";
import { rememberedSharedSession, rememberSharedSession } from "../lib/share";
import { useNow } from "../hooks/useNow";
import { Logo } from "./Logo";
import { Terminal } from "./Terminal";
import { useToasts } from "./Toasts";

const REVOKED = "This share link was revoked or has expired.";

type View =
  | { kind: "checking" }
  | { kind: "signed-in-already" }
  | { kind: "watching"; sessionId: string }
  | { kind: "problem"; message: string };

export function SharePage({ token }: { token: string | null }) {
  const [view, setView] = useState<View>(() => {
    if (token) return { kind: "checking" };
    const remembered = rememberedSharedSession();
    return remembered
      ? { kind: "watching", sessionId: remembered }
      : { kind: "problem", message: "This link has no share token. Open the whole link you were given again." };
  });
  const [confirmed, setConfirmed] = useState(false);
  const now = useNow();
  const toasts = useToasts();

  useEffect(() => {
    document.title = "Shared session · AgentRelay";
  }, []);

  useEffect(() => {
    if (!token) return;
    let cancelled = false;
    (async () => {
      // Signing in with the share replaces this browser's cookie: say so to someone signed in.
      if (!confirmed) {
        const signedIn = await api.runners().then(
          () => true,
          () => false,
        );
        if (cancelled) return;
        if (signedIn) {
          setView({ kind: "signed-in-already" });
          return;
        }
      }
      try {
        const answer = await api.login(token);
        if (cancelled) return;
        if (answer?.scope !== "share" || !answer.session_id) {
          // Not a share token: do not stay signed in with something a link handed us.
          await api.logout().catch(() => {});
          setView({ kind: "problem", message: "This is not a share link." });
          return;
        }
        rememberSharedSession(answer.session_id);
        setView({ kind: "watching", sessionId: answer.session_id });
      } catch (e) {
        if (cancelled) return;
        const error = e as ApiError;
        setView({
          kind: "problem",
          message: error.status === 401 ? REVOKED : error.message,
        });
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [token, confirmed]);

  return (
    <div className="flex h-full flex-col bg-slate-950">
      <header className="flex items-center gap-3 border-b border-slate-800 bg-slate-900/80 px-3 py-2">
        <Logo />
        <span className="font-semibold text-white">AgentRelay</span>
        <span className="text-sm text-slate-400">Shared session</span>
        <span className="rounded-full bg-sky-500/15 px-2 py-0.5 text-xs font-medium text-sky-300 ring-1 ring-sky-500/30">
          read-only
        </span>
      </header>
      <main className="relative min-h-0 flex-1">
        {view.kind === "checking" && <p className="p-6 text-sm text-slate-400">Opening the shared session…</p>}
        {view.kind === "signed-in-already" && (
          <div className="mx-auto max-w-md space-y-4 p-6 text-sm text-slate-300">
            <p>
              This browser is signed in to AgentRelay. Watching this shared session signs it in with the read-only link
              instead, and you will need your token to get back to the dashboard.
            </p>
            <div className="flex gap-2">
              <button
                onClick={() => setConfirmed(true)}
                className="rounded-lg bg-sky-500 px-4 py-2 font-semibold text-slate-950 hover:bg-sky-400"
              >
                Watch read-only
              </button>
              <a href="/" className="rounded-lg px-4 py-2 text-slate-300 hover:bg-slate-800">
                Back to the dashboard
              </a>
            </div>
          </div>
        )}
        {view.kind === "problem" && (
          <p role="alert" className="p-6 text-sm text-amber-300">
            {view.message}
          </p>
        )}
        {view.kind === "watching" && (
          <Terminal
            sessionId={view.sessionId}
            active
            readOnly
            now={now}
            onError={toasts.error}
            onAccessLost={() => {
              // The share's sign-in is gone for good: a reload must not try the session again.
              rememberSharedSession(null);
              setView({ kind: "problem", message: REVOKED });
            }}
          />
        )}
      </main>
    </div>
  );
}
