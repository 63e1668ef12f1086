// Workspaces in the dashboard (issue 20): New session starts a stand-in agent in a worktree of a
// real git repository on a new branch; as it edits files the Changes panel follows, the overview
// tile and the list show the branch and the change count; a comment on a diff line, sent as a
// review, arrives in the terminal; Commit and Push reach the repository and its remote.
// Real HQ and runner (--repo), Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { startStack, waitFor } from "./harness.mjs";

// Says it is ready; on a line "edit" it adds a function to greet.py and writes notes.txt; it
// prints every line it reads, so a review typed into the session shows as "received: …".
const AGENT =
  `sh -c 'echo agent ready; while IFS= read -r line; do if [ "$line" = edit ]; then ` +
  `printf "def added():\\n    return 42\\n" >> greet.py; echo note > notes.txt; fi; echo "received: $line"; done'`;
const BRANCH = "review/e2e";
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

let stack;
let page;
let repo;
let remote;
let runner;
let sessionId;

/** axe-core's serious and critical violations inside `selector`. */
async function violations(selector) {
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async (include) => {
    const result = await window.axe.run({ include: [[include]] }, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      nodes: v.nodes.slice(0, 4).map((n) => `${n.target.join(" ")}: ${n.failureSummary?.split("\n")[1] ?? ""}`),
    }));
  }, selector);
  return found.filter((v) => v.impact === "serious" || v.impact === "critical");
}

const git = (dir, ...args) => execFileSync("git", ["-C", dir, ...args], { encoding: "utf8" }).trim();

before(async () => {
  stack = await startStack();
  // A repository with one commit, and a bare remote to push to.
  repo = join(stack.dir, "demo");
  remote = join(stack.dir, "demo-remote.git");
  mkdirSync(repo);
  git(repo, "init", "-q", "-b", "main");
  git(repo, "config", "user.name", "E2E");
  git(repo, "config", "user.email", "e2e@example.com");
  writeFileSync(join(repo, "greet.py"), 'def greet(name):\n    return "Hello, " + name\n');
  git(repo, "add", "greet.py");
  git(repo, "commit", "-q", "-m", "First");
  execFileSync("git", ["init", "-q", "--bare", remote]);
  git(repo, "remote", "add", "origin", remote);
  runner = await stack.startRunner("ws-box", ["--repo", `demo=${repo}`]);
  assert.deepEqual(runner.repos, [{ name: "demo", default_branch: "main" }]);

  // bypassCSP: axe-core is injected as a script, which HQ's Content-Security-Policy rightly refuses.
  const context = await stack.browser.newContext({ viewport: { width: 1500, height: 950 }, bypassCSP: true });
  page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(stack.url);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("runner-list").getByText("ws-box").waitFor();
});

after(async () => {
  await stack?.stop();
});

const screen = (id) => page.evaluate((sid) => window.__agentrelay?.screenText(sid) ?? "", id);
const screenShows = (id, text) => waitFor(`the terminal to show ${JSON.stringify(text)}`, async () => (await screen(id)).includes(text));

async function shows(what, locator, text) {
  await waitFor(`${what} to show ${JSON.stringify(text)}`, async () => {
    const shown = await locator.textContent({ timeout: 200 }).catch(() => null);
    return shown?.includes(text);
  });
}

test("New session starts an agent in a worktree on a new branch, and the Changes panel follows its edits", async () => {
  await page.getByRole("button", { name: "New session" }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.locator("select").first().selectOption(runner.id);
  const fields = dialog.getByTestId("workspace-fields");
  await fields.getByLabel("Repository").selectOption("demo");
  await fields.getByLabel("New branch").fill(BRANCH);
  assert.equal(await fields.getByLabel("From").getAttribute("placeholder"), "main");
  await dialog.getByLabel("Command").fill(AGENT);
  assert.equal(await dialog.getByRole("textbox", { name: /Working directory/ }).isDisabled(), true);
  assert.deepEqual(await violations("dialog"), [], "the New session dialog with a workspace");
  await dialog.getByRole("button", { name: "Start" }).click();
  sessionId = await waitFor("the session's terminal", async () => (await page.evaluate(() => window.__agentrelay?.sessions() ?? []))[0]);
  await screenShows(sessionId, "agent ready");

  const session = (await stack.api("GET", `/api/sessions/${sessionId}`)).json;
  assert.equal(session.workspace.repo, "demo");
  assert.equal(session.workspace.branch, BRANCH);
  assert.equal(session.workspace.base_commit, git(repo, "rev-parse", "main"));

  const panel = page.getByTestId("changes-panel");
  await panel.getByText(BRANCH).waitFor();
  await panel.getByText("No file changed yet.").waitFor();

  // The agent edits two files; the panel follows without a reload or a click.
  await page.locator(`div[data-session="${sessionId}"] .xterm`).click();
  await page.keyboard.type("edit");
  await page.keyboard.press("Enter");
  await screenShows(sessionId, "received: edit");
  const files = panel.getByTestId("changed-files");
  await shows("the greet.py row", files.locator('[data-path="greet.py"]'), "+2 −0");
  await shows("the notes.txt row", files.locator('[data-path="notes.txt"]'), "+1 −0");
  await shows("the panel's summary", panel.getByTestId("changes-summary"), "2 files +3 −0");

  // An edit that prints nothing (so no session event carries it): only the changes event says so.
  appendFileSync(join(session.workspace.path, "notes.txt"), "written quietly\n");
  await shows("the notes.txt row", files.locator('[data-path="notes.txt"]'), "+2 −0");
  await shows("the panel's summary", panel.getByTestId("changes-summary"), "2 files +4 −0");

  // The list shows the branch and the count too.
  const item = page.getByTestId("session-list").locator(`a[href="/sessions/${sessionId}"]`).getByTestId("workspace-badge");
  await shows("the session list", item, BRANCH);
  await shows("the session list", item, "2 files +4 −0");
});

test("a file's diff shows split and unified, highlighted", async () => {
  assert.ok(sessionId, "needs the first test's session");
  const panel = page.getByTestId("changes-panel");
  await panel.getByTestId("changed-files").locator('[data-path="greet.py"]').click();
  const diff = panel.locator('[data-testid="file-diff"][data-path="greet.py"]');
  await shows("the diff", diff, "def added():");
  // Highlighted: the keyword is a token of its own.
  await diff.locator(".hljs-keyword", { hasText: "return" }).first().waitFor();

  await panel.getByRole("button", { name: "Split" }).click();
  await diff.locator(".diff-line-old-content").first().waitFor();
  assert.equal(await panel.getByRole("button", { name: "Split" }).getAttribute("aria-pressed"), "true");
  await panel.getByRole("button", { name: "Unified" }).click();
  await waitFor("the unified layout", async () => (await diff.locator(".diff-line-old-content").count()) === 0);
});

test("a comment on a line, sent as a review, arrives in the agent's terminal", async () => {
  assert.ok(sessionId, "needs the first test's session");
  const panel = page.getByTestId("changes-panel");
  const diff = panel.locator('[data-testid="file-diff"][data-path="greet.py"]');

  // The diff's + on a hovered line opens a comment form under it.
  const row = diff.locator("tr", { hasText: "def added():" }).first();
  await row.hover();
  await row.locator(".diff-add-widget").first().click();
  const form = diff.getByTestId("line-comment-form");
  await form.getByRole("textbox").fill("Please give this function a name that says what it adds");
  await form.getByRole("button", { name: "Add comment" }).click();
  await diff.getByTestId("line-comments").getByText("Please give this function a name").waitFor();

  // And from the keyboard: the line's number, then Ctrl+Enter.
  await diff.getByRole("textbox", { name: "Comment on line" }).fill("4");
  await diff.getByRole("button", { name: "Comment", exact: true }).click();
  await page.keyboard.type("Return a named constant");
  await page.keyboard.press("Control+Enter");
  await diff.getByTestId("line-comments").getByText("Return a named constant").waitFor();
  await shows("the draft count", panel.getByTestId("draft-count"), "2 comments");

  await panel.getByLabel("Review summary").fill("Nearly there");
  assert.deepEqual(await violations('[data-testid="changes-panel"]'), [], "the Changes panel with comments");
  await panel.getByRole("button", { name: "Send review to agent" }).click();
  await shows("the review status", panel.getByTestId("review-status"), "Sent to the agent (2 comments)");
  // The agent read every line of it.
  await screenShows(sessionId, `received: Review of your changes on branch ${BRANCH}:`);
  await screenShows(sessionId, "received: Nearly there");
  await screenShows(sessionId, "received: greet.py:3");
  await screenShows(sessionId, "received: > def added():");
  await screenShows(sessionId, "received: Please give this function a name that says what it adds");
  await screenShows(sessionId, "received: >     return 42");
  await screenShows(sessionId, "received: Return a named constant");
  // The draft is gone once sent.
  await shows("the draft count", panel.getByTestId("draft-count"), "No comment yet");
  assert.equal(await diff.getByTestId("line-comments").count(), 0);
});

test("Commit and Push put the agent's work on its branch and on the remote", async () => {
  assert.ok(sessionId, "needs the first test's session");
  const panel = page.getByTestId("changes-panel");
  await panel.getByLabel("Commit message").fill("Add added()");
  await panel.getByRole("button", { name: "Commit", exact: true }).click();
  await shows("the commit status", panel.getByTestId("workspace-status"), `on ${BRANCH}`);
  assert.equal(git(repo, "log", "-1", "--format=%s", BRANCH), "Add added()");
  assert.deepEqual(git(repo, "show", "--name-only", "--format=", BRANCH).split("\n").sort(), ["greet.py", "notes.txt"]);

  await panel.getByRole("button", { name: "Push", exact: true }).click();
  await shows("the push status", panel.getByTestId("workspace-status"), `Pushed ${BRANCH} to origin`);
  assert.equal(git(remote, "rev-parse", BRANCH), git(repo, "rev-parse", BRANCH));
});

test("the overview tile shows the branch and the change count", async () => {
  assert.ok(sessionId, "needs the first test's session");
  await page.getByRole("button", { name: /Overview/ }).click();
  const tile = page.locator(`[data-testid="overview-tile"][data-session="${sessionId}"]`).getByTestId("workspace-badge");
  await shows("the overview tile", tile, BRANCH);
  await shows("the overview tile", tile, "2 files +4 −0");
});
