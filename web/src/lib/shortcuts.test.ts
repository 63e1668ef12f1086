import { describe, expect, it } from "vitest";
import { isPrefix, shortcutFor } from "./shortcuts";

describe("shortcuts", () => {
  it("names actions by key code, so any layout works", () => {
    expect(shortcutFor({ code: "KeyN", key: "ñ" })).toBe("new");
    expect(shortcutFor({ code: "KeyO", key: "o" })).toBe("overview");
    expect(shortcutFor({ code: "Digit3", key: "3" })).toEqual({ tab: 2 });
    expect(shortcutFor({ code: "Slash", key: "?" })).toBe("help");
    expect(shortcutFor({ code: "KeyX", key: "x" })).toBeNull();
  });

  it("knows the terminal prefix", () => {
    expect(isPrefix({ ctrlKey: true, altKey: false, metaKey: false, key: "]", code: "BracketRight" })).toBe(true);
    expect(isPrefix({ ctrlKey: false, altKey: false, metaKey: false, key: "]", code: "BracketRight" })).toBe(false);
  });
});
