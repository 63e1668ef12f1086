//! Single sign-on with OpenID Connect: the authorization code flow with PKCE, `state` and
//! `nonce`, through the `openidconnect` crate (discovery, the code exchange, the ID token checked
//! against the provider's JWKS: signature, `iss`, `aud`, `exp`, `nonce`).
//!
//! `GET /api/auth/oidc/login?next=/path` remembers the attempt (its PKCE verifier, nonce and
//! where to go next) under a random `state`, which also goes into a short-lived cookie, and
//! sends the browser to the provider. The provider sends it back to `/api/auth/oidc/callback`:
//! the `state` must match the cookie and an attempt not used yet, the code is exchanged, the ID
//! token checked, the user found or created, and the dashboard's sign-in cookie set.
//!
//! Cookies and `SameSite`: the return from the provider is a cross-site navigation. A `Lax`
//! cookie is sent on it, a `Strict` one is not: so the state cookie is `Lax`. The sign-in cookie
//! is `Strict`, like every dashboard sign-in; set on that cross-site answer it is stored, but a
//! redirect from there would still be part of the cross-site navigation and go without it. So
//! the callback answers with a page that moves on by itself (`<meta http-equiv="refresh">`): a
//! navigation that starts on HQ's own page, same-site, which carries the cookie.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agentrelay_protocol::users::{AuthConfig, SsoInfo};
use agentrelay_protocol::{Owner, Role, User};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::audit;
use crate::auth::{named_cookie, set_cookie, user_principal};
use crate::client_ip::ClientIp;
use crate::config::HqConfig;
use crate::error::AppError;
use crate::state::AppState;

/// The cookie that ties a provider's answer to the browser that started the sign-in.
const STATE_COOKIE: &str = "agentrelay_oidc";
/// How long a sign-in attempt may take at the provider.
const ATTEMPT_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Attempts remembered at most (older ones are forgotten first).
const MAX_ATTEMPTS: usize = 10_000;
/// The path the provider returns to.
pub const CALLBACK_PATH: &str = "/api/auth/oidc/callback";
/// The path that starts a sign-in.
pub const LOGIN_PATH: &str = "/api/auth/oidc/login";

/// What the `--oidc-*` flags say.
#[derive(Debug, Clone)]
struct Settings {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    scopes: Vec<String>,
    name: String,
    allowed_domains: Vec<String>,
    allowed_emails: Vec<String>,
    admin_emails: Vec<String>,
    groups_claim: Option<String>,
    admin_group: Option<String>,
}

/// A sign-in on its way through the provider.
struct Attempt {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    next: String,
    redirect: String,
    started: Instant,
}

/// Single sign-on, configured.
pub struct Oidc {
    settings: Settings,
    /// For discovery, the JWKS and the code exchange; follows no redirects (as the crate advises).
    http: reqwest::Client,
    /// The provider's metadata, read on first use.
    metadata: tokio::sync::Mutex<Option<CoreProviderMetadata>>,
    /// Attempts by `state`; each is taken out when its callback arrives, so a replay finds none.
    attempts: Mutex<HashMap<String, Attempt>>,
}

/// Why a sign-in was refused; the page says it, the audit log records it.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(
        "this sign-in link is not valid any more (it was used already, expired, or came from another browser): start again"
    )]
    UnknownState,
    #[error("the provider said: {0}")]
    Provider(String),
    #[error("the provider's answer could not be checked: {0}")]
    Exchange(String),
    #[error("the provider gave no e-mail address; ask for the `email` scope")]
    NoEmail,
    #[error("the provider says {0} is not verified")]
    Unverified(String),
    #[error("{0} may not sign up here; ask an admin to add you")]
    NotAllowed(String),
    #[error("{0} is disabled; ask an admin")]
    Disabled(String),
    #[error("{0} belongs to another single sign-on identity")]
    OtherIdentity(String),
}

impl Oidc {
    /// From the `--oidc-*` flags; `None` without `--oidc-issuer`.
    pub fn from_config(config: &HqConfig) -> anyhow::Result<Option<Self>> {
        use anyhow::Context;
        let Some(issuer) = config.oidc_issuer.clone() else { return Ok(None) };
        let client_id = config.oidc_client_id.clone().context("--oidc-issuer needs --oidc-client-id")?;
        let client_secret = match (&config.oidc_client_secret, &config.oidc_client_secret_file) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --oidc-client-secret-file {}", path.display()))?;
                Some(text.lines().next().unwrap_or_default().trim().to_owned()).filter(|s| !s.is_empty())
            }
            (None, None) => None,
        };
        IssuerUrl::new(issuer.clone()).with_context(|| format!("--oidc-issuer '{issuer}' is not a URL"))?;
        let lower = |list: &[String]| -> Vec<String> {
            list.iter().map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()).collect()
        };
        let settings = Settings {
            issuer,
            client_id,
            client_secret,
            scopes: config.oidc_scopes.split_whitespace().map(str::to_owned).collect(),
            name: config.oidc_name.clone(),
            allowed_domains: lower(&config.oidc_allowed_domains)
                .into_iter()
                .map(|d| d.trim_start_matches('@').to_owned())
                .collect(),
            allowed_emails: lower(&config.oidc_allowed_emails),
            admin_emails: lower(&config.oidc_admin_emails),
            groups_claim: config.oidc_groups_claim.clone(),
            admin_group: config.oidc_admin_group.clone(),
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot make the single sign-on HTTP client")?;
        Ok(Some(Self { settings, http, metadata: tokio::sync::Mutex::new(None), attempts: Mutex::default() }))
    }

    /// The provider's client, discovering its metadata on first use.
    async fn client(&self, redirect: &str) -> anyhow::Result<impl ClientOps + use<>> {
        use anyhow::Context;
        let mut metadata = self.metadata.lock().await;
        if metadata.is_none() {
            let issuer = IssuerUrl::new(self.settings.issuer.clone())?;
            let found = CoreProviderMetadata::discover_async(issuer, &self.http)
                .await
                .with_context(|| format!("discovering the provider at {}", self.settings.issuer))?;
            *metadata = Some(found);
        }
        let metadata = metadata.clone().context("no provider metadata")?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(RedirectUrl::new(redirect.to_owned())?);
        Ok(client)
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attempt>> {
        crate::lock(&self.attempts)
    }

    /// May this e-mail address sign up?
    fn may_sign_up(&self, email: &str) -> bool {
        let s = &self.settings;
        if s.allowed_domains.is_empty() && s.allowed_emails.is_empty() {
            return true;
        }
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        s.allowed_emails.iter().any(|e| e == email) || s.allowed_domains.iter().any(|d| d == domain)
    }

    /// Is this person an admin by the flags?
    fn is_admin(&self, email: &str, groups: &[String]) -> bool {
        let s = &self.settings;
        s.admin_emails.iter().any(|e| e == email)
            || s.admin_group.as_ref().is_some_and(|wanted| groups.iter().any(|g| g == wanted))
    }
}

/// What the flow needs of the crate's client (whose full type names every endpoint's state).
trait ClientOps {
    fn start(&self, scopes: &[String]) -> (String, CsrfToken, Nonce, PkceCodeVerifier);
    fn exchange<'a>(
        &'a self,
        http: &'a reqwest::Client,
        code: String,
        verifier: PkceCodeVerifier,
        nonce: &'a Nonce,
    ) -> impl std::future::Future<Output = Result<Verified, String>> + Send + 'a;
}

/// What a checked ID token says.
struct Verified {
    subject: String,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    /// The whole payload (signature checked), for a groups claim the crate does not type.
    payload: serde_json::Value,
}

impl ClientOps
    for CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >
{
    fn start(&self, scopes: &[String]) -> (String, CsrfToken, Nonce, PkceCodeVerifier) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        (url.to_string(), state, nonce, verifier)
    }

    async fn exchange(
        &self,
        http: &reqwest::Client,
        code: String,
        verifier: PkceCodeVerifier,
        nonce: &Nonce,
    ) -> Result<Verified, String> {
        let request = self.exchange_code(AuthorizationCode::new(code)).map_err(|e| e.to_string())?;
        let answer =
            request.set_pkce_verifier(verifier).request_async(http).await.map_err(|e| describe_error(&e))?;
        let id_token = answer.id_token().ok_or("the provider sent no ID token")?;
        let claims = id_token.claims(&self.id_token_verifier(), nonce).map_err(|e| e.to_string())?;
        let payload = id_token
            .to_string()
            .split('.')
            .nth(1)
            .and_then(|part| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Ok(Verified {
            subject: format!("{} {}", claims.issuer().as_str(), claims.subject().as_str()),
            email: claims.email().map(|e| e.as_str().trim().to_ascii_lowercase()),
            email_verified: claims.email_verified(),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()),
            payload,
        })
    }
}

/// An error of the code exchange, with its source (the crate's `Display` alone is terse).
fn describe_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// `GET /api/auth/config`: whether HQ offers single sign-on, and the button's label.
#[utoipa::path(
    get,
    path = "/api/auth/config",
    tag = "auth",
    operation_id = "auth_config",
    security(()),
    responses((status = 200, description = "How people sign in here", body = AuthConfig))
)]
pub async fn config(State(state): State<AppState>) -> Json<AuthConfig> {
    let sso = state
        .oidc
        .as_ref()
        .map(|oidc| SsoInfo { name: oidc.settings.name.clone(), login_url: LOGIN_PATH.to_owned() });
    Json(AuthConfig { sso })
}

/// Query of the sign-in start.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /api/auth/oidc/login?next=/relative/path`: to the provider (303), with a state cookie.
#[utoipa::path(
    get,
    path = "/api/auth/oidc/login",
    tag = "auth",
    operation_id = "oidc_login",
    security(()),
    params(("next" = Option<String>, Query, description = "Where to land after signing in: a path on \
        HQ (`/sessions/…`); anything else lands on `/`")),
    responses(
        (status = 303, description = "To the provider's sign-in page", headers(
            ("Location" = String, description = "The provider's authorization URL"),
            ("Set-Cookie" = String, description = "The HttpOnly, SameSite=Lax cookie that ties the answer to \
                this browser"),
        )),
        (status = 404, description = "Single sign-on is not configured", body = agentrelay_protocol::ErrorResponse),
        (status = 502, description = "The provider could not be reached", content_type = "text/html", body = String),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let oidc = state
        .oidc
        .as_ref()
        .ok_or_else(|| AppError::NotFound("single sign-on is not configured".to_owned()))?;
    let next =
        query.ok().and_then(|Query(q)| q.next).map(|n| safe_next(&n)).unwrap_or_else(|| "/".to_owned());
    let redirect = format!("{}{CALLBACK_PATH}", crate::api::sessions::public_base(&state, &headers));
    let client = match oidc.client(&redirect).await {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "single sign-on provider unreachable");
            return Ok(page(StatusCode::BAD_GATEWAY, "Sign-in is unavailable", &format!("{error:#}"), None));
        }
    };
    let (url, csrf, nonce, verifier) = client.start(&oidc.settings.scopes);
    let state_value = csrf.secret().clone();
    {
        let mut attempts = oidc.attempts();
        attempts.retain(|_, a| a.started.elapsed() < ATTEMPT_LIFETIME);
        if attempts.len() >= MAX_ATTEMPTS
            && let Some(oldest) = attempts.iter().min_by_key(|(_, a)| a.started).map(|(k, _)| k.clone())
        {
            attempts.remove(&oldest);
        }
        attempts.insert(
            state_value.clone(),
            Attempt { verifier, nonce, next, redirect, started: Instant::now() },
        );
    }
    let cookie = state_cookie(&state, &state_value, ATTEMPT_LIFETIME.as_secs())?;
    let location = HeaderValue::from_str(&url).map_err(|e| AppError::Internal(e.into()))?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::SET_COOKIE, cookie)]).into_response())
}

/// Query of the provider's answer.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /api/auth/oidc/callback`: the provider's answer.
#[utoipa::path(
    get,
    path = "/api/auth/oidc/callback",
    tag = "auth",
    operation_id = "oidc_callback",
    security(()),
    params(
        ("code" = Option<String>, Query, description = "The provider's one-time code"),
        ("state" = Option<String>, Query, description = "The attempt it answers"),
        ("error" = Option<String>, Query, description = "The provider's refusal"),
        ("error_description" = Option<String>, Query, description = "Its explanation"),
    ),
    responses(
        (status = 200, description = "Signed in: a page that moves on to `next` by itself", content_type = "text/html",
            body = String, headers(("Set-Cookie" = String, description = "The dashboard's sign-in cookie"))),
        (status = 400, description = "A forged, replayed or expired answer: a page saying so, no cookie",
            content_type = "text/html", body = String),
        (status = 403, description = "Refused: not allowed to sign up, disabled, unverified e-mail",
            content_type = "text/html", body = String),
        (status = 404, description = "Single sign-on is not configured", body = agentrelay_protocol::ErrorResponse),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    ClientIp(address): ClientIp,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let oidc = state
        .oidc
        .as_ref()
        .ok_or_else(|| AppError::NotFound("single sign-on is not configured".to_owned()))?;
    let query = query.map(|Query(q)| q).unwrap_or(CallbackQuery {
        code: None,
        state: None,
        error: None,
        error_description: None,
    });
    // The state cookie is spent whatever happens.
    let clear = state_cookie(&state, "", 0)?;
    let outcome = sign_in(&state, oidc, &headers, query, address).await;
    let response = match outcome {
        Ok((user, next, cookie)) => {
            audit::record_as(
                &state,
                Some(&user.name),
                Some(&Owner::from(&user)),
                "sso.signed_in",
                Some(user.id.to_string()),
                address,
                Some(user.email.clone()),
            );
            let mut response = page(
                StatusCode::OK,
                "Signed in",
                &format!("Signed in as {} ({}). Taking you to the dashboard…", user.name, user.email),
                Some(&next),
            );
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err((status, refusal)) => {
            audit::record(&state, None, "sso.refused", None, address, Some(refusal.to_string()));
            page(status, "Sign-in refused", &refusal.to_string(), None)
        }
    };
    let mut response = response;
    response.headers_mut().append(header::SET_COOKIE, clear);
    Ok(response)
}

/// The callback's work: checks the answer, exchanges the code, finds or makes the user, and
/// makes the sign-in. The user, where to go, and the sign-in cookie.
async fn sign_in(
    state: &AppState,
    oidc: &Oidc,
    headers: &HeaderMap,
    query: CallbackQuery,
    address: Option<IpAddr>,
) -> Result<(User, String, HeaderValue), (StatusCode, Refusal)> {
    let bad = |refusal| (StatusCode::BAD_REQUEST, refusal);
    let given = query.state.unwrap_or_default();
    let cookie = named_cookie(headers, STATE_COOKIE).unwrap_or_default();
    // The answer must come back to the browser that asked, for an attempt not used yet.
    if given.is_empty() || !bool::from(given.as_bytes().ct_eq(cookie.as_bytes())) {
        return Err(bad(Refusal::UnknownState));
    }
    let attempt = oidc.attempts().remove(&given).filter(|a| a.started.elapsed() < ATTEMPT_LIFETIME);
    let attempt = attempt.ok_or_else(|| bad(Refusal::UnknownState))?;
    if let Some(error) = query.error {
        let described = query.error_description.map(|d| format!("{error} ({d})")).unwrap_or(error);
        return Err((StatusCode::FORBIDDEN, Refusal::Provider(described)));
    }
    let code = query.code.ok_or_else(|| bad(Refusal::Exchange("no code".to_owned())))?;
    let client =
        oidc.client(&attempt.redirect).await.map_err(|e| bad(Refusal::Exchange(format!("{e:#}"))))?;
    let verified = client
        .exchange(&oidc.http, code, attempt.verifier, &attempt.nonce)
        .await
        .map_err(|e| bad(Refusal::Exchange(e)))?;
    let forbidden = |refusal| (StatusCode::FORBIDDEN, refusal);
    let email =
        verified.email.clone().filter(|e| !e.is_empty()).ok_or_else(|| forbidden(Refusal::NoEmail))?;
    if verified.email_verified == Some(false) {
        return Err(forbidden(Refusal::Unverified(email)));
    }
    let groups: Vec<String> = oidc
        .settings
        .groups_claim
        .as_ref()
        .and_then(|claim| verified.payload.get(claim))
        .map(|value| match value {
            serde_json::Value::Array(items) => {
                items.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect()
            }
            serde_json::Value::String(one) => vec![one.clone()],
            _ => Vec::new(),
        })
        .unwrap_or_default();
    let admin = oidc.is_admin(&email, &groups);
    let user = match state.users.by_subject_or_email(&verified.subject, &email) {
        Some(record) => {
            if record.subject.as_ref().is_some_and(|s| *s != verified.subject) {
                return Err(forbidden(Refusal::OtherIdentity(email)));
            }
            if record.user.disabled {
                return Err(forbidden(Refusal::Disabled(email)));
            }
            let subject = verified.subject.clone();
            let (_, after) = state
                .users
                .update(record.user.id, move |r| {
                    r.subject = Some(subject);
                    r.user.last_seen_at = Some(chrono::Utc::now());
                    // The flags promote; they never demote someone an admin made admin.
                    if admin {
                        r.user.role = Role::Admin;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| bad(Refusal::Exchange(e.to_string())))?;
            after
        }
        None => {
            if !oidc.may_sign_up(&email) {
                return Err(forbidden(Refusal::NotAllowed(email)));
            }
            let name =
                verified.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| email.clone());
            let role = if admin { Role::Admin } else { Role::Member };
            let user = state
                .users
                .create(name, email.clone(), role, Some(verified.subject.clone()))
                .await
                .map_err(|e| bad(Refusal::Exchange(e.to_string())))?;
            let detail = format!(
                "{} <{}> (single sign-on, {})",
                user.name,
                user.email,
                if admin { "admin" } else { "member" }
            );
            audit::record_as(
                state,
                Some(&user.name),
                Some(&Owner::from(&user)),
                "user.created",
                Some(user.id.to_string()),
                address,
                Some(detail),
            );
            user
        }
    };
    let principal = user_principal(&user, address);
    let (value, record) = state.logins.create(principal, state.admin_token.as_deref(), true);
    state
        .store
        .call(move |store| store.insert_login(&record))
        .await
        .map_err(|e| bad(Refusal::Exchange(format!("{e:#}"))))?;
    let cookie = set_cookie(state, &value, crate::auth::LOGIN_LIFETIME.as_secs())
        .map_err(|e| bad(Refusal::Exchange(e.to_string())))?;
    Ok((user, attempt.next, cookie))
}

/// The state cookie: `Lax`, so the provider's cross-site answer carries it; only on its paths.
fn state_cookie(state: &AppState, value: &str, max_age: u64) -> Result<HeaderValue, AppError> {
    let secure = if state.config.tls_enabled() { "; Secure" } else { "" };
    let cookie = format!(
        "{STATE_COOKIE}={value}; Path=/api/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.into()))
}

/// `next` as given if it is a path on HQ itself, else `/`: no scheme, no `//host`, no
/// backslashes (which browsers read as slashes), no control characters.
pub fn safe_next(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    if local { next.to_owned() } else { "/".to_owned() }
}

/// A small HTML page (no scripts: the CSP allows none inline), optionally moving on to `next`.
fn page(status: StatusCode, title: &str, message: &str, next: Option<&str>) -> Response {
    let refresh = next
        .map(|next| format!("<meta http-equiv=\"refresh\" content=\"0; url={}\">", escape(next)))
        .unwrap_or_default();
    let link = match next {
        Some(next) => format!("<p><a href=\"{}\">Continue</a></p>", escape(next)),
        None => {
            format!("<p><a href=\"{LOGIN_PATH}\">Try again</a> · <a href=\"/\">Sign in another way</a></p>")
        }
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}<title>{title} · AgentRelay</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head><body style=\"font-family: system-ui, sans-serif; \
         max-width: 40rem; margin: 4rem auto; padding: 0 1rem\"><h1>{title}</h1><p id=\"message\">{}</p>{link}</body></html>",
        escape(message)
    );
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Escapes text for HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_hq() {
        assert_eq!(safe_next("/sessions/01a2?x=1"), "/sessions/01a2?x=1");
        for away in
            ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/a\nb", ""]
        {
            assert_eq!(safe_next(away), "/", "{away:?}");
        }
    }
}
