// The "Enable notifications" switch. The browser is asked for permission only when the user clicks
// it, never on load; the choice to be notified is kept in localStorage (no secret in it).

import { useCallback, useState } from "react";

const KEY = "agentrelay.notifications";

export type NotificationSetting = "unsupported" | "blocked" | "off" | "on";

function supported(): boolean {
  return typeof window !== "undefined" && "Notification" in window;
}

function current(): NotificationSetting {
  if (!supported()) return "unsupported";
  if (Notification.permission === "denied") return "blocked";
  let wanted = false;
  try {
    wanted = localStorage.getItem(KEY) === "on";
  } catch {
    // Storage disabled: off until clicked.
  }
  return wanted && Notification.permission === "granted" ? "on" : "off";
}

function store(on: boolean) {
  try {
    localStorage.setItem(KEY, on ? "on" : "off");
  } catch {
    // Storage disabled: the setting lasts until the page closes.
  }
}

export function useNotifications() {
  const [setting, setSetting] = useState<NotificationSetting>(current);
  const enable = useCallback(async () => {
    if (!supported()) return;
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (permission === "granted") {
      store(true);
      setSetting("on");
    } else {
      setSetting(permission === "denied" ? "blocked" : "off");
    }
  }, []);
  const disable = useCallback(() => {
    store(false);
    setSetting(current());
  }, []);
  return { setting, enable, disable };
}
