//! The live pipe: a viewer drives a real PTY on a real runner through HQ.

use agentrelay_e2e::*;
use agentrelay_protocol::viewer::{FrameErrorCode, ServerFrame};
use agentrelay_protocol::{SessionStatus, TermSize};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn output_reaches_a_viewer_and_exit_code_3_arrives_after_it() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "r").await;
    let session =
        hq.start_session(runner.id, &["sh", "-c", "printf 'hello\\033[31m red\\033[0m\\n'; exit 3"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    assert_eq!(viewer.attached.session_id, session.id);
    assert_eq!(viewer.attached.offset, 0);
    assert!(!viewer.attached.snapshot);
    let exit = viewer.read_to_exit().await.unwrap();
    assert_eq!((exit.code, exit.signal), (Some(3), None));
    assert_eq!(viewer.output, b"hello\x1b[31m red\x1b[0m\r\n", "raw bytes, ANSI and CRLF included");
    assert!(matches!(viewer.next_frame().await.unwrap(), Frame::Closed), "exit is the last frame");
    let done = hq.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!((done.exit_code, done.signal), (Some(3), None));
    assert_eq!(done.output_bytes, viewer.output.len() as u64);
    assert!(done.ended_at.is_some());
}

#[tokio::test]
async fn keystrokes_echo_back_and_resize_applies_before_the_next_keystroke() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "r").await;
    let session = hq
        .start_session_with(json!({"runner_id": runner.id, "command": ["sh"], "rows": 31, "cols": 101}))
        .await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.type_text("echo typed-$((6*7))\r").await;
    viewer.read_until("typed-42").await.unwrap();

    viewer.type_text("stty size\r").await;
    viewer.read_until("31 101").await.unwrap();

    // No wait between the resize and the keystrokes: order alone must make it work.
    let mark = viewer.output.len();
    viewer.resize(47, 133).await;
    viewer.type_text("stty size\r").await;
    viewer.read_until_after("47 133", mark).await.unwrap();

    viewer.type_text("exit 0\r").await;
    assert_eq!(viewer.read_to_exit().await.unwrap().code, Some(0));
}

#[tokio::test]
async fn two_viewers_see_identical_bytes() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "r").await;
    let session = hq.start_session(runner.id, &["sh", "-c", "read go; seq 1 3000; exit 0"]).await;
    let mut first = hq.attach(session.id, None).await;
    let mut second = hq.attach(session.id, None).await;
    first.type_text("go\r").await;
    let (a, b) = tokio::join!(first.read_to_exit(), second.read_to_exit());
    assert_eq!(a.unwrap().code, Some(0));
    assert_eq!(b.unwrap().code, Some(0));
    assert!(first.text().contains("\r\n3000\r\n"));
    assert_eq!(first.output, second.output);
}

#[tokio::test]
async fn late_viewer_gets_the_scrollback_then_live_output_and_from_resumes_exactly() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "r").await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo early-line; read x; echo late-$x"]).await;
    let mut early = hq.attach(session.id, None).await;
    early.read_until("early-line").await.unwrap();

    let mut late = hq.attach(session.id, None).await;
    assert_eq!(late.attached.offset, 0);
    late.read_until("early-line").await.unwrap();
    let seen = late.output.len() as u64;

    let mut resumed = hq.attach(session.id, Some(5)).await;
    assert_eq!(resumed.attached.offset, 5);

    late.type_text("bird\r").await;
    for viewer in [&mut early, &mut late, &mut resumed] {
        viewer.read_to_exit().await.unwrap();
        assert!(viewer.text().contains("late-bird"));
    }
    assert_eq!(late.output, early.output);
    assert_eq!(resumed.output, early.output[5..]);
    assert!(seen > 0);

    // After the end, a new viewer still gets all output and the exit.
    let mut after = hq.attach(session.id, None).await;
    assert_eq!(after.attached.status, SessionStatus::Exited);
    after.read_to_exit().await.unwrap();
    assert_eq!(after.output, early.output);
}

#[tokio::test]
async fn bad_control_frames_get_an_error_frame_and_the_connection_keeps_working() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "r").await;
    let session = hq.start_session(runner.id, &["cat"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    for bad in [
        "{not json",
        r#"{"type":"explode","payload":{}}"#,
        r#"{"type":"resize","payload":{"rows":0,"cols":80}}"#,
        r#"{"type":"resize","payload":{"rows":24,"cols":1001}}"#,
        r#"{"type":"resize"}"#,
    ] {
        viewer.send_text(bad).await;
        match viewer.next_control().await.unwrap() {
            ServerFrame::Error(error) => {
                assert_eq!(error.code, FrameErrorCode::BadFrame, "{bad}");
                assert!(!error.message.is_empty());
            }
            other => panic!("expected an error frame for {bad}, got {other:?}"),
        }
    }
    viewer.type_text("still-alive\r").await;
    viewer.read_until("still-alive").await.unwrap();
}

#[tokio::test]
async fn oversized_viewer_frame_closes_only_that_viewer() {
    let hq = TestHq::start_with(&["--max-frame-size", "64KiB"]).await;
    let runner = TestRunner::start(&hq, "r").await;
    let session = hq.start_session(runner.id, &["cat"]).await;
    let mut greedy = hq.attach(session.id, None).await;
    let mut fine = hq.attach(session.id, None).await;
    greedy.type_text(&"x".repeat(100 * 1024)).await;
    loop {
        match greedy.next_frame().await {
            Ok(Frame::Closed) | Err(_) => break,
            Ok(_) => {}
        }
    }
    fine.type_text("after-the-flood\r").await;
    fine.read_until("after-the-flood").await.unwrap();
    assert!(!fine.text().contains("xxxx"), "the oversized frame must not reach the PTY");
}

#[tokio::test]
async fn foreign_origin_is_refused_and_own_origin_accepted() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "r").await;
    let session = hq.start_session(runner.id, &["cat"]).await;
    let path = format!("/api/v1/ws/session/{}", session.id);
    for origin in ["https://evil.example", "null"] {
        let error = hq.ws(&path, Some(ADMIN_TOKEN), Some(origin)).await.expect_err("foreign origin");
        assert!(error.to_string().contains("403"), "{origin}: {error}");
    }
    let own = format!("http://{}", hq.addr);
    let socket = hq.ws(&path, Some(ADMIN_TOKEN), Some(&own)).await.unwrap();
    Viewer::new(socket).await;
}

#[tokio::test]
async fn delete_hangs_up_then_kills_the_process_group() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start_with(&hq, "r", &["--kill-grace", "300ms"]).await;

    let polite = hq.start_session(runner.id, &["sh", "-c", "echo ready; sleep 600"]).await;
    let mut viewer = hq.attach(polite.id, None).await;
    viewer.read_until("ready").await.unwrap();
    let response =
        hq.request(reqwest::Method::DELETE, &format!("/api/sessions/{}", polite.id)).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let exit = viewer.read_to_exit().await.unwrap();
    assert_eq!((exit.code, exit.signal.as_deref()), (None, Some("SIGHUP")));
    let done = hq.wait_for_session(polite.id, SessionStatus::Exited).await;
    assert_eq!(done.signal.as_deref(), Some("SIGHUP"));

    // Ignores the hang-up: killed after the grace period, with its child (same group).
    let stubborn =
        hq.start_session(runner.id, &["sh", "-c", "trap '' HUP; sleep 600 & echo ready; wait"]).await;
    let mut viewer = hq.attach(stubborn.id, None).await;
    viewer.read_until("ready").await.unwrap();
    hq.request(reqwest::Method::DELETE, &format!("/api/sessions/{}", stubborn.id)).send().await.unwrap();
    let exit = viewer.read_to_exit().await.unwrap();
    assert_eq!(exit.signal.as_deref(), Some("SIGKILL"));
}

#[tokio::test]
async fn child_gets_term_and_session_id_but_not_the_runner_token() {
    let hq = TestHq::start().await;
    let state = tempfile::tempdir().unwrap();
    let _runner = runner_command(&hq, "envy", state.path())
        // No --allow: any variable may be asked for, but loader hijacks only when named.
        .args(["--allow-env", "LD_LIBRARY_PATH"])
        .env("AGENTRELAY_SECRET_THING", "hush")
        .spawn()
        .unwrap();
    let runner = hq.wait_for_runner("envy", agentrelay_protocol::RunnerStatus::Online).await;
    let session = hq
        .start_session_with(json!({
            "runner_id": runner.id,
            "command": ["env"],
            "env": {"GREETING": "hi", "LD_PRELOAD": "/tmp/evil.so", "LD_LIBRARY_PATH": "/opt/ok"},
        }))
        .await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_to_exit().await.unwrap();
    let env = viewer.text();
    assert!(env.contains("TERM=xterm-256color"), "{env}");
    assert!(env.contains(&format!("AGENTRELAY_SESSION_ID={}", session.id)), "{env}");
    assert!(env.contains("GREETING=hi"), "{env}");
    assert!(!env.contains(RUNNER_TOKEN) && !env.contains("RUNNER_TOKEN"), "{env}");
    assert!(!env.contains("hush") && !env.contains("LD_PRELOAD"), "{env}");
    assert!(
        env.contains("LD_LIBRARY_PATH=/opt/ok"),
        "--allow-env lets a named loader variable through: {env}"
    );
}

#[tokio::test]
async fn a_slow_viewer_does_not_hold_up_the_others() {
    let hq = TestHq::start_with(&["--ring-size", "64MiB"]).await;
    let runner = TestRunner::start(&hq, "r").await;
    // ~16 MB of output, far more than socket buffers hold for a viewer that never reads.
    let session = hq.start_session(runner.id, &["sh", "-c", "read go; seq 1 2000000; echo done-$go"]).await;
    let mut stalled = hq.attach(session.id, None).await;
    let mut reader = hq.attach(session.id, None).await;
    stalled.type_text("now\r").await;
    reader.read_to_exit().await.unwrap();
    assert!(reader.text().ends_with("1999999\r\n2000000\r\ndone-now\r\n"), "the reading viewer got it all");
    // The stalled viewer, once it reads, still gets the full stream from the ring.
    tokio::time::timeout(Duration::from_secs(60), stalled.read_to_exit()).await.unwrap().unwrap();
    assert_eq!(stalled.output, reader.output);
}

#[tokio::test]
async fn a_viewer_far_behind_a_flood_can_still_stop_it_with_ctrl_c() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "flood").await;
    let session = hq.start_session(runner.id, &["sh", "-c", "exec yes flooding"]).await;
    // This viewer reads nothing: HQ's writes to it block long before it has caught up.
    let mut behind = hq.attach(session.id, Some(0)).await;
    eventually("a flood far past what socket buffers hold", || async {
        (hq.session(session.id).await.output_bytes > 16 << 20).then_some(())
    })
    .await;
    behind.type_text("\x03").await;
    let ended = hq.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!(ended.signal.as_deref(), Some("SIGINT"));
}

#[tokio::test]
async fn vanished_runner_loses_its_sessions_and_viewers_are_told() {
    let hq = TestHq::start_with(&["--lost-after", "300ms"]).await;
    let state = tempfile::tempdir().unwrap();
    let mut child = runner_command(&hq, "ghost", state.path()).spawn().unwrap();
    let runner = hq.wait_for_runner("ghost", agentrelay_protocol::RunnerStatus::Online).await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo up; exec sleep 600"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("up").await.unwrap();
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // First told the runner is away (the session may still come back), then that it is lost.
    for expected in [FrameErrorCode::RunnerOffline, FrameErrorCode::SessionLost] {
        match viewer.next_control().await.unwrap() {
            ServerFrame::Error(error) => assert_eq!(error.code, expected, "{}", error.message),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    let lost = hq.wait_for_session(session.id, SessionStatus::Lost).await;
    assert!(lost.error.is_some());
}

/// Peak resident memory of a process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_reads_nothing_while_200_mb_stream_keeps_hq_memory_bounded() {
    const TOTAL: u64 = 200_000_000;
    let data = tempfile::tempdir().unwrap();
    let hq = HqProcess::spawn(data.path(), None, &[]).await;
    let runner = TestRunner::start(&hq, "firehose").await;
    let session = hq
        .start_session(
            runner.id,
            &["sh", "-c", &format!("read go; head -c {TOTAL} /dev/zero | tr '\\0' x; echo; echo end")],
        )
        .await;
    let mut stalled = hq.attach(session.id, None).await;
    let mut reader = hq.attach(session.id, None).await;
    stalled.type_text("go\r").await;

    // The reading viewer gets every byte while the other reads nothing at all.
    let mut received = 0u64;
    let exit = loop {
        match reader.next_frame().await.unwrap() {
            Frame::Output(bytes) => received += bytes.len() as u64,
            Frame::Control(agentrelay_protocol::viewer::ServerFrame::Exit(exit)) => break exit,
            Frame::Control(other) => panic!("unexpected {other:?}"),
            Frame::Closed => panic!("closed before exit"),
        }
    };
    assert_eq!(exit.code, Some(0));
    assert_eq!(received, TOTAL + "go\r\n\r\nend\r\n".len() as u64);

    // Documented bound (docs/architecture.md): ring + one frame per viewer + the terminal model,
    // far below what was streamed past the stalled viewer.
    let peak = peak_rss_kib(hq.pid());
    eprintln!("HQ peak RSS: {peak} KiB");
    assert!(peak < 48 * 1024, "HQ peaked at {peak} KiB while streaming {TOTAL} bytes past a stalled viewer");

    // The stalled viewer is resynced from the log, without loss, when it finally reads.
    let mut seen = Vec::new();
    while seen.len() < 1_000_000 {
        match stalled.next_frame().await.unwrap() {
            Frame::Output(bytes) => seen.extend_from_slice(&bytes),
            other => panic!("expected output, got {other:?}"),
        }
    }
    assert!(seen.starts_with(b"go\r\nxxxx"));
    assert!(seen[4..].iter().all(|&b| b == b'x'));
}

/// Has the shell in `viewer`'s session print its size, tagged, and waits for `size` ("ROWSxCOLS").
async fn stty(viewer: &mut Viewer, tag: &str, size: &str) {
    viewer.type_text(&format!("echo {tag}-$(stty size | tr ' ' x)\r")).await;
    viewer.read_until(&format!("{tag}-{size}")).await.unwrap();
}

#[tokio::test]
async fn the_pty_follows_the_most_recently_active_viewer_and_a_watcher_only_once_it_types() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "r").await;
    let session = hq.start_session(runner.id, &["sh"]).await;
    let mut desktop = hq.attach(session.id, None).await;
    desktop.resize(40, 151).await;
    stty(&mut desktop, "desk", "40x151").await;

    // A phone attaches in watch mode: its window waits, the desktop's size stays.
    let path = format!("/api/v1/ws/session/{}?watch=true", session.id);
    let mut phone = Viewer::new(hq.ws(&path, Some(ADMIN_TOKEN), None).await.unwrap()).await;
    phone.resize(52, 47).await;
    stty(&mut desktop, "still", "40x151").await;
    // It types: the PTY takes its size, and both viewers hear of it.
    stty(&mut phone, "phone", "52x47").await;
    let told = TermSize { rows: 52, cols: 47 };
    while desktop.sizes.last() != Some(&told) {
        desktop.next_any().await.unwrap();
    }
    assert_eq!(phone.sizes.first(), Some(&TermSize { rows: 40, cols: 151 }), "sent after attached");

    // The desktop types: its size is back; the phone types again, then leaves: back again.
    stty(&mut desktop, "back", "40x151").await;
    stty(&mut phone, "again", "52x47").await;
    drop(phone);
    stty(&mut desktop, "left", "40x151").await;

    let bad = hq.ws(&format!("/api/v1/ws/session/{}?watch=maybe", session.id), Some(ADMIN_TOKEN), None).await;
    assert!(bad.expect_err("refused").to_string().contains("400"));
}
