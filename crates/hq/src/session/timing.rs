//! The output log's timing index (`sessions/<id>.timing`): one text line per event, written by
//! [`OutputLog`](super::output_log::OutputLog) and read back by the recording and by a restart.
//! This module is the one place that knows the format:
//!
//! * `o <end offset> <ms since start>`: output up to `end` had arrived by then;
//! * `r <rows> <cols> <ms since start>`: the PTY was resized.

use std::fmt;

/// One line of the timing index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingLine {
    /// Output up to `end` (exclusive) arrived `ms` after the session started.
    Output {
        /// One past the last byte.
        end: u64,
        /// Milliseconds since the session started.
        ms: u64,
    },
    /// The PTY became `rows` × `cols`, `ms` after the session started.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
        /// Milliseconds since the session started.
        ms: u64,
    },
}

impl TimingLine {
    /// Reads one line; `None` for anything malformed (a line cut short by a crash, say), which
    /// readers skip.
    pub fn parse(line: &str) -> Option<Self> {
        let mut parts = line.split_ascii_whitespace();
        let kind = parts.next()?;
        let mut next = || parts.next();
        let parsed = match kind {
            "o" => Self::Output { end: next()?.parse().ok()?, ms: next()?.parse().ok()? },
            "r" => Self::Resize {
                rows: next()?.parse().ok()?,
                cols: next()?.parse().ok()?,
                ms: next()?.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(parsed)
    }
}

/// The line as written, with its newline.
impl fmt::Display for TimingLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Output { end, ms } => writeln!(f, "o {end} {ms}"),
            Self::Resize { rows, cols, ms } => writeln!(f, "r {rows} {cols} {ms}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_bad_ones_are_skipped() {
        for line in
            [TimingLine::Output { end: 4096, ms: 12 }, TimingLine::Resize { rows: 40, cols: 120, ms: 7 }]
        {
            let text = line.to_string();
            assert!(text.ends_with('\n'));
            assert_eq!(TimingLine::parse(&text), Some(line));
        }
        assert_eq!(TimingLine::parse("o 6 0"), Some(TimingLine::Output { end: 6, ms: 0 }));
        for bad in ["", "o", "o 1", "o x 1", "r 1 2", "r 1 2 3 4", "x 1 2", "r 70000 1 1"] {
            assert_eq!(TimingLine::parse(bad), None, "{bad:?}");
        }
    }
}
