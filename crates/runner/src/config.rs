//! The runner's command-line flags and environment variables (the public contract's names).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Configuration of one runner process. Every flag also reads `AGENTRELAY_<FLAG>`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "agentrelay-runner",
    version,
    about = "AgentRelay runner: dials HQ and runs sessions in real PTYs on this machine",
    after_help = "Example:\n  RUNNER_TOKEN=… agentrelay-runner --hq https://relay.example.com --name laptop --label gpu=true"
)]
pub struct RunnerConfig {
    /// A TOML file of settings, keyed by flag name (`label = ["gpu=true"]`); flags and
    /// environment variables win over it.
    #[arg(long, env = "AGENTRELAY_CONFIG")]
    pub config: Option<PathBuf>,

    /// HQ's address: ws(s):// or http(s)://, the same server the dashboard uses. Repeat it (or
    /// separate with commas) for HQ replicas without a load balancer: the runner dials them in
    /// turn and stays with one that answers.
    #[arg(long, env = "AGENTRELAY_HQ", default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    pub hq: Vec<String>,

    /// Runner enrollment token (also read from RUNNER_TOKEN). Never passed to sessions.
    #[arg(long, env = "AGENTRELAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Name shown in the dashboard; defaults to the host name. Unique among online runners.
    #[arg(long, env = "AGENTRELAY_NAME")]
    pub name: Option<String>,

    /// A key=value label for targeting (repeatable).
    #[arg(long = "label", env = "AGENTRELAY_LABEL", value_delimiter = ',', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// Where the runner keeps its id; two runners on one host need two.
    /// [default: $XDG_STATE_HOME/agentrelay-runner]
    #[arg(long, env = "AGENTRELAY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Per-session output buffer that rides out HQ outages (e.g. 8MiB).
    #[arg(long, env = "AGENTRELAY_BUFFER_SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub buffer_size: usize,

    /// Only run command lines that start with this one, word for word (repeatable): `bash`
    /// allows any bash command line, `'npm test'` only npm test and what follows it. With any
    /// --allow, requested environments and working directories are limited too.
    #[arg(long = "allow", env = "AGENTRELAY_ALLOW", value_delimiter = ',')]
    pub allow: Vec<String>,

    /// An environment variable sessions may ask for (repeatable; `PREFIX_*` for a family). With
    /// --allow, requested variables must be named here, by a preset, or be TERM, COLORTERM,
    /// LANG, LC_* or TZ; without it, any may, but interpreter and loader hijacks (BASH_ENV,
    /// NODE_OPTIONS, LD_PRELOAD, …) are dropped unless named here.
    #[arg(long = "allow-env", env = "AGENTRELAY_ALLOW_ENV", value_delimiter = ',')]
    pub allow_env: Vec<String>,

    /// A directory sessions may start in, or below (repeatable; symlinks and `..` resolved).
    /// With --allow and no --allow-dir: only the runner's own working directory and the
    /// presets' directories.
    #[arg(long = "allow-dir", env = "AGENTRELAY_ALLOW_DIR", value_delimiter = ',')]
    pub allow_dir: Vec<PathBuf>,

    /// Start nothing but this runner's presets, with their own command line, directory and
    /// environment: HQ may choose a preset and the terminal size, nothing else.
    #[arg(long, env = "AGENTRELAY_PRESETS_ONLY")]
    pub presets_only: bool,

    /// The agentrelay-runner binary each session's host runs from (tests, where the runner is a
    /// library); this binary by default.
    #[arg(long, env = "AGENTRELAY_SESSION_HOST_BINARY", hide = true)]
    pub session_host_binary: Option<PathBuf>,

    /// Time between the hang-up and the kill when a session is ended.
    #[arg(long, env = "AGENTRELAY_KILL_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub kill_grace: Duration,

    /// Per session, the output its host keeps on disk while no runner reads it (e.g. 64MiB);
    /// past it the oldest goes, and HQ is told of the gap.
    #[arg(long, env = "AGENTRELAY_SPOOL_SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub spool_size: usize,

    /// How long a session outlives its runner: its host ends it when no runner has come back
    /// for this long.
    #[arg(long, env = "AGENTRELAY_ORPHAN_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub orphan_after: Duration,

    /// End every session when the runner stops (hang up, then kill), as runners did before
    /// sessions outlived them. By default a stopping runner leaves its sessions running for the
    /// next runner process with the same --state-dir to take back.
    #[arg(long, env = "AGENTRELAY_END_SESSIONS_ON_EXIT")]
    pub end_sessions_on_exit: bool,

    /// The protocol versions new session hosts announce, as MIN-MAX (tests of adoption across
    /// versions only).
    #[arg(long, env = "AGENTRELAY_SESSION_HOST_VERSIONS", hide = true, value_parser = parse_versions)]
    pub session_host_versions: Option<(u32, u32)>,

    /// A PEM file of extra CA certificates to trust for wss:// (a private CA), besides the
    /// system's roots.
    #[arg(long, env = "AGENTRELAY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// A TOML file of presets (`[[preset]]` with name, command, description, cwd, env,
    /// prompt_patterns); they join the built-in agents found on PATH and a shell.
    #[arg(long, env = "AGENTRELAY_PRESETS")]
    pub presets: Option<PathBuf>,

    /// A repository sessions may get a workspace in, as NAME=PATH (repeatable): each such
    /// session runs in its own git worktree of it, under the state dir, on a new branch. HQ
    /// names the repository, never a path.
    #[arg(long = "repo", env = "AGENTRELAY_REPO", value_delimiter = ',', value_parser = crate::workspace::parse_repo)]
    pub repos: Vec<(String, PathBuf)>,

    /// Log output: human or json.
    #[arg(long, env = "AGENTRELAY_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,

    /// A command instead of running the runner.
    #[command(subcommand)]
    pub command: Option<RunnerCommand>,
}

/// The runner's subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RunnerCommand {
    /// Internal: the first process of each session's PTY. It runs COMMAND under a child
    /// subreaper and, when it ends, ends every process it left, then exits as it did.
    #[command(hide = true)]
    SessionHost {
        /// The session it holds.
        #[arg(long)]
        session: uuid::Uuid,
        /// Its socket's path (the listening socket itself is standard input).
        #[arg(long)]
        socket: PathBuf,
        /// Its spool file.
        #[arg(long)]
        spool: PathBuf,
        /// The spool's size in bytes.
        #[arg(long, default_value = "67108864")]
        spool_size: u64,
        /// Between the hang-up and the kill.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// How long to wait for a runner before ending the session.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        orphan_after: Duration,
        /// The PTY's first size.
        #[arg(long, default_value = "24")]
        rows: u16,
        /// The PTY's first size.
        #[arg(long, default_value = "80")]
        cols: u16,
        /// The protocol versions to announce, MIN-MAX.
        #[arg(long, value_parser = parse_versions)]
        versions: Option<(u32, u32)>,
        /// The session's command line.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Inside a session: tell HQ what this session is doing (e.g. from an agent's hooks).
    #[command(after_help = "Example (Claude Code hooks in .claude/settings.json):\n  \
        \"Notification\": [{\"matcher\": \"idle_prompt|elicitation_dialog\", \"hooks\": [{\"type\": \"command\", \"command\": \"agentrelay-runner report waiting\"}]}]\n  \
        \"UserPromptSubmit\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"agentrelay-runner report working\"}]}]\n  \
        \"PermissionRequest\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"agentrelay-runner report waiting\"}]}]\n  \
        \"Stop\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"agentrelay-runner report waiting\"}]}]")]
    Report {
        /// What the session is doing.
        #[arg(value_enum)]
        activity: ReportedActivity,
        /// The agent's event that triggered the report (JSON, as Codex's notify passes it);
        /// events about something other than the session's own conversation are ignored.
        #[arg(hide = true)]
        event: Option<String>,
    },
    /// Write a systemd unit that runs this runner with the flags given before this command
    /// (the token goes to a mode-0600 environment file, never into the unit).
    #[command(after_help = "Examples:\n  \
        sudo RUNNER_TOKEN=… agentrelay-runner --hq https://hq.example.com --label gpu=true install-service\n  \
        RUNNER_TOKEN=… agentrelay-runner --hq https://hq.example.com install-service --user")]
    InstallService {
        /// A user unit (~/.config/systemd/user) instead of a system one (/etc/systemd/system).
        #[arg(long)]
        user: bool,
        /// Write the unit and the environment file into this directory instead.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The account sessions run as, for a system unit (default: the one running sudo, else
        /// the current one).
        #[arg(long)]
        run_as: Option<String>,
    },
}

/// Activities a process can report.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportedActivity {
    /// Busy.
    Working,
    /// Needs a person: a question, a permission prompt, or done and waiting for the next task.
    Waiting,
    /// Nothing to do, nothing asked.
    Idle,
}

impl From<ReportedActivity> for agentrelay_protocol::Activity {
    fn from(activity: ReportedActivity) -> Self {
        match activity {
            ReportedActivity::Working => Self::Working,
            ReportedActivity::Waiting => Self::WaitingForInput,
            ReportedActivity::Idle => Self::Idle,
        }
    }
}

impl RunnerConfig {
    /// The token: the flag or `AGENTRELAY_TOKEN`, else plain `RUNNER_TOKEN`.
    pub fn resolved_token(&self) -> Option<String> {
        self.token.clone().or_else(|| std::env::var("RUNNER_TOKEN").ok()).filter(|t| !t.is_empty())
    }

    /// The state directory, following the XDG base directory rules.
    pub fn resolved_state_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.state_dir {
            return Some(dir.clone());
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))?;
        Some(base.join("agentrelay-runner"))
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.trim().to_owned())),
        _ => Err(format!("label '{text}' must look like key=value")),
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text.trim().parse().map_err(|e| format!("bad size '{text}': {e}"))?;
    usize::try_from(size.as_u64()).map_err(|_| format!("size '{text}' is too large"))
}

fn parse_versions(text: &str) -> Result<(u32, u32), String> {
    let (min, max) = text.split_once('-').ok_or_else(|| format!("'{text}' is not MIN-MAX"))?;
    let parse = |part: &str| part.trim().parse::<u32>().map_err(|e| format!("'{text}': {e}"));
    let (min, max) = (parse(min)?, parse(max)?);
    if min > max {
        return Err(format!("'{text}': MIN is above MAX"));
    }
    Ok((min, max))
}
