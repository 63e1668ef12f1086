//! A session's workspace: its changed files and diff, a review typed back to the agent, and the
//! commit, push and removal of its worktree. Each is a request to the session's runner
//! (`crate::workspace`); HQ never names a path on the runner.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentrelay_protocol::requests::{InputWhen, QueuedInput};
use agentrelay_protocol::runner::{WorkspaceOp, WorkspaceOutcome};
use agentrelay_protocol::workspace::{
    Changes, CommitRequest, Committed, Diff, MAX_COMMIT_MESSAGE, Pushed, Review, ReviewComment, Workspace,
    WorkspaceSpec,
};
use agentrelay_protocol::{ErrorResponse, Runner};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::Value;
use uuid::Uuid;

use super::JsonObject;
use super::sessions::{Typed, type_or_queue};
use crate::audit;
use crate::auth::Principal;
use crate::authz::{self, Need};
use crate::error::AppError;
use crate::session::Session;
use crate::state::AppState;
use crate::workspace::{ANSWER_TIMEOUT, SLOW_ANSWER_TIMEOUT, ask, unexpected};

/// The longest diff an answer carries; past it, whole files are left out (`truncated`).
pub const DIFF_LIMIT: u64 = 1024 * 1024;
/// The longest review typed into a session.
const REVIEW_LIMIT: usize = 64 * 1024;

/// Reads `"workspace": {"repo", "branch"?, "base"?}` of `POST /api/sessions`.
pub fn take_spec(body: &mut JsonObject) -> Result<Option<WorkspaceSpec>, AppError> {
    const EXPECTED: &str = "an object with 'repo' and, optionally, 'branch' and 'base' (strings)";
    let Some(mut fields) = body.take::<serde_json::Map<String, Value>>("workspace", EXPECTED)? else {
        return Ok(None);
    };
    let mut text = |name: &str| -> Result<Option<String>, AppError> {
        match fields.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if !text.trim().is_empty() && text.chars().count() <= 200 => {
                Ok(Some(text))
            }
            Some(_) => Err(AppError::bad_field(
                "workspace",
                format!("'workspace.{name}' must be a string of 1 to 200 characters"),
            )),
        }
    };
    let repo = text("repo")?;
    let branch = text("branch")?;
    let base = text("base")?;
    if let Some(unknown) = fields.keys().next() {
        return Err(AppError::bad_field("workspace", format!("unknown field 'workspace.{unknown}'")));
    }
    let repo = repo.ok_or_else(|| AppError::bad_field("workspace", "'workspace' needs 'repo'"))?;
    Ok(Some(WorkspaceSpec { repo, branch, base }))
}

/// Has the runner make session `id`'s worktree; nothing is made when it says no.
pub async fn create(
    state: &AppState,
    runner: &Runner,
    id: Uuid,
    spec: WorkspaceSpec,
) -> Result<Workspace, AppError> {
    if state.registry.speaks_workspaces(runner.id) && !runner.repos.iter().any(|r| r.name == spec.repo) {
        let offered: Vec<&str> = runner.repos.iter().map(|r| r.name.as_str()).collect();
        let offered = if offered.is_empty() { "none; see --repo".to_owned() } else { offered.join(", ") };
        return Err(AppError::bad_field(
            "workspace",
            format!("runner '{}' has no repository '{}' (it offers: {offered})", runner.name, spec.repo),
        ));
    }
    match ask(state, runner.id, id, WorkspaceOp::Create(spec), SLOW_ANSWER_TIMEOUT).await? {
        WorkspaceOutcome::Created(workspace) => Ok(workspace),
        other => Err(unexpected(&other)),
    }
}

/// The session and its workspace, which must still be there.
fn with_workspace(
    state: &AppState,
    principal: &Principal,
    id: &str,
    need: Need,
) -> Result<(Arc<Session>, Workspace), AppError> {
    let session = authz::session(state, principal, id, need)?;
    let workspace =
        session.workspace().ok_or_else(|| AppError::NotFound(format!("session {id} has no workspace")))?;
    if workspace.removed {
        return Err(AppError::Conflict {
            code: "workspace_removed",
            message: format!("session {id}'s worktree was removed; its branch '{}' stays", workspace.branch),
        });
    }
    Ok((session, workspace))
}

async fn ask_session(
    state: &AppState,
    session: &Session,
    op: WorkspaceOp,
    timeout: std::time::Duration,
) -> Result<WorkspaceOutcome, AppError> {
    ask(state, session.runner_id, session.id, op, timeout).await
}

/// `GET /api/sessions/{id}/changes`: the files changed against the base commit.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/changes",
    tag = "workspaces",
    operation_id = "session_changes",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "Every file changed against the base commit, committed or not, \
            untracked ones included", body = Changes),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
        (status = 404, description = "No session with this id, or it has no workspace", body = ErrorResponse),
        (status = 409, description = "`runner_offline`, or `workspace_removed`", body = ErrorResponse),
        (status = 501, description = "The runner is too old for workspaces", body = ErrorResponse),
        (status = 502, description = "Git failed on the runner", body = ErrorResponse),
        (status = 504, description = "The runner did not answer in time", body = ErrorResponse),
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Changes>, AppError> {
    let (session, _) = with_workspace(&state, &principal, &id, Need::Watch)?;
    match ask_session(&state, &session, WorkspaceOp::Changes, ANSWER_TIMEOUT).await? {
        WorkspaceOutcome::Changes(changes) => {
            session.note_changes(changes.summary);
            Ok(Json(changes))
        }
        other => Err(unexpected(&other)),
    }
}

/// Query of `GET /api/sessions/{id}/diff`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    /// One file (as `changes` lists it); all of them without it.
    path: Option<String>,
}

/// `GET /api/sessions/{id}/diff[?path=…]`: a unified diff against the base commit.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/diff",
    tag = "workspaces",
    operation_id = "session_diff",
    params(("id" = Uuid, Path, description = "Session id"), DiffQuery),
    responses(
        (status = 200, description = "The diff (at most 1 MiB: past it, `truncated` and whole files left out)",
            body = Diff),
        (status = 400, description = "A `path` outside the workspace", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
        (status = 404, description = "No session with this id, or it has no workspace", body = ErrorResponse),
        (status = 409, description = "`runner_offline`, or `workspace_removed`", body = ErrorResponse),
        (status = 501, description = "The runner is too old for workspaces", body = ErrorResponse),
        (status = 502, description = "Git failed on the runner", body = ErrorResponse),
        (status = 504, description = "The runner did not answer in time", body = ErrorResponse),
    )
)]
pub async fn diff(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Diff>, AppError> {
    let Query(query) = query.map_err(|_| AppError::bad_field("path", "'path' must be a path (string)"))?;
    let (session, _) = with_workspace(&state, &principal, &id, Need::Watch)?;
    Ok(Json(session_diff(&state, &session, query.path).await?))
}

async fn session_diff(state: &AppState, session: &Session, path: Option<String>) -> Result<Diff, AppError> {
    let op = WorkspaceOp::Diff { path, max_bytes: DIFF_LIMIT };
    match ask_session(state, session, op, ANSWER_TIMEOUT).await? {
        WorkspaceOutcome::Diff(diff) => Ok(diff),
        other => Err(unexpected(&other)),
    }
}

/// `POST /api/sessions/{id}/review` `{"summary"?, "comments": [{"path","line","body"}], "when"?}`:
/// types the review into the session as one message (each comment with its `file:line` and the
/// line it is about) → 204, or queues it until the agent next waits for input → 202.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/review",
    tag = "workspaces",
    operation_id = "session_review",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = Review,
    responses(
        (status = 202, description = "Queued (`\"when\": \"waiting\"`) until the agent next waits for input",
            body = QueuedInput),
        (status = 204, description = "Typed into the session"),
        (status = 400, description = "A bad field, no summary and no comment, or not a JSON object",
            body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No session with this id, or it has no workspace", body = ErrorResponse),
        (status = 409, description = "`session_ended`, `runner_offline` or `workspace_removed`",
            body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
        (status = 501, description = "The runner is too old for workspaces", body = ErrorResponse),
        (status = 502, description = "Git failed on the runner", body = ErrorResponse),
        (status = 504, description = "The runner did not answer in time", body = ErrorResponse),
    )
)]
pub async fn review(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, AppError> {
    let mut body = JsonObject::parse(body)?;
    let summary: Option<String> = body.take("summary", "a string")?;
    let comments: Option<Vec<Value>> = body.take("comments", "an array of comments")?;
    let when: Option<InputWhen> = body.take("when", "\"now\" or \"waiting\"")?;
    body.finish()?;
    let comments = comments.unwrap_or_default().into_iter().map(comment).collect::<Result<Vec<_>, _>>()?;
    let summary = summary.filter(|s| !s.trim().is_empty());
    if summary.is_none() && comments.is_empty() {
        return Err(AppError::bad_field("comments", "give a 'summary', some 'comments', or both"));
    }
    let (session, workspace) = with_workspace(&state, &principal, &id, Need::Drive)?;
    if session.status().is_final() {
        return Err(AppError::SessionEnded(format!("session {id} has ended")));
    }
    // The lines commented on, as the diff shows them now.
    let mut quoted: BTreeMap<String, BTreeMap<u32, String>> = BTreeMap::new();
    for path in comments.iter().map(|c| c.path.clone()).collect::<std::collections::BTreeSet<_>>() {
        let diff = session_diff(&state, &session, Some(path.clone())).await?;
        quoted.insert(path, new_lines(&diff.diff));
    }
    let text = review_text(&workspace, summary.as_deref(), &comments, &quoted);
    if text.len() > REVIEW_LIMIT {
        return Err(AppError::bad_field("comments", "the review is longer than 64 KiB"));
    }
    let detail = format!("{} comments, {} bytes", comments.len(), text.len());
    let typed = Typed { text, enter: true, when: when.unwrap_or_default(), action: "session.review", detail };
    type_or_queue(&state, &principal, &session, typed).await
}

/// One comment of a review body, checked.
fn comment(mut value: Value) -> Result<ReviewComment, AppError> {
    let bad = || {
        AppError::bad_field(
            "comments",
            "each comment is {\"path\": a file, \"line\": a number from 1, \"body\": some text}",
        )
    };
    if let Some(line) = value.get_mut("line") {
        *line = super::whole_number(line.take());
    }
    let comment: ReviewComment = serde_json::from_value(value.clone()).map_err(|_| bad())?;
    let known =
        value.as_object().is_some_and(|o| o.keys().all(|k| matches!(k.as_str(), "path" | "line" | "body")));
    if !known || comment.path.trim().is_empty() || comment.line == 0 || comment.body.trim().is_empty() {
        return Err(bad());
    }
    Ok(comment)
}

/// The new side's lines of a unified diff, by line number.
fn new_lines(diff: &str) -> BTreeMap<u32, String> {
    let mut lines = BTreeMap::new();
    let mut next: Option<u32> = None;
    for line in diff.lines() {
        if let Some(header) = line.strip_prefix("@@ ") {
            // "@@ -a,b +c,d @@": the new side starts at c.
            next = header
                .split_whitespace()
                .find_map(|part| part.strip_prefix('+'))
                .and_then(|range| range.split(',').next())
                .and_then(|start| start.parse().ok());
            continue;
        }
        let Some(number) = next else { continue };
        if let Some(text) = line.strip_prefix('+').or_else(|| line.strip_prefix(' ')) {
            lines.insert(number, text.to_owned());
            next = Some(number + 1);
        } else if line.starts_with("diff --git ") {
            next = None;
        }
    }
    lines
}

/// The review as one message: the summary, then each comment under its `file:line` and the line
/// it is about.
fn review_text(
    workspace: &Workspace,
    summary: Option<&str>,
    comments: &[ReviewComment],
    quoted: &BTreeMap<String, BTreeMap<u32, String>>,
) -> String {
    let mut text = format!("Review of your changes on branch {}:\n", workspace.branch);
    if let Some(summary) = summary {
        text.push('\n');
        text.push_str(summary.trim());
        text.push('\n');
    }
    for comment in comments {
        text.push_str(&format!("\n{}:{}\n", comment.path, comment.line));
        if let Some(line) = quoted.get(&comment.path).and_then(|lines| lines.get(&comment.line)) {
            text.push_str(&format!("> {line}\n"));
        }
        text.push_str(comment.body.trim());
        text.push('\n');
    }
    // One message: the Enter that follows sends it all.
    text.trim_end().to_owned()
}

/// `POST /api/sessions/{id}/workspace/commit` `{"message"}`: commits everything in the worktree
/// on the session's branch → 200.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/workspace/commit",
    tag = "workspaces",
    operation_id = "commit_workspace",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = CommitRequest,
    responses(
        (status = 200, description = "Committed", body = Committed),
        (status = 400, description = "A bad `message`, or not a JSON object", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No session with this id, or it has no workspace", body = ErrorResponse),
        (status = 409, description = "`nothing_to_commit`, `runner_offline` or `workspace_removed`",
            body = ErrorResponse),
        (status = 413, description = "The body is larger than `--max-body-size`", body = ErrorResponse),
        (status = 501, description = "The runner is too old for workspaces", body = ErrorResponse),
        (status = 502, description = "Git failed on the runner (a hook refused, say)", body = ErrorResponse),
        (status = 504, description = "The runner did not answer in time", body = ErrorResponse),
    )
)]
pub async fn commit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Committed>, AppError> {
    let mut body = JsonObject::parse(body)?;
    let message: Option<String> = body.take("message", "a string")?;
    body.finish()?;
    let message = message
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| AppError::bad_field("message", "'message' is required, not all white space"))?;
    if message.chars().count() > MAX_COMMIT_MESSAGE {
        let why = format!("'message' is at most {MAX_COMMIT_MESSAGE} characters");
        return Err(AppError::bad_field("message", why));
    }
    let (session, _) = with_workspace(&state, &principal, &id, Need::Drive)?;
    let outcome = ask_session(&state, &session, WorkspaceOp::Commit { message }, SLOW_ANSWER_TIMEOUT).await?;
    match outcome {
        WorkspaceOutcome::Committed(committed) => {
            audit::by_principal(
                &state,
                &principal,
                "workspace.committed",
                session.id.to_string(),
                Some(committed.commit.clone()),
            );
            Ok(Json(committed))
        }
        other => Err(unexpected(&other)),
    }
}

/// `POST /api/sessions/{id}/workspace/push`: pushes the session's branch to the repository's
/// remote, with the runner's own git credentials → 200.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/workspace/push",
    tag = "workspaces",
    operation_id = "push_workspace",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "Pushed", body = Pushed),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No session with this id, or it has no workspace", body = ErrorResponse),
        (status = 409, description = "`no_remote`, `runner_offline` or `workspace_removed`", body = ErrorResponse),
        (status = 501, description = "The runner is too old for workspaces", body = ErrorResponse),
        (status = 502, description = "The push failed (refused, no credentials)", body = ErrorResponse),
        (status = 504, description = "The runner did not answer in time", body = ErrorResponse),
    )
)]
pub async fn push(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Pushed>, AppError> {
    let (session, _) = with_workspace(&state, &principal, &id, Need::Drive)?;
    match ask_session(&state, &session, WorkspaceOp::Push, SLOW_ANSWER_TIMEOUT).await? {
        WorkspaceOutcome::Pushed(pushed) => {
            let detail = format!("{} {} {}", pushed.remote, pushed.branch, pushed.commit);
            audit::by_principal(&state, &principal, "workspace.pushed", session.id.to_string(), Some(detail));
            Ok(Json(pushed))
        }
        other => Err(unexpected(&other)),
    }
}

/// `DELETE /api/sessions/{id}/workspace`: removes the worktree of an ended session (its
/// uncommitted changes with it); the branch stays → 204.
#[utoipa::path(
    delete,
    path = "/api/sessions/{id}/workspace",
    tag = "workspaces",
    operation_id = "remove_workspace",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Removed; the branch stays"),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or a sign-in cookie from another origin",
            body = ErrorResponse),
        (status = 404, description = "No session with this id, or it has no workspace", body = ErrorResponse),
        (status = 409, description = "`session_running` (end it first), `runner_offline` or \
            `workspace_removed`", body = ErrorResponse),
        (status = 501, description = "The runner is too old for workspaces", body = ErrorResponse),
        (status = 502, description = "Git failed on the runner", body = ErrorResponse),
        (status = 504, description = "The runner did not answer in time", body = ErrorResponse),
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let (session, _) = with_workspace(&state, &principal, &id, Need::Manage)?;
    if !session.status().is_final() {
        return Err(AppError::Conflict {
            code: "session_running",
            message: format!("session {id} still runs in its worktree: end it first"),
        });
    }
    remove_worktree(&state, &session).await?;
    audit::by_principal(&state, &principal, "workspace.removed", session.id.to_string(), None);
    Ok(StatusCode::NO_CONTENT)
}

/// Has the runner remove an ended session's worktree, and marks it removed (also when the runner
/// no longer has it).
pub async fn remove_worktree(state: &AppState, session: &Session) -> Result<(), AppError> {
    match ask_session(state, session, WorkspaceOp::Remove, ANSWER_TIMEOUT).await {
        Ok(WorkspaceOutcome::Removed) | Err(AppError::NotFound(_)) => {
            session.note_workspace_removed();
            Ok(())
        }
        Ok(other) => Err(unexpected(&other)),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_quotes_the_lines_it_comments_on() {
        let diff = "diff --git a/src/x.rs b/src/x.rs\n--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1,3 +1,3 @@\n fn a() {}\n-let x = 1;\n+let x = 2;\n fn b() {}\n";
        let lines = new_lines(diff);
        assert_eq!(lines.get(&2).map(String::as_str), Some("let x = 2;"));
        assert_eq!(lines.get(&3).map(String::as_str), Some("fn b() {}"));
        let workspace = Workspace {
            repo: "app".into(),
            branch: "agentrelay/0123abcd".into(),
            base: "main".into(),
            base_commit: "c".into(),
            path: "/w".into(),
            changes: None,
            removed: false,
        };
        let comments = vec![
            ReviewComment { path: "src/x.rs".into(), line: 2, body: "Use a constant.".into() },
            ReviewComment { path: "src/x.rs".into(), line: 40, body: "And here.".into() },
        ];
        let quoted = BTreeMap::from([("src/x.rs".to_owned(), lines)]);
        let text = review_text(&workspace, Some("Nearly."), &comments, &quoted);
        assert_eq!(
            text,
            "Review of your changes on branch agentrelay/0123abcd:\n\nNearly.\n\nsrc/x.rs:2\n> let x = 2;\n\
             Use a constant.\n\nsrc/x.rs:40\nAnd here."
        );
    }
}
