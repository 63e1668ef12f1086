export function Logo() {
  return (
    <svg viewBox="0 0 32 32" className="h-8 w-8 shrink-0" aria-hidden="true">
      <rect width="32" height="32" rx="7" fill="#0f172a" stroke="#1e293b" />
      <path d="M8 11l6 5-6 5" stroke="#34d399" strokeWidth="3" fill="none" strokeLinecap="round" strokeLinejoin="round" />
      <path d="M16 22h8" stroke="#38bdf8" strokeWidth="3" strokeLinecap="round" />
    </svg>
  );
}
