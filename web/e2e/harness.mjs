// Starts the real agentrelay-hq and agentrelay-runner binaries (debug builds, serving web/dist) on
// a free loopback port, and Debian's Chromium through playwright-core. Everything stops in `stop`.

import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "../..");
export const BIN = process.env.AGENTRELAY_BIN_DIR ?? join(targetDir(), "debug");
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Where cargo puts its output (honours CARGO_TARGET_DIR and .cargo/config's build.target-dir). */
function targetDir() {
  try {
    const metadata = execFileSync("cargo", ["metadata", "--no-deps", "--format-version", "1"], {
      cwd: ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return JSON.parse(metadata).target_directory;
  } catch {
    return resolve(ROOT, process.env.CARGO_TARGET_DIR ?? "target");
  }
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** Polls `check` until it returns a truthy value, or throws after `ms`. */
export async function waitFor(what, check, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Options: `hqArgs`, more flags for HQ (e.g. `["--lost-after", "2s"]`); `webhook: true`, a
 * receiver for HQ's `--webhook-url` whose deliveries collect in `stack.deliveries`; `publicUrl:
 * true`, HQ's own address as its `--public-url`; `oidc: { flags }`, a real OpenID provider
 * (`oidc-provider-mock` from `make test-deps`) at `stack.oidcIssuer`, on `localhost` so that it is
 * another site than HQ on 127.0.0.1, with HQ's `--oidc-*` flags pointing at it (plus `flags`).
 */
export async function startStack(options = {}) {
  for (const name of ["agentrelay-hq", "agentrelay-runner"]) {
    if (!existsSync(join(BIN, name))) throw new Error(`${join(BIN, name)} is missing: run cargo build --bins`);
  }
  if (!existsSync(join(ROOT, "web/dist/index.html"))) throw new Error("web/dist is missing: run npm run build");
  const dir = mkdtempSync(join(tmpdir(), "agentrelay-e2e-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const adminToken = randomBytes(16).toString("hex");
  const runnerToken = randomBytes(16).toString("hex");
  const env = { ...process.env, RUST_LOG: "warn" };
  const children = [];
  const logs = [];
  const start = (name, args, extraEnv) => {
    const child = spawn(name.startsWith("/") ? name : join(BIN, name), args, { env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (d) => logs.push(`${name}: ${d}`));
    child.stderr.on("data", (d) => logs.push(`${name}: ${d}`));
    children.push(child);
    return child;
  };
  const deliveries = [];
  let hookServer = null;
  const hqArgs = [...(options.hqArgs ?? [])];
  if (options.publicUrl) hqArgs.push("--public-url", url);
  let oidcIssuer = null;
  if (options.oidc) {
    const oidcPort = await freePort();
    const program = process.env.OIDC_PROVIDER_MOCK ?? join(ROOT, ".venv/bin/oidc-provider-mock");
    if (!existsSync(program) && !process.env.OIDC_PROVIDER_MOCK) throw new Error(`${program} is missing: run make test-deps`);
    start(program, ["--port", String(oidcPort), "--require-nonce", "true"], { NO_COLOR: "1" });
    oidcIssuer = `http://localhost:${oidcPort}`;
    await waitFor("the OpenID provider", () =>
      fetch(`http://127.0.0.1:${oidcPort}/.well-known/openid-configuration`).then((r) => r.ok, () => false),
    );
    hqArgs.push("--oidc-issuer", oidcIssuer, "--oidc-client-id", "agentrelay", "--oidc-client-secret", "s3cret");
    hqArgs.push(...(options.oidc.flags ?? []));
  }
  if (options.webhook) {
    hookServer = createHttpServer((request, response) => {
      let body = "";
      request.on("data", (chunk) => (body += chunk));
      request.on("end", () => {
        try {
          deliveries.push(JSON.parse(body));
        } catch {
          deliveries.push({ unreadable: body });
        }
        response.end();
      });
    });
    await new Promise((done) => hookServer.listen(0, "127.0.0.1", done));
    hqArgs.push("--webhook-url", `http://127.0.0.1:${hookServer.address().port}/hook`);
  }
  let hq = null;
  // --idle-after: quiet output turns into "idle" or "waiting_for_input" quickly.
  async function startHq() {
    hq = start(
      "agentrelay-hq",
      ["--listen", `127.0.0.1:${port}`, "--data-dir", join(dir, "data"), "--idle-after", "300ms", ...hqArgs],
      { AGENTRELAY_ADMIN_TOKEN: adminToken, RUNNER_TOKEN: runnerToken },
    );
    await waitFor("HQ to answer /healthz", () => fetch(`${url}/healthz`).then((r) => r.ok, () => false));
  }
  const killed = (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGKILL");
    return exited;
  };
  await startHq();
  // --end-sessions-on-exit: stop() leaves no session host behind (a kill -9 still leaves them).
  const runnerArgs = ["--hq", url, "--name", "e2e-runner", "--state-dir", join(dir, "runner"), "--end-sessions-on-exit"];
  let runner = start("agentrelay-runner", runnerArgs, { RUNNER_TOKEN: runnerToken });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
  /** A REST call with the admin token; JSON in and, when there is a body, out. */
  async function api(method, path, body) {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // text/plain (the screen) or empty.
    }
    return { status: response.status, json, text };
  }
  /** Starts one more runner named `name` with extra flags (and environment, which its sessions
   * inherit), and waits until HQ lists it online. */
  async function startRunner(name, args = [], extraEnv = {}) {
    start("agentrelay-runner", ["--hq", url, "--name", name, "--state-dir", join(dir, `runner-${name}`), "--end-sessions-on-exit", ...args], {
      ...extraEnv,
      RUNNER_TOKEN: runnerToken,
    });
    return waitFor(`runner ${name} online`, async () => {
      const runners = (await api("GET", "/api/runners")).json ?? [];
      return runners.find((r) => r.name === name && r.status === "online");
    });
  }
  return {
    url,
    oidcIssuer,
    adminToken,
    api,
    browser,
    logs,
    dir,
    startRunner,
    deliveries,
    /** HQ dies as with `kill -9`; `startHq` brings it back on the same port and data. */
    killHq: () => killed(hq),
    startHq,
    /** The first runner dies as with `kill -9`. */
    killRunner: () => killed(runner),
    /** Starts the first runner again (same name, same state dir): it takes its sessions back from
     * their session hosts. Resolves once HQ lists it online. */
    async restartRunner() {
      runner = start("agentrelay-runner", runnerArgs, { RUNNER_TOKEN: runnerToken });
      await waitFor("the runner to come back online", async () => {
        const runners = (await api("GET", "/api/runners")).json ?? [];
        return runners.find((r) => r.name === "e2e-runner" && r.status === "online");
      });
    },
    async stop() {
      await browser.close().catch(() => {});
      // Runners first: with HQ still up they report their sessions' ends, as a user's would.
      const runners = children.filter((c) => c !== hq);
      const stopping = (list) => Promise.all(list.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once("exit", r)) : null)));
      for (const child of runners) child.kill("SIGTERM");
      // A process that does not stop on SIGTERM is a bug to report, not a reason to hang the suite.
      const late = [];
      const deadline = (list) =>
        new Promise((done) =>
          setTimeout(() => {
            for (const child of list) {
              if (child.exitCode === null && child.signalCode === null) {
                late.push(child.spawnargs.slice(0, 2).join(" "));
                child.kill("SIGKILL");
              }
            }
            done();
          }, 20000).unref(),
        );
      await Promise.race([stopping(runners), deadline(runners)]);
      if (hq) hq.kill("SIGTERM");
      await Promise.race([stopping(children), deadline(children)]);
      hookServer?.close();
      rmSync(dir, { recursive: true, force: true });
      if (late.length) throw new Error(`did not stop within 20 s of SIGTERM: ${late.join("; ")}`);
    },
  };
}
