//! The ceilings and floors AgentRelay is measured against, in the same run: a raw local PTY read
//! loop, a raw PTY echo, and a loopback TCP round trip.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn spawn(command: &[&str]) -> anyhow::Result<(pty_process::Pty, tokio::process::Child)> {
    let (pty, pts) = pty_process::open()?;
    pty.resize(pty_process::Size::new(24, 80))?;
    let child = pty_process::Command::new(command[0]).args(&command[1..]).spawn(pts)?;
    Ok((pty, child))
}

/// Reads a PTY running `command` to its end; returns bytes and elapsed time.
pub(crate) async fn pty_read_all(command: &[&str]) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let (mut pty, mut child) = spawn(command)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match pty.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => break,
            Err(e) => return Err(e).context("reading the PTY"),
        }
    }
    child.wait().await?;
    Ok((total, start.elapsed()))
}

/// The echo program: a raw, silent terminal, then `cat`; it prints [`READY`] in between.
pub(crate) const ECHO_PROGRAM: &str = "stty raw -echo; printf echo-ready; exec cat";
/// What [`ECHO_PROGRAM`] prints once the terminal is raw.
pub(crate) const READY: &[u8] = b"echo-ready";

/// A raw PTY running [`ECHO_PROGRAM`], sampled in rounds between the other echo measurements.
pub(crate) struct PtyEcho {
    pty: pty_process::Pty,
    child: tokio::process::Child,
    sent: usize,
}

impl PtyEcho {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let (mut pty, child) = spawn(&["sh", "-c", ECHO_PROGRAM])?;
        let mut seen = Vec::new();
        while !seen.ends_with(READY) {
            let mut got = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(10), pty.read(&mut got)).await??;
            seen.extend_from_slice(&got[..n]);
        }
        Ok(Self { pty, child, sent: 0 })
    }

    /// `samples` round trips of one byte, into `times`.
    pub(crate) async fn sample(&mut self, samples: usize, times: &mut Vec<Duration>) -> anyhow::Result<()> {
        let mut byte = [0u8; 1];
        for _ in 0..samples {
            let sent = b'a' + (self.sent % 26) as u8;
            self.sent += 1;
            let start = Instant::now();
            self.pty.write_all(&[sent]).await?;
            self.pty.read_exact(&mut byte).await?;
            times.push(start.elapsed());
        }
        Ok(())
    }
}

impl Drop for PtyEcho {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Loopback TCP to an echo thread in this process, sampled like [`PtyEcho`]. A thread of its
/// own, blocking on its socket: each round trip wakes another thread through the kernel, as the
/// hops to HQ and the runner wake other processes. An echo task on the bench's own runtime may
/// run on the same worker as the client and skip that wakeup (16 µs against 64 µs here).
pub(crate) struct TcpEcho {
    client: TcpStream,
}

impl TcpEcho {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        // Ends when the client's socket closes.
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok((mut socket, _)) = listener.accept() {
                let _ = socket.set_nodelay(true);
                let mut byte = [0u8; 1];
                while socket.read_exact(&mut byte).is_ok() {
                    if socket.write_all(&byte).is_err() {
                        break;
                    }
                }
            }
        });
        let client = TcpStream::connect(addr).await?;
        client.set_nodelay(true)?;
        Ok(Self { client })
    }

    /// `samples` round trips of one byte, into `times`.
    pub(crate) async fn sample(&mut self, samples: usize, times: &mut Vec<Duration>) -> anyhow::Result<()> {
        let mut byte = [0u8; 1];
        for _ in 0..samples {
            let start = Instant::now();
            self.client.write_all(b"x").await?;
            self.client.read_exact(&mut byte).await?;
            times.push(start.elapsed());
        }
        Ok(())
    }
}
