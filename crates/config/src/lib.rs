//! Layered configuration for clap programs: a flag beats its environment variable, which beats
//! the key of the same name in an optional TOML file (`--config` or `AGENTRELAY_CONFIG`), which
//! beats the built-in default.
//!
//! The file's keys are the long flag names (`ring-size = "4MiB"`, `label = ["gpu=true"]`); a
//! table becomes `key=value` entries (`label = { gpu = "true" }`). Each key becomes the flag's
//! default before clap parses, so clap's own precedence (flag > env > default) does the rest.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches};

/// Flags whose values must not sit in a file others can read.
const SECRETS: &[&str] = &["token", "admin-token", "runner-token", "oidc-client-secret"];

/// Parses the process's arguments with the config file layered in; exits with clap's message
/// (and status 2) on bad input, as `Parser::parse` does. `aliases` pairs a file key with a second
/// environment variable that also sets it (`token` and plain `RUNNER_TOKEN`): when that variable
/// is set, it wins over the file, as environment variables do.
pub fn parse<T: CommandFactory + FromArgMatches>(aliases: &[(&str, &str)]) -> T {
    let env = std::env::var_os("AGENTRELAY_CONFIG");
    let shadowed: Vec<&str> = aliases
        .iter()
        .filter(|(_, variable)| std::env::var_os(variable).is_some_and(|v| !v.is_empty()))
        .map(|(key, _)| *key)
        .collect();
    match try_parse_from::<T>(std::env::args_os().collect(), env, &shadowed) {
        Ok(parsed) => parsed,
        Err(error) => error.exit(),
    }
}

/// Parses `args`; `env_config` is the value of `AGENTRELAY_CONFIG`, if set; file keys in
/// `shadowed` are ignored (an environment variable of another name set them).
pub fn try_parse_from<T: CommandFactory + FromArgMatches>(
    args: Vec<OsString>,
    env_config: Option<OsString>,
    shadowed: &[&str],
) -> Result<T, clap::Error> {
    let mut command = T::command();
    if let Some(path) = config_path(&args).or(env_config.map(PathBuf::from)) {
        command = layer_file(command, &path, shadowed)?;
    }
    let matches = command.try_get_matches_from_mut(args)?;
    T::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// The `--config` value among `args`, before any `--`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            return None;
        }
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

fn layer_file(
    mut command: clap::Command,
    path: &Path,
    shadowed: &[&str],
) -> Result<clap::Command, clap::Error> {
    let template = command.clone();
    let fail = |message: String| template.clone().error(clap::error::ErrorKind::InvalidValue, message);
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read the config file {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| fail(format!("the config file {} is not valid TOML: {e}", path.display())))?;
    let loose = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0);
    for (key, value) in table {
        let flag = key.replace('_', "-");
        if flag == "config" {
            return Err(fail(format!("{}: a config file cannot name another one", path.display())));
        }
        let Some(id) = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(flag.as_str()))
            .map(|arg| arg.get_id().to_string())
        else {
            return Err(fail(format!(
                "{}: unknown key '{key}' (keys are the long flag names, e.g. 'log-format')",
                path.display()
            )));
        };
        if loose && SECRETS.contains(&flag.as_str()) {
            eprintln!(
                "warning: {} holds '{key}' but others can read it; run chmod 600 on it",
                path.display()
            );
        }
        let values = values(&value).map_err(|what| fail(format!("{}: '{key}' {what}", path.display())))?;
        if shadowed.contains(&flag.as_str()) {
            continue;
        }
        command = command.mut_arg(id, |arg| arg.default_values(values));
    }
    Ok(command)
}

/// A TOML value as the flag values it stands for.
fn values(value: &toml::Value) -> Result<Vec<String>, &'static str> {
    Ok(match value {
        toml::Value::String(text) => vec![text.clone()],
        toml::Value::Integer(n) => vec![n.to_string()],
        toml::Value::Float(n) => vec![n.to_string()],
        toml::Value::Boolean(b) => vec![b.to_string()],
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    toml::Value::Array(_) | toml::Value::Table(_) => {
                        return Err("nests a list or table in a list");
                    }
                    other => out.extend(values(other)?),
                }
            }
            out
        }
        toml::Value::Table(pairs) => pairs
            .iter()
            .map(|(k, v)| match v {
                toml::Value::String(text) => Ok(format!("{k}={text}")),
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    Ok(format!("{k}={v}"))
                }
                _ => Err("has a table entry that is not a plain value"),
            })
            .collect::<Result<_, _>>()?,
        toml::Value::Datetime(_) => return Err("is a date, which no flag takes"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Demo {
        #[arg(long, env = "AGENTRELAY_TEST_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "AGENTRELAY_TEST_RING_SIZE", default_value = "1MiB")]
        ring_size: String,
        #[arg(long, env = "AGENTRELAY_TEST_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long = "label", value_delimiter = ',')]
        labels: Vec<String>,
        #[arg(long, default_value_t = 64)]
        max_sessions: usize,
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("demo").chain(list.iter().copied()).map(OsString::from).collect()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        (dir, path)
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let (_dir, path) = file(
            "ring-size = \"4MiB\"\nlisten = \"0.0.0.0:9\"\nmax_sessions = 3\nlabel = { gpu = \"true\", zone = \"eu\" }\n",
        );
        let p = path.to_str().expect("utf-8");
        let parsed: Demo =
            try_parse_from(args(&["--config", p, "--listen", "127.0.0.1:1"]), None, &[]).expect("parses");
        assert_eq!(parsed.ring_size, "4MiB", "the file beats the default");
        assert_eq!(parsed.listen, "127.0.0.1:1", "the flag beats the file");
        assert_eq!(parsed.max_sessions, 3);
        assert_eq!(parsed.labels, ["gpu=true", "zone=eu"]);
        let plain: Demo = try_parse_from(args(&[]), None, &[]).expect("parses");
        assert_eq!(plain.ring_size, "1MiB");
        // A key another environment variable already set is left to it.
        let shadowed: Demo = try_parse_from(args(&["--config", p]), None, &["listen"]).expect("parses");
        assert_eq!(shadowed.listen, "127.0.0.1:8080");
        assert_eq!(shadowed.ring_size, "4MiB");
        // The environment names the file too.
        let by_env: Demo =
            try_parse_from(args(&[]), Some(path.clone().into_os_string()), &[]).expect("parses");
        assert_eq!(by_env.listen, "0.0.0.0:9");
    }

    #[test]
    fn bad_files_are_named_with_the_problem() {
        let (_dir, path) = file("colour = \"red\"\n");
        let p = path.to_str().expect("utf-8");
        let error =
            try_parse_from::<Demo>(args(&["--config", p]), None, &[]).expect_err("unknown key").to_string();
        assert!(error.contains("unknown key 'colour'"), "{error}");
        let (_dir, path) = file("listen = [\n");
        let error = try_parse_from::<Demo>(args(&["--config", path.to_str().expect("utf-8")]), None, &[])
            .expect_err("bad toml")
            .to_string();
        assert!(error.contains("not valid TOML"), "{error}");
        let error = try_parse_from::<Demo>(args(&["--config", "/nonexistent.toml"]), None, &[])
            .expect_err("missing")
            .to_string();
        assert!(error.contains("cannot read the config file"), "{error}");
    }
}
