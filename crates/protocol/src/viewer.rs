//! Text frames of the session WebSocket (`/api/v1/ws/session/{id}`) between HQ and a viewer.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ActivityState, ExitStatus, SessionStatus, TermSize, ViewerInfo};

/// A control frame a viewer sends to HQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ClientFrame {
    /// This viewer's window size. The PTY takes it unless the viewer attached in watch mode
    /// (`?watch=true`) and has not typed yet; a read-only viewer's is refused.
    Resize(TermSize),
    /// Make this viewer the active one, as if it had typed: the PTY takes its last `resize`
    /// (the dashboard's "Fit to this window").
    Activate,
}

/// A control frame HQ sends to a viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Always the first frame: binary frames that follow start at `offset`.
    Attached(Attached),
    /// Output in `[from, to)` is gone; the stream goes on at `to`.
    Gap(Gap),
    /// The process ended; sent after its last output byte, then the socket closes.
    Exit(ExitStatus),
    /// A frame or a request went wrong.
    Error(FrameError),
    /// What the session is doing now; after `attached` and on every change.
    Activity(ActivityState),
    /// Who is attached now; after `attached` and on every change.
    Presence(Presence),
    /// The PTY's size now: right after `attached` (before any output) and on every change.
    Size(TermSize),
}

/// Payload of [`ServerFrame::Presence`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// Everyone attached, this viewer included.
    pub viewers: Vec<ViewerInfo>,
}

/// Payload of [`ServerFrame::Attached`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attached {
    /// The session attached to.
    pub session_id: Uuid,
    /// Offset of the first byte of the next binary frame.
    pub offset: u64,
    /// Whether the first binary frame is a screen snapshot outside the byte stream.
    pub snapshot: bool,
    /// The session's status at attach time.
    pub status: SessionStatus,
}

/// A hole in a byte stream: bytes `[from, to)` cannot be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// First missing offset.
    pub from: u64,
    /// First offset delivered again.
    pub to: u64,
}

/// Payload of [`ServerFrame::Error`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameError {
    /// What went wrong, for programs to match on.
    pub code: FrameErrorCode,
    /// A sentence for people.
    pub message: String,
}

impl FrameError {
    /// An error frame with `code` and `message`.
    pub fn new(code: FrameErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// The stable codes of [`FrameError`]; on the wire as snake_case strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameErrorCode {
    /// A control frame HQ could not read (recoverable).
    BadFrame,
    /// Too many control frames; this one was dropped (recoverable).
    RateLimited,
    /// A read-only viewer sent input or a resize; it was dropped (recoverable).
    ReadOnly,
    /// HQ stopped writing the session's output log; the live stream goes on (recoverable).
    LogStopped,
    /// The session's runner is disconnected; keystrokes wait for it (recoverable).
    RunnerOffline,
    /// The session was lost with its runner; the socket closes.
    SessionLost,
    /// The session failed to start; the socket closes.
    SessionFailed,
    /// A code this build does not know (from a newer HQ).
    #[serde(other)]
    Unknown,
}

impl FrameErrorCode {
    /// Every code HQ sends.
    pub const KNOWN: [Self; 7] = [
        Self::BadFrame,
        Self::RateLimited,
        Self::ReadOnly,
        Self::LogStopped,
        Self::RunnerOffline,
        Self::SessionLost,
        Self::SessionFailed,
    ];

    /// Whether the session is over: no `exit` frame will come, and the socket closes.
    pub fn ends_session(self) -> bool {
        matches!(self, Self::SessionLost | Self::SessionFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same fixtures the dashboard's `protocol.test.ts` parses: both sides agree on the JSON.
    #[test]
    fn shared_fixtures_round_trip() {
        let server: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../fixtures/server-frames.json")).expect("valid fixture");
        for value in server {
            let frame: ServerFrame = serde_json::from_value(value.clone()).expect("known server frame");
            assert_eq!(serde_json::to_value(&frame).expect("serializable"), value);
        }
        let client: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../fixtures/client-frames.json")).expect("valid fixture");
        for value in client {
            let frame: ClientFrame = serde_json::from_value(value.clone()).expect("known client frame");
            assert_eq!(serde_json::to_value(&frame).expect("serializable"), value);
        }
    }

    /// Every code is in the shared fixtures (so the dashboard's test knows them all), under
    /// its snake_case name, and an unknown one still parses.
    #[test]
    fn every_error_code_is_in_the_fixtures() {
        let server: Vec<ServerFrame> =
            serde_json::from_str(include_str!("../fixtures/server-frames.json")).expect("valid fixture");
        let codes: Vec<FrameErrorCode> = server
            .iter()
            .filter_map(|frame| match frame {
                ServerFrame::Error(error) => Some(error.code),
                _ => None,
            })
            .collect();
        for code in FrameErrorCode::KNOWN {
            // A new variant must be added to KNOWN (and the fixtures): this match says so.
            match code {
                FrameErrorCode::BadFrame
                | FrameErrorCode::RateLimited
                | FrameErrorCode::ReadOnly
                | FrameErrorCode::LogStopped
                | FrameErrorCode::RunnerOffline
                | FrameErrorCode::SessionLost
                | FrameErrorCode::SessionFailed
                | FrameErrorCode::Unknown => {}
            }
            assert!(codes.contains(&code), "{code:?} is missing from fixtures/server-frames.json");
        }
        assert_eq!(
            serde_json::to_string(&FrameErrorCode::RunnerOffline).expect("json"),
            r#""runner_offline""#
        );
        let newer: FrameError =
            serde_json::from_str(r#"{"code":"from_the_future","message":"m"}"#).expect("unknown code parses");
        assert_eq!(newer.code, FrameErrorCode::Unknown);
    }

    #[test]
    fn frames_match_the_contract() {
        let resize: ClientFrame =
            serde_json::from_str(r#"{"type":"resize","payload":{"rows":24,"cols":80}}"#)
                .expect("valid resize frame");
        assert_eq!(resize, ClientFrame::Resize(TermSize { rows: 24, cols: 80 }));

        let exit = ServerFrame::Exit(ExitStatus { code: None, signal: Some("SIGKILL".into()) });
        assert_eq!(
            serde_json::to_string(&exit).expect("serializable"),
            r#"{"type":"exit","payload":{"code":null,"signal":"SIGKILL"}}"#
        );
        let gap = ServerFrame::Gap(Gap { from: 3, to: 9 });
        assert_eq!(
            serde_json::to_string(&gap).expect("serializable"),
            r#"{"type":"gap","payload":{"from":3,"to":9}}"#
        );
    }
}
