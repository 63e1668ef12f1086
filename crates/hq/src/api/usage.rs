//! `GET /api/usage`: what agents used (tokens, and cost where the agent says), summed per day,
//! runner and user.

use agentrelay_protocol::{ErrorResponse, UsageRow};
use axum::Json;
use axum::extract::{Query, State};
use chrono::NaiveDate;
use serde::Deserialize;

use crate::error::AppError;
use crate::state::AppState;

/// The days the answer covers when the request names none.
const DEFAULT_DAYS: i64 = 30;

/// Query of `GET /api/usage`.
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    /// First day, `YYYY-MM-DD` (default: 29 days before `to`).
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today, UTC).
    to: Option<String>,
}

/// `GET /api/usage?from=YYYY-MM-DD&to=YYYY-MM-DD`: one row per day, runner and user with what
/// their sessions' agents used, oldest first.
#[utoipa::path(
    get,
    path = "/api/usage",
    tag = "agents",
    operation_id = "usage",
    params(
        ("from" = Option<String>, Query, format = Date, description = "First day, YYYY-MM-DD (default: 29 days before `to`)"),
        ("to" = Option<String>, Query, format = Date, description = "Last day, YYYY-MM-DD (default: today, UTC)"),
    ),
    responses(
        (status = 200, description = "Sums per day (UTC), runner and user, oldest first", body = [UsageRow]),
        (status = 400, description = "A day that is not YYYY-MM-DD, or `from` after `to`", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<UsageRow>>, AppError> {
    let Query(query) = query.map_err(|e| AppError::BadRequest { field: None, message: e.body_text() })?;
    let day = |field: &str, text: Option<String>| {
        text.map(|text| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
                AppError::bad_field(field, format!("'{field}' must be a day like 2026-12-01, not '{text}'"))
            })
        })
        .transpose()
    };
    let (from, to) = (day("from", query.from)?, day("to", query.to)?);
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(AppError::bad_field("from", "'from' is after 'to'"));
    }
    // A `from` after today alone asks for days that have not come yet: nothing, not an error.
    let to = to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = from.unwrap_or(to - chrono::Days::new(DEFAULT_DAYS as u64 - 1));
    let (from, to) = (from.format("%Y-%m-%d").to_string(), to.format("%Y-%m-%d").to_string());
    let mut rows = state.store.call(move |store| store.usage(&from, &to)).await?;
    for row in &mut rows {
        row.runner = state.registry.get(row.runner_id).map(|r| r.name);
    }
    Ok(Json(rows))
}
