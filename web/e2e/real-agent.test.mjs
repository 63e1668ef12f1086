// Claude Code itself in the dashboard: started from its preset in New session, given a task in the
// terminal, its real approval dialog flags the tab "needs input" once, "1" typed in the terminal
// approves it, the command's file appears, and the badge leaves waiting_for_input. Claude Code
// talks to the test harness's fake model server (agentrelay-fake-model); `make test-deps`
// installs it into .test-tools/agents. Skipped, loudly, only when it is not installed.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { BIN, startStack, waitFor } from "./harness.mjs";

const ARTIFACTS = resolve(import.meta.dirname, "artifacts");
const AGENT_BIN =
  process.env.AGENTRELAY_AGENT_BIN ?? resolve(import.meta.dirname, "../../.test-tools/agents/node_modules/.bin");
const INSTALLED = existsSync(join(AGENT_BIN, "claude"));
if (!INSTALLED) {
  console.error(
    `\n!!!!!!!!\nSKIPPED: Claude Code is not installed in ${AGENT_BIN} (make test-deps installs it); ` +
      "the dashboard test with the real agent did not run.\n!!!!!!!!\n",
  );
}
const KEY = "sk-ant-api03-agentrelay-test-key-0123456789abcdefghij";
// Claude Code, whatever its mood, is slow to start on a busy two-core machine.
const AGENT_WAIT = 60000;

let stack;
let model;
let world;

/** The fake model server: on "make the file" it runs a command that writes, then answers. */
async function startModel() {
  const child = spawn(
    join(BIN, "agentrelay-fake-model"),
    ["--on", "make the file", "--run", "touch made-by-claude && echo made", "--answer", "The file is made."],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const url = await new Promise((done, fail) => {
    child.once("error", fail);
    createInterface({ input: child.stdout }).once("line", done);
  });
  return { url, stop: () => child.stdin.end() };
}

before(async () => {
  if (!INSTALLED) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  model = await startModel();
  const root = realpathSync(mkdtempSync(join(tmpdir(), "agentrelay-claude-")));
  world = { root, home: join(root, "home"), work: join(root, "work") };
  mkdirSync(join(world.home, ".claude"), { recursive: true });
  mkdirSync(world.work);
  // The first-run questions that cannot be answered offline, answered; manual permission mode.
  writeFileSync(
    join(world.home, ".claude.json"),
    JSON.stringify({
      hasCompletedOnboarding: true,
      customApiKeyResponses: { approved: [KEY.slice(-20)], rejected: [] },
      projects: { [world.work]: { hasTrustDialogAccepted: true } },
    }),
  );
  writeFileSync(join(world.home, ".claude", "settings.json"), JSON.stringify({ disableAutoMode: "disable" }));
  stack = await startStack();
  await stack.startRunner("claude-box", [], {
    PATH: `${AGENT_BIN}:${process.env.PATH}`,
    HOME: world.home,
    ANTHROPIC_BASE_URL: model.url,
    ANTHROPIC_API_KEY: KEY,
    DISABLE_AUTOUPDATER: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_ERROR_REPORTING: "1",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL: "1",
  });
});

after(async () => {
  await stack?.stop();
  model?.stop();
  if (world) rmSync(world.root, { recursive: true, force: true });
});

const screen = (p, id) => p.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);

// Presses `key` like a person would: again if the same dialog is still up a few seconds later.
// Claude Code draws its dialog a moment before it listens, and a key typed in that moment is lost
// (about one loaded run in five).
async function answer(page, id, key, prompt) {
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.type(key);
    try {
      await waitFor("the dialog to take the answer", async () => !(await screen(page, id)).includes(prompt), 5000);
      return;
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

// Samples the tab's badge every 20 ms into window.__badges, each change once.
function recordBadges() {
  window.__badges = [];
  setInterval(() => {
    const now = document.querySelector('nav[aria-label="Open sessions"] [data-activity]')?.getAttribute("data-activity") ?? null;
    if (window.__badges.at(-1) !== now) window.__badges.push(now);
  }, 20);
}

test("Claude Code asks in the dashboard, the badge says so once, and the approved command runs", { skip: !INSTALLED }, async () => {
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(recordBadges);
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();

  await page.getByRole("button", { name: "New session" }).first().click();
  const dialog = page.getByRole("dialog");
  const runner = (await stack.api("GET", "/api/runners")).json.find((r) => r.name === "claude-box");
  await dialog.locator("select").selectOption(runner.id);
  await dialog.getByTestId("presets").getByRole("button", { name: /Claude Code/ }).click();
  await dialog.getByLabel(/Working directory/).fill(world.work);
  await dialog.getByRole("button", { name: "Start" }).click();

  const id = await waitFor("the terminal to open", async () => (await page.evaluate(() => window.__agentrelay?.sessions() ?? []))[0]);
  const session = async () => (await stack.api("GET", `/api/sessions/${id}`)).json;
  await waitFor("Claude Code's input box", async () => (await screen(page, id)).includes("? for shortcuts"), AGENT_WAIT);
  await waitFor("it to wait for a task", async () => (await session()).activity === "waiting_for_input", AGENT_WAIT);
  // The badge, not only the API: Claude Code may draw once more after its first quiet screen (a
  // clean-clone CI run typed while the tab still said "working" from that, and saw no change to it).
  await waitFor("the badge to say so", async () => (await page.evaluate(() => window.__badges.at(-1))) === "waiting_for_input", AGENT_WAIT);

  await page.locator(`[data-session="${id}"] .xterm`).click();
  const typedAt = await page.evaluate(() => window.__badges.length);
  await page.keyboard.type("please make the file");
  await page.keyboard.press("Enter");

  await waitFor("the approval dialog", async () => (await screen(page, id)).includes("Do you want to proceed?"), AGENT_WAIT);
  await page.getByRole("navigation", { name: "Open sessions" }).locator('[data-activity="waiting_for_input"]').waitFor();
  await page.getByTestId("session-list").locator('[data-activity="waiting_for_input"]').waitFor();
  const { json: shown } = await stack.api("GET", `/api/sessions/${id}/screen?format=json`);
  assert.equal(shown.menu.prompt, "Do you want to proceed?");
  assert.deepEqual(shown.menu.options[0], { key: "1", label: "Yes" });
  assert.equal(existsSync(join(world.work, "made-by-claude")), false, "ran before it was approved");
  await page.screenshot({ path: join(ARTIFACTS, "claude-approval.png") });

  const answeredAt = await page.evaluate(() => window.__badges.length);
  await answer(page, id, shown.menu.options[0].key, shown.menu.prompt);
  await waitFor("the approved command's file", async () => existsSync(join(world.work, "made-by-claude")), AGENT_WAIT);
  await waitFor("the answer", async () => (await screen(page, id)).includes("The file is made."), AGENT_WAIT);
  await waitFor(
    "the turn to end: waiting for the next task, no menu",
    async () => {
      const [now, { json }] = await Promise.all([session(), stack.api("GET", `/api/sessions/${id}/screen?format=json`)]);
      return now.activity === "waiting_for_input" && json.menu === null;
    },
    AGENT_WAIT,
  );
  // The API may say so a moment before the dashboard's event stream does.
  await waitFor("the badge to follow", async () => (await page.evaluate(() => window.__badges.at(-1))) === "waiting_for_input", AGENT_WAIT);

  const badges = await page.evaluate(() => window.__badges);
  const asking = badges.slice(typedAt, answeredAt);
  // The whole history in the message: what the badge said before the task matters too.
  const history = `the badge between the task and the answer: ${asking} (before the task: ${badges.slice(0, typedAt)})`;
  assert.deepEqual(asking.filter((b) => b === "waiting_for_input"), ["waiting_for_input"], history);
  assert.ok(asking.includes("working"), history);
  // After the answer it works, then waits for the next task.
  const after = badges.slice(answeredAt);
  assert.deepEqual([after[0], after.at(-1)], ["working", "waiting_for_input"], `after the answer: ${after}`);

  assert.equal((await stack.api("DELETE", `/api/sessions/${id}`)).status, 202);
  await context.close();
});
