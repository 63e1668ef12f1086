//! A session's data connection from its runner (`/api/v1/ws/runner/session/{id}`): output in,
//! input/resize/kill out, exit last. One task per connection; output is pushed into the session's
//! ring and never waits for a viewer.

use std::time::Duration;

use agentrelay_protocol::runner::{DataDown, DataUp, OpenData, Resume};
use anyhow::{Context, bail};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::Instrument;

use crate::api::sessions::find;
use crate::auth::{Principal, runner_principal};
use crate::client_ip::ClientIp;
use crate::error::AppError;
use crate::metrics::Counters;
use crate::session::{Session, ToRunner};
use crate::state::AppState;

/// Read buffer per data connection.
pub(crate) const SOCKET_BUFFER: usize = 8 * 1024;

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
    let session = find(&state, &id)?;
    let span = tracing::info_span!("session", id = %session.id);
    // tungstenite's default 128 KiB read and write buffers per socket would dominate a session's
    // memory; frames are written (and flushed) one at a time anyway.
    let ws = ws.read_buffer_size(SOCKET_BUFFER).write_buffer_size(0);
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
    session: std::sync::Arc<Session>,
    mut socket: WebSocket,
    principal: Principal,
) -> anyhow::Result<()> {
    let open = timeout(OPEN_TIMEOUT, read_open(&mut socket)).await.context("no open frame in time")??;
    if open.session_id != session.id || open.runner_id != session.runner_id {
        let _ = socket
            .send(Message::Close(Some(CloseFrame { code: 1008, reason: "wrong session".into() })))
            .await;
        bail!("runner {} opened session {} that is not its own", open.runner_id, open.session_id);
    }
    let Some(mut rx) = session.take_runner_rx().await else {
        bail!("another data connection still holds the session");
    };
    let result = pump(state, &session, &mut socket, &mut rx, &principal).await;
    session.park_runner_rx(rx);
    result
}

async fn read_open(socket: &mut WebSocket) -> anyhow::Result<OpenData> {
    loop {
        match socket.recv().await.context("closed before open")?.context("reading open")? {
            Message::Text(text) => match serde_json::from_str(text.as_str()).context("bad open frame")? {
                DataUp::Open(open) => return Ok(open),
                other => bail!("expected open, got {other:?}"),
            },
            Message::Ping(_) | Message::Pong(_) => continue,
            _ => bail!("expected an open frame"),
        }
    }
}

/// Output from the runner into the ring; viewers' input, resizes and kills to the runner.
async fn pump(
    state: &AppState,
    session: &Session,
    socket: &mut WebSocket,
    rx: &mut mpsc::Receiver<ToRunner>,
    principal: &Principal,
) -> anyhow::Result<()> {
    let from = session.output_end();
    send(socket, &DataDown::Resume(Resume { from })).await?;
    session.mark_running();
    tracing::debug!(from, "data connection open");
    loop {
        tokio::select! {
            frame = socket.recv() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    Counters::add(&state.counters.bytes_in, bytes.len() as u64);
                    session.push_output(bytes);
                    session.wait_for_room().await;
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<DataUp>(text.as_str()) {
                    Ok(DataUp::Gap(gap)) => {
                        tracing::warn!(from = gap.from, to = gap.to, "runner lost output");
                        session.skip_output_to(gap.to);
                    }
                    Ok(DataUp::Exit(exit)) => {
                        tracing::info!(code = ?exit.code, signal = ?exit.signal, "session exited");
                        session.mark_exited(exit);
                        // Tells the runner the exit is recorded, so it can forget the session.
                        let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "exit recorded".into() }))).await;
                        return Ok(());
                    }
                    Ok(DataUp::Activity(report)) => session.report_activity(report.activity),
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
                let message = match order {
                    ToRunner::Input(bytes) => Message::Binary(bytes),
                    ToRunner::Resize(size) => text(&DataDown::Resize(size))?,
                    ToRunner::Kill => text(&DataDown::Kill)?,
                };
                socket.send(message).await.context("sending to runner")?;
            }
            _ = principal.revoked.cancelled() => {
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: "token revoked".into() }))).await;
                return Ok(());
            }
            _ = state.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1001, reason: "HQ is shutting down".into() }))).await;
                return Ok(());
            }
        }
    }
}

fn text(frame: &DataDown) -> anyhow::Result<Message> {
    Ok(Message::Text(serde_json::to_string(frame).context("encoding data frame")?.into()))
}

async fn send(socket: &mut WebSocket, frame: &DataDown) -> anyhow::Result<()> {
    socket.send(text(frame)?).await.context("sending to runner")
}
