// Where to go after signing in: `?next=` when it is a path on HQ itself (never another site).

/** `next` if it is a path on this origin (`/…`, not `//host` or `/\host`), else null. */
export function safeNext(next: string | null): string | null {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.includes("\\")) return null;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\s]/.test(next)) return null;
  return next;
}

/** The `?next=` of this page's address, if safe. */
export function nextFromLocation(location: Pick<Location, "search">): string | null {
  return safeNext(new URLSearchParams(location.search).get("next"));
}
