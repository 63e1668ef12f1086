//! `agentrelay-runner session-host -- COMMAND…`: the first process in every session's PTY.
//!
//! It makes itself a child subreaper, so everything the session starts stays its descendant, even
//! a daemon that double-forks or calls `setsid` (Codex's app-server does). It runs the command and,
//! once the command has ended, ends every process left over (hang-up, then kill after the grace
//! period), then exits exactly as the command did: the same code, or killed by the same signal.
//! While the command runs, a hang-up or `SIGTERM` from the runner goes to every descendant, not
//! only to the PTY's process group.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

/// How often leftovers are checked for while they are given time to go.
const POLL: Duration = Duration::from_millis(20);

/// Runs `command` and cleans up after it; returns how the command ended.
pub async fn run(command: &[String], grace: Duration) -> anyhow::Result<ExitStatus> {
    nix::sys::prctl::set_child_subreaper(true).context("cannot become a child subreaper")?;
    let program = command.first().context("session-host needs a command")?;
    // Handled, not ignored: a handler is reset to the default in the command at exec, so the
    // command gets Ctrl-C and friends as usual, while this process outlives them.
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let _interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let _quit = signal(SignalKind::quit()).context("SIGQUIT handler")?;
    let _stop = signal(SignalKind::from_raw(nix::libc::SIGTSTP)).context("SIGTSTP handler")?;
    let mut orphaned = signal(SignalKind::child()).context("SIGCHLD handler")?;
    let mut child = tokio::process::Command::new(program)
        .args(&command[1..])
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start '{program}': {e}"))?;
    let command_pid = child.id();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("waiting for the command")?,
            _ = hangup.recv() => signal_descendants(Signal::SIGHUP),
            _ = terminate.recv() => signal_descendants(Signal::SIGTERM),
            // Orphans that ended: reaped now, not when the session ends. The command itself is
            // left to `child.wait()`.
            _ = orphaned.recv() => reap_orphans(command_pid),
        }
    };
    end_leftovers(grace).await;
    Ok(status)
}

/// Hangs up whatever the command left running, kills what is still there after `grace`, and
/// reaps it all.
async fn end_leftovers(grace: Duration) {
    if descendants().is_empty() {
        return;
    }
    signal_descendants(Signal::SIGHUP);
    signal_descendants(Signal::SIGCONT);
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        reap();
        if descendants().is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    // Kill until none is left: a process may fork between a listing and a kill.
    while !descendants().is_empty() {
        signal_descendants(Signal::SIGKILL);
        reap();
        tokio::time::sleep(POLL).await;
        reap();
    }
}

/// Collects exited children (orphans reparented to this subreaper among them).
fn reap() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Reaps exited children other than the command.
fn reap_orphans(command: Option<u32>) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    for pid in processes().filter(|p| p.parent == std::process::id() && p.zombie && Some(p.pid) != command) {
        if let Ok(pid) = i32::try_from(pid.pid) {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

fn signal_descendants(signal: Signal) {
    for pid in descendants() {
        // Gone meanwhile: nothing to do.
        let _ = kill(pid, signal);
    }
}

/// Every live process below this one.
fn descendants() -> Vec<Pid> {
    descendants_of(std::process::id())
}

/// Sends `signal` to every live process below `root` (a session host: the runner ends a session
/// this way when its host does not, so nothing that setsid()ed away is left).
pub fn signal_tree(root: u32, signal: Signal) {
    for pid in descendants_of(root) {
        let _ = kill(pid, signal);
    }
}

/// Every live process below `root` (zombies have nothing left to signal, only to reap).
fn descendants_of(root: u32) -> Vec<Pid> {
    let all: Vec<Process> = processes().collect();
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(all.iter().filter(|p| p.parent == parent && !p.zombie).map(|p| p.pid));
        next += 1;
    }
    found.into_iter().skip(1).filter_map(|pid| i32::try_from(pid).ok()).map(Pid::from_raw).collect()
}

/// A process as `/proc/<pid>/stat` shows it.
struct Process {
    pid: u32,
    parent: u32,
    zombie: bool,
}

/// Every process on the machine that can be read; one that goes meanwhile is skipped.
fn processes() -> impl Iterator<Item = Process> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten();
    entries.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The name is parenthesized and may hold spaces or parentheses: read after the last one.
        let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_ascii_whitespace();
        let zombie = fields.next()? == "Z";
        let parent = fields.next()?.parse().ok()?;
        Some(Process { pid, parent, zombie })
    })
}

/// Ends this process the way the command ended: its exit code, or its signal (with no core
/// dump, which would be ours, not the command's).
pub fn exit_like(status: ExitStatus) -> ! {
    if let Some(signal) = status.signal() {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
        // Restores the default action and raises the signal (a handler of ours may be installed).
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
    std::process::exit(status.code().unwrap_or(1))
}
