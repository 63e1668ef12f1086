//! The local terminal: raw mode that is undone on every way out, its size, and keystrokes read
//! on a thread of their own.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::Mutex;

use agentrelay_protocol::TermSize;
use bytes::Bytes;
use rustix::termios::{self, OptionalActions, Termios};
use tokio::sync::mpsc;

/// The settings to restore, shared with the panic hook.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Whether stdin is a terminal (and so raw mode, sizes and the detach keys apply).
pub fn is_interactive() -> bool {
    termios::isatty(std::io::stdin().as_fd())
}

/// The terminal's size, if stdin is one.
pub fn size() -> Option<TermSize> {
    let size = termios::tcgetwinsize(std::io::stdin().as_fd()).ok()?;
    let size = TermSize { rows: size.ws_row, cols: size.ws_col };
    size.is_valid().then_some(size)
}

/// Raw mode while alive: keystrokes pass through unprocessed, nothing echoes locally.
pub struct RawMode(());

impl RawMode {
    /// Switches stdin's terminal to raw mode; dropping the guard restores it.
    pub fn enter() -> std::io::Result<Self> {
        let stdin = std::io::stdin();
        let original = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = original.clone();
        raw.make_raw();
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(original);
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Drain, &raw)?;
        install_panic_hook();
        Ok(Self(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Settings [`restore`] puts back (for changes made outside [`RawMode`]).
pub fn remember(original: Termios) {
    *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(original);
}

/// Puts the terminal back as it was, if raw mode changed it.
pub fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(original) = saved {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &original);
    }
}

/// A panic anywhere must not leave the user's shell in raw mode.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if SAVED.lock().is_ok_and(|saved| saved.is_some()) {
                use std::io::Write;
                let mut stdout = std::io::stdout();
                let _ = stdout.write_all(crate::attach::RESET_MODES.as_bytes()).and_then(|()| stdout.flush());
            }
            restore();
            previous(info);
        }));
    });
}

/// Reads stdin on a thread (a blocking read cannot be cancelled, so it must not hold up the
/// runtime); the channel closes at end of input.
pub fn keystrokes() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    let spawned = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(Bytes::copy_from_slice(&buffer[..n])).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    if spawned.is_err() {
        // Without the thread there is no input; the session can still be watched.
        let (_, rx) = mpsc::channel(1);
        return rx;
    }
    rx
}

/// The detach sequence's first key: Ctrl-].
pub const ESCAPE: u8 = 0x1d;

/// Finds the detach sequence (Ctrl-] then `d`) in keystrokes, even split across reads.
#[derive(Debug, Default)]
pub struct DetachKeys {
    escaped: bool,
}

/// What a chunk of keystrokes amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Keys {
    /// Send these bytes to the session (maybe none).
    Send(Vec<u8>),
    /// Send these bytes, then detach.
    Detach(Vec<u8>),
}

impl DetachKeys {
    /// Filters one chunk: Ctrl-] d detaches, Ctrl-] Ctrl-] sends one Ctrl-], Ctrl-] followed by
    /// anything else sends both.
    pub fn filter(&mut self, input: &[u8]) -> Keys {
        let mut out = Vec::with_capacity(input.len());
        for &byte in input {
            if self.escaped {
                self.escaped = false;
                match byte {
                    b'd' | b'D' => return Keys::Detach(out),
                    ESCAPE => out.push(ESCAPE),
                    other => out.extend_from_slice(&[ESCAPE, other]),
                }
            } else if byte == ESCAPE {
                self.escaped = true;
            } else {
                out.push(byte);
            }
        }
        Keys::Send(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_sequence_even_across_reads() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.filter(b"ls\r"), Keys::Send(b"ls\r".to_vec()));
        assert_eq!(keys.filter(b"ab\x1d"), Keys::Send(b"ab".to_vec()));
        assert_eq!(keys.filter(b"d"), Keys::Detach(Vec::new()));
        let mut keys = DetachKeys::default();
        assert_eq!(keys.filter(b"x\x1ddtail"), Keys::Detach(b"x".to_vec()));
    }

    #[test]
    fn escape_key_can_still_be_sent() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.filter(b"\x1d\x1d"), Keys::Send(vec![ESCAPE]));
        assert_eq!(keys.filter(b"\x1dq"), Keys::Send(vec![ESCAPE, b'q']));
        assert_eq!(keys.filter(b"dd"), Keys::Send(b"dd".to_vec()));
    }
}
