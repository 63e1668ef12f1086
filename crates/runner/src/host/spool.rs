//! A session's output on the host's disk, addressed by byte offset: a file used as a ring of
//! `--spool-size` bytes, so the host keeps the newest output while no runner reads it (and while
//! one catches up) and the oldest goes first.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The spool file and the offsets it holds.
pub struct Spool {
    path: PathBuf,
    file: File,
    capacity: u64,
    /// One past the newest byte.
    end: u64,
}

impl Spool {
    /// Creates (or empties) the spool at `path`, owner-only.
    pub fn create(path: &Path, capacity: u64) -> anyhow::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create the spool {}", path.display()))?;
        Ok(Self { path: path.to_owned(), file, capacity: capacity.max(1), end: 0 })
    }

    /// The oldest offset held.
    pub fn start(&self) -> u64 {
        self.end.saturating_sub(self.capacity)
    }

    /// One past the newest byte.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends output (the oldest bytes go once the spool is full).
    pub fn append(&mut self, mut data: &[u8]) -> anyhow::Result<()> {
        // Only the newest `capacity` bytes of a huge write can be kept.
        if data.len() as u64 > self.capacity {
            let skip = data.len() - self.capacity as usize;
            self.end += skip as u64;
            data = &data[skip..];
        }
        while !data.is_empty() {
            let at = self.end % self.capacity;
            let room = (self.capacity - at) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.file
                .write_all_at(now, at)
                .with_context(|| format!("writing the spool {}", self.path.display()))?;
            self.end += now.len() as u64;
            data = rest;
        }
        Ok(())
    }

    /// Up to `max` bytes from `offset`, which must be in `[start, end)`.
    pub fn read(&self, offset: u64, max: usize) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(offset >= self.start() && offset < self.end, "offset {offset} is not in the spool");
        let want = (self.end - offset).min(max as u64);
        let at = offset % self.capacity;
        let first = want.min(self.capacity - at) as usize;
        let mut buf = vec![0u8; want as usize];
        self.file.read_exact_at(&mut buf[..first], at).context("reading the spool")?;
        if first < buf.len() {
            self.file.read_exact_at(&mut buf[first..], 0).context("reading the spool")?;
        }
        Ok(buf)
    }

    /// Deletes the file.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_bytes_by_offset_across_the_wrap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spool = Spool::create(&dir.path().join("s"), 10).expect("create");
        spool.append(b"0123456").expect("append");
        assert_eq!((spool.start(), spool.end()), (0, 7));
        assert_eq!(spool.read(2, 100).expect("read"), b"23456");
        spool.append(b"789abc").expect("append");
        assert_eq!((spool.start(), spool.end()), (3, 13));
        assert_eq!(spool.read(3, 100).expect("read"), b"3456789abc", "read across the wrap");
        assert_eq!(spool.read(9, 2).expect("read"), b"9a");
        assert!(spool.read(2, 1).is_err(), "dropped");
        spool.append(b"ABCDEFGHIJKLMNOP").expect("append");
        assert_eq!((spool.start(), spool.end()), (19, 29));
        assert_eq!(spool.read(19, 100).expect("read"), b"GHIJKLMNOP");
    }
}
