// Flow control for output fed to xterm.js. A browser cannot pause a WebSocket, and xterm.js throws
// away writes once ~50 MB wait to be parsed (a flood on a slow machine), which corrupts the screen.
// So: count the bytes handed over but not yet parsed; past a high watermark, or when the oldest of
// them has waited too long, stop feeding and let the owner drop the stream; once xterm.js has
// parsed everything, the owner redraws from a fresh screen. Knows nothing about sockets.

/** What xterm.js offers: `done` runs once `data` has been parsed. */
export interface WriteTarget {
  write(data: Uint8Array, done: () => void): void;
}

export interface OutputFlowOptions {
  /** Unparsed bytes past which the feed stops. */
  highWater?: number;
  /**
   * Unparsed bytes past which the feed also stops when the oldest has waited `maxLag` ms: on a
   * slow machine a few hundred KiB already take seconds to draw, and the socket behind them holds
   * more (a browser reads it no faster than it draws).
   */
  lagWater?: number;
  maxLag?: number;
  /** Milliseconds, for tests. */
  now?: () => number;
  /** Once, when the feed stops: drop the stream (later writes are ignored until `resume`). */
  onOverflow(): void;
  /** Once after an overflow, when everything handed over has been parsed. */
  onDrained(): void;
}

export const DEFAULT_HIGH_WATER = 4 * 1024 * 1024;
export const DEFAULT_LAG_WATER = 256 * 1024;
export const DEFAULT_MAX_LAG = 1000;

export class OutputFlow {
  /** Bytes handed to the target and not yet parsed. */
  pending = 0;
  /** Between an overflow and `resume`: writes are dropped. */
  overflowed = false;
  /** When each unparsed write was handed over, oldest first (xterm.js parses in order). */
  private readonly handedAt: number[] = [];
  private readonly highWater: number;
  private readonly lagWater: number;
  private readonly maxLag: number;
  private readonly now: () => number;

  constructor(
    private readonly target: WriteTarget,
    private readonly options: OutputFlowOptions,
  ) {
    this.highWater = options.highWater ?? DEFAULT_HIGH_WATER;
    this.lagWater = options.lagWater ?? DEFAULT_LAG_WATER;
    this.maxLag = options.maxLag ?? DEFAULT_MAX_LAG;
    this.now = options.now ?? (() => performance.now());
  }

  write(bytes: Uint8Array): void {
    if (this.overflowed) return;
    const length = bytes.length;
    const now = this.now();
    this.pending += length;
    this.handedAt.push(now);
    this.target.write(bytes, () => this.parsed(length));
    const lagging = this.pending > this.lagWater && this.handedAt.length > 0 && now - this.handedAt[0] > this.maxLag;
    if (!this.overflowed && (this.pending > this.highWater || lagging)) {
      this.overflowed = true;
      this.options.onOverflow();
    }
  }

  /** Accepts output again (after the owner has reset the screen and re-attached). */
  resume(): void {
    this.overflowed = false;
  }

  private parsed(length: number): void {
    this.pending -= length;
    this.handedAt.shift();
    if (this.overflowed && this.pending === 0) this.options.onDrained();
  }
}
