//! The `agentrelay` command line: subcommands, flags and their environment variables.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  agentrelay login --hq https://hq.example.com        # asks for a token, saves both
  agentrelay runners                                 # who is connected
  agentrelay run --runner laptop -- claude           # start an agent and attach to it
  agentrelay run --label gpu=true --detach -- ./train.sh
  agentrelay sessions --all                          # live and finished sessions
  agentrelay attach 019a…                            # a unique prefix of the id is enough
  agentrelay logs 019a… --follow --plain | grep ERROR

While attached, Ctrl-] then d detaches and leaves the session running;
Ctrl-] twice sends one Ctrl-] to the session.

Environment: AGENTRELAY_HQ and AGENTRELAY_TOKEN override what `agentrelay login` saved;
AGENTRELAY_CREDENTIALS names another credentials file.";

/// The user's command-line client for AgentRelay HQ.
#[derive(Debug, Parser)]
#[command(name = "agentrelay", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// HQ's address, http(s)://host[:port] (default: what `agentrelay login` saved).
    #[arg(long, global = true, env = "AGENTRELAY_HQ")]
    pub hq: Option<String>,

    /// A private CA certificate (PEM) that signed HQ's TLS certificate.
    #[arg(long, global = true, env = "AGENTRELAY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// While attached or following logs: ping HQ after this much silence; three such periods
    /// without a word from HQ mean the connection is dead, and it is resumed on a new one.
    #[arg(long, global = true, env = "AGENTRELAY_KEEPALIVE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub keepalive: std::time::Duration,

    /// The credentials file `login` writes (default: $XDG_CONFIG_HOME/agentrelay/config.toml).
    #[arg(long, global = true, env = "AGENTRELAY_CREDENTIALS")]
    pub credentials: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `agentrelay login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Paste a token at the prompt instead of signing in through the browser.
    #[arg(long)]
    pub paste: bool,
    /// Sign in through the browser even when stdin is not a terminal.
    #[arg(long, conflicts_with = "paste")]
    pub browser: bool,
    /// Print the sign-in page's address instead of opening a browser.
    #[arg(long, env = "AGENTRELAY_NO_BROWSER")]
    pub no_browser: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save HQ's address and a token: on a terminal, signed in through the browser (or pasted
    /// with --paste); else read from AGENTRELAY_TOKEN or stdin.
    #[command(after_help = "Examples:\n  agentrelay login --hq https://hq.example.com\n  \
                            agentrelay login --hq https://hq.example.com --paste\n  \
                            echo \"$TOKEN\" | agentrelay login --hq http://127.0.0.1:8080")]
    Login(LoginArgs),
    /// Who HQ takes you for: name, e-mail and role.
    Whoami(ListArgs),
    /// Forget the saved token.
    Logout,
    /// List runners.
    Runners(ListArgs),
    /// List sessions (live ones unless --all).
    Sessions(SessionsArgs),
    /// Start a session and attach to it; exits with the remote process's exit code.
    #[command(after_help = "\
Examples:
  agentrelay run --runner laptop -- bash -l
  agentrelay run --runner laptop --preset claude
  agentrelay run --runner laptop --preset claude --prompt 'Fix the failing test'
  agentrelay run --label gpu=true -- python train.py --epochs 3
  agentrelay run --runner ci --detach -- make test

Exit status: the remote process's code; 128+N when signal N ended it; 255 when agentrelay
itself failed or the session was lost.")]
    Run(RunArgs),
    /// Show what a workspace session changed, as a unified diff against its base commit.
    #[command(
        after_help = "Examples:\n  agentrelay diff 019a…\n  agentrelay diff 019a… src/lib.rs | less -R"
    )]
    Diff(DiffArgs),
    /// Send review comments to a workspace session's agent, as one message typed into it.
    #[command(
        after_help = "Example:\n  agentrelay review 019a… --comment src/lib.rs:12:'Use a constant here' \\\n    \
        --summary 'Nearly there' --when-waiting"
    )]
    Review(ReviewArgs),
    /// Attach this terminal to a session (Ctrl-] then d detaches).
    #[command(after_help = "\
While attached, Ctrl-] then d detaches and leaves the session running; Ctrl-] twice sends one
Ctrl-]. The local window size follows to the session. A dropped connection is resumed from the
last byte received, so nothing is shown twice or lost.

Exit status: the session's exit code if it ends while attached (128+N for signal N), 0 after a
detach, 255 when agentrelay itself failed.")]
    Attach(AttachArgs),
    /// Hang a session up (SIGHUP, then SIGKILL after the runner's grace period).
    Kill(SessionArg),
    /// Name a session (without a name: take its name away).
    #[command(after_help = "Example:\n  agentrelay rename 019a… fix-login-bug")]
    Rename(RenameArgs),
    /// Print a session's output.
    #[command(after_help = "Examples:\n  agentrelay logs 019a… --plain > out.txt\n  \
                            agentrelay logs 019a… --follow")]
    Logs(LogsArgs),
    /// Write a session's recording (asciicast v2) to stdout.
    #[command(
        after_help = "Example:\n  agentrelay recording 019a… > session.cast && asciinema play session.cast"
    )]
    Recording(SessionArg),
    /// Create, list and revoke API tokens (admin).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  agentrelay completions bash > ~/.local/share/bash-completion/completions/agentrelay"
    )]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Output format of the list commands.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (as HQ returns it) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `agentrelay sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Include finished sessions.
    #[arg(long, short)]
    pub all: bool,
    /// Only sessions on this runner (name or id).
    #[arg(long)]
    pub runner: Option<String>,
    /// Print JSON (as HQ returns it) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `agentrelay run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The runner to start on, by name.
    #[arg(long, conflicts_with = "label")]
    pub runner: Option<String>,
    /// Pick the online runner with these labels (key=value, repeatable) and the fewest sessions.
    #[arg(long, value_parser = parse_key_value)]
    pub label: Vec<(String, String)>,
    /// Working directory on the runner.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment variable for the process (KEY=value, repeatable).
    #[arg(long, value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// A name for the session, shown in lists and the dashboard.
    #[arg(long)]
    pub name: Option<String>,
    /// Print the session id and return instead of attaching.
    #[arg(long, short)]
    pub detach: bool,
    /// Start one of the runner's presets (see `agentrelay runners --json`) instead of a command.
    #[arg(long, conflicts_with = "command")]
    pub preset: Option<String>,
    /// The agent's first task, for a preset that takes one (claude, codex, gemini): passed to
    /// the agent as it starts.
    #[arg(long, requires = "preset")]
    pub prompt: Option<String>,
    /// Run in a new git worktree of this repository of the runner (see `agentrelay runners
    /// --json`), on a branch of its own.
    #[arg(long, conflicts_with = "cwd")]
    pub repo: Option<String>,
    /// The worktree's new branch (default agentrelay/<the session id's last 8 hex digits>).
    #[arg(long, requires = "repo")]
    pub branch: Option<String>,
    /// What the branch starts from (default: the branch the repository is on).
    #[arg(long, requires = "repo")]
    pub base: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(required_unless_present = "preset", last = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// `agentrelay diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The session id, or a unique prefix of it.
    pub id: String,
    /// One file; all changed files without it.
    pub path: Option<String>,
}

/// `agentrelay review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The session id, or a unique prefix of it.
    pub id: String,
    /// A comment on a line, as path:line:text (repeatable).
    #[arg(long = "comment", value_name = "PATH:LINE:TEXT")]
    pub comments: Vec<String>,
    /// A word on the whole change.
    #[arg(long)]
    pub summary: Option<String>,
    /// Hold it until the agent next waits for input, instead of typing it now.
    #[arg(long)]
    pub when_waiting: bool,
}

/// `agentrelay attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The session id, or a unique prefix of it.
    pub id: String,
}

/// Commands that name one session.
#[derive(Debug, Args)]
pub struct SessionArg {
    /// The session id, or a unique prefix of it.
    pub id: String,
}

/// `agentrelay rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The session id, or a unique prefix of it.
    pub id: String,
    /// Its new name; leave it out to clear the name.
    pub name: Option<String>,
}

/// `agentrelay logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The session id, or a unique prefix of it.
    pub id: String,
    /// Keep printing new output until the session ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Strip escape sequences (colours, cursor moves) and carriage returns.
    #[arg(long)]
    pub plain: bool,
}

/// `agentrelay tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; its secret is printed once, on stdout.
    #[command(after_help = "Examples:\n  agentrelay tokens create laptop-runner --scope runner\n  \
                            agentrelay tokens create alice --scope user --expires-in 30d")]
    Create {
        /// A name for people (shown in lists and the audit log).
        name: String,
        /// What the token may do.
        #[arg(long, value_enum, default_value = "user")]
        scope: TokenScope,
        /// Lifetime, e.g. `12h` or `30d` (default: until revoked).
        #[arg(long)]
        expires_in: Option<String>,
        /// Print JSON instead of the bare secret.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List(ListArgs),
    /// Revoke a token; its live connections are cut.
    Revoke {
        /// The token's id (from `agentrelay tokens list`).
        id: String,
    },
}

/// Scopes a created token can have.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenScope {
    /// Everything, tokens included.
    Admin,
    /// Runners and sessions.
    User,
    /// Only dialing in as a runner.
    Runner,
}

impl TokenScope {
    /// The scope's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::Runner => "runner",
        }
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("'{text}' is not KEY=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_the_separator() {
        let cli =
            Cli::try_parse_from(["agentrelay", "run", "--runner", "r1", "--", "bash", "-l"]).expect("parses");
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.runner.as_deref(), Some("r1"));
        assert_eq!(run.command, ["bash", "-l"]);
    }

    #[test]
    fn labels_must_be_key_value() {
        assert!(Cli::try_parse_from(["agentrelay", "run", "--label", "gpu", "--", "x"]).is_err());
        let cli = Cli::try_parse_from(["agentrelay", "run", "--label", "gpu=true", "--", "x"]).expect("ok");
        let Command::Run(run) = cli.command else { panic!("not run") };
        assert_eq!(run.label, [("gpu".to_owned(), "true".to_owned())]);
    }
}
