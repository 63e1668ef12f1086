// Tokens and cost in the dashboard: a stand-in agent exports OTLP/JSON metrics (Claude Code's
// names) to the endpoint its runner gives the session, and the figures show in the session list,
// the terminal's header and the overview tile, with the breakdown and the model in the tooltip.
// Real HQ and runners, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startStack, waitFor } from "./harness.mjs";

// Two deltas of input/output/cacheRead, then a cost, as Claude Code's OpenTelemetry SDK exports
// them (crates/e2e/tests/usage.rs uses the same stand-in); then it says so and waits.
const AGENT = `
import json, os, sys, urllib.request
base = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
def point(kind, value):
    attributes = [{"key": "model", "value": {"stringValue": "claude-test-1"}}]
    if kind:
        attributes.append({"key": "type", "value": {"stringValue": kind}})
    return {"attributes": attributes, "startTimeUnixNano": "1", "timeUnixNano": "2", "asDouble": value}
def export(name, points):
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": name, "unit": "tokens", "sum": {"dataPoints": points, "aggregationTemporality": 1, "isMonotonic": True}}]}]}]}
    request = urllib.request.Request(base + "/v1/metrics", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert urllib.request.urlopen(request).status == 200
export("claude_code.token.usage", [point("input", 100), point("output", 30), point("cacheRead", 20)])
export("claude_code.token.usage", [point("input", 50), point("output", 10)])
export("claude_code.cost.usage", [point(None, 0.12)])
print("reported", flush=True)
sys.stdin.readline()
`;

let stack;
let page;
let runner;

before(async () => {
  stack = await startStack();
  const presets = join(stack.dir, "meter-presets.toml");
  writeFileSync(presets, `[[preset]]\nname = "meter"\ncommand = ["python3", "-c", '''${AGENT}''']\ntelemetry = "otlp"\n`);
  runner = await stack.startRunner("meter-box", ["--presets", presets, "--allow", "python3"]);
  const context = await stack.browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("runner-list").getByText("meter-box").waitFor();
});

after(async () => {
  await stack?.stop();
});

const SUMMARY = "↑170 ↓40 · $0.12";

async function shows(what, locator, text) {
  await waitFor(`${what} to show ${text}`, async () => {
    const shown = await locator.textContent({ timeout: 200 }).catch(() => null);
    return shown?.includes(text);
  });
}

test("an agent's tokens and cost show in the session list, the terminal header and the overview", async () => {
  const { json: session, status } = await stack.api("POST", "/api/sessions", { runner_id: runner.id, preset: "meter" });
  assert.equal(status, 201, JSON.stringify(session));
  await page.goto(`${stack.url}/sessions/${session.id}`);
  await waitFor("the agent to report", async () =>
    (await page.evaluate((id) => window.__agentrelay?.screenText(id) ?? "", session.id)).includes("reported"),
  );

  // The session list: compact, with the whole breakdown and the model in the tooltip.
  const item = page.getByTestId("session-list").locator(`a[href="/sessions/${session.id}"]`).getByTestId("usage");
  await shows("the session list", item, SUMMARY);
  const tooltip = await item.getAttribute("title");
  assert.match(tooltip, /Input: 170 tokens/);
  assert.match(tooltip, /fresh 150, cache reads 20, cache writes 0/);
  assert.match(tooltip, /Output: 40 tokens/);
  assert.match(tooltip, /Cost: \$0\.1200/);
  assert.match(tooltip, /Model: claude-test-1/);
  // Screen readers hear it in words rather than arrows.
  assert.match(await item.textContent(), /170 input tokens, 40 output tokens, cost \$0\.12/);

  // The terminal's header (the overview's tile, hidden behind it, says it too).
  await shows("the terminal header", page.locator(`div[data-session="${session.id}"]`).getByTestId("usage"), SUMMARY);

  // The overview tile.
  await page.getByRole("button", { name: /Overview/ }).click();
  await shows("the overview tile", page.locator(`[data-testid="overview-tile"][data-session="${session.id}"]`).getByTestId("usage"), SUMMARY);

  // A session whose agent reports nothing shows no figures.
  const quiet = (await stack.api("POST", "/api/sessions", { runner_id: runner.id, command: ["python3", "-c", "input()"] })).json;
  const tile = page.locator(`[data-testid="overview-tile"][data-session="${quiet.id}"]`);
  await tile.waitFor();
  assert.equal(await tile.getByTestId("usage").count(), 0);
});
