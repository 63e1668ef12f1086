// How many rows and columns fit in a terminal's pane. Measured on the pane's outer box, which
// never scrolls: a terminal larger than the pane (another viewer's size) makes the inner box show
// scrollbars, and measuring that box would shrink the answer by a scrollbar, send that as this
// window's size, and so take the PTY back from the viewer that has it.

import type { Terminal } from "@xterm/xterm";

/** xterm.js's cell size in CSS pixels, as @xterm/addon-fit reads it (not yet public API). */
function cellSize(term: Terminal): { width: number; height: number } | null {
  const core = (term as unknown as { _core?: { _renderService?: { dimensions?: { css?: { cell?: { width: number; height: number } } } } } })
    ._core;
  const cell = core?._renderService?.dimensions?.css?.cell;
  return cell && cell.width > 0 && cell.height > 0 ? cell : null;
}

/** Rows and columns of `term`'s font that fit in `box` (xterm.js's padding and scrollbar aside). */
export function paneSize(term: Terminal, box: HTMLElement): { rows: number; cols: number } | null {
  const cell = cellSize(term);
  const element = term.element;
  if (!cell || !element) return null;
  const rect = box.getBoundingClientRect();
  if (rect.width === 0 || rect.height === 0) return null;
  const style = window.getComputedStyle(element);
  const padX = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
  const padY = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
  // xterm.js's own vertical scrollbar, as the fit addon reserves it.
  const scrollbar = term.options.scrollback === 0 ? 0 : (term.options.overviewRuler?.width ?? 14);
  return {
    cols: Math.max(2, Math.floor((rect.width - padX - scrollbar) / cell.width)),
    rows: Math.max(1, Math.floor((rect.height - padY) / cell.height)),
  };
}
