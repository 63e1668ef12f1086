//! A session ends every process it started, daemons included: whatever double-forks or calls
//! `setsid` stays below the session's host (a child subreaper) and ends with the session.

use std::path::Path;

use agentrelay_e2e::*;
use agentrelay_protocol::SessionStatus;
use serde_json::json;

/// Whether `pid` still runs (a zombie has ended; it only waits to be reaped).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// A shell line that starts a daemon (forked twice, in a session of its own, stdio closed) which
/// writes its pid to `pidfile`, waits until it has, and says `daemon up`.
fn start_daemon(pidfile: &Path, ignore_hangup: bool) -> String {
    let trap = if ignore_hangup { "trap \"\" HUP; " } else { "" };
    format!(
        "(setsid sh -c '{trap}echo $$ > {file}; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &); \
         while [ ! -s {file} ]; do :; done; echo daemon up",
        file = pidfile.display()
    )
}

fn pid_in(pidfile: &Path) -> u32 {
    std::fs::read_to_string(pidfile).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn a_daemon_a_session_started_ends_when_the_session_exits() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start_with(&hq, "reaper", &["--kill-grace", "300ms"]).await;
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("daemon.pid");
    let line = start_daemon(&pidfile, false);
    let session = hq.start_session(runner.id, &["sh", "-c", &line]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("daemon up").await.unwrap();
    let daemon = pid_in(&pidfile);
    let exit = viewer.read_to_exit().await.unwrap();
    assert_eq!(exit.code, Some(0), "the session ends as its command did");
    assert!(!alive(daemon), "daemon {daemon} outlived its session");
}

#[tokio::test]
async fn ending_a_session_ends_a_daemon_that_ignores_the_hang_up() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start_with(&hq, "reaper", &["--kill-grace", "300ms"]).await;
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("daemon.pid");
    let line = format!("{}; exec sleep 600", start_daemon(&pidfile, true));
    let session = hq.start_session(runner.id, &["sh", "-c", &line]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("daemon up").await.unwrap();
    let daemon = pid_in(&pidfile);
    hq.request(reqwest::Method::DELETE, &format!("/api/sessions/{}", session.id)).send().await.unwrap();
    let exit = viewer.read_to_exit().await.unwrap();
    assert_eq!(exit.signal.as_deref(), Some("SIGHUP"), "the command itself took the hang-up");
    assert!(!alive(daemon), "daemon {daemon} outlived its session");
    let done = hq.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!(done.signal.as_deref(), Some("SIGHUP"));
}

#[tokio::test]
async fn the_session_host_is_invisible_to_the_command() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "reaper").await;
    // The command is the PTY's foreground job, gets Ctrl-C with default handling, and its exit
    // code and signal are the session's.
    let session = hq
        .start_session_with(json!({
            "runner_id": runner.id,
            "command": ["sh", "-c", "test \"$(stty -g)\" && echo ready; exec sleep 600"],
        }))
        .await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("ready").await.unwrap();
    viewer.type_text("\x03").await;
    let exit = viewer.read_to_exit().await.unwrap();
    assert_eq!((exit.code, exit.signal.as_deref()), (None, Some("SIGINT")));
    let coded = hq.start_session(runner.id, &["sh", "-c", "exit 7"]).await;
    let done = hq.wait_for_end(coded.id).await;
    assert_eq!((done.status, done.exit_code), (SessionStatus::Exited, Some(7)));
}
