//! The REST API's contract: auth, validation and error shapes.

use agentrelay_e2e::*;
use agentrelay_protocol::{RunnerStatus, SessionStatus};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

fn error_code(body: &Value) -> (&str, Option<&str>) {
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "no message in {body}");
    (error["code"].as_str().unwrap_or_default(), error["field"].as_str())
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_the_admin_token() {
    let hq = TestHq::start().await;
    for path in ["/healthz", "/readyz"] {
        let response = hq.http.get(hq.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    }
    for (method, path) in [
        (Method::GET, "/api/runners"),
        (Method::GET, "/api/sessions"),
        (Method::POST, "/api/sessions"),
        (Method::GET, "/api/sessions/00000000-0000-0000-0000-000000000000"),
        (Method::DELETE, "/api/sessions/00000000-0000-0000-0000-000000000000"),
    ] {
        for (token, status, code) in [
            (None, StatusCode::UNAUTHORIZED, "unauthorized"),
            (Some("wrong"), StatusCode::UNAUTHORIZED, "unauthorized"),
            // A valid token of the wrong scope: known, but not allowed.
            (Some(RUNNER_TOKEN), StatusCode::FORBIDDEN, "forbidden"),
        ] {
            let mut request = hq.http.request(method.clone(), hq.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), status, "{method} {path} with {token:?}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_code(&body).0, code);
        }
    }
    let viewer = hq.ws("/api/v1/ws/session/00000000-0000-0000-0000-000000000000", None, None).await;
    assert!(viewer.expect_err("needs a token").to_string().contains("401"));
}

#[tokio::test]
async fn create_session_names_the_bad_field() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "box").await;
    let id = runner.id.to_string();
    let cases = [
        (json!({"runner_id": id}), "command"),
        (json!({"runner_id": id, "command": []}), "command"),
        (json!({"runner_id": id, "command": "bash"}), "command"),
        (json!({"runner_id": id, "command": ["bash"], "rows": 0}), "rows"),
        (json!({"runner_id": id, "command": ["bash"], "cols": 5000}), "cols"),
        (json!({"runner_id": id, "command": ["bash"], "env": {"A": 1}}), "env"),
        (json!({"runner_id": "not-a-uuid", "command": ["bash"]}), "runner_id"),
        (json!({"runner_id": id, "runner": "box", "command": ["bash"]}), "runner"),
        (json!({"command": ["bash"]}), "runner_id"),
        (json!({"runner_id": id, "command": ["bash"], "colour": "blue"}), "colour"),
    ];
    for (body, field) in cases {
        let (status, reply) = hq.post_session(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {reply}");
        assert_eq!(error_code(&reply), ("bad_request", Some(field)), "{body} → {reply}");
    }
    for raw in ["{not json", "[1,2]", ""] {
        let response = hq
            .request(Method::POST, "/api/sessions")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{raw:?}");
        assert_eq!(error_code(&response.json().await.unwrap()).0, "bad_request");
    }
    assert!(hq.get_json("/api/sessions").await.as_array().unwrap().is_empty(), "nothing was created");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let hq = TestHq::start_with(&["--max-body-size", "4KiB"]).await;
    let big = "x".repeat(10_000);
    let response = hq
        .request(Method::POST, "/api/sessions")
        .header("content-type", "application/json")
        .body(json!({"command": [big]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&response.json().await.unwrap()).0, "too_large");
}

#[tokio::test]
async fn unknown_runner_and_session_are_404() {
    let hq = TestHq::start().await;
    let (status, body) = hq.post_session(json!({"runner_id": Uuid::now_v7(), "command": ["sh"]})).await;
    assert_eq!((status, error_code(&body).0), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = hq.post_session(json!({"runner": "nobody", "command": ["sh"]})).await;
    assert_eq!((status, error_code(&body).0), (StatusCode::NOT_FOUND, "not_found"));
    assert!(body["error"]["message"].as_str().unwrap().contains("nobody"));

    for (method, path) in [
        (Method::GET, format!("/api/sessions/{}", Uuid::now_v7())),
        (Method::DELETE, format!("/api/sessions/{}", Uuid::now_v7())),
        (Method::GET, "/api/sessions/garbage".to_owned()),
        (Method::GET, "/api/no-such-route".to_owned()),
    ] {
        let response = hq.request(method.clone(), &path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(error_code(&response.json().await.unwrap()).0, "not_found");
    }
    let error = hq.ws(&format!("/api/v1/ws/session/{}", Uuid::now_v7()), Some(ADMIN_TOKEN), None).await;
    assert!(error.expect_err("unknown session").to_string().contains("404"));
}

#[tokio::test]
async fn offline_runner_is_409_and_labels_without_match_are_409() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "sleepy").await;
    let id = runner.id;
    runner.stop().await.unwrap();
    hq.wait_for_runner("sleepy", RunnerStatus::Offline).await;
    for body in [json!({"runner_id": id, "command": ["sh"]}), json!({"runner": "sleepy", "command": ["sh"]})]
    {
        let (status, reply) = hq.post_session(body).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(error_code(&reply).0, "runner_offline");
        assert!(reply["error"]["message"].as_str().unwrap().contains("sleepy"));
    }
    let (status, reply) = hq.post_session(json!({"labels": {"gpu": "true"}, "command": ["sh"]})).await;
    assert_eq!((status, error_code(&reply).0), (StatusCode::CONFLICT, "no_matching_runner"));
}

#[tokio::test]
async fn sessions_are_listed_with_the_contract_fields() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "lister").await;
    let session = hq
        .start_session_with(
            json!({"runner": "lister", "command": ["sh", "-c", "exit 0"], "rows": 30, "cols": 90}),
        )
        .await;
    assert_eq!(session.status, SessionStatus::Starting);
    assert_eq!(session.runner_id, runner.id);
    hq.wait_for_session(session.id, SessionStatus::Exited).await;
    let list = hq.get_json("/api/sessions").await;
    let listed = &list.as_array().unwrap()[0];
    for field in [
        "id",
        "runner_id",
        "command",
        "status",
        "exit_code",
        "signal",
        "error",
        "created_by",
        "created_at",
        "ended_at",
        "output_bytes",
    ] {
        assert!(listed.get(field).is_some(), "missing {field} in {listed}");
    }
    assert_eq!(listed["exit_code"], json!(0));
    assert!(listed["created_at"].as_str().unwrap().ends_with('Z'), "RFC 3339 UTC");
}

#[tokio::test]
async fn a_program_that_cannot_start_fails_the_session_with_a_reason() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "strict").await;
    // Not on the test runner's --allow list.
    let session = hq.start_session(runner.id, &["python3", "-c", "print(1)"]).await;
    let failed = hq.wait_for_session(session.id, SessionStatus::Failed).await;
    assert!(failed.error.as_deref().unwrap_or_default().contains("does not allow 'python3'"), "{failed:?}");
    // Allowed, but no such program.
    let lenient = TestRunner::start_with(&hq, "lenient", &["--allow", "/nonexistent/tool"]).await;
    let missing = hq.start_session(lenient.id, &["/nonexistent/tool"]).await;
    let failed = hq.wait_for_session(missing.id, SessionStatus::Failed).await;
    assert!(
        failed.error.as_deref().unwrap_or_default().contains("cannot start '/nonexistent/tool'"),
        "{failed:?}"
    );
    // A program that exists, in a directory that does not: the directory is named, not the program.
    let body = json!({ "runner_id": runner.id, "command": ["sh", "-c", "true"], "cwd": "/nonexistent/dir" });
    let lost = hq.start_session_with(body).await;
    let failed = hq.wait_for_session(lost.id, SessionStatus::Failed).await;
    let error = failed.error.unwrap_or_default();
    assert!(
        error.starts_with("working directory '/nonexistent/dir'") && error.contains("No such file"),
        "{error}"
    );
}

#[tokio::test]
async fn a_session_is_named_at_the_start_renamed_later_and_keeps_its_name_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let hq = TestHq::start_in(data.path(), &[]).await;
    let runner = TestRunner::start(&hq, "box").await;
    let started = hq
        .start_session_with(
            json!({"runner_id": runner.id, "command": ["sleep", "60"], "name": "  nightly build "}),
        )
        .await;
    assert_eq!(started.name.as_deref(), Some("nightly build"), "trimmed");
    for bad in [json!(""), json!("   "), json!("x".repeat(101)), json!(7)] {
        let (status, body) =
            hq.post_session(json!({"runner_id": runner.id, "command": ["true"], "name": bad})).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, ("bad_request", Some("name"))));
    }

    let path = format!("/api/sessions/{}", started.id);
    let patch = |body: Value| hq.request(Method::PATCH, &path).json(&body).send();
    let renamed: Value = patch(json!({"name": "release"})).await.unwrap().json().await.unwrap();
    assert_eq!(renamed["name"], "release");
    assert_eq!(hq.session(started.id).await.name.as_deref(), Some("release"));
    let refused = patch(json!({"name": "  "})).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let refused = patch(json!({"title": "x"})).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let missing = hq
        .request(Method::PATCH, "/api/sessions/00000000-0000-0000-0000-000000000000")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Cleared, named again, and still so after a restart (the store keeps it).
    let cleared: Value = patch(json!({"name": null})).await.unwrap().json().await.unwrap();
    assert_eq!(cleared["name"], Value::Null);
    patch(json!({"name": "kept"})).await.unwrap();
    drop(runner);
    hq.stop().await;
    let hq = TestHq::start_in(data.path(), &[]).await;
    assert_eq!(hq.session(started.id).await.name.as_deref(), Some("kept"));
}

#[tokio::test]
async fn delete_hangs_up_a_live_session_and_removes_a_finished_one_with_its_log() {
    let data = tempfile::tempdir().unwrap();
    let hq = TestHq::start_in(data.path(), &[]).await;
    let runner = TestRunner::start(&hq, "box").await;
    let live = hq.start_session(runner.id, &["sleep", "60"]).await;
    hq.wait_for_session(live.id, SessionStatus::Running).await;
    let delete = |id: Uuid| hq.request(Method::DELETE, &format!("/api/sessions/{id}")).send();
    assert_eq!(delete(live.id).await.unwrap().status(), StatusCode::ACCEPTED);
    hq.wait_for_end(live.id).await;
    let log = data.path().join("sessions").join(format!("{}.out", live.id));
    assert!(log.exists(), "a hung-up session keeps its log");

    // Finished: DELETE removes it, its log and its timing index.
    assert_eq!(delete(live.id).await.unwrap().status(), StatusCode::NO_CONTENT);
    let gone = hq.request(Method::GET, &format!("/api/sessions/{}", live.id)).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert!(!log.exists() && !log.with_extension("timing").exists());
    assert_eq!(delete(live.id).await.unwrap().status(), StatusCode::NOT_FOUND);
    // And it stays gone after a restart.
    drop(runner);
    hq.stop().await;
    let hq = TestHq::start_in(data.path(), &[]).await;
    let sessions: Vec<Value> = hq.get_json("/api/sessions").await.as_array().cloned().unwrap_or_default();
    assert!(sessions.iter().all(|s| s["id"] != live.id.to_string()));
}

#[tokio::test]
async fn the_whole_output_downloads_raw_or_as_text_for_its_creator_and_admins() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "box").await;
    let session =
        hq.start_session(runner.id, &["sh", "-c", "printf '\\033[31mred\\033[0m\\r\\n'; seq 1 3"]).await;
    hq.wait_for_end(session.id).await;
    let path = format!("/api/sessions/{}/log", session.id);
    let raw = hq.request(Method::GET, &path).send().await.unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(raw.headers()["content-type"], "application/octet-stream");
    let disposition = raw.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert_eq!(disposition, format!("attachment; filename=\"{}.log\"", session.id));
    assert_eq!(&raw.bytes().await.unwrap()[..], b"\x1b[31mred\x1b[0m\r\r\n1\r\n2\r\n3\r\n");
    let text = hq.request(Method::GET, &format!("{path}?format=text")).send().await.unwrap();
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(text.text().await.unwrap(), "red\n1\n2\n3\n");

    let bad = hq.request(Method::GET, &format!("{path}?format=html")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let other = hq.create_token("someone-else", "user").await;
    // Another member does not see the session: 404, as for an unknown id.
    let refused = hq.http.get(hq.url(&path)).bearer_auth(other).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
}
