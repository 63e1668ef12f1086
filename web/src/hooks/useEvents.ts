// Live runners and sessions from HQ's Server-Sent Events (`/api/events`). Each event carries the
// whole object, so merging is "replace by id".

import { useEffect, useState } from "react";
import type { Runner, Session } from "../lib/protocol";

export interface LiveState {
  runners: Runner[];
  sessions: Session[];
  connected: boolean;
}

function upsert<T extends { id: string }>(list: T[], item: T): T[] {
  const index = list.findIndex((x) => x.id === item.id);
  if (index === -1) return [...list, item];
  const next = list.slice();
  next[index] = item;
  return next;
}

export function useEvents(enabled: boolean): LiveState {
  const [state, setState] = useState<LiveState>({ runners: [], sessions: [], connected: false });
  useEffect(() => {
    if (!enabled) return;
    const source = new EventSource("/api/events");
    source.onopen = () => setState((s) => ({ ...s, connected: true }));
    source.onerror = () => setState((s) => ({ ...s, connected: false }));
    source.addEventListener("runner", (event) => {
      const runner = JSON.parse((event as MessageEvent<string>).data) as Runner;
      setState((s) => ({ ...s, connected: true, runners: upsert(s.runners, runner) }));
    });
    source.addEventListener("session", (event) => {
      const session = JSON.parse((event as MessageEvent<string>).data) as Session;
      setState((s) => ({ ...s, connected: true, sessions: upsert(s.sessions, session) }));
    });
    // Retention deleted a finished session: it leaves the lists.
    source.addEventListener("session_removed", (event) => {
      const { id } = JSON.parse((event as MessageEvent<string>).data) as { id: string };
      setState((s) => ({ ...s, sessions: s.sessions.filter((session) => session.id !== id) }));
    });
    return () => source.close();
  }, [enabled]);
  return state;
}
