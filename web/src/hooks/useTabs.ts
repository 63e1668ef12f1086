// Which sessions are open as tabs, which is in front, and whether the overview grid is shown
// instead. Kept in sessionStorage (ids only, no secrets) so a reload reopens the same terminals.

import { useCallback, useState } from "react";

const KEY = "agentrelay.tabs";

interface Tabs {
  open: string[];
  active: string | null;
  /** The overview grid is in front instead of the active tab. */
  overview: boolean;
}

function load(): Tabs {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Partial<Tabs> | null;
    if (value && Array.isArray(value.open)) {
      const open = value.open.filter((x): x is string => typeof x === "string");
      return { open, active: value.active ?? null, overview: value.overview ?? open.length === 0 };
    }
  } catch {
    // Corrupt or missing: start empty.
  }
  // Nothing open yet: start with every live session at a glance.
  return { open: [], active: null, overview: true };
}

export function useTabs() {
  const [tabs, setTabs] = useState<Tabs>(load);
  const update = useCallback((change: (tabs: Tabs) => Tabs) => {
    setTabs((current) => {
      const next = change(current);
      sessionStorage.setItem(KEY, JSON.stringify(next));
      return next;
    });
  }, []);
  const openTab = useCallback(
    (id: string) =>
      update((t) => ({ open: t.open.includes(id) ? t.open : [...t.open, id], active: id, overview: false })),
    [update],
  );
  const closeTab = useCallback(
    (id: string) =>
      update((t) => {
        const index = t.open.indexOf(id);
        const open = t.open.filter((x) => x !== id);
        const active = t.active === id ? (open[Math.min(index, open.length - 1)] ?? null) : t.active;
        return { ...t, open, active };
      }),
    [update],
  );
  const selectIndex = useCallback(
    (index: number) => update((t) => (t.open[index] ? { ...t, active: t.open[index], overview: false } : t)),
    [update],
  );
  const showOverview = useCallback(() => update((t) => ({ ...t, overview: true })), [update]);
  return { ...tabs, openTab, closeTab, selectIndex, showOverview };
}
