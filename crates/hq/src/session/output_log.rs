//! A session's output on disk: the source of truth for offsets once bytes leave the in-memory ring.
//!
//! `sessions/<id>.out` holds the raw bytes (file position = stream offset); `sessions/<id>.timing`
//! is a small text index, one [`TimingLine`] per output write and per resize. `/recording` renders
//! asciicast v2 from the two (asciicast holds UTF-8 text, so it cannot be the byte-exact store).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use agentrelay_protocol::TermSize;
use anyhow::Context;
use bytes::Bytes;
use uuid::Uuid;

use super::timing::TimingLine;
use crate::lock;

/// The on-disk output of one session.
pub struct OutputLog {
    out_path: PathBuf,
    timing_path: PathBuf,
    /// Open from the first write until the session ends; readers of a finished session open the
    /// output file for each read, so thousands of stored sessions cost no file handles.
    files: Mutex<Option<Arc<Files>>>,
    /// Bytes safely in the output file; readers never read past it.
    len: AtomicU64,
    /// Session start, in this process's clock, for timing lines.
    epoch: Instant,
    /// Milliseconds already elapsed at `epoch` (a restored session keeps its timeline).
    epoch_ms: u64,
}

/// The two open files.
struct Files {
    /// Opened for appending by the writer, and for positional reads by viewers.
    out: File,
    timing: Mutex<File>,
}

impl OutputLog {
    /// The log of session `id` under `dir`; its files are opened (and created) on first use.
    pub fn open(dir: &Path, id: Uuid, elapsed_ms: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let out_path = dir.join(format!("{id}.out"));
        let timing_path = dir.join(format!("{id}.timing"));
        let len = match std::fs::metadata(&out_path) {
            Ok(metadata) => metadata.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", out_path.display())),
        };
        Ok(Self {
            out_path,
            timing_path,
            files: Mutex::new(None),
            len: AtomicU64::new(len),
            epoch: Instant::now(),
            epoch_ms: elapsed_ms,
        })
    }

    /// The open files, opening them first if needed (for writing).
    fn files(&self) -> anyhow::Result<Arc<Files>> {
        let mut files = lock(&self.files);
        if let Some(open) = files.as_ref() {
            return Ok(open.clone());
        }
        let open = |path: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))
        };
        let opened =
            Arc::new(Files { out: open(&self.out_path)?, timing: Mutex::new(open(&self.timing_path)?) });
        *files = Some(opened.clone());
        Ok(opened)
    }

    /// Lets the file handles go once the session has ended and all of its output is written.
    pub fn close(&self) {
        lock(&self.files).take();
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
        let files = self.files()?;
        (&files.out).write_all(data).with_context(|| format!("writing {}", self.out_path.display()))?;
        let end = self.len.fetch_add(data.len() as u64, Ordering::AcqRel) + data.len() as u64;
        self.timing_line(&files, TimingLine::Output { end, ms: self.elapsed_ms() })
    }

    /// Records a resize for the recording. Blocking, but tiny.
    pub fn note_resize(&self, size: TermSize) -> anyhow::Result<()> {
        let files = self.files()?;
        let TermSize { rows, cols } = size;
        self.timing_line(&files, TimingLine::Resize { rows, cols, ms: self.elapsed_ms() })
    }

    fn timing_line(&self, files: &Files, line: TimingLine) -> anyhow::Result<()> {
        let mut timing = lock(&files.timing);
        write!(timing, "{line}").with_context(|| format!("writing {}", self.timing_path.display()))
    }

    /// Up to `max` bytes from `offset`, if the log holds any there. Blocking: call off the runtime.
    pub fn read(&self, offset: u64, max: usize) -> anyhow::Result<Option<Bytes>> {
        let len = self.len();
        if offset >= len {
            return Ok(None);
        }
        let want = (len - offset).min(max as u64) as usize;
        let mut buf = vec![0u8; want];
        let open = lock(&self.files).clone();
        let read = match &open {
            Some(files) => files.out.read_exact_at(&mut buf, offset),
            None => File::open(&self.out_path).and_then(|file| file.read_exact_at(&mut buf, offset)),
        };
        read.with_context(|| format!("reading {}", self.out_path.display()))?;
        Ok(Some(Bytes::from(buf)))
    }

    /// Syncs both files to disk, if they were opened.
    pub fn sync(&self) -> anyhow::Result<()> {
        let Some(files) = lock(&self.files).clone() else { return Ok(()) };
        files.out.sync_data()?;
        lock(&files.timing).sync_data()?;
        Ok(())
    }

    /// The last size recorded in the timing index (the PTY's current size).
    pub fn last_size(&self) -> Option<TermSize> {
        let timing = std::fs::read_to_string(&self.timing_path).ok()?;
        timing.lines().rev().find_map(|line| match TimingLine::parse(line)? {
            TimingLine::Resize { rows, cols, .. } => Some(TermSize { rows, cols }),
            TimingLine::Output { .. } => None,
        })
    }

    /// Deletes the output and timing files (retention).
    pub fn remove(&self) -> anyhow::Result<()> {
        self.close();
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
        log.note_resize(TermSize { rows: 40, cols: 120 }).expect("resize");
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

    #[test]
    fn a_stored_log_holds_no_descriptor_until_read_and_lets_go_when_closed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = Uuid::now_v7();
        let fresh = OutputLog::open(dir.path(), id, 0).expect("open");
        assert!(!fresh.paths().0.exists(), "nothing is created before the first byte");
        assert_eq!(fresh.read(0, 10).expect("read"), None);
        fresh.append(b"kept").expect("append");
        fresh.close();
        let stored = OutputLog::open(dir.path(), id, 0).expect("reopen");
        assert_eq!(stored.read(1, 10).expect("read").as_deref(), Some(&b"ept"[..]));
        assert!(lock(&stored.files).is_none(), "a read keeps nothing open");
        assert_eq!(stored.len(), 4);
        stored.append(b"!").expect("append");
        assert!(lock(&stored.files).is_some(), "the writer keeps its files");
        stored.close();
        assert!(lock(&stored.files).is_none());
        assert_eq!(stored.read(0, 10).expect("read").as_deref(), Some(&b"kept!"[..]));
    }
}
