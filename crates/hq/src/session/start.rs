//! The one way a session comes into HQ: made from a [`SessionSpec`], given its log and prompt
//! patterns, registered, and (while live) given its two tasks, the log writer and the activity
//! tracker. `POST /api/sessions` opens new sessions through [`open`]; a starting HQ brings back
//! stored ones through [`restore`], which opens each the same way.

use std::collections::HashSet;
use std::sync::Arc;

use agentrelay_protocol::{Session as SessionView, TermSize};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::output_log::OutputLog;
use super::{Lifecycle, Parts, Session, activity};
use crate::state::AppState;
use crate::store::Snapshot;
use crate::ws::runner_control;

/// What a session is, apart from where it stands: fixed when it is created.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// Session id.
    pub id: Uuid,
    /// The runner it runs on.
    pub runner_id: Uuid,
    /// Its argv.
    pub command: Vec<String>,
    /// The runner's preset it was started from.
    pub preset: Option<String>,
    /// The name people gave it at the start.
    pub name: Option<String>,
    /// Its git worktree on the runner, made before the start.
    pub workspace: Option<agentrelay_protocol::workspace::Workspace>,
    /// Who created it (the token's name).
    pub created_by: String,
    /// The user who started it.
    pub owner: Option<agentrelay_protocol::Owner>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl SessionSpec {
    /// The spec of a stored session (or one another replica announced).
    pub fn stored(view: &SessionView) -> Self {
        Self {
            id: view.id,
            runner_id: view.runner_id,
            command: view.command.clone(),
            preset: view.preset.clone(),
            name: view.name.clone(),
            workspace: view.workspace.clone(),
            created_by: view.created_by.clone(),
            owner: view.owner.clone(),
            created_at: view.created_at,
        }
    }
}

/// Where a session stands when HQ takes it up.
pub enum Origin {
    /// Just requested: `starting`, with a PTY of this size.
    New(TermSize),
    /// From the store: its lifecycle as last saved, and how much output it had.
    Stored {
        /// Status, exit, errors.
        lifecycle: Lifecycle,
        /// Output bytes as last saved (what counts when the log cannot be opened).
        output_bytes: u64,
        /// The agent's tokens and cost as last saved.
        usage: Option<agentrelay_protocol::Usage>,
    },
}

/// Makes the session, registers it, and starts its tasks while it is live. A new session is
/// announced on the event bus; a restored one is already in the store.
pub fn open(state: &AppState, spec: SessionSpec, origin: Origin) -> Arc<Session> {
    let presets = state.registry.get(spec.runner_id).map(|r| r.presets).unwrap_or_default();
    // A new session's size goes into its log's timeline; a stored one's is read back from there.
    let (lifecycle, output_bytes, new_size, usage) = match origin {
        Origin::New(size) => (Lifecycle::starting(), 0, Some(size), None),
        Origin::Stored { lifecycle, output_bytes, usage } => (lifecycle, output_bytes, None, usage),
    };
    // In a cluster the output lives in PostgreSQL, where every replica reads it.
    let stored = state.cluster.as_ref().map(|cluster| {
        let end = if new_size.is_some() { 0 } else { cluster.stored_end_hint(spec.id, output_bytes) };
        Arc::new(crate::cluster::stored::StoredLog::new(
            spec.id,
            cluster.pg.clone(),
            cluster.writer.clone(),
            spec.created_at,
            end,
        ))
    });
    let parts = Parts {
        ring_size: state.config.ring_size,
        events: state.events.clone(),
        log: if stored.is_some() { None } else { open_log(state, spec.id, spec.created_at) },
        prompts: activity::prompt_patterns(&presets, spec.preset.as_deref(), &spec.command),
        stored,
    };
    let session = Arc::new(Session::new(spec, lifecycle, output_bytes, parts));
    session.restore_usage(usage);
    if let Some(size) = new_size {
        session.note_resize(size);
    }
    state.sessions.insert(session.clone());
    match &state.cluster {
        // In a cluster the replica that holds the runner stores output and tracks activity
        // (`ws::runner_data`); the others send their orders there.
        Some(cluster) if !session.status().is_final() => {
            let forwarder = crate::cluster::stream::forward_orders(
                cluster.clone(),
                session.clone(),
                state.shutdown.clone(),
            );
            state.tasks.spawn(forwarder);
        }
        Some(_) => {}
        None if !session.status().is_final() => {
            state.tasks.spawn(session.clone().persist(state.shutdown.clone()));
            state.tasks.spawn(activity::track(state.clone(), session.clone()));
        }
        None => {}
    }
    if new_size.is_some() {
        session.publish();
    }
    session
}

/// Brings back what the store knew: every runner (offline until it dials in) and every session,
/// whose output continues after what its log holds. Live sessions whose runner does not return
/// within `--lost-after` become `lost`.
pub fn restore(state: &AppState, snapshot: Snapshot) {
    for runner in snapshot.runners {
        state.registry.restore(runner);
    }
    let mut waiting_runners = HashSet::new();
    for view in snapshot.sessions {
        let origin = Origin::Stored {
            lifecycle: Lifecycle::stored(&view),
            output_bytes: view.output_bytes,
            usage: view.usage.clone(),
        };
        let session = open(state, SessionSpec::stored(&view), origin);
        if !session.status().is_final() {
            waiting_runners.insert(session.runner_id);
        }
    }
    for runner_id in waiting_runners {
        runner_control::watch_for_lost_sessions(state, runner_id);
    }
    for (session_id, grant) in snapshot.grants {
        if let Some(session) = state.sessions.get(session_id) {
            session.grants.set(grant);
        }
    }
}

/// Opens a session's output log; without one the session still works, from memory only.
fn open_log(state: &AppState, id: Uuid, created_at: DateTime<Utc>) -> Option<Arc<OutputLog>> {
    let elapsed = (Utc::now() - created_at).num_milliseconds().max(0) as u64;
    match OutputLog::open(&state.config.data_dir.join("sessions"), id, elapsed) {
        Ok(log) => Some(Arc::new(log)),
        Err(error) => {
            tracing::error!(session = %id, error = format!("{error:#}"), "no output log; keeping output in memory only");
            None
        }
    }
}
