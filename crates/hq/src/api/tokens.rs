//! `/api/tokens`: create, list and revoke managed tokens. Members make, list and revoke their own
//! (`user` and personal `runner` tokens); admins anyone's, of any scope, and shared runner tokens.

use agentrelay_protocol::requests::CreateToken;
use agentrelay_protocol::{CreatedToken, ErrorResponse, Owner, Role, Scope, TokenInfo};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use uuid::Uuid;

use super::JsonObject;
use crate::audit;
use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::TokenRecord;
use crate::tokens::NewToken;

/// `POST /api/tokens` `{"name", "scope", "expires_in"?, "user"?, "shared"?}` → 201 with the
/// secret, shown this once. `expires_in` is seconds or a duration such as `"30d"`.
#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "tokens",
    operation_id = "create_token",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The secret, shown once", body = CreatedToken),
        (status = 400, description = "A bad field (named in `field`), or not a JSON object",
            body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A member asking for an `admin` token, another `user`'s token or a \
            `shared` one; an `admin` token for a member; a share or runner token; or a sign-in cookie from \
            another origin", body = ErrorResponse),
        (status = 404, description = "No such `user`", body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), AppError> {
    let mut body = JsonObject::parse(body)?;
    let name: Option<String> = body.take("name", "a string")?;
    let scope: Option<Scope> = body.take("scope", "one of \"admin\", \"user\", \"runner\"")?;
    let expires_in: Option<serde_json::Value> =
        body.take("expires_in", "seconds or a duration like \"30d\"")?;
    let user: Option<String> = body.take("user", "a user id or e-mail (string)")?;
    let shared: Option<bool> = body.take("shared", "true or false")?;
    body.finish()?;
    let name = name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| AppError::bad_field("name", "'name' is required"))?;
    if name.chars().count() > 100 {
        return Err(AppError::bad_field("name", "'name' is at most 100 characters"));
    }
    let scope =
        scope.ok_or_else(|| AppError::bad_field("scope", "'scope' is required: admin, user or runner"))?;
    if scope == Scope::Share {
        return Err(AppError::bad_field("scope", "share tokens are made per session, not here"));
    }
    let expires_in = match expires_in {
        None => None,
        Some(value) => Some(parse_expiry(&value).ok_or_else(|| {
            AppError::bad_field(
                "expires_in",
                "'expires_in' must be positive seconds or a duration like \"30d\", at most 100y",
            )
        })?),
    };
    let admin = principal.is_admin();
    let owner = match user {
        None => principal
            .user
            .clone()
            .ok_or_else(|| AppError::Forbidden("no user behind this token".to_owned()))?,
        Some(_) if !admin => {
            return Err(AppError::Forbidden("only admins make tokens for other users".to_owned()));
        }
        Some(wanted) => state
            .users
            .find(&wanted)
            .map(|u| Owner::from(&u))
            .ok_or_else(|| AppError::NotFound(format!("no user '{wanted}'")))?,
    };
    if scope == Scope::Admin {
        let holder_is_admin = state.users.get(owner.id).is_some_and(|u| u.role == Role::Admin);
        if !admin || !holder_is_admin {
            return Err(AppError::Forbidden("admin tokens are made by admins, for admins".to_owned()));
        }
    }
    let shared = shared.unwrap_or(false);
    if shared && scope != Scope::Runner {
        return Err(AppError::bad_field("shared", "'shared' goes with \"scope\": \"runner\""));
    }
    if shared && !admin {
        return Err(AppError::Forbidden("only admins make shared runner tokens".to_owned()));
    }
    let new = NewToken { name, scope, expires_in, session_id: None, user_id: owner.id, shared };
    let mut created = state.tokens.create(new).await?;
    created.user = Some(owner.clone());
    let detail = format!(
        "{} ({:?}{}) for {} ({})",
        created.name,
        created.scope,
        if shared { ", shared" } else { "" },
        owner.name,
        owner.id
    );
    audit::by_principal(&state, &principal, "token.created", created.id.to_string(), Some(detail));
    Ok((StatusCode::CREATED, Json(created)))
}

/// The longest a token may live: 100 years (`"100y"`). Longer ones overflowed the expiry date
/// (a panic, or, past what `chrono` takes, a token that never expired).
pub(crate) const MAX_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(100 * 31_557_600);

/// An `expires_in`: positive seconds, or a positive duration like `"30d"`, up to 100 years.
pub(super) fn parse_expiry(value: &serde_json::Value) -> Option<std::time::Duration> {
    let duration = match value {
        serde_json::Value::Number(n) => n.as_u64().map(std::time::Duration::from_secs),
        serde_json::Value::String(text) => humantime::parse_duration(text).ok(),
        _ => None,
    };
    duration.filter(|d| !d.is_zero() && *d <= MAX_TOKEN_LIFETIME)
}

/// `GET /api/tokens`: active tokens, without secrets: the caller's own, or every one for admins.
#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    responses(
        (status = 200, description = "Active tokens (the caller's own; every one for admins), never \
            their secrets", body = [TokenInfo]),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<Vec<TokenInfo>> {
    let tokens = state.tokens.list().into_iter().filter(|t| visible(&principal, t));
    Json(tokens.map(|t| info(&state, t)).collect())
}

/// Whether the caller sees (and may revoke) a token: its own, or any for admins.
fn visible(principal: &Principal, token: &TokenRecord) -> bool {
    principal.is_admin() || principal.user_id() == Some(token.user_id)
}

/// A token as listed, with its user.
fn info(state: &AppState, token: TokenRecord) -> TokenInfo {
    TokenInfo { user: state.users.owner(token.user_id), ..token.info }
}

/// `DELETE /api/tokens/{id}` → 204; its live connections are cut.
#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    tag = "tokens",
    operation_id = "revoke_token",
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked; its live connections are cut"),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No active token with this id (that the caller may see)",
            body = ErrorResponse),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let not_found = || AppError::NotFound(format!("no active token with id '{id}'"));
    let token_id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let mine = state.tokens.list().into_iter().any(|t| t.info.id == token_id && visible(&principal, &t));
    if !mine || !state.tokens.revoke(token_id).await? {
        return Err(not_found());
    }
    audit::by_principal(&state, &principal, "token.revoked", token_id.to_string(), None);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn an_expiry_is_positive_and_at_most_100_years() {
        assert_eq!(parse_expiry(&json!(3600)), Some(Duration::from_secs(3600)));
        assert_eq!(parse_expiry(&json!("1h 30m")), Some(Duration::from_secs(5400)));
        assert_eq!(parse_expiry(&json!("100y")), Some(MAX_TOKEN_LIFETIME));
        for refused in
            [json!(0), json!("0s"), json!(-5), json!("101y"), json!(10_000_000_000_000_u64), json!(u64::MAX)]
        {
            assert_eq!(parse_expiry(&refused), None, "{refused}");
        }
    }
}
