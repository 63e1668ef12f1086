//! A fake model server for running the real agent CLIs offline: one loopback port that speaks
//! enough of the Anthropic Messages API (Claude Code), the OpenAI Responses API (Codex) and the
//! Gemini API (Gemini CLI), scripted per test.
//!
//! A script is a list of [`Turn`]s: "on a prompt containing X, call the shell tool with command Y;
//! on its result, answer Z". Any other request (titles, classifiers, warm-ups) gets a short text
//! answer. Every reply carries the usage numbers in [`USAGE`]. Requests are kept, in order, for
//! tests to look at and for a failing test to print.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One scripted exchange.
#[derive(Debug, Clone)]
pub struct Turn {
    /// A user prompt containing this starts the turn.
    pub prompt_contains: String,
    /// The shell command the model asks to run.
    pub command: String,
    /// The model's answer once the command's result comes back.
    pub answer: String,
}

impl Turn {
    /// On a prompt containing `prompt_contains`, run `command`; then say `answer`.
    pub fn new(prompt_contains: &str, command: &str, answer: &str) -> Self {
        Self { prompt_contains: prompt_contains.into(), command: command.into(), answer: answer.into() }
    }
}

/// Token counts every reply reports, odd enough that a total made of them can only have come
/// from this server's replies (each API spells them its own way: see [`Usage`]).
pub const USAGE: Usage = Usage { input: 1237, output: 41, cache_read: 311, cache_write: 53 };

/// Token counts in a reply: `input` is the fresh input, without the cache's reads and writes.
/// The Messages API reports the three apart; the Responses API's `input_tokens` counts all
/// three; Gemini's `promptTokenCount` counts fresh input and cache reads (it has no cache
/// writes, so its replies report none).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// What the server was asked: the path (with its query) and the JSON body.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    turns: Arc<[Turn]>,
    requests: Arc<Mutex<Vec<Request>>>,
    /// Print each request's path on stderr as it comes (to watch an agent by hand).
    verbose: bool,
}

/// The running server; it stops on `Drop`.
pub struct ModelServer {
    pub addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl ModelServer {
    /// Serves `turns` on a free loopback port.
    pub async fn start(turns: Vec<Turn>) -> std::io::Result<Self> {
        Self::start_verbose(turns, false).await
    }

    /// Like [`ModelServer::start`]; `verbose` prints each request's path on stderr.
    pub async fn start_verbose(turns: Vec<Turn>, verbose: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared { turns: turns.into(), requests: requests.clone(), verbose };
        let app = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1/responses", post(openai))
            .route("/v1beta/models/{call}", post(gemini))
            .fallback(unknown)
            .with_state(shared);
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, requests, task })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One line per request (path and its first 200 characters), for a failing test to print.
    pub fn summary(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                let body: String = r.body.to_string().chars().take(200).collect();
                format!("{} {body}\n", r.path)
            })
            .collect()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the model does next in a conversation.
#[derive(Debug, PartialEq)]
enum Reply {
    /// Call the shell tool with this command.
    Run(String),
    /// Say this.
    Say(String),
}

/// Decides the next reply from the user's texts, whether a tool result came back, and whether a
/// shell tool is offered at all (side requests such as titles offer none).
fn decide(turns: &[Turn], user_texts: &[String], tool_result: bool, shell_offered: bool) -> Reply {
    let turn = turns.iter().find(|t| user_texts.iter().any(|text| text.contains(&t.prompt_contains)));
    match turn {
        Some(turn) if tool_result => Reply::Say(turn.answer.clone()),
        Some(turn) if shell_offered => Reply::Run(turn.command.clone()),
        _ => Reply::Say("OK.".into()),
    }
}

fn record(shared: &Shared, uri: &Uri, body: &Value) {
    if shared.verbose {
        eprintln!("fake model: {uri}");
    }
    let request = Request { path: uri.to_string(), body: body.clone() };
    shared.requests.lock().unwrap_or_else(|p| p.into_inner()).push(request);
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// Server-Sent Events: `(event name, data)` pairs; a `None` name sends data lines only.
fn sse(events: Vec<(Option<&str>, Value)>) -> Response {
    let mut text = String::new();
    for (name, data) in events {
        if let Some(name) = name {
            text.push_str(&format!("event: {name}\n"));
        }
        text.push_str(&format!("data: {data}\n\n"));
    }
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from(text))
        .into_response()
}

async fn unknown(State(shared): State<Shared>, uri: Uri, body: axum::body::Bytes) -> Response {
    record(&shared, &uri, &parse(&body));
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"message": "not part of the fake", "type": "not_found"}})),
    )
        .into_response()
}

/// Every text in a content that is a string or a list of blocks (`text`, `input_text`, …).
fn texts(content: &Value, out: &mut Vec<String>) {
    match content {
        Value::String(text) => out.push(text.clone()),
        Value::Array(blocks) => {
            for block in blocks {
                if let Some(text) = block.get("text").and_then(Value::as_str) {
                    out.push(text.to_owned());
                }
            }
        }
        _ => {}
    }
}

// ---- Anthropic Messages (Claude Code) ----

async fn anthropic(State(shared): State<Shared>, uri: Uri, body: axum::body::Bytes) -> Response {
    let body = parse(&body);
    record(&shared, &uri, &body);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let mut user_texts = Vec::new();
    let mut tool_result = false;
    for message in messages.iter().filter(|m| m["role"] == "user") {
        texts(&message["content"], &mut user_texts);
        tool_result |= message["content"]
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    }
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    let shell = tools.iter().find_map(|t| t["name"].as_str().filter(|n| *n == "Bash"));
    let reply = decide(&shared.turns, &user_texts, tool_result, shell.is_some());
    let model = body["model"].as_str().unwrap_or("claude-fake").to_owned();
    let (block, stop_reason) = match &reply {
        Reply::Run(command) => (
            json!({"type": "tool_use", "id": "toolu_fake_1", "name": "Bash",
                   "input": {"command": command, "description": "Run the scripted command"}}),
            "tool_use",
        ),
        Reply::Say(text) => (json!({"type": "text", "text": text}), "end_turn"),
    };
    let usage = json!({"input_tokens": USAGE.input, "output_tokens": USAGE.output,
                       "cache_read_input_tokens": USAGE.cache_read,
                       "cache_creation_input_tokens": USAGE.cache_write});
    if body["stream"] != true {
        return axum::Json(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [block], "stop_reason": stop_reason, "stop_sequence": null, "usage": usage,
        }))
        .into_response();
    }
    let (start, delta) = match &reply {
        Reply::Run(_) => {
            let input = block["input"].to_string();
            let mut start = block.clone();
            start["input"] = json!({});
            (start, json!({"type": "input_json_delta", "partial_json": input}))
        }
        Reply::Say(text) => {
            (json!({"type": "text", "text": ""}), json!({"type": "text_delta", "text": text}))
        }
    };
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    sse(vec![
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {
                "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": start}),
        ),
        (Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": delta})),
        (Some("content_block_stop"), json!({"type": "content_block_stop", "index": 0})),
        (
            Some("message_delta"),
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                   "usage": {"output_tokens": USAGE.output}}),
        ),
        (Some("message_stop"), json!({"type": "message_stop"})),
    ])
}

// ---- OpenAI Responses (Codex) ----

async fn openai(State(shared): State<Shared>, uri: Uri, body: axum::body::Bytes) -> Response {
    let body = parse(&body);
    record(&shared, &uri, &body);
    let input = body["input"].as_array().cloned().unwrap_or_default();
    let mut user_texts = Vec::new();
    let mut tool_result = false;
    for item in &input {
        if item["role"] == "user" {
            texts(&item["content"], &mut user_texts);
        }
        tool_result |= item["type"] == "function_call_output" || item["type"] == "custom_tool_call_output";
    }
    if let Some(text) = body["input"].as_str() {
        user_texts.push(text.to_owned());
    }
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    let shell =
        tools.iter().find_map(|t| t["name"].as_str().filter(|n| matches!(*n, "exec_command" | "shell")));
    let reply = decide(&shared.turns, &user_texts, tool_result, shell.is_some());
    let item = match &reply {
        Reply::Run(command) => {
            let arguments = if shell == Some("shell") {
                json!({"command": ["bash", "-lc", command], "with_escalated_permissions": true,
                       "justification": "Run the scripted command"})
            } else {
                json!({"cmd": command, "sandbox_permissions": "require_escalated"})
            };
            json!({"type": "function_call", "id": "fc_fake_1", "call_id": "call_fake_1", "status": "completed",
                   "name": shell.unwrap_or("exec_command"), "arguments": arguments.to_string()})
        }
        Reply::Say(text) => {
            json!({"type": "message", "id": "msg_fake_1", "role": "assistant", "status": "completed",
                                   "content": [{"type": "output_text", "text": text, "annotations": []}]})
        }
    };
    let input = USAGE.input + USAGE.cache_read + USAGE.cache_write;
    let usage = json!({"input_tokens": input,
                       "input_tokens_details": {"cached_tokens": USAGE.cache_read, "cache_write_tokens": USAGE.cache_write},
                       "output_tokens": USAGE.output, "output_tokens_details": {"reasoning_tokens": 0},
                       "total_tokens": input + USAGE.output});
    let model = body["model"].as_str().unwrap_or("fake-model");
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": "resp_fake", "object": "response", "created_at": 0, "model": model, "status": status,
               "output": output, "usage": usage})
    };
    let mut events = vec![(
        Some("response.created"),
        json!({"type": "response.created",
        "response": response("in_progress", json!([]), Value::Null)}),
    )];
    let mut added = item.clone();
    if let Reply::Say(text) = &reply {
        added["content"] = json!([]);
        added["status"] = json!("in_progress");
        events.push((
            Some("response.output_item.added"),
            json!({"type": "response.output_item.added", "output_index": 0, "item": added}),
        ));
        events.push((
            Some("response.output_text.delta"),
            json!({"type": "response.output_text.delta", "item_id": "msg_fake_1", "output_index": 0,
                   "content_index": 0, "delta": text}),
        ));
    } else {
        events.push((
            Some("response.output_item.added"),
            json!({"type": "response.output_item.added", "output_index": 0, "item": added}),
        ));
    }
    events.push((
        Some("response.output_item.done"),
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
    ));
    events.push((Some("response.completed"),
        json!({"type": "response.completed", "response": response("completed", json!([item]), usage.clone())})));
    if body["stream"] == false {
        return axum::Json(response("completed", json!([item]), usage)).into_response();
    }
    sse(events)
}

// ---- Gemini (Gemini CLI) ----

async fn gemini(
    State(shared): State<Shared>,
    Path(call): Path<String>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let body = parse(&body);
    record(&shared, &uri, &body);
    let Some((_model, method)) = call.split_once(':') else { return StatusCode::NOT_FOUND.into_response() };
    let prompt = USAGE.input + USAGE.cache_read;
    if method == "countTokens" {
        return axum::Json(json!({"totalTokens": prompt})).into_response();
    }
    let usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": USAGE.output,
                       "cachedContentTokenCount": USAGE.cache_read, "totalTokenCount": prompt + USAGE.output});
    let config = &body["generationConfig"];
    let schema = config.get("responseJsonSchema").or_else(|| config.get("responseSchema"));
    let part = if let Some(schema) = schema.filter(|_| config["responseMimeType"] == "application/json") {
        // Gemini CLI's own classifiers (next speaker, routing, loops) ask for JSON.
        json!({"text": fill_schema(schema, "").to_string()})
    } else {
        let contents = body["contents"].as_array().cloned().unwrap_or_default();
        let mut user_texts = Vec::new();
        let mut tool_result = false;
        for content in contents.iter().filter(|c| c["role"] == "user") {
            for part in content["parts"].as_array().into_iter().flatten() {
                if let Some(text) = part["text"].as_str() {
                    user_texts.push(text.to_owned());
                }
                tool_result |= part.get("functionResponse").is_some();
            }
        }
        let shell_offered = body["tools"].as_array().into_iter().flatten().any(|tool| {
            tool["functionDeclarations"]
                .as_array()
                .is_some_and(|ds| ds.iter().any(|d| d["name"] == "run_shell_command"))
        });
        match decide(&shared.turns, &user_texts, tool_result, shell_offered) {
            Reply::Run(command) => json!({"functionCall": {"name": "run_shell_command",
                "args": {"command": command, "description": "Run the scripted command"}}}),
            Reply::Say(text) => json!({"text": text}),
        }
    };
    let chunk = json!({
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": "gemini-fake",
    });
    if method == "streamGenerateContent" {
        sse(vec![(None, chunk)])
    } else {
        axum::Json(chunk).into_response()
    }
}

/// A value that fits a JSON schema: the first of an enum, `"user"` for Gemini CLI's
/// `next_speaker` (so it hands the turn back), empty strings, zeros, and every property filled.
fn fill_schema(schema: &Value, name: &str) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|values| {
        if name == "next_speaker" {
            values.iter().find(|v| *v == "user").or(values.first())
        } else {
            values.first()
        }
    }) {
        return first.clone();
    }
    let kind = schema["type"].as_str().map(str::to_ascii_lowercase).unwrap_or_default();
    match kind.as_str() {
        "object" => {
            let mut object = serde_json::Map::new();
            for (key, property) in schema["properties"].as_object().into_iter().flatten() {
                object.insert(key.clone(), fill_schema(property, key));
            }
            Value::Object(object)
        }
        "array" => json!([]),
        "number" | "integer" => json!(0),
        "boolean" => json!(false),
        _ => json!(if name == "next_speaker" { "user" } else { "ok" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_runs_its_command_then_answers() {
        let turns = [Turn::new("make x", "touch x", "made")];
        let asked = ["please make x now".to_owned()];
        assert_eq!(decide(&turns, &asked, false, true), Reply::Run("touch x".into()));
        assert_eq!(decide(&turns, &asked, true, true), Reply::Say("made".into()));
        assert_eq!(decide(&turns, &asked, false, false), Reply::Say("OK.".into()), "a side request");
        assert_eq!(decide(&turns, &["hi".into()], false, true), Reply::Say("OK.".into()));
    }

    #[test]
    fn schemas_are_filled() {
        let schema = json!({"type": "OBJECT", "properties": {
            "reasoning": {"type": "STRING"}, "next_speaker": {"type": "STRING", "enum": ["model", "user"]}}});
        assert_eq!(fill_schema(&schema, ""), json!({"reasoning": "ok", "next_speaker": "user"}));
    }
}
