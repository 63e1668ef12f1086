//! A viewer's session WebSocket (`/api/v1/ws/session/{id}`): `attached`, then output from the
//! viewer's own offset, keystrokes and resizes back, `exit` after the last byte. Keystrokes go
//! to the session's runner-bound queue ([`Session::to_runner`]), which `ws::runner_data` drains.
//!
//! Each viewer reads the session's ring at its own pace, so a slow one never holds up the runner
//! or the other viewers; one that falls behind the ring is told of the gap and goes on.

use std::sync::Arc;

use agentrelay_protocol::viewer::{
    Attached, ClientFrame, FrameError, FrameErrorCode, Gap, Presence, ServerFrame,
};
use agentrelay_protocol::{ActivityState, ErrorResponse, SessionStatus, TermSize, ViewerInfo};
use agentrelay_ring::Read;
use anyhow::Context;
use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::{Close, SESSION_READ_BUFFER, close, send_json};
use crate::audit;
use crate::auth::{Principal, check_origin};
use crate::authz::{self, Need};
use crate::error::AppError;
use crate::metrics::Counters;
use crate::session::{Session, ToRunner, terminal_model};
use crate::state::AppState;

/// How long a viewer waits for a fresh terminal model to catch up before taking its snapshot.
const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Largest binary frame sent to a viewer; bigger backlogs go out as several frames.
const MAX_OUTPUT_FRAME: usize = 64 * 1024;

/// Replies (errors about a viewer's frames) waiting to be sent; past this, new ones are dropped.
const REPLIES: usize = 16;

/// Query of the session WebSocket.
#[derive(Debug, Deserialize)]
pub struct AttachQuery {
    /// Resume from this output offset.
    pub from: Option<u64>,
    /// Watch mode: this viewer's resizes count only once it types (or sends `activate`).
    pub watch: Option<bool>,
}

/// `GET /api/v1/ws/session/{id}`: checks origin and session, then upgrades.
#[utoipa::path(
    get,
    path = "/api/v1/ws/session/{id}",
    tag = "sessions",
    operation_id = "attach_session",
    params(
        ("id" = Uuid, Path, description = "Session id"),
        ("from" = Option<u64>, Query, description = "Resume from this output offset"),
        ("watch" = Option<bool>, Query, description = "Watch mode: this viewer's resizes count only once it \
            types (a phone, a preview)"),
    ),
    responses(
        (status = 101, description = "WebSocket: see docs/protocol.md"),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Foreign origin, or a share of another session", body = ErrorResponse),
        (status = 404, description = "Unknown session", body = ErrorResponse),
        (status = 409, description = "limit_reached (viewers per session)", body = ErrorResponse),
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<AttachQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    check_origin(&headers, state.config.public_url.as_deref())?;
    let Query(query) = query.map_err(|_| {
        AppError::bad_field("from", "'from' must be a byte offset, and 'watch' true or false")
    })?;
    // Decided here, once: who may watch and who may type. A grant revoked later closes this
    // viewer through `grant_cut`; a revoked token, a sign-out or a disabled user through
    // `principal.revoked`.
    let session = authz::session(&state, &principal, &id, Need::Watch)?;
    let rights = authz::rights(&state, &principal, &session);
    let read_only = !rights.drive;
    let grant_cut = principal.user_id().and_then(|user| session.grants.viewer_cut(user)).unwrap_or_default();
    let max = state.config.max_viewers_per_session;
    let viewer = ViewerInfo { name: viewer_name(&principal), read_only };
    let watching = query.watch.unwrap_or(false);
    let seat = session.take_viewer_seat(max, viewer, watching).ok_or_else(|| {
        AppError::LimitReached(format!("session already has {max} viewers (--max-viewers-per-session)"))
    })?;
    audit::by_principal(&state, &principal, "session.attached", session.id.to_string(), None);
    let span = tracing::info_span!("viewer", session = %session.id);
    let limit = state.config.max_frame_size;
    let ws = ws.read_buffer_size(SESSION_READ_BUFFER).write_buffer_size(0);
    Ok(ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| {
        async move {
            if query.from.is_some() {
                Counters::add(&state.counters.viewer_resumes, 1);
            }
            let access = Access { principal, read_only, grant_cut };
            if let Err(error) = serve(&state, session, socket, query.from, access, seat.id()).await {
                Counters::add(&state.counters.viewer_errors, 1);
                tracing::debug!(error = format!("{error:#}"), "viewer connection ended");
            }
        }
        .instrument(span)
    }))
}

/// Who a viewer is and what it may do, decided when it connected.
struct Access {
    principal: Principal,
    read_only: bool,
    /// Cancelled when the grant it attached through is revoked or changed.
    grant_cut: tokio_util::sync::CancellationToken,
}

/// How a viewer is listed in `presence`: the user's name (and the token's, when it differs), or
/// the share's name.
fn viewer_name(principal: &Principal) -> String {
    match &principal.user {
        Some(user) if !principal.is_read_only() && user.name != principal.name => {
            format!("{} ({})", user.name, principal.name)
        }
        Some(user) if !principal.is_read_only() => user.name.clone(),
        _ => principal.name.clone(),
    }
}

async fn serve(
    state: &AppState,
    session: Arc<Session>,
    socket: WebSocket,
    from: Option<u64>,
    access: Access,
    seat: u64,
) -> anyhow::Result<()> {
    let Access { principal, read_only, grant_cut } = access;
    // In a cluster, the session's live output comes here while this viewer watches.
    let _following = state.cluster.as_ref().map(|cluster| cluster.follow(state, &session));
    let (mut tx, rx) = socket.split();
    // Subscribed before `attached`, so no size change between the two is missed.
    let mut size = session.subscribe_size();
    // Without `from`: replay from 0 while the output fits the ring; past that, draw the current
    // screen from the terminal model and go on from the offset it stands for.
    let snapshot = match from {
        // A fresh model replays at most the last MiB; it gets a moment to get there.
        None if session.is_long() => {
            terminal_model::current(state, &session, session.output_end(), SNAPSHOT_WAIT, true)
                .await
                .map(|model| model.snapshot())
        }
        _ => None,
    };
    let offset = match (&snapshot, from) {
        (Some((at, _)), _) => *at,
        (None, Some(from)) => from,
        (None, None) => session.output_start(),
    };
    let attached =
        Attached { session_id: session.id, offset, snapshot: snapshot.is_some(), status: session.status() };
    send_json(&mut tx, &ServerFrame::Attached(attached)).await?;
    // The size before the snapshot, which is drawn at it.
    let now = *size.borrow_and_update();
    send_json(&mut tx, &ServerFrame::Size(now)).await?;
    if let Some((_, screen)) = snapshot {
        tx.send(Message::Binary(screen.into())).await.context("sending the snapshot")?;
    }
    // The viewer's keystrokes are read while its output is being written, not after it caught
    // up: a viewer far behind a flood must still be able to send the Ctrl-C that stops it.
    let (replies, replies_rx) = mpsc::channel(REPLIES);
    let reading = read_input(state, &session, rx, read_only, seat, replies);
    let writing = write_output(state, &session, &mut tx, offset, size, replies_rx);
    let (code, reason) = tokio::select! {
        ended = reading => return ended,
        ended = writing => return ended,
        _ = principal.revoked.cancelled() => (Close::Policy, "token revoked or signed out"),
        _ = grant_cut.cancelled() => (Close::Policy, "access to this session was revoked"),
        _ = state.shutdown.cancelled() => (Close::ShuttingDown, "HQ is shutting down"),
    };
    close(&mut tx, code, reason).await;
    Ok(())
}

/// Keystrokes, resizes and control frames from the viewer, until it closes. Replies (errors
/// about a frame) go to the writer, which sends them between output frames.
async fn read_input(
    state: &AppState,
    session: &Session,
    mut rx: SplitStream<WebSocket>,
    read_only: bool,
    seat: u64,
    replies: mpsc::Sender<ServerFrame>,
) -> anyhow::Result<()> {
    let mut control_rate = RateWindow::new(state.config.max_control_rate);
    // Every bad frame gets its answer; a viewer that sends them faster than it reads the
    // answers waits for its own reading (the queue is small), and HQ's memory stays put.
    let reply = |error: FrameError| replies.send(ServerFrame::Error(error));
    while let Some(frame) = rx.next().await {
        let answered = match frame.context("viewer socket")? {
            Message::Binary(_) | Message::Text(_) if read_only => {
                let message =
                    "this viewer is read-only (a share, or a view grant): input and resizes are not sent";
                reply(FrameError::new(FrameErrorCode::ReadOnly, message)).await
            }
            Message::Binary(keys) => {
                session.note_input();
                // Typing makes this viewer the active one: the PTY takes its size first.
                if let Some(size) = session.viewer_typed(seat) {
                    forward(session, ToRunner::Resize(size)).await;
                }
                forward(session, ToRunner::Input(keys)).await;
                Ok(())
            }
            Message::Text(text) => {
                let parsed = if control_rate.allow() {
                    parse_control(text.as_str())
                } else {
                    let message = "too many control frames; this one was dropped";
                    Err(FrameError::new(FrameErrorCode::RateLimited, message))
                };
                match parsed {
                    Ok(control) => {
                        let resize = match control {
                            ClientFrame::Resize(size) => session.viewer_resized(seat, size),
                            ClientFrame::Activate => session.viewer_typed(seat),
                        };
                        if let Some(size) = resize {
                            forward(session, ToRunner::Resize(size)).await;
                        }
                        Ok(())
                    }
                    Err(error) => reply(error).await,
                }
            }
            Message::Close(_) => return Ok(()),
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        };
        if answered.is_err() {
            // The writer has stopped, so the connection is ending.
            return Ok(());
        }
    }
    Ok(())
}

/// Output from `offset` on, with `gap`, `activity`, `presence` and reply frames between, until
/// `exit` (or the error that says why there is none).
async fn write_output(
    state: &AppState,
    session: &Session,
    tx: &mut SplitSink<WebSocket, Message>,
    mut offset: u64,
    mut size: watch::Receiver<TermSize>,
    mut replies: mpsc::Receiver<ServerFrame>,
) -> anyhow::Result<()> {
    let mut progress = session.subscribe();
    let mut presence = session.subscribe_presence();
    let mut activity = session.subscribe_activity();
    // Both are sent right after `attached`, then on every change.
    presence.mark_changed();
    activity.mark_changed();
    let mut told_log_stopped = false;
    let mut told_runner_away = false;
    loop {
        // Send everything available; a slow viewer only slows this loop. Notices go out between
        // frames, so a viewer that is behind still hears of them.
        loop {
            send_notices(tx, &mut presence, &mut activity, &mut size, &mut replies).await?;
            match session.read_output(offset, MAX_OUTPUT_FRAME).await {
                Read::Data(bytes) => {
                    offset += bytes.len() as u64;
                    Counters::add(&state.counters.bytes_out, bytes.len() as u64);
                    tx.send(Message::Binary(bytes)).await.context("sending output")?;
                }
                Read::Gap { from, to } => {
                    send_json(tx, &ServerFrame::Gap(Gap { from, to })).await?;
                    offset = to;
                }
                Read::CaughtUp => break,
            }
        }
        let now = *progress.borrow_and_update();
        if now.log_stopped && !told_log_stopped {
            // Recoverable: the stream goes on, but what follows will not be in the log.
            told_log_stopped = true;
            let message = session.log_error().unwrap_or_else(|| "output log stopped".to_owned());
            send_json(tx, &ServerFrame::Error(FrameError::new(FrameErrorCode::LogStopped, message))).await?;
        }
        if now.runner_away && !told_runner_away && !now.status.is_final() {
            // Recoverable: keystrokes wait for the runner, and output resumes when it is back.
            let message = format!(
                "the session's runner is offline; keystrokes wait for it, and the session is lost if it is not back within {}",
                humantime::format_duration(state.config.lost_after)
            );
            send_json(tx, &ServerFrame::Error(FrameError::new(FrameErrorCode::RunnerOffline, message)))
                .await?;
        }
        told_runner_away = now.runner_away;
        if now.status.is_final() && offset >= now.end {
            return finish(tx, session, now.status).await;
        }
        if now.end > offset {
            continue;
        }
        // `changed` marks a value seen; marking it changed again leaves the sending to
        // `send_notices`, next time round.
        tokio::select! {
            changed = progress.changed() => changed.context("session dropped")?,
            changed = presence.changed() => {
                changed.context("session dropped")?;
                presence.mark_changed();
            }
            changed = activity.changed() => {
                changed.context("session dropped")?;
                activity.mark_changed();
            }
            changed = size.changed() => {
                changed.context("session dropped")?;
                size.mark_changed();
            }
            Some(reply) = replies.recv() => send_json(tx, &reply).await?,
        }
    }
}

/// Sends whatever changed in presence, activity and size, and any replies waiting.
async fn send_notices(
    tx: &mut SplitSink<WebSocket, Message>,
    presence: &mut watch::Receiver<Vec<ViewerInfo>>,
    activity: &mut watch::Receiver<Option<ActivityState>>,
    size: &mut watch::Receiver<TermSize>,
    replies: &mut mpsc::Receiver<ServerFrame>,
) -> anyhow::Result<()> {
    if size.has_changed().context("session dropped")? {
        let now = *size.borrow_and_update();
        send_json(tx, &ServerFrame::Size(now)).await?;
    }
    if presence.has_changed().context("session dropped")? {
        let viewers = presence.borrow_and_update().clone();
        send_json(tx, &ServerFrame::Presence(Presence { viewers })).await?;
    }
    if activity.has_changed().context("session dropped")? {
        let now = *activity.borrow_and_update();
        if let Some(now) = now {
            send_json(tx, &ServerFrame::Activity(now)).await?;
        }
    }
    while let Ok(reply) = replies.try_recv() {
        send_json(tx, &reply).await?;
    }
    Ok(())
}

/// Counts events in one-second windows.
struct RateWindow {
    per_second: u32,
    start: tokio::time::Instant,
    count: u32,
}

impl RateWindow {
    fn new(per_second: u32) -> Self {
        Self { per_second, start: tokio::time::Instant::now(), count: 0 }
    }

    fn allow(&mut self) -> bool {
        if self.start.elapsed() >= std::time::Duration::from_secs(1) {
            self.start = tokio::time::Instant::now();
            self.count = 0;
        }
        self.count += 1;
        self.count <= self.per_second
    }
}

/// Decodes a control frame, or explains what is wrong with it.
fn parse_control(text: &str) -> Result<ClientFrame, FrameError> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Resize(size)) if size.is_valid() => Ok(ClientFrame::Resize(size)),
        Ok(ClientFrame::Activate) => Ok(ClientFrame::Activate),
        Ok(ClientFrame::Resize(size)) => Err(FrameError::new(
            FrameErrorCode::BadFrame,
            format!("resize to {}x{} is out of range: rows and cols must be 1–1000", size.rows, size.cols),
        )),
        Err(e) => {
            Err(FrameError::new(FrameErrorCode::BadFrame, format!("unknown or malformed control frame: {e}")))
        }
    }
}

async fn forward(session: &Session, order: ToRunner) {
    if session.status().is_final() {
        return;
    }
    // Waits only if the runner is slow to take input; other viewers are unaffected.
    let _ = session.to_runner().send(order).await;
}

/// The last frame: `exit` after the final byte, or an error saying why there is no exit.
async fn finish(
    tx: &mut SplitSink<WebSocket, Message>,
    session: &Session,
    status: SessionStatus,
) -> anyhow::Result<()> {
    let frame = match (status, session.exit_status()) {
        (SessionStatus::Exited, Some(exit)) => ServerFrame::Exit(exit),
        (status, _) => {
            let code = if status == SessionStatus::Lost {
                FrameErrorCode::SessionLost
            } else {
                FrameErrorCode::SessionFailed
            };
            let message = session.error().unwrap_or_else(|| format!("session is {status:?}"));
            ServerFrame::Error(FrameError::new(code, message))
        }
    };
    send_json(tx, &frame).await?;
    close(tx, Close::Done, "session ended").await;
    Ok(())
}
