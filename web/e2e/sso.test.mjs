// Single sign-on in a real browser: "Sign in with Acme" on the sign-in page, the real OpenID
// provider's own form (oidc-provider-mock, on another site: localhost, while HQ is 127.0.0.1),
// back to HQ and on to the dashboard, signed in as that person. The provider's return is a
// cross-site navigation: HQ's state cookie is SameSite=Lax so it comes along, and the last hop to
// the dashboard starts on HQ's own page, so the SameSite=Strict sign-in cookie goes with it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startStack } from "./harness.mjs";

test("signing in with single sign-on lands on the dashboard as that person", async () => {
  const stack = await startStack({
    oidc: { flags: ["--oidc-name", "Acme", "--oidc-allowed-domains", "example.com"] },
  });
  try {
    const claims = { email: "ann@example.com", email_verified: true, name: "Ann Lee" };
    const put = await fetch(`${stack.oidcIssuer.replace("localhost", "127.0.0.1")}/users/ann`, {
      method: "PUT",
      headers: { "content-type": "application/json", host: new URL(stack.oidcIssuer).host },
      body: JSON.stringify(claims),
    });
    assert.equal(put.status, 204);
    const page = await stack.browser.newPage();
    // The dashboard's own page load after the sign-in: which cookies went with it.
    const landings = [];
    page.on("requestfinished", (request) => {
      if (request.isNavigationRequest() && request.url() === `${stack.url}/runners`) landings.push(request);
    });
    await page.goto(`${stack.url}/runners`);
    await page.getByRole("link", { name: "Sign in with Acme" }).click();

    // The provider's own sign-in form, on another site.
    await page.waitForURL((url) => url.origin === stack.oidcIssuer);
    await page.getByPlaceholder("sub").fill("ann");
    await page.getByRole("button", { name: "Authorize" }).click();

    // Back at HQ, and on to where the sign-in started, signed in as Ann.
    await page.waitForURL(`${stack.url}/runners`);
    await page.getByTestId("user-menu").filter({ hasText: "Ann Lee" }).waitFor();
    // The last hop started on HQ's page (same-site): the Strict sign-in cookie went with it. (A
    // redirect straight from the callback would still be part of the provider's cross-site
    // navigation, and go without it.)
    const landed = await landings.at(-1).allHeaders();
    assert.match(landed.cookie ?? "", /agentrelay_session=/, "the dashboard's load carried the sign-in");
    await page.getByTestId("user-menu").click();
    assert.equal(await page.getByTestId("user-role").textContent(), "Member");
    // Her dashboard: the shared runner, marked so; no Users page for a member.
    await page.getByTestId("runner-list").getByTestId("runner-shared").first().waitFor();
    assert.equal(await page.getByRole("link", { name: "Users" }).count(), 0);
    // The sign-in lives in an HttpOnly cookie only: nothing readable by scripts, nothing stored.
    const seen = await page.evaluate(() => ({ cookie: document.cookie, local: localStorage.length }));
    assert.deepEqual(seen, { cookie: "", local: 0 });
    const me = await page.evaluate(() => fetch("/api/me").then((r) => r.json()));
    assert.equal(me.email, "ann@example.com");

    // Signing out ends it.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("link", { name: "Sign in with Acme" }).waitFor();
    assert.equal(await page.evaluate(() => fetch("/api/me").then((r) => r.status)), 401);
  } finally {
    await stack.stop();
  }
});
