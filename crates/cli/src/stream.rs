//! `SessionStream`: one session's output and input over the session WebSocket, resumed from the
//! last byte received whenever the connection drops (or goes silent), so a network blip shows
//! nothing twice and loses nothing.
//!
//! A background task owns the socket; the stream's owner reads [`Event`]s and sends [`Outbound`]s
//! through channels, and dropping the stream stops the task. Input waits in one bounded queue
//! that outlives connections: a writer task drains it beside the reader (so a big paste cannot
//! deadlock against a flood of output), and what a dropped connection did not send goes out on
//! the next one, after the current window size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use agentrelay_protocol::viewer::{ClientFrame, Gap, ServerFrame};
use agentrelay_protocol::{ExitStatus, TermSize};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use crate::client::{Api, Socket};
use crate::error::CliError;

/// Input held for the session (while it is slow to take it, or while HQ is unreachable);
/// the owner's sends wait while this much is queued.
const MAX_QUEUED_INPUT: usize = 1024 * 1024;

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
    /// The stream cannot go on (token revoked, session deleted, HQ gone too long); nothing follows.
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

fn resize_message(size: TermSize) -> Message {
    // A plain struct always serializes.
    Message::text(serde_json::to_string(&ClientFrame::Resize(size)).unwrap_or_default())
}

/// How the stream behaves when HQ goes quiet or away.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A ping goes out after this much silence; three of them without an answer mean a drop.
    pub keepalive: Duration,
    /// Stop redialing after this long without a connection (`None`: until told to stop).
    pub give_up_after: Option<Duration>,
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
    pub async fn open(
        api: &Api,
        session: Uuid,
        from: Option<u64>,
        options: Options,
    ) -> Result<Self, CliError> {
        let socket = api.dial_session(session, from).await?;
        let (events_tx, events) = mpsc::channel(64);
        let (outbound, outbound_rx) = mpsc::channel(64);
        let link = Link {
            api: api.clone(),
            session,
            offset: from,
            options,
            events: events_tx,
            outbound: outbound_rx,
            queue: Arc::default(),
        };
        let task = tokio::spawn(link.run(socket));
        Ok(Self { events, outbound, task })
    }

    /// Closes the connection properly (HQ sees a normal close rather than a drop), without
    /// waiting for output nobody will read.
    pub async fn close(mut self) {
        self.events.close();
        let (detached, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.outbound, detached));
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
    }
}

/// Input waiting to be written, shared by a connection's reader and writer, kept across
/// connections.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    /// Signalled when something is queued.
    ready: Notify,
}

#[derive(Default)]
struct QueueState {
    input: VecDeque<Bytes>,
    bytes: usize,
    /// The latest window size: sent first on every connection, and when it changes.
    size: Option<TermSize>,
    size_unsent: bool,
    /// A keepalive ping is due.
    ping: bool,
    /// Close the connection once the input is written.
    closing: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_room(&self) -> bool {
        self.lock().bytes < MAX_QUEUED_INPUT
    }

    fn push(&self, out: Outbound) {
        let mut state = self.lock();
        match out {
            Outbound::Input(bytes) => {
                state.bytes += bytes.len();
                state.input.push_back(bytes);
            }
            Outbound::Resize(size) => {
                state.size = Some(size);
                state.size_unsent = true;
            }
        }
        drop(state);
        self.ready.notify_one();
    }

    /// The next message to write: a ping, a pending resize, input in order, then a close.
    fn pop(&self) -> Option<Message> {
        let mut state = self.lock();
        if std::mem::take(&mut state.ping) {
            return Some(Message::Ping(Bytes::new()));
        }
        if std::mem::take(&mut state.size_unsent) {
            return state.size.map(resize_message);
        }
        if let Some(bytes) = state.input.pop_front() {
            state.bytes -= bytes.len();
            return Some(Message::Binary(bytes));
        }
        state
            .closing
            .then(|| Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "detached".into() })))
    }

    fn signal(&self, change: impl FnOnce(&mut QueueState)) {
        change(&mut self.lock());
        self.ready.notify_one();
    }

    /// A new connection starts with the window size.
    fn reconnected(&self) {
        let mut state = self.lock();
        state.size_unsent = state.size.is_some();
        state.ping = false;
    }
}

/// The task's side of the stream.
struct Link {
    api: Api,
    session: Uuid,
    /// Offset of the next byte expected; `None` until HQ first says where it starts.
    offset: Option<u64>,
    options: Options,
    events: mpsc::Sender<Event>,
    outbound: mpsc::Receiver<Outbound>,
    queue: Arc<Queue>,
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
        let mut resumed = false;
        loop {
            self.queue.reconnected();
            match self.connection(socket, resumed).await {
                End::Done => return,
                End::Dropped(reason) => {
                    if self.events.send(Event::Disconnected(reason)).await.is_err() {
                        return;
                    }
                }
            }
            socket = match self.redial().await {
                Some(socket) => socket,
                None => return,
            };
            resumed = true;
        }
    }

    /// Serves one connection until it drops or the session ends.
    async fn connection(&mut self, socket: Socket, resumed: bool) -> End {
        let (sink, mut stream) = socket.split();
        let writer = AbortOnDrop(tokio::spawn(write(sink, self.queue.clone())));
        let mut snapshot_next = false;
        let keepalive = self.options.keepalive;
        let mut heard = Instant::now();
        let mut pinged = 0u32;
        loop {
            let silence = tokio::time::sleep_until(heard + keepalive * (pinged + 1));
            tokio::select! {
                frame = stream.next() => {
                    heard = Instant::now();
                    pinged = 0;
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
                            Ok(ServerFrame::Error(error)) if error.code.ends_session() => {
                                let _ = self.events.send(Event::Ended(error.message)).await;
                                return End::Done;
                            }
                            Ok(ServerFrame::Error(error)) => Event::Warning(error.message),
                            // Activity, presence and size are for dashboards; frames from later HQs
                            // are not ours to show.
                            Ok(ServerFrame::Activity(_) | ServerFrame::Presence(_) | ServerFrame::Size(_)) | Err(_) => {
                                continue;
                            }
                        },
                        Message::Close(frame) => return self.closed(frame),
                        _ => continue,
                    };
                    if self.events.send(event).await.is_err() {
                        return goodbye(writer, &self.queue).await;
                    }
                }
                out = self.outbound.recv(), if self.queue.has_room() => match out {
                    Some(out) => self.queue.push(out),
                    // The owner is done (a detach).
                    None => return goodbye(writer, &self.queue).await,
                },
                () = silence => {
                    if pinged == 2 {
                        return End::Dropped(format!("no word from HQ for {:?}", keepalive * 3));
                    }
                    pinged += 1;
                    self.queue.signal(|state| state.ping = true);
                }
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

    /// Redials with backoff from the last offset, queueing input meanwhile. `None`: stop.
    async fn redial(&mut self) -> Option<Socket> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let wait = tokio::time::sleep(jitter(delay));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    out = self.outbound.recv(), if self.queue.has_room() => match out {
                        Some(out) => self.queue.push(out),
                        None => return None,
                    },
                }
            }
            match self.api.dial_session(self.session, self.offset).await {
                Ok(socket) => return Some(socket),
                Err(error) if worth_retrying(&error) => {
                    if self.options.give_up_after.is_some_and(|limit| started.elapsed() > limit) {
                        let message = format!("giving up after {:?} without HQ: {error}", started.elapsed());
                        let _ = self.events.send(Event::Fatal(CliError::Config(message))).await;
                        return None;
                    }
                }
                Err(error) => {
                    let _ = self.events.send(Event::Fatal(error)).await;
                    return None;
                }
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// On a redial, a full session (409) or a rate limit (429) may clear up; refusals will not.
fn worth_retrying(error: &CliError) -> bool {
    error.is_transient() || matches!(error, CliError::Api { status: 409 | 429, .. })
}

/// Writes queued messages until the connection fails or closes. A message leaves the queue as
/// it is written, so a drop loses at most the one in flight (as with any terminal over TCP).
async fn write(mut sink: SplitSink<Socket, Message>, queue: Arc<Queue>) {
    loop {
        let ready = queue.ready.notified();
        let Some(message) = queue.pop() else {
            ready.await;
            continue;
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            return;
        }
    }
}

/// Writes what is queued and a normal close, for at most a second, then ends the connection.
async fn goodbye(mut writer: AbortOnDrop, queue: &Queue) -> End {
    queue.signal(|state| state.closing = true);
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer.0).await;
    End::Done
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
