//! People: users and their roles, who owns a runner or a session, grants on sessions, and what
//! sign-in methods HQ offers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a user may do beyond their own runners and sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users and tokens, reads the audit log, sees every session's metadata, ends any
    /// session and uses shared runners' sessions (never someone's personal runner).
    Admin,
    /// Their own runners, their own sessions and the sessions granted to them; shared runners.
    Member,
}

/// A person (`GET /api/me`, `GET /api/users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// Their e-mail address (empty for the built-in admin and for users an upgrade made from
    /// tokens).
    pub email: String,
    /// `admin` or `member`.
    pub role: Role,
    /// A disabled user cannot sign in, and their tokens and connections stop working.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When HQ last saw them sign in or use a token (to the minute).
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Who owns a runner or a session, or holds a token or a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Owner {
    /// User id.
    pub id: Uuid,
    /// Their name.
    pub name: String,
    /// Their e-mail address (may be empty).
    pub email: String,
}

impl From<&User> for Owner {
    fn from(user: &User) -> Self {
        Self { id: user.id, name: user.name.clone(), email: user.email.clone() }
    }
}

/// What a grant lets a teammate do with a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Watch it read-only (keystrokes are dropped with an `error` frame, as for shares).
    View,
    /// Watch it and type into it.
    Drive,
}

/// A teammate's access to a session (`GET /api/sessions/{id}/grants`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grant {
    /// Who may.
    pub user: Owner,
    /// What they may.
    pub access: Access,
    /// Who granted it.
    pub granted_by: Option<Owner>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// `GET /api/auth/config`: how people sign in to this HQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthConfig {
    /// Single sign-on, when HQ is configured for it.
    pub sso: Option<SsoInfo>,
}

/// The single sign-on button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SsoInfo {
    /// Its label (`--oidc-name`): "Sign in with <name>".
    pub name: String,
    /// Where the button goes (add `?next=/relative/path`).
    pub login_url: String,
}
