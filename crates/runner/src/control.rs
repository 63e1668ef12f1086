//! The runner's control connection: dial `/api/v1/ws/register`, say hello, exchange heartbeats,
//! and start sessions when HQ says so. Redials with backoff; only a refusal is fatal.

use std::sync::Arc;
use std::time::Duration;

use agentrelay_protocol::PROTOCOL_VERSION;
use agentrelay_protocol::runner::{
    Hello, HqMessage, RunnerMessage, SessionFailed, StartSession, WorkspaceReply, WorkspaceRequest,
};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, interval_at, timeout};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::dial::{DialError, HqSocket};
use crate::policy::{Launch, NotStarted};
use crate::session::{PtyOrder, Session};
use crate::{Runner, RunnerError, agent_hooks, data, host, workspace};

/// How long HQ may take to answer the hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Missed heartbeats from HQ before the runner redials.
const MISSED_BEATS: u32 = 3;

/// How one control connection ended, if not by a fatal refusal.
enum Ended {
    Shutdown,
    Dropped(anyhow::Error),
}

impl Runner {
    /// Keeps a control connection to HQ until shutdown.
    pub(crate) async fn control_loop(&self) -> Result<(), RunnerError> {
        let mut backoff = Backoff::default();
        let mut reported_unreachable = false;
        loop {
            match self.hq.dial("/api/v1/ws/register").await {
                Ok(socket) => {
                    backoff.reset();
                    reported_unreachable = false;
                    match self.serve_control(socket).await? {
                        Ended::Shutdown => return Ok(()),
                        Ended::Dropped(e) => {
                            tracing::warn!(error = format!("{e:#}"), "lost HQ; redialing");
                            // The data connections may be on the same dead path: they redial too.
                            self.relink.send_modify(|drops| *drops += 1);
                        }
                    }
                }
                Err(DialError::Refused(status)) => return Err(RunnerError::TokenRefused(status.to_string())),
                Err(DialError::Unreachable(e)) if !reported_unreachable => {
                    tracing::warn!(hq = self.hq.base(), error = %e, "HQ unreachable; retrying with backoff");
                    reported_unreachable = true;
                }
                Err(DialError::Unreachable(e)) => tracing::debug!(error = %e, "HQ still unreachable"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = self.shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn serve_control(&self, mut socket: HqSocket) -> Result<Ended, RunnerError> {
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let hello = Hello {
            id: self.id,
            name: self.name.clone(),
            labels: self.config.labels.iter().cloned().collect(),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            os: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            presets: self.presets.advertised(),
            sessions: self.sessions.live(),
            policy: self.policy.advertised(),
            ended,
            repos: self.workspaces.advertised().await,
            workspaces: true,
        };
        if let Err(e) = send(&mut socket, &RunnerMessage::Hello(hello)).await {
            return Ok(Ended::Dropped(e));
        }
        let beat_every = match timeout(WELCOME_TIMEOUT, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<HqMessage>(text.as_str()) {
                Ok(HqMessage::Welcome(welcome)) => {
                    Duration::from_millis(welcome.heartbeat_interval_ms.max(100))
                }
                Ok(HqMessage::Refused(refused)) => return Err(RunnerError::Refused(refused.message)),
                Ok(other) => return Ok(Ended::Dropped(anyhow::anyhow!("expected welcome, got {other:?}"))),
                Err(e) => return Ok(Ended::Dropped(anyhow::anyhow!("bad welcome: {e}"))),
            },
            Ok(other) => return Ok(Ended::Dropped(anyhow::anyhow!("expected welcome, got {other:?}"))),
            Err(_) => return Ok(Ended::Dropped(anyhow::anyhow!("no welcome within {WELCOME_TIMEOUT:?}"))),
        };
        tracing::info!(hq = self.hq.base(), id = %self.id, name = %self.name, "connected to HQ");
        // HQ has heard of them now.
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(match self.control_session(&mut socket, beat_every).await {
            Ok(()) => Ended::Shutdown,
            Err(e) => Ended::Dropped(e),
        })
    }

    async fn control_session(&self, socket: &mut HqSocket, every: Duration) -> anyhow::Result<()> {
        let mut beat = interval_at(Instant::now() + every, every);
        let mut last_heard = Instant::now();
        let mut outbox = self.outbox_rx.lock().await;
        loop {
            tokio::select! {
                Some(message) = outbox.recv() => send(socket, &message).await?,
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => bail!("HQ closed the connection: {frame:?}"),
                        None => bail!("HQ closed the connection"),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(e).context("control connection"),
                    };
                    last_heard = Instant::now();
                    match serde_json::from_str::<HqMessage>(text.as_str()) {
                        Ok(HqMessage::Start(start)) => {
                            if let Some(failed) = self.start_session(start).await {
                                send(socket, &RunnerMessage::SessionFailed(failed)).await?;
                            }
                        }
                        Ok(HqMessage::Workspace(request)) => self.workspace_request(request),
                        Ok(HqMessage::Heartbeat) => {}
                        Ok(other) => tracing::warn!(?other, "ignoring an unexpected control frame"),
                        Err(e) => tracing::warn!(error = %e, "ignoring a bad control frame"),
                    }
                }
                _ = beat.tick() => {
                    if last_heard.elapsed() > every * MISSED_BEATS {
                        bail!("no heartbeat from HQ for {:?}", last_heard.elapsed());
                    }
                    send(socket, &RunnerMessage::Heartbeat).await?;
                }
                _ = self.shutdown.cancelled() => {
                    let _ = socket.close(None).await;
                    return Ok(());
                }
            }
        }
    }

    /// Starts a session's process (under a host of its own) and its data connection; returns
    /// why it could not.
    async fn start_session(&self, start: StartSession) -> Option<SessionFailed> {
        if self.sessions.contains(start.session_id) {
            return None;
        }
        let failed = |not_started: NotStarted| {
            let refused = matches!(not_started, NotStarted::Refused(_));
            let error = not_started.to_string();
            // One line per refusal: what was refused and the flag that would allow it.
            tracing::warn!(session = %start.session_id, refused, %error, "refusing to start session");
            Some(SessionFailed { session_id: start.session_id, error, refused })
        };
        // A workspace session starts in the worktree this runner made for it, nowhere else.
        let workspace_dir = match start.workspace {
            false => None,
            true => match self.workspaces.worktree(start.session_id) {
                Some(dir) => Some(dir),
                None => {
                    let error = "this session's workspace is not on the runner".to_owned();
                    return failed(NotStarted::Invalid(error));
                }
            },
        };
        let (session, orders) = Session::new(start.session_id, self.config.buffer_size);
        let mut launch = match self.policy.admit(&start, &self.presets) {
            Ok(launch) => launch,
            Err(not_started) => return failed(not_started),
        };
        self.wire_telemetry(&start, &mut launch, &session);
        if let Some(dir) = workspace_dir {
            launch.cwd = Some(dir);
        }
        // Beside the report socket: the runner's state dir.
        if let Some(state_dir) = self.report_socket.parent() {
            agent_hooks::wire(&mut launch, state_dir);
        }
        // Held before its command starts: a command may report its activity at once, and the
        // report socket answers only for sessions it knows.
        self.sessions.insert(session.clone());
        let link = match self.host.spawn(&start, &launch, &self.report_socket).await {
            Ok(link) => link,
            Err(e) => {
                self.sessions.remove(start.session_id);
                return failed(NotStarted::Invalid(format!("{e:#}")));
            }
        };
        tracing::info!(session = %start.session_id, command = ?launch.command, "session started");
        if start.workspace {
            self.watch_workspace(&session);
        }
        self.run_session(session, link, orders);
        None
    }

    /// A session's two tasks: its host link (output in, orders out) and its data connection.
    fn run_session(&self, session: Arc<Session>, link: host::link::Link, orders: mpsc::Receiver<PtyOrder>) {
        self.sessions.insert(session.clone());
        // Every log line of a session's tasks carries its id.
        let span = tracing::info_span!("session", id = %session.id);
        let end_on_exit = self.config.end_sessions_on_exit;
        let hosted = host::link::run(session.clone(), link, orders, self.shutdown.clone(), end_on_exit);
        self.tasks.spawn(hosted.instrument(span.clone()));
        let data = data::stream(
            self.hq.clone(),
            self.id,
            session,
            Arc::clone(&self.sessions),
            self.relink.subscribe(),
            self.shutdown.clone(),
            !end_on_exit,
        );
        self.tasks.spawn(data.instrument(span));
    }

    /// Reports a workspace session's changes to HQ as its files change (nothing for a session
    /// without a worktree).
    fn watch_workspace(&self, session: &Arc<Session>) {
        let span = tracing::info_span!("session", id = %session.id);
        let watch = workspace::watch(
            self.workspaces.clone(),
            session.clone(),
            self.outbox.clone(),
            self.shutdown.clone(),
        );
        self.tasks.spawn(watch.instrument(span));
    }

    /// Takes back the sessions a previous runner process left running in their hosts, and notes
    /// those whose host is gone for the next hello.
    pub(crate) async fn take_back_sessions(&self) {
        let (adopted, ended) = self.host.adopt().await;
        *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = ended;
        for link in adopted {
            let hello = &link.hello;
            tracing::info!(session = %hello.session_id, end = hello.end, "took a session back from its host");
            let (session, orders) =
                Session::adopted(hello.session_id, self.config.buffer_size, hello.start, hello.end);
            self.watch_workspace(&session);
            self.run_session(session, link, orders);
        }
    }
}

impl Runner {
    /// Carries out a workspace request in its own task (git may take a while) and queues the
    /// reply for HQ.
    fn workspace_request(&self, request: WorkspaceRequest) {
        let workspaces = self.workspaces.clone();
        let outbox = self.outbox.clone();
        self.tasks.spawn(async move {
            let outcome = workspaces.handle(request.session_id, request.op).await;
            let reply = WorkspaceReply { request_id: request.request_id, outcome };
            let _ = outbox.send(RunnerMessage::WorkspaceReply(reply)).await;
        });
    }

    /// Points a preset's agent at this session's telemetry endpoint (tokens and cost), unless the
    /// user sends its telemetry somewhere already.
    fn wire_telemetry(&self, start: &StartSession, launch: &mut Launch, session: &Arc<Session>) {
        let (Some(collector), Some(def)) =
            (&self.telemetry, start.preset.as_deref().and_then(|n| self.presets.get(n)))
        else {
            return;
        };
        let Some(exporter) = def.telemetry else { return };
        if let Some(setting) = exporter.set_elsewhere(launch) {
            tracing::info!(session = %start.session_id, setting, "the agent's telemetry goes where the user sent it: no usage figures");
            return;
        }
        let endpoint = collector.endpoint_for(session);
        exporter.wire(&endpoint, launch);
    }
}

async fn send(socket: &mut HqSocket, message: &RunnerMessage) -> anyhow::Result<()> {
    let text = serde_json::to_string(message).context("encoding control frame")?;
    socket.send(Message::text(text)).await.context("sending to HQ")
}
