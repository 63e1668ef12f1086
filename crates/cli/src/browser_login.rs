//! `agentrelay login` on a terminal with no token: sign in through the browser. The CLI listens
//! on a loopback port and opens HQ's page "Allow the CLI on <host> to act as you?"; HQ hands a
//! one-time code back to the listener, and the CLI trades it, with the PKCE verifier only it
//! knows, for a token of its own. No token ever travels in a URL.

use std::time::Duration;

use agentrelay_protocol::CreatedToken;
use anyhow::Context;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::client::Api;
use crate::console::say;
use crate::error::CliError;

/// How long the CLI waits for the browser.
const WAIT: Duration = Duration::from_secs(300);

/// Runs the browser sign-in against `api`'s HQ: the token HQ made for this CLI.
pub async fn sign_in(api: &Api, open_browser: bool) -> Result<CreatedToken, CliError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("listening on a loopback port")?;
    let port = listener.local_addr().context("the loopback port")?.port();
    let verifier = random_url_safe(32);
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_url_safe(16);
    let host = gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this machine".to_owned());
    let url = format!(
        "{}/api/auth/cli?port={port}&state={state}&code_challenge={challenge}&host={}",
        api.base(),
        percent_encode(&host)
    );
    say(&format!("To sign in, open this page (and allow the CLI on {host}):\n  {url}"));
    if open_browser {
        open(&url);
    }
    let code = tokio::time::timeout(WAIT, wait_for_code(&listener, &state))
        .await
        .map_err(|_| CliError::Config(format!("no answer from the browser within {WAIT:?}")))??;
    let body = serde_json::json!({ "code": code, "code_verifier": verifier });
    api.post("/api/auth/cli/token", &body).await
}

/// Answers requests on the listener until one brings this sign-in's code (or its refusal).
async fn wait_for_code(listener: &TcpListener, state: &str) -> Result<String, CliError> {
    loop {
        let (mut stream, _) = listener.accept().await.context("accepting the browser's answer")?;
        let mut buffer = vec![0u8; 8192];
        let mut read = 0;
        // The request line and headers; nothing else is needed.
        while read < buffer.len() && !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer[read..])).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => read += n,
            }
        }
        let request = String::from_utf8_lossy(&buffer[..read]).into_owned();
        let target = request.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let query = target.strip_prefix("/callback?").unwrap_or_default();
        let param = |name: &str| {
            query.split('&').find_map(|pair| pair.strip_prefix(&format!("{name}="))).map(str::to_owned)
        };
        if param("state").as_deref() != Some(state) {
            respond(&mut stream, "404 Not Found", "Not a sign-in of this CLI.").await;
            continue;
        }
        if let Some(error) = param("error") {
            respond(&mut stream, "200 OK", "The CLI was not allowed. You can close this tab.").await;
            return Err(CliError::Config(format!("the sign-in was refused in the browser ({error})")));
        }
        let Some(code) = param("code").filter(|c| !c.is_empty()) else {
            respond(&mut stream, "400 Bad Request", "No code in this answer.").await;
            continue;
        };
        respond(&mut stream, "200 OK", "The CLI is signed in. You can close this tab.").await;
        return Ok(code);
    }
}

async fn respond(stream: &mut tokio::net::TcpStream, status: &str, text: &str) {
    let body = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>AgentRelay CLI</title>\
         <body style=\"font-family: system-ui, sans-serif; margin: 4rem auto; max-width: 40rem\"><p>{text}</p>"
    );
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Opens `url` in the desktop's browser, if there is one; the URL is printed either way.
fn open(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        say("(no browser could be opened: open the page above in a browser on this machine)");
    }
}

fn random_url_safe(bytes: usize) -> String {
    let mut secret = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut secret);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
