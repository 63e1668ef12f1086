//! The system under test: the release `agentrelay-hq` and `agentrelay-runner` binaries as real
//! processes on loopback, and a client that talks to them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use agentrelay_protocol::viewer::ServerFrame;
use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A viewer's socket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) const ADMIN: &str = "bench-admin-token";
pub(crate) const RUNNER: &str = "bench-runner-token";

/// A binary beside this one (the release build).
pub(crate) fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no parent dir")?.join(name);
    if !path.exists() {
        bail!("{} is missing: build it with cargo build --release --bins", path.display());
    }
    Ok(path)
}

/// HQ and one runner, running.
pub(crate) struct Stack {
    pub(crate) addr: String,
    /// Where viewers attach: HQ, or in a cluster another replica than the runner's.
    pub(crate) view_addr: String,
    /// Other replicas of a cluster (killed on drop).
    replicas: Vec<Child>,
    /// Every replica's address, the runner's first.
    pub(crate) replica_addrs: Vec<String>,
    pub(crate) http: reqwest::Client,
    pub(crate) hq: Child,
    pub(crate) runner: Child,
    pub(crate) runner_id: String,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub(crate) async fn start(extra_hq: &[&str]) -> anyhow::Result<Self> {
        Self::start_replicas(extra_hq, 1).await
    }

    /// `replicas` HQs with the same flags (a cluster's, for more than one); the runner dials the
    /// first, viewers attach to the last.
    pub(crate) async fn start_replicas(extra_hq: &[&str], replicas: usize) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let http = reqwest::Client::new();
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..replicas.max(1) {
            let port = {
                let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
                probe.local_addr()?.port()
            };
            let addr = format!("127.0.0.1:{port}");
            let child = Command::new(binary("agentrelay-hq")?)
                .args(["--listen", &addr, "--data-dir"])
                .arg(dir.path().join(format!("data-{i}")))
                .args(extra_hq)
                .env("AGENTRELAY_ADMIN_TOKEN", ADMIN)
                .env("RUNNER_TOKEN", RUNNER)
                .env("RUST_LOG", "warn")
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("starting HQ")?;
            wait_until("HQ to answer", || async {
                http.get(format!("http://{addr}/healthz")).send().await.is_ok_and(|r| r.status().is_success())
            })
            .await?;
            children.push(child);
            addrs.push(addr);
        }
        let hq = children.remove(0);
        let addr = addrs[0].clone();
        let view_addr = addrs.last().cloned().unwrap_or_else(|| addr.clone());
        let runner = Command::new(binary("agentrelay-runner")?)
            .args(["--hq", &format!("http://{addr}"), "--name", "bench", "--state-dir"])
            .arg(dir.path().join("runner"))
            .env("RUNNER_TOKEN", RUNNER)
            .env("RUST_LOG", "error")
            .kill_on_drop(true)
            .spawn()
            .context("starting the runner")?;
        let mut stack = Self {
            addr,
            view_addr,
            replicas: children,
            replica_addrs: addrs,
            http,
            hq,
            runner,
            runner_id: String::new(),
            _dir: dir,
        };
        let runner_id = wait_for(|| async {
            let runners: Value = stack.get("/api/runners").await.ok()?;
            runners.as_array()?.iter().find(|r| r["status"] == "online")?["id"].as_str().map(str::to_owned)
        })
        .await?;
        stack.runner_id = runner_id;
        Ok(stack)
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .json()
            .await?)
    }

    /// Starts a session; returns its id.
    pub(crate) async fn start_session(&self, command: &[&str]) -> anyhow::Result<String> {
        let body = json!({"runner_id": self.runner_id, "command": command});
        let response = self
            .http
            .post(format!("http://{}/api/sessions", self.addr))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("create session: {} {}", response.status(), response.text().await?);
        }
        let session: Value = response.json().await?;
        session["id"].as_str().map(str::to_owned).context("no session id")
    }

    /// Opens a viewer and reads its `attached` frame.
    pub(crate) async fn attach(&self, id: &str) -> anyhow::Result<Socket> {
        let mut request = format!("ws://{}/api/v1/ws/session/{id}", self.view_addr).into_client_request()?;
        request.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {ADMIN}"))?);
        let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
        match socket.next().await {
            Some(Ok(Message::Text(_))) => Ok(socket),
            other => bail!("expected attached, got {other:?}"),
        }
    }

    pub(crate) fn hq_pid(&self) -> u32 {
        self.hq.id().unwrap_or(0)
    }

    /// Every replica's process id, the runner's first.
    pub(crate) fn replica_pids(&self) -> Vec<u32> {
        std::iter::once(self.hq_pid()).chain(self.replicas.iter().map(|c| c.id().unwrap_or(0))).collect()
    }

    pub(crate) fn runner_pid(&self) -> u32 {
        self.runner.id().unwrap_or(0)
    }
}

/// Reads a viewer until the exit frame; returns the output byte count.
pub(crate) async fn drain_to_exit(socket: &mut Socket) -> anyhow::Result<u64> {
    Ok(drain_to_exit_timed(socket).await?.bytes)
}

/// What a viewer read up to the exit, and when its first and last bytes came.
pub(crate) struct Drained {
    pub(crate) bytes: u64,
    pub(crate) first_byte: Option<Instant>,
    pub(crate) last_byte: Option<Instant>,
}

/// The same, with the times of the first and the last byte.
pub(crate) async fn drain_to_exit_timed(socket: &mut Socket) -> anyhow::Result<Drained> {
    let mut drained = Drained { bytes: 0, first_byte: None, last_byte: None };
    while let Some(message) = socket.next().await {
        match message? {
            Message::Binary(data) => {
                let now = Instant::now();
                drained.first_byte.get_or_insert(now);
                drained.last_byte = Some(now);
                drained.bytes += data.len() as u64;
            }
            Message::Text(text) => {
                if let Ok(ServerFrame::Exit(_)) = serde_json::from_str(text.as_str()) {
                    return Ok(drained);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    bail!("closed before exit after {} bytes", drained.bytes)
}

/// Polls `check` every 20 ms for up to 30 s.
pub(crate) async fn wait_until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1500 {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("timed out waiting for {what}")
}

pub(crate) async fn wait_for<T, F, Fut>(mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..1500 {
        if let Some(value) = check().await {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("timed out")
}

/// Resident and peak memory of a process, in KiB, from /proc.
pub(crate) fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A process's proportional set size in KiB (shared pages split among the processes that map
/// them: what each session host really costs, its binary's pages shared with the others).
pub(crate) fn pss_kib(pid: u32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The session hosts running now (`agentrelay-runner session-host`), by pid.
pub(crate) fn session_hosts() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            cmdline.split(|b| *b == 0).any(|arg| arg == b"session-host").then_some(pid)
        })
        .collect()
}

/// CPU time (user + system) a process has used, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Clock ticks per second.
pub(crate) fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64
}

/// Writes a text file of `size` bytes (numbered lines) for the throughput run.
pub(crate) fn text_file(dir: &Path, size: u64) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let path = dir.join("payload.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut written = 0u64;
    let mut n = 0u64;
    while written < size {
        let line = format!("{n:08} the quick brown fox jumps over the lazy dog 0123456789 abcdefghij\n");
        let take = line.len().min((size - written) as usize);
        file.write_all(&line.as_bytes()[..take])?;
        written += take as u64;
        n += 1;
    }
    file.flush()?;
    Ok(path)
}
