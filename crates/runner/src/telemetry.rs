//! Tokens and cost per session, from the agents' own OpenTelemetry export.
//!
//! The runner listens for OTLP over HTTP (JSON) on a loopback port, and gives each session of a
//! preset that exports telemetry an endpoint of its own: `http://127.0.0.1:PORT/otlp/<secret>`,
//! the secret drawn per session (another local account cannot report for it, nor learn another
//! session's figures). Nothing leaves the machine but to HQ: the totals go over the session's data
//! connection as `usage` frames.
//!
//! What is read: Claude Code's `claude_code.token.usage` (`type`: input, output, cacheRead,
//! cacheCreation) and `claude_code.cost.usage` (USD), Gemini CLI's `gemini_cli.token.usage`
//! (`type`: input, output, thought, cache, tool) and Codex's `codex.turn.token_usage`, a histogram
//! whose sums count a turn's tokens (`token_type`: input, cached_input, cache_write_input,
//! output), each with its `model`. Gemini CLI's and Codex's input counts include the cache's reads
//! (and Codex's its writes): those are taken out, so `input_tokens` is fresh input for every
//! agent. Figures may come as deltas or as cumulative totals (OTLP's `aggregationTemporality`);
//! both are added up right.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use agentrelay_protocol::Usage;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent_hooks::codex_config;
use crate::policy::Launch;
use crate::session::Session;

/// Largest OTLP request read.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How often an agent exports (Claude Code's default is a minute: too slow to watch).
const EXPORT_INTERVAL_MS: &str = "5000";

/// How a preset's agent is told where to send its telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exporter {
    /// The standard `OTEL_*` variables (OTLP/HTTP, JSON).
    Otlp,
    /// Claude Code: the standard variables plus `CLAUDE_CODE_ENABLE_TELEMETRY`.
    Claude,
    /// Gemini CLI: its `GEMINI_TELEMETRY_*` variables.
    Gemini,
    /// Codex: `-c otel.metrics_exporter=…` on its command line (it reads no variables for it),
    /// and the standard export interval.
    Codex,
}

impl Exporter {
    /// Points the agent `launch` starts at `endpoint`.
    pub fn wire(self, endpoint: &str, launch: &mut Launch) {
        launch.env.extend(self.env(endpoint).into_iter().map(|(k, v)| (k.to_owned(), v)));
        if self == Self::Codex {
            // Codex posts to the endpoint as given, path and all.
            let url = toml::Value::from(format!("{endpoint}/v1/metrics"));
            let exporter =
                format!("otel.metrics_exporter={{otlp-http={{endpoint={url},protocol=\"json\"}}}}");
            launch.command.splice(1..1, ["-c".to_owned(), exporter]);
        }
    }

    /// The variables that point the agent at `endpoint`.
    fn env(self, endpoint: &str) -> Vec<(&'static str, String)> {
        let otlp = || {
            vec![
                ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
                ("OTEL_METRIC_EXPORT_INTERVAL", EXPORT_INTERVAL_MS.to_owned()),
            ]
        };
        match self {
            Self::Otlp => otlp(),
            Self::Claude => {
                let mut env = otlp();
                env.push(("CLAUDE_CODE_ENABLE_TELEMETRY", "1".to_owned()));
                env
            }
            Self::Codex => vec![("OTEL_METRIC_EXPORT_INTERVAL", EXPORT_INTERVAL_MS.to_owned())],
            Self::Gemini => vec![
                ("GEMINI_TELEMETRY_ENABLED", "true".to_owned()),
                ("GEMINI_TELEMETRY_TARGET", "local".to_owned()),
                ("GEMINI_TELEMETRY_OTLP_ENDPOINT", endpoint.to_owned()),
                ("GEMINI_TELEMETRY_OTLP_PROTOCOL", "http".to_owned()),
                ("GEMINI_TELEMETRY_LOG_PROMPTS", "false".to_owned()),
            ],
        }
    }

    /// The user's setting that sends the agent's telemetry elsewhere already, if any: the runner
    /// then leaves it alone (and reports no usage). A variable of the session's or the runner's
    /// environment; for Codex, `otel.metrics_exporter` on the command line or in its
    /// `config.toml`.
    pub fn set_elsewhere(self, launch: &Launch) -> Option<String> {
        let variables: &[&str] = match self {
            Self::Otlp | Self::Claude => {
                &["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]
            }
            Self::Gemini => &["GEMINI_TELEMETRY_OTLP_ENDPOINT", "GEMINI_TELEMETRY_ENABLED"],
            Self::Codex => &[],
        };
        if let Some(name) =
            variables.iter().find(|name| launch.env.contains_key(**name) || std::env::var_os(name).is_some())
        {
            return Some((*name).to_owned());
        }
        if self != Self::Codex {
            return None;
        }
        let setting = |arg: &String| arg.trim_start().starts_with("otel");
        if launch.command.iter().any(setting) {
            return Some("otel on the command line".to_owned());
        }
        let (config, table) = codex_config(launch)?;
        let otel = table.get("otel").and_then(toml::Value::as_table)?;
        otel.contains_key("metrics_exporter")
            .then(|| format!("otel.metrics_exporter in {}", config.display()))
    }
}

/// The OTLP receiver: one loopback port, an endpoint per session.
pub struct Collector {
    addr: SocketAddr,
    /// Taken by `serve`.
    listener: Mutex<Option<std::net::TcpListener>>,
    /// Sessions by their endpoint's secret, with what they reported so far.
    sessions: Mutex<HashMap<String, Tally>>,
}

/// One session's figures: a value per series, summed into its usage.
struct Tally {
    session: Weak<Session>,
    /// By metric, attributes and (for cumulative sums) start time: the series' value.
    series: HashMap<String, (Kind, f64)>,
    model: Option<String>,
}

/// What a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Input,
    Output,
    CacheRead,
    CacheCreation,
    /// Cache reads that the agent's input count already includes.
    CacheReadOfInput,
    /// Cache writes that the agent's input count already includes.
    CacheCreationOfInput,
    CostUsd,
}

impl Collector {
    /// Binds the loopback port.
    pub fn bind() -> anyhow::Result<Arc<Self>> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot listen for telemetry")?;
        listener.set_nonblocking(true).context("telemetry listener")?;
        let addr = listener.local_addr().context("telemetry listener")?;
        Ok(Arc::new(Self { addr, listener: Mutex::new(Some(listener)), sessions: Mutex::default() }))
    }

    /// A new endpoint for `session`'s agent.
    pub fn endpoint_for(&self, session: &Arc<Session>) -> String {
        let secret: String = rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        // Ended sessions' tallies go when the next session comes.
        sessions.retain(|_, tally| tally.session.strong_count() > 0);
        sessions.insert(
            secret.clone(),
            Tally { session: Arc::downgrade(session), series: HashMap::new(), model: None },
        );
        format!("http://{}/otlp/{secret}", self.addr)
    }

    /// Serves until `shutdown`; each connection is a task of `tasks`.
    pub async fn serve(self: Arc<Self>, tasks: TaskTracker, shutdown: CancellationToken) {
        let listener = self.listener.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(listener) = listener.and_then(|l| tokio::net::TcpListener::from_std(l).ok()) else {
            return;
        };
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.cancelled() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let collector = self.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let collector = collector.clone();
                    async move { Ok::<_, std::convert::Infallible>(collector.handle(request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, body: &'static str| {
            let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *response.status_mut() = status;
            response
        };
        let path = request.uri().path().to_owned();
        let Some((secret, signal)) = path.strip_prefix("/otlp/").and_then(|rest| rest.split_once('/')) else {
            return reply(StatusCode::NOT_FOUND, "not an OTLP endpoint");
        };
        let secret = secret.to_owned();
        if !self.sessions.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&secret) {
            return reply(StatusCode::NOT_FOUND, "no such session");
        }
        let json = request
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            // Protobuf is not read: the presets ask for JSON.
            return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send OTLP as JSON (http/json)");
        }
        let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "too large"),
        };
        if signal == "v1/metrics" {
            match serde_json::from_slice::<Value>(&body) {
                Ok(export) => self.take(&secret, &export),
                Err(_) => return reply(StatusCode::BAD_REQUEST, "not JSON"),
            }
        }
        // Logs and traces are accepted and let go: the metrics say it all.
        let mut response = reply(StatusCode::OK, "{}");
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("static"));
        response
    }

    /// Adds one metrics export to a session's tally and reports the new total.
    fn take(&self, secret: &str, export: &Value) {
        let (session, usage) = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            let Some(tally) = sessions.get_mut(secret) else { return };
            tally.add(export);
            (tally.session.upgrade(), tally.usage())
        };
        if let Some(session) = session {
            session.report_usage(usage);
        }
    }
}

impl Tally {
    /// Adds one metrics export.
    fn add(&mut self, export: &Value) {
        for point in data_points(export) {
            let key = match point.cumulative {
                // A cumulative series restarts with its start time.
                true => format!("{}|{}|{}", point.metric, point.attributes, point.start),
                false => format!("{}|{}", point.metric, point.attributes),
            };
            let entry = self.series.entry(key).or_insert((point.kind, 0.0));
            if point.cumulative {
                entry.1 = point.value;
            } else {
                entry.1 += point.value;
            }
            if point.model.is_some() {
                self.model = point.model;
            }
        }
    }

    /// The totals so far.
    fn usage(&self) -> Usage {
        let total =
            |kind: Kind| self.series.values().filter(|(k, _)| *k == kind).map(|(_, v)| *v).sum::<f64>();
        let tokens = |kind: Kind| total(kind).max(0.0).round() as u64;
        let priced = self.series.values().any(|(k, _)| *k == Kind::CostUsd);
        let (read_of_input, creation_of_input) =
            (tokens(Kind::CacheReadOfInput), tokens(Kind::CacheCreationOfInput));
        Usage {
            input_tokens: tokens(Kind::Input).saturating_sub(read_of_input + creation_of_input),
            output_tokens: tokens(Kind::Output),
            cache_read_tokens: tokens(Kind::CacheRead) + read_of_input,
            cache_creation_tokens: tokens(Kind::CacheCreation) + creation_of_input,
            cost_usd: priced.then(|| total(Kind::CostUsd)),
            model: self.model.clone(),
        }
    }
}

/// One data point of a metric this module reads.
struct Point {
    metric: String,
    /// The attributes, canonically written, to tell series apart.
    attributes: String,
    start: String,
    cumulative: bool,
    kind: Kind,
    value: f64,
    model: Option<String>,
}

/// The data points of the token and cost metrics in an OTLP/JSON metrics export: a sum's
/// values, or a histogram's sums.
fn data_points(export: &Value) -> Vec<Point> {
    let list =
        |value: &Value, key: &str| value.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut points = Vec::new();
    for resource in list(export, "resourceMetrics") {
        for scope in list(&resource, "scopeMetrics") {
            for metric in list(&scope, "metrics") {
                let Some(name) = metric.get("name").and_then(Value::as_str) else { continue };
                let (data, histogram) = match (metric.get("sum"), metric.get("histogram")) {
                    (Some(sum), _) => (sum, false),
                    (None, Some(histogram)) => (histogram, true),
                    (None, None) => continue,
                };
                // OTLP: 1 is delta, 2 cumulative (JSON may spell the enum's name).
                let cumulative = match data.get("aggregationTemporality") {
                    Some(Value::Number(n)) => n.as_u64() == Some(2),
                    Some(Value::String(s)) => s.ends_with("CUMULATIVE"),
                    _ => false,
                };
                for point in list(data, "dataPoints") {
                    let attributes = attributes(&point);
                    let Some(kind) = kind_of(name, &attributes) else { continue };
                    let value = match histogram {
                        true => point.get("sum").and_then(Value::as_f64),
                        false => number(&point),
                    };
                    let Some(value) = value else { continue };
                    let model = attributes.get("model").cloned();
                    let mut canonical: Vec<_> = attributes.into_iter().collect();
                    canonical.sort();
                    points.push(Point {
                        metric: name.to_owned(),
                        attributes: format!("{canonical:?}"),
                        start: point.get("startTimeUnixNano").map(Value::to_string).unwrap_or_default(),
                        cumulative,
                        kind,
                        value,
                        model,
                    });
                }
            }
        }
    }
    points
}

/// A data point's attributes as text (string, int, bool and double values).
fn attributes(point: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for attribute in point.get("attributes").and_then(Value::as_array).into_iter().flatten() {
        let (Some(key), Some(value)) = (attribute.get("key").and_then(Value::as_str), attribute.get("value"))
        else {
            continue;
        };
        let text =
            ["stringValue", "intValue", "boolValue", "doubleValue"].iter().find_map(|field| {
                match value.get(*field)? {
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }
            });
        if let Some(text) = text {
            out.insert(key.to_owned(), text);
        }
    }
    out
}

/// `asDouble`, or `asInt` (a number, or a string: OTLP/JSON writes 64-bit integers as strings).
fn number(point: &Value) -> Option<f64> {
    match point.get("asDouble").or_else(|| point.get("asInt"))? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// What a data point of `metric` with these attributes counts, if it is one this module reads.
fn kind_of(metric: &str, attributes: &HashMap<String, String>) -> Option<Kind> {
    let attribute = |key: &str| attributes.get(key).map(String::as_str);
    match (metric, attribute("type")) {
        ("claude_code.cost.usage", _) => Some(Kind::CostUsd),
        ("claude_code.token.usage", Some("input")) => Some(Kind::Input),
        ("claude_code.token.usage", Some("output")) => Some(Kind::Output),
        ("claude_code.token.usage", Some("cacheRead")) => Some(Kind::CacheRead),
        ("claude_code.token.usage", Some("cacheCreation")) => Some(Kind::CacheCreation),
        // Tool-call prompts are input; thinking is output (and billed so); Gemini's prompt count
        // includes what the cache served.
        ("gemini_cli.token.usage", Some("input" | "tool")) => Some(Kind::Input),
        ("gemini_cli.token.usage", Some("output" | "thought")) => Some(Kind::Output),
        ("gemini_cli.token.usage", Some("cache")) => Some(Kind::CacheReadOfInput),
        // The Responses API's input counts the cache's reads and writes, its output the
        // reasoning (`reasoning_output`), and `total` is the two.
        ("codex.turn.token_usage", _) => match attribute("token_type")? {
            "input" => Some(Kind::Input),
            "cached_input" => Some(Kind::CacheReadOfInput),
            "cache_write_input" => Some(Kind::CacheCreationOfInput),
            "output" => Some(Kind::Output),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn export(metric: &str, temporality: u64, points: &[(&str, &str, Value, &str)]) -> Value {
        let points: Vec<Value> = points
            .iter()
            .map(|(kind, model, value, start)| {
                let mut point = json!({
                    "attributes": [
                        {"key": "type", "value": {"stringValue": kind}},
                        {"key": "model", "value": {"stringValue": model}},
                        {"key": "session.id", "value": {"stringValue": "x"}},
                    ],
                    "startTimeUnixNano": start,
                    "timeUnixNano": "2",
                });
                let field = if value.is_string() || value.is_u64() { "asInt" } else { "asDouble" };
                point[field] = value.clone();
                point
            })
            .collect();
        json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": metric, "unit": "tokens", "sum": {"dataPoints": points, "aggregationTemporality": temporality, "isMonotonic": true}}
        ]}]}]})
    }

    fn tally(exports: &[Value]) -> Usage {
        let mut tally = Tally { session: Weak::new(), series: HashMap::new(), model: None };
        for export in exports {
            tally.add(export);
        }
        tally.usage()
    }

    #[test]
    fn claude_code_deltas_add_up() {
        let first = export(
            "claude_code.token.usage",
            1,
            &[
                ("input", "m-1", json!(100.0), "1"),
                ("output", "m-1", json!("40"), "1"),
                ("cacheRead", "m-1", json!(7), "1"),
            ],
        );
        let second = export(
            "claude_code.token.usage",
            1,
            &[("input", "m-2", json!(5.0), "3"), ("cacheCreation", "m-2", json!(9.0), "3")],
        );
        let cost = export("claude_code.cost.usage", 1, &[("", "m-2", json!(0.25), "3")]);
        let usage = tally(&[first, second, cost]);
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens),
            (105, 40, 7, 9)
        );
        assert_eq!(usage.cost_usd, Some(0.25));
        assert_eq!(usage.model.as_deref(), Some("m-2"));
    }

    #[test]
    fn cumulative_totals_replace_until_the_series_restarts() {
        let at = |value: u64, start: &str| {
            export(
                "gemini_cli.token.usage",
                2,
                &[("input", "g", json!(value), start), ("thought", "g", json!(1), start)],
            )
        };
        let usage = tally(&[at(10, "1"), at(25, "1"), at(4, "9")]);
        assert_eq!(usage.input_tokens, 29, "25 from the first run, 4 from the restarted one");
        assert_eq!(usage.output_tokens, 2);
        assert_eq!(usage.cost_usd, None, "Gemini says nothing of cost");
    }

    /// What Codex 0.171.0's interactive TUI exported for three requests to the fake model server
    /// (each reporting 1601 input tokens of which 311 cache reads and 53 cache writes, and 41
    /// output tokens), cut down to the token histogram and two metrics not read.
    const CODEX_EXPORT: &str = include_str!("telemetry/codex-0.171.0-metrics.json");

    #[test]
    fn a_codex_export_counts_fresh_input_apart_from_the_cache() {
        let export: Value = serde_json::from_str(CODEX_EXPORT).unwrap();
        let usage = tally(std::slice::from_ref(&export));
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens),
            (3 * 1237, 3 * 41, 3 * 311, 3 * 53)
        );
        assert_eq!(usage.cost_usd, None, "Codex says nothing of cost here");
        assert_eq!(usage.model.as_deref(), Some("agentrelay-fake"));
        // Its histograms are deltas: the next export adds up.
        assert_eq!(tally(&[export.clone(), export]).output_tokens, 6 * 41);
    }

    #[test]
    fn codex_is_pointed_at_the_endpoint_on_its_command_line() {
        let mut launch = Launch {
            command: vec!["codex".into(), "--no-daemon".into()],
            cwd: None,
            env: [("CODEX_HOME".to_owned(), "/nonexistent".to_owned())].into(),
        };
        assert_eq!(Exporter::Codex.set_elsewhere(&launch), None);
        Exporter::Codex.wire("http://127.0.0.1:9/otlp/s", &mut launch);
        assert_eq!(
            launch.command[..3],
            [
                "codex",
                "-c",
                r#"otel.metrics_exporter={otlp-http={endpoint="http://127.0.0.1:9/otlp/s/v1/metrics",protocol="json"}}"#
            ]
        );
        assert_eq!(launch.env["OTEL_METRIC_EXPORT_INTERVAL"], EXPORT_INTERVAL_MS);
        assert!(
            Exporter::Codex.set_elsewhere(&launch).is_some(),
            "a command line that sets otel is the user's"
        );

        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("config.toml"), "[otel]\nmetrics_exporter = \"none\"\n").unwrap();
        let launch = Launch {
            command: vec!["codex".into()],
            cwd: None,
            env: [("CODEX_HOME".to_owned(), home.path().display().to_string())].into(),
        };
        assert!(Exporter::Codex.set_elsewhere(&launch).is_some(), "its config.toml sends metrics elsewhere");
    }

    #[test]
    fn other_metrics_and_malformed_points_are_skipped() {
        let noise = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "claude_code.session.count", "sum": {"dataPoints": [{"asInt": "1"}], "aggregationTemporality": 1}},
            {"name": "claude_code.token.usage", "sum": {"dataPoints": [{"attributes": "nope"}, {"asDouble": "x"}]}},
            {"name": "claude_code.token.usage", "gauge": {}},
        ]}]}], "extra": true});
        assert_eq!(tally(&[noise, json!([]), json!({"resourceMetrics": 3})]), Usage::default());
    }
}
