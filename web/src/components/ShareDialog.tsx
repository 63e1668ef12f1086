import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../lib/api";
import type { CreatedShare, Session } from "../lib/protocol";
import { sessionTitle } from "../lib/sessionTitle";
import { TeammateAccess } from "./TeammateAccess";

const EXPIRIES = [
  { value: "1h", label: "1 hour" },
  { value: "24h", label: "24 hours" },
  { value: "7d", label: "7 days" },
];

interface Props {
  session: Session;
  onClose(): void;
  onError(message: string): void;
}

/** Creates a read-only link to one session and shows it once, with a copy button and its expiry. */
export function ShareDialog({ session, onClose, onError }: Props) {
  const dialog = useRef<HTMLDialogElement>(null);
  const urlField = useRef<HTMLInputElement>(null);
  const [expiresIn, setExpiresIn] = useState("24h");
  const [share, setShare] = useState<CreatedShare | null>(null);
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState(false);
  const [revoked, setRevoked] = useState(false);

  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
  }, []);

  async function create() {
    setBusy(true);
    try {
      setShare(await api.createShare(session.id, expiresIn));
    } catch (e) {
      onError((e as ApiError).message);
    } finally {
      setBusy(false);
    }
  }

  async function copy() {
    if (!share) return;
    try {
      await navigator.clipboard.writeText(share.url);
      setCopied(true);
    } catch {
      // No clipboard permission (or not a secure context): select it for a manual copy.
      urlField.current?.select();
    }
  }

  async function revoke() {
    if (!share) return;
    try {
      await api.revokeShare(session.id, share.id);
      setRevoked(true);
    } catch (e) {
      onError((e as ApiError).message);
    }
  }

  const expires = share ? new Date(share.expires_at) : null;
  return (
    <dialog
      ref={dialog}
      onClose={onClose}
      aria-labelledby="share-title"
      className="m-auto w-[min(34rem,calc(100vw-2rem))] rounded-2xl border border-slate-700 bg-slate-900 p-0 text-slate-100 shadow-2xl backdrop:bg-black/60"
    >
      <div className="space-y-4 p-6">
        <div className="flex items-center justify-between">
          <h2 id="share-title" className="text-lg font-semibold">
            Share
          </h2>
          <button type="button" onClick={onClose} aria-label="Close" className="text-slate-400 hover:text-white">
            ×
          </button>
        </div>
        <p className="text-sm text-slate-400">
          Anyone with the link can watch <code className="text-slate-200" title={sessionTitle(session).command}>
            {sessionTitle(session).title}
          </code> live until
          it expires. They cannot type into it, and the link opens nothing else.
        </p>

        {!share ? (
          <div className="flex flex-wrap items-end gap-3">
            <label className="space-y-1.5">
              <span className="block text-sm font-medium text-slate-300">Expires after</span>
              <select
                value={expiresIn}
                onChange={(e) => setExpiresIn(e.target.value)}
                className="rounded-lg border border-slate-700 bg-slate-950 px-3 py-2 text-sm text-slate-100"
              >
                {EXPIRIES.map((e) => (
                  <option key={e.value} value={e.value}>
                    {e.label}
                  </option>
                ))}
              </select>
            </label>
            <button
              onClick={create}
              disabled={busy}
              className="rounded-lg bg-sky-500 px-4 py-2 text-sm font-semibold text-slate-950 hover:bg-sky-400 disabled:opacity-50"
            >
              {busy ? "Creating…" : "Create link"}
            </button>
          </div>
        ) : (
          <div className="space-y-2">
            <label className="block space-y-1.5">
              <span className="text-sm font-medium text-slate-300">Read-only link</span>
              <div className="flex gap-2">
                <input
                  ref={urlField}
                  readOnly
                  value={share.url}
                  onFocus={(e) => e.target.select()}
                  className="min-w-0 flex-1 rounded-lg border border-slate-700 bg-slate-950 px-3 py-2 font-mono text-xs text-slate-100"
                  data-testid="share-url"
                />
                <button
                  onClick={copy}
                  className="shrink-0 rounded-lg border border-slate-600 px-3 py-2 text-sm text-slate-100 hover:border-sky-400"
                >
                  {copied ? "Copied" : "Copy"}
                </button>
              </div>
            </label>
            <p className="text-xs text-slate-400" data-testid="share-expiry">
              {revoked ? (
                <span className="text-amber-300">Revoked: the link no longer works.</span>
              ) : (
                <>
                  Expires <time dateTime={share.expires_at}>{expires?.toLocaleString()}</time>. Shown once: copy it now.
                </>
              )}
            </p>
            {!revoked && (
              <button onClick={revoke} className="text-xs text-slate-400 underline hover:text-red-300">
                Revoke now
              </button>
            )}
          </div>
        )}
        <TeammateAccess sessionId={session.id} onError={onError} />
      </div>
    </dialog>
  );
}
