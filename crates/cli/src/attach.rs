//! `agentrelay attach` (and `run`): this terminal becomes the session's terminal until the
//! process exits or the user detaches.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use agentrelay_protocol::ExitStatus;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use uuid::Uuid;

use crate::client::Api;
use crate::error::CliError;
use crate::stream::{Event, Options, Outbound, SessionStream};
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

/// Input read ahead of what the session takes; past this, keystrokes are still read (so the
/// detach keys work) but dropped, with a warning.
const MAX_LOCAL_INPUT: usize = 4 * 1024 * 1024;

/// Attaches stdin/stdout to the session, from `from` (`None`: HQ replays or draws the screen).
pub async fn attach(
    api: &Api,
    session: Uuid,
    from: Option<u64>,
    keepalive: Duration,
) -> Result<Outcome, CliError> {
    let interactive = terminal::is_interactive();
    // A script waits for HQ a while; a person decides when to give up (Ctrl-] d).
    let give_up_after = (!interactive).then_some(GIVE_UP_AFTER);
    let mut stream = SessionStream::open(api, session, from, Options { keepalive, give_up_after }).await?;
    let raw = if interactive {
        Some(RawMode::enter().map_err(|e| anyhow::anyhow!("cannot put the terminal in raw mode: {e}"))?)
    } else {
        None
    };
    let outcome = pump(&mut stream, interactive).await;
    stream.close().await;
    if interactive {
        // Modes the remote program may have left on would otherwise stay in this terminal.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(RESET_MODES.as_bytes()).and_then(|()| stdout.flush());
    }
    drop(raw);
    match &outcome {
        Ok(Outcome::Detached) => note(false, &format!("detached from session {session}")),
        Ok(Outcome::Interrupted(_)) => note(false, &format!("stopped; session {session} goes on")),
        _ => {}
    }
    outcome
}

/// How long a script's attach (no terminal) waits for an unreachable HQ before it fails.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// Leave the alternate screen; show the cursor; bracketed paste, mouse reporting and focus
/// events off; default colours; then a fresh line.
pub const RESET_MODES: &str =
    "\x1b[?1049l\x1b[?25h\x1b[?2004l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1004l\x1b[0m\r\n";

/// Moves bytes both ways until the session ends, the user detaches or a signal stops us.
async fn pump(stream: &mut SessionStream, interactive: bool) -> Result<Outcome, CliError> {
    use nix::sys::signal::Signal;
    let mut stdout = tokio::io::stdout();
    let mut keystrokes = terminal::keystrokes();
    let mut stdin_open = true;
    let mut detach = DetachKeys::default();
    // Input and resizes read but not yet taken by the stream, oldest first.
    let mut local: VecDeque<Outbound> = VecDeque::new();
    let mut local_bytes = 0usize;
    let mut dropped_input = false;
    let signal_stream = |kind| signal(kind).map_err(|e| CliError::Other(e.into()));
    let mut winch = signal_stream(SignalKind::window_change())?;
    let mut term = signal_stream(SignalKind::terminate())?;
    let mut hangup = signal_stream(SignalKind::hangup())?;
    let mut interrupt = signal_stream(SignalKind::interrupt())?;
    let mut quit = signal_stream(SignalKind::quit())?;
    if interactive && let Some(size) = terminal::size() {
        local.push_back(Outbound::Resize(size));
    }
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
                        stdout.write_all(&bytes).await.map_err(|e| CliError::Other(e.into()))?;
                        stdout.flush().await.map_err(|e| CliError::Other(e.into()))?;
                    }
                    Event::Attached { resumed, .. } => {
                        outage = None;
                        if resumed && told {
                            note(interactive, "reconnected");
                        }
                        told = false;
                    }
                    Event::Gap(gap) => {
                        note(interactive, &format!("{} bytes of output were lost", gap.to - gap.from));
                    }
                    Event::Warning(message) => note(interactive, &message),
                    Event::Disconnected(reason) => {
                        debug_note(&reason);
                        outage = Some(tokio::time::Instant::now() + QUIET_OUTAGE);
                    }
                    Event::Exit(status) => {
                        stdout.flush().await.map_err(|e| CliError::Other(e.into()))?;
                        return Ok(Outcome::Exited(status));
                    }
                    Event::Ended(message) => return Ok(Outcome::Ended(message)),
                    Event::Fatal(error) => return Err(error),
                }
            }
            () = outage_notice => {
                told = true;
                let how = if interactive { " (Ctrl-] d detaches)" } else { "" };
                note(interactive, &format!("lost the connection to HQ; reconnecting{how}"));
            }
            keys = keystrokes.recv(), if stdin_open => {
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
                if local_bytes + bytes.len() > MAX_LOCAL_INPUT {
                    if !std::mem::replace(&mut dropped_input, true) {
                        note(interactive, "the session is not taking input; dropping what is typed");
                    }
                } else if !bytes.is_empty() {
                    local_bytes += bytes.len();
                    local.push_back(Outbound::Input(bytes));
                }
                if detaching {
                    // Whatever fits goes; nothing waits.
                    while let Some(out) = local.pop_front() {
                        if stream.outbound.try_send(out).is_err() {
                            break;
                        }
                    }
                    return Ok(Outcome::Detached);
                }
            }
            permit = stream.outbound.reserve(), if !local.is_empty() => {
                let Ok(permit) = permit else { continue };
                if let Some(out) = local.pop_front() {
                    if let Outbound::Input(bytes) = &out {
                        local_bytes -= bytes.len();
                        dropped_input = false;
                    }
                    permit.send(out);
                }
            }
            _ = winch.recv() => {
                if let Some(size) = terminal::size() {
                    // Only the latest size matters.
                    local.retain(|out| !matches!(out, Outbound::Resize(_)));
                    local.push_back(Outbound::Resize(size));
                }
            }
            _ = term.recv() => return Ok(Outcome::Interrupted(Signal::SIGTERM as i32)),
            _ = hangup.recv() => return Ok(Outcome::Interrupted(Signal::SIGHUP as i32)),
            _ = interrupt.recv() => return Ok(Outcome::Interrupted(Signal::SIGINT as i32)),
            _ = quit.recv() => return Ok(Outcome::Interrupted(Signal::SIGQUIT as i32)),
        }
    }
}

/// A line of our own between the session's output; raw mode needs the explicit carriage return.
/// A closed stderr (the terminal went away) is no reason to fail.
pub fn note(interactive: bool, message: &str) {
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
        note(false, &format!("connection dropped: {reason}"));
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
