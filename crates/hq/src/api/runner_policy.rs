//! HQ's early answer to a session request its runner would refuse. The runner decides, and
//! refuses again whatever HQ says (HQ may be the one that was stolen); this only turns a failed
//! session later into a 400 or 403 now that names the problem.

use std::collections::BTreeMap;

use agentrelay_protocol::Runner;

use crate::error::AppError;

/// What a request asks of the runner besides its program.
pub struct Asked<'a> {
    /// A command line rather than a preset.
    pub command: bool,
    /// A working directory.
    pub cwd: bool,
    /// Environment variables.
    pub env: &'a BTreeMap<String, String>,
}

/// Refuses what the runner's advertised policy does not allow: anything but a bare preset on a
/// `--presets-only` runner (403), a variable its allowlist does not name (400, field `env`).
pub fn check(runner: &Runner, asked: &Asked<'_>) -> Result<(), AppError> {
    let policy = &runner.policy;
    if policy.locked {
        let field = [(asked.command, "command"), (!asked.env.is_empty(), "env"), (asked.cwd, "cwd")]
            .into_iter()
            .find_map(|(given, field)| given.then_some(field));
        if let Some(field) = field {
            return Err(AppError::Forbidden(format!(
                "runner '{}' starts only its presets (--presets-only): '{field}' is not accepted",
                runner.name
            )));
        }
    }
    if let Some(name) = asked.env.keys().find(|name| !policy.allows_env(name)) {
        let allowed = policy.env.as_deref().unwrap_or_default().join(", ");
        return Err(AppError::bad_field(
            "env",
            format!(
                "runner '{}' does not let sessions set '{name}' (allowed: {allowed}); its --allow-env would",
                runner.name
            ),
        ));
    }
    Ok(())
}
