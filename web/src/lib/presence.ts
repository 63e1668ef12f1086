// Who is attached to a session, for the terminal header: one entry per name and access, counted.

import type { Viewer } from "./protocol";

export interface ViewerGroup {
  name: string;
  read_only: boolean;
  count: number;
}

/** Groups viewers by name and access, writers first, in the order HQ listed them. */
export function groupViewers(viewers: readonly Viewer[]): ViewerGroup[] {
  const groups = new Map<string, ViewerGroup>();
  for (const viewer of viewers) {
    const key = `${viewer.read_only ? "r" : "w"}:${viewer.name}`;
    const group = groups.get(key);
    if (group) group.count++;
    else groups.set(key, { name: viewer.name, read_only: viewer.read_only, count: 1 });
  }
  return [...groups.values()].sort((a, b) => Number(a.read_only) - Number(b.read_only));
}

/** "admin", "admin ×2", "guest (read-only)". */
export function viewerLabel(group: ViewerGroup): string {
  return `${group.name}${group.count > 1 ? ` ×${group.count}` : ""}${group.read_only ? " (read-only)" : ""}`;
}
