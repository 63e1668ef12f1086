import type { DraftComment } from "../lib/reviewDraft";

/** The comments drafted on one diff line, each with a way to take it back. */
export function LineComments({ comments, onRemove }: { comments: DraftComment[]; onRemove(id: string): void }) {
  return (
    <ul className="space-y-1 border-y border-slate-700 bg-slate-900 px-3 py-2 font-sans" data-testid="line-comments">
      {comments.map((comment) => (
        <li key={comment.id} className="flex items-start gap-2 text-sm">
          <span aria-hidden="true" className="text-amber-300">
            ✎
          </span>
          <p className="min-w-0 flex-1 break-words whitespace-pre-wrap text-slate-100">{comment.body}</p>
          <button
            type="button"
            onClick={() => onRemove(comment.id)}
            aria-label={`Remove the comment on line ${comment.line}`}
            className="rounded px-1.5 text-xs text-slate-400 hover:bg-slate-800 hover:text-red-300"
          >
            Remove
          </button>
        </li>
      ))}
    </ul>
  );
}
