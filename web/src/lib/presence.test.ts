import { describe, expect, it } from "vitest";
import { groupViewers, viewerLabel } from "./presence";

describe("presence", () => {
  it("groups viewers by name and access, writers first", () => {
    const groups = groupViewers([
      { name: "share", read_only: true },
      { name: "admin", read_only: false },
      { name: "admin", read_only: false },
      { name: "share", read_only: true },
      { name: "admin", read_only: true },
    ]);
    expect(groups.map(viewerLabel)).toEqual(["admin ×2", "share ×2 (read-only)", "admin (read-only)"]);
    expect(groupViewers([])).toEqual([]);
  });
});
