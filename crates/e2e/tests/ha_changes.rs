//! Changes reach every replica of a cluster (issue 18): a session started through one shows on
//! another's event stream within a second; a user disabled or a grant removed on one closes the
//! matching connections on another within 2 s; sign-in attempts count cluster-wide; webhooks post
//! each change once and retention prunes on one replica only, whichever leads.

use std::time::{Duration, Instant};

use agentrelay_e2e::deps::{TestDatabase, TestNats};
use agentrelay_e2e::{
    ADMIN_TOKEN, Frame, HqClient, HqProcess, TestRunner, Viewer, WebhookReceiver, call, eventually,
    read_events, start_as,
};
use agentrelay_protocol::SessionStatus;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Two replicas of one cluster, each started with `extra` as well (the first leads: it takes the
/// leader's lock as it starts, before the second exists).
struct Pair {
    a: HqProcess,
    b: HqProcess,
    _dirs: [tempfile::TempDir; 2],
    _nats: TestNats,
    _database: TestDatabase,
}

impl Pair {
    async fn start(extra_a: &[&str], extra_b: &[&str]) -> Self {
        let database = TestDatabase::create();
        let nats = TestNats::start();
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let args = |name: &'static str, extra: &[&str]| -> Vec<String> {
            let mut args = vec![
                "--database-url".to_owned(),
                database.url.clone(),
                "--nats-url".to_owned(),
                nats.url.clone(),
                "--nats-prefix".to_owned(),
                nats.prefix.clone(),
                "--replica-name".to_owned(),
                name.to_owned(),
            ];
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            args
        };
        let (args_a, args_b) = (args("a", extra_a), args("b", extra_b));
        let a =
            HqProcess::spawn(dirs[0].path(), None, &args_a.iter().map(String::as_str).collect::<Vec<_>>())
                .await;
        let b =
            HqProcess::spawn(dirs[1].path(), None, &args_b.iter().map(String::as_str).collect::<Vec<_>>())
                .await;
        Self { a, b, _dirs: dirs, _nats: nats, _database: database }
    }
}

/// A viewer of `session` on `hq` with `token`, once `hq` knows the token and the session.
async fn viewer_on(hq: &HqClient, token: &str, session: uuid::Uuid) -> Viewer {
    let socket = eventually("the replica to know the token and the session", || async {
        hq.ws(&format!("/api/v1/ws/session/{session}"), Some(token), None).await.ok()
    })
    .await;
    Viewer::new(socket).await
}

/// Reads frames until the viewer is closed; its close code.
async fn closed_within(viewer: &mut Viewer, limit: Duration, what: &str) -> Option<u16> {
    tokio::time::timeout(limit, async {
        while !matches!(viewer.next_frame().await, Ok(Frame::Closed) | Err(_)) {}
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: the viewer is still open after {limit:?}"));
    viewer.close_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_started_through_one_replica_shows_on_anothers_event_stream_within_a_second() {
    let pair = Pair::start(&[], &[]).await;
    let runner = TestRunner::start(&pair.a, "events-runner").await;
    pair.b.wait_for_runner("events-runner", agentrelay_protocol::RunnerStatus::Online).await;
    let mut events =
        pair.b.http.get(pair.b.url("/api/events")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    // The stream is open once its first event (the runner, as it stands) has arrived.
    read_events(&mut events, |seen| seen.iter().any(|(name, _)| name == "runner")).await;

    let started = Instant::now();
    let session = pair.a.start_session(runner.id, &["sh", "-c", "echo hi; sleep 60"]).await;
    let id = session.id.to_string();
    read_events(&mut events, |seen| seen.iter().any(|(name, data)| name == "session" && data["id"] == id))
        .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "B's event stream showed the session after {took:?}");
    // And its changes follow: it runs, as B's stream says.
    read_events(&mut events, |seen| {
        seen.iter().any(|(name, data)| name == "session" && data["id"] == id && data["status"] == "running")
    })
    .await;
    drop(runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_disabled_on_one_replica_is_cut_off_on_another_within_two_seconds() {
    let pair = Pair::start(&[], &[]).await;
    let (ann, ann_token) = pair.a.person("ann", "member").await;
    let runner = TestRunner::start(&pair.a, "shared").await;
    let session = start_as(&pair.a, &ann_token, runner.id, &["sh", "-c", "echo ready; exec cat"]).await;
    // Her viewer and her event stream are on B.
    let mut viewer = viewer_on(&pair.b, &ann_token, session.id).await;
    viewer.read_until("ready").await.unwrap();
    let mut events = pair.b.http.get(pair.b.url("/api/events")).bearer_auth(&ann_token).send().await.unwrap();
    assert_eq!(events.status(), StatusCode::OK);

    let started = Instant::now();
    let path = format!("/api/users/{}", ann.id);
    let (status, _) = call(&pair.a, ADMIN_TOKEN, Method::PATCH, &path, Some(json!({"disabled": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let code = closed_within(&mut viewer, Duration::from_secs(2), "disabled on A").await;
    assert_eq!(code, Some(1008));
    let left = Duration::from_secs(2).saturating_sub(started.elapsed());
    tokio::time::timeout(left, async { while let Ok(Some(_)) = events.chunk().await {} })
        .await
        .expect("her event stream on B ends within 2 s");
    assert!(started.elapsed() < Duration::from_secs(2), "cut off in {:?}", started.elapsed());
    assert_eq!(
        call(&pair.b, &ann_token, Method::GET, "/api/runners", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    drop(runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_removed_on_one_replica_closes_the_viewer_on_another_within_two_seconds() {
    let pair = Pair::start(&[], &[]).await;
    let (_, ann_token) = pair.a.person("ann", "member").await;
    let (bob, bob_token) = pair.a.person("bob", "member").await;
    let runner = TestRunner::start(&pair.a, "shared").await;
    let session = start_as(&pair.a, &ann_token, runner.id, &["sh", "-c", "echo ready; exec cat"]).await;
    let grants = format!("/api/sessions/{}/grants", session.id);
    let (status, grant) =
        call(&pair.a, &ann_token, Method::POST, &grants, Some(json!({"user": bob.id, "access": "view"})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    // B hears of the grant: bob watches there.
    let mut viewer = viewer_on(&pair.b, &bob_token, session.id).await;
    viewer.read_until("ready").await.unwrap();

    let started = Instant::now();
    let (status, _) = call(&pair.a, &ann_token, Method::DELETE, &format!("{grants}/{}", bob.id), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let code = closed_within(&mut viewer, Duration::from_secs(2), "grant removed on A").await;
    assert_eq!(code, Some(1008));
    assert!(started.elapsed() < Duration::from_secs(2), "closed in {:?}", started.elapsed());
    let (status, _) =
        call(&pair.b, &bob_token, Method::GET, &format!("/api/sessions/{}", session.id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "B no longer shows bob the session");
    drop(runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_count_across_the_cluster() {
    let pair = Pair::start(&["--login-attempts", "3"], &["--login-attempts", "3"]).await;
    let login =
        |hq: &HqClient| hq.http.post(hq.url("/api/login")).json(&json!({"token": "not-a-token"})).send();
    for _ in 0..3 {
        assert_eq!(login(&pair.a).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    // B has seen none of them from this address itself, and still refuses a fourth.
    let fourth = login(&pair.b).await.unwrap();
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(login(&pair.a).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_hears_each_change_once_whatever_the_number_of_replicas() {
    let mut hook = WebhookReceiver::start().await;
    let flags = ["--webhook-url", hook.url.as_str(), "--webhook-events", "ended"];
    let pair = Pair::start(&flags, &flags).await;
    let runner = TestRunner::start(&pair.a, "hooked").await;
    pair.b.wait_for_runner("hooked", agentrelay_protocol::RunnerStatus::Online).await;
    // Three sessions end one after another, started through each replica in turn. Each replica
    // posts in order, and a session takes a round trip to the runner to start and end: a second
    // post of the first two would arrive while the later ones run.
    let mut ended = Vec::new();
    for (i, hq) in [&pair.a, &pair.b, &pair.a].into_iter().enumerate() {
        let session = hq.start_session(runner.id, &["sh", "-c", &format!("exit {}", i + 3)]).await;
        let delivery = loop {
            let delivery = hook.next_event("session.ended").await;
            ended.push(delivery["session"]["id"].as_str().unwrap().to_owned());
            if delivery["session"]["id"] == session.id.to_string() {
                break delivery;
            }
        };
        assert_eq!(delivery["session"]["exit_code"], i + 3);
    }
    let mut counts = std::collections::HashMap::new();
    for id in &ended {
        *counts.entry(id).or_insert(0) += 1;
    }
    assert!(counts.values().all(|n| *n == 1), "an end was posted twice: {ended:?}");
    drop(runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_on_the_leader_only_and_moves_with_the_lead() {
    // A leads and keeps finished sessions an hour; B would prune them after a second. While A
    // leads, B prunes nothing; once A is gone, B leads and prunes.
    let pair = Pair::start(&["--retention", "1h"], &["--retention", "1s"]).await;
    let runner = TestRunner::start(&pair.a, "kept").await;
    let old = pair.a.start_session(runner.id, &["sh", "-c", "echo old"]).await;
    let ended = pair.b.wait_for_session(old.id, SessionStatus::Exited).await;
    assert!(ended.ended_at.is_some());
    // A session that runs 2 s: B's pruning pass has run (on its 1 s timer, and on this one's
    // end) with the first one well past its second.
    let later = pair.b.start_session(runner.id, &["sh", "-c", "sleep 2"]).await;
    pair.b.wait_for_session(later.id, SessionStatus::Exited).await;
    let status = |hq: &HqClient| {
        let request = hq.request(Method::GET, &format!("/api/sessions/{}", old.id));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(&pair.b).await, StatusCode::OK, "B pruned while A leads");
    assert_eq!(status(&pair.a).await, StatusCode::OK);

    let Pair { a, b, _dirs, _nats, _database } = pair;
    a.kill().await;
    eventually("B to lead and prune the finished sessions", || async {
        (status(&b).await == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    drop(runner);
}
