//! `/api/sessions/{id}/grants`: a session's owner (or an admin, on a shared runner) lets a
//! teammate watch (`view`) or drive (`drive`) it; revoking a grant closes that teammate's viewers
//! at once.

use agentrelay_protocol::requests::CreateGrant;
use agentrelay_protocol::{Access, ErrorResponse, Grant, Owner};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use uuid::Uuid;

use super::JsonObject;
use crate::audit;
use crate::auth::Principal;
use crate::authz::{self, Need};
use crate::error::AppError;
use crate::events::Event;
use crate::session::Session;
use crate::state::AppState;
use crate::store::GrantRecord;

/// A grant as the API shows it.
fn grant(state: &AppState, record: &GrantRecord) -> Grant {
    let unknown = |id: Uuid| Owner { id, name: "(unknown)".to_owned(), email: String::new() };
    Grant {
        user: state.users.owner(record.user_id).unwrap_or_else(|| unknown(record.user_id)),
        access: record.access,
        granted_by: record.granted_by.map(|id| state.users.owner(id).unwrap_or_else(|| unknown(id))),
        created_at: record.created_at,
    }
}

/// Tells `/api/events` the session changed (who sees it did), without saving anything new.
fn announce(state: &AppState, session: &Session) {
    state.events.publish(Event::Session(Box::new(session.view())));
}

/// `POST /api/sessions/{id}/grants` `{"user", "access"}` → 201 with the grant.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/grants",
    tag = "sessions",
    operation_id = "grant_session",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = CreateGrant,
    responses(
        (status = 201, description = "Granted (a grant to the same user is replaced)", body = Grant),
        (status = 400, description = "A bad field, or not a JSON object", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Neither the session's owner nor (on a shared runner) an admin; a \
            share or runner token; or a sign-in cookie from another origin", body = ErrorResponse),
        (status = 404, description = "No session with this id (that the caller may see), or no such user",
            body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<Grant>), AppError> {
    let mut body = JsonObject::parse(body)?;
    let user: Option<String> = body.take("user", "a user id or e-mail (string)")?;
    let access: Option<Access> = body.take("access", "\"view\" or \"drive\"")?;
    body.finish()?;
    let user = user.ok_or_else(|| AppError::bad_field("user", "'user' is required: an id or e-mail"))?;
    let access =
        access.ok_or_else(|| AppError::bad_field("access", "'access' is required: view or drive"))?;
    let session = authz::session(&state, &principal, &id, Need::Manage)?;
    let grantee = state.users.find(&user).ok_or_else(|| AppError::NotFound(format!("no user '{user}'")))?;
    if session.owner.as_ref().is_some_and(|o| o.id == grantee.id) {
        return Err(AppError::bad_field("user", "the session is theirs already"));
    }
    if grantee.disabled {
        return Err(AppError::bad_field("user", format!("user '{user}' is disabled")));
    }
    let record = GrantRecord {
        user_id: grantee.id,
        access,
        granted_by: principal.user_id(),
        created_at: chrono::Utc::now(),
    };
    let saved = record.clone();
    let session_id = session.id;
    state.store.call(move |store| store.save_grant(session_id, &saved)).await?;
    session.grants.set(record.clone());
    if let Some(cluster) = &state.cluster {
        cluster.send(crate::cluster::feed::FeedMessage::grant(session.id, record.user_id, Some(&record)));
    }
    announce(&state, &session);
    let detail = format!("{} ({}): {access:?}", grantee.name, grantee.id);
    audit::by_principal(&state, &principal, "session.granted", session.id.to_string(), Some(detail));
    Ok((StatusCode::CREATED, Json(grant(&state, &record))))
}

/// `GET /api/sessions/{id}/grants`: who else may watch or drive the session.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/grants",
    tag = "sessions",
    operation_id = "list_grants",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session's grants, oldest first", body = [Grant]),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
        (status = 404, description = "No session with this id (that the caller may see)", body = ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Grant>>, AppError> {
    let session = authz::session(&state, &principal, &id, Need::See)?;
    Ok(Json(session.grants.list().iter().map(|g| grant(&state, g)).collect()))
}

/// `DELETE /api/sessions/{id}/grants/{user_id}` → 204; that user's open viewers close at once.
#[utoipa::path(
    delete,
    path = "/api/sessions/{id}/grants/{user_id}",
    tag = "sessions",
    operation_id = "revoke_grant",
    params(
        ("id" = Uuid, Path, description = "Session id"),
        ("user_id" = Uuid, Path, description = "The grantee's user id"),
    ),
    responses(
        (status = 204, description = "Revoked; their viewers are closed"),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Neither the session's owner nor (on a shared runner) an admin; a \
            share or runner token; or a sign-in cookie from another origin", body = ErrorResponse),
        (status = 404, description = "No such session (that the caller may see), or no grant to this user",
            body = ErrorResponse),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let session = authz::session(&state, &principal, &id, Need::Manage)?;
    let not_found = || AppError::NotFound(format!("session {id} has no grant to '{user_id}'"));
    let user = Uuid::parse_str(&user_id).map_err(|_| not_found())?;
    let session_id = session.id;
    let existed = state.store.call(move |store| store.delete_grant(session_id, user)).await?;
    if !session.grants.remove(user) && !existed {
        return Err(not_found());
    }
    if let Some(cluster) = &state.cluster {
        // Other replicas close this user's viewers of the session too.
        cluster.send(crate::cluster::feed::FeedMessage::grant(session.id, user, None));
    }
    announce(&state, &session);
    audit::by_principal(
        &state,
        &principal,
        "session.grant_revoked",
        session.id.to_string(),
        Some(user.to_string()),
    );
    Ok(StatusCode::NO_CONTENT)
}
