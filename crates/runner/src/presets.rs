//! What a runner offers to start by name: built-in agents found on `PATH` and a shell, plus the
//! operator's `--presets` TOML file (whose entries replace built-ins of the same name).
//!
//! A preset's working directory and environment stay on the runner (they may hold API keys);
//! HQ only learns its name, description, command and prompt patterns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agentrelay_protocol::Preset;
use agentrelay_protocol::runner::command_allowed;

use crate::telemetry::Exporter;
use serde::Deserialize;

/// A preset as the runner holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetDef {
    /// What HQ is told.
    pub preset: Preset,
    /// Working directory (`~/` is the runner's home).
    pub cwd: Option<String>,
    /// Extra environment for the process.
    pub env: BTreeMap<String, String>,
    /// How an initial task is passed: words appended to the command, one of which holds
    /// [`PROMPT_PLACEHOLDER`]; `None` when the preset takes no prompt.
    pub prompt_args: Option<Vec<String>>,
    /// How its agent exports telemetry, for tokens and cost per session (`None`: it does not).
    pub telemetry: Option<Exporter>,
}

/// Where the prompt goes in `prompt_args`.
pub const PROMPT_PLACEHOLDER: &str = "{prompt}";

/// How the built-in agents take an initial task and stay interactive: Claude Code and Codex as
/// their prompt argument (after `--`, so a prompt that starts with `-` is not read as a flag),
/// Gemini CLI with `--prompt-interactive=` (one word, for the same reason).
/// The built-in agents that export usage figures through OpenTelemetry.
const BUILT_IN_TELEMETRY: &[(&str, Exporter)] =
    &[("claude", Exporter::Claude), ("codex", Exporter::Codex), ("gemini", Exporter::Gemini)];

const BUILT_IN_PROMPT_ARGS: &[(&str, &[&str])] = &[
    ("claude", &["--", PROMPT_PLACEHOLDER]),
    ("codex", &["--", PROMPT_PLACEHOLDER]),
    ("gemini", &["--prompt-interactive={prompt}"]),
];

impl PresetDef {
    /// The command line with `prompt` passed the preset's way, or `None` if it takes none.
    pub fn command_with_prompt(&self, prompt: &str) -> Option<Vec<String>> {
        let args = self.prompt_args.as_ref()?;
        let mut command = self.preset.command.clone();
        command.extend(args.iter().map(|arg| arg.replace(PROMPT_PLACEHOLDER, prompt)));
        Some(command)
    }
}

/// The `--presets` file: `[[preset]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetFile {
    #[serde(default)]
    preset: Vec<FileEntry>,
    /// `[repos]`: repositories for workspaces, `name = "path"` (as `--repo name=path`).
    #[serde(default)]
    repos: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    command: Vec<String>,
    #[serde(default)]
    description: String,
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    prompt_patterns: Vec<String>,
    prompt_args: Option<Vec<String>>,
    telemetry: Option<Exporter>,
}

/// Agents the runner offers when their program is on `PATH`: name, argv, description, and the
/// screen lines that mean the agent waits for a person: its approval question and its ready
/// input box (see docs/agents.md for the versions these were read from). Any program's selection
/// menus are recognized by HQ itself; the agents' hooks, where wired (`agent_hooks`), are exact.
const BUILT_IN: &[(&str, &[&str], &str, &[&str])] = &[
    (
        "claude",
        &["claude"],
        "Claude Code",
        &[r"Do you want to", r"❯\s*1\.\s*Yes", r"^\s*│\s*>\s", r"^>\s*$", r"\? for shortcuts"],
    ),
    ("copilot", &["copilot"], "GitHub Copilot CLI", &[r"Do you want to", r"❯\s*1\.\s*Yes", r"^\s*│\s*>\s"]),
    // Without --no-daemon, Codex leaves an app-server daemon running after the session ends.
    (
        "codex",
        &["codex", "--no-daemon"],
        "OpenAI Codex CLI",
        &[
            r"Would you like to run the following command\?",
            r"Press enter to confirm or esc to cancel",
            r"\? for shortcuts",
        ],
    ),
    ("aider", &["aider"], "Aider", &[r"\(Y\)es/\(N\)o", r"^\S*>\s*$"]),
    (
        "gemini",
        &["gemini"],
        "Gemini CLI",
        &[r"Allow execution of", r"\d\. Trust folder \(", r"Type your message or @path", r"\? for shortcuts"],
    ),
];

/// All presets of this runner, in the order they are advertised.
#[derive(Debug, Clone, Default)]
pub struct Presets {
    defs: Vec<PresetDef>,
    /// The file's `[repos]`: repositories for workspaces, by name (`crate::workspace`).
    repos: BTreeMap<String, String>,
}

impl Presets {
    /// Built-ins found on `PATH`, a shell, then the entries of `file`; with `--allow` prefixes,
    /// only presets whose command line they allow.
    pub fn load(file: Option<&Path>, allow: &[Vec<String>]) -> Result<Self, String> {
        let mut defs = Vec::new();
        for (name, command, description, patterns) in BUILT_IN {
            if find_program(command[0]).is_some() {
                defs.push(built_in(name, command, description, patterns));
            }
        }
        // `gh copilot` stands in when the standalone Copilot CLI is not installed.
        if find_program("copilot").is_none() && find_program("gh").is_some() {
            defs.push(built_in("copilot", &["gh", "copilot"], "GitHub Copilot in the gh CLI", &[r"\?\s*$"]));
        }
        defs.push(built_in("shell", &[&shell(), "-l"], "Login shell", &[]));
        let mut repos = BTreeMap::new();
        if let Some(path) = file {
            let (file_defs, file_repos) = read_file(path)?;
            for def in file_defs {
                defs.retain(|d| d.preset.name != def.preset.name);
                defs.push(def);
            }
            repos = file_repos;
        }
        defs.retain(|d| command_allowed(allow, &d.preset.command));
        Ok(Self { defs, repos })
    }

    /// The file's `[repos]` table: name → path.
    pub fn repos(&self) -> &BTreeMap<String, String> {
        &self.repos
    }

    /// Every preset, with what stays on the runner.
    pub fn defs(&self) -> &[PresetDef] {
        &self.defs
    }

    /// What HQ is told.
    pub fn advertised(&self) -> Vec<Preset> {
        self.defs.iter().map(|d| d.preset.clone()).collect()
    }

    /// One preset by name.
    pub fn get(&self, name: &str) -> Option<&PresetDef> {
        self.defs.iter().find(|d| d.preset.name == name)
    }
}

fn built_in(name: &str, command: &[&str], description: &str, patterns: &[&str]) -> PresetDef {
    let prompt_args = BUILT_IN_PROMPT_ARGS
        .iter()
        .find(|(preset, _)| *preset == name)
        .map(|(_, args)| args.iter().map(|a| (*a).to_owned()).collect());
    PresetDef {
        preset: Preset {
            name: name.to_owned(),
            description: description.to_owned(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            prompt_patterns: patterns.iter().map(|s| (*s).to_owned()).collect(),
            takes_prompt: prompt_args.is_some(),
        },
        cwd: None,
        env: BTreeMap::new(),
        prompt_args,
        telemetry: BUILT_IN_TELEMETRY
            .iter()
            .find(|(preset, _)| *preset == name)
            .map(|(_, exporter)| *exporter),
    }
}

fn read_file(path: &Path) -> Result<(Vec<PresetDef>, BTreeMap<String, String>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --presets {}: {e}", path.display()))?;
    let file: PresetFile =
        toml::from_str(&text).map_err(|e| format!("--presets {} is not valid: {e}", path.display()))?;
    let mut defs = Vec::with_capacity(file.preset.len());
    for entry in file.preset {
        if entry.name.trim().is_empty() || entry.command.first().is_none_or(|p| p.is_empty()) {
            return Err(format!(
                "--presets {}: preset '{}' needs a name and a non-empty command",
                path.display(),
                entry.name
            ));
        }
        if let Some(args) = &entry.prompt_args
            && args.iter().filter(|arg| arg.contains(PROMPT_PLACEHOLDER)).count() != 1
        {
            return Err(format!(
                "--presets {}: preset '{}': prompt_args needs {PROMPT_PLACEHOLDER} in exactly one word",
                path.display(),
                entry.name
            ));
        }
        defs.push(PresetDef {
            preset: Preset {
                name: entry.name,
                description: entry.description,
                command: entry.command,
                prompt_patterns: entry.prompt_patterns,
                takes_prompt: entry.prompt_args.is_some(),
            },
            cwd: entry.cwd,
            env: entry.env,
            prompt_args: entry.prompt_args,
            telemetry: entry.telemetry,
        });
    }
    Ok((defs, file.repos))
}

/// The user's shell (by its name when `PATH` finds it, so `--allow bash` covers it), or bash,
/// or sh.
fn shell() -> String {
    let user = std::env::var("SHELL").ok().filter(|s| !s.is_empty() && Path::new(s).exists());
    let by_name = |path: &str| {
        let name = path.rsplit('/').next().unwrap_or(path);
        find_program(name).map(|_| name.to_owned())
    };
    user.map(|path| by_name(&path).unwrap_or(path))
        .or_else(|| find_program("bash").map(|_| "bash".to_owned()))
        .unwrap_or_else(|| "sh".to_owned())
}

/// The executable `program` resolves to on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// `~/rest` → `$HOME/rest`; anything else unchanged.
pub fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ if path == "~" => std::env::var("HOME").unwrap_or_else(|_| path.to_owned()),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_entries_replace_built_ins_and_the_allow_list_filters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("presets.toml");
        std::fs::write(
            &path,
            r#"
[[preset]]
name = "shell"
command = ["sh"]
description = "Plain sh"

[[preset]]
name = "fake-agent"
command = ["python3", "agent.py"]
cwd = "~/work"
env = { MODEL = "big" }
prompt_patterns = ["Approve\\?"]
"#,
        )
        .expect("write");
        let presets = Presets::load(Some(&path), &[]).expect("loads");
        let shell = presets.get("shell").expect("shell");
        assert_eq!(shell.preset.command, ["sh"]);
        assert_eq!(presets.advertised().iter().filter(|p| p.name == "shell").count(), 1);
        let agent = presets.get("fake-agent").expect("file preset");
        assert_eq!(agent.env.get("MODEL").map(String::as_str), Some("big"));
        assert_eq!(agent.preset.prompt_patterns, [r"Approve\?"]);

        let allowed = Presets::load(Some(&path), &[vec!["python3".to_owned()]]).expect("loads");
        let names: Vec<String> = allowed.advertised().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["fake-agent"]);
    }

    #[test]
    fn bad_files_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("presets.toml");
        std::fs::write(&path, "[[preset]]\nname = \"x\"\ncommand = []\n").expect("write");
        assert!(Presets::load(Some(&path), &[]).expect_err("empty command").contains("non-empty command"));
        std::fs::write(&path, "[[preset]]\nname = \"x\"\ncommand = [\"a\"]\ncolour = 1\n").expect("write");
        assert!(Presets::load(Some(&path), &[]).expect_err("unknown key").contains("is not valid"));
        let missing = Presets::load(Some(&dir.path().join("none.toml")), &[]).expect_err("missing");
        assert!(missing.contains("cannot read --presets"));
    }

    #[test]
    fn a_shell_is_always_offered() {
        let presets = Presets::load(None, &[]).expect("loads");
        assert!(presets.get("shell").is_some());
        assert_eq!(expand_home("/abs"), "/abs");
    }

    /// The agents' ready input boxes and approval questions, on screens captured from them
    /// (`crates/e2e/tests/real_agents.rs`), are matched by their presets' patterns within the
    /// last 12 non-blank lines, as HQ reads them. (`claude-done` was caught while its `Stop` hook
    /// ran, before the input box came back: there the hook said it waits.)
    #[test]
    fn built_in_patterns_match_the_agents_screens() {
        let screens: &[(&str, &str)] = &[
            ("claude", include_str!("../../hq/src/session/screens/claude-ready.txt")),
            ("claude", include_str!("../../hq/src/session/screens/claude-approval.txt")),
            ("codex", include_str!("../../hq/src/session/screens/codex-ready.txt")),
            ("codex", include_str!("../../hq/src/session/screens/codex-approval.txt")),
            ("codex", include_str!("../../hq/src/session/screens/codex-done.txt")),
            ("gemini", include_str!("../../hq/src/session/screens/gemini-trust.txt")),
            ("gemini", include_str!("../../hq/src/session/screens/gemini-ready.txt")),
            ("gemini", include_str!("../../hq/src/session/screens/gemini-approval.txt")),
            ("gemini", include_str!("../../hq/src/session/screens/gemini-done.txt")),
        ];
        for (name, screen) in screens {
            let (_, _, _, patterns) = BUILT_IN.iter().find(|b| b.0 == *name).expect("a built-in");
            let patterns: Vec<regex::Regex> =
                patterns.iter().map(|p| regex::Regex::new(p).expect("valid")).collect();
            let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
            let last = &lines[lines.len().saturating_sub(12)..];
            assert!(last.iter().any(|l| patterns.iter().any(|p| p.is_match(l))), "{name}: {screen}");
        }
    }
}
