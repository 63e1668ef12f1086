// Keys and access: shortcuts that leave a terminal's keys to its program, the `?` cheat sheet,
// no shortcut hints on a phone, xterm.js's screen-reader mode, and axe-core finding no serious
// violation on the dashboard's views. Real HQ and runner, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { startStack, waitFor } from "./harness.mjs";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

let stack;
let context;
let page;
let runner;

before(async () => {
  stack = await startStack();
  runner = await waitFor("the runner", async () => (await stack.api("GET", "/api/runners")).json?.find((r) => r.status === "online"));
  // bypassCSP: axe-core is injected as a script, which HQ's Content-Security-Policy rightly refuses.
  context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
});

after(async () => {
  await stack?.stop();
});

/** axe-core's serious and critical violations on the page as it is now. */
async function violations(on = page) {
  if (!(await on.evaluate(() => "axe" in window))) await on.addScriptTag({ path: AXE });
  const found = await on.evaluate(async () => {
    // A terminal's rows are the program's output, in the program's colours: not the dashboard's.
    const result = await window.axe.run({ exclude: [[".xterm-rows"]] }, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      nodes: v.nodes.slice(0, 4).map((n) => `${n.target.join(" ")}: ${n.failureSummary?.split("\n")[1] ?? ""}`),
    }));
  });
  return found.filter((v) => v.impact === "serious" || v.impact === "critical");
}

const screen = (id) => page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);

test("no serious accessibility violation on the sign-in page, the overview, a session, the dialogs and a runner", async () => {
  await page.goto(stack.url);
  await page.getByLabel("Access token").waitFor();
  assert.deepEqual(await violations(), [], "sign-in page");
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();

  const { json: asking } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["sh", "-c", 'printf "Proceed? (y/n) "; read a; sleep 300'],
    name: "asks",
  });
  await stack.api("POST", "/api/sessions", { runner_id: runner.id, command: ["sh", "-c", "exit 3"], name: "ended" });
  await page.getByTestId("overview-grid").locator('[data-activity="waiting_for_input"]').waitFor();
  await page.getByTestId("session-list").locator('[data-group="finished"]').waitFor();
  assert.deepEqual(await violations(), [], "overview");

  await page.goto(`${stack.url}/sessions/${asking.id}`);
  await page.locator(`[data-session="${asking.id}"] .xterm`).waitFor({ state: "visible" });
  assert.deepEqual(await violations(), [], "a session");

  await page.getByRole("button", { name: "New session" }).first().click();
  await page.getByRole("dialog").getByLabel("Runner").waitFor();
  assert.deepEqual(await violations(), [], "New session");
  await page.keyboard.press("Escape");
  await page.locator("dialog").waitFor({ state: "detached" });

  await page.getByRole("button", { name: "Keyboard shortcuts and accessibility" }).click();
  await page.getByTestId("shortcuts").waitFor();
  assert.deepEqual(await violations(), [], "shortcuts");
  await page.keyboard.press("Escape");
  await page.getByTestId("shortcuts").waitFor({ state: "detached" });

  await page.goto(`${stack.url}/runners/${runner.id}`);
  await page.getByRole("heading", { name: runner.name }).waitFor();
  assert.deepEqual(await violations(), [], "a runner");
  await stack.api("DELETE", `/api/sessions/${asking.id}`);
});

test("in a terminal Alt keys reach the program; Ctrl+] then a key reaches the dashboard; ? lists them", async () => {
  const { json: shell } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["bash", "--norc", "--noprofile"],
  });
  await page.goto(`${stack.url}/sessions/${shell.id}`);
  await page.locator(`[data-session="${shell.id}"] .xterm-helper-textarea`).focus();
  await page.keyboard.type("cat -v");
  await page.keyboard.press("Enter");
  // Meta-n and Meta-w, as Emacs and readline know them: ESC n, ESC w.
  await page.keyboard.press("Alt+n");
  await page.keyboard.press("Alt+w");
  await page.keyboard.press("Control+]");
  await page.getByTestId("prefix-pending").waitFor();
  await page.keyboard.press("Control+]");
  await page.keyboard.press("Enter");
  await waitFor("the program to get ESC n, ESC w and one Ctrl+]", async () => (await screen(shell.id)).includes("^[n^[w^]"));
  assert.equal(await page.locator("dialog[open]").count(), 0, "Alt+N opened nothing over the terminal");
  assert.equal(new URL(page.url()).pathname, `/sessions/${shell.id}`, "Alt+W closed nothing");

  // The prefix, then N: New session.
  await page.keyboard.press("Control+]");
  await page.keyboard.press("n");
  await page.getByRole("dialog").getByLabel("Runner").waitFor();
  await page.keyboard.press("Escape");
  await page.locator("dialog").waitFor({ state: "detached" });

  // Outside the terminal: ? shows the list, with the screen reader setting.
  await page.locator("header").click({ position: { x: 400, y: 10 } });
  await page.keyboard.press("?");
  const sheet = page.getByTestId("shortcuts");
  await sheet.getByText("Ctrl").first().waitFor();
  await sheet.getByLabel(/Screen reader mode/).check();
  await page.keyboard.press("Escape");
  await sheet.waitFor({ state: "detached" });
  // xterm.js's screen-reader mode: its accessible tree of the screen's rows.
  await page.locator(`[data-session="${shell.id}"] .xterm-accessibility-tree`).waitFor({ state: "attached" });
  await stack.api("DELETE", `/api/sessions/${shell.id}`);
});

test("a phone shows no keyboard shortcut hints, and no serious violation", async () => {
  const phone = await stack.browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, bypassCSP: true });
  try {
    const small = await phone.newPage();
    await small.goto(stack.url);
    await small.getByLabel("Access token").fill(stack.adminToken);
    await small.getByRole("button", { name: "Sign in" }).click();
    await small.getByRole("heading", { name: "AgentRelay dashboard" }).waitFor();
    await small.getByRole("button", { name: "Toggle runners and sessions" }).click();
    await small.getByTestId("runner-list").waitFor();
    const text = await small.evaluate(() => document.body.innerText);
    assert.doesNotMatch(text, /Alt\+|Alt\s*\+\s*N|Press Alt/);
    assert.deepEqual(await violations(small), [], "phone");
  } finally {
    await phone.close();
  }
});
