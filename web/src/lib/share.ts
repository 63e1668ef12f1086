// Share links: `<HQ>/share#<token>`. The token rides in the fragment, which browsers never send to
// a server; the share page takes it out of the address bar before anything else runs and trades
// it for a read-only cookie through POST /api/login.

export const SHARE_PATH = "/share";

const SESSION_KEY = "agentrelay.share.session";

/** The token in a share link's fragment ("#arl_shr_…"), or null when there is none. */
export function shareTokenFromHash(hash: string): string | null {
  let token = hash.startsWith("#") ? hash.slice(1) : hash;
  try {
    token = decodeURIComponent(token);
  } catch {
    return null;
  }
  token = token.trim();
  return /^[A-Za-z0-9._~-]{1,1024}$/.test(token) ? token : null;
}

export function isSharePath(pathname: string): boolean {
  return pathname.replace(/\/+$/, "") === SHARE_PATH;
}

/**
 * Takes the token out of the page's URL: reads the fragment, then replaces the history entry with
 * the same URL without it (so it is neither in the address bar, nor in history, nor in a Referer).
 * Always clears the fragment, even when it holds no valid token.
 */
export function takeShareToken(
  location: Pick<Location, "hash" | "pathname" | "search">,
  history: Pick<History, "replaceState" | "state">,
): string | null {
  if (!location.hash) return null;
  const token = shareTokenFromHash(location.hash);
  history.replaceState(history.state, "", location.pathname + location.search);
  return token;
}

/** The shared session's id (not the token) survives a reload of the share page in this tab. */
export function rememberSharedSession(id: string | null): void {
  try {
    if (id) sessionStorage.setItem(SESSION_KEY, id);
    else sessionStorage.removeItem(SESSION_KEY);
  } catch {
    // Storage disabled: a reload then needs the link again.
  }
}

export function rememberedSharedSession(): string | null {
  try {
    return sessionStorage.getItem(SESSION_KEY);
  } catch {
    return null;
  }
}
