//! `AppError`: the one error type at the HTTP edge, rendered as the contract's JSON error body.

use agentrelay_protocol::{ErrorBody, ErrorResponse};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error a REST handler returns; each variant maps to one status and code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request is malformed; `field` names the part at fault.
    #[error("{message}")]
    BadRequest {
        /// The request field at fault, if one is.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// 401: no valid credentials.
    #[error("missing or invalid token")]
    Unauthorized,
    /// 403: authenticated, or from a foreign origin, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: an unknown session, runner or route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the runner is not connected.
    #[error("{0}")]
    RunnerOffline(String),
    /// 409: no online runner carries the requested labels.
    #[error("{0}")]
    NoMatchingRunner(String),
    /// 409: a configured limit (sessions per runner, viewers per session) is reached.
    #[error("{0}")]
    LimitReached(String),
    /// 409: the session has ended, so it cannot take input or show a screen.
    #[error("{0}")]
    SessionEnded(String),
    /// 429: too many attempts.
    #[error("{0}")]
    RateLimited(String),
    /// 413: the request body is too large.
    #[error("{0}")]
    TooLarge(String),
    /// 409: the request conflicts with how things are (a dirty repository, an existing branch,
    /// nothing to commit); `code` says which.
    #[error("{message}")]
    Conflict {
        /// The stable code, e.g. `branch_exists`.
        code: &'static str,
        /// What is in the way.
        message: String,
    },
    /// 501: the runner is too old for what was asked.
    #[error("{0}")]
    NotImplemented(String),
    /// 502: the runner tried and failed (git failed, a push was refused).
    #[error("{0}")]
    RunnerFailed(String),
    /// 504: the runner did not answer in time.
    #[error("{0}")]
    RunnerTimeout(String),
    /// 500: a bug or an I/O failure; the details go to the log, not the client.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A 400 naming the bad field.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        Self::BadRequest { field: Some(field.to_owned()), message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::RunnerOffline(_) => (StatusCode::CONFLICT, "runner_offline"),
            Self::NoMatchingRunner(_) => (StatusCode::CONFLICT, "no_matching_runner"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::LimitReached(_) => (StatusCode::CONFLICT, "limit_reached"),
            Self::SessionEnded(_) => (StatusCode::CONFLICT, "session_ended"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            Self::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
            Self::RunnerFailed(_) => (StatusCode::BAD_GATEWAY, "runner_failed"),
            Self::RunnerTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "runner_timeout"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                "internal error; see HQ's log".to_owned()
            }
            other => other.to_string(),
        };
        let field = match self {
            Self::BadRequest { field, .. } => field,
            _ => None,
        };
        let body = ErrorResponse { error: ErrorBody { code: code.to_owned(), message, field } };
        (status, Json(body)).into_response()
    }
}
