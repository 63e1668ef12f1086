// The wire protocol, mirrored once from crates/protocol. Fixtures in protocol.test.ts are the
// same JSON the Rust side checks.

export type RunnerStatus = "online" | "offline";
export type SessionStatus = "starting" | "running" | "exited" | "failed" | "lost";

export interface Runner {
  id: string;
  name: string;
  labels: Record<string, string>;
  status: RunnerStatus;
  hostname: string;
  os: string;
  version: string;
  presets: string[];
  connected_at: string;
  last_seen_at: string;
}

export interface Session {
  id: string;
  runner_id: string;
  command: string[];
  status: SessionStatus;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  created_by: string;
  created_at: string;
  ended_at: string | null;
  output_bytes: number;
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

export interface Attached {
  session_id: string;
  offset: number;
  snapshot: boolean;
  status: SessionStatus;
}

/** Control frames HQ sends to a viewer. */
export type ServerFrame =
  | { type: "attached"; payload: Attached }
  | { type: "gap"; payload: { from: number; to: number } }
  | { type: "exit"; payload: ExitStatus }
  | { type: "error"; payload: { code: string; message: string } };

/** Control frames a viewer sends to HQ. */
export type ClientFrame = { type: "resize"; payload: { rows: number; cols: number } };

export interface ApiErrorBody {
  error: { code: string; message: string; field: string | null };
}

const SERVER_TYPES = new Set(["attached", "gap", "exit", "error"]);

/** Parses a text frame from HQ; `null` for anything that is not a known control frame. */
export function parseServerFrame(text: string): ServerFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const frame = value as { type?: unknown; payload?: unknown };
  if (typeof frame.type !== "string" || !SERVER_TYPES.has(frame.type)) return null;
  if (typeof frame.payload !== "object" || frame.payload === null) return null;
  return frame as ServerFrame;
}

export function resizeFrame(rows: number, cols: number): string {
  const frame: ClientFrame = { type: "resize", payload: { rows, cols } };
  return JSON.stringify(frame);
}

/** "exited with code 3", "killed by SIGHUP". */
export function describeExit(exit: ExitStatus): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exited with code ${exit.code ?? "?"}`;
}
