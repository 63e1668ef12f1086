// Tokens and cost, for people: "↑12.3k ↓4.1k · $0.42" where a session is listed, and the whole
// breakdown for a tooltip. Input counts cache reads and writes (as `agentrelay sessions` does);
// the cost shows only when the agent says it (Gemini CLI does not).

import type { Usage } from "./protocol";

/** 950, 12.3k, 123k, 4.1M: three significant figures at most. */
export function compactTokens(count: number): string {
  if (!Number.isFinite(count) || count < 0) return "?";
  if (count < 1000) return String(Math.round(count));
  for (const [size, unit] of [
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "k"],
  ] as const) {
    if (count >= size) {
      const value = count / size;
      // 12.3k, but 123k (no tenths past two digits); 999.95k rounds to 1000k, said as 1M.
      const shown = value >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
      if (shown >= 1000 && unit !== "B") return compactTokens(shown * size);
      return `${shown}${unit}`;
    }
  }
  return String(count);
}

/** "$0.42", "$12.30", "<$0.01" (something, but under a cent), "$0.00". */
export function formatCost(usd: number): string {
  if (!Number.isFinite(usd) || usd < 0) return "?";
  if (usd > 0 && usd < 0.005) return "<$0.01";
  return `$${usd.toFixed(2)}`;
}

/** Every input token the model read: fresh, from the cache, and written to it. */
export function inputTokens(usage: Usage): number {
  return usage.input_tokens + usage.cache_read_tokens + usage.cache_creation_tokens;
}

/** "↑12.3k ↓4.1k · $0.42": input sent up, output received; the cost only when known. */
export function usageSummary(usage: Usage): string {
  const tokens = `↑${compactTokens(inputTokens(usage))} ↓${compactTokens(usage.output_tokens)}`;
  return usage.cost_usd === null || usage.cost_usd === undefined ? tokens : `${tokens} · ${formatCost(usage.cost_usd)}`;
}

const exact = (count: number) => count.toLocaleString("en");

/** The same, in words, for screen readers: "12,345 input tokens, 4,100 output tokens, $0.42". */
export function usageSpoken(usage: Usage): string {
  const parts = [`${exact(inputTokens(usage))} input tokens`, `${exact(usage.output_tokens)} output tokens`];
  if (usage.cost_usd !== null && usage.cost_usd !== undefined) parts.push(`cost ${formatCost(usage.cost_usd)}`);
  return parts.join(", ");
}

/** The breakdown, one line each, for a tooltip. */
export function usageDetails(usage: Usage): string {
  const lines = [
    `Input: ${exact(inputTokens(usage))} tokens`,
    `  fresh ${exact(usage.input_tokens)}, cache reads ${exact(usage.cache_read_tokens)}, cache writes ${exact(usage.cache_creation_tokens)}`,
    `Output: ${exact(usage.output_tokens)} tokens`,
    usage.cost_usd === null || usage.cost_usd === undefined
      ? "Cost: not reported by the agent"
      : `Cost: $${usage.cost_usd.toFixed(4)} (as the agent computed it)`,
  ];
  if (usage.model) lines.push(`Model: ${usage.model}`);
  return lines.join("\n");
}
