import { describe, expect, it } from "vitest";
import { nextFromLocation, safeNext } from "./next";

describe("safeNext", () => {
  it("keeps paths on HQ", () => {
    expect(safeNext("/sessions/01a2?x=1")).toBe("/sessions/01a2?x=1");
    expect(nextFromLocation({ search: "?next=%2Fapi%2Fauth%2Fcli%3Fport%3D1" })).toBe("/api/auth/cli?port=1");
  });

  it("refuses other sites and odd paths", () => {
    for (const away of ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/a b", "", null]) {
      expect(safeNext(away)).toBeNull();
    }
  });
});
