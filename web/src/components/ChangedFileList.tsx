import type { ChangedFile } from "../lib/protocol";
import { fileStatus } from "../lib/workspace";

interface Props {
  files: ChangedFile[];
  selected: string | null;
  /** Drafted comments per file. */
  commented: ReadonlyMap<string, number>;
  onSelect(path: string): void;
}

/** A workspace's changed files with their status and +/− counts; one is shown below. */
export function ChangedFileList({ files, selected, commented, onSelect }: Props) {
  if (files.length === 0) return <p className="px-3 py-2 text-sm text-slate-400">No file changed yet.</p>;
  return (
    <ul className="py-1" data-testid="changed-files" aria-label="Changed files">
      {files.map((file) => {
        const status = fileStatus(file.status);
        const comments = commented.get(file.path) ?? 0;
        return (
          <li key={file.path}>
            <button
              type="button"
              onClick={() => onSelect(file.path)}
              aria-current={file.path === selected ? "true" : undefined}
              data-path={file.path}
              title={file.old_path ? `${file.old_path} → ${file.path} (${status.label})` : `${file.path} (${status.label})`}
              className={`flex w-full items-center gap-2 px-3 py-1 text-left text-sm ${
                file.path === selected ? "bg-slate-800 text-white" : "text-slate-300 hover:bg-slate-800/60"
              }`}
            >
              <span className={`w-3 shrink-0 text-center font-mono text-xs font-semibold ${status.className}`} aria-hidden="true">
                {status.letter}
              </span>
              <span className="sr-only">{status.label}:</span>
              <code className="min-w-0 flex-1 truncate" dir="rtl">
                {/* rtl: a long path keeps its file name in view; the bdi keeps the path itself in order. */}
                <bdi>{file.path}</bdi>
              </code>
              {comments > 0 && (
                <span className="shrink-0 text-xs text-amber-300" title={`${comments} comments drafted`}>
                  ✎{comments}
                </span>
              )}
              {file.binary ? (
                <span className="shrink-0 text-xs text-slate-400">binary</span>
              ) : (
                <span className="shrink-0 font-mono text-xs tabular-nums" data-testid="file-counts">
                  <span className="text-emerald-400">+{file.additions}</span>{" "}
                  <span className="text-red-400">−{file.deletions}</span>
                </span>
              )}
            </button>
          </li>
        );
      })}
    </ul>
  );
}
