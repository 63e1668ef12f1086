// Agent awareness end to end: a session that stops on a prompt is flagged everywhere, the overview
// shows live previews of ten sessions, and a read-only share link shows a session to a fresh
// browser without letting its keystrokes through. Real HQ (--idle-after 300ms) and runner.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { startStack, waitFor } from "./harness.mjs";

const ARTIFACTS = resolve(import.meta.dirname, "artifacts");
// Prints a prompt, waits for one line, says what it got, then stays alive.
const PROMPT = `sh -c 'printf "Proceed? (y/n) "; read a; echo got-$a; sleep 60'`;
const PROMPT_ARGV = ["sh", "-c", 'printf "Proceed? (y/n) "; read a; echo got-$a; sleep 60'];

let stack;
let page;
let waitingId;
// Notifications raised before the overview test (the first asker was in front, so maybe none).
let notifiedBefore = 0;

// Records notifications instead of showing them, and whether permission was ever asked for.
function fakeNotifications() {
  window.__notifications = [];
  window.__permissionRequests = 0;
  class FakeNotification {
    static permission = "default";
    static async requestPermission() {
      window.__permissionRequests++;
      FakeNotification.permission = "granted";
      return "granted";
    }
    constructor(title, options) {
      window.__notifications.push({ title, body: options?.body ?? "" });
    }
    close() {}
  }
  Object.defineProperty(window, "Notification", { value: FakeNotification, configurable: true, writable: true });
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startStack();
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(fakeNotifications);
  page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("runner-list").getByText("online", { exact: true }).waitFor();
});

after(async () => {
  await stack?.stop();
});

const screen = (p, id) => p.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);
const openSessions = (p) => p.evaluate(() => window.__agentrelay?.sessions() ?? []);

async function screenContains(p, id, text) {
  await waitFor(`terminal to show ${JSON.stringify(text)}`, async () => (await screen(p, id)).includes(text));
}

async function getSession(id) {
  const { json } = await stack.api("GET", `/api/sessions/${id}`);
  return json;
}

test("a session stopped on a prompt shows 'needs input' and counts in the title", async () => {
  // Nothing asks for notification permission until the user says so.
  assert.equal(await page.evaluate(() => window.__permissionRequests), 0);
  await page.getByRole("button", { name: "Enable notifications" }).click();
  await page.getByRole("button", { name: "Notifications on" }).waitFor();
  assert.equal(await page.evaluate(() => window.__permissionRequests), 1);

  // The runner's own presets, with the shell always there; a custom command still works.
  await page.getByRole("button", { name: "New session" }).first().click();
  const dialog = page.getByRole("dialog");
  const shell = dialog.getByTestId("presets").getByRole("button", { name: /shell/ });
  await shell.waitFor();
  assert.equal(await shell.getAttribute("aria-pressed"), "true");
  assert.notEqual((await dialog.getByTestId("argv-preview").innerText()).trim(), "argv:");
  await dialog.getByLabel("Command").fill(PROMPT);
  await dialog.getByRole("button", { name: "Start" }).click();

  [waitingId] = await waitFor("a terminal to open", async () => {
    const ids = await openSessions(page);
    return ids.length === 1 ? ids : null;
  });
  await screenContains(page, waitingId, "Proceed? (y/n)");

  // The tab and the session list both flag it; the title counts it.
  await page.getByRole("navigation", { name: "Open sessions" }).locator('[data-activity="waiting_for_input"]').waitFor();
  await page.getByTestId("session-list").locator('[data-activity="waiting_for_input"]').waitFor();
  await waitFor("the title to count one waiting session", async () => (await page.title()) === "(1) AgentRelay");
  const session = await getSession(waitingId);
  assert.equal(session.activity, "waiting_for_input");
  assert.equal(session.activity_source, "screen");
  assert.deepEqual(session.command, PROMPT_ARGV);
  assert.equal(session.preset, null);

  // Started as it opens, the form launches the runner's shell preset by name.
  await page.getByRole("button", { name: "New session" }).first().click();
  await dialog.getByRole("button", { name: "Start" }).click();
  const shellId = await waitFor("a second terminal", async () => (await openSessions(page)).find((id) => id !== waitingId));
  const shellSession = await getSession(shellId);
  const runners = (await stack.api("GET", "/api/runners")).json;
  assert.equal(shellSession.preset, "shell");
  assert.deepEqual(shellSession.command, runners[0].presets.find((p) => p.name === "shell").command);
  // Named by its preset, not its command line.
  await page.getByRole("button", { name: "Close tab shell", exact: true }).click();
  assert.equal((await stack.api("DELETE", `/api/sessions/${shellId}`)).status, 202);
  await waitFor("the shell to end", async () => !["starting", "running"].includes((await getSession(shellId)).status));
  await waitFor("the title to count one", async () => (await page.title()) === "(1) AgentRelay");
  notifiedBefore = await page.evaluate(() => window.__notifications.length);
});

test("the overview shows ten live sessions with their screens, filters them, and opens one", async () => {
  assert.ok(waitingId, "needs the first test's session");
  // Nine more agents from the API: eight that print and go quiet, one more that asks.
  const more = [];
  for (let n = 1; n <= 8; n++) {
    const { status, json } = await stack.api("POST", "/api/sessions", {
      runner: "e2e-runner",
      command: ["sh", "-c", `echo tile-${n}-ready; sleep 60`],
    });
    assert.equal(status, 201);
    more.push(json.id);
  }
  await page.getByRole("button", { name: /Overview/ }).click();
  const { json: asking } = await stack.api("POST", "/api/sessions", { runner: "e2e-runner", command: PROMPT_ARGV });
  more.push(asking.id);

  const grid = page.getByTestId("overview-grid");
  await waitFor("ten tiles", async () => (await grid.getByTestId("overview-tile").count()) === 10);
  const tile = (id) => grid.locator(`[data-testid="overview-tile"][data-session="${id}"]`);
  await tile(waitingId).getByTestId("overview-preview").filter({ hasText: "Proceed? (y/n)" }).waitFor();
  await tile(more[3]).getByTestId("overview-preview").filter({ hasText: "tile-4-ready" }).waitFor();
  await tile(waitingId).locator('[data-activity="waiting_for_input"]').waitFor();

  // The second asker counts in the title and, with the overview in front, raises a notification.
  await waitFor("the title to count two waiting sessions", async () => (await page.title()) === "(2) AgentRelay");
  const notes = await waitFor("a notification", () =>
    page.evaluate((n) => window.__notifications.length > n && window.__notifications.slice(n), notifiedBefore),
  );
  assert.deepEqual(
    notes.map((n) => n.title),
    [`Needs input: ${PROMPT}`],
  );

  // Filters: by state, and by a runner label nobody has.
  await page.getByLabel("State").selectOption("waiting_for_input");
  await waitFor("two waiting tiles", async () => (await grid.getByTestId("overview-tile").count()) === 2);
  await page.getByLabel("State").selectOption("idle");
  await waitFor("eight idle tiles", async () => (await grid.getByTestId("overview-tile").count()) === 8);
  await page.getByRole("button", { name: "Clear", exact: true }).click();
  await waitFor("ten tiles again", async () => (await grid.getByTestId("overview-tile").count()) === 10);

  // A phone: tiles stack, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await tile(waitingId).getByTestId("overview-preview").filter({ hasText: "Proceed?" }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page overflows a 390 px screen by ${overflow} px`);
  await page.screenshot({ path: join(ARTIFACTS, "overview-390.png") });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(ARTIFACTS, "overview-desktop.png") });

  // A tile opens its session's tab.
  await tile(waitingId).click();
  await page.getByRole("navigation", { name: "Open sessions" }).locator("a[aria-current=page]").filter({ hasText: "Proceed" }).waitFor();
  await page.locator(`[data-session="${waitingId}"] .xterm`).waitFor({ state: "visible" });

  for (const id of more) assert.equal((await stack.api("DELETE", `/api/sessions/${id}`)).status, 202);
  await waitFor("the title to count one again", async () => (await page.title()) === "(1) AgentRelay");
});

test("a share link shows the session read-only to a fresh browser; its keystrokes never arrive", async () => {
  assert.ok(waitingId, "needs the first test's session");
  await page.getByRole("button", { name: "Share" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("button", { name: "Create link" }).click();
  const url = await dialog.getByTestId("share-url").inputValue();
  assert.match(url, /\/share#./);
  assert.match(await dialog.getByTestId("share-expiry").innerText(), /Expires/);
  await dialog.getByRole("button", { name: "Copy" }).waitFor();
  await dialog.getByRole("button", { name: "Close" }).click();

  const guestContext = await stack.browser.newContext({ viewport: { width: 1024, height: 700 } });
  try {
    const guest = await guestContext.newPage();
    guest.on("pageerror", (error) => console.error("guest page error:", error));
    await guest.goto(url);
    await guest.getByTestId("read-only-banner").waitFor();
    // The token left the address bar before anything else.
    assert.equal(new URL(guest.url()).hash, "");
    assert.equal(new URL(guest.url()).pathname, "/share");

    const [sharedId] = await waitFor("the shared terminal", async () => {
      const ids = await openSessions(guest);
      return ids.length === 1 ? ids : null;
    });
    assert.equal(sharedId, waitingId);
    await screenContains(guest, sharedId, "Proceed? (y/n)");

    // The admin's terminal header shows the watcher.
    await page.getByTestId("presence").filter({ hasText: "read-only" }).waitFor();

    // Typing in the read-only terminal sends nothing…
    await guest.locator(".xterm-helper-textarea").focus();
    await guest.keyboard.type("zzz");
    await guest.keyboard.press("Enter");
    // …and HQ refuses what a share's socket sends anyway, and keeps the socket up.
    const refusals = await guest.evaluate(
      (id) =>
        new Promise((done, fail) => {
          const socket = new WebSocket(`${location.origin.replace(/^http/, "ws")}/api/v1/ws/session/${id}`);
          const codes = [];
          const timer = setTimeout(() => fail(new Error(`refusals so far: ${codes}`)), 10000);
          socket.onmessage = (event) => {
            if (typeof event.data !== "string") return;
            const frame = JSON.parse(event.data);
            if (frame.type === "attached") {
              socket.send(new TextEncoder().encode("evil\r"));
              socket.send(JSON.stringify({ type: "resize", payload: { rows: 5, cols: 20 } }));
            } else if (frame.type === "error") {
              codes.push(frame.payload.code);
              if (codes.length === 2) {
                clearTimeout(timer);
                done({ codes, open: socket.readyState === WebSocket.OPEN });
                socket.close();
              }
            }
          };
        }),
      sharedId,
    );
    assert.deepEqual(refusals, { codes: ["read_only", "read_only"], open: true });

    // The share opens nothing but that session's socket.
    const statuses = await guest.evaluate(() =>
      Promise.all(["/api/sessions", "/api/runners", "/api/events"].map((p) => fetch(p).then((r) => r.status))),
    );
    assert.deepEqual(statuses, [403, 403, 403]);

    // The admin answers through the API: the prompt gets exactly that, nothing the guest typed.
    assert.equal((await stack.api("POST", `/api/sessions/${waitingId}/input`, { text: "ok", enter: true })).status, 204);
    const text = await waitFor("the screen to show the answer", async () => {
      const { status, text } = await stack.api("GET", `/api/sessions/${waitingId}/screen`);
      return status === 200 && text.includes("got-") ? text : null;
    });
    assert.match(text, /got-ok\b/);
    assert.doesNotMatch(text, /zzz|evil/);
    // The guest watched it happen live; the title no longer counts the session.
    await screenContains(guest, sharedId, "got-ok");
    await waitFor("the title to count none", async () => (await page.title()) === "AgentRelay");
  } finally {
    await guestContext.close();
  }
});
