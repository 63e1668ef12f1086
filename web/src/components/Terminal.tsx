// One session's terminal: xterm.js fed by a SessionSocket. xterm.js owns the screen and scrollback;
// React only shows what is around it: activity and who is attached (from the socket), the
// connection state, the exit banner, and the read-only banner of a watch-only viewer.

import { useEffect, useRef, useState } from "react";
import { Terminal as XTerm } from "@xterm/xterm";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { WebglAddon } from "@xterm/addon-webgl";
import { signedOut } from "../lib/api";
import { OutputFlow } from "../lib/outputFlow";
import { SessionSocket, type ConnectionState, type KeyQueue } from "../lib/sessionSocket";
import { exitKind, type ExitKind } from "../lib/exit";
import {
  describeExit,
  endsSession,
  type ActivityState,
  type ExitStatus,
  type Usage,
  type Viewer,
} from "../lib/protocol";
import { groupViewers, viewerLabel } from "../lib/presence";
import { checkWebglDraws } from "../lib/rendererCheck";
import { onSettingsChange, screenReaderMode } from "../lib/settings";
import { paneSize } from "../lib/paneSize";
import { registerTerminal } from "../lib/testHooks";
import { useMenu } from "../hooks/useMenu";
import { ActivityBadge } from "./ActivityBadge";
import { UsageFigures } from "./UsageFigures";
import { KeyBar } from "./KeyBar";
import { MenuButtons } from "./MenuButtons";

/** Lines of scrollback xterm.js keeps; the whole output is a download away. */
const SCROLLBACK = 10_000;

/** `GET /api/sessions/{id}/log`: the whole output, as text or as the bytes printed. */
function logUrl(sessionId: string, format: "text" | "raw"): string {
  return `/api/sessions/${encodeURIComponent(sessionId)}/log?format=${format}`;
}

/** The exit banner's text colour: green, red, violet, as the exit badges. */
const EXIT_TEXT: Record<ExitKind, string> = {
  success: "text-emerald-300",
  failure: "text-red-300",
  signal: "text-violet-300",
};

/** "1 keystroke", "3 keystrokes". */
function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** Opens http(s) links in a new tab; anything else (javascript:, file:, …) is ignored. */
export function openLink(uri: string): void {
  if (!/^https?:\/\//i.test(uri)) return;
  window.open(uri, "_blank", "noopener,noreferrer");
}

const SKIPPED_NOTICE = "\r\n\x1b[2m[output came faster than it could be drawn; skipped to the current screen]\x1b[0m\r\n";

const THEME = {
  background: "#020617",
  foreground: "#e2e8f0",
  cursor: "#34d399",
  selectionBackground: "#334155",
  black: "#1e293b",
  brightBlack: "#475569",
};

interface Props {
  sessionId: string;
  active: boolean;
  now: number;
  /** Watch only: nothing typed is sent, and the PTY keeps its size. */
  readOnly?: boolean;
  /**
   * Watch mode (phones): this window's size is offered to HQ but the PTY takes it only once
   * something is typed here, or "Fit to this window" is pressed.
   */
  watch?: boolean;
  /** Whether the session's runner is connected, as the runner list says (absent: unknown). */
  runnerOnline?: boolean;
  /** Tokens and cost the agent reported so far, shown in the header. */
  usage?: Usage | null;
  onError(message: string): void;
  /** Absent: no "Close tab" button on the exit banner. */
  onClose?(): void;
  /** The sign-in (or share) this terminal used is gone: it stopped for good. */
  onAccessLost?(): void;
}

export function Terminal({
  sessionId,
  active,
  now,
  readOnly = false,
  watch = false,
  runnerOnline,
  usage,
  onError,
  onClose,
  onAccessLost,
}: Props) {
  const host = useRef<HTMLDivElement>(null);
  const refit = useRef<() => void>(() => {});
  const focus = useRef<() => void>(() => {});
  const activate = useRef<() => void>(() => {});
  const runnerBack = useRef<() => void>(() => {});
  /** Types into the session, as if on the keyboard (menu buttons, the key bar). */
  const type = useRef<(keys: string) => void>(() => {});
  // Earlier output is not in this terminal (its scrollback filled up, or it began from a snapshot).
  const [clipped, setClipped] = useState(false);
  const [keys, setKeys] = useState<KeyQueue>({ waiting: 0, awaitingRunner: 0, dropped: 0 });
  // Whether the PTY has this pane's size (else "Fit to this window" is offered).
  const [fits, setFits] = useState(true);
  const [state, setState] = useState<ConnectionState>("connecting");
  const [exit, setExit] = useState<ExitStatus | null>(null);
  const [ended, setEnded] = useState<string | null>(null);
  const [activity, setActivity] = useState<ActivityState | null>(null);
  const [viewers, setViewers] = useState<Viewer[]>([]);
  const onErrorRef = useRef(onError);
  const onAccessLostRef = useRef(onAccessLost);
  useEffect(() => {
    onErrorRef.current = onError;
    onAccessLostRef.current = onAccessLost;
  }, [onError, onAccessLost]);

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const term = new XTerm({
      cursorBlink: true,
      fontFamily: '"JetBrains Mono", "Fira Code", "DejaVu Sans Mono", ui-monospace, monospace',
      fontSize: 13,
      scrollback: SCROLLBACK,
      theme: THEME,
      linkHandler: { activate: (_event, uri) => openLink(uri) },
      disableStdin: readOnly,
      screenReaderMode: screenReaderMode(),
    });
    const settings = onSettingsChange(() => {
      term.options.screenReaderMode = screenReaderMode();
    });
    term.loadAddon(new WebLinksAddon((_event, uri) => openLink(uri)));
    term.open(element);
    let renderer: "webgl" | "dom" = "dom";
    let webglCheck: { dispose(): void } | null = null;
    try {
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => webgl.dispose());
      term.loadAddon(webgl);
      // A WebGL renderer that draws nothing (no context loss to say so) gives way to the DOM one.
      renderer = "webgl";
      webglCheck = checkWebglDraws(term, (why) => {
        console.warn(`xterm.js's WebGL renderer draws nothing here (${why}); using its DOM renderer`);
        webgl.dispose();
        renderer = "dom";
        element.dataset.renderer = renderer;
      });
    } catch {
      // No WebGL2 here: xterm.js keeps its DOM renderer.
    }
    element.dataset.renderer = renderer;

    // When xterm.js falls behind (OutputFlow), drop the stream; once it has drawn what it has,
    // start over from HQ's current screen and say so. Keystrokes queue in the socket meanwhile.
    let disposed = false;
    let skipped = false;
    const flow = new OutputFlow(
      { write: (data, done) => term.write(data, done) },
      {
        onOverflow: () => socket.suspend(),
        onDrained: () => {
          if (disposed) return;
          term.reset();
          flow.resume();
          skipped = true;
          socket.resync();
        },
      },
    );
    const socket = new SessionSocket(
      sessionId,
      {
        onData: (bytes, snapshot) => {
          flow.write(bytes);
          if (skipped && snapshot) {
            skipped = false;
            term.write(SKIPPED_NOTICE);
          }
        },
        // Replayed from the start (short output, no snapshot): the notice goes first.
        onAttached: (attached) => {
          // Drawn from a snapshot: what came before it is not in this terminal.
          if (attached.snapshot) setClipped(true);
          if (skipped && !attached.snapshot) {
            skipped = false;
            term.write(SKIPPED_NOTICE);
          }
        },
        onState: setState,
        onExit: (status) => {
          setExit(status);
          setActivity(null);
        },
        onGap: (from, to) => term.write(`\r\n\x1b[33m[${to - from} bytes of output are no longer available]\x1b[0m\r\n`),
        onError: (code, message) => {
          if (endsSession(code)) setEnded(message);
          else onErrorRef.current(message);
        },
        onActivity: setActivity,
        onPresence: setViewers,
        onQueue: setKeys,
        onSize: (size) => {
          pty = size;
          follow();
        },
        onAccessLost: () => onAccessLostRef.current?.(),
      },
      { readOnly, watch, probe: signedOut },
    );
    // A watcher's keystrokes go nowhere: not wired here, and the socket drops them too.
    const input = term.onData((data) => {
      if (!readOnly) socket.sendInput(data);
    });
    const binary = term.onBinary((data) => {
      if (!readOnly) socket.sendInput(Uint8Array.from(data, (c) => c.charCodeAt(0)));
    });

    // xterm.js always has the PTY's size (HQ says it in `size` frames), so what the program drew
    // is shown as drawn: a PTY larger than this pane scrolls inside it, never rewraps. This
    // pane's own size goes to HQ, which gives it to the PTY when this viewer is the active one.
    let pty: { rows: number; cols: number } | null = null;
    let pane: { rows: number; cols: number } | null = null;
    const follow = () => {
      const target = pty ?? pane;
      if (target && (term.rows !== target.rows || term.cols !== target.cols)) term.resize(target.cols, target.rows);
      setFits(!pty || !pane || (pty.rows === pane.rows && pty.cols === pane.cols));
    };
    const measure = () => {
      const box = element.parentElement;
      if (!box || element.offsetWidth === 0 || element.offsetHeight === 0) return;
      const proposed = paneSize(term, box);
      if (!proposed) return;
      pane = { rows: proposed.rows, cols: proposed.cols };
      socket.resize(pane.rows, pane.cols);
      follow();
    };
    let timer: number | undefined;
    refit.current = () => {
      window.clearTimeout(timer);
      // Debounced: a window drag fires many resizes; the PTY needs only the last.
      timer = window.setTimeout(measure, 60);
    };
    focus.current = () => term.focus();
    activate.current = () => socket.activate();
    runnerBack.current = () => socket.runnerBack();
    type.current = (keys) => {
      if (!readOnly) socket.sendInput(keys);
    };
    const observer = new ResizeObserver(() => refit.current());
    observer.observe(element);
    measure();
    const unregister = registerTerminal(sessionId, term);
    // Scrollback full: the oldest lines are going; say where the history stops.
    const scrolled = term.onScroll(() => {
      if (term.buffer.normal.length >= term.rows + SCROLLBACK) setClipped(true);
    });

    return () => {
      disposed = true;
      window.clearTimeout(timer);
      observer.disconnect();
      input.dispose();
      binary.dispose();
      socket.close();
      unregister();
      scrolled.dispose();
      settings();
      webglCheck?.dispose();
      term.dispose();
    };
  }, [sessionId, readOnly, watch]);

  // The runner list says the runner is back: what waited for it has gone through.
  useEffect(() => {
    if (runnerOnline) runnerBack.current();
  }, [runnerOnline]);

  useEffect(() => {
    if (active) {
      refit.current();
      focus.current();
    }
  }, [active]);

  const revoked = state === "revoked";
  // Activity and viewers are as of the last connection: not shown while there is none.
  const live = !exit && !ended && !revoked && (state === "open" || state === "catching-up");
  const groups = groupViewers(viewers);
  const waitingSince = live && activity?.activity === "waiting_for_input" ? activity.since : null;
  const menu = useMenu(sessionId, waitingSince, !readOnly);
  return (
    <div className={`absolute inset-0 flex-col ${active ? "flex" : "hidden"}`} data-session={sessionId}>
      {readOnly && (
        <div
          role="note"
          data-testid="read-only-banner"
          className="border-b border-sky-500/40 bg-sky-500/15 px-3 py-1.5 text-center text-xs font-medium text-sky-200"
        >
          Read-only: you are watching this session; nothing you type is sent.
        </div>
      )}
      {/* One line that never wraps: a header that grew would shrink the pane, and resize the PTY. */}
      <div className="flex min-h-8 flex-nowrap items-center gap-x-3 overflow-hidden border-b border-slate-800/70 bg-slate-900/40 px-3 py-1 text-xs whitespace-nowrap text-slate-400">
        {live && activity ? (
          <ActivityBadge activity={activity.activity} since={activity.since} source={activity.source} now={now} />
        ) : (
          <span>
            {revoked
              ? "disconnected"
              : exit || ended
                ? "ended"
                : state === "reconnecting"
                  ? "reconnecting…"
                  : state === "open"
                    ? "connected"
                    : "connecting…"}
          </span>
        )}
        <span className="flex-1" />
        <UsageFigures usage={usage} />
        {!readOnly && (
          <a
            href={logUrl(sessionId, "text")}
            download
            data-testid="download-output"
            title="The session's whole output as text (the raw bytes: add ?format=raw)"
            className="rounded px-1.5 py-0.5 text-slate-300 hover:bg-slate-800 hover:text-white"
          >
            Download
          </a>
        )}
        {live && groups.length > 0 && (
          <span className="flex min-w-0 items-center gap-1.5 overflow-hidden" data-testid="presence" title="Attached now">
            <svg viewBox="0 0 16 16" className="h-3.5 w-3.5 shrink-0" aria-hidden="true" fill="currentColor">
              <path d="M8 3C4.5 3 1.8 5.4 1 8c.8 2.6 3.5 5 7 5s6.2-2.4 7-5c-.8-2.6-3.5-5-7-5zm0 8a3 3 0 110-6 3 3 0 010 6z" />
            </svg>
            <span className="sr-only">Attached now:</span>
            {groups.map((group) => (
              <span
                key={`${group.read_only}:${group.name}`}
                className={`rounded px-1.5 py-0.5 ${group.read_only ? "bg-sky-500/10 text-sky-300" : "bg-slate-800 text-slate-200"}`}
              >
                {viewerLabel(group)}
              </span>
            ))}
          </span>
        )}
      </div>
      {clipped && (
        <div
          role="note"
          data-testid="scrollback-limit"
          className="flex flex-wrap items-center gap-x-2 border-b border-slate-800 bg-slate-900 px-3 py-1 text-xs text-slate-300"
        >
          <span>This terminal keeps the last {SCROLLBACK.toLocaleString("en")} lines; earlier output is not shown here.</span>
          {!readOnly && (
            <a href={logUrl(sessionId, "text")} download className="font-medium text-sky-300 underline hover:text-sky-200">
              Download the whole output
            </a>
          )}
        </div>
      )}
      {/* The pill floats over the terminal only, never over the banners above it. */}
      <div className="relative min-h-0 flex-1">
        {live && !readOnly && !fits && (
          <button
            onClick={() => {
              activate.current();
              focus.current();
            }}
            data-testid="fit-window"
            title="The terminal has another viewer's size: give it this window's size"
            className="absolute top-2 right-5 z-10 rounded-full bg-slate-800/95 px-3 py-1 text-xs text-sky-200 shadow ring-1 ring-sky-500/50 hover:bg-slate-700"
          >
            Fit to this window
          </button>
        )}
        {/* Over the terminal, not above it: a bar that came and went would resize the PTY. */}
        {menu && live && !readOnly && (
          <div className="absolute inset-x-0 top-0 z-10 border-b border-amber-400/30 bg-slate-900/95 px-3 py-1.5 shadow">
            <MenuButtons menu={menu} onPick={(keys) => type.current(keys)} />
          </div>
        )}
        {state === "reconnecting" && (
          <div
            role="status"
            data-testid="reconnecting"
            className="absolute top-2 left-1/2 z-10 -translate-x-1/2 rounded-full bg-amber-500/90 px-3 py-1 text-xs font-medium text-slate-950 shadow"
          >
            Reconnecting…
          </div>
        )}
        {(keys.waiting > 0 || keys.awaitingRunner > 0) && (
          <div
            role="status"
            data-testid="keys-waiting"
            className="absolute right-3 bottom-2 z-10 rounded-full bg-slate-800/95 px-3 py-1 text-xs font-medium text-amber-200 shadow ring-1 ring-amber-400/40"
          >
            {keys.waiting > 0
              ? `${plural(keys.waiting, "keystroke")} waiting to be sent`
              : `${plural(keys.awaitingRunner, "keystroke")} waiting for the runner`}
          </div>
        )}
        <div ref={host} className="terminal-host h-full overflow-auto bg-slate-950" />
      </div>
      {watch && live && !readOnly && <KeyBar onKeys={(keys) => type.current(keys)} />}
      {keys.dropped > 0 && (
        <div role="alert" data-testid="keys-dropped" className="border-t border-slate-800 bg-slate-900 px-4 py-2 text-sm text-amber-300">
          {plural(keys.dropped, "keystroke")} never reached the session: {exit || ended ? "it ended" : "the connection ended"}{" "}
          before {keys.dropped === 1 ? "it" : "they"} could be delivered.
        </div>
      )}
      {revoked && !exit && !ended && (
        <div role="status" data-testid="exit-banner" className="border-t border-slate-800 bg-slate-900 px-4 py-2 text-sm text-amber-300">
          Disconnected: this sign-in no longer has access to the session.
        </div>
      )}
      {(exit || ended) && (
        <div
          role="status"
          data-testid="exit-banner"
          className="flex items-center justify-between gap-3 border-t border-slate-800 bg-slate-900 px-4 py-2 text-sm"
        >
          <span
            data-exit={exit ? exitKind(exit) : "ended"}
            className={exit ? EXIT_TEXT[exitKind(exit)] : "text-amber-300"}
          >
            {exit ? `Process ${describeExit(exit)}` : `Session ended: ${ended}`}
          </span>
          {onClose && (
            <button onClick={onClose} className="rounded-md px-2 py-1 text-slate-300 hover:bg-slate-800">
              Close tab
            </button>
          )}
        </div>
      )}
    </div>
  );
}
