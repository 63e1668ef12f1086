//! `agentrelay-runner report <activity>`: how a process (or an agent's hook) tells HQ what it is
//! doing, exactly, instead of HQ guessing from its output.
//!
//! The runner listens on a Unix socket in its state dir (mode 0600); each session's environment
//! names it in `AGENTRELAY_REPORT_SOCKET`, beside `AGENTRELAY_SESSION_ID`. A report is one JSON
//! line; the answer is `ok` or `error: …`. The runner forwards it on the session's data
//! connection, in order with the output.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentrelay_protocol::Activity;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::session::SessionTable;

/// The variable naming the socket in a session's environment.
pub const SOCKET_VARIABLE: &str = "AGENTRELAY_REPORT_SOCKET";

/// Longest report line accepted.
const MAX_LINE: u64 = 4096;

/// One report.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    session_id: Uuid,
    activity: Activity,
}

/// The socket's path in a state dir.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("report.sock")
}

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the stale {}", path.display())),
    }
    let listener = UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

/// Answers reports until shutdown.
pub async fn serve(listener: UnixListener, sessions: Arc<SessionTable>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "report socket accept failed");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        // One short exchange per connection; a slow client only holds up itself.
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), answer(stream, &sessions)).await;
        });
    }
}

async fn answer(stream: UnixStream, sessions: &SessionTable) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_LINE)).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Report>(&line) {
        Ok(report) => match sessions.get(report.session_id) {
            Some(session) => {
                session.report_activity(report.activity);
                "ok".to_owned()
            }
            None => format!("error: no live session {} on this runner", report.session_id),
        },
        Err(e) => format!("error: bad report: {e}"),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await
}

/// The `report` subcommand: sends `activity` for the session this process runs in.
pub async fn send(activity: Activity) -> Result<(), String> {
    let session_id = std::env::var("AGENTRELAY_SESSION_ID")
        .map_err(|_| "not inside an AgentRelay session (AGENTRELAY_SESSION_ID is not set)".to_owned())?;
    let session_id = Uuid::parse_str(&session_id)
        .map_err(|_| format!("AGENTRELAY_SESSION_ID '{session_id}' is not an id"))?;
    let path = std::env::var(SOCKET_VARIABLE).map_err(|_| {
        format!("the runner gave this session no report socket ({SOCKET_VARIABLE} is not set)")
    })?;
    let exchange = async {
        let mut stream = UnixStream::connect(&path)
            .await
            .map_err(|e| format!("cannot reach the runner at {path}: {e}"))?;
        let line = serde_json::to_string(&Report { session_id, activity }).map_err(|e| e.to_string())?;
        stream.write_all(format!("{line}\n").as_bytes()).await.map_err(|e| e.to_string())?;
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).await.map_err(|e| e.to_string())?;
        match reply.trim() {
            "ok" => Ok(()),
            other => Err(other.trim_start_matches("error: ").to_owned()),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "the runner did not answer within 5 s".to_owned())?
}
