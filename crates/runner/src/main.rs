//! `agentrelay-runner`: parses flags, sets up logging, runs until SIGINT/SIGTERM (or SIGHUP and
//! SIGQUIT, unless it was started with them ignored) or a refusal.

use std::process::ExitCode;

use agentrelay_runner::config::RunnerCommand;
use agentrelay_runner::{Runner, RunnerConfig};
use tokio_util::sync::CancellationToken;

// One thread: a keystroke's echo crosses fewer thread wake-ups (measured by `make bench`, see
// docs/performance.md), and a runner's work is I/O, never compute.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = agentrelay_config::parse::<RunnerConfig>(&[("token", "RUNNER_TOKEN")]);
    match &config.command {
        Some(RunnerCommand::SessionHost {
            session,
            socket,
            spool,
            spool_size,
            grace,
            orphan_after,
            rows,
            cols,
            versions,
            command,
        }) => {
            use agentrelay_runner::host;
            let args = host::HostArgs {
                session_id: *session,
                socket: socket.clone(),
                spool: spool.clone(),
                spool_size: *spool_size,
                grace: *grace,
                orphan_after: *orphan_after,
                size: agentrelay_protocol::TermSize { rows: *rows, cols: *cols },
                versions: versions.unwrap_or((host::wire::MIN_VERSION, host::wire::VERSION)),
                command: command.clone(),
            };
            // It writes nowhere: what goes wrong reaches the runner as a lost session.
            return match host::run(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Some(RunnerCommand::Report { activity, event }) => {
            if event.as_deref().is_some_and(|event| !agentrelay_runner::agent_hooks::event_counts(event)) {
                return ExitCode::SUCCESS;
            }
            return match agentrelay_runner::report::send((*activity).into()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error),
            };
        }
        Some(RunnerCommand::InstallService { user, output, run_as }) => {
            let installed =
                agentrelay_runner::service::install(&config, *user, output.as_deref(), run_as.as_deref());
            return match installed {
                Ok(installed) => {
                    println!(
                        "Wrote {} and {} (the token, mode 0600). Start it with:\n  {}",
                        installed.unit.display(),
                        installed.env_file.display(),
                        installed.next
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&format!("{error:#}")),
            };
        }
        None => {}
    }
    init_logging(&config.log_format);
    raise_fd_limit();
    let runner = match Runner::new(config) {
        Ok(runner) => runner,
        Err(error) => return fail(&error),
    };
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    // Before the first session starts, so that every session's process gets default handling.
    let signals = StopSignals::install();
    tokio::spawn(async move {
        signals.wait().await;
        trigger.cancel();
    });
    match runner.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("agentrelay-runner: {error}");
    ExitCode::FAILURE
}

/// The signals that stop the runner, handled.
///
/// Every one gets a handler, even one the runner was started with ignored (`nohup`, a script's
/// `&`): an ignored signal stays ignored across `exec`, so every session would inherit it and a
/// hang-up could no longer end an agent, while a handled one is reset to its default in the
/// child. The runner itself still ignores what it was told to ignore.
struct StopSignals {
    streams: Vec<(i32, tokio::signal::unix::Signal)>,
    ignored: Vec<i32>,
}

impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let ignored = ignored_at_start();
        let mut streams = Vec::new();
        for kind in
            [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::hangup(), SignalKind::quit()]
        {
            match signal(kind) {
                Ok(stream) => streams.push((kind.as_raw_value(), stream)),
                Err(error) => tracing::warn!(%error, signal = kind.as_raw_value(), "cannot handle a signal"),
            }
        }
        Self { streams, ignored }
    }

    /// Returns at the first signal that was not ignored at start.
    async fn wait(mut self) {
        if self.streams.is_empty() {
            return std::future::pending().await;
        }
        loop {
            let waits = self
                .streams
                .iter_mut()
                .map(|(number, stream)| Box::pin(async move { stream.recv().await.map(|()| *number) }));
            match futures_util::future::select_all(waits).await.0 {
                Some(number) if self.ignored.contains(&number) => continue,
                _ => return,
            }
        }
    }
}

/// The signals this process was started with ignored (Linux reports them in `/proc`; elsewhere,
/// none are assumed).
fn ignored_at_start() -> Vec<i32> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    (1..=64).filter(|signal| mask & (1 << (signal - 1)) != 0).collect()
}

/// Each session holds a PTY and a socket: use all the system allows.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(%error, soft, "cannot raise the open-file limit");
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal; files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
