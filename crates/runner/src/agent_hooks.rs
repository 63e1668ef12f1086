//! Exact activity from the agents that can tell it: a session that runs Claude Code or Codex gets
//! the agent's own hooks (Claude Code) or notify program (Codex) wired to `agentrelay-runner
//! report`, on that session's command line only. The user's settings files are never written,
//! and a user's own `notify` is left alone. HQ's screen reading stays the fallback.
//!
//! Gemini CLI is not wired: it reads hooks only from the user's and the project's settings, and
//! from system files it accepts only when root owns them and every folder above them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use crate::policy::Launch;

/// What the runner adds to a session's command line, for the agent it runs.
pub fn wire(launch: &mut Launch, state_dir: &Path) {
    let Some(program) = launch.command.first().map(|p| p.rsplit('/').next().unwrap_or(p).to_owned()) else {
        return;
    };
    if program != "claude" && program != "codex" {
        return;
    }
    // The hooks call this binary back; a runner run inside a test binary has no `report` to call.
    let Some(exe) = std::env::current_exe().ok().filter(|exe| {
        exe.file_name().is_some_and(|name| name.to_string_lossy().starts_with("agentrelay-runner"))
    }) else {
        tracing::debug!("not wiring agent hooks: this process is not agentrelay-runner");
        return;
    };
    let wired = match program.as_str() {
        "claude" => wire_claude(launch, state_dir, &exe),
        _ => wire_codex(launch, &exe),
    };
    if let Err(e) = wired {
        tracing::warn!(
            error = format!("{e:#}"),
            program,
            "activity hooks not wired; HQ reads the screen instead"
        );
    }
}

/// Claude Code: a settings file with hooks, added with `--settings` (merged over the user's own).
/// `UserPromptSubmit` → working; `PermissionRequest` (the moment a permission dialog opens),
/// `Notification` (a question, or a while idle) and `Stop` (its turn is over) → waiting.
fn wire_claude(launch: &mut Launch, state_dir: &Path, exe: &Path) -> anyhow::Result<()> {
    if launch.command.iter().any(|arg| arg == "--settings" || arg.starts_with("--settings=")) {
        anyhow::bail!("the command line passes its own --settings");
    }
    let path = write_claude_settings(state_dir, exe)?;
    launch.command.splice(1..1, ["--settings".to_owned(), path.to_string_lossy().into_owned()]);
    Ok(())
}

/// The notifications that mean Claude Code waits for someone: a question for the user, or
/// its input box idle a while.
const NOTIFICATION_MATCHER: &str = "idle_prompt|elicitation_dialog";

/// The hooks file; the same for every session (the report command finds its session in its
/// environment), rewritten at each start so it names this runner's binary.
fn write_claude_settings(state_dir: &Path, exe: &Path) -> anyhow::Result<PathBuf> {
    let exe = exe.to_str().context("the runner's path is not UTF-8")?;
    let exe = shlex::try_quote(exe).context("the runner's path cannot be quoted")?;
    let hook = |activity: &str, matcher: &str| {
        let command = format!("{exe} report {activity}");
        json!([{ "matcher": matcher, "hooks": [{ "type": "command", "command": command }] }])
    };
    let settings = json!({ "hooks": {
        "UserPromptSubmit": hook("working", ""),
        "PermissionRequest": hook("waiting", ""),
        // Not `permission_prompt`: `PermissionRequest` tells of the dialog as it opens, and that
        // notification's hook can come late, after the dialog was answered (seen under load),
        // turning an agent back at work into one that waits.
        "Notification": hook("waiting", NOTIFICATION_MATCHER),
        "Stop": hook("waiting", ""),
    }});
    let dir = state_dir.join("agents");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("claude-settings.json");
    // Written beside and renamed: two sessions starting at once never read half a file.
    let partial = dir.join(format!("claude-settings.json.{}", std::process::id()));
    std::fs::write(&partial, serde_json::to_vec_pretty(&settings)?)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Codex: `-c notify=[…]`, the program Codex runs when a turn completes → waiting. Skipped when
/// the user's `config.toml` (or the command line) sets a `notify` of its own, which ours would
/// replace.
fn wire_codex(launch: &mut Launch, exe: &Path) -> anyhow::Result<()> {
    if launch.command.iter().any(|arg| arg.trim_start().starts_with("notify")) {
        anyhow::bail!("the command line sets its own notify");
    }
    if let Some((config, table)) = codex_config(launch)
        && table.contains_key("notify")
    {
        anyhow::bail!("{} sets its own notify", config.display());
    }
    let exe = exe.to_str().context("the runner's path is not UTF-8")?;
    let notify = toml::Value::Array([exe, "report", "waiting"].into_iter().map(toml::Value::from).collect());
    launch.command.splice(1..1, ["-c".to_owned(), format!("notify={notify}")]);
    Ok(())
}

/// The user's Codex `config.toml` (in `$CODEX_HOME`, from the session's environment or the
/// runner's, else `~/.codex`), when there is one that parses.
pub fn codex_config(launch: &Launch) -> Option<(PathBuf, toml::Table)> {
    let home = launch.env.get("CODEX_HOME").cloned().or_else(|| std::env::var("CODEX_HOME").ok());
    let home =
        home.map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".codex")))?;
    let config = home.join("config.toml");
    let table = std::fs::read_to_string(&config).ok()?.parse::<toml::Table>().ok()?;
    Some((config, table))
}

/// Whether an agent's event, passed to `report` as its last argument, is about the session's own
/// conversation. Codex runs its notify program for every turn it completes, including those of
/// the side conversation that writes the session's title, whose one input is Codex's own
/// request for a title: that one says nothing about whether anyone is needed.
pub fn event_counts(event: &str) -> bool {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(event) else { return true };
    if event["type"] != "agent-turn-complete" {
        return true;
    }
    let inputs = event["input-messages"].as_array().cloned().unwrap_or_default();
    !inputs
        .iter()
        .filter_map(|m| m.as_str())
        .any(|m| m.starts_with("Generate a concise, single-line task title"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(command: &[&str]) -> Launch {
        Launch {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            cwd: None,
            env: Default::default(),
        }
    }

    #[test]
    fn claude_gets_a_settings_file_with_the_hooks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut claude = launch(&["claude", "--model", "opus"]);
        wire_claude(&mut claude, dir.path(), Path::new("/opt/agent relay/agentrelay-runner")).expect("wired");
        assert_eq!(claude.command[1], "--settings");
        assert_eq!(claude.command[3..], ["--model", "opus"]);
        let settings: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&claude.command[2]).expect("written")).expect("json");
        let command =
            settings["hooks"]["PermissionRequest"][0]["hooks"][0]["command"].as_str().expect("a hook");
        assert_eq!(command, "'/opt/agent relay/agentrelay-runner' report waiting");
        assert_eq!(
            settings["hooks"]["UserPromptSubmit"][0]["hooks"][0]["command"]
                .as_str()
                .map(|c| c.ends_with("report working")),
            Some(true)
        );
        // Permission prompts are PermissionRequest's: their notification can come after the answer.
        assert_eq!(settings["hooks"]["Notification"][0]["matcher"], "idle_prompt|elicitation_dialog");

        let mut own = launch(&["claude", "--settings", "mine.json"]);
        assert!(wire_claude(&mut own, dir.path(), Path::new("/x/agentrelay-runner")).is_err());
        assert_eq!(own.command.len(), 3, "left as it was");
    }

    #[test]
    fn codex_gets_notify_unless_the_user_has_one() {
        let home = tempfile::tempdir().expect("tempdir");
        let mut codex = launch(&["codex", "--no-daemon"]);
        codex.env.insert("CODEX_HOME".into(), home.path().to_string_lossy().into_owned());
        wire_codex(&mut codex, Path::new("/bin/agentrelay-runner")).expect("wired");
        assert_eq!(
            codex.command,
            ["codex", "-c", r#"notify=["/bin/agentrelay-runner", "report", "waiting"]"#, "--no-daemon"]
        );

        std::fs::write(home.path().join("config.toml"), "notify = [\"say\", \"done\"]\n").expect("write");
        let mut theirs = launch(&["codex"]);
        theirs.env.insert("CODEX_HOME".into(), home.path().to_string_lossy().into_owned());
        assert!(wire_codex(&mut theirs, Path::new("/bin/agentrelay-runner")).is_err());
        assert_eq!(theirs.command, ["codex"]);
    }

    #[test]
    fn codex_title_turns_do_not_count() {
        let title = r#"{"type":"agent-turn-complete","input-messages":["Generate a concise, single-line task title of at most 36 characters"]}"#;
        let own = r#"{"type":"agent-turn-complete","input-messages":["please make the file"]}"#;
        assert!(!event_counts(title));
        assert!(event_counts(own));
        assert!(event_counts("not json"));
    }
}
