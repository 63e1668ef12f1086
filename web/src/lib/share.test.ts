import { describe, expect, it } from "vitest";
import { isSharePath, shareTokenFromHash, takeShareToken } from "./share";

describe("share links", () => {
  it("extracts the token from the fragment", () => {
    expect(shareTokenFromHash("#arl_shr_0123abcd")).toBe("arl_shr_0123abcd");
    expect(shareTokenFromHash("arl_shr_0123abcd")).toBe("arl_shr_0123abcd");
    expect(shareTokenFromHash("#arl_shr_%30%31")).toBe("arl_shr_01");
    expect(shareTokenFromHash("#")).toBeNull();
    expect(shareTokenFromHash("")).toBeNull();
    expect(shareTokenFromHash("#a b")).toBeNull();
    expect(shareTokenFromHash("#<script>")).toBeNull();
    expect(shareTokenFromHash("#%E0%A4%A")).toBeNull();
  });

  it("recognises the share route", () => {
    expect(isSharePath("/share")).toBe(true);
    expect(isSharePath("/share/")).toBe(true);
    expect(isSharePath("/")).toBe(false);
    expect(isSharePath("/shared")).toBe(false);
  });

  it("removes the fragment from the address bar, keeping path and query", () => {
    const calls: unknown[][] = [];
    const history = { state: { keep: 1 }, replaceState: (...args: unknown[]) => void calls.push(args) };
    const token = takeShareToken({ hash: "#arl_shr_abc", pathname: "/share", search: "?x=1" }, history);
    expect(token).toBe("arl_shr_abc");
    expect(calls).toEqual([[{ keep: 1 }, "", "/share?x=1"]]);
  });

  it("clears even a bad fragment, and leaves a URL without one alone", () => {
    const calls: unknown[][] = [];
    const history = { state: null, replaceState: (...args: unknown[]) => void calls.push(args) };
    expect(takeShareToken({ hash: "#not a token", pathname: "/share", search: "" }, history)).toBeNull();
    expect(calls).toEqual([[null, "", "/share"]]);
    expect(takeShareToken({ hash: "", pathname: "/share", search: "" }, history)).toBeNull();
    expect(calls).toHaveLength(1);
  });
});
