//! `/api/sessions`: start, list, inspect and end sessions.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentrelay_protocol::requests::{
    CreateSession, CreateShare, Input, InputWhen, QueuedInput, UpdateSession,
};
use agentrelay_protocol::runner::{HqMessage, StartSession};
use agentrelay_protocol::{
    CreatedShare, ErrorResponse, Runner, RunnerStatus, Scope, Screen, Session as SessionView, TermSize,
};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::{JsonObject, runner_policy};
use crate::audit;
use crate::auth::Principal;
use crate::authz::{self, Need};
use crate::error::AppError;
use crate::session::start::{self, Origin};
use crate::session::{Session, SessionSpec, ToRunner, input_queue, recording, terminal_model};
use crate::state::AppState;
use crate::tokens::NewToken;

/// A validated `POST /api/sessions` body.
struct CreateRequest {
    target: Target,
    program: Program,
    cwd: Option<String>,
    env: BTreeMap<String, String>,
    size: TermSize,
    /// A name for people.
    name: Option<String>,
    /// The agent's initial task (with a preset that takes one).
    prompt: Option<String>,
    /// A git worktree to start in (`api::workspaces`).
    workspace: Option<agentrelay_protocol::workspace::WorkspaceSpec>,
}

/// What to run: an argv, or a preset of the chosen runner.
enum Program {
    Command(Vec<String>),
    Preset(String),
}

/// How the request names its runner: exactly one way.
enum Target {
    Id(Uuid),
    Name(String),
    Labels(BTreeMap<String, String>),
}

impl CreateRequest {
    fn parse(mut body: JsonObject) -> Result<Self, AppError> {
        let runner_id: Option<String> = body.take("runner_id", "a runner id (UUID string)")?;
        let runner: Option<String> = body.take("runner", "a runner name (string)")?;
        let labels: Option<BTreeMap<String, String>> = body.take("labels", "an object of strings")?;
        let command: Option<Vec<String>> = body.take("command", "an array of strings")?;
        let preset: Option<String> = body.take("preset", "a preset name (string)")?;
        let cwd: Option<String> = body.take("cwd", "a path (string)")?;
        let name: Option<String> = body.take("name", NAME_EXPECTED)?;
        let env: Option<BTreeMap<String, String>> = body.take("env", "an object of strings")?;
        let rows: Option<u16> = body.take("rows", "a number from 1 to 1000")?;
        let cols: Option<u16> = body.take("cols", "a number from 1 to 1000")?;
        let prompt: Option<String> = body.take("prompt", "a string")?;
        let workspace = super::workspaces::take_spec(&mut body)?;
        body.finish()?;
        if workspace.is_some() && cwd.is_some() {
            return Err(AppError::bad_field(
                "cwd",
                "a session with a 'workspace' starts in it: give no 'cwd'",
            ));
        }

        let target = match (runner_id, runner, labels) {
            (Some(id), None, None) => Target::Id(
                Uuid::parse_str(&id)
                    .map_err(|_| AppError::bad_field("runner_id", "'runner_id' is not a UUID"))?,
            ),
            (None, Some(name), None) => Target::Name(name),
            (None, None, Some(labels)) => Target::Labels(labels),
            (None, None, None) => {
                return Err(AppError::bad_field(
                    "runner_id",
                    "name a runner: one of 'runner_id', 'runner' or 'labels'",
                ));
            }
            (_, runner, _) => {
                // Two or more were given: name the second one as the field at fault.
                let field = if runner.is_some() { "runner" } else { "labels" };
                return Err(AppError::bad_field(field, "give only one of 'runner_id', 'runner' or 'labels'"));
            }
        };
        let program = match (command, preset) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_field("preset", "give either 'command' or 'preset', not both"));
            }
            (None, Some(name)) => Program::Preset(name),
            (None, None) => {
                return Err(AppError::bad_field(
                    "command",
                    "'command' (e.g. [\"bash\", \"-l\"]) or 'preset' (e.g. \"claude\") is required",
                ));
            }
            (Some(command), None) => {
                if command.first().is_none_or(|program| program.is_empty()) {
                    return Err(AppError::bad_field("command", "'command' must name a program"));
                }
                Program::Command(command)
            }
        };
        let size = TermSize {
            rows: rows.unwrap_or(TermSize::DEFAULT.rows),
            cols: cols.unwrap_or(TermSize::DEFAULT.cols),
        };
        if !(1..=1000).contains(&size.rows) {
            return Err(AppError::bad_field("rows", "'rows' must be from 1 to 1000"));
        }
        if !(1..=1000).contains(&size.cols) {
            return Err(AppError::bad_field("cols", "'cols' must be from 1 to 1000"));
        }
        if prompt.as_deref() == Some("") {
            return Err(AppError::bad_field("prompt", "'prompt' must not be empty"));
        }
        if prompt.is_some() && matches!(program, Program::Command(_)) {
            return Err(AppError::bad_field(
                "prompt",
                "'prompt' goes with a 'preset' that takes one, not a 'command'",
            ));
        }
        let name = name.map(|name| session_name(&name)).transpose()?;
        Ok(Self { target, program, cwd, env: env.unwrap_or_default(), size, name, prompt, workspace })
    }
}

/// What a session's `name` must be, for 400s.
const NAME_EXPECTED: &str = "a name of 1 to 100 characters (string)";

/// A session name as given, trimmed: 1 to 100 characters, not all white space.
fn session_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_field("name", "'name' must be 1 to 100 characters, not all white space"));
    }
    Ok(name.to_owned())
}

/// `POST /api/sessions`: starts a session on the chosen runner → 201 with the session.
#[utoipa::path(
    post,
    path = "/api/sessions",
    tag = "sessions",
    operation_id = "create_session",
    request_body = CreateSession,
    responses(
        (status = 201, description = "Starting", body = SessionView),
        (status = 400, description = "A bad field, named in `field`: malformed, a `preset` the runner \
            does not offer, or an `env` name its policy does not allow; or not a JSON object",
            body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, a sign-in cookie from another origin, or \
            a `command`, `env` or `cwd` for a `--presets-only` runner", body = ErrorResponse),
        (status = 404, description = "No runner with this id or name", body = ErrorResponse),
        (status = 409, description = "`runner_offline`, `no_matching_runner` or `limit_reached`; for a \
            `workspace`: `repo_missing`, `repo_dirty` or `branch_exists`", body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
        (status = 501, description = "A `workspace` on a runner too old for workspaces", body = ErrorResponse),
        (status = 502, description = "The runner could not make the `workspace` (git failed)",
            body = ErrorResponse),
        (status = 504, description = "The runner did not answer in time", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<SessionView>), AppError> {
    let request = CreateRequest::parse(JsonObject::parse(body)?)?;
    let runner = pick_runner(&state, &principal, &request.target)?;
    let max = state.config.max_sessions_per_runner;
    if state.sessions.live_on_runner(runner.id).len() >= max {
        return Err(AppError::LimitReached(format!(
            "runner '{}' already runs {max} sessions (--max-sessions-per-runner)",
            runner.name
        )));
    }
    let control = crate::cluster::ControlLink::to(&state, runner.id)
        .ok_or_else(|| AppError::RunnerOffline(format!("runner '{}' is offline", runner.name)))?;
    let asked = runner_policy::Asked {
        command: matches!(request.program, Program::Command(_)),
        cwd: request.cwd.is_some(),
        env: &request.env,
    };
    runner_policy::check(&runner, &asked).inspect_err(|refusal| {
        let detail = format!("runner {}: {refusal}", runner.name);
        audit::by_principal(&state, &principal, "session.refused", runner.id.to_string(), Some(detail));
    })?;
    let (command, preset) = resolve_program(&runner, request.program)?;
    if request.prompt.is_some() {
        let takes = preset.as_deref().and_then(|name| runner.presets.iter().find(|p| p.name == name));
        if !takes.is_some_and(|p| p.takes_prompt) {
            let name = preset.as_deref().unwrap_or_default();
            return Err(AppError::bad_field(
                "prompt",
                format!("preset '{name}' on runner '{}' takes no prompt", runner.name),
            ));
        }
    }
    let id = Uuid::now_v7();
    let workspace = match request.workspace {
        Some(spec) => Some(super::workspaces::create(&state, &runner, id, spec).await?),
        None => None,
    };
    let spec = SessionSpec {
        id,
        runner_id: runner.id,
        command: command.clone(),
        preset: preset.clone(),
        name: request.name,
        workspace: workspace.clone(),
        created_by: principal.name.clone(),
        owner: principal.user.clone(),
        created_at: chrono::Utc::now(),
    };
    let session = start::open(&state, spec, Origin::New(request.size));
    let start = StartSession {
        session_id: session.id,
        command,
        cwd: request.cwd,
        env: request.env,
        size: request.size,
        preset,
        prompt: request.prompt,
        workspace: workspace.is_some(),
    };
    if state.cluster.is_some() {
        // Saved before the runner hears of it: its data connection may reach another replica.
        state.events.flush().await;
    }
    if control.send(HqMessage::Start(start)).await.is_err() {
        session.mark_failed(format!("runner '{}' went offline before the session started", runner.name));
        return Err(AppError::RunnerOffline(format!("runner '{}' is offline", runner.name)));
    }
    tracing::info!(session = %session.id, runner = %runner.name, "session starting");
    let detail = format!("runner {}: {}", runner.name, session.command.join(" "));
    audit::by_principal(&state, &principal, "session.started", session.id.to_string(), Some(detail));
    Ok((StatusCode::CREATED, Json(session.view())))
}

/// The argv to run and the preset it comes from, if any.
fn resolve_program(runner: &Runner, program: Program) -> Result<(Vec<String>, Option<String>), AppError> {
    let name = match program {
        Program::Command(command) => return Ok((command, None)),
        Program::Preset(name) => name,
    };
    match runner.presets.iter().find(|p| p.name == name) {
        Some(preset) => Ok((preset.command.clone(), Some(name))),
        None => {
            let offered: Vec<&str> = runner.presets.iter().map(|p| p.name.as_str()).collect();
            let message = format!(
                "runner '{}' has no preset '{name}' (it offers: {})",
                runner.name,
                offered.join(", ")
            );
            Err(AppError::bad_field("preset", message))
        }
    }
}

/// The online runner the request names, if the caller may start sessions on it: one it may not
/// see is unknown (404); one it sees but may not use (an admin and someone's personal runner) is
/// 403; labels pick only among runners it may use.
fn pick_runner(state: &AppState, principal: &Principal, target: &Target) -> Result<Runner, AppError> {
    let visible = |runner: &Runner| authz::runner(principal, runner).see;
    let runner = match target {
        Target::Id(id) => state
            .registry
            .get(*id)
            .filter(visible)
            .ok_or_else(|| AppError::NotFound(format!("no runner with id {id}")))?,
        Target::Name(name) => state
            .registry
            .find_by_name(name, |runner| authz::runner(principal, runner).start)
            .filter(visible)
            .ok_or_else(|| AppError::NotFound(format!("no runner named '{name}'")))?,
        Target::Labels(labels) => {
            let mut candidates = state.registry.online_with_labels(labels);
            candidates.retain(|runner| authz::runner(principal, runner).start);
            // The matching runner with the fewest live sessions.
            candidates.into_iter().min_by_key(|r| state.sessions.live_on_runner(r.id).len()).ok_or_else(
                || AppError::NoMatchingRunner(format!("no online runner has labels {}", describe(labels))),
            )?
        }
    };
    if !authz::runner(principal, &runner).start {
        return Err(AppError::Forbidden(format!(
            "runner '{}' is {}'s personal runner: only they start sessions on it",
            runner.name,
            runner.owner.as_ref().map_or("someone", |o| o.name.as_str())
        )));
    }
    if runner.status != RunnerStatus::Online {
        return Err(AppError::RunnerOffline(format!("runner '{}' is offline", runner.name)));
    }
    Ok(runner)
}

fn describe(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// `GET /api/sessions`: every session, newest first.
#[utoipa::path(
    get,
    path = "/api/sessions",
    tag = "sessions",
    operation_id = "list_sessions",
    responses(
        (status = 200, description = "The sessions the caller may see (its own, those granted to it; \
            every one for admins), newest first", body = [SessionView]),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<Vec<SessionView>> {
    let sessions = state.sessions.list();
    Json(sessions.iter().filter(|s| authz::rights(&state, &principal, s).see).map(|s| s.view()).collect())
}

/// `GET /api/sessions/{id}`.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}",
    tag = "sessions",
    operation_id = "get_session",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session (ended ones too, until retention removes them)",
            body = SessionView),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
        (status = 404, description = "No session with this id", body = ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, AppError> {
    Ok(Json(authz::session(&state, &principal, &id, Need::See)?.view()))
}

/// `PATCH /api/sessions/{id}` `{"name": "…"}`: renames a session (`null` clears the name) → 200.
#[utoipa::path(
    patch,
    path = "/api/sessions/{id}",
    tag = "sessions",
    operation_id = "update_session",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = UpdateSession,
    responses(
        (status = 200, description = "The session, renamed", body = SessionView),
        (status = 400, description = "A bad `name`, an unknown field, or not a JSON object", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No session with this id", body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<SessionView>, AppError> {
    let mut body = JsonObject::parse(body)?;
    let name: Option<String> = body.take("name", NAME_EXPECTED)?;
    body.finish()?;
    let session = authz::session(&state, &principal, &id, Need::Manage)?;
    let name = name.map(|name| session_name(&name)).transpose()?;
    audit::by_principal(&state, &principal, "session.renamed", session.id.to_string(), name.clone());
    session.rename(name);
    Ok(Json(session.view()))
}

/// `DELETE /api/sessions/{id}`: a live session's process group is hung up, then killed → 202; a
/// finished session is removed, with its output log → 204.
#[utoipa::path(
    delete,
    path = "/api/sessions/{id}",
    tag = "sessions",
    operation_id = "end_session",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 202, description = "A live session: hang-up sent; SIGKILL follows after the runner's \
            grace period. The session stays listed, with its recording, once it has ended"),
        (status = 204, description = "A finished session: removed, with its output log and recording"),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No session with this id", body = ErrorResponse),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let session = authz::session(&state, &principal, &id, Need::End)?;
    if session.status().is_final() {
        audit::by_principal(&state, &principal, "session.removed", session.id.to_string(), None);
        crate::retention::remove(&state, &session).await;
        return Ok(StatusCode::NO_CONTENT);
    }
    audit::by_principal(&state, &principal, "session.killed", session.id.to_string(), None);
    // Queued behind any input already sent, so the runner sees them in order.
    let _ = session.to_runner().send(ToRunner::Kill).await;
    Ok(StatusCode::ACCEPTED)
}

/// `?format=` of `GET /api/sessions/{id}/screen`, as the document names its values.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only described: the handler reads the text, to name an unknown one.
pub enum ScreenFormat {
    /// Plain text, one line per row.
    Text,
    /// Rows and cursor.
    Json,
}

/// Query of `GET /api/sessions/{id}/screen`.
#[derive(Debug, serde::Deserialize)]
pub struct ScreenQuery {
    /// `json` for rows and cursor; plain text otherwise.
    format: Option<String>,
}

/// `GET /api/sessions/{id}/screen`: the current screen from HQ's terminal model, as plain text or
/// (`?format=json`) rows and cursor.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/screen",
    tag = "agents",
    operation_id = "session_screen",
    params(
        ("id" = Uuid, Path, description = "Session id"),
        ("format" = Option<ScreenFormat>, Query, description = "`text` (default) or `json`"),
    ),
    responses(
        (status = 200, description = "The current screen: plain text, or (`?format=json`) rows and cursor",
            content(
            (String = "text/plain"),
            (Screen = "application/json"),
        )),
        (status = 400, description = "An unknown `format`", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
        (status = 404, description = "No session with this id", body = ErrorResponse),
        (status = 409, description = "`session_ended`: its output is in /recording", body = ErrorResponse),
    )
)]
pub async fn screen(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    query: Result<Query<ScreenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    // A query axum cannot read (`format` twice, bad percent-encoding) is a JSON 400 like any other.
    let Query(query) = query.map_err(|_| AppError::bad_field("format", "'format' must be text or json"))?;
    let session = authz::session(&state, &principal, &id, Need::Watch)?;
    let model = terminal_model::current(&state, &session, session.output_end(), SCREEN_WAIT, true).await;
    let model = model.ok_or_else(|| {
        AppError::SessionEnded(format!("session {id} has ended; its output is in /recording"))
    })?;
    let screen = model.screen();
    match query.format.as_deref() {
        Some("json") => Ok(Json(screen).into_response()),
        None | Some("text") => {
            let mut text = screen.lines.join("\n");
            text.push('\n');
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
        Some(other) => {
            Err(AppError::bad_field("format", format!("unknown format '{other}': use text or json")))
        }
    }
}

/// How long `/screen` waits for a fresh terminal model to replay recent output.
const SCREEN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `POST /api/sessions/{id}/input` `{"text": "…", "enter": true, "when"?: "waiting"}`: types into
/// the session → 204, or queues it until the session next waits for input → 202 with the item.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/input",
    tag = "agents",
    operation_id = "session_input",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = Input,
    responses(
        (status = 202, description = "Queued (`\"when\": \"waiting\"`) until the session next waits for input",
            body = QueuedInput),
        (status = 204, description = "Typed"),
        (status = 400, description = "A bad field, neither text nor enter, or not a JSON object",
            body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No session with this id", body = ErrorResponse),
        (status = 409, description = "`session_ended`", body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
    )
)]
pub async fn input(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, AppError> {
    let mut body = JsonObject::parse(body)?;
    let text: Option<String> = body.take("text", "a string")?;
    let enter: Option<bool> = body.take("enter", "true or false")?;
    let when: Option<InputWhen> = body.take("when", "\"now\" or \"waiting\"")?;
    body.finish()?;
    let text = text.unwrap_or_default();
    let enter = enter.unwrap_or(false);
    if text.is_empty() && !enter {
        return Err(AppError::bad_field("text", "give 'text', 'enter': true, or both"));
    }
    let session = authz::session(&state, &principal, &id, Need::Drive)?;
    let ended = || AppError::SessionEnded(format!("session {id} has ended"));
    if session.status().is_final() {
        return Err(ended());
    }
    let detail = format!("{} bytes{}", text.len(), if enter { " + enter" } else { "" });
    let typed = Typed { text, enter, when: when.unwrap_or_default(), action: "session.input", detail };
    type_or_queue(&state, &principal, &session, typed).await
}

/// Text for a session's terminal, from `POST /input` or `POST /review`.
pub(super) struct Typed {
    pub text: String,
    /// Enter after the text.
    pub enter: bool,
    pub when: InputWhen,
    /// The audit action: as is when typed, with `_queued` when queued.
    pub action: &'static str,
    /// The audit detail.
    pub detail: String,
}

/// Types `typed` into the session now (204), or queues it until the agent next waits for input
/// (202 with the queued item).
pub(super) async fn type_or_queue(
    state: &AppState,
    principal: &Principal,
    session: &Arc<Session>,
    typed: Typed,
) -> Result<Response, AppError> {
    let Typed { text, enter, when, action, detail } = typed;
    if when == InputWhen::Waiting {
        let item = QueuedInput {
            id: Uuid::now_v7(),
            text,
            enter,
            queued_by: principal.name.clone(),
            queued_at: chrono::Utc::now(),
        };
        let action = format!("{action}_queued");
        audit::by_principal(state, principal, &action, session.id.to_string(), Some(detail));
        if session.queue_input(item.clone()) {
            state.tasks.spawn(input_queue::deliver(session.clone(), state.shutdown.clone()));
        }
        return Ok((StatusCode::ACCEPTED, Json(item)).into_response());
    }
    audit::by_principal(state, principal, action, session.id.to_string(), Some(detail));
    session
        .type_input(&text, enter)
        .await
        .map_err(|_| AppError::SessionEnded(format!("session {} has ended", session.id)))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/sessions/{id}/input/queue`: input waiting for the session to wait, oldest first.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/input/queue",
    tag = "agents",
    operation_id = "session_input_queue",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "Queued input, oldest first", body = [QueuedInput]),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
        (status = 404, description = "No session with this id", body = ErrorResponse),
    )
)]
pub async fn input_queue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Vec<QueuedInput>>, AppError> {
    Ok(Json(authz::session(&state, &principal, &id, Need::Watch)?.queued_input()))
}

/// `DELETE /api/sessions/{id}/input/queue/{item_id}`: takes queued input out before it is typed
/// → 204.
#[utoipa::path(
    delete,
    path = "/api/sessions/{id}/input/queue/{item_id}",
    tag = "agents",
    operation_id = "cancel_queued_input",
    params(
        ("id" = Uuid, Path, description = "Session id"),
        ("item_id" = Uuid, Path, description = "The queued item's id"),
    ),
    responses(
        (status = 204, description = "Taken out; it will not be typed"),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No such session, or no such item in its queue (typed already?)",
            body = ErrorResponse),
    )
)]
pub async fn cancel_queued_input(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, item_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let session = authz::session(&state, &principal, &id, Need::Drive)?;
    let cancelled = Uuid::parse_str(&item_id).is_ok_and(|item| session.cancel_queued(item));
    if !cancelled {
        return Err(AppError::NotFound(format!("session {id} has no queued input '{item_id}'")));
    }
    audit::by_principal(&state, &principal, "session.input_cancelled", session.id.to_string(), Some(item_id));
    Ok(StatusCode::NO_CONTENT)
}

/// How long a share lives unless the request says otherwise.
const SHARE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The longest a share may live.
pub(crate) const MAX_SHARE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// `POST /api/sessions/{id}/shares` `{"expires_in"?}`: a read-only link to one session → 201.
/// The token rides in the link's fragment, which browsers never send to a server.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/shares",
    tag = "agents",
    operation_id = "share_session",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body(content = CreateShare, description = "Optional (made so in `api/openapi.rs`): no body is a \
        24-hour link"),
    responses(
        (status = 201, description = "A read-only link; the token is shown once", body = CreatedShare),
        (status = 400, description = "A bad `expires_in`, an unknown field, or not a JSON object",
            body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No session with this id", body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
    )
)]
pub async fn share(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<CreatedShare>), AppError> {
    let session = authz::session(&state, &principal, &id, Need::Manage)?;
    let expires_in = if body.as_ref().is_ok_and(|b| b.is_empty()) {
        SHARE_LIFETIME
    } else {
        let mut body = JsonObject::parse(body)?;
        let expires_in: Option<serde_json::Value> = body.take("expires_in", "a duration like \"1h\"")?;
        body.finish()?;
        match expires_in {
            None => SHARE_LIFETIME,
            Some(value) => {
                super::tokens::parse_expiry(&value).filter(|d| *d <= MAX_SHARE_LIFETIME).ok_or_else(|| {
                    AppError::bad_field("expires_in", "'expires_in' must be a duration up to 30d")
                })?
            }
        }
    };
    let name = format!("share of {} by {}", &session.id.to_string()[..8], principal.name);
    let user_id =
        principal.user_id().ok_or_else(|| AppError::Forbidden("no user behind this token".to_owned()))?;
    let new = NewToken {
        name,
        scope: Scope::Share,
        expires_in: Some(expires_in),
        session_id: Some(session.id),
        user_id,
        shared: false,
    };
    let created = state.tokens.create(new).await?;
    let expires_at =
        created.expires_at.ok_or_else(|| AppError::Internal(anyhow::anyhow!("share without expiry")))?;
    let url = format!("{}/share#{}", public_base(&state, &headers), created.token);
    audit::by_principal(
        &state,
        &principal,
        "session.shared",
        session.id.to_string(),
        Some(created.id.to_string()),
    );
    Ok((StatusCode::CREATED, Json(CreatedShare { id: created.id, url, token: created.token, expires_at })))
}

/// `DELETE /api/sessions/{id}/shares/{share_id}`: revokes one of the session's shares (any user
/// may, not only admins, so whoever shared can unshare) → 204; its viewers are cut off.
#[utoipa::path(
    delete,
    path = "/api/sessions/{id}/shares/{share_id}",
    tag = "agents",
    operation_id = "unshare_session",
    params(
        ("id" = Uuid, Path, description = "Session id"),
        ("share_id" = Uuid, Path, description = "Share id"),
    ),
    responses(
        (status = 204, description = "Revoked; its viewers are cut off"),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No such session, or no such share of it", body = ErrorResponse),
    )
)]
pub async fn unshare(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, share_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let session = authz::session(&state, &principal, &id, Need::See)?;
    let manages = authz::rights(&state, &principal, &session).manage;
    let share = Uuid::parse_str(&share_id)
        .ok()
        .and_then(|share| {
            state.tokens.list().into_iter().find(|t| {
                t.info.id == share && t.info.scope == Scope::Share && t.info.session_id == Some(session.id)
            })
        })
        .ok_or_else(|| AppError::NotFound(format!("session {id} has no share '{share_id}'")))?;
    // Whoever made a share may revoke it; so may whoever manages the session.
    if !manages && Some(share.user_id) != principal.user_id() {
        return Err(AppError::Forbidden(
            "only the share's maker and the session's owner may revoke it".to_owned(),
        ));
    }
    let share = share.info.id;
    state.tokens.revoke(share).await?;
    audit::by_principal(
        &state,
        &principal,
        "session.unshared",
        session.id.to_string(),
        Some(share.to_string()),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// The URL people reach HQ at: `--public-url`, else what this request was sent to.
pub(crate) fn public_base(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if state.config.tls_cert.is_some() { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// Looks a session up by the id in a path.
pub fn find(state: &AppState, id: &str) -> Result<Arc<Session>, AppError> {
    Uuid::parse_str(id)
        .ok()
        .and_then(|id| state.sessions.get(id))
        .ok_or_else(|| AppError::NotFound(format!("no session with id '{id}'")))
}

/// `GET /api/sessions/{id}/recording`: the output as asciicast v2, streamed as it is rendered.
/// Recordings can hold secrets an agent printed: only admins and the session's creator read them.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/recording",
    tag = "sessions",
    operation_id = "session_recording",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "asciicast v2, streamed as it is rendered",
            content_type = "application/x-asciicast", body = String, headers(
                ("Content-Disposition" = String, description = "`attachment; filename=\"{id}.cast\"`"),
            )),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or neither an admin nor the session's creator",
            body = ErrorResponse),
        (status = 404, description = "No session with this id, or it has no recording", body = ErrorResponse),
    )
)]
pub async fn recording(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let session = authz::session(&state, &principal, &id, Need::Watch)?;
    session.logged(std::time::Duration::from_secs(5)).await;
    let log = session.output_files().await?.ok_or_else(|| {
        AppError::NotFound(format!("session '{id}' has no recording (its output log could not be written)"))
    })?;
    let title = session.command.join(" ");
    let timestamp = session.created_at.timestamp();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    tokio::task::spawn_blocking(move || {
        // The whole value: a cluster's copy is deleted when it is dropped.
        let log = log;
        let header = recording::Header { timestamp, title: &title };
        let result = recording::render(&log.out, &log.timing, &header, |line| {
            tx.blocking_send(Ok(line)).map_err(|_| anyhow::anyhow!("client went away"))
        });
        if let Err(error) = result {
            tracing::warn!(error = format!("{error:#}"), "recording stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    let body = Body::from_stream(ReceiverStream::new(rx));
    let disposition = format!("attachment; filename=\"{id}.cast\"");
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-asciicast")
        .header(header::CONTENT_DISPOSITION, disposition)
        .body(body)
        .map_err(|e| AppError::Internal(e.into()))
}
