//! `agentrelay attach` (and `run`): this terminal becomes the session's terminal until the
//! process exits or the user detaches.

use std::io::Write;
use std::time::Duration;

use agentrelay_protocol::ExitStatus;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use uuid::Uuid;

use crate::client::Api;
use crate::error::CliError;
use crate::stream::{Event, Outbound, SessionStream};
use crate::terminal::{self, DetachKeys, Keys, RawMode};

/// How long a dropped connection may last before the user is told about it.
const QUIET_OUTAGE: Duration = Duration::from_secs(2);

/// How an attachment ended.
#[derive(Debug)]
pub enum Outcome {
    /// The process exited.
    Exited(ExitStatus),
    /// The user detached; the session goes on.
    Detached,
    /// The session ended without an exit status (lost or failed).
    Ended(String),
    /// This program was told to stop (SIGTERM, SIGHUP).
    Interrupted(i32),
}

impl Outcome {
    /// The exit code for this program: the remote one, 128+N for signal N, 0 after a detach.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Exited(status) => exit_code(status),
            Self::Detached => 0,
            Self::Ended(_) => 255,
            Self::Interrupted(signal) => 128 + signal,
        }
    }
}

/// A shell's exit code for a remote exit status.
pub fn exit_code(status: &ExitStatus) -> i32 {
    match (status.code, status.signal.as_deref()) {
        (Some(code), _) => code,
        (None, Some(name)) => {
            name.parse::<nix::sys::signal::Signal>().map(|signal| 128 + signal as i32).unwrap_or(255)
        }
        (None, None) => 255,
    }
}

/// Attaches stdin/stdout to the session, from `from` (`None`: HQ replays or draws the screen).
pub async fn attach(api: &Api, session: Uuid, from: Option<u64>) -> Result<Outcome, CliError> {
    let mut stream = SessionStream::open(api, session, from).await?;
    let interactive = terminal::is_interactive();
    let raw = if interactive {
        Some(RawMode::enter().map_err(|e| anyhow::anyhow!("cannot put the terminal in raw mode: {e}"))?)
    } else {
        None
    };
    let outcome = pump(&mut stream, interactive).await;
    stream.close().await;
    drop(raw);
    match &outcome {
        Ok(Outcome::Detached) => eprintln!("[detached from session {session}]"),
        Ok(Outcome::Interrupted(_)) => eprintln!("[agentrelay stopped; session {session} goes on]"),
        _ => {}
    }
    outcome
}

/// Moves bytes both ways until the session ends, the user detaches or a signal stops us.
async fn pump(stream: &mut SessionStream, interactive: bool) -> Result<Outcome, CliError> {
    let mut stdout = tokio::io::stdout();
    let mut keystrokes = terminal::keystrokes();
    let mut stdin_open = true;
    let mut detach = DetachKeys::default();
    let mut held: Option<Outbound> = None;
    let mut winch = signal(SignalKind::window_change()).map_err(anyhow::Error::from)?;
    let mut term = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(anyhow::Error::from)?;
    // While disconnected: when to tell the user, and whether we did.
    let mut outage: Option<tokio::time::Instant> = None;
    let mut told = false;
    loop {
        let outage_notice = async move {
            match outage {
                Some(at) if !told => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            event = stream.events.recv() => {
                let Some(event) = event else {
                    return Err(anyhow::anyhow!("the connection to HQ ended unexpectedly").into());
                };
                match event {
                    Event::Output(bytes) | Event::Snapshot(bytes) => {
                        stdout.write_all(&bytes).await.map_err(anyhow::Error::from)?;
                        stdout.flush().await.map_err(anyhow::Error::from)?;
                    }
                    Event::Attached { resumed, .. } => {
                        outage = None;
                        if resumed && told {
                            notice(interactive, "reconnected");
                        }
                        told = false;
                        if interactive && let Some(size) = terminal::size() {
                            // Queued behind held input; the session sees them in order.
                            let _ = stream.outbound.try_send(Outbound::Resize(size));
                        }
                    }
                    Event::Gap(gap) => {
                        notice(interactive, &format!("{} bytes of output were lost", gap.to - gap.from));
                    }
                    Event::Warning(message) => notice(interactive, &message),
                    Event::Disconnected(reason) => {
                        debug_note(&reason);
                        outage = Some(tokio::time::Instant::now() + QUIET_OUTAGE);
                    }
                    Event::Exit(status) => {
                        stdout.flush().await.map_err(anyhow::Error::from)?;
                        return Ok(Outcome::Exited(status));
                    }
                    Event::Ended(message) => return Ok(Outcome::Ended(message)),
                    Event::Fatal(error) => return Err(error),
                }
            }
            () = outage_notice => {
                told = true;
                notice(interactive, "lost the connection to HQ; reconnecting (Ctrl-] d detaches)");
            }
            keys = keystrokes.recv(), if stdin_open && held.is_none() => {
                let Some(keys) = keys else {
                    stdin_open = false;
                    continue;
                };
                let (bytes, detaching) = if interactive {
                    match detach.filter(&keys) {
                        Keys::Send(bytes) => (Bytes::from(bytes), false),
                        Keys::Detach(bytes) => (Bytes::from(bytes), true),
                    }
                } else {
                    (keys, false)
                };
                if detaching {
                    if !bytes.is_empty() {
                        let _ = stream.outbound.send(Outbound::Input(bytes)).await;
                    }
                    return Ok(Outcome::Detached);
                }
                if !bytes.is_empty() {
                    held = Some(Outbound::Input(bytes));
                }
            }
            permit = stream.outbound.reserve(), if held.is_some() => {
                let Ok(permit) = permit else { continue };
                if let Some(out) = held.take() {
                    permit.send(out);
                }
            }
            _ = winch.recv() => {
                if let Some(size) = terminal::size() {
                    let _ = stream.outbound.try_send(Outbound::Resize(size));
                }
            }
            _ = term.recv() => return Ok(Outcome::Interrupted(nix::sys::signal::Signal::SIGTERM as i32)),
            _ = hangup.recv() => return Ok(Outcome::Interrupted(nix::sys::signal::Signal::SIGHUP as i32)),
        }
    }
}

/// A line of our own between the session's output; raw mode needs the explicit carriage return.
fn notice(interactive: bool, message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = if interactive {
        write!(stderr, "\r\n[agentrelay: {message}]\r\n")
    } else {
        writeln!(stderr, "[agentrelay: {message}]")
    };
    let _ = stderr.flush();
}

/// Reasons for a drop are only shown with AGENTRELAY_DEBUG set; a blip should stay invisible.
fn debug_note(reason: &str) {
    if std::env::var_os("AGENTRELAY_DEBUG").is_some() {
        notice(false, &format!("connection dropped: {reason}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(exit_code(&ExitStatus { code: Some(7), signal: None }), 7);
        assert_eq!(exit_code(&ExitStatus { code: None, signal: Some("SIGKILL".into()) }), 137);
        assert_eq!(exit_code(&ExitStatus { code: None, signal: Some("SIGHUP".into()) }), 129);
        assert_eq!(exit_code(&ExitStatus { code: None, signal: Some("SIGWHAT".into()) }), 255);
        assert_eq!(Outcome::Detached.exit_code(), 0);
    }
}
