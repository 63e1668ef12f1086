//! `agentrelay`: list runners and sessions, start sessions, and attach to them from a local
//! terminal as if they ran here.

mod args;
mod attach;
mod browser_login;
mod client;
mod commands;
mod console;
mod credentials;
mod error;
mod logs;
mod review;
mod stream;
mod table;
mod terminal;

use std::io::Write;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command, TokensCommand};
use crate::client::Api;
use crate::credentials::Saved;
use crate::error::CliError;

fn main() {
    let cli = Cli::parse();
    // One crypto provider for HTTPS and WSS, chosen here so no build depends on feature luck.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agentrelay: cannot start: {error}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(run(cli));
    let _ = std::io::stdout().flush();
    // The stdin thread may sit in a read that nothing can cancel; exiting ends it.
    std::process::exit(code);
}

/// Runs one command; the process's exit code.
async fn run(cli: Cli) -> i32 {
    // `run` and `attach` pass the remote exit code through, so their own failures use 255 (as ssh).
    let own_failure = if matches!(cli.command, Command::Run(_) | Command::Attach(_)) { 255 } else { 1 };
    match dispatch(cli).await {
        Ok(code) => code,
        // Like any Unix tool whose reader left: quietly, as if by SIGPIPE.
        Err(CliError::BrokenPipe) => 141,
        Err(error) => {
            terminal::restore();
            console::say(&format!("agentrelay: {error}"));
            own_failure
        }
    }
}

async fn dispatch(cli: Cli) -> Result<i32, CliError> {
    let path = credentials::path(cli.credentials.as_deref())?;
    let saved = credentials::load(&path)?;
    let ca_cert = cli.ca_cert.clone().or(saved.ca_cert.clone());
    let command = match cli.command {
        Command::Login(args) => {
            commands::login(&path, cli.hq, ca_cert.as_deref(), saved, &args).await?;
            return Ok(0);
        }
        Command::Logout => {
            commands::logout(&path, saved)?;
            return Ok(0);
        }
        Command::Completions { shell } => {
            // Into memory first: the generator panics on a write error such as a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "agentrelay", &mut script);
            console::out_bytes(&script)?;
            return Ok(0);
        }
        command => command,
    };
    let api = connect(cli.hq.clone(), ca_cert.as_deref(), saved)?;
    match command {
        Command::Runners(list) => commands::runners(&api, list.json).await?,
        Command::Sessions(args) => commands::sessions(&api, &args).await?,
        Command::Run(args) => {
            let session = commands::start(&api, &args).await?;
            if args.detach {
                // Only once it runs: a program that cannot start is an error here, with the reason.
                let session = commands::wait_until_started(&api, session).await?;
                console::out(&format!("{}\n", session.id))?;
                return Ok(0);
            }
            // From byte 0: everything the process printed, even before we connected.
            return finish(attach::attach(&api, session.id, Some(0), cli.keepalive).await?, session.id);
        }
        Command::Attach(args) => {
            let session = api.resolve_session(&args.id).await?;
            return finish(attach::attach(&api, session.id, None, cli.keepalive).await?, session.id);
        }
        Command::Diff(args) => {
            review::diff(&api, &api.resolve_session(&args.id).await?, args.path.as_deref()).await?;
        }
        Command::Review(args) => {
            let session = api.resolve_session(&args.id).await?;
            review::review(&api, &session, &args.comments, args.summary.as_deref(), args.when_waiting)
                .await?;
        }
        Command::Kill(arg) => commands::kill(&api, &api.resolve_session(&arg.id).await?).await?,
        Command::Rename(args) => {
            commands::rename(&api, &api.resolve_session(&args.id).await?, args.name.as_deref()).await?;
        }
        Command::Logs(args) => {
            let session = api.resolve_session(&args.id).await?;
            logs::logs(&api, &session, args.follow, args.plain, cli.keepalive).await?;
        }
        Command::Recording(arg) => commands::recording(&api, &api.resolve_session(&arg.id).await?).await?,
        Command::Tokens(TokensCommand::Create { name, scope, expires_in, json }) => {
            commands::create_token(&api, &name, scope, expires_in.as_deref(), json).await?;
        }
        Command::Tokens(TokensCommand::List(list)) => commands::list_tokens(&api, list.json).await?,
        Command::Tokens(TokensCommand::Revoke { id }) => commands::revoke_token(&api, &id).await?,
        Command::Whoami(list) => commands::whoami(&api, list.json).await?,
        Command::Login(_) | Command::Logout | Command::Completions { .. } => {}
    }
    Ok(0)
}

/// The exit code after an attachment, saying why when the session ended without one.
fn finish(outcome: attach::Outcome, session: uuid::Uuid) -> Result<i32, CliError> {
    if let attach::Outcome::Ended(message) = &outcome {
        console::say(&format!("agentrelay: session {session} ended without an exit status: {message}"));
    }
    Ok(outcome.exit_code())
}

/// The API client from flags, environment and the saved file, in that order. The saved token
/// only ever goes to the HQ it was saved for.
fn connect(hq: Option<String>, ca_cert: Option<&std::path::Path>, saved: Saved) -> Result<Api, CliError> {
    let same = |a: &str, b: &str| a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/');
    let saved_token = match (&hq, &saved.hq) {
        (Some(wanted), Some(saved_hq)) if !same(wanted, saved_hq) => None,
        _ => saved.token,
    };
    let hq = hq.or(saved.hq).ok_or_else(|| {
        CliError::Config(
            "not logged in: run `agentrelay login --hq https://hq.example.com` or set AGENTRELAY_HQ".into(),
        )
    })?;
    let token = std::env::var("AGENTRELAY_TOKEN").ok().filter(|t| !t.is_empty()).or(saved_token).ok_or_else(
        || {
            CliError::Config(format!(
                "no token for {hq}: run `agentrelay login --hq {hq}` or set AGENTRELAY_TOKEN"
            ))
        },
    )?;
    Api::new(&hq, token, ca_cert)
}
