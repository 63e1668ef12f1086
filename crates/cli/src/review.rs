//! `agentrelay diff` and `agentrelay review`: what a workspace session's agent changed, and
//! comments on it sent back to the agent.

use agentrelay_protocol::Session;
use agentrelay_protocol::workspace::Diff;
use serde_json::json;

use crate::client::Api;
use crate::error::CliError;

/// `agentrelay diff ID [PATH]`: the session's changes against its base commit, as a unified diff.
pub async fn diff(api: &Api, session: &Session, path: Option<&str>) -> Result<(), CliError> {
    let mut url = format!("/api/sessions/{}/diff", session.id);
    if let Some(path) = path {
        let query: String = url_query("path", path);
        url.push('?');
        url.push_str(&query);
    }
    let diff: Diff = api.get(&url).await?;
    print!("{}", diff.diff);
    if diff.truncated {
        eprintln!(
            "agentrelay: the diff is longer than {} bytes: the files past that were left out (ask for one with `agentrelay diff {} PATH`)",
            diff.limit_bytes, session.id
        );
    }
    Ok(())
}

/// `agentrelay review ID --comment path:line:text …`: one message typed into the session.
pub async fn review(
    api: &Api,
    session: &Session,
    comments: &[String],
    summary: Option<&str>,
    when_waiting: bool,
) -> Result<(), CliError> {
    let comments = comments.iter().map(|c| parse_comment(c)).collect::<Result<Vec<_>, _>>()?;
    let mut body = json!({ "comments": comments });
    if let Some(summary) = summary {
        body["summary"] = json!(summary);
    }
    if when_waiting {
        body["when"] = json!("waiting");
    }
    api.post_no_answer(&format!("/api/sessions/{}/review", session.id), &body).await?;
    if when_waiting {
        eprintln!("agentrelay: queued; the agent gets it when it next waits for input");
    }
    Ok(())
}

/// `path:line:text` (the text may hold colons; the path may not).
fn parse_comment(text: &str) -> Result<serde_json::Value, CliError> {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next().and_then(|l| l.trim().parse::<u32>().ok()), parts.next()) {
        (Some(path), Some(line), Some(body)) if !path.is_empty() && line > 0 && !body.trim().is_empty() => {
            Ok(json!({ "path": path, "line": line, "body": body.trim() }))
        }
        _ => Err(CliError::Config(format!("--comment '{text}' must look like path:line:text (line from 1)"))),
    }
}

/// `name=value`, percent-encoded for a query string.
fn url_query(name: &str, value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{name}={encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_read_path_line_and_text() {
        let comment = parse_comment("src/lib.rs:12:Why: explain").expect("parses");
        assert_eq!(comment, json!({"path": "src/lib.rs", "line": 12, "body": "Why: explain"}));
        for bad in ["src/lib.rs", "src/lib.rs:x:text", "src/lib.rs:0:text", ":3:text", "a:3: "] {
            assert!(parse_comment(bad).is_err(), "{bad}");
        }
        assert_eq!(url_query("path", "a b/ü&c"), "path=a%20b/%C3%BC%26c");
    }
}
