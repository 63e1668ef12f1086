// REST calls. Auth rides the HttpOnly cookie set by /api/login; the token never lives in JS state
// beyond the sign-in form.

import type {
  Access,
  ApiErrorBody,
  AuthConfig,
  CreatedToken,
  Grant,
  Role,
  TokenInfo,
  User,
  Changes,
  Committed,
  CreatedShare,
  Diff,
  LoginAnswer,
  Pushed,
  Review,
  Runner,
  Screen,
  Session,
  WorkspaceSpec,
} from "./protocol";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;

  constructor(status: number, code: string, message: string, field: string | null = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const signedOutListeners = new Set<() => void>();

/**
 * Calls `listener` whenever HQ answers 401 to a call that needs a sign-in (the cookie expired or
 * was revoked); returns the unsubscribe.
 */
export function onSignedOut(listener: () => void): () => void {
  signedOutListeners.add(listener);
  return () => {
    signedOutListeners.delete(listener);
  };
}

/** Whether this browser's sign-in is gone: asks an endpoint that needs one (never throws). */
export async function signedOut(): Promise<boolean> {
  try {
    await api.runners();
    return false;
  } catch (e) {
    return e instanceof ApiError && e.status === 401;
  }
}

// Signing in and out answer 401 for other reasons (a wrong token; nothing to forget).
const NOT_SIGNED_IN_CALLS = new Set(["/api/login", "/api/logout"]);

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "HQ is unreachable");
  }
  if (response.ok) {
    return response.status === 204 || response.status === 202 ? (undefined as T) : ((await response.json()) as T);
  }
  if (response.status === 401 && !NOT_SIGNED_IN_CALLS.has(path)) {
    for (const listener of [...signedOutListeners]) listener();
  }
  let error: ApiErrorBody["error"] | undefined;
  try {
    error = ((await response.json()) as ApiErrorBody).error;
  } catch {
    // Not our JSON error shape (a proxy page, say): fall back to the status line.
  }
  throw new ApiError(
    response.status,
    error?.code ?? "http_error",
    error?.message ?? `${response.status} ${response.statusText}`,
    error?.field ?? null,
  );
}

/** Either a command, or the name of one of the runner's presets. */
export type CreateSession = {
  runner_id: string;
  name?: string;
  cwd?: string;
  /** A git worktree of one of the runner's repositories (not with `cwd`). */
  workspace?: WorkspaceSpec;
  rows?: number;
  cols?: number;
} & ({ command: string[] } | { preset: string });

const sessionPath = (id: string) => `/api/sessions/${encodeURIComponent(id)}`;

export const api = {
  login: (token: string) => request<LoginAnswer>("POST", "/api/login", { token }),
  logout: () => request<void>("POST", "/api/logout"),
  runners: () => request<Runner[]>("GET", "/api/runners"),
  sessions: () => request<Session[]>("GET", "/api/sessions"),
  session: (id: string) => request<Session>("GET", sessionPath(id)),
  createSession: (body: CreateSession) => request<Session>("POST", "/api/sessions", body),
  killSession: (id: string) => request<void>("DELETE", sessionPath(id)),
  /** Names a session; `null` takes its name away. */
  renameSession: (id: string, name: string | null) => request<Session>("PATCH", sessionPath(id), { name }),
  /** Types `text` into a session (POST /input). */
  input: (id: string, text: string) => request<void>("POST", `${sessionPath(id)}/input`, { text }),
  screen: (id: string) => request<Screen>("GET", `${sessionPath(id)}/screen?format=json`),
  /** A read-only link to one session; `expiresIn` like "1h" (HQ's default is 24h). */
  createShare: (id: string, expiresIn?: string) =>
    request<CreatedShare>("POST", `${sessionPath(id)}/shares`, expiresIn ? { expires_in: expiresIn } : {}),
  /** Any user may revoke a session's share (revoking tokens in general needs an admin). */
  revokeShare: (sessionId: string, shareId: string) =>
    request<void>("DELETE", `${sessionPath(sessionId)}/shares/${encodeURIComponent(shareId)}`),
  /** A workspace session's changed files against its base commit. */
  changes: (id: string) => request<Changes>("GET", `${sessionPath(id)}/changes`),
  /** The unified diff of one file (or, without `path`, of all). */
  diff: (id: string, path?: string) =>
    request<Diff>("GET", `${sessionPath(id)}/diff${path === undefined ? "" : `?path=${encodeURIComponent(path)}`}`),
  /** Types the review into the session (or queues it, `when: "waiting"`). */
  review: (id: string, review: Review) => request<void>("POST", `${sessionPath(id)}/review`, review),
  commitWorkspace: (id: string, message: string) =>
    request<Committed>("POST", `${sessionPath(id)}/workspace/commit`, { message }),
  pushWorkspace: (id: string) => request<Pushed>("POST", `${sessionPath(id)}/workspace/push`),
  /** How people sign in here (single sign-on's button). */
  authConfig: () => request<AuthConfig>("GET", "/api/auth/config"),
  /** The signed-in person. */
  me: () => request<User>("GET", "/api/me"),
  users: () => request<User[]>("GET", "/api/users"),
  createUser: (body: { name: string; email: string; role: Role }) => request<User>("POST", "/api/users", body),
  updateUser: (id: string, change: { role?: Role; disabled?: boolean }) =>
    request<User>("PATCH", `/api/users/${encodeURIComponent(id)}`, change),
  /** Your own tokens (every one, for admins). */
  tokens: () => request<TokenInfo[]>("GET", "/api/tokens"),
  createToken: (body: { name: string; scope: "user" | "runner" | "admin"; shared?: boolean; expires_in?: string }) =>
    request<CreatedToken>("POST", "/api/tokens", body),
  revokeToken: (id: string) => request<void>("DELETE", `/api/tokens/${encodeURIComponent(id)}`),
  grants: (sessionId: string) => request<Grant[]>("GET", `${sessionPath(sessionId)}/grants`),
  /** Lets a teammate (by e-mail or id) watch or drive a session. */
  grant: (sessionId: string, user: string, access: Access) =>
    request<Grant>("POST", `${sessionPath(sessionId)}/grants`, { user, access }),
  revokeGrant: (sessionId: string, userId: string) =>
    request<void>("DELETE", `${sessionPath(sessionId)}/grants/${encodeURIComponent(userId)}`),
};
