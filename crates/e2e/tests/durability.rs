//! Sessions that survive: restarts, HQ outages (kill -9), recordings, finished sessions.

use std::path::Path;

use agentrelay_e2e::*;
use agentrelay_protocol::viewer::{FrameErrorCode, ServerFrame};
use agentrelay_protocol::{RunnerStatus, SessionStatus};
use uuid::Uuid;

/// Waits (polling) until a file exists: the session's script creates it when it reaches a point.
async fn file_appears(path: &Path) {
    eventually(&format!("{} to appear", path.display()), || async { path.exists().then_some(()) }).await;
}

fn numbered_lines(text: &str, prefix: &str) -> Vec<u32> {
    text.split("\r\n").filter_map(|line| line.strip_prefix(prefix)?.parse().ok()).collect()
}

#[tokio::test]
async fn restarted_hq_lists_what_it_knew_and_replays_finished_sessions() {
    let data = tempfile::tempdir().unwrap();
    let hq = TestHq::start_in(data.path(), &[]).await;
    let runner = TestRunner::start_with(&hq, "keeper", &["--label", "tier=gold"]).await;
    let session =
        hq.start_session(runner.id, &["sh", "-c", "printf 'first\\r\\nsecond\\r\\n'; exit 3"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    assert_eq!(viewer.read_to_exit().await.unwrap().code, Some(3));
    let original = viewer.output.clone();
    runner.stop().await.unwrap();
    hq.stop().await;

    let hq = TestHq::start_in(data.path(), &[]).await;
    let runners = hq.runners().await;
    assert_eq!(runners.len(), 1);
    assert_eq!((runners[0].name.as_str(), runners[0].status), ("keeper", RunnerStatus::Offline));
    assert_eq!(runners[0].labels.get("tier").map(String::as_str), Some("gold"));
    let restored = hq.session(session.id).await;
    assert_eq!((restored.status, restored.exit_code), (SessionStatus::Exited, Some(3)));
    assert_eq!(restored.output_bytes, original.len() as u64);
    assert_eq!(restored.command, session.command);

    // A finished session still opens: its output from the log, then its exit.
    let mut replay = hq.attach(session.id, None).await;
    assert_eq!(replay.attached.status, SessionStatus::Exited);
    assert_eq!(replay.read_to_exit().await.unwrap().code, Some(3));
    assert_eq!(replay.output, original);
    let mut tail = hq.attach(session.id, Some(7)).await;
    tail.read_to_exit().await.unwrap();
    assert_eq!(tail.output, original[7..]);
}

#[tokio::test]
async fn hq_killed_mid_session_loses_no_line_and_keeps_the_exit_code() {
    let data = tempfile::tempdir().unwrap();
    let gates = tempfile::tempdir().unwrap();
    let hq = HqProcess::spawn(data.path(), None, &[]).await;
    let addr = hq.addr;
    let runner = TestRunner::start(&hq, "steadfast").await;
    let g = gates.path().display();
    // 1,000 lines; wait; 2,000 more while HQ is down; wait; exit 7.
    let script = format!(
        "i=1; while [ $i -le 1000 ]; do echo line-$i; i=$((i+1)); done; \
         while [ ! -e {g}/go ]; do sleep 0.05; done; \
         while [ $i -le 3000 ]; do echo line-$i; i=$((i+1)); done; touch {g}/printed; \
         while [ ! -e {g}/end ]; do sleep 0.05; done; exit 7"
    );
    let session = hq.start_session(runner.id, &["sh", "-c", &script]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("line-1000\r\n").await.unwrap();
    let seen = viewer.output.len() as u64;

    hq.kill().await;
    std::fs::write(gates.path().join("go"), "").unwrap();
    file_appears(&gates.path().join("printed")).await;

    let hq = HqProcess::spawn(data.path(), Some(addr), &[]).await;
    hq.wait_for_runner("steadfast", RunnerStatus::Online).await;
    let mut resumed = hq.attach(session.id, Some(seen)).await;
    assert_eq!(resumed.attached.offset, seen);
    resumed.read_until("line-3000\r\n").await.unwrap();
    std::fs::write(gates.path().join("end"), "").unwrap();
    let exit = resumed.read_to_exit().await.unwrap();
    assert_eq!(exit.code, Some(7));
    assert!(resumed.controls.iter().all(|f| !matches!(f, ServerFrame::Gap(_))), "no gap expected");
    assert_eq!(numbered_lines(&resumed.text(), "line-"), (1001..=3000).collect::<Vec<_>>());

    // From the start, every line exactly once, in order.
    let mut full = hq.attach(session.id, None).await;
    full.read_to_exit().await.unwrap();
    assert_eq!(numbered_lines(&full.text(), "line-"), (1..=3000).collect::<Vec<_>>());
    let done = hq.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!(done.exit_code, Some(7));
    assert_eq!(done.output_bytes, full.output.len() as u64);
}

#[tokio::test]
async fn an_outage_longer_than_the_runner_buffer_is_reported_as_a_gap() {
    let data = tempfile::tempdir().unwrap();
    let gates = tempfile::tempdir().unwrap();
    let hq = HqProcess::spawn(data.path(), None, &[]).await;
    let addr = hq.addr;
    let runner = TestRunner::start_with(&hq, "small", &["--buffer-size", "16KiB"]).await;
    let g = gates.path().display();
    // About 190 KB while HQ is down: far more than the 16 KiB buffer.
    let script = format!(
        "echo before; while [ ! -e {g}/go ]; do sleep 0.05; done; seq 1 30000; touch {g}/printed; \
         while [ ! -e {g}/end ]; do sleep 0.05; done; echo after"
    );
    let session = hq.start_session(runner.id, &["sh", "-c", &script]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("before\r\n").await.unwrap();
    let seen = viewer.output.len() as u64;
    hq.kill().await;
    std::fs::write(gates.path().join("go"), "").unwrap();
    file_appears(&gates.path().join("printed")).await;

    let hq = HqProcess::spawn(data.path(), Some(addr), &[]).await;
    hq.wait_for_runner("small", RunnerStatus::Online).await;
    let mut resumed = hq.attach(session.id, Some(seen)).await;
    std::fs::write(gates.path().join("end"), "").unwrap();
    resumed.read_to_exit().await.unwrap();
    let gaps: Vec<_> = resumed
        .controls
        .iter()
        .filter_map(|f| if let ServerFrame::Gap(g) = f { Some(*g) } else { None })
        .collect();
    assert_eq!(gaps.len(), 1, "{:?}", resumed.controls);
    assert_eq!(gaps[0].from, seen, "the gap starts where HQ's copy ends");
    assert!(gaps[0].to - gaps[0].from > 150_000, "{gaps:?}");
    let text = resumed.text();
    assert!(text.ends_with("30000\r\nafter\r\n"), "output after the gap arrives");
    // What came after the gap is the exact tail of `seq` (its first line may be cut by the gap):
    // no duplicate, no reordering.
    let numbers: Vec<u32> = text.split("\r\n").skip(1).filter_map(|l| l.parse().ok()).collect();
    assert!(numbers.len() > 100 && numbers.windows(2).all(|w| w[1] == w[0] + 1), "contiguous after the gap");
}

#[tokio::test]
async fn recording_is_asciicast_v2_with_the_session_output() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "rec").await;
    let session = hq
        .start_session_with(serde_json::json!({
            "runner_id": runner.id,
            "command": ["sh", "-c", "printf 'héllo \\033[1mbold\\033[0m\\r\\n'; read x; echo got-$x"],
            "rows": 30, "cols": 100,
        }))
        .await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("bold").await.unwrap();
    viewer.resize(40, 120).await;
    viewer.type_text("it\r").await;
    viewer.read_to_exit().await.unwrap();

    let response = hq
        .request(reqwest::Method::GET, &format!("/api/sessions/{}/recording", session.id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-asciicast");
    let cast = response.text().await.unwrap();
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!((header["width"].as_u64(), header["height"].as_u64()), (Some(100), Some(30)));
    let events: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut last = 0.0;
    for event in &events {
        let t = event[0].as_f64().unwrap();
        assert!(t >= last, "times never go backwards");
        last = t;
    }
    let output: String = events.iter().filter(|e| e[1] == "o").map(|e| e[2].as_str().unwrap()).collect();
    assert_eq!(output.as_bytes(), viewer.output.as_slice());
    assert!(events.iter().any(|e| e[1] == "r" && e[2] == "120x40"), "the resize is recorded");

    // A real asciicast reader agrees.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &cast).unwrap();
    let cat =
        std::process::Command::new("python3").args(["-m", "asciinema", "cat"]).arg(file.path()).output();
    let cat = cat.expect("python3 runs");
    assert!(
        cat.status.success(),
        "asciinema cat (installed by make test): {}",
        String::from_utf8_lossy(&cat.stderr)
    );
    assert_eq!(cat.stdout, viewer.output);

    let missing = hq
        .request(reqwest::Method::GET, &format!("/api/sessions/{}/recording", Uuid::now_v7()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_runner_restarted_after_an_hq_restart_resumes_its_session_with_the_same_id() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let hq = TestHq::start_in(data.path(), &[]).await;
    let runner = TestRunner::spawn_in(&hq, "phoenix", state.path(), &[]);
    hq.wait_for_runner("phoenix", RunnerStatus::Online).await;
    let id = runner.id;
    let addr = hq.addr;
    hq.stop().await;
    let hq = TestHq::start_in(data.path(), &["--listen", &addr.to_string()]).await;
    let back = hq.wait_for_runner("phoenix", RunnerStatus::Online).await;
    assert_eq!(back.id, id);
    assert_eq!(hq.runners().await.len(), 1);
}

#[tokio::test]
async fn sigterm_on_hq_says_goodbye_to_viewers_and_keeps_everything() {
    let data = tempfile::tempdir().unwrap();
    let gates = tempfile::tempdir().unwrap();
    let hq = HqProcess::spawn(data.path(), None, &[]).await;
    let addr = hq.addr;
    let runner = TestRunner::start(&hq, "calm").await;
    let g = gates.path().display();
    let script = format!("seq 1 5000; while [ ! -e {g}/end ]; do sleep 0.05; done; exit 5");
    let session = hq.start_session(runner.id, &["sh", "-c", &script]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("\r\n5000\r\n").await.unwrap();

    let status = hq.terminate().await;
    assert!(status.success(), "HQ exits cleanly on SIGTERM: {status:?}");
    while !matches!(viewer.next_frame().await, Ok(Frame::Closed) | Err(_)) {}
    assert_eq!(viewer.close_code, Some(1001), "viewers are told HQ is going away");

    // Everything HQ had was flushed: a new HQ serves it from disk, and the session goes on.
    let hq = HqProcess::spawn(data.path(), Some(addr), &[]).await;
    let mut again = hq.attach(session.id, None).await;
    again.read_until("\r\n5000\r\n").await.unwrap();
    assert!(
        again.output.len() >= viewer.output.len(),
        "{} < {}; {:?} {:?}",
        again.output.len(),
        viewer.output.len(),
        again.attached,
        again.controls
    );
    assert_eq!(again.output[..viewer.output.len()], viewer.output[..]);
    hq.wait_for_runner("calm", RunnerStatus::Online).await;
    std::fs::write(gates.path().join("end"), "").unwrap();
    assert_eq!(again.read_to_exit().await.unwrap().code, Some(5));
}

#[tokio::test]
async fn with_end_sessions_on_exit_sigterm_on_the_runner_ends_its_sessions_and_reports_their_exits_first() {
    let hq = TestHq::start().await;
    let state = tempfile::tempdir().unwrap();
    // Sessions outlive the runner by default; this flag is the old behaviour, on request.
    let mut child =
        runner_command(&hq, "leaving", state.path()).arg("--end-sessions-on-exit").spawn().unwrap();
    let runner = hq.wait_for_runner("leaving", RunnerStatus::Online).await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo up; exec sleep 600"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("up").await.unwrap();

    std::process::Command::new("kill").arg("-TERM").arg(child.id().unwrap().to_string()).status().unwrap();
    let status = tokio::time::timeout(TIMEOUT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "runner exits cleanly: {status:?}");
    // By the time the runner has exited, HQ already has the exit: no waiting here.
    let done = hq.session(session.id).await;
    assert_eq!((done.status, done.signal.as_deref()), (SessionStatus::Exited, Some("SIGHUP")));
    assert_eq!(viewer.read_to_exit().await.unwrap().signal.as_deref(), Some("SIGHUP"));
}

#[tokio::test]
async fn with_end_sessions_on_exit_a_runner_whose_hq_is_gone_still_stops_and_the_next_one_reports_the_exit() {
    let data = tempfile::tempdir().unwrap();
    let hq = HqProcess::spawn(data.path(), None, &[]).await;
    let addr = hq.addr;
    let state = tempfile::tempdir().unwrap();
    let mut child =
        runner_command(&hq, "stranded", state.path()).arg("--end-sessions-on-exit").spawn().unwrap();
    let runner = hq.wait_for_runner("stranded", RunnerStatus::Online).await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo up; exec sleep 600"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("up").await.unwrap();

    // HQ goes first (as when both are stopped at once): the runner cannot report the exit, and
    // stops anyway, rather than waiting for HQ for ever.
    hq.terminate().await;
    std::process::Command::new("kill").arg("-TERM").arg(child.id().unwrap().to_string()).status().unwrap();
    let status = tokio::time::timeout(TIMEOUT, child.wait()).await.expect("the runner stops").unwrap();
    assert!(status.success(), "runner exits cleanly: {status:?}");

    // The session was ended all the same, and its host hands the exit to the next runner.
    let hq = HqProcess::spawn(data.path(), Some(addr), &[]).await;
    let _next = runner_command(&hq, "stranded", state.path()).kill_on_drop(true).spawn().unwrap();
    let done = hq.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!(done.signal.as_deref(), Some("SIGHUP"), "{done:?}");
}

#[tokio::test]
async fn a_late_viewer_of_a_long_session_gets_the_current_screen_then_live_bytes() {
    let hq = TestHq::start_with(&["--ring-size", "64KiB"]).await;
    let runner = TestRunner::start(&hq, "long").await;
    // Far more than the ring, then a full-screen app: alternate screen, a cursor placed mid-screen.
    let script =
        "seq 1 40000; printf '\\033[?1049h\\033[2J\\033[5;10Hin-alt-screen'; read x; printf \"<$x>\"";
    let session = hq
        .start_session_with(serde_json::json!({
            "runner_id": runner.id, "command": ["sh", "-c", script], "rows": 20, "cols": 60,
        }))
        .await;
    let mut first = hq.attach(session.id, None).await;
    first.read_until("in-alt-screen").await.unwrap();
    let end = hq.session(session.id).await.output_bytes;
    assert!(end > 200_000);

    // The model catches up off the data path; wait until a snapshot stands for all of it.
    let mut late = eventually("a snapshot of the whole output", || async {
        let viewer = hq.attach(session.id, None).await;
        (viewer.attached.snapshot && viewer.attached.offset == end).then_some(viewer)
    })
    .await;
    let screen = match late.next_frame().await.unwrap() {
        Frame::Output(bytes) => bytes,
        other => panic!("expected the snapshot frame, got {other:?}"),
    };
    assert!(screen.len() < 64 * 1024, "a snapshot, not a replay: {} bytes", screen.len());
    let nz = |n| std::num::NonZeroU16::new(n).unwrap();
    let mut terminal = vt100::Parser::new(nz(20), nz(60), 0);
    terminal.process(&screen);
    assert!(terminal.screen().alternate_screen());
    assert_eq!(terminal.screen().cursor_position(), (4, 22));
    assert!(terminal.screen().contents().contains("in-alt-screen"));

    // Live bytes follow from the snapshot's offset.
    late.type_text("typed\r").await;
    late.read_to_exit().await.unwrap();
    terminal.process(&late.output);
    assert!(terminal.screen().contents().contains("<typed>"), "{}", terminal.screen().contents());
    // With `from`, the bytes themselves, as always.
    let mut exact = hq.attach(session.id, Some(end)).await;
    assert!(!exact.attached.snapshot);
    exact.read_to_exit().await.unwrap();
    assert_eq!(exact.output, late.output);
}

#[tokio::test]
async fn a_runner_killed_and_restarted_takes_its_sessions_back_from_their_hosts() {
    let hq = TestHq::start_with(&["--lost-after", "1h"]).await;
    let state = tempfile::tempdir().unwrap();
    let spawn = || runner_command(&hq, "lazarus", state.path()).spawn().unwrap();
    let mut first = spawn();
    let runner = hq.wait_for_runner("lazarus", RunnerStatus::Online).await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo up; read x; echo got-$x; exit 4"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("up").await.unwrap();
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    // The session runs on in its host; the restarted runner (same id) takes it back.
    let _second = spawn();
    let back = hq.wait_for_runner("lazarus", RunnerStatus::Online).await;
    assert_eq!(back.id, runner.id);
    assert_eq!(hq.session(session.id).await.status, SessionStatus::Running);
    viewer.type_text("again\r").await;
    let exit = viewer.read_to_exit().await.unwrap();
    assert_eq!(exit.code, Some(4));
    let text = viewer.text();
    assert_eq!(text.matches("up").count(), 1, "every byte once: {text}");
    assert!(text.contains("got-again"), "{text}");
}

#[tokio::test]
async fn a_full_disk_stops_the_log_with_an_error_event_but_never_the_live_stream() {
    let data = tempfile::tempdir().unwrap();
    // Writes past 2 MiB fail (dash counts `ulimit -f` in 512-byte blocks) the way a full disk
    // fails them: EFBIG rather than ENOSPC, through the same path. The database stays far smaller.
    let mut hook = WebhookReceiver::start().await;
    let hq =
        HqProcess::spawn_after("trap '' XFSZ\nulimit -f 4096", data.path(), &["--webhook-url", &hook.url])
            .await;
    let runner = TestRunner::start(&hq, "scribe").await;
    let mut events = hq.request(reqwest::Method::GET, "/api/events").send().await.unwrap();
    // The session waits for a line after the flood, so the log stops while it is live (with
    // the whole flood in HQ's ring, the write that fails could otherwise come after the exit).
    let script =
        "head -c 3000000 /dev/zero | tr '\\0' x; read line; printf '\\r\\nall-printed\\r\\n'; exit 5";
    let session = hq.start_session(runner.id, &["sh", "-c", script]).await;
    let mut viewer = hq.attach(session.id, Some(0)).await;

    // The live viewer hears of it, and the stream goes on after it.
    loop {
        match viewer.next_control().await.unwrap() {
            frame @ ServerFrame::Error(_) => break viewer.controls.push(frame),
            frame => viewer.controls.push(frame),
        }
    }
    viewer.type_text("go\r").await;
    // Every byte still reaches the viewer, with one recoverable error frame on the way.
    assert_eq!(viewer.read_to_exit().await.unwrap().code, Some(5));
    assert!(viewer.text().trim_end().ends_with("all-printed"));
    assert_eq!(viewer.output.iter().filter(|&&b| b == b'x').count(), 3_000_000);
    let stopped: Vec<_> = viewer
        .controls
        .iter()
        .filter_map(|frame| match frame {
            ServerFrame::Error(error) => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(stopped.len(), 1, "one error frame: {:?}", viewer.controls);
    assert_eq!(stopped[0].code, FrameErrorCode::LogStopped);
    assert!(stopped[0].message.contains("File too large"), "{}", stopped[0].message);

    // Dashboards hear of it as a change to the session.
    let id = session.id.to_string();
    let seen = read_events(&mut events, |events| {
        events.iter().any(|(name, data)| {
            name == "session" && data["id"] == id.as_str() && data["log_error"].is_string()
        })
    })
    .await;
    let (_, changed) = seen.last().unwrap();
    assert!(changed["log_error"].as_str().unwrap().starts_with("output log stopped at byte "));
    let ended = hq.wait_for_session(session.id, SessionStatus::Exited).await;
    assert!(ended.output_bytes > 3_000_000);
    assert_eq!(ended.log_error.as_deref(), changed["log_error"].as_str());
    // And so does whoever watches HQ's webhook.
    let alert = hook.next_event("session.log_stopped").await;
    assert!(alert["text"].as_str().unwrap().contains("File too large"), "{alert}");

    // It stays said: a restarted HQ (without the limit) still reports the short log.
    hq.terminate().await;
    let hq = HqProcess::spawn(data.path(), None, &[]).await;
    assert_eq!(hq.session(session.id).await.log_error, ended.log_error);
    runner.stop().await.unwrap();
}

/// How many session logs the process `pid` holds open.
fn open_logs(pid: u32) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("/sessions/"))
        .count()
}

#[tokio::test]
async fn finished_sessions_hold_no_file_descriptors() {
    let data = tempfile::tempdir().unwrap();
    let hq = HqProcess::spawn(data.path(), None, &[]).await;
    let runner = TestRunner::start(&hq, "tidy").await;
    let live = hq.start_session(runner.id, &["sh", "-c", "echo live; exec cat"]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(hq.start_session(runner.id, &["sh", "-c", &format!("echo done-{i}")]).await.id);
    }
    for id in &ids {
        hq.wait_for_session(*id, SessionStatus::Exited).await;
    }
    let mut viewer = hq.attach(live.id, Some(0)).await;
    viewer.read_until("live").await.unwrap();
    // The live session writes its two files; the finished ones let theirs go.
    eventually("finished sessions to close their logs", || async {
        (open_logs(hq.pid()) == 2).then_some(())
    })
    .await;
    hq.terminate().await;

    let hq = HqProcess::spawn(data.path(), None, &[]).await;
    assert_eq!(open_logs(hq.pid()), 0, "a restarted HQ opens no stored log");
    let mut replay = hq.attach(ids[1], None).await;
    assert_eq!(replay.read_to_exit().await.unwrap().code, Some(0));
    assert!(replay.text().contains("done-1"), "{}", replay.text());
    assert_eq!(open_logs(hq.pid()), 0, "nor does reading one");
    runner.stop().await.unwrap();
}

#[tokio::test]
async fn dashboard_sign_ins_survive_a_restart_unless_their_token_is_gone() {
    use reqwest::StatusCode;
    let data = tempfile::tempdir().unwrap();
    let hq = TestHq::start_in(data.path(), &[]).await;
    let user = hq.create_token("dana", "user").await;
    let revoked = hq.create_token("eve", "user").await;
    let sign_in = |token: String| {
        let request = hq.http.post(hq.url("/api/login")).json(&serde_json::json!({ "token": token }));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let cookie = response.headers()["set-cookie"].to_str().unwrap();
            cookie.split(';').next().unwrap().to_owned()
        }
    };
    let admin_cookie = sign_in(ADMIN_TOKEN.to_owned()).await;
    let user_cookie = sign_in(user.clone()).await;
    let revoked_cookie = sign_in(revoked.clone()).await;
    let signed_out_cookie = sign_in(user).await;
    let out = hq.http.post(hq.url("/api/logout")).header("cookie", &signed_out_cookie).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let tokens = hq.get_json("/api/tokens").await;
    let eve = tokens.as_array().unwrap().iter().find(|t| t["name"] == "eve").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone = hq.request(reqwest::Method::DELETE, &format!("/api/tokens/{eve}")).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    hq.stop().await;

    let hq = TestHq::start_in(data.path(), &[]).await;
    let status = |cookie: String| {
        let request = hq.http.get(hq.url("/api/runners")).header("cookie", cookie);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(admin_cookie.clone()).await, StatusCode::OK, "the admin's sign-in survived");
    assert_eq!(status(user_cookie.clone()).await, StatusCode::OK, "a user's sign-in survived");
    assert_eq!(status(revoked_cookie).await, StatusCode::UNAUTHORIZED, "its token was revoked");
    assert_eq!(status(signed_out_cookie).await, StatusCode::UNAUTHORIZED, "it signed out");
    hq.stop().await;

    // A new --admin-token signs out whoever signed in with the old one; managed tokens stay.
    let hq = TestHq::start_in(data.path(), &["--admin-token", "a-new-admin-token"]).await;
    let status = |cookie: String| {
        let request = hq.http.get(hq.url("/api/runners")).header("cookie", cookie);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(user_cookie).await, StatusCode::OK);
    assert_eq!(status(admin_cookie).await, StatusCode::UNAUTHORIZED);
}
