import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { api, ApiError } from "../lib/api";
import { joinCommand, splitCommand } from "../lib/argv";
import { defaultPreset, launchFields, presetInUse, presetLine } from "../lib/launch";
import type { Preset, Runner, Session } from "../lib/protocol";
import { NO_WORKSPACE, workspaceSpec, type WorkspaceChoice } from "../lib/workspace";
import { WorkspaceFields } from "./WorkspaceFields";

interface Props {
  runners: Runner[];
  /** The live session list: the dialog watches the session it started until it runs or fails. */
  sessions: Session[];
  /** HQ cannot be reached: nothing can start, and the runners listed may be gone. */
  unreachable?: boolean;
  onClose(): void;
  onStarted(session: Session): void;
  onError(message: string): void;
}

export function NewSessionDialog({ runners, sessions, unreachable = false, onClose, onStarted, onError }: Props) {
  const online = runners.filter((r) => r.status === "online");
  const [runnerId, setRunnerId] = useState(online[0]?.id ?? "");
  const chosen = online.find((r) => r.id === runnerId) ?? online[0] ?? null;
  const presets: Preset[] = chosen?.presets ?? [];
  const initial = defaultPreset(presets);
  const [presetName, setPresetName] = useState<string | null>(initial?.name ?? null);
  const [command, setCommand] = useState(initial ? presetLine(initial) : "");
  const [cwd, setCwd] = useState("");
  const [workspace, setWorkspace] = useState<WorkspaceChoice>(NO_WORKSPACE);
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  // The session this form started, until it runs (the dialog closes) or fails (it says why here).
  const [pending, setPending] = useState<Session | null>(null);
  const current = pending ? (sessions.find((s) => s.id === pending.id) ?? pending) : null;
  const failed = current && (current.status === "failed" || current.status === "lost") ? current : null;
  const started = current && !failed && current.status !== "starting" ? current : null;
  const starting = current !== null && current.status === "starting";
  const [fieldError, setFieldError] = useState<{ field: string; message: string } | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);
  const split = useMemo(() => splitCommand(command), [command]);
  // A --presets-only runner takes a preset's name and nothing else: no command, no directory.
  const locked = chosen?.policy?.locked ?? false;
  const preset = locked
    ? (presets.find((p) => p.name === presetName) ?? null)
    : presetInUse(presets, presetName, split);
  const launch = locked ? (preset ? { preset: preset.name } : null) : launchFields(preset, split);
  const allowed = (chosen?.policy?.allow ?? []).map((prefix) => joinCommand(prefix));
  const repos = chosen?.repos ?? [];
  // A workspace is its own directory: no working directory with it.
  const spec = repos.some((r) => r.name === workspace.repo) ? workspaceSpec(workspace) : null;

  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
    // showModal focuses the first focusable element, the close button: start at the first field.
    element?.querySelector<HTMLElement>("select, input")?.focus();
  }, []);

  // Running (or already over, having run): open it. Failed: stay, and show why beside the fields.
  const onStartedRef = useRef(onStarted);
  useEffect(() => {
    onStartedRef.current = onStarted;
  });
  useEffect(() => {
    if (started) onStartedRef.current(started);
  }, [started]);
  // The live list normally says it first; this covers a slow or broken event stream.
  const pendingId = pending?.id;
  const [polled, setPolled] = useState<Session | null>(null);
  useEffect(() => {
    if (!pendingId) return;
    const timer = window.setInterval(() => {
      api.session(pendingId).then(setPolled, () => {});
    }, 1000);
    return () => window.clearInterval(timer);
  }, [pendingId]);
  const latest = polled && polled.id === pendingId && polled.status !== "starting" ? polled : null;
  useEffect(() => {
    if (latest && latest.status !== "failed" && latest.status !== "lost") onStartedRef.current(latest);
  }, [latest]);
  const failure = failed ?? (latest && (latest.status === "failed" || latest.status === "lost") ? latest : null);

  function pickPreset(next: Preset) {
    setPresetName(next.name);
    setCommand(presetLine(next));
    setFieldError(null);
  }

  function pickRunner(id: string) {
    setRunnerId(id);
    const runner = online.find((r) => r.id === id);
    // A preset of the same name on the new runner may run something else: show its argv.
    const next =
      runner?.presets.find((p) => p.name === preset?.name) ??
      (runner?.policy?.locked ? defaultPreset(runner.presets) : null);
    if (next) {
      setPresetName(next.name);
      setCommand(presetLine(next));
    }
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!launch || !chosen) return;
    setBusy(true);
    setFieldError(null);
    setPending(null);
    setPolled(null);
    try {
      const session = await api.createSession({
        runner_id: chosen.id,
        ...launch,
        ...(cwd.trim() && !locked && !spec ? { cwd: cwd.trim() } : {}),
        ...(spec ? { workspace: spec } : {}),
        ...(name.trim() ? { name: name.trim() } : {}),
      });
      setPending(session);
    } catch (e) {
      const error = e as ApiError;
      if (error.field) setFieldError({ field: error.field, message: error.message });
      onError(error.message);
    } finally {
      setBusy(false);
    }
  }

  const input =
    "w-full rounded-lg border border-slate-700 bg-slate-950 px-3 py-2 text-sm text-slate-100 outline-none focus:border-emerald-400 focus:ring-1 focus:ring-emerald-400";
  return (
    <dialog
      ref={dialog}
      onClose={onClose}
      aria-labelledby="new-session-title"
      className="m-auto w-[min(34rem,calc(100vw-2rem))] rounded-2xl border border-slate-700 bg-slate-900 p-0 text-slate-100 shadow-2xl backdrop:bg-black/60"
    >
      <form onSubmit={submit} className="space-y-4 p-6">
        <div className="flex items-center justify-between">
          <h2 id="new-session-title" className="text-lg font-semibold">
            New session
          </h2>
          <button type="button" onClick={onClose} aria-label="Close" className="text-slate-400 hover:text-white">
            ×
          </button>
        </div>

        <label className="block space-y-1.5">
          <span className="text-sm font-medium text-slate-300">Runner</span>
          {online.length === 0 ? (
            <p className="rounded-lg border border-dashed border-slate-700 px-3 py-2 text-sm text-slate-400">
              No runner is online.
            </p>
          ) : (
            <select value={chosen?.id ?? ""} onChange={(e) => pickRunner(e.target.value)} className={input}>
              {online.map((runner) => (
                <option key={runner.id} value={runner.id}>
                  {runner.name} ({runner.os})
                </option>
              ))}
            </select>
          )}
        </label>

        {presets.length > 0 && (
          <fieldset className="space-y-1.5">
            <legend className="mb-1.5 text-sm font-medium text-slate-300">
              Presets <span className="font-normal text-slate-400">on {chosen?.name}</span>
            </legend>
            <div className="grid grid-cols-2 gap-2 sm:grid-cols-3" data-testid="presets">
              {presets.map((p) => (
                <button
                  key={p.name}
                  type="button"
                  aria-pressed={preset?.name === p.name}
                  title={presetLine(p)}
                  onClick={() => pickPreset(p)}
                  className={`min-w-0 rounded-lg border px-2.5 py-1.5 text-left ${
                    preset?.name === p.name
                      ? "border-emerald-400 bg-emerald-500/10"
                      : "border-slate-700 hover:border-slate-500"
                  }`}
                >
                  <span className="block truncate text-sm text-slate-100">{p.description || p.name}</span>
                  <code className="block truncate text-[11px] text-slate-400">{p.name}</code>
                </button>
              ))}
            </div>
            {fieldError?.field === "preset" && <p className="text-xs text-red-400">{fieldError.message}</p>}
          </fieldset>
        )}

        {locked && (
          <p
            className="rounded-lg border border-slate-700 bg-slate-950 px-3 py-2 text-sm text-slate-300"
            data-testid="presets-only"
          >
            {chosen?.name} starts only its presets (<code>--presets-only</code>): their command, directory and
            environment are set on the runner.
          </p>
        )}

        {repos.length > 0 && (
          <WorkspaceFields
            repos={repos}
            value={workspace}
            onChange={setWorkspace}
            error={fieldError?.field === "workspace" ? fieldError.message : null}
          />
        )}

        {!locked && (
          <>
            <label className="block space-y-1.5">
              <span className="text-sm font-medium text-slate-300">
                Command{" "}
                <span className="font-normal text-slate-400">{preset ? `preset ${preset.name}` : "custom"}</span>
              </span>
              <input
                value={command}
                onChange={(e) => setCommand(e.target.value)}
                placeholder={allowed.length > 0 ? `allowed: ${allowed.join(", ")}` : "any program on the runner, e.g. bash -l"}
                spellCheck={false}
                className={`${input} font-mono`}
                aria-invalid={!split.ok || fieldError?.field === "command"}
              />
              <div className="min-h-5 text-xs" data-testid="argv-preview">
                {split.ok ? (
                  <span className="flex flex-wrap gap-1 text-slate-400">
                    argv:
                    {split.argv.map((arg, i) => (
                      <code key={i} className="rounded bg-slate-800 px-1.5 text-slate-200">
                        {arg === "" ? "''" : arg}
                      </code>
                    ))}
                  </span>
                ) : (
                  <span className="text-amber-300">{split.error}</span>
                )}
              </div>
              {fieldError?.field === "command" && <p className="text-xs text-red-400">{fieldError.message}</p>}
            </label>

            <label className="block space-y-1.5">
              <span className="text-sm font-medium text-slate-300">
                Working directory <span className="font-normal text-slate-400">(optional)</span>
              </span>
              <input
                value={cwd}
                onChange={(e) => setCwd(e.target.value)}
                disabled={spec !== null}
                placeholder={spec ? "the workspace's worktree" : "the runner's working directory"}
                spellCheck={false}
                className={`${input} font-mono`}
              />
            </label>
          </>
        )}

        <label className="block space-y-1.5">
          <span className="text-sm font-medium text-slate-300">
            Name <span className="font-normal text-slate-400">(optional)</span>
          </span>
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            maxLength={100}
            placeholder={preset ? preset.name : "the command line"}
            className={input}
            aria-invalid={fieldError?.field === "name"}
          />
          {fieldError?.field === "name" && <p className="text-xs text-red-400">{fieldError.message}</p>}
        </label>

        {failure && (
          <p role="alert" data-testid="start-error" className="rounded-lg border border-red-500/40 bg-red-500/10 px-3 py-2 text-sm text-red-200">
            It did not start: {failure.error ?? `the session is ${failure.status}`}. Change the command and start again.
          </p>
        )}

        <div className="flex justify-end gap-2 pt-2">
          <button type="button" onClick={onClose} className="rounded-lg px-4 py-2 text-sm text-slate-300 hover:bg-slate-800">
            Cancel
          </button>
          <button
            type="submit"
            disabled={busy || (starting && !failure) || !launch || !chosen || unreachable}
            className="rounded-lg bg-emerald-500 px-4 py-2 text-sm font-semibold text-slate-950 hover:bg-emerald-400 disabled:opacity-50"
          >
            {busy || (starting && !failure) ? "Starting…" : "Start"}
          </button>
        </div>
      </form>
    </dialog>
  );
}
