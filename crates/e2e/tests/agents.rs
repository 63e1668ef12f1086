//! Agent awareness against a real HQ and runner, with scripted stand-ins for agents (programs
//! that print a prompt and wait): activity from output, screen and hooks; presets; label
//! targeting; the screen and input endpoints; read-only shares and presence; webhooks.

use agentrelay_e2e::{
    ADMIN_TOKEN, HqClient, TestHq, TestRunner, Viewer, WebhookReceiver, binary, eventually,
};
use agentrelay_hq::HqConfig;
use agentrelay_protocol::viewer::{FrameErrorCode, ServerFrame};
use agentrelay_protocol::{Activity, ActivitySource, Session, SessionStatus};
use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// HQ that calls output quiet after 300 ms, so tests need not wait long.
async fn quick_hq(extra: &[&str]) -> TestHq {
    let mut args = vec!["--idle-after", "300ms"];
    args.extend_from_slice(extra);
    TestHq::start_with(&args).await
}

/// Reads the viewer until an `activity` frame says `wanted`; returns its source.
async fn wait_for_activity(viewer: &mut Viewer, wanted: Activity) -> ActivitySource {
    loop {
        if let Some(state) = viewer.activity.iter().rev().find(|s| s.activity == wanted) {
            let source = state.source;
            viewer.activity.clear();
            return source;
        }
        match viewer.next_any().await.unwrap_or_else(|e| panic!("waiting for {wanted:?}: {e}")) {
            Some(agentrelay_e2e::Frame::Output(bytes)) => viewer.output.extend_from_slice(&bytes),
            Some(agentrelay_e2e::Frame::Control(frame)) => viewer.controls.push(frame),
            Some(agentrelay_e2e::Frame::Closed) => panic!("closed while waiting for {wanted:?}"),
            None => {}
        }
    }
}

async fn send_input(hq: &HqClient, id: Uuid, body: Value) -> reqwest::Response {
    hq.request(Method::POST, &format!("/api/sessions/{id}/input")).json(&body).send().await.unwrap()
}

async fn screen_text(hq: &HqClient, id: Uuid) -> String {
    let response = hq.request(Method::GET, &format!("/api/sessions/{id}/screen")).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    if status != StatusCode::OK {
        panic!("{status} {text}: {:?}", hq.session(id).await);
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_goes_working_waiting_working_idle_and_streams_to_viewers_and_events() {
    let hq = quick_hq(&[]).await;
    let runner = TestRunner::start(&hq, "agents").await;
    // A stand-in agent: works (steady output), asks, waits; then works and goes quiet.
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo step-$i; sleep 0.05; done; \
                  printf 'Apply the change? (y/n) '; read answer; \
                  for i in 1 2 3; do echo applying-$answer; sleep 0.05; done; echo done; exec sleep 60";
    let session = hq.start_session(runner.id, &["sh", "-c", script]).await;
    let mut viewer = hq.attach(session.id, None).await;

    assert_eq!(wait_for_activity(&mut viewer, Activity::Working).await, ActivitySource::Output);
    assert_eq!(wait_for_activity(&mut viewer, Activity::WaitingForInput).await, ActivitySource::Screen);
    let seen: Session = hq.session(session.id).await;
    assert_eq!(seen.activity, Some(Activity::WaitingForInput));
    assert_eq!(seen.activity_source, Some(ActivitySource::Screen));
    assert!(seen.activity_since.is_some());

    let answered = send_input(&hq, session.id, json!({ "text": "y", "enter": true })).await;
    assert_eq!(answered.status(), StatusCode::NO_CONTENT);
    assert_eq!(wait_for_activity(&mut viewer, Activity::Working).await, ActivitySource::Output);
    // The answered prompt is still on screen, but not on its last line: idle, not waiting.
    assert_eq!(wait_for_activity(&mut viewer, Activity::Idle).await, ActivitySource::Output);
    assert!(screen_text(&hq, session.id).await.contains("applying-y"));

    // Ended sessions have no activity.
    hq.request(Method::DELETE, &format!("/api/sessions/{}", session.id)).send().await.unwrap();
    let ended = hq.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!(ended.activity, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_report_wins_over_the_screen_until_someone_types() {
    let hq = quick_hq(&[]).await;
    let runner = TestRunner::start(&hq, "hooks").await;
    let report = binary("agentrelay-runner");
    let script = format!(
        "echo busy; {report} report waiting && echo reported; stty -echo; read line; echo got-$line; exec sleep 60",
        report = report.display()
    );
    let session = hq.start_session(runner.id, &["sh", "-c", &script]).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("reported").await.unwrap();
    assert_eq!(wait_for_activity(&mut viewer, Activity::WaitingForInput).await, ActivitySource::Hook);
    // Output after the report, and a quiet screen without any prompt: the report still holds.
    let held = eventually("the quiet period to pass", || async {
        let session = hq.session(session.id).await;
        (session
            .activity_since
            .is_some_and(|since| chrono::Utc::now() - since > chrono::Duration::milliseconds(900)))
        .then_some(session)
    })
    .await;
    assert_eq!(held.activity, Some(Activity::WaitingForInput));
    assert_eq!(held.activity_source, Some(ActivitySource::Hook));

    // Typing releases it: the output that follows is work again.
    viewer.type_text("ok\r").await;
    viewer.read_until("got-ok").await.unwrap();
    assert_eq!(wait_for_activity(&mut viewer, Activity::Working).await, ActivitySource::Output);
}

#[tokio::test(flavor = "multi_thread")]
async fn report_outside_a_session_says_so() {
    let output = tokio::process::Command::new(binary("agentrelay-runner"))
        .args(["report", "waiting"])
        .env_remove("AGENTRELAY_SESSION_ID")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not inside an AgentRelay session"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn presets_from_a_file_start_with_their_directory_and_environment() {
    let hq = quick_hq(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let presets = dir.path().join("presets.toml");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(
        &presets,
        format!(
            r#"
[[preset]]
name = "fake-agent"
description = "A scripted stand-in"
command = ["sh", "-c", "echo model=$MODEL; pwd; printf 'Approve? '; read x; echo got-$x"]
cwd = "{}"
env = {{ MODEL = "large" }}
prompt_patterns = ["^Approve\\?"]
"#,
            work.display()
        ),
    )
    .unwrap();
    let runner = TestRunner::start_with(&hq, "presets", &["--presets", presets.to_str().unwrap()]).await;

    let listed = hq.runners().await.into_iter().find(|r| r.id == runner.id).unwrap();
    let preset = listed.presets.iter().find(|p| p.name == "fake-agent").expect("advertised");
    assert_eq!(preset.description, "A scripted stand-in");
    let raw = hq.get_json("/api/runners").await.to_string();
    assert!(!raw.contains("large"), "a preset's environment stays on the runner");

    let session = hq.start_session_with(json!({ "runner": "presets", "preset": "fake-agent" })).await;
    assert_eq!(session.preset.as_deref(), Some("fake-agent"));
    assert_eq!(session.command, preset.command);
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("Approve?").await.unwrap();
    let text = viewer.text();
    assert!(text.contains("model=large"), "{text}");
    assert!(text.contains(work.canonicalize().unwrap().to_str().unwrap()), "{text}");
    // The preset's own pattern (not a generic one) sees the prompt.
    assert_eq!(wait_for_activity(&mut viewer, Activity::WaitingForInput).await, ActivitySource::Screen);

    let (status, body) = hq.post_session(json!({ "runner": "presets", "preset": "nope" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "preset");
    assert!(body["error"]["message"].as_str().unwrap().contains("fake-agent"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_pick_the_matching_runner_with_the_fewest_sessions() {
    let hq = quick_hq(&[]).await;
    let busy = TestRunner::start_with(&hq, "gpu-busy", &["--label", "gpu=true"]).await;
    let free = TestRunner::start_with(&hq, "gpu-free", &["--label", "gpu=true"]).await;
    let _cpu = TestRunner::start_with(&hq, "cpu", &["--label", "gpu=false"]).await;
    for _ in 0..2 {
        hq.start_session(busy.id, &["sleep", "60"]).await;
    }
    let picked =
        hq.start_session_with(json!({ "labels": { "gpu": "true" }, "command": ["sleep", "60"] })).await;
    assert_eq!(picked.runner_id, free.id);
    let (status, body) = hq.post_session(json!({ "labels": { "gpu": "h100" }, "command": ["true"] })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "no_matching_runner");
    assert!(body["error"]["message"].as_str().unwrap().contains("gpu=h100"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn screen_and_input_endpoints_drive_a_session() {
    let hq = quick_hq(&[]).await;
    let runner = TestRunner::start(&hq, "drive").await;
    let script = "printf '\\033[2J\\033[Htop-left\\n'; stty -echo; read x; echo \"got $x\"; exec sleep 60";
    let session = hq.start_session(runner.id, &["sh", "-c", script]).await;
    let first = eventually("the screen to show the output", || async {
        let text = screen_text(&hq, session.id).await;
        text.contains("top-left").then_some(text)
    })
    .await;
    assert!(first.starts_with("top-left\n"), "{first:?}");
    let json: Value = hq.get_json(&format!("/api/sessions/{}/screen?format=json", session.id)).await;
    assert_eq!((json["rows"].as_u64(), json["cols"].as_u64()), (Some(24), Some(80)));
    assert_eq!(json["lines"][0], "top-left");
    assert_eq!(json["cursor"], json!({ "row": 1, "col": 0 }));

    assert_eq!(
        send_input(&hq, session.id, json!({ "text": "hello", "enter": true })).await.status(),
        StatusCode::NO_CONTENT
    );
    eventually("the typed line to be answered", || async {
        screen_text(&hq, session.id).await.contains("got hello").then_some(())
    })
    .await;

    // Bad requests say what is wrong.
    let empty = send_input(&hq, session.id, json!({})).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    let wrong_type = send_input(&hq, session.id, json!({ "text": 5 })).await;
    let body: Value = wrong_type.json().await.unwrap();
    assert_eq!(body["error"]["field"], "text");
    let unknown = send_input(&hq, Uuid::now_v7(), json!({ "text": "x" })).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let format = hq
        .request(Method::GET, &format!("/api/sessions/{}/screen?format=xml", session.id))
        .send()
        .await
        .unwrap();
    assert_eq!(format.status(), StatusCode::BAD_REQUEST);

    hq.request(Method::DELETE, &format!("/api/sessions/{}", session.id)).send().await.unwrap();
    hq.wait_for_session(session.id, SessionStatus::Exited).await;
    let late = send_input(&hq, session.id, json!({ "text": "x" })).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert_eq!(late.json::<Value>().await.unwrap()["error"]["code"], "session_ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_share_watches_one_session_read_only_and_nothing_else() {
    let hq = quick_hq(&[]).await;
    let runner = TestRunner::start(&hq, "share").await;
    let session = hq.start_session(runner.id, &["sh", "-c", "echo shared-output; exec cat"]).await;
    let other = hq.start_session(runner.id, &["sleep", "60"]).await;
    let response = hq
        .request(Method::POST, &format!("/api/sessions/{}/shares", session.id))
        .json(&json!({ "expires_in": "1h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let share: Value = response.json().await.unwrap();
    let token = share["token"].as_str().unwrap();
    assert!(token.starts_with("arl_shr_"));
    let url = share["url"].as_str().unwrap();
    assert_eq!(url, format!("{}/share#{token}", hq.url("")), "the token rides in the fragment only");
    assert!(share["expires_at"].is_string());

    // Only the session's WebSocket: every other route answers 403.
    for path in ["/api/sessions", "/api/runners", &format!("/api/sessions/{}", session.id)] {
        let refused = hq.http.get(hq.url(path)).bearer_auth(token).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let input = hq
        .http
        .post(hq.url(&format!("/api/sessions/{}/input", session.id)))
        .bearer_auth(token)
        .json(&json!({ "text": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(input.status(), StatusCode::FORBIDDEN);
    let elsewhere = hq.ws(&format!("/api/v1/ws/session/{}", other.id), Some(token), None).await;
    assert!(elsewhere.is_err(), "a share opens no other session");

    // Signing in with it says what it is.
    let login = hq.http.post(hq.url("/api/login")).json(&json!({ "token": token })).send().await.unwrap();
    let who: Value = login.json().await.unwrap();
    assert_eq!(who["scope"], "share");
    assert_eq!(who["session_id"], session.id.to_string());

    // The owner sees the guest arrive; the guest's keystrokes are refused.
    let mut owner = hq.attach(session.id, None).await;
    owner.read_until("shared-output").await.unwrap();
    let socket = hq.ws(&format!("/api/v1/ws/session/{}", session.id), Some(token), None).await.unwrap();
    let mut guest = Viewer::new(socket).await;
    guest.read_until("shared-output").await.unwrap();
    while !owner
        .presence
        .iter()
        .any(|p| p.viewers.iter().any(|v| v.read_only && v.name.starts_with("share of")))
    {
        match owner.next_any().await.unwrap() {
            Some(agentrelay_e2e::Frame::Output(bytes)) => owner.output.extend_from_slice(&bytes),
            Some(agentrelay_e2e::Frame::Control(frame)) => owner.controls.push(frame),
            Some(agentrelay_e2e::Frame::Closed) => panic!(
                "closed before the guest showed up: {:?} {:?} {:?}",
                owner.close_code, owner.controls, owner.presence
            ),
            None => {}
        }
    }
    guest.type_text("guest-typed\r").await;
    match guest.next_control().await.unwrap() {
        ServerFrame::Error(error) => assert_eq!(error.code, FrameErrorCode::ReadOnly),
        other => panic!("expected read_only, got {other:?}"),
    }
    owner.type_text("owner-typed\r").await;
    owner.read_until("owner-typed").await.unwrap();
    assert!(!owner.text().contains("guest-typed"), "{}", owner.text());

    // Revoking the share cuts the guest off.
    let id = share["id"].as_str().unwrap();
    hq.request(Method::DELETE, &format!("/api/tokens/{id}")).send().await.unwrap();
    loop {
        match guest.next_frame().await.unwrap() {
            agentrelay_e2e::Frame::Closed => break,
            _ => continue,
        }
    }
    assert_eq!(guest.close_code, Some(1008));
}

#[tokio::test(flavor = "multi_thread")]
async fn recordings_are_for_admins_and_the_creator() {
    let hq = quick_hq(&[]).await;
    let runner = TestRunner::start(&hq, "rec").await;
    let secrets = [hq.create_token("alice", "user").await, hq.create_token("bob", "user").await];
    let response = hq
        .http
        .post(hq.url("/api/sessions"))
        .bearer_auth(&secrets[0])
        .json(&json!({ "runner_id": runner.id, "command": ["sh", "-c", "echo alice-secret"] }))
        .send()
        .await
        .unwrap();
    let session: Session = response.json().await.unwrap();
    hq.wait_for_session(session.id, SessionStatus::Exited).await;
    let path = hq.url(&format!("/api/sessions/{}/recording", session.id));
    let by = |token: &str| hq.http.get(&path).bearer_auth(token.to_owned()).send();
    assert_eq!(by(&secrets[0]).await.unwrap().status(), StatusCode::OK);
    // Bob does not see alice's session at all: 404, as for an unknown id.
    assert_eq!(by(&secrets[1]).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(by(ADMIN_TOKEN).await.unwrap().status(), StatusCode::OK);
    // Once alice grants him a view, he may read it.
    let grant = hq
        .http
        .post(hq.url(&format!("/api/sessions/{}/grants", session.id)))
        .bearer_auth(&secrets[0])
        .json(&json!({ "user": "bob@example.test", "access": "view" }))
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), StatusCode::CREATED);
    assert_eq!(by(&secrets[1]).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_hears_when_a_session_waits_for_input_and_when_it_ends() {
    let mut hook = WebhookReceiver::start().await;
    let hq = quick_hq(&["--webhook-url", &hook.url]).await;
    let runner = TestRunner::start(&hq, "hooked").await;
    let session =
        hq.start_session(runner.id, &["sh", "-c", "echo hi; printf 'Proceed? (y/n) '; read a"]).await;

    let waiting = loop {
        let delivery = hook.next().await;
        if delivery["session"]["activity"] == "waiting_for_input" {
            break delivery;
        }
    };
    assert_eq!(waiting["event"], "session.activity");
    assert_eq!(waiting["session"]["id"], session.id.to_string());
    let text = waiting["text"].as_str().unwrap();
    assert!(text.contains("waiting for input") && text.contains("hooked"), "{text}");

    send_input(&hq, session.id, json!({ "text": "y", "enter": true })).await;
    let ended = hook.next_event("session.ended").await;
    assert!(ended["text"].as_str().unwrap().contains("exited with code 0"), "{ended}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_events_pick_which_changes_are_posted() {
    let mut hook = WebhookReceiver::start().await;
    let hq = quick_hq(&["--webhook-url", &hook.url, "--webhook-events", "waiting_for_input,ended"]).await;
    let runner = TestRunner::start(&hq, "quiet-hook").await;
    let session =
        hq.start_session(runner.id, &["sh", "-c", "echo busy; printf 'Proceed? (y/n) '; read a"]).await;
    hq.wait_for_session(session.id, SessionStatus::Running).await;
    let waiting = hook.next().await;
    assert_eq!(waiting["session"]["activity"], "waiting_for_input", "{waiting}");

    send_input(&hq, session.id, json!({ "text": "y", "enter": true })).await;
    // Deliveries keep their order, so anything posted between the two is here too.
    let rest = hook.until("session.ended").await;
    assert_eq!(rest.len(), 1, "only the end after the prompt: {rest:?}");

    let refused = HqConfig::try_parse_from(["agentrelay-hq", "--webhook-events", "working,typing"]);
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("typing") && message.contains("waiting_for_input"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn whoever_shares_can_unshare() {
    let hq = quick_hq(&[]).await;
    let runner = TestRunner::start(&hq, "unshare").await;
    let user = hq.create_token("carol", "user").await;
    let session: Value = hq
        .http
        .post(hq.url("/api/sessions"))
        .bearer_auth(&user)
        .json(&json!({ "runner_id": runner.id, "command": ["sleep", "60"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shares = hq.url(&format!("/api/sessions/{}/shares", session["id"].as_str().unwrap()));
    let share: Value = hq.http.post(&shares).bearer_auth(&user).send().await.unwrap().json().await.unwrap();
    let token = share["token"].as_str().unwrap();
    let login = |token: String| hq.http.post(hq.url("/api/login")).json(&json!({ "token": token })).send();
    assert_eq!(login(token.to_owned()).await.unwrap().status(), StatusCode::OK);

    let unknown =
        hq.http.delete(format!("{shares}/{}", Uuid::now_v7())).bearer_auth(&user).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let id = share["id"].as_str().unwrap();
    let revoked = hq.http.delete(format!("{shares}/{id}")).bearer_auth(&user).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(login(token.to_owned()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_end_is_posted_once_whoever_opens_it_later_and_with_its_dashboard_link() {
    let mut hook = WebhookReceiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let url = hook.url.clone();
    let flags = ["--idle-after", "300ms", "--webhook-url", &url, "--public-url", "https://hq.example.com/"];
    let hq = TestHq::start_in(data.path(), &flags).await;
    let runner = TestRunner::start(&hq, "once").await;
    let first = hq.start_session(runner.id, &["sh", "-c", "echo first"]).await;
    let ended = hook.next_event("session.ended").await;
    assert_eq!(ended["session"]["id"], first.id.to_string());
    assert_eq!(ended["url"], format!("https://hq.example.com/sessions/{}", first.id));

    // Opening the finished session (a replay, twice), and an HQ restart, are not news.
    for _ in 0..2 {
        hq.attach(first.id, None).await.read_to_exit().await.unwrap();
    }
    drop(runner);
    hq.stop().await;
    let hq = TestHq::start_in(data.path(), &flags).await;
    hq.attach(first.id, None).await.read_to_exit().await.unwrap();
    let runner = TestRunner::start(&hq, "once").await;
    let second = hq.start_session(runner.id, &["sh", "-c", "exit 5"]).await;
    // Deliveries keep their order: whatever was posted since is here, up to the second's end.
    let since = hook.until("session.ended").await;
    let ends: Vec<&Value> = since.iter().filter(|d| d["event"] == "session.ended").collect();
    assert_eq!(ends.len(), 1, "{since:?}");
    assert_eq!(ends[0]["session"]["id"], second.id.to_string());
    assert!(since.iter().all(|d| d["session"]["id"] != first.id.to_string()), "{since:?}");
}
