// Live runners and sessions from HQ's Server-Sent Events (`/api/events`). Each event carries the
// whole object, so merging is "replace by id".

import { useEffect, useState } from "react";
import { signedOut } from "../lib/api";
import type { Runner, Session } from "../lib/protocol";
import { parseChangesEvent, withChanges } from "../lib/workspace";

export interface LiveState {
  runners: Runner[];
  sessions: Session[];
  connected: boolean;
  /**
   * When the stream to HQ was lost after it had worked (ms since the epoch), until it is back:
   * what the lists show is what HQ said before then, and may be stale.
   */
  lostAt: number | null;
}

function upsert<T extends { id: string }>(list: T[], item: T): T[] {
  const index = list.findIndex((x) => x.id === item.id);
  if (index === -1) return [...list, item];
  const next = list.slice();
  next[index] = item;
  return next;
}

export function useEvents(enabled: boolean): LiveState {
  const [state, setState] = useState<LiveState>({ runners: [], sessions: [], connected: false, lostAt: null });
  useEffect(() => {
    if (!enabled) return;
    let source: EventSource | null = null;
    let retry: number | undefined;
    let stopped = false;
    const connect = () => {
      const current = new EventSource("/api/events");
      source = current;
      current.onopen = () => setState((s) => ({ ...s, connected: true, lostAt: null }));
      current.onerror = () => {
        setState((s) => ({ ...s, connected: false, lostAt: s.lostAt ?? (s.connected ? Date.now() : null) }));
        // EventSource retries a dropped stream itself but gives up on an error status (a 401 once
        // the sign-in expired, a 502 from a proxy): find out which, and retry unless signed out
        // (signedOut() tells the app, which leaves the dashboard).
        if (current.readyState !== EventSource.CLOSED) return;
        void signedOut().then((gone) => {
          if (!gone && !stopped) retry = window.setTimeout(connect, 3000);
        });
      };
      current.addEventListener("runner", (event) => {
        const runner = JSON.parse((event as MessageEvent<string>).data) as Runner;
        setState((s) => ({ ...s, connected: true, lostAt: null, runners: upsert(s.runners, runner) }));
      });
      current.addEventListener("session", (event) => {
        const session = JSON.parse((event as MessageEvent<string>).data) as Session;
        setState((s) => ({ ...s, connected: true, lostAt: null, sessions: upsert(s.sessions, session) }));
      });
      // A workspace session's changed files moved: its summary, as HQ now keeps it.
      current.addEventListener("changes", (event) => {
        const changes = parseChangesEvent((event as MessageEvent<string>).data);
        if (changes) setState((s) => ({ ...s, sessions: withChanges(s.sessions, changes) }));
      });
      // Retention deleted a finished session: it leaves the lists.
      current.addEventListener("session_removed", (event) => {
        const { id } = JSON.parse((event as MessageEvent<string>).data) as { id: string };
        setState((s) => ({ ...s, sessions: s.sessions.filter((session) => session.id !== id) }));
      });
    };
    connect();
    return () => {
      stopped = true;
      window.clearTimeout(retry);
      source?.close();
    };
  }, [enabled]);
  return state;
}
