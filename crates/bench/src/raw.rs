//! The ceilings and floors AgentRelay is measured against, in the same run: a raw local PTY read
//! loop, a raw PTY echo, and a loopback TCP round trip.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

/// Round trips of one byte through a PTY running [`ECHO_PROGRAM`].
pub(crate) async fn pty_echo(samples: usize) -> anyhow::Result<Vec<Duration>> {
    let (mut pty, mut child) = spawn(&["sh", "-c", ECHO_PROGRAM])?;
    let mut byte = [0u8; 1];
    let mut seen = Vec::new();
    while !seen.ends_with(READY) {
        let mut got = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), pty.read(&mut got)).await??;
        seen.extend_from_slice(&got[..n]);
    }
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let sent = b'a' + (i % 26) as u8;
        let start = Instant::now();
        pty.write_all(&[sent]).await?;
        pty.read_exact(&mut byte).await?;
        times.push(start.elapsed());
    }
    child.start_kill()?;
    let _ = child.wait().await;
    Ok(times)
}

/// Round trips of one byte over loopback TCP (an echo task in this process).
pub(crate) async fn tcp_round_trips(samples: usize) -> anyhow::Result<Vec<Duration>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            let mut byte = [0u8; 1];
            while socket.read_exact(&mut byte).await.is_ok() {
                if socket.write_all(&byte).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut client = TcpStream::connect(addr).await?;
    client.set_nodelay(true)?;
    let mut byte = [0u8; 1];
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        client.write_all(b"x").await?;
        client.read_exact(&mut byte).await?;
        times.push(start.elapsed());
    }
    drop(client);
    server.abort();
    Ok(times)
}
