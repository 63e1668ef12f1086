// What HQ's webhook posts when people use the dashboard: each change once, never again because
// someone opened a finished session, with the session's dashboard link. Real HQ (--webhook-url,
// --public-url) and runner, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startStack, waitFor } from "./harness.mjs";

let stack;

before(async () => {
  stack = await startStack({ webhook: true, publicUrl: true });
});

after(async () => {
  await stack?.stop();
});

test("opening a finished session in the dashboard posts nothing; the end was posted once, with its link", async () => {
  const runner = await waitFor("the runner", async () => (await stack.api("GET", "/api/runners")).json?.[0]);
  const { json: done } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["sh", "-c", "seq 1 2000; echo all-done"],
  });
  const ends = (id) => stack.deliveries.filter((d) => d.event === "session.ended" && d.session?.id === id);
  const [ended] = await waitFor("the end to be posted", async () => ends(done.id).length > 0 && ends(done.id));
  assert.equal(ended.url, `${stack.url}/sessions/${done.id}`);
  assert.match(ended.text, /exited with code 0/);

  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(ended.url);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  const replayed = () => page.evaluate((id) => window.__agentrelay?.screenText(id) ?? "", done.id);
  for (let open = 0; open < 3; open++) {
    if (open > 0) await page.reload();
    await waitFor("the replay", async () => (await replayed()).includes("all-done"));
  }
  await context.close();

  // A later session's end proves the queue is drained up to here: still one end for the first.
  const { json: marker } = await stack.api("POST", "/api/sessions", { runner_id: runner.id, command: ["true"] });
  await waitFor("the marker's end", async () => ends(marker.id).length > 0);
  assert.equal(ends(done.id).length, 1, JSON.stringify(stack.deliveries.map((d) => [d.event, d.session?.id])));
});
