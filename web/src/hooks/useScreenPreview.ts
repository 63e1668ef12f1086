// A session's screen for an overview tile, polled only while the tile is on screen and the page is
// visible, and at once whenever `pokeKey` changes (its activity did).

import { useEffect, useRef, useState, type RefObject } from "react";
import { api, ApiError } from "../lib/api";
import type { Screen } from "../lib/protocol";
import { ScreenPoller } from "../lib/screenPoller";

// The session ended (409), is gone (404), or this browser may no longer read it.
const FINAL = new Set([401, 403, 404, 409]);

export function useScreenPreview(sessionId: string, element: RefObject<HTMLElement | null>, pokeKey: string): Screen | null {
  const [screen, setScreen] = useState<Screen | null>(null);
  const poller = useRef<ScreenPoller | null>(null);

  useEffect(() => {
    const target = element.current;
    if (!target) return;
    const instance = new ScreenPoller(() => api.screen(sessionId), {
      onScreen: setScreen,
      onError: (error) => (error instanceof ApiError && FINAL.has(error.status) ? "stop" : "retry"),
    });
    poller.current = instance;
    let onScreen = false;
    const update = () => instance.setVisible(onScreen && document.visibilityState === "visible");
    const observer = new IntersectionObserver((entries) => {
      onScreen = entries.some((entry) => entry.isIntersecting);
      update();
    });
    observer.observe(target);
    document.addEventListener("visibilitychange", update);
    return () => {
      observer.disconnect();
      document.removeEventListener("visibilitychange", update);
      instance.dispose();
      poller.current = null;
    };
  }, [sessionId, element]);

  useEffect(() => {
    poller.current?.poke();
  }, [pokeKey]);

  return screen;
}
