//! A session in a cluster (`--database-url`): its output is stored in PostgreSQL
//! ([`StoredLog`]) rather than in a file, by whichever replica holds its runner's data
//! connection ([`Session::persist_stored`], under that replica's lease). The other replicas keep a
//! copy of the session too: its state from the change feed ([`Session::apply_remote`]), its
//! live output from the bus ([`Session::push_at`], [`Session::note_stored`]), and whatever
//! their ring no longer or not yet holds from PostgreSQL ([`Session::read_output`]).

use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::{ExitStatus, Session as SessionView, SessionStatus};
use agentrelay_ring::Read;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::{Session, ToRunner};
use crate::cluster::stored::{AppendError, StoredLog, StoredRead};
use crate::lock;

/// Largest append to PostgreSQL.
const STORE_CHUNK: usize = 1024 * 1024;
/// How often a reader waiting for output to be stored asks PostgreSQL itself (in case the
/// holder's notices do not arrive: a bus outage).
const STORED_POLL: Duration = Duration::from_millis(500);

/// How an ownership of a session's output ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stepped {
    /// The session ended and all its output is stored.
    Finished,
    /// Another replica took the lease, or this one gave it up: it stops appending.
    Back,
}

impl Session {
    /// The stored output, in a cluster.
    pub fn stored(&self) -> Option<&Arc<StoredLog>> {
        self.stored.as_ref()
    }

    /// Output at `offset` from another replica (the live bytes of the bus): what this replica
    /// already holds is skipped, and a jump past its end starts the ring over there (the bytes
    /// between are read from PostgreSQL).
    pub fn push_at(&self, offset: u64, data: Bytes) {
        let end = {
            let mut ring = lock(&self.output);
            let end = ring.end();
            let len = data.len() as u64;
            if offset + len <= end {
                return;
            }
            if offset > end {
                ring.skip_to(offset);
                ring.push(data);
            } else {
                ring.push(data.slice((end - offset) as usize..));
            }
            ring.end()
        };
        self.progress.send_modify(|p| p.end = p.end.max(end));
    }

    /// Output up to `end` is stored (the holder said so, or a read found it).
    pub fn note_stored(&self, end: u64) {
        let Some(stored) = &self.stored else { return };
        if stored.note_end(end) {
            self.persisted.send_modify(|at| *at = (*at).max(end));
            self.progress.send_modify(|p| p.end = p.end.max(end));
        }
    }

    /// This replica takes the session's output over at `from` (where the stored output ends):
    /// the ring starts there, pinned until stored, and the runner sends from there.
    pub fn take_output_at(&self, from: u64) {
        {
            let mut ring = lock(&self.output);
            let capacity = ring.capacity();
            *ring = agentrelay_ring::OutputRing::starting_at(from, capacity);
            ring.pin_at(Some(from));
        }
        if let Some(stored) = &self.stored {
            stored.note_end(from);
        }
        self.persisted.send_replace(from);
        self.progress.send_modify(|p| p.end = from);
    }

    /// Copies output from the ring to PostgreSQL under lease `fence`, until the session has
    /// ended and everything is stored, another replica takes the lease, or `stop` (this
    /// replica lost the data connection to a newer one, or shuts down).
    pub async fn persist_stored(self: Arc<Self>, fence: i64, stop: CancellationToken) -> Stepped {
        let Some(stored) = self.stored.clone() else { return Stepped::Back };
        let mut progress = self.subscribe();
        let mut offset = *self.persisted.borrow();
        loop {
            loop {
                let read = lock(&self.output).read(offset, STORE_CHUNK);
                match read {
                    Read::Data(bytes) => {
                        let len = bytes.len() as u64;
                        let appended = tokio::select! {
                            appended = stored.append(fence, offset, bytes) => appended,
                            () = stop.cancelled() => return Stepped::Back,
                        };
                        match appended {
                            Ok(()) => {
                                offset += len;
                                lock(&self.output).pin_at(Some(offset));
                                self.persisted.send_replace(offset);
                            }
                            Err(AppendError::Fenced(_)) => {
                                tracing::info!(session = %self.id, "another replica holds this session's output now");
                                return Stepped::Back;
                            }
                            Err(AppendError::Stopped) => return Stepped::Back,
                        }
                    }
                    // A gap the runner reported: the stored output has a hole there too.
                    Read::Gap { to, .. } => {
                        offset = to;
                        lock(&self.output).pin_at(Some(offset));
                        self.persisted.send_replace(offset);
                    }
                    Read::CaughtUp => break,
                }
            }
            let now = *progress.borrow_and_update();
            if now.status.is_final() {
                lock(&self.output).shrink_to(1);
                // Everything this replica received is stored. If the session's output goes
                // further, another replica stored the rest and recorded the end: this one held a
                // stale lease it never wrote under again.
                return if now.end > offset { Stepped::Back } else { Stepped::Finished };
            }
            // Pushed since the ring was read (the change is marked seen already). Not `now.end`:
            // another replica's notices move that, and this replica has nothing of it to store.
            if lock(&self.output).end() > offset {
                continue;
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return Stepped::Back },
                () = stop.cancelled() => return Stepped::Back,
            }
        }
    }

    /// Waits until everything received so far is stored (before an exit is recorded, so a
    /// replica that dies right after loses nothing another could not read).
    pub async fn stored_all(&self) {
        let end = self.output_end();
        let mut persisted = self.persisted.subscribe();
        let _ = persisted.wait_for(|at| *at >= end).await;
    }

    /// Output from the stored copy when the ring has none at `offset`: waits while it is not
    /// stored yet (and not in the ring either), unless the session has ended with less.
    pub(super) async fn read_stored(&self, stored: &StoredLog, offset: u64, max: usize) -> Read {
        let mut persisted = self.persisted.subscribe();
        let mut progress = self.subscribe();
        loop {
            match stored.read(offset, max).await {
                Ok(StoredRead::Data(bytes)) => return Read::Data(bytes),
                Ok(StoredRead::Gap { from, to }) => return Read::Gap { from, to },
                Ok(StoredRead::NotYet) => {}
                Err(error) => {
                    tracing::warn!(session = %self.id, error = format!("{error:#}"), "reading stored output")
                }
            }
            // The live copy may have it by now.
            if let read @ Read::Data(_) = lock(&self.output).read(offset, max) {
                return read;
            }
            let now = *progress.borrow_and_update();
            if now.status.is_final() && !self.is_owned_here() {
                // Ended: what is not stored by now never will be.
                let end = stored.refresh_end().await.unwrap_or(stored.len());
                if offset >= end {
                    return if now.end > offset {
                        Read::Gap { from: offset, to: now.end }
                    } else {
                        Read::CaughtUp
                    };
                }
                continue;
            }
            tokio::select! {
                _ = persisted.changed() => {}
                _ = progress.changed() => {}
                () = tokio::time::sleep(STORED_POLL) => {}
            }
        }
    }

    /// Whether this replica stores the session's output now.
    pub fn is_owned_here(&self) -> bool {
        self.owned.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks whether this replica stores the session's output now.
    pub fn set_owned_here(&self, owned: bool) {
        self.owned.store(owned, std::sync::atomic::Ordering::Release);
    }

    /// Takes in a change another replica made (from the change feed): the lifecycle only moves
    /// forward; name, activity, usage and workspace are the other replica's. Nothing is
    /// published again: every replica hears the feed itself.
    pub fn apply_remote(&self, view: &SessionView) {
        let moved = {
            let mut life = lock(&self.lifecycle);
            let moved = life.status != view.status && life.advance(view.status);
            if moved {
                life.ended_at = view.ended_at.or(life.ended_at);
                life.error = view.error.clone();
                if view.status == SessionStatus::Exited {
                    life.exit = Some(ExitStatus { code: view.exit_code, signal: view.signal.clone() });
                }
            }
            if view.log_error.is_some() {
                life.log_error = view.log_error.clone();
            }
            moved
        };
        *lock(&self.name) = view.name.clone();
        *lock(&self.usage) = view.usage.clone();
        *lock(&self.workspace) = view.workspace.clone();
        if moved && view.status.is_final() {
            self.retire_model();
            self.clear_activity();
            self.clear_queue();
        } else if !self.is_owned_here() {
            let activity = match (view.activity, view.activity_since, view.activity_source) {
                (Some(activity), Some(since), Some(source)) => {
                    Some(agentrelay_protocol::ActivityState { activity, since, source })
                }
                _ => None,
            };
            let changed = {
                let mut tracked = lock(&self.activity);
                let changed = tracked.current != activity;
                tracked.current = activity;
                changed
            };
            if changed {
                self.activity_watch.send_replace(activity);
            }
        }
        self.progress.send_if_modified(|p| {
            let before = *p;
            p.status = lock(&self.lifecycle).status;
            p.end = p.end.max(view.output_bytes);
            p.log_stopped = view.log_error.is_some();
            *p != before
        });
    }

    /// Input, resizes and kills that waited for a data connection on another replica: the
    /// forwarder hands back the one it could not deliver, to go first.
    pub fn carry_order(&self, order: ToRunner) {
        *lock(&self.carry) = Some(order);
    }

    /// The order the forwarder handed back, if any.
    pub fn take_carried(&self) -> Option<ToRunner> {
        lock(&self.carry).take()
    }

    /// A receiver that changes whenever a data connection on this replica wants the
    /// runner-bound queue (the forwarder gives it up then).
    pub fn subscribe_rx_wanted(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rx_wanted.subscribe()
    }
}

impl Session {
    /// The runner-bound queue if nobody holds it now (a forwarder's start).
    pub fn try_take_runner_rx(&self) -> Option<tokio::sync::mpsc::Receiver<ToRunner>> {
        lock(&self.to_runner_rx).take()
    }

    /// This replica no longer stores the output: its ring keeps recent output for viewers only.
    pub fn release_output_pin(&self) {
        lock(&self.output).pin_at(None);
    }

    /// Another replica's report of a workspace's changes.
    pub fn apply_remote_changes(&self, summary: agentrelay_protocol::workspace::ChangeSummary) {
        if let Some(workspace) = lock(&self.workspace).as_mut() {
            workspace.changes = Some(summary);
        }
    }
}

/// A session's output as two files (raw bytes, timing index) for `/log` and `/recording`: the
/// log's own files, or in a cluster a copy of the stored output in a temporary directory that
/// goes away with this value.
pub struct OutputFiles {
    /// The raw output.
    pub out: std::path::PathBuf,
    /// The timing index.
    pub timing: std::path::PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// Rows of stored output copied per query.
const EXPORT_CHUNK: usize = 4 * 1024 * 1024;

impl Session {
    /// The output as files, once everything received is written (`None`: there is no log).
    pub async fn output_files(&self) -> anyhow::Result<Option<OutputFiles>> {
        use anyhow::Context;
        if let Some(log) = &self.log {
            let (out, timing) = log.paths();
            return Ok(Some(OutputFiles { out: out.to_owned(), timing: timing.to_owned(), _temp: None }));
        }
        let Some(stored) = &self.stored else { return Ok(None) };
        let temp = tempfile::tempdir().context("a temporary directory for the stored output")?;
        let out = temp.path().join(format!("{}.out", self.id));
        let timing = temp.path().join(format!("{}.timing", self.id));
        let mut file = tokio::fs::File::create(&out).await.context("copying the stored output")?;
        let mut offset = 0;
        loop {
            match stored.read(offset, EXPORT_CHUNK).await? {
                StoredRead::Data(bytes) => {
                    offset += bytes.len() as u64;
                    tokio::io::AsyncWriteExt::write_all(&mut file, &bytes).await?;
                }
                // A hole the runner reported: the copy goes on after it, as the stream does.
                StoredRead::Gap { to, .. } => offset = to,
                StoredRead::NotYet => break,
            }
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        let mut lines = stored.timing().await?.join("\n");
        lines.push('\n');
        tokio::fs::write(&timing, lines).await.context("copying the timing index")?;
        Ok(Some(OutputFiles { out, timing, _temp: Some(temp) }))
    }
}
