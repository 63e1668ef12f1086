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

let shells = 0;

/** Starts bash through the API and opens it from the session list. */
async function openShell(page) {
  // A tag in the command line tells this shell from earlier tests' in the list.
  const tag = `E2E_SHELL=${++shells}`;
  const { status, json } = await stack.api("POST", "/api/sessions", {
    runner_id: runnerId,
    command: ["env", tag, "bash", "--norc", "--noprofile"],
  });
  assert.equal(status, 201);
  await page.getByTestId("session-list").getByRole("link").filter({ hasText: tag }).click();
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

test("a share link revoked while watched says so and stops; the reconnecting pill never hides the banner", async () => {
  const session = await stack.api("POST", "/api/sessions", {
    runner_id: runnerId,
    command: ["sh", "-c", "echo shared-$((5*5)); sleep 60"],
  });
  assert.equal(session.status, 201);
  const id = session.json.id;
  const share = await stack.api("POST", `/api/sessions/${id}/shares`, {});
  assert.equal(share.status, 201);

  const context = await stack.browser.newContext({ viewport: { width: 1024, height: 700 } });
  try {
    const guest = await context.newPage();
    // The session socket through a relay the test can cut.
    let cut = false;
    const relayed = [];
    await guest.routeWebSocket(/\/api\/v1\/ws\/session\//, (ws) => {
      if (cut) return ws.close({ code: 4000, reason: "cut by the test" });
      ws.connectToServer();
      relayed.push(ws);
    });
    await guest.goto(share.json.url.replace(/^https?:\/\/[^/]+/, stack.url));
    const banner = guest.getByTestId("read-only-banner");
    await banner.waitFor();
    await screenContains(guest, id, "shared-25");

    // The socket drops and retries: the pill sits below the read-only banner.
    cut = true;
    for (const ws of relayed.splice(0)) await ws.close({ code: 4000, reason: "cut by the test" });
    const pill = guest.getByTestId("reconnecting");
    await pill.waitFor({ timeout: 10000 });
    const [a, b] = [await banner.boundingBox(), await pill.boundingBox()];
    assert.ok(b.y >= a.y + a.height, `pill at y=${b.y} overlaps the banner (y=${a.y}, height ${a.height})`);
    cut = false;
    await pill.waitFor({ state: "detached", timeout: 10000 });

    assert.equal((await stack.api("DELETE", `/api/sessions/${id}/shares/${share.json.id}`)).status, 204);
    await guest.getByRole("alert").filter({ hasText: "This share link was revoked or has expired." }).waitFor({ timeout: 10000 });
    assert.equal(await guest.getByTestId("presence").count(), 0);
    assert.equal(await guest.getByText("Reconnecting…").count(), 0);
    // A reload does not try the session again.
    await guest.reload();
    await guest.getByRole("alert").waitFor();
    assert.equal(await guest.getByTestId("read-only-banner").count(), 0);
  } finally {
    await context.close();
    await stack.api("DELETE", `/api/sessions/${id}`);
  }
});
