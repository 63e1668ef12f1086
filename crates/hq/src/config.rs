//! HQ's command-line flags and environment variables (the public contract's names).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A change `--webhook-url` can be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebhookEvent {
    /// A session's activity became `working`.
    #[value(name = "working")]
    Working,
    /// A session's activity became `waiting_for_input`.
    #[value(name = "waiting_for_input")]
    WaitingForInput,
    /// A session's activity became `idle`.
    #[value(name = "idle")]
    Idle,
    /// A session ended (exited, failed or lost).
    #[value(name = "ended")]
    Ended,
    /// HQ stopped writing a session's output log (a full disk).
    #[value(name = "log_stopped")]
    LogStopped,
}

/// Configuration of one HQ process. Every flag also reads `AGENTRELAY_<FLAG>`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "agentrelay-hq",
    version,
    about = "AgentRelay HQ: the control plane runners dial into and viewers attach to",
    after_help = "Example:\n  AGENTRELAY_ADMIN_TOKEN=… RUNNER_TOKEN=… agentrelay-hq --listen 127.0.0.1:8080"
)]
pub struct HqConfig {
    /// A TOML file of settings, keyed by flag name (`ring-size = "4MiB"`); flags and environment
    /// variables win over it.
    #[arg(long, env = "AGENTRELAY_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address to listen on for the API, WebSockets and dashboard.
    #[arg(long, env = "AGENTRELAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for HQ's state (database, session logs, recordings).
    #[arg(long, global = true, env = "AGENTRELAY_DATA_DIR", default_value = "./agentrelay-data")]
    pub data_dir: PathBuf,

    /// The URL browsers use to reach HQ; WebSocket upgrades from any other origin are refused.
    #[arg(long, env = "AGENTRELAY_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// TLS certificate chain (PEM); with --tls-key, HQ serves https:// and wss://.
    #[arg(long, env = "AGENTRELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "AGENTRELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// A client must send its request headers within this time.
    #[arg(long, env = "AGENTRELAY_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// Shared enrollment token runners present when they dial in (also read from RUNNER_TOKEN).
    #[arg(long, env = "AGENTRELAY_RUNNER_TOKEN", hide_env_values = true)]
    pub runner_token: Option<String>,

    /// Admin token for the REST API and session WebSockets.
    #[arg(long, env = "AGENTRELAY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// In-memory scrollback kept per session for viewers (e.g. 1MiB).
    #[arg(long, env = "AGENTRELAY_RING_SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub ring_size: usize,

    /// How long a session waits for its vanished runner before it is marked lost.
    #[arg(long, env = "AGENTRELAY_LOST_AFTER", default_value = "60s", value_parser = humantime::parse_duration)]
    pub lost_after: Duration,

    /// How often HQ and runners exchange heartbeats.
    #[arg(long, env = "AGENTRELAY_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// A runner silent for this long is marked offline and disconnected.
    #[arg(long, env = "AGENTRELAY_HEARTBEAT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,

    /// Largest WebSocket message accepted from viewers and runners.
    #[arg(long, env = "AGENTRELAY_MAX_FRAME_SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_frame_size: usize,

    /// Largest REST request body.
    #[arg(long, env = "AGENTRELAY_MAX_BODY_SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_body_size: usize,

    /// Reverse proxies (addresses or networks, comma-separated) whose `X-Forwarded-For` names
    /// the client for sign-in limits and the audit log; without one, the header is ignored.
    #[arg(long, env = "AGENTRELAY_TRUSTED_PROXY", value_delimiter = ',', value_parser = crate::client_ip::parse_trusted_proxy)]
    pub trusted_proxy: Vec<ipnet::IpNet>,

    /// Sign-in attempts allowed per client address and minute (then 429).
    #[arg(long, env = "AGENTRELAY_LOGIN_ATTEMPTS", default_value_t = 10)]
    pub login_attempts: u32,

    /// Live sessions allowed per runner.
    #[arg(long, env = "AGENTRELAY_MAX_SESSIONS_PER_RUNNER", default_value_t = 64)]
    pub max_sessions_per_runner: usize,

    /// Viewers allowed per session at once.
    #[arg(long, env = "AGENTRELAY_MAX_VIEWERS_PER_SESSION", default_value_t = 32)]
    pub max_viewers_per_session: usize,

    /// Control frames (resize, …) a viewer may send per second; more get an error frame.
    #[arg(long, env = "AGENTRELAY_MAX_CONTROL_RATE", default_value_t = 50)]
    pub max_control_rate: u32,

    /// Finished sessions (their rows and output logs) are deleted this long after they end.
    #[arg(long, env = "AGENTRELAY_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub retention: Duration,

    /// When the output logs of all sessions exceed this, the oldest finished sessions are deleted
    /// until they fit (live sessions are never deleted).
    #[arg(long, env = "AGENTRELAY_RETENTION_SIZE", default_value = "10GiB", value_parser = parse_size_u64)]
    pub retention_size: u64,

    /// Output quiet for this long makes a session `idle`, or `waiting_for_input` when its screen
    /// shows a prompt.
    #[arg(long, env = "AGENTRELAY_IDLE_AFTER", default_value = "2s", value_parser = humantime::parse_duration)]
    pub idle_after: Duration,

    /// Receives a JSON POST for every session activity change, every session end and a stopped
    /// output log (works with Slack-compatible and ntfy receivers: the body has a `text`).
    #[arg(long, env = "AGENTRELAY_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Which changes `--webhook-url` hears of, comma-separated (e.g. `waiting_for_input,ended`
    /// for a phone that should only ring when someone is needed).
    #[arg(
        long,
        env = "AGENTRELAY_WEBHOOK_EVENTS",
        value_delimiter = ',',
        value_enum,
        default_value = "working,waiting_for_input,idle,ended,log_stopped"
    )]
    pub webhook_events: Vec<WebhookEvent>,

    /// Also serve `/metrics` here, without auth (on the main address it needs an admin token).
    #[arg(long, env = "AGENTRELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Single sign-on: the OpenID Connect issuer (its `/.well-known/openid-configuration` is
    /// read on first use), e.g. `https://accounts.google.com`. The provider returns people to
    /// `{public-url}/api/auth/oidc/callback`.
    #[arg(long, env = "AGENTRELAY_OIDC_ISSUER", requires = "oidc_client_id")]
    pub oidc_issuer: Option<String>,

    /// The client id HQ has at the provider.
    #[arg(long, env = "AGENTRELAY_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,

    /// The client secret HQ has at the provider (or --oidc-client-secret-file).
    #[arg(
        long,
        env = "AGENTRELAY_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        conflicts_with = "oidc_client_secret_file"
    )]
    pub oidc_client_secret: Option<String>,

    /// A file holding the client secret (its first line).
    #[arg(long, env = "AGENTRELAY_OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,

    /// The scopes HQ asks the provider for.
    #[arg(long, env = "AGENTRELAY_OIDC_SCOPES", default_value = "openid email profile")]
    pub oidc_scopes: String,

    /// The sign-in button's label: "Sign in with <name>".
    #[arg(long, env = "AGENTRELAY_OIDC_NAME", default_value = "SSO")]
    pub oidc_name: String,

    /// Who may sign up through single sign-on: people whose e-mail is at one of these domains
    /// (comma-separated). Without this and --oidc-allowed-emails, anyone the provider signs in.
    /// Users an admin made (`POST /api/users`) may always sign in.
    #[arg(long, env = "AGENTRELAY_OIDC_ALLOWED_DOMAINS", value_delimiter = ',')]
    pub oidc_allowed_domains: Vec<String>,

    /// Who may sign up through single sign-on: these e-mail addresses (comma-separated).
    #[arg(long, env = "AGENTRELAY_OIDC_ALLOWED_EMAILS", value_delimiter = ',')]
    pub oidc_allowed_emails: Vec<String>,

    /// People who become admins when they sign in (comma-separated e-mail addresses).
    #[arg(long, env = "AGENTRELAY_OIDC_ADMIN_EMAILS", value_delimiter = ',')]
    pub oidc_admin_emails: Vec<String>,

    /// The ID token claim that lists a person's groups (e.g. `groups`), for --oidc-admin-group.
    #[arg(long, env = "AGENTRELAY_OIDC_GROUPS_CLAIM", requires = "oidc_admin_group")]
    pub oidc_groups_claim: Option<String>,

    /// Members of this group (in --oidc-groups-claim) become admins when they sign in.
    #[arg(long, env = "AGENTRELAY_OIDC_ADMIN_GROUP", requires = "oidc_groups_claim")]
    pub oidc_admin_group: Option<String>,

    /// Keep HQ's state in PostgreSQL (`postgres://user@host/db`) instead of SQLite in
    /// --data-dir; with --nats-url, any number of HQ replicas with the same two URLs form one
    /// cluster (docs/operations.md, "High availability").
    #[arg(long, env = "AGENTRELAY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// NATS (with JetStream) that joins the replicas of a cluster (`nats://host:4222`); needs
    /// --database-url.
    #[arg(long, env = "AGENTRELAY_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,

    /// This replica's name in logs, metrics and `/api/version` (default: host name and port).
    #[arg(long, env = "AGENTRELAY_REPLICA_NAME")]
    pub replica_name: Option<String>,

    /// Prefix of this cluster's NATS subjects and JetStream stream names, so several clusters (or
    /// tests) can share one NATS server.
    #[arg(long, env = "AGENTRELAY_NATS_PREFIX", default_value = "agentrelay", hide = true)]
    pub nats_prefix: String,

    /// Log output: human or json.
    #[arg(long, env = "AGENTRELAY_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,

    /// Maintenance commands run on the HQ host instead of serving.
    #[command(subcommand)]
    pub command: Option<HqCommand>,
}

/// `agentrelay-hq <command>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HqCommand {
    /// Administration on the HQ host.
    Admin {
        /// What to do.
        #[command(subcommand)]
        action: AdminAction,
    },
}

/// `agentrelay-hq admin <action>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminAction {
    /// Revokes the bootstrap admin token and prints a new one (HQ need not be stopped).
    ResetToken,
    /// Copies a single HQ's state (--data-dir: its database and session logs) into an empty
    /// PostgreSQL database, for replicas to start on (stop the single HQ first).
    Migrate {
        /// The PostgreSQL database to copy into (`postgres://user@host/db`).
        #[arg(long)]
        to: String,
    },
}

/// Why a configuration cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// NATS joins replicas that share a database; alone it has nothing to share.
    #[error(
        "--nats-url needs --database-url: replicas share their state through PostgreSQL and only talk over NATS \
         (give both, or neither for a single HQ on SQLite)"
    )]
    NatsWithoutDatabase,
    /// The database URL is not PostgreSQL's.
    #[error("--database-url must be a postgres:// or postgresql:// URL")]
    NotPostgres,
    /// A NATS prefix must be one subject token.
    #[error("--nats-prefix may hold only letters, digits, '-' and '_'")]
    BadPrefix,
}

impl HqConfig {
    /// Checks the flags that only make sense together.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.nats_url.is_some() && self.database_url.is_none() {
            return Err(ConfigError::NatsWithoutDatabase);
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::NotPostgres);
        }
        let prefix_ok = !self.nats_prefix.is_empty()
            && self.nats_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !prefix_ok {
            return Err(ConfigError::BadPrefix);
        }
        Ok(())
    }

    /// `--replica-name`, else the host name and the port HQ listens on.
    pub fn replica(&self) -> String {
        self.replica_name.clone().filter(|name| !name.is_empty()).unwrap_or_else(|| {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            format!("{host}:{}", self.listen.port())
        })
    }

    /// Whether HQ serves HTTPS itself, or sits behind a proxy that does (`--public-url https://…`);
    /// either way cookies get the `Secure` flag.
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() || self.public_url.as_deref().is_some_and(|url| url.starts_with("https://"))
    }

    /// The runner enrollment token: the flag or `AGENTRELAY_RUNNER_TOKEN`, else plain `RUNNER_TOKEN`.
    pub fn resolved_runner_token(&self) -> Option<String> {
        self.runner_token
            .clone()
            .or_else(|| std::env::var("RUNNER_TOKEN").ok())
            .filter(|token| !token.is_empty())
    }
}

/// Parses a size such as `10GiB` into bytes.
pub fn parse_size_u64(text: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = text.trim().parse().map_err(|e| format!("bad size '{text}': {e}"))?;
    Ok(size.as_u64())
}

/// Parses a size such as `8MiB`, `512KiB` or `1048576`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text.trim().parse().map_err(|e| format!("bad size '{text}': {e}"))?;
    usize::try_from(size.as_u64()).map_err(|_| format!("size '{text}' is too large"))
}
