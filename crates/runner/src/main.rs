//! `agentrelay-runner`: parses flags, sets up logging, runs until SIGINT/SIGTERM or a refusal.

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
        Some(RunnerCommand::Report { activity }) => {
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
    tokio::spawn(async move {
        wait_for_signal().await;
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

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
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
