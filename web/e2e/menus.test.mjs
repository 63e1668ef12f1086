// A menu HQ recognizes on a waiting session is answered with buttons, on the session and on its
// overview tile; a phone gets a key bar (Esc, Tab, Ctrl-C, arrows, Enter) under the terminal.
// Real HQ and runner, Chromium.

import { after, before, test } from "node:test";
import { startStack, waitFor } from "./harness.mjs";

// A menu like an agent's approval: the answer is one key, read raw.
const MENU = [
  "sh",
  "-c",
  "printf 'Deploy to production?\\n❯ 1. Yes\\n  2. No, keep it staged\\n\\n Esc to cancel\\n'; " +
    "stty raw -echo; k=$(dd bs=1 count=1 2>/dev/null); stty sane; echo; echo \"picked-$k\"; sleep 300",
];

let stack;
let runner;

before(async () => {
  stack = await startStack();
  runner = await waitFor("the runner", async () => (await stack.api("GET", "/api/runners")).json?.find((r) => r.status === "online"));
});

after(async () => {
  await stack?.stop();
});

async function signedIn(viewport) {
  const context = await stack.browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "AgentRelay dashboard" }).waitFor();
  return { context, page };
}

const screenOf = async (id) => (await stack.api("GET", `/api/sessions/${id}/screen`)).text;

test("a recognized menu is answered with buttons on its overview tile and on the session", async () => {
  const { json: fromTile } = await stack.api("POST", "/api/sessions", { runner_id: runner.id, command: MENU, name: "tile-menu" });
  const { json: fromSession } = await stack.api("POST", "/api/sessions", { runner_id: runner.id, command: MENU, name: "session-menu" });
  const { context, page } = await signedIn({ width: 1280, height: 800 });
  try {
    // The overview tile offers the options (and Esc); the second answers.
    const tileMenu = page.locator(`[data-testid="overview-menu"][data-session="${fromTile.id}"]`);
    await tileMenu.getByRole("button", { name: "2. No, keep it staged" }).waitFor();
    await tileMenu.getByRole("button", { name: "Esc" }).waitFor();
    await tileMenu.getByRole("button", { name: "2. No, keep it staged" }).click();
    await waitFor("the tile's answer", async () => (await screenOf(fromTile.id)).includes("picked-2"));

    // The session itself: the same buttons above its terminal, typed through its socket.
    await page.goto(`${stack.url}/sessions/${fromSession.id}`);
    const bar = page.locator(`[data-session="${fromSession.id}"]`).getByTestId("menu-buttons");
    await bar.getByText("Deploy to production?").waitFor();
    await bar.getByRole("button", { name: "1. Yes" }).click();
    await waitFor("the session's answer", async () => (await screenOf(fromSession.id)).includes("picked-1"));
    await bar.waitFor({ state: "detached" });
  } finally {
    await context.close();
    for (const id of [fromTile.id, fromSession.id]) await stack.api("DELETE", `/api/sessions/${id}`);
  }
});

test("a phone has a key bar under the terminal: Enter, Ctrl-C and the arrows reach the program", async () => {
  const { json: shell } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["bash", "--norc", "--noprofile"],
  });
  const { context, page } = await signedIn({ width: 390, height: 844 });
  try {
    await page.goto(`${stack.url}/sessions/${shell.id}`);
    const keys = page.locator(`[data-session="${shell.id}"]`).getByTestId("key-bar");
    await keys.waitFor();
    await page.locator(`[data-session="${shell.id}"] .xterm-helper-textarea`).focus();
    await page.keyboard.type("cat");
    await keys.getByRole("button", { name: "Enter" }).click();
    await page.keyboard.type("meow");
    await keys.getByRole("button", { name: "Enter" }).click();
    // cat echoes the line: it runs, and Ctrl-C is for it.
    await waitFor("cat to run", async () => ((await screenOf(shell.id)).match(/meow/g) ?? []).length >= 2);
    await keys.getByRole("button", { name: "Ctrl-C" }).click();
    await page.keyboard.type("echo after-$((1+1))");
    await keys.getByRole("button", { name: "Enter" }).click();
    await waitFor("the shell back after Ctrl-C", async () => (await screenOf(shell.id)).includes("after-2")).catch(async (e) => {
      throw new Error(`${e.message}: ${JSON.stringify(await screenOf(shell.id))}`);
    });
    // Up recalls the last command; Enter runs it again.
    await keys.getByRole("button", { name: "Up" }).click();
    await keys.getByRole("button", { name: "Enter" }).click();
    await waitFor("the recalled command", async () => ((await screenOf(shell.id)).match(/after-2/g) ?? []).length >= 2);
  } finally {
    await context.close();
    await stack.api("DELETE", `/api/sessions/${shell.id}`);
  }
});
