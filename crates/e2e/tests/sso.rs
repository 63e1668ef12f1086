//! Single sign-on against a real OpenID provider on loopback (`oidc-provider-mock`): the whole
//! authorization code flow over HTTP, people made members or admins, and every forged, replayed
//! or refused answer turned away with a page and no cookie.

use std::collections::HashMap;

use agentrelay_e2e::*;
use agentrelay_protocol::{Role, User};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A browser, as far as cookies and redirects go: it follows nothing by itself.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
    /// Every `Set-Cookie` it was sent, as sent.
    set_cookies: Vec<String>,
}

impl Browser {
    fn new() -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, cookies: HashMap::new(), set_cookies: Vec::new() }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let response = self.http.get(url).header("cookie", cookie.join("; ")).send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            let (pair, _) = set.split_once(';').unwrap_or((&set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(set);
        }
        response
    }

    /// Starts a sign-in at HQ: the provider's authorization URL.
    async fn start(&mut self, hq: &HqClient, next: &str) -> String {
        let response = self.get(&hq.url(&format!("/api/auth/oidc/login?next={next}"))).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    /// A whole sign-in as `sub`: HQ's last answer, status and page.
    async fn sign_in(
        &mut self,
        hq: &HqClient,
        provider: &OidcProvider,
        sub: &str,
        next: &str,
    ) -> (StatusCode, String) {
        let authorize = self.start(hq, next).await;
        let back = provider.authorize(&authorize, sub).await;
        let response = self.get(&back).await;
        (response.status(), response.text().await.unwrap())
    }

    async fn me(&mut self, hq: &HqClient) -> Option<User> {
        let response = self.get(&hq.url("/api/me")).await;
        if !response.status().is_success() {
            return None;
        }
        Some(response.json().await.unwrap())
    }
}

async fn provider_and_hq() -> (OidcProvider, TestHq) {
    let provider = OidcProvider::start().await;
    let people = [
        ("ann", json!({"email": "ann@example.com", "email_verified": true, "name": "Ann Lee"})),
        ("boss", json!({"email": "boss@example.com", "email_verified": true, "name": "The Boss"})),
        ("oncall", json!({"email": "oncall@example.com", "name": "On Call", "groups": ["staff", "ops"]})),
        ("eve", json!({"email": "eve@elsewhere.org", "email_verified": true, "name": "Eve"})),
        ("guest", json!({"email": "guest@elsewhere.org", "email_verified": true, "name": "Invited Guest"})),
        ("shady", json!({"email": "shady@example.com", "email_verified": false})),
        ("nomail", json!({"name": "No Mail"})),
    ];
    for (sub, claims) in people {
        provider.set_user(sub, claims).await;
    }
    let hq = TestHq::start_with(&[
        "--oidc-issuer",
        &provider.issuer,
        "--oidc-client-id",
        "agentrelay",
        "--oidc-client-secret",
        "s3cret",
        "--oidc-name",
        "Acme",
        "--oidc-allowed-domains",
        "example.com",
        "--oidc-admin-emails",
        "boss@example.com",
        "--oidc-groups-claim",
        "groups",
        "--oidc-admin-group",
        "ops",
    ])
    .await;
    (provider, hq)
}

fn session_cookie(browser: &Browser) -> Option<&String> {
    browser.set_cookies.iter().find(|c| c.starts_with("agentrelay_session=") && !c.contains("Max-Age=0"))
}

#[tokio::test(flavor = "multi_thread")]
async fn single_sign_on_signs_people_in_and_makes_admins_by_email_or_group() {
    let (provider, hq) = provider_and_hq().await;
    let config = hq.http.get(hq.url("/api/auth/config")).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(config["sso"]["name"], "Acme");

    let mut browser = Browser::new();
    let authorize = browser.start(&hq, "/sessions/42").await;
    assert!(authorize.starts_with(&provider.issuer), "{authorize}");
    for param in ["code_challenge=", "code_challenge_method=S256", "state=", "nonce=", "scope=openid"] {
        assert!(authorize.contains(param), "{param} missing from {authorize}");
    }
    let state_cookie = browser.set_cookies.last().unwrap().clone();
    assert!(state_cookie.contains("SameSite=Lax") && state_cookie.contains("HttpOnly"), "{state_cookie}");
    let back = provider.authorize(&authorize, "ann").await;
    let landed = browser.get(&back).await;
    assert_eq!(landed.status(), StatusCode::OK);
    let page = landed.text().await.unwrap();
    // The last hop starts on HQ's own page (same-site), so the Strict cookie goes with it.
    assert!(page.contains(r#"<meta http-equiv="refresh" content="0; url=/sessions/42">"#), "{page}");
    let cookie = session_cookie(&browser).expect("a sign-in cookie").clone();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing in {cookie}");
    }
    let ann = browser.me(&hq).await.expect("signed in");
    assert_eq!(
        (ann.name.as_str(), ann.email.as_str(), ann.role),
        ("Ann Lee", "ann@example.com", Role::Member)
    );

    // Again: the same user, not a new one.
    let mut again = Browser::new();
    assert_eq!(again.sign_in(&hq, &provider, "ann", "/").await.0, StatusCode::OK);
    assert_eq!(again.me(&hq).await.map(|u| u.id), Some(ann.id));

    // Admins by e-mail and by group.
    for sub in ["boss", "oncall"] {
        let mut browser = Browser::new();
        assert_eq!(browser.sign_in(&hq, &provider, sub, "/").await.0, StatusCode::OK);
        assert_eq!(browser.me(&hq).await.map(|u| u.role), Some(Role::Admin), "{sub}");
    }
    // A user an admin made beforehand signs in even from outside the allowed domains.
    let invited = hq.user("Guest", "guest@elsewhere.org", "member").await;
    let mut guest = Browser::new();
    assert_eq!(guest.sign_in(&hq, &provider, "guest", "/").await.0, StatusCode::OK);
    assert_eq!(guest.me(&hq).await.map(|u| u.id), Some(invited.id));

    let audit = hq.get_json("/api/audit?limit=1000").await;
    let signed_in = audit.as_array().unwrap().iter().filter(|e| e["action"] == "sso.signed_in").count();
    assert_eq!(signed_in, 5);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user.created" && e["user_id"] == ann.id.to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_replayed_or_refused_answers_get_a_page_and_no_cookie() {
    let (provider, hq) = provider_and_hq().await;
    let refused = |browser: &Browser| session_cookie(browser).is_none();

    // A tampered state.
    let mut browser = Browser::new();
    let authorize = browser.start(&hq, "/").await;
    let back = provider.authorize(&authorize, "ann").await;
    let tampered = back.replace("state=", "state=x");
    let response = browser.get(&tampered).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("not valid any more"));
    assert!(refused(&browser));

    // The right answer, but in another browser (no state cookie): refused.
    let mut other = Browser::new();
    assert_eq!(other.get(&back).await.status(), StatusCode::BAD_REQUEST);
    assert!(refused(&other));

    // Replayed: the first use signs in, the second is refused.
    let mut browser = Browser::new();
    let authorize = browser.start(&hq, "/").await;
    let back = provider.authorize(&authorize, "ann").await;
    let cookies = browser.cookies.clone();
    assert_eq!(browser.get(&back).await.status(), StatusCode::OK);
    let mut replay = Browser::new();
    replay.cookies = cookies;
    assert_eq!(replay.get(&back).await.status(), StatusCode::BAD_REQUEST);
    assert!(refused(&replay));

    // A code issued for another nonce: the ID token's nonce does not match the attempt's.
    let mut browser = Browser::new();
    let authorize = browser.start(&hq, "/").await;
    let nonce = authorize.split("nonce=").nth(1).unwrap().split('&').next().unwrap();
    let forged = authorize.replace(&format!("nonce={nonce}"), "nonce=someone-elses-nonce");
    let back = provider.authorize(&forged, "ann").await;
    let response = browser.get(&back).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().to_lowercase().contains("nonce"));
    assert!(refused(&browser));

    // Refusals: a domain not allowed, an unverified address, no address, a disabled user.
    for (sub, says) in [
        ("eve", "eve@elsewhere.org may not sign up here"),
        ("shady", "shady@example.com is not verified"),
        ("nomail", "no e-mail address"),
    ] {
        let mut browser = Browser::new();
        let (status, page) = browser.sign_in(&hq, &provider, sub, "/").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{sub}");
        assert!(page.contains(says), "{sub}: {page}");
        assert!(refused(&browser), "{sub}");
    }
    let mut ann = Browser::new();
    assert_eq!(ann.sign_in(&hq, &provider, "ann", "/").await.0, StatusCode::OK);
    let user = ann.me(&hq).await.unwrap();
    let disable = hq
        .request(reqwest::Method::PATCH, &format!("/api/users/{}", user.id))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(disable.status(), StatusCode::OK);
    assert!(ann.me(&hq).await.is_none(), "disabling ends the sign-in");
    let mut again = Browser::new();
    let (status, page) = again.sign_in(&hq, &provider, "ann", "/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("disabled"), "{page}");

    // Where to land is a path on HQ, never another site.
    let mut browser = Browser::new();
    let (status, page) = browser.sign_in(&hq, &provider, "boss", "https://evil.example/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"content="0; url=/""#), "{page}");

    let audit = hq.get_json("/api/audit?limit=1000").await;
    let refusals = audit.as_array().unwrap().iter().filter(|e| e["action"] == "sso.refused").count();
    assert_eq!(refusals, 8, "every refusal is audited: {audit}");
}
