//! Workspace requests: HQ never touches a runner's disk, so every workspace operation (create,
//! changes, diff, commit, push, remove) is a `workspace` request on the runner's control
//! connection, answered by a `workspace_reply` with the same id. [`Pending`] matches the two;
//! [`ask`] sends one and turns the runner's answer into the REST error it stands for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentrelay_protocol::runner::{
    HqMessage, WorkspaceError, WorkspaceOp, WorkspaceOutcome, WorkspaceReply, WorkspaceRequest,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::error::AppError;
use crate::lock;
use crate::state::AppState;

/// How long HQ waits for most answers (a diff, a commit).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// …and for the slow ones: a worktree's checkout, a push.
pub const SLOW_ANSWER_TIMEOUT: Duration = Duration::from_secs(150);

/// Requests sent to runners and not answered yet. A reply completes its request; a runner that
/// disconnects drops its own (their callers hear it went offline).
#[derive(Debug, Default)]
pub struct Pending {
    next: AtomicU64,
    /// Request id → the runner asked, and where its answer goes.
    waiting: Mutex<HashMap<u64, (Uuid, oneshot::Sender<WorkspaceOutcome>)>>,
}

impl Pending {
    fn open(&self, runner: Uuid) -> (u64, oneshot::Receiver<WorkspaceOutcome>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(id, (runner, tx));
        (id, rx)
    }

    fn forget(&self, id: u64) {
        lock(&self.waiting).remove(&id);
    }

    /// A runner's reply: completes the request it answers, if that runner was asked.
    pub fn answer(&self, runner: Uuid, reply: WorkspaceReply) {
        let mut waiting = lock(&self.waiting);
        match waiting.get(&reply.request_id) {
            Some((asked, _)) if *asked == runner => {
                if let Some((_, tx)) = waiting.remove(&reply.request_id) {
                    let _ = tx.send(reply.outcome);
                }
            }
            _ => tracing::warn!(request = reply.request_id, "ignoring a workspace reply nobody waits for"),
        }
    }

    /// The runner's control connection ended: its requests will not be answered.
    pub fn drop_runner(&self, runner: Uuid) {
        lock(&self.waiting).retain(|_, (asked, _)| *asked != runner);
    }
}

/// Sends `op` about `session`'s workspace to `runner` and waits for the answer; a failure the
/// runner reports becomes the REST error it stands for.
pub async fn ask(
    state: &AppState,
    runner: Uuid,
    session: Uuid,
    op: WorkspaceOp,
    timeout: Duration,
) -> Result<WorkspaceOutcome, AppError> {
    let info = state.registry.get(runner);
    let name = info.as_ref().map_or_else(|| runner.to_string(), |r| r.name.clone());
    let offline = || AppError::RunnerOffline(format!("runner '{name}' is offline"));
    let control = state.registry.sender(runner).ok_or_else(offline)?;
    if !state.registry.speaks_workspaces(runner) {
        let version = info.map(|r| r.version).unwrap_or_default();
        return Err(AppError::NotImplemented(format!(
            "runner '{name}' (version {version}) does not support workspaces; upgrade it"
        )));
    }
    let pending = &state.registry.requests;
    let (request_id, answer) = pending.open(runner);
    let request = HqMessage::Workspace(WorkspaceRequest { request_id, session_id: session, op });
    if control.send(request).await.is_err() {
        pending.forget(request_id);
        return Err(offline());
    }
    let outcome = match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => return Err(offline()),
        Err(_) => {
            pending.forget(request_id);
            return Err(AppError::RunnerTimeout(format!(
                "runner '{name}' did not answer within {timeout:?}"
            )));
        }
    };
    match outcome {
        WorkspaceOutcome::Failed(failure) => Err(failure_error(failure.code, failure.message)),
        other => Ok(other),
    }
}

/// The REST error for each failure a runner reports.
fn failure_error(code: WorkspaceError, message: String) -> AppError {
    use WorkspaceError as E;
    match code {
        E::UnknownRepo | E::BadBranch | E::BadBase => AppError::bad_field("workspace", message),
        E::BadPath => AppError::bad_field("path", message),
        E::BadMessage => AppError::bad_field("message", message),
        E::RepoMissing => AppError::Conflict { code: "repo_missing", message },
        E::RepoDirty => AppError::Conflict { code: "repo_dirty", message },
        E::BranchExists => AppError::Conflict { code: "branch_exists", message },
        E::NothingToCommit => AppError::Conflict { code: "nothing_to_commit", message },
        E::NoRemote => AppError::Conflict { code: "no_remote", message },
        E::NoWorkspace => AppError::NotFound(message),
        E::GitFailed | E::Unknown => AppError::RunnerFailed(message),
    }
}

/// An answer of the wrong kind (a runner bug): a 502.
pub fn unexpected(outcome: &WorkspaceOutcome) -> AppError {
    AppError::RunnerFailed(format!("the runner answered with something else: {outcome:?}"))
}
