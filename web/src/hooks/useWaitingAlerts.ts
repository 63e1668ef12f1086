// Sessions waiting for input make themselves known: the document title counts them ("(2)
// AgentRelay"), and, when the user turned notifications on, each one that starts waiting raises a
// browser notification (not for the session already in front of a user who is looking at it).

import { useEffect, useRef } from "react";
import { BASE_TITLE, documentTitle, waitingCount, WaitingWatch } from "../lib/activity";
import type { Runner, Session } from "../lib/protocol";
import { sessionTitle } from "../lib/sessionTitle";

interface Options {
  notify: boolean;
  runners: Runner[];
  /** The session in front, if a terminal is. */
  frontId: string | null;
  onOpen(id: string): void;
}

export function useWaitingAlerts(sessions: Session[], { notify, runners, frontId, onOpen }: Options): number {
  const waiting = waitingCount(sessions);
  const watch = useRef<WaitingWatch | null>(null);
  const latest = useRef({ notify, runners, frontId, onOpen });
  useEffect(() => {
    latest.current = { notify, runners, frontId, onOpen };
  });

  useEffect(() => {
    document.title = documentTitle(waiting);
  }, [waiting]);
  useEffect(() => () => void (document.title = BASE_TITLE), []);

  useEffect(() => {
    watch.current ??= new WaitingWatch();
    const entered = watch.current.update(sessions);
    const { notify, runners, frontId } = latest.current;
    if (!notify || entered.length === 0 || !("Notification" in window) || Notification.permission !== "granted") return;
    const looking = document.visibilityState === "visible" && document.hasFocus();
    for (const session of entered) {
      if (looking && session.id === frontId) continue;
      const runner = runners.find((r) => r.id === session.runner_id)?.name ?? "a runner";
      const notification = new Notification(`Needs input: ${sessionTitle(session).title}`, {
        body: `On ${runner}. Click to open it.`,
        tag: `agentrelay-waiting-${session.id}`,
      });
      notification.onclick = () => {
        window.focus();
        latest.current.onOpen(session.id);
        notification.close();
      };
    }
  }, [sessions]);

  return waiting;
}
