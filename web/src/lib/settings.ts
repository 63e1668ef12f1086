// Settings kept in this browser (localStorage, nothing secret): whether terminals run xterm.js's
// screen-reader mode. Components subscribe, so a change applies to every open terminal at once.

const SCREEN_READER = "agentrelay.screenReader";
const listeners = new Set<() => void>();

export function screenReaderMode(): boolean {
  try {
    return localStorage.getItem(SCREEN_READER) === "on";
  } catch {
    return false;
  }
}

export function setScreenReaderMode(on: boolean): void {
  try {
    if (on) localStorage.setItem(SCREEN_READER, "on");
    else localStorage.removeItem(SCREEN_READER);
  } catch {
    // Storage disabled: the setting lasts until the page reloads.
  }
  for (const listener of [...listeners]) listener();
}

/** Calls `listener` on every change; returns the unsubscribe. */
export function onSettingsChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}
