// The menu on a session's screen while it waits for input: read from `/screen?format=json` when
// it starts waiting, and every few seconds while it waits without one recognized yet.

import { useEffect, useState } from "react";
import { api } from "../lib/api";
import type { Menu } from "../lib/protocol";

const RETRY_MS = 1500;

/** `waitingSince`: when the session began waiting, or null while it does not wait. */
export function useMenu(sessionId: string, waitingSince: string | null, enabled: boolean): Menu | null {
  const [found, setFound] = useState<{ since: string; menu: Menu | null } | null>(null);
  useEffect(() => {
    if (!enabled || !waitingSince) return;
    let cancelled = false;
    let timer: number | undefined;
    const read = () => {
      api.screen(sessionId).then(
        (screen) => {
          if (cancelled) return;
          setFound({ since: waitingSince, menu: screen.menu ?? null });
          if (!screen.menu) timer = window.setTimeout(read, RETRY_MS);
        },
        () => {},
      );
    };
    read();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [sessionId, waitingSince, enabled]);
  return found && found.since === waitingSince ? found.menu : null;
}
