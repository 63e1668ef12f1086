//! Selection menus on a screen, whatever program draws them: numbered options with one of them
//! marked (`❯ 1. Yes`, `● 1. Allow once`, `› 1. Yes, proceed (y)`), boxed or not, near the bottom
//! of the screen, and the question above them. A recognized menu means the program waits for
//! someone, and its options are what that someone can type.

use std::sync::LazyLock;

use agentrelay_protocol::{Menu, MenuOption};
use regex::Regex;

/// Characters that draw a box's sides; stripped from both ends of a line, nested boxes included.
const SIDES: &[char] = &['│', '┃', '║', '╎', '╏', '▏', '▕', '▌', '▐'];

/// One option: an optional marker (the selected one), its number, its label.
static OPTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?P<marker>[❯›>●▶►▸→])\s*)?(?P<key>\d{1,2})[.)]\s+(?P<label>\S.*)$")
        .unwrap_or_else(|e| unreachable!("a constant pattern: {e}"))
});

/// A menu counts only while at most this many non-blank lines follow its last option (a hint
/// such as `Esc to cancel`, a box's bottom edge): one that scrolled up has been answered.
const MAX_BELOW: usize = 6;
/// How far above the options the question is looked for.
const MAX_ABOVE: usize = 15;

/// One screen line without its box sides.
struct Line<'a> {
    /// The text, trimmed.
    text: &'a str,
    /// Columns of white space before it once the sides are gone (for wrapped labels).
    indent: usize,
}

fn strip(line: &str) -> Line<'_> {
    let mut text = line.trim();
    let mut left = line;
    loop {
        let before = text;
        text = text.trim_start_matches(SIDES).trim_end_matches(SIDES).trim();
        if let Some(rest) = left.trim_start().strip_prefix(SIDES) {
            left = rest;
        }
        if text == before {
            break;
        }
    }
    let indent = left.chars().take_while(|c| c.is_whitespace()).count();
    Line { text, indent }
}

/// A horizontal rule or a box's top or bottom edge: where a dialog starts.
fn is_edge(text: &str) -> bool {
    let mut chars = text.chars();
    let first = chars.next();
    matches!(first, Some('╭' | '┌' | '╔' | '╰' | '└' | '╚' | '┏' | '┗'))
        || (text.chars().count() >= 3 && text.chars().all(|c| "─━═╌╍┄┅┈┉-▔▁ ".contains(c)))
}

/// The menu at the bottom of `screen` (its lines, top to bottom), if there is one.
pub fn find<S: AsRef<str>>(screen: &[S]) -> Option<Menu> {
    let lines: Vec<Line<'_>> = screen.iter().map(|l| strip(l.as_ref())).collect();
    let raw_blank = |i: usize| screen[i].as_ref().trim().is_empty();
    // The last option line, with at most MAX_BELOW non-blank lines under it.
    let mut below = 0;
    let mut last = None;
    for i in (0..lines.len()).rev() {
        if raw_blank(i) {
            continue;
        }
        if OPTION.is_match(lines[i].text) {
            last = Some(i);
            break;
        }
        below += 1;
        if below > MAX_BELOW {
            return None;
        }
    }
    let last = last?;
    // Walk up over the options (and the lines a long label wrapped onto).
    let mut options: Vec<(String, String, bool, usize)> = Vec::new();
    let mut wrapped: Vec<&str> = Vec::new();
    let mut first = last;
    let mut i = last + 1;
    while i > 0 {
        i -= 1;
        let line = &lines[i];
        if let Some(caps) = OPTION.captures(line.text) {
            let mut label = caps["label"].trim().to_owned();
            for more in wrapped.drain(..).rev() {
                label.push(' ');
                label.push_str(more);
            }
            options.push((caps["key"].to_owned(), label, caps.name("marker").is_some(), line.indent));
            first = i;
            continue;
        }
        // A wrapped label sits deeper than the option it continues.
        let deeper = options.last().is_some_and(|o| line.indent > o.3);
        if !line.text.is_empty() && !is_edge(line.text) && deeper && i + 1 == first && wrapped.len() < 3 {
            // Only the option above decides whether this was a wrapped line.
            wrapped.push(line.text);
            first = i;
            continue;
        }
        break;
    }
    // `wrapped` left over belongs to no option: the block above the first option.
    let first = first + wrapped.len();
    options.reverse();
    let numbered = options.iter().enumerate().all(|(n, o)| o.0 == (n + 1).to_string());
    let marked = options.iter().filter(|o| o.2).count();
    if options.len() < 2 || !numbered || marked != 1 {
        return None;
    }
    Some(Menu {
        prompt: question(&lines[..first]),
        options: options.into_iter().map(|(key, label, _, _)| MenuOption { key, label }).collect(),
    })
}

/// The question above a menu: the nearest line ending in `?` within its dialog (up to the edge
/// of its box or a rule), else the nearest line of text.
fn question(above: &[Line<'_>]) -> String {
    let mut nearest = None;
    for line in above.iter().rev().take(MAX_ABOVE) {
        if is_edge(line.text) {
            break;
        }
        if line.text.is_empty() {
            continue;
        }
        if line.text.ends_with('?') {
            return line.text.to_owned();
        }
        nearest.get_or_insert(line.text);
    }
    nearest.unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn menu(screen: &str) -> Option<Menu> {
        find(&screen.lines().collect::<Vec<_>>())
    }

    fn keys_and_labels(menu: &Menu) -> Vec<(&str, &str)> {
        menu.options.iter().map(|o| (o.key.as_str(), o.label.as_str())).collect()
    }

    #[test]
    fn plain_boxed_and_wrapped_menus() {
        let plain = menu("Run it?\n> 1) yes\n  2) no\n").expect("a menu");
        assert_eq!(plain.prompt, "Run it?");
        assert_eq!(keys_and_labels(&plain), [("1", "yes"), ("2", "no")]);

        let boxed = menu(
            "╭──────────────╮\n│ Pick one?    │\n│              │\n│ │ ● 1. Red │ │\n│ │   2. Blue│ │\n╰──────────────╯\n",
        )
        .expect("a boxed menu");
        assert_eq!(boxed.prompt, "Pick one?");
        assert_eq!(keys_and_labels(&boxed), [("1", "Red"), ("2", "Blue")]);

        let wrapped =
            menu("Proceed?\n❯ 1. Yes\n  2. Yes, and always allow access\n     to /a/long/path\n  3. No\n\n Esc to cancel")
                .expect("a menu with a wrapped label");
        assert_eq!(wrapped.options[1].label, "Yes, and always allow access to /a/long/path");
        assert_eq!(wrapped.options[2].key, "3");
    }

    #[test]
    fn lists_that_are_not_menus() {
        assert!(menu("Tips:\n1. Create GEMINI.md files\n2. /help for more\n").is_none(), "no marker");
        assert!(menu("❯ 1. one\n❯ 2. two\n").is_none(), "two markers");
        assert!(menu("❯ 1. one\n  3. three\n").is_none(), "not numbered in order");
        assert!(menu("❯ 1. only one\n").is_none(), "one option");
        let scrolled = format!("Go?\n❯ 1. Yes\n  2. No\n{}", "output\n".repeat(MAX_BELOW + 1));
        assert!(menu(&scrolled).is_none(), "answered and scrolled up");
    }
}

/// Screens captured from the real agents (`AGENTRELAY_SAVE_SCREENS`, crates/e2e/tests/real_agents.rs),
/// at 80×24: Claude Code 2.1.332, Codex 0.171.0, Gemini CLI 0.61.0.
#[cfg(test)]
mod captured {
    use super::*;

    fn menu_of(screen: &str) -> Option<Menu> {
        find(&screen.lines().collect::<Vec<_>>())
    }

    fn labels(menu: &Menu) -> Vec<(&str, &str)> {
        menu.options.iter().map(|o| (o.key.as_str(), o.label.as_str())).collect()
    }

    #[test]
    fn claude_code_approval() {
        let menu = menu_of(include_str!("screens/claude-approval.txt")).expect("a menu");
        assert_eq!(menu.prompt, "Do you want to proceed?");
        let labels = labels(&menu);
        assert_eq!(labels[0], ("1", "Yes"));
        assert!(
            labels[1].1.starts_with("Yes, and always allow access to /")
                && labels[1].1.ends_with("/work from this project")
        );
        assert_eq!(labels[2], ("3", "No"));
    }

    #[test]
    fn codex_approval() {
        let menu = menu_of(include_str!("screens/codex-approval.txt")).expect("a menu");
        assert_eq!(menu.prompt, "Would you like to run the following command?");
        assert_eq!(
            labels(&menu),
            [
                ("1", "Yes, proceed (y)"),
                ("2", "Yes, and don't ask again for commands that start with `touch made-by-agent` (p)"),
                ("3", "No, and tell Codex what to do differently (esc)"),
            ]
        );
    }

    #[test]
    fn gemini_cli_trust_and_approval() {
        let trust = menu_of(include_str!("screens/gemini-trust.txt")).expect("the trust menu");
        assert_eq!(trust.prompt, "Do you trust the files in this folder?");
        assert_eq!(labels(&trust)[0], ("1", "Trust folder (work)"));
        assert_eq!(labels(&trust)[2], ("3", "Don't trust"));
        let approval = menu_of(include_str!("screens/gemini-approval.txt")).expect("the approval menu");
        assert_eq!(approval.prompt, "Allow execution of [Shell]?");
        assert_eq!(labels(&approval), [("1", "Allow once"), ("2", "No, suggest changes (esc)")]);
    }

    #[test]
    fn ready_and_finished_screens_have_no_menu() {
        for screen in [
            include_str!("screens/claude-ready.txt"),
            include_str!("screens/claude-done.txt"),
            include_str!("screens/codex-ready.txt"),
            include_str!("screens/codex-done.txt"),
            include_str!("screens/gemini-ready.txt"),
            include_str!("screens/gemini-done.txt"),
        ] {
            assert_eq!(menu_of(screen), None, "{screen}");
        }
    }
}
