//! The change feed behind `GET /api/events`: every runner and session change, as the whole object.

use std::convert::Infallible;
use std::time::Duration;

use agentrelay_protocol::{ErrorResponse, Runner, Session};
use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt, stream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::auth::Principal;
use crate::state::AppState;
use crate::store::StoreHandle;

/// One change.
#[derive(Debug, Clone)]
pub enum Event {
    /// A runner connected, disconnected or changed.
    Runner(Runner),
    /// A session was created or changed state.
    Session(Session),
    /// A finished session was pruned by retention: its row and log are gone.
    SessionRemoved(uuid::Uuid),
}

/// Publishes every change to the store (durably, in order) and to events subscribers (live).
/// Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    live: broadcast::Sender<Event>,
    store: Option<StoreHandle>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(None)
    }
}

impl EventBus {
    /// A bus that also saves every event to `store`, when given.
    pub fn new(store: Option<StoreHandle>) -> Self {
        Self { live: broadcast::Sender::new(1024), store }
    }

    /// Saves and sends an event; nobody listening is fine.
    pub fn publish(&self, event: Event) {
        if let Some(store) = &self.store {
            store.save(event.clone());
        }
        let _ = self.live.send(event);
    }

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// Waits until every event published so far is saved.
    pub async fn flush(&self) {
        if let Some(store) = &self.store {
            store.flush().await;
        }
    }
}

fn to_sse(event: &Event) -> SseEvent {
    let (name, data) = match event {
        Event::Runner(runner) => ("runner", serde_json::to_string(runner)),
        Event::Session(session) => ("session", serde_json::to_string(session)),
        Event::SessionRemoved(id) => {
            ("session_removed", serde_json::to_string(&serde_json::json!({ "id": id })))
        }
    };
    SseEvent::default().event(name).data(data.unwrap_or_default())
}

/// Every runner and session as events: the start of each subscription, and the resync after lag.
fn snapshot(state: &AppState) -> Vec<SseEvent> {
    let runners = state.registry.list().into_iter().map(Event::Runner);
    let sessions = state.sessions.list().into_iter().map(|s| Event::Session(s.view()));
    runners.chain(sessions).map(|e| to_sse(&e)).collect()
}

/// `GET /api/events`: Server-Sent Events, starting with the current state.
#[utoipa::path(get, path = "/api/events", tag = "sessions", responses((status = 200, description = "Server-Sent Events: `runner` and `session` events whose data is the whole object, sent on every change, after a snapshot", content_type = "text/event-stream", body = String), (status = 401, description = "No valid token", body = ErrorResponse)))]
pub async fn stream_events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    // Subscribe before the snapshot so nothing between the two is missed (a duplicate is harmless:
    // each event carries the whole object).
    let live = BroadcastStream::new(state.events.subscribe());
    let first = stream::iter(snapshot(&state));
    let resync_state = state.clone();
    let live = live.flat_map(move |item| match item {
        Ok(event) => stream::iter(vec![to_sse(&event)]),
        // This subscriber fell behind: send everything again instead of a partial picture.
        Err(BroadcastStreamRecvError::Lagged(_)) => stream::iter(snapshot(&resync_state)),
    });
    // Ends with HQ, or when the token it was opened with is revoked.
    let stop = futures_util::future::select(
        Box::pin(state.shutdown.clone().cancelled_owned()),
        Box::pin(principal.revoked.cancelled_owned()),
    );
    let events = first.chain(live).map(Ok).take_until(stop);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
