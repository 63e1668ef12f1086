//! Test harness: starts the real HQ and runners on `127.0.0.1:0` through their library entry
//! points (or, where a test needs a real process to kill, their binaries) and talks to them over
//! real HTTP and WebSockets. Everything started here stops on `Drop`.

#![allow(missing_docs)]

pub mod deps;
pub mod model_server;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use agentrelay_hq::{Hq, HqConfig};
use agentrelay_protocol::viewer::{Attached, ServerFrame};
use agentrelay_protocol::{ExitStatus, Runner, RunnerStatus, Session, SessionStatus};
use agentrelay_runner::{Runner as RunnerProcess, RunnerConfig, RunnerError};
use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Locks a mutex whatever a panicking test left in it.
pub(crate) fn lock_ignoring_poison<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long any wait in a test may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The admin token of test HQs.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The runner token of test HQs.
pub const RUNNER_TOKEN: &str = "test-runner-token";

/// A WebSocket client connection.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Runs `check` until it returns `Some`, or fails after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real HQ serving on a loopback port, in this process.
pub struct TestHq {
    client: HqClient,
    /// The `--metrics-listen` address, when given.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _data_dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TestHq {
    type Target = HqClient;
    fn deref(&self) -> &HqClient {
        &self.client
    }
}

impl TestHq {
    /// HQ with default settings.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// HQ with extra flags, e.g. `["--lost-after", "300ms"]`, and a fresh data dir.
    pub async fn start_with(extra: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut hq = Self::start_in(data_dir.path(), extra).await;
        hq._data_dir = Some(data_dir);
        hq
    }

    /// HQ on a data dir the caller owns (to restart it on the same state).
    pub async fn start_in(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        let mut args = vec!["agentrelay-hq"];
        if !extra.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        // A test may give its own admin token (the client's requests then need their own).
        if !extra.contains(&"--admin-token") {
            args.extend(["--admin-token", ADMIN_TOKEN]);
        }
        args.extend(["--runner-token", RUNNER_TOKEN, "--data-dir", data_dir.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let tls_cert = extra.iter().position(|a| *a == "--tls-cert").map(|i| extra[i + 1].to_owned());
        let hq = Hq::bind(HqConfig::parse_from(args)).await.unwrap();
        let addr = hq.local_addr().unwrap();
        let metrics_addr = hq.metrics_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hq.serve(shutdown.clone()));
        let client = match tls_cert {
            None => HqClient::new(addr),
            Some(cert) => {
                // Talk HTTPS by the certificate's name, trusting exactly that certificate.
                let pem = std::fs::read(cert).unwrap();
                let http = reqwest::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                    .build()
                    .unwrap();
                HqClient { addr, http, base: format!("https://localhost:{}", addr.port()) }
            }
        };
        Self { client, metrics_addr, shutdown, task: Some(task), _data_dir: None }
    }

    /// Stops HQ gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestHq {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A real `agentrelay-hq` process, for tests that kill it (`kill -9`) or signal it.
pub struct HqProcess {
    client: HqClient,
    child: tokio::process::Child,
}

impl std::ops::Deref for HqProcess {
    type Target = HqClient;
    fn deref(&self) -> &HqClient {
        &self.client
    }
}

impl HqProcess {
    /// Starts the binary on `addr` (a free port when `None`) and waits for `/healthz`.
    pub async fn spawn(data_dir: &std::path::Path, addr: Option<SocketAddr>, extra: &[&str]) -> Self {
        Self::spawn_command(tokio::process::Command::new(binary("agentrelay-hq")), data_dir, addr, extra)
            .await
    }

    /// Starts the binary from `sh` after the shell runs `setup` (e.g. `ulimit -f 64`), so a test
    /// can put HQ under limits of the system's own.
    pub async fn spawn_after(setup: &str, data_dir: &std::path::Path, extra: &[&str]) -> Self {
        let mut command = tokio::process::Command::new("sh");
        command.arg("-c").arg(format!("{setup}\nexec \"$0\" \"$@\"")).arg(binary("agentrelay-hq"));
        Self::spawn_command(command, data_dir, None, extra).await
    }

    async fn spawn_command(
        mut command: tokio::process::Command,
        data_dir: &std::path::Path,
        addr: Option<SocketAddr>,
        extra: &[&str],
    ) -> Self {
        let addr = addr.unwrap_or_else(|| {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        });
        let child = command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("AGENTRELAY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUNNER_TOKEN", RUNNER_TOKEN)
            .env("RUST_LOG", std::env::var("AGENTRELAY_TEST_HQ_LOG").unwrap_or_else(|_| "warn".into()))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let client = HqClient::new(addr);
        eventually("HQ to answer /healthz", || async {
            client.http.get(client.url("/healthz")).send().await.ok().filter(|r| r.status().is_success())
        })
        .await;
        Self { client, child }
    }

    /// `kill -9`: no shutdown, no flush.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap();
        std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
        tokio::time::timeout(TIMEOUT, self.child.wait()).await.expect("HQ did not stop on SIGTERM").unwrap()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }
}

/// Reads SSE events until `done` says stop; returns `(event, data)` pairs.
pub async fn read_events(
    response: &mut reqwest::Response,
    mut done: impl FnMut(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while !done(&events) {
        let chunk = tokio::time::timeout(TIMEOUT, response.chunk()).await.expect("event in time").unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("stream open")));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim());
                }
            }
            if !name.is_empty() {
                events.push((name, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

/// Talks to an HQ over HTTP and WebSockets with the admin token.
pub struct HqClient {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// `http://127.0.0.1:port`, or `https://localhost:port` under TLS.
    base: String,
}

impl HqClient {
    /// A client of an HQ at `addr` (plain HTTP), e.g. one a test started itself.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, http: reqwest::Client::new(), base: format!("http://{addr}") }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authenticated request builder.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN)
    }

    /// `GET path` without a token: the status and the JSON body (`null` if it has none).
    pub async fn http_get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.request(reqwest::Method::GET, path).send().await.unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.unwrap()
    }

    pub async fn runners(&self) -> Vec<Runner> {
        serde_json::from_value(self.get_json("/api/runners").await).unwrap()
    }

    pub async fn session(&self, id: Uuid) -> Session {
        serde_json::from_value(self.get_json(&format!("/api/sessions/{id}")).await).unwrap()
    }

    /// Creates a managed token with the admin token; returns its secret. A `user` token belongs
    /// to a member of its name (`<name>@example.test`, made on first use), as if each were a
    /// person; a `runner` token enrolls shared runners; an `admin` token is the built-in admin's.
    pub async fn create_token(&self, name: &str, scope: &str) -> String {
        let body = match scope {
            "user" => {
                let user = self.user(name, &format!("{name}@example.test"), "member").await;
                json!({ "name": name, "scope": scope, "user": user.id })
            }
            "runner" => json!({ "name": name, "scope": scope, "shared": true }),
            _ => json!({ "name": name, "scope": scope }),
        };
        let (status, created) = self.token_with(ADMIN_TOKEN, body).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
        created["token"].as_str().unwrap().to_owned()
    }

    /// `POST /api/tokens` with `bearer` and a body; status and JSON.
    pub async fn token_with(&self, bearer: &str, body: Value) -> (reqwest::StatusCode, Value) {
        let response =
            self.http.post(self.url("/api/tokens")).bearer_auth(bearer).json(&body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The user with this e-mail, created (with the admin token) if there is none yet.
    pub async fn user(&self, name: &str, email: &str, role: &str) -> agentrelay_protocol::User {
        let response = self
            .request(reqwest::Method::POST, "/api/users")
            .json(&json!({ "name": name, "email": email, "role": role }))
            .send()
            .await
            .unwrap();
        if response.status() == reqwest::StatusCode::CONFLICT {
            let users: Vec<agentrelay_protocol::User> =
                serde_json::from_value(self.get_json("/api/users").await).unwrap();
            return users.into_iter().find(|u| u.email == email).unwrap();
        }
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// A new user and a `user` token of theirs (or `admin`, for an admin): the secret.
    pub async fn person(&self, name: &str, role: &str) -> (agentrelay_protocol::User, String) {
        let user = self.user(name, &format!("{name}@example.test"), role).await;
        let scope = if role == "admin" { "admin" } else { "user" };
        let (status, created) =
            self.token_with(ADMIN_TOKEN, json!({ "name": name, "scope": scope, "user": user.id })).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
        (user, created["token"].as_str().unwrap().to_owned())
    }

    /// Waits until the runner with this name has the given status.
    pub async fn wait_for_runner(&self, name: &str, status: RunnerStatus) -> Runner {
        eventually(&format!("runner {name} to be {status:?}"), || async {
            self.runners().await.into_iter().find(|r| r.name == name && r.status == status)
        })
        .await
    }

    /// Waits until the session reaches the status; on timeout, says where it stood.
    pub async fn wait_for_session(&self, id: Uuid, status: SessionStatus) -> Session {
        let last = std::sync::Mutex::new(None);
        let waited = tokio::time::timeout(TIMEOUT, async {
            loop {
                let session = self.session(id).await;
                if session.status == status {
                    return session;
                }
                *last.lock().unwrap() = Some(session);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "timed out waiting for session {id} to be {status:?}; last seen: {:?}",
                last.lock().unwrap()
            )
        })
    }

    /// Waits until the session has ended, however it ended.
    pub async fn wait_for_end(&self, id: Uuid) -> Session {
        eventually(&format!("session {id} to end"), || async {
            Some(self.session(id).await).filter(|s| s.status.is_final())
        })
        .await
    }

    /// `POST /api/sessions` with a body; returns status and JSON.
    pub async fn post_session(&self, body: Value) -> (reqwest::StatusCode, Value) {
        let response = self.request(reqwest::Method::POST, "/api/sessions").json(&body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Starts `command` on the runner; panics unless HQ answers 201.
    pub async fn start_session(&self, runner_id: Uuid, command: &[&str]) -> Session {
        self.start_session_with(json!({ "runner_id": runner_id, "command": command })).await
    }

    /// Starts a session from a full request body; panics unless HQ answers 201.
    pub async fn start_session_with(&self, body: Value) -> Session {
        let (status, body) = self.post_session(body).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "create session: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// Attaches a viewer with the admin token and no `Origin`.
    pub async fn attach(&self, session: Uuid, from: Option<u64>) -> Viewer {
        let query = from.map(|f| format!("?from={f}")).unwrap_or_default();
        let socket =
            self.ws(&format!("/api/v1/ws/session/{session}{query}"), Some(ADMIN_TOKEN), None).await.unwrap();
        Viewer::new(socket).await
    }

    /// Opens a WebSocket to HQ with an optional bearer token and `Origin`.
    pub async fn ws(&self, path: &str, token: Option<&str>, origin: Option<&str>) -> anyhow::Result<Socket> {
        let mut request = format!("ws://{}{path}", self.addr).into_client_request()?;
        if let Some(token) = token {
            request.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}"))?);
        }
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", HeaderValue::from_str(origin)?);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(socket)
    }
}

/// A runner running in this process through its library entry point.
pub struct TestRunner {
    pub id: Uuid,
    pub name: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), RunnerError>>>,
    _state_dir: Option<tempfile::TempDir>,
}

impl TestRunner {
    /// Starts a runner named `name` and waits until HQ lists it online.
    pub async fn start(hq: &HqClient, name: &str) -> Self {
        Self::start_with(hq, name, &[]).await
    }

    /// Like [`TestRunner::start`], with extra flags.
    pub async fn start_with(hq: &HqClient, name: &str, extra: &[&str]) -> Self {
        let runner = Self::spawn(hq, name, extra);
        hq.wait_for_runner(name, RunnerStatus::Online).await;
        runner
    }

    /// Starts a runner with a fresh state dir, without waiting for it to come online.
    pub fn spawn(hq: &HqClient, name: &str, extra: &[&str]) -> Self {
        let state_dir = tempfile::tempdir().unwrap();
        let mut runner = Self::spawn_in(hq, name, state_dir.path(), extra);
        runner._state_dir = Some(state_dir);
        runner
    }

    /// Starts a runner whose state dir the caller owns.
    pub fn spawn_in(hq: &HqClient, name: &str, state_dir: &std::path::Path, extra: &[&str]) -> Self {
        let url = hq.url("");
        let mut args = vec!["agentrelay-runner"];
        if !extra.contains(&"--hq") {
            args.extend(["--hq", &url]);
        }
        if !extra.contains(&"--token") {
            args.extend(["--token", RUNNER_TOKEN]);
        }
        args.extend(["--name", name, "--state-dir", state_dir.to_str().unwrap()]);
        if !extra.contains(&"--allow") {
            args.extend(["--allow", "sh,bash,cat,env,sleep,seq,stty,printf,head"]);
        }
        // In a test the runner is a library: its sessions' host is the real binary.
        let host = binary("agentrelay-runner");
        args.extend(["--session-host-binary", host.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let runner = RunnerProcess::new(RunnerConfig::parse_from(args)).unwrap();
        let id = runner.id();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(runner.run(shutdown.clone()));
        Self { id, name: name.to_owned(), shutdown, task: Some(task), _state_dir: None }
    }

    /// Stops the runner gracefully and returns how `run` ended.
    pub async fn stop(mut self) -> Result<(), RunnerError> {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(TIMEOUT, task).await.expect("runner did not stop").unwrap()
    }

    /// Waits for the runner to stop on its own (e.g. refused by HQ).
    pub async fn join(mut self) -> Result<(), RunnerError> {
        let task = self.task.take().unwrap();
        tokio::time::timeout(TIMEOUT, task).await.expect("runner did not stop").unwrap()
    }
}

impl Drop for TestRunner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An `agentrelay-runner` process for `hq`, named `name`, keeping its state in `state_dir`, with
/// the runner token in its environment; the caller adds flags or variables and spawns it.
pub fn runner_command(hq: &HqClient, name: &str, state_dir: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary("agentrelay-runner"));
    command
        .args(["--hq", &hq.url(""), "--name", name, "--state-dir"])
        .arg(state_dir)
        .env("RUNNER_TOKEN", RUNNER_TOKEN)
        .env("RUST_LOG", "off")
        .kill_on_drop(true);
    command
}

/// The path of one of the workspace's binaries, built beside the test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --bins` first", path.display());
    path
}

/// One frame a viewer received.
#[derive(Debug)]
pub enum Frame {
    Output(Bytes),
    Control(ServerFrame),
    Closed,
}

/// A viewer on a session WebSocket, collecting what it receives.
pub struct Viewer {
    pub socket: Socket,
    pub attached: Attached,
    /// Output received so far (binary frames only).
    pub output: Vec<u8>,
    /// Control frames other than `attached` received so far.
    pub controls: Vec<ServerFrame>,
    /// The close code HQ sent, once it closed.
    pub close_code: Option<u16>,
    /// `activity` frames received so far.
    pub activity: Vec<agentrelay_protocol::ActivityState>,
    /// `presence` frames received so far.
    pub presence: Vec<agentrelay_protocol::viewer::Presence>,
    /// `size` frames received so far: the PTY's size at each change.
    pub sizes: Vec<agentrelay_protocol::TermSize>,
}

impl Viewer {
    /// Wraps a socket and reads its `attached` frame.
    pub async fn new(socket: Socket) -> Self {
        let mut viewer = Self {
            socket,
            attached: Attached {
                session_id: Uuid::nil(),
                offset: 0,
                snapshot: false,
                status: SessionStatus::Starting,
            },
            output: Vec::new(),
            controls: Vec::new(),
            close_code: None,
            activity: Vec::new(),
            presence: Vec::new(),
            sizes: Vec::new(),
        };
        match viewer.next_frame().await.unwrap() {
            Frame::Control(ServerFrame::Attached(attached)) => viewer.attached = attached,
            other => panic!("expected attached first, got {other:?}"),
        }
        viewer
    }

    /// The next frame, within [`TIMEOUT`]; `activity`, `presence` and `size` frames are collected into
    /// their fields on the way.
    pub async fn next_frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(frame) = self.next_any().await? {
                return Ok(frame);
            }
        }
    }

    /// The next frame, or `None` after collecting an `activity`, `presence` or `size` frame.
    pub async fn next_any(&mut self) -> anyhow::Result<Option<Frame>> {
        loop {
            let message =
                tokio::time::timeout(TIMEOUT, self.socket.next()).await.context("no frame in time")?;
            return Ok(Some(match message {
                None => Frame::Closed,
                Some(Ok(Message::Close(frame))) => {
                    self.close_code = frame.map(|f| f.code.into());
                    Frame::Closed
                }
                Some(Ok(Message::Binary(bytes))) => Frame::Output(bytes),
                Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str())? {
                    ServerFrame::Activity(state) => {
                        self.activity.push(state);
                        return Ok(None);
                    }
                    ServerFrame::Presence(presence) => {
                        self.presence.push(presence);
                        return Ok(None);
                    }
                    ServerFrame::Size(size) => {
                        self.sizes.push(size);
                        return Ok(None);
                    }
                    frame => Frame::Control(frame),
                },
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }));
        }
    }

    /// Reads until the output contains `needle` (after the first `after` bytes).
    pub async fn read_until(&mut self, needle: &str) -> anyhow::Result<()> {
        self.read_until_after(needle, 0).await
    }

    /// Reads until `needle` appears in the output from byte `after` on.
    pub async fn read_until_after(&mut self, needle: &str, after: usize) -> anyhow::Result<()> {
        while !contains(&self.output[after.min(self.output.len())..], needle.as_bytes()) {
            match self.next_frame().await? {
                Frame::Output(bytes) => self.output.extend_from_slice(&bytes),
                Frame::Control(frame) => self.controls.push(frame),
                Frame::Closed => bail!(
                    "closed (code {:?}) before {needle:?} appeared; got {:?} and {:?}",
                    self.close_code,
                    String::from_utf8_lossy(&self.output),
                    self.controls
                ),
            }
        }
        Ok(())
    }

    /// Reads to the end and returns the `exit` frame's payload.
    pub async fn read_to_exit(&mut self) -> anyhow::Result<ExitStatus> {
        loop {
            match self.next_frame().await? {
                Frame::Output(bytes) => self.output.extend_from_slice(&bytes),
                Frame::Control(ServerFrame::Exit(exit)) => return Ok(exit),
                Frame::Control(frame) => self.controls.push(frame),
                Frame::Closed => {
                    bail!(
                        "closed (code {:?}) without an exit frame, after {:?}",
                        self.close_code,
                        self.controls
                    )
                }
            }
        }
    }

    /// Reads the next control frame, keeping any output that comes first.
    pub async fn next_control(&mut self) -> anyhow::Result<ServerFrame> {
        loop {
            match self.next_frame().await? {
                Frame::Output(bytes) => self.output.extend_from_slice(&bytes),
                Frame::Control(frame) => return Ok(frame),
                Frame::Closed => bail!("closed while waiting for a control frame"),
            }
        }
    }

    pub async fn type_text(&mut self, text: &str) {
        self.socket.send(Message::Binary(Bytes::copy_from_slice(text.as_bytes()))).await.unwrap();
    }

    pub async fn resize(&mut self, rows: u16, cols: u16) {
        let frame = json!({"type": "resize", "payload": {"rows": rows, "cols": cols}});
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// The output as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// A request with `token`; status and JSON body (`null` when there is none).
pub async fn call(
    hq: &HqClient,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut request = hq.http.request(method, hq.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Starts `command` on `runner` through `hq` as the holder of `token`.
pub async fn start_as(hq: &HqClient, token: &str, runner: Uuid, command: &[&str]) -> Session {
    let body = json!({ "runner_id": runner, "command": command });
    let (status, session) = call(hq, token, reqwest::Method::POST, "/api/sessions", Some(body)).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{session}");
    serde_json::from_value(session).unwrap()
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A loopback TCP proxy that can misbehave as networks do: cut its connections, freeze them
/// (silence, sockets left open), or refuse new ones for a while.
pub struct TcpProxy {
    pub addr: SocketAddr,
    control: std::sync::Arc<std::sync::Mutex<ProxyControl>>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
}

struct ProxyControl {
    /// Cancelled to drop the connections open now.
    cut: CancellationToken,
    /// Cancelled to stop forwarding on the connections open now, keeping them open.
    freeze: CancellationToken,
    /// New connections are closed at once while set.
    refusing: bool,
}

impl TcpProxy {
    /// Forwards connections on a new loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = std::sync::Arc::new(std::sync::Mutex::new(ProxyControl {
            cut: CancellationToken::new(),
            freeze: CancellationToken::new(),
            refusing: false,
        }));
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (control_for_task, accepted_for_task) = (control.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                accepted_for_task.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (cut, freeze, refusing) = {
                    let control = control_for_task.lock().unwrap();
                    (control.cut.clone(), control.freeze.clone(), control.refusing)
                };
                if refusing {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.cancelled() => {}
                        // Silence: nothing moves, nothing closes, until a cut.
                        () = freeze.cancelled() => cut.cancelled().await,
                    }
                });
            }
        });
        Self { addr, control, accepted, task }
    }

    /// `http://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection open now; later ones go through again.
    pub fn cut(&self) {
        let mut control = self.control.lock().unwrap();
        control.cut.cancel();
        control.cut = CancellationToken::new();
    }

    /// Stops forwarding on every connection open now without closing them; later ones work.
    pub fn freeze(&self) {
        let mut control = self.control.lock().unwrap();
        control.freeze.cancel();
        control.freeze = CancellationToken::new();
    }

    /// While `true`, new connections are accepted and closed at once.
    pub fn refuse(&self, refusing: bool) {
        self.control.lock().unwrap().refusing = refusing;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.control.lock().unwrap().cut.cancel();
    }
}

/// A loopback HTTP receiver for `--webhook-url`: every JSON body POSTed to it, in order.
pub struct WebhookReceiver {
    /// The URL to give HQ.
    pub url: String,
    deliveries: tokio::sync::mpsc::UnboundedReceiver<Value>,
    server: JoinHandle<std::io::Result<()>>,
}

impl WebhookReceiver {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let (tx, deliveries) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let receiver = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(body);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, receiver).await });
        Self { url, deliveries, server }
    }

    /// The next delivery whose `event` is `event`, skipping others, within [`TIMEOUT`].
    pub async fn next_event(&mut self, event: &str) -> Value {
        self.until(event).await.pop().unwrap()
    }

    /// Every delivery up to and including the next whose `event` is `event`.
    pub async fn until(&mut self, event: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let delivery = tokio::time::timeout(TIMEOUT, self.deliveries.recv())
                .await
                .unwrap_or_else(|_| panic!("no {event} delivery in time; got {seen:?}"))
                .unwrap();
            let done = delivery["event"] == event;
            seen.push(delivery);
            if done {
                return seen;
            }
        }
    }

    /// The next delivery, whatever it is, within [`TIMEOUT`].
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(TIMEOUT, self.deliveries.recv()).await.expect("no delivery in time").unwrap()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A stand-in for a stolen HQ: it speaks the runner protocol itself, so a test can send a runner
/// any start order, past every check the real HQ makes. What a runner refuses here, it refuses
/// whoever holds HQ.
pub struct RogueHq {
    listener: tokio::net::TcpListener,
}

/// A connection a runner dialed to a [`RogueHq`].
pub type RogueSocket = WebSocketStream<TcpStream>;

/// How a start order sent by a [`RogueHq`] ended.
#[derive(Debug)]
pub enum RogueOutcome {
    /// The runner refused or could not start it.
    Failed(agentrelay_protocol::runner::SessionFailed),
    /// It ran: its whole output and its exit.
    Ran { output: String, exit: ExitStatus },
}

impl RogueHq {
    pub async fn start() -> Self {
        Self { listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() }
    }

    /// Its address (`HqClient::new(rogue.addr())` points a harness runner at it).
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// The URL to give a runner as `--hq`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }

    /// Accepts the next connection and its path.
    async fn accept(&self) -> (String, RogueSocket) {
        let (stream, _) = tokio::time::timeout(TIMEOUT, self.listener.accept()).await.unwrap().unwrap();
        let path = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let seen = path.clone();
        // tungstenite's callback type fixes the error type; it is never returned here.
        #[allow(clippy::result_large_err)]
        let callback = move |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                             response| {
            *seen.lock().unwrap() = request.uri().path().to_owned();
            Ok(response)
        };
        let socket = tokio_tungstenite::accept_hdr_async(stream, callback).await.unwrap();
        let path = path.lock().unwrap().clone();
        (path, socket)
    }

    /// Takes a runner's control connection: reads its hello and welcomes it.
    pub async fn accept_runner(&self) -> (RogueSocket, agentrelay_protocol::runner::Hello) {
        use agentrelay_protocol::runner::{HqMessage, RunnerMessage, Welcome};
        let (path, mut socket) = self.accept().await;
        assert_eq!(path, "/api/v1/ws/register");
        let hello = match rogue_read(&mut socket).await {
            RunnerMessage::Hello(hello) => hello,
            other => panic!("expected a hello, got {other:?}"),
        };
        let welcome = HqMessage::Welcome(Welcome {
            protocol_version: agentrelay_protocol::PROTOCOL_VERSION,
            heartbeat_interval_ms: 60_000,
        });
        socket.send(Message::text(serde_json::to_string(&welcome).unwrap())).await.unwrap();
        (socket, hello)
    }

    /// Orders the runner on `control` to start `start`, and follows it to its end: the runner's
    /// refusal, or the output and exit it streams on the data connection it dials back.
    pub async fn run(
        &self,
        control: &mut RogueSocket,
        start: agentrelay_protocol::runner::StartSession,
    ) -> RogueOutcome {
        use agentrelay_protocol::runner::{DataDown, DataUp, HqMessage, Resume, RunnerMessage};
        let id = start.session_id;
        control.send(Message::text(serde_json::to_string(&HqMessage::Start(start)).unwrap())).await.unwrap();
        let failure = async {
            loop {
                match rogue_read::<RunnerMessage>(control).await {
                    RunnerMessage::SessionFailed(failed) if failed.session_id == id => return failed,
                    RunnerMessage::Heartbeat => continue,
                    other => panic!("unexpected {other:?}"),
                }
            }
        };
        let data = tokio::select! {
            failed = failure => return RogueOutcome::Failed(failed),
            accepted = self.accept() => accepted,
        };
        let (path, mut socket) = data;
        assert_eq!(path, format!("/api/v1/ws/runner/session/{id}"));
        match rogue_read(&mut socket).await {
            DataUp::Open(open) => assert_eq!(open.session_id, id),
            other => panic!("expected open, got {other:?}"),
        }
        let resume = DataDown::Resume(Resume { from: 0, acks: false });
        socket.send(Message::text(serde_json::to_string(&resume).unwrap())).await.unwrap();
        let mut output = Vec::new();
        loop {
            let frame = tokio::time::timeout(TIMEOUT, socket.next())
                .await
                .expect("runner went quiet")
                .unwrap()
                .unwrap();
            match frame {
                Message::Binary(bytes) => output.extend_from_slice(&bytes),
                Message::Text(text) => {
                    if let DataUp::Exit(exit) = serde_json::from_str(text.as_str()).unwrap() {
                        let _ = socket.close(None).await;
                        return RogueOutcome::Ran {
                            output: String::from_utf8_lossy(&output).into_owned(),
                            exit,
                        };
                    }
                }
                _ => {}
            }
        }
    }
}

impl RogueHq {
    /// Sends `start` on `control` and takes the data connection the runner dials for it, up to
    /// its `open` (the caller answers it).
    pub async fn start_data(
        &self,
        control: &mut RogueSocket,
        start: agentrelay_protocol::runner::StartSession,
    ) -> (RogueSocket, agentrelay_protocol::runner::OpenData) {
        use agentrelay_protocol::runner::HqMessage;
        let id = start.session_id;
        control.send(Message::text(serde_json::to_string(&HqMessage::Start(start)).unwrap())).await.unwrap();
        self.accept_data(id).await
    }

    /// Takes the next data connection, for session `id`, up to its `open`.
    pub async fn accept_data(&self, id: Uuid) -> (RogueSocket, agentrelay_protocol::runner::OpenData) {
        use agentrelay_protocol::runner::DataUp;
        let (path, mut socket) = self.accept().await;
        assert_eq!(path, format!("/api/v1/ws/runner/session/{id}"));
        match rogue_read(&mut socket).await {
            DataUp::Open(open) => (socket, open),
            other => panic!("expected open, got {other:?}"),
        }
    }
}

/// The next JSON text frame on a runner's connection to a [`RogueHq`].
async fn rogue_read<T: serde::de::DeserializeOwned>(socket: &mut RogueSocket) -> T {
    loop {
        let frame =
            tokio::time::timeout(TIMEOUT, socket.next()).await.expect("runner went quiet").unwrap().unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// A real OpenID Connect provider on loopback: PyPI's `oidc-provider-mock` (a Flask and Authlib
/// provider with a sign-in form), which `make test-deps` installs in `.venv`. Any client id and
/// secret are accepted; people are whatever `sub` the form is given, with the claims set by
/// [`OidcProvider::set_user`].
pub struct OidcProvider {
    /// Its issuer URL, `http://127.0.0.1:<port>`.
    pub issuer: String,
    http: reqwest::Client,
    _child: tokio::process::Child,
}

impl OidcProvider {
    /// Starts the provider on a free port and waits for its discovery document.
    pub async fn start() -> Self {
        let program = oidc_provider_program();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new(&program)
            .args(["--port", &port.to_string(), "--require-nonce", "true"])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} (run `make test-deps`): {e}", program.display()));
        let issuer = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        eventually("the OpenID provider to answer", || async {
            http.get(&discovery).send().await.ok().filter(|r| r.status().is_success())
        })
        .await;
        Self { issuer, http, _child: child }
    }

    /// Sets the claims of the person with subject `sub` (e-mail, name, groups…).
    pub async fn set_user(&self, sub: &str, claims: Value) {
        let response =
            self.http.put(format!("{}/users/{sub}", self.issuer)).json(&claims).send().await.unwrap();
        assert!(response.status().is_success(), "setting user {sub}: {}", response.status());
    }

    /// Submits the provider's sign-in form at `authorize_url` as `sub`: the redirect back to
    /// the client (its `Location`).
    pub async fn authorize(&self, authorize_url: &str, sub: &str) -> String {
        let response = self.http.post(authorize_url).form(&[("sub", sub)]).send().await.unwrap();
        assert!(response.status().is_redirection(), "the provider answered {}", response.status());
        response.headers()["location"].to_str().unwrap().to_owned()
    }
}

/// `oidc-provider-mock`: `$OIDC_PROVIDER_MOCK`, else the project's `.venv`, else `PATH`.
pub fn oidc_provider_program() -> PathBuf {
    if let Some(path) = std::env::var_os("OIDC_PROVIDER_MOCK") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/oidc-provider-mock");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("oidc-provider-mock")
}
