// Which sessions are open as tabs, and which view is in front. The view in front is the URL
// (`/sessions/:id`, `/runners/:id`, `/runners`, `/` for the overview with its filters), so every
// view can be linked, bookmarked and reached with back and forward; the open tabs are kept in
// sessionStorage (ids only, no secrets) so a reload reopens the same terminals.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useLocation, useMatch, useNavigate } from "react-router";

const KEY = "agentrelay.tabs";

/** What the URL puts in front. */
export type View =
  | { kind: "overview" }
  | { kind: "session"; id: string }
  | { kind: "runners" }
  | { kind: "runner"; id: string }
  | { kind: "users" }
  | { kind: "tokens" }
  | { kind: "unknown" };

export const sessionPath = (id: string) => `/sessions/${encodeURIComponent(id)}`;
export const runnerPath = (id: string) => `/runners/${encodeURIComponent(id)}`;

function load(): string[] {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as { open?: unknown } | null;
    if (value && Array.isArray(value.open)) return value.open.filter((x): x is string => typeof x === "string");
  } catch {
    // Corrupt or missing: start empty.
  }
  return [];
}

function save(open: string[]): void {
  try {
    sessionStorage.setItem(KEY, JSON.stringify({ open }));
  } catch {
    // Storage disabled: tabs last until the reload.
  }
}

/** The view the current URL names. */
export function useView(): View {
  const session = useMatch("/sessions/:id");
  const runner = useMatch("/runners/:id");
  const runners = useMatch("/runners");
  const overview = useMatch("/");
  const users = useMatch("/users");
  const tokens = useMatch("/tokens");
  if (session?.params.id) return { kind: "session", id: session.params.id };
  if (users) return { kind: "users" };
  if (tokens) return { kind: "tokens" };
  if (runner?.params.id) return { kind: "runner", id: runner.params.id };
  if (runners) return { kind: "runners" };
  if (overview) return { kind: "overview" };
  return { kind: "unknown" };
}

export function useTabs() {
  const [stored, setStored] = useState<string[]>(load);
  const view = useView();
  const navigate = useNavigate();
  const location = useLocation();
  // The overview's last address, filters included, for the Overview switch to return to.
  const overviewUrl = useRef("/");
  useEffect(() => {
    if (view.kind === "overview") overviewUrl.current = `/${location.search}`;
  }, [view.kind, location.search]);

  // A session's URL opens its tab.
  const active = view.kind === "session" ? view.id : null;
  const open = useMemo(
    () => (active && !stored.includes(active) ? [...stored, active] : stored),
    [stored, active],
  );
  useEffect(() => save(open), [open]);
  const update = useCallback((change: (open: string[]) => string[]) => setStored(change), []);

  const openTab = useCallback((id: string) => navigate(sessionPath(id)), [navigate]);
  const showOverview = useCallback(() => navigate(overviewUrl.current), [navigate]);
  const closeTab = useCallback(
    (id: string) => {
      const index = open.indexOf(id);
      const rest = open.filter((x) => x !== id);
      update(() => rest);
      if (active === id) {
        const next = rest[Math.min(index, rest.length - 1)];
        navigate(next ? sessionPath(next) : overviewUrl.current, { replace: true });
      }
    },
    [open, active, update, navigate],
  );
  const selectIndex = useCallback(
    (index: number) => {
      if (open[index]) navigate(sessionPath(open[index]));
    },
    [open, navigate],
  );
  return { open, active, view, overview: view.kind === "overview", openTab, closeTab, selectIndex, showOverview };
}
