// What the dashboard shows when what it knows goes stale: HQ killed (-9) and back, a runner
// killed (-9) for good. Nothing stale is shown as live, and no keystroke is lost without a word.
// Real HQ (--lost-after 3s) and runner, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startStack, waitFor } from "./harness.mjs";

// Prints a prompt and waits: "needs input" once quiet.
const ASKING = ["sh", "-c", 'printf "Proceed? (y/n) "; read a; echo got-$a; sleep 300'];

let stack;
let page;
let runner;

before(async () => {
  stack = await startStack({ hqArgs: ["--lost-after", "3s"] });
  runner = await waitFor("the runner", async () => (await stack.api("GET", "/api/runners")).json?.find((r) => r.status === "online"));
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("runner-list").getByText(/^online for/).waitFor();
});

after(async () => {
  await stack?.stop();
});

const screen = (id) => page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);

async function typeIn(id, text) {
  await page.locator(`[data-session="${id}"] .xterm-helper-textarea`).focus();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

test("with HQ down: a banner, runners as last heard, no New session, and keystrokes that say they wait", async () => {
  const { json: shell } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["bash", "--norc", "--noprofile"],
  });
  await page.goto(`${stack.url}/sessions/${shell.id}`);
  await typeIn(shell.id, "echo before-$((1+1))");
  await waitFor("the echo", async () => (await screen(shell.id)).includes("before-2"));

  await stack.killHq();
  await page.getByTestId("hq-unreachable").waitFor();
  // The runner's status is as last heard, and no longer counts up as if live.
  await page.getByTestId("runner-list").getByText("online when HQ was last reached").waitFor();
  assert.equal(await page.getByTestId("runner-list").getByText(/^online for/).count(), 0);
  assert.ok(await page.getByRole("button", { name: "New session" }).isDisabled());

  await typeIn(shell.id, "echo queued-$((2+3))");
  await page.getByTestId("keys-waiting").filter({ hasText: /keystrokes waiting to be sent/ }).waitFor();

  await stack.startHq();
  await page.getByTestId("hq-unreachable").waitFor({ state: "detached", timeout: 20000 });
  // What was typed meanwhile arrives once the runner is back, and the pill goes.
  await waitFor("the queued command to run", async () => (await screen(shell.id)).includes("queued-5"), 40000);
  await page.getByTestId("keys-waiting").waitFor({ state: "detached" });
  await stack.api("DELETE", `/api/sessions/${shell.id}`);
});

test("with the runner dead: its sessions say so at once, need nobody, and keystrokes typed into them are said lost", async () => {
  await page.getByTestId("runner-list").getByText(/^online for/).waitFor({ timeout: 40000 });
  const { json: asking } = await stack.api("POST", "/api/sessions", { runner_id: runner.id, command: ASKING });
  await page.goto(`${stack.url}/sessions/${asking.id}`);
  await page.getByRole("navigation", { name: "Open sessions" }).locator('[data-activity="waiting_for_input"]').waitFor();
  await waitFor("the title to count it", async () => (await page.title()) === "(1) AgentRelay");

  await stack.killRunner();
  await page.getByTestId("session-list").getByTestId("runner-offline").waitFor();
  await waitFor("the title to count none", async () => (await page.title()) === "AgentRelay");
  assert.equal(await page.getByTestId("session-list").locator('[data-activity="waiting_for_input"]').count(), 0);

  await typeIn(asking.id, "yes");
  await page.getByTestId("keys-waiting").filter({ hasText: /waiting for the runner/ }).waitFor();
  // --lost-after 3s: the session is lost, and the keystrokes with it, which the page says.
  await page.getByTestId("keys-dropped").filter({ hasText: /never reached the session/ }).waitFor({ timeout: 15000 });
});
