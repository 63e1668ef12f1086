import { useCallback, useEffect, useRef, useState } from "react";
import { api, ApiError, onSignedOut, signedOut } from "./lib/api";
import { Navigate, useLocation, useNavigate } from "react-router";
import { filterFromSearch, filterToSearch, type OverviewFilter } from "./lib/overview";
import type { Session } from "./lib/protocol";
import { isPhone } from "./lib/device";
import { useEvents } from "./hooks/useEvents";
import { withRunnerState } from "./lib/activity";
import { isPrefix, shortcutFor, type ShortcutAction } from "./lib/shortcuts";
import { ShortcutsDialog } from "./components/ShortcutsDialog";
import { HqUnreachable } from "./components/HqUnreachable";
import { useNotifications } from "./hooks/useNotifications";
import { useNow } from "./hooks/useNow";
import { useTabs } from "./hooks/useTabs";
import { useWaitingAlerts } from "./hooks/useWaitingAlerts";
import { LoginPage } from "./components/LoginPage";
import { Logo } from "./components/Logo";
import { NewSessionDialog } from "./components/NewSessionDialog";
import { NotificationToggle } from "./components/NotificationToggle";
import { Overview } from "./components/Overview";
import { RunnerList } from "./components/RunnerList";
import { RunnerPage } from "./components/RunnerPage";
import { RunnersPage } from "./components/RunnersPage";
import { SessionMissing } from "./components/SessionMissing";
import { SessionList } from "./components/SessionList";
import { SessionTabs } from "./components/SessionTabs";
import { ShareDialog } from "./components/ShareDialog";
import { ChangesPanel } from "./components/ChangesPanel";
import { TokensPage } from "./components/TokensPage";
import { UserMenu } from "./components/UserMenu";
import { UsersPage } from "./components/UsersPage";
import { useMe } from "./hooks/useMe";
import { queryClient } from "./lib/queryClient";
import { Terminal } from "./components/Terminal";
import { useToasts } from "./components/Toasts";
import "./lib/testHooks";

/** `expired`: HQ stopped accepting this browser's sign-in while the dashboard was open. */
type Auth = "checking" | "signed-out" | "expired" | "signed-in";

const EXPIRED_NOTICE = "You were signed out: your sign-in expired or was revoked. Sign in again.";

export function App() {
  const [auth, setAuth] = useState<Auth>("checking");
  const toasts = useToasts();

  useEffect(() => {
    api
      .runners()
      .then(() => setAuth("signed-in"))
      .catch((e: ApiError) => {
        setAuth("signed-out");
        // 401: not signed in; 403: a share's read-only cookie, which opens no dashboard.
        if (e.status !== 401 && e.status !== 403) toasts.error(e.message);
      });
  }, [toasts]);

  // Any 401 from HQ while signed in: back to the sign-in page instead of stale, retrying views.
  useEffect(() => onSignedOut(() => setAuth((a) => (a === "signed-in" ? "expired" : a))), []);

  if (auth === "checking") return <div className="h-full bg-slate-950" />;
  if (auth === "signed-out" || auth === "expired") {
    return (
      <LoginPage notice={auth === "expired" ? EXPIRED_NOTICE : undefined} onSignedIn={() => setAuth("signed-in")} />
    );
  }
  return <Dashboard onSignedOut={() => setAuth("signed-out")} />;
}

function Dashboard({ onSignedOut }: { onSignedOut(): void }) {
  const live = useEvents(true);
  const tabs = useTabs();
  const toasts = useToasts();
  const notifications = useNotifications();
  const now = useNow();
  const [creating, setCreating] = useState(false);
  const [sharing, setSharing] = useState<string | null>(null);
  // The drawer (on a phone) is open at the address it was opened at: going anywhere closes it.
  const [drawerAt, setDrawerAt] = useState<string | null>(null);
  const location = useLocation();
  const navigate = useNavigate();
  const filter = filterFromSearch(new URLSearchParams(location.search));
  const setFilter = (next: OverviewFilter) => navigate(`/${filterToSearch(next)}`);
  // Decided once: a phone watches until it types (a rotation must not reattach every terminal).
  const [phone] = useState(isPhone);
  const me = useMe();

  const { selectIndex, closeTab, openTab, showOverview, active, overview, view } = tabs;
  const front = active;
  // A session whose runner is offline shows no activity, and nothing waits on it.
  const sessions = withRunnerState(live.sessions, live.runners);
  const stale = live.lostAt !== null;
  const online = new Set(live.runners.filter((r) => r.status === "online").map((r) => r.id));
  const waiting = useWaitingAlerts(sessions, {
    notify: notifications.setting === "on",
    runners: live.runners,
    frontId: front,
    onOpen: openTab,
  });

  // Shortcuts (lib/shortcuts.ts): Alt+key outside a terminal, and `?`; inside one, where every
  // key is the program's, Ctrl+] then the key. Captured before xterm.js sees them.
  const [help, setHelp] = useState(false);
  const [prefixed, setPrefixed] = useState(false);
  const prefix = useRef(false);
  useEffect(() => {
    const act = (action: ShortcutAction) => {
      if (action === "new") setCreating(true);
      else if (action === "overview") showOverview();
      else if (action === "close") {
        if (front) closeTab(front);
      } else if (action === "help") setHelp(true);
      else selectIndex(action.tab);
    };
    const stop = (event: KeyboardEvent) => {
      event.preventDefault();
      event.stopPropagation();
    };
    const onKey = (event: KeyboardEvent) => {
      // A modal dialog is in front: nothing behind it opens, switches or closes.
      if (document.querySelector("dialog[open], [role='dialog']")) return;
      const target = event.target instanceof Element ? event.target : null;
      if (target?.closest(".xterm")) {
        if (prefix.current) {
          if (["Control", "Shift", "Alt", "Meta"].includes(event.key)) return;
          prefix.current = false;
          setPrefixed(false);
          // Ctrl+] twice: the program gets one.
          if (isPrefix(event)) return;
          const action = shortcutFor(event);
          stop(event);
          if (action) act(action);
          return;
        }
        if (isPrefix(event)) {
          prefix.current = true;
          setPrefixed(true);
          stop(event);
        }
        return;
      }
      const typing = target?.closest("input, textarea, select, [contenteditable='true']");
      if (event.key === "?" && !typing && !event.ctrlKey && !event.altKey && !event.metaKey) {
        act("help");
        stop(event);
        return;
      }
      if (!event.altKey || event.ctrlKey || event.metaKey) return;
      const action = shortcutFor(event);
      if (!action) return;
      act(action);
      stop(event);
    };
    window.addEventListener("keydown", onKey, true);
    return () => window.removeEventListener("keydown", onKey, true);
  }, [selectIndex, closeTab, showOverview, front]);

  const signOut = useCallback(async () => {
    try {
      await api.logout();
    } finally {
      sessionStorage.clear();
      // Who was signed in, their tokens and users: gone with the sign-in.
      queryClient.clear();
      onSignedOut();
    }
  }, [onSignedOut]);

  const kill = useCallback(
    (id: string) => api.killSession(id).catch((e: ApiError) => toasts.error(e.message)),
    [toasts],
  );

  const drawer = drawerAt === location.pathname;
  const byId = new Map(sessions.map((s) => [s.id, s]));
  // DELETE on a finished session removes it and its output; the event stream takes it off the lists.
  const clearFinished = (ids: string[]) =>
    void Promise.all(ids.map((id) => api.killSession(id).catch((e: ApiError) => toasts.error(e.message))));
  const runnerNames = new Map(live.runners.map((r) => [r.id, r.name]));
  const rename = (id: string, name: string | null) =>
    api.renameSession(id, name).then(
      () => {},
      (e: ApiError) => toasts.error(e.message),
    );
  const openSessions = tabs.open.map((id) => byId.get(id)).filter((s): s is Session => s !== undefined);
  const sharedSession = sharing ? byId.get(sharing) : undefined;
  // A workspace session in front has its Changes panel beside the terminal.
  const frontSession = front ? byId.get(front) : undefined;

  return (
    <div className="flex h-full flex-col bg-slate-950">
      <header className="flex items-center gap-2 border-b border-slate-800 bg-slate-900/80 px-3 py-2 sm:gap-3">
        {/* The page's title for heading navigation; the logo and name beside it say it visually. */}
        <h1 className="sr-only">AgentRelay dashboard</h1>
        <button
          className="rounded-md p-1.5 text-slate-300 hover:bg-slate-800 md:hidden"
          aria-label="Toggle runners and sessions"
          aria-expanded={drawer}
          onClick={() => setDrawerAt(drawer ? null : location.pathname)}
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
          onClick={() => setHelp(true)}
          aria-label="Keyboard shortcuts and accessibility"
          title="Keyboard shortcuts (?)"
          className="rounded-md px-2 py-1 text-sm text-slate-300 hover:bg-slate-800"
        >
          ?
        </button>
        <NotificationToggle
          setting={notifications.setting}
          onEnable={notifications.enable}
          onDisable={notifications.disable}
        />
        <button
          onClick={() => setCreating(true)}
          disabled={stale}
          title={stale ? "HQ is unreachable" : "New session (Alt+N)"}
          className="rounded-lg bg-emerald-500 px-3 py-1.5 text-sm font-semibold whitespace-nowrap text-slate-950 hover:bg-emerald-400 disabled:opacity-50"
        >
          New session
        </button>
        <UserMenu me={me} onSignOut={() => void signOut()} />
      </header>

      {live.lostAt !== null && <HqUnreachable since={live.lostAt} />}
      <div className="relative flex min-h-0 flex-1">
        <aside
          className={`${
            drawer ? "absolute inset-y-0 left-0 z-20 flex" : "hidden"
          } w-[min(20rem,85vw)] shrink-0 flex-col gap-6 overflow-y-auto border-r border-slate-800 bg-slate-950 p-3 md:static md:flex ${
            stale ? "opacity-60 grayscale" : ""
          }`}
        >
          <RunnerList runners={live.runners} now={now} stale={stale} />
          <SessionList
            sessions={sessions}
            runners={live.runners}
            activeId={front}
            now={now}
            phone={phone}
            onClearFinished={clearFinished}
          />
        </aside>

        <main className="flex min-w-0 flex-1 flex-col">
          <SessionTabs
            tabs={openSessions}
            activeId={active}
            overview={overview}
            waiting={waiting}
            now={now}
            onOverview={showOverview}
            onClose={closeTab}
            onKill={kill}
            onShare={setSharing}
            runnerNames={runnerNames}
            onRename={rename}
          />
          <div className="relative flex min-h-0 flex-1">
            <div className="relative min-w-0 flex-1">
              {openSessions.map((session) => (
                <Terminal
                  key={session.id}
                  sessionId={session.id}
                  active={session.id === front}
                  watch={phone}
                  runnerOnline={online.has(session.runner_id)}
                  usage={session.usage}
                  now={now}
                  onError={toasts.error}
                  onClose={() => closeTab(session.id)}
                  // HQ cut the socket (a revoked token): find out whether the whole sign-in is gone.
                  onAccessLost={() => void signedOut()}
                />
              ))}
              <div className={overview ? `absolute inset-0 ${stale ? "opacity-60 grayscale" : ""}` : "hidden"}>
                <Overview
                  sessions={sessions}
                  runners={live.runners}
                  filter={filter}
                  now={now}
                  onFilter={setFilter}
                  phone={phone}
                  onNew={() => setCreating(true)}
                />
              </div>
              {view.kind === "session" && !byId.has(view.id) && <SessionMissing id={view.id} />}
              {view.kind === "runners" && <RunnersPage runners={live.runners} sessions={sessions} now={now} />}
              {view.kind === "runner" && (
                <RunnerPage id={view.id} runners={live.runners} sessions={sessions} now={now} />
              )}
              {view.kind === "users" && <UsersPage me={me} onError={toasts.error} />}
              {view.kind === "tokens" && <TokensPage me={me} onError={toasts.error} />}
              {view.kind === "unknown" && <Navigate to="/" replace />}
            </div>
            {frontSession?.workspace && (
              <ChangesPanel key={frontSession.id} session={{ ...frontSession, workspace: frontSession.workspace }} />
            )}
          </div>
        </main>
      </div>

      {creating && (
        <NewSessionDialog
          runners={live.runners}
          sessions={sessions}
          unreachable={stale}
          onClose={() => setCreating(false)}
          onError={toasts.error}
          onStarted={(session) => {
            setCreating(false);
            openTab(session.id);
          }}
        />
      )}
      <ShortcutsDialog open={help} onOpenChange={setHelp} />
      {prefixed && (
        <div
          role="status"
          data-testid="prefix-pending"
          className="fixed bottom-4 left-1/2 z-50 -translate-x-1/2 rounded-full bg-slate-800 px-3 py-1 text-xs text-slate-100 shadow ring-1 ring-slate-600"
        >
          Ctrl+] … then N, O, W, 1–9 or ? (Ctrl+] again sends it to the program)
        </div>
      )}
      {sharedSession && <ShareDialog session={sharedSession} onClose={() => setSharing(null)} onError={toasts.error} />}
    </div>
  );
}
