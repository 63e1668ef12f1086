//! `agentrelay logs`: a session's output so far (or until it ends, with `--follow`), byte for
//! byte or, with `--plain`, as text without escape sequences.

use std::io::Write;

use agentrelay_protocol::Session;

use crate::client::Api;
use crate::console::{say, stdout_error};
use crate::error::CliError;
use crate::stream::{Event, Options, SessionStream};

/// Prints the output of `session` to stdout.
pub async fn logs(
    api: &Api,
    session: &Session,
    follow: bool,
    plain: bool,
    keepalive: std::time::Duration,
) -> Result<(), CliError> {
    // Without --follow, stop at what HQ had when asked.
    let until = (!follow).then_some(session.output_bytes);
    if until == Some(0) {
        return Ok(());
    }
    let options = Options { keepalive, give_up_after: Some(crate::attach::GIVE_UP_AFTER) };
    let mut stream = SessionStream::open(api, session.id, Some(0), options).await?;
    let mut out = Output::new(plain);
    let mut offset = 0u64;
    while let Some(event) = stream.events.recv().await {
        match event {
            Event::Output(bytes) => {
                let take = match until {
                    Some(until) => bytes.len().min(until.saturating_sub(offset) as usize),
                    None => bytes.len(),
                };
                out.write(&bytes[..take])?;
                offset += bytes.len() as u64;
                // stdout is line-buffered: a prompt waiting for its answer has no newline yet.
                if stream.events.is_empty() {
                    out.flush()?;
                }
            }
            Event::Gap(gap) => {
                out.flush()?;
                say(&format!("[agentrelay: {} bytes of output were lost here]", gap.to - gap.from));
                offset = gap.to;
            }
            Event::Attached { offset: at, .. } => offset = at,
            Event::Warning(message) => say(&format!("agentrelay: {message}")),
            Event::Exit(_) | Event::Ended(_) => break,
            Event::Fatal(error) => return Err(error),
            Event::Snapshot(_) | Event::Disconnected(_) => {}
        }
        if until.is_some_and(|until| offset >= until) {
            break;
        }
    }
    out.finish()?;
    stream.close().await;
    Ok(())
}

/// stdout, raw or through the escape-sequence stripper.
struct Output {
    stdout: std::io::Stdout,
    plain: Option<(vte::Parser, Plain)>,
}

impl Output {
    fn new(plain: bool) -> Self {
        Self { stdout: std::io::stdout(), plain: plain.then(|| (vte::Parser::new(), Plain::default())) }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        match &mut self.plain {
            Some((parser, text)) => {
                parser.advance(text, bytes);
                self.stdout.write_all(text.0.as_bytes()).map_err(stdout_error)?;
                text.0.clear();
            }
            None => self.stdout.write_all(bytes).map_err(stdout_error)?,
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CliError> {
        self.stdout.flush().map_err(stdout_error)
    }

    fn finish(mut self) -> Result<(), CliError> {
        self.flush()
    }
}

/// Keeps printable text, newlines and tabs; drops escape sequences and other controls.
#[derive(Default)]
struct Plain(String);

impl vte::Perform for Plain {
    fn print(&mut self, c: char) {
        self.0.push(c);
    }

    fn execute(&mut self, byte: u8) {
        // A carriage return before a newline is the PTY's; alone it means "overwrite", which a
        // text file cannot show, so it is dropped either way.
        if matches!(byte, b'\n' | b'\t') {
            self.0.push(byte as char);
        }
    }
}

/// `text` with escape sequences and carriage returns removed (for tests and one-shot use).
#[cfg(test)]
fn strip(bytes: &[u8]) -> String {
    let mut parser = vte::Parser::new();
    let mut plain = Plain::default();
    parser.advance(&mut plain, bytes);
    plain.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_drops_colours_cursor_moves_and_titles() {
        let input = b"\x1b]0;title\x07\x1b[1;31mred\x1b[0m text\r\n\x1b[2K\x1b[10;5Hnext\tline\r\n";
        assert_eq!(strip(input), "red text\nnext\tline\n");
    }

    #[test]
    fn plain_keeps_utf8_and_state_across_chunks() {
        let mut parser = vte::Parser::new();
        let mut plain = Plain::default();
        // An escape sequence and a UTF-8 character, each split between two writes.
        parser.advance(&mut plain, b"caf\xc3");
        parser.advance(&mut plain, b"\xa9 \x1b[3");
        parser.advance(&mut plain, b"2mok\x1b[0m\n");
        assert_eq!(plain.0, "café ok\n");
    }
}
