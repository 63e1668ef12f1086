import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { api, ApiError } from "../lib/api";
import { splitCommand } from "../lib/argv";
import { PRESETS } from "../lib/presets";
import type { Runner, Session } from "../lib/protocol";

interface Props {
  runners: Runner[];
  onClose(): void;
  onStarted(session: Session): void;
  onError(message: string): void;
}

export function NewSessionDialog({ runners, onClose, onStarted, onError }: Props) {
  const online = runners.filter((r) => r.status === "online");
  const [runnerId, setRunnerId] = useState(online[0]?.id ?? "");
  const [command, setCommand] = useState(PRESETS[0].command);
  const [cwd, setCwd] = useState("");
  const [busy, setBusy] = useState(false);
  const [fieldError, setFieldError] = useState<{ field: string; message: string } | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);
  const split = useMemo(() => splitCommand(command), [command]);
  const chosen = online.some((r) => r.id === runnerId) ? runnerId : (online[0]?.id ?? "");

  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!split.ok || !chosen) return;
    setBusy(true);
    setFieldError(null);
    try {
      const session = await api.createSession({
        runner_id: chosen,
        command: split.argv,
        ...(cwd.trim() ? { cwd: cwd.trim() } : {}),
      });
      onStarted(session);
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
      className="m-auto w-[min(32rem,calc(100vw-2rem))] rounded-2xl border border-slate-700 bg-slate-900 p-0 text-slate-100 shadow-2xl backdrop:bg-black/60"
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
            <select value={chosen} onChange={(e) => setRunnerId(e.target.value)} className={input}>
              {online.map((runner) => (
                <option key={runner.id} value={runner.id}>
                  {runner.name} ({runner.os})
                </option>
              ))}
            </select>
          )}
        </label>

        <div className="flex flex-wrap gap-2" role="group" aria-label="Presets">
          {PRESETS.map((preset) => (
            <button
              key={preset.name}
              type="button"
              onClick={() => setCommand(preset.command)}
              className={`rounded-full border px-3 py-1 text-xs ${
                command === preset.command
                  ? "border-emerald-400 bg-emerald-500/10 text-emerald-200"
                  : "border-slate-700 text-slate-300 hover:border-slate-500"
              }`}
            >
              {preset.label}
            </button>
          ))}
        </div>

        <label className="block space-y-1.5">
          <span className="text-sm font-medium text-slate-300">Command</span>
          <input
            value={command}
            onChange={(e) => setCommand(e.target.value)}
            spellCheck={false}
            autoFocus
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
            Working directory <span className="font-normal text-slate-500">(optional)</span>
          </span>
          <input
            value={cwd}
            onChange={(e) => setCwd(e.target.value)}
            placeholder="~ on the runner"
            spellCheck={false}
            className={`${input} font-mono`}
          />
        </label>

        <div className="flex justify-end gap-2 pt-2">
          <button type="button" onClick={onClose} className="rounded-lg px-4 py-2 text-sm text-slate-300 hover:bg-slate-800">
            Cancel
          </button>
          <button
            type="submit"
            disabled={busy || !split.ok || !chosen}
            className="rounded-lg bg-emerald-500 px-4 py-2 text-sm font-semibold text-slate-950 hover:bg-emerald-400 disabled:opacity-50"
          >
            {busy ? "Starting…" : "Start"}
          </button>
        </div>
      </form>
    </dialog>
  );
}
