// Whether xterm.js's WebGL renderer really draws. Some browsers give a WebGL2 context whose
// frames never show: headless Chromium at a device pixel ratio of 2 or 3 (a phone's) sizes the
// canvas for the wrong ratio or composites nothing, with no context loss to say so. So once the
// terminal has drawn text, its canvas is checked (its size, then its pixels, read back in the
// frame it was drawn); a renderer that fails is dropped for xterm.js's DOM renderer.

import type { IDisposable, Terminal } from "@xterm/xterm";

/** The background's red+green+blue; a drawn glyph is brighter by far. */
const LIT = 120;

/**
 * Calls `onBlank` (once) if the WebGL canvas of `term` shows nothing, or is sized for another
 * pixel ratio, when there is text to show: checked at the first render with text and at the first
 * after each resize (a renderer can go wrong only after one).
 */
export function checkWebglDraws(term: Terminal, onBlank: (why: string) => void): IDisposable {
  let due = true;
  let done = false;
  const resized = term.onResize(() => {
    due = true;
  });
  const render = term.onRender(() => {
    if (done || !due || !hasText(term)) return;
    const canvas = webglCanvas(term);
    if (!canvas || canvas.clientWidth === 0) return;
    due = false;
    const expected = Math.round(canvas.clientWidth * window.devicePixelRatio);
    const why =
      Math.abs(canvas.width - expected) > 2
        ? `its canvas is ${canvas.width} px wide for ${expected} device pixels`
        : drawsSomething(canvas)
          ? null
          : "nothing drawn";
    if (why) {
      done = true;
      onBlank(why);
    }
  });
  return {
    dispose() {
      resized.dispose();
      render.dispose();
    },
  };
}

function hasText(term: Terminal): boolean {
  const buffer = term.buffer.active;
  for (let row = 0; row < term.rows; row++) {
    if (buffer.getLine(buffer.viewportY + row)?.translateToString(true).trim()) return true;
  }
  return false;
}

function webglCanvas(term: Terminal): HTMLCanvasElement | null {
  const canvases = [...(term.element?.querySelectorAll<HTMLCanvasElement>(".xterm-screen canvas") ?? [])];
  return canvases.filter((c) => !c.classList.contains("xterm-link-layer")).sort((a, b) => b.width - a.width)[0] ?? null;
}

/** Reads the canvas back (right after xterm.js drew it, before the frame is composited). */
function drawsSomething(canvas: HTMLCanvasElement): boolean {
  const probe = document.createElement("canvas");
  probe.width = canvas.width;
  probe.height = canvas.height;
  const context = probe.getContext("2d", { willReadFrequently: true });
  if (!context) return true;
  context.drawImage(canvas, 0, 0);
  const pixels = context.getImageData(0, 0, probe.width, probe.height).data;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i] + pixels[i + 1] + pixels[i + 2] > LIT) return true;
  }
  return false;
}
