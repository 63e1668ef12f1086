//! The HTTP surface: routes, the JSON body reader, and the small handlers (health, runners).

pub mod grants;
pub mod openapi;
pub mod runner_policy;
pub mod session_log;
pub mod sessions;
pub(crate) mod tokens;
pub mod usage;
pub mod users;
pub mod workspaces;

use agentrelay_protocol::requests::{Health, Version};
use agentrelay_protocol::{ErrorResponse, Runner};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::{login, logout, require_admin, require_user, require_viewer};
use crate::error::AppError;
use crate::state::AppState;
use crate::ws::{runner_control, runner_data, viewer};
use crate::{dashboard, events};

/// A known path with the wrong method: the same JSON error shape as every other failure.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> AppError {
    AppError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}

/// Every route HQ serves.
pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/api/users", post(users::create).get(users::list))
        .route("/api/users/{id}", axum::routing::patch(users::update))
        .route("/api/audit", get(crate::audit::list))
        .route("/metrics", get(crate::metrics::serve))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let user = Router::new()
        .route("/api/me", get(users::me))
        .route("/api/tokens", post(tokens::create).get(tokens::list))
        .route("/api/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/api/runners", get(list_runners))
        .route("/api/events", get(events::stream_events))
        .route("/api/sessions", post(sessions::create).get(sessions::list))
        .route("/api/sessions/{id}", get(sessions::get).patch(sessions::update).delete(sessions::delete))
        .route("/api/sessions/{id}/recording", get(sessions::recording))
        .route("/api/sessions/{id}/log", get(session_log::log))
        .route("/api/sessions/{id}/screen", get(sessions::screen))
        .route("/api/usage", get(usage::usage))
        .route("/api/sessions/{id}/input", post(sessions::input))
        .route("/api/sessions/{id}/input/queue", get(sessions::input_queue))
        .route(
            "/api/sessions/{id}/input/queue/{item_id}",
            axum::routing::delete(sessions::cancel_queued_input),
        )
        .route("/api/sessions/{id}/changes", get(workspaces::changes))
        .route("/api/sessions/{id}/diff", get(workspaces::diff))
        .route("/api/sessions/{id}/review", post(workspaces::review))
        .route("/api/sessions/{id}/workspace", axum::routing::delete(workspaces::remove))
        .route("/api/sessions/{id}/workspace/commit", post(workspaces::commit))
        .route("/api/sessions/{id}/workspace/push", post(workspaces::push))
        .route("/api/sessions/{id}/shares", post(sessions::share))
        .route("/api/sessions/{id}/grants", post(grants::create).get(grants::list))
        .route("/api/sessions/{id}/grants/{user_id}", axum::routing::delete(grants::revoke))
        .route("/api/sessions/{id}/shares/{share_id}", axum::routing::delete(sessions::unshare))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_user));
    // A share token opens this route only, and only for its own session (checked inside).
    let viewer = Router::new()
        .route("/api/v1/ws/session/{id}", get(viewer::upgrade))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_viewer));
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/api/version", get(version))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/auth/config", get(crate::oidc::config))
        .route("/api/auth/cli", get(crate::cli_login::page).post(crate::cli_login::decide))
        .route("/api/auth/cli/token", post(crate::cli_login::token))
        .route("/api/auth/oidc/login", get(crate::oidc::login))
        .route("/api/auth/oidc/callback", get(crate::oidc::callback))
        .route("/api/v1/ws/register", get(runner_control::upgrade))
        .route("/api/v1/ws/runner/session/{id}", get(runner_data::upgrade))
        .merge(admin)
        .merge(user)
        .merge(viewer)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(dashboard::serve)
        .layer(middleware::from_fn(crate::metrics::track_latency))
        .layer(DefaultBodyLimit::max(state.config.max_body_size))
        // Every response: no framing, no sniffing, no referrer, and a CSP without inline scripts
        // (xterm.js sets inline styles, hence `style-src 'unsafe-inline'`).
        // (A page may widen its own: the CLI's sign-in page lets its form lead to the CLI.)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header_layer(header::REFERRER_POLICY, "no-referrer"))
        .layer(header_layer(header::X_FRAME_OPTIONS, "DENY"))
        .with_state(state)
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn header_layer(name: header::HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "health",
    security(()),
    responses(
        (status = 200, description = "HQ serves", body = Health),
    )
)]
async fn health() -> Json<Health> {
    Json(Health { status: "ok".to_owned(), reason: None })
}

/// `GET /readyz`: 200 while HQ serves and its database answers; 503 otherwise (shutting down,
/// database stuck), so a load balancer stops sending traffic.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "ready",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Shutting down, or the database does not answer", body = Health),
    )
)]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let unavailable = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "unavailable".to_owned(), reason: Some(reason) }),
        )
    };
    if state.shutdown.is_cancelled() {
        return unavailable("HQ is shutting down".to_owned());
    }
    // A replica of a cluster depends on PostgreSQL and NATS: it names the one that is down.
    if let Some(cluster) = &state.cluster {
        return match cluster.check().await {
            Ok(()) => (StatusCode::OK, Json(Health { status: "ok".to_owned(), reason: None })),
            Err(reason) => unavailable(reason),
        };
    }
    let check = state.store.call(|store| store.check());
    match tokio::time::timeout(std::time::Duration::from_secs(2), check).await {
        Ok(Ok(())) => (StatusCode::OK, Json(Health { status: "ok".to_owned(), reason: None })),
        Ok(Err(error)) => unavailable(format!("{error:#}")),
        Err(_) => unavailable("the database did not answer within 2 s".to_owned()),
    }
}

/// `GET /api/version`: HQ's version and the runner protocol versions it accepts.
#[utoipa::path(
    get,
    path = "/api/version",
    tag = "health",
    operation_id = "version",
    security(()),
    responses(
        (status = 200, description = "Versions", body = Version),
    )
)]
async fn version(State(state): State<AppState>) -> Json<Version> {
    Json(Version {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: agentrelay_protocol::PROTOCOL_VERSION,
        min_protocol_version: agentrelay_protocol::MIN_PROTOCOL_VERSION,
        replica: state.cluster.as_ref().map(|cluster| cluster.replica.clone()),
    })
}

#[utoipa::path(
    get,
    path = "/api/runners",
    tag = "runners",
    operation_id = "list_runners",
    responses(
        (status = 200, description = "The runners the caller may use (shared ones and its own personal \
            ones; admins see every runner)", body = [Runner]),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
    )
)]
async fn list_runners(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
) -> Json<Vec<Runner>> {
    let mut runners = state.registry.list();
    runners.retain(|runner| crate::authz::runner(&principal, runner).see);
    Json(runners)
}

/// A JSON object body whose fields are read one by one, so a bad field is named in the 400.
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    /// Parses a request body that must be a JSON object.
    pub fn parse(
        body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    ) -> Result<Self, AppError> {
        let body = body.map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge("request body is too large".to_owned()),
            _ => AppError::BadRequest { field: None, message: rejection.body_text() },
        })?;
        match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => {
                Err(AppError::BadRequest { field: None, message: "body must be a JSON object".to_owned() })
            }
            Err(e) => Err(AppError::BadRequest { field: None, message: format!("invalid JSON: {e}") }),
        }
    }

    /// Removes and decodes an optional field; `null` counts as absent.
    pub fn take<T: DeserializeOwned>(&mut self, field: &str, expected: &str) -> Result<Option<T>, AppError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(whole_number(value))
                .map(Some)
                .map_err(|_| AppError::bad_field(field, format!("'{field}' must be {expected}"))),
        }
    }

    /// Fails on the first field no one took.
    pub fn finish(self) -> Result<(), AppError> {
        match self.0.keys().next() {
            Some(field) => Err(AppError::bad_field(field, format!("unknown field '{field}'"))),
            None => Ok(()),
        }
    }
}

/// JSON has one kind of number: `24.0` is `24` (and JSON Schema's `integer` says so), but serde
/// reads a number written with a fraction only as a float. A whole one is made an integer here.
pub(super) fn whole_number(value: Value) -> Value {
    const U64_END: f64 = 18_446_744_073_709_551_616.0; // 2^64
    const I64_MIN: f64 = -9_223_372_036_854_775_808.0; // -2^63
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && (0.0..U64_END).contains(&f) => Value::from(f as u64),
            Some(f) if f.fract() == 0.0 && (I64_MIN..0.0).contains(&f) => Value::from(f as i64),
            _ => Value::Number(n),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_number_written_with_a_fraction_is_an_integer() {
        let body = serde_json::json!({"rows": 24.0, "cols": 80.5, "from": -3.0});
        let mut body = JsonObject(body.as_object().cloned().unwrap());
        assert_eq!(body.take::<u16>("rows", "a number").ok().flatten(), Some(24));
        assert_eq!(body.take::<i64>("from", "a number").ok().flatten(), Some(-3));
        assert!(body.take::<u16>("cols", "a number").is_err());
    }
}
