// Sessions outlive their runner: the runner dies (kill -9) and comes back under an open terminal,
// and the person keeps typing. Real HQ, runner and session host, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startStack, waitFor } from "./harness.mjs";

let stack;

before(async () => {
  stack = await startStack({ hqArgs: ["--lost-after", "1h"] });
});

after(async () => {
  await stack?.stop();
});

const screen = (page, id) => page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);

async function screenContains(page, id, text) {
  await waitFor(`terminal to show ${JSON.stringify(text)}`, async () => (await screen(page, id)).includes(text));
}

test("the runner restarts under an open terminal and typing goes on", async () => {
  const runnerId = await waitFor("the runner online", async () => {
    const { json } = await stack.api("GET", "/api/runners");
    return json?.find((r) => r.status === "online")?.id;
  });
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  const { json: session } = await stack.api("POST", "/api/sessions", {
    runner_id: runnerId,
    command: ["env", "E2E_RESTART=1", "bash", "--norc", "--noprofile"],
  });
  await page.goto(`${stack.url}/sessions/${session.id}`);
  const input = page.locator(`[data-session="${session.id}"] .xterm-helper-textarea`);
  await page.locator(`[data-session="${session.id}"] .xterm`).waitFor({ state: "visible" });
  await input.focus();
  await page.keyboard.type("echo before-$((20+1))\n");
  await screenContains(page, session.id, "before-21");

  await stack.killRunner();
  // Typed while no runner is there: it waits, at HQ, for the runner to come back.
  await input.focus();
  await page.keyboard.type("echo during-$((30+2))\n");
  await stack.restartRunner();
  await screenContains(page, session.id, "during-32");
  await input.focus();
  await page.keyboard.type("echo after-$((40+3))\n");
  await screenContains(page, session.id, "after-43");

  const text = await screen(page, session.id);
  for (const line of ["before-21", "during-32", "after-43"]) {
    assert.equal(text.split("\n").filter((l) => l.trim() === line).length, 1, `${line} once: ${text}`);
  }
  const { json: after } = await stack.api("GET", `/api/sessions/${session.id}`);
  assert.equal(after.status, "running", "the same session, still running");
  await context.close();
});
