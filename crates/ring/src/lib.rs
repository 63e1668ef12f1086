//! A bounded, offset-addressed buffer of a session's output.
//!
//! Every output byte has an offset (0, 1, 2, … since the session started). The ring keeps the most
//! recent `capacity` bytes as the chunks they arrived in (`Bytes`, so reads are reference-counted
//! slices, not copies) and answers "what comes after offset N" for each reader at its own pace.
//! HQ keeps one per session for its viewers; the runner keeps one per session so output survives
//! an HQ outage.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// A bounded output buffer addressed by absolute stream offsets.
#[derive(Debug)]
pub struct OutputRing {
    /// Chunks in order, each with the offset of its first byte.
    chunks: VecDeque<(u64, Bytes)>,
    /// Offset of the oldest byte still held.
    start: u64,
    /// Offset one past the newest byte.
    end: u64,
    capacity: usize,
    /// Bytes at or after this offset are kept even beyond capacity (not yet saved elsewhere).
    pin: Option<u64>,
}

/// What a reader finds at its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Bytes starting exactly at the requested offset.
    Data(Bytes),
    /// The requested offset was evicted; the oldest held byte is at `to`.
    Gap {
        /// The requested offset.
        from: u64,
        /// Where the held bytes begin.
        to: u64,
    },
    /// Nothing after the offset yet.
    CaughtUp,
}

impl OutputRing {
    /// An empty ring that holds at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self::starting_at(0, capacity)
    }

    /// An empty ring whose next byte will have offset `offset`.
    pub fn starting_at(offset: u64, capacity: usize) -> Self {
        Self { chunks: VecDeque::new(), start: offset, end: offset, capacity: capacity.max(1), pin: None }
    }

    /// Offset of the oldest byte held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset one past the newest byte (the total bytes ever pushed, plus any skip).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes currently held.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The most bytes this ring holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `data` at the end, evicting the oldest bytes beyond capacity.
    pub fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let len = data.len() as u64;
        self.chunks.push_back((self.end, data));
        self.end += len;
        self.evict();
    }

    /// Drops everything held and continues the stream at `offset` (after a gap upstream).
    pub fn skip_to(&mut self, offset: u64) {
        if offset > self.end {
            self.chunks.clear();
            self.start = offset;
            self.end = offset;
        }
    }

    /// Keeps every byte from `offset` on until the pin moves past it (or `None` lifts it), even
    /// if the ring grows beyond its capacity meanwhile; whoever pins must also throttle pushes
    /// (see [`OutputRing::is_over_capacity`]).
    pub fn pin_at(&mut self, offset: Option<u64>) {
        self.pin = offset;
        self.evict();
    }

    /// Whether pinned bytes hold the ring above its capacity.
    pub fn is_over_capacity(&self) -> bool {
        self.len() > self.capacity
    }

    /// Lowers the capacity (e.g. once a session has ended), evicting what no longer fits.
    pub fn shrink_to(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.evict();
        self.chunks.shrink_to_fit();
    }

    /// Up to `max` bytes starting at `offset`. A read never spans a gap.
    pub fn read(&self, offset: u64, max: usize) -> Read {
        if offset < self.start {
            return Read::Gap { from: offset, to: self.start };
        }
        if offset >= self.end {
            return Read::CaughtUp;
        }
        // Index of the chunk holding `offset`: the last chunk starting at or before it.
        let index = self.chunks.partition_point(|(chunk_start, _)| *chunk_start <= offset) - 1;
        let (chunk_start, chunk) = &self.chunks[index];
        let skip = (offset - chunk_start) as usize;
        let first = chunk.slice(skip..);
        if first.len() >= max {
            return Read::Data(first.slice(..max));
        }
        let next_is_small = self.chunks.get(index + 1).is_some_and(|(_, c)| first.len() + c.len() <= max);
        if !next_is_small {
            // Hand out the chunk itself: no copy.
            return Read::Data(first);
        }
        // Many small chunks (typical of interactive output): coalesce into one frame.
        let mut out = BytesMut::with_capacity(max.min((self.end - offset) as usize));
        out.extend_from_slice(&first);
        for (_, chunk) in self.chunks.iter().skip(index + 1) {
            let room = max - out.len();
            if room == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Read::Data(out.freeze())
    }

    fn evict(&mut self) {
        let keep_from = self.pin.unwrap_or(u64::MAX);
        while self.len() > self.capacity {
            let excess = ((self.len() - self.capacity) as u64).min(keep_from.saturating_sub(self.start));
            if excess == 0 {
                break;
            }
            let Some((chunk_start, chunk)) = self.chunks.front_mut() else { break };
            let chunk_len = chunk.len() as u64;
            if chunk_len <= excess {
                self.chunks.pop_front();
                self.start += chunk_len;
            } else {
                *chunk = chunk.slice(excess as usize..);
                *chunk_start += excess;
                self.start += excess;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(ring: &OutputRing, mut offset: u64, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Read::Data(bytes) = ring.read(offset, max) {
            assert!(!bytes.is_empty() && bytes.len() <= max);
            offset += bytes.len() as u64;
            out.extend_from_slice(&bytes);
        }
        out
    }

    #[test]
    fn reads_from_any_offset_and_reports_evicted_ones() {
        let mut ring = OutputRing::new(8);
        ring.push(Bytes::from_static(b"hello "));
        ring.push(Bytes::from_static(b"world"));
        assert_eq!((ring.start(), ring.end()), (3, 11));
        assert_eq!(ring.read(0, 100), Read::Gap { from: 0, to: 3 });
        assert_eq!(read_all(&ring, 3, 100), b"lo world");
        assert_eq!(read_all(&ring, 7, 2), b"orld");
        assert_eq!(ring.read(11, 100), Read::CaughtUp);
    }

    #[test]
    fn skip_to_continues_after_an_upstream_gap() {
        let mut ring = OutputRing::new(64);
        ring.push(Bytes::from_static(b"abc"));
        ring.skip_to(10);
        ring.push(Bytes::from_static(b"xyz"));
        assert_eq!(ring.read(3, 10), Read::Gap { from: 3, to: 10 });
        assert_eq!(read_all(&ring, 10, 10), b"xyz");
    }

    #[test]
    fn pinned_bytes_outlive_capacity_until_released() {
        let mut ring = OutputRing::new(4);
        ring.pin_at(Some(0));
        ring.push(Bytes::from_static(b"abcdef"));
        assert!(ring.is_over_capacity());
        assert_eq!(read_all(&ring, 0, 100), b"abcdef");
        ring.pin_at(Some(3));
        assert_eq!((ring.start(), ring.is_over_capacity()), (2, false));
        ring.pin_at(None);
        ring.push(Bytes::from_static(b"gh"));
        assert_eq!(read_all(&ring, ring.start(), 100), b"efgh");
    }

    proptest! {
        /// Whatever the chunking, capacity and read size, a reader sees exactly the pushed
        /// stream's last `capacity` bytes, from any offset it asks for.
        #[test]
        fn ring_holds_the_stream_tail(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..40),
            capacity in 1usize..300,
            max in 1usize..80,
            from_fraction in 0.0f64..1.0,
        ) {
            let mut ring = OutputRing::new(capacity);
            let mut stream = Vec::new();
            for chunk in &chunks {
                stream.extend_from_slice(chunk);
                ring.push(Bytes::copy_from_slice(chunk));
            }
            let total = stream.len() as u64;
            prop_assert_eq!(ring.end(), total);
            prop_assert_eq!(ring.start(), total.saturating_sub(capacity as u64));
            let from = ring.start() + ((ring.len() as f64) * from_fraction) as u64;
            prop_assert_eq!(read_all(&ring, from, max), stream[from as usize..].to_vec());
        }
    }
}
