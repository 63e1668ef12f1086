//! `SessionStream`: one session's output and input over the session WebSocket, resumed from the
//! last byte received whenever the connection drops, so a network blip shows nothing twice and
//! loses nothing.
//!
//! A background task owns the socket; the stream's owner reads [`Event`]s and sends [`Outbound`]s
//! through channels, and dropping the stream stops the task. Reading and writing the socket run
//! side by side, so a big paste cannot deadlock against a flood of output.

use std::collections::VecDeque;
use std::time::Duration;

use agentrelay_protocol::viewer::{ClientFrame, Gap, ServerFrame};
use agentrelay_protocol::{ExitStatus, TermSize};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use crate::client::{Api, Socket};
use crate::error::CliError;

/// Input held while HQ is unreachable; more than this is dropped (and said so).
const MAX_PENDING_INPUT: usize = 1024 * 1024;

/// Something that happened on the session.
#[derive(Debug)]
pub enum Event {
    /// A connection is up; output continues at `offset`. `resumed` after a reconnect.
    Attached {
        /// Offset of the next output byte.
        offset: u64,
        /// Whether this follows a dropped connection.
        resumed: bool,
    },
    /// A screen snapshot that stands for the output before the attach offset.
    Snapshot(Bytes),
    /// Output bytes, in order.
    Output(Bytes),
    /// Output HQ no longer holds.
    Gap(Gap),
    /// The process ended; nothing follows.
    Exit(ExitStatus),
    /// The session ended without an exit status (lost or failed); nothing follows.
    Ended(String),
    /// HQ reported a problem with a frame; the stream goes on.
    Warning(String),
    /// The connection dropped; the stream is redialing.
    Disconnected(String),
    /// The stream cannot go on (token revoked, session deleted); nothing follows.
    Fatal(CliError),
}

/// What the owner sends to the session.
#[derive(Debug)]
pub enum Outbound {
    /// Keystrokes.
    Input(Bytes),
    /// The local terminal's size.
    Resize(TermSize),
}

impl Outbound {
    fn into_message(self) -> Message {
        match self {
            Self::Input(bytes) => Message::Binary(bytes),
            Self::Resize(size) => {
                // A plain struct always serializes.
                Message::text(serde_json::to_string(&ClientFrame::Resize(size)).unwrap_or_default())
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Input(bytes) => bytes.len(),
            Self::Resize(_) => 0,
        }
    }
}

/// A live, self-resuming view of one session.
pub struct SessionStream {
    /// Events, in order; closed after `Exit`, `Ended` or `Fatal`.
    pub events: mpsc::Receiver<Event>,
    /// Input and resizes for the session.
    pub outbound: mpsc::Sender<Outbound>,
    task: JoinHandle<()>,
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SessionStream {
    /// Connects (an error here is final), then keeps the session's stream going in the background.
    pub async fn open(api: &Api, session: Uuid, from: Option<u64>) -> Result<Self, CliError> {
        let socket = api.dial_session(session, from).await?;
        let (events_tx, events) = mpsc::channel(64);
        let (outbound, outbound_rx) = mpsc::channel(64);
        let link = Link { api: api.clone(), session, offset: from, events: events_tx, outbound: outbound_rx };
        let task = tokio::spawn(link.run(socket));
        Ok(Self { events, outbound, task })
    }

    /// Closes the connection properly (HQ logs a normal close rather than a drop).
    pub async fn close(mut self) {
        let (detached, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.outbound, detached));
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
    }
}

/// The task's side of the stream.
struct Link {
    api: Api,
    session: Uuid,
    /// Offset of the next byte expected; `None` until HQ first says where it starts.
    offset: Option<u64>,
    events: mpsc::Sender<Event>,
    outbound: mpsc::Receiver<Outbound>,
}

/// How one connection ended.
enum End {
    /// Nothing more to do: the session ended, the owner went away, or an error is final.
    Done,
    /// The connection dropped; worth redialing.
    Dropped(String),
}

impl Link {
    async fn run(mut self, mut socket: Socket) {
        let mut pending = VecDeque::new();
        let mut resumed = false;
        loop {
            match self.connection(socket, &mut pending, resumed).await {
                End::Done => return,
                End::Dropped(reason) => {
                    if self.events.send(Event::Disconnected(reason)).await.is_err() {
                        return;
                    }
                }
            }
            socket = match self.redial(&mut pending).await {
                Some(socket) => socket,
                None => return,
            };
            resumed = true;
        }
    }

    /// Serves one connection until it drops or the session ends.
    async fn connection(&mut self, socket: Socket, pending: &mut VecDeque<Outbound>, resumed: bool) -> End {
        let (mut sink, mut stream) = socket.split();
        let (to_socket, mut writer_rx) = mpsc::channel::<Message>(16);
        // The writer runs beside the reader so a full send buffer never stops us reading.
        let writer = tokio::spawn(async move {
            while let Some(message) = writer_rx.recv().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
        });
        let _writer = AbortOnDrop(writer);
        let mut held: Option<Message> = None;
        let mut snapshot_next = false;
        let mut attached = false;
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        Some(Err(e)) => return End::Dropped(e.to_string()),
                        None => return End::Dropped("HQ closed the connection".into()),
                    };
                    let event = match frame {
                        Message::Binary(bytes) if snapshot_next => {
                            snapshot_next = false;
                            Event::Snapshot(bytes)
                        }
                        Message::Binary(bytes) => {
                            self.offset = self.offset.map(|offset| offset + bytes.len() as u64);
                            Event::Output(bytes)
                        }
                        Message::Text(text) => match serde_json::from_str::<ServerFrame>(text.as_str()) {
                            Ok(ServerFrame::Attached(at)) => {
                                self.offset = Some(at.offset);
                                snapshot_next = at.snapshot;
                                attached = true;
                                // Input typed while disconnected goes first, in order.
                                held = pending_message(pending);
                                Event::Attached { offset: at.offset, resumed }
                            }
                            Ok(ServerFrame::Gap(gap)) => {
                                self.offset = Some(gap.to);
                                Event::Gap(gap)
                            }
                            Ok(ServerFrame::Exit(status)) => {
                                let _ = self.events.send(Event::Exit(status)).await;
                                return End::Done;
                            }
                            Ok(ServerFrame::Error(error))
                                if matches!(error.code.as_str(), "session_lost" | "session_failed") =>
                            {
                                let _ = self.events.send(Event::Ended(error.message)).await;
                                return End::Done;
                            }
                            Ok(ServerFrame::Error(error)) => Event::Warning(error.message),
                            // Activity and presence are for dashboards; frames from later HQs
                            // are not ours to show.
                            Ok(ServerFrame::Activity(_) | ServerFrame::Presence(_)) | Err(_) => continue,
                        },
                        Message::Close(frame) => return self.closed(frame),
                        _ => continue,
                    };
                    if self.events.send(event).await.is_err() {
                        return End::Done;
                    }
                }
                permit = to_socket.reserve(), if held.is_some() => {
                    let Ok(permit) = permit else { return End::Dropped("connection closed".into()) };
                    if let Some(message) = held.take() {
                        permit.send(message);
                    }
                    if attached {
                        held = pending_message(pending);
                    }
                }
                out = self.outbound.recv(), if held.is_none() => match out {
                    Some(out) if attached => held = Some(out.into_message()),
                    Some(out) => pending.push_back(out),
                    None => {
                        // The owner is done (a detach): say goodbye properly.
                        let close = CloseFrame { code: CloseCode::Normal, reason: "detached".into() };
                        let _ = to_socket.send(Message::Close(Some(close))).await;
                        let _ = tokio::time::timeout(Duration::from_secs(2), to_socket.closed()).await;
                        return End::Done;
                    }
                },
            }
        }
    }

    /// A close frame from HQ: shutting down or going away is worth a redial, a revocation is not.
    fn closed(&mut self, frame: Option<CloseFrame>) -> End {
        match frame {
            Some(frame) if frame.code == CloseCode::Policy => {
                let message = format!("HQ closed the connection: {}", frame.reason);
                let _ = self.events.try_send(Event::Fatal(CliError::Config(message)));
                End::Done
            }
            Some(frame) => End::Dropped(format!("HQ closed the connection ({})", frame.reason)),
            None => End::Dropped("HQ closed the connection".into()),
        }
    }

    /// Redials with backoff from the last offset, holding input meanwhile. `None`: stop.
    async fn redial(&mut self, pending: &mut VecDeque<Outbound>) -> Option<Socket> {
        let mut delay = Duration::from_millis(100);
        loop {
            let wait = tokio::time::sleep(jitter(delay));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    out = self.outbound.recv() => match out {
                        Some(out) => self.hold(pending, out).await?,
                        None => return None,
                    },
                }
            }
            match self.api.dial_session(self.session, self.offset).await {
                Ok(socket) => return Some(socket),
                Err(error) if error.is_transient() => {}
                Err(error) => {
                    let _ = self.events.send(Event::Fatal(error)).await;
                    return None;
                }
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Keeps input for after the reconnect, up to a bound; only the latest resize matters.
    async fn hold(&mut self, pending: &mut VecDeque<Outbound>, out: Outbound) -> Option<()> {
        if let Outbound::Resize(_) = out {
            pending.retain(|o| !matches!(o, Outbound::Resize(_)));
        }
        let held: usize = pending.iter().map(Outbound::len).sum();
        if held + out.len() > MAX_PENDING_INPUT {
            let warning = "HQ is unreachable and 1 MiB of input is waiting; dropping more input".to_owned();
            self.events.send(Event::Warning(warning)).await.ok()?;
            return Some(());
        }
        pending.push_back(out);
        Some(())
    }
}

fn pending_message(pending: &mut VecDeque<Outbound>) -> Option<Message> {
    pending.pop_front().map(Outbound::into_message)
}

/// ±20 %, so many clients cut off together do not redial together.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(rand::random_range(0.8..1.2))
}

/// Aborts a task when its owner goes away.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
