//! `/api/me` and `/api/users`: who the caller is; the people admins manage (create, change
//! role, disable). Disabling a user, or changing their role, cuts every connection and sign-in of
//! theirs at once, as revoking a token does.

use agentrelay_protocol::requests::{CreateUser, UpdateUser};
use agentrelay_protocol::{ErrorResponse, Role, User};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use uuid::Uuid;

use super::JsonObject;
use crate::audit;
use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;
use crate::users::UserError;

impl From<UserError> for AppError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::EmailTaken(_) => {
                AppError::Conflict { code: "email_taken", message: error.to_string() }
            }
            UserError::BuiltIn => AppError::Forbidden(error.to_string()),
            UserError::Unknown(_) => AppError::NotFound(error.to_string()),
            UserError::Store(error) => AppError::Internal(error),
        }
    }
}

/// `GET /api/me`: the user behind the caller's token or sign-in.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "users",
    operation_id = "me",
    responses(
        (status = 200, description = "The caller", body = User),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
    )
)]
pub async fn me(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<User>, AppError> {
    let user = principal.user_id().and_then(|id| state.users.get(id));
    Ok(Json(user.ok_or_else(|| AppError::NotFound("no user behind this token".to_owned()))?))
}

/// `GET /api/users`: everyone, oldest first (admins).
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    operation_id = "list_users",
    responses(
        (status = 200, description = "Every user, oldest first", body = [User]),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Not an admin", body = ErrorResponse),
    )
)]
pub async fn list(State(state): State<AppState>) -> Json<Vec<User>> {
    Json(state.users.list())
}

/// `POST /api/users` `{"name", "email", "role"?}` → 201 with the user (admins). Single sign-on
/// finds them by their e-mail address when they first sign in.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    operation_id = "create_user",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The new user", body = User),
        (status = 400, description = "A bad field (named in `field`), or not a JSON object", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Not an admin, or a sign-in cookie from another origin", body = ErrorResponse),
        (status = 409, description = "`email_taken`: another user has this e-mail address", body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<User>), AppError> {
    let mut body = JsonObject::parse(body)?;
    let name: Option<String> = body.take("name", "a string")?;
    let email: Option<String> = body.take("email", "an e-mail address (string)")?;
    let role: Option<Role> = body.take("role", "\"admin\" or \"member\"")?;
    body.finish()?;
    let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty() && n.chars().count() <= 100);
    let name = name.ok_or_else(|| AppError::bad_field("name", "'name' must be 1 to 100 characters"))?;
    let email = email.map(|e| e.trim().to_owned()).filter(|e| valid_email(e));
    let email = email.ok_or_else(|| AppError::bad_field("email", "'email' must be an e-mail address"))?;
    let user = state.users.create(name, email, role.unwrap_or(Role::Member), None).await?;
    let detail = format!("{} <{}> ({})", user.name, user.email, role_name(user.role));
    audit::by_principal(&state, &principal, "user.created", user.id.to_string(), Some(detail));
    if let Some(cluster) = &state.cluster {
        cluster.send(crate::cluster::feed::FeedMessage::Users);
    }
    Ok((StatusCode::CREATED, Json(user)))
}

/// An e-mail address as HQ takes one: `local@domain`, 3 to 254 characters, no white space.
pub(crate) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    (3..=254).contains(&email.len())
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Member => "member",
    }
}

/// `PATCH /api/users/{id}` `{"role"?, "disabled"?}` → 200 with the user (admins). Disabling,
/// or changing the role, ends the user's sign-ins and cuts every connection of theirs.
#[utoipa::path(
    patch,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "update_user",
    params(("id" = Uuid, Path, description = "User id")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The user, changed", body = User),
        (status = 400, description = "A bad field, or not a JSON object", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Not an admin, a sign-in cookie from another origin, or the built-in \
            admin (which cannot be disabled or demoted)", body = ErrorResponse),
        (status = 404, description = "No user with this id", body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<User>, AppError> {
    let mut body = JsonObject::parse(body)?;
    let role: Option<Role> = body.take("role", "\"admin\" or \"member\"")?;
    let disabled: Option<bool> = body.take("disabled", "true or false")?;
    body.finish()?;
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound(format!("no user '{id}'")))?;
    let (before, after) = state
        .users
        .update(id, |record| {
            if let Some(role) = role {
                record.user.role = role;
            }
            if let Some(disabled) = disabled {
                record.user.disabled = disabled;
            }
            Ok(())
        })
        .await?;
    if after.disabled != before.disabled || after.role != before.role {
        cut_off(&state, id).await?;
    }
    if let Some(cluster) = &state.cluster {
        // Other replicas reread users; a cut user is cut off there too.
        let cut = after.disabled != before.disabled || after.role != before.role;
        cluster.send(if cut {
            crate::cluster::feed::FeedMessage::UserCut(id)
        } else {
            crate::cluster::feed::FeedMessage::Users
        });
    }
    let detail = format!(
        "{}: role {} → {}, disabled {} → {}",
        after.name,
        role_name(before.role),
        role_name(after.role),
        before.disabled,
        after.disabled
    );
    let action = match (before.disabled, after.disabled) {
        (false, true) => "user.disabled",
        (true, false) => "user.enabled",
        _ => "user.changed",
    };
    audit::by_principal(&state, &principal, action, id.to_string(), Some(detail));
    Ok(Json(after))
}

/// Ends a user's sign-ins and cuts every connection made with their tokens or sign-ins: they
/// come back (if they still may) with what their user now allows.
async fn cut_off(state: &AppState, id: Uuid) -> Result<(), AppError> {
    state.tokens.cut_user(id);
    let gone = state.logins.remove_user(id);
    state
        .store
        .call(move |store| {
            for hash in gone {
                store.delete_login(hash)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}
