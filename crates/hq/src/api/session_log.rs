//! `GET /api/sessions/{id}/log`: a session's whole output, from its log on disk, as the raw bytes
//! the process printed or (`?format=text`) as text without escape sequences, streamed as it is
//! read. The dashboard's Download button; the terminal's scrollback keeps only the last lines.

use agentrelay_protocol::ErrorResponse;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::Response;
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::Principal;
use crate::error::AppError;
use crate::state::AppState;

/// How much of the log is read (and sent) at a time.
const CHUNK: usize = 64 * 1024;

/// `?format=` of `GET /api/sessions/{id}/log`, as the document names its values.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only described: the handler reads the text, to name an unknown one.
pub enum LogFormat {
    /// The bytes as printed, escape sequences and all.
    Raw,
    /// Text: escape sequences, carriage returns and other control characters taken out.
    Text,
}

/// Query of `GET /api/sessions/{id}/log`.
#[derive(Debug, serde::Deserialize)]
pub struct LogQuery {
    /// `text` for text; the raw bytes otherwise.
    format: Option<String>,
}

/// `GET /api/sessions/{id}/log`: the whole output, raw or as text.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}/log",
    tag = "sessions",
    operation_id = "session_log",
    params(
        ("id" = Uuid, Path, description = "Session id"),
        ("format" = Option<LogFormat>, Query, description = "`raw` (default) or `text`"),
    ),
    responses(
        (status = 200, description = "The whole output so far, streamed: raw bytes, or (`?format=text`) text \
            without escape sequences",
            content(
                (String = "application/octet-stream"),
                (String = "text/plain"),
            ),
            headers(
                ("Content-Disposition" = String, description = "`attachment; filename=\"{id}.log\"` (`.txt` as text)"),
            )),
        (status = 400, description = "An unknown `format`", body = ErrorResponse),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "A share or runner token, or neither an admin nor the session's creator",
            body = ErrorResponse),
        (status = 404, description = "No session with this id, or it has no log", body = ErrorResponse),
    )
)]
pub async fn log(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(|_| AppError::bad_field("format", "'format' must be raw or text"))?;
    let text = match query.format.as_deref() {
        None | Some("raw") => false,
        Some("text") => true,
        Some(other) => {
            return Err(AppError::bad_field("format", format!("unknown format '{other}': use raw or text")));
        }
    };
    // Output can hold secrets an agent printed: whoever may watch the session, as for recordings.
    let session = crate::authz::session(&state, &principal, &id, crate::authz::Need::Watch)?;
    session.logged(std::time::Duration::from_secs(5)).await;
    let log = session.output_files().await?.ok_or_else(|| {
        AppError::NotFound(format!("session '{id}' has no log (its output log could not be written)"))
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        // The whole value: a cluster's copy is deleted when it is dropped.
        let log = log;
        let mut file = match std::fs::File::open(&log.out) {
            Ok(file) => file,
            Err(error) => {
                let _ = tx.blocking_send(Err(error));
                return;
            }
        };
        let mut plain = text.then(PlainText::default);
        let mut buffer = vec![0; CHUNK];
        loop {
            let read = match file.read(&mut buffer) {
                Ok(0) => return,
                Ok(read) => read,
                Err(error) => {
                    let _ = tx.blocking_send(Err(error));
                    return;
                }
            };
            let chunk = match &mut plain {
                Some(plain) => Bytes::from(plain.feed(&buffer[..read])),
                None => Bytes::copy_from_slice(&buffer[..read]),
            };
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // The client went away.
            }
        }
    });
    let (content_type, extension) =
        if text { ("text/plain; charset=utf-8", "txt") } else { ("application/octet-stream", "log") };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{id}.{extension}\""))
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .map_err(|e| AppError::Internal(e.into()))
}

/// Takes escape sequences (CSI, OSC, DCS and the like, and two-byte ones), carriage returns and
/// other control characters but newline and tab out of a byte stream, across chunk boundaries.
/// UTF-8 passes through untouched.
#[derive(Default)]
struct PlainText {
    state: Escape,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Plain text.
    #[default]
    Ground,
    /// After ESC.
    Start,
    /// ESC followed by intermediate bytes, until the final byte.
    Intermediate,
    /// `ESC [`: until a final byte (0x40–0x7E).
    Csi,
    /// `ESC ]`, `ESC P`, `ESC X`, `ESC ^`, `ESC _`: a string until BEL or `ESC \`.
    String,
    /// ESC inside a string: `\` ends it.
    StringEnd,
}

impl PlainText {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for &byte in bytes {
            self.state = match (self.state, byte) {
                (Escape::Ground, 0x1b) => Escape::Start,
                (Escape::Ground, b'\n' | b'\t') => {
                    out.push(byte);
                    Escape::Ground
                }
                (Escape::Ground, 0x00..=0x1f | 0x7f) => Escape::Ground,
                (Escape::Ground, _) => {
                    out.push(byte);
                    Escape::Ground
                }
                (Escape::Start, b'[') => Escape::Csi,
                (Escape::Start, b']' | b'P' | b'X' | b'^' | b'_') => Escape::String,
                (Escape::Start | Escape::Intermediate, 0x20..=0x2f) => Escape::Intermediate,
                (Escape::Start | Escape::Intermediate, _) => Escape::Ground,
                (Escape::Csi, 0x40..=0x7e) => Escape::Ground,
                (Escape::Csi, _) => Escape::Csi,
                (Escape::String, 0x07) => Escape::Ground,
                (Escape::String, 0x1b) => Escape::StringEnd,
                (Escape::String, _) => Escape::String,
                (Escape::StringEnd, b'\\') => Escape::Ground,
                (Escape::StringEnd, _) => Escape::String,
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(chunks: &[&[u8]]) -> String {
        let mut text = PlainText::default();
        let bytes: Vec<u8> = chunks.iter().flat_map(|chunk| text.feed(chunk)).collect();
        String::from_utf8(bytes).expect("utf-8 in, utf-8 out")
    }

    #[test]
    fn escapes_carriage_returns_and_controls_go_text_stays() {
        assert_eq!(plain(&[b"\x1b[1;31mred\x1b[0m\r\nplain\ttab\n"]), "red\nplain\ttab\n");
        assert_eq!(plain(&[b"\x1b]0;a title\x07after\x1b]8;;http://x\x1b\\link\n"]), "afterlink\n");
        assert_eq!(
            plain(&[b"\x1b(Bcharset \x1b=keypad\x1b[?1049hscreen\x08\x07\n"]),
            "charset keypadscreen\n"
        );
        assert_eq!(plain(&[b"10%\r20%\rdone\n"]), "10%20%done\n");
    }

    #[test]
    fn sequences_and_utf8_split_across_chunks() {
        assert_eq!(plain(&[b"caf\xc3", b"\xa9 \x1b[3", b"2mok\x1b", b"[0m\n"]), "café ok\n");
        assert_eq!(plain(&[b"a\x1b]0;ti", b"tle\x1b", b"\\b\n"]), "ab\n");
    }
}
