//! What the dashboard relies on: sign-in cookie, origin checks, the events stream, static files
//! and security headers.

use agentrelay_e2e::*;
use agentrelay_protocol::{RunnerStatus, SessionStatus};
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, ORIGIN, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn login(hq: &TestHq, token: &str) -> reqwest::Response {
    hq.http.post(hq.url("/api/login")).json(&json!({ "token": token })).send().await.unwrap()
}

/// Signs in and returns the `name=value` cookie pair.
async fn sign_in(hq: &TestHq) -> String {
    let response = login(hq, ADMIN_TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let who: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (&who["name"], &who["scope"], &who["session_id"]),
        (&json!("admin"), &json!("admin"), &json!(null))
    );
    assert_eq!(who["user"]["role"], "admin", "the built-in admin signed in: {who}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing in {cookie}");
    }
    assert!(!cookie.contains(ADMIN_TOKEN), "the cookie is a handle, not the token");
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn login_cookie_opens_rest_and_websockets_and_logout_closes_them() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "r").await;

    let refused = login(&hq, "wrong").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get(SET_COOKIE).is_none());
    let missing = hq.http.post(hq.url("/api/login")).json(&json!({})).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["field"], "token");

    let cookie = sign_in(&hq).await;
    let runners = hq.http.get(hq.url("/api/runners")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(runners.status(), StatusCode::OK);

    let own = format!("http://{}", hq.addr);
    let created = hq
        .http
        .post(hq.url("/api/sessions"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, &own)
        .json(&json!({"runner_id": runner.id, "command": ["cat"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let session: Value = created.json().await.unwrap();

    // A cross-site page cannot use the cookie to change anything.
    let forged = hq
        .http
        .post(hq.url("/api/sessions"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, "https://evil.example")
        .json(&json!({"runner_id": runner.id, "command": ["cat"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // The session WebSocket takes the cookie too.
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/api/v1/ws/session/{}", hq.addr, session["id"].as_str().unwrap()),
    )
    .unwrap();
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    request.headers_mut().insert("origin", own.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut viewer = Viewer::new(socket).await;
    viewer.type_text("cookie-typed\r").await;
    viewer.read_until("cookie-typed").await.unwrap();

    let out = hq.http.post(hq.url("/api/logout")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let after = hq.http.get(hq.url("/api/runners")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    // Signing out also closes what the cookie had open.
    loop {
        match viewer.next_frame().await.unwrap() {
            Frame::Closed => break,
            _ => continue,
        }
    }
    assert_eq!(viewer.close_code, Some(1008));
    // The admin token itself is untouched.
    assert_eq!(hq.get_json("/api/runners").await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn events_stream_starts_with_the_present_and_follows_every_change() {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, "watched").await;
    let mut stream = hq.request(Method::GET, "/api/events").send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));

    let first = read_events(&mut stream, |e| !e.is_empty()).await;
    assert_eq!(first[0].0, "runner");
    assert_eq!(first[0].1["name"], "watched");
    assert_eq!(first[0].1["status"], "online");

    let session = hq.start_session(runner.id, &["sh", "-c", "exit 4"]).await;
    let id = session.id.to_string();
    let events = read_events(&mut stream, |events| {
        events
            .iter()
            .any(|(name, data)| name == "session" && data["id"] == id.as_str() && data["status"] == "exited")
    })
    .await;
    let statuses: Vec<&str> = events
        .iter()
        .filter(|(name, data)| name == "session" && data["id"] == id.as_str())
        .map(|(_, data)| data["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["starting", "running", "exited"]);
    let exited = &events.last().unwrap().1;
    assert_eq!(exited["exit_code"], 4);
    hq.wait_for_session(session.id, SessionStatus::Exited).await;

    runner.stop().await.unwrap();
    let events = read_events(&mut stream, |events| {
        events.iter().any(|(name, data)| name == "runner" && data["status"] == "offline")
    })
    .await;
    assert_eq!(events.last().unwrap().1["name"], "watched");
    hq.wait_for_runner("watched", RunnerStatus::Offline).await;

    let unauthenticated = hq.http.get(hq.url("/api/events")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn dashboard_pages_carry_security_headers_and_api_misses_stay_json() {
    let hq = TestHq::start().await;
    for path in ["/", "/sessions/some-client-route"] {
        let response = hq.http.get(hq.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let csp = response.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        let body = response.text().await.unwrap();
        assert!(body.contains("<html"), "{path}: {body}");
        assert!(body.contains("AgentRelay"));
    }
    let miss = hq.http.get(hq.url("/api/nothing-here")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(miss.status(), StatusCode::NOT_FOUND);
    assert_eq!(miss.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let wrong = hq.request(Method::PUT, "/api/sessions").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allowed = wrong.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
    let body = wrong.json::<Value>().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("PUT"), "{body}");
    assert!(allowed.is_some_and(|a| a.contains("GET") && a.contains("POST")), "the Allow header stays");
}
