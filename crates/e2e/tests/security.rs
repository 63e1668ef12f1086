//! Tokens and scopes, revocation, bootstrap, sign-in limits, resource limits, the audit log, and
//! a flood of malformed input.

use std::process::Stdio;

use agentrelay_e2e::*;
use agentrelay_protocol::viewer::{FrameErrorCode, ServerFrame};
use agentrelay_protocol::{CreatedToken, RunnerStatus};
use agentrelay_runner::RunnerError;
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

async fn create_token(hq: &HqClient, bearer: &str, body: Value) -> (StatusCode, Value) {
    let response = hq.http.post(hq.url("/api/tokens")).bearer_auth(bearer).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A token as the harness makes them: a `user` token is a member's of its name, a `runner`
/// token enrolls shared runners.
async fn token(hq: &HqClient, name: &str, scope: &str) -> CreatedToken {
    let body = match scope {
        "user" => {
            let user = hq.user(name, &format!("{name}@example.test"), "member").await;
            json!({"name": name, "scope": scope, "user": user.id})
        }
        "runner" => json!({"name": name, "scope": scope, "shared": true}),
        _ => json!({"name": name, "scope": scope}),
    };
    let (status, body) = create_token(hq, ADMIN_TOKEN, body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn status_of(hq: &HqClient, method: Method, path: &str, bearer: &str) -> StatusCode {
    hq.http.request(method, hq.url(path)).bearer_auth(bearer).send().await.unwrap().status()
}

#[tokio::test]
async fn scopes_decide_what_each_token_can_do() {
    let hq = TestHq::start().await;
    let user = token(&hq, "alice", "user").await;
    let runner_token = token(&hq, "build-box", "runner").await;
    let admin = token(&hq, "ops", "admin").await;
    assert!(user.token.starts_with("arl_usr_") && runner_token.token.starts_with("arl_run_"));
    assert!(admin.token.starts_with("arl_adm_") && user.token.len() >= 40);

    // The list never shows secrets.
    let listed = hq.get_json("/api/tokens").await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert!(!listed.to_string().contains(&user.token));
    assert!(listed.as_array().unwrap().iter().all(|t| t.get("token").is_none()));

    // A runner token dials in, and does nothing else.
    let runner = TestRunner::start_with(&hq, "scoped", &["--token", &runner_token.token]).await;
    assert_eq!(status_of(&hq, Method::GET, "/api/runners", &runner_token.token).await, StatusCode::FORBIDDEN);
    // A user token uses runners and sessions and its own tokens, not the audit log or users.
    assert_eq!(status_of(&hq, Method::GET, "/api/runners", &user.token).await, StatusCode::OK);
    let created = hq
        .http
        .post(hq.url("/api/sessions"))
        .bearer_auth(&user.token)
        .json(&json!({"runner_id": runner.id, "command": ["sh", "-c", "exit 0"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.json::<Value>().await.unwrap()["created_by"], "alice");
    let own: Value = hq
        .http
        .get(hq.url("/api/tokens"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(own.as_array().map(|a| a.len()), Some(1), "a member lists only their own tokens: {own}");
    let (status, _) = create_token(&hq, &user.token, json!({"name": "x", "scope": "admin"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member makes no admin token");
    for (method, path) in
        [(Method::GET, "/api/users"), (Method::POST, "/api/users"), (Method::GET, "/api/audit")]
    {
        assert_eq!(
            status_of(&hq, method.clone(), path, &user.token).await,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
    let error =
        hq.ws("/api/v1/ws/register", Some(&user.token), None).await.expect_err("user cannot register");
    assert!(error.to_string().contains("401"));
    // A managed admin token does everything.
    assert_eq!(status_of(&hq, Method::GET, "/api/audit", &admin.token).await, StatusCode::OK);

    for (body, field) in [
        (json!({"scope": "user"}), "name"),
        (json!({"name": "x"}), "scope"),
        (json!({"name": "x", "scope": "root"}), "scope"),
        (json!({"name": "x", "scope": "user", "expires_in": -5}), "expires_in"),
        (json!({"name": "x", "scope": "user", "expires_in": "soon"}), "expires_in"),
    ] {
        let (status, reply) = create_token(&hq, ADMIN_TOKEN, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply["error"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn revoking_a_token_cuts_its_live_connections_within_seconds() {
    let hq = TestHq::start().await;
    let runner_token = token(&hq, "doomed-runner", "runner").await;
    let user = token(&hq, "doomed-user", "user").await;
    let runner = TestRunner::start_with(&hq, "revocable", &["--token", &runner_token.token]).await;
    let session: agentrelay_protocol::Session = hq
        .http
        .post(hq.url("/api/sessions"))
        .bearer_auth(&user.token)
        .json(&json!({"runner_id": runner.id, "command": ["cat"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // A viewer and an events stream opened with the user token.
    let socket = hq.ws(&format!("/api/v1/ws/session/{}", session.id), Some(&user.token), None).await.unwrap();
    let mut viewer = Viewer::new(socket).await;
    viewer.type_text("still-here\r").await;
    viewer.read_until("still-here").await.unwrap();
    let mut events = hq.http.get(hq.url("/api/events")).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(events.status(), StatusCode::OK);

    let revoke = hq.request(Method::DELETE, &format!("/api/tokens/{}", user.id)).send().await.unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    while !matches!(viewer.next_frame().await, Ok(Frame::Closed) | Err(_)) {}
    assert_eq!(viewer.close_code, Some(1008));
    let ended =
        tokio::time::timeout(TIMEOUT, async { while let Ok(Some(_)) = events.chunk().await {} }).await;
    assert!(ended.is_ok(), "the events stream ends with its token");
    assert_eq!(status_of(&hq, Method::GET, "/api/runners", &user.token).await, StatusCode::UNAUTHORIZED);

    // The runner goes offline and cannot come back with its revoked token.
    let revoke =
        hq.request(Method::DELETE, &format!("/api/tokens/{}", runner_token.id)).send().await.unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    hq.wait_for_runner("revocable", RunnerStatus::Offline).await;
    match runner.join().await {
        Err(RunnerError::TokenRefused(_)) => {}
        other => panic!("expected the runner to stop on a refused token, got {other:?}"),
    }
    let again = hq.request(Method::DELETE, &format!("/api/tokens/{}", runner_token.id)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_tokens_stop_working() {
    let hq = TestHq::start().await;
    let (status, body) =
        create_token(&hq, ADMIN_TOKEN, json!({"name": "brief", "scope": "user", "expires_in": 1})).await;
    assert_eq!(status, StatusCode::CREATED);
    let brief: CreatedToken = serde_json::from_value(body).unwrap();
    assert!(brief.expires_at.is_some());
    assert_eq!(status_of(&hq, Method::GET, "/api/runners", &brief.token).await, StatusCode::OK);
    eventually("the token to expire", || async {
        (status_of(&hq, Method::GET, "/api/runners", &brief.token).await == StatusCode::UNAUTHORIZED)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn first_start_prints_an_admin_token_once_and_reset_token_replaces_it() {
    let data = tempfile::tempdir().unwrap();
    let start = || {
        tokio::process::Command::new(binary("agentrelay-hq"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env_remove("AGENTRELAY_ADMIN_TOKEN")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    // Reads stderr until HQ says where it listens; returns that and any printed admin token.
    async fn startup(child: &mut tokio::process::Child) -> (String, Option<String>) {
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut token = None;
        loop {
            let line = tokio::time::timeout(TIMEOUT, lines.next_line()).await.unwrap().unwrap().unwrap();
            if let Some(found) = line.split_whitespace().find(|w| w.starts_with("arl_adm_")) {
                token = Some(found.to_owned());
            }
            if let Some(addr) = line.split("addr=").nth(1) {
                let addr =
                    addr.split_whitespace().next().unwrap().trim_matches(|c: char| !c.is_ascii_graphic());
                let addr: String =
                    addr.chars().filter(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
                return (addr, token);
            }
        }
    }
    let mut first = start();
    let (addr, printed) = startup(&mut first).await;
    let bootstrap = printed.expect("the first start prints an admin token");
    let http = reqwest::Client::new();
    let get = |token: String| {
        let http = http.clone();
        let url = format!("http://{addr}/api/tokens");
        async move { http.get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(get(bootstrap.clone()).await, StatusCode::OK);

    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let mut second = start();
    let (addr2, printed) = startup(&mut second).await;
    assert!(printed.is_none(), "a token is printed only on the first start");

    let reset = tokio::process::Command::new(binary("agentrelay-hq"))
        .args(["admin", "reset-token", "--data-dir"])
        .arg(data.path())
        .output()
        .await
        .unwrap();
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let fresh = String::from_utf8(reset.stdout).unwrap().trim().to_owned();
    assert!(fresh.starts_with("arl_adm_"));
    let http = reqwest::Client::new();
    let status = |token: String| {
        let http = http.clone();
        let url = format!("http://{addr2}/api/tokens");
        async move { http.get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    // The running HQ picks the change up by itself.
    eventually("the new admin token to work and the old one to stop", || async {
        (status(fresh.clone()).await == StatusCode::OK
            && status(bootstrap.clone()).await == StatusCode::UNAUTHORIZED)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let hq = TestHq::start_with(&["--login-attempts", "3"]).await;
    let login = |token: &'static str| {
        let http = hq.http.clone();
        let url = hq.url("/api/login");
        async move { http.post(url).json(&json!({"token": token})).send().await.unwrap() }
    };
    for _ in 0..3 {
        assert_eq!(login("guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = login(ADMIN_TOKEN).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "even the right token waits");
    assert_eq!(limited.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_sign_in_limit() {
    // The test's own connections come from 127.0.0.1: that is the proxy here.
    let hq = TestHq::start_with(&["--login-attempts", "2", "--trusted-proxy", "127.0.0.1"]).await;
    let login = |token: &'static str, forwarded: &'static str| {
        let request = hq.http.post(hq.url("/api/login")).header("x-forwarded-for", forwarded);
        async move { request.json(&json!({"token": token})).send().await.unwrap().status() }
    };
    for _ in 0..2 {
        assert_eq!(login("guess", "203.0.113.9").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(ADMIN_TOKEN, "203.0.113.9").await, StatusCode::TOO_MANY_REQUESTS);
    // What a client writes itself before the proxy's entry changes nothing.
    assert_eq!(login(ADMIN_TOKEN, "198.51.100.1, 203.0.113.9").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(ADMIN_TOKEN, "198.51.100.1").await, StatusCode::OK, "another client is not limited");

    // The audit log names the client, not the proxy.
    let entries = eventually("sign-ins in the audit log", || async {
        let entries = hq.get_json("/api/audit").await;
        entries.as_array().is_some_and(|e| e.len() >= 5).then_some(entries)
    })
    .await;
    let failed: Vec<&Value> =
        entries.as_array().unwrap().iter().filter(|e| e["action"] == "login.failed").collect();
    assert!(failed.iter().all(|e| e["address"] == "203.0.113.9"), "{failed:?}");
    let succeeded = entries.as_array().unwrap().iter().find(|e| e["action"] == "login.succeeded").unwrap();
    assert_eq!(succeeded["address"], "198.51.100.1");
}

#[tokio::test]
async fn without_a_trusted_proxy_x_forwarded_for_is_ignored() {
    let hq = TestHq::start_with(&["--login-attempts", "2"]).await;
    let login = |forwarded: &'static str| {
        let request = hq.http.post(hq.url("/api/login")).header("x-forwarded-for", forwarded);
        async move { request.json(&json!({"token": "guess"})).send().await.unwrap().status() }
    };
    assert_eq!(login("203.0.113.1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(login("203.0.113.2").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login("203.0.113.3").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged header is no way around the limit"
    );
}

#[tokio::test]
async fn sessions_per_runner_viewers_per_session_and_control_rate_are_limited() {
    let hq = TestHq::start_with(&[
        "--max-sessions-per-runner",
        "1",
        "--max-viewers-per-session",
        "2",
        "--max-control-rate",
        "5",
    ])
    .await;
    let runner = TestRunner::start(&hq, "small").await;
    let session = hq.start_session(runner.id, &["cat"]).await;
    let (status, body) = hq.post_session(json!({"runner_id": runner.id, "command": ["cat"]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("limit_reached")));

    let mut first = hq.attach(session.id, None).await;
    let second = hq.attach(session.id, None).await;
    let third = hq.ws(&format!("/api/v1/ws/session/{}", session.id), Some(ADMIN_TOKEN), None).await;
    assert!(third.expect_err("a third viewer is refused").to_string().contains("409"));
    drop(second);
    eventually("a seat to free up", || async {
        hq.ws(&format!("/api/v1/ws/session/{}", session.id), Some(ADMIN_TOKEN), None).await.ok()
    })
    .await;

    for _ in 0..30 {
        first.resize(30, 90).await;
    }
    match first.next_control().await.unwrap() {
        ServerFrame::Error(error) => assert_eq!(error.code, FrameErrorCode::RateLimited),
        other => panic!("expected rate_limited, got {other:?}"),
    }
    first.type_text("keys-still-work\r").await;
    first.read_until("keys-still-work").await.unwrap();
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_from_where() {
    let hq = TestHq::start().await;
    let failed = hq.http.post(hq.url("/api/login")).json(&json!({"token": "nope"})).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let user = token(&hq, "auditee", "user").await;
    let runner = TestRunner::start(&hq, "audited").await;
    let session = hq.start_session(runner.id, &["cat"]).await;
    let _viewer = hq.attach(session.id, None).await;
    hq.request(Method::DELETE, &format!("/api/sessions/{}", session.id)).send().await.unwrap();
    hq.request(Method::DELETE, &format!("/api/tokens/{}", user.id)).send().await.unwrap();

    let wanted = [
        "login.failed",
        "token.created",
        "runner.registered",
        "session.started",
        "session.attached",
        "session.killed",
        "token.revoked",
    ];
    let entries = eventually("every action in the audit log", || async {
        let entries = hq.get_json("/api/audit").await;
        let actions: Vec<String> =
            entries.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
        wanted.iter().all(|w| actions.iter().any(|a| a == w)).then_some(entries)
    })
    .await;
    let started = entries.as_array().unwrap().iter().find(|e| e["action"] == "session.started").unwrap();
    assert_eq!(started["actor"], "admin");
    assert_eq!(started["target"], session.id.to_string());
    assert_eq!(started["address"], "127.0.0.1");
    assert!(!entries.to_string().contains(&user.token), "no secret in the audit log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_frames_leave_hq_serving_normally() {
    let hq = TestHq::start_with(&["--max-frame-size", "64KiB", "--max-control-rate", "100000"]).await;
    let runner = TestRunner::start(&hq, "sturdy").await;
    let session = hq.start_session(runner.id, &["cat"]).await;
    let garbage = [
        "{",
        "null",
        "[]",
        "{\"type\":\"resize\",\"payload\":{\"rows\":-1,\"cols\":2}}",
        "{\"type\":\"resize\",\"payload\":{\"rows\":99999999999,\"cols\":2}}",
        "{\"type\":\"\u{0000}\"}",
        "\u{FFFD}\u{FFFD}",
    ];
    let mut sent = 0;
    // Viewers: malformed control frames on one connection, oversized frames on fresh ones.
    let mut viewer = hq.attach(session.id, None).await;
    while sent < 9_000 {
        viewer.socket.send(Message::text(garbage[sent % garbage.len()])).await.unwrap();
        sent += 1;
    }
    for _ in 0..20 {
        let mut greedy = hq.attach(session.id, None).await;
        let _ = greedy.socket.send(Message::binary(vec![b'x'; 100 * 1024])).await;
        sent += 1;
    }
    // Runner endpoints: bad hellos and bad opens.
    while sent < 9_500 {
        let mut socket = hq.ws("/api/v1/ws/register", Some(RUNNER_TOKEN), None).await.unwrap();
        let _ = socket.send(Message::text(garbage[sent % garbage.len()])).await;
        sent += 1;
        let mut data = hq
            .ws(&format!("/api/v1/ws/runner/session/{}", session.id), Some(RUNNER_TOKEN), None)
            .await
            .unwrap();
        let _ = data.send(Message::binary(vec![0xff; 16])).await;
        sent += 1;
    }
    // REST: broken bodies.
    while sent < 10_000 {
        let response = hq
            .request(Method::POST, "/api/sessions")
            .header("content-type", "application/json")
            .body(garbage[sent % garbage.len()])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        sent += 1;
    }
    // Every malformed control frame was answered with an error, in order, on a live connection.
    let mut errors = 0;
    while errors < 9_000 {
        match viewer.next_control().await.unwrap() {
            ServerFrame::Error(_) => errors += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    viewer.type_text("alive-after-the-storm\r").await;
    viewer.read_until("alive-after-the-storm").await.unwrap();

    // And HQ serves normally.
    let fresh = hq.start_session(runner.id, &["sh", "-c", "echo fine; exit 4"]).await;
    let mut check = hq.attach(fresh.id, None).await;
    assert_eq!(check.read_to_exit().await.unwrap().code, Some(4));
    assert!(check.text().contains("fine"));
    assert_eq!(hq.runners().await[0].status, RunnerStatus::Online);
}

#[tokio::test]
async fn tls_serves_https_and_wss_and_the_runner_trusts_a_private_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("hq.pem"), dir.path().join("hq.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let hq =
        TestHq::start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]).await;
    let base = hq.url("");
    assert!(base.starts_with("https://"));

    // Plain HTTP to the TLS port gets nowhere.
    assert!(reqwest::get(format!("http://{}/healthz", hq.addr)).await.is_err());
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = https.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // The sign-in cookie is Secure under TLS.
    let login =
        https.post(format!("{base}/api/login")).json(&json!({"token": ADMIN_TOKEN})).send().await.unwrap();
    assert!(login.headers()["set-cookie"].to_str().unwrap().contains("Secure"));

    // Without the CA the runner refuses the certificate; with --ca-cert it connects.
    let untrusting = agentrelay_runner::dial::HqEndpoint::new(&base, RUNNER_TOKEN.to_owned(), None).unwrap();
    match untrusting.dial("/api/v1/ws/register").await {
        Err(agentrelay_runner::dial::DialError::Unreachable(message)) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}")
        }
        Err(other) => panic!("expected a certificate error, got {other}"),
        Ok(_) => panic!("an unknown certificate must not be trusted"),
    }
    let runner =
        TestRunner::start_with(&hq, "secure", &["--hq", &base, "--ca-cert", cert.to_str().unwrap()]).await;
    let session = https
        .post(format!("{base}/api/sessions"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"runner_id": runner.id, "command": ["sh", "-c", "echo over-tls; exit 0"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), StatusCode::CREATED);
    let id = session.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("wss://localhost:{}/api/v1/ws/session/{id}", hq.addr.port()),
    )
    .unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {ADMIN_TOKEN}").parse().unwrap());
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(tls));
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
        .await
        .unwrap();
    let mut viewer = Viewer::new(socket).await;
    viewer.read_to_exit().await.unwrap();
    assert!(viewer.text().contains("over-tls"));
}
