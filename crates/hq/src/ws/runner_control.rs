//! A runner's control connection (`/api/v1/ws/register`, the runner's `control.rs`): hello,
//! heartbeats both ways, start orders, and marking the runner offline (and later its sessions
//! lost) when it goes away.

use std::time::Duration;

use agentrelay_protocol::runner::{
    ChangesReport, Hello, HqMessage, RefusalCode, Refused, RunnerMessage, SessionFailed, Welcome,
};
use agentrelay_protocol::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use anyhow::{Context, bail};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use tokio::time::{Instant, interval_at, timeout};
use tracing::Instrument;
use uuid::Uuid;

use super::{Close, close, read_first, send_json};
use crate::audit;
use crate::auth::{Principal, runner_principal};
use crate::client_ip::ClientIp;
use crate::error::AppError;
use crate::metrics::Counters;
use crate::registry::Registration;
use crate::state::AppState;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle runner connections are the bulk of HQ's sockets: keep their buffers small.
const CONTROL_READ_BUFFER: usize = 4 * 1024;

/// `GET /api/v1/ws/register`: checks the runner token, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    ClientIp(address): ClientIp,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let principal = runner_principal(&state, &headers, address).inspect_err(|_| {
        audit::record(&state, None, "runner.refused", None, address, Some("bad token".to_owned()));
    })?;
    Ok(ws
        .read_buffer_size(CONTROL_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(state.config.max_frame_size)
        .on_upgrade(move |socket| async move {
            if let Err(error) = serve(&state, socket, principal).await {
                Counters::add(&state.counters.runner_errors, 1);
                tracing::info!(error = format!("{error:#}"), "runner connection ended");
            }
        }))
}

async fn serve(state: &AppState, mut socket: WebSocket, principal: Principal) -> anyhow::Result<()> {
    let hello = match timeout(HELLO_TIMEOUT, read_hello(&mut socket)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(error)) => {
            refuse(&mut socket, RefusalCode::BadHello, &format!("{error:#}")).await;
            return Err(error);
        }
        Err(_) => bail!("no hello within {HELLO_TIMEOUT:?}"),
    };
    let said_hello_at = chrono::Utc::now();
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.protocol_version) {
        let message = format!(
            "runner speaks protocol {} but this HQ accepts {MIN_PROTOCOL_VERSION}–{PROTOCOL_VERSION}; upgrade the runner",
            hello.protocol_version
        );
        refuse_runner(state, &mut socket, &hello, &principal, RefusalCode::ProtocolVersion, &message).await;
        bail!(message);
    }
    if state.registry.get(hello.id).is_some() {
        Counters::add(&state.counters.runner_reconnects, 1);
    }
    // A runner token of a user's own enrolls their personal runner; the static runner token and
    // shared runner tokens enroll shared runners.
    let owner = if principal.shared { None } else { principal.user.clone() };
    let control = match &state.cluster {
        Some(cluster) => crate::cluster::stream::subscribe_control(cluster, hello.id).await,
        None => None,
    };
    let registration = match state.registry.connect(&hello, owner) {
        Ok(registration) => registration,
        Err(refusal) => {
            let message = refusal.to_string();
            let code = match refusal {
                crate::registry::Refusal::NameTaken(_) => RefusalCode::NameTaken,
                crate::registry::Refusal::OwnerChanged(..) => RefusalCode::BadHello,
            };
            refuse_runner(state, &mut socket, &hello, &principal, code, &message).await;
            bail!(refusal);
        }
    };
    let span = tracing::info_span!("runner", id = %hello.id, runner = %hello.name);
    let id = hello.id;
    let connection = registration.connection;
    async {
        tracing::info!(version = %hello.version, live_sessions = hello.sessions.len(), "runner online");
        audit::by_principal(
            state,
            &principal,
            "runner.registered",
            hello.name.clone(),
            Some(hello.id.to_string()),
        );
        take_back_sessions(state, &hello, said_hello_at);
        // In a cluster, start orders for this runner come from every replica through this one.
        let connected = state.shutdown.child_token();
        if let (Some(cluster), Some(messages), Some(tx)) =
            (&state.cluster, control, state.registry.sender(id))
        {
            let serving =
                crate::cluster::stream::serve_control(cluster.clone(), messages, tx, connected.clone());
            state.tasks.spawn(serving);
        }
        let result = run(state, &mut socket, id, registration, &principal).await;
        connected.cancel();
        if state.registry.disconnect(id, connection) {
            tracing::info!("runner offline");
            for session in state.sessions.live_on_runner(id) {
                session.note_runner_away(true);
            }
            watch_for_lost_sessions(state, id);
        }
        result
    }
    .instrument(span)
    .await
}

async fn read_hello(socket: &mut WebSocket) -> anyhow::Result<Hello> {
    match read_first(socket, "hello").await? {
        RunnerMessage::Hello(hello) => Ok(hello),
        other => bail!("expected a hello first, got {other:?}"),
    }
}

/// Refuses a runner that said hello, and audits it.
async fn refuse_runner(
    state: &AppState,
    socket: &mut WebSocket,
    hello: &Hello,
    principal: &Principal,
    code: RefusalCode,
    message: &str,
) {
    refuse(socket, code, message).await;
    let target = Some(hello.id.to_string());
    audit::record(
        state,
        Some(&hello.name),
        "runner.refused",
        target,
        principal.address,
        Some(message.to_owned()),
    );
}

async fn refuse(socket: &mut WebSocket, code: RefusalCode, message: &str) {
    let frame = HqMessage::Refused(Refused { code, message: message.to_owned() });
    let _ = send_json(socket, &frame).await;
    close(socket, Close::Policy, code.as_str()).await;
}

/// The connection's one loop: frames from the runner, orders for it, heartbeats, shutdown.
async fn run(
    state: &AppState,
    socket: &mut WebSocket,
    id: Uuid,
    registration: Registration,
    principal: &Principal,
) -> anyhow::Result<()> {
    let Registration { mut rx, replaced, .. } = registration;
    let every = state.config.heartbeat_interval;
    send_json(
        socket,
        &HqMessage::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            heartbeat_interval_ms: every.as_millis() as u64,
        }),
    )
    .await?;
    let mut beat = interval_at(Instant::now() + every, every);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => { last_heard = Instant::now(); continue }
                    Some(Err(e)) => return Err(e).context("runner socket"),
                };
                last_heard = Instant::now();
                state.registry.touch(id);
                match serde_json::from_str::<RunnerMessage>(text.as_str()) {
                    Ok(RunnerMessage::Heartbeat) => {}
                    Ok(RunnerMessage::SessionFailed(failed)) => session_failed(state, id, failed),
                    Ok(RunnerMessage::WorkspaceReply(reply)) => state.registry.requests.answer(id, reply),
                    Ok(RunnerMessage::Changes(report)) => changes(state, id, report),
                    Ok(RunnerMessage::Hello(_)) => tracing::warn!("ignoring a second hello"),
                    Err(e) => tracing::warn!(error = %e, "ignoring a bad control frame"),
                }
            }
            order = rx.recv() => match order {
                Some(order) => send_json(socket, &order).await?,
                None => return Ok(()),
            },
            _ = beat.tick() => {
                if last_heard.elapsed() > state.config.heartbeat_timeout {
                    let _ = socket.send(Message::Close(None)).await;
                    bail!("no heartbeat for {:?}", state.config.heartbeat_timeout);
                }
                send_json(socket, &HqMessage::Heartbeat).await?;
            }
            _ = replaced.cancelled() => bail!("replaced by a newer connection of the same runner"),
            _ = principal.revoked.cancelled() => {
                close(socket, Close::Policy, "token revoked").await;
                bail!("its token was revoked");
            }
            _ = state.shutdown.cancelled() => {
                close(socket, Close::ShuttingDown, "HQ is shutting down").await;
                return Ok(());
            }
        }
    }
}

/// The runner could not start a session, or its policy refused to: the session fails with the
/// runner's reason, and a refusal is audited (it may be a stolen HQ, or a teammate, probing).
fn session_failed(state: &AppState, runner_id: Uuid, failed: SessionFailed) {
    let Some(session) = state.sessions.get(failed.session_id) else { return };
    if session.runner_id != runner_id {
        tracing::warn!(session = %failed.session_id, "ignoring a failure report for another runner's session");
        return;
    }
    tracing::info!(session = %failed.session_id, error = %failed.error, refused = failed.refused, "session failed to start");
    if failed.refused {
        let runner = state.registry.get(runner_id).map(|r| r.name);
        let target = Some(session.id.to_string());
        audit::record(state, runner.as_deref(), "session.refused", target, None, Some(failed.error.clone()));
    }
    session.mark_failed(failed.error);
}

/// A runner's report that a session's workspace changed.
fn changes(state: &AppState, runner_id: Uuid, report: ChangesReport) {
    match state.sessions.get(report.session_id) {
        Some(session) if session.runner_id == runner_id => session.note_changes(report.summary),
        _ => {
            tracing::debug!(session = %report.session_id, "ignoring changes of a session this runner does not run")
        }
    }
}

/// The runner is back for its live sessions. Those it does not announce are gone with an earlier
/// runner process: they are lost now, not after `--lost-after`. (Announced sessions resume on
/// their own data connections.) Sessions created after the hello are not in it, but were sent to
/// this connection: they are left alone.
fn take_back_sessions(state: &AppState, hello: &Hello, said_hello_at: chrono::DateTime<chrono::Utc>) {
    let announced: std::collections::HashSet<Uuid> = hello.sessions.iter().map(|s| s.id).collect();
    for session in state.sessions.live_on_runner(hello.id) {
        session.note_runner_away(false);
        if !announced.contains(&session.id) && session.created_at < said_hello_at {
            // The runner may say what became of it (a reboot, a killed session host).
            let reason = hello.ended.iter().find(|e| e.id == session.id).map(|e| e.reason.clone());
            let reason = reason.unwrap_or_else(|| {
                "the runner restarted and no longer has this session's process".to_owned()
            });
            tracing::info!(session = %session.id, %reason, "session vanished with a previous runner process");
            session.mark_lost(reason);
        }
    }
}

/// After `--lost-after` without the runner, its unfinished sessions become `lost`.
pub(crate) fn watch_for_lost_sessions(state: &AppState, runner_id: Uuid) {
    let state_for_task = state.clone();
    state.tasks.spawn(async move {
        let state = state_for_task;
        tokio::select! {
            _ = tokio::time::sleep(state.config.lost_after) => {}
            _ = state.shutdown.cancelled() => return,
        }
        if state.registry.is_online(runner_id) {
            return;
        }
        for session in state.sessions.live_on_runner(runner_id) {
            tracing::info!(session = %session.id, "session lost with its runner");
            session.mark_lost(format!(
                "runner went offline and did not return within {:?}",
                state.config.lost_after
            ));
        }
    });
}
