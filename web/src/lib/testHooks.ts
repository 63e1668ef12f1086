// Read-only hooks for the browser end-to-end tests: the text of an open terminal, read through
// xterm.js's buffer API. Nothing here can write to a terminal or a session.

import type { Terminal } from "@xterm/xterm";

const terminals = new Map<string, Terminal>();

export function registerTerminal(sessionId: string, terminal: Terminal): () => void {
  terminals.set(sessionId, terminal);
  return () => {
    if (terminals.get(sessionId) === terminal) terminals.delete(sessionId);
  };
}

function screenText(sessionId: string): string | null {
  const terminal = terminals.get(sessionId);
  if (!terminal) return null;
  const buffer = terminal.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buffer.length; i++) {
    lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
  }
  return lines.join("\n");
}

function size(sessionId: string): { rows: number; cols: number } | null {
  const terminal = terminals.get(sessionId);
  return terminal ? { rows: terminal.rows, cols: terminal.cols } : null;
}

declare global {
  interface Window {
    __agentrelay?: {
      screenText: (sessionId: string) => string | null;
      size: (sessionId: string) => { rows: number; cols: number } | null;
      sessions: () => string[];
    };
  }
}

window.__agentrelay = { screenText, size, sessions: () => [...terminals.keys()] };
