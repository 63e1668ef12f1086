import { describe, expect, it } from "vitest";
import { ScreenPoller } from "./screenPoller";
import type { Screen } from "./protocol";

const screen = (text: string): Screen => ({ rows: 1, cols: 80, cursor: { row: 0, col: 0 }, lines: [text] });

function harness(onError: (e: unknown) => "stop" | "retry" = () => "retry") {
  const requests: Array<{ resolve(s: Screen): void; reject(e: unknown): void }> = [];
  const timers = new Map<number, () => void>();
  let nextTimer = 1;
  const shown: string[] = [];
  const poller = new ScreenPoller(
    () => new Promise<Screen>((resolve, reject) => requests.push({ resolve, reject })),
    { onScreen: (s) => shown.push(s.lines[0]), onError },
    {
      interval: 1500,
      setTimeout: (fn) => {
        timers.set(nextTimer, fn);
        return nextTimer++;
      },
      clearTimeout: (h) => timers.delete(h as number),
    },
  );
  const tick = () => {
    const due = [...timers.values()];
    timers.clear();
    due.forEach((fn) => fn());
  };
  // Lets promise callbacks run.
  const settle = () => new Promise((r) => setTimeout(r, 0));
  return { poller, requests, timers, shown, tick, settle };
}

describe("ScreenPoller", () => {
  it("polls only while visible, at once when it becomes visible, then on its interval", async () => {
    const h = harness();
    h.tick();
    expect(h.requests).toHaveLength(0);
    h.poller.setVisible(true);
    expect(h.requests).toHaveLength(1);
    h.requests[0].resolve(screen("one"));
    await h.settle();
    expect(h.shown).toEqual(["one"]);
    expect(h.timers.size).toBe(1);
    h.tick();
    expect(h.requests).toHaveLength(2);
    h.requests[1].resolve(screen("two"));
    await h.settle();

    h.poller.setVisible(false);
    expect(h.timers.size).toBe(0);
    h.poller.poke();
    expect(h.requests).toHaveLength(2);
    h.poller.setVisible(true);
    expect(h.requests).toHaveLength(3);
  });

  it("keeps one request in flight and polls again right after when poked meanwhile", async () => {
    const h = harness();
    h.poller.setVisible(true);
    h.poller.poke();
    h.poller.poke();
    expect(h.requests).toHaveLength(1);
    h.requests[0].resolve(screen("stale"));
    await h.settle();
    expect(h.requests).toHaveLength(2);
    expect(h.timers.size).toBe(0);
    h.requests[1].resolve(screen("fresh"));
    await h.settle();
    expect(h.shown).toEqual(["stale", "fresh"]);
    // A poke between polls replaces the waiting timer with a request now.
    h.poller.poke();
    expect(h.requests).toHaveLength(3);
    expect(h.timers.size).toBe(0);
  });

  it("retries after a passing error and stops for good after a final one", async () => {
    const errors: unknown[] = [];
    const h = harness((e) => {
      errors.push(e);
      return e === "ended" ? "stop" : "retry";
    });
    h.poller.setVisible(true);
    h.requests[0].reject("blip");
    await h.settle();
    h.tick();
    expect(h.requests).toHaveLength(2);
    h.requests[1].reject("ended");
    await h.settle();
    expect(h.timers.size).toBe(0);
    h.poller.poke();
    h.poller.setVisible(false);
    h.poller.setVisible(true);
    expect(h.requests).toHaveLength(2);
    expect(errors).toEqual(["blip", "ended"]);
  });

  it("drops an answer that arrives after dispose", async () => {
    const h = harness();
    h.poller.setVisible(true);
    h.poller.dispose();
    h.requests[0].resolve(screen("late"));
    await h.settle();
    expect(h.shown).toEqual([]);
    expect(h.timers.size).toBe(0);
  });
});
