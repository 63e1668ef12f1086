//! Sessions outlive their runner: each runs under a session host that holds its PTY, spools its
//! output while no runner reads it, and is taken back by the next runner process with the same
//! state dir. These tests kill, interrupt and restart real runner processes.

use std::path::Path;

use agentrelay_e2e::*;
use agentrelay_protocol::viewer::{FrameErrorCode, ServerFrame};
use agentrelay_protocol::{RunnerStatus, SessionStatus};
use serde_json::json;

/// The session host of `session`, found among this machine's processes.
fn host_pid(session: uuid::Uuid) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let hosting = args.iter().any(|a| *a == b"session-host")
            && args.iter().any(|a| *a == session.to_string().as_bytes());
        hosting.then_some(pid)
    })
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z")
    })
}

fn numbered(text: &str) -> Vec<u32> {
    text.split("\r\n").filter_map(|line| line.strip_prefix("line-")?.parse().ok()).collect()
}

/// Reads everything up to the session's end, through `runner_offline` notices (the runner was
/// away), `log_stopped` (a gap ends HQ's log) and the rest.
async fn read_to_end(viewer: &mut Viewer) -> ServerFrame {
    loop {
        match viewer.next_frame().await.unwrap() {
            Frame::Output(bytes) => viewer.output.extend_from_slice(&bytes),
            Frame::Control(ServerFrame::Error(error))
                if matches!(error.code, FrameErrorCode::RunnerOffline | FrameErrorCode::LogStopped) => {}
            Frame::Control(frame @ (ServerFrame::Exit(_) | ServerFrame::Error(_))) => return frame,
            Frame::Control(frame) => viewer.controls.push(frame),
            Frame::Closed => panic!("closed before the end; got {:?}", viewer.controls),
        }
    }
}

#[tokio::test]
async fn a_runner_killed_mid_stream_and_restarted_loses_no_line_and_repeats_none() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let state = tempfile::tempdir().unwrap();
    let spawn = || runner_command(&hq, "phoenix", state.path()).spawn().unwrap();
    let mut first = spawn();
    let runner = hq.wait_for_runner("phoenix", RunnerStatus::Online).await;
    let session = hq
        .start_session(
            runner.id,
            &["sh", "-c", "i=0; while [ $i -lt 60000 ]; do i=$((i+1)); echo line-$i; done; exit 7"],
        )
        .await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("line-2000\r\n").await.unwrap();
    // kill -9 on the runner process alone, mid-stream.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let _second = spawn();
    match read_to_end(&mut viewer).await {
        ServerFrame::Exit(exit) => assert_eq!(exit.code, Some(7)),
        other => panic!("expected the exit, got {other:?}"),
    }
    let lines = numbered(&viewer.text());
    assert_eq!(lines, (1..=60000).collect::<Vec<_>>(), "every line once, in order");
}

#[tokio::test]
async fn ctrl_c_in_the_runners_terminal_leaves_its_sessions_running() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let state = tempfile::tempdir().unwrap();
    // The runner leads a process group of its own, as in a terminal where Ctrl-C signals the group.
    let spawn = || runner_command(&hq, "interrupted", state.path()).process_group(0).spawn().unwrap();
    let mut first = spawn();
    let runner = hq.wait_for_runner("interrupted", RunnerStatus::Online).await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo ready; read x; echo got-$x; exit 3"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("ready").await.unwrap();
    let group = nix::unistd::Pid::from_raw(-(first.id().unwrap() as i32));
    nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGINT).unwrap();
    assert!(first.wait().await.unwrap().success(), "the runner stops cleanly on Ctrl-C");
    hq.wait_for_runner("interrupted", RunnerStatus::Offline).await;
    assert_eq!(hq.session(session.id).await.status, SessionStatus::Running);
    let _second = spawn();
    hq.wait_for_runner("interrupted", RunnerStatus::Online).await;
    viewer.type_text("still-here\r").await;
    match read_to_end(&mut viewer).await {
        ServerFrame::Exit(exit) => assert_eq!(exit.code, Some(3)),
        other => panic!("expected the exit, got {other:?}"),
    }
    assert!(viewer.text().contains("got-still-here"), "{}", viewer.text());
}

#[tokio::test]
async fn a_process_that_ends_while_the_runner_is_down_reports_its_exit_and_all_its_output() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (go, done) = (dir.path().join("go"), dir.path().join("done"));
    let spawn = || runner_command(&hq, "away", state.path()).spawn().unwrap();
    let mut first = spawn();
    let runner = hq.wait_for_runner("away", RunnerStatus::Online).await;
    // Waits for the test to take the runner away, then talks to nobody and ends.
    let script = format!(
        "echo started; while [ ! -e {go} ]; do sleep 0.02; done; echo said-while-away; touch {done}; exit 42",
        go = go.display(),
        done = done.display()
    );
    let session = hq.start_session(runner.id, &["sh", "-c", &script]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("started").await.unwrap();
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    std::fs::write(&go, "").unwrap();
    eventually("the process to end while the runner is down", || async { done.exists().then_some(()) }).await;
    let _second = spawn();
    let ended = hq.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!(ended.exit_code, Some(42));
    match read_to_end(&mut viewer).await {
        ServerFrame::Exit(exit) => assert_eq!(exit.code, Some(42)),
        other => panic!("expected the exit, got {other:?}"),
    }
    assert!(viewer.text().contains("said-while-away"), "{}", viewer.text());
}

#[tokio::test]
async fn output_past_the_spool_while_the_runner_is_down_is_one_exact_gap_then_the_rest() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (go, done) = (dir.path().join("go"), dir.path().join("done"));
    let spawn =
        || runner_command(&hq, "spooler", state.path()).args(["--spool-size", "64KiB"]).spawn().unwrap();
    let mut first = spawn();
    let runner = hq.wait_for_runner("spooler", RunnerStatus::Online).await;
    // 30,000 numbered lines (about 300 KB) while nobody reads, then a last line, then it waits.
    let script = format!(
        "echo started; while [ ! -e {go} ]; do sleep 0.02; done; i=0; while [ $i -lt 30000 ]; do i=$((i+1)); echo line-$i; done; touch {done}; read x; exit 0",
        go = go.display(),
        done = done.display()
    );
    let session = hq.start_session(runner.id, &["sh", "-c", &script]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("started\r\n").await.unwrap();
    let held = hq.session(session.id).await.output_bytes;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    std::fs::write(&go, "").unwrap();
    eventually("the output to be written while the runner is down", || async { done.exists().then_some(()) })
        .await;
    let _second = spawn();
    let gap = loop {
        match viewer.next_control().await.unwrap() {
            ServerFrame::Gap(gap) => break gap,
            ServerFrame::Error(error) if error.code == FrameErrorCode::RunnerOffline => {}
            other => panic!("expected a gap, got {other:?}"),
        }
    };
    // Everything the process wrote while nobody read it, but the spool's last 64 KiB.
    let written: u64 = (1..=30000u32).map(|i| format!("line-{i}\r\n").len() as u64).sum();
    assert_eq!(gap.from, held, "the gap starts where HQ's copy ends");
    assert_eq!(gap.to - gap.from, written - 64 * 1024, "exactly the bytes the spool dropped");
    viewer.type_text("\r").await;
    match read_to_end(&mut viewer).await {
        ServerFrame::Exit(exit) => assert_eq!(exit.code, Some(0)),
        other => panic!("expected the exit, got {other:?}"),
    }
    let after = viewer.text();
    let tail = after.rsplit("started\r\n").next().unwrap();
    // The bytes after the gap are the spool's: the end of the last 64 KiB, to the last line.
    let expected: String = (1..=30000u32).map(|i| format!("line-{i}\r\n")).collect();
    let kept = &expected[expected.len() - 64 * 1024..];
    assert!(tail.starts_with(kept), "after the gap come exactly the bytes the spool kept");
}

#[tokio::test]
async fn a_session_host_killed_with_sigkill_loses_its_session_with_a_reason() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "fragile").await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo pid=$$; exec sleep 600"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("\r\n").await.unwrap();
    let host = host_pid(session.id).expect("the session's host");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(host), nix::sys::signal::Signal::SIGKILL).unwrap();
    let lost = hq.wait_for_session(session.id, SessionStatus::Lost).await;
    assert!(lost.error.as_deref().unwrap_or_default().contains("session host"), "{lost:?}");
    match read_to_end(&mut viewer).await {
        ServerFrame::Error(error) => assert_eq!(error.code, FrameErrorCode::SessionLost),
        other => panic!("expected session_lost, got {other:?}"),
    }
    kill_command(&viewer.text());
}

/// Ends the process that printed `pid=N` (its host was killed, so nobody else will).
fn kill_command(output: &str) {
    let pid = output.split("pid=").nth(1).and_then(|rest| rest.split_whitespace().next()?.parse().ok());
    if let Some(pid) = pid {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

#[tokio::test]
async fn a_runner_adopts_hosts_of_older_and_newer_builds_and_refuses_one_it_cannot_speak_to() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let state = tempfile::tempdir().unwrap();
    let start = |versions: Option<&str>| {
        let mut command = runner_command(&hq, "mixed", state.path());
        if let Some(versions) = versions {
            command.args(["--session-host-versions", versions]);
        }
        command.spawn().unwrap()
    };
    // A host as the previous release started it: version 1, which takes keystrokes as frames
    // rather than handing its PTY over.
    let mut previous = start(Some("1-1"));
    let runner = hq.wait_for_runner("mixed", RunnerStatus::Online).await;
    let first = hq.start_session(runner.id, &["sh", "-c", "echo ready; read x; echo first-$x"]).await;
    hq.attach(first.id, None).await.read_until("ready").await.unwrap();
    previous.start_kill().unwrap();
    previous.wait().await.unwrap();
    // A host from a build that speaks versions 1 to 9 (a later release that kept version 1).
    let mut older = start(Some("1-9"));
    hq.wait_for_runner("mixed", RunnerStatus::Online).await;
    let kept = hq.start_session(runner.id, &["sh", "-c", "echo ready; read x; echo kept-$x"]).await;
    hq.attach(kept.id, None).await.read_until("ready").await.unwrap();
    // And one from a build this runner cannot speak to.
    older.start_kill().unwrap();
    older.wait().await.unwrap();
    let mut stranger = start(Some("90-99"));
    hq.wait_for_runner("mixed", RunnerStatus::Online).await;
    let foreign = hq.start_session(runner.id, &["sh", "-c", "echo up; exec sleep 600"]).await;
    let mut foreign_viewer = hq.attach(foreign.id, None).await;
    foreign_viewer.read_until("up").await.unwrap();
    stranger.start_kill().unwrap();
    stranger.wait().await.unwrap();

    let _current = start(None);
    let lost = hq.wait_for_session(foreign.id, SessionStatus::Lost).await;
    let reason = lost.error.unwrap_or_default();
    assert!(reason.contains("protocol 90–99") && reason.contains("this runner"), "{reason}");
    for (session, expected) in [(first.id, "first-yes"), (kept.id, "kept-yes")] {
        let mut viewer = hq.attach(session, None).await;
        viewer.type_text("yes\r").await;
        viewer.read_to_exit().await.unwrap();
        assert!(viewer.text().contains(expected), "{}", viewer.text());
    }
}

#[tokio::test]
async fn a_session_whose_host_went_with_a_reboot_is_lost_saying_so() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let state = tempfile::tempdir().unwrap();
    let mut first = runner_command(&hq, "rebooted", state.path()).spawn().unwrap();
    let runner = hq.wait_for_runner("rebooted", RunnerStatus::Online).await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo pid=$$; exec sleep 600"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("\r\n").await.unwrap();
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    // What a reboot leaves: the note of a host from another boot, and no host.
    let host = host_pid(session.id).expect("the session's host");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(host), nix::sys::signal::Signal::SIGKILL).unwrap();
    let note = state.path().join("sessions").join(format!("{}.json", session.id));
    let other_boot = json!({"session_id": session.id, "boot_id": "not-this-boot"});
    std::fs::write(&note, other_boot.to_string()).unwrap();
    let _second = runner_command(&hq, "rebooted", state.path()).spawn().unwrap();
    let lost = hq.wait_for_session(session.id, SessionStatus::Lost).await;
    kill_command(&viewer.text());
    assert!(lost.error.unwrap_or_default().contains("machine restarted"));
    assert!(!note.exists() && !Path::new(&note.with_extension("sock")).exists(), "its files are cleaned up");
}

#[tokio::test]
async fn a_host_whose_runner_never_comes_back_ends_its_session() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let state = tempfile::tempdir().unwrap();
    let mut first = runner_command(&hq, "gone", state.path())
        .args(["--orphan-after", "1s", "--kill-grace", "200ms"])
        .spawn()
        .unwrap();
    let runner = hq.wait_for_runner("gone", RunnerStatus::Online).await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo $$; exec sleep 600"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("\r\n").await.unwrap();
    let command: i32 = viewer.text().trim().parse().unwrap();
    let host = host_pid(session.id).expect("the session's host");
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    eventually("the host to end the session and go", || async {
        (!alive(host) && !alive(command)).then_some(())
    })
    .await;
    let sessions = state.path().join("sessions");
    assert_eq!(std::fs::read_dir(&sessions).unwrap().count(), 0, "its files are gone");
}
