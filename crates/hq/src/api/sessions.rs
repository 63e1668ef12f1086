//! `/api/sessions`: start, list, inspect and end sessions.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentrelay_protocol::runner::{HqMessage, StartSession};
use agentrelay_protocol::{Runner, RunnerStatus, Session as SessionView, TermSize};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::Response;
use axum::{Extension, Json};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::JsonObject;
use crate::audit;
use crate::auth::Principal;
use crate::error::AppError;
use crate::events::Event;
use crate::recording;
use crate::session::{Session, ToRunner};
use crate::state::AppState;

/// A validated `POST /api/sessions` body.
struct CreateRequest {
    target: Target,
    command: Vec<String>,
    cwd: Option<String>,
    env: BTreeMap<String, String>,
    size: TermSize,
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
        let env: Option<BTreeMap<String, String>> = body.take("env", "an object of strings")?;
        let rows: Option<u16> = body.take("rows", "a number from 1 to 1000")?;
        let cols: Option<u16> = body.take("cols", "a number from 1 to 1000")?;
        body.finish()?;

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
        let command = match (command, preset) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_field("preset", "give either 'command' or 'preset', not both"));
            }
            (None, Some(name)) => {
                return Err(AppError::bad_field("preset", format!("unknown preset '{name}'")));
            }
            (None, None) => {
                return Err(AppError::bad_field("command", "'command' is required, e.g. [\"bash\", \"-l\"]"));
            }
            (Some(command), None) => command,
        };
        if command.first().is_none_or(|program| program.is_empty()) {
            return Err(AppError::bad_field("command", "'command' must name a program"));
        }
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
        Ok(Self { target, command, cwd, env: env.unwrap_or_default(), size })
    }
}

/// `POST /api/sessions`: starts a session on the chosen runner → 201 with the session.
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<SessionView>), AppError> {
    let request = CreateRequest::parse(JsonObject::parse(body)?)?;
    let runner = pick_runner(&state, &request.target)?;
    let max = state.config.max_sessions_per_runner;
    if state.sessions.live_on_runner(runner.id).len() >= max {
        return Err(AppError::LimitReached(format!(
            "runner '{}' already runs {max} sessions (--max-sessions-per-runner)",
            runner.name
        )));
    }
    let control = state
        .registry
        .sender(runner.id)
        .ok_or_else(|| AppError::RunnerOffline(format!("runner '{}' is offline", runner.name)))?;
    let id = Uuid::now_v7();
    let session = Arc::new(Session::new(
        id,
        runner.id,
        request.command.clone(),
        request.size,
        principal.name.clone(),
        state.config.ring_size,
        state.events.clone(),
        crate::open_log(&state, id, chrono::Utc::now()),
    ));
    state.sessions.insert(session.clone());
    state.tasks.spawn(session.clone().persist(state.shutdown.clone()));
    state.events.publish(Event::Session(session.view()));
    let start = StartSession {
        session_id: session.id,
        command: request.command,
        cwd: request.cwd,
        env: request.env,
        size: request.size,
    };
    if control.send(HqMessage::Start(start)).await.is_err() {
        session.mark_failed(format!("runner '{}' went offline before the session started", runner.name));
        return Err(AppError::RunnerOffline(format!("runner '{}' is offline", runner.name)));
    }
    tracing::info!(session = %session.id, runner = %runner.name, "session starting");
    let detail = format!("runner {}: {}", runner.name, session.command.join(" "));
    audit::by_principal(&state, &principal, "session.started", session.id.to_string(), Some(detail));
    Ok((StatusCode::CREATED, Json(session.view())))
}

fn pick_runner(state: &AppState, target: &Target) -> Result<Runner, AppError> {
    let runner = match target {
        Target::Id(id) => {
            state.registry.get(*id).ok_or_else(|| AppError::NotFound(format!("no runner with id {id}")))?
        }
        Target::Name(name) => state
            .registry
            .find_by_name(name)
            .ok_or_else(|| AppError::NotFound(format!("no runner named '{name}'")))?,
        Target::Labels(labels) => {
            let candidates = state.registry.online_with_labels(labels);
            // The matching runner with the fewest live sessions.
            candidates.into_iter().min_by_key(|r| state.sessions.live_on_runner(r.id).len()).ok_or_else(
                || AppError::NoMatchingRunner(format!("no online runner has labels {}", describe(labels))),
            )?
        }
    };
    if runner.status != RunnerStatus::Online {
        return Err(AppError::RunnerOffline(format!("runner '{}' is offline", runner.name)));
    }
    Ok(runner)
}

fn describe(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// `GET /api/sessions`: every session, newest first.
pub async fn list(State(state): State<AppState>) -> Json<Vec<SessionView>> {
    Json(state.sessions.list().iter().map(|s| s.view()).collect())
}

/// `GET /api/sessions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, AppError> {
    Ok(Json(find(&state, &id)?.view()))
}

/// `DELETE /api/sessions/{id}`: hang the process group up, then kill it → 202.
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let session = find(&state, &id)?;
    audit::by_principal(&state, &principal, "session.killed", session.id.to_string(), None);
    if !session.status().is_final() {
        // Queued behind any input already sent, so the runner sees them in order.
        let _ = session.to_runner().send(ToRunner::Kill).await;
    }
    Ok(StatusCode::ACCEPTED)
}

/// Looks a session up by the id in a path.
pub fn find(state: &AppState, id: &str) -> Result<Arc<Session>, AppError> {
    Uuid::parse_str(id)
        .ok()
        .and_then(|id| state.sessions.get(id))
        .ok_or_else(|| AppError::NotFound(format!("no session with id '{id}'")))
}

/// `GET /api/sessions/{id}/recording`: the output as asciicast v2, streamed as it is rendered.
pub async fn recording(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, AppError> {
    let session = find(&state, &id)?;
    let log = session.log().cloned().ok_or_else(|| {
        AppError::NotFound(format!("session '{id}' has no recording (its output log could not be written)"))
    })?;
    let title = session.command.join(" ");
    let timestamp = session.created_at.timestamp();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    tokio::task::spawn_blocking(move || {
        let (out, timing) = log.paths();
        let header = recording::Header { timestamp, title: &title };
        let result = recording::render(out, timing, &header, |line| {
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
