//! `GET /api/openapi.json`: the REST API described from the handlers' own annotations and the
//! protocol crate's types; `docs/openapi.json` is the committed copy a test keeps equal to it.

use agentrelay_protocol::requests::{
    CliTokenRequest, CreateGrant, CreateSession, CreateShare, CreateToken, CreateUser, Health, Input, Login,
    UpdateSession, UpdateUser, Version,
};
use agentrelay_protocol::users::{AuthConfig, SsoInfo};
use agentrelay_protocol::workspace::{
    ChangeSummary, ChangedFile, Changes, CommitRequest, Committed, Diff, FileStatus, Pushed, RepoInfo,
    Review, ReviewComment, Workspace, WorkspaceSpec,
};
use agentrelay_protocol::{Access, Grant, Owner, Role, User};
use agentrelay_protocol::{
    Activity, ActivitySource, AuditEntry, CreatedShare, CreatedToken, Cursor, ErrorBody, ErrorResponse,
    LoginAnswer, Preset, Runner, RunnerStatus, Scope, Screen, Session, SessionStatus, TokenInfo, ViewerInfo,
};
use axum::Json;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOf, OneOfBuilder,
    Schema, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "AgentRelay HQ", description = "Start, watch and drive CLI agents' terminals on many machines."),
    paths(
        super::health, super::ready, super::version, super::list_runners,
        crate::auth::login, crate::auth::logout,
        crate::oidc::config, crate::oidc::login, crate::oidc::callback,
        crate::cli_login::page, crate::cli_login::decide, crate::cli_login::token,
        super::sessions::create, super::sessions::list, super::sessions::get, super::sessions::update,
        super::sessions::delete,
        super::sessions::recording, super::session_log::log, super::sessions::screen, super::sessions::input,
        super::sessions::input_queue, super::sessions::cancel_queued_input,
        super::usage::usage,
        super::sessions::share, super::sessions::unshare,
        super::workspaces::changes, super::workspaces::diff, super::workspaces::review,
        super::workspaces::commit, super::workspaces::push, super::workspaces::remove,
        crate::events::stream_events, crate::ws::viewer::upgrade,
        super::tokens::create, super::tokens::list, super::tokens::revoke,
        super::users::me, super::users::list, super::users::create, super::users::update,
        super::grants::create, super::grants::list, super::grants::revoke,
        crate::audit::list, crate::metrics::serve, openapi_json,
    ),
    components(schemas(
        Runner, RunnerStatus, Preset, Session, SessionStatus, Activity, ActivitySource, ViewerInfo, Screen,
        Cursor, CreatedShare, LoginAnswer, Scope, TokenInfo, CreatedToken, AuditEntry, ErrorResponse, ErrorBody,
        CreateSession, UpdateSession, CreateToken, Login, Input, CreateShare, Health, Version,
        super::sessions::ScreenFormat, super::session_log::LogFormat,
        RepoInfo, WorkspaceSpec, Workspace, ChangeSummary, ChangedFile, FileStatus, Changes, Diff, Review,
        ReviewComment, CommitRequest, Committed, Pushed,
        User, Role, Owner, Access, Grant, CreateUser, UpdateUser, CreateGrant, AuthConfig, SsoInfo,
        CliTokenRequest,
    )),
    modifiers(&Security, &RequestBodies, &Links, &ViewerSocket),
    security(("bearer" = []), ("cookie" = [])),
    tags(
        (name = "sessions", description = "Start, list, watch and end sessions"),
        (name = "agents", description = "Screens, input and read-only shares"),
        (name = "workspaces", description = "A git worktree per session: changes, diff, review, commit, push"),
        (name = "runners", description = "The machines sessions run on"),
        (name = "tokens", description = "Tokens (your own; every one for admins) and the audit log (admins)"),
        (name = "users", description = "Who you are; the people admins manage"),
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

/// The longest `expires_in` of a token: 100 years (`"100y"`), as `api/tokens.rs` enforces.
const MAX_TOKEN_LIFETIME_SECS: u64 = super::tokens::MAX_TOKEN_LIFETIME.as_secs();
/// The longest `expires_in` of a share: 30 days.
const MAX_SHARE_LIFETIME_SECS: u64 = super::sessions::MAX_SHARE_LIFETIME.as_secs();

/// What HQ's request bodies really take, beyond what `#[derive(ToSchema)]` can say. HQ reads
/// them field by field (`api::JsonObject`), so: an unknown field is a 400
/// (`additionalProperties: false`, which utoipa only derives from serde's `deny_unknown_fields`,
/// and the protocol types must keep accepting unknown fields); `null` is the same as leaving a
/// field out; and some fields go together (`oneOf`/`anyOf` of `required`), a duration is seconds
/// or text (`oneOf`), and an argv's first word must not be empty (`prefixItems`) — none of which
/// utoipa's attributes can express. So the derived schemas are completed here, in code.
struct RequestBodies;

impl Modify for RequestBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // The body of a share is optional; utoipa says so only of `Option<CreateShare>`, whose
        // schema would then also take `null`, which HQ refuses.
        let share =
            openapi.paths.paths.get_mut("/api/sessions/{id}/shares").and_then(|item| item.post.as_mut());
        if let Some(body) = share.and_then(|operation| operation.request_body.as_mut()) {
            body.required = Some(Required::False);
        }

        let Some(components) = openapi.components.as_mut() else { return };
        let schemas = &mut components.schemas;
        for name in [
            "CreateSession",
            "UpdateSession",
            "CreateToken",
            "CreateUser",
            "UpdateUser",
            "CreateGrant",
            "CliTokenRequest",
            "Login",
            "Input",
            "CreateShare",
            "WorkspaceSpec",
            "Review",
            "ReviewComment",
            "CommitRequest",
        ] {
            if let Some(object) = object_mut(schemas, name) {
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
        // A session's name, like a token's, must not be all white space.
        for name in ["CreateSession", "UpdateSession", "CreateUser"] {
            if let Some(object) = object_mut(schemas, name)
                && let Some(RefOr::T(Schema::Object(name))) = object.properties.get_mut("name")
            {
                name.pattern = Some(format!("[^{RUST_WHITE_SPACE}]"));
            }
        }
        // An e-mail address as `api::users::valid_email` takes one: no white space or control
        // characters, one `@` with something on each side.
        if let Some(object) = object_mut(schemas, "CreateUser")
            && let Some(RefOr::T(Schema::Object(email))) = object.properties.get_mut("email")
        {
            let not = format!("@{RUST_WHITE_SPACE}\\u0000-\\u001F\\u007F-\\u009F");
            email.pattern = Some(format!("^[^{not}]+@[^{not}]+$"));
        }
        if let Some(object) = object_mut(schemas, "CreateSession")
            && let Some(RefOr::T(Schema::Array(command))) = object.properties.get_mut("command")
        {
            command.prefix_items = vec![string().min_length(Some(1)).build().into()];
            command.examples = vec![serde_json::json!(["bash", "-l"])];
        }
        // One way to name the runner, one thing to run: each exactly once, counting only non-null.
        let runner = OneOfBuilder::new()
            .item(present("runner_id", string()))
            .item(present("runner", string()))
            .item(present("labels", ObjectBuilder::new().schema_type(Type::Object)))
            .build();
        let program = OneOfBuilder::new()
            .item(present("command", ObjectBuilder::new().schema_type(Type::Array)))
            .item(present("preset", string()))
            .build();
        // A workspace is where the session starts (no `cwd`); a prompt goes to a preset.
        let null = |field: &str| {
            ObjectBuilder::new().property(field, ObjectBuilder::new().schema_type(Type::Null)).build()
        };
        let place = AnyOfBuilder::new().item(null("workspace")).item(null("cwd")).build();
        let prompt = AnyOfBuilder::new().item(null("prompt")).item(present("preset", string())).build();
        wrap_all_of(schemas, "CreateSession", [runner.into(), program.into(), place.into(), prompt.into()]);

        // Input: some text, or Enter, or both.
        let input = AnyOfBuilder::new()
            .item(present("text", string().min_length(Some(1))))
            .item(present("enter", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true]))))
            .build();
        wrap_all_of(schemas, "Input", [input.into()]);

        // Workspaces, reviews and commits: every text has something in it besides white space,
        // and the names in a workspace are at most 200 characters.
        let non_blank = format!("[^{RUST_WHITE_SPACE}]");
        for (name, fields, max) in [
            ("WorkspaceSpec", &["repo", "branch", "base"][..], Some(200)),
            ("ReviewComment", &["path", "body"][..], None),
            ("CommitRequest", &["message"][..], None),
        ] {
            let Some(object) = object_mut(schemas, name) else { continue };
            for field in fields {
                if let Some(RefOr::T(Schema::Object(text))) = object.properties.get_mut(*field) {
                    text.pattern = Some(non_blank.clone());
                    text.max_length = max.or(text.max_length);
                }
            }
        }
        // A review: a summary, some comments, or both.
        let comments =
            ArrayBuilder::new().items(RefOr::Ref(Ref::from_schema_name("ReviewComment"))).min_items(Some(1));
        let review = AnyOfBuilder::new()
            .item(present("summary", string().pattern(Some(non_blank))))
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .required("comments")
                    .property("comments", comments),
            )
            .build();
        wrap_all_of(schemas, "Review", [review.into()]);

        if let Some(object) = object_mut(schemas, "CreateToken") {
            // `name.trim()` must leave something: a character outside Rust's White_Space set
            // (spelled out, as regex dialects disagree on `\s`).
            if let Some(RefOr::T(Schema::Object(name))) = object.properties.get_mut("name") {
                name.pattern = Some(format!("[^{RUST_WHITE_SPACE}]"));
            }
            let scope = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["admin", "user", "runner"]))
                .description(Some("`admin`, `user` or `runner` (shares are made per session)"))
                .build();
            object.properties.insert("scope".to_owned(), scope.into());
            let expires_in = duration(
                MAX_TOKEN_LIFETIME_SECS,
                "100y",
                "How long the token works; without it, until revoked.",
            );
            object.properties.insert("expires_in".to_owned(), RefOr::T(Schema::OneOf(expires_in)));
        }
        // `"shared": true` goes with `"scope": "runner"` only.
        let not_shared = ObjectBuilder::new()
            .property("shared", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([false])));
        let runner = ObjectBuilder::new()
            .property("scope", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["runner"])));
        let shared = AnyOfBuilder::new()
            .item(ObjectBuilder::new().property("shared", ObjectBuilder::new().schema_type(Type::Null)))
            .item(not_shared)
            .item(runner)
            .build();
        wrap_all_of(schemas, "CreateToken", [shared.into()]);
        if let Some(object) = object_mut(schemas, "CreateShare") {
            let expires_in =
                duration(MAX_SHARE_LIFETIME_SECS, "30d", "How long the link works; without it, 24 hours.");
            object.properties.insert("expires_in".to_owned(), RefOr::T(Schema::OneOf(expires_in)));
        }
    }
}

/// The characters `char::is_whitespace` (Unicode White_Space) takes, as a regex class body.
const RUST_WHITE_SPACE: &str =
    r"\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

fn object_mut<'a>(
    schemas: &'a mut std::collections::BTreeMap<String, RefOr<Schema>>,
    name: &str,
) -> Option<&'a mut utoipa::openapi::schema::Object> {
    match schemas.get_mut(name) {
        Some(RefOr::T(Schema::Object(object))) => Some(object),
        _ => None,
    }
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// "`field` is given and not null": `required`, with the field's non-null type.
fn present(field: &str, schema: ObjectBuilder) -> utoipa::openapi::schema::Object {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue).required(field).property(field, schema).build()
}

/// Replaces the component `name` by `allOf` of itself and `rules`, keeping its description on top.
fn wrap_all_of<const N: usize>(
    schemas: &mut std::collections::BTreeMap<String, RefOr<Schema>>,
    name: &str,
    rules: [Schema; N],
) {
    let Some(RefOr::T(Schema::Object(mut object))) = schemas.remove(name) else { return };
    let description = object.description.take();
    let mut all_of = AllOfBuilder::new().description(description).item(Schema::Object(object));
    for rule in rules {
        all_of = all_of.item(rule);
    }
    schemas.insert(name.to_owned(), RefOr::T(Schema::AllOf(all_of.build())));
}

/// `expires_in`: whole seconds, or a duration such as `"30d"`, more than 0 and at most `max`.
fn duration(max_secs: u64, max_text: &str, what: &str) -> OneOf {
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(max_secs))
        .description(Some("Seconds"));
    let text = string().min_length(Some(1)).examples(["90m", "12h", "7d"]).description(Some(format!(
        "A duration in humantime's syntax (`90m`, `1h 30m`, `7d`; units ns, us, ms, s, m, h, d, w, \
         M, y and their long forms), more than 0 and at most {max_text}"
    )));
    OneOfBuilder::new()
        .description(Some(what))
        .item(seconds)
        .item(text)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
}

/// Where the ids in an answer lead: from the session `POST /api/sessions` started to its own
/// routes, from a share to its revocation, from a token to its. (Tools such as schemathesis follow
/// them to reach the `{id}` routes with real ids.) Written here, not in `#[utoipa::path]`: utoipa
/// 5.5 serializes a `Link`'s fields in snake_case (`operation_id`), which OpenAPI readers ignore,
/// so `operationId` goes in through the link's extensions, which are written as they are named.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let session = [("id", "$response.body#/id")];
        add_links(
            openapi,
            "/api/sessions",
            "201",
            &[
                ("GetSession", "get_session", &session),
                ("EndSession", "end_session", &session),
                ("Screen", "session_screen", &session),
                ("Input", "session_input", &session),
                ("Recording", "session_recording", &session),
                ("Share", "share_session", &session),
                ("Changes", "session_changes", &session),
                ("Diff", "session_diff", &session),
            ],
        );
        add_links(
            openapi,
            "/api/sessions/{id}/shares",
            "201",
            &[(
                "Unshare",
                "unshare_session",
                &[("id", "$request.path.id"), ("share_id", "$response.body#/id")],
            )],
        );
        add_links(
            openapi,
            "/api/tokens",
            "201",
            &[("RevokeToken", "revoke_token", &[("id", "$response.body#/id")])],
        );
    }
}

/// A link: its name, the operationId it leads to, and that operation's parameters as runtime
/// expressions.
type LinkSpec<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Adds links to the `status` answer of the POST at `path`.
fn add_links(openapi: &mut utoipa::openapi::OpenApi, path: &str, status: &str, links: &[LinkSpec<'_>]) {
    let post = openapi.paths.paths.get_mut(path).and_then(|item| item.post.as_mut());
    let Some(RefOr::T(response)) = post.and_then(|operation| operation.responses.responses.get_mut(status))
    else {
        return;
    };
    for (name, operation_id, parameters) in links {
        let mut link =
            LinkBuilder::new().extensions(Some(Extensions::from_iter([("operationId", *operation_id)])));
        for (parameter, expression) in *parameters {
            link = link.parameter(*parameter, *expression);
        }
        response.links.insert((*name).to_owned(), RefOr::T(link.build()));
    }
}

/// The session WebSocket as HQ's router answers it. Its `#[utoipa::path]` lives in `ws/viewer.rs`;
/// what it leaves out is added here: the upgrade headers a request needs, and the 400 axum's
/// `WebSocketUpgrade` answers (in plain text) before the handler runs when they are missing.
struct ViewerSocket;

impl Modify for ViewerSocket {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(item) = openapi.paths.paths.get_mut("/api/v1/ws/session/{id}") else { return };
        let Some(operation) = item.get.as_mut() else { return };
        operation.operation_id = Some("attach_session".to_owned());
        let header = |name: &str, schema: ObjectBuilder, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(schema.build()))
                .build()
        };
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        // `from` is a u64 (the derived schema says int64).
        for parameter in parameters.iter_mut().filter(|p| p.name == "from") {
            let offset =
                ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(u64::MAX));
            parameter.schema = Some(offset.build().into());
        }
        // As axum checks them: Connection contains `upgrade`, Upgrade is `websocket` (both in any
        // case), version 13, and some key.
        let connection = string().pattern(Some("[Uu][Pp][Gg][Rr][Aa][Dd][Ee]"));
        let upgrade = string().pattern(Some("^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"));
        parameters.push(header("Connection", connection, "Names `Upgrade`"));
        parameters.push(header("Upgrade", upgrade, "`websocket`"));
        parameters.push(header(
            "Sec-WebSocket-Version",
            string().enum_values(Some(["13"])),
            "WebSocket version 13",
        ));
        parameters.push(header("Sec-WebSocket-Key", string(), "The client's handshake key"));
        let bad_request = ResponseBuilder::new()
            .description("Not a WebSocket upgrade (plain text), or a bad `from`")
            .content("text/plain", ContentBuilder::new().schema(Some(string().build())).build())
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorResponse"))))
                    .build(),
            )
            .build();
        operation.responses.responses.insert("400".to_owned(), bad_request.into());
    }
}

/// The document as JSON text, as served and as committed in `docs/openapi.json`.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "health",
    operation_id = "openapi",
    security(()),
    responses(
        (status = 200, description = "This document", body = Object),
    )
)]
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

    /// Operation ids name one operation each, and every link leads to one of them.
    #[test]
    fn operation_ids_are_unique_and_links_lead_to_them() {
        let document: serde_json::Value = serde_json::from_str(&document()).expect("the document is JSON");
        let operations: Vec<&serde_json::Value> = document["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().expect("a path item").values())
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        for operation in &operations {
            let id = operation["operationId"].as_str().expect("every operation has an id");
            assert!(ids.insert(id), "operationId {id} is used twice");
        }
        let mut links = 0;
        for operation in &operations {
            for response in operation["responses"].as_object().expect("responses").values() {
                for link in response["links"].as_object().into_iter().flat_map(|links| links.values()) {
                    let target = link["operationId"].as_str().expect("a link names its operationId");
                    assert!(ids.contains(target), "a link leads to {target}, which is no operation");
                    links += 1;
                }
            }
        }
        assert!(links >= 8, "the links from sessions, shares and tokens are there ({links})");
    }

    /// Every route the router serves is in the document, and every documented path is routed:
    /// the route table in `api/mod.rs` is read as text, so neither can drift from the other.
    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let source = include_str!("mod.rs");
        let routed: std::collections::BTreeSet<String> = source
            .split(".route(")
            .skip(1)
            // rustfmt may put a long route's path on the next line.
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
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
