//! The runner's side of its session hosts: starting a host for a new session, finding the hosts
//! a previous runner process left (adoption), and driving one session through its host: output
//! into the session's ring, orders to the host, the exit last.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::runner::{EndedSession, StartSession};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::handover::{self, PtyInput};
use super::wire::{self, FromHost, HostHello, ToHost};
use crate::policy::Launch;
use crate::session::{Outcome, PtyOrder, Session};

/// How long a host may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The buffer output frames are read through: a frame's head and small frames come in one read,
/// a larger payload is read straight into its own buffer. Small, as every session keeps one.
const READ_BUFFER: usize = 8 * 1024;

/// How the runner starts and finds its session hosts.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The `agentrelay-runner` binary each host runs from.
    pub binary: PathBuf,
    /// Where hosts keep their sockets and spools: `<state dir>/sessions`, mode 0700.
    pub dir: PathBuf,
    /// Between a hang-up and the kill.
    pub grace: Duration,
    /// Each session's spool.
    pub spool_size: u64,
    /// How long a host waits for a runner to come back before it ends its session.
    pub orphan_after: Duration,
    /// Protocol versions hosts announce, when not this build's (tests of adoption across
    /// versions); `None` normally.
    pub versions: Option<(u32, u32)>,
}

/// What the runner notes next to a host's socket, to tell later what became of it.
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    session_id: Uuid,
    /// The boot the host started in: a host missing after a reboot ended with the machine.
    boot_id: Option<String>,
}

/// A connection to a session's host.
pub struct Link {
    stream: UnixStream,
    /// What the host said when the link was made.
    pub hello: HostHello,
    /// The PTY, when the host handed it over.
    pty: Option<OwnedFd>,
}

impl HostConfig {
    /// Starts a host for the admitted `launch` of `start`, and connects to it.
    pub async fn spawn(
        &self,
        start: &StartSession,
        launch: &Launch,
        report_socket: &Path,
    ) -> anyhow::Result<Link> {
        use std::os::unix::fs::PermissionsExt;
        self.ensure_dir()?;
        let (socket, spool, note) = super::paths(&self.dir, start.session_id);
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", socket.display()))?;
        let noted = Note { session_id: start.session_id, boot_id: super::boot_id() };
        std::fs::write(&note, serde_json::to_vec(&noted)?)
            .with_context(|| format!("cannot write {}", note.display()))?;
        let versions = self.versions.unwrap_or((wire::MIN_VERSION, wire::VERSION));
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("session-host")
            .arg("--session")
            .arg(start.session_id.to_string())
            .arg("--socket")
            .arg(&socket)
            .arg("--spool")
            .arg(&spool)
            .arg("--spool-size")
            .arg(self.spool_size.to_string())
            .arg("--grace")
            .arg(humantime::format_duration(self.grace).to_string())
            .arg("--orphan-after")
            .arg(humantime::format_duration(self.orphan_after).to_string())
            .arg("--rows")
            .arg(start.size.rows.to_string())
            .arg("--cols")
            .arg(start.size.cols.to_string())
            .arg("--versions")
            .arg(format!("{}-{}", versions.0, versions.1))
            .arg("--")
            .args(&launch.command)
            // The listening socket is the host's standard input; it writes nowhere.
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(listener)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for key in secret_variables() {
            command.env_remove(key);
        }
        command
            .envs(&launch.env)
            .env("TERM", "xterm-256color")
            .env("AGENTRELAY_SESSION_ID", start.session_id.to_string())
            .env(crate::report::SOCKET_VARIABLE, report_socket);
        if let Some(cwd) = &launch.cwd {
            command.current_dir(cwd);
        }
        // Dropped at once: tokio reaps it when it exits, and it outlives this runner anyway.
        command
            .spawn()
            .with_context(|| format!("cannot start the session host {}", self.binary.display()))?;
        let link = Link::connect(&socket).await?;
        if let Some(failed) = link.hello.failed.clone() {
            bail!(failed);
        }
        Ok(link)
    }

    /// Finds the hosts a previous runner process left: the ones that answer, and the sessions
    /// whose host is gone, with why.
    pub async fn adopt(&self) -> (Vec<Link>, Vec<EndedSession>) {
        let mut adopted = Vec::new();
        let mut ended = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return (adopted, ended) };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let Some(note) =
                std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<Note>(&bytes).ok())
            else {
                continue;
            };
            let (socket, spool, _) = super::paths(&self.dir, note.session_id);
            match Link::connect(&socket).await {
                Ok(link) if wire::compatible(link.hello.min_version, link.hello.version) => {
                    adopted.push(link)
                }
                Ok(link) => {
                    let reason = format!(
                        "its session host speaks protocol {}–{}, and this runner {}–{}: it is left running for a runner that speaks it",
                        link.hello.min_version,
                        link.hello.version,
                        wire::MIN_VERSION,
                        wire::VERSION
                    );
                    tracing::error!(session = %note.session_id, "{reason}");
                    ended.push(EndedSession { id: note.session_id, reason });
                }
                Err(_) => {
                    let rebooted = note.boot_id.is_some() && note.boot_id != super::boot_id();
                    let reason = if rebooted {
                        "the machine restarted, and the session's process ended with it".to_owned()
                    } else {
                        "its session host is gone (it was killed, or ended while no runner was there)"
                            .to_owned()
                    };
                    tracing::warn!(session = %note.session_id, "{reason}");
                    for stale in [&socket, &spool, &path] {
                        let _ = std::fs::remove_file(stale);
                    }
                    ended.push(EndedSession { id: note.session_id, reason });
                }
            }
        }
        (adopted, ended)
    }

    /// The sessions dir, owner-only.
    fn ensure_dir(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", self.dir.display()))
    }
}

impl Link {
    /// Connects to the host listening on `socket` and reads its hello.
    async fn connect(socket: &Path) -> anyhow::Result<Self> {
        let stream = UnixStream::connect(socket)
            .await
            .with_context(|| format!("cannot reach {}", socket.display()))?;
        let (hello, pty) = match tokio::time::timeout(HELLO_TIMEOUT, handover::receive_hello(&stream)).await {
            Ok(said) => said?,
            Err(_) => bail!("the session host did not say hello within {HELLO_TIMEOUT:?}"),
        };
        Ok(Self { stream, hello, pty })
    }
}

/// Drives one session through its host: output into the ring (only while it has room, so a slow
/// HQ slows the agent), orders to the host, the exit or the loss last. Then waits for HQ to record
/// it and lets the host go. On runner shutdown it detaches, leaving the session running, unless
/// `end_on_shutdown`, when it ends the session first.
pub async fn run(
    session: Arc<Session>,
    link: Link,
    orders: mpsc::Receiver<PtyOrder>,
    shutdown: CancellationToken,
    end_on_shutdown: bool,
) {
    let (reader, writer) = link.stream.into_split();
    // Output arrives as a frame head and its payload: read through a buffer, most frames cost
    // one system call, not three.
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let (to_host, to_host_rx) = mpsc::channel::<ToHost>(64);
    // Orders go out beside the output coming in, so neither waits for the other.
    let writing = tokio::spawn(write_host(writer, to_host_rx));
    let pty = link.pty.and_then(|fd| {
        PtyInput::new(fd)
            .inspect_err(|e| tracing::warn!(session = %session.id, error = %format!("{e:#}"), "input goes through the session host"))
            .ok()
    });
    let forwarding = tokio::spawn(forward_orders(orders, to_host.clone(), pty));
    let from = tokio::select! {
        from = session.attached_at() => from,
        _ = shutdown.cancelled(), if !end_on_shutdown => return stop(writing, forwarding),
        // Stopping with HQ out of reach before it ever asked for output: the host keeps it all.
        _ = session.outcome() => return stop(writing, forwarding),
    };
    if to_host.send(ToHost::Attach { version: wire::VERSION, from }).await.is_err() {
        session.mark_lost("its session host went away".to_owned());
        return stop(writing, forwarding);
    }
    let mut ending = false;
    loop {
        tokio::select! {
            _ = session.wait_for_room(), if session.is_full() => {}
            frame = FromHost::read(&mut reader), if !session.is_full() => match frame {
                Ok(Some(FromHost::Output(bytes))) => session.push_output(bytes),
                Ok(Some(FromHost::Gap { from, to })) => {
                    tracing::warn!(session = %session.id, from, to, "output outgrew the host's spool");
                    session.skip_to(to);
                }
                Ok(Some(FromHost::Exit(exit))) => {
                    tracing::info!(session = %session.id, code = ?exit.code, signal = ?exit.signal, "process exited");
                    session.finish(exit);
                    break;
                }
                Ok(Some(FromHost::Hello(_))) => {}
                Ok(None) | Err(_) => {
                    tracing::warn!(session = %session.id, "the session host went away without the exit");
                    session.mark_lost("its session host ended without the session's exit (was it killed?)".to_owned());
                    return stop(writing, forwarding);
                }
            },
            outcome = session.outcome() => {
                match outcome {
                    // HQ gave the session up before its end: the host ends it and goes.
                    Outcome::GivenUp => {
                        let _ = to_host.send(ToHost::Release).await;
                    }
                    // Stopping with HQ out of reach: the host ends the session if asked to, and
                    // keeps its exit for the next runner.
                    Outcome::Undelivered if end_on_shutdown && !ending => {
                        let _ = to_host.send(ToHost::Kill).await;
                    }
                    Outcome::Undelivered | Outcome::Recorded => {}
                }
                return flush(to_host, forwarding, writing).await;
            }
            _ = shutdown.cancelled(), if !ending => {
                if !end_on_shutdown {
                    tracing::info!(session = %session.id, "runner stopping; the session runs on in its host");
                    return stop(writing, forwarding);
                }
                ending = true;
                let _ = to_host.send(ToHost::Kill).await;
            }
        }
    }
    // The exit is the session's; once HQ has it, the host may remove its files and go. A runner
    // stopping with HQ out of reach leaves it with the host, for the next runner to report.
    tokio::select! {
        outcome = session.outcome() => if outcome != Outcome::Undelivered {
            let _ = to_host.send(ToHost::Release).await;
        },
        _ = shutdown.cancelled(), if !end_on_shutdown => {}
    }
    flush(to_host, forwarding, writing).await;
}

/// Lets what was sent to the host reach it before the socket closes.
async fn flush(to_host: mpsc::Sender<ToHost>, forwarding: JoinHandle<()>, writing: JoinHandle<()>) {
    drop(to_host);
    forwarding.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), writing).await;
}

fn stop(writing: JoinHandle<()>, forwarding: JoinHandle<()>) {
    writing.abort();
    forwarding.abort();
}

async fn write_host(mut writer: OwnedWriteHalf, mut frames: mpsc::Receiver<ToHost>) {
    while let Some(frame) = frames.recv().await {
        if frame.write(&mut writer).await.is_err() {
            return;
        }
    }
}

/// Sends the session's orders on: keystrokes and sizes to the PTY itself when the host handed it
/// over, else to the host, and a kill always to the host (it signals the process group).
async fn forward_orders(
    orders: mpsc::Receiver<PtyOrder>,
    to_host: mpsc::Sender<ToHost>,
    pty: Option<PtyInput>,
) {
    match pty {
        Some(pty) => forward_to_pty(orders, to_host, pty).await,
        None => forward_to_host(orders, to_host).await,
    }
}

/// Every order as a frame to the host (a host of protocol version 1).
async fn forward_to_host(mut orders: mpsc::Receiver<PtyOrder>, to_host: mpsc::Sender<ToHost>) {
    while let Some(order) = orders.recv().await {
        let frame = match order {
            PtyOrder::Input(bytes) => ToHost::Input(bytes),
            PtyOrder::Resize(size) => ToHost::Resize(size),
            PtyOrder::Kill => ToHost::Kill,
        };
        if to_host.send(frame).await.is_err() {
            return;
        }
    }
}

/// Keystrokes and sizes to the PTY, kills to the host. The PTY is written apart, so a command
/// that stops reading its input (its terminal's buffer full) cannot hold a kill back.
async fn forward_to_pty(
    mut orders: mpsc::Receiver<PtyOrder>,
    to_host: mpsc::Sender<ToHost>,
    mut pty: PtyInput,
) {
    let (to_pty, mut pty_orders) = mpsc::channel::<PtyOrder>(64);
    let writing = async move {
        let mut writable = true;
        while let Some(order) = pty_orders.recv().await {
            match order {
                PtyOrder::Input(bytes) if writable => writable = pty.write_all(&bytes).await.is_ok(),
                PtyOrder::Resize(size) => {
                    let _ = pty.resize(size);
                }
                // The command has gone: input no longer matters.
                PtyOrder::Input(_) | PtyOrder::Kill => {}
            }
        }
    };
    let routing = async move {
        while let Some(order) = orders.recv().await {
            let sent = match order {
                PtyOrder::Kill => to_host.send(ToHost::Kill).await.is_ok(),
                order => to_pty.send(order).await.is_ok(),
            };
            if !sent {
                return;
            }
        }
    };
    // Both end with the session's orders (or its host).
    tokio::join!(writing, routing);
}

/// The runner's own secrets, which a session must never inherit.
fn secret_variables() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key == "RUNNER_TOKEN" || key.starts_with("AGENTRELAY_"))
        .collect()
}
