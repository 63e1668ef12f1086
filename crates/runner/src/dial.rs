//! Dialing HQ: URL building, the bearer header, buffer limits, and telling a refusal (fatal) from
//! an unreachable HQ (retried).

use std::path::Path;
use std::sync::Arc;

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

/// Why `--hq` or `--ca-cert` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// `--hq` is not a URL HQ can be dialed at.
    #[error("--hq '{0}' must start with http://, https://, ws:// or wss://")]
    BadUrl(String),
    /// `--ca-cert` cannot be read.
    #[error("cannot read --ca-cert {path}: {error}")]
    UnreadableCa {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        error: rustls::pki_types::pem::Error,
    },
    /// `--ca-cert` holds no certificate.
    #[error("--ca-cert {0} holds no PEM certificate")]
    EmptyCa(std::path::PathBuf),
    /// A certificate in `--ca-cert` is not usable as a root.
    #[error("--ca-cert {path}: {error}")]
    BadCa {
        /// The file.
        path: std::path::PathBuf,
        /// What rustls said.
        error: rustls::Error,
    },
}

/// Where HQ is, and the token to show it.
#[derive(Clone)]
pub struct HqEndpoint {
    base: String,
    token: String,
    /// TLS settings for wss://: the system's roots plus any `--ca-cert`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// The system's root certificates plus those in `ca_cert`, for wss:// connections.
pub fn tls_config(ca_cert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, EndpointError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_cert {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect())
            .map_err(|error| EndpointError::UnreadableCa { path: path.to_owned(), error })?;
        if certs.is_empty() {
            return Err(EndpointError::EmptyCa(path.to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|error| EndpointError::BadCa { path: path.to_owned(), error })?;
        }
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(Arc::new(config))
}

impl HqEndpoint {
    /// Accepts `ws(s)://` or `http(s)://` base URLs; `ca_cert` adds a private CA for wss://.
    pub fn new(url: &str, token: String, ca_cert: Option<&Path>) -> Result<Self, EndpointError> {
        let url = url.trim().trim_end_matches('/');
        let base = if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if url.starts_with("ws://") || url.starts_with("wss://") {
            url.to_owned()
        } else {
            return Err(EndpointError::BadUrl(url.to_owned()));
        };
        let tls = if base.starts_with("wss://") { Some(tls_config(ca_cert)?) } else { None };
        Ok(Self { base, token, tls })
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
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        match tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector).await {
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
        assert_eq!(HqEndpoint::new("http://h:1/", token.clone(), None).expect("ok").base(), "ws://h:1");
        assert_eq!(HqEndpoint::new("https://h", token.clone(), None).expect("ok").base(), "wss://h");
        assert_eq!(HqEndpoint::new("wss://h", token.clone(), None).expect("ok").base(), "wss://h");
        assert!(HqEndpoint::new("h:8080", token.clone(), None).is_err());
        let missing = HqEndpoint::new("wss://h", token, Some(Path::new("/nonexistent.pem")));
        assert!(missing.err().expect("refused").to_string().contains("cannot read --ca-cert"));
    }
}
