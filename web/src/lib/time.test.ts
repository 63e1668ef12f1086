import { describe, expect, it } from "vitest";
import { elapsed, relativeTime } from "./time";

describe("relativeTime", () => {
  const now = Date.parse("2026-01-01T12:00:00Z");
  it.each([
    ["2026-01-01T12:00:00Z", "just now"],
    ["2026-01-01T11:59:30Z", "30 s ago"],
    ["2026-01-01T11:55:00Z", "5 min ago"],
    ["2026-01-01T09:00:00Z", "3 h ago"],
  ])("%s → %s", (iso, text) => expect(relativeTime(iso, now)).toBe(text));
  it("handles missing and bad times", () => {
    expect(relativeTime(null, now)).toBe("—");
    expect(relativeTime("nope", now)).toBe("—");
  });
});

describe("elapsed", () => {
  const now = Date.parse("2026-01-01T12:00:00Z");
  it.each([
    ["2026-01-01T12:00:00Z", "0 s"],
    ["2026-01-01T11:59:34Z", "26 s"],
    ["2026-01-01T11:55:00Z", "5 min"],
    ["2026-01-01T09:00:00Z", "3 h"],
    ["2025-12-29T12:00:00Z", "3 days"],
  ])("%s → %s", (iso, text) => expect(elapsed(iso, now)).toBe(text));
  it("handles missing and bad times", () => {
    expect(elapsed(null, now)).toBe("—");
    expect(elapsed("nope", now)).toBe("—");
  });
});
