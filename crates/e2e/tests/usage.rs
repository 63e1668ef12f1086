//! Tokens and cost per session: an agent exports OpenTelemetry (OTLP/HTTP, JSON) to the endpoint
//! its runner gives the session, and the figures reach the session, `/api/events`, `GET
//! /api/usage`, `/metrics` and `agentrelay sessions`.

use agentrelay_e2e::*;
use agentrelay_protocol::Usage;
use reqwest::Method;
use serde_json::{Value, json};

/// A stand-in agent: exports two deltas of Claude Code's token and cost metrics to the endpoint
/// in its environment, as Claude Code's OpenTelemetry SDK does, then says so and waits.
const AGENT: &str = r#"
import json, os, sys, urllib.request
base = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
assert os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/json"
def point(kind, value):
    attributes = [{"key": "model", "value": {"stringValue": "claude-test-1"}}]
    if kind:
        attributes.append({"key": "type", "value": {"stringValue": kind}})
    return {"attributes": attributes, "startTimeUnixNano": "1", "timeUnixNano": "2", "asDouble": value}
def export(name, points):
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": name, "unit": "tokens", "sum": {"dataPoints": points, "aggregationTemporality": 1, "isMonotonic": True}}]}]}]}
    request = urllib.request.Request(base + "/v1/metrics", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert urllib.request.urlopen(request).status == 200
export("claude_code.token.usage", [point("input", 100), point("output", 30), point("cacheRead", 20)])
export("claude_code.token.usage", [point("input", 50), point("output", 10)])
export("claude_code.cost.usage", [point(None, 0.12)])
print("reported", flush=True)
sys.stdin.readline()
"#;

#[tokio::test]
async fn an_agents_tokens_and_cost_reach_the_session_the_api_the_metrics_and_the_cli() {
    let hq = TestHq::start().await;
    let dir = tempfile::tempdir().unwrap();
    let presets = dir.path().join("presets.toml");
    std::fs::write(
        &presets,
        format!(
            "[[preset]]\nname = \"meter\"\ncommand = [\"python3\", \"-c\", '''{AGENT}''']\ntelemetry = \"otlp\"\n"
        ),
    )
    .unwrap();
    let flags = ["--presets", presets.to_str().unwrap(), "--allow", "python3"];
    let runner = TestRunner::start_with(&hq, "meter-box", &flags).await;
    let mut events = hq.request(Method::GET, "/api/events").send().await.unwrap();
    let session = hq.start_session_with(json!({"runner_id": runner.id, "preset": "meter"})).await;
    let mut viewer = hq.attach(session.id, None).await;
    viewer.read_until("reported").await.unwrap();

    let expected = Usage {
        input_tokens: 150,
        output_tokens: 40,
        cache_read_tokens: 20,
        cache_creation_tokens: 0,
        cost_usd: Some(0.12),
        model: Some("claude-test-1".into()),
    };
    let reached = eventually("the usage on the session", || async {
        let usage = hq.session(session.id).await.usage?;
        (usage.input_tokens == 150 && usage.cost_usd.is_some()).then_some(usage)
    })
    .await;
    assert_eq!(reached.output_tokens, expected.output_tokens);
    assert_eq!(reached.cache_read_tokens, expected.cache_read_tokens);
    assert!((reached.cost_usd.unwrap() - 0.12).abs() < 1e-9);
    assert_eq!(reached.model, expected.model);

    // Live on the event stream.
    let seen = read_events(&mut events, |events| {
        events.iter().any(|(name, data)| {
            name == "session" && data["id"] == session.id.to_string() && data["usage"]["input_tokens"] == 150
        })
    })
    .await;
    assert!(!seen.is_empty());

    // Summed per day, runner and user.
    let rows = hq.get_json("/api/usage").await;
    let row = rows.as_array().unwrap().iter().find(|r| r["runner"] == "meter-box").cloned().expect("a row");
    assert_eq!(row["user"], "admin");
    assert_eq!(row["day"], chrono::Utc::now().format("%Y-%m-%d").to_string());
    assert_eq!(
        (row["usage"]["input_tokens"].as_u64(), row["usage"]["output_tokens"].as_u64()),
        (Some(150), Some(40))
    );
    let bad = hq.request(Method::GET, "/api/usage?from=yesterday").send().await.unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    let none = hq.get_json("/api/usage?from=2020-01-01&to=2020-01-31").await;
    assert_eq!(none, json!([]));
    // Days to come hold nothing yet; a range given backwards is a mistake.
    assert_eq!(hq.get_json("/api/usage?from=2999-01-01").await, json!([]));
    let backwards = hq.request(Method::GET, "/api/usage?from=2020-02-01&to=2020-01-01").send().await.unwrap();
    assert_eq!(backwards.status(), reqwest::StatusCode::BAD_REQUEST);

    // Prometheus.
    let metrics = hq.request(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("agentrelay_agent_tokens_total") && l.contains("kind=\"input\""))
        .unwrap_or_else(|| panic!("no input tokens in /metrics:\n{metrics}"));
    assert!(line.contains("runner=\"meter-box\"") && line.ends_with(" 150"), "{line}");

    // The CLI's table.
    let output = tokio::process::Command::new(binary("agentrelay"))
        .args(["sessions"])
        .env("AGENTRELAY_HQ", hq.url(""))
        .env("AGENTRELAY_TOKEN", ADMIN_TOKEN)
        .env("AGENTRELAY_CREDENTIALS", dir.path().join("none.toml"))
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("TOKENS") && table.contains("170/40") && table.contains("$0.12"), "{table}");

    viewer.type_text("\r").await;
    viewer.read_to_exit().await.unwrap();
    let ended: Value = hq.get_json(&format!("/api/sessions/{}", session.id)).await;
    assert_eq!(ended["usage"]["output_tokens"], 40, "an ended session keeps its figures");
}
