//! `Api`: HQ's REST API and session WebSocket, with the bearer token and one TLS setup for both.

use std::path::Path;
use std::sync::Arc;

use agentrelay_protocol::{ErrorResponse, Session};
use anyhow::Context;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};
use uuid::Uuid;

use crate::error::{CliError, root_cause};

/// A session WebSocket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest message accepted from HQ; its output frames are at most 64 KiB, snapshots a little more.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// A client of one HQ with one token.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
}

impl Api {
    /// `base` is `http(s)://host[:port]`; `ca_cert` adds a private CA to the system's roots.
    pub fn new(base: &str, token: String, ca_cert: Option<&Path>) -> Result<Self, CliError> {
        let base = base.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Config(format!("HQ address '{base}' must start with http:// or https://")));
        }
        let tls = tls_config(ca_cert)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("agentrelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { base, token, http, tls })
    }

    /// HQ's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path` decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let response = self.send(self.http.get(self.url(path))).await?;
        response.json().await.map_err(|e| self.bad_answer(path, &e))
    }

    /// `POST path` with a JSON body, decoded as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, CliError> {
        let response = self.send(self.http.post(self.url(path)).json(body)).await?;
        response.json().await.map_err(|e| self.bad_answer(path, &e))
    }

    /// `POST path` with a JSON body, when the answer says nothing but its status.
    pub async fn post_no_answer(&self, path: &str, body: &serde_json::Value) -> Result<(), CliError> {
        self.send(self.http.post(self.url(path)).json(body)).await.map(drop)
    }

    /// `PATCH path` with a JSON body, decoded as `T`.
    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, CliError> {
        let response = self.send(self.http.patch(self.url(path)).json(body)).await?;
        response.json().await.map_err(|e| self.bad_answer(path, &e))
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), CliError> {
        self.send(self.http.delete(self.url(path))).await.map(drop)
    }

    /// `GET path`, for a body streamed by the caller.
    pub async fn get_stream(&self, path: &str) -> Result<reqwest::Response, CliError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// The session `arg` names: a whole id, or a prefix of exactly one session's id.
    pub async fn resolve_session(&self, arg: &str) -> Result<Session, CliError> {
        let arg = arg.trim();
        if let Ok(id) = Uuid::parse_str(arg) {
            return self.get(&format!("/api/sessions/{id}")).await;
        }
        let prefix = arg.to_ascii_lowercase();
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(not_found(format!("'{arg}' is not a session id")));
        }
        let sessions: Vec<Session> = self.get("/api/sessions").await?;
        let mut matches = sessions.into_iter().filter(|s| s.id.to_string().starts_with(&prefix));
        match (matches.next(), matches.next()) {
            (Some(session), None) => Ok(session),
            (None, _) => Err(not_found(format!("no session with id '{arg}'"))),
            (Some(_), Some(_)) => {
                Err(CliError::Config(format!("'{arg}' matches more than one session; give more of the id")))
            }
        }
    }

    /// Opens the session WebSocket, from `from` when given.
    pub async fn dial_session(&self, id: Uuid, from: Option<u64>) -> Result<Socket, CliError> {
        let ws_base = match self.base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", self.base.trim_start_matches("http://")),
        };
        let query = from.map(|from| format!("?from={from}")).unwrap_or_default();
        let mut request = format!("{ws_base}/api/v1/ws/session/{id}{query}")
            .into_client_request()
            .map_err(|e| CliError::Config(format!("bad HQ address '{}': {e}", self.base)))?;
        request.headers_mut().insert(header::AUTHORIZATION, self.bearer()?);
        let config = WebSocketConfig::default()
            .read_buffer_size(64 * 1024)
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let dial =
            tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, Some(connector));
        match tokio::time::timeout(std::time::Duration::from_secs(15), dial).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().unwrap_or_default();
                Err(self.refusal(status, body))
            }
            Ok(Err(e)) => Err(self.unreachable(&e)),
            Err(_) => Err(CliError::Unreachable { url: self.base.clone(), reason: "timed out".into() }),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn bearer(&self) -> Result<HeaderValue, CliError> {
        HeaderValue::from_str(&format!("Bearer {}", self.token))
            .map_err(|_| CliError::Config("the token contains characters not allowed in a header".into()))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CliError> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(self.refusal(status.as_u16(), &body))
    }

    /// Turns an error answer into the contract's message, or a plain one if the body is not ours.
    fn refusal(&self, status: u16, body: &[u8]) -> CliError {
        if status == 401 {
            return CliError::Unauthorized { url: self.base.clone() };
        }
        match serde_json::from_slice::<ErrorResponse>(body) {
            Ok(ErrorResponse { error }) => CliError::Api { status, code: error.code, message: error.message },
            Err(_) => CliError::Api {
                status,
                code: String::new(),
                message: format!("HQ at {} answered {status}", self.base),
            },
        }
    }

    fn unreachable(&self, error: &(dyn std::error::Error + 'static)) -> CliError {
        CliError::Unreachable { url: self.base.clone(), reason: root_cause(error) }
    }

    fn bad_answer(&self, path: &str, error: &reqwest::Error) -> CliError {
        CliError::Other(anyhow::anyhow!("HQ at {} sent an unexpected answer to {path}: {error}", self.base))
    }
}

fn not_found(message: String) -> CliError {
    CliError::Api { status: 404, code: "not_found".into(), message }
}

/// The system's root certificates plus those in `ca_cert`.
fn tls_config(ca_cert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, CliError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_cert {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect())
            .map_err(|e| CliError::Config(format!("cannot read --ca-cert {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(CliError::Config(format!("--ca-cert {} holds no PEM certificate", path.display())));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| CliError::Config(format!("--ca-cert {}: {e}", path.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(Arc::new(config))
}
