// What a session is called in lists, tabs and tiles: the name people gave it, else the preset it
// was started from (its command line can be long and the same for several), else its command
// line quoted as a shell would (so `sh -c 'echo "Done"'` reads as one script, not four words).

import { joinCommand } from "./argv";
import type { Session } from "./protocol";

export interface SessionTitle {
  /** The name, the preset's name, or the command line. */
  title: string;
  /** The command line, for a tooltip. */
  command: string;
}

export function sessionTitle(session: Pick<Session, "command" | "preset"> & { name?: string | null }): SessionTitle {
  const command = joinCommand(session.command);
  return { title: session.name || session.preset || command, command };
}
