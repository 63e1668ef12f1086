//! `make bench`: measures AgentRelay (release HQ and runner on loopback) next to a raw local PTY
//! in the same run, prints a table and writes JSON (`BENCH_ONLY=echo,scale` picks scenarios:
//! throughput, echo, start, scale, idle, hosts, slow, cluster, cluster_scale). `BENCH_QUICK=1` runs tiny sizes, only to
//! prove the benchmark still works; its numbers mean nothing.
//!
//! `agentrelay-bench tick <ms>` is the load generator for the scale run: one process that prints
//! a line every `ms` milliseconds (no shell, no `sleep` processes).

mod raw;
mod scenarios;
mod stack;

use std::time::Duration;

use serde_json::{Value, json};

/// Sizes for one run.
pub(crate) struct Plan {
    pub(crate) quick: bool,
    pub(crate) throughput_bytes: u64,
    pub(crate) pairs: usize,
    pub(crate) echo_samples: usize,
    pub(crate) starts: usize,
    pub(crate) scale_sessions: usize,
    pub(crate) scale_window: Duration,
    pub(crate) idle_runners: usize,
    pub(crate) idle_sessions: usize,
    pub(crate) slow_bytes: u64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                throughput_bytes: 4 << 20,
                pairs: 1,
                echo_samples: 200,
                starts: 10,
                scale_sessions: 10,
                scale_window: Duration::from_secs(1),
                idle_runners: 50,
                idle_sessions: 5,
                slow_bytes: 8 << 20,
            }
        } else {
            Self {
                quick,
                throughput_bytes: 200_000_000,
                pairs: 5,
                echo_samples: 5000,
                starts: 200,
                scale_sessions: 1000,
                scale_window: Duration::from_secs(10),
                idle_runners: 10_000,
                idle_sessions: 200,
                slow_bytes: 200_000_000,
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("tick") {
        let every = args.get(2).and_then(|ms| ms.parse().ok()).unwrap_or(100);
        scenarios::tick(Duration::from_millis(every));
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let out = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)).cloned();
    raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agentrelay-bench: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Plan::new(quick))) {
        Ok(results) => {
            let path = out.unwrap_or_else(|| "target/bench.json".to_owned());
            match std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap_or_default()) {
                Ok(()) => println!("\nwrote {path}"),
                Err(error) => eprintln!("agentrelay-bench: cannot write {path}: {error}"),
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("agentrelay-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(plan: Plan) -> anyhow::Result<Value> {
    println!(
        "AgentRelay benchmark ({} mode) on {} cores",
        if plan.quick { "quick" } else { "full" },
        cores()
    );
    // `BENCH_ONLY=echo,scale` repeats some scenarios without the rest (the others are null).
    let only = std::env::var("BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|list| list.split(',').any(|w| w.trim() == name));
    let throughput = if wanted("throughput") { scenarios::throughput(&plan).await? } else { Value::Null };
    let echo = if wanted("echo") { scenarios::echo(&plan).await? } else { Value::Null };
    let start = if wanted("start") { scenarios::session_start(&plan).await? } else { Value::Null };
    let scale = if wanted("scale") { scenarios::scale(&plan).await? } else { Value::Null };
    let idle = if wanted("idle") { scenarios::idle_runners(&plan).await? } else { Value::Null };
    let hosts = if wanted("hosts") { scenarios::idle_sessions(&plan).await? } else { Value::Null };
    let slow = if wanted("slow") { scenarios::slow_viewer(&plan).await? } else { Value::Null };
    let cluster = if wanted("cluster") { scenarios::cluster(&plan).await? } else { Value::Null };
    let cluster_scale =
        if wanted("cluster_scale") { scenarios::cluster_scale(&plan).await? } else { Value::Null };
    Ok(json!({
        "quick": plan.quick,
        "cores": cores(),
        "throughput": throughput,
        "echo": echo,
        "session_start": start,
        "scale": scale,
        "idle_runners": idle,
        "idle_sessions": hosts,
        "slow_viewer": slow,
        "cluster": cluster,
        "cluster_scale": cluster_scale,
    }))
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Thousands of sockets need thousands of descriptors.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
