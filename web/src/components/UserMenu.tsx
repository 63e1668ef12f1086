import { useEffect, useRef, useState } from "react";
import { Link } from "react-router";
import type { User } from "../lib/protocol";

interface Props {
  me: User | undefined;
  onSignOut(): void;
}

/** Who is signed in (name, role), with Tokens, Users (admins) and Sign out. */
export function UserMenu({ me, onSignOut }: Props) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!open) return;
    const away = (event: MouseEvent) => {
      if (box.current && !box.current.contains(event.target as Node)) setOpen(false);
    };
    const escape = (event: KeyboardEvent) => {
      if (event.key === "Escape") setOpen(false);
    };
    document.addEventListener("mousedown", away);
    document.addEventListener("keydown", escape);
    return () => {
      document.removeEventListener("mousedown", away);
      document.removeEventListener("keydown", escape);
    };
  }, [open]);

  const item = "block w-full rounded-md px-3 py-1.5 text-left text-sm text-slate-200 hover:bg-slate-800";
  return (
    <div ref={box} className="relative">
      <button
        onClick={() => setOpen(!open)}
        aria-expanded={open}
        aria-haspopup="true"
        data-testid="user-menu"
        className="flex max-w-[12rem] items-center gap-1.5 rounded-lg px-2 py-1.5 text-sm text-slate-200 hover:bg-slate-800"
      >
        <span aria-hidden className="flex h-6 w-6 shrink-0 items-center justify-center rounded-full bg-slate-700 text-xs font-semibold">
          {(me?.name ?? "?").slice(0, 1).toUpperCase()}
        </span>
        <span className="sr-only truncate sm:not-sr-only">{me?.name ?? "Account"}</span>
      </button>
      {open && (
        <div className="absolute right-0 z-30 mt-1 w-56 rounded-xl border border-slate-700 bg-slate-900 p-1 shadow-xl">
          <div className="border-b border-slate-800 px-3 py-2">
            <p className="truncate text-sm font-medium text-white" data-testid="user-name">
              {me?.name}
            </p>
            {me?.email && <p className="truncate text-xs text-slate-400">{me.email}</p>}
            <p className="text-xs text-slate-400" data-testid="user-role">
              {me?.role === "admin" ? "Admin" : "Member"}
            </p>
          </div>
          <nav aria-label="Account" className="pt-1">
            <Link to="/tokens" className={item} onClick={() => setOpen(false)}>
              Tokens
            </Link>
            {me?.role === "admin" && (
              <Link to="/users" className={item} onClick={() => setOpen(false)}>
                Users
              </Link>
            )}
            <button className={item} onClick={onSignOut}>
              Sign out
            </button>
          </nav>
        </div>
      )}
    </div>
  );
}
