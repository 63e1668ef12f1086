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

/// Where HQ is (one URL, or one per replica), and the token to show it.
#[derive(Clone)]
pub struct HqEndpoint {
    /// Every HQ address, in the order given.
    bases: Arc<[String]>,
    /// The one that answered last: dials start there and stay while it answers.
    current: Arc<std::sync::atomic::AtomicUsize>,
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
        Self::several(&[url.to_owned()], token, ca_cert)
    }

    /// Several HQ replicas' URLs: a dial tries them in turn, from the one that answered last.
    pub fn several(urls: &[String], token: String, ca_cert: Option<&Path>) -> Result<Self, EndpointError> {
        let bases: Vec<String> = urls.iter().map(|url| websocket_base(url)).collect::<Result<_, _>>()?;
        if bases.is_empty() {
            return Err(EndpointError::BadUrl(String::new()));
        }
        let tls =
            if bases.iter().any(|b| b.starts_with("wss://")) { Some(tls_config(ca_cert)?) } else { None };
        Ok(Self { bases: bases.into(), current: Arc::default(), token, tls })
    }

    /// The base URL in use (the last that answered), for messages.
    pub fn base(&self) -> &str {
        let current = self.current.load(std::sync::atomic::Ordering::Relaxed);
        &self.bases[current % self.bases.len()]
    }

    /// Opens a WebSocket to `path` on HQ: on the replica that answered last, else on the next
    /// that answers. A refused token ends it at once (every replica shares the tokens).
    pub async fn dial(&self, path: &str) -> Result<HqSocket, DialError> {
        use std::sync::atomic::Ordering;
        let first = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..self.bases.len() {
            let index = (first + step) % self.bases.len();
            match self.dial_at(&self.bases[index], path).await {
                Ok(socket) => {
                    if step > 0 {
                        self.current.store(index, Ordering::Relaxed);
                        tracing::info!(hq = %self.bases[index], "now using this HQ");
                    }
                    return Ok(socket);
                }
                Err(refused @ DialError::Refused(_)) => return Err(refused),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| DialError::Unreachable("no HQ address".to_owned())))
    }

    async fn dial_at(&self, base: &str, path: &str) -> Result<HqSocket, DialError> {
        let mut request = format!("{base}{path}")
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

/// The WebSocket base of an HQ URL given as `ws(s)://` or `http(s)://`.
fn websocket_base(url: &str) -> Result<String, EndpointError> {
    let url = url.trim().trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = url.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(url.to_owned())
    } else {
        Err(EndpointError::BadUrl(url.to_owned()))
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
        let several = ["http://a:1".to_owned(), "https://b:2/".to_owned()];
        let both = HqEndpoint::several(&several, token.clone(), None).expect("ok");
        assert_eq!(&*both.bases, ["ws://a:1", "wss://b:2"]);
        assert_eq!(both.base(), "ws://a:1", "the first until another answers");
        assert!(
            HqEndpoint::several(&["http://a".to_owned(), "a:1".to_owned()], token.clone(), None).is_err()
        );
        assert!(HqEndpoint::several(&[], token.clone(), None).is_err());
        let missing = HqEndpoint::new("wss://h", token, Some(Path::new("/nonexistent.pem")));
        assert!(missing.err().expect("refused").to_string().contains("cannot read --ca-cert"));
    }
}
