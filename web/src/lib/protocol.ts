// The wire protocol, mirrored once from crates/protocol. Fixtures in protocol.test.ts are the
// same JSON the Rust side checks.

export type RunnerStatus = "online" | "offline";
export type SessionStatus = "starting" | "running" | "exited" | "failed" | "lost";

/** A command a runner offers by name. */
export interface Preset {
  name: string;
  description: string;
  /** The argv it runs. */
  command: string[];
  /** Patterns that, on a quiet screen, mean "waiting for input". */
  prompt_patterns: string[];
}

export interface Runner {
  id: string;
  name: string;
  labels: Record<string, string>;
  status: RunnerStatus;
  hostname: string;
  os: string;
  version: string;
  presets: Preset[];
  /** What the runner lets HQ start; absent from an HQ older than runner policies. */
  policy?: RunnerPolicy;
  /** The repositories it offers for workspaces (`--repo`); absent from an HQ older than workspaces. */
  repos?: RepoInfo[];
  /** Whose personal runner it is; null (or absent) for a shared runner every member may use. */
  owner?: Owner | null;
  connected_at: string;
  last_seen_at: string;
}

/** What a runner lets HQ start (its --allow, --allow-env and --presets-only). */
export interface RunnerPolicy {
  /** --presets-only: nothing but its presets, with no command, directory or environment. */
  locked: boolean;
  /** Argv prefixes a command line must start with; empty when any may run. */
  allow: string[][];
  /** Variables a request may set (names, PREFIX_*); null when any may. */
  env: string[] | null;
}

/** What a running session is doing. */
export type Activity = "working" | "waiting_for_input" | "idle";
/** Which signal set the activity. */
export type ActivitySource = "output" | "screen" | "hook";

/** Someone attached to a session. */
export interface Viewer {
  name: string;
  read_only: boolean;
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
  /** Who started it: they, those it is granted to and admins see it. */
  owner?: Owner | null;
  created_at: string;
  ended_at: string | null;
  output_bytes: number;
  /** Null unless running. */
  activity: Activity | null;
  activity_since: string | null;
  activity_source: ActivitySource | null;
  preset: string | null;
  /** The name people gave it, if any. */
  name?: string | null;
  viewers: Viewer[];
  /** Why HQ stopped writing the output log (a full disk); the live stream went on. */
  log_error?: string | null;
  /** Tokens and cost the agent reported so far (OpenTelemetry); null until it reports any. */
  usage?: Usage | null;
  /** Its git worktree, for a session started with `workspace`. */
  workspace?: Workspace | null;
}

/** What an agent used, as its session's totals (crates/protocol's `Usage`). */
export interface Usage {
  /** Input tokens, not counting cache reads. */
  input_tokens: number;
  output_tokens: number;
  /** Input tokens read from the model's prompt cache. */
  cache_read_tokens: number;
  /** Input tokens written to the model's prompt cache. */
  cache_creation_tokens: number;
  /** US dollars, as the agent computed it; null when it does not say (Gemini CLI). */
  cost_usd: number | null;
  /** The model it used most recently. */
  model: string | null;
}

/** A repository a runner offers for workspaces; its path never leaves the runner. */
export interface RepoInfo {
  name: string;
  /** The branch its working tree is on: the default `base`. */
  default_branch: string;
}

/** What `POST /api/sessions` asks for in `workspace`. */
export interface WorkspaceSpec {
  repo: string;
  /** Default `agentrelay/<last 8 hex digits of the session id>`; must not exist yet. */
  branch?: string;
  /** Default: the branch the repository's working tree is on. */
  base?: string;
}

/** The size of a workspace's changes against its base commit. */
export interface ChangeSummary {
  files: number;
  additions: number;
  deletions: number;
}

/** A session's git worktree on its runner, on a branch of its own. */
export interface Workspace {
  repo: string;
  branch: string;
  base: string;
  /** Changes are counted against it. */
  base_commit: string;
  /** The worktree's directory on the runner. */
  path: string;
  /** As the runner last reported it (the `changes` event keeps it current). */
  changes: ChangeSummary | null;
  /** The worktree is gone; its branch stays in the repository. */
  removed: boolean;
}

/** The `changes` event of `/api/events`: a workspace session's summary moved. */
export interface ChangesEvent extends ChangeSummary {
  session_id: string;
}

/** How a file changed against the base commit. */
export type FileStatus = "added" | "modified" | "deleted" | "renamed" | "untracked" | "other";

/** One file of `GET /api/sessions/{id}/changes`. */
export interface ChangedFile {
  path: string;
  /** For a rename: where it was. */
  old_path?: string | null;
  status: FileStatus;
  additions: number;
  deletions: number;
  /** No line counts then. */
  binary: boolean;
}

/** `GET /api/sessions/{id}/changes`. */
export interface Changes {
  base_commit: string;
  files: ChangedFile[];
  summary: ChangeSummary;
}

/** `GET /api/sessions/{id}/diff[?path=…]`: a unified diff against the base commit. */
export interface Diff {
  diff: string;
  /** Longer than `limit_bytes`: whole files past it were left out. */
  truncated: boolean;
  limit_bytes: number;
}

/** A comment on a line of the file as the agent has it now (1-based). */
export interface ReviewComment {
  path: string;
  line: number;
  body: string;
}

/** `POST /api/sessions/{id}/review`. */
export interface Review {
  summary?: string;
  comments: ReviewComment[];
  /** `waiting`: queued until the agent next waits for input. */
  when?: "now" | "waiting";
}

/** `POST /api/sessions/{id}/workspace/commit`'s answer. */
export interface Committed {
  commit: string;
  branch: string;
}

/** `POST /api/sessions/{id}/workspace/push`'s answer. */
export interface Pushed {
  remote: string;
  branch: string;
  commit: string;
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

/** A session's activity at one moment, as the session socket reports it. */
export interface ActivityState {
  activity: Activity;
  since: string;
  source: ActivitySource;
}

/**
 * Why HQ sent an `error` frame: crates/protocol's `FrameErrorCode`, by its snake_case wire names
 * (`FrameErrorCode.SessionLost` is `"session_lost"`). Compare codes with these, never with strings.
 */
export const FrameErrorCode = Object.freeze({
  /** A control frame HQ could not read (recoverable). */
  BadFrame: "bad_frame",
  /** Too many control frames; this one was dropped (recoverable). */
  RateLimited: "rate_limited",
  /** A read-only viewer sent input or a resize; it was dropped (recoverable). */
  ReadOnly: "read_only",
  /** HQ stopped writing the session's output log; the live stream goes on (recoverable). */
  LogStopped: "log_stopped",
  /** The session's runner is disconnected; keystrokes wait for it (recoverable). */
  RunnerOffline: "runner_offline",
  /** The session was lost with its runner; the socket closes. */
  SessionLost: "session_lost",
  /** The session failed to start; the socket closes. */
  SessionFailed: "session_failed",
} as const);
/** `"bad_frame" | "rate_limited" | "read_only" | "log_stopped" | "runner_offline" | "session_lost" | "session_failed"`. */
export type FrameErrorCode = (typeof FrameErrorCode)[keyof typeof FrameErrorCode];

const FRAME_ERROR_CODES: ReadonlySet<unknown> = new Set(Object.values(FrameErrorCode));

/** Whether `value` is a code this dashboard knows. */
export function isFrameErrorCode(value: unknown): value is FrameErrorCode {
  return FRAME_ERROR_CODES.has(value);
}

/** Whether the session is over: no `exit` frame will come, and HQ closes the socket. */
export function endsSession(code: FrameErrorCode): boolean {
  return code === FrameErrorCode.SessionLost || code === FrameErrorCode.SessionFailed;
}

/** Payload of an `error` frame. */
export interface FrameError {
  /**
   * A newer HQ may send a code this build lacks (a tab left open across an upgrade): it is kept,
   * matches none of the constants, and is treated like any recoverable error (its message shown).
   */
  code: FrameErrorCode;
  /** A sentence for people. */
  message: string;
}

/** Control frames HQ sends to a viewer. */
export type ServerFrame =
  | { type: "attached"; payload: Attached }
  | { type: "gap"; payload: { from: number; to: number } }
  | { type: "exit"; payload: ExitStatus }
  | { type: "error"; payload: FrameError }
  | { type: "activity"; payload: ActivityState }
  | { type: "presence"; payload: { viewers: Viewer[] } }
  /** The PTY's size: right after `attached` (before any output) and on every change. */
  | { type: "size"; payload: TermSize };

/** A terminal size in character cells. */
export interface TermSize {
  rows: number;
  cols: number;
}

/**
 * Control frames a viewer sends to HQ: its window's size (which the PTY takes unless the viewer
 * watches and has not typed), and `activate`, which makes the PTY take that size now.
 */
export type ClientFrame = { type: "resize"; payload: TermSize } | { type: "activate" };

export type Scope = "admin" | "user" | "share";

/** `POST /api/login`'s answer. */
export interface LoginAnswer {
  name: string;
  scope: Scope;
  /** For a share: the one session it opens. */
  session_id: string | null;
  /** The person who signed in (not for a share). */
  user?: User;
}

export type Role = "admin" | "member";

/** A person (`GET /api/me`, `GET /api/users`). */
export interface User {
  id: string;
  name: string;
  /** Empty for the built-in admin and for users an upgrade made from tokens. */
  email: string;
  role: Role;
  disabled: boolean;
  created_at: string;
  last_seen_at: string | null;
}

/** Who owns a runner or session, or holds a token or grant. */
export interface Owner {
  id: string;
  name: string;
  email: string;
}

/** What a grant lets a teammate do with a session. */
export type Access = "view" | "drive";

/** A teammate's access to a session. */
export interface Grant {
  user: Owner;
  access: Access;
  granted_by: Owner | null;
  created_at: string;
}

/** `GET /api/auth/config`. */
export interface AuthConfig {
  sso: { name: string; login_url: string } | null;
}

/** A token as `GET /api/tokens` lists it (never its secret). */
export interface TokenInfo {
  id: string;
  name: string;
  scope: "admin" | "user" | "runner" | "share";
  created_at: string;
  expires_at: string | null;
  session_id?: string;
  user?: Owner | null;
  /** A runner token whose runners are shared. */
  shared?: boolean;
}

/** `POST /api/tokens`'s answer: the only time the secret is shown. */
export interface CreatedToken extends Omit<TokenInfo, "created_at" | "session_id"> {
  token: string;
}

/** `POST /api/sessions/{id}/shares`'s answer. */
export interface CreatedShare {
  id: string;
  /** `<HQ origin>/share#<token>`. */
  url: string;
  token: string;
  expires_at: string;
}

/** `GET /api/sessions/{id}/screen?format=json`. */
export interface Screen {
  rows: number;
  cols: number;
  cursor: { row: number; col: number };
  /** One string per screen row, trailing spaces trimmed. */
  lines: string[];
  /** The selection menu on screen, if HQ recognizes one (absent from an older HQ). */
  menu?: Menu | null;
}

/** A selection menu on a session's screen: its question and the answers it offers. */
export interface Menu {
  /** The question above the options; empty when there is none. */
  prompt: string;
  options: MenuOption[];
}

/** One answer a menu offers. */
export interface MenuOption {
  /** What to type to pick it ("1"). */
  key: string;
  /** What it says ("Yes"). */
  label: string;
}

export interface ApiErrorBody {
  error: { code: string; message: string; field: string | null };
}

type Check = (payload: Record<string, unknown>) => boolean;

const isViewer = (v: unknown): boolean =>
  typeof v === "object" && v !== null && typeof (v as Viewer).name === "string" && typeof (v as Viewer).read_only === "boolean";

const isDimension = (v: unknown): boolean => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 1000;

const ACTIVITIES = new Set<unknown>(["working", "waiting_for_input", "idle"]);
const SOURCES = new Set<unknown>(["output", "screen", "hook"]);

// Frames whose payload a component reads field by field are checked, so a malformed one is
// dropped here rather than half-rendered.
const SERVER_TYPES: Record<ServerFrame["type"], Check> = {
  attached: () => true,
  gap: () => true,
  exit: () => true,
  error: (p) => typeof p.code === "string" && typeof p.message === "string",
  activity: (p) => ACTIVITIES.has(p.activity) && SOURCES.has(p.source) && typeof p.since === "string",
  presence: (p) => Array.isArray(p.viewers) && p.viewers.every(isViewer),
  size: (p) => isDimension(p.rows) && isDimension(p.cols),
};

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
  if (typeof frame.type !== "string" || !Object.hasOwn(SERVER_TYPES, frame.type)) return null;
  if (typeof frame.payload !== "object" || frame.payload === null) return null;
  if (!SERVER_TYPES[frame.type as ServerFrame["type"]](frame.payload as Record<string, unknown>)) return null;
  return frame as ServerFrame;
}

export function resizeFrame(rows: number, cols: number): string {
  const frame: ClientFrame = { type: "resize", payload: { rows, cols } };
  return JSON.stringify(frame);
}

export function activateFrame(): string {
  const frame: ClientFrame = { type: "activate" };
  return JSON.stringify(frame);
}

/** "exited with code 3", "killed by SIGHUP". */
export function describeExit(exit: ExitStatus): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exited with code ${exit.code ?? "?"}`;
}
