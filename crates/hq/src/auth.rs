//! Who may call what: the admin token (as a bearer header, or exchanged for the dashboard's
//! cookie), the runner token for runners, and the `Origin` check that stops cross-site requests
//! and WebSocket hijacking.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::net::IpAddr;

use agentrelay_protocol::requests::Login;
use agentrelay_protocol::{ErrorResponse, LoginAnswer, Owner, Role, Scope, User};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::api::JsonObject;
use crate::audit;
use crate::client_ip::ClientIp;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::LoginRecord;

/// Name of the dashboard's sign-in cookie.
pub const COOKIE: &str = "agentrelay_session";
/// How long a dashboard sign-in lasts.
pub(crate) const LOGIN_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Dashboard sign-ins: the SHA-256 of each cookie value → who signed in, until when. The cookie is
/// a random handle, not the token itself, so the token never sits in the browser. Each is also
/// saved (by the credential it was made with), so a restart of HQ signs nobody out.
#[derive(Default)]
pub struct Logins {
    map: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl Logins {
    /// Creates a sign-in: the cookie value for it, and the record to save. `sso` says the
    /// principal signed in through single sign-on (no token behind it).
    pub(crate) fn create(
        &self,
        mut principal: Principal,
        admin_token: Option<&str>,
        sso: bool,
    ) -> (String, LoginRecord) {
        principal.revoked = principal.revoked.child_token();
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let value: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let hash = digest(&value);
        let record = LoginRecord {
            hash,
            token_id: principal.token_id,
            static_hash: (principal.token_id.is_none() && !sso).then(|| admin_token.map(digest)).flatten(),
            expires_at: chrono::Utc::now() + LOGIN_LIFETIME,
            user_id: sso.then(|| principal.user.as_ref().map(|u| u.id)).flatten(),
        };
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, (_, expires)| *expires > now);
        map.insert(hash, (principal, now + LOGIN_LIFETIME));
        (value, record)
    }

    /// Takes back the saved sign-ins whose credential still holds: a managed token still active,
    /// the same `--admin-token` as when it was made, or a single sign-on user still enabled.
    pub fn restore(&self, saved: Vec<LoginRecord>, state: &AppState) {
        let now = chrono::Utc::now();
        let admin_token = state.admin_token.as_deref();
        let mut map = self.lock();
        for login in saved {
            let principal = match (login.token_id, login.static_hash, admin_token, login.user_id) {
                (Some(id), _, _, _) => {
                    state.tokens.by_id(id).and_then(|token| token_principal(state, token, None))
                }
                (None, Some(saved), Some(admin), _) if bool::from(saved.ct_eq(&digest(admin))) => {
                    Some(admin_principal(state, None))
                }
                (None, None, _, Some(user)) => {
                    state.users.get(user).filter(|u| !u.disabled).map(|u| user_principal(&u, None))
                }
                _ => None,
            };
            let left = (login.expires_at - now).to_std().unwrap_or_default();
            if let Some(principal) = principal {
                map.insert(login.hash, (principal, Instant::now() + left));
            }
        }
    }

    fn get(&self, value: &str) -> Option<Principal> {
        let map = self.lock();
        map.get(&digest(value))
            .filter(|(principal, expires)| *expires > Instant::now() && !principal.revoked.is_cancelled())
            .map(|(p, _)| p.clone())
    }

    /// Ends every sign-in of a user (disabled, or their role changed) and the connections opened
    /// with them; the hashes to forget in the store.
    pub fn remove_user(&self, user_id: uuid::Uuid) -> Vec<[u8; 32]> {
        let mut map = self.lock();
        let gone: Vec<[u8; 32]> = map
            .iter()
            .filter(|(_, (p, _))| p.user.as_ref().is_some_and(|u| u.id == user_id))
            .map(|(hash, _)| *hash)
            .collect();
        for hash in &gone {
            if let Some((principal, _)) = map.remove(hash) {
                principal.revoked.cancel();
            }
        }
        gone
    }

    /// Ends a sign-in, and with it every connection opened with its cookie.
    fn remove(&self, value: &str) -> [u8; 32] {
        let hash = digest(value);
        self.remove_hash(hash);
        hash
    }

    /// Ends the sign-in whose cookie hashes to `hash` (another replica signed it out).
    pub fn remove_hash(&self, hash: [u8; 32]) {
        if let Some((principal, _)) = self.lock().remove(&hash) {
            principal.revoked.cancel();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Principal, Instant)>> {
        self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sign-in attempts per client address, in fixed one-minute windows.
pub struct LoginLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimiter {
    /// Allows `per_minute` attempts per address and minute.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, windows: Mutex::default() }
    }

    /// Counts an attempt; whether it may go ahead.
    pub fn allow(&self, address: IpAddr) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let (start, count) = windows.entry(address).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            (*start, *count) = (now, 0);
        }
        *count += 1;
        *count <= self.per_minute
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The value of the sign-in cookie, if the request carries one.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    named_cookie(headers, COOKIE)
}

/// The value of the cookie `name`, if the request carries one.
pub(crate) fn named_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
}

/// The caller signed in with the dashboard's cookie, if the request carries a valid one.
pub(crate) fn cookie_principal(state: &AppState, headers: &HeaderMap) -> Option<Principal> {
    cookie_value(headers).and_then(|value| state.logins.get(value))
}

pub(crate) fn set_cookie(state: &AppState, value: &str, max_age: u64) -> Result<HeaderValue, AppError> {
    let secure = if state.config.tls_enabled() { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.into()))
}

/// `POST /api/login` `{"token": "…"}`: sets the sign-in cookie and says who signed in. Accepts
/// admin, user and share tokens (a share's cookie opens one session, read-only); attempts per
/// client address are limited (429 past `--login-attempts` a minute).
#[utoipa::path(
    post,
    path = "/api/login",
    tag = "auth",
    operation_id = "login",
    security(()),
    request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = LoginAnswer, headers(
            ("Set-Cookie" = String, description = "The HttpOnly, SameSite=Strict sign-in cookie"),
        )),
        (status = 400, description = "No `token`, an unknown field, or not a JSON object",
            body = ErrorResponse),
        (status = 401, description = "Not an admin, user or share token", body = ErrorResponse),
        (status = 403, description = "An `Origin` other than HQ's own", body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
        (status = 429, description = "More than `--login-attempts` a minute from this address",
            body = ErrorResponse),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(address): ClientIp,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, AppError> {
    check_origin(&headers, state.config.public_url.as_deref())?;
    // Only requests that did not come over a socket (tests' own) have no address. A cluster
    // counts attempts in PostgreSQL, so every replica sees them all.
    let limited = match (address, &state.cluster) {
        (Some(address), Some(cluster)) => !cluster.allow_login(address, state.config.login_attempts).await,
        (Some(address), None) => !state.login_limiter.allow(address),
        (None, _) => false,
    };
    if limited {
        audit::record(&state, None, "login.rate_limited", None, address, None);
        return Err(AppError::RateLimited("too many sign-in attempts; wait a minute".to_owned()));
    }
    let mut body = JsonObject::parse(body)?;
    let token: Option<String> = body.take("token", "a string")?;
    body.finish()?;
    let token = token.ok_or_else(|| AppError::bad_field("token", "'token' is required"))?;
    let principal = authenticate(&state, &token, address)
        .filter(|p| matches!(p.scope, Scope::Admin | Scope::User | Scope::Share));
    let Some(principal) = principal else {
        audit::record(&state, None, "login.failed", None, address, None);
        return Err(AppError::Unauthorized);
    };
    audit::by_principal(&state, &principal, "login.succeeded", principal.name.clone(), None);
    let user = match principal.scope {
        Scope::Share => None,
        _ => principal.user.as_ref().and_then(|u| state.users.get(u.id)),
    };
    let answer = LoginAnswer {
        name: principal.name.clone(),
        scope: principal.scope,
        session_id: principal.session,
        user,
    };
    let (value, record) = state.logins.create(principal, state.admin_token.as_deref(), false);
    // Saved before the cookie goes out, so even a crash right after keeps the sign-in.
    let saved = record.clone();
    state.store.call(move |store| store.insert_login(&saved)).await?;
    if let Some(cluster) = &state.cluster {
        cluster.send(crate::cluster::feed::FeedMessage::login(&record));
    }
    let cookie = set_cookie(&state, &value, LOGIN_LIFETIME.as_secs())?;
    Ok(([(header::SET_COOKIE, cookie)], Json(answer)).into_response())
}

/// `POST /api/logout`: forgets the sign-in and clears the cookie.
#[utoipa::path(
    post,
    path = "/api/logout",
    tag = "auth",
    operation_id = "logout",
    security(()),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared", headers(
            ("Set-Cookie" = String, description = "The sign-in cookie, expired"),
        )),
        (status = 403, description = "An `Origin` other than HQ's own", body = ErrorResponse),
    )
)]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    check_origin(&headers, state.config.public_url.as_deref())?;
    if let Some(value) = cookie_value(&headers) {
        let hash = state.logins.remove(value);
        state.store.call(move |store| store.delete_login(hash)).await?;
        if let Some(cluster) = &state.cluster {
            cluster.send(crate::cluster::feed::FeedMessage::LoginRemoved(crate::cluster::feed::hex(&hash)));
        }
    }
    let cookie = set_cookie(&state, "", 0)?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// The authenticated caller of a request, put in its extensions by the auth middleware.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Recorded as a session's `created_by` and in the audit log.
    pub name: String,
    /// What the caller may do.
    pub scope: Scope,
    /// The managed token used, if any (`None` for the static `--admin-token`/`--runner-token`).
    pub token_id: Option<uuid::Uuid>,
    /// Cancelled when that token is revoked, or at sign-out for a dashboard sign-in: every
    /// connection it opened watches this.
    pub revoked: CancellationToken,
    /// Where the request came from (see [`ClientIp`]).
    pub address: Option<IpAddr>,
    /// For a share token: the one session it may watch.
    pub session: Option<uuid::Uuid>,
    /// The person behind it: the token's user, the built-in admin for `--admin-token`, the
    /// user who signed in through single sign-on; `None` only for the static runner token.
    pub user: Option<Owner>,
    /// For a runner token: the runners it enrolls are shared rather than personal to `user`.
    pub shared: bool,
}

impl Principal {
    /// Whether this caller may only watch (a share).
    pub fn is_read_only(&self) -> bool {
        self.scope == Scope::Share
    }

    /// The id of the user behind it.
    pub fn user_id(&self) -> Option<uuid::Uuid> {
        self.user.as_ref().map(|u| u.id)
    }

    /// Whether it acts with an admin's powers (an admin token of a user who is an admin, or an
    /// admin's sign-in).
    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }
}

/// Resolves a secret to a principal: the static tokens first (constant-time), then managed ones.
/// A token of a disabled (or deleted) user authenticates nobody; an `admin` token of a user who
/// is no longer an admin acts as a `user` token.
pub fn authenticate(state: &AppState, secret: &str, address: Option<IpAddr>) -> Option<Principal> {
    if state.admin_token.as_deref().is_some_and(|admin| token_matches(secret, admin)) {
        return Some(admin_principal(state, address));
    }
    if state.runner_token.as_deref().is_some_and(|runner| token_matches(secret, runner)) {
        return Some(Principal {
            name: "runner-enrollment".to_owned(),
            scope: Scope::Runner,
            token_id: None,
            revoked: CancellationToken::new(),
            address,
            session: None,
            user: None,
            shared: true,
        });
    }
    let token = state.tokens.authenticate(secret)?;
    token_principal(state, token, address)
}

/// The caller of a managed token, if its user may act.
fn token_principal(
    state: &AppState,
    token: crate::tokens::Authenticated,
    address: Option<IpAddr>,
) -> Option<Principal> {
    let user = state.users.get(token.user_id).filter(|u| !u.disabled)?;
    state.users.seen(user.id);
    let scope = match token.info.scope {
        Scope::Admin if user.role != Role::Admin => Scope::User,
        scope => scope,
    };
    Some(Principal {
        name: token.info.name,
        scope,
        token_id: Some(token.info.id),
        revoked: token.revoked,
        address,
        session: token.info.session_id,
        user: Some(Owner::from(&user)),
        shared: token.info.shared,
    })
}

/// The caller of the static `--admin-token`: the built-in admin.
fn admin_principal(state: &AppState, address: Option<IpAddr>) -> Principal {
    Principal {
        name: "admin".to_owned(),
        scope: Scope::Admin,
        token_id: None,
        revoked: CancellationToken::new(),
        address,
        session: None,
        user: Some(state.users.builtin_admin()),
        shared: false,
    }
}

/// A user signed in through single sign-on.
pub(crate) fn user_principal(user: &User, address: Option<IpAddr>) -> Principal {
    Principal {
        name: user.name.clone(),
        scope: if user.role == Role::Admin { Scope::Admin } else { Scope::User },
        token_id: None,
        revoked: CancellationToken::new(),
        address,
        session: None,
        user: Some(Owner::from(user)),
        shared: false,
    }
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

/// Middleware for runners and sessions: user or admin scope.
pub async fn require_user(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    authorize(&state, request, next, &[Scope::Admin, Scope::User]).await
}

/// Middleware for the session WebSocket: user, admin, or a share (checked against its session
/// by the handler).
pub async fn require_viewer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    authorize(&state, request, next, &[Scope::Admin, Scope::User, Scope::Share]).await
}

/// Middleware for tokens and the audit log: admin scope only.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    authorize(&state, request, next, &[Scope::Admin]).await
}

/// The request must carry a token (or the cookie of a dashboard sign-in) of one of `scopes`.
/// Cookie-authenticated state changes must also come from HQ's own origin.
async fn authorize(
    state: &AppState,
    mut request: Request,
    next: Next,
    scopes: &[Scope],
) -> Result<Response, AppError> {
    let ClientIp(address) = ClientIp::of(request.extensions(), request.headers(), state);
    let headers = request.headers();
    let principal = if let Some(given) = bearer_token(headers) {
        authenticate(state, given, address)
    } else if let Some(mut principal) = cookie_value(headers).and_then(|value| state.logins.get(value)) {
        if !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            check_origin(headers, state.config.public_url.as_deref())?;
        }
        principal.address = address;
        Some(principal)
    } else {
        None
    };
    let principal = principal.ok_or(AppError::Unauthorized)?;
    if !scopes.contains(&principal.scope) {
        return Err(AppError::Forbidden(format!("a {} token cannot do this", scope_name(principal.scope))));
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Admin => "admin",
        Scope::User => "user",
        Scope::Runner => "runner",
        Scope::Share => "share",
    }
}

/// Checks a runner's token (the enrollment token or a managed runner token).
pub fn runner_principal(
    state: &AppState,
    headers: &HeaderMap,
    address: Option<IpAddr>,
) -> Result<Principal, AppError> {
    let given = bearer_token(headers).ok_or(AppError::Unauthorized)?;
    match authenticate(state, given, address) {
        Some(principal) if principal.scope == Scope::Runner => Ok(principal),
        _ => Err(AppError::Unauthorized),
    }
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
    fn login_limiter_counts_per_address() {
        let limiter = LoginLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        assert!(limiter.allow(a) && limiter.allow(a));
        assert!(!limiter.allow(a));
        assert!(limiter.allow(b));
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
