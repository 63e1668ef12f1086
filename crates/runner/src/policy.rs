//! What this runner lets HQ start, decided here whatever HQ asks, so a stolen HQ is not a shell on
//! every machine: which command lines (`--allow`, argv prefixes), which requested environment
//! variables (`--allow-env`, and the hijacks always dropped), which working directories
//! (`--allow-dir`), or nothing but the runner's own presets (`--presets-only`).
//!
//! A start order becomes a [`Launch`] (the argv, directory and environment to spawn with) or a
//! [`Refusal`] that names what was refused and the flag that would allow it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use agentrelay_protocol::runner::{RunnerPolicy, StartSession, command_allowed, env_pattern_matches};

use crate::presets::{Presets, expand_home};

/// Variables a request may set on a runner with an allowlist, besides `--allow-env` and the
/// presets' own: the terminal and the locale.
pub const SAFE_ENV: &[&str] = &["TERM", "COLORTERM", "LANG", "LC_*", "TZ"];

/// Variables that make an interpreter, a shell, the loader or git run code of the requester's
/// choosing. A runner without an allowlist drops them from requested environments unless
/// `--allow-env` names them; with an allowlist they are refused like any unlisted name.
/// `docs/security.md` lists them too.
pub const HIJACKS: &[&str] = &[
    // The dynamic loader.
    "LD_*",
    "DYLD_*",
    "GLIBC_TUNABLES",
    "GCONV_PATH",
    // Shells: startup files, exported functions, hooks run at every prompt.
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "SHELLOPTS",
    "BASHOPTS",
    "PROMPT_COMMAND",
    "PS4",
    "ZDOTDIR",
    // Interpreters' own startup hooks and module paths.
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    // Programs other programs start: git's helpers, editors, pagers.
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_CONFIG_*",
    "GIT_CONFIG",
    "GIT_EXEC_PATH",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_EDITOR",
    "GIT_PAGER",
    "GIT_EXTERNAL_DIFF",
    "GIT_PROXY_COMMAND",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "MANPAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "BROWSER",
];

/// Why a start order was refused; each names what to change on the runner to allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `--presets-only`, and the order asked for more than a preset.
    #[error("runner '{runner}' starts only its presets (--presets-only): '{field}' is not accepted")]
    PresetsOnly {
        /// This runner.
        runner: String,
        /// `command`, `env` or `cwd`.
        field: &'static str,
    },
    /// No preset of that name.
    #[error("runner '{runner}' has no preset '{preset}'")]
    UnknownPreset {
        /// This runner.
        runner: String,
        /// The name asked for.
        preset: String,
    },
    /// The command line matches no `--allow` entry.
    #[error("runner '{runner}' does not allow '{program}' (allowed: {allowed})")]
    Command {
        /// This runner.
        runner: String,
        /// The command line, quoted.
        program: String,
        /// The `--allow` entries.
        allowed: String,
    },
    /// A requested environment variable the allowlist does not name.
    #[error(
        "runner '{runner}' does not let sessions set '{name}' (allowed: {allowed}); its --allow-env would"
    )]
    Env {
        /// This runner.
        runner: String,
        /// The variable.
        name: String,
        /// The names and patterns it allows.
        allowed: String,
    },
    /// A working directory outside the allowed ones.
    #[error("runner '{runner}' does not allow working directory '{requested}' ({resolved}): {why}")]
    Dir {
        /// This runner.
        runner: String,
        /// The directory as asked for.
        requested: String,
        /// Where it leads once symlinks and `..` are resolved.
        resolved: String,
        /// Which directories are allowed.
        why: String,
    },
}

/// Why a start order cannot run: refused by policy, or impossible (a directory that is not there).
#[derive(Debug, thiserror::Error)]
pub enum NotStarted {
    /// The policy said no (audited by HQ).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The order cannot be carried out.
    #[error("{0}")]
    Invalid(String),
}

/// What to spawn, once admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// argv.
    pub command: Vec<String>,
    /// Working directory; `None` is the runner's own.
    pub cwd: Option<PathBuf>,
    /// Variables set on top of the runner's environment (minus its secrets).
    pub env: BTreeMap<String, String>,
}

/// The runner's rules for what HQ may start.
#[derive(Debug, Clone)]
pub struct Policy {
    /// This runner's name, for messages.
    runner: String,
    presets_only: bool,
    /// `--allow`, each entry split into words as a shell would.
    allow: Vec<Vec<String>>,
    /// `--allow-env`.
    allow_env: Vec<String>,
    /// `--allow-dir`, resolved: a requested directory must be inside one.
    allow_dirs: Vec<PathBuf>,
    /// The runner's own working directory and its presets' directories, resolved: with an
    /// allowlist and no `--allow-dir`, a requested directory must be one of them exactly.
    own_dirs: Vec<PathBuf>,
    /// Names the presets set in their environments: a request may override them.
    preset_env: BTreeSet<String>,
}

/// Splits `--allow` entries into argv prefixes (`'npm test'` → `["npm", "test"]`).
pub fn parse_allow(entries: &[String]) -> Result<Vec<Vec<String>>, String> {
    entries
        .iter()
        .map(|entry| match shlex::split(entry) {
            Some(words) if !words.is_empty() && !words[0].is_empty() => Ok(words),
            _ => Err(format!("--allow '{entry}' is not a command line (check its quotes)")),
        })
        .collect()
}

impl Policy {
    /// The rules from the runner's flags and presets. `--allow-dir` entries must exist.
    pub fn new(
        runner: &str,
        allow: Vec<Vec<String>>,
        allow_env: &[String],
        allow_dirs: &[PathBuf],
        presets_only: bool,
        presets: &Presets,
    ) -> Result<Self, String> {
        let allow_dirs = allow_dirs
            .iter()
            .map(|dir| {
                std::fs::canonicalize(expand_home(&dir.to_string_lossy()))
                    .map_err(|e| format!("--allow-dir {}: {e}", dir.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut own_dirs: Vec<PathBuf> =
            std::env::current_dir().ok().and_then(|d| d.canonicalize().ok()).into_iter().collect();
        let mut preset_env = BTreeSet::new();
        for def in presets.defs() {
            preset_env.extend(def.env.keys().cloned());
            // A preset whose directory is missing fails when started; it allows nothing here.
            if let Some(dir) = def.cwd.as_deref().and_then(|d| std::fs::canonicalize(expand_home(d)).ok()) {
                own_dirs.push(dir);
            }
        }
        Ok(Self {
            runner: runner.to_owned(),
            presets_only,
            allow,
            allow_env: allow_env.to_vec(),
            allow_dirs,
            own_dirs,
            preset_env,
        })
    }

    /// Whether requested environments are limited to listed names (any `--allow`, or
    /// `--presets-only`), rather than open but for the hijacks.
    fn listed_env(&self) -> bool {
        !self.allow.is_empty() || self.presets_only
    }

    /// The names a request may set on a runner with an allowlist.
    fn env_patterns(&self) -> Vec<String> {
        let mut patterns: Vec<String> = SAFE_ENV.iter().map(|s| (*s).to_owned()).collect();
        patterns.extend(self.preset_env.iter().cloned());
        patterns.extend(self.allow_env.iter().cloned());
        patterns.dedup();
        patterns
    }

    /// What HQ is told.
    pub fn advertised(&self) -> RunnerPolicy {
        RunnerPolicy {
            locked: self.presets_only,
            allow: self.allow.clone(),
            env: self.listed_env().then(|| self.env_patterns()),
        }
    }

    /// Whether `command` may run (presets are filtered by this too).
    pub fn allows_command(&self, command: &[String]) -> bool {
        command_allowed(&self.allow, command)
    }

    /// Turns a start order into what to spawn, or says why not. A preset's own argv, directory
    /// and environment come from this runner, never from HQ; what HQ adds is checked.
    pub fn admit(&self, start: &StartSession, presets: &Presets) -> Result<Launch, NotStarted> {
        let preset = match &start.preset {
            Some(name) => Some(presets.get(name).ok_or_else(|| Refusal::UnknownPreset {
                runner: self.runner.clone(),
                preset: name.clone(),
            })?),
            None => None,
        };
        if self.presets_only {
            let field = if preset.is_none() {
                Some("command")
            } else if !start.env.is_empty() {
                Some("env")
            } else if start.cwd.is_some() {
                Some("cwd")
            } else {
                None
            };
            if let Some(field) = field {
                return Err(Refusal::PresetsOnly { runner: self.runner.clone(), field }.into());
            }
        }
        let command = match (preset, &start.prompt) {
            (None, None) => start.command.clone(),
            (Some(def), None) => def.preset.command.clone(),
            (Some(def), Some(prompt)) => def.command_with_prompt(prompt).ok_or_else(|| {
                NotStarted::Invalid(format!("preset '{}' takes no prompt", def.preset.name))
            })?,
            (None, Some(_)) => {
                return Err(NotStarted::Invalid("a prompt needs a preset that takes one".to_owned()));
            }
        };
        if !self.allows_command(&command) {
            return Err(self.refuse_command(&command).into());
        }
        let mut env = preset.map(|def| def.env.clone()).unwrap_or_default();
        for (name, value) in &start.env {
            if let Some(kept) = self.requested_var(name)? {
                env.insert(kept.to_owned(), value.clone());
            }
        }
        let cwd = match &start.cwd {
            Some(requested) => Some(self.requested_dir(requested)?),
            None => preset.and_then(|def| def.cwd.as_deref()).map(|dir| PathBuf::from(expand_home(dir))),
        };
        Ok(Launch { command, cwd, env })
    }

    /// Names the program when no entry allows it at all, else the whole command line.
    fn refuse_command(&self, command: &[String]) -> Refusal {
        let quoted = |words: &[String]| shlex::try_join(words.iter().map(String::as_str)).unwrap_or_default();
        let program = command.first().map(String::as_str).unwrap_or_default();
        let program_listed =
            self.allow.iter().any(|prefix| prefix.first().map(String::as_str) == Some(program));
        Refusal::Command {
            runner: self.runner.clone(),
            program: if program_listed { quoted(command) } else { program.to_owned() },
            allowed: self.allow.iter().map(|prefix| quoted(prefix)).collect::<Vec<_>>().join(", "),
        }
    }

    /// A requested variable: kept, dropped (our own names; hijacks on an open runner), or refused.
    fn requested_var<'a>(&self, name: &'a str) -> Result<Option<&'a str>, Refusal> {
        if name == "RUNNER_TOKEN" || name.starts_with("AGENTRELAY_") {
            tracing::warn!(variable = name, "dropping a requested variable that is the runner's own");
            return Ok(None);
        }
        let named = |patterns: &[String]| patterns.iter().any(|p| env_pattern_matches(p, name));
        if self.listed_env() {
            let patterns = self.env_patterns();
            return if named(&patterns) {
                Ok(Some(name))
            } else {
                Err(Refusal::Env {
                    runner: self.runner.clone(),
                    name: name.to_owned(),
                    allowed: patterns.join(", "),
                })
            };
        }
        if HIJACKS.iter().any(|p| env_pattern_matches(p, name)) && !named(&self.allow_env) {
            tracing::warn!(
                variable = name,
                "dropping a requested variable that can make a program run other code (--allow-env lets it through)"
            );
            return Ok(None);
        }
        Ok(Some(name))
    }

    /// A requested working directory, resolved (`~`, `..`, symlinks) and checked.
    fn requested_dir(&self, requested: &str) -> Result<PathBuf, NotStarted> {
        let expanded = expand_home(requested);
        // The spawn's own error would blame the program ("No such file or directory").
        let resolved = std::fs::canonicalize(&expanded)
            .map_err(|e| NotStarted::Invalid(format!("working directory '{expanded}': {e}")))?;
        if !resolved.is_dir() {
            return Err(NotStarted::Invalid(format!("working directory '{expanded}' is not a directory")));
        }
        let inside = |dirs: &[PathBuf]| dirs.iter().any(|dir| resolved.starts_with(dir));
        let why = if !self.allow_dirs.is_empty() {
            (!inside(&self.allow_dirs)).then(|| format!("it is not inside {}", list(&self.allow_dirs)))
        } else if self.listed_env() {
            (!self.own_dirs.contains(&resolved)).then(|| {
                format!(
                    "without --allow-dir, only {} (the runner's own and its presets' directories)",
                    list(&self.own_dirs)
                )
            })
        } else {
            None
        };
        match why {
            None => Ok(resolved),
            Some(why) => Err(Refusal::Dir {
                runner: self.runner.clone(),
                requested: requested.to_owned(),
                resolved: resolved.display().to_string(),
                why,
            }
            .into()),
        }
    }
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    fn start(command: &[&str], env: &[(&str, &str)], cwd: Option<&str>) -> StartSession {
        StartSession {
            session_id: uuid::Uuid::now_v7(),
            command: argv(command),
            cwd: cwd.map(str::to_owned),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            size: agentrelay_protocol::TermSize::DEFAULT,
            preset: None,
            prompt: None,
            workspace: false,
        }
    }

    fn policy(allow: &[&str], allow_env: &[&str], dirs: &[PathBuf]) -> Policy {
        let allow = parse_allow(&allow.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("parses");
        let allow_env: Vec<String> = allow_env.iter().map(|s| (*s).to_owned()).collect();
        Policy::new("box", allow, &allow_env, dirs, false, &Presets::default()).expect("policy")
    }

    #[test]
    fn allow_entries_are_argv_prefixes() {
        assert_eq!(
            parse_allow(&["npm test".into(), "'my tool' -x".into()]).expect("parses"),
            vec![argv(&["npm", "test"]), argv(&["my tool", "-x"])]
        );
        assert!(parse_allow(&["'unclosed".into()]).is_err());
        assert!(parse_allow(&["  ".into()]).is_err());
        let p = policy(&["bash", "npm test"], &[], &[]);
        assert!(p.admit(&start(&["bash", "-c", "true"], &[], None), &Presets::default()).is_ok());
        assert!(p.admit(&start(&["npm", "test", "--watch"], &[], None), &Presets::default()).is_ok());
        let refused = p.admit(&start(&["npm", "install"], &[], None), &Presets::default());
        assert!(matches!(refused, Err(NotStarted::Refused(Refusal::Command { .. }))), "{refused:?}");
    }

    #[test]
    fn an_allowlist_limits_requested_variables_to_listed_names() {
        let p = policy(&["bash"], &["MY_*"], &[]);
        let ok = p.admit(
            &start(&["bash"], &[("TERM", "x"), ("LC_ALL", "C"), ("MY_KEY", "1")], None),
            &Presets::default(),
        );
        assert_eq!(ok.expect("admitted").env.len(), 3);
        for name in ["BASH_ENV", "NODE_OPTIONS", "GREETING", "PATH"] {
            let refused = p.admit(&start(&["bash"], &[(name, "x")], None), &Presets::default());
            match refused {
                Err(NotStarted::Refused(Refusal::Env { name: refused, .. })) => assert_eq!(refused, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_open_runner_drops_hijacks_unless_allow_env_names_them() {
        let p = policy(&[], &["NODE_OPTIONS"], &[]);
        let env = [
            ("BASH_ENV", "/x"),
            ("NODE_OPTIONS", "--max-old-space-size=64"),
            ("GIT_CONFIG_COUNT", "1"),
            ("LD_PRELOAD", "/e.so"),
            ("BASH_FUNC_ls%%", "() { :; }"),
            ("GREETING", "hi"),
            ("AGENTRELAY_X", "1"),
        ];
        let launch = p.admit(&start(&["anything"], &env, None), &Presets::default()).expect("admitted");
        let names: Vec<&str> = launch.env.keys().map(String::as_str).collect();
        assert_eq!(names, ["GREETING", "NODE_OPTIONS"]);
    }

    #[test]
    fn working_directories_resolve_before_they_are_checked() {
        let root = tempfile::tempdir().expect("temp dir");
        let ok = root.path().join("ok");
        let secret = root.path().join("secret");
        std::fs::create_dir_all(ok.join("sub")).expect("dirs");
        std::fs::create_dir_all(&secret).expect("dirs");
        std::os::unix::fs::symlink(&secret, ok.join("link")).expect("symlink");
        let p = policy(&[], &[], std::slice::from_ref(&ok));
        let at = |dir: PathBuf| {
            p.admit(&start(&["sh"], &[], Some(dir.to_str().expect("utf-8"))), &Presets::default())
        };
        let admitted = at(ok.join("sub")).expect("inside");
        assert!(admitted.cwd.expect("cwd").starts_with(ok.canonicalize().expect("ok")));
        for escape in [ok.join("..").join("secret"), ok.join("link"), ok.join("sub/../../secret")] {
            assert!(
                matches!(at(escape.clone()), Err(NotStarted::Refused(Refusal::Dir { .. }))),
                "{}",
                escape.display()
            );
        }
        assert!(matches!(at(root.path().join("missing")), Err(NotStarted::Invalid(_))));
        // An allowlist without --allow-dir: only the runner's own directory, exactly.
        let strict = policy(&["sh"], &[], &[]);
        let here = std::env::current_dir().expect("cwd");
        assert!(
            strict
                .admit(&start(&["sh"], &[], Some(here.to_str().expect("utf-8"))), &Presets::default())
                .is_ok()
        );
        let refused = strict.admit(&start(&["sh"], &[], Some("/")), &Presets::default());
        assert!(matches!(refused, Err(NotStarted::Refused(Refusal::Dir { .. }))), "{refused:?}");
    }
}
