//! A session as the runner holds it: the output ring that rides out HQ outages, where the process
//! stands, and the channel of input, resizes and kills for its PTY task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use agentrelay_protocol::runner::LiveSession;
use agentrelay_protocol::{Activity, ExitStatus, TermSize, Usage};
use agentrelay_ring::{OutputRing, Read};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

/// An order for a session's PTY, in the order HQ sent it.
#[derive(Debug)]
pub enum PtyOrder {
    /// Bytes to type.
    Input(Bytes),
    /// New window size.
    Resize(TermSize),
    /// Hang up the process group, then kill it after the grace period.
    Kill,
}

/// Where the output stands; the data connection waits on changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// One past the newest output byte.
    pub end: u64,
    /// Set once the process has exited and its output is fully drained.
    pub exit: Option<ExitStatus>,
    /// Set when the session's host went without its exit: the session is lost, and why.
    pub lost: Option<String>,
}

/// Where the session's output starts, for the runner that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Taken from this offset on (from 0 for a session this runner started).
    At(u64),
    /// A session adopted from a previous runner process: its host holds `[start, end)`, and the
    /// first data connection says from where HQ wants it.
    Pending {
        /// The oldest offset the host's spool holds.
        start: u64,
        /// One past the newest.
        end: u64,
    },
}

/// What became of a session at HQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// HQ recorded how it ended: its host may go.
    Recorded,
    /// HQ has given it up (it was lost there): its host ends it and goes.
    GivenUp,
    /// The runner stopped with HQ out of reach: the host keeps what HQ lacks for the next runner.
    Undelivered,
}

/// One session on this runner.
pub struct Session {
    /// Session id.
    pub id: Uuid,
    /// Output not yet known to be at HQ. Locked only to push or slice out a read.
    output: Mutex<OutputRing>,
    /// Sent by the PTY task; the data connection subscribes.
    progress: watch::Sender<Progress>,
    /// Orders for the PTY task; the data connection sends. Closes when the PTY task ends.
    orders: mpsc::Sender<PtyOrder>,
    /// Signalled when the data connection has sent more (or dropped), freeing ring space.
    room: Notify,
    /// The latest activity the process reported, numbered, for the data connection to forward.
    activity: watch::Sender<(u64, Option<Activity>)>,
    /// The number of the last report HQ was sent: a reconnect sends only a newer one (an old
    /// one again would hold HQ's activity after someone typed).
    report_sent: std::sync::atomic::AtomicU64,
    /// Tokens and cost the agent reported through OpenTelemetry (totals; see `telemetry`).
    usage: watch::Sender<Option<Usage>>,
    /// Where its output starts; set by the first data connection for an adopted session.
    attach: watch::Sender<Attach>,
    /// What became of it at HQ; the host link waits for it before it lets the host go.
    outcome: watch::Sender<Option<Outcome>>,
    /// HQ acknowledges what it stores: output stays pinned from the last ack, even while
    /// disconnected (HQ may have lost what it had not stored).
    holds_for_acks: std::sync::atomic::AtomicBool,
}

impl Session {
    /// A new session and the receiving end of its PTY orders.
    pub fn new(id: Uuid, buffer_size: usize) -> (Arc<Self>, mpsc::Receiver<PtyOrder>) {
        Self::with_attach(id, buffer_size, Attach::At(0))
    }

    /// A session a previous runner process started, whose host holds `[start, end)`.
    pub fn adopted(
        id: Uuid,
        buffer_size: usize,
        start: u64,
        end: u64,
    ) -> (Arc<Self>, mpsc::Receiver<PtyOrder>) {
        Self::with_attach(id, buffer_size, Attach::Pending { start, end })
    }

    fn with_attach(id: Uuid, buffer_size: usize, attach: Attach) -> (Arc<Self>, mpsc::Receiver<PtyOrder>) {
        let (orders, rx) = mpsc::channel(256);
        let from = match attach {
            Attach::At(offset) => offset,
            Attach::Pending { end, .. } => end,
        };
        let mut ring = OutputRing::starting_at(from, buffer_size);
        // Nothing is sent yet: keep it all until the first data connection takes it (or fails
        // to open, which counts as an outage).
        ring.pin_at(Some(from));
        let session = Self {
            id,
            output: Mutex::new(ring),
            progress: watch::Sender::new(Progress { end: from, exit: None, lost: None }),
            orders,
            room: Notify::new(),
            activity: watch::Sender::new((0, None)),
            report_sent: Default::default(),
            usage: watch::Sender::new(None),
            attach: watch::Sender::new(attach),
            outcome: watch::Sender::new(None),
            holds_for_acks: Default::default(),
        };
        (Arc::new(session), rx)
    }

    /// Where the output starts, or the host's range while an adopted session waits for HQ.
    pub fn attach_state(&self) -> Attach {
        *self.attach.borrow()
    }

    /// HQ wants an adopted session's output from `from`: the ring starts there, and the host
    /// link asks the host for it. Later calls (reconnects) change nothing.
    pub fn attach_from(&self, from: u64) {
        self.attach.send_if_modified(|attach| match *attach {
            Attach::Pending { start, end } => {
                let from = from.clamp(start.min(end), end);
                let mut ring = lock(&self.output);
                *ring = OutputRing::starting_at(from, ring.capacity());
                ring.pin_at(Some(from));
                drop(ring);
                self.progress.send_modify(|p| p.end = from);
                *attach = Attach::At(from);
                true
            }
            Attach::At(_) => false,
        });
    }

    /// Waits until the output's start is known.
    pub async fn attached_at(&self) -> u64 {
        let mut attach = self.attach.subscribe();
        let decided = attach.wait_for(|a| matches!(a, Attach::At(_))).await;
        match decided.as_deref() {
            Ok(Attach::At(offset)) => *offset,
            _ => 0,
        }
    }

    /// Continues the output at `offset` after bytes the host no longer holds.
    pub fn skip_to(&self, offset: u64) {
        let end = {
            let mut ring = lock(&self.output);
            ring.skip_to(offset);
            ring.end()
        };
        self.progress.send_modify(|p| p.end = end);
    }

    /// The session's host went without its exit.
    pub fn mark_lost(&self, reason: String) {
        self.progress.send_modify(|p| p.lost = Some(reason));
    }

    /// Says what became of the session at HQ (the first word counts).
    pub fn set_outcome(&self, outcome: Outcome) {
        self.outcome.send_if_modified(|current| {
            current.is_none() && {
                *current = Some(outcome);
                true
            }
        });
    }

    /// Waits until HQ has recorded the session's end or given it up.
    pub async fn outcome(&self) -> Outcome {
        let mut outcome = self.outcome.subscribe();
        match outcome.wait_for(Option::is_some).await.as_deref() {
            Ok(Some(outcome)) => *outcome,
            _ => Outcome::GivenUp,
        }
    }

    /// Appends PTY output.
    pub fn push_output(&self, data: Bytes) {
        let end = {
            let mut ring = lock(&self.output);
            ring.push(data);
            ring.end()
        };
        self.progress.send_modify(|p| p.end = end);
    }

    /// While HQ is connected, output not yet sent stays in the ring and the PTY reader waits for
    /// room (flow control back to the process); `None` (no connection) lets the ring drop the
    /// oldest bytes instead, so an outage never stops the process.
    pub fn mark_sent(&self, offset: Option<u64>) {
        lock(&self.output).pin_at(offset);
        self.room.notify_waiters();
    }

    /// Whether output stays in the ring until HQ acknowledges it stored.
    pub fn holds_for_acks(&self) -> bool {
        self.holds_for_acks.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Says whether HQ acknowledges what it stores (its last `resume` said so).
    pub fn set_holds_for_acks(&self, holds: bool) {
        self.holds_for_acks.store(holds, std::sync::atomic::Ordering::Release);
    }

    /// Whether unsent output fills the ring.
    pub fn is_full(&self) -> bool {
        lock(&self.output).is_over_capacity()
    }

    /// Waits until the ring has room again.
    pub async fn wait_for_room(&self) {
        loop {
            let room = self.room.notified();
            if !self.is_full() {
                return;
            }
            room.await;
        }
    }

    /// Records the exit; call only after the last output byte was pushed.
    pub fn finish(&self, exit: ExitStatus) {
        self.progress.send_modify(|p| p.exit = Some(exit));
    }

    /// Up to `max` bytes from `offset`.
    pub fn read_output(&self, offset: u64, max: usize) -> Read {
        lock(&self.output).read(offset, max)
    }

    /// The output offsets held: `(oldest, one past newest)`.
    pub fn output_range(&self) -> (u64, u64) {
        // An adopted session's output is in its host until HQ says from where it wants it.
        if let Attach::Pending { start, end } = *self.attach.borrow() {
            return (start, end);
        }
        let ring = lock(&self.output);
        (ring.start(), ring.end())
    }

    /// A receiver of progress updates.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Records what the process says it is doing; only the latest report matters.
    pub fn report_activity(&self, activity: Activity) {
        self.activity.send_modify(|(seq, current)| {
            *seq += 1;
            *current = Some(activity);
        });
    }

    /// A receiver of activity reports.
    pub fn subscribe_activity(&self) -> watch::Receiver<(u64, Option<Activity>)> {
        self.activity.subscribe()
    }

    /// The report to send, if HQ has not been sent it yet; marks it sent.
    pub fn take_unsent_report(&self) -> Option<Activity> {
        use std::sync::atomic::Ordering;
        let (seq, activity) = *self.activity.borrow();
        (self.report_sent.fetch_max(seq, Ordering::AcqRel) < seq).then_some(activity).flatten()
    }

    /// Records the agent's totals so far.
    pub fn report_usage(&self, usage: Usage) {
        self.usage.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&usage);
            *current = Some(usage);
            changed
        });
    }

    /// A receiver of usage totals.
    pub fn subscribe_usage(&self) -> watch::Receiver<Option<Usage>> {
        self.usage.subscribe()
    }

    /// The sender of orders for the PTY.
    pub fn orders(&self) -> &mpsc::Sender<PtyOrder> {
        &self.orders
    }
}

/// The sessions this runner holds, alive or with undelivered output.
#[derive(Default)]
pub struct SessionTable {
    map: Mutex<HashMap<Uuid, Arc<Session>>>,
}

impl SessionTable {
    /// Adds a session.
    pub fn insert(&self, session: Arc<Session>) {
        lock(&self.map).insert(session.id, session);
    }

    /// Forgets a session whose exit HQ has recorded.
    pub fn remove(&self, id: Uuid) {
        lock(&self.map).remove(&id);
    }

    /// One session.
    pub fn get(&self, id: Uuid) -> Option<Arc<Session>> {
        lock(&self.map).get(&id).cloned()
    }

    /// Whether the session is held.
    pub fn contains(&self, id: Uuid) -> bool {
        lock(&self.map).contains_key(&id)
    }

    /// Every session held.
    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.map).values().cloned().collect()
    }

    /// Sessions to announce in a hello.
    pub fn live(&self) -> Vec<LiveSession> {
        lock(&self.map).values().map(|s| LiveSession { id: s.id, offset: s.output_range().1 }).collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic mid-update of plain data; the data itself is still usable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
