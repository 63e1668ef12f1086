//! Live activity per session: `working` while output flows; when it has been quiet for
//! `--idle-after`, the screen (from the terminal model) decides between `waiting_for_input` (a
//! prompt pattern or a selection menu ([`super::menu`]) is on its last lines) and `idle`. A report
//! from the process itself (`agentrelay-runner report`, see `ws::runner_data`) wins over both until
//! someone types, except that a menu on a quiet screen outranks a reported `working`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};

use agentrelay_protocol::{Activity, ActivitySource, ActivityState, Menu, Preset};
use chrono::Utc;
use regex::{Regex, RegexBuilder};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Session, menu, terminal_model};
use crate::lock;
use crate::state::AppState;

/// Prompts any program may show, besides its preset's own.
const GENERIC_PROMPTS: &[&str] = &[
    r"\((?i:y/n)\)",
    r"\[(?i:y/n)\]",
    r"\((?i:yes/no)\)",
    r"(?i)press (enter|return|any key) to continue",
    r"(?i)\bcontinue\?\s*$",
];

/// The last non-blank screen lines a preset's patterns are looked for in: an agent's dialog sits
/// near the bottom, and an answered question further up must not count. Generic prompts, which
/// programs print inline, must be on the very last line.
const PROMPT_LINES: usize = 12;

/// A session's compiled prompt patterns, shared with every session of the same preset: compiled
/// programs are tens of KiB each, too much to hold per session.
#[derive(Debug, Clone)]
pub struct Prompts {
    /// From the session's preset: matched on the last [`PROMPT_LINES`] lines.
    own: Arc<[Regex]>,
}

impl Default for Prompts {
    fn default() -> Self {
        Self { own: Arc::from(Vec::new()) }
    }
}

/// Any program's `(y/n)` and the like, compiled once: matched on the last line.
static GENERIC: LazyLock<Vec<Regex>> = LazyLock::new(|| compile(GENERIC_PROMPTS.iter().copied()));

/// Preset patterns compiled so far, by pattern list; bounded, since runners supply them.
static COMPILED: LazyLock<Mutex<PatternCache>> = LazyLock::new(Mutex::default);
type PatternCache = HashMap<Vec<String>, Arc<[Regex]>>;
const MAX_COMPILED: usize = 256;

/// Output of at most this much per `--idle-after` is a trickle: a dialog's blinking marker or a
/// spinner, not work. The screen is then read for a menu even though the output never stops.
const TRICKLE: u64 = 8 * 1024;

/// How long a fresh terminal model may take to replay recent output before a check.
const MODEL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Compiles the prompt patterns for a session: the preset's (by name, or else the runner's
/// preset whose command runs the same program) plus the generic ones. Bad patterns from a
/// runner are skipped with a warning.
pub fn prompt_patterns(presets: &[Preset], preset: Option<&str>, command: &[String]) -> Prompts {
    let program = command.first().map(|p| p.rsplit('/').next().unwrap_or(p));
    let chosen = match preset {
        Some(name) => presets.iter().find(|p| p.name == name),
        None => {
            presets.iter().find(|p| p.command.first().map(|c| c.rsplit('/').next().unwrap_or(c)) == program)
        }
    };
    let own = chosen.map(|p| p.prompt_patterns.as_slice()).unwrap_or_default();
    if own.is_empty() {
        return Prompts::default();
    }
    let mut cache = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(compiled) = cache.get(own) {
        return Prompts { own: compiled.clone() };
    }
    let compiled: Arc<[Regex]> = Arc::from(compile(own.iter().map(String::as_str)));
    if cache.len() < MAX_COMPILED {
        cache.insert(own.to_vec(), compiled.clone());
    }
    Prompts { own: compiled }
}

fn compile<'a>(patterns: impl Iterator<Item = &'a str>) -> Vec<Regex> {
    patterns
        .filter_map(|pattern| {
            // Patterns come from runners: bound what one may cost.
            let compiled = RegexBuilder::new(pattern).size_limit(1 << 20).build();
            compiled.map_err(|e| tracing::warn!(pattern, error = %e, "ignoring a bad prompt pattern")).ok()
        })
        .collect()
}

/// Whether the bottom of `screen` shows a prompt.
pub fn shows_prompt(screen: &str, prompts: &Prompts) -> bool {
    read_screen(&screen.lines().collect::<Vec<_>>(), prompts).waiting
}

/// What a quiet screen says.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// A prompt or a menu is on it: the program waits for someone.
    pub waiting: bool,
    /// The selection menu on it, if any.
    pub menu: Option<Menu>,
}

/// Reads a screen (its rows, top to bottom): the preset's patterns on the last [`PROMPT_LINES`]
/// non-blank lines, the generic prompts on the last one, and a selection menu near the bottom.
pub fn read_screen<S: AsRef<str>>(screen: &[S], prompts: &Prompts) -> Reading {
    let lines: Vec<&str> = screen.iter().map(AsRef::as_ref).filter(|l| !l.trim().is_empty()).collect();
    let recent = &lines[lines.len().saturating_sub(PROMPT_LINES)..];
    let own = recent.iter().any(|line| prompts.own.iter().any(|p| p.is_match(line)));
    let generic = lines.last().is_some_and(|line| GENERIC.iter().any(|p| p.is_match(line)));
    let menu = menu::find(screen);
    Reading { waiting: own || generic || menu.is_some(), menu }
}

/// A session's activity and what may change it.
#[derive(Debug, Default)]
pub(super) struct Tracked {
    pub(super) current: Option<ActivityState>,
    /// A report from the process wins over guesses until someone types into the session.
    held: bool,
    /// The menu the last quiet screen showed; new output clears it.
    menu: Option<Menu>,
    /// Quiet screens read so far (a webhook waits for the next one to learn the menu).
    checks: u64,
}

impl Session {
    /// A receiver of activity changes.
    pub fn subscribe_activity(&self) -> watch::Receiver<Option<ActivityState>> {
        self.activity_watch.subscribe()
    }

    /// The prompt patterns of this session.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// New output: `working`, unless a report from the process holds the activity, or a menu
    /// that was seen waits on screen (a dialog that animates while it waits: the tracker's next
    /// reading of the screen says whether it is still there).
    pub fn note_output_activity(&self) {
        let held = {
            let mut tracked = lock(&self.activity);
            if tracked.menu.is_some()
                && tracked.current.is_some_and(|c| c.activity == Activity::WaitingForInput)
            {
                return;
            }
            tracked.menu = None;
            tracked.held
        };
        if !held {
            self.set_activity(Activity::Working, ActivitySource::Output, false);
        }
    }

    /// The output has been quiet: `waiting_for_input` if the screen shows a prompt, else `idle`;
    /// unless a report holds the activity. A reported `working` gives way to a menu: the agent
    /// said it started, and a question on a quiet screen is newer news.
    pub fn note_quiet(&self, reading: Reading) {
        let prompt_on_screen = reading.waiting;
        {
            let mut tracked = lock(&self.activity);
            let outranked =
                reading.menu.is_some() && tracked.current.is_some_and(|c| c.activity == Activity::Working);
            tracked.menu = reading.menu;
            tracked.checks += 1;
            if tracked.held && !outranked {
                return;
            }
        }
        if prompt_on_screen {
            self.set_activity(Activity::WaitingForInput, ActivitySource::Screen, false);
        } else {
            self.set_activity(Activity::Idle, ActivitySource::Output, false);
        }
    }

    /// The process reported its activity; it holds until someone types.
    pub fn report_activity(&self, activity: Activity) {
        self.set_activity(activity, ActivitySource::Hook, true);
    }

    /// What a screen read while output trickles says: a menu there means waiting (output alone
    /// does not change that until the menu is gone); none where one was means working again.
    pub fn note_menu(&self, menu: Option<Menu>) {
        let activity = {
            let mut tracked = lock(&self.activity);
            let had = tracked.menu.is_some();
            let found = menu.is_some();
            tracked.menu = menu;
            tracked.checks += 1;
            match (found, had) {
                _ if tracked.held => None,
                (true, _) => Some((Activity::WaitingForInput, ActivitySource::Screen)),
                (false, true) => Some((Activity::Working, ActivitySource::Output)),
                (false, false) => None,
            }
        };
        if let Some((activity, source)) = activity {
            self.set_activity(activity, source, false);
        }
    }

    /// The menu on screen while the session waits for input (as of the last reading).
    pub fn menu(&self) -> Option<Menu> {
        let tracked = lock(&self.activity);
        let waiting = tracked.current.is_some_and(|c| c.activity == Activity::WaitingForInput);
        tracked.menu.clone().filter(|_| waiting)
    }

    /// How many quiet screens have been read so far.
    pub fn quiet_checks(&self) -> u64 {
        lock(&self.activity).checks
    }

    /// Someone typed: guesses from output and screen apply again, and the menu they may have
    /// answered no longer holds `waiting_for_input` against output.
    pub fn note_input(&self) {
        let mut tracked = lock(&self.activity);
        tracked.held = false;
        tracked.menu = None;
    }

    fn set_activity(&self, activity: Activity, source: ActivitySource, hold: bool) {
        let changed = {
            let mut tracked = lock(&self.activity);
            tracked.held = hold;
            if self.status().is_final() || tracked.current.is_some_and(|c| c.activity == activity) {
                None
            } else {
                let state = ActivityState { activity, since: Utc::now(), source };
                tracked.current = Some(state);
                self.working.store(activity == Activity::Working, Ordering::Relaxed);
                Some(state)
            }
        };
        if let Some(state) = changed {
            self.activity_watch.send_replace(Some(state));
            self.publish();
        }
    }

    /// The session ended: no activity any more.
    pub(super) fn clear_activity(&self) {
        lock(&self.activity).current = None;
        self.activity_watch.send_replace(None);
    }
}

/// Watches one live session for quiet output until it ends. `working` is set on the data path
/// itself (`Session::push_output`), so this task wakes on a timer, never per output chunk: a
/// keystroke's echo does not wait for it.
pub async fn track(state: AppState, session: Arc<Session>) {
    let idle_after = state.config.idle_after;
    let tick = (idle_after / 2).max(std::time::Duration::from_millis(10));
    let mut seen = session.output_end();
    let mut quiet_from = Instant::now();
    let mut checked = false;
    // Output since the window began: a trickle gets its screen read for menus.
    let (mut window_from, mut window_start) = (seen, Instant::now());
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = state.shutdown.cancelled() => return,
        }
        if session.status().is_final() {
            return;
        }
        let end = session.output_end();
        if end != seen {
            (seen, quiet_from, checked) = (end, Instant::now(), false);
        } else if !checked && quiet_from.elapsed() >= idle_after {
            checked = true;
            check_screen(&state, &session, seen).await;
        }
        if window_start.elapsed() >= idle_after {
            let grown = end - window_from;
            (window_from, window_start) = (end, Instant::now());
            if grown > 0 && (grown <= TRICKLE || session.menu().is_some()) {
                check_menu(&state, &session, end).await;
            }
        }
    }
}

/// Reads the screen for a menu while output trickles. The model stays: the trickle keeps it
/// cheap to feed, and the next window reads it again.
async fn check_menu(state: &AppState, session: &Arc<Session>, end: u64) {
    let Some(model) = terminal_model::current(state, session, end, MODEL_WAIT, false).await else { return };
    session.note_menu(menu::find(&model.screen().lines));
}

/// Reads the screen once output has stopped at `end`.
async fn check_screen(state: &AppState, session: &Arc<Session>, end: u64) {
    let Some(model) = terminal_model::current(state, session, end, MODEL_WAIT, false).await else { return };
    // Output that arrived meanwhile means working again; the tracker sees it next.
    if session.output_end() != end {
        return;
    }
    session.note_quiet(read_screen(&model.screen().lines, session.prompts()));
    drop(model);
    session.retire_model_unless_watched(terminal_model::KEEP_WATCHED);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(name: &str, command: &[&str], patterns: &[&str]) -> Preset {
        Preset {
            name: name.into(),
            description: String::new(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            prompt_patterns: patterns.iter().map(|s| (*s).to_owned()).collect(),
            takes_prompt: false,
        }
    }

    #[test]
    fn generic_prompts_count_on_the_last_line_only() {
        let patterns = prompt_patterns(&[], None, &["sh".into()]);
        assert!(shows_prompt("building\nOverwrite file? (y/n) \n\n", &patterns));
        assert!(shows_prompt("Install? [Y/n]", &patterns));
        assert!(!shows_prompt("$ ls\nfile-a file-b\n$ ", &patterns));
        assert!(!shows_prompt("Proceed? (y/n) y\ngot y\ndone", &patterns), "an answered prompt");
    }

    #[test]
    fn preset_patterns_by_name_or_by_program() {
        let presets =
            [preset("claude", &["claude"], &[r"Do you want to"]), preset("x", &["x"], &["(unclosed"])];
        let by_name = prompt_patterns(&presets, Some("claude"), &["claude".into()]);
        assert!(shows_prompt("│ Do you want to make this edit?\n│ ❯ 1. Yes\n│   2. No\n╰──╯", &by_name));
        let scrolled = format!("Do you want to proceed?\n{}", "line\n".repeat(PROMPT_LINES));
        assert!(!shows_prompt(&scrolled, &by_name), "a dialog that scrolled away");
        let by_program = prompt_patterns(&presets, None, &["/usr/local/bin/claude".into(), "-c".into()]);
        assert!(shows_prompt("Do you want to proceed?", &by_program));
        let other = prompt_patterns(&presets, None, &["bash".into()]);
        assert!(!shows_prompt("Do you want to proceed?", &other));
        // A bad pattern is skipped, the generic ones remain.
        let bad = prompt_patterns(&presets, Some("x"), &[]);
        assert!(bad.own.is_empty() && GENERIC.len() == GENERIC_PROMPTS.len());
        // Sessions of one preset share its compiled patterns.
        let again = prompt_patterns(&presets, Some("claude"), &[]);
        assert!(Arc::ptr_eq(&by_name.own, &again.own));
    }
}
