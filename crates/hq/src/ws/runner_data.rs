//! A session's data connection from its runner (`/api/v1/ws/runner/session/{id}`, the runner's
//! `data.rs`): output in, input/resize/kill out, exit last. One task per connection; output is
//! pushed into the session's ring and never waits for a viewer.
//!
//! While no data connection is open, the session keeps the receiving end of its runner-bound
//! channel parked, so keystrokes typed meanwhile wait in order; the next connection takes it.

use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::runner::{Ack, DataDown, DataUp, LostReport, OpenData, Resume};
use anyhow::{Context, bail};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Close, SESSION_READ_BUFFER, close, json_message, read_first, send_json};
use crate::api::sessions::find;
use crate::auth::{Principal, runner_principal};
use crate::client_ip::ClientIp;
use crate::error::AppError;
use crate::metrics::Counters;
use crate::session::{Session, ToRunner};
use crate::state::AppState;

/// How long a runner may take to send `open`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /api/v1/ws/runner/session/{id}`: checks the runner token and the session, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ClientIp(address): ClientIp,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let principal = runner_principal(&state, &headers, address)?;
    let session = match (find(&state, &id), &state.cluster) {
        // Started through another replica a moment ago: its row is in the database already.
        (Err(AppError::NotFound(_)), Some(cluster)) => cluster.fetch_session(&state, &id).await?,
        (found, _) => found?,
    };
    // Only a token that may enroll the session's runner opens its data: a member's personal
    // runner token cannot read a shared runner's sessions, nor another member's.
    let enrolls = if principal.shared { None } else { principal.user_id() };
    if state.registry.owner_of(session.runner_id) != Some(enrolls) {
        return Err(AppError::Forbidden("this token does not enroll the session's runner".to_owned()));
    }
    let span = tracing::info_span!("session", id = %session.id);
    // Frames are written (and flushed) one at a time: no write buffer.
    let ws = ws.read_buffer_size(SESSION_READ_BUFFER).write_buffer_size(0);
    Ok(ws.max_message_size(state.config.max_frame_size).on_upgrade(move |socket| {
        async move {
            if let Err(error) = serve(&state, session, socket, principal).await {
                Counters::add(&state.counters.data_errors, 1);
                tracing::info!(error = format!("{error:#}"), "data connection ended");
            }
        }
        .instrument(span)
    }))
}

async fn serve(
    state: &AppState,
    session: Arc<Session>,
    mut socket: WebSocket,
    principal: Principal,
) -> anyhow::Result<()> {
    let open: OpenData = match timeout(OPEN_TIMEOUT, read_first(&mut socket, "open frame")).await {
        Ok(Ok(DataUp::Open(open))) => open,
        Ok(Ok(other)) => bail!("expected open, got {other:?}"),
        Ok(Err(error)) => return Err(error),
        Err(_) => bail!("no open frame in time"),
    };
    if open.session_id != session.id || open.runner_id != session.runner_id {
        close(&mut socket, Close::Policy, "wrong session").await;
        bail!("runner {} opened session {} that is not its own", open.runner_id, open.session_id);
    }
    if session.status().is_final() {
        // Lost while its runner was away (or recorded already): the runner ends what is left.
        let reason = session.error().unwrap_or_else(|| "the session has ended".to_owned());
        send_json(&mut socket, &DataDown::Ended(LostReport { reason })).await?;
        close(&mut socket, Close::Done, "session ended").await;
        return Ok(());
    }
    let Some(mut rx) = session.take_runner_rx().await else {
        bail!("another data connection still holds the session");
    };
    // In a cluster, a runner that keeps output until it is stored hears when it is, so a replica
    // that dies before storing it costs nothing. A single HQ keeps its own log and its runners
    // their ring as before (after an outage past --buffer-size, a gap).
    let acks = open.acks && session.stored().is_some();
    // Ends with this connection: in a cluster, this replica takes the other replicas' orders
    // for the session while it holds the runner.
    let connected = state.shutdown.child_token();
    let result = async {
        let (from, stepped_back) = match &state.cluster {
            // The stored output's end, under this replica's lease: a replica that died with
            // output it had not stored yet costs nothing, the runner still has it.
            Some(cluster) => {
                let (from, stepped_back) = cluster.take_stream(state, &session).await?;
                let serving =
                    crate::cluster::stream::serve_orders(cluster.clone(), session.clone(), connected.clone());
                state.tasks.spawn(serving);
                (from, stepped_back)
            }
            // A single HQ stores its own output for as long as it runs.
            None => (session.output_end(), CancellationToken::new()),
        };
        resume(&session, &mut socket, from, acks).await?;
        if let Some(order) = session.take_carried() {
            send_order(&mut socket, order).await?;
        }
        let pumped = tokio::select! {
            pumped = pump(state, &session, &mut socket, &mut rx, &principal, acks) => Some(pumped),
            () = stepped_back.cancelled() => None,
        };
        match pumped {
            Some(pumped) => pumped,
            None => {
                // Another replica holds the stream now: the runner goes there (or here again,
                // taking the lease back) and resends what was not stored.
                close(&mut socket, Close::ShuttingDown, "another replica holds this session's output").await;
                bail!("another replica took the session's output over")
            }
        }
    }
    .await;
    connected.cancel();
    // Whatever happened, the next data connection finds the queue, and what waits in it.
    session.park_runner_rx(rx);
    if let Some(cluster) = &state.cluster
        && !session.status().is_final()
    {
        // The runner may come back through another replica: orders typed here go there.
        let forwarder =
            crate::cluster::stream::forward_orders(cluster.clone(), session.clone(), state.shutdown.clone());
        state.tasks.spawn(forwarder);
    }
    result
}

/// Writes one order to the runner.
async fn send_order(socket: &mut WebSocket, order: ToRunner) -> anyhow::Result<()> {
    let message = match order {
        ToRunner::Input(bytes) => Message::Binary(bytes),
        ToRunner::Resize(size) => json_message(&DataDown::Resize(size))?,
        ToRunner::Kill => json_message(&DataDown::Kill)?,
    };
    socket.send(message).await.context("sending to runner")
}

/// Tells the runner where HQ's copy of the output ends, so it sends exactly what follows.
async fn resume(session: &Session, socket: &mut WebSocket, from: u64, acks: bool) -> anyhow::Result<()> {
    send_json(socket, &DataDown::Resume(Resume { from, acks })).await?;
    session.mark_running();
    tracing::debug!(from, "data connection open");
    Ok(())
}

/// Output from the runner into the ring; viewers' input, resizes and kills to the runner.
async fn pump(
    state: &AppState,
    session: &Session,
    socket: &mut WebSocket,
    rx: &mut mpsc::Receiver<ToRunner>,
    principal: &Principal,
    acks: bool,
) -> anyhow::Result<()> {
    let mut stored = session.subscribe_stored();
    let mut acked = *stored.borrow_and_update();
    loop {
        tokio::select! {
            // What is stored since the last ack: one frame however many writes it took.
            changed = stored.changed(), if acks => {
                changed.context("session dropped")?;
                // `u64::MAX`: the log stopped, nothing more will be stored; the runner stops
                // waiting for acks.
                let now = *stored.borrow_and_update();
                let offset = if now == u64::MAX { now } else { now.min(session.output_end()) };
                if offset > acked {
                    acked = offset;
                    send_json(socket, &DataDown::Ack(Ack { offset })).await?;
                }
            }
            frame = socket.recv() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    Counters::add(&state.counters.bytes_in, bytes.len() as u64);
                    let at = session.output_end();
                    session.push_output(bytes.clone());
                    if let Some(cluster) = &state.cluster {
                        cluster.publish_output(session.id, at, &bytes).await;
                    }
                    session.wait_for_room().await;
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<DataUp>(text.as_str()) {
                    Ok(DataUp::Gap(gap)) => {
                        tracing::warn!(from = gap.from, to = gap.to, "runner lost output");
                        session.skip_output_to(gap.to);
                    }
                    Ok(DataUp::Exit(exit)) => {
                        tracing::info!(code = ?exit.code, signal = ?exit.signal, "session exited");
                        if state.cluster.is_some() {
                            // Every byte, then the exit, stored before the runner forgets the
                            // session: a replica that dies now loses neither.
                            session.stored_all().await;
                            session.mark_exited(exit);
                            state.events.flush().await;
                        } else {
                            session.mark_exited(exit);
                        }
                        // Tells the runner the exit is recorded, so it can forget the session.
                        close(socket, Close::Done, "exit recorded").await;
                        return Ok(());
                    }
                    Ok(DataUp::Activity(report)) => session.report_activity(report.activity),
                    Ok(DataUp::Usage(total)) => crate::session::usage::record(state, session, total),
                    Ok(DataUp::Lost(lost)) => {
                        tracing::warn!(reason = %lost.reason, "session lost on the runner");
                        if state.cluster.is_some() {
                            session.stored_all().await;
                        }
                        session.mark_lost(lost.reason);
                        if state.cluster.is_some() {
                            state.events.flush().await;
                        }
                        // Like an exit: recorded, and the runner may forget the session.
                        close(socket, Close::Done, "loss recorded").await;
                        return Ok(());
                    }
                    Ok(DataUp::Open(_)) => tracing::warn!("ignoring a second open"),
                    Err(e) => tracing::warn!(error = %e, "ignoring a bad data frame"),
                },
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("runner data socket"),
            },
            order = rx.recv() => {
                // The session holds a sender, so the channel never closes while we run.
                let Some(order) = order else { return Ok(()) };
                send_order(socket, order).await?;
            }
            _ = principal.revoked.cancelled() => {
                close(socket, Close::Policy, "token revoked").await;
                return Ok(());
            }
            _ = state.shutdown.cancelled() => {
                close(socket, Close::ShuttingDown, "HQ is shutting down").await;
                return Ok(());
            }
        }
    }
}
