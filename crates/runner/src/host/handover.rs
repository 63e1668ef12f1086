//! The PTY handed from a session host to its runner (protocol version 2).
//!
//! The host sends a duplicate of the PTY's master with its hello (`SCM_RIGHTS`). The runner then
//! writes keystrokes and sizes to the PTY itself, so a keystroke reaches the agent without
//! crossing the host; the echo still comes back through it, because only the host reads the PTY
//! (every byte lands in its spool before the runner sees it, which is what lets a runner be
//! killed mid-stream without losing output). Input needs no such care: HQ never counted it as
//! delivered before it reached the runner anyway.
//!
//! The descriptor is received close-on-exec, so hosts the runner starts later never inherit it,
//! and dropped with the session's link, so a dead host's command is hung up as before.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use agentrelay_protocol::TermSize;
use anyhow::{Context, bail};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::pipe;

use super::wire::{FromHost, HostHello};

/// Sends `hello` on `stream`, with `pty` attached to its first byte when given.
pub async fn send_hello(
    stream: &UnixStream,
    hello: HostHello,
    pty: Option<BorrowedFd<'_>>,
) -> anyhow::Result<()> {
    let bytes = FromHost::Hello(hello).to_bytes()?;
    let fds: Vec<BorrowedFd<'_>> = pty.into_iter().collect();
    let mut sent = 0;
    while sent < bytes.len() {
        stream.writable().await.context("writing the hello")?;
        let written = stream.try_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            // Once: a descriptor travels with the bytes it was sent with.
            if sent == 0 && !fds.is_empty() {
                control.push(SendAncillaryMessage::ScmRights(&fds));
            }
            Ok(rustix::net::sendmsg(
                stream,
                &[IoSlice::new(&bytes[sent..])],
                &mut control,
                SendFlags::NOSIGNAL,
            )?)
        });
        match written {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("writing the hello"),
        }
    }
    Ok(())
}

/// Reads the host's hello from `stream`, and the PTY if the host sent it along.
pub async fn receive_hello(stream: &UnixStream) -> anyhow::Result<(HostHello, Option<OwnedFd>)> {
    let mut received = Vec::new();
    let mut pty = None;
    loop {
        stream.readable().await.context("reading the hello")?;
        let mut chunk = [0u8; 4096];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let read = stream.try_io(Interest::READABLE, || {
            Ok(rustix::net::recvmsg(
                stream,
                &mut [IoSliceMut::new(&mut chunk)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?)
        });
        let read = match read {
            Ok(read) => read.bytes,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e).context("reading the hello"),
        };
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                // One is expected; any other is closed as it drops.
                for fd in fds {
                    pty.get_or_insert(fd);
                }
            }
        }
        if read == 0 {
            bail!("the session host closed the connection before its hello");
        }
        received.extend_from_slice(&chunk[..read]);
        match FromHost::parse(&received)? {
            // The host says nothing more until the runner has answered, so nothing follows.
            Some((FromHost::Hello(hello), used)) if used == received.len() => return Ok((hello, pty)),
            Some((FromHost::Hello(_), _)) => bail!("the session host spoke before it was asked"),
            Some((other, _)) => bail!("the session host said {other:?} before its hello"),
            None => {}
        }
    }
}

/// The PTY as the runner writes to it.
pub struct PtyInput {
    // Tokio's pipe writer, which is a non-blocking descriptor registered for writing and nothing
    // pipe-specific: the safe way to drive any such descriptor without unsafe code of ours.
    fd: pipe::Sender,
}

impl PtyInput {
    /// Takes the master the host handed over.
    pub fn new(fd: OwnedFd) -> anyhow::Result<Self> {
        // The host's copy shares this flag (one open file); it is set already, and must stay.
        rustix::io::ioctl_fionbio(&fd, true).context("cannot make the PTY non-blocking")?;
        let fd = pipe::Sender::from_owned_fd_unchecked(fd).context("cannot watch the PTY")?;
        Ok(Self { fd })
    }

    /// Writes all of `data`, waiting while the terminal's input buffer is full.
    pub async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.fd.write_all(data).await
    }

    /// Sets the terminal's size (the kernel tells the foreground job with `SIGWINCH`).
    pub fn resize(&self, size: TermSize) -> std::io::Result<()> {
        let size =
            rustix::termios::Winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
        Ok(rustix::termios::tcsetwinsize(self.fd.as_fd(), size)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn hello() -> HostHello {
        HostHello {
            version: super::super::wire::VERSION,
            min_version: 1,
            session_id: Uuid::now_v7(),
            pid: 1,
            start: 0,
            end: 3,
            exit: None,
            failed: None,
        }
    }

    #[tokio::test]
    async fn the_pty_travels_with_the_hello_and_writes_reach_the_terminal() {
        let (host, runner) = UnixStream::pair().expect("a socket pair");
        let (pty, pts) = pty_process::open().expect("a PTY");
        let said = hello();
        send_hello(&host, said.clone(), Some(pty.as_fd())).await.expect("send");
        let (heard, fd) = receive_hello(&runner).await.expect("receive");
        assert_eq!(heard, said);
        let mut input = PtyInput::new(fd.expect("the PTY came along")).expect("input");
        input.resize(TermSize { rows: 33, cols: 77 }).expect("resize");
        let size = rustix::termios::tcgetwinsize(&pts).expect("size");
        assert_eq!((size.ws_row, size.ws_col), (33, 77), "the size reached the terminal");
        // Raw mode, so the bytes arrive as written rather than a line at a time.
        let mut termios = rustix::termios::tcgetattr(&pts).expect("attrs");
        termios.make_raw();
        rustix::termios::tcsetattr(&pts, rustix::termios::OptionalActions::Now, &termios).expect("raw");
        input.write_all(b"typed").await.expect("write");
        let mut buf = [0u8; 5];
        let mut got = 0;
        while got < buf.len() {
            got += rustix::io::read(&pts, &mut buf[got..]).expect("read");
        }
        assert_eq!(&buf, b"typed");
    }

    #[tokio::test]
    async fn a_hello_without_a_pty_is_a_hello_and_a_cut_one_an_error() {
        let (host, runner) = UnixStream::pair().expect("a socket pair");
        let said = hello();
        send_hello(&host, said.clone(), None).await.expect("send");
        let (heard, fd) = receive_hello(&runner).await.expect("receive");
        assert_eq!((heard, fd.is_none()), (said, true));

        let (host, runner) = UnixStream::pair().expect("a socket pair");
        let bytes = FromHost::Hello(hello()).to_bytes().expect("bytes");
        let mut host = host;
        host.write_all(&bytes[..bytes.len() - 1]).await.expect("write");
        drop(host);
        let error = receive_hello(&runner).await.expect_err("cut short");
        assert!(format!("{error:#}").contains("before its hello"), "{error:#}");
    }
}
