//! Who may call what: the admin token (as a bearer header, or exchanged for the dashboard's
//! cookie), the runner token for runners, and the `Origin` check that stops cross-site requests
//! and WebSocket hijacking.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::JsonObject;
use crate::error::AppError;
use crate::state::AppState;

/// Name of the dashboard's sign-in cookie.
pub const COOKIE: &str = "agentrelay_session";
/// How long a dashboard sign-in lasts.
const LOGIN_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Dashboard sign-ins: the SHA-256 of each cookie value → who signed in, until when. The cookie is
/// a random handle, not the token itself, so the token never sits in the browser.
#[derive(Default)]
pub struct Logins {
    map: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl Logins {
    /// Creates a sign-in and returns the cookie value for it.
    fn create(&self, principal: Principal) -> String {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let value: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, (_, expires)| *expires > now);
        map.insert(digest(&value), (principal, now + LOGIN_LIFETIME));
        value
    }

    fn get(&self, value: &str) -> Option<Principal> {
        let map = self.lock();
        map.get(&digest(value)).filter(|(_, expires)| *expires > Instant::now()).map(|(p, _)| p.clone())
    }

    fn remove(&self, value: &str) {
        self.lock().remove(&digest(value));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Principal, Instant)>> {
        self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The value of the sign-in cookie, if the request carries one.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn set_cookie(state: &AppState, value: &str, max_age: u64) -> Result<HeaderValue, AppError> {
    let secure = if state.config.tls_enabled() { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.into()))
}

/// `POST /api/login` `{"token": "…"}`: sets the sign-in cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, AppError> {
    check_origin(&headers, state.config.public_url.as_deref())?;
    let mut body = JsonObject::parse(body)?;
    let token: Option<String> = body.take("token", "a string")?;
    body.finish()?;
    let token = token.ok_or_else(|| AppError::bad_field("token", "'token' is required"))?;
    if !token_matches(&token, &state.admin_token) {
        return Err(AppError::Unauthorized);
    }
    let value = state.logins.create(Principal { name: "admin".to_owned() });
    let cookie = set_cookie(&state, &value, LOGIN_LIFETIME.as_secs())?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `POST /api/logout`: forgets the sign-in and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    check_origin(&headers, state.config.public_url.as_deref())?;
    if let Some(value) = cookie_value(&headers) {
        state.logins.remove(value);
    }
    let cookie = set_cookie(&state, "", 0)?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// The authenticated caller of a request, put in its extensions by [`require_admin`].
#[derive(Debug, Clone)]
pub struct Principal {
    /// Name recorded as a session's `created_by`.
    pub name: String,
}

/// The bearer token of a request, if it carries one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares two secrets in time independent of where they differ.
pub fn token_matches(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Middleware: the request must carry the admin token, or the cookie of a dashboard sign-in.
/// Cookie-authenticated state changes must also come from HQ's own origin.
pub async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let headers = request.headers();
    let principal = if let Some(given) = bearer_token(headers) {
        token_matches(given, &state.admin_token).then(|| Principal { name: "admin".to_owned() })
    } else if let Some(principal) = cookie_value(headers).and_then(|value| state.logins.get(value)) {
        if !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            check_origin(headers, state.config.public_url.as_deref())?;
        }
        Some(principal)
    } else {
        None
    };
    let principal = principal.ok_or(AppError::Unauthorized)?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// Checks a runner's enrollment token.
pub fn check_runner_token(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let given = bearer_token(headers).ok_or(AppError::Unauthorized)?;
    if token_matches(given, &state.runner_token) { Ok(()) } else { Err(AppError::Unauthorized) }
}

/// Refuses a browser request from a foreign origin. Requests without `Origin` (CLI, scripts) pass:
/// their token alone decides.
pub fn check_origin(headers: &HeaderMap, public_url: Option<&str>) -> Result<(), AppError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("null");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let public_host = public_url
        .and_then(|url| url.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest));
    match origin_host {
        Some(found) if Some(found) == host || Some(found) == public_host => Ok(()),
        _ => Err(AppError::Forbidden(format!("origin '{origin}' is not allowed"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).expect("valid host"));
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).expect("valid origin"));
        }
        headers
    }

    #[test]
    fn origin_must_be_hq_itself() {
        assert!(check_origin(&headers(None, "hq:8080"), None).is_ok());
        assert!(check_origin(&headers(Some("http://hq:8080"), "hq:8080"), None).is_ok());
        assert!(check_origin(&headers(Some("https://evil.example"), "hq:8080"), None).is_err());
        assert!(check_origin(&headers(Some("null"), "hq:8080"), None).is_err());
        let public = Some("https://relay.example.com/");
        assert!(check_origin(&headers(Some("https://relay.example.com"), "10.0.0.1"), public).is_ok());
    }

    #[test]
    fn bearer_parsing_and_comparison() {
        let mut map = HeaderMap::new();
        map.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert_eq!(bearer_token(&map), Some("s3cret"));
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
    }
}
