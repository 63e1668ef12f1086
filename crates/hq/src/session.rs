//! A session as HQ holds it: its metadata, its lifecycle, the ring its viewers read from, and the
//! ordered channel of input, resizes and kills bound for its runner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use agentrelay_protocol::{
    Activity, ActivitySource, ActivityState, ExitStatus, Session as SessionView, SessionStatus, TermSize,
    ViewerInfo,
};
use agentrelay_ring::{OutputRing, Read};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::{Event, EventBus};
use crate::lock;
use crate::output_log::OutputLog;
use crate::terminal_model::TerminalModel;

/// Largest write to the output log.
const PERSIST_CHUNK: usize = 256 * 1024;

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

/// The parts of a session that change after it is created.
#[derive(Debug)]
struct Lifecycle {
    status: SessionStatus,
    exit: Option<ExitStatus>,
    error: Option<String>,
    ended_at: Option<DateTime<Utc>>,
    log_error: Option<String>,
}

impl Lifecycle {
    /// The one transition function: states only move forward, and an end state is final.
    fn advance(&mut self, next: SessionStatus) -> bool {
        use SessionStatus::*;
        let allowed =
            matches!((self.status, next), (Starting, Running) | (Starting | Running, Exited | Failed | Lost));
        if allowed {
            self.status = next;
            if next.is_final() {
                self.ended_at = Some(Utc::now());
            }
        }
        allowed
    }
}

/// One session.
pub struct Session {
    /// Session id.
    pub id: Uuid,
    /// The runner it runs on.
    pub runner_id: Uuid,
    /// Its argv.
    pub command: Vec<String>,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The preset it was started from.
    pub preset: Option<String>,
    /// Lines on a quiet screen that mean "waiting for input".
    prompts: crate::activity::Prompts,
    lifecycle: Mutex<Lifecycle>,
    /// Scrollback for viewers. Locked only to push or to slice out a read, never across I/O.
    output: Mutex<OutputRing>,
    /// Sent by the data connection on every push and by every state change; viewers subscribe.
    progress: watch::Sender<Progress>,
    /// Viewers and the API send here; the data connection to the runner receives.
    to_runner: mpsc::Sender<ToRunner>,
    /// The receiving end, held by whichever data connection is current (or parked here).
    to_runner_rx: Mutex<Option<mpsc::Receiver<ToRunner>>>,
    /// Signalled when a data connection parks `to_runner_rx` again.
    rx_parked: Notify,
    /// Where lifecycle changes are published.
    events: EventBus,
    /// The output on disk, when the data dir is writable.
    log: Option<Arc<OutputLog>>,
    /// Offset up to which output is in the log; sent by `persist`, awaited by the data path
    /// when unsaved output fills the ring.
    persisted: watch::Sender<u64>,
    /// The headless terminal of a live session; dropped when the session ends.
    model: Mutex<Option<Arc<TerminalModel>>>,
    /// Viewers attached now, by seat number.
    viewers: Mutex<Vec<(u64, ViewerInfo)>>,
    /// The next seat number.
    next_seat: std::sync::atomic::AtomicU64,
    /// Who is attached, for viewers to show.
    presence: watch::Sender<Vec<ViewerInfo>>,
    /// What the process is doing, and whether a report from the process holds it.
    activity: Mutex<Tracked>,
    /// Whether the activity is `working` now: the data path reads this, not the mutex.
    working: std::sync::atomic::AtomicBool,
    /// The current activity, for viewers to show.
    activity_watch: watch::Sender<Option<ActivityState>>,
    /// The PTY's current size, as last requested.
    size: Mutex<TermSize>,
}

/// A viewer's place in a session; dropping it leaves.
pub struct ViewerSeat {
    session: Arc<Session>,
    seat: u64,
}

impl Drop for ViewerSeat {
    fn drop(&mut self) {
        self.session.leave(self.seat);
    }
}

/// A session's activity and what may change it.
#[derive(Debug, Default)]
struct Tracked {
    current: Option<ActivityState>,
    /// A report from the process wins over guesses until someone types into the session.
    held: bool,
}

impl Session {
    /// A new session in `starting`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: Uuid,
        runner_id: Uuid,
        command: Vec<String>,
        size: TermSize,
        created_by: String,
        ring_size: usize,
        events: EventBus,
        log: Option<Arc<OutputLog>>,
    ) -> Self {
        let view = SessionView {
            id,
            runner_id,
            command,
            status: SessionStatus::Starting,
            exit_code: None,
            signal: None,
            error: None,
            created_by,
            created_at: Utc::now(),
            ended_at: None,
            output_bytes: 0,
            preset: None,
            activity: None,
            activity_since: None,
            activity_source: None,
            viewers: Vec::new(),
            log_error: None,
        };
        let session = Self::restore(view, ring_size, events, log);
        session.note_resize(size);
        session
    }

    /// A session as the store last saw it. Output continues after what the log holds.
    pub fn restore(
        view: SessionView,
        ring_size: usize,
        events: EventBus,
        log: Option<Arc<OutputLog>>,
    ) -> Self {
        let (to_runner, rx) = mpsc::channel(256);
        let end = log.as_ref().map_or(view.output_bytes, |log| log.len());
        let exit = (view.status == SessionStatus::Exited)
            .then(|| ExitStatus { code: view.exit_code, signal: view.signal.clone() });
        let log_stopped = view.log_error.is_some();
        let lifecycle = Lifecycle {
            status: view.status,
            exit,
            error: view.error,
            ended_at: view.ended_at,
            log_error: view.log_error,
        };
        let size = log.as_ref().and_then(|log| log.last_size());
        let size = size.map_or(TermSize::DEFAULT, |(rows, cols)| TermSize { rows, cols });
        let mut ring = OutputRing::starting_at(end, ring_size);
        // Nothing leaves the ring before it is in the log.
        ring.pin_at(log.as_ref().map(|_| end));
        Self {
            id: view.id,
            runner_id: view.runner_id,
            command: view.command,
            created_by: view.created_by,
            created_at: view.created_at,
            preset: view.preset,
            prompts: crate::activity::Prompts::default(),
            lifecycle: Mutex::new(lifecycle),
            output: Mutex::new(ring),
            progress: watch::Sender::new(Progress {
                end,
                status: view.status,
                log_stopped,
                runner_away: false,
            }),
            to_runner,
            to_runner_rx: Mutex::new(Some(rx)),
            rx_parked: Notify::new(),
            events,
            log,
            persisted: watch::Sender::new(end),
            model: Mutex::new(None),
            viewers: Mutex::default(),
            next_seat: Default::default(),
            presence: watch::Sender::new(Vec::new()),
            activity: Mutex::default(),
            working: Default::default(),
            activity_watch: watch::Sender::new(None),
            size: Mutex::new(size),
        }
    }

    /// The session started from `preset`, whose quiet screens are checked for `patterns`.
    pub fn with_prompts(mut self, preset: Option<String>, prompts: crate::activity::Prompts) -> Self {
        self.preset = preset;
        self.prompts = prompts;
        self
    }

    /// A seat for one more viewer, unless `max` are attached already.
    pub fn take_viewer_seat(self: &Arc<Self>, max: usize, viewer: ViewerInfo) -> Option<ViewerSeat> {
        let seat = {
            let mut viewers = lock(&self.viewers);
            if viewers.len() >= max {
                return None;
            }
            let seat = self.next_seat.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            viewers.push((seat, viewer));
            seat
        };
        self.presence_changed();
        Some(ViewerSeat { session: self.clone(), seat })
    }

    fn leave(&self, seat: u64) {
        lock(&self.viewers).retain(|(s, _)| *s != seat);
        self.presence_changed();
    }

    fn presence_changed(&self) {
        let now: Vec<ViewerInfo> = lock(&self.viewers).iter().map(|(_, v)| v.clone()).collect();
        self.presence.send_replace(now);
        self.events.publish(Event::Session(self.view()));
    }

    /// A receiver of who is attached.
    pub fn subscribe_presence(&self) -> watch::Receiver<Vec<ViewerInfo>> {
        self.presence.subscribe()
    }

    /// A receiver of activity changes.
    pub fn subscribe_activity(&self) -> watch::Receiver<Option<ActivityState>> {
        self.activity_watch.subscribe()
    }

    /// The prompt patterns of this session.
    pub fn prompts(&self) -> &crate::activity::Prompts {
        &self.prompts
    }

    /// New output: `working`, unless a report from the process holds the activity.
    pub fn note_output_activity(&self) {
        let held = lock(&self.activity).held;
        if !held {
            self.set_activity(Activity::Working, ActivitySource::Output, false);
        }
    }

    /// The output has been quiet: `waiting_for_input` if the screen shows a prompt, else `idle`;
    /// unless a report holds the activity.
    pub fn note_quiet(&self, prompt_on_screen: bool) {
        if lock(&self.activity).held {
            return;
        }
        if prompt_on_screen {
            self.set_activity(Activity::WaitingForInput, ActivitySource::Screen, false);
        } else {
            self.set_activity(Activity::Idle, ActivitySource::Output, false);
        }
    }

    /// The process reported its activity; it holds until someone types.
    pub fn report_activity(&self, activity: Activity) {
        self.set_activity(activity, ActivitySource::Hook, true);
    }

    /// Someone typed: guesses from output and screen apply again.
    pub fn note_input(&self) {
        lock(&self.activity).held = false;
    }

    fn set_activity(&self, activity: Activity, source: ActivitySource, hold: bool) {
        let changed = {
            let mut tracked = lock(&self.activity);
            tracked.held = hold;
            if self.status().is_final() || tracked.current.is_some_and(|c| c.activity == activity) {
                None
            } else {
                let state = ActivityState { activity, since: Utc::now(), source };
                tracked.current = Some(state);
                self.working.store(activity == Activity::Working, std::sync::atomic::Ordering::Relaxed);
                Some(state)
            }
        };
        if let Some(state) = changed {
            self.activity_watch.send_replace(Some(state));
            self.events.publish(Event::Session(self.view()));
        }
    }

    /// The terminal model of a live session, created on first use (the first viewer that needs
    /// a snapshot): `true` when it is new and needs a [`follow`] task to feed it. A session no
    /// viewer attaches to late never pays for one.
    ///
    /// [`follow`]: crate::terminal_model::follow
    pub fn start_model(&self) -> Option<(Arc<TerminalModel>, bool)> {
        if self.status().is_final() {
            return None;
        }
        let mut model = lock(&self.model);
        if let Some(existing) = model.as_ref() {
            return Some((existing.clone(), false));
        }
        let created = Arc::new(TerminalModel::new(*lock(&self.size)));
        *model = Some(created.clone());
        Some((created, true))
    }

    /// Lets the terminal model go unless a person used it within `window` (it is made again from
    /// the log when next needed).
    pub fn retire_model_unless_watched(&self, window: std::time::Duration) {
        let mut model = lock(&self.model);
        if model.as_ref().is_some_and(|m| !m.watched_within(window))
            && let Some(retired) = model.take()
        {
            retired.retire();
        }
    }

    /// Whether the output has outgrown the in-memory ring: past that, a new viewer gets a
    /// snapshot rather than a replay of everything.
    pub fn is_long(&self) -> bool {
        let ring = lock(&self.output);
        ring.end() > ring.capacity() as u64
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
            created_at: self.created_at,
            ended_at: life.ended_at,
            output_bytes: self.progress.borrow().end,
            preset: self.preset.clone(),
            activity: activity.map(|a| a.activity),
            activity_since: activity.map(|a| a.since),
            activity_source: activity.map(|a| a.source),
            viewers: lock(&self.viewers).iter().map(|(_, v)| v.clone()).collect(),
            log_error: life.log_error.clone(),
        }
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

    /// The output log stopped at `offset`: says so on the session (an event for dashboards, an
    /// error frame for viewers) and lets the ring go, so the live stream never waits on a disk.
    fn stop_log(&self, offset: u64, reason: String) {
        let message = format!("output log stopped at byte {offset}: {reason}");
        tracing::error!(session = %self.id, offset, reason, "output log stopped");
        if let Some(log) = &self.log {
            log.close();
        }
        self.release_pin(None);
        lock(&self.lifecycle).log_error = Some(message);
        self.progress.send_modify(|p| p.log_stopped = true);
        self.events.publish(Event::Session(self.view()));
    }

    /// The runner disconnected (`true`) or is back (`false`); viewers are told when it goes.
    pub fn note_runner_away(&self, away: bool) {
        self.progress.send_if_modified(|p| std::mem::replace(&mut p.runner_away, away) != away);
    }

    /// A receiver of progress updates for one viewer.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// The sender for input, resizes and kills bound for the runner.
    pub fn to_runner(&self) -> &mpsc::Sender<ToRunner> {
        &self.to_runner
    }

    /// The first offset HQ does not hold yet.
    pub fn output_end(&self) -> u64 {
        lock(&self.output).end()
    }

    /// Appends output from the runner and wakes viewers; output means `working`.
    pub fn push_output(&self, data: Bytes) {
        let end = {
            let mut ring = lock(&self.output);
            ring.push(data);
            ring.end()
        };
        self.progress.send_modify(|p| p.end = end);
        if !self.working.load(std::sync::atomic::Ordering::Relaxed) {
            self.note_output_activity();
        }
    }

    /// Waits while output not yet in the log fills the ring: the disk sets the pace, and the
    /// runner's buffer absorbs the difference. Returns at once when there is room.
    pub async fn wait_for_room(&self) {
        // The common case, on every output frame: room already, no subscription needed.
        if !lock(&self.output).is_over_capacity() {
            return;
        }
        let mut persisted = self.persisted.subscribe();
        while lock(&self.output).is_over_capacity() {
            if persisted.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits (at most `limit`) until the log holds the output received so far: a recording asked
    /// for the moment a session ends must not miss its last lines.
    pub async fn logged(&self, limit: std::time::Duration) {
        let end = self.output_end();
        let mut persisted = self.persisted.subscribe();
        let _ = tokio::time::timeout(limit, persisted.wait_for(|at| *at >= end)).await;
    }

    /// Continues the stream at `offset` after bytes the runner could no longer hold.
    pub fn skip_output_to(&self, offset: u64) {
        let end = {
            let mut ring = lock(&self.output);
            ring.skip_to(offset);
            ring.end()
        };
        self.progress.send_modify(|p| p.end = end);
    }

    /// Up to `max` bytes of output from `offset`, from the ring or, when older, from the log.
    pub async fn read_output(&self, offset: u64, max: usize) -> Read {
        let read = self.read_ring(offset, max);
        let (Read::Gap { from, to }, Some(log)) = (&read, &self.log) else { return read };
        if *from >= log.len() {
            return read;
        }
        let (log, from, want) = (log.clone(), *from, max.min((to - from) as usize));
        match tokio::task::spawn_blocking(move || log.read(from, want)).await {
            Ok(Ok(Some(bytes))) => Read::Data(bytes),
            Ok(Ok(None)) => read,
            Ok(Err(error)) => {
                tracing::error!(session = %self.id, error = format!("{error:#}"), "reading the output log");
                read
            }
            Err(_) => read,
        }
    }

    /// Up to `max` bytes from the in-memory ring only.
    fn read_ring(&self, offset: u64, max: usize) -> Read {
        lock(&self.output).read(offset, max)
    }

    /// The oldest output offset HQ can still serve (0 whenever the log holds the start).
    pub fn output_start(&self) -> u64 {
        if self.log.is_some() { 0 } else { lock(&self.output).start() }
    }

    /// Lets the ring drop output before `offset` (now in the log), or everything with `None`.
    fn release_pin(&self, offset: Option<u64>) {
        lock(&self.output).pin_at(offset);
        self.persisted.send_replace(offset.unwrap_or(u64::MAX));
    }

    /// Records a resize in the recording's timeline and the terminal model.
    pub fn note_resize(&self, size: TermSize) {
        *lock(&self.size) = size;
        if let Some(model) = lock(&self.model).as_ref() {
            model.note_resize(self.progress.borrow().end, size);
        }
        if let Some(Err(error)) = self.log.as_ref().map(|log| log.note_resize(size.rows, size.cols)) {
            tracing::warn!(session = %self.id, error = format!("{error:#}"), "cannot record a resize");
        }
    }

    /// The on-disk output, if any.
    pub fn log(&self) -> Option<&Arc<OutputLog>> {
        self.log.as_ref()
    }

    /// Copies output from the ring to the log as it arrives, until the session has ended and all
    /// of it is on disk (or HQ shuts down, after a last drain). Then the ring is released: the log
    /// serves every reader of a finished session.
    pub async fn persist(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(log) = self.log.clone() else { return };
        let mut progress = self.subscribe();
        let mut offset = log.len();
        let mut stopping = false;
        loop {
            loop {
                match self.read_ring(offset, PERSIST_CHUNK) {
                    Read::Data(bytes) => {
                        let len = bytes.len() as u64;
                        let writer = log.clone();
                        let written = tokio::task::spawn_blocking(move || writer.append(&bytes)).await;
                        if let Ok(Err(error)) | Err(error) = written.map_err(anyhow::Error::from) {
                            // A full or failing disk stops the log, never the live pipe.
                            self.stop_log(offset, format!("{error:#}"));
                            return;
                        }
                        offset += len;
                        self.release_pin(Some(offset));
                    }
                    Read::Gap { from, to } => {
                        // Only after an upstream gap (the runner lost output): the log ends here.
                        self.stop_log(from, format!("the runner lost output from byte {from} to {to}"));
                        return;
                    }
                    Read::CaughtUp => break,
                }
            }
            let now = *progress.borrow_and_update();
            if now.end > offset {
                continue;
            }
            if now.status.is_final() || stopping {
                let syncer = log.clone();
                let finished = now.status.is_final();
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = syncer.sync();
                    if finished {
                        syncer.close();
                    }
                })
                .await;
                if finished {
                    lock(&self.output).shrink_to(1);
                }
                return;
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return },
                _ = shutdown.cancelled() => stopping = true,
            }
        }
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
        if moved {
            if next.is_final() {
                if let Some(model) = lock(&self.model).take() {
                    model.retire();
                }
                lock(&self.activity).current = None;
                self.activity_watch.send_replace(None);
            }
            self.progress.send_modify(|p| p.status = next);
            self.events.publish(Event::Session(self.view()));
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

/// All sessions HQ knows.
#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<Uuid, Arc<Session>>>,
}

impl Sessions {
    /// Adds a session.
    pub fn insert(&self, session: Arc<Session>) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert(session.id, session);
    }

    /// One session.
    pub fn get(&self, id: Uuid) -> Option<Arc<Session>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Forgets a session.
    pub fn remove(&self, id: Uuid) -> Option<Arc<Session>> {
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(&id)
    }

    /// All sessions, newest first.
    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut list: Vec<_> = self.map.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.id));
        list
    }

    /// Live (not ended) sessions on one runner.
    pub fn live_on_runner(&self, runner_id: Uuid) -> Vec<Arc<Session>> {
        self.list().into_iter().filter(|s| s.runner_id == runner_id && !s.status().is_final()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_only_moves_forward() {
        let session = Session::new(
            Uuid::now_v7(),
            Uuid::now_v7(),
            vec!["true".into()],
            TermSize::DEFAULT,
            "t".into(),
            1024,
            EventBus::default(),
            None,
        );
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
