//! Request bodies of the REST API and the small answers without a home elsewhere. HQ reads
//! bodies field by field (so a 400 names the field at fault); these types are the contract it
//! reads them against, and what `/api/openapi.json` describes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/sessions`: one of `runner_id`, `runner` or `labels`; one of `command` or `preset`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSession {
    /// The runner, by id.
    pub runner_id: Option<Uuid>,
    /// The runner, by name.
    #[cfg_attr(feature = "openapi", schema(examples("laptop")))]
    pub runner: Option<String>,
    /// Any online runner with these labels (the one with the fewest live sessions); `{}` is any
    /// online runner.
    pub labels: Option<BTreeMap<String, String>>,
    /// argv, e.g. `["bash", "-l"]`: a program, then its arguments.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub command: Option<Vec<String>>,
    /// A preset the runner offers, e.g. `claude` (an unknown one is a 400 naming `preset`).
    #[cfg_attr(feature = "openapi", schema(examples("claude")))]
    pub preset: Option<String>,
    /// Working directory on the runner.
    pub cwd: Option<String>,
    /// A name for people: 1 to 100 characters, not all white space (default: the preset's name,
    /// else the command line).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100, examples("fix-login-bug")))]
    pub name: Option<String>,
    /// Extra environment (loader variables are dropped unless the runner allows them).
    pub env: Option<BTreeMap<String, String>>,
    /// Initial rows, 1–1000 (default 24).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub rows: Option<u16>,
    /// Initial columns, 1–1000 (default 80).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub cols: Option<u16>,
    /// The agent's initial task, with a `preset` that takes one (`takes_prompt`): Claude Code
    /// and Codex get it as their prompt argument, Gemini CLI with `--prompt-interactive`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, examples("Fix the failing test in src/lib.rs")))]
    pub prompt: Option<String>,
    /// Start in a new git worktree of one of the runner's repositories (`repos` in
    /// `GET /api/runners`), on a new branch; not with `cwd`.
    pub workspace: Option<crate::workspace::WorkspaceSpec>,
}

/// `PATCH /api/sessions/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateSession {
    /// The new name (1 to 100 characters, not all white space), or `null` to clear it.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100, examples("fix-login-bug")))]
    pub name: Option<String>,
}

/// `POST /api/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateToken {
    /// A name for people: 1 to 100 characters, not all white space.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100, examples("ci")))]
    pub name: String,
    /// `admin`, `user` or `runner` (shares are made per session).
    pub scope: crate::Scope,
    /// Seconds, or a duration such as `"30d"`; without it the token lasts until revoked.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "30d"))]
    pub expires_in: Option<serde_json::Value>,
    /// Admins only: the user it is for, by id or e-mail (default: the caller).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, examples("ann@example.com")))]
    pub user: Option<String>,
    /// Admins only, with `"scope": "runner"`: runners it enrolls are shared, usable by every
    /// member (default: personal to the token's user).
    pub shared: Option<bool>,
}

/// `POST /api/users` (admins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUser {
    /// A name for people: 1 to 100 characters, not all white space.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100, examples("Ann")))]
    pub name: String,
    /// Their e-mail address, unique among users (single sign-on finds them by it).
    #[cfg_attr(feature = "openapi", schema(min_length = 3, max_length = 254, examples("ann@example.com")))]
    pub email: String,
    /// `admin` or `member` (default `member`).
    pub role: Option<crate::Role>,
}

/// `PATCH /api/users/{id}` (admins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateUser {
    /// The new role.
    pub role: Option<crate::Role>,
    /// `true` cuts every connection, sign-in and token of theirs within 2 seconds.
    pub disabled: Option<bool>,
}

/// `POST /api/sessions/{id}/grants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateGrant {
    /// The teammate, by id or e-mail.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, examples("bob@example.com")))]
    pub user: String,
    /// `view` (read-only) or `drive` (types too).
    pub access: crate::Access,
}

/// `POST /api/auth/cli/token`: the CLI trades the one-time code HQ handed its loopback listener,
/// with the PKCE verifier only it knows, for a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CliTokenRequest {
    /// The one-time code.
    pub code: String,
    /// The PKCE verifier whose SHA-256 (base64url) was the `code_challenge`.
    pub code_verifier: String,
}

/// `POST /api/login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Login {
    /// An admin, user or share token.
    pub token: String,
}

/// `POST /api/sessions/{id}/input`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Input {
    /// Text to type.
    pub text: Option<String>,
    /// Press Enter after the text.
    pub enter: Option<bool>,
    /// `now` (the default) types at once; `waiting` queues the input until the session next
    /// waits for input (at once if it waits now), one queued item per wait.
    pub when: Option<InputWhen>,
}

/// When `POST /api/sessions/{id}/input` types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InputWhen {
    /// At once.
    #[default]
    Now,
    /// The next time the session's activity is `waiting_for_input`.
    Waiting,
}

/// Input queued until a session waits for input (`"when": "waiting"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedInput {
    /// Its id, to cancel it with `DELETE /api/sessions/{id}/input/queue/{item_id}`.
    pub id: Uuid,
    /// The text it types.
    pub text: String,
    /// Whether Enter follows.
    pub enter: bool,
    /// Who queued it.
    pub queued_by: String,
    /// When.
    pub queued_at: chrono::DateTime<chrono::Utc>,
}

/// `POST /api/sessions/{id}/shares`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateShare {
    /// How long the link works, e.g. `"1h"` (default 24h, at most 30d).
    pub expires_in: Option<String>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or `unavailable` (readiness only).
    pub status: String,
    /// Why HQ is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version {
    /// HQ's version.
    pub version: String,
    /// The runner protocol version HQ speaks.
    pub protocol_version: u32,
    /// The oldest runner protocol version HQ accepts.
    pub min_protocol_version: u32,
    /// Which replica answered (`--replica-name`), when HQ runs as one of several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}
