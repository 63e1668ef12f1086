import type { RepoInfo } from "../lib/protocol";
import type { WorkspaceChoice } from "../lib/workspace";

interface Props {
  repos: RepoInfo[];
  value: WorkspaceChoice;
  onChange(value: WorkspaceChoice): void;
  /** HQ's word on the `workspace` field (a branch that exists, a dirty repository). */
  error: string | null;
}

const input =
  "w-full rounded-lg border border-slate-700 bg-slate-950 px-3 py-2 text-sm text-slate-100 outline-none focus:border-emerald-400 focus:ring-1 focus:ring-emerald-400";

/** New session's workspace: one of the runner's repositories, a new branch, and where it starts. */
export function WorkspaceFields({ repos, value, onChange, error }: Props) {
  const repo = repos.find((r) => r.name === value.repo) ?? null;
  return (
    <fieldset className="space-y-2" data-testid="workspace-fields">
      <legend className="mb-1.5 text-sm font-medium text-slate-300">
        Workspace <span className="font-normal text-slate-400">(a git worktree of its own, optional)</span>
      </legend>
      <label className="block space-y-1">
        <span className="text-xs text-slate-400">Repository</span>
        <select
          value={value.repo}
          onChange={(event) => onChange({ ...value, repo: event.target.value })}
          className={input}
          aria-invalid={error !== null}
        >
          <option value="">None: the runner's working directory</option>
          {repos.map((r) => (
            <option key={r.name} value={r.name}>
              {r.name} (on {r.default_branch})
            </option>
          ))}
        </select>
      </label>
      {repo && (
        <div className="grid grid-cols-2 gap-2">
          <label className="block space-y-1">
            <span className="text-xs text-slate-400">New branch</span>
            <input
              value={value.branch}
              onChange={(event) => onChange({ ...value, branch: event.target.value })}
              placeholder="agentrelay/<session id>"
              spellCheck={false}
              maxLength={200}
              className={`${input} font-mono`}
            />
          </label>
          <label className="block space-y-1">
            <span className="text-xs text-slate-400">From</span>
            <input
              value={value.base}
              onChange={(event) => onChange({ ...value, base: event.target.value })}
              placeholder={repo.default_branch}
              spellCheck={false}
              maxLength={200}
              className={`${input} font-mono`}
            />
          </label>
        </div>
      )}
      {error && <p className="text-xs text-red-400">{error}</p>}
    </fieldset>
  );
}
