import { useState } from "react";

interface Props {
  path: string;
  line: number;
  onAdd(body: string): void;
  onCancel(): void;
}

/** The form under a diff line for a comment on it: Ctrl+Enter adds it, Escape drops it. */
export function LineCommentForm({ path, line, onAdd, onCancel }: Props) {
  const [body, setBody] = useState("");
  const add = () => {
    if (body.trim()) onAdd(body);
  };
  return (
    <form
      data-testid="line-comment-form"
      className="space-y-2 border-y border-slate-700 bg-slate-900 px-3 py-2 font-sans"
      onSubmit={(event) => {
        event.preventDefault();
        add();
      }}
    >
      <textarea
        autoFocus
        value={body}
        onChange={(event) => setBody(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
            event.preventDefault();
            add();
          } else if (event.key === "Escape") {
            event.preventDefault();
            onCancel();
          }
        }}
        aria-label={`Comment on ${path} line ${line}`}
        placeholder={`A comment on line ${line} for the agent`}
        rows={3}
        className="w-full resize-y rounded-md border border-slate-700 bg-slate-950 px-2 py-1.5 text-sm text-slate-100 outline-none focus:border-emerald-400"
      />
      <div className="flex justify-end gap-2 text-xs">
        <button type="button" onClick={onCancel} className="rounded px-2 py-1 text-slate-300 hover:bg-slate-800">
          Cancel
        </button>
        <button
          type="submit"
          disabled={!body.trim()}
          className="rounded bg-emerald-500 px-2.5 py-1 font-semibold text-slate-950 hover:bg-emerald-400 disabled:opacity-50"
        >
          Add comment
        </button>
      </div>
    </form>
  );
}
