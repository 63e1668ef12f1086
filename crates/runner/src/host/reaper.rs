//! The processes a session started, found through `/proc`. A session host is a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), so everything the session starts stays its descendant, even a
//! daemon that double-forks or calls `setsid` (Codex's app-server does): ending a session ends
//! them all.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Makes this process the reaper of its descendants' orphans.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Sends `signal` to every live process below this one.
pub fn signal_descendants(signal: Signal) {
    for pid in descendants() {
        // Gone meanwhile: nothing to do.
        let _ = kill(pid, signal);
    }
}

/// Every live process below this one.
pub fn descendants() -> Vec<Pid> {
    let me = std::process::id();
    let all: Vec<Process> = processes().collect();
    let mut found = vec![me];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(all.iter().filter(|p| p.parent == parent && !p.zombie).map(|p| p.pid));
        next += 1;
    }
    found.into_iter().skip(1).filter_map(|pid| i32::try_from(pid).ok()).map(Pid::from_raw).collect()
}

/// Collects every exited child except `keep` (the command, which its own waiter collects).
pub fn reap_except(keep: Option<u32>) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let me = std::process::id();
    for zombie in processes().filter(|p| p.parent == me && p.zombie && Some(p.pid) != keep) {
        if let Ok(pid) = i32::try_from(zombie.pid) {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
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
