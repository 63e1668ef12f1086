//! The change feed between replicas: every change one replica makes (a runner online, a session
//! started or ended, a token revoked, a user disabled, a grant removed, a sign-in) goes to every
//! other replica within moments, through the bus's durable feed (JetStream), so none is missed
//! across a NATS outage. Each replica applies what the others send to its own picture and tells
//! its own `/api/events` subscribers; the replica that made a change has saved it already.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::workspace::ChangeSummary;
use agentrelay_protocol::{Access, Runner, Session as SessionView};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Cluster;
use crate::bus::DurableAck;
use crate::events::Event;
use crate::session::start::{self, Origin, SessionSpec};
use crate::state::AppState;
use crate::store::{GrantRecord, LoginRecord};

/// One change, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum FeedMessage {
    /// A runner connected, disconnected or changed.
    Runner(Box<Runner>),
    /// A session was created or changed.
    Session(Box<SessionView>),
    /// A finished session was removed.
    SessionRemoved(Uuid),
    /// A workspace session's changes moved.
    Changes {
        /// The session.
        session_id: Uuid,
        /// Its changes now.
        summary: ChangeSummary,
    },
    /// Tokens were created or revoked: reread them.
    Tokens,
    /// Users changed: reread them.
    Users,
    /// A user was disabled or changed role: their connections are cut everywhere.
    UserCut(Uuid),
    /// A grant on a session was made or changed (`access`), or removed (`None`).
    Grant {
        /// The session.
        session_id: Uuid,
        /// Whose grant.
        user_id: Uuid,
        /// What it allows now.
        access: Option<Access>,
        /// Who granted it.
        granted_by: Option<Uuid>,
        /// When.
        created_at: DateTime<Utc>,
    },
    /// A dashboard sign-in was made (its cookie's hash and what it was made with).
    LoginAdded {
        /// SHA-256 of the cookie, hex.
        hash: String,
        /// The token signed in with.
        token_id: Option<Uuid>,
        /// SHA-256 of the static admin token signed in with, hex.
        static_hash: Option<String>,
        /// The user who signed in through single sign-on.
        user_id: Option<Uuid>,
        /// When it ends.
        expires_at: DateTime<Utc>,
    },
    /// A sign-in ended (sign-out).
    LoginRemoved(String),
}

/// A change and the replica it comes from.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    #[serde(flatten)]
    message: FeedMessage,
}

impl FeedMessage {
    /// The feed's message for an event this replica published.
    pub fn from_event(event: &Event) -> Self {
        match event {
            Event::Runner(runner) => Self::Runner(runner.clone()),
            Event::Session(session) => Self::Session(session.clone()),
            Event::SessionRemoved(id) => Self::SessionRemoved(*id),
            Event::Changes { session_id, summary } => {
                Self::Changes { session_id: *session_id, summary: *summary }
            }
        }
    }

    /// A grant as it now stands (`None`: removed).
    pub fn grant(session_id: Uuid, user_id: Uuid, grant: Option<&GrantRecord>) -> Self {
        Self::Grant {
            session_id,
            user_id,
            access: grant.map(|g| g.access),
            granted_by: grant.and_then(|g| g.granted_by),
            created_at: grant.map_or_else(Utc::now, |g| g.created_at),
        }
    }

    /// A new sign-in.
    pub fn login(record: &LoginRecord) -> Self {
        Self::LoginAdded {
            hash: hex(&record.hash),
            token_id: record.token_id,
            static_hash: record.static_hash.as_ref().map(|h| hex(h)),
            user_id: record.user_id,
            expires_at: record.expires_at,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Runner(_) => "runner",
            Self::Session(_) => "session",
            Self::SessionRemoved(_) => "session_removed",
            Self::Changes { .. } => "changes",
            Self::Tokens => "tokens",
            Self::Users => "users",
            Self::UserCut(_) => "user_cut",
            Self::Grant { .. } => "grant",
            Self::LoginAdded { .. } => "login",
            Self::LoginRemoved(_) => "logout",
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes of a 64-digit hex string.
pub fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Sends this replica's changes to the feed, in order, up to [`IN_FLIGHT`] at a time waiting for
/// their acknowledgement (one at a time capped the feed at a message per round trip, and a burst,
/// 10,000 runners connecting, kept a new session from the other replicas for seconds). A change the
/// feed may have missed is sent again with every one after it, in order, until the feed takes
/// them: each carries its whole new state, so one seen twice leaves the same picture.
pub async fn publish(
    cluster: Arc<Cluster>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<FeedMessage>,
    shutdown: CancellationToken,
) {
    // Sent and not yet acknowledged, oldest first, and their acknowledgements in the same order.
    let mut unacked: VecDeque<FeedMessage> = VecDeque::new();
    let mut acks = FuturesOrdered::new();
    loop {
        tokio::select! {
            acked = acks.next(), if !acks.is_empty() => match acked {
                Some(Ok(())) => {
                    unacked.pop_front();
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "the change feed did not take a change; sending it and those after it again");
                    if !resend(&cluster, &mut unacked, &mut acks, &shutdown).await {
                        return;
                    }
                }
                None => {}
            },
            message = rx.recv(), if unacked.len() < IN_FLIGHT => {
                let Some(message) = message else { return };
                let sent = send(&cluster, &message).await;
                unacked.push_back(message);
                match sent {
                    Ok(ack) => acks.push_back(ack),
                    Err(error) => {
                        tracing::warn!(%error, "cannot send a change to the other replicas; retrying");
                        if !resend(&cluster, &mut unacked, &mut acks, &shutdown).await {
                            return;
                        }
                    }
                }
            },
            () = shutdown.cancelled() => {
                // What was queued before the stop still goes out, if the bus takes it now.
                while let Ok(message) = rx.try_recv() {
                    let _ = send(&cluster, &message).await;
                }
                return;
            }
        }
    }
}

/// Changes sent but not yet acknowledged.
const IN_FLIGHT: usize = 256;

/// Sends `unacked` again, in order, retrying with backoff until the bus takes each; their
/// acknowledgements replace those in `acks`. False if HQ shut down meanwhile.
async fn resend(
    cluster: &Cluster,
    unacked: &mut VecDeque<FeedMessage>,
    acks: &mut FuturesOrdered<DurableAck>,
    shutdown: &CancellationToken,
) -> bool {
    *acks = FuturesOrdered::new();
    let mut delay = Duration::from_millis(50);
    for message in unacked.iter() {
        loop {
            match send(cluster, message).await {
                Ok(ack) => {
                    acks.push_back(ack);
                    break;
                }
                Err(error) => tracing::warn!(%error, "cannot send a change to the other replicas; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return false,
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    true
}

async fn send(cluster: &Cluster, message: &FeedMessage) -> Result<DurableAck, crate::bus::BusError> {
    let envelope = Envelope { origin: cluster.instance, message: message.clone() };
    let payload = serde_json::to_vec(&envelope).map_err(|e| crate::bus::BusError::Down(e.to_string()))?;
    cluster.bus.publish_durable(cluster.subjects.feed(message.kind()), Bytes::from(payload)).await
}

/// Applies the other replicas' changes until HQ shuts down.
pub async fn follow(state: AppState, cluster: Arc<Cluster>) {
    let mut delay = Duration::from_millis(100);
    let mut feed = loop {
        if let Some(followed) = cluster.take_followed() {
            break followed;
        }
        match cluster.bus.follow(cluster.subjects.feed_all()).await {
            Ok(feed) => break feed,
            Err(error) => tracing::warn!(%error, "cannot follow the change feed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = state.shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    };
    loop {
        let message = tokio::select! {
            message = feed.next() => match message {
                Some(message) => message,
                None => return,
            },
            () = state.shutdown.cancelled() => return,
        };
        match serde_json::from_slice::<Envelope>(&message.payload) {
            Ok(envelope) if envelope.origin == cluster.instance => {}
            Ok(envelope) => apply(&state, envelope.message).await,
            Err(error) => tracing::warn!(%error, "ignoring a change the feed could not decode"),
        }
    }
}

/// Takes one change from another replica into this one's picture, and tells this replica's
/// event subscribers.
pub async fn apply(state: &AppState, message: FeedMessage) {
    match message {
        FeedMessage::Runner(runner) => state.registry.apply_remote(*runner),
        FeedMessage::Session(view) => {
            let session = match state.sessions.get(view.id) {
                Some(session) => {
                    session.apply_remote(&view);
                    session
                }
                None => {
                    let origin = Origin::Stored {
                        lifecycle: crate::session::Lifecycle::stored(&view),
                        output_bytes: view.output_bytes,
                        usage: view.usage.clone(),
                    };
                    let session = start::open(state, SessionSpec::stored(&view), origin);
                    session.apply_remote(&view);
                    session
                }
            };
            state.events.publish_local(Event::Session(Box::new(session.view())));
        }
        FeedMessage::SessionRemoved(id) => {
            if state.sessions.remove(id).is_some() {
                state.events.publish_local(Event::SessionRemoved(id));
            }
        }
        FeedMessage::Changes { session_id, summary } => {
            if let Some(session) = state.sessions.get(session_id) {
                session.apply_remote_changes(summary);
                state.events.publish_local(Event::Changes { session_id, summary });
            }
        }
        FeedMessage::Tokens => {
            if let Err(error) = state.tokens.refresh().await {
                tracing::warn!(error = format!("{error:#}"), "cannot reread tokens");
            }
        }
        FeedMessage::Users => reload_users(state).await,
        FeedMessage::UserCut(id) => {
            reload_users(state).await;
            state.tokens.cut_user(id);
            state.logins.remove_user(id);
        }
        FeedMessage::Grant { session_id, user_id, access, granted_by, created_at } => {
            if let Some(session) = state.sessions.get(session_id) {
                match access {
                    Some(access) => {
                        session.grants.set(GrantRecord { user_id, access, granted_by, created_at })
                    }
                    None => {
                        session.grants.remove(user_id);
                    }
                }
                state.events.publish_local(Event::Session(Box::new(session.view())));
            }
        }
        FeedMessage::LoginAdded { hash, token_id, static_hash, user_id, expires_at } => {
            let Some(hash) = unhex(&hash) else { return };
            let static_hash = static_hash.and_then(|h| unhex(&h));
            let record = LoginRecord { hash, token_id, static_hash, user_id, expires_at };
            state.logins.restore(vec![record], state);
        }
        FeedMessage::LoginRemoved(hash) => {
            if let Some(hash) = unhex(&hash) {
                state.logins.remove_hash(hash);
            }
        }
    }
}

async fn reload_users(state: &AppState) {
    if let Err(error) = state.users.reload().await {
        tracing::warn!(error = format!("{error:#}"), "cannot reread users");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// What a replica of the previous release sends (and this one sends too).
    fn fixture() -> Value {
        serde_json::from_str(include_str!("fixtures/replicas-v1.json")).expect("valid fixture")
    }

    /// Whether `actual` holds everything `expected` does (and maybe more).
    fn holds(actual: &Value, expected: &Value) -> bool {
        match (actual, expected) {
            (Value::Object(a), Value::Object(e)) => {
                e.iter().all(|(k, v)| a.get(k).is_some_and(|got| holds(got, v)))
            }
            (Value::Array(a), Value::Array(e)) => {
                a.len() == e.len() && a.iter().zip(e).all(|(x, y)| holds(x, y))
            }
            _ => actual == expected,
        }
    }

    /// A rolling upgrade runs two releases at once: this one must read every change the previous
    /// one sends, losing no field, and the previous one must read this one's (which may carry
    /// fields it does not know).
    #[test]
    fn replicas_of_adjacent_releases_read_each_others_changes() {
        let fixture = fixture();
        let sent = fixture["feed"].as_array().expect("a list of changes");
        let mut kinds = std::collections::BTreeSet::new();
        for change in sent {
            let envelope: Envelope = serde_json::from_value(change.clone())
                .unwrap_or_else(|e| panic!("{e}: cannot read {change}"));
            kinds.insert(envelope.message.kind());
            let read = serde_json::to_value(&envelope).expect("serializes");
            assert!(holds(&read, change), "lost a field of {change}: read back as {read}");

            let mut newer = change.clone();
            newer["added_later"] = Value::from(1);
            if let Some(payload) = newer["payload"].as_object_mut() {
                payload.insert("added_later".into(), Value::from(1));
            }
            serde_json::from_value::<Envelope>(newer)
                .unwrap_or_else(|e| panic!("{e}: refused {change} with a new field"));
        }
        // Every kind `FeedMessage::kind` names: a new kind of change goes into the fixture, and here.
        let all = [
            "changes",
            "grant",
            "login",
            "logout",
            "runner",
            "session",
            "session_removed",
            "tokens",
            "user_cut",
            "users",
        ];
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), all, "every kind of change is in the fixture");
    }
}
