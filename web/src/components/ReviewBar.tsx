import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { api, type ApiError } from "../lib/api";
import { canSend, toReview, type ReviewDraft } from "../lib/reviewDraft";

interface Props {
  sessionId: string;
  draft: ReviewDraft;
  /** The session still runs: a review can be typed into it. */
  live: boolean;
  onSummary(summary: string): void;
  onSent(): void;
}

/** The review so far (its comments are on the diff's lines), a word on the whole, and Send. */
export function ReviewBar({ sessionId, draft, live, onSummary, onSent }: Props) {
  const [waitForAgent, setWaitForAgent] = useState(false);
  const [sent, setSent] = useState<string | null>(null);
  const send = useMutation<void, ApiError>({
    mutationFn: () => api.review(sessionId, toReview(draft, waitForAgent)),
    onSuccess: () => {
      const count = draft.comments.length;
      const what = `${count} ${count === 1 ? "comment" : "comments"}`;
      setSent(waitForAgent ? `Queued (${what}): it goes in when the agent next waits for input.` : `Sent to the agent (${what}).`);
      onSent();
    },
  });
  const count = draft.comments.length;
  return (
    <section aria-label="Review" className="space-y-2 border-t border-slate-800 px-3 py-2">
      <textarea
        value={draft.summary}
        onChange={(event) => {
          setSent(null);
          onSummary(event.target.value);
        }}
        rows={2}
        aria-label="Review summary"
        placeholder="A word on the whole change (optional)"
        className="w-full resize-y rounded-md border border-slate-700 bg-slate-950 px-2 py-1.5 text-sm text-slate-100 outline-none focus:border-emerald-400"
      />
      <div className="flex flex-wrap items-center gap-x-3 gap-y-1 text-xs">
        <span className="text-slate-300" data-testid="draft-count">
          {count === 0 ? "No comment yet" : `${count} ${count === 1 ? "comment" : "comments"}`}
        </span>
        <label className="flex items-center gap-1.5 text-slate-400">
          <input type="checkbox" checked={waitForAgent} onChange={(event) => setWaitForAgent(event.target.checked)} />
          when it next waits for input
        </label>
        <span className="flex-1" />
        <button
          type="button"
          onClick={() => {
            setSent(null);
            send.mutate();
          }}
          disabled={!live || !canSend(draft) || send.isPending}
          title={live ? "Type the review into the session, then Enter" : "The session has ended"}
          className="rounded-md bg-emerald-500 px-3 py-1.5 text-sm font-semibold text-slate-950 hover:bg-emerald-400 disabled:opacity-50"
        >
          {send.isPending ? "Sending…" : "Send review to agent"}
        </button>
      </div>
      {(sent || send.error) && (
        <p role="status" className={`text-xs ${send.error ? "text-red-300" : "text-emerald-300"}`} data-testid="review-status">
          {send.error ? `Not sent: ${send.error.message}` : sent}
        </p>
      )}
    </section>
  );
}
