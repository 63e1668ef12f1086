// One-click commands for the New session form. Runners will advertise their own presets later.

export interface Preset {
  name: string;
  label: string;
  command: string;
}

export const PRESETS: Preset[] = [
  { name: "shell", label: "Shell", command: "bash -l" },
  { name: "claude", label: "Claude Code", command: "claude" },
  { name: "copilot", label: "Copilot", command: "gh copilot" },
  { name: "codex", label: "Codex", command: "codex" },
  { name: "aider", label: "Aider", command: "aider" },
];
