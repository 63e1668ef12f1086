// Which sessions are open as tabs, and which is in front. Kept in sessionStorage (ids only, no
// secrets) so a reload reopens the same terminals.

import { useCallback, useState } from "react";

const KEY = "agentrelay.tabs";

interface Tabs {
  open: string[];
  active: string | null;
}

function load(): Tabs {
  try {
    const value = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Tabs | null;
    if (value && Array.isArray(value.open)) return { open: value.open.filter((x) => typeof x === "string"), active: value.active ?? null };
  } catch {
    // Corrupt or missing: start empty.
  }
  return { open: [], active: null };
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
    (id: string) => update((t) => ({ open: t.open.includes(id) ? t.open : [...t.open, id], active: id })),
    [update],
  );
  const closeTab = useCallback(
    (id: string) =>
      update((t) => {
        const index = t.open.indexOf(id);
        const open = t.open.filter((x) => x !== id);
        const active = t.active === id ? (open[Math.min(index, open.length - 1)] ?? null) : t.active;
        return { open, active };
      }),
    [update],
  );
  const selectIndex = useCallback(
    (index: number) => update((t) => (t.open[index] ? { ...t, active: t.open[index] } : t)),
    [update],
  );
  return { ...tabs, openTab, closeTab, selectIndex };
}
