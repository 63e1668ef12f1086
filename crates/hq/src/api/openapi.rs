//! `GET /api/openapi.json`: the REST API described from the handlers' own annotations and the
//! protocol crate's types; `docs/openapi.json` is the committed copy a test keeps equal to it.

use agentrelay_protocol::requests::{CreateSession, CreateShare, CreateToken, Health, Input, Login, Version};
use agentrelay_protocol::{
    Activity, ActivitySource, AuditEntry, CreatedShare, CreatedToken, Cursor, ErrorBody, ErrorResponse,
    LoginAnswer, Preset, Runner, RunnerStatus, Scope, Screen, Session, SessionStatus, TokenInfo, ViewerInfo,
};
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "AgentRelay HQ", description = "Start, watch and drive CLI agents' terminals on many machines."),
    paths(
        super::health, super::ready, super::version, super::list_runners,
        crate::auth::login, crate::auth::logout,
        super::sessions::create, super::sessions::list, super::sessions::get, super::sessions::delete,
        super::sessions::recording, super::sessions::screen, super::sessions::input,
        super::sessions::share, super::sessions::unshare,
        crate::events::stream_events, crate::ws::viewer::upgrade,
        super::tokens::create, super::tokens::list, super::tokens::revoke,
        crate::audit::list, crate::metrics::serve, openapi_json,
    ),
    components(schemas(
        Runner, RunnerStatus, Preset, Session, SessionStatus, Activity, ActivitySource, ViewerInfo, Screen,
        Cursor, CreatedShare, LoginAnswer, Scope, TokenInfo, CreatedToken, AuditEntry, ErrorResponse, ErrorBody,
        CreateSession, CreateToken, Login, Input, CreateShare, Health, Version,
    )),
    modifiers(&Security),
    security(("bearer" = []), ("cookie" = [])),
    tags(
        (name = "sessions", description = "Start, list, watch and end sessions"),
        (name = "agents", description = "Screens, input and read-only shares"),
        (name = "runners", description = "The machines sessions run on"),
        (name = "tokens", description = "Tokens and the audit log (admin)"),
        (name = "auth", description = "The dashboard's sign-in cookie"),
        (name = "health", description = "Probes, version, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Bearer tokens, or the dashboard's cookie.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::COOKIE))),
        );
    }
}

/// The document as JSON text, as served and as committed in `docs/openapi.json`.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "health", security(()), responses((status = 200, description = "This document", body = Object)))]
/// `GET /api/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed copy is what HQ serves; `UPDATE_OPENAPI=1` rewrites it after an API change.
    #[test]
    fn committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let current = document() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &current).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p agentrelay-hq openapi` and commit it"
        );
    }

    /// Every route the router serves is in the document, and every documented path is routed:
    /// the route table in `api/mod.rs` is read as text, so neither can drift from the other.
    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let source = include_str!("mod.rs");
        let routed: std::collections::BTreeSet<String> = source
            .split(".route(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect();
        // Internal to runners (docs/protocol.md), not part of the REST API.
        let internal = ["/api/v1/ws/register", "/api/v1/ws/runner/session/{id}"];
        let documented: std::collections::BTreeSet<String> =
            ApiDoc::openapi().paths.paths.keys().cloned().collect();
        for route in &routed {
            if !internal.contains(&route.as_str()) {
                assert!(documented.contains(route), "route {route} is not in the OpenAPI document");
            }
        }
        for path in &documented {
            assert!(routed.contains(path), "documented path {path} is not routed");
        }
    }
}
