import type { Runner, Session } from "../lib/protocol";
import { RunnerList } from "./RunnerList";

/** `/runners`: every runner HQ knows, in the main pane (on a phone, where the sidebar is a drawer). */
export function RunnersPage({ runners, now }: { runners: Runner[]; sessions: Session[]; now: number }) {
  return (
    <section aria-label="Runners" className="h-full overflow-y-auto p-4">
      <div className="mx-auto max-w-2xl">
        <RunnerList runners={runners} now={now} />
      </div>
    </section>
  );
}
