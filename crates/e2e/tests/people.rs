//! Users, roles and ownership: personal and shared runners, sessions that belong to whoever
//! started them, grants, admins kept off personal runners, disabled users cut off, and 404 for
//! what a caller may not see against 403 for what it sees but may not do.

use std::time::{Duration, Instant};

use agentrelay_e2e::*;
use agentrelay_protocol::viewer::{FrameErrorCode, ServerFrame};
use agentrelay_protocol::{Runner, SessionStatus, User};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A runner token the holder of `token` makes for themself.
async fn own_runner_token(hq: &HqClient, token: &str, name: &str) -> String {
    let (status, created) = hq.token_with(token, json!({ "name": name, "scope": "runner" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["shared"], false);
    created["token"].as_str().unwrap().to_owned()
}

async fn runners_of(hq: &HqClient, token: &str) -> Vec<String> {
    let (_, list) = call(hq, token, Method::GET, "/api/runners", None).await;
    let runners: Vec<Runner> = serde_json::from_value(list).unwrap();
    runners.into_iter().map(|r| r.name).collect()
}

#[tokio::test]
async fn a_personal_runner_is_its_owners_alone_and_a_shared_one_everyones() {
    let hq = TestHq::start().await;
    let (ann, ann_token) = hq.person("ann", "member").await;
    let (_, bob_token) = hq.person("bob", "member").await;
    let laptop_token = own_runner_token(&hq, &ann_token, "ann's laptop").await;
    let laptop =
        TestRunner::start_with(&hq, "ann-laptop", &["--token", &laptop_token, "--label", "os=mac"]).await;
    let shared = TestRunner::start_with(&hq, "shared-box", &["--label", "os=mac"]).await;

    // Listed: ann sees both, bob only the shared one, the admin both, with owner and no owner.
    assert_eq!(runners_of(&hq, &ann_token).await, ["ann-laptop", "shared-box"]);
    assert_eq!(runners_of(&hq, &bob_token).await, ["shared-box"]);
    let all = hq.runners().await;
    let personal = all.iter().find(|r| r.name == "ann-laptop").unwrap();
    assert_eq!(personal.owner.as_ref().map(|o| o.id), Some(ann.id));
    assert!(all.iter().find(|r| r.name == "shared-box").unwrap().owner.is_none());

    // Bob cannot start on it by id or name (404, as for an unknown runner), and labels never
    // pick it for him.
    for target in [json!({"runner_id": laptop.id}), json!({"runner": "ann-laptop"})] {
        let mut body = target.clone();
        body["command"] = json!(["true"]);
        let (status, _) = call(&hq, &bob_token, Method::POST, "/api/sessions", Some(body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{target}");
    }
    for _ in 0..4 {
        let body = json!({"labels": {"os": "mac"}, "command": ["sleep", "30"]});
        let (status, session) = call(&hq, &bob_token, Method::POST, "/api/sessions", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(session["runner_id"], shared.id.to_string(), "labels picked ann's laptop for bob");
    }
    // The admin sees it but may not start on it (403); ann may.
    let body = json!({"runner_id": laptop.id, "command": ["true"]});
    assert_eq!(hq.post_session(body.clone()).await.0, StatusCode::FORBIDDEN);
    let mine = start_as(&hq, &ann_token, laptop.id, &["sh", "-c", "echo on-my-laptop"]).await;
    assert_eq!(mine.owner.as_ref().map(|o| o.name.as_str()), Some("ann"));

    // A member's runner token cannot take over the shared runner's id, nor open its sessions' data.
    let bob_runner = own_runner_token(&hq, &bob_token, "bob's").await;
    let hijack = hq.ws(&format!("/api/v1/ws/runner/session/{}", mine.id), Some(&bob_runner), None).await;
    assert!(
        hijack.is_err_and(|e| e.to_string().contains("403")),
        "another's runner token opens no session data"
    );
}

#[tokio::test]
async fn sessions_are_their_owners_admins_see_them_but_never_attach_on_a_personal_runner() {
    let hq = TestHq::start().await;
    let (_, ann_token) = hq.person("ann", "member").await;
    let (_, bob_token) = hq.person("bob", "member").await;
    let (_, boss_token) = hq.person("boss", "admin").await;
    let laptop_token = own_runner_token(&hq, &ann_token, "laptop").await;
    let laptop = TestRunner::start_with(&hq, "laptop", &["--token", &laptop_token]).await;
    let shared = TestRunner::start(&hq, "shared").await;
    let on_laptop =
        start_as(&hq, &ann_token, laptop.id, &["sh", "-c", "echo secret-on-laptop; exec cat"]).await;
    let on_shared = start_as(&hq, &ann_token, shared.id, &["sh", "-c", "echo on-shared; exec cat"]).await;
    hq.wait_for_session(on_laptop.id, SessionStatus::Running).await;

    // Bob sees neither: every route answers 404 exactly as for an unknown id.
    let unknown = uuid::Uuid::now_v7();
    for id in [on_laptop.id, on_shared.id] {
        for (method, path, body) in [
            (Method::GET, format!("/api/sessions/{id}"), None),
            (Method::GET, format!("/api/sessions/{id}/screen"), None),
            (Method::POST, format!("/api/sessions/{id}/input"), Some(json!({"text": "x"}))),
            (Method::GET, format!("/api/sessions/{id}/log"), None),
            (Method::DELETE, format!("/api/sessions/{id}"), None),
        ] {
            let (status, error) = call(&hq, &bob_token, method.clone(), &path, body.clone()).await;
            let unknown_path = path.replace(&id.to_string(), &unknown.to_string());
            let (unknown_status, unknown_error) = call(&hq, &bob_token, method, &unknown_path, body).await;
            assert_eq!((status, unknown_status), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{path}");
            assert_eq!(
                error["error"]["message"].as_str().map(|m| m.replace(&id.to_string(), "ID")),
                unknown_error["error"]["message"].as_str().map(|m| m.replace(&unknown.to_string(), "ID")),
                "{path}: the same answer as an unknown id"
            );
        }
        let socket = hq.ws(&format!("/api/v1/ws/session/{id}"), Some(&bob_token), None).await;
        assert!(socket.is_err_and(|e| e.to_string().contains("404")));
    }
    let (_, listed) = call(&hq, &bob_token, Method::GET, "/api/sessions", None).await;
    assert_eq!(listed, json!([]), "bob lists none of ann's sessions");

    // Admins (the built-in one and a named one) see both, and may use the one on the shared
    // runner, but not the one on ann's laptop: no attach, screen, input, log or recording (403).
    for admin in [ADMIN_TOKEN, boss_token.as_str()] {
        let (_, listed) = call(&hq, admin, Method::GET, "/api/sessions", None).await;
        assert_eq!(listed.as_array().unwrap().len(), 2);
        let id = on_laptop.id;
        for (method, path, body) in [
            (Method::GET, format!("/api/sessions/{id}/screen"), None),
            (Method::POST, format!("/api/sessions/{id}/input"), Some(json!({"text": "x"}))),
            (Method::GET, format!("/api/sessions/{id}/log"), None),
            (Method::GET, format!("/api/sessions/{id}/recording"), None),
            (Method::POST, format!("/api/sessions/{id}/shares"), None),
            (
                Method::POST,
                format!("/api/sessions/{id}/grants"),
                Some(json!({"user": "bob@example.test", "access": "view"})),
            ),
        ] {
            let (status, _) = call(&hq, admin, method, &path, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        }
        let socket = hq.ws(&format!("/api/v1/ws/session/{id}"), Some(admin), None).await;
        assert!(
            socket.is_err_and(|e| e.to_string().contains("403")),
            "an admin attached to a personal runner"
        );
        assert_eq!(
            call(&hq, admin, Method::GET, &format!("/api/sessions/{id}"), None).await.0,
            StatusCode::OK
        );
        let socket = hq.ws(&format!("/api/v1/ws/session/{}", on_shared.id), Some(admin), None).await.unwrap();
        Viewer::new(socket).await.read_until("on-shared").await.unwrap();
    }
    // But an admin may end it.
    let (status, _) =
        call(&hq, &boss_token, Method::DELETE, &format!("/api/sessions/{}", on_laptop.id), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    hq.wait_for_end(on_laptop.id).await;
}

#[tokio::test]
async fn grants_let_a_teammate_view_or_drive_and_revoking_one_closes_their_viewers_at_once() {
    let hq = TestHq::start().await;
    let (ann, ann_token) = hq.person("ann", "member").await;
    let (bob, bob_token) = hq.person("bob", "member").await;
    let laptop_token = own_runner_token(&hq, &ann_token, "laptop").await;
    let laptop = TestRunner::start_with(&hq, "laptop", &["--token", &laptop_token]).await;
    let session = start_as(&hq, &ann_token, laptop.id, &["sh", "-c", "echo ready; exec cat"]).await;
    let grants = format!("/api/sessions/{}/grants", session.id);

    // Bob's events stream shows the session once it is granted, and drops it when revoked.
    let mut events = hq.http.get(hq.url("/api/events")).bearer_auth(&bob_token).send().await.unwrap();
    // Only the owner grants (bob cannot grant himself: he does not even see it).
    let (status, _) =
        call(&hq, &bob_token, Method::POST, &grants, Some(json!({"user": bob.id, "access": "drive"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, grant) = call(
        &hq,
        &ann_token,
        Method::POST,
        &grants,
        Some(json!({"user": "bob@example.test", "access": "view"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    assert_eq!(
        (grant["user"]["id"].as_str(), grant["granted_by"]["id"].as_str()),
        (Some(bob.id.to_string().as_str()), Some(ann.id.to_string().as_str()))
    );
    let shown = read_events(&mut events, |seen| {
        seen.iter().any(|(name, data)| name == "session" && data["id"] == session.id.to_string())
    })
    .await;
    assert!(!shown.iter().any(|(name, data)| name == "session" && data["id"] != session.id.to_string()));

    // View: he watches, his keystrokes are refused with read_only, and he may not use /input (403).
    let socket = hq.ws(&format!("/api/v1/ws/session/{}", session.id), Some(&bob_token), None).await.unwrap();
    let mut watcher = Viewer::new(socket).await;
    watcher.read_until("ready").await.unwrap();
    watcher.type_text("from-bob\r").await;
    match watcher.next_control().await.unwrap() {
        ServerFrame::Error(error) => assert_eq!(error.code, FrameErrorCode::ReadOnly),
        other => panic!("expected read_only, got {other:?}"),
    }
    let input = format!("/api/sessions/{}/input", session.id);
    assert_eq!(
        call(&hq, &bob_token, Method::POST, &input, Some(json!({"text": "x"}))).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, listed) = call(&hq, &bob_token, Method::GET, &grants, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Drive: a changed grant closes the old viewer; the new one types.
    let (status, _) =
        call(&hq, &ann_token, Method::POST, &grants, Some(json!({"user": bob.id, "access": "drive"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    while !matches!(watcher.next_frame().await, Ok(Frame::Closed) | Err(_)) {}
    let socket = hq.ws(&format!("/api/v1/ws/session/{}", session.id), Some(&bob_token), None).await.unwrap();
    let mut driver = Viewer::new(socket).await;
    driver.type_text("typed-by-bob\r").await;
    driver.read_until("typed-by-bob\r\n").await.unwrap();

    // Revoked: his viewer closes at once (1008), the session leaves his stream, and it is 404 again.
    let started = Instant::now();
    let (status, _) = call(&hq, &ann_token, Method::DELETE, &format!("{grants}/{}", bob.id), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    while !matches!(driver.next_frame().await, Ok(Frame::Closed) | Err(_)) {}
    assert_eq!(driver.close_code, Some(1008));
    assert!(started.elapsed() < Duration::from_secs(2), "closed in {:?}", started.elapsed());
    read_events(&mut events, |seen| {
        seen.iter().any(|(name, data)| name == "session_removed" && data["id"] == session.id.to_string())
    })
    .await;
    let (status, _) =
        call(&hq, &bob_token, Method::GET, &format!("/api/sessions/{}", session.id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&hq, &ann_token, Method::DELETE, &format!("{grants}/{}", bob.id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left to revoke");
}

#[tokio::test]
async fn a_disabled_user_is_cut_off_everywhere_within_two_seconds() {
    let hq = TestHq::start().await;
    let (ann, ann_token) = hq.person("ann", "member").await;
    let shared = TestRunner::start(&hq, "shared").await;
    let session = start_as(&hq, &ann_token, shared.id, &["cat"]).await;
    // A viewer, an events stream and a dashboard sign-in of hers.
    let socket = hq.ws(&format!("/api/v1/ws/session/{}", session.id), Some(&ann_token), None).await.unwrap();
    let mut viewer = Viewer::new(socket).await;
    let mut events = hq.http.get(hq.url("/api/events")).bearer_auth(&ann_token).send().await.unwrap();
    let login = hq.http.post(hq.url("/api/login")).json(&json!({"token": ann_token})).send().await.unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let with_cookie = || hq.http.get(hq.url("/api/me")).header("cookie", &cookie).send();
    assert_eq!(with_cookie().await.unwrap().json::<User>().await.unwrap().id, ann.id);

    let started = Instant::now();
    let (status, user) = call(
        &hq,
        ADMIN_TOKEN,
        Method::PATCH,
        &format!("/api/users/{}", ann.id),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!((status, user["disabled"].as_bool()), (StatusCode::OK, Some(true)));
    while !matches!(viewer.next_frame().await, Ok(Frame::Closed) | Err(_)) {}
    assert_eq!(viewer.close_code, Some(1008));
    tokio::time::timeout(Duration::from_secs(2), async { while let Ok(Some(_)) = events.chunk().await {} })
        .await
        .expect("her events stream ends");
    assert!(started.elapsed() < Duration::from_secs(2), "cut off in {:?}", started.elapsed());
    assert_eq!(call(&hq, &ann_token, Method::GET, "/api/runners", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(with_cookie().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let again = hq.http.post(hq.url("/api/login")).json(&json!({"token": ann_token})).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);

    // Enabled again, her token works (sign-ins made before stay ended).
    call(
        &hq,
        ADMIN_TOKEN,
        Method::PATCH,
        &format!("/api/users/{}", ann.id),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(call(&hq, &ann_token, Method::GET, "/api/runners", None).await.0, StatusCode::OK);
    // The built-in admin is the break-glass account: it cannot be disabled.
    let admin: User =
        serde_json::from_value(call(&hq, ADMIN_TOKEN, Method::GET, "/api/me", None).await.1).unwrap();
    let (status, _) = call(
        &hq,
        ADMIN_TOKEN,
        Method::PATCH,
        &format!("/api/users/{}", admin.id),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tokens_belong_to_users_and_members_handle_only_their_own() {
    let hq = TestHq::start().await;
    let (ann, ann_token) = hq.person("ann", "member").await;
    let (bob, bob_token) = hq.person("bob", "member").await;
    let (boss, boss_token) = hq.person("boss", "admin").await;

    // A member makes user and personal runner tokens for herself, nothing else.
    let (status, own) = hq.token_with(&ann_token, json!({"name": "ci", "scope": "user"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(own["user"]["id"], ann.id.to_string());
    for body in [
        json!({"name": "x", "scope": "admin"}),
        json!({"name": "x", "scope": "user", "user": bob.id}),
        json!({"name": "x", "scope": "runner", "shared": true}),
    ] {
        assert_eq!(hq.token_with(&ann_token, body.clone()).await.0, StatusCode::FORBIDDEN, "{body}");
    }
    // She lists and revokes only hers: bob's token is unknown to her (404).
    let (_, listed) = call(&hq, &ann_token, Method::GET, "/api/tokens", None).await;
    let holders: Vec<&str> =
        listed.as_array().unwrap().iter().map(|t| t["user"]["id"].as_str().unwrap()).collect();
    assert!(holders.len() == 2 && holders.iter().all(|h| *h == ann.id.to_string()), "{listed}");
    let (_, bobs) = call(&hq, &bob_token, Method::GET, "/api/tokens", None).await;
    let bobs_id = bobs[0]["id"].as_str().unwrap();
    assert_eq!(
        call(&hq, &ann_token, Method::DELETE, &format!("/api/tokens/{bobs_id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(call(&hq, &bob_token, Method::GET, "/api/me", None).await.0, StatusCode::OK);

    // Admins make tokens for anyone, admin tokens for admins only, and shared runner tokens.
    let (status, for_bob) =
        hq.token_with(&boss_token, json!({"name": "b", "scope": "user", "user": "BOB@example.test"})).await;
    assert_eq!(
        (status, for_bob["user"]["id"].as_str()),
        (StatusCode::CREATED, Some(bob.id.to_string().as_str()))
    );
    assert_eq!(
        hq.token_with(&boss_token, json!({"name": "a", "scope": "admin", "user": bob.id})).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, shared) =
        hq.token_with(&boss_token, json!({"name": "s", "scope": "runner", "shared": true})).await;
    assert_eq!((status, shared["shared"].as_bool()), (StatusCode::CREATED, Some(true)));
    assert_eq!(
        call(&hq, &boss_token, Method::DELETE, &format!("/api/tokens/{bobs_id}"), None).await.0,
        StatusCode::NO_CONTENT
    );

    // An admin demoted to member: their admin token acts as a user token from then on.
    assert_eq!(call(&hq, &boss_token, Method::GET, "/api/users", None).await.0, StatusCode::OK);
    call(
        &hq,
        ADMIN_TOKEN,
        Method::PATCH,
        &format!("/api/users/{}", boss.id),
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(call(&hq, &boss_token, Method::GET, "/api/users", None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&hq, &boss_token, Method::GET, "/api/me", None).await.1["role"], "member");

    // Users: made by admins, one per e-mail address.
    let (status, _) = call(
        &hq,
        ADMIN_TOKEN,
        Method::POST,
        "/api/users",
        Some(json!({"name": "Ann 2", "email": "ann@example.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = call(
        &hq,
        &ann_token,
        Method::POST,
        "/api/users",
        Some(json!({"name": "x", "email": "x@example.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_audit_log_names_the_user_behind_each_action() {
    let hq = TestHq::start().await;
    let (ann, ann_token) = hq.person("ann", "member").await;
    let (bob, _) = hq.person("bob", "member").await;
    let shared = TestRunner::start(&hq, "shared").await;
    let session = start_as(&hq, &ann_token, shared.id, &["cat"]).await;
    let grants = format!("/api/sessions/{}/grants", session.id);
    call(&hq, &ann_token, Method::POST, &grants, Some(json!({"user": bob.id, "access": "view"}))).await;
    call(&hq, &ann_token, Method::DELETE, &format!("{grants}/{}", bob.id), None).await;
    call(&hq, ADMIN_TOKEN, Method::PATCH, &format!("/api/users/{}", bob.id), Some(json!({"disabled": true})))
        .await;
    let wanted = [
        ("session.started", ann.id.to_string()),
        ("session.granted", ann.id.to_string()),
        ("session.grant_revoked", ann.id.to_string()),
        ("user.disabled", "00000000-0000-4000-8000-000000000001".to_owned()),
        ("user.created", "00000000-0000-4000-8000-000000000001".to_owned()),
    ];
    eventually("every action with its user", || async {
        let entries = hq.get_json("/api/audit?limit=1000").await;
        wanted
            .iter()
            .all(|(action, user)| {
                entries
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["action"] == *action && e["user_id"] == *user && e["user"].is_string())
            })
            .then_some(())
    })
    .await;
}
