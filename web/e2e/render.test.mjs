// Terminals draw on a phone's screen. Found with these tests: headless Chromium shows a WebGL canvas
// wrongly under an *emulated* device pixel ratio (Playwright's deviceScaleFactor: the top-left
// quarter magnified at 2, nothing at 3), although xterm.js's WebGL renderer drew the right pixels
// (read back in the frame they were drawn) at the right size. At a real ratio of 2 or 3
// (--force-device-scale-factor) the same renderer shows correctly, so the phones' blank terminals
// were the test browser's. A WebGL renderer that really draws nothing (no context loss to say so)
// is replaced by xterm.js's DOM renderer. Real HQ and runner, Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM, startStack, waitFor } from "./harness.mjs";

let stack;
let session;

before(async () => {
  stack = await startStack();
  const runner = await waitFor("the runner", async () => (await stack.api("GET", "/api/runners")).json?.[0]);
  ({ json: session } = await stack.api("POST", "/api/sessions", {
    runner_id: runner.id,
    command: ["sh", "-c", "for i in $(seq 1 20); do echo LINE-$i-XXXXXXXXXXXXXXXXXXXXXXXXXXXX; done; sleep 300"],
  }));
});

after(async () => {
  await stack?.stop();
});

/** Opens the session signed in; returns the terminal's pane. */
async function openSession(page) {
  await page.goto(`${stack.url}/sessions/${session.id}`);
  await page.getByLabel("Access token").fill(stack.adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await waitFor("the output in the terminal's buffer", async () =>
    (await page.evaluate((id) => window.__agentrelay?.screenText(id) ?? "", session.id)).includes("LINE-20"),
  );
  return page.locator(`[data-session="${session.id}"] .terminal-host`);
}

/** How many pixels of the pane's screenshot are text (bright on the dark background). */
async function litPixels(context, pane) {
  const png = (await pane.screenshot()).toString("base64");
  const scratch = await context.newPage();
  try {
    return await scratch.evaluate(async (data) => {
      const image = new Image();
      image.src = `data:image/png;base64,${data}`;
      await image.decode();
      const canvas = document.createElement("canvas");
      canvas.width = image.width;
      canvas.height = image.height;
      const context = canvas.getContext("2d");
      context.drawImage(image, 0, 0);
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      let lit = 0;
      for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] > 400) lit++;
      return lit;
    }, png);
  } finally {
    await scratch.close();
  }
}

for (const ratio of [2, 3]) {
  test(`a phone's screen at a pixel ratio of ${ratio} shows the terminal's text`, async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", `--force-device-scale-factor=${ratio}`, "--window-size=390,844"],
    });
    try {
      const context = await browser.newContext({ viewport: null });
      const page = await context.newPage();
      const pane = await openSession(page);
      assert.equal(await page.evaluate(() => window.devicePixelRatio), ratio);
      // Twenty lines of text: thousands of bright pixels at any ratio.
      await waitFor("text on the screen", async () => (await litPixels(context, pane)) > 2000, 10000);
    } finally {
      await browser.close();
    }
  });
}

test("a WebGL renderer that draws nothing gives way to the DOM renderer, which does", async () => {
  const context = await stack.browser.newContext({ viewport: { width: 800, height: 600 } });
  // A WebGL2 context that accepts every call and draws nothing: no error, no context loss.
  await context.addInitScript(() => {
    const nothing = () => {};
    for (const name of ["drawArrays", "drawElements", "drawArraysInstanced", "drawElementsInstanced"]) {
      WebGL2RenderingContext.prototype[name] = nothing;
    }
  });
  try {
    const page = await context.newPage();
    const pane = await openSession(page);
    await waitFor("the DOM renderer", async () => (await pane.getAttribute("data-renderer")) === "dom");
    await waitFor("text on the screen", async () => (await litPixels(context, pane)) > 2000, 10000);
  } finally {
    await context.close();
  }
});
