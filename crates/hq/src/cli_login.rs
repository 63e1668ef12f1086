//! The CLI's browser sign-in (`agentrelay login` on a terminal). The CLI listens on a loopback
//! port, makes a PKCE verifier and opens `/api/auth/cli?port&state&code_challenge&host` in the
//! browser. There, signed in to the dashboard, the person is asked "Allow the CLI on <host> to
//! act as you?". Allowing sends the browser to `http://127.0.0.1:<port>/callback` with a
//! one-time code (never a token: a URL ends up in histories and logs). The CLI trades that code,
//! with the verifier only it knows, for a token at `POST /api/auth/cli/token`: a code seen by
//! anyone else is worth nothing without the verifier, and it works once, for two minutes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agentrelay_protocol::requests::CliTokenRequest;
use agentrelay_protocol::{CreatedToken, ErrorResponse, Role, Scope};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::api::JsonObject;
use crate::audit;
use crate::auth::{Principal, check_origin, cookie_principal};
use crate::error::AppError;
use crate::oidc::escape;
use crate::state::AppState;
use crate::tokens::NewToken;

/// How long a code waits for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(120);
/// Codes waiting at most.
const MAX_CODES: usize = 1_000;

/// A code handed to a CLI, waiting for its exchange.
struct Pending {
    user_id: Uuid,
    challenge: String,
    host: String,
    issued: Instant,
}

/// Codes handed to CLIs' loopback listeners, by the SHA-256 of the code.
#[derive(Default)]
pub struct CliLogins {
    codes: Mutex<HashMap<[u8; 32], Pending>>,
}

impl CliLogins {
    fn issue(&self, pending: Pending) -> String {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let mut codes = crate::lock(&self.codes);
        codes.retain(|_, p| p.issued.elapsed() < CODE_LIFETIME);
        if codes.len() < MAX_CODES {
            codes.insert(Sha256::digest(code.as_bytes()).into(), pending);
        }
        code
    }

    /// Takes a code out (it works once), if it is known and fresh.
    fn redeem(&self, code: &str) -> Option<Pending> {
        let hash: [u8; 32] = Sha256::digest(code.as_bytes()).into();
        crate::lock(&self.codes).remove(&hash).filter(|p| p.issued.elapsed() < CODE_LIFETIME)
    }
}

/// What the CLI puts in the page's address (and the page in its form).
#[derive(Debug, Deserialize)]
pub struct CliRequest {
    port: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    host: Option<String>,
    /// The form's answer: `allow` or `deny`.
    decision: Option<String>,
}

/// The page's form, as the OpenAPI document describes it (HQ reads it as a [`CliRequest`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only described.
pub struct CliDecision {
    /// The CLI's loopback port.
    #[schema(minimum = 1, maximum = 65535)]
    port: u16,
    /// The CLI's state.
    #[schema(pattern = "^[A-Za-z0-9_-]{8,128}$")]
    state: String,
    /// base64url SHA-256 of the CLI's PKCE verifier.
    #[schema(pattern = "^[A-Za-z0-9_-]{43}$")]
    code_challenge: String,
    /// The CLI's machine.
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    host: String,
    /// `allow` or `deny`.
    decision: Decision,
}

/// The answer to the page's question.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only described.
pub enum Decision {
    /// Let the CLI act as you.
    Allow,
    /// Do not.
    Deny,
}

/// A checked [`CliRequest`].
struct Checked {
    port: u16,
    state: String,
    challenge: String,
    host: String,
}

impl CliRequest {
    fn check(&self) -> Result<Checked, &'static str> {
        let port = self.port.as_deref().and_then(|p| p.parse::<u16>().ok()).filter(|p| *p != 0);
        let port = port.ok_or("the CLI's port is missing or not a port")?;
        let url_safe = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let state = self.state.clone().filter(|s| (8..=128).contains(&s.len()) && url_safe(s));
        let state = state.ok_or("the CLI's state is missing or malformed")?;
        let challenge = self.code_challenge.clone().filter(|c| c.len() == 43 && url_safe(c));
        let challenge =
            challenge.ok_or("the CLI's code_challenge is missing or malformed (S256, base64url)")?;
        let host = self.host.clone().unwrap_or_default();
        let host =
            Some(host).filter(|h| (1..=100).contains(&h.chars().count()) && !h.chars().any(char::is_control));
        let host = host.ok_or("the CLI's host name is missing or too long")?;
        Ok(Checked { port, state, challenge, host })
    }
}

/// `GET /api/auth/cli?port&state&code_challenge&host`: "Allow the CLI on <host> to act as you?"
#[utoipa::path(
    get,
    path = "/api/auth/cli",
    tag = "auth",
    operation_id = "cli_login_page",
    security(()),
    params(
        ("port" = u16, Query, description = "The CLI's loopback port", minimum = 1, maximum = 65535),
        ("state" = String, Query, description = "The CLI's state, handed back to it",
            pattern = "^[A-Za-z0-9_-]{8,128}$"),
        ("code_challenge" = String, Query, description = "base64url SHA-256 of the CLI's PKCE verifier",
            pattern = "^[A-Za-z0-9_-]{43}$"),
        ("host" = String, Query, description = "The CLI's machine, to name it", min_length = 1, max_length = 100,
            pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"),
    ),
    responses(
        (status = 200, description = "The question (or, without a sign-in, where to sign in first)",
            content_type = "text/html", body = String),
        (status = 400, description = "A malformed request", content_type = "text/html", body = String),
    )
)]
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CliRequest>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(request)) = query else {
        return html(
            StatusCode::BAD_REQUEST,
            "Cannot sign the CLI in",
            "<p>The link is malformed.</p>",
            false,
        );
    };
    let checked = match request.check() {
        Ok(checked) => checked,
        Err(why) => {
            return html(
                StatusCode::BAD_REQUEST,
                "Cannot sign the CLI in",
                &format!("<p>{}</p>", escape(why)),
                false,
            );
        }
    };
    let here = format!(
        "/api/auth/cli?port={}&state={}&code_challenge={}&host={}",
        checked.port,
        checked.state,
        checked.challenge,
        percent_encode(&checked.host)
    );
    let Some(principal) = person(&state, &headers) else {
        let next = percent_encode(&here);
        let sso = state.oidc.as_ref().map(|_| {
            format!(
                "<p><a href=\"{}?next={next}\">Sign in with single sign-on</a></p>",
                crate::oidc::LOGIN_PATH
            )
        });
        let body = format!(
            "<p>Sign in to AgentRelay first; you will come back here.</p>{}<p><a href=\"/?next={next}\">Sign in with a token</a></p>",
            sso.unwrap_or_default()
        );
        return html(StatusCode::OK, "Sign in to continue", &body, false);
    };
    let who = principal.user.as_ref().map_or(principal.name.clone(), |u| {
        if u.email.is_empty() { u.name.clone() } else { format!("{} ({})", u.name, u.email) }
    });
    let field = |name: &str, value: &str| {
        format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value))
    };
    let body = format!(
        "<p id=\"question\">Allow the CLI on <strong>{host}</strong> to act as you, {who}?</p>\
         <p>It gets a token of its own, named after {host}, that you can revoke in Tokens.</p>\
         <form method=\"post\" action=\"/api/auth/cli\">{}{}{}{}\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        field("port", &checked.port.to_string()),
        field("state", &checked.state),
        field("code_challenge", &checked.challenge),
        field("host", &checked.host),
        host = escape(&checked.host),
        who = escape(&who),
    );
    html(StatusCode::OK, &format!("Allow the CLI on {}?", checked.host), &body, true)
}

/// The caller signed in to the dashboard as a person (not a share).
fn person(state: &AppState, headers: &HeaderMap) -> Option<Principal> {
    cookie_principal(state, headers)
        .filter(|p| matches!(p.scope, Scope::Admin | Scope::User) && p.user.is_some())
}

/// `POST /api/auth/cli` (the page's form): allow or deny; back to the CLI's loopback listener
/// with a one-time code, or with `error=access_denied`.
#[utoipa::path(
    post,
    path = "/api/auth/cli",
    tag = "auth",
    operation_id = "cli_login_decide",
    security(("cookie" = [])),
    request_body(content = CliDecision, content_type = "application/x-www-form-urlencoded",
        description = "The page's form"),
    responses(
        (status = 303, description = "To `http://127.0.0.1:{port}/callback?code=…&state=…` (or `error=access_denied`)",
            headers(("Location" = String, description = "The CLI's loopback listener"))),
        (status = 400, description = "A malformed form", content_type = "text/html", body = String),
        (status = 401, description = "Not signed in to the dashboard", body = ErrorResponse),
        (status = 403, description = "An `Origin` other than HQ's own", body = ErrorResponse),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<axum::extract::Form<CliRequest>, axum::extract::rejection::FormRejection>,
) -> Result<Response, AppError> {
    check_origin(&headers, state.config.public_url.as_deref())?;
    let principal = person(&state, &headers).ok_or(AppError::Unauthorized)?;
    let Ok(axum::extract::Form(request)) = form else {
        return Ok(html(
            StatusCode::BAD_REQUEST,
            "Cannot sign the CLI in",
            "<p>The form is malformed.</p>",
            false,
        ));
    };
    let checked = match request.check() {
        Ok(checked) => checked,
        Err(why) => {
            return Ok(html(
                StatusCode::BAD_REQUEST,
                "Cannot sign the CLI in",
                &format!("<p>{}</p>", escape(why)),
                false,
            ));
        }
    };
    let back = format!("http://127.0.0.1:{}/callback", checked.port);
    let location = if request.decision.as_deref() == Some("allow") {
        let user_id = principal.user_id().ok_or(AppError::Unauthorized)?;
        let code = state.cli_logins.issue(Pending {
            user_id,
            challenge: checked.challenge,
            host: checked.host.clone(),
            issued: Instant::now(),
        });
        audit::by_principal(&state, &principal, "cli.allowed", checked.host, None);
        format!("{back}?code={code}&state={}", checked.state)
    } else {
        audit::by_principal(&state, &principal, "cli.denied", checked.host, None);
        format!("{back}?error=access_denied&state={}", checked.state)
    };
    let location = HeaderValue::from_str(&location).map_err(|e| AppError::Internal(e.into()))?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

/// `POST /api/auth/cli/token` `{"code", "code_verifier"}` → 201 with a token named after the
/// CLI's host, of the person who allowed it (a `user` token; `admin` for an admin).
#[utoipa::path(
    post,
    path = "/api/auth/cli/token",
    tag = "auth",
    operation_id = "cli_login_token",
    security(()),
    request_body = CliTokenRequest,
    responses(
        (status = 201, description = "The token, shown once", body = CreatedToken),
        (status = 400, description = "A malformed body", body = ErrorResponse),
        (status = 403, description = "An unknown, used or expired code, or a verifier that does not match it",
            body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), AppError> {
    let mut body = JsonObject::parse(body)?;
    let code: Option<String> = body.take("code", "a string")?;
    let verifier: Option<String> = body.take("code_verifier", "a string")?;
    body.finish()?;
    let code = code.ok_or_else(|| AppError::bad_field("code", "'code' is required"))?;
    let verifier =
        verifier.ok_or_else(|| AppError::bad_field("code_verifier", "'code_verifier' is required"))?;
    let invalid = || {
        AppError::Forbidden(
            "the code is unknown, used or expired, or the verifier does not match it".to_owned(),
        )
    };
    let pending = state.cli_logins.redeem(&code).ok_or_else(invalid)?;
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if !bool::from(challenge.as_bytes().ct_eq(pending.challenge.as_bytes())) {
        return Err(invalid());
    }
    let user = state.users.get(pending.user_id).filter(|u| !u.disabled).ok_or_else(invalid)?;
    let scope = if user.role == Role::Admin { Scope::Admin } else { Scope::User };
    let name: String = format!("CLI on {}", pending.host).chars().take(100).collect();
    let new = NewToken { name, scope, expires_in: None, session_id: None, user_id: user.id, shared: false };
    let mut created = state.tokens.create(new).await?;
    let owner = agentrelay_protocol::Owner::from(&user);
    created.user = Some(owner.clone());
    let detail = format!(
        "{} ({:?}) for {} ({}), by the CLI's browser sign-in",
        created.name, scope, user.name, user.id
    );
    audit::record_as(
        &state,
        Some(&created.name),
        Some(&owner),
        "token.created",
        Some(created.id.to_string()),
        None,
        Some(detail),
    );
    Ok((StatusCode::CREATED, Json(created)))
}

/// Percent-encodes everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page; `to_cli` lets its form's answer go on to the CLI's loopback listener (the CSP's
/// `form-action` also governs where a form's redirect may lead).
fn html(status: StatusCode, title: &str, body: &str, to_cli: bool) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · AgentRelay</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head><body style=\"font-family: system-ui, sans-serif; \
         max-width: 40rem; margin: 4rem auto; padding: 0 1rem\"><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if to_cli {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CLI_PAGE_CSP));
    }
    response
}

/// The dashboard's CSP, with the CLI's loopback listener as a place the form may lead.
const CLI_PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self' http://127.0.0.1:*";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_only_for_its_verifier_hash() {
        let logins = CliLogins::default();
        let pending = || Pending {
            user_id: Uuid::nil(),
            challenge: "c".repeat(43),
            host: "h".into(),
            issued: Instant::now(),
        };
        let code = logins.issue(pending());
        assert!(logins.redeem("not-it").is_none());
        assert!(logins.redeem(&code).is_some());
        assert!(logins.redeem(&code).is_none(), "a code works once");
        let stale = logins.issue(Pending { issued: Instant::now() - CODE_LIFETIME, ..pending() });
        assert!(logins.redeem(&stale).is_none(), "an old code is worth nothing");
    }
}
