//! What moves between HQ replicas, behind one small trait: [`Bus`]. Subjects are dotted words
//! (`<prefix>.out.<session>`) and may be subscribed with NATS's wildcards (`*` one word, `>` the
//! rest). Three kinds of traffic ride it:
//!
//! * **live** ([`Bus::publish`], [`Bus::subscribe`]): a session's output bytes as they arrive,
//!   from the replica that holds its runner to the replicas with viewers; lost when nobody
//!   listens, which is fine because the stored copy (PostgreSQL) is the truth;
//! * **requests** ([`Bus::request`]): a keystroke or a start order for a session or runner held by
//!   another replica, answered once it is queued there, or [`BusError::NoResponders`] when no
//!   replica holds it;
//! * **the change feed** ([`Bus::publish_durable`], [`Bus::follow`]): every change to sessions,
//!   runners, tokens, users and grants, in order and without loss across a bus outage.
//!
//! Two implementations: [`MemoryBus`] (in process: one HQ, or several in one test) and
//! [`nats::NatsBus`] (NATS core for live traffic and requests, JetStream for the feed). The same
//! contract tests run against both (`crates/e2e/tests/ha_bus.rs`).

pub mod nats;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;

/// One message off the bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// Where it was published.
    pub subject: String,
    /// Its bytes.
    pub payload: Bytes,
    /// Where a request wants its answer.
    pub reply: Option<String>,
}

/// Messages of a subscription, until it is dropped (which unsubscribes).
pub type Subscription = Pin<Box<dyn Stream<Item = BusMessage> + Send>>;

/// Why a bus call failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Nobody subscribes to the subject a request went to (no replica holds that session or
    /// runner now).
    #[error("no replica answers on {0}")]
    NoResponders(String),
    /// A request was not answered in time.
    #[error("no answer on {0} in time")]
    TimedOut(String),
    /// The bus is unreachable or refused the call.
    #[error("the bus failed: {0}")]
    Down(String),
}

/// The feed's acknowledgement of one durable publish.
pub type DurableAck = BoxFuture<'static, Result<(), BusError>>;

/// The transport between replicas. Cheap to share (`Arc<dyn Bus>`).
pub trait Bus: Send + Sync + 'static {
    /// Sends `payload` to whoever subscribes to `subject` now.
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, Result<(), BusError>>;
    /// Everything published to subjects matching `pattern` from now on. Returns once the bus
    /// has the subscription: a publish or request any replica makes after that reaches it.
    fn subscribe(&self, pattern: String) -> BoxFuture<'_, Result<Subscription, BusError>>;
    /// Publishes a request and waits (up to `timeout`) for the first answer.
    fn request(
        &self,
        subject: String,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Bytes, BusError>>;
    /// Appends to the change feed: resolves once the message is on its way, after every one
    /// published before it, to the acknowledgement that resolves once the feed has it (durably,
    /// for NATS). Callers may publish more meanwhile: waiting for each acknowledgement in turn
    /// would cap the feed at one message per round trip.
    fn publish_durable(&self, subject: String, payload: Bytes)
    -> BoxFuture<'_, Result<DurableAck, BusError>>;
    /// The change feed's messages on subjects matching `pattern`, from now on, in order, none
    /// missed across an outage of the bus.
    fn follow(&self, pattern: String) -> BoxFuture<'_, Result<Subscription, BusError>>;
    /// Whether the bus is reachable now (for `/readyz`).
    fn is_up(&self) -> bool;
}

/// Whether `subject` matches `pattern` (NATS wildcards: `*` is one word, a final `>` the rest).
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut words = subject.split('.');
    for want in pattern.split('.') {
        match (want, words.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (want, Some(word)) if want == word => {}
            _ => return false,
        }
    }
    words.next().is_none()
}

/// A subscriber of the in-process bus.
struct Subscriber {
    pattern: String,
    tx: mpsc::UnboundedSender<BusMessage>,
}

/// The bus within one process: every "replica" shares this value. Delivery is immediate and in
/// order; there is no outage to ride out, so the change feed is the live traffic.
#[derive(Default, Clone)]
pub struct MemoryBus {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    next_inbox: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryBus {
    /// A fresh bus with nobody on it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers to every matching subscriber; how many took it.
    fn deliver(&self, message: BusMessage) -> usize {
        let mut subscribers = crate::lock(&self.subscribers);
        subscribers.retain(|s| !s.tx.is_closed());
        let mut delivered = 0;
        for subscriber in subscribers.iter().filter(|s| matches(&s.pattern, &message.subject)) {
            if subscriber.tx.send(message.clone()).is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    fn add(&self, pattern: String) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        crate::lock(&self.subscribers).push(Subscriber { pattern, tx });
        Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
    }
}

impl Bus for MemoryBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, Result<(), BusError>> {
        self.deliver(BusMessage { subject, payload, reply: None });
        futures_util::future::ready(Ok(())).boxed()
    }

    fn subscribe(&self, pattern: String) -> BoxFuture<'_, Result<Subscription, BusError>> {
        futures_util::future::ready(Ok(self.add(pattern))).boxed()
    }

    fn request(
        &self,
        subject: String,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Bytes, BusError>> {
        async move {
            let inbox =
                format!("_INBOX.{}", self.next_inbox.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            let mut answers = self.add(inbox.clone());
            let message = BusMessage { subject: subject.clone(), payload, reply: Some(inbox) };
            if self.deliver(message) == 0 {
                return Err(BusError::NoResponders(subject));
            }
            match tokio::time::timeout(timeout, answers.next()).await {
                Ok(Some(answer)) => Ok(answer.payload),
                Ok(None) | Err(_) => Err(BusError::TimedOut(subject)),
            }
        }
        .boxed()
    }

    fn publish_durable(
        &self,
        subject: String,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<DurableAck, BusError>> {
        self.deliver(BusMessage { subject, payload, reply: None });
        futures_util::future::ready(Ok(futures_util::future::ready(Ok(())).boxed())).boxed()
    }

    fn follow(&self, pattern: String) -> BoxFuture<'_, Result<Subscription, BusError>> {
        self.subscribe(pattern)
    }

    fn is_up(&self) -> bool {
        true
    }
}

/// Answers a request (`reply` of a [`BusMessage`]); a requester that gave up is no error.
pub async fn answer(bus: &dyn Bus, message: &BusMessage, payload: Bytes) {
    if let Some(reply) = &message.reply
        && let Err(error) = bus.publish(reply.clone(), payload).await
    {
        tracing::debug!(%error, "could not answer a request");
    }
}

/// Subjects of one cluster: every name starts with its prefix.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// The subjects under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// The prefix (also the JetStream stream's name stem).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A session's live output (and how much of it is stored).
    pub fn output(&self, session: uuid::Uuid) -> String {
        format!("{}.out.{session}", self.prefix)
    }

    /// Orders (input, resizes, kills) for a session, served by the replica holding its runner.
    pub fn orders(&self, session: uuid::Uuid) -> String {
        format!("{}.in.{session}", self.prefix)
    }

    /// Control messages for a runner, served by the replica holding its control connection.
    pub fn control(&self, runner: uuid::Uuid) -> String {
        format!("{}.ctl.{runner}", self.prefix)
    }

    /// The change feed, one subject per kind of change.
    pub fn feed(&self, kind: &str) -> String {
        format!("{}.feed.{kind}", self.prefix)
    }

    /// Every subject of the change feed.
    pub fn feed_all(&self) -> String {
        format!("{}.feed.>", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.b.d"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(matches("a.b.c", "a.b.c"));
        assert!(!matches("a.*", "a.b.c"));
    }
}
