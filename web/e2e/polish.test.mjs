// Small things a first look at the dashboard catches: where focus lands, what a screen reader
// hears, what the sign-in page says, and that ending a session asks first. Real HQ and runner.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startStack, waitFor } from "./harness.mjs";

let stack;
let context;
let page;

before(async () => {
  stack = await startStack();
  context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(stack.url);
});

after(async () => {
  await stack?.stop();
});

async function signIn() {
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("runner-list").getByText("online", { exact: true }).waitFor();
}

test("the sign-in page speaks to whoever runs HQ, not to its developers", async () => {
  await page.getByText("Sign in with an admin or user token.").waitFor();
  await page.getByText("bootstrap admin token").waitFor();
  assert.equal(await page.getByText("make run").count(), 0);
  assert.equal(await page.getByText(".dev/admin-token").count(), 0);
  await signIn();
});

test("the dashboard has one level-one heading", async () => {
  const headings = page.getByRole("heading", { level: 1 });
  await waitFor("an h1", async () => (await headings.count()) === 1);
  assert.equal((await headings.innerText()).trim(), "AgentRelay dashboard");
});

test("New session focuses its first field, not the close button", async () => {
  await page.getByRole("button", { name: "New session" }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  await waitFor("the runner field to have focus", () =>
    dialog.getByLabel("Runner").evaluate((field) => document.activeElement === field),
  );
  await page.keyboard.press("Escape");
  // Gone from the page, not only closed: the dialog's close event has reached the app, so the
  // next Alt+N opens a new one (waiting for `dialog[open]` raced that event).
  await page.locator("dialog").waitFor({ state: "detached" });
});

test("Alt+N opens no second dialog over an open one", async () => {
  await page.keyboard.press("Alt+N");
  await page.getByRole("dialog").waitFor();
  await page.keyboard.press("Alt+N");
  assert.equal(await page.locator("dialog[open]").count(), 1);
  await page.keyboard.press("Escape");
  await page.locator("dialog[open]").waitFor({ state: "detached" });

  const { json } = await stack.api("POST", "/api/sessions", {
    runner_id: (await stack.api("GET", "/api/runners")).json[0].id,
    command: ["sleep", "120"],
  });
  await page.getByTestId("session-list").getByRole("link").filter({ hasText: "sleep 120" }).click();
  await page.locator(`[data-session="${json.id}"] .xterm`).waitFor({ state: "visible" });
  await page.getByRole("button", { name: "Share" }).click();
  await page.getByRole("dialog").getByRole("heading", { name: "Share", exact: true }).waitFor();
  await page.keyboard.press("Alt+N");
  assert.equal(await page.locator("dialog[open]").count(), 1);
  await page.keyboard.press("Escape");
  await page.locator("dialog[open]").waitFor({ state: "detached" });
  await stack.api("DELETE", `/api/sessions/${json.id}`);
});

test("the Overview switch is named once", async () => {
  // Chromium's accessibility tree, and the text itself (what a reader without the styles gets).
  const cdp = await context.newCDPSession(page);
  const { nodes } = await cdp.send("Accessibility.getFullAXTree");
  await cdp.detach();
  const names = nodes.filter((n) => n.role?.value === "button").map((n) => n.name?.value ?? "");
  assert.ok(names.includes("Overview"), `buttons: ${JSON.stringify(names)}`);
  const overview = page.getByRole("button", { name: "Overview", exact: true });
  assert.equal((await overview.textContent()).trim(), "Overview");
});

test("an online runner says for how long", async () => {
  await page.getByTestId("runner-list").getByText(/^online for \d+ (s|min)$/).waitFor();
  assert.equal(await page.getByTestId("runner-list").getByText(/ago$/).count(), 0);
});

test("End session asks first while the session runs", async () => {
  const { json } = await stack.api("POST", "/api/sessions", {
    runner_id: (await stack.api("GET", "/api/runners")).json[0].id,
    command: ["sleep", "300"],
  });
  await page.getByTestId("session-list").getByRole("link").filter({ hasText: "sleep 300" }).click();
  await page.locator(`[data-session="${json.id}"] .xterm`).waitFor({ state: "visible" });
  const status = async () => (await stack.api("GET", `/api/sessions/${json.id}`)).json.status;
  await waitFor("the session to run", async () => (await status()) === "running");

  await page.getByRole("button", { name: "End session" }).click();
  const confirm = page.getByRole("group", { name: "End this session?" });
  await confirm.waitFor();
  // Not yet, and Cancel keeps it.
  assert.equal(await status(), "running");
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await confirm.waitFor({ state: "detached" });
  assert.equal(await status(), "running");

  await page.getByRole("button", { name: "End session" }).click();
  await confirm.getByRole("button", { name: "End it" }).click();
  await waitFor("the session to end", async () => !["starting", "running"].includes(await status()));
});

test("New session on a --presets-only runner offers its presets and no command or directory", async () => {
  const presets = join(stack.dir, "kiosk-presets.toml");
  writeFileSync(presets, '[[preset]]\nname = "greet"\ndescription = "Greeter"\ncommand = ["sh", "-c", "echo kiosk-greeted; sleep 600"]\n');
  await stack.startRunner("kiosk", ["--presets-only", "--presets", presets]);
  await page.getByRole("button", { name: "New session" }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Runner").selectOption({ label: await kioskOption(dialog) });
  await dialog.getByTestId("presets-only").waitFor();
  assert.equal(await dialog.getByLabel(/^Command/).count(), 0, "no command field");
  assert.equal(await dialog.getByLabel(/^Working directory/).count(), 0, "no directory field");
  await dialog.getByRole("button", { name: /Greeter/ }).click();
  await dialog.getByRole("button", { name: "Start" }).click();
  await page.locator("dialog[open]").waitFor({ state: "detached" });
  await waitFor("the preset's output", async () => {
    const sessions = (await stack.api("GET", "/api/sessions")).json ?? [];
    const started = sessions.find((s) => s.preset === "greet");
    if (!started) return false;
    return (await stack.api("GET", `/api/sessions/${started.id}/screen`)).text.includes("kiosk-greeted");
  });
});

/** The label of the kiosk runner's option in the Runner select. */
async function kioskOption(dialog) {
  const labels = await dialog.getByLabel("Runner").locator("option").allInnerTexts();
  const label = labels.find((l) => l.startsWith("kiosk "));
  assert.ok(label, `no kiosk runner among ${labels}`);
  return label;
}

test("a program that cannot start says why in the dialog, which stays open to fix the typo", async () => {
  await page.goto(stack.url);
  await page.getByRole("button", { name: "New session" }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Command").fill("no-such-program-xyz --flag");
  await dialog.getByRole("button", { name: "Start" }).click();
  await dialog.getByTestId("start-error").filter({ hasText: "cannot start 'no-such-program-xyz'" }).waitFor();
  // Still open, the command still there to fix.
  assert.equal(await dialog.getByLabel("Command").inputValue(), "no-such-program-xyz --flag");
  await dialog.getByLabel("Command").fill("sh -c 'echo fixed-$((6*7)); sleep 60'");
  await dialog.getByRole("button", { name: "Start" }).click();
  await page.locator("dialog").waitFor({ state: "detached" });
  const id = await waitFor("a session address", async () => /\/sessions\/([^/]+)$/.exec(new URL(page.url()).pathname)?.[1]);
  await waitFor("its output", async () =>
    (await page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id)).includes("fixed-42"),
  );
  await stack.api("DELETE", `/api/sessions/${id}`);
});
