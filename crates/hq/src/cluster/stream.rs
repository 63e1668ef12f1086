//! A session's stream across replicas.
//!
//! * **Taking it** ([`Cluster::take_stream`]): the replica a runner's data connection reaches
//!   takes the session's lease, starts its ring where the stored output ends, and stores what
//!   arrives ([`Session::persist_stored`]); it publishes each output chunk on the bus as it
//!   arrives ([`Cluster::publish_output`]) and says how far the stored output reaches after
//!   each write, and it takes the orders other replicas send for the session
//!   ([`serve_orders`]) and the start orders for runners it holds ([`serve_control`]).
//! * **Following it** ([`Cluster::follow`]): a replica with a viewer of a session it does not
//!   hold subscribes to that session's live output while the viewer is there; anything its
//!   ring lacks comes from PostgreSQL.
//! * **Sending to it** ([`forward_orders`]): keystrokes, resizes and kills typed on a replica
//!   that does not hold the runner go, in order, to the one that does; while none does, they
//!   wait, as they wait for a runner that is away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::TermSize;
use agentrelay_protocol::runner::HqMessage;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Cluster;
use crate::bus::{BusError, Subscription, answer};
use crate::session::replica::Stepped;
use crate::session::{Session, ToRunner};
use crate::state::AppState;

/// How long a replica waits for another to take an order.
const ORDER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an order no replica takes is offered again.
const ORDER_RETRY: Duration = Duration::from_millis(250);

/// What this replica does for the sessions whose output it stores, and for those it follows.
#[derive(Default)]
pub struct Streams {
    held: std::sync::Mutex<HashMap<Uuid, Held>>,
    followed: std::sync::Mutex<HashMap<Uuid, Followed>>,
    /// Sessions whose activity this replica tracks (from its first taking on).
    tracked: std::sync::Mutex<std::collections::HashSet<Uuid>>,
}

/// A session whose output this replica stores.
struct Held {
    /// Which taking this is (a newer data connection takes it again).
    taking: u64,
    /// Cancelled to stop storing (a newer data connection of the same session here).
    stop: CancellationToken,
    /// Closed when the storing task has ended.
    done: tokio::sync::watch::Receiver<bool>,
}

/// A session this replica follows live.
struct Followed {
    /// Viewers (and other readers) that want it.
    interest: usize,
    /// Stops the subscription.
    stop: CancellationToken,
}

/// Keeps a session followed while held; dropping it lets go.
pub struct FollowGuard {
    cluster: Arc<Cluster>,
    session: Uuid,
}

impl Drop for FollowGuard {
    fn drop(&mut self) {
        let mut followed = crate::lock(&self.cluster.streams.followed);
        if let Some(entry) = followed.get_mut(&self.session) {
            entry.interest -= 1;
            if entry.interest == 0 {
                entry.stop.cancel();
                followed.remove(&self.session);
            }
        }
    }
}

/// The bus's framing of a session's live output: `0`, the offset (8 bytes, big-endian) and the
/// bytes; or `1` and the offset up to which output is stored.
fn encode_output(offset: u64, data: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(9 + data.len());
    frame.put_u8(0);
    frame.put_u64(offset);
    frame.put_slice(data);
    frame.freeze()
}

fn encode_stored(end: u64) -> Bytes {
    let mut frame = BytesMut::with_capacity(9);
    frame.put_u8(1);
    frame.put_u64(end);
    frame.freeze()
}

enum OutputFrame {
    Data(u64, Bytes),
    Stored(u64),
}

fn decode_output(frame: &Bytes) -> Option<OutputFrame> {
    let kind = *frame.first()?;
    let offset = u64::from_be_bytes(frame.get(1..9)?.try_into().ok()?);
    match kind {
        0 => Some(OutputFrame::Data(offset, frame.slice(9..))),
        1 => Some(OutputFrame::Stored(offset)),
        _ => None,
    }
}

/// An order's framing on the bus: `0` and the input; `1`, rows and columns (2 bytes each); `2`.
fn encode_order(order: &ToRunner) -> Bytes {
    match order {
        ToRunner::Input(bytes) => {
            let mut frame = BytesMut::with_capacity(1 + bytes.len());
            frame.put_u8(0);
            frame.put_slice(bytes);
            frame.freeze()
        }
        ToRunner::Resize(size) => {
            let mut frame = BytesMut::with_capacity(5);
            frame.put_u8(1);
            frame.put_u16(size.rows);
            frame.put_u16(size.cols);
            frame.freeze()
        }
        ToRunner::Kill => Bytes::from_static(&[2]),
    }
}

fn decode_order(frame: &Bytes) -> Option<ToRunner> {
    match *frame.first()? {
        0 => Some(ToRunner::Input(frame.slice(1..))),
        1 => {
            let rows = u16::from_be_bytes(frame.get(1..3)?.try_into().ok()?);
            let cols = u16::from_be_bytes(frame.get(3..5)?.try_into().ok()?);
            Some(ToRunner::Resize(TermSize { rows, cols }))
        }
        2 => Some(ToRunner::Kill),
        _ => None,
    }
}

impl Cluster {
    /// Takes the session's output over for a data connection that just opened here: ends this
    /// replica's earlier taking (an older connection's), takes the lease, starts the ring where
    /// the stored output ends and starts storing. Returns that offset, which the runner resumes
    /// from, and a token cancelled if this replica stops storing before the session's end (another
    /// replica took the lease, or a newer connection here): the connection must then close, so
    /// the runner redials and resends from wherever the lease is now, rather than wait forever for
    /// acknowledgements this replica will never give.
    pub async fn take_stream(
        self: &Arc<Self>,
        state: &AppState,
        session: &Arc<Session>,
    ) -> anyhow::Result<(u64, CancellationToken)> {
        let earlier = crate::lock(&self.streams.held).remove(&session.id);
        if let Some(earlier) = earlier {
            earlier.stop.cancel();
            let mut done = earlier.done;
            let _ = done.wait_for(|done| *done).await;
        }
        let (fence, end) = super::stored::take_lease(&self.pg, session.id, &self.replica).await?;
        session.take_output_at(end);
        session.set_owned_here(true);
        if crate::lock(&self.streams.tracked).insert(session.id) {
            state.tasks.spawn(crate::session::activity::track(state.clone(), session.clone()));
        }
        let stop = CancellationToken::new();
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let taking = rand::random::<u64>();
        crate::lock(&self.streams.held).insert(session.id, Held { taking, stop: stop.clone(), done });
        let cluster = self.clone();
        let storing = session.clone();
        let stepped_back = CancellationToken::new();
        let stepped_back_tx = stepped_back.clone();
        state.tasks.spawn(async move {
            let announce = cluster.announce_stored(&storing, stop.clone());
            let stepped = tokio::select! {
                stepped = storing.clone().persist_stored(fence, stop.clone()) => stepped,
                () = announce => Stepped::Back,
            };
            stop.cancel();
            let mut held = crate::lock(&cluster.streams.held);
            if held.get(&storing.id).is_some_and(|h| h.taking == taking) {
                held.remove(&storing.id);
                storing.set_owned_here(false);
                storing.release_output_pin();
            }
            drop(held);
            if stepped == Stepped::Finished {
                tracing::debug!(session = %storing.id, "all output stored");
            } else {
                stepped_back_tx.cancel();
            }
            let _ = done_tx.send(true);
        });
        Ok((end, stepped_back))
    }

    /// Tells followers how far the stored output reaches, after each write, until `stop`.
    async fn announce_stored(&self, session: &Session, stop: CancellationToken) {
        let mut stored = session.subscribe_stored();
        loop {
            let end = *stored.borrow_and_update();
            if end != u64::MAX {
                let _ = self.bus.publish(self.subjects.output(session.id), encode_stored(end)).await;
            }
            tokio::select! {
                changed = stored.changed() => if changed.is_err() { return },
                () = stop.cancelled() => return,
            }
        }
    }

    /// Sends output this replica received at `offset` to the replicas following the session.
    pub async fn publish_output(&self, session: Uuid, offset: u64, data: &[u8]) {
        if let Err(error) = self.bus.publish(self.subjects.output(session), encode_output(offset, data)).await
        {
            // Followers read it from PostgreSQL instead.
            tracing::debug!(%error, "cannot publish live output");
        }
    }

    /// Follows a session's live output while the guard is held (a viewer here, of a session
    /// whose runner may be on another replica).
    pub fn follow(self: &Arc<Self>, state: &AppState, session: &Arc<Session>) -> FollowGuard {
        let mut followed = crate::lock(&self.streams.followed);
        let entry = followed.entry(session.id).or_insert_with(|| {
            let stop = state.shutdown.child_token();
            state.tasks.spawn(follow_output(self.clone(), session.clone(), stop.clone()));
            Followed { interest: 0, stop }
        });
        entry.interest += 1;
        FollowGuard { cluster: self.clone(), session: session.id }
    }

    /// Sends a control message to a runner held by another replica.
    pub async fn send_control(&self, runner: Uuid, message: &HqMessage) -> Result<(), BusError> {
        let payload = serde_json::to_vec(message).map_err(|e| BusError::Down(e.to_string()))?;
        self.bus.request(self.subjects.control(runner), Bytes::from(payload), ORDER_TIMEOUT).await?;
        Ok(())
    }
}

/// Live output of a followed session into its ring, and how far it is stored, until `stop`.
async fn follow_output(cluster: Arc<Cluster>, session: Arc<Session>, stop: CancellationToken) {
    let subscribed = tokio::select! {
        subscribed = cluster.bus.subscribe(cluster.subjects.output(session.id)) => subscribed,
        () = stop.cancelled() => return,
    };
    let mut live = match subscribed {
        Ok(live) => live,
        Err(error) => {
            // Viewers still get everything, from PostgreSQL, as it is stored.
            tracing::warn!(session = %session.id, %error, "cannot follow live output");
            return;
        }
    };
    // Where the stored output ends now: what came before the subscription is read from there.
    if let Some(stored) = session.stored()
        && let Ok(end) = stored.refresh_end().await
    {
        session.note_stored(end);
    }
    loop {
        let message = tokio::select! {
            message = live.next() => match message {
                Some(message) => message,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        match decode_output(&message.payload) {
            // The replica storing it has it already (it publishes what it receives).
            Some(OutputFrame::Data(..)) if session.is_owned_here() => {}
            Some(OutputFrame::Data(offset, data)) => session.push_at(offset, data),
            Some(OutputFrame::Stored(end)) => session.note_stored(end),
            None => tracing::debug!("ignoring a malformed live output frame"),
        }
    }
}

/// Takes orders other replicas send for a session whose runner is connected here, into the
/// session's queue, until `stop` (the data connection ended).
pub async fn serve_orders(cluster: Arc<Cluster>, session: Arc<Session>, stop: CancellationToken) {
    let subscribed = tokio::select! {
        subscribed = cluster.bus.subscribe(cluster.subjects.orders(session.id)) => subscribed,
        () = stop.cancelled() => return,
    };
    let mut orders = match subscribed {
        Ok(orders) => orders,
        Err(error) => {
            tracing::warn!(session = %session.id, %error, "cannot take orders from other replicas");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            message = orders.next() => match message {
                Some(message) => message,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        if let Some(order) = decode_order(&message.payload) {
            // Waits while the runner is slow to take input, which slows the typing replica.
            if session.to_runner().send(order).await.is_err() {
                return;
            }
        }
        answer(cluster.bus.as_ref(), &message, Bytes::new()).await;
    }
}

/// Subscribes to the control messages other replicas send for `runner`, whose control
/// connection is here: before the runner is announced online, so that an order sent the moment
/// another replica sees it online finds the subscription there.
pub async fn subscribe_control(cluster: &Cluster, runner: Uuid) -> Option<Subscription> {
    match cluster.bus.subscribe(cluster.subjects.control(runner)).await {
        Ok(messages) => Some(messages),
        Err(error) => {
            tracing::warn!(%runner, %error, "cannot take control messages from other replicas");
            None
        }
    }
}

/// Takes start orders (and other control messages) other replicas send for a runner whose
/// control connection is here, from `messages` ([`subscribe_control`]), until `stop`.
pub async fn serve_control(
    cluster: Arc<Cluster>,
    mut messages: Subscription,
    tx: mpsc::Sender<HqMessage>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = messages.next() => match message {
                Some(message) => message,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        match serde_json::from_slice::<HqMessage>(&message.payload) {
            Ok(control) => {
                if tx.send(control).await.is_err() {
                    return;
                }
                answer(cluster.bus.as_ref(), &message, Bytes::new()).await;
            }
            Err(error) => tracing::warn!(%error, "ignoring a control message another replica sent"),
        }
    }
}

/// Sends the session's orders queued on this replica to the replica holding its runner, in
/// order, until a data connection here wants the queue (or the session ends, or HQ stops).
pub async fn forward_orders(cluster: Arc<Cluster>, session: Arc<Session>, shutdown: CancellationToken) {
    let Some(mut rx) = session.try_take_runner_rx() else { return };
    let mut wanted = session.subscribe_rx_wanted();
    wanted.borrow_and_update();
    let mut pending: Option<ToRunner> = None;
    loop {
        let order = match pending.take() {
            Some(order) => order,
            None => tokio::select! {
                order = rx.recv() => match order {
                    Some(order) => order,
                    None => break,
                },
                _ = wanted.changed() => break,
                () = shutdown.cancelled() => break,
            },
        };
        if session.status().is_final() {
            continue;
        }
        let sent = cluster
            .bus
            .request(cluster.subjects.orders(session.id), encode_order(&order), ORDER_TIMEOUT)
            .await;
        if let Err(error) = sent {
            tracing::trace!(session = %session.id, %error, "no replica takes this session's orders yet");
            pending = Some(order);
            tokio::select! {
                () = tokio::time::sleep(ORDER_RETRY) => {}
                _ = wanted.changed() => break,
                () = shutdown.cancelled() => break,
            }
        }
    }
    if let Some(order) = pending {
        session.carry_order(order);
    }
    session.park_runner_rx(rx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frame = encode_output(42, b"hi");
        assert!(matches!(decode_output(&frame), Some(OutputFrame::Data(42, d)) if d == b"hi"[..]));
        assert!(matches!(decode_output(&encode_stored(7)), Some(OutputFrame::Stored(7))));
        for order in [
            ToRunner::Input(Bytes::from_static(b"ls\r")),
            ToRunner::Resize(TermSize { rows: 3, cols: 4 }),
            ToRunner::Kill,
        ] {
            let back = decode_order(&encode_order(&order)).expect("decodes");
            assert_eq!(format!("{back:?}"), format!("{order:?}"));
        }
        assert!(decode_order(&Bytes::from_static(&[1, 0])).is_none());
    }

    fn unhex(hex: &serde_json::Value) -> Bytes {
        let hex = hex.as_str().expect("hex");
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
    }

    /// The bus's frames are read and written by replicas of adjacent releases during a rolling
    /// upgrade: these are the previous release's, byte for byte.
    #[test]
    fn frames_are_the_previous_releases() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/replicas-v1.json")).expect("valid fixture");
        for sent in fixture["output"].as_array().expect("output frames") {
            let (offset, data, frame) =
                (sent["offset"].as_u64().expect("offset"), unhex(&sent["data"]), unhex(&sent["frame"]));
            assert_eq!(encode_output(offset, &data), frame);
            assert!(
                matches!(decode_output(&frame), Some(OutputFrame::Data(o, d)) if o == offset && d == data)
            );
        }
        for sent in fixture["stored"].as_array().expect("stored frames") {
            let (end, frame) = (sent["end"].as_u64().expect("end"), unhex(&sent["frame"]));
            assert_eq!(encode_stored(end), frame);
            assert!(matches!(decode_output(&frame), Some(OutputFrame::Stored(e)) if e == end));
        }
        for sent in fixture["orders"].as_array().expect("orders") {
            let order = if let Some(input) = sent.get("input") {
                ToRunner::Input(unhex(input))
            } else if let Some([rows, cols]) = sent["resize"].as_array().map(Vec::as_slice) {
                let size = |v: &serde_json::Value| u16::try_from(v.as_u64().expect("size")).expect("u16");
                ToRunner::Resize(TermSize { rows: size(rows), cols: size(cols) })
            } else {
                ToRunner::Kill
            };
            let frame = unhex(&sent["frame"]);
            assert_eq!(encode_order(&order), frame);
            let read = decode_order(&frame).expect("decodes");
            assert_eq!(format!("{read:?}"), format!("{order:?}"));
        }
    }
}
