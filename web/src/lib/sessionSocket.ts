// One session's WebSocket: connect, track the output offset, reconnect with ?from=<offset> after a
// network blip, and keep input and resizes in order; keep the latest activity and presence HQ
// reported. Knows nothing about React or xterm.js.

import {
  activateFrame,
  endsSession,
  FrameErrorCode,
  parseServerFrame,
  resizeFrame,
  type ActivityState,
  type Attached,
  type ExitStatus,
  type TermSize,
  type Viewer,
} from "./protocol";

/**
 * `catching-up`: dropped on purpose (output came faster than it could be drawn), see `suspend`.
 * `revoked`: the sign-in (or share) this socket used is gone; it does not reconnect.
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "catching-up" | "exited" | "ended" | "revoked";

export interface SessionHandlers {
  /** Output bytes, in order; `snapshot` marks a screen drawing that is not part of the stream. */
  onData(bytes: Uint8Array, snapshot: boolean): void;
  onState(state: ConnectionState): void;
  onExit(exit: ExitStatus): void;
  /** Bytes [from, to) could not be delivered. */
  onGap(from: number, to: number): void;
  /** A problem worth showing: a bad frame, a lost session. */
  onError(code: FrameErrorCode, message: string): void;
  /** What the session is doing; after each attach and on every change. */
  onActivity?(activity: ActivityState): void;
  /** Who is attached (this viewer included); after each attach and on every change. */
  onPresence?(viewers: Viewer[]): void;
  /** The PTY's size: after each attach, before any output, and on every change. */
  onSize?(size: TermSize): void;
  /** After each `attached` frame, before the output that follows it. */
  onAttached?(attached: Attached): void;
  /** Keystrokes that wait or were given up: after every change. */
  onQueue?(queue: KeyQueue): void;
  /** HQ closed with 1008 (the token was revoked), or `probe` said the sign-in is gone. */
  onAccessLost?(): void;
}

/** Keystrokes (one per `sendInput`) that have not reached the session's process. */
export interface KeyQueue {
  /** Held here while there is no connection; sent after the reconnect. */
  waiting: number;
  /** Sent while HQ said the session's runner is offline: they wait at HQ for the runner. */
  awaitingRunner: number;
  /** Given up: over the queue's bound, or the session ended (or was lost) before they could go. */
  dropped: number;
}

/** The subset of the browser's WebSocket this module uses (so tests can substitute it). */
export interface SocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string | ArrayBufferLike | Uint8Array): void;
  close(code?: number): void;
}

export interface SessionSocketOptions {
  /** Creates a socket for a URL; defaults to the browser's WebSocket. */
  connect?: (url: string) => SocketLike;
  /** Base URL, e.g. `ws://host`; defaults to the page's origin. */
  base?: string;
  /** Delay before reconnect attempt `n` (0-based). */
  backoff?: (attempt: number) => number;
  /** Timer functions, replaceable in tests. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** Watch only: keystrokes and resizes are never sent (HQ would refuse them anyway). */
  readOnly?: boolean;
  /**
   * Watch mode (`?watch=true`): this viewer's window size is told to HQ but the PTY takes it only
   * once this viewer types or calls `activate` (a phone must not resize a desktop's session).
   */
  watch?: boolean;
  /**
   * After a connection fails to open: resolves true when the sign-in is gone (a browser cannot
   * see the upgrade's 401, so this asks an authenticated endpoint). Without it, always retry.
   */
  probe?: () => Promise<boolean>;
}

const OPEN = 1;
/** HQ closes a viewer whose token was revoked with this code. */
const POLICY_VIOLATION = 1008;
const MAX_QUEUED_INPUT = 64 * 1024;
/** HQ drops a viewer's frame over its --max-frame-size (1 MiB by default): pastes go in pieces. */
export const MAX_INPUT_FRAME = 64 * 1024;
/**
 * How much of a finished session's output a resync redraws (HQ replays a finished one whole):
 * under OutputFlow's lag mark, so redrawing it cannot trip flow control again.
 */
export const FINISHED_TAIL = 128 * 1024;

export function defaultBackoff(attempt: number): number {
  const ceiling = Math.min(250 * 2 ** attempt, 5000);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function pageBase(): string {
  const { protocol, host } = window.location;
  return `${protocol === "https:" ? "wss:" : "ws:"}//${host}`;
}

export class SessionSocket {
  /** Offset of the next output byte this viewer needs. */
  offset: number | null = null;
  state: ConnectionState = "connecting";
  /** The latest activity HQ reported, or null before the first report. */
  activity: ActivityState | null = null;
  /** Who was attached at the latest presence report. */
  viewers: Viewer[] = [];
  /** The PTY's size as HQ last said, or null before the first report. */
  ptySize: TermSize | null = null;

  private socket: SocketLike | null = null;
  private attempts = 0;
  private timer: unknown = null;
  private expectSnapshot = false;
  private attached = false;
  private size: { rows: number; cols: number } | null = null;
  private queued: Array<string | Uint8Array> = [];
  private queuedBytes = 0;
  /** Keystrokes (sendInput calls) queued now, waiting for the runner, and given up so far. */
  private waitingKeys = 0;
  private awayKeys = 0;
  private droppedKeys = 0;
  /** HQ said the runner is offline, and nobody has said it is back. */
  private runnerAway = false;
  private stopped = false;
  /** During a resync: the offset reached before `suspend`. */
  private resyncFrom: number | null = null;
  private readonly encoder = new TextEncoder();
  private readonly options: Required<SessionSocketOptions>;

  constructor(
    readonly sessionId: string,
    private readonly handlers: SessionHandlers,
    options: SessionSocketOptions = {},
  ) {
    this.options = {
      connect: options.connect ?? ((url) => new WebSocket(url) as unknown as SocketLike),
      base: options.base ?? pageBase(),
      backoff: options.backoff ?? defaultBackoff,
      setTimeout: options.setTimeout ?? ((fn, ms) => window.setTimeout(fn, ms)),
      clearTimeout: options.clearTimeout ?? ((h) => window.clearTimeout(h as number)),
      readOnly: options.readOnly ?? false,
      watch: options.watch ?? false,
      probe: options.probe ?? (() => Promise.resolve(false)),
    };
    this.open();
  }

  /** The URL of the next connection: resumes at the current offset once one is known. */
  url(): string {
    const path = `${this.options.base}/api/v1/ws/session/${encodeURIComponent(this.sessionId)}`;
    const query = new URLSearchParams();
    if (this.offset !== null) query.set("from", String(this.offset));
    if (this.options.watch) query.set("watch", "true");
    const text = query.toString();
    return text ? `${path}?${text}` : path;
  }

  /** Makes the PTY take this viewer's size now, as typing would ("Fit to this window"). */
  activate(): void {
    if (this.options.readOnly || this.stopped) return;
    if (this.socket && this.socket.readyState === OPEN && this.attached) this.socket.send(activateFrame());
  }

  /** Sends keystrokes; queued (bounded) while reconnecting. */
  sendInput(data: string | Uint8Array): void {
    if (this.options.readOnly) return;
    if (this.stopped) {
      // Typed into a session that is over, or a socket closed for good: said, not swallowed.
      this.droppedKeys++;
      this.reportQueue();
      return;
    }
    const bytes = typeof data === "string" ? this.encoder.encode(data) : data;
    if (this.socket && this.socket.readyState === OPEN && this.attached) {
      for (let at = 0; at < bytes.length; at += MAX_INPUT_FRAME) {
        this.socket.send(bytes.subarray(at, at + MAX_INPUT_FRAME));
      }
      if (this.runnerAway) {
        this.awayKeys++;
        this.reportQueue();
      }
    } else if (this.queuedBytes + bytes.length <= MAX_QUEUED_INPUT) {
      this.queued.push(bytes);
      this.queuedBytes += bytes.length;
      this.waitingKeys++;
      this.reportQueue();
    } else {
      this.droppedKeys++;
      this.reportQueue();
    }
  }

  /** Sets the terminal size; re-sent after every reconnect. */
  resize(rows: number, cols: number): void {
    if (this.options.readOnly) return;
    if (this.size && this.size.rows === rows && this.size.cols === cols) return;
    this.size = { rows, cols };
    if (this.socket && this.socket.readyState === OPEN && this.attached) {
      this.socket.send(resizeFrame(rows, cols));
    }
  }

  /** The session's runner is connected again (the runner list says so): what waited has gone. */
  runnerBack(): void {
    if (!this.runnerAway) return;
    this.runnerAway = false;
    if (this.awayKeys > 0) {
      this.awayKeys = 0;
      this.reportQueue();
    }
  }

  /** Closes for good. */
  close(): void {
    this.stopped = true;
    if (this.timer !== null) this.options.clearTimeout(this.timer);
    this.socket?.close(1000);
    this.socket = null;
  }

  /** Drops the connection without reconnecting, until `resync`; keystrokes are queued meanwhile. */
  suspend(): void {
    if (this.stopped) return;
    if (this.timer !== null) this.options.clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    this.attached = false;
    socket?.close(1000);
    this.setState("catching-up");
  }

  /**
   * Re-attaches without `from`, so HQ sends the current screen (a snapshot) rather than everything
   * missed. The caller has reset its terminal.
   */
  resync(): void {
    if (this.stopped) return;
    if (this.resyncFrom === null) this.resyncFrom = this.offset;
    this.offset = null;
    this.expectSnapshot = false;
    this.open();
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.handlers.onState(state);
    if (this.stopped && this.waitingKeys + this.awayKeys > 0) {
      // Stopped for good with keystrokes still here, or still waiting for a runner that never
      // came back: they will never reach the process.
      this.droppedKeys += this.waitingKeys + this.awayKeys;
      this.waitingKeys = 0;
      this.awayKeys = 0;
      this.queued = [];
      this.queuedBytes = 0;
      this.reportQueue();
    }
  }

  private reportQueue(): void {
    this.handlers.onQueue?.({ waiting: this.waitingKeys, awaitingRunner: this.awayKeys, dropped: this.droppedKeys });
  }

  private open(): void {
    const socket = this.options.connect(this.url());
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.attached = false;
    let opened = false;
    socket.onopen = () => {
      opened = true;
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      opened = true;
      this.onMessage(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === POLICY_VIOLATION) {
        this.loseAccess();
        return;
      }
      if (!opened && !this.stopped) {
        // Checked while the reconnect waits: a refused upgrade may be an expired sign-in.
        this.options.probe().then(
          (gone) => {
            if (gone) this.loseAccess();
          },
          () => {},
        );
      }
      this.onClose();
    };
    socket.onerror = () => {
      // A close event always follows; reconnecting is decided there.
    };
  }

  private onMessage(data: unknown): void {
    if (typeof data === "string") {
      const frame = parseServerFrame(data);
      if (!frame) return;
      switch (frame.type) {
        case "attached":
          this.onAttached(frame.payload);
          break;
        case "gap":
          this.offset = frame.payload.to;
          this.handlers.onGap(frame.payload.from, frame.payload.to);
          break;
        case "exit":
          this.stopped = true;
          this.setState("exited");
          this.handlers.onExit(frame.payload);
          break;
        case "error":
          if (frame.payload.code === FrameErrorCode.RunnerOffline) this.runnerAway = true;
          if (endsSession(frame.payload.code)) {
            this.stopped = true;
            this.setState("ended");
          }
          this.handlers.onError(frame.payload.code, frame.payload.message);
          break;
        case "activity":
          this.activity = frame.payload;
          this.handlers.onActivity?.(frame.payload);
          break;
        case "presence":
          this.viewers = frame.payload.viewers;
          this.handlers.onPresence?.(frame.payload.viewers);
          break;
        case "size":
          this.ptySize = frame.payload;
          this.handlers.onSize?.(frame.payload);
          break;
      }
      return;
    }
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array);
    if (this.expectSnapshot) {
      this.expectSnapshot = false;
      this.handlers.onData(bytes, true);
      return;
    }
    this.offset = (this.offset ?? 0) + bytes.length;
    this.handlers.onData(bytes, false);
  }

  private onAttached(attached: Attached): void {
    const resyncFrom = this.resyncFrom;
    this.resyncFrom = null;
    const finished = attached.status !== "running" && attached.status !== "starting";
    if (resyncFrom !== null && finished && !attached.snapshot && attached.offset === 0 && resyncFrom > FINISHED_TAIL) {
      // A finished session has no snapshot and would be replayed whole (and flood again): resume
      // near where the stream was instead.
      this.socket?.close(1000);
      this.socket = null;
      this.offset = resyncFrom - FINISHED_TAIL;
      this.open();
      return;
    }
    if (this.offset !== null && attached.offset > this.offset) {
      this.handlers.onGap(this.offset, attached.offset);
    }
    this.offset = attached.offset;
    this.expectSnapshot = attached.snapshot;
    this.attached = true;
    this.attempts = 0;
    this.setState("open");
    this.handlers.onAttached?.(attached);
    const socket = this.socket;
    if (!socket) return;
    if (this.size) socket.send(resizeFrame(this.size.rows, this.size.cols));
    for (const chunk of this.queued) socket.send(chunk);
    this.queued = [];
    this.queuedBytes = 0;
    if (this.waitingKeys > 0) {
      if (this.runnerAway) this.awayKeys += this.waitingKeys;
      this.waitingKeys = 0;
      this.reportQueue();
    }
  }

  private loseAccess(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) this.options.clearTimeout(this.timer);
    this.timer = null;
    this.socket?.close(1000);
    this.socket = null;
    this.setState("revoked");
    this.handlers.onAccessLost?.();
  }

  private onClose(): void {
    if (this.stopped) return;
    this.setState("reconnecting");
    const delay = this.options.backoff(this.attempts++);
    this.timer = this.options.setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.open();
    }, delay);
  }
}
