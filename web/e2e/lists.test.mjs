// A dozen sessions at once: the list groups them by what they need (input first, finished last),
// searches them, clears finished ones with their output; exits read success, failure or signal
// at a glance; overview previews stay readable. Real HQ and runner, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startStack, waitFor } from "./harness.mjs";

let stack;
let page;
let runner;

before(async () => {
  stack = await startStack();
  runner = await waitFor("the runner", async () => (await stack.api("GET", "/api/runners")).json?.find((r) => r.status === "online"));
  const context = await stack.browser.newContext({ viewport: { width: 1400, height: 900 } });
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

const start = async (command, name) =>
  (await stack.api("POST", "/api/sessions", { runner_id: runner.id, command, ...(name ? { name } : {}) })).json;
const status = async (id) => (await stack.api("GET", `/api/sessions/${id}`)).json?.status;

test("the list groups sessions by what they need, searches them, and clears finished ones for good", async () => {
  const asking = await start(["sh", "-c", 'printf "Proceed? (y/n) "; read a; sleep 300'], "asks-first");
  const busy = await start(["sh", "-c", "while :; do echo tick; sleep 0.1; done"], "busy-one");
  const quiet = await start(["sh", "-c", "echo quiet; sleep 300"], "quiet-one");
  const ok = await start(["true"], "ends-ok");
  const bad = await start(["sh", "-c", "exit 3"], "ends-3");
  const killed = await start(["sh", "-c", "kill -TERM $$"], "ends-killed");
  for (const s of [ok, bad, killed]) await waitFor("an end", async () => (await status(s.id)) === "exited");

  const list = page.getByTestId("session-list");
  await list.locator('[data-group="waiting"]').getByText("asks-first").waitFor();
  await list.locator('[data-group="working"]').getByText("busy-one").waitFor();
  await list.locator('[data-group="idle"]').getByText("quiet-one").waitFor();
  const groups = await list.locator("[data-group]").evaluateAll((els) => els.map((el) => el.dataset.group));
  assert.deepEqual(groups, ["waiting", "working", "idle", "finished"]);

  // Exits: three kinds, three labels, three colours.
  const finished = list.locator('[data-group="finished"]');
  const badge = (name) => finished.getByRole("link").filter({ hasText: name }).locator("[data-exit]");
  assert.equal((await badge("ends-ok").innerText()).trim(), "succeeded · exit 0");
  assert.equal((await badge("ends-3").innerText()).trim(), "failed · exit 3");
  assert.equal((await badge("ends-killed").innerText()).trim(), "killed · SIGTERM");
  const colours = await Promise.all(
    ["ends-ok", "ends-3", "ends-killed"].map((name) => badge(name).evaluate((el) => getComputedStyle(el).color)),
  );
  assert.equal(new Set(colours).size, 3, `colours: ${colours}`);

  // Search: every word must match (names, commands, runners, ids).
  await page.getByLabel("Search sessions").fill("killed ENDS");
  await waitFor("one match", async () => (await list.getByRole("link").count()) === 1);
  await list.getByRole("link").filter({ hasText: "ends-killed" }).waitFor();
  await page.getByLabel("Search sessions").fill("");

  // Clear finished: asked first, then the sessions and their logs are gone.
  await finished.getByRole("button", { name: "Clear finished" }).click();
  await page.getByRole("group", { name: "Clear finished sessions?" }).getByRole("button", { name: "Remove" }).click();
  await finished.waitFor({ state: "detached" });
  for (const s of [ok, bad, killed]) {
    assert.equal((await stack.api("GET", `/api/sessions/${s.id}`)).status, 404);
    assert.equal(existsSync(join(stack.dir, "data", "sessions", `${s.id}.out`)), false);
  }
  assert.equal(await status(quiet.id), "running", "live sessions stay");
  for (const s of [asking, busy, quiet]) await stack.api("DELETE", `/api/sessions/${s.id}`);
});

test("an overview preview of a 150-column screen stays readable, showing its bottom-left", async () => {
  const wide = await start(["sh", "-c", "printf 'LEFT%0146d\\n' 0; printf 'prompt> '; sleep 300"], "wide-one");
  await page.getByRole("button", { name: /Overview/ }).click();
  const preview = page.locator(`[data-testid="overview-tile"][data-session="${wide.id}"] [data-testid="overview-preview"]`);
  await preview.filter({ hasText: "prompt>" }).waitFor();
  const size = await preview.evaluate((el) => parseFloat(getComputedStyle(el).fontSize));
  assert.ok(size >= 10, `the preview's font is ${size}px`);
  await stack.api("DELETE", `/api/sessions/${wide.id}`);
});

test("past the terminal's 10,000 lines it says where the history stops, and the whole output downloads", async () => {
  const long = await start(["sh", "-c", "seq 1 12000; echo long-done; sleep 300"], "long-one");
  await page.goto(`${stack.url}/sessions/${long.id}`);
  await waitFor("the end of the output", async () =>
    (await page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", long.id)).includes("long-done"),
  );
  const note = page.getByTestId("scrollback-limit");
  await note.waitFor();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    note.getByRole("link", { name: "Download the whole output" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `${long.id}.txt`);
  const { readFile } = await import("node:fs/promises");
  const text = await readFile(await download.path(), "utf8");
  const lines = text.split("\n");
  assert.equal(lines[0], "1");
  assert.equal(lines[11999], "12000");
  assert.equal(lines[12000], "long-done");
  await stack.api("DELETE", `/api/sessions/${long.id}`);
});
