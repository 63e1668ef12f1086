//! Dialing HQ: URL building, the bearer header, buffer limits, and telling a refusal (fatal) from
//! an unreachable HQ (retried).

use agentrelay_protocol::runner::DataUp;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket to HQ.
pub type HqSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest message the runner accepts from HQ (input pastes are at most this big).
const MAX_MESSAGE: usize = 1024 * 1024;

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// HQ answered 401/403: the token is wrong or revoked. Retrying will not help.
    #[error("HQ refused the runner token ({0})")]
    Refused(StatusCode),
    /// Anything else (HQ down, network, TLS): worth retrying.
    #[error("{0}")]
    Unreachable(String),
}

/// Where HQ is, and the token to show it.
#[derive(Clone)]
pub struct HqEndpoint {
    base: String,
    token: String,
}

impl HqEndpoint {
    /// Accepts `ws(s)://` or `http(s)://` base URLs.
    pub fn new(url: &str, token: String) -> Result<Self, String> {
        let url = url.trim().trim_end_matches('/');
        let base = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if url.starts_with("ws://") || url.starts_with("wss://") {
            url.to_owned()
        } else {
            return Err(format!("--hq '{url}' must start with http://, https://, ws:// or wss://"));
        };
        Ok(Self { base, token })
    }

    /// The base URL, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Opens a WebSocket to `path` on HQ.
    pub async fn dial(&self, path: &str) -> Result<HqSocket, DialError> {
        let mut request = format!("{}{path}", self.base)
            .into_client_request()
            .map_err(|e| DialError::Unreachable(format!("bad HQ URL: {e}")))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.token)).map_err(|_| {
            DialError::Unreachable("token contains characters not allowed in a header".to_owned())
        })?;
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
            Ok((socket, _)) => Ok(socket),
            Err(tungstenite::Error::Http(response))
                if matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) =>
            {
                Err(DialError::Refused(response.status()))
            }
            Err(tungstenite::Error::Http(response)) => {
                Err(DialError::Unreachable(format!("HQ answered {}", response.status())))
            }
            Err(e) => Err(DialError::Unreachable(e.to_string())),
        }
    }
}

/// Encodes a data-connection control frame.
pub fn data_frame(frame: &DataUp) -> Message {
    // Serializing these plain structs cannot fail.
    Message::text(serde_json::to_string(frame).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_ws_urls() {
        let token = String::from("t");
        assert_eq!(HqEndpoint::new("http://h:1/", token.clone()).expect("ok").base(), "ws://h:1");
        assert_eq!(HqEndpoint::new("https://h", token.clone()).expect("ok").base(), "wss://h");
        assert_eq!(HqEndpoint::new("wss://h", token.clone()).expect("ok").base(), "wss://h");
        assert!(HqEndpoint::new("h:8080", token).is_err());
    }
}
