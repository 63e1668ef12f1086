// One changed file's diff, drawn by @git-diff-view/react (split or unified, highlighted by its
// lowlight), with review comments on the new side's lines. Loaded on demand: the highlighter is
// most of its weight.

import { DiffModeEnum, DiffView, SplitSide, type DiffViewProps } from "@git-diff-view/react";
import "@git-diff-view/react/styles/diff-view-pure.css";
import { useMemo, useRef, useState } from "react";
import type { ChangedFile } from "../lib/protocol";
import type { DraftComment } from "../lib/reviewDraft";
import { LineCommentForm } from "./LineCommentForm";
import { LineComments } from "./LineComments";

export type DiffLayout = "split" | "unified";

interface Props {
  file: ChangedFile;
  /** The file's unified diff, as GET …/diff?path= gives it. */
  diff: string;
  layout: DiffLayout;
  /** Drafted comments on this file, by new-side line. */
  comments: Map<number, DraftComment[]>;
  onAddComment(line: number, body: string): void;
  onRemoveComment(id: string): void;
}

/** The diff view's widget store: opens the comment form under a line. */
type WidgetHook = Parameters<NonNullable<DiffViewProps<DraftComment[]>["onCreateUseWidgetHook"]>>[0];

/** The new side's line numbers that the diff shows (the ones a comment can quote). */
function newLines(diff: string): Set<number> {
  const lines = new Set<number>();
  let next: number | null = null;
  for (const line of diff.split("\n")) {
    const hunk = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      next = Number(hunk[1]);
    } else if (next !== null && (line.startsWith("+") || line.startsWith(" "))) {
      lines.add(next);
      next += 1;
    } else if (line.startsWith("diff --git ")) {
      next = null;
    }
  }
  return lines;
}

export function FileDiff({ file, diff, layout, comments, onAddComment, onRemoveComment }: Props) {
  const widget = useRef<WidgetHook | null>(null);
  const [line, setLine] = useState("");
  const shown = useMemo(() => newLines(diff), [diff]);
  const extendData = useMemo(
    () => ({
      newFile: Object.fromEntries([...comments].map(([number, list]) => [String(number), { data: list }])),
    }),
    [comments],
  );
  const data = useMemo(
    () => ({
      oldFile: { fileName: file.old_path ?? file.path },
      newFile: { fileName: file.path },
      hunks: [diff],
    }),
    [file.path, file.old_path, diff],
  );
  const asked = Number(line);
  const lineOk = Number.isInteger(asked) && shown.has(asked);

  if (file.binary) return <p className="p-4 text-sm text-slate-400">A binary file: no lines to show.</p>;
  if (!diff.includes("@@")) return <p className="p-4 text-sm text-slate-400">No line changed (a mode or an empty file).</p>;
  return (
    <div className="min-w-0" data-testid="file-diff" data-path={file.path}>
      {/* The diff's own + buttons show on hover; this opens the same form from the keyboard. */}
      <form
        className="flex items-center gap-2 border-b border-slate-800 px-3 py-1.5 text-xs text-slate-400"
        onSubmit={(event) => {
          event.preventDefault();
          if (!lineOk) return;
          widget.current?.getReadonlyState().setWidget({ side: SplitSide.new, lineNumber: asked });
          setLine("");
        }}
      >
        <label className="flex items-center gap-1.5">
          Comment on line
          <input
            value={line}
            onChange={(event) => setLine(event.target.value.replace(/\D/g, ""))}
            inputMode="numeric"
            aria-describedby="comment-line-hint"
            className="w-16 rounded border border-slate-700 bg-slate-950 px-1.5 py-0.5 text-slate-100 outline-none focus:border-emerald-400"
          />
        </label>
        <button
          type="submit"
          disabled={!lineOk}
          className="rounded px-2 py-0.5 text-slate-200 ring-1 ring-slate-700 hover:bg-slate-800 disabled:opacity-50"
        >
          Comment
        </button>
        <span id="comment-line-hint" className="truncate">
          {line && !lineOk ? "not a line of the new version shown here" : "or hover a line and press +"}
        </span>
      </form>
      <DiffView<DraftComment[]>
        data={data}
        diffViewMode={layout === "split" ? DiffModeEnum.Split : DiffModeEnum.Unified}
        diffViewTheme="dark"
        diffViewHighlight
        diffViewWrap
        diffViewFontSize={12}
        diffViewAddWidget
        extendData={extendData}
        onCreateUseWidgetHook={(hook) => {
          widget.current = hook;
        }}
        renderWidgetLine={({ lineNumber, side, onClose }) =>
          side === SplitSide.new ? (
            <LineCommentForm
              path={file.path}
              line={lineNumber}
              onCancel={onClose}
              onAdd={(body) => {
                onAddComment(lineNumber, body);
                onClose();
              }}
            />
          ) : (
            <div className="flex items-center gap-2 border-y border-slate-700 bg-slate-900 px-3 py-2 font-sans text-sm text-slate-300">
              <span className="flex-1">
                Comments go on the new version's lines (the agent reads the file as it is now).
              </span>
              <button type="button" onClick={onClose} className="rounded px-2 py-1 text-xs hover:bg-slate-800">
                OK
              </button>
            </div>
          )
        }
        renderExtendLine={({ data: list, side }) =>
          side === SplitSide.new && list?.length ? <LineComments comments={list} onRemove={onRemoveComment} /> : null
        }
      />
    </div>
  );
}
