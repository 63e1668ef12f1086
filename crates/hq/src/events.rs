//! The change feed behind `GET /api/events`: every runner and session change, as the whole object.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentrelay_protocol::{ErrorResponse, Runner, Session};
use axum::Extension;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt, stream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::PartialSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};

use crate::auth::Principal;
use crate::authz;
use crate::state::AppState;
use crate::store::StoreHandle;

/// One change.
#[derive(Debug, Clone)]
pub enum Event {
    /// A runner connected, disconnected or changed.
    Runner(Box<Runner>),
    /// A session was created or changed state (boxed, like runners: they are many times larger
    /// than the other events, which would all take their size).
    Session(Box<Session>),
    /// A finished session was pruned by retention: its row and log are gone.
    SessionRemoved(uuid::Uuid),
    /// A workspace session's changed-file summary moved (the store keeps it with the session's
    /// next save).
    Changes {
        /// The session.
        session_id: uuid::Uuid,
        /// Its changes now.
        summary: agentrelay_protocol::workspace::ChangeSummary,
    },
}

/// Publishes every change to the store (durably, in order) and to events subscribers (live).
/// Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    live: broadcast::Sender<Event>,
    store: Option<StoreHandle>,
    /// In a cluster, where this replica's changes go to reach the others (`cluster::feed`).
    feed: Option<tokio::sync::mpsc::UnboundedSender<crate::cluster::feed::FeedMessage>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(None)
    }
}

impl EventBus {
    /// A bus that also saves every event to `store`, when given.
    pub fn new(store: Option<StoreHandle>) -> Self {
        Self { live: broadcast::Sender::new(1024), store, feed: None }
    }

    /// The same, and every event also goes to the other replicas of a cluster through `feed`.
    pub fn clustered(
        store: StoreHandle,
        feed: tokio::sync::mpsc::UnboundedSender<crate::cluster::feed::FeedMessage>,
    ) -> Self {
        Self { live: broadcast::Sender::new(1024), store: Some(store), feed: Some(feed) }
    }

    /// Saves and sends an event; nobody listening is fine.
    pub fn publish(&self, event: Event) {
        if let Some(store) = &self.store {
            store.save(event.clone());
        }
        if let Some(feed) = &self.feed {
            let _ = feed.send(crate::cluster::feed::FeedMessage::from_event(&event));
        }
        let _ = self.live.send(event);
    }

    /// Sends another replica's change to this replica's subscribers only (that replica saved it).
    pub fn publish_local(&self, event: Event) {
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

/// The event names of the stream, each with the component schema of its data.
const RUNNER: &str = "runner";
const SESSION: &str = "session";
const SESSION_REMOVED: &str = "session_removed";
const CHANGES: &str = "changes";

fn to_sse(event: &Event) -> SseEvent {
    let (name, data) = match event {
        Event::Runner(runner) => (RUNNER, serde_json::to_string(runner)),
        Event::Session(session) => (SESSION, serde_json::to_string(session)),
        Event::SessionRemoved(id) => {
            (SESSION_REMOVED, serde_json::to_string(&serde_json::json!({ "id": id })))
        }
        Event::Changes { session_id, summary } => (
            CHANGES,
            serde_json::to_string(&serde_json::json!({
                "session_id": session_id,
                "files": summary.files,
                "additions": summary.additions,
                "deletions": summary.deletions,
            })),
        ),
    };
    SseEvent::default().event(name).data(data.unwrap_or_default())
}

/// One event of `GET /api/events`, as the OpenAPI document describes it: before OpenAPI 3.2's
/// `itemSchema`, the `schema` of a `text/event-stream` response is that of each event, an object
/// of the event's fields. Its `data` is JSON text, described by `contentMediaType` and
/// `contentSchema` (which utoipa has no attribute for, hence this schema written out).
pub struct StreamEvent;

impl utoipa::PartialSchema for StreamEvent {
    fn schema() -> RefOr<Schema> {
        let removed = ObjectBuilder::new()
            .schema_type(Type::Object)
            .required("id")
            .property("id", ObjectBuilder::new().schema_type(Type::String).format(Some(uuid_format())))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let event = |name: &str, data: serde_json::Value, description: &str| {
            let data = ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .extensions(Some(Extensions::from_iter([("contentSchema", data)])));
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(description))
                .required("event")
                .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([name])))
                .required("data")
                .property("data", data)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let schema_ref = |name: &str| serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
        OneOfBuilder::new()
            .item(event(RUNNER, schema_ref("Runner"), "A runner connected, disconnected or changed"))
            .item(event(SESSION, schema_ref("Session"), "A session was created or changed"))
            .item(event(
                SESSION_REMOVED,
                serde_json::to_value(removed.build()).unwrap_or_default(),
                "Retention deleted a finished session",
            ))
            .item(event(
                CHANGES,
                serde_json::to_value(changes_schema().build()).unwrap_or_default(),
                "A workspace session's changed files moved (their summary; `GET /api/sessions/{id}/changes` \
                 lists them)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for StreamEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        // The data's schemas, so the `contentSchema` references resolve.
        schemas.push(("Runner".to_owned(), Runner::schema()));
        schemas.push(("Session".to_owned(), Session::schema()));
        <Runner as utoipa::ToSchema>::schemas(schemas);
        <Session as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The data of a `changes` event: the session and its change summary.
fn changes_schema() -> ObjectBuilder {
    let count = || ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .required("session_id")
        .property("session_id", ObjectBuilder::new().schema_type(Type::String).format(Some(uuid_format())))
        .required("files")
        .property("files", count())
        .required("additions")
        .property("additions", count())
        .required("deletions")
        .property("deletions", count())
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

fn uuid_format() -> SchemaFormat {
    SchemaFormat::KnownFormat(KnownFormat::Uuid)
}

/// Every runner and session the subscriber may see, as events: the start of each subscription,
/// and the resync after lag.
fn snapshot(state: &AppState, filter: &Mutex<Visible>) -> Vec<SseEvent> {
    let runners = state.registry.list().into_iter().map(|r| Event::Runner(Box::new(r)));
    let sessions = state.sessions.list().into_iter().map(|s| Event::Session(Box::new(s.view())));
    let mut filter = crate::lock(filter);
    runners.chain(sessions).filter_map(|e| filter.pass(state, e)).map(|e| to_sse(&e)).collect()
}

/// What one subscriber of `/api/events` may see (`authz`), and the sessions it was shown: a
/// session it can no longer see (a grant revoked) is `session_removed` for it.
struct Visible {
    principal: Principal,
    shown: HashSet<uuid::Uuid>,
}

impl Visible {
    /// The event as this subscriber gets it, if at all.
    fn pass(&mut self, state: &AppState, event: Event) -> Option<Event> {
        match event {
            Event::Runner(runner) => {
                authz::runner(&self.principal, &runner).see.then_some(Event::Runner(runner))
            }
            Event::Session(session) => {
                let sees = match state.sessions.get(session.id) {
                    Some(live) => authz::rights(state, &self.principal, &live).see,
                    None => false,
                };
                if sees {
                    self.shown.insert(session.id);
                    Some(Event::Session(session))
                } else {
                    self.shown.remove(&session.id).then_some(Event::SessionRemoved(session.id))
                }
            }
            Event::SessionRemoved(id) => self.shown.remove(&id).then_some(Event::SessionRemoved(id)),
            Event::Changes { session_id, summary } => {
                self.shown.contains(&session_id).then_some(Event::Changes { session_id, summary })
            }
        }
    }
}

/// `GET /api/events`: Server-Sent Events, starting with the current state.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "sessions",
    operation_id = "stream_events",
    responses(
        (status = 200, description = "Server-Sent Events: first every runner and session as it is, then \
            each change as it happens, the whole object each time (after a lag, everything again); `:` \
            comments keep the stream alive every 15 s",
            content_type = "text/event-stream", body = StreamEvent),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token", body = ErrorResponse),
    )
)]
pub async fn stream_events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    // Subscribe before the snapshot so nothing between the two is missed (a duplicate is harmless:
    // each event carries the whole object).
    let live = BroadcastStream::new(state.events.subscribe());
    let revoked = principal.revoked.clone();
    let filter = Arc::new(Mutex::new(Visible { principal, shown: HashSet::new() }));
    let first = stream::iter(snapshot(&state, &filter));
    let resync_state = state.clone();
    let live = live.flat_map(move |item| match item {
        Ok(event) => {
            let passed = crate::lock(&filter).pass(&resync_state, event);
            stream::iter(passed.map(|e| to_sse(&e)).into_iter().collect::<Vec<_>>())
        }
        // This subscriber fell behind: send everything again instead of a partial picture.
        Err(BroadcastStreamRecvError::Lagged(_)) => stream::iter(snapshot(&resync_state, &filter)),
    });
    // Ends with HQ, or when the token it was opened with is revoked.
    let stop = futures_util::future::select(
        Box::pin(state.shutdown.clone().cancelled_owned()),
        Box::pin(revoked.cancelled_owned()),
    );
    let events = first.chain(live).map(Ok).take_until(stop);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
