//! `GET /metrics` in Prometheus text format (admin token, or no auth on `--metrics-listen`).
//!
//! The data path only adds to a few atomics ([`Counters`]); gauges (runners, sessions by status
//! and activity, viewers) are read from HQ's state when scraped, so they are always exact.
//! Request latency goes through the `metrics` crate's histogram, off the data path.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use agentrelay_protocol::{Activity, ErrorResponse, RunnerStatus, SessionStatus};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Counts kept on the data path: one relaxed atomic add each.
#[derive(Debug, Default)]
pub struct Counters {
    /// Output bytes received from runners.
    pub bytes_in: AtomicU64,
    /// Output bytes sent to viewers.
    pub bytes_out: AtomicU64,
    /// Runner control connections that replaced or followed an earlier one.
    pub runner_reconnects: AtomicU64,
    /// Viewer connections that resumed from an offset (`?from=`).
    pub viewer_resumes: AtomicU64,
    /// WebSocket connections that ended with an error, by kind.
    pub runner_errors: AtomicU64,
    /// Data connections that ended with an error.
    pub data_errors: AtomicU64,
    /// Viewer connections that ended with an error.
    pub viewer_errors: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The process-wide recorder (the `metrics` facade allows one), installed on first use.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
        let builder =
            PrometheusBuilder::new().set_buckets(&buckets).unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; request latency is not recorded here");
        }
        handle
    })
}

/// Installs the recorder before the first request, so early latencies count.
pub fn install() {
    handle();
}

/// Middleware: request latency by method, route template and status.
pub async fn track_latency(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    // The route template (`/api/sessions/{id}`), never the concrete path: bounded label values.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("agentrelay_http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "No valid token", body = ErrorResponse),
        (status = 403, description = "Not an admin", body = ErrorResponse),
    )
)]
pub async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    refresh(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle().render())
}

/// Sets every gauge and counter from HQ's state.
fn refresh(state: &AppState) {
    let runners = state.registry.list();
    for (status, label) in [(RunnerStatus::Online, "online"), (RunnerStatus::Offline, "offline")] {
        let count = runners.iter().filter(|r| r.status == status).count();
        metrics::gauge!("agentrelay_runners", "status" => label).set(count as f64);
    }
    let sessions = state.sessions.list();
    let mut by_status = [0usize; 5];
    let mut by_activity = [0usize; 3];
    let mut viewers = 0usize;
    for session in &sessions {
        let view = session.view();
        by_status[status_index(view.status)] += 1;
        if let Some(activity) = view.activity {
            by_activity[activity as usize] += 1;
        }
        viewers += view.viewers.len();
    }
    for (index, label) in ["starting", "running", "exited", "failed", "lost"].iter().enumerate() {
        metrics::gauge!("agentrelay_sessions", "status" => *label).set(by_status[index] as f64);
    }
    let activities = [Activity::Working, Activity::WaitingForInput, Activity::Idle];
    for (activity, label) in activities.iter().zip(["working", "waiting_for_input", "idle"]) {
        metrics::gauge!("agentrelay_sessions_by_activity", "activity" => label)
            .set(by_activity[*activity as usize] as f64);
    }
    metrics::gauge!("agentrelay_viewers").set(viewers as f64);
    let c = &state.counters;
    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    metrics::counter!("agentrelay_output_bytes_in_total").absolute(read(&c.bytes_in));
    metrics::counter!("agentrelay_output_bytes_out_total").absolute(read(&c.bytes_out));
    metrics::counter!("agentrelay_reconnects_total", "kind" => "runner").absolute(read(&c.runner_reconnects));
    metrics::counter!("agentrelay_reconnects_total", "kind" => "viewer").absolute(read(&c.viewer_resumes));
    for (label, counter) in
        [("runner", &c.runner_errors), ("data", &c.data_errors), ("viewer", &c.viewer_errors)]
    {
        metrics::counter!("agentrelay_websocket_errors_total", "kind" => label).absolute(read(counter));
    }
}

fn status_index(status: SessionStatus) -> usize {
    match status {
        SessionStatus::Starting => 0,
        SessionStatus::Running => 1,
        SessionStatus::Exited => 2,
        SessionStatus::Failed => 3,
        SessionStatus::Lost => 4,
    }
}
