//! Who may call what: the admin token for the API and viewers, the runner token for runners, and
//! the `Origin` check that stops cross-site WebSocket hijacking.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::state::AppState;

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

/// Middleware: the request must carry the admin token.
pub async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let given = bearer_token(request.headers()).ok_or(AppError::Unauthorized)?;
    if !token_matches(given, &state.admin_token) {
        return Err(AppError::Unauthorized);
    }
    request.extensions_mut().insert(Principal { name: "admin".to_owned() });
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
