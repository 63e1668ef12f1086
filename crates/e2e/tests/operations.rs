//! Operations: metrics, readiness and version, configuration files and their precedence,
//! logs without secrets, and the OpenAPI description.

use std::process::Stdio;

use agentrelay_e2e::{
    ADMIN_TOKEN, HqClient, RUNNER_TOKEN, TIMEOUT, TestHq, TestRunner, binary, eventually, runner_command,
};
use agentrelay_protocol::{RunnerStatus, SessionStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

/// The value of the first sample of `name` with `labels` (e.g. `status="online"`) in a scrape.
fn sample(scrape: &str, name: &str, labels: &str) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.starts_with(name) && line.contains(labels) && line[name.len()..].starts_with(['{', ' '])
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_runners_sessions_bytes_and_requests() {
    let hq = TestHq::start_with(&["--metrics-listen", "127.0.0.1:0"]).await;
    let runner = TestRunner::start(&hq, "metered").await;
    let session =
        hq.start_session(runner.id, &["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x; echo"]).await;
    hq.wait_for_session(session.id, SessionStatus::Exited).await;
    let mut viewer = hq.attach(session.id, Some(0)).await;
    viewer.read_to_exit().await.unwrap();

    let scrape = hq.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    assert!(scrape.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = scrape.text().await.unwrap();
    assert_eq!(sample(&text, "agentrelay_runners", "status=\"online\""), Some(1.0), "{text}");
    assert!(sample(&text, "agentrelay_sessions", "status=\"exited\"").unwrap() >= 1.0);
    assert!(sample(&text, "agentrelay_output_bytes_in_total", "").unwrap() >= 5000.0, "{text}");
    assert!(sample(&text, "agentrelay_output_bytes_out_total", "").unwrap() >= 5000.0, "{text}");
    assert!(sample(&text, "agentrelay_reconnects_total", "kind=\"viewer\"").unwrap() >= 1.0);
    assert!(text.contains("agentrelay_websocket_errors_total"));
    assert!(text.contains("agentrelay_viewers"));
    assert!(
        text.contains("agentrelay_http_request_duration_seconds_bucket")
            && text.contains("route=\"/api/sessions/{id}\""),
        "latency by route template: {text}"
    );

    // Guarded on the main address; open on --metrics-listen.
    let anonymous = hq.http.get(hq.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let user = hq.create_token("u", "user").await;
    let as_user = hq.http.get(hq.url("/metrics")).bearer_auth(user).send().await.unwrap();
    assert_eq!(as_user.status(), StatusCode::FORBIDDEN);
    let side = hq.metrics_addr.expect("--metrics-listen address");
    let open = reqwest::get(format!("http://{side}/metrics")).await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    assert!(open.text().await.unwrap().contains("agentrelay_sessions"));
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_and_version() {
    let hq = TestHq::start().await;
    let ready = hq.http.get(hq.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({ "status": "ok" }));
    let version: Value = hq.http.get(hq.url("/api/version")).send().await.unwrap().json().await.unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version["protocol_version"], agentrelay_protocol::PROTOCOL_VERSION);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_sits_below_environment_and_flags() {
    let hq = TestHq::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runner.toml");
    std::fs::write(
        &config,
        "name = \"from-file\"\nlabel = { zone = \"eu\", tier = \"gpu\" }\nbuffer-size = \"1MiB\"\n",
    )
    .unwrap();

    // The file alone.
    let mut from_file = runner_command(&hq, "ignored", &dir.path().join("a"));
    from_file.args(["--config", config.to_str().unwrap()]);
    strip_name(&mut from_file);
    let _a = from_file.spawn().unwrap();
    let runner = hq.wait_for_runner("from-file", RunnerStatus::Online).await;
    assert_eq!(runner.labels.get("zone").map(String::as_str), Some("eu"));

    // The environment beats the file, and a flag beats both.
    let mut from_env = runner_command(&hq, "ignored", &dir.path().join("b"));
    strip_name(&mut from_env);
    from_env.env("AGENTRELAY_CONFIG", &config).env("AGENTRELAY_NAME", "from-env");
    let _b = from_env.spawn().unwrap();
    hq.wait_for_runner("from-env", RunnerStatus::Online).await;
    let mut from_flag = runner_command(&hq, "from-flag", &dir.path().join("c"));
    from_flag.env("AGENTRELAY_CONFIG", &config).env("AGENTRELAY_NAME", "from-env-too");
    let _c = from_flag.spawn().unwrap();
    hq.wait_for_runner("from-flag", RunnerStatus::Online).await;

    // A bad key is one clear line and exit 2, like any bad flag.
    std::fs::write(&config, "colour = \"red\"\n").unwrap();
    let bad = tokio::process::Command::new(binary("agentrelay-runner"))
        .args(["--config", config.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown key 'colour'"));
}

/// Drops `--name` from a harness runner command, so the name comes from elsewhere.
fn strip_name(command: &mut tokio::process::Command) {
    let args: Vec<_> = command.as_std().get_args().map(|a| a.to_owned()).collect();
    let mut kept = Vec::new();
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
            continue;
        }
        if arg == "--name" {
            skip = true;
            continue;
        }
        kept.push(arg);
    }
    let program = command.as_std().get_program().to_owned();
    let mut fresh = tokio::process::Command::new(program);
    fresh.args(kept).env("RUNNER_TOKEN", RUNNER_TOKEN).env("RUST_LOG", "off").kill_on_drop(true);
    *command = fresh;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_runner_and_session_spans_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mut child = tokio::process::Command::new(binary("agentrelay-hq"))
        .args([
            "--listen",
            &addr.to_string(),
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .env("AGENTRELAY_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUNNER_TOKEN", RUNNER_TOKEN)
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let collected = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = collected.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    let hq = HqClient::new(addr);
    eventually("HQ to start", || async {
        hq.http.get(hq.url("/healthz")).send().await.ok().filter(|r| r.status().is_success())
    })
    .await;
    // Secrets cross HQ in every way they can: sign-in, a new token, a runner's dial.
    hq.http.post(hq.url("/api/login")).json(&json!({ "token": ADMIN_TOKEN })).send().await.unwrap();
    let secret = hq.create_token("logged", "runner").await;
    let state_dir = tempfile::tempdir().unwrap();
    let mut runner = tokio::process::Command::new(binary("agentrelay-runner"))
        .args(["--hq", &hq.url(""), "--name", "logged", "--state-dir", state_dir.path().to_str().unwrap()])
        .args(["--token", &secret])
        .env("RUST_LOG", "off")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let online = hq.wait_for_runner("logged", RunnerStatus::Online).await;
    let session_id = hq.start_session(online.id, &["sh", "-c", "echo hi"]).await.id.to_string();
    eventually("a log line in the session's span", || {
        let found = collected
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&session_id) && l.contains("\"name\":\"session\""));
        async move { found.then_some(()) }
    })
    .await;
    runner.start_kill().unwrap();
    let _ = tokio::time::timeout(TIMEOUT, runner.wait()).await;
    child.start_kill().unwrap();
    let _ = tokio::time::timeout(TIMEOUT, child.wait()).await;
    let _ = tokio::time::timeout(TIMEOUT, reader).await;

    let lines = collected.lock().unwrap().clone();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
        for secret in [ADMIN_TOKEN, RUNNER_TOKEN, secret.as_str()] {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
    assert!(lines.iter().any(|l| l.contains("\"runner\"") && l.contains("logged")), "a runner span");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_served_without_auth_and_matches_the_committed_one() {
    let hq = TestHq::start().await;
    let served = hq.http.get(hq.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let served: Value = served.json().await.unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, committed);
    // Spot checks that the document says what the API does.
    let create = &served["paths"]["/api/sessions"]["post"];
    assert!(create["responses"]["201"].is_object() && create["responses"]["409"].is_object());
    assert!(served["components"]["schemas"]["Session"]["properties"]["activity"].is_object());
    assert!(served["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_prunes_finished_sessions_by_size_and_by_age_but_never_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let hq = TestHq::start_in(dir.path(), &["--retention-size", "5KiB"]).await;
    let runner = TestRunner::start(&hq, "retained").await;
    let print = |bytes: usize| format!("head -c {bytes} /dev/zero | tr '\\0' x");
    let live = hq.start_session(runner.id, &["sh", "-c", &format!("{}; exec sleep 60", print(3000))]).await;
    let mut ended = Vec::new();
    for _ in 0..3 {
        let session = hq.start_session(runner.id, &["sh", "-c", &print(1500)]).await;
        hq.wait_for_session(session.id, SessionStatus::Exited).await;
        ended.push(session.id);
    }
    // 3000 live + 3 × 1500 finished > 5 KiB: the oldest finished ones go until it fits.
    eventually("the oldest finished session to be pruned", || async {
        let gone =
            hq.request(Method::GET, &format!("/api/sessions/{}", ended[0])).send().await.unwrap().status();
        (gone == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(!dir.path().join(format!("sessions/{}.out", ended[0])).exists(), "its log is deleted");
    assert_eq!(hq.session(ended[2]).await.status, SessionStatus::Exited, "the newest stays");
    assert_eq!(hq.session(live.id).await.status, SessionStatus::Running, "live sessions are never pruned");
    hq.stop().await;

    // By age, and the deletion is durable: a restarted HQ does not bring the session back.
    let hq = TestHq::start_in(dir.path(), &["--retention", "1s"]).await;
    eventually("finished sessions to age out", || async {
        let sessions: Vec<Value> = serde_json::from_value(hq.get_json("/api/sessions").await).unwrap();
        sessions.iter().all(|s| s["status"] != "exited").then_some(())
    })
    .await;
    hq.stop().await;
    let hq = TestHq::start_in(dir.path(), &[]).await;
    let status =
        hq.request(Method::GET, &format!("/api/sessions/{}", ended[2])).send().await.unwrap().status();
    assert_eq!(status, StatusCode::NOT_FOUND);
}
