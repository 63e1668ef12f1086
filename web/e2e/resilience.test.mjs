// The dashboard under stress and after losing its sign-in: an output flood on a slow machine, a
// sign-in revoked server-side, a share link revoked while watched. Real HQ and runner, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startStack, waitFor } from "./harness.mjs";

let stack;
let runnerId;

before(async () => {
  stack = await startStack();
  runnerId = await waitFor("the runner to come online", async () => {
    const { json } = await stack.api("GET", "/api/runners");
    return json?.find((r) => r.status === "online")?.id;
  });
});

after(async () => {
  await stack?.stop();
});

const screen = (page, id) => page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);

async function screenContains(page, id, text, ms) {
  await waitFor(`terminal to show ${JSON.stringify(text)}`, async () => (await screen(page, id)).includes(text), ms);
}

/** A page signed in with `token`, collecting page errors and console messages. */
async function signedIn(token) {
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const messages = [];
  page.on("pageerror", (error) => messages.push(`pageerror: ${error.message}`));
  page.on("console", (message) => messages.push(`console: ${message.text()}`));
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("runner-list").getByText("online", { exact: true }).waitFor();
  return { context, page, messages };
}

/** Starts bash through the API and opens it from the session list. */
async function openShell(page) {
  const { status, json } = await stack.api("POST", "/api/sessions", {
    runner_id: runnerId,
    command: ["bash", "--norc", "--noprofile"],
  });
  assert.equal(status, 201);
  await page.getByTestId("session-list").getByRole("button").filter({ hasText: "bash --norc" }).first().click();
  await page.locator(`[data-session="${json.id}"] .xterm`).waitFor({ state: "visible" });
  await page.locator(`[data-session="${json.id}"] .xterm-helper-textarea`).focus();
  return json.id;
}

test("a flood on a slow machine loses no write to xterm.js, and typing still stops it", async () => {
  const { context, page, messages } = await signedIn(stack.adminToken);
  try {
    const id = await openShell(page);
    await page.keyboard.type("echo ready-$((1+1))");
    await page.keyboard.press("Enter");
    await screenContains(page, id, "ready-2");

    const cdp = await context.newCDPSession(page);
    await cdp.send("Emulation.setCPUThrottlingRate", { rate: 8 });
    await page.keyboard.type("yes");
    await page.keyboard.press("Enter");
    // Far more than this page can draw: without flow control it would still be drawing the flood
    // long after the marker.
    await waitFor(
      "30 MB of output",
      async () => {
        if (messages.some((m) => m.includes("write data discarded"))) return true;
        const { json } = await stack.api("GET", `/api/sessions/${id}`);
        return json.output_bytes > 30_000_000;
      },
      20000,
    );
    await page.keyboard.press("Control+C");
    await page.keyboard.type("echo marker-$((6*7))");
    await page.keyboard.press("Enter");
    await screenContains(page, id, "marker-42", 20000);
    await cdp.send("Emulation.setCPUThrottlingRate", { rate: 1 });
    assert.deepEqual(
      messages.filter((m) => m.includes("write data discarded")),
      [],
    );
  } finally {
    await context.close();
  }
});

test("a sign-in revoked server-side returns the dashboard to the sign-in page, saying why", async () => {
  const created = await stack.api("POST", "/api/tokens", { name: "e2e-user", scope: "user" });
  assert.equal(created.status, 201);
  const { context, page } = await signedIn(created.json.token);
  try {
    const id = await openShell(page);
    await page.keyboard.type("echo live-$((3+4))");
    await page.keyboard.press("Enter");
    await screenContains(page, id, "live-7");

    assert.equal((await stack.api("DELETE", `/api/tokens/${created.json.id}`)).status, 204);
    await page
      .getByRole("status")
      .filter({ hasText: "You were signed out: your sign-in expired or was revoked. Sign in again." })
      .waitFor({ timeout: 10000 });
    await page.getByLabel("Access token").waitFor();
    assert.equal(await page.getByText("Reconnecting…").count(), 0);
  } finally {
    await context.close();
  }
});
