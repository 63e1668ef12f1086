// The dashboard end to end: a real HQ and runner, Debian's Chromium, xterm.js read through its
// buffer API.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { startStack, waitFor } from "./harness.mjs";

const ARTIFACTS = resolve(import.meta.dirname, "artifacts");
let stack;
let page;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startStack();
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
});

after(async () => {
  await stack?.stop();
});

const screen = (id) => page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);
const termSize = (id) => page.evaluate((sid) => window.__agentrelay?.size(sid), id);
const openSessions = () => page.evaluate(() => window.__agentrelay?.sessions() ?? []);

async function screenContains(id, text) {
  await waitFor(`terminal to show ${JSON.stringify(text)}`, async () => (await screen(id)).includes(text));
}

test("sign in, start bash, type, resize, reload, and fit a phone", async () => {
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill("wrong-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "not valid" }).waitFor();

  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("runner-list").getByText("e2e-runner").waitFor();
  await page.getByTestId("runner-list").getByText("online", { exact: true }).waitFor();

  // The token is in no URL, no storage, and no script-readable cookie.
  const leaks = await page.evaluate(
    (token) => [location.href, JSON.stringify(localStorage), JSON.stringify(sessionStorage), document.cookie].filter((s) => s.includes(token)),
    stack.adminToken,
  );
  assert.deepEqual(leaks, []);

  await page.getByRole("button", { name: "New session" }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Command").fill("bash --norc --noprofile");
  assert.match(await dialog.getByTestId("argv-preview").innerText(), /bash\s*--norc\s*--noprofile/);
  await dialog.getByRole("button", { name: "Start" }).click();

  const [id] = await waitFor("a terminal to open", async () => {
    const ids = await openSessions();
    return ids.length === 1 ? ids : null;
  });
  await page.locator(".xterm-helper-textarea").first().focus();
  await page.keyboard.type("echo $((6*7))-ok");
  await page.keyboard.press("Enter");
  await screenContains(id, "42-ok");

  // The PTY follows the pane: stty reports what xterm.js fitted to.
  const before = await termSize(id);
  await page.keyboard.type("stty size");
  await page.keyboard.press("Enter");
  await screenContains(id, `${before.rows} ${before.cols}`);
  await page.setViewportSize({ width: 900, height: 560 });
  const after = await waitFor("the terminal to refit", async () => {
    const size = await termSize(id);
    return size && (size.rows !== before.rows || size.cols !== before.cols) ? size : null;
  });
  await page.keyboard.type("clear; stty size");
  await page.keyboard.press("Enter");
  await screenContains(id, `${after.rows} ${after.cols}`);
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-desktop.png") });

  // Reload: still signed in, the tab comes back and its scrollback is replayed.
  await page.reload();
  await waitFor("the tab to reopen", async () => (await openSessions()).includes(id));
  await screenContains(id, `${after.rows} ${after.cols}`);
  await page.locator(".xterm-helper-textarea").first().focus();
  await page.keyboard.type("echo again-$((2+2))");
  await page.keyboard.press("Enter");
  await screenContains(id, "again-4");

  // A phone: nothing wider than the screen, the terminal still there.
  await page.setViewportSize({ width: 390, height: 844 });
  await screenContains(id, "again-4");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page overflows a 390 px screen by ${overflow} px`);
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-390.png") });

  // Exit banner with the code.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.locator(".xterm-helper-textarea").first().focus();
  await page.keyboard.type("exit 3");
  await page.keyboard.press("Enter");
  await page.getByTestId("exit-banner").filter({ hasText: "exited with code 3" }).waitFor();

  // Sign out: back to the sign-in page, and the API no longer accepts the browser.
  await page.getByTestId("user-menu").click();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Access token").waitFor();
  const status = await page.evaluate(() => fetch("/api/runners").then((r) => r.status));
  assert.equal(status, 401);
});
