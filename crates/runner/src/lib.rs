//! AgentRelay runner: dials HQ (`control`), runs sessions in PTYs (`pty`), keeps their output in
//! rings (`session`) and streams each over its own data connection (`data`).
//!
//! `main.rs` only parses flags and waits for a signal; everything here is testable through
//! [`Runner::new`] and [`Runner::run`].

pub mod agent_hooks;
pub mod backoff;
pub mod config;
pub mod control;
pub mod data;
pub mod dial;
pub mod host;
pub mod identity;
pub mod policy;
pub mod presets;
pub mod report;
pub mod service;
pub mod session;
pub mod telemetry;
pub mod workspace;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub use config::RunnerConfig;
use dial::HqEndpoint;
use session::SessionTable;

/// Control frames other tasks may queue for HQ while the control connection is down; past
/// this, change reports are dropped (a later change sends a newer one).
const OUTBOX: usize = 256;

/// Why a runner stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A flag or the state dir is unusable.
    #[error("{0}")]
    Config(String),
    /// `--hq` or `--ca-cert` is unusable.
    #[error(transparent)]
    Endpoint(#[from] dial::EndpointError),
    /// HQ rejected the token; redialing would not help.
    #[error("HQ refused the runner token ({0}); check --token / RUNNER_TOKEN")]
    TokenRefused(String),
    /// HQ refused the hello (name taken, protocol version).
    #[error("HQ refused this runner: {0}")]
    Refused(String),
}

/// A configured runner.
pub struct Runner {
    config: RunnerConfig,
    id: Uuid,
    name: String,
    hq: HqEndpoint,
    sessions: Arc<SessionTable>,
    /// What this runner offers to start by name.
    presets: presets::Presets,
    /// What it lets HQ start.
    policy: policy::Policy,
    /// How each session's process is started.
    host: host::link::HostConfig,
    /// Sessions a previous runner process held whose process is gone: said in the next hello.
    ended: std::sync::Mutex<Vec<agentrelay_protocol::runner::EndedSession>>,
    /// Where agents send their OpenTelemetry (tokens and cost); `None` if the port would not bind.
    telemetry: Option<Arc<telemetry::Collector>>,
    /// Where sessions report their activity (`agentrelay-runner report`).
    report_socket: std::path::PathBuf,
    /// The repositories it offers and the worktrees it made (`workspace`).
    workspaces: Arc<workspace::Workspaces>,
    /// Control frames for HQ from other tasks (workspace replies, change reports); the control
    /// connection sends them while it is up. Never closes (the runner holds both ends).
    outbox: tokio::sync::mpsc::Sender<agentrelay_protocol::runner::RunnerMessage>,
    /// Its receiving end, held by the current control connection.
    outbox_rx: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<agentrelay_protocol::runner::RunnerMessage>>,
    /// Counts control connections lost. Each session's data connection redials when it
    /// changes: a control connection that went quiet says the path to that HQ is gone (a
    /// partition), which a data connection, silent itself while its session prints nothing or
    /// stuck on a full socket, would otherwise learn only from TCP minutes later. Sent by the
    /// control loop; the runner holds it, so it never closes while sessions run.
    relink: tokio::sync::watch::Sender<u64>,
    /// Cancelled to stop the runner; sessions are hung up.
    shutdown: CancellationToken,
    /// Every session's PTY and data tasks, awaited on shutdown.
    tasks: TaskTracker,
}

impl Runner {
    /// Checks the flags and loads (or creates) the runner's id.
    pub fn new(config: RunnerConfig) -> Result<Self, RunnerError> {
        // tokio-tungstenite leaves the choice of rustls crypto provider to us; without one
        // installed, wss:// fails at the first handshake. Already installed is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let token = config.resolved_token().ok_or_else(|| {
            RunnerError::Config("no runner token: pass --token or set RUNNER_TOKEN".to_owned())
        })?;
        let hq = HqEndpoint::several(&config.hq, token, config.ca_cert.as_deref())?;
        let state_dir = config.resolved_state_dir().ok_or_else(|| {
            RunnerError::Config("no state dir: pass --state-dir (HOME is not set)".to_owned())
        })?;
        let id = identity::load_or_create(&state_dir).map_err(|e| RunnerError::Config(format!("{e:#}")))?;
        let name = config
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
        let allow = policy::parse_allow(&config.allow).map_err(RunnerError::Config)?;
        let presets =
            presets::Presets::load(config.presets.as_deref(), &allow).map_err(RunnerError::Config)?;
        let policy = policy::Policy::new(
            &name,
            allow,
            &config.allow_env,
            &config.allow_dir,
            config.presets_only,
            &presets,
        )
        .map_err(RunnerError::Config)?;
        let binary = match config.session_host_binary.clone() {
            Some(binary) => binary,
            None => own_binary()
                .map_err(|e| RunnerError::Config(format!("cannot find the runner's own binary: {e}")))?,
        };
        let host = host::link::HostConfig {
            binary,
            dir: state_dir.join("sessions"),
            grace: config.kill_grace,
            spool_size: config.spool_size as u64,
            orphan_after: config.orphan_after,
            versions: config.session_host_versions,
        };
        let telemetry = telemetry::Collector::bind()
            .inspect_err(|e| tracing::warn!(error = format!("{e:#}"), "no usage figures from agents"))
            .ok();
        let workspaces = workspace::Workspaces::new(&config.repos, presets.repos(), &state_dir)
            .map_err(RunnerError::Config)?;
        let (outbox, outbox_rx) = tokio::sync::mpsc::channel(OUTBOX);
        let report_socket = report::socket_path(&state_dir);
        if config.allow.is_empty() && !config.presets_only {
            tracing::warn!("no --allow list: HQ may start any program on this machine");
        }
        Ok(Self {
            config,
            id,
            name,
            hq,
            sessions: Arc::default(),
            presets,
            policy,
            host,
            ended: Default::default(),
            telemetry,
            report_socket,
            workspaces: Arc::new(workspaces),
            outbox,
            outbox_rx: tokio::sync::Mutex::new(outbox_rx),
            relink: tokio::sync::watch::Sender::new(0),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    /// The runner's stable id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Runs until `shutdown` is cancelled or HQ refuses the runner; then hangs up every session
    /// and waits for their exits to be delivered (or for redialing to stop).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RunnerError> {
        let stop = self.shutdown.clone();
        let forward = tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.cancel();
        });
        // Without the socket, sessions cannot report activity; HQ still guesses it from output.
        match report::bind(&self.report_socket) {
            Ok(listener) => {
                let serve = report::serve(listener, self.sessions.clone(), self.shutdown.clone());
                self.tasks.spawn(serve);
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "activity reports are off"),
        }
        if let Some(collector) = self.telemetry.clone() {
            self.tasks.spawn(collector.serve(self.tasks.clone(), self.shutdown.clone()));
        }
        self.take_back_sessions().await;
        let result = self.control_loop().await;
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        forward.abort();
        result
    }
}

/// The runner's binary, for its session hosts. After an upgrade replaced the file under a running
/// runner, Linux names the old one "… (deleted)": the new binary at the same path hosts new
/// sessions (the host protocol is versioned for exactly this).
fn own_binary() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    match exe.to_str().and_then(|path| path.strip_suffix(" (deleted)")) {
        Some(path) => Ok(std::path::PathBuf::from(path)),
        None => Ok(exe),
    }
}
