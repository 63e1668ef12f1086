//! The local protocol between a runner and a session host, over the host's Unix socket.
//!
//! It lives here, not in `crates/protocol`: both ends are this binary (the runner, and the runner
//! re-executed as `session-host`), and nothing else speaks it. It is versioned all the same,
//! because a host outlives the runner that started it and must be adopted by the next one, which
//! may be newer: the host says which versions it speaks in its hello, a runner adopts a host whose
//! range meets its own and refuses, with one line, one whose range does not. Unknown frame kinds
//! are skipped, so a later version may add frames without breaking this one.
//!
//! A frame is a kind byte, a big-endian `u32` length and the payload: raw bytes for output and
//! input, JSON for the rest.
//!
//! Version 2 adds one thing: the host sends the PTY's master with its hello (`SCM_RIGHTS`, see
//! [`super::handover`]), and a runner that takes it writes keystrokes and sizes to the PTY
//! itself, sparing them a hop through the host. Output still comes through the host, which keeps
//! every byte in its spool until HQ has it. A version 1 runner never asks for the descriptor (the
//! kernel closes it unread) and sends `Input` and `Resize` frames, which hosts still apply.

use agentrelay_protocol::{ExitStatus, TermSize};
use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

/// The version this build speaks.
pub const VERSION: u32 = 2;
/// The oldest version this build still speaks.
pub const MIN_VERSION: u32 = 1;

/// Largest payload accepted (output chunks are at most 64 KiB; input at most HQ's frame size).
const MAX_PAYLOAD: u32 = 4 * 1024 * 1024;

/// A frame's kind, as its first byte.
mod kind {
    pub const HELLO: u8 = 1;
    pub const ATTACH: u8 = 2;
    pub const OUTPUT: u8 = 3;
    pub const GAP: u8 = 4;
    pub const EXIT: u8 = 5;
    pub const INPUT: u8 = 6;
    pub const RESIZE: u8 = 7;
    pub const KILL: u8 = 8;
    pub const RELEASE: u8 = 9;
}

/// What a host says first, to every runner that connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostHello {
    /// The newest protocol version the host speaks.
    pub version: u32,
    /// The oldest.
    pub min_version: u32,
    /// The session it holds.
    pub session_id: Uuid,
    /// The host's process id.
    pub pid: u32,
    /// The oldest output offset its spool still holds.
    pub start: u64,
    /// One past the newest output byte.
    pub end: u64,
    /// How the command ended, if it has (its output may still be unread).
    pub exit: Option<ExitStatus>,
    /// Why the command could not be started, if it could not (the host then exits).
    pub failed: Option<String>,
}

/// A frame from a host to its runner.
#[derive(Debug, Clone, PartialEq)]
pub enum FromHost {
    /// First frame.
    Hello(HostHello),
    /// Output, continuing at the offset reached so far.
    Output(Bytes),
    /// Output `[from, to)` is no longer held (the spool overflowed); the stream goes on at `to`.
    Gap {
        /// First missing offset.
        from: u64,
        /// First offset sent again.
        to: u64,
    },
    /// The command ended; sent after its last output byte and after every process it left
    /// behind has ended too.
    Exit(ExitStatus),
}

/// A frame from a runner to a host.
#[derive(Debug, Clone, PartialEq)]
pub enum ToHost {
    /// Send output from this offset on (a gap first if the spool no longer holds it).
    Attach {
        /// The runner's version.
        version: u32,
        /// Where to start.
        from: u64,
    },
    /// Keystrokes for the PTY.
    Input(Bytes),
    /// A new PTY size.
    Resize(TermSize),
    /// Hang up, then kill after the grace period.
    Kill,
    /// HQ has recorded the exit: the host removes its files and exits.
    Release,
}

#[derive(Serialize, Deserialize)]
struct GapFrame {
    from: u64,
    to: u64,
}

#[derive(Serialize, Deserialize)]
struct AttachFrame {
    version: u32,
    from: u64,
}

/// The first version whose host hands its PTY to the runner with the hello.
pub const PTY_HANDOVER: u32 = 2;

/// A frame's head: its kind and its payload's length.
fn head(kind: u8, payload: &[u8]) -> std::io::Result<[u8; 5]> {
    let len = u32::try_from(payload.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    let mut head = [0u8; 5];
    head[0] = kind;
    head[1..].copy_from_slice(&len.to_be_bytes());
    Ok(head)
}

/// Writes one frame, head and payload in one system call where the writer can.
async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, kind: u8, payload: Bytes) -> std::io::Result<()> {
    let head = head(kind, &payload)?;
    let mut frame = Buf::chain(&head[..], payload);
    writer.write_all_buf(&mut frame).await?;
    writer.flush().await
}

/// A payload's length from its frame's head, refused past [`MAX_PAYLOAD`].
fn payload_len(len: [u8; 4]) -> anyhow::Result<usize> {
    let len = u32::from_be_bytes(len);
    if len > MAX_PAYLOAD {
        bail!("a frame of {len} bytes is larger than {MAX_PAYLOAD}");
    }
    Ok(len as usize)
}

/// The first whole frame at the start of `buf`, and its length: `None` while it is incomplete.
fn split_frame(buf: &[u8]) -> anyhow::Result<Option<(u8, &[u8], usize)>> {
    let Some((&[kind, a, b, c, d], rest)) = buf.split_first_chunk::<5>() else { return Ok(None) };
    let len = payload_len([a, b, c, d])?;
    Ok(rest.get(..len).map(|payload| (kind, payload, 5 + len)))
}

/// Reads one frame: `None` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> anyhow::Result<Option<(u8, Bytes)>> {
    let kind = match reader.read_u8().await {
        Ok(kind) => kind,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("reading a frame"),
    };
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).await.context("reading a frame's length")?;
    let mut payload = vec![0u8; payload_len(len)?];
    reader.read_exact(&mut payload).await.context("reading a frame")?;
    Ok(Some((kind, Bytes::from(payload))))
}

impl FromHost {
    /// This frame's kind and payload.
    fn encode(&self) -> anyhow::Result<(u8, Bytes)> {
        Ok(match self {
            Self::Hello(hello) => (kind::HELLO, serde_json::to_vec(hello)?.into()),
            Self::Output(bytes) => (kind::OUTPUT, bytes.clone()),
            Self::Gap { from, to } => {
                (kind::GAP, serde_json::to_vec(&GapFrame { from: *from, to: *to })?.into())
            }
            Self::Exit(exit) => (kind::EXIT, serde_json::to_vec(exit)?.into()),
        })
    }

    /// The frame of kind `kind`: `None` for a kind from a newer host, which is not for us.
    fn decode(kind: u8, payload: Bytes) -> anyhow::Result<Option<Self>> {
        Ok(Some(match kind {
            kind::HELLO => Self::Hello(serde_json::from_slice(&payload).context("a bad hello")?),
            kind::OUTPUT => Self::Output(payload),
            kind::GAP => {
                let gap: GapFrame = serde_json::from_slice(&payload).context("a bad gap")?;
                Self::Gap { from: gap.from, to: gap.to }
            }
            kind::EXIT => Self::Exit(serde_json::from_slice(&payload).context("a bad exit")?),
            _ => return Ok(None),
        }))
    }

    /// This frame as bytes, for a write that carries a descriptor along.
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let (kind, payload) = self.encode()?;
        let mut bytes = head(kind, &payload)?.to_vec();
        bytes.extend_from_slice(&payload);
        Ok(bytes)
    }

    /// The first frame a runner understands in `buf`, and how many bytes it took: `None` while
    /// no whole frame is there.
    pub fn parse(mut buf: &[u8]) -> anyhow::Result<Option<(Self, usize)>> {
        let mut used = 0;
        while let Some((kind, payload, len)) = split_frame(buf)? {
            used += len;
            if let Some(frame) = Self::decode(kind, Bytes::copy_from_slice(payload))? {
                return Ok(Some((frame, used)));
            }
            buf = &buf[len..];
        }
        Ok(None)
    }

    /// Writes this frame.
    pub async fn write<W: AsyncWrite + Unpin>(&self, writer: &mut W) -> anyhow::Result<()> {
        let (kind, payload) = self.encode()?;
        write_frame(writer, kind, payload).await.context("writing to the runner")
    }

    /// Reads the next frame a runner understands: `None` at the end of the stream.
    pub async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> anyhow::Result<Option<Self>> {
        loop {
            let Some((kind, payload)) = read_frame(reader).await? else { return Ok(None) };
            if let Some(frame) = Self::decode(kind, payload)? {
                return Ok(Some(frame));
            }
        }
    }
}

impl ToHost {
    /// Writes this frame.
    pub async fn write<W: AsyncWrite + Unpin>(&self, writer: &mut W) -> anyhow::Result<()> {
        let (kind, payload): (u8, Bytes) = match self {
            Self::Attach { version, from } => {
                (kind::ATTACH, serde_json::to_vec(&AttachFrame { version: *version, from: *from })?.into())
            }
            Self::Input(bytes) => (kind::INPUT, bytes.clone()),
            Self::Resize(size) => (kind::RESIZE, serde_json::to_vec(size)?.into()),
            Self::Kill => (kind::KILL, Bytes::new()),
            Self::Release => (kind::RELEASE, Bytes::new()),
        };
        write_frame(writer, kind, payload).await.context("writing to the session host")
    }

    /// Reads the next frame a host understands: `None` at the end of the stream.
    pub async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> anyhow::Result<Option<Self>> {
        loop {
            let Some((kind, payload)) = read_frame(reader).await? else { return Ok(None) };
            return Ok(Some(match kind {
                kind::ATTACH => {
                    let attach: AttachFrame = serde_json::from_slice(&payload).context("a bad attach")?;
                    Self::Attach { version: attach.version, from: attach.from }
                }
                kind::INPUT => Self::Input(payload),
                kind::RESIZE => Self::Resize(serde_json::from_slice(&payload).context("a bad resize")?),
                kind::KILL => Self::Kill,
                kind::RELEASE => Self::Release,
                // From a newer runner: not for us.
                _ => continue,
            }));
        }
    }
}

/// Whether a host speaking `[min, max]` can be adopted by this build.
pub fn compatible(min: u32, max: u32) -> bool {
    min <= VERSION && max >= MIN_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_unknown_kinds_are_skipped() {
        let hello = HostHello {
            version: VERSION,
            min_version: MIN_VERSION,
            session_id: Uuid::now_v7(),
            pid: 42,
            start: 3,
            end: 9,
            exit: Some(ExitStatus { code: None, signal: Some("SIGHUP".into()) }),
            failed: None,
        };
        let from_host = [
            FromHost::Hello(hello),
            FromHost::Output(Bytes::from_static(b"out\x00put")),
            FromHost::Gap { from: 1, to: 5 },
            FromHost::Exit(ExitStatus { code: Some(3), signal: None }),
        ];
        let mut buf = Vec::new();
        write_frame(&mut buf, 200, Bytes::from_static(b"from the future")).await.expect("write");
        for frame in &from_host {
            frame.write(&mut buf).await.expect("write");
        }
        let mut reader = buf.as_slice();
        for frame in &from_host {
            assert_eq!(FromHost::read(&mut reader).await.expect("read").as_ref(), Some(frame));
        }
        assert_eq!(FromHost::read(&mut reader).await.expect("end"), None);

        let to_host = [
            ToHost::Attach { version: VERSION, from: 7 },
            ToHost::Input(Bytes::from_static(b"ls\r")),
            ToHost::Resize(TermSize { rows: 40, cols: 100 }),
            ToHost::Kill,
            ToHost::Release,
        ];
        let mut buf = Vec::new();
        for frame in &to_host {
            frame.write(&mut buf).await.expect("write");
        }
        let mut reader = buf.as_slice();
        for frame in &to_host {
            assert_eq!(ToHost::read(&mut reader).await.expect("read").as_ref(), Some(frame));
        }
    }

    #[tokio::test]
    async fn oversized_and_cut_frames_are_errors_not_panics() {
        let mut huge = vec![kind::OUTPUT];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(FromHost::read(&mut huge.as_slice()).await.is_err());
        let cut = [kind::OUTPUT, 0, 0, 0, 9, b'a'];
        assert!(FromHost::read(&mut cut.as_slice()).await.is_err());
        let mut bad = Vec::new();
        write_frame(&mut bad, kind::HELLO, Bytes::from_static(b"{not json")).await.expect("write");
        assert!(FromHost::read(&mut bad.as_slice()).await.is_err());
    }

    #[test]
    fn versions_meet_or_not() {
        assert!(compatible(MIN_VERSION, VERSION));
        assert!(compatible(1, VERSION + 5), "a newer host that still speaks ours");
        assert!(!compatible(VERSION + 1, VERSION + 2), "a host too new");
        assert!(!compatible(0, MIN_VERSION - 1), "a host too old");
    }
}
