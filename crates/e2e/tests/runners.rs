//! Runner registration: hello, online/offline, refusals, heartbeats.

use std::process::Stdio;

use agentrelay_e2e::*;
use agentrelay_protocol::runner::{Hello, HqMessage, RefusalCode, RunnerMessage};
use agentrelay_protocol::{PROTOCOL_VERSION, RunnerStatus, SessionStatus};
use agentrelay_runner::RunnerError;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

#[tokio::test]
async fn runner_registers_with_its_identity_and_goes_offline_when_stopped() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start_with(&hq, "laptop", &["--label", "gpu=true", "--label", "zone=eu"]).await;
    let listed = hq.wait_for_runner("laptop", RunnerStatus::Online).await;
    assert_eq!(listed.id, runner.id);
    assert_eq!(listed.labels.get("gpu").map(String::as_str), Some("true"));
    assert_eq!(listed.labels.get("zone").map(String::as_str), Some("eu"));
    assert!(!listed.hostname.is_empty());
    assert!(listed.os.starts_with(std::env::consts::OS));
    assert_eq!(listed.version, env!("CARGO_PKG_VERSION"));

    runner.stop().await.unwrap();
    let offline = hq.wait_for_runner("laptop", RunnerStatus::Offline).await;
    assert!(offline.last_seen_at >= listed.connected_at);
}

#[tokio::test]
async fn register_endpoint_refuses_missing_and_wrong_tokens() {
    let hq = TestHq::start().await;
    for token in [None, Some("wrong"), Some(ADMIN_TOKEN)] {
        let error = hq.ws("/api/v1/ws/register", token, None).await.expect_err("must be refused");
        assert!(error.to_string().contains("401"), "{token:?}: {error}");
    }
}

#[tokio::test]
async fn runner_binary_with_a_wrong_token_exits_with_one_clear_line() {
    let hq = TestHq::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(binary("agentrelay-runner"))
        .args(["--hq", &hq.url(""), "--token", "not-the-token", "--state-dir"])
        .arg(state.path())
        .env("RUST_LOG", "off")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    let status = tokio::time::timeout(TIMEOUT, child.wait()).await.unwrap().unwrap();
    assert!(!status.success());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].contains("refused the runner token"), "{stderr}");
    assert!(!stderr.contains("not-the-token"), "the token must not be printed");
}

#[tokio::test]
async fn runner_binary_without_a_token_exits_non_zero() {
    let output = tokio::process::Command::new(binary("agentrelay-runner"))
        .args(["--hq", "http://127.0.0.1:9"])
        .env_remove("RUNNER_TOKEN")
        .env_remove("AGENTRELAY_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no runner token"), "{stderr}");
}

#[tokio::test]
async fn killed_runner_process_goes_offline() {
    let hq = TestHq::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut child = runner_command(&hq, "doomed", state.path()).spawn().unwrap();
    hq.wait_for_runner("doomed", RunnerStatus::Online).await;
    child.start_kill().unwrap(); // SIGKILL: no goodbye on the socket.
    child.wait().await.unwrap();
    hq.wait_for_runner("doomed", RunnerStatus::Offline).await;
}

#[tokio::test]
async fn restarted_runner_keeps_its_id() {
    let hq = TestHq::start().await;
    let state = tempfile::tempdir().unwrap();
    let first = TestRunner::spawn_in(&hq, "same", state.path(), &[]);
    let id = first.id;
    hq.wait_for_runner("same", RunnerStatus::Online).await;
    first.stop().await.unwrap();
    hq.wait_for_runner("same", RunnerStatus::Offline).await;
    let again = TestRunner::spawn_in(&hq, "same", state.path(), &[]);
    assert_eq!(again.id, id);
    let back = hq.wait_for_runner("same", RunnerStatus::Online).await;
    assert_eq!(back.id, id);
    assert_eq!(hq.runners().await.len(), 1, "one runner, not two");
}

async fn raw_runner(hq: &TestHq, hello: Hello) -> (Socket, HqMessage) {
    let mut socket = hq.ws("/api/v1/ws/register", Some(RUNNER_TOKEN), None).await.unwrap();
    let text = serde_json::to_string(&RunnerMessage::Hello(hello)).unwrap();
    socket.send(Message::text(text)).await.unwrap();
    let reply = loop {
        match tokio::time::timeout(TIMEOUT, socket.next()).await.unwrap() {
            Some(Ok(Message::Text(text))) => break serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("no reply to hello: {other:?}"),
        }
    };
    (socket, reply)
}

fn hello(name: &str) -> Hello {
    Hello {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        labels: Default::default(),
        hostname: "sim".to_owned(),
        os: "linux/x86_64".to_owned(),
        version: "0.0.0".to_owned(),
        protocol_version: PROTOCOL_VERSION,
        presets: vec![],
        sessions: vec![],
        policy: Default::default(),
        ended: Vec::new(),
        repos: vec![],
        workspaces: false,
    }
}

#[tokio::test]
async fn silent_runner_is_marked_offline_after_the_heartbeat_timeout() {
    let hq = TestHq::start_with(&["--heartbeat-interval", "100ms", "--heartbeat-timeout", "400ms"]).await;
    let (mut socket, reply) = raw_runner(&hq, hello("silent")).await;
    assert!(matches!(reply, HqMessage::Welcome(_)), "{reply:?}");
    hq.wait_for_runner("silent", RunnerStatus::Online).await;
    // Keep the socket open but never answer: HQ must give up on its own.
    hq.wait_for_runner("silent", RunnerStatus::Offline).await;
    let closed = tokio::time::timeout(TIMEOUT, async {
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "HQ should close the silent runner's socket");
}

#[tokio::test]
async fn hq_refuses_a_duplicate_name_and_an_unknown_protocol_version() {
    let hq = TestHq::start().await;
    let _first = TestRunner::start(&hq, "unique").await;
    let (_socket, reply) = raw_runner(&hq, hello("unique")).await;
    match reply {
        HqMessage::Refused(refused) => {
            assert_eq!(refused.code, RefusalCode::NameTaken);
            assert!(refused.message.contains("unique"), "{}", refused.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let mut future = hello("from-the-future");
    future.protocol_version = PROTOCOL_VERSION + 5;
    let (_socket, reply) = raw_runner(&hq, future).await;
    assert!(
        matches!(reply, HqMessage::Refused(ref r) if r.code == RefusalCode::ProtocolVersion),
        "{reply:?}"
    );
}

#[tokio::test]
async fn library_runner_refused_for_its_name_stops_with_an_error() {
    let hq = TestHq::start().await;
    let _first = TestRunner::start(&hq, "twin").await;
    let second = TestRunner::spawn(&hq, "twin", &[]);
    match second.join().await {
        Err(RunnerError::Refused(message)) => assert!(message.contains("twin"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_hq_is_retried_until_it_appears() {
    // Reserve a port, then free it so the runner's first dials fail.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let state = tempfile::tempdir().unwrap();
    let config = <agentrelay_runner::RunnerConfig as clap::Parser>::parse_from([
        "agentrelay-runner",
        "--hq",
        &format!("http://{addr}"),
        "--token",
        RUNNER_TOKEN,
        "--name",
        "patient",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(agentrelay_runner::Runner::new(config).unwrap().run(shutdown.clone()));
    let hq = TestHq::start_with(&["--listen", &addr.to_string()]).await;
    hq.wait_for_runner("patient", RunnerStatus::Online).await;
    shutdown.cancel();
    runner.await.unwrap().unwrap();
}

#[tokio::test]
async fn sessions_of_a_runner_started_under_nohup_can_still_be_hung_up() {
    let hq = TestHq::start().await;
    let state = tempfile::tempdir().unwrap();
    // As `nohup agentrelay-runner … &` from a script leaves it: SIGHUP and SIGQUIT ignored.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' HUP QUIT\nexec \"$0\" \"$@\"")
        .arg(binary("agentrelay-runner"))
        .args(["--hq", &hq.url(""), "--name", "nohup", "--state-dir"])
        .arg(state.path())
        .env("RUNNER_TOKEN", RUNNER_TOKEN)
        .env("RUST_LOG", "off")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let runner = hq.wait_for_runner("nohup", RunnerStatus::Online).await;
    let session =
        hq.start_session(runner.id, &["sh", "-c", "grep SigIgn /proc/self/status; exec sleep 60"]).await;
    let mut viewer = hq.attach(session.id, Some(0)).await;
    viewer.read_until("SigIgn:").await.unwrap();
    viewer.read_until("\n").await.unwrap();
    let line = viewer.text().lines().find(|l| l.starts_with("SigIgn:")).unwrap().to_owned();
    let mask = u64::from_str_radix(line["SigIgn:".len()..].trim(), 16).unwrap();
    assert_eq!(mask & 0b101, 0, "the session inherited ignored SIGHUP or SIGQUIT: {line}");
    // So the kill's hang-up ends it, without waiting for SIGKILL.
    let killed =
        hq.request(reqwest::Method::DELETE, &format!("/api/sessions/{}", session.id)).send().await.unwrap();
    assert_eq!(killed.status(), reqwest::StatusCode::ACCEPTED);
    assert_eq!(
        hq.wait_for_session(session.id, SessionStatus::Exited).await.signal.as_deref(),
        Some("SIGHUP")
    );

    // The runner itself still ignores the hang-up it was started to ignore.
    let pid = child.id().unwrap();
    std::process::Command::new("kill").arg("-HUP").arg(pid.to_string()).status().unwrap();
    let after = hq.start_session(runner.id, &["sh", "-c", "echo still-here"]).await;
    let mut check = hq.attach(after.id, Some(0)).await;
    assert_eq!(check.read_to_exit().await.unwrap().code, Some(0));
    assert!(child.try_wait().unwrap().is_none(), "the runner died of SIGHUP");
}

#[tokio::test]
async fn a_runner_given_several_hq_addresses_stays_with_the_one_that_answers() {
    let hq = TestHq::start().await;
    // An address nothing listens on, first: the runner moves on to the next.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let both = format!("http://{closed},{}", hq.url(""));
    let runner = TestRunner::start_with(&hq, "roamer", &["--hq", &both]).await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo reached"]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_to_exit().await.unwrap();
    assert!(viewer.text().contains("reached"), "its data connection found the same HQ");
}
