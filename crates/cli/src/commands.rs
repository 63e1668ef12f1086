//! The subcommands that are one or two REST calls: login, lists, kill, recording, tokens.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use agentrelay_protocol::{Activity, CreatedToken, Role, Runner, Session, SessionStatus, TokenInfo, User};
use anyhow::Context;
use serde_json::{Value, json};

use crate::args::{RunArgs, SessionsArgs, TokenScope};
use crate::client::Api;
use crate::console::{out, say, stdout_error};
use crate::credentials::{self, Saved};
use crate::error::CliError;
use crate::table::{self, Table};

/// `agentrelay login`: a token from AGENTRELAY_TOKEN, the browser (on a terminal), a paste or
/// stdin; checked against HQ, then saved with HQ's address (mode 0600).
pub async fn login(
    path: &Path,
    hq: Option<String>,
    ca_cert: Option<&Path>,
    saved: Saved,
    args: &crate::args::LoginArgs,
) -> Result<(), CliError> {
    let hq = hq.or(saved.hq.clone()).ok_or_else(|| {
        CliError::Config("which HQ? run `agentrelay login --hq https://hq.example.com`".into())
    })?;
    let token = match std::env::var("AGENTRELAY_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(token) => token,
        None if args.browser || (std::io::stdin().is_terminal() && !args.paste) => {
            let anonymous = Api::new(&hq, String::new(), ca_cert)?;
            crate::browser_login::sign_in(&anonymous, !args.no_browser).await?.token
        }
        None => {
            // Ctrl-C at the prompt must not leave the terminal without echo.
            let guard = tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    crate::terminal::restore();
                    say("");
                    std::process::exit(130);
                }
            });
            let prompt_for = hq.clone();
            let read = tokio::task::spawn_blocking(move || read_token(&prompt_for)).await;
            guard.abort();
            read.map_err(|e| CliError::Other(e.into()))??
        }
    };
    let api = Api::new(&hq, token.clone(), ca_cert)?;
    // Any authenticated read proves the token; sessions need the user scope the CLI needs.
    let sessions: Vec<Value> = api.get("/api/sessions").await?;
    let me: Option<User> = api.get("/api/me").await.ok();
    let saved =
        Saved { hq: Some(api.base().to_owned()), token: Some(token), ca_cert: ca_cert.map(Path::to_owned) };
    credentials::save(path, &saved)?;
    let who = me.map(|u| format!(" as {}", describe_user(&u))).unwrap_or_default();
    say(&format!(
        "Logged in to {}{who} ({} sessions). Saved to {}",
        api.base(),
        sessions.len(),
        path.display()
    ));
    Ok(())
}

/// `Ann Lee <ann@example.com> (member)`.
fn describe_user(user: &User) -> String {
    let role = match user.role {
        Role::Admin => "admin",
        Role::Member => "member",
    };
    if user.email.is_empty() {
        format!("{} ({role})", user.name)
    } else {
        format!("{} <{}> ({role})", user.name, user.email)
    }
}

/// `agentrelay whoami`: the user behind the saved token.
pub async fn whoami(api: &Api, json: bool) -> Result<(), CliError> {
    let me: Value = api.get("/api/me").await?;
    if json {
        return out(&format!("{me:#}"));
    }
    let user: User = serde_json::from_value(me).context("reading /api/me")?;
    out(&format!("{} at {}", describe_user(&user), api.base()))
}

/// The token from the terminal (not echoed) or the first line of stdin.
fn read_token(hq: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let token = if stdin.is_terminal() {
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "Token for {hq}: ").and_then(|()| stderr.flush());
        let token = read_hidden_line().context("reading the token")?;
        say("");
        token
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading the token from stdin")?;
        line
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::Config("no token given".into()));
    }
    Ok(token)
}

/// A line from the terminal with echo off, restored afterwards (and by the Ctrl-C handler).
fn read_hidden_line() -> std::io::Result<String> {
    use rustix::termios::{self, LocalModes, OptionalActions};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let original = termios::tcgetattr(stdin.as_fd())?;
    let mut quiet = original.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &quiet)?;
    // A restore that runs even when the process is interrupted by Ctrl-C.
    crate::terminal::remember(original.clone());
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    crate::terminal::restore();
    read.map(|_| line)
}

/// `agentrelay logout`: drops the saved token, keeps the address.
pub fn logout(path: &Path, saved: Saved) -> Result<(), CliError> {
    if saved.token.is_none() {
        say("Not logged in.");
        return Ok(());
    }
    credentials::save(path, &Saved { token: None, ..saved })?;
    say(&format!("Logged out; the token was removed from {}", path.display()));
    Ok(())
}

/// `agentrelay runners`.
pub async fn runners(api: &Api, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(&api.get::<Value>("/api/runners").await?);
    }
    let runners: Vec<Runner> = api.get("/api/runners").await?;
    let now = chrono::Utc::now();
    let mut table = Table::new(&["NAME", "STATUS", "LABELS", "HOST", "OS", "VERSION", "LAST SEEN", "ID"]);
    for runner in runners {
        let labels = runner.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        table.row(vec![
            runner.name,
            format!("{:?}", runner.status).to_lowercase(),
            if labels.is_empty() { "-".into() } else { labels },
            runner.hostname,
            runner.os,
            runner.version,
            table::ago(runner.last_seen_at, now),
            runner.id.to_string(),
        ]);
    }
    out(&table.render())?;
    Ok(())
}

/// `agentrelay sessions`.
pub async fn sessions(api: &Api, args: &SessionsArgs) -> Result<(), CliError> {
    let all: Vec<Value> = api.get("/api/sessions").await?;
    let runners: Vec<Runner> = api.get("/api/runners").await?;
    let names: HashMap<_, _> = runners.iter().map(|r| (r.id, r.name.clone())).collect();
    let runner_filter = match &args.runner {
        Some(wanted) => Some(
            runners
                .iter()
                .find(|r| r.name == *wanted || r.id.to_string() == *wanted)
                .map(|r| r.id)
                .ok_or_else(|| CliError::Config(format!("no runner named '{wanted}'")))?,
        ),
        None => None,
    };
    let mut shown = Vec::new();
    for value in all {
        let session: Session = serde_json::from_value(value.clone())
            .map_err(|e| anyhow::anyhow!("HQ sent a session this CLI cannot read: {e}"))?;
        if (!args.all && session.status.is_final()) || runner_filter.is_some_and(|id| id != session.runner_id)
        {
            continue;
        }
        shown.push((session, value));
    }
    if args.json {
        return print_json(&Value::Array(shown.into_iter().map(|(_, v)| v).collect()));
    }
    let now = chrono::Utc::now();
    let mut table = Table::new(&[
        "ID", "NAME", "RUNNER", "STATUS", "ACTIVITY", "EXIT", "STARTED", "OUTPUT", "TOKENS", "COST", "BY",
        "COMMAND",
    ]);
    for (session, _) in &shown {
        let exit = match (session.exit_code, &session.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => signal.clone(),
            (None, None) => "-".into(),
        };
        table.row(vec![
            session.id.to_string(),
            session.name.clone().unwrap_or_else(|| "-".into()),
            names.get(&session.runner_id).cloned().unwrap_or_else(|| "?".into()),
            format!("{:?}", session.status).to_lowercase(),
            match session.activity {
                Some(Activity::Working) => "working".into(),
                Some(Activity::WaitingForInput) => "NEEDS INPUT".into(),
                Some(Activity::Idle) => "idle".into(),
                None => "-".into(),
            },
            exit,
            table::ago(session.created_at, now),
            table::bytes(session.output_bytes),
            session.usage.as_ref().map_or_else(|| "-".into(), table::tokens),
            session
                .usage
                .as_ref()
                .and_then(|u| u.cost_usd)
                .map_or_else(|| "-".into(), |c| format!("${c:.2}")),
            session.created_by.clone(),
            table::command_line(&session.command),
        ]);
    }
    out(&table.render())?;
    if shown.is_empty() && !args.all {
        say("No live sessions (--all shows finished ones too).");
    }
    Ok(())
}

/// `agentrelay run`: starts the session; the caller attaches unless `--detach`.
pub async fn start(api: &Api, args: &RunArgs) -> Result<Session, CliError> {
    let mut body = match &args.preset {
        Some(preset) => json!({ "preset": preset }),
        None => json!({ "command": args.command }),
    };
    match (&args.runner, args.label.is_empty()) {
        (Some(name), _) => body["runner"] = json!(name),
        (None, false) => body["labels"] = json!(args.label.iter().cloned().collect::<HashMap<_, _>>()),
        (None, true) => {
            return Err(CliError::Config(
                "name a runner with --runner NAME or --label key=value (see `agentrelay runners`)".into(),
            ));
        }
    }
    if let Some(cwd) = &args.cwd {
        body["cwd"] = json!(cwd);
    }
    if let Some(repo) = &args.repo {
        body["workspace"] = json!({ "repo": repo, "branch": args.branch, "base": args.base });
    }
    if let Some(prompt) = &args.prompt {
        body["prompt"] = json!(prompt);
    }
    if let Some(name) = &args.name {
        body["name"] = json!(name);
    }
    if !args.env.is_empty() {
        body["env"] = json!(args.env.iter().cloned().collect::<HashMap<_, _>>());
    }
    if let Some(size) = crate::terminal::size() {
        body["rows"] = json!(size.rows);
        body["cols"] = json!(size.cols);
    }
    api.post("/api/sessions", &body).await
}

/// How long `run --detach` waits for the runner to start the session.
const START_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until the session runs (or has already ended); a session that failed to start is an
/// error saying why, in the runner's words.
pub async fn wait_until_started(api: &Api, mut session: Session) -> Result<Session, CliError> {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    let mut pause = std::time::Duration::from_millis(20);
    while session.status == SessionStatus::Starting {
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::Config(format!(
                "session {} has not started after {}s; see `agentrelay sessions --all`",
                session.id,
                START_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(250));
        session = api.get(&format!("/api/sessions/{}", session.id)).await?;
    }
    match session.status {
        SessionStatus::Failed | SessionStatus::Lost => Err(CliError::Config(format!(
            "session {} could not start: {}",
            session.id,
            session.error.as_deref().unwrap_or("no reason given")
        ))),
        _ => Ok(session),
    }
}

/// `agentrelay kill`.
pub async fn kill(api: &Api, session: &Session) -> Result<(), CliError> {
    // DELETE on a finished session removes it and its recording: not what `kill` means.
    if session.status.is_final() {
        say(&format!("Session {} had already ended.", session.id));
        return Ok(());
    }
    api.delete(&format!("/api/sessions/{}", session.id)).await?;
    say(&format!("Session {} is being hung up.", session.id));
    Ok(())
}

/// `agentrelay rename`.
pub async fn rename(api: &Api, session: &Session, name: Option<&str>) -> Result<(), CliError> {
    let renamed: Session =
        api.patch(&format!("/api/sessions/{}", session.id), &json!({ "name": name })).await?;
    match &renamed.name {
        Some(name) => say(&format!("Session {} is now named '{name}'.", renamed.id)),
        None => say(&format!("Session {} has no name now.", renamed.id)),
    }
    Ok(())
}

/// `agentrelay recording`: streams the asciicast file to stdout.
pub async fn recording(api: &Api, session: &Session) -> Result<(), CliError> {
    let mut response = api.get_stream(&format!("/api/sessions/{}/recording", session.id)).await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow::anyhow!("the recording stopped half way: {}", crate::error::root_cause(&e)))?
    {
        stdout.write_all(&chunk).map_err(stdout_error)?;
    }
    stdout.flush().map_err(stdout_error)?;
    Ok(())
}

/// `agentrelay tokens create`.
pub async fn create_token(
    api: &Api,
    name: &str,
    scope: TokenScope,
    expires_in: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let mut body = json!({ "name": name, "scope": scope.as_str() });
    if let Some(expires_in) = expires_in {
        body["expires_in"] = json!(expires_in);
    }
    let created: Value = api.post("/api/tokens", &body).await?;
    if json {
        return print_json(&created);
    }
    let created: CreatedToken = serde_json::from_value(created)
        .map_err(|e| anyhow::anyhow!("HQ sent a token this CLI cannot read: {e}"))?;
    let expiry = created
        .expires_at
        .map_or_else(|| "never expires".into(), |at| format!("expires {}", at.format("%Y-%m-%d %H:%M UTC")));
    say(&format!(
        "Created {} token '{}' ({}, id {}). It is shown only this once:",
        scope.as_str(),
        name,
        expiry,
        created.id
    ));
    out(&format!("{}\n", created.token))?;
    Ok(())
}

/// `agentrelay tokens list`.
pub async fn list_tokens(api: &Api, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(&api.get::<Value>("/api/tokens").await?);
    }
    let tokens: Vec<TokenInfo> = api.get("/api/tokens").await?;
    let now = chrono::Utc::now();
    let mut table = Table::new(&["ID", "NAME", "SCOPE", "CREATED", "EXPIRES"]);
    for token in tokens {
        table.row(vec![
            token.id.to_string(),
            token.name,
            format!("{:?}", token.scope).to_lowercase(),
            table::ago(token.created_at, now),
            token.expires_at.map_or_else(|| "never".into(), |at| at.format("%Y-%m-%d %H:%M UTC").to_string()),
        ]);
    }
    out(&table.render())?;
    Ok(())
}

/// `agentrelay tokens revoke`.
pub async fn revoke_token(api: &Api, id: &str) -> Result<(), CliError> {
    let id = uuid::Uuid::parse_str(id.trim())
        .map_err(|_| CliError::Config(format!("'{id}' is not a token id (see `agentrelay tokens list`)")))?;
    api.delete(&format!("/api/tokens/{id}")).await?;
    say(&format!("Revoked token {id}; its connections were cut."));
    Ok(())
}

fn print_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    out(&format!("{text}\n"))?;
    Ok(())
}
