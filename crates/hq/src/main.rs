//! `agentrelay-hq`: parses flags, sets up logging, serves until SIGINT or SIGTERM.

use std::process::ExitCode;

use agentrelay_hq::config::{AdminAction, HqCommand};
use agentrelay_hq::{Hq, HqConfig};
use tokio_util::sync::CancellationToken;

// One thread: a keystroke's echo crosses fewer thread wake-ups (measured by `make bench`, see
// docs/performance.md); disk writes and big terminal-model chunks go to the blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = agentrelay_config::parse::<HqConfig>(&[("runner-token", "RUNNER_TOKEN")]);
    init_logging(&config.log_format);
    if let Err(error) = config.check() {
        eprintln!("agentrelay-hq: {error}");
        return ExitCode::from(2);
    }
    if let Some(HqCommand::Admin { action: AdminAction::Migrate { to } }) = &config.command {
        let (data_dir, url) = (config.data_dir.clone(), to.clone());
        // The blocking PostgreSQL client runs a runtime of its own: not on this one's thread.
        let migrated =
            tokio::task::spawn_blocking(move || agentrelay_hq::migrate::to_postgres(&data_dir, &url)).await;
        return match migrated {
            Ok(Ok(done)) => {
                println!(
                    "copied {} runners, {} sessions ({} output bytes), {} tokens, {} users and {} audit entries",
                    done.runners, done.sessions, done.output_bytes, done.tokens, done.users, done.audit
                );
                ExitCode::SUCCESS
            }
            Ok(Err(error)) => {
                eprintln!("agentrelay-hq: {error:#}");
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("agentrelay-hq: the migration failed: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(HqCommand::Admin { action: AdminAction::ResetToken }) = &config.command {
        return match agentrelay_hq::reset_admin_token(&config.data_dir) {
            Ok(secret) => {
                println!("{secret}");
                eprintln!(
                    "agentrelay-hq: the old bootstrap admin token is revoked; the new one is above (shown once)"
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("agentrelay-hq: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentrelay-hq: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: HqConfig) -> anyhow::Result<()> {
    raise_fd_limit();
    let hq = Hq::bind(config).await?;
    tracing::info!(addr = %hq.local_addr()?, "HQ listening");
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    hq.serve(shutdown).await
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

/// Every runner, viewer and stored session holds descriptors: use all the system allows.
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
