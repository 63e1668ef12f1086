import { EXIT_STYLES, EXIT_WORDS, exitKind, exitLabel } from "../lib/exit";
import type { Session } from "../lib/protocol";

/** An exited session's end: "succeeded · exit 0" (green), "failed · exit 3" (red), "killed · SIGHUP" (violet). */
export function ExitBadge({ session }: { session: Pick<Session, "exit_code" | "signal"> }) {
  const exit = { code: session.exit_code, signal: session.signal };
  const kind = exitKind(exit);
  return (
    <span
      data-exit={kind}
      className={`inline-flex shrink-0 items-center gap-1 rounded-full px-2 py-0.5 text-xs font-medium whitespace-nowrap ring-1 ${EXIT_STYLES[kind]}`}
    >
      {EXIT_WORDS[kind]} · {exitLabel(exit)}
    </span>
  );
}
