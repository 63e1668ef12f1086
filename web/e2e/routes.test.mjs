// Every view has an address: a session, the overview with its filters, runners. Links survive a
// sign-in, a reload, and back and forward. Real HQ and runner, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startStack, waitFor } from "./harness.mjs";

let stack;
let page;
let runner;

before(async () => {
  stack = await startStack();
  runner = await waitFor("the runner", async () => (await stack.api("GET", "/api/runners")).json?.find((r) => r.status === "online"));
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
});

after(async () => {
  await stack?.stop();
});

const path = () => new URL(page.url()).pathname + new URL(page.url()).search;
const shown = (id) => page.locator(`[data-session="${id}"] .xterm`);

test("a session's link opens it, through the sign-in, a reload, and back and forward", async () => {
  const { json: first } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["sh", "-c", "echo routed-first; sleep 300"],
  });
  const { json: second } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["sh", "-c", "echo routed-second; sleep 300"],
  });

  // A link from a notification or a chat, opened signed out: the sign-in leads to the session.
  await page.goto(`${stack.url}/sessions/${first.id}`);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await shown(first.id).waitFor({ state: "visible" });
  assert.equal(path(), `/sessions/${first.id}`);

  // The list links to sessions; the address follows.
  await page.getByTestId("session-list").getByRole("link").filter({ hasText: "routed-second" }).click();
  await shown(second.id).waitFor({ state: "visible" });
  assert.equal(path(), `/sessions/${second.id}`);
  await page.getByRole("button", { name: /Overview/ }).click();
  await page.getByTestId("overview-grid").waitFor();
  assert.equal(path(), "/");

  // Back, back, forward.
  await page.goBack();
  await shown(second.id).waitFor({ state: "visible" });
  await page.goBack();
  await shown(first.id).waitFor({ state: "visible" });
  await page.goForward();
  await shown(second.id).waitFor({ state: "visible" });
  await page.reload();
  await shown(second.id).waitFor({ state: "visible" });
  assert.equal(path(), `/sessions/${second.id}`);

  // A session HQ does not know says so.
  await page.goto(`${stack.url}/sessions/00000000-0000-0000-0000-000000000000`);
  await page.getByTestId("session-missing").getByText("No such session").waitFor();

  for (const id of [first.id, second.id]) await stack.api("DELETE", `/api/sessions/${id}`);
});

test("the overview's filters are in its address", async () => {
  await page.goto(`${stack.url}/?state=idle`);
  await page.getByLabel("State").waitFor();
  assert.equal(await page.getByLabel("State").inputValue(), "idle");
  await page.getByLabel("State").selectOption("waiting_for_input");
  await waitFor("the address to follow", async () => path() === "/?state=waiting_for_input");
  await page.goBack();
  await waitFor("the filter to follow back", async () => (await page.getByLabel("State").inputValue()) === "idle");
  assert.equal(path(), "/?state=idle");
});

test("runners have addresses too", async () => {
  await page.goto(`${stack.url}/runners`);
  await page.getByTestId("runner-list").getByRole("link", { name: /e2e-runner/ }).first().click();
  await page.getByRole("heading", { name: "e2e-runner" }).waitFor();
  assert.equal(path(), `/runners/${runner.id}`);
  await page.reload();
  await page.getByRole("heading", { name: "e2e-runner" }).waitFor();
  await page.getByText("Presets").waitFor();
});

test("sessions have names: given at the start, changed later; unnamed ones read as their quoted command line", async () => {
  await page.goto(stack.url);
  await page.getByRole("button", { name: "New session" }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Command").fill("sleep 301");
  await dialog.getByLabel(/^Name/).fill("nightly build");
  await dialog.getByRole("button", { name: "Start" }).click();
  const tab = page.getByRole("navigation", { name: "Open sessions" }).locator("a[aria-current=page]");
  await tab.filter({ hasText: "nightly build" }).waitFor();
  // Tabs say where the session runs.
  assert.equal((await tab.getByTestId("tab-runner").innerText()).trim(), "e2e-runner");
  const id = new URL(page.url()).pathname.split("/").pop();
  assert.equal((await stack.api("GET", `/api/sessions/${id}`)).json.name, "nightly build");

  await page.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("Session name").fill("release build");
  await page.getByLabel("Session name").press("Enter");
  await page.getByTestId("session-list").getByRole("link").filter({ hasText: "release build" }).waitFor();
  await tab.filter({ hasText: "release build" }).waitFor();
  assert.equal((await stack.api("GET", `/api/sessions/${id}`)).json.name, "release build");

  // Without a name: the command line as a shell would quote it, the script whole.
  const { json: script } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["sh", "-c", 'echo "Done"; sleep 302'],
  });
  await page.getByTestId("session-list").getByRole("link").filter({ hasText: `sh -c 'echo "Done"; sleep 302'` }).waitFor();
  for (const sid of [id, script.id]) await stack.api("DELETE", `/api/sessions/${sid}`);
});
