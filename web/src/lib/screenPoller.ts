// Polls one session's screen for an overview tile: only while the tile is visible, at most one
// request in flight, and at once when asked (the session's activity changed). Knows nothing about
// React; timers are replaceable in tests.

import type { Screen } from "./protocol";

export interface ScreenPollerOptions {
  /** Milliseconds between polls while visible. */
  interval?: number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
}

export interface ScreenPollerHandlers {
  onScreen(screen: Screen): void;
  /** A failed poll: "stop" ends polling for good (the session ended, access is gone). */
  onError(error: unknown): "stop" | "retry";
}

export const SCREEN_POLL_MS = 1500;

export class ScreenPoller {
  private visible = false;
  private inFlight = false;
  private pending = false;
  private stopped = false;
  private timer: unknown = null;
  private readonly options: Required<ScreenPollerOptions>;

  constructor(
    private readonly fetchScreen: () => Promise<Screen>,
    private readonly handlers: ScreenPollerHandlers,
    options: ScreenPollerOptions = {},
  ) {
    this.options = {
      interval: options.interval ?? SCREEN_POLL_MS,
      setTimeout: options.setTimeout ?? ((fn, ms) => window.setTimeout(fn, ms)),
      clearTimeout: options.clearTimeout ?? ((h) => window.clearTimeout(h as number)),
    };
  }

  /** Visible: poll now and then every interval. Hidden: no more requests until visible again. */
  setVisible(visible: boolean): void {
    if (visible === this.visible) return;
    this.visible = visible;
    if (visible) this.poll();
    else this.cancelTimer();
  }

  /** Poll now (if visible), e.g. because the session's activity changed. */
  poke(): void {
    this.poll();
  }

  dispose(): void {
    this.stopped = true;
    this.cancelTimer();
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.options.clearTimeout(this.timer);
    this.timer = null;
  }

  private poll(): void {
    if (this.stopped || !this.visible) return;
    if (this.inFlight) {
      this.pending = true;
      return;
    }
    this.cancelTimer();
    this.inFlight = true;
    this.fetchScreen().then(
      (screen) => {
        if (!this.stopped) this.handlers.onScreen(screen);
        this.settle();
      },
      (error: unknown) => {
        if (!this.stopped && this.handlers.onError(error) === "stop") this.dispose();
        this.settle();
      },
    );
  }

  private settle(): void {
    this.inFlight = false;
    if (this.stopped || !this.visible) return;
    if (this.pending) {
      this.pending = false;
      this.poll();
    } else {
      this.timer = this.options.setTimeout(() => {
        this.timer = null;
        this.poll();
      }, this.options.interval);
    }
  }
}
