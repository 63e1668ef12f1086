import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  activateFrame,
  describeExit,
  endsSession,
  FrameErrorCode,
  isFrameErrorCode,
  parseServerFrame,
  resizeFrame,
} from "./protocol";

// The same fixtures crates/protocol round-trips in Rust.
const fixture = (name: string): unknown[] =>
  JSON.parse(readFileSync(fileURLToPath(new URL(`../../../crates/protocol/fixtures/${name}`, import.meta.url)), "utf8"));

describe("protocol", () => {
  it("parses every server frame the Rust side produces", () => {
    for (const value of fixture("server-frames.json")) {
      expect(parseServerFrame(JSON.stringify(value))).toEqual(value);
    }
  });

  // crates/protocol's own test puts every FrameErrorCode variant in this fixture, so a code added
  // on the Rust side fails here until FrameErrorCode has it too.
  it("knows every error code the Rust side sends", () => {
    const codes = fixture("server-frames.json")
      .map((value) => parseServerFrame(JSON.stringify(value)))
      .flatMap((frame) => (frame?.type === "error" ? [frame.payload.code] : []));
    expect(codes).not.toEqual([]);
    for (const code of codes) expect(isFrameErrorCode(code), `${code} is not a FrameErrorCode`).toBe(true);
    expect(Object.isFrozen(FrameErrorCode)).toBe(true);
    expect(isFrameErrorCode("from_the_future")).toBe(false);
    expect(isFrameErrorCode("toString")).toBe(false);
  });

  it("ends the session on session_lost and session_failed only", () => {
    const ending = Object.values(FrameErrorCode).filter(endsSession);
    expect(ending).toEqual([FrameErrorCode.SessionLost, FrameErrorCode.SessionFailed]);
  });

  it("keeps an error code from a newer HQ, so its message is still shown", () => {
    const frame = parseServerFrame('{"type":"error","payload":{"code":"from_the_future","message":"m"}}');
    expect(frame).toEqual({ type: "error", payload: { code: "from_the_future", message: "m" } });
  });

  it("writes resize and activate frames exactly as the Rust side reads them", () => {
    const [first, second, third] = fixture("client-frames.json");
    expect(JSON.parse(resizeFrame(24, 80))).toEqual(first);
    expect(JSON.parse(resizeFrame(1000, 1))).toEqual(second);
    expect(JSON.parse(activateFrame())).toEqual(third);
  });

  it("rejects what is not a control frame", () => {
    for (const text of [
      "",
      "{",
      "null",
      "[]",
      '{"type":"exit"}',
      '{"type":"nope","payload":{}}',
      '{"type":"toString","payload":{}}',
      '"exit"',
      '{"type":"activity","payload":{"activity":"asleep","since":"2026-11-24T02:00:00Z","source":"screen"}}',
      '{"type":"activity","payload":{"activity":"idle","since":null,"source":"output"}}',
      '{"type":"activity","payload":{"activity":"idle","since":"2026-11-24T02:00:00Z","source":"guess"}}',
      '{"type":"presence","payload":{}}',
      '{"type":"presence","payload":{"viewers":[{"name":"a"}]}}',
      '{"type":"error","payload":{"code":1,"message":"m"}}',
      '{"type":"error","payload":{"code":"bad_frame"}}',
      '{"type":"size","payload":{"rows":0,"cols":80}}',
      '{"type":"size","payload":{"rows":24}}',
    ]) {
      expect(parseServerFrame(text)).toBeNull();
    }
  });

  it("describes exits", () => {
    expect(describeExit({ code: 3, signal: null })).toBe("exited with code 3");
    expect(describeExit({ code: null, signal: "SIGHUP" })).toBe("killed by SIGHUP");
  });
});
