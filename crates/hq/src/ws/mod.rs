//! HQ's three WebSocket endpoints and what they share.
//!
//! * [`viewer`]: `/api/v1/ws/session/{id}`, a browser or CLI watching and typing into a session;
//! * [`runner_control`]: `/api/v1/ws/register`, one per runner (the runner's `control.rs`);
//! * [`runner_data`]: `/api/v1/ws/runner/session/{id}`, one per session on its runner (the
//!   runner's `data.rs`).
//!
//! A keystroke goes `viewer` → [`Session`](crate::session::Session) → `runner_data`, and its echo
//! comes back the same way.

pub mod runner_control;
pub mod runner_data;
pub mod viewer;

use anyhow::{Context, bail};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{Sink, SinkExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Read buffer per session socket (viewer or runner data): tungstenite's default 128 KiB would
/// dominate a session's memory.
pub(crate) const SESSION_READ_BUFFER: usize = 8 * 1024;

/// The close codes HQ sends (RFC 6455, section 7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// 1000: the conversation is over (the session ended, its exit is recorded).
    Done,
    /// 1001: HQ is shutting down.
    ShuttingDown,
    /// 1008: refused by policy (a revoked token, a session that is not the runner's own).
    Policy,
}

impl Close {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::Done => 1000,
            Self::ShuttingDown => 1001,
            Self::Policy => 1008,
        }
    }
}

/// Sends a close frame with `reason`, ignoring a peer that is already gone.
pub async fn close<S>(socket: &mut S, code: Close, reason: &str)
where
    S: Sink<Message> + Unpin,
{
    let frame = CloseFrame { code: code.code(), reason: reason.into() };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Sends one value as a JSON text frame.
pub async fn send_json<S, T>(socket: &mut S, value: &T) -> anyhow::Result<()>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
    T: Serialize,
{
    socket.send(json_message(value)?).await.context("sending a frame")
}

/// One value as a JSON text frame.
pub fn json_message<T: Serialize>(value: &T) -> anyhow::Result<Message> {
    let text = serde_json::to_string(value).context("encoding a frame")?;
    Ok(Message::Text(text.into()))
}

/// Reads the first frame a peer must send (a runner's `hello`, a data connection's `open`),
/// skipping pings; `what` names it in errors.
pub async fn read_first<T: DeserializeOwned>(socket: &mut WebSocket, what: &str) -> anyhow::Result<T> {
    loop {
        match socket.recv().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).with_context(|| format!("{what} is not valid"));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(_)) => bail!("expected a JSON {what}"),
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {what}")),
            None => bail!("closed before {what}"),
        }
    }
}
