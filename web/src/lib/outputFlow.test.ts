import { describe, expect, it } from "vitest";
import { OutputFlow } from "./outputFlow";

function harness(options: { highWater?: number; lagWater?: number; maxLag?: number } = {}) {
  const callbacks: Array<() => void> = [];
  const written: number[] = [];
  const events: string[] = [];
  let clock = 0;
  const flow = new OutputFlow(
    {
      write: (data, done) => {
        written.push(data.length);
        callbacks.push(done);
      },
    },
    {
      highWater: 100,
      lagWater: 30,
      maxLag: 1000,
      ...options,
      now: () => clock,
      onOverflow: () => events.push("overflow"),
      onDrained: () => events.push("drained"),
    },
  );
  const parse = (n = callbacks.length) => callbacks.splice(0, n).forEach((done) => done());
  const tick = (ms: number) => (clock += ms);
  return { flow, written, events, parse, tick };
}

const bytes = (n: number) => new Uint8Array(n);

describe("OutputFlow", () => {
  it("counts bytes until parsed and never stops a feed that keeps up", () => {
    const h = harness();
    for (let i = 0; i < 50; i++) {
      h.flow.write(bytes(40));
      h.flow.write(bytes(40));
      expect(h.flow.pending).toBe(80);
      h.parse();
      expect(h.flow.pending).toBe(0);
    }
    expect(h.events).toEqual([]);
  });

  it("stops past the high watermark, drops what follows, and says when drained", () => {
    const h = harness();
    h.flow.write(bytes(60));
    h.flow.write(bytes(60));
    expect(h.events).toEqual(["overflow"]);
    h.flow.write(bytes(60));
    h.flow.write(bytes(60));
    expect(h.written).toEqual([60, 60]);
    h.parse(1);
    expect(h.events).toEqual(["overflow"]);
    h.parse(1);
    expect(h.events).toEqual(["overflow", "drained"]);

    h.flow.resume();
    h.flow.write(bytes(10));
    expect(h.written).toEqual([60, 60, 10]);
    h.parse();
    expect(h.events).toEqual(["overflow", "drained"]);
  });

  it("stops when unparsed output has waited too long, even under the high watermark", () => {
    const h = harness();
    h.flow.write(bytes(20));
    h.tick(1500);
    // Old but small: a slow draw of a little output is no reason to skip.
    h.flow.write(bytes(5));
    expect(h.events).toEqual([]);
    h.flow.write(bytes(20));
    expect(h.events).toEqual(["overflow"]);
    h.parse();
    expect(h.events).toEqual(["overflow", "drained"]);
  });

  it("measures the wait from the oldest write not yet parsed", () => {
    const h = harness();
    h.flow.write(bytes(20));
    h.tick(900);
    h.flow.write(bytes(20));
    h.parse(1);
    h.tick(900);
    // The oldest unparsed write is 900 ms old.
    h.flow.write(bytes(20));
    expect(h.events).toEqual([]);
  });
});
