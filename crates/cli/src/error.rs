//! `CliError`: what can go wrong talking to HQ, told apart so callers know what is worth retrying.

/// An error of the CLI, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Missing or unreadable configuration (no HQ, no token, bad file).
    #[error("{0}")]
    Config(String),
    /// HQ could not be reached (connection refused, DNS, TLS, timeout).
    #[error("cannot reach HQ at {url}: {reason}")]
    Unreachable {
        /// The HQ address tried.
        url: String,
        /// The innermost cause.
        reason: String,
    },
    /// HQ answered 401: the token is wrong, revoked or expired.
    #[error("HQ at {url} refused the token: it is wrong, revoked or expired (run `agentrelay login`)")]
    Unauthorized {
        /// The HQ address.
        url: String,
    },
    /// HQ answered with an error body.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The contract's error code, e.g. `not_found`.
        code: String,
        /// HQ's sentence.
        message: String,
    },
    /// Whoever read stdout went away; the command ends quietly.
    #[error("stdout was closed")]
    BrokenPipe,
    /// Anything else (I/O on stdout, a malformed answer).
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// Whether a later attempt may succeed (HQ down or restarting), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// The innermost cause of an error, which is usually the one that says what happened.
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
