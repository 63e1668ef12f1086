import { afterEach, describe, expect, it, vi } from "vitest";
import { api, ApiError, onSignedOut, signedOut } from "./api";

function answer(status: number) {
  return new Response(status === 204 ? null : JSON.stringify(status === 200 ? [] : { error: { code: "x", message: "no" } }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

afterEach(() => vi.unstubAllGlobals());

describe("signed-out detection", () => {
  it("tells listeners about a 401 from a call that needs a sign-in, not from signing in or out", async () => {
    const fetch = vi.fn(async () => answer(401));
    vi.stubGlobal("fetch", fetch);
    let calls = 0;
    const stop = onSignedOut(() => calls++);
    await expect(api.login("wrong")).rejects.toBeInstanceOf(ApiError);
    await expect(api.logout()).rejects.toBeInstanceOf(ApiError);
    expect(calls).toBe(0);
    await expect(api.sessions()).rejects.toMatchObject({ status: 401 });
    expect(calls).toBe(1);
    stop();
    await expect(api.sessions()).rejects.toMatchObject({ status: 401 });
    expect(calls).toBe(1);
  });

  it("tells a 401 from an outage or another refusal", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => answer(401)));
    expect(await signedOut()).toBe(true);
    vi.stubGlobal("fetch", vi.fn(async () => answer(502)));
    expect(await signedOut()).toBe(false);
    vi.stubGlobal("fetch", vi.fn(async () => answer(403)));
    expect(await signedOut()).toBe(false);
    vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("network"))));
    expect(await signedOut()).toBe(false);
    vi.stubGlobal("fetch", vi.fn(async () => answer(200)));
    expect(await signedOut()).toBe(false);
  });
});
