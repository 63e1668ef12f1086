//! Session hosts: each session's process runs in its PTY under a small supervisor of its own, the
//! runner's binary re-executed as `agentrelay-runner session-host`. The host, not the runner,
//! holds the PTY, so the runner can come and go (a crash, `kill -9`, an upgrade, `systemctl
//! restart`) while the agent works on:
//!
//! * it runs in a session of its own, out of reach of the runner's terminal and process group;
//! * it reads the PTY into a spool on disk addressed by byte offset ([`spool`]), bounded by
//!   `--spool-size`: while no runner is attached the agent never blocks on a full terminal;
//! * it is a child subreaper ([`reaper`]): whatever the session starts stays below it, and ends
//!   with it;
//! * it serves one runner at a time on a Unix socket in the runner's state dir (mode 0600, in a
//!   0700 directory, and only to its own user), speaking a versioned protocol ([`wire`]); the
//!   runner side is [`link`]. It hands the runner the PTY to write to ([`handover`]), and keeps
//!   reading it itself.
//!
//! A host whose runner does not come back within `--orphan-after`, or whose socket is gone from
//! the state dir, ends its session; one whose session has ended and been recorded by HQ removes
//! its files and exits.

pub mod handover;
pub mod link;
pub mod reaper;
pub mod spool;
pub mod wire;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::{ExitStatus, TermSize};
use anyhow::Context;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use pty_process::Size;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use uuid::Uuid;

use spool::Spool;
use wire::{FromHost, HostHello, ToHost};

/// Most output read into one chunk.
const READ_CHUNK: usize = 64 * 1024;
/// Room worth another read while a chunk fills (a PTY read returns at most about 4 KiB).
const MIN_READ: usize = 4096;
/// After the command exits, stop waiting for the PTY's end once it has been quiet this long (a
/// background process may keep the terminal open forever).
const DRAIN_QUIET: Duration = Duration::from_millis(250);
/// How often leftovers are looked for while they are given time to go.
const POLL: Duration = Duration::from_millis(20);
/// How often a host without a runner checks that its socket is still in the state dir.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How far the host reads ahead of what its runner has taken: past this it stops reading the
/// PTY, so a slow HQ slows the agent rather than filling the spool.
const MAX_AHEAD: u64 = 1024 * 1024;

/// Everything a host is told when it starts.
#[derive(Debug, Clone)]
pub struct HostArgs {
    /// The session.
    pub session_id: Uuid,
    /// The socket path (the listening socket itself arrives as standard input).
    pub socket: PathBuf,
    /// The spool file.
    pub spool: PathBuf,
    /// Its size.
    pub spool_size: u64,
    /// Between a hang-up and the kill.
    pub grace: Duration,
    /// How long the host waits for a runner before it ends the session.
    pub orphan_after: Duration,
    /// The PTY's first size.
    pub size: TermSize,
    /// The protocol versions to announce (`[min, max]`); only tests change them.
    pub versions: (u32, u32),
    /// The command.
    pub command: Vec<String>,
}

/// The files of session `id` in the sessions dir `dir`: socket, spool, and what the runner
/// notes about it.
pub fn paths(dir: &Path, id: Uuid) -> (PathBuf, PathBuf, PathBuf) {
    (dir.join(format!("{id}.sock")), dir.join(format!("{id}.spool")), dir.join(format!("{id}.json")))
}

/// An order for the PTY's writer.
enum PtyOp {
    Input(Bytes),
    Resize(TermSize),
}

/// The runner attached now.
struct Attachment {
    /// Frames to it, written by its writer task.
    out: mpsc::Sender<FromHost>,
    /// Frames from it, read by its reader task; closed when it goes.
    frames: mpsc::Receiver<ToHost>,
    /// The next offset to send; `None` until it says where to start.
    sent: Option<u64>,
    exit_sent: bool,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Attachment {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs the host until its session has ended and been recorded, or is abandoned.
pub async fn run(args: HostArgs) -> anyhow::Result<()> {
    // Out of the runner's session and process group: its terminal's Ctrl-C and hang-up, and a
    // signal to its group, stay there.
    let _ = nix::unistd::setsid();
    reaper::become_subreaper().context("cannot become a child subreaper")?;
    let listener = listener_from_stdin()?;
    let mut spool = Spool::create(&args.spool, args.spool_size)?;
    let (pty, process) = match spawn(&args) {
        Ok(spawned) => spawned,
        Err(error) => return fail(&args, &listener, &format!("{error:#}")).await,
    };
    let command_pid = process.id();
    let group = command_pid.and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw);
    // The master once more: to ask the kernel (not the runtime) whether output waits, and to
    // hand to each runner.
    let master = Arc::new(pty.as_fd().try_clone_to_owned().context("cannot duplicate the PTY")?);
    let handover = (args.versions.1 >= wire::PTY_HANDOVER).then(|| master.clone());
    let (mut reader, writer) = pty.into_split();
    let (pty_tx, pty_rx) = mpsc::channel(256);
    // Ends with the process.
    tokio::spawn(write_pty(writer, pty_rx));
    let mut child = process;

    // Handled, so that the host outlives them; reset to the default in the command at exec.
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let _hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let _interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut orphaned = signal(SignalKind::child()).context("SIGCHLD handler")?;

    let ahead = MAX_AHEAD.min(args.spool_size / 2).max(1);
    // Intervals, not fresh sleeps, so a flood of output cannot starve them.
    let mut poll = tokio::time::interval(POLL);
    // Not a burst of the ticks missed before the exit: each one scans /proc.
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut check = tokio::time::interval(CHECK_EVERY);
    let mut attached: Option<Attachment> = None;
    let mut alone_since = Some(Instant::now());
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut last: Option<(u64, Bytes)> = None;
    let mut eof = false;
    let mut exit: Option<ExitStatus> = None;
    let mut drain_until = Instant::now();
    let mut leftovers_until: Option<Instant> = None;
    let mut leftovers_done = false;
    let mut kill_at: Option<Instant> = None;
    let mut abandoned = false;
    loop {
        let finished = exit.is_some() && eof && leftovers_done;
        if finished && abandoned {
            cleanup(&args);
            return Ok(());
        }
        let sent = attached.as_ref().and_then(|a| a.sent);
        let reading = !eof && sent.is_none_or(|s| spool.end() - s < ahead);
        let sending = sent.is_some_and(|s| s < spool.end())
            || (finished && attached.as_ref().is_some_and(|a| a.sent.is_some() && !a.exit_sent));
        let out = attached.as_ref().map(|a| a.out.clone());
        // The branches only say what happened; it is handled below, once no future borrows.
        let event = tokio::select! {
            accepted = listener.accept() => Event::Accepted(accepted.ok().map(|(stream, _)| stream)),
            frame = next_frame(&mut attached), if attached.is_some() => Event::Frame(frame),
            permit = reserve(out), if sending => Event::Room(permit),
            read = reader.read_buf(&mut buf), if reading => Event::Read(read),
            status = child.wait(), if exit.is_none() => Event::Exited(status),
            _ = sleep_until(drain_until), if exit.is_some() && !eof => Event::Drained,
            _ = poll.tick(), if exit.is_some() && !leftovers_done => Event::Poll,
            _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() && exit.is_none() => Event::KillNow,
            _ = orphaned.recv() => Event::ChildEnded,
            _ = terminate.recv() => Event::Terminate,
            _ = check.tick(), if attached.is_none() && !abandoned => Event::Check,
        };
        match event {
            Event::Accepted(Some(stream)) if same_user(&stream) => {
                let hello = HostHello {
                    version: args.versions.1,
                    min_version: args.versions.0,
                    session_id: args.session_id,
                    pid: std::process::id(),
                    start: spool.start(),
                    end: spool.end(),
                    exit: exit.clone(),
                    failed: None,
                };
                // A new runner replaces the old (which may be a dead one whose socket lingers).
                attached = Some(attach(stream, hello, handover.clone()));
                alone_since = None;
            }
            Event::Accepted(_) => {}
            Event::Frame(None) | Event::Room(None) => {
                // The runner went away: read on into the spool, and wait for the next.
                attached = None;
                alone_since = Some(Instant::now());
            }
            Event::Frame(Some(frame)) => match frame {
                ToHost::Attach { from, .. } => {
                    if let Some(attachment) = attached.as_mut() {
                        attachment.sent = Some(from.min(spool.end()));
                        attachment.exit_sent = false;
                    }
                }
                ToHost::Input(bytes) => {
                    let _ = pty_tx.send(PtyOp::Input(bytes)).await;
                }
                ToHost::Resize(size) if size.is_valid() => {
                    let _ = pty_tx.send(PtyOp::Resize(size)).await;
                }
                ToHost::Resize(_) => {}
                ToHost::Kill => {
                    if exit.is_none() {
                        hang_up(group);
                        kill_at.get_or_insert(Instant::now() + args.grace);
                    }
                }
                ToHost::Release if finished => {
                    cleanup(&args);
                    return Ok(());
                }
                ToHost::Release => {
                    // HQ has given the session up: end it, then clean up.
                    abandoned = true;
                    if exit.is_none() {
                        hang_up(group);
                        kill_at.get_or_insert(Instant::now() + args.grace);
                    }
                }
            },
            Event::Room(Some(permit)) => {
                let Some(attachment) = attached.as_mut() else { continue };
                let Some(at) = attachment.sent else { continue };
                if at < spool.end() {
                    let frame = if at < spool.start() {
                        attachment.sent = Some(spool.start());
                        FromHost::Gap { from: at, to: spool.start() }
                    } else {
                        let chunk = match &last {
                            // The chunk just read, as it is: the live path copies nothing.
                            Some((offset, chunk)) if *offset == at => chunk.clone(),
                            _ => Bytes::from(spool.read(at, READ_CHUNK)?),
                        };
                        attachment.sent = Some(at + chunk.len() as u64);
                        FromHost::Output(chunk)
                    };
                    permit.send(frame);
                } else if let Some(status) = exit.clone() {
                    attachment.exit_sent = true;
                    permit.send(FromHost::Exit(status));
                }
            }
            Event::Read(Ok(0)) => eof = true,
            Event::Read(Ok(_)) => {
                // What else the PTY holds already goes in the same chunk: a busy command's output
                // crosses to the runner in fewer, larger frames. Never waits.
                while buf.capacity() - buf.len() >= MIN_READ {
                    match reader.read_buf(&mut buf).now_or_never() {
                        Some(Ok(n)) if n > 0 => {}
                        // The end (or EIO) is seen again by the next read, after this chunk.
                        _ => break,
                    }
                }
                let chunk = buf.split().freeze();
                if buf.capacity() < READ_CHUNK / 4 {
                    buf.reserve(READ_CHUNK);
                }
                let offset = spool.end();
                spool.append(&chunk)?;
                last = Some((offset, chunk));
                drain_until = Instant::now() + DRAIN_QUIET;
            }
            // EIO: every holder of the PTY's other end is gone.
            Event::Read(Err(_)) => eof = true,
            Event::Exited(status) => {
                let status = status.unwrap_or_else(|_| std::process::ExitStatus::from_raw(1 << 8));
                exit = Some(describe_exit(status));
                // What the command left running is hung up now, killed after the grace period.
                reaper::signal_descendants(Signal::SIGHUP);
                reaper::signal_descendants(Signal::SIGCONT);
                leftovers_until = Some(Instant::now() + args.grace);
                drain_until = Instant::now() + DRAIN_QUIET;
            }
            // The deadline passed, but maybe only because the host fell behind (a loaded machine,
            // /proc scans): then the PTY is readable as the deadline fires, `select!` picks either,
            // and ending here lost the tail. It is quiet only if the kernel has nothing to read.
            Event::Drained if has_output(&master) => drain_until = Instant::now() + DRAIN_QUIET,
            Event::Drained => eof = true,
            Event::Poll => {
                reaper::reap_except(None);
                if reaper::descendants().is_empty() {
                    leftovers_done = true;
                } else if leftovers_until.is_some_and(|until| Instant::now() >= until) {
                    reaper::signal_descendants(Signal::SIGKILL);
                }
            }
            Event::KillNow => {
                // Everything below the host, the command's group and what left it alike.
                reaper::signal_descendants(Signal::SIGKILL);
                if let Some(group) = group {
                    let _ = killpg(group, Signal::SIGKILL);
                }
                kill_at = None;
            }
            Event::ChildEnded => reaper::reap_except(command_pid),
            Event::Terminate => {
                // The machine is going down, or someone ends the host: the session ends with it.
                abandoned = true;
                if exit.is_none() {
                    hang_up(group);
                    kill_at.get_or_insert(Instant::now() + args.grace);
                }
            }
            Event::Check => {
                let gone = !args.socket.exists();
                let waited = alone_since.is_some_and(|since| since.elapsed() >= args.orphan_after);
                if gone || waited {
                    // Nobody will read this session again: end it rather than run forever.
                    abandoned = true;
                    if exit.is_none() {
                        hang_up(group);
                        kill_at.get_or_insert(Instant::now() + args.grace);
                    }
                }
            }
        }
    }
}

/// What woke the host's loop.
enum Event {
    Accepted(Option<UnixStream>),
    Frame(Option<ToHost>),
    Room(Option<mpsc::OwnedPermit<FromHost>>),
    Read(std::io::Result<usize>),
    Exited(std::io::Result<std::process::ExitStatus>),
    Drained,
    Poll,
    KillNow,
    ChildEnded,
    Terminate,
    Check,
}

/// Whether output waits in the PTY whose master is `master`, whatever the runtime has seen of it
/// yet. An error (EINTR) says nothing, so it counts as output: the next quiet period asks again.
fn has_output(master: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_err()
        || fds[0].revents().is_some_and(|events| events.contains(PollFlags::POLLIN))
}

/// Takes the listening socket the runner passed as standard input.
fn listener_from_stdin() -> anyhow::Result<UnixListener> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().context("no listening socket on stdin")?;
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener.set_nonblocking(true).context("the listening socket")?;
    UnixListener::from_std(listener).context("the listening socket")
}

/// Opens the PTY and starts the command in it, in a session of its own.
fn spawn(args: &HostArgs) -> anyhow::Result<(pty_process::Pty, tokio::process::Child)> {
    let (pty, pts) = pty_process::open().context("cannot open a PTY")?;
    pty.resize(Size::new(args.size.rows, args.size.cols)).context("cannot size the PTY")?;
    let program = args.command.first().context("no command")?;
    let child = pty_process::Command::new(program)
        .args(&args.command[1..])
        .spawn(pts)
        .map_err(|e| anyhow::anyhow!("cannot start '{program}': {e}"))?;
    Ok((pty, child))
}

/// The command could not start: says so to the first runner, then goes.
async fn fail(args: &HostArgs, listener: &UnixListener, error: &str) -> anyhow::Result<()> {
    let hello = HostHello {
        version: args.versions.1,
        min_version: args.versions.0,
        session_id: args.session_id,
        pid: std::process::id(),
        start: 0,
        end: 0,
        exit: None,
        failed: Some(error.to_owned()),
    };
    let answered = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            if same_user(&stream) {
                let _ = FromHost::Hello(hello.clone()).write(&mut stream).await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    });
    let _ = answered.await;
    cleanup(args);
    Ok(())
}

/// Whether the peer runs as this process's user (the socket's mode says so too; this holds
/// even if someone loosened it).
fn same_user(stream: &UnixStream) -> bool {
    stream.peer_cred().is_ok_and(|cred| cred.uid() == nix::unistd::geteuid().as_raw())
}

/// Starts serving a runner on `stream`: its reader and writer tasks, and the hello, with the PTY
/// when the host hands it over.
fn attach(stream: UnixStream, hello: HostHello, pty: Option<Arc<OwnedFd>>) -> Attachment {
    let (mut read_half, mut write_half) = stream.into_split();
    let (out, mut out_rx) = mpsc::channel::<FromHost>(8);
    let (frames_tx, frames) = mpsc::channel(64);
    let writer = tokio::spawn(async move {
        let pty = pty.as_ref().map(|fd| fd.as_fd());
        if handover::send_hello(write_half.as_ref(), hello, pty).await.is_err() {
            return;
        }
        while let Some(frame) = out_rx.recv().await {
            if frame.write(&mut write_half).await.is_err() {
                return;
            }
        }
    });
    let reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = ToHost::read(&mut read_half).await {
            if frames_tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    Attachment { out, frames, sent: None, exit_sent: false, tasks: [writer, reader] }
}

async fn next_frame(attached: &mut Option<Attachment>) -> Option<ToHost> {
    match attached {
        Some(attachment) => attachment.frames.recv().await,
        None => std::future::pending().await,
    }
}

async fn reserve(out: Option<mpsc::Sender<FromHost>>) -> Option<mpsc::OwnedPermit<FromHost>> {
    match out {
        Some(out) => out.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

/// Applies input and resizes in the order they came, apart from the main loop, so a command
/// that stops reading its input never stops the host from reading its output.
async fn write_pty(mut writer: pty_process::OwnedWritePty, mut ops: mpsc::Receiver<PtyOp>) {
    let mut writable = true;
    while let Some(op) = ops.recv().await {
        match op {
            PtyOp::Input(bytes) if writable => writable = writer.write_all(&bytes).await.is_ok(),
            PtyOp::Input(_) => {}
            PtyOp::Resize(size) => {
                let _ = writer.resize(Size::new(size.rows, size.cols));
            }
        }
    }
}

/// The hang-up the runner's kill starts with: to the command's group and to everything below
/// the host (what left the group too).
fn hang_up(group: Option<Pid>) {
    if let Some(group) = group {
        let _ = killpg(group, Signal::SIGHUP);
        // A stopped job would ignore the hang-up until continued.
        let _ = killpg(group, Signal::SIGCONT);
    }
    reaper::signal_descendants(Signal::SIGHUP);
    reaper::signal_descendants(Signal::SIGCONT);
}

/// Removes the host's files: the session is over for everyone.
fn cleanup(args: &HostArgs) {
    for path in [&args.socket, &args.spool] {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(args.socket.with_extension("json"));
}

/// The exit as the protocol says it.
pub fn describe_exit(status: std::process::ExitStatus) -> ExitStatus {
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

/// Where the kernel says this boot began (a reboot ends every host).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|id| id.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_waiting_in_the_pty_is_seen_until_read_and_a_hang_up_alone_is_not_output() {
        let (pty, pts) = pty_process::open().expect("a PTY");
        let master = pty.as_fd().try_clone_to_owned().expect("dup");
        assert!(!has_output(&master), "nothing written yet");
        nix::unistd::write(pts.as_fd(), b"tail").expect("write");
        drop(pts);
        // Written, and the other end closed: the bytes are still there to read.
        assert!(has_output(&master), "the tail waits");
        let mut buf = [0u8; 16];
        let read = nix::unistd::read(&master, &mut buf).expect("read");
        assert_eq!(&buf[..read], b"tail");
        assert!(!has_output(&master), "only the hang-up is left");
    }
}
