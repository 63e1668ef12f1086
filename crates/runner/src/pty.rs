//! Running a command in a real PTY: spawn it in its own session and process group, pump its
//! output into the session's ring, apply input and resizes in order, and report the exit only
//! after the last byte it wrote has been read.
//!
//! PTY rules that bite: `pty-process` drops the child's end (the pts) after spawning, so reading
//! the master returns EIO (Linux's EOF) once every process holding the pts is gone; reads go on
//! after the child exits until then, so short-lived processes lose no tail.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::ExitStatus;
use agentrelay_protocol::runner::StartSession;
use bytes::BytesMut;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use pty_process::{OwnedWritePty, Size};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::policy::Launch;
use crate::session::{PtyOrder, Session};

/// Read size per PTY read; a read returns what is there, up to this.
const READ_CHUNK: usize = 64 * 1024;
/// After the child exits, stop waiting for EOF once the PTY has been quiet this long (a
/// background process may keep the terminal open forever).
const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// A process running in a PTY.
pub struct Process {
    child: tokio::process::Child,
    pty: pty_process::Pty,
    /// The process group (the child is its leader).
    group: Pid,
}

/// How each session's process is started: under `agentrelay-runner session-host`, which keeps
/// everything the session starts within reach (see [`crate::session_host`]).
#[derive(Debug, Clone)]
pub struct Host {
    /// The `agentrelay-runner` binary.
    pub binary: PathBuf,
    /// Time between the hang-up and the kill, for leftovers too.
    pub grace: Duration,
}

/// Spawns what the policy admitted (`launch`) in a new PTY of the requested size, under the
/// session host.
pub fn spawn(
    start: &StartSession,
    launch: &Launch,
    host: &Host,
    report_socket: &Path,
) -> anyhow::Result<Process> {
    use anyhow::Context;
    let program = launch.command.first().context("empty command")?;
    // The host would start and then fail to run the program: say why now, as a failed start.
    let path = launch.env.get("PATH").cloned().or_else(|| std::env::var("PATH").ok()).unwrap_or_default();
    if let Err(e) = find_executable(program, &path, launch.cwd.as_deref()) {
        anyhow::bail!("cannot start '{program}': {e}");
    }
    let (pty, pts) = pty_process::open().context("cannot open a PTY")?;
    pty.resize(Size::new(start.size.rows, start.size.cols)).context("cannot size the PTY")?;
    let grace = humantime::format_duration(host.grace).to_string();
    let mut command = pty_process::Command::new(&host.binary)
        .args(["session-host", "--grace", &grace, "--"])
        .args(&launch.command);
    for key in secret_variables() {
        command = command.env_remove(key);
    }
    command = command
        .envs(&launch.env)
        .env("TERM", "xterm-256color")
        .env("AGENTRELAY_SESSION_ID", start.session_id.to_string())
        .env(crate::report::SOCKET_VARIABLE, report_socket);
    if let Some(cwd) = &launch.cwd {
        command = command.current_dir(cwd);
    }
    let child = command
        .spawn(pts)
        .map_err(|e| anyhow::anyhow!("cannot start the session host {}: {e}", host.binary.display()))?;
    let pid = child.id().context("child exited before its pid was read")?;
    let group = Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
    Ok(Process { child, pty, group })
}

/// Where `program` would be found the way `execvp` looks: as a path when it holds a `/`
/// (relative to `cwd`), else on `path`.
fn find_executable(program: &str, path: &str, cwd: Option<&Path>) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |candidate: &Path| -> std::io::Result<()> {
        let metadata = std::fs::metadata(candidate)?;
        if metadata.is_file() && metadata.permissions().mode() & 0o111 != 0 {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(nix::libc::EACCES))
        }
    };
    if program.contains('/') {
        let candidate = match cwd {
            Some(dir) if !program.starts_with('/') => dir.join(program),
            _ => PathBuf::from(program),
        };
        return executable(&candidate).map(|()| candidate);
    }
    let mut denied = None;
    for dir in path.split(':').map(|d| if d.is_empty() { "." } else { d }) {
        let candidate = Path::new(dir).join(program);
        match executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.raw_os_error() == Some(nix::libc::EACCES) => denied = Some(e),
            Err(_) => {}
        }
    }
    Err(denied.unwrap_or_else(|| std::io::Error::from_raw_os_error(nix::libc::ENOENT)))
}

/// The runner's own secrets, which a child must never inherit.
fn secret_variables() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key == "RUNNER_TOKEN" || key.starts_with("AGENTRELAY_"))
        .collect()
}

/// Drives a spawned process to its end: output into the session, orders to the PTY, hang-up
/// and kill on `Kill` or runner shutdown. Returns after the exit is recorded.
pub async fn run(
    session: Arc<Session>,
    process: Process,
    orders: mpsc::Receiver<PtyOrder>,
    kill_grace: Duration,
    shutdown: CancellationToken,
) {
    let Process { mut child, pty, group } = process;
    let (mut reader, writer) = pty.into_split();
    let (kill_tx, mut kill_rx) = mpsc::channel(1);
    // Orders are applied by their own task, so a child that stops reading its input never stops
    // us from reading its output. This task aborts it once the process is gone.
    let writer_task = tokio::spawn(apply_orders(writer, orders, kill_tx));

    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut eof = false;
    let mut exit: Option<std::process::ExitStatus> = None;
    let mut kill_at: Option<Instant> = None;
    let mut drain_until = Instant::now();
    let mut shutting_down = false;
    while !(eof && exit.is_some()) {
        tokio::select! {
            // Flow control: while HQ is connected but slower than the process, stop reading; the
            // PTY's own buffer then blocks the process's writes.
            _ = session.wait_for_room(), if !eof && session.is_full() => {}
            read = reader.read_buf(&mut buf), if !eof && !session.is_full() => match read {
                Ok(0) => eof = true,
                Ok(_) => {
                    session.push_output(buf.split().freeze());
                    if buf.capacity() < READ_CHUNK / 4 {
                        buf.reserve(READ_CHUNK);
                    }
                    drain_until = Instant::now() + DRAIN_QUIET;
                }
                // EIO: every holder of the PTY's other end is gone.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => eof = true,
                Err(e) => {
                    tracing::warn!(error = %e, "PTY read failed");
                    eof = true;
                }
            },
            status = child.wait(), if exit.is_none() => {
                exit = Some(status.unwrap_or_else(|_| std::process::ExitStatus::from_raw(1 << 8)));
                drain_until = Instant::now() + DRAIN_QUIET;
            }
            _ = sleep_until(drain_until), if exit.is_some() && !eof => {
                tracing::debug!("PTY still held open after exit; stop reading");
                eof = true;
            }
            Some(()) = kill_rx.recv(), if exit.is_none() => {
                hang_up(group);
                kill_at.get_or_insert(Instant::now() + kill_grace);
            }
            _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() && exit.is_none() => {
                // Everything below the host first (what left the group too), then the group.
                if let Ok(host) = u32::try_from(group.as_raw()) {
                    crate::session_host::signal_tree(host, Signal::SIGKILL);
                }
                signal_group(group, Signal::SIGKILL);
                kill_at = None;
            }
            _ = shutdown.cancelled(), if !shutting_down && exit.is_none() => {
                shutting_down = true;
                hang_up(group);
                kill_at.get_or_insert(Instant::now() + kill_grace.min(Duration::from_secs(2)));
            }
        }
    }
    writer_task.abort();
    let exit = exit.map(describe_exit).unwrap_or(ExitStatus { code: None, signal: None });
    tracing::info!(session = %session.id, code = ?exit.code, signal = ?exit.signal, "process exited");
    session.finish(exit);
}

/// Applies input and resizes in the order they came; passes kills on to the session loop.
async fn apply_orders(
    mut writer: OwnedWritePty,
    mut orders: mpsc::Receiver<PtyOrder>,
    kill: mpsc::Sender<()>,
) {
    let mut writable = true;
    while let Some(order) = orders.recv().await {
        match order {
            PtyOrder::Input(bytes) if writable => {
                if let Err(e) = writer.write_all(&bytes).await {
                    tracing::debug!(error = %e, "PTY write failed; dropping further input");
                    writable = false;
                }
            }
            PtyOrder::Input(_) => {}
            PtyOrder::Resize(size) => {
                if let Err(e) = writer.resize(Size::new(size.rows, size.cols)) {
                    tracing::debug!(error = %e, "PTY resize failed");
                }
            }
            PtyOrder::Kill => {
                let _ = kill.try_send(());
            }
        }
    }
}

fn hang_up(group: Pid) {
    signal_group(group, Signal::SIGHUP);
    // A stopped job would ignore the hang-up until continued.
    signal_group(group, Signal::SIGCONT);
}

fn signal_group(group: Pid, signal: Signal) {
    if let Err(e) = killpg(group, signal) {
        tracing::debug!(error = %e, ?signal, "signalling the process group failed");
    }
}

fn describe_exit(status: std::process::ExitStatus) -> ExitStatus {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus { code: Some(code), signal: None },
        (None, Some(signal)) => ExitStatus {
            code: None,
            signal: Some(
                Signal::try_from(signal)
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|_| format!("SIG{signal}")),
            ),
        },
        (None, None) => ExitStatus { code: None, signal: None },
    }
}
