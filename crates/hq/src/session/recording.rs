//! Renders a session's output log as an asciicast v2 recording (`asciinema play` plays it).
//!
//! asciicast events hold text, so bytes are decoded as UTF-8 with a multi-byte character split
//! across two writes carried over to the next event, and invalid bytes shown as U+FFFD.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use agentrelay_protocol::TermSize;
use anyhow::Context;
use serde_json::json;

use super::timing::TimingLine;

/// What the header says about the session.
pub struct Header<'a> {
    /// Unix time the session started.
    pub timestamp: i64,
    /// The command, as the title.
    pub title: &'a str,
}

/// Writes the recording line by line to `emit` (each line ends with `\n`). Blocking.
pub fn render(
    out_path: &Path,
    timing_path: &Path,
    header: &Header<'_>,
    mut emit: impl FnMut(String) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let timing = BufReader::new(File::open(timing_path).context("opening the timing index")?);
    let mut out = File::open(out_path).context("opening the output log")?;
    let mut lines = Vec::new();
    for line in timing.lines() {
        // A malformed line (cut short by a crash) is skipped, as it always was.
        lines.extend(TimingLine::parse(&line.context("reading the timing index")?));
    }

    // The first resize line is the starting size.
    let first = lines.iter().find_map(|line| match line {
        TimingLine::Resize { rows, cols, .. } => Some(TermSize { rows: *rows, cols: *cols }),
        TimingLine::Output { .. } => None,
    });
    let TermSize { mut rows, mut cols } = first.unwrap_or(TermSize::DEFAULT);
    let head = json!({
        "version": 2,
        "width": cols,
        "height": rows,
        "timestamp": header.timestamp,
        "title": header.title,
        "env": {"TERM": "xterm-256color"},
    });
    emit(format!("{head}\n"))?;

    let mut written = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    let mut first_resize = true;
    for line in lines {
        match line {
            TimingLine::Output { end, ms } => {
                if end <= written {
                    continue;
                }
                let mut chunk = std::mem::take(&mut carry);
                let start = chunk.len();
                chunk.resize(start + (end - written) as usize, 0);
                out.seek(SeekFrom::Start(written))?;
                out.read_exact(&mut chunk[start..]).context("output log shorter than its index")?;
                written = end;
                let text = decode(&mut chunk, &mut carry);
                if !text.is_empty() {
                    emit(format!("{}\n", json!([seconds(ms), "o", text])))?;
                }
            }
            TimingLine::Resize { rows: r, cols: c, ms } => {
                if first_resize && (r, c) == (rows, cols) {
                    first_resize = false;
                    continue;
                }
                first_resize = false;
                (rows, cols) = (r, c);
                emit(format!("{}\n", json!([seconds(ms), "r", format!("{cols}x{rows}")])))?;
            }
        }
    }
    Ok(())
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Decodes `bytes` as UTF-8, moving an incomplete character at the end into `carry`.
fn decode(bytes: &mut Vec<u8>, carry: &mut Vec<u8>) -> String {
    let mut text = String::with_capacity(bytes.len());
    let mut rest: &[u8] = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                text.push_str(valid);
                break;
            }
            Err(error) => {
                let (valid, after) = rest.split_at(error.valid_up_to());
                text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match error.error_len() {
                    Some(bad) => {
                        text.push('\u{FFFD}');
                        rest = &after[bad..];
                    }
                    None => {
                        // A character cut in half by the write boundary: finish it next time.
                        carry.extend_from_slice(after);
                        break;
                    }
                }
            }
        }
    }
    bytes.clear();
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::output_log::OutputLog;

    #[test]
    fn renders_output_and_resizes_with_split_characters_joined() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = OutputLog::open(dir.path(), uuid::Uuid::now_v7(), 0).expect("open");
        log.note_resize(TermSize { rows: 30, cols: 100 }).expect("resize");
        let euro = "€".as_bytes(); // three bytes, split across two writes
        log.append(&[b"price: ".as_slice(), &euro[..1]].concat()).expect("append");
        log.append(&[&euro[1..], b"5\r\n\xff".as_slice()].concat()).expect("append");
        log.note_resize(TermSize { rows: 40, cols: 120 }).expect("resize");
        let (out, timing) = log.paths();
        let mut lines = Vec::new();
        render(out, timing, &Header { timestamp: 1, title: "t" }, |l| {
            lines.push(l);
            Ok(())
        })
        .expect("render");
        let header: serde_json::Value = serde_json::from_str(&lines[0]).expect("header");
        assert_eq!(
            (header["version"].as_i64(), header["width"].as_i64(), header["height"].as_i64()),
            (Some(2), Some(100), Some(30))
        );
        let events: Vec<serde_json::Value> =
            lines[1..].iter().map(|l| serde_json::from_str(l).expect("event")).collect();
        let text: String =
            events.iter().filter(|e| e[1] == "o").map(|e| e[2].as_str().expect("text")).collect();
        assert_eq!(text, "price: €5\r\n\u{FFFD}");
        assert_eq!(events.last().expect("resize")[1], "r");
        assert_eq!(events.last().expect("resize")[2], "120x40");
    }
}
