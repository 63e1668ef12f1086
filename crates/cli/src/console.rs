//! Writing for people and scripts: stdout that ends quietly when its reader goes away
//! (`agentrelay sessions | head -1`), and stderr lines that never fail the command.

use std::io::Write;

use crate::error::CliError;

/// Writes `text` to stdout; a closed pipe becomes [`CliError::BrokenPipe`].
pub fn out(text: &str) -> Result<(), CliError> {
    out_bytes(text.as_bytes())
}

/// Writes bytes to stdout; a closed pipe becomes [`CliError::BrokenPipe`].
pub fn out_bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(stdout_error)
}

/// Maps a stdout write error: a reader that went away is not a failure to report.
pub fn stdout_error(error: std::io::Error) -> CliError {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::BrokenPipe
    } else {
        CliError::Other(anyhow::Error::new(error).context("writing to stdout"))
    }
}

/// A line on stderr; a closed stderr is ignored.
pub fn say(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}
