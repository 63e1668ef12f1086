import { useCallback, useEffect, useState } from "react";
import { api, ApiError } from "./lib/api";
import type { Session } from "./lib/protocol";
import { useEvents } from "./hooks/useEvents";
import { useTabs } from "./hooks/useTabs";
import { LoginPage } from "./components/LoginPage";
import { Logo } from "./components/Logo";
import { NewSessionDialog } from "./components/NewSessionDialog";
import { RunnerList } from "./components/RunnerList";
import { SessionList } from "./components/SessionList";
import { SessionTabs } from "./components/SessionTabs";
import { Terminal } from "./components/Terminal";
import { useToasts } from "./components/Toasts";
import "./lib/testHooks";

type Auth = "checking" | "signed-out" | "signed-in";

export function App() {
  const [auth, setAuth] = useState<Auth>("checking");
  const toasts = useToasts();

  useEffect(() => {
    api
      .runners()
      .then(() => setAuth("signed-in"))
      .catch((e: ApiError) => {
        setAuth("signed-out");
        if (e.status !== 401) toasts.error(e.message);
      });
  }, [toasts]);

  if (auth === "checking") return <div className="h-full bg-slate-950" />;
  if (auth === "signed-out") return <LoginPage onSignedIn={() => setAuth("signed-in")} />;
  return <Dashboard onSignedOut={() => setAuth("signed-out")} />;
}

function Dashboard({ onSignedOut }: { onSignedOut(): void }) {
  const live = useEvents(true);
  const tabs = useTabs();
  const toasts = useToasts();
  const [creating, setCreating] = useState(false);
  const [drawer, setDrawer] = useState(false);
  const [now, setNow] = useState(() => Date.now());

  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 15000);
    return () => window.clearInterval(timer);
  }, []);

  // Alt+N: new session; Alt+1…9: switch tab; Alt+W: close tab. Captured before xterm.js sees them.
  const { selectIndex, closeTab, active } = tabs;
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (!event.altKey || event.ctrlKey || event.metaKey) return;
      const key = event.key.toLowerCase();
      const digit = /^Digit([1-9])$/.exec(event.code);
      if (event.code === "KeyN" || key === "n") setCreating(true);
      else if (digit) selectIndex(Number(digit[1]) - 1);
      else if ((event.code === "KeyW" || key === "w") && active) closeTab(active);
      else return;
      event.preventDefault();
      event.stopPropagation();
    };
    window.addEventListener("keydown", onKey, true);
    return () => window.removeEventListener("keydown", onKey, true);
  }, [selectIndex, closeTab, active]);

  const signOut = useCallback(async () => {
    try {
      await api.logout();
    } finally {
      sessionStorage.clear();
      onSignedOut();
    }
  }, [onSignedOut]);

  const kill = useCallback(
    (id: string) => api.killSession(id).catch((e: ApiError) => toasts.error(e.message)),
    [toasts],
  );

  const open = (session: Session) => {
    tabs.openTab(session.id);
    setDrawer(false);
  };
  const byId = new Map(live.sessions.map((s) => [s.id, s]));
  const openSessions = tabs.open.map((id) => byId.get(id)).filter((s): s is Session => s !== undefined);

  return (
    <div className="flex h-full flex-col bg-slate-950">
      <header className="flex items-center gap-3 border-b border-slate-800 bg-slate-900/80 px-3 py-2">
        <button
          className="rounded-md p-1.5 text-slate-300 hover:bg-slate-800 md:hidden"
          aria-label="Toggle runners and sessions"
          aria-expanded={drawer}
          onClick={() => setDrawer((d) => !d)}
        >
          ☰
        </button>
        <Logo />
        <span className="hidden font-semibold text-white sm:inline">AgentRelay</span>
        <span
          className={`hidden h-2 w-2 rounded-full sm:inline-block ${live.connected ? "bg-emerald-400" : "bg-amber-400"}`}
          title={live.connected ? "Live updates connected" : "Live updates reconnecting"}
        />
        <div className="flex-1" />
        <button
          onClick={() => setCreating(true)}
          title="New session (Alt+N)"
          className="rounded-lg bg-emerald-500 px-3 py-1.5 text-sm font-semibold whitespace-nowrap text-slate-950 hover:bg-emerald-400"
        >
          New session
        </button>
        <button
          onClick={signOut}
          className="rounded-lg px-3 py-1.5 text-sm whitespace-nowrap text-slate-300 hover:bg-slate-800"
        >
          Sign out
        </button>
      </header>

      <div className="relative flex min-h-0 flex-1">
        <aside
          className={`${
            drawer ? "absolute inset-y-0 left-0 z-20 flex" : "hidden"
          } w-[min(20rem,85vw)] shrink-0 flex-col gap-6 overflow-y-auto border-r border-slate-800 bg-slate-950 p-3 md:static md:flex`}
        >
          <RunnerList runners={live.runners} now={now} />
          <SessionList sessions={live.sessions} runners={live.runners} activeId={tabs.active} now={now} onOpen={open} />
        </aside>

        <main className="flex min-w-0 flex-1 flex-col">
          {openSessions.length > 0 && (
            <SessionTabs
              tabs={openSessions}
              activeId={tabs.active}
              onSelect={tabs.openTab}
              onClose={tabs.closeTab}
              onKill={kill}
            />
          )}
          <div className="relative min-h-0 flex-1">
            {openSessions.map((session) => (
              <Terminal
                key={session.id}
                sessionId={session.id}
                active={session.id === tabs.active}
                onError={toasts.error}
                onClose={() => tabs.closeTab(session.id)}
              />
            ))}
            {openSessions.length === 0 && (
              <div className="flex h-full flex-col items-center justify-center gap-3 px-6 text-center">
                <p className="text-lg font-medium text-slate-200">No session open</p>
                <p className="max-w-sm text-sm text-slate-400">
                  Start an agent or a shell on one of your runners, or open a session from the list.
                </p>
                <button
                  onClick={() => setCreating(true)}
                  className="rounded-lg border border-slate-700 px-4 py-2 text-sm text-slate-200 hover:border-emerald-400"
                >
                  New session <span className="text-slate-500">Alt+N</span>
                </button>
              </div>
            )}
          </div>
        </main>
      </div>

      {creating && (
        <NewSessionDialog
          runners={live.runners}
          onClose={() => setCreating(false)}
          onError={toasts.error}
          onStarted={(session) => {
            setCreating(false);
            tabs.openTab(session.id);
          }}
        />
      )}
    </div>
  );
}
