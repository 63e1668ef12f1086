//! A session's output stream: pushed into the ring by the data connection, read by viewers from
//! the ring or (when older) the log, and copied to the log by [`Session::persist`], which paces
//! the runner when the disk falls behind.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use agentrelay_ring::Read;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::Session;
use super::output_log::OutputLog;
use crate::lock;

/// Largest write to the output log.
const PERSIST_CHUNK: usize = 256 * 1024;

impl Session {
    /// Appends output from the runner and wakes viewers; output means `working`.
    pub fn push_output(&self, data: Bytes) {
        let end = {
            let mut ring = lock(&self.output);
            ring.push(data);
            ring.end()
        };
        self.progress.send_modify(|p| p.end = end);
        if !self.working.load(Ordering::Relaxed) {
            self.note_output_activity();
        }
    }

    /// Waits while output not yet in the log fills the ring: the disk sets the pace, and the
    /// runner's buffer absorbs the difference. Returns at once when there is room.
    pub async fn wait_for_room(&self) {
        // The common case, on every output frame: room already, no subscription needed.
        if !lock(&self.output).is_over_capacity() {
            return;
        }
        let mut persisted = self.persisted.subscribe();
        while lock(&self.output).is_over_capacity() {
            if persisted.changed().await.is_err() {
                return;
            }
        }
    }

    /// Continues the stream at `offset` after bytes the runner could no longer hold.
    pub fn skip_output_to(&self, offset: u64) {
        let end = {
            let mut ring = lock(&self.output);
            ring.skip_to(offset);
            ring.end()
        };
        self.progress.send_modify(|p| p.end = end);
    }

    /// The first offset HQ does not hold yet.
    pub fn output_end(&self) -> u64 {
        lock(&self.output).end()
    }

    /// The oldest output offset HQ can still serve (0 whenever the log holds the start).
    pub fn output_start(&self) -> u64 {
        if self.log.is_some() || self.stored.is_some() { 0 } else { lock(&self.output).start() }
    }

    /// Whether the output has outgrown the in-memory ring: past that, a new viewer gets a
    /// snapshot rather than a replay of everything.
    pub fn is_long(&self) -> bool {
        let ring = lock(&self.output);
        ring.end() > ring.capacity() as u64
    }

    /// Up to `max` bytes of output from `offset`, from the ring or, when older, from the log.
    pub async fn read_output(&self, offset: u64, max: usize) -> Read {
        let read = self.read_ring(offset, max);
        if let Some(stored) = &self.stored {
            // In a cluster the ring may not (or not yet) hold what is stored in PostgreSQL.
            return match read {
                Read::Data(_) => read,
                Read::CaughtUp if offset >= self.progress.borrow().end => read,
                _ => self.read_stored(stored, offset, max).await,
            };
        }
        let (Read::Gap { from, to }, Some(log)) = (&read, &self.log) else { return read };
        if *from >= log.len() {
            return read;
        }
        let (log, from, want) = (log.clone(), *from, max.min((to - from) as usize));
        match tokio::task::spawn_blocking(move || log.read(from, want)).await {
            Ok(Ok(Some(bytes))) => Read::Data(bytes),
            Ok(Ok(None)) => read,
            Ok(Err(error)) => {
                tracing::error!(session = %self.id, error = format!("{error:#}"), "reading the output log");
                read
            }
            Err(_) => read,
        }
    }

    /// Up to `max` bytes from the in-memory ring only.
    fn read_ring(&self, offset: u64, max: usize) -> Read {
        lock(&self.output).read(offset, max)
    }

    /// The on-disk output, if any.
    pub fn log(&self) -> Option<&Arc<OutputLog>> {
        self.log.as_ref()
    }

    /// The offset up to which output is stored (`u64::MAX` once the log has stopped: nothing
    /// more will be, and nothing should wait for it).
    pub fn subscribe_stored(&self) -> tokio::sync::watch::Receiver<u64> {
        self.persisted.subscribe()
    }

    /// Waits (at most `limit`) until the log holds the output received so far: a recording asked
    /// for the moment a session ends must not miss its last lines.
    pub async fn logged(&self, limit: std::time::Duration) {
        let end = self.output_end();
        let mut persisted = self.persisted.subscribe();
        let _ = tokio::time::timeout(limit, persisted.wait_for(|at| *at >= end)).await;
    }

    /// Lets the ring drop output before `offset` (now in the log), or everything with `None`.
    fn release_pin(&self, offset: Option<u64>) {
        lock(&self.output).pin_at(offset);
        self.persisted.send_replace(offset.unwrap_or(u64::MAX));
    }

    /// The output log stopped at `offset`: says so on the session (an event for dashboards, an
    /// error frame for viewers) and lets the ring go, so the live stream never waits on a disk.
    fn stop_log(&self, offset: u64, reason: String) {
        let message = format!("output log stopped at byte {offset}: {reason}");
        tracing::error!(session = %self.id, offset, reason, "output log stopped");
        if let Some(log) = &self.log {
            log.close();
        }
        self.release_pin(None);
        lock(&self.lifecycle).log_error = Some(message);
        self.progress.send_modify(|p| p.log_stopped = true);
        self.publish();
    }

    /// Copies output from the ring to the log as it arrives, until the session has ended and all
    /// of it is on disk (or HQ shuts down, after a last drain). Then the ring is released: the log
    /// serves every reader of a finished session.
    pub async fn persist(self: Arc<Self>, shutdown: CancellationToken) {
        // In a cluster the replica holding the runner stores output (`persist_stored`).
        let Some(log) = self.log.clone() else { return };
        let mut progress = self.subscribe();
        let mut offset = log.len();
        let mut stopping = false;
        loop {
            loop {
                match self.read_ring(offset, PERSIST_CHUNK) {
                    Read::Data(bytes) => {
                        let len = bytes.len() as u64;
                        let writer = log.clone();
                        let written = tokio::task::spawn_blocking(move || writer.append(&bytes)).await;
                        if let Ok(Err(error)) | Err(error) = written.map_err(anyhow::Error::from) {
                            // A full or failing disk stops the log, never the live pipe.
                            self.stop_log(offset, format!("{error:#}"));
                            return;
                        }
                        offset += len;
                        self.release_pin(Some(offset));
                    }
                    Read::Gap { from, to } => {
                        // Only after an upstream gap (the runner lost output): the log ends here.
                        self.stop_log(from, format!("the runner lost output from byte {from} to {to}"));
                        return;
                    }
                    Read::CaughtUp => break,
                }
            }
            let now = *progress.borrow_and_update();
            if now.end > offset {
                continue;
            }
            if now.status.is_final() || stopping {
                let syncer = log.clone();
                let finished = now.status.is_final();
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = syncer.sync();
                    if finished {
                        syncer.close();
                    }
                })
                .await;
                if finished {
                    lock(&self.output).shrink_to(1);
                }
                return;
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return },
                _ = shutdown.cancelled() => stopping = true,
            }
        }
    }
}
