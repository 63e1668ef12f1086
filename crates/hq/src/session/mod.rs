//! A session as HQ holds it: its metadata, its lifecycle, the ring its viewers read from, and the
//! ordered channel of input, resizes and kills bound for its runner.
//!
//! The keystroke path runs through here: a viewer's socket (`ws::viewer`) sends [`ToRunner`] on
//! [`Session::to_runner`]; the runner's data connection (`ws::runner_data`) holds the receiving
//! end, writes it to the runner, and pushes the output it gets back with [`Session::push_output`],
//! which wakes every viewer through [`Session::subscribe`].
//!
//! The satellites: [`start`] (the one way a session is made, new or restored), [`output`] (ring
//! and log reads, the log writer), [`output_log`] and [`timing`] (the files), [`terminal_model`],
//! [`activity`], [`presence`], [`recording`], and [`Sessions`], the map of all of them.

pub mod activity;
pub mod grants;
pub mod input_queue;
mod lifecycle;
pub mod menu;
mod output;
pub mod output_log;
mod presence;
pub mod recording;
pub mod replica;
mod sessions;
pub mod start;
pub mod terminal_model;
pub mod timing;
pub mod usage;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use agentrelay_protocol::{
    ActivityState, ExitStatus, Session as SessionView, SessionStatus, TermSize, ViewerInfo,
};
use agentrelay_ring::OutputRing;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

pub use lifecycle::Lifecycle;
pub use presence::ViewerSeat;
pub use sessions::Sessions;
pub use start::SessionSpec;

use crate::events::{Event, EventBus};
use crate::lock;
use output_log::OutputLog;
use terminal_model::TerminalModel;

/// Input, resizes and kills queued for the runner; viewers wait when it is full.
const TO_RUNNER_QUEUE: usize = 256;

/// What travels from viewers to the runner, in the order viewers sent it.
#[derive(Debug)]
pub enum ToRunner {
    /// Keystrokes or a paste.
    Input(Bytes),
    /// A new PTY size.
    Resize(TermSize),
    /// Hang up, then kill.
    Kill,
}

/// Where the output stream stands; viewers wait on changes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// One past the newest output byte.
    pub end: u64,
    /// The lifecycle state.
    pub status: SessionStatus,
    /// HQ stopped writing the output log (see [`Session::log_error`]).
    pub log_stopped: bool,
    /// The session's runner is disconnected: input waits, and no output comes, until it is back.
    pub runner_away: bool,
}

/// What a session needs from HQ besides its spec: the ring's size, where changes go, its log on
/// disk (if the data dir took one) and the prompts its screen is checked for.
pub struct Parts {
    /// `--ring-size`.
    pub ring_size: usize,
    /// Where lifecycle changes are published.
    pub events: EventBus,
    /// The output on disk.
    pub log: Option<Arc<OutputLog>>,
    /// Lines on a quiet screen that mean "waiting for input".
    pub prompts: activity::Prompts,
    /// In a cluster, the output stored in PostgreSQL (instead of `log`).
    pub stored: Option<Arc<crate::cluster::stored::StoredLog>>,
}

/// One session.
///
/// Lock order, where two are held at once: `activity` before `lifecycle` before `viewers`, and
/// `model` before `size` (and the terminal model's own lock). No lock is held across an `.await`
/// or while a socket is written; the watch channels are only sent on after locks are let go.
pub struct Session {
    /// Session id.
    pub id: Uuid,
    /// The runner it runs on.
    pub runner_id: Uuid,
    /// Its argv.
    pub command: Vec<String>,
    /// Who created it (the token's name).
    pub created_by: String,
    /// The user who started it.
    pub owner: Option<agentrelay_protocol::Owner>,
    /// Teammates its owner let in.
    pub grants: grants::Grants,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The preset it was started from.
    pub preset: Option<String>,
    /// The name people gave it; renamed with [`Session::rename`].
    name: Mutex<Option<String>>,
    /// Lines on a quiet screen that mean "waiting for input".
    prompts: activity::Prompts,
    lifecycle: Mutex<Lifecycle>,
    /// Scrollback for viewers. Locked only to push or to slice out a read, never across I/O.
    output: Mutex<OutputRing>,
    /// Sent by the data connection on every push and by every state change; viewers subscribe.
    progress: watch::Sender<Progress>,
    /// Viewers and the API send here; the current data connection to the runner receives.
    to_runner: mpsc::Sender<ToRunner>,
    /// The receiving end while no data connection holds it. A data connection takes it when it
    /// opens and parks it here again when it ends, so nothing queued while the runner is away is
    /// lost or reordered: the next connection sends it first.
    to_runner_rx: Mutex<Option<mpsc::Receiver<ToRunner>>>,
    /// Signalled when a data connection parks `to_runner_rx` again.
    rx_parked: Notify,
    /// Where lifecycle changes are published.
    events: EventBus,
    /// The output on disk, when the data dir is writable.
    log: Option<Arc<OutputLog>>,
    /// In a cluster, the output in PostgreSQL.
    stored: Option<Arc<crate::cluster::stored::StoredLog>>,
    /// In a cluster, whether this replica stores the output now (holds the runner's data
    /// connection and the session's lease).
    owned: AtomicBool,
    /// Bumped by a data connection that wants `to_runner_rx`; a cluster's order forwarder
    /// holding it gives it back.
    rx_wanted: watch::Sender<u64>,
    /// An order the forwarder took but could not deliver before it gave the queue back: it goes
    /// first.
    carry: Mutex<Option<ToRunner>>,
    /// Offset up to which output is in the log; sent by `persist`, awaited by the data path
    /// when unsaved output fills the ring.
    persisted: watch::Sender<u64>,
    /// The headless terminal of a live session, made on first use; dropped when the session ends.
    model: Mutex<Option<Arc<TerminalModel>>>,
    /// Viewers attached now, and whose window the PTY is sized for.
    viewers: Mutex<presence::Seats>,
    /// Who is attached, for viewers to show.
    presence: watch::Sender<Vec<ViewerInfo>>,
    /// What the process is doing, and whether a report from the process holds it.
    activity: Mutex<activity::Tracked>,
    /// Whether the activity is `working` now: the data path reads this, not the mutex.
    working: AtomicBool,
    /// The current activity, for viewers to show.
    activity_watch: watch::Sender<Option<ActivityState>>,
    /// The PTY's current size, as last requested; viewers are told each change.
    size: watch::Sender<TermSize>,
    /// Input waiting for the session to wait for input.
    input_queue: Mutex<input_queue::Queue>,
    /// The agent's tokens and cost so far (totals), if it reports any.
    usage: Mutex<Option<agentrelay_protocol::Usage>>,
    /// Its git worktree on the runner, if it was started with one (see `crate::workspace`).
    workspace: Mutex<Option<agentrelay_protocol::workspace::Workspace>>,
}

impl Session {
    /// A session from its spec, in the state `lifecycle` says. Output continues after what its
    /// log holds (`output_bytes` counts when there is no log). Use [`start::open`], which also
    /// registers the session and starts its tasks.
    fn new(spec: SessionSpec, lifecycle: Lifecycle, output_bytes: u64, parts: Parts) -> Self {
        let Parts { ring_size, events, log, prompts, stored } = parts;
        let (to_runner, rx) = mpsc::channel(TO_RUNNER_QUEUE);
        let end = match (&log, &stored) {
            (Some(log), _) => log.len(),
            (None, Some(stored)) => stored.len(),
            (None, None) => output_bytes,
        };
        let size = log.as_ref().and_then(|log| log.last_size()).unwrap_or(TermSize::DEFAULT);
        let mut ring = OutputRing::starting_at(end, ring_size);
        // Nothing leaves the ring before it is in the log.
        ring.pin_at(log.as_ref().map(|_| end));
        let progress = Progress {
            end,
            status: lifecycle.status,
            log_stopped: lifecycle.log_error.is_some(),
            runner_away: false,
        };
        Self {
            id: spec.id,
            runner_id: spec.runner_id,
            command: spec.command,
            created_by: spec.created_by,
            owner: spec.owner,
            grants: grants::Grants::default(),
            created_at: spec.created_at,
            preset: spec.preset,
            name: Mutex::new(spec.name),
            prompts,
            lifecycle: Mutex::new(lifecycle),
            output: Mutex::new(ring),
            progress: watch::Sender::new(progress),
            to_runner,
            to_runner_rx: Mutex::new(Some(rx)),
            rx_parked: Notify::new(),
            events,
            log,
            stored,
            owned: AtomicBool::new(false),
            rx_wanted: watch::Sender::new(0),
            carry: Mutex::new(None),
            persisted: watch::Sender::new(end),
            model: Mutex::new(None),
            viewers: Mutex::default(),
            presence: watch::Sender::new(Vec::new()),
            activity: Mutex::default(),
            working: AtomicBool::new(false),
            activity_watch: watch::Sender::new(None),
            size: watch::Sender::new(size),
            input_queue: Mutex::default(),
            usage: Mutex::default(),
            workspace: Mutex::new(spec.workspace),
        }
    }

    /// The session as the API shows it.
    pub fn view(&self) -> SessionView {
        let activity = lock(&self.activity).current;
        let life = lock(&self.lifecycle);
        let exit = life.exit.clone().unwrap_or(ExitStatus { code: None, signal: None });
        SessionView {
            id: self.id,
            runner_id: self.runner_id,
            command: self.command.clone(),
            status: life.status,
            exit_code: exit.code,
            signal: exit.signal,
            error: life.error.clone(),
            created_by: self.created_by.clone(),
            owner: self.owner.clone(),
            created_at: self.created_at,
            ended_at: life.ended_at,
            output_bytes: self.progress.borrow().end,
            preset: self.preset.clone(),
            name: lock(&self.name).clone(),
            activity: activity.map(|a| a.activity),
            activity_since: activity.map(|a| a.since),
            activity_source: activity.map(|a| a.source),
            viewers: lock(&self.viewers).infos(),
            log_error: life.log_error.clone(),
            usage: lock(&self.usage).clone(),
            workspace: lock(&self.workspace).clone(),
        }
    }

    /// Its workspace, if it has one.
    pub fn workspace(&self) -> Option<agentrelay_protocol::workspace::Workspace> {
        lock(&self.workspace).clone()
    }

    /// The runner reported the workspace's changes: kept for the session's view, and told to
    /// `/api/events` as a `changes` event when they moved.
    pub fn note_changes(&self, summary: agentrelay_protocol::workspace::ChangeSummary) {
        let moved = match lock(&self.workspace).as_mut() {
            Some(workspace) if workspace.changes != Some(summary) => {
                workspace.changes = Some(summary);
                true
            }
            _ => false,
        };
        if moved {
            self.events.publish(Event::Changes { session_id: self.id, summary });
        }
    }

    /// The worktree is gone (the branch stays); everyone is told.
    pub fn note_workspace_removed(&self) {
        if let Some(workspace) = lock(&self.workspace).as_mut() {
            workspace.removed = true;
        }
        self.publish();
    }

    /// Publishes the session's current view on the event bus.
    fn publish(&self) {
        self.events.publish(Event::Session(Box::new(self.view())));
    }

    /// Gives the session a name (or, with `None`, takes it away) and tells everyone.
    pub fn rename(&self, name: Option<String>) {
        *lock(&self.name) = name;
        self.publish();
    }

    /// Current status.
    pub fn status(&self) -> SessionStatus {
        lock(&self.lifecycle).status
    }

    /// When the session ended, once it has.
    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        lock(&self.lifecycle).ended_at
    }

    /// How the process ended, once it has.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        lock(&self.lifecycle).exit.clone()
    }

    /// Why the session failed or was lost.
    pub fn error(&self) -> Option<String> {
        lock(&self.lifecycle).error.clone()
    }

    /// Why HQ stopped writing the output log, once it has.
    pub fn log_error(&self) -> Option<String> {
        lock(&self.lifecycle).log_error.clone()
    }

    /// A receiver of progress updates for one viewer.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// `starting` → `running`.
    pub fn mark_running(&self) {
        self.transition(SessionStatus::Running, |_| {});
    }

    /// The process ended; its exit is delivered after the last output byte.
    pub fn mark_exited(&self, exit: ExitStatus) {
        self.transition(SessionStatus::Exited, |life| life.exit = Some(exit));
    }

    /// The process could not be started.
    pub fn mark_failed(&self, error: String) {
        self.transition(SessionStatus::Failed, |life| life.error = Some(error));
    }

    /// The runner vanished for good.
    pub fn mark_lost(&self, error: String) {
        self.transition(SessionStatus::Lost, |life| life.error = Some(error));
    }

    fn transition(&self, next: SessionStatus, on_success: impl FnOnce(&mut Lifecycle)) {
        let moved = {
            let mut life = lock(&self.lifecycle);
            let moved = life.advance(next);
            if moved {
                on_success(&mut life);
            }
            moved
        };
        if !moved {
            return;
        }
        if next.is_final() {
            self.retire_model();
            self.clear_activity();
            self.clear_queue();
        }
        self.progress.send_modify(|p| p.status = next);
        self.publish();
    }

    /// The runner disconnected (`true`) or is back (`false`); viewers are told when it goes.
    pub fn note_runner_away(&self, away: bool) {
        self.progress.send_if_modified(|p| std::mem::replace(&mut p.runner_away, away) != away);
    }

    /// The sender for input, resizes and kills bound for the runner.
    pub fn to_runner(&self) -> &mpsc::Sender<ToRunner> {
        &self.to_runner
    }

    /// Records a resize in the recording's timeline and the terminal model.
    pub fn note_resize(&self, size: TermSize) {
        self.size.send_replace(size);
        if let Some(model) = lock(&self.model).as_ref() {
            model.note_resize(self.progress.borrow().end, size);
        }
        if let Some(Err(error)) = self.log.as_ref().map(|log| log.note_resize(size)) {
            tracing::warn!(session = %self.id, error = format!("{error:#}"), "cannot record a resize");
        }
        if let Some(stored) = &self.stored {
            stored.note_resize(size);
        }
    }

    /// Takes the runner-bound receiver for a new data connection, waiting briefly for an older
    /// connection to give it back.
    pub async fn take_runner_rx(&self) -> Option<mpsc::Receiver<ToRunner>> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let parked = self.rx_parked.notified();
            if let Some(rx) = lock(&self.to_runner_rx).take() {
                return Some(rx);
            }
            // A cluster's forwarder may hold it: it gives it back when asked.
            self.rx_wanted.send_modify(|wanted| *wanted += 1);
            if tokio::time::timeout_at(deadline, parked).await.is_err() {
                return None;
            }
        }
    }

    /// Gives the runner-bound receiver back when a data connection ends.
    pub fn park_runner_rx(&self, rx: mpsc::Receiver<ToRunner>) {
        *lock(&self.to_runner_rx) = Some(rx);
        self.rx_parked.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session with no log, as `start::open` would make it.
    pub(crate) fn bare_session() -> Session {
        let spec = SessionSpec {
            id: Uuid::now_v7(),
            runner_id: Uuid::now_v7(),
            command: vec!["true".into()],
            preset: None,
            name: None,
            workspace: None,
            created_by: "t".into(),
            owner: None,
            created_at: Utc::now(),
        };
        let parts = Parts {
            ring_size: 1024,
            events: EventBus::default(),
            log: None,
            prompts: Default::default(),
            stored: None,
        };
        Session::new(spec, Lifecycle::starting(), 0, parts)
    }

    #[test]
    fn lifecycle_only_moves_forward() {
        let session = bare_session();
        session.mark_running();
        session.mark_exited(ExitStatus { code: Some(3), signal: None });
        session.mark_lost("late".into());
        session.mark_failed("later".into());
        let view = session.view();
        assert_eq!(view.status, SessionStatus::Exited);
        assert_eq!(view.exit_code, Some(3));
        assert!(view.error.is_none() && view.ended_at.is_some());
    }
}
