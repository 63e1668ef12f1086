//! The audit log: who signed in, made or revoked tokens, registered runners, started, killed or
//! attached to sessions; when, and from where. Entries go to the store off the request path.

use std::net::IpAddr;

use agentrelay_protocol::{AuditEntry, ErrorResponse, Owner};
use axum::Json;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::Deserialize;

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// Appends an entry with no user behind it (a refused sign-in, a runner).
pub fn record(
    state: &AppState,
    actor: Option<&str>,
    action: &str,
    target: Option<String>,
    address: Option<IpAddr>,
    detail: Option<String>,
) {
    record_as(state, actor, None, action, target, address, detail);
}

/// Appends an entry naming the user behind it.
pub fn record_as(
    state: &AppState,
    actor: Option<&str>,
    user: Option<&Owner>,
    action: &str,
    target: Option<String>,
    address: Option<IpAddr>,
    detail: Option<String>,
) {
    state.store.audit(AuditEntry {
        at: Utc::now(),
        actor: actor.map(str::to_owned),
        user_id: user.map(|u| u.id),
        user: user.map(|u| u.name.clone()),
        action: action.to_owned(),
        target,
        address: address.map(|a| a.to_string()),
        detail,
    });
}

/// Appends an entry for something an authenticated caller did, from where they did it.
pub fn by_principal(
    state: &AppState,
    principal: &Principal,
    action: &str,
    target: String,
    detail: Option<String>,
) {
    record_as(
        state,
        Some(&principal.name),
        principal.user.as_ref(),
        action,
        Some(target),
        principal.address,
        detail,
    );
}

/// Query of `GET /api/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many entries, newest first: 100 unless given; 0 counts as 1, and more than 1000 as 1000.
    #[param(minimum = 0, maximum = 18446744073709551615_u64)]
    limit: Option<usize>,
}

/// `GET /api/audit`: the newest entries first (admin only).
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "tokens",
    operation_id = "list_audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Audit entries, newest first", body = [AuditEntry]),
        (status = 400, description = "`limit` is not a whole number", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Not an admin", body = ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, AppError> {
    let Query(query) = query.map_err(|_| AppError::bad_field("limit", "'limit' must be a number"))?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.store.call(move |store| store.audit(limit)).await?))
}
