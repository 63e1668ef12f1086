//! The real agent CLIs (Claude Code, Codex, Gemini CLI, as `make test-deps` installs them) through
//! a real runner and HQ, against the harness's fake model server: start from the preset, type a
//! task through `POST /input`, reach the real approval prompt, see `waiting_for_input` with the
//! menu (in `/screen` and once in the webhook), approve with the menu's key, see the command's
//! file appear and the agent come back to its input box; then see the tokens the agent's own
//! OpenTelemetry exporter counted (every reply of the fake model server reports the same odd
//! [`USAGE`]) on the session. These tell us when a new release of an agent breaks what we detect
//! or what we count.
//!
//! Each test isolates the agent's home and config in its own directory and leaves no process
//! behind. They skip, saying so loudly, only when the CLIs are not installed.
//!
//! `AGENTRELAY_SAVE_SCREENS=DIR` writes each screen the tests reach to `DIR/<agent>-<stage>.txt`;
//! that is how `crates/hq/src/session/screens/` was made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentrelay_e2e::model_server::{ModelServer, Request, Turn, USAGE};
use agentrelay_e2e::{TestHq, WebhookReceiver, runner_command};
use agentrelay_protocol::{Activity, ActivitySource, Menu, RunnerStatus, Screen, Session, Usage};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// Agents take seconds to start, more on a busy two-core machine.
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The task every test types, what the model then runs, and what it answers.
const TASK: &str = "please make the file";
const ANSWER: &str = "The file is made.";

/// Where `make test-deps` put the CLIs: `AGENTRELAY_AGENT_BIN`, else the repository's
/// `.test-tools/agents`. `None`, loudly, when the program is not there.
fn agent_bin(program: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("AGENTRELAY_AGENT_BIN").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-tools/agents/node_modules/.bin")
    });
    if dir.join(program).exists() {
        return Some(dir);
    }
    eprintln!(
        "\n!!!!!!!!\nSKIPPED: {program} is not installed in {} (`make test-deps` installs it); \
         this test of the real agent did not run.\n!!!!!!!!\n",
        dir.display()
    );
    None
}

/// A moment, on HQ's clock (the same machine's).
type Since = chrono::DateTime<chrono::Utc>;

/// One agent's isolated world: its home, its working directory, the runner's state.
struct World {
    _root: tempfile::TempDir,
    home: PathBuf,
    work: PathBuf,
    state: PathBuf,
    env: BTreeMap<String, String>,
}

impl World {
    fn new() -> Self {
        // Not under /tmp: Codex refuses to set up its helpers under a temporary directory.
        let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let dir = root.path().canonicalize().unwrap();
        let (home, work, state) = (dir.join("home"), dir.join("work"), dir.join("state"));
        for d in [&home, &work, &state] {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut env = BTreeMap::new();
        env.insert("HOME".into(), home.display().to_string());
        Self { _root: root, home, work, state, env }
    }

    fn write(&self, path: &Path, contents: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// Claude Code: onboarding, the API key and the folder's trust answered in `~/.claude.json`
/// (they cannot all be passed with keys offline), and manual permission mode, so a command that
/// writes asks first.
fn claude(world: &mut World, model: &ModelServer) {
    let key = "sk-ant-api03-agentrelay-test-key-0123456789abcdefghij";
    let state = json!({
        "hasCompletedOnboarding": true,
        "customApiKeyResponses": { "approved": [&key[key.len() - 20..]], "rejected": [] },
        "projects": { world.work.display().to_string(): { "hasTrustDialogAccepted": true } },
    });
    world.write(&world.home.join(".claude.json"), &state.to_string());
    world.write(&world.home.join(".claude/settings.json"), r#"{"disableAutoMode": "disable"}"#);
    for (name, value) in [
        ("ANTHROPIC_BASE_URL", model.url()),
        ("ANTHROPIC_API_KEY", key.to_owned()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("DISABLE_TELEMETRY", "1".into()),
        ("DISABLE_ERROR_REPORTING", "1".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL", "1".into()),
    ] {
        world.env.insert(name.into(), value);
    }
}

/// Codex: a provider of our own (a model name it does not know, so no "try the new model"
/// screen), approvals on request, the folder trusted, plugins off; written fresh for each run,
/// since Codex rewrites it.
fn codex(world: &mut World, model: &ModelServer) {
    let codex_home = world.home.join(".codex");
    let config = format!(
        r#"model = "agentrelay-fake"
model_provider = "fake"
approval_policy = "on-request"

[model_providers.fake]
name = "Fake"
base_url = "{url}/v1"
env_key = "FAKE_MODEL_KEY"
wire_api = "responses"

[projects."{work}"]
trust_level = "trusted"

[features]
plugins = false
"#,
        url = model.url(),
        work = world.work.display()
    );
    world.write(&codex_home.join("config.toml"), &config);
    world.env.insert("CODEX_HOME".into(), codex_home.display().to_string());
    world.env.insert("FAKE_MODEL_KEY".into(), "fake-key".into());
}

/// Gemini CLI: API-key auth against our server, no relaunch of itself; the folder's trust is
/// left to its first-run menu.
fn gemini(world: &mut World, model: &ModelServer) {
    let settings = json!({ "security": { "auth": { "selectedType": "gemini-api-key" } } });
    world.write(&world.home.join(".gemini/settings.json"), &settings.to_string());
    world.env.insert("GEMINI_API_KEY".into(), "fake-key".into());
    world.env.insert("GOOGLE_GEMINI_BASE_URL".into(), model.url());
    world.env.insert("GEMINI_CLI_NO_RELAUNCH".into(), "true".into());
}

/// A test's HQ, runner, model server and webhook receiver.
struct Stack {
    hq: TestHq,
    world: World,
    model: ModelServer,
    hooks: WebhookReceiver,
    runner: tokio::process::Child,
    name: &'static str,
}

impl Stack {
    async fn start(name: &'static str, bin: &Path, setup: fn(&mut World, &ModelServer)) -> Self {
        let model = ModelServer::start(vec![Turn::new(TASK, "touch made-by-agent && echo made", ANSWER)])
            .await
            .unwrap();
        let mut world = World::new();
        setup(&mut world, &model);
        let hooks = WebhookReceiver::start().await;
        let hq = TestHq::start_with(&["--webhook-url", &hooks.url]).await;
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let runner = runner_command(&hq, name, &world.state)
            // `make test` on CI runs with CI=true, which no user's runner has: Gemini CLI takes it
            // to mean headless, and refuses its trust menu (exit 55) even in a terminal.
            .env_remove("CI")
            .env_remove("GITHUB_ACTIONS")
            .env("PATH", path)
            .envs(&world.env)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let online = hq.wait_for_runner(name, RunnerStatus::Online).await;
        assert!(online.presets.iter().any(|p| p.name == name), "no {name} preset: {:?}", online.presets);
        Self { hq, world, model, hooks, runner, name }
    }

    async fn start_agent(&self) -> Uuid {
        let body = json!({ "runner": self.name, "preset": self.name, "cwd": self.world.work });
        self.hq.start_session_with(body).await.id
    }

    /// Waits until the session waits for input with (or without) a menu on screen, since a
    /// moment after `since` (typing does not end a wait by itself: the output it brings does).
    async fn wait_for_waiting(
        &self,
        id: Uuid,
        with_menu: bool,
        since: Since,
        stage: &str,
    ) -> (Session, Screen) {
        let deadline = tokio::time::Instant::now() + AGENT_TIMEOUT;
        loop {
            let session = self.hq.session(id).await;
            let screen = self.screen(id, stage).await;
            let new = session.activity_since.is_some_and(|at| at > since);
            if session.activity == Some(Activity::WaitingForInput)
                && screen.menu.is_some() == with_menu
                && new
            {
                save_screen(self.name, stage, &screen);
                return (session, screen);
            }
            assert!(
                tokio::time::Instant::now() < deadline && !session.status.is_final(),
                "{} never reached {stage}: {:?} ({:?})\n{}\nmodel requests:\n{}",
                self.name,
                session.activity,
                session.status,
                screen.lines.join("\n"),
                self.model.summary()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the session's usage is what the agent was told in the replies to the requests
    /// it counts (`counted`): `USAGE` that many times over, cache reads and writes apart from the
    /// fresh input whatever the API's way of counting them. Returns it.
    async fn wait_for_usage(&self, id: Uuid, counted: fn(&Request) -> bool) -> Usage {
        let deadline = tokio::time::Instant::now() + AGENT_TIMEOUT;
        loop {
            let usage = self.hq.session(id).await.usage;
            let replies = self.model.requests().iter().filter(|r| counted(r)).count() as u64;
            let figures = usage
                .as_ref()
                .map(|u| (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_creation_tokens));
            // Gemini has no cache writes.
            let writes = if self.name == "gemini" { 0 } else { USAGE.cache_write };
            let expected = (USAGE.input, USAGE.output, USAGE.cache_read, writes);
            let expected =
                (expected.0 * replies, expected.1 * replies, expected.2 * replies, expected.3 * replies);
            if replies > 0 && figures == Some(expected) {
                return usage.unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: usage {usage:?}, expected (input, output, cache reads, cache writes) {expected:?} \
                 for {replies} replies\nmodel requests:\n{}",
                self.name,
                self.model.summary()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Types `key` to answer `menu`, and again while the same menu stays up: a dialog can be drawn
    /// before it listens (Claude Code, on a loaded machine, took no key typed the moment its
    /// approval showed), and a person would press again too.
    async fn answer(&self, id: Uuid, menu: &Menu, key: &str) {
        let deadline = tokio::time::Instant::now() + AGENT_TIMEOUT;
        loop {
            self.type_text(id, key, false).await;
            let pressed = tokio::time::Instant::now();
            loop {
                let screen = self.screen(id, "the answer").await;
                if screen.menu.as_ref() != Some(menu) {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} never took {key:?} for {menu:?}",
                    self.name
                );
                if pressed.elapsed() > Duration::from_secs(3) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The session's screen; an agent that has ended fails the test, saying how, before `stage`.
    async fn screen(&self, id: Uuid, stage: &str) -> Screen {
        let path = format!("/api/sessions/{id}/screen?format=json");
        let response = self.hq.request(Method::GET, &path).send().await.unwrap();
        if response.status() == StatusCode::CONFLICT {
            self.ended(id, stage).await;
        }
        response.json().await.unwrap()
    }

    /// Fails saying how the agent ended before `stage`: its exit and the end of its output.
    async fn ended(&self, id: Uuid, stage: &str) -> ! {
        let session = self.hq.session(id).await;
        let log = self.hq.request(Method::GET, &format!("/api/sessions/{id}/log")).send().await.unwrap();
        let log = log.bytes().await.unwrap();
        let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(4000)..]).into_owned();
        panic!(
            "{} ended before {stage}: {:?} exit {:?}\noutput's end:\n{tail}\nmodel requests:\n{}",
            self.name,
            session.status,
            session.exit_code,
            self.model.summary()
        );
    }

    async fn type_text(&self, id: Uuid, text: &str, enter: bool) {
        let response = self
            .hq
            .request(Method::POST, &format!("/api/sessions/{id}/input"))
            .json(&json!({ "text": text, "enter": enter }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// Ends the session and checks that no process it started is left (Codex's daemon, say).
    async fn finish(mut self, id: Uuid) {
        self.hq.request(Method::DELETE, &format!("/api/sessions/{id}")).send().await.unwrap();
        self.hq.wait_for_end(id).await;
        let root = self.world.work.parent().unwrap().to_owned();
        let runner = self.runner.id().unwrap();
        let deadline = tokio::time::Instant::now() + AGENT_TIMEOUT;
        loop {
            let left = processes_under(&root, runner);
            if left.is_empty() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{} left processes behind: {left:?}", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.runner.kill().await;
    }
}

fn save_screen(agent: &str, stage: &str, screen: &Screen) {
    if let Some(dir) = std::env::var_os("AGENTRELAY_SAVE_SCREENS") {
        let text = screen.lines.join("\n") + "\n";
        std::fs::write(Path::new(&dir).join(format!("{agent}-{stage}.txt")), text).unwrap();
    }
}

/// Processes other than the runner whose working directory or command line is inside `root`.
fn processes_under(root: &Path, runner: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == runner.to_string() {
            continue;
        }
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cwd.starts_with(root) || cmdline.contains(&root.display().to_string()) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// The webhook's activity deliveries, until one says `waiting_for_input`.
async fn until_waiting(hooks: &mut WebhookReceiver) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let delivery = tokio::time::timeout(AGENT_TIMEOUT, hooks.next()).await.expect("a webhook delivery");
        if delivery["event"] != "session.activity" {
            continue;
        }
        let waiting = delivery["session"]["activity"] == "waiting_for_input";
        seen.push(delivery);
        if waiting {
            return seen;
        }
    }
}

/// What differs between the agents in the common flow.
struct Expect {
    /// The approval dialog's question, as the menu reports it.
    question: &'static str,
    /// Its first option.
    yes: &'static str,
    /// What set `waiting_for_input` at the approval and at the end of the turn.
    approval_source: ActivitySource,
    done_source: ActivitySource,
}

/// The common flow from a ready agent to a finished task.
async fn task_with_approval(stack: &mut Stack, id: Uuid, since: Since, expect: Expect) {
    let ready = stack.wait_for_waiting(id, false, since, "ready").await;
    assert_eq!(ready.0.activity_source, Some(ActivitySource::Screen), "the ready box is read off the screen");
    // Deliveries so far (start-up, the ready box) are not what this test counts.
    until_waiting(&mut stack.hooks).await;

    let typed = chrono::Utc::now();
    stack.type_text(id, TASK, true).await;
    let (session, approval) = stack.wait_for_waiting(id, true, typed, "approval").await;
    let menu: Menu = approval.menu.clone().unwrap();
    assert_eq!(menu.prompt, expect.question, "{}", approval.lines.join("\n"));
    assert_eq!(menu.options[0].key, "1");
    assert_eq!(menu.options[0].label, expect.yes);
    assert_eq!(session.activity_source, Some(expect.approval_source));
    // The webhook says so once, with the same menu, and nothing said waiting before it.
    let told = until_waiting(&mut stack.hooks).await;
    let last = told.last().unwrap();
    assert_eq!(serde_json::from_value::<Menu>(last["menu"].clone()).unwrap(), menu, "{last}");
    assert!(
        told[..told.len() - 1].iter().all(|d| d["session"]["activity"] == "working"),
        "before the approval: {told:?}"
    );
    assert!(!stack.world.work.join("made-by-agent").exists(), "ran before it was approved");

    let answered = chrono::Utc::now();
    stack.answer(id, &menu, &menu.options[0].key).await;
    let made = stack.world.work.join("made-by-agent");
    let (done, screen) = stack.wait_for_waiting(id, false, answered, "done").await;
    assert!(made.exists(), "the approved command did not run");
    assert!(screen.lines.iter().any(|l| l.contains(ANSWER)), "{}", screen.lines.join("\n"));
    assert_eq!(done.activity_source, Some(expect.done_source));
    // After the answer: working, then waiting again (the agent's turn is over), never a second
    // time waiting with the approval's menu.
    let after = until_waiting(&mut stack.hooks).await;
    let (last, before) = after.split_last().unwrap();
    assert!(last.get("menu").is_none(), "the turn is over, no menu: {last}");
    assert!(before.iter().all(|d| d["session"]["activity"] != "waiting_for_input"), "{after:?}");
    assert!(before.iter().any(|d| d["session"]["activity"] == "working"), "{after:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_asks_waits_and_finishes() {
    let Some(bin) = agent_bin("claude") else { return };
    let mut stack = Stack::start("claude", &bin, claude).await;
    let id = stack.start_agent().await;
    let expect = Expect {
        question: "Do you want to proceed?",
        yes: "Yes",
        // The per-session hooks: PermissionRequest, then Stop.
        approval_source: ActivitySource::Hook,
        done_source: ActivitySource::Hook,
    };
    task_with_approval(&mut stack, id, Since::MIN_UTC, expect).await;
    let messages = |r: &Request| r.path.starts_with("/v1/messages") && !r.path.contains("count_tokens");
    let usage = stack.wait_for_usage(id, messages).await;
    // Claude Code prices what it used itself.
    assert!(usage.cost_usd.is_some_and(|usd| usd > 0.0), "{usage:?}");
    let models: Vec<Value> = stack.model.requests().iter().map(|r| r.body["model"].clone()).collect();
    assert!(models.contains(&json!(usage.model)), "{usage:?} is none of {models:?}");
    stack.finish(id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_asks_waits_and_finishes() {
    let Some(bin) = agent_bin("codex") else { return };
    let mut stack = Stack::start("codex", &bin, codex).await;
    let id = stack.start_agent().await;
    let expect = Expect {
        question: "Would you like to run the following command?",
        yes: "Yes, proceed (y)",
        approval_source: ActivitySource::Screen,
        // Its notify program, at the end of the turn.
        done_source: ActivitySource::Hook,
    };
    task_with_approval(&mut stack, id, Since::MIN_UTC, expect).await;
    let usage = stack.wait_for_usage(id, |r| r.path.starts_with("/v1/responses")).await;
    assert_eq!(usage.model.as_deref(), Some("agentrelay-fake"));
    assert_eq!(usage.cost_usd, None, "Codex prices nothing here");
    stack.finish(id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_cli_asks_about_the_folder_then_about_the_command() {
    let Some(bin) = agent_bin("gemini") else { return };
    let mut stack = Stack::start("gemini", &bin, gemini).await;
    let id = stack.start_agent().await;
    // First run in a new folder: the trust menu, a boxed menu with `●`.
    let (session, trust) = stack.wait_for_waiting(id, true, Since::MIN_UTC, "trust").await;
    let menu = trust.menu.unwrap();
    assert_eq!(menu.prompt, "Do you trust the files in this folder?");
    let labels: Vec<&str> = menu.options.iter().map(|o| o.label.as_str()).collect();
    assert_eq!(labels[2], "Don't trust", "{labels:?}");
    assert_eq!(session.activity_source, Some(ActivitySource::Screen));
    let told = until_waiting(&mut stack.hooks).await;
    assert_eq!(told.last().unwrap()["menu"]["prompt"], menu.prompt.as_str());
    // Not trusting it goes on in this process (trusting restarts it).
    let answered = chrono::Utc::now();
    stack.type_text(id, &menu.options[2].key, false).await;
    let expect = Expect {
        question: "Allow execution of [Shell]?",
        yes: "Allow once",
        approval_source: ActivitySource::Screen,
        done_source: ActivitySource::Screen,
    };
    task_with_approval(&mut stack, id, answered, expect).await;
    let generated =
        |r: &Request| r.path.contains(":generateContent") || r.path.contains(":streamGenerateContent");
    let usage = stack.wait_for_usage(id, generated).await;
    // Gemini CLI names the model the replies say answered (`modelVersion`), not the one it asked.
    assert_eq!(usage.model.as_deref(), Some("gemini-fake"));
    assert_eq!(usage.cost_usd, None, "Gemini CLI says nothing of cost");
    stack.finish(id).await;
}
