//! `--webhook-url`: a JSON POST for every session activity change, every session end and an output
//! log that stopped (a full disk), so a phone (ntfy), a chat (Slack-compatible) or a script hears
//! when an agent, or HQ, needs someone.
//!
//! It follows the event bus off the data path; a slow or failing receiver only delays its own
//! deliveries (a bounded queue: when it is full, new deliveries are dropped with a warning; each
//! delivery is tried a few times).
//!
//! A `waiting_for_input` delivery carries the menu on screen (`menu`, as `/screen` has it), so a
//! notification can offer the same answers. When an agent's hook said it waits before its dialog
//! was drawn, the delivery waits for the tracker's next reading of the screen (at most twice
//! `--idle-after` and a second) to learn it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::{Activity, Menu, Session, SessionStatus};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WebhookEvent;
use crate::events::Event;
use crate::registry::Registry;
use crate::state::AppState;

/// Deliveries waiting at most; past this new ones are dropped.
const QUEUE: usize = 256;
/// Attempts per delivery.
const ATTEMPTS: u32 = 3;

/// One POST body.
#[derive(Clone, Serialize)]
pub struct Delivery {
    /// `session.activity`, `session.ended` or `session.log_stopped`.
    pub event: &'static str,
    /// A sentence for chat and push receivers.
    pub text: String,
    /// The session as the API shows it.
    pub session: Session,
    /// The session in the dashboard (`--public-url` + `/sessions/{id}`), when HQ knows its
    /// public address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `waiting_for_input`: the selection menu on screen, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu: Option<Menu>,
    /// Which `--webhook-events` choice this delivery falls under.
    #[serde(skip)]
    pub kind: WebhookEvent,
    /// A live session whose menu is not known yet, and its quiet checks so far.
    #[serde(skip)]
    menu_from: Option<(Arc<crate::session::Session>, u64, u64)>,
}

/// What was last seen of a session, to post only changes.
#[derive(PartialEq, Clone, Copy)]
struct Seen {
    activity: Option<Activity>,
    status: SessionStatus,
    log_stopped: bool,
}

impl Seen {
    fn of(session: &Session) -> Self {
        Self { activity: session.activity, status: session.status, log_stopped: session.log_error.is_some() }
    }
}

/// Follows `events` and posts changes to `url` until shutdown.
pub async fn run(url: String, state: AppState) {
    let shutdown = state.shutdown.clone();
    let (queue, deliveries) = mpsc::channel::<Delivery>(QUEUE);
    let menu_wait = state.config.idle_after * 2 + Duration::from_secs(1);
    let sender = tokio::spawn(deliver(url, deliveries, menu_wait, shutdown.clone()));
    let mut feed = state.events.subscribe();
    // What each session was when HQ started (restored sessions included): a restart, a replay
    // or an attach is no news, only a change is. Finished sessions stay until they are removed,
    // so their end is posted once.
    let mut seen: HashMap<Uuid, Seen> =
        state.sessions.list().iter().map(|s| (s.id, Seen::of(&s.view()))).collect();
    let public = state.config.public_url.as_deref().map(|url| url.trim_end_matches('/').to_owned());
    loop {
        let event = tokio::select! {
            event = feed.recv() => event,
            () = shutdown.cancelled() => break,
        };
        let session = match event {
            Ok(Event::Session(session)) => session,
            Ok(Event::SessionRemoved(id)) => {
                seen.remove(&id);
                continue;
            }
            Ok(_) => continue,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "webhook fell behind the event stream; some changes were not posted");
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        let now = Seen::of(&session);
        let before = seen.insert(session.id, now);
        if before == Some(now) {
            continue;
        }
        // Every replica of a cluster hears every change; only the leader posts it, so each is
        // posted once.
        if state.cluster.as_ref().is_some_and(|cluster| !cluster.is_leader()) {
            continue;
        }
        let wanted = describe(&session, before, &state.registry)
            .into_iter()
            .filter(|delivery| state.config.webhook_events.contains(&delivery.kind))
            .map(|mut delivery| {
                delivery.url = public.as_ref().map(|base| format!("{base}/sessions/{}", session.id));
                delivery
            });
        for mut delivery in wanted {
            if delivery.kind == WebhookEvent::WaitingForInput
                && let Some(live) = state.sessions.get(session.id)
            {
                delivery.menu = live.menu();
                if delivery.menu.is_none() {
                    delivery.menu_from = Some((live.clone(), live.quiet_checks(), live.output_end()));
                }
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(delivery) {
                tracing::warn!("webhook receiver is behind; dropping a delivery");
            }
        }
    }
    drop(queue);
    let _ = sender.await;
}

/// The deliveries for a change worth posting.
fn describe(session: &Session, before: Option<Seen>, registry: &Registry) -> Vec<Delivery> {
    let runner = registry.get(session.runner_id).map_or_else(|| "?".to_owned(), |r| r.name);
    let what =
        session.name.clone().or_else(|| session.preset.clone()).unwrap_or_else(|| session.command.join(" "));
    let short = &session.id.to_string()[..8];
    let name = format!("{what} on {runner} ({short}…)");
    let mut deliveries = Vec::new();
    if let Some(error) = &session.log_error
        && !before.is_some_and(|b| b.log_stopped)
    {
        deliveries.push(Delivery {
            event: "session.log_stopped",
            text: format!("{name}: {error}"),
            session: session.clone(),
            url: None,
            kind: WebhookEvent::LogStopped,
            menu: None,
            menu_from: None,
        });
    }
    deliveries.extend(describe_life(session, before, &name));
    deliveries
}

/// The delivery for a change of status or activity, if any.
fn describe_life(session: &Session, before: Option<Seen>, name: &str) -> Option<Delivery> {
    if session.status.is_final() {
        if before.is_some_and(|b| b.status.is_final()) {
            return None;
        }
        let how = match (session.exit_code, &session.signal, &session.error) {
            (Some(code), _, _) => format!("exited with code {code}"),
            (None, Some(signal), _) => format!("was ended by {signal}"),
            (None, None, Some(error)) => format!("is {:?}: {error}", session.status).to_lowercase(),
            _ => format!("is {:?}", session.status).to_lowercase(),
        };
        return Some(Delivery {
            event: "session.ended",
            text: format!("{name} {how}"),
            session: session.clone(),
            url: None,
            kind: WebhookEvent::Ended,
            menu: None,
            menu_from: None,
        });
    }
    let activity = session.activity?;
    if before.and_then(|b| b.activity) == Some(activity) {
        return None;
    }
    let (doing, kind) = match activity {
        Activity::Working => ("is working", WebhookEvent::Working),
        Activity::WaitingForInput => ("is waiting for input", WebhookEvent::WaitingForInput),
        Activity::Idle => ("is idle", WebhookEvent::Idle),
    };
    Some(Delivery {
        event: "session.activity",
        text: format!("{name} {doing}"),
        session: session.clone(),
        url: None,
        kind,
        menu: None,
        menu_from: None,
    })
}

/// Posts deliveries in order, retrying each a few times.
async fn deliver(
    url: String,
    mut deliveries: mpsc::Receiver<Delivery>,
    menu_wait: Duration,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not be built; webhooks are off");
            return;
        }
    };
    loop {
        let mut next = tokio::select! {
            next = deliveries.recv() => match next { Some(next) => next, None => return },
            () = shutdown.cancelled() => return,
        };
        if let Some((session, checks, end)) = next.menu_from.take() {
            tokio::select! {
                menu = menu_after(&session, checks, end, menu_wait) => next.menu = menu,
                () = shutdown.cancelled() => return,
            }
        }
        for attempt in 1..=ATTEMPTS {
            match client.post(&url).json(&next).send().await {
                Ok(response) if response.status().is_success() => break,
                Ok(response) => {
                    tracing::warn!(status = %response.status(), attempt, "webhook refused a delivery")
                }
                Err(e) => tracing::warn!(error = %e, attempt, "webhook delivery failed"),
            }
            if attempt < ATTEMPTS {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// How long a reading without a menu waits for more output: an agent's hook tells of a dialog as
/// it opens, and on a busy machine the dialog is drawn after the screen was next read.
const STILL_DRAWING: Duration = Duration::from_millis(300);

/// The menu the tracker's next reading of the session's screen finds, if it still waits by then
/// and within `wait`. Output after `end` (the output's end when the wait began) that no reading
/// has shown a menu in yet means the agent is still drawing: the next reading decides. The
/// tracker reads the screen off this task; this only looks at its count of readings and at the
/// output's end, every 50 ms.
async fn menu_after(
    session: &crate::session::Session,
    mut checks: u64,
    mut end: u64,
    wait: Duration,
) -> Option<Menu> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while session.quiet_checks() == checks && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let menu = session.menu();
        if menu.is_some() || tokio::time::Instant::now() >= deadline {
            return menu;
        }
        checks = session.quiet_checks();
        if session.output_end() == end {
            let settled = (tokio::time::Instant::now() + STILL_DRAWING).min(deadline);
            while session.output_end() == end && tokio::time::Instant::now() < settled {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if session.output_end() == end {
                return None;
            }
        }
        end = session.output_end();
    }
}
