import { useEffect, useState } from "react";
import { Link } from "react-router";
import { api, ApiError } from "../lib/api";

/** A session's address whose session this dashboard has not heard of (yet, or at all). */
export function SessionMissing({ id }: { id: string }) {
  const [gone, setGone] = useState(false);
  useEffect(() => {
    let cancelled = false;
    api.session(id).then(
      () => {},
      (e: ApiError) => {
        if (!cancelled && (e.status === 404 || e.status === 400)) setGone(true);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [id]);
  return (
    <div className="flex h-full flex-col items-center justify-center gap-3 px-6 text-center" data-testid="session-missing">
      {gone ? (
        <>
          <p className="text-lg font-medium text-slate-200">No such session</p>
          <p className="max-w-sm text-sm text-slate-400">
            HQ has no session <code className="break-all text-slate-300">{id}</code>: it may have been cleared or
            pruned by retention.
          </p>
          <Link to="/" className="rounded-lg border border-slate-700 px-4 py-2 text-sm text-slate-200 hover:border-emerald-400">
            Back to the overview
          </Link>
        </>
      ) : (
        <p className="text-sm text-slate-400">Opening the session…</p>
      )}
    </div>
  );
}
