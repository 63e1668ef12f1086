//! Retention: finished sessions (rows and output logs, and their worktrees on the runner) are
//! deleted `--retention` after they end, and the oldest finished ones go first whenever all logs
//! together exceed `--retention-size`. Live sessions are never touched.
//!
//! It runs when a session ends (the size limit) and on a timer (the age limit), off the data
//! path; deleting files happens on the blocking pool. [`remove`] also serves `DELETE` on a
//! finished session.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::events::Event;
use crate::session::Session;
use crate::state::AppState;

/// Prunes until HQ shuts down.
pub async fn run(state: AppState) {
    // The age limit needs only coarse checks; a short retention (tests) gets quicker ones.
    let every = (state.config.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let mut timer = tokio::time::interval(every);
    let mut feed = state.events.subscribe();
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            event = feed.recv() => match event {
                Ok(Event::Session(session)) if session.status.is_final() => {}
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            () = state.shutdown.cancelled() => return,
        }
        prune(&state).await;
    }
}

/// One pass: by age, then by total size. In a cluster only the leader prunes (once per cluster).
pub async fn prune(state: &AppState) {
    if state.cluster.as_ref().is_some_and(|cluster| !cluster.is_leader()) {
        return;
    }
    let now = chrono::Utc::now();
    let max_age = chrono::Duration::from_std(state.config.retention).unwrap_or(chrono::Duration::MAX);
    let sessions = state.sessions.list();
    // Each log knows its length: no file system walk on every session end.
    let mut total: u64 = sessions.iter().map(stored_len).sum();
    // Finished sessions (only they have ended), oldest end first.
    let mut finished: Vec<_> =
        sessions.into_iter().filter_map(|s| s.ended_at().map(|ended| (ended, s))).collect();
    finished.sort_by_key(|(ended, _)| *ended);
    for (ended, session) in finished {
        let too_old = now - ended > max_age;
        let too_big = total > state.config.retention_size;
        if !too_old && !too_big {
            continue;
        }
        // Its worktree goes first; while its runner cannot remove it (offline), the session stays.
        if session.workspace().is_some_and(|w| !w.removed)
            && let Err(error) = crate::api::workspaces::remove_worktree(state, &session).await
        {
            tracing::info!(session = %session.id, %error, "keeping a finished session until its runner removes its worktree");
            continue;
        }
        let size = stored_len(&session);
        total = total.saturating_sub(size);
        remove(state, &session).await;
        let why = if too_old { "older than --retention" } else { "over --retention-size" };
        tracing::info!(session = %session.id, bytes = size, why, "pruned a finished session");
    }
}

/// The bytes a session's output takes: its log, or its output stored in PostgreSQL.
fn stored_len(session: &std::sync::Arc<Session>) -> u64 {
    match (session.log(), session.stored()) {
        (Some(log), _) => log.len(),
        (None, Some(stored)) => stored.len(),
        (None, None) => 0,
    }
}

/// Forgets a finished session: its row, its output log and timing index, and tells everyone
/// (`session_removed`). Retention calls it, and so does `DELETE` on a finished session.
pub async fn remove(state: &AppState, session: &Session) {
    state.sessions.remove(session.id);
    if let Some(log) = session.log().cloned() {
        let removed = tokio::task::spawn_blocking(move || log.remove()).await;
        if let Ok(Err(error)) = removed {
            tracing::warn!(session = %session.id, error = format!("{error:#}"), "could not delete an output log");
        }
    }
    state.events.publish(Event::SessionRemoved(session.id));
}
