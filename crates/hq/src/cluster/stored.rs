//! Session output stored in PostgreSQL, where every replica reads it: chunks by offset
//! (`output_chunks`), the timing lines recordings need (`output_timing`), and the lease that
//! lets exactly one replica append to a session's output (`stream_leases`).
//!
//! **The lease.** The replica a runner's data connection reaches takes the session's lease, which
//! bumps its fencing number. Every append names the fencing number it was made under and is
//! stored only if the lease still has it; the append reads the lease row `FOR SHARE`, so a
//! takeover waits for appends in flight and an append after a takeover finds the new number and
//! stores nothing. So after a partition, the old holder's appends fail and it steps back; two
//! replicas never both append to one session's output.
//!
//! **Group commit.** Appends from every session on this replica go through one [`Writer`] task:
//! whatever queued while the last transaction ran is written in the next one (one `INSERT` of
//! arrays), so PostgreSQL sees a transaction per batch, not per output chunk, and no output
//! frame waits for a database round trip (the ring holds it meanwhile).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::pg::Pg;

/// Largest batch of output one transaction writes.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A batch smaller than this waits up to [`LINGER`] for more before it is written.
const LINGER_BELOW: usize = 64 * 1024;
const LINGER: Duration = Duration::from_millis(5);
/// Chunks read per query.
const READ_ROWS: i64 = 64;

/// What a read of stored output found.
#[derive(Debug, PartialEq, Eq)]
pub enum StoredRead {
    /// Bytes from the offset asked for.
    Data(Bytes),
    /// `[from, to)` will never be stored (the runner lost it); output goes on at `to`.
    Gap {
        /// First missing offset.
        from: u64,
        /// Where output resumes.
        to: u64,
    },
    /// Nothing is stored at or after the offset yet.
    NotYet,
}

/// Why an append was not stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another replica has taken the session's lease: this one must stop appending.
    #[error("another replica took over the session's output (fence {0} is stale)")]
    Fenced(i64),
    /// The writer has stopped (HQ is shutting down).
    #[error("the output writer has stopped")]
    Stopped,
}

/// One append, as queued for the writer.
struct Append {
    session: Uuid,
    fence: i64,
    start: u64,
    data: Bytes,
    /// A timing line written with it (`o <end> <ms>`).
    timing: Option<String>,
    done: oneshot::Sender<Result<(), AppendError>>,
}

/// What the writer task is asked to do.
enum Job {
    Append(Append),
    /// A timing line on its own (a resize).
    Timing(Uuid, String),
}

/// The handle to this replica's output writer.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task; it ends once `stop` is cancelled and what was queued before is
    /// written (or every handle is dropped).
    pub fn start(
        pg: Arc<Pg>,
        stop: tokio_util::sync::CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let done = tokio::spawn(run(pg, rx, stop));
        (Self { tx }, done)
    }

    /// Stores `data` at `start` under lease `fence`; returns once it is committed.
    pub async fn append(
        &self,
        session: Uuid,
        fence: i64,
        start: u64,
        data: Bytes,
        timing: Option<String>,
    ) -> Result<(), AppendError> {
        let (done, result) = oneshot::channel();
        let job = Job::Append(Append { session, fence, start, data, timing, done });
        self.tx.send(job).map_err(|_| AppendError::Stopped)?;
        result.await.map_err(|_| AppendError::Stopped)?
    }

    /// Queues a timing line (a resize) for the session's recording.
    pub fn timing(&self, session: Uuid, line: String) {
        let _ = self.tx.send(Job::Timing(session, line));
    }
}

async fn run(pg: Arc<Pg>, mut rx: mpsc::UnboundedReceiver<Job>, stop: tokio_util::sync::CancellationToken) {
    let mut client: Option<tokio_postgres::Client> = None;
    loop {
        let first = if stop.is_cancelled() {
            // Stopping: what is queued still goes out, then the writer ends.
            match rx.try_recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
                () = stop.cancelled() => continue,
            }
        };
        let mut appends = Vec::new();
        let mut timings = Vec::new();
        let mut bytes = 0;
        let linger_until = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append(append) => {
                    bytes += append.data.len();
                    if let Some(line) = &append.timing {
                        timings.push((append.session, line.clone()));
                    }
                    appends.push(append);
                }
                Job::Timing(session, line) => timings.push((session, line)),
            }
            if bytes < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
            // Keystroke echoes and ticking agents: a moment's wait gathers many into one
            // transaction instead of a commit (and a disk flush) for each.
            if next.is_none() && bytes < LINGER_BELOW && !stop.is_cancelled() {
                next = tokio::time::timeout_at(linger_until, rx.recv()).await.ok().flatten();
            }
        }
        // Retried until PostgreSQL takes it: meanwhile the sessions' rings hold their output and
        // their runners slow down (their own buffers hold the rest).
        let mut delay = Duration::from_millis(100);
        let stored = loop {
            let connected = match client.take() {
                Some(c) if !c.is_closed() => Ok(c),
                _ => pg.connect().await,
            };
            match connected {
                Ok(mut c) => match write(&mut c, &appends, &timings).await {
                    Ok(stored) => {
                        client = Some(c);
                        break stored;
                    }
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "cannot store output; retrying")
                    }
                },
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "PostgreSQL is down; output waits")
                }
            }
            if stop.is_cancelled() && delay >= Duration::from_secs(2) {
                // Stopping while PostgreSQL is down: the runners still hold what is not stored.
                break std::collections::HashSet::new();
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        };
        for append in appends {
            let result = if stored.contains(&(append.session, append.start as i64)) {
                Ok(())
            } else {
                Err(AppendError::Fenced(append.fence))
            };
            let _ = append.done.send(result);
        }
    }
}

/// One transaction: the chunks whose lease still has their fencing number, and the timing lines.
/// Returns which chunks were stored.
async fn write(
    client: &mut tokio_postgres::Client,
    appends: &[Append],
    timings: &[(Uuid, String)],
) -> anyhow::Result<std::collections::HashSet<(Uuid, i64)>> {
    let tx = client.transaction().await?;
    let mut stored = std::collections::HashSet::new();
    if !appends.is_empty() {
        let sessions: Vec<Uuid> = appends.iter().map(|a| a.session).collect();
        let fences: Vec<i64> = appends.iter().map(|a| a.fence).collect();
        let starts: Vec<i64> = appends.iter().map(|a| a.start as i64).collect();
        let data: Vec<&[u8]> = appends.iter().map(|a| a.data.as_ref()).collect();
        let rows = tx
            .query(
                "WITH lease AS (
                     SELECT session_id, fence FROM stream_leases WHERE session_id = ANY($1) FOR SHARE
                 )
                 INSERT INTO output_chunks (session_id, start_offset, end_offset, data)
                 SELECT r.session_id, r.start_offset, r.start_offset + length(r.data), r.data
                 FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bytea[])
                      AS r(session_id, fence, start_offset, data)
                 JOIN lease l ON l.session_id = r.session_id AND l.fence = r.fence
                 ON CONFLICT DO NOTHING
                 RETURNING session_id, start_offset",
                &[&sessions, &fences, &starts, &data],
            )
            .await
            .context("storing output")?;
        stored = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    }
    if !timings.is_empty() {
        let sessions: Vec<Uuid> = timings.iter().map(|(s, _)| *s).collect();
        let lines: Vec<&str> = timings.iter().map(|(_, l)| l.as_str()).collect();
        tx.execute(
            "INSERT INTO output_timing (session_id, line) SELECT * FROM unnest($1::uuid[], $2::text[])",
            &[&sessions, &lines],
        )
        .await
        .context("storing timing lines")?;
    }
    tx.commit().await.context("committing output")?;
    Ok(stored)
}

/// Takes the lease on a session's output for `replica`: returns the new fencing number and
/// where its stored output ends (after every append of an earlier holder that got in).
pub async fn take_lease(pg: &Pg, session: Uuid, replica: &str) -> anyhow::Result<(i64, u64)> {
    let client = pg.get().await?;
    let fence: i64 = client
        .query_one(
            "INSERT INTO stream_leases (session_id, replica, fence, taken_at) VALUES ($1, $2, 1, now())
             ON CONFLICT (session_id) DO UPDATE SET replica = $2, fence = stream_leases.fence + 1,
               taken_at = now()
             RETURNING fence",
            &[&session, &replica],
        )
        .await
        .context("taking a session's lease")?
        .get(0);
    let end = stored_end(&client, session).await?;
    Ok((fence, end))
}

/// Where a session's stored output ends.
pub async fn stored_end(client: &tokio_postgres::Client, session: Uuid) -> anyhow::Result<u64> {
    let end: Option<i64> = client
        .query_one("SELECT MAX(end_offset) FROM output_chunks WHERE session_id = $1", &[&session])
        .await
        .context("reading where stored output ends")?
        .get(0);
    Ok(end.unwrap_or(0).max(0) as u64)
}

/// Up to `max` bytes of a session's stored output from `offset`.
pub async fn read(pg: &Pg, session: Uuid, offset: u64, max: usize) -> anyhow::Result<StoredRead> {
    let client = pg.get().await?;
    // Only the rows that overlap `[offset, offset + max)`, and only their bytes in it: a chunk
    // can hold a megabyte, and a viewer catching up reads 64 KiB at a time.
    let max_len = i32::try_from(max).unwrap_or(i32::MAX);
    let rows = client
        .query(
            "SELECT start_offset, substring(data FROM (GREATEST($2 - start_offset, 0) + 1)::int FOR $3)
             FROM output_chunks WHERE session_id = $1 AND end_offset > $2 AND start_offset < $4
             ORDER BY end_offset LIMIT $5",
            &[&session, &(offset as i64), &max_len, &(offset.saturating_add(max as u64) as i64), &READ_ROWS],
        )
        .await
        .context("reading stored output")?;
    let mut out = BytesMut::new();
    let mut at = offset;
    for row in &rows {
        // The bytes returned start at the row's start or at `offset`, whichever is later.
        let start = (row.get::<_, i64>(0).max(0) as u64).max(offset);
        let data: &[u8] = row.get(1);
        if start > at {
            if out.is_empty() {
                return Ok(StoredRead::Gap { from: offset, to: start });
            }
            break;
        }
        let skip = (at - start) as usize;
        let take = (data.len().saturating_sub(skip)).min(max - out.len());
        out.extend_from_slice(&data[skip..skip + take]);
        at += take as u64;
        if out.len() >= max {
            break;
        }
    }
    if out.is_empty() { Ok(StoredRead::NotYet) } else { Ok(StoredRead::Data(out.freeze())) }
}

/// A session's timing lines, oldest first.
pub async fn timing(pg: &Pg, session: Uuid) -> anyhow::Result<Vec<String>> {
    let client = pg.get().await?;
    let rows = client
        .query("SELECT line FROM output_timing WHERE session_id = $1 ORDER BY id", &[&session])
        .await
        .context("reading timing lines")?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Where every session's stored output ends, by session (a starting replica's picture).
pub async fn all_ends(pg: &Pg) -> anyhow::Result<std::collections::HashMap<Uuid, u64>> {
    let client = pg.get().await?;
    let rows = client
        .query("SELECT session_id, MAX(end_offset) FROM output_chunks GROUP BY session_id", &[])
        .await
        .context("reading where stored output ends")?;
    Ok(rows.iter().map(|row| (row.get(0), row.get::<_, i64>(1).max(0) as u64)).collect())
}

/// One session's stored output, as a replica sees it: where it ends as far as this replica knows
/// (from its own appends, or the holder's notices), reads, and appends under a lease.
pub struct StoredLog {
    /// The session.
    pub session: Uuid,
    pg: Arc<Pg>,
    writer: Writer,
    /// When the session started: timing lines count milliseconds from there.
    created_at: chrono::DateTime<chrono::Utc>,
    /// One past the last byte known to be stored.
    end: std::sync::atomic::AtomicU64,
}

impl StoredLog {
    /// The stored output of `session`, known to reach `end`.
    pub fn new(
        session: Uuid,
        pg: Arc<Pg>,
        writer: Writer,
        created_at: chrono::DateTime<chrono::Utc>,
        end: u64,
    ) -> Self {
        Self { session, pg, writer, created_at, end: end.into() }
    }

    /// One past the last byte known to be stored.
    pub fn len(&self) -> u64 {
        self.end.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether nothing is known to be stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Learns that output up to `end` is stored; whether that is news.
    pub fn note_end(&self, end: u64) -> bool {
        self.end.fetch_max(end, std::sync::atomic::Ordering::AcqRel) < end
    }

    fn elapsed_ms(&self) -> u64 {
        (chrono::Utc::now() - self.created_at).num_milliseconds().max(0) as u64
    }

    /// Stores `data` at `start` under lease `fence`.
    pub async fn append(&self, fence: i64, start: u64, data: Bytes) -> Result<(), AppendError> {
        let end = start + data.len() as u64;
        let line = crate::session::timing::TimingLine::Output { end, ms: self.elapsed_ms() };
        let timing = Some(line.to_string().trim_end().to_owned());
        self.writer.append(self.session, fence, start, data, timing).await?;
        self.note_end(end);
        Ok(())
    }

    /// Records a resize for the recording.
    pub fn note_resize(&self, size: agentrelay_protocol::TermSize) {
        let line = crate::session::timing::TimingLine::Resize {
            rows: size.rows,
            cols: size.cols,
            ms: self.elapsed_ms(),
        };
        self.writer.timing(self.session, line.to_string().trim_end().to_owned());
    }

    /// Up to `max` bytes from `offset`.
    pub async fn read(&self, offset: u64, max: usize) -> anyhow::Result<StoredRead> {
        let read = read(&self.pg, self.session, offset, max).await?;
        if let StoredRead::Data(bytes) = &read {
            self.note_end(offset + bytes.len() as u64);
        }
        Ok(read)
    }

    /// Asks PostgreSQL where the stored output ends now.
    pub async fn refresh_end(&self) -> anyhow::Result<u64> {
        let client = self.pg.get().await?;
        let end = stored_end(&client, self.session).await?;
        self.note_end(end);
        Ok(self.len())
    }

    /// The timing lines, oldest first.
    pub async fn timing(&self) -> anyhow::Result<Vec<String>> {
        timing(&self.pg, self.session).await
    }
}
