import { describe, expect, it } from "vitest";
import { DEFAULT_LAG_WATER } from "./outputFlow";
import { FINISHED_TAIL, MAX_INPUT_FRAME, SessionSocket, type ConnectionState, type SessionHandlers, type SocketLike } from "./sessionSocket";

class FakeSocket implements SocketLike {
  binaryType = "blob";
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: Array<string | Uint8Array> = [];
  constructor(readonly url: string) {}
  send(data: string | ArrayBufferLike | Uint8Array) {
    this.sent.push(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
  }
  close() {
    this.readyState = 3;
  }
  // Test controls: what HQ would do.
  attach(offset: number, snapshot = false, status = "running") {
    this.readyState = 1;
    this.text({ type: "attached", payload: { session_id: "s1", offset, snapshot, status } });
  }
  text(frame: unknown) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  bytes(text: string) {
    this.onmessage?.({ data: new TextEncoder().encode(text).buffer });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

function harness(readOnly = false, probe?: () => Promise<boolean>, watch = false) {
  const sockets: FakeSocket[] = [];
  const timers: Array<() => void> = [];
  const output: string[] = [];
  const states: ConnectionState[] = [];
  const events: string[] = [];
  const decoder = new TextDecoder();
  const handlers: SessionHandlers = {
    onData: (bytes, snapshot) => output.push((snapshot ? "[snapshot]" : "") + decoder.decode(bytes)),
    onState: (state) => states.push(state),
    onExit: (exit) => events.push(`exit ${exit.code}`),
    onGap: (from, to) => events.push(`gap ${from}-${to}`),
    onError: (code) => events.push(`error ${code}`),
    onActivity: (a) => events.push(`activity ${a.activity} ${a.source}`),
    onPresence: (viewers) => events.push(`presence ${viewers.map((v) => v.name + (v.read_only ? "(ro)" : "")).join(",")}`),
    onAccessLost: () => events.push("access lost"),
    onSize: (size) => events.push(`size ${size.rows}x${size.cols}`),
    onQueue: (q) => events.push(`queue ${q.waiting} waiting ${q.awaitingRunner} away ${q.dropped} dropped`),
  };
  const socket = new SessionSocket("s1", handlers, {
    base: "ws://hq",
    connect: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    backoff: () => 100,
    setTimeout: (fn) => timers.push(fn),
    clearTimeout: () => {},
    readOnly,
    probe,
    watch,
  });
  const runTimers = () => timers.splice(0).forEach((fn) => fn());
  return { socket, sockets, output, states, events, runTimers, last: () => sockets[sockets.length - 1] };
}

describe("SessionSocket", () => {
  it("attaches in watch mode when asked, keeps it across reconnects, and reports the PTY's size", () => {
    const h = harness(false, undefined, true);
    expect(h.last().url).toBe("ws://hq/api/v1/ws/session/s1?watch=true");
    h.last().attach(0);
    h.last().text({ type: "size", payload: { rows: 40, cols: 151 } });
    expect(h.socket.ptySize).toEqual({ rows: 40, cols: 151 });
    expect(h.events).toContain("size 40x151");
    h.socket.resize(52, 47);
    h.socket.activate();
    expect(h.last().sent).toEqual(['{"type":"resize","payload":{"rows":52,"cols":47}}', '{"type":"activate"}']);
    h.last().bytes("abc");
    h.last().drop();
    h.runTimers();
    expect(h.last().url).toBe("ws://hq/api/v1/ws/session/s1?from=3&watch=true");
  });

  it("says how many keystrokes wait while disconnected, and how many were given up", () => {
    const h = harness();
    h.last().attach(0);
    h.last().drop();
    h.socket.sendInput("a");
    h.socket.sendInput("b");
    expect(h.events.slice(-2)).toEqual(["queue 1 waiting 0 away 0 dropped", "queue 2 waiting 0 away 0 dropped"]);
    h.runTimers();
    h.last().attach(0);
    expect(h.events.at(-1)).toBe("queue 0 waiting 0 away 0 dropped");
    h.last().drop();
    h.socket.sendInput("c");
    h.runTimers();
    // The session ends before the reconnect attaches: the keystroke will never go.
    h.last().text({ type: "exit", payload: { code: 0, signal: null } });
    expect(h.events.slice(-2)).toEqual(["queue 0 waiting 0 away 1 dropped", "exit 0"]);
    h.socket.sendInput("d");
    expect(h.events.at(-1)).toBe("queue 0 waiting 0 away 2 dropped");
  });

  it("counts keystrokes sent while the runner is offline, until it is back or the session is lost", () => {
    const h = harness();
    h.last().attach(0);
    h.last().text({ type: "error", payload: { code: "runner_offline", message: "the runner is offline" } });
    h.socket.sendInput("x");
    h.socket.sendInput("y");
    expect(h.events.at(-1)).toBe("queue 0 waiting 2 away 0 dropped");
    h.socket.runnerBack();
    expect(h.events.at(-1)).toBe("queue 0 waiting 0 away 0 dropped");
    h.last().text({ type: "error", payload: { code: "runner_offline", message: "the runner is offline" } });
    h.socket.sendInput("z");
    h.last().text({ type: "error", payload: { code: "session_lost", message: "lost" } });
    expect(h.events).toContain("queue 0 waiting 0 away 1 dropped");
  });

  it("never activates when read-only", () => {
    const h = harness(true);
    h.last().attach(0);
    h.socket.activate();
    expect(h.last().sent).toEqual([]);
  });

  it("tracks the offset and resumes from it after a drop, without duplicates", () => {
    const h = harness();
    expect(h.last().url).toBe("ws://hq/api/v1/ws/session/s1");
    h.last().attach(0);
    h.last().bytes("hello ");
    h.last().bytes("world");
    expect(h.socket.offset).toBe(11);

    h.last().drop();
    expect(h.socket.state).toBe("reconnecting");
    expect(h.sockets).toHaveLength(1);
    h.runTimers();
    expect(h.last().url).toBe("ws://hq/api/v1/ws/session/s1?from=11");
    h.last().attach(11);
    h.last().bytes("!");
    expect(h.output.join("")).toBe("hello world!");
    expect(h.socket.offset).toBe(12);
    expect(h.states).toEqual(["open", "reconnecting", "open"]);
  });

  it("re-sends the size and queued keystrokes after reconnecting, size first", () => {
    const h = harness();
    h.socket.resize(24, 80);
    h.socket.sendInput("early");
    h.last().attach(0);
    expect(h.last().sent.map(String)).toEqual([
      '{"type":"resize","payload":{"rows":24,"cols":80}}',
      String(new TextEncoder().encode("early")),
    ]);
    h.last().drop();
    h.socket.sendInput("typed-while-away");
    h.runTimers();
    h.last().attach(0);
    const sent = h.last().sent;
    expect(sent[0]).toBe('{"type":"resize","payload":{"rows":24,"cols":80}}');
    expect(new TextDecoder().decode(sent[1] as Uint8Array)).toBe("typed-while-away");
  });

  it("reports gaps, including a resume that starts later than asked", () => {
    const h = harness();
    h.last().attach(0);
    h.last().bytes("abc");
    h.last().text({ type: "gap", payload: { from: 3, to: 50 } });
    expect(h.socket.offset).toBe(50);
    h.last().drop();
    h.runTimers();
    expect(h.last().url).toContain("from=50");
    h.last().attach(70);
    expect(h.events).toEqual(["gap 3-50", "gap 50-70"]);
    expect(h.socket.offset).toBe(70);
  });

  it("does not count a snapshot frame as stream bytes", () => {
    const h = harness();
    h.last().attach(4096, true);
    h.last().bytes("SCREEN");
    h.last().bytes("live");
    expect(h.output).toEqual(["[snapshot]SCREEN", "live"]);
    expect(h.socket.offset).toBe(4100);
  });

  it("stops after exit or a lost session, and never reconnects", () => {
    const h = harness();
    h.last().attach(0);
    h.last().text({ type: "exit", payload: { code: 3, signal: null } });
    h.last().drop();
    h.runTimers();
    expect(h.sockets).toHaveLength(1);
    expect(h.socket.state).toBe("exited");
    expect(h.events).toEqual(["exit 3"]);

    const lost = harness();
    lost.last().attach(0);
    lost.last().text({ type: "error", payload: { code: "session_lost", message: "gone" } });
    lost.last().drop();
    lost.runTimers();
    expect(lost.sockets).toHaveLength(1);
    expect(lost.socket.state).toBe("ended");
  });

  it("keeps going after a recoverable error frame", () => {
    const h = harness();
    h.last().attach(0);
    h.last().text({ type: "error", payload: { code: "bad_frame", message: "nope" } });
    expect(h.socket.state).toBe("open");
    h.last().bytes("x");
    expect(h.output).toEqual(["x"]);
  });

  it("reports activity and presence frames and keeps the latest of each", () => {
    const h = harness();
    expect(h.socket.activity).toBeNull();
    h.last().attach(0);
    h.last().text({ type: "activity", payload: { activity: "working", since: "2026-11-24T02:00:00Z", source: "output" } });
    h.last().text({ type: "presence", payload: { viewers: [{ name: "admin", read_only: false }] } });
    h.last().text({ type: "activity", payload: { activity: "waiting_for_input", since: "2026-11-24T02:00:05Z", source: "screen" } });
    h.last().text({ type: "presence", payload: { viewers: [{ name: "admin", read_only: false }, { name: "guest", read_only: true }] } });
    // Malformed ones are dropped, not half-applied.
    h.last().text({ type: "activity", payload: { activity: "dancing", since: "x", source: "screen" } });
    h.last().text({ type: "presence", payload: { viewers: [{ name: 3 }] } });
    expect(h.events).toEqual([
      "activity working output",
      "presence admin",
      "activity waiting_for_input screen",
      "presence admin,guest(ro)",
    ]);
    expect(h.socket.activity).toEqual({ activity: "waiting_for_input", since: "2026-11-24T02:00:05Z", source: "screen" });
    expect(h.socket.viewers).toEqual([
      { name: "admin", read_only: false },
      { name: "guest", read_only: true },
    ]);
  });

  it("stays up after a read_only refusal", () => {
    const h = harness();
    h.last().attach(0);
    h.last().text({ type: "error", payload: { code: "read_only", message: "this share is read-only" } });
    expect(h.socket.state).toBe("open");
    expect(h.events).toEqual(["error read_only"]);
    h.last().bytes("still here");
    expect(h.output).toEqual(["still here"]);
  });

  it("sends neither keystrokes nor resizes when read-only, even after a reconnect", () => {
    const h = harness(true);
    h.socket.resize(24, 80);
    h.socket.sendInput("queued?");
    h.last().attach(0);
    h.socket.sendInput("typed");
    h.socket.resize(30, 100);
    expect(h.last().sent).toEqual([]);
    h.last().drop();
    h.runTimers();
    h.last().attach(0);
    expect(h.last().sent).toEqual([]);
    expect(h.last().url).toBe("ws://hq/api/v1/ws/session/s1?from=0");
  });

  it("suspends without reconnecting, queues keystrokes, and resyncs without from", () => {
    const h = harness();
    h.socket.resize(24, 80);
    h.last().attach(0);
    h.last().bytes("flood");
    h.socket.suspend();
    expect(h.last().readyState).toBe(3);
    expect(h.socket.state).toBe("catching-up");
    // Frames already on their way are ignored.
    h.last().bytes("late");
    h.last().drop();
    h.runTimers();
    expect(h.sockets).toHaveLength(1);
    h.socket.sendInput("\x03");

    h.socket.resync();
    expect(h.sockets).toHaveLength(2);
    expect(h.last().url).toBe("ws://hq/api/v1/ws/session/s1");
    h.last().attach(9000, true);
    h.last().bytes("SCREEN");
    h.last().bytes("more");
    expect(h.output).toEqual(["flood", "[snapshot]SCREEN", "more"]);
    // No gap: skipping was asked for.
    expect(h.events.filter((e) => !e.startsWith("queue"))).toEqual([]);
    expect(h.socket.offset).toBe(9004);
    expect(h.states).toEqual(["open", "catching-up", "open"]);
    expect(h.last().sent.map((f) => (typeof f === "string" ? f : new TextDecoder().decode(f)))).toEqual([
      '{"type":"resize","payload":{"rows":24,"cols":80}}',
      "\x03",
    ]);
  });

  it("resyncs a finished session near where it was, not from its first byte", () => {
    const h = harness();
    h.last().attach(0);
    h.last().bytes("x".repeat(1000));
    h.last().text({ type: "gap", payload: { from: 1000, to: 10_000_000 } });
    h.socket.suspend();
    h.socket.resync();
    // HQ would replay a finished session from 0: the socket goes back to near where it was.
    h.last().attach(0, false, "exited");
    expect(h.sockets).toHaveLength(3);
    expect(h.sockets[1].readyState).toBe(3);
    expect(h.last().url).toBe(`ws://hq/api/v1/ws/session/s1?from=${10_000_000 - FINISHED_TAIL}`);
    h.last().attach(10_000_000 - FINISHED_TAIL, false, "exited");
    h.last().bytes("tail");
    expect(h.socket.offset).toBe(10_000_000 - FINISHED_TAIL + 4);
    expect(h.events).toEqual(["gap 1000-10000000"]);
    // Redrawing the tail must not itself trip flow control into another resync.
    expect(FINISHED_TAIL).toBeLessThan(DEFAULT_LAG_WATER);

    // A short one is simply replayed.
    const short = harness();
    short.last().attach(0);
    short.last().bytes("abc");
    short.socket.suspend();
    short.socket.resync();
    short.last().attach(0, false, "exited");
    expect(short.sockets).toHaveLength(2);
    expect(short.socket.state).toBe("open");
  });

  it("stops for good when HQ closes with 1008 (the token was revoked)", () => {
    const h = harness();
    h.last().attach(0);
    h.last().drop(1008);
    h.runTimers();
    expect(h.sockets).toHaveLength(1);
    expect(h.socket.state).toBe("revoked");
    expect(h.events).toEqual(["access lost"]);
    h.socket.sendInput("x");
    expect(h.last().sent).toEqual([]);
  });

  it("asks whether the sign-in is gone after a failed open, and stops if it is", async () => {
    let gone = false;
    let probes = 0;
    const h = harness(false, async () => {
      probes++;
      return gone;
    });
    h.last().attach(0);
    // A drop after a good open is a network blip: no probe.
    h.last().drop();
    await Promise.resolve();
    expect(probes).toBe(0);
    h.runTimers();
    // A failed open (HQ down, say): probed, still signed in, so it keeps retrying.
    h.last().drop();
    await Promise.resolve();
    expect(probes).toBe(1);
    expect(h.socket.state).toBe("reconnecting");
    h.runTimers();
    expect(h.sockets).toHaveLength(3);
    // Now the upgrade is refused because the sign-in expired.
    gone = true;
    h.last().drop();
    await Promise.resolve();
    await Promise.resolve();
    expect(probes).toBe(2);
    expect(h.socket.state).toBe("revoked");
    expect(h.events).toEqual(["access lost"]);
    h.runTimers();
    expect(h.sockets).toHaveLength(3);
  });

  it("splits a large paste into frames of at most 64 KiB, in order", () => {
    const h = harness();
    h.last().attach(0);
    const paste = new Uint8Array(200 * 1024 + 5).map((_, i) => i % 251);
    h.socket.sendInput(paste);
    h.socket.sendInput("\r");
    const frames = h.last().sent as Uint8Array[];
    expect(frames.map((f) => f.length)).toEqual([MAX_INPUT_FRAME, MAX_INPUT_FRAME, MAX_INPUT_FRAME, 8 * 1024 + 5, 1]);
    const joined = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const frame of frames) {
      joined.set(frame, at);
      at += frame.length;
    }
    expect(Buffer.from(joined.subarray(0, paste.length)).equals(Buffer.from(paste))).toBe(true);
    expect(joined[paste.length]).toBe(13);
  });
});
