//! `agentrelay-runner install-service`: the runner as a systemd service, with the flags it was
//! given. The unit comes from `deploy/agentrelay-runner.service` (one source for both), with
//! ExecStart, User and EnvironmentFile filled in; the token goes to a mode-0600 environment file
//! because unit files are world-readable.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::RunnerConfig;

/// The unit as shipped in `deploy/`.
const TEMPLATE: &str = include_str!("../../../deploy/agentrelay-runner.service");

/// Where the files went, and what to run next.
#[derive(Debug)]
pub struct Installed {
    /// The unit file.
    pub unit: PathBuf,
    /// The environment file holding the token.
    pub env_file: PathBuf,
    /// The commands that start it.
    pub next: String,
}

/// Writes the unit and its environment file for `config`.
pub fn install(
    config: &RunnerConfig,
    user: bool,
    output: Option<&Path>,
    run_as: Option<&str>,
) -> anyhow::Result<Installed> {
    let token = config.resolved_token().context(
        "no runner token to put in the service's environment file: pass --token or set RUNNER_TOKEN",
    )?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    // systemd ignores a relative EnvironmentFile=.
    let output = output.map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()));
    let (unit_dir, env_dir) = match (output, user) {
        (Some(dir), _) => (dir.clone(), dir),
        (None, true) => {
            let home = home.context("HOME is not set; pass --output")?;
            (home.join(".config/systemd/user"), home.join(".config/agentrelay"))
        }
        (None, false) => (PathBuf::from("/etc/systemd/system"), PathBuf::from("/etc/agentrelay")),
    };
    let unit = unit_dir.join("agentrelay-runner.service");
    let env_file = env_dir.join("runner.env");
    let exe = std::env::current_exe().context("cannot tell where this binary is")?;
    let account = run_as
        .map(str::to_owned)
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.is_empty());
    let account = if user { None } else { account };
    let text = render(&exe, &flags(config, account.as_deref()), &env_file, account.as_deref(), user);

    std::fs::create_dir_all(&env_dir).with_context(|| format!("creating {}", env_dir.display()))?;
    let mut env = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&env_file)
        .with_context(|| format!("writing {}", env_file.display()))?;
    writeln!(env, "RUNNER_TOKEN={token}").with_context(|| format!("writing {}", env_file.display()))?;
    std::fs::create_dir_all(&unit_dir).with_context(|| format!("creating {}", unit_dir.display()))?;
    std::fs::write(&unit, text).with_context(|| format!("writing {}", unit.display()))?;

    let next = if user {
        "systemctl --user daemon-reload && systemctl --user enable --now agentrelay-runner\n  \
         loginctl enable-linger \"$USER\"   # keep it running while you are logged out"
            .to_owned()
    } else {
        "systemctl daemon-reload && systemctl enable --now agentrelay-runner".to_owned()
    };
    Ok(Installed { unit, env_file, next })
}

/// The unit text: the template with this machine's ExecStart, User and EnvironmentFile. A user
/// unit drops the options only a system manager can apply.
fn render(exe: &Path, flags: &[String], env_file: &Path, account: Option<&str>, user: bool) -> String {
    let exec = std::iter::once(quote(&exe.to_string_lossy())).chain(flags.iter().map(|f| quote(f)));
    let exec = exec.collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for line in TEMPLATE.lines() {
        let line = if line.starts_with("ExecStart=") {
            format!("ExecStart={exec}")
        } else if line.starts_with("EnvironmentFile=") {
            format!("EnvironmentFile={}", env_file.display())
        } else if line.starts_with("User=") {
            match account {
                Some(account) => format!("User={account}"),
                None => continue,
            }
        } else if user
            && (line.starts_with("Protect")
                || line.starts_with("Restrict")
                || line.starts_with("LockPersonality"))
        {
            continue;
        } else if user && line.starts_with("WantedBy=") {
            "WantedBy=default.target".to_owned()
        } else {
            line.to_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The flags that reproduce `config` (the token excepted), for a service running as `account`.
fn flags(config: &RunnerConfig, account: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |flag: &str, value: String| {
        out.push(flag.to_owned());
        out.push(value);
    };
    for hq in &config.hq {
        push("--hq", hq.clone());
    }
    if let Some(name) = &config.name {
        push("--name", name.clone());
    }
    for (key, value) in &config.labels {
        push("--label", format!("{key}={value}"));
    }
    // Under sudo, the default state dir would be root's; the service's account needs its own.
    let state_dir = match (&config.state_dir, account.and_then(home_of)) {
        (None, Some(home)) => Some(home.join(".local/state/agentrelay-runner")),
        _ => config.resolved_state_dir(),
    };
    if let Some(dir) = state_dir {
        push("--state-dir", dir.to_string_lossy().into_owned());
    }
    push("--buffer-size", config.buffer_size.to_string());
    for program in &config.allow {
        push("--allow", program.clone());
    }
    for variable in &config.allow_env {
        push("--allow-env", variable.clone());
    }
    for dir in &config.allow_dir {
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        push("--allow-dir", absolute.to_string_lossy().into_owned());
    }
    for (name, path) in &config.repos {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        push("--repo", format!("{name}={}", absolute.to_string_lossy()));
    }
    push("--kill-grace", humantime::format_duration(config.kill_grace).to_string());
    for (flag, path) in
        [("--ca-cert", &config.ca_cert), ("--presets", &config.presets), ("--config", &config.config)]
    {
        if let Some(path) = path {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            push(flag, absolute.to_string_lossy().into_owned());
        }
    }
    push("--log-format", config.log_format.clone());
    if config.presets_only {
        out.push("--presets-only".to_owned());
    }
    out
}

/// The home directory of a local account.
fn home_of(account: &str) -> Option<PathBuf> {
    nix::unistd::User::from_name(account).ok().flatten().map(|user| user.dir)
}

/// Quotes a word for systemd's ExecStart when it needs it.
fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        word.to_owned()
    } else {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_carries_the_flags_but_never_the_token() {
        use clap::Parser;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RunnerConfig::parse_from([
            "agentrelay-runner",
            "--hq",
            "https://hq.example.com",
            "--token",
            "arl_run_secret",
            "--name",
            "gpu box",
            "--label",
            "gpu=true",
            "--allow",
            "bash",
            "--state-dir",
            "/var/lib/agentrelay-runner",
            "--repo",
            "app=/srv/app",
        ]);
        let installed = install(&config, false, Some(dir.path()), Some("alice")).expect("installed");
        let unit = std::fs::read_to_string(&installed.unit).expect("unit");
        let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).expect("ExecStart");
        for expected in [
            "--hq https://hq.example.com",
            "--name \"gpu box\"",
            "--label gpu=true",
            "--allow bash",
            "--repo app=/srv/app",
        ] {
            assert!(exec.contains(expected), "{expected} missing in {exec}");
        }
        assert!(unit.contains("User=alice"));
        assert!(unit.contains("Restart=on-failure") && unit.contains("NoNewPrivileges=true"));
        assert!(!unit.contains("arl_run_secret"), "the token stays out of the unit");
        assert!(unit.contains(&format!("EnvironmentFile={}", installed.env_file.display())));
        let env = std::fs::read_to_string(&installed.env_file).expect("env file");
        assert_eq!(env, "RUNNER_TOKEN=arl_run_secret\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&installed.env_file).expect("env file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let user = install(&config, true, Some(dir.path()), None).expect("user unit");
        let unit = std::fs::read_to_string(&user.unit).expect("unit");
        assert!(!unit.contains("User=") && !unit.contains("ProtectKernel"), "{unit}");
        assert!(unit.contains("WantedBy=default.target"));
    }
}
