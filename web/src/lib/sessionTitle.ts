// What a session is called in lists, tabs and tiles: the preset it was started from (its command
// line can be long and the same for several), else its command line.

import type { Session } from "./protocol";

export interface SessionTitle {
  /** The preset's name, or the command line. */
  title: string;
  /** The command line, for a tooltip. */
  command: string;
}

export function sessionTitle(session: Pick<Session, "command" | "preset">): SessionTitle {
  const command = session.command.join(" ");
  return { title: session.preset || command, command };
}
