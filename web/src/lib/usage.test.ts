import { describe, expect, it } from "vitest";
import type { Usage } from "./protocol";
import { compactTokens, formatCost, inputTokens, usageDetails, usageSpoken, usageSummary } from "./usage";

const usage = (fields: Partial<Usage> = {}): Usage => ({
  input_tokens: 150,
  output_tokens: 40,
  cache_read_tokens: 20,
  cache_creation_tokens: 0,
  cost_usd: 0.12,
  model: "claude-test-1",
  ...fields,
});

describe("compactTokens", () => {
  it.each([
    [0, "0"],
    [950, "950"],
    [999, "999"],
    [1000, "1k"],
    [1049, "1k"],
    [1050, "1.1k"],
    [12_345, "12.3k"],
    [123_456, "123k"],
    [999_400, "999k"],
    [999_960, "1M"],
    [4_100_000, "4.1M"],
    [2_500_000_000, "2.5B"],
  ])("%d → %s", (count, text) => expect(compactTokens(count)).toBe(text));
  it("says ? for what is not a count", () => {
    expect(compactTokens(-1)).toBe("?");
    expect(compactTokens(Number.NaN)).toBe("?");
  });
});

describe("formatCost", () => {
  it.each([
    [0, "$0.00"],
    [0.004, "<$0.01"],
    [0.005, "$0.01"],
    [0.42, "$0.42"],
    [12.3, "$12.30"],
  ])("%d → %s", (usd, text) => expect(formatCost(usd)).toBe(text));
});

describe("usage", () => {
  it("counts cache reads and writes as input", () => {
    expect(inputTokens(usage({ cache_creation_tokens: 5 }))).toBe(175);
  });

  it("is compact, with the cost only when the agent says it", () => {
    expect(usageSummary(usage())).toBe("↑170 ↓40 · $0.12");
    expect(usageSummary(usage({ input_tokens: 12_000, cache_read_tokens: 300, output_tokens: 4100, cost_usd: 0.4213 }))).toBe(
      "↑12.3k ↓4.1k · $0.42",
    );
    expect(usageSummary(usage({ cost_usd: null }))).toBe("↑170 ↓40");
  });

  it("says it in words for screen readers", () => {
    expect(usageSpoken(usage({ input_tokens: 12_000 }))).toBe("12,020 input tokens, 40 output tokens, cost $0.12");
    expect(usageSpoken(usage({ cost_usd: null }))).toBe("170 input tokens, 40 output tokens");
  });

  it("breaks it down with the model", () => {
    expect(usageDetails(usage())).toBe(
      [
        "Input: 170 tokens",
        "  fresh 150, cache reads 20, cache writes 0",
        "Output: 40 tokens",
        "Cost: $0.1200 (as the agent computed it)",
        "Model: claude-test-1",
      ].join("\n"),
    );
    expect(usageDetails(usage({ cost_usd: null, model: null }))).toBe(
      ["Input: 170 tokens", "  fresh 150, cache reads 20, cache writes 0", "Output: 40 tokens", "Cost: not reported by the agent"].join(
        "\n",
      ),
    );
  });
});
