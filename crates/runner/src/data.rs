//! A session's data connection to HQ: output from HQ's offset on, input and orders back, exit
//! last. Redials with backoff until HQ has recorded the exit, so an HQ outage loses nothing the
//! ring still holds.

use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::runner::{ActivityReport, DataDown, DataUp, LostReport, OpenData, Resume};
use agentrelay_protocol::viewer::Gap;
use agentrelay_ring::Read;
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::dial::{DialError, HqEndpoint, HqSocket, data_frame};
use crate::session::{Outcome, PtyOrder, Session, SessionTable};

/// Largest binary frame sent to HQ.
const MAX_OUTPUT_FRAME: usize = 64 * 1024;
/// How long HQ may take to answer `open`.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);

/// How a data connection ended.
enum Ended {
    /// HQ recorded the exit: the session is done.
    Delivered,
    /// The connection dropped first; dial again.
    Interrupted,
    /// HQ has given the session up (lost while the runner was away): stop it, forget it.
    GivenUp,
    /// The runner is stopping and leaves the session running in its host.
    Detached,
}

/// Streams one session to HQ until its exit (or loss) is recorded, then forgets it. On runner
/// shutdown it stops at once when `detach_on_shutdown` (the session runs on in its host, for the
/// next runner process); otherwise the host link ends the session and the exit still comes.
/// Whenever `relink` changes (the control connection was lost), the connection is dropped and
/// dialled again.
pub async fn stream(
    hq: HqEndpoint,
    runner_id: Uuid,
    session: Arc<Session>,
    table: Arc<SessionTable>,
    mut relink: tokio::sync::watch::Receiver<u64>,
    shutdown: CancellationToken,
    detach_on_shutdown: bool,
) {
    let path = format!("/api/v1/ws/runner/session/{}", session.id);
    let mut backoff = Backoff::default();
    loop {
        let attempt = async {
            // Losses of the control connection before this dial are no news to it.
            relink.borrow_and_update();
            let socket = hq.dial(&path).await?;
            backoff.reset();
            let detach = async {
                if detach_on_shutdown {
                    shutdown.cancelled().await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                pumped = pump(socket, runner_id, &session) => pumped.map_err(|e| DialError::Unreachable(format!("{e:#}"))),
                () = detach => Ok(Ended::Detached),
                // A closed sender (the runner is gone) disables this arm.
                Ok(()) = relink.changed() => {
                    tracing::info!(session = %session.id, "the control connection was lost; redialing this one too");
                    Ok(Ended::Interrupted)
                }
            }
        };
        let ended = attempt.await;
        // Disconnected. An HQ that acknowledges what it stores gets everything after its last
        // ack again, wherever the runner reconnects (the ring keeps it; what does not fit waits
        // in the session host's spool). Otherwise the ring may drop old bytes again.
        if !session.holds_for_acks() {
            session.mark_sent(None);
        }
        match ended {
            Ok(Ended::Delivered) => {
                session.set_outcome(Outcome::Recorded);
                break;
            }
            Ok(Ended::GivenUp) => {
                session.set_outcome(Outcome::GivenUp);
                break;
            }
            Ok(Ended::Detached) => return,
            Ok(Ended::Interrupted) => tracing::debug!(session = %session.id, "data connection interrupted"),
            Err(e) => tracing::debug!(session = %session.id, error = %e, "data connection failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.cancelled() => {
                // Whoever waits for HQ to record the end must stop waiting.
                session.set_outcome(Outcome::Undelivered);
                return;
            }
        }
    }
    table.remove(session.id);
}

/// Says which session this connection carries and what output the ring holds; HQ answers with
/// the offset it wants output from (`ws::runner_data::resume` on HQ's side), and whether it
/// acknowledges what it stores.
async fn open(socket: &mut HqSocket, runner_id: Uuid, session: &Session) -> anyhow::Result<Option<Resume>> {
    let (start, end) = session.output_range();
    let open = OpenData { runner_id, session_id: session.id, start, end, acks: true };
    socket.send(data_frame(&DataUp::Open(open))).await?;
    let resume =
        tokio::time::timeout(RESUME_TIMEOUT, read_resume(socket)).await.context("no resume in time")??;
    let Some(resume) = resume else { return Ok(None) };
    // An adopted session's output starts where HQ wants it (its host holds it from `start`).
    session.attach_from(resume.from);
    Ok(Some(Resume { from: resume.from.min(end), ..resume }))
}

/// Output from HQ's offset on, orders from HQ to the PTY, the exit once the output is all sent.
async fn pump(mut socket: HqSocket, runner_id: Uuid, session: &Session) -> anyhow::Result<Ended> {
    let Some(Resume { from: mut offset, mut acks }) = open(&mut socket, runner_id, session).await? else {
        tracing::info!(session = %session.id, "HQ has ended this session; ending its process");
        let _ = session.orders().send(PtyOrder::Kill).await;
        return Ok(Ended::GivenUp);
    };
    session.set_holds_for_acks(acks);
    // With acks, output stays in the ring until HQ has stored it (a replica that dies before
    // storing it gets it again from whichever replica the runner reaches next); without, until
    // it is sent.
    session.mark_sent(Some(offset));
    let mut progress = session.subscribe();
    let mut reports = session.subscribe_activity();
    // A report made while disconnected goes out now; one already sent does not.
    reports.mark_changed();
    // Usage is a total: sending it again after a reconnect is harmless, and HQ may have missed it.
    let mut usage = session.subscribe_usage();
    usage.mark_changed();
    let mut exit_sent = false;
    loop {
        loop {
            match session.read_output(offset, MAX_OUTPUT_FRAME) {
                Read::Data(bytes) => {
                    offset += bytes.len() as u64;
                    socket.send(Message::Binary(bytes)).await?;
                    if !acks {
                        session.mark_sent(Some(offset));
                    }
                }
                Read::Gap { from, to } => {
                    tracing::warn!(session = %session.id, from, to, "output outgrew the buffer during the outage");
                    socket.send(data_frame(&DataUp::Gap(Gap { from, to }))).await?;
                    offset = to;
                    if !acks {
                        session.mark_sent(Some(offset));
                    }
                }
                Read::CaughtUp => break,
            }
        }
        let now = progress.borrow_and_update().clone();
        if now.end > offset {
            continue;
        }
        if let (Some(exit), false) = (now.exit, exit_sent) {
            socket.send(data_frame(&DataUp::Exit(exit))).await?;
            exit_sent = true;
        }
        if let (Some(reason), false) = (now.lost, exit_sent) {
            // Its host went without the exit: HQ marks the session lost, and that is its end.
            socket.send(data_frame(&DataUp::Lost(LostReport { reason }))).await?;
            exit_sent = true;
        }
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    bail!("session dropped");
                }
            }
            changed = reports.changed() => {
                if changed.is_err() {
                    bail!("session dropped");
                }
                reports.borrow_and_update();
                if let Some(activity) = session.take_unsent_report() {
                    socket.send(data_frame(&DataUp::Activity(ActivityReport { activity }))).await?;
                }
            }
            changed = usage.changed() => {
                if changed.is_err() {
                    bail!("session dropped");
                }
                let total = usage.borrow_and_update().clone();
                if let Some(total) = total {
                    socket.send(data_frame(&DataUp::Usage(total))).await?;
                }
            }
            frame = socket.next() => match frame {
                Some(Ok(Message::Binary(keys))) => order(session, PtyOrder::Input(keys)).await,
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<DataDown>(text.as_str()) {
                    Ok(DataDown::Resize(size)) if size.is_valid() => order(session, PtyOrder::Resize(size)).await,
                    Ok(DataDown::Kill) => order(session, PtyOrder::Kill).await,
                    Ok(DataDown::Ended(_)) => {
                        order(session, PtyOrder::Kill).await;
                        return Ok(Ended::GivenUp);
                    }
                    // `u64::MAX`: HQ will store nothing more (its log stopped), so output is
                    // let go once sent, as without acks.
                    Ok(DataDown::Ack(ack)) if acks && ack.offset == u64::MAX => {
                        acks = false;
                        session.set_holds_for_acks(false);
                        session.mark_sent(Some(offset));
                    }
                    // Never past what was sent: an ack of more would be HQ's mistake.
                    Ok(DataDown::Ack(ack)) if acks => session.mark_sent(Some(ack.offset.min(offset))),
                    Ok(other) => tracing::warn!(?other, "ignoring an unexpected data frame"),
                    Err(e) => tracing::warn!(error = %e, "ignoring a bad data frame"),
                },
                Some(Ok(Message::Close(_))) | None => {
                    return Ok(if exit_sent { Ended::Delivered } else { Ended::Interrupted });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("data connection"),
            },
        }
    }
}

/// HQ's answer to `open`: the offset it wants output from, or `None` when HQ has ended the
/// session already.
async fn read_resume(socket: &mut HqSocket) -> anyhow::Result<Option<Resume>> {
    loop {
        match socket.next().await.context("HQ closed before resume")?? {
            Message::Text(text) => match serde_json::from_str(text.as_str()).context("bad resume frame")? {
                DataDown::Resume(resume) => return Ok(Some(resume)),
                DataDown::Ended(_) => return Ok(None),
                other => bail!("expected resume, got {other:?}"),
            },
            Message::Close(frame) => bail!("HQ refused the data connection: {frame:?}"),
            _ => continue,
        }
    }
}

async fn order(session: &Session, order: PtyOrder) {
    // Fails only once the PTY task is gone, when input no longer matters.
    let _ = session.orders().send(order).await;
}
