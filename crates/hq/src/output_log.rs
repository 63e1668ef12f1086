//! A session's output on disk: the source of truth for offsets once bytes leave the in-memory ring.
//!
//! `sessions/<id>.out` holds the raw bytes (file position = stream offset); `sessions/<id>.timing`
//! is a small text index, one line per event: `o <end offset> <ms since start>` after output,
//! `r <rows> <cols> <ms>` for a resize. `/recording` renders asciicast v2 from the two
//! (asciicast holds UTF-8 text, so it cannot be the byte-exact store itself).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use uuid::Uuid;

/// The on-disk output of one session.
pub struct OutputLog {
    out_path: PathBuf,
    timing_path: PathBuf,
    /// Opened for appending by the writer, and for positional reads by viewers.
    out: File,
    timing: Mutex<File>,
    /// Bytes safely in `out`; readers never read past it.
    len: AtomicU64,
    /// Session start, in this process's clock, for timing lines.
    epoch: Instant,
    /// Milliseconds already elapsed at `epoch` (a restored session keeps its timeline).
    epoch_ms: u64,
}

impl OutputLog {
    /// Opens (or creates) the log of session `id` under `dir`.
    pub fn open(dir: &Path, id: Uuid, elapsed_ms: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let out_path = dir.join(format!("{id}.out"));
        let timing_path = dir.join(format!("{id}.timing"));
        let open = |path: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))
        };
        let out = open(&out_path)?;
        let timing = open(&timing_path)?;
        let len = out.metadata().with_context(|| format!("cannot stat {}", out_path.display()))?.len();
        Ok(Self {
            out_path,
            timing_path,
            out,
            timing: Mutex::new(timing),
            len: AtomicU64::new(len),
            epoch: Instant::now(),
            epoch_ms: elapsed_ms,
        })
    }

    /// Bytes on disk: the offset the next append lands at.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn elapsed_ms(&self) -> u64 {
        self.epoch_ms + self.epoch.elapsed().as_millis() as u64
    }

    /// Appends output that starts exactly at [`OutputLog::len`]. Blocking: call off the runtime.
    pub fn append(&self, data: &[u8]) -> anyhow::Result<()> {
        (&self.out).write_all(data).with_context(|| format!("writing {}", self.out_path.display()))?;
        let end = self.len.fetch_add(data.len() as u64, Ordering::AcqRel) + data.len() as u64;
        self.timing_line(&format!("o {end} {}\n", self.elapsed_ms()))
    }

    /// Records a resize for the recording. Blocking, but tiny.
    pub fn note_resize(&self, rows: u16, cols: u16) -> anyhow::Result<()> {
        self.timing_line(&format!("r {rows} {cols} {}\n", self.elapsed_ms()))
    }

    fn timing_line(&self, line: &str) -> anyhow::Result<()> {
        let mut timing = self.timing.lock().unwrap_or_else(|p| p.into_inner());
        timing.write_all(line.as_bytes()).with_context(|| format!("writing {}", self.timing_path.display()))
    }

    /// Up to `max` bytes from `offset`, if the log holds any there. Blocking: call off the runtime.
    pub fn read(&self, offset: u64, max: usize) -> anyhow::Result<Option<Bytes>> {
        let len = self.len();
        if offset >= len {
            return Ok(None);
        }
        let want = (len - offset).min(max as u64) as usize;
        let mut buf = vec![0u8; want];
        self.out
            .read_exact_at(&mut buf, offset)
            .with_context(|| format!("reading {}", self.out_path.display()))?;
        Ok(Some(Bytes::from(buf)))
    }

    /// Syncs both files to disk.
    pub fn sync(&self) -> anyhow::Result<()> {
        self.out.sync_data()?;
        self.timing.lock().unwrap_or_else(|p| p.into_inner()).sync_data()?;
        Ok(())
    }

    /// The last size recorded in the timing index (the PTY's current size).
    pub fn last_size(&self) -> Option<(u16, u16)> {
        let timing = std::fs::read_to_string(&self.timing_path).ok()?;
        timing.lines().rev().find_map(|line| {
            let mut parts = line.split_ascii_whitespace();
            (parts.next()? == "r").then_some(())?;
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
    }

    /// Deletes the output and timing files (retention).
    pub fn remove(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        let (out, timing) = self.paths();
        for path in [out, timing] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("deleting {}", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Paths of the raw output and the timing index.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.out_path, &self.timing_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_readable_by_offset_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = Uuid::now_v7();
        let log = OutputLog::open(dir.path(), id, 0).expect("open");
        log.append(b"hello ").expect("append");
        log.note_resize(40, 120).expect("resize");
        log.append(b"world").expect("append");
        assert_eq!(log.read(3, 100).expect("read").as_deref(), Some(&b"lo world"[..]));
        assert_eq!(log.read(0, 4).expect("read").as_deref(), Some(&b"hell"[..]));
        assert_eq!(log.read(11, 4).expect("read"), None);
        drop(log);
        let again = OutputLog::open(dir.path(), id, 0).expect("reopen");
        assert_eq!(again.len(), 11);
        let timing = std::fs::read_to_string(again.paths().1).expect("timing");
        let kinds: Vec<&str> = timing.lines().map(|l| &l[..1]).collect();
        assert_eq!(kinds, ["o", "r", "o"]);
        assert!(timing.lines().next().expect("first line").starts_with("o 6 "));
    }
}
