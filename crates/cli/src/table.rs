//! Aligned, readable tables for list commands, and times as people say them.

use chrono::{DateTime, Utc};

/// A table with a header row; columns are as wide as their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self { rows: vec![header.iter().map(|h| (*h).to_owned()).collect()] }
    }

    /// Adds a row (as many cells as the header). Control characters become `?`: names and
    /// labels come from runners, and must not drive the reader's terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        let clean = |cell: String| cell.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        self.rows.push(cells.into_iter().map(clean).collect());
    }

    /// The table as text, columns two spaces apart, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| self.rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[c].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// "just now", "5m ago", "3h ago", "2d ago".
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..10 => "just now".to_owned(),
        10..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86_400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

/// "512 B", "1.5 KiB", "12.0 MiB".
/// Tokens in and out, e.g. `12.3k/4.1k` (input counts cache reads and writes too).
pub fn tokens(usage: &agentrelay_protocol::Usage) -> String {
    let short = |n: u64| match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    };
    let input = usage.input_tokens + usage.cache_read_tokens + usage.cache_creation_tokens;
    format!("{}/{}", short(input), short(usage.output_tokens))
}

pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A command line for display, quoting words a shell would split.
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_without_trailing_spaces() {
        let mut table = Table::new(&["NAME", "STATUS"]);
        table.row(vec!["laptop".into(), "online".into()]);
        table.row(vec!["gpu-box-1".into(), "offline".into()]);
        assert_eq!(table.render(), "NAME       STATUS\nlaptop     online\ngpu-box-1  offline\n");
        let mut hostile = Table::new(&["NAME"]);
        hostile.row(vec!["evil\x1b]0;pwned\x07\u{9b}2J".into()]);
        assert_eq!(hostile.render(), "NAME\nevil?]0;pwned??2J\n");
    }

    #[test]
    fn human_units() {
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::seconds(3), now), "just now");
        assert_eq!(ago(now - chrono::Duration::minutes(5), now), "5m ago");
        assert_eq!(ago(now - chrono::Duration::days(2), now), "2d ago");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MiB");
        let argv = ["sh", "-c", "echo 'hi' there"].map(String::from);
        assert_eq!(command_line(&argv), r"sh -c 'echo '\''hi'\'' there'");
    }
}
