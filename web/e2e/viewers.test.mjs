// Several viewers on one session: the PTY follows the most recently active one, a phone watches
// until it types, "Fit to this window" takes the size back, and a terminal larger than its pane
// scrolls instead of rewrapping. Real HQ and runner, two Chromium contexts.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startStack, waitFor } from "./harness.mjs";

let stack;

before(async () => {
  stack = await startStack();
});

after(async () => {
  await stack?.stop();
});

/** A page signed in as admin, at `viewport`, on `path`. */
async function signedIn(viewport, path = "/") {
  const context = await stack.browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(`${stack.url}${path}`);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "AgentRelay dashboard" }).waitFor();
  return { context, page };
}

const screen = (page, id) => page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);
const termSize = (page, id) => page.evaluate((sid) => window.__agentrelay?.size(sid), id);
/** The PTY's size as HQ's terminal model has it. */
const ptySize = async (id) => {
  const { json } = await stack.api("GET", `/api/sessions/${id}/screen?format=json`);
  return { rows: json.rows, cols: json.cols };
};
const same = (a, b) => a && b && a.rows === b.rows && a.cols === b.cols;

async function typeIn(page, id, text) {
  await page.locator(`[data-session="${id}"] .xterm-helper-textarea`).focus();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

test("a phone watches without resizing, takes the size when it types, and gives it back when it leaves", async () => {
  const runner = await waitFor("the runner", async () => (await stack.api("GET", "/api/runners")).json?.[0]);
  const { json: session } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["bash", "--norc", "--noprofile"],
  });
  const id = session.id;

  const desk = await signedIn({ width: 1400, height: 900 });
  await desk.page.getByTestId("session-list").getByRole("link").filter({ hasText: "bash" }).first().click();
  await desk.page.locator(`[data-session="${id}"] .xterm`).waitFor({ state: "visible" });
  await typeIn(desk.page, id, "echo desk-$((1+1))");
  await waitFor("the desktop's echo", async () => (await screen(desk.page, id)).includes("desk-2"));
  const desktop = await termSize(desk.page, id);
  assert.ok(desktop.cols > 120, `a 1400 px window has more than 120 columns, not ${desktop.cols}`);
  await waitFor("the PTY at the desktop's size", async () => same(await ptySize(id), desktop));

  const phone = await signedIn({ width: 390, height: 844 });
  try {
    await phone.page.getByRole("button", { name: "Toggle runners and sessions" }).click();
    await phone.page.getByTestId("session-list").getByRole("link").filter({ hasText: "bash" }).first().click();
    const phoneTerm = phone.page.locator(`[data-session="${id}"] .xterm`);
    await phoneTerm.waitFor({ state: "visible" });
    // Looking changes nothing: the phone draws the desktop's terminal as it is, scrolled, not rewrapped.
    await phone.page.getByTestId("fit-window").waitFor();
    assert.deepEqual(await termSize(phone.page, id), desktop);
    assert.deepEqual(await ptySize(id), desktop);
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page overflows a 390 px screen by ${overflow} px`);
    const pane = await phone.page.locator(`[data-session="${id}"] .terminal-host`).evaluate((el) => ({
      scrolls: el.scrollWidth > el.clientWidth,
    }));
    assert.ok(pane.scrolls, "a terminal wider than the phone scrolls inside its pane");

    // The phone types: the PTY takes the phone's size, and the desktop follows it (and offers Fit).
    await typeIn(phone.page, id, "echo phone-$((2+2))");
    await waitFor("the phone's echo", async () => (await screen(phone.page, id)).includes("phone-4"));
    const small = await waitFor("the PTY at the phone's size", async () => {
      const size = await ptySize(id);
      return size.cols < 60 ? size : null;
    });
    await waitFor("the phone's terminal at its size", async () => same(await termSize(phone.page, id), small));
    await waitFor("the desktop to follow", async () => same(await termSize(desk.page, id), small));
    await desk.page.getByTestId("fit-window").waitFor();

    // Fit to this window: the desktop's size again.
    await desk.page.getByTestId("fit-window").click();
    await waitFor("the PTY back at the desktop's size", async () => same(await ptySize(id), desktop));
    await desk.page.getByTestId("fit-window").waitFor({ state: "detached" });

    // The phone types again, then leaves: the PTY returns to the desktop's size.
    await typeIn(phone.page, id, "echo again-$((3+3))");
    await waitFor("the PTY at the phone's size again", async () => same(await ptySize(id), small));
  } finally {
    await phone.context.close();
  }
  await waitFor("the PTY back at the desktop's size after the phone left", async () => same(await ptySize(id), desktop));
  await typeIn(desk.page, id, "stty size");
  await waitFor("stty to agree", async () => (await screen(desk.page, id)).includes(`${desktop.rows} ${desktop.cols}`));
  await desk.context.close();
  await stack.api("DELETE", `/api/sessions/${id}`);
});
