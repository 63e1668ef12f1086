//! The measurements, each printing its rows and returning its JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentrelay_protocol::PROTOCOL_VERSION;
use agentrelay_protocol::runner::{Hello, HqMessage, RunnerMessage};
use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::Plan;
use crate::raw;
use crate::stack::{self, Stack, cpu_ticks, memory_kib, ticks_per_second};

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The value at quantile `q` of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Throughput: `cat` of a text file, raw PTY read loop vs process → runner → HQ → viewer.
pub(crate) async fn throughput(plan: &Plan) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let file = stack::text_file(dir.path(), plan.throughput_bytes)?;
    let file = file.to_str().context("temp path is not UTF-8")?.to_owned();
    let stack = Stack::start(&[]).await?;
    let mut ratios = Vec::new();
    let mut pairs = Vec::new();
    for _ in 0..plan.pairs {
        let (raw_bytes, raw_time) = raw::pty_read_all(&["cat", &file]).await?;
        let started = Instant::now();
        let id = stack.start_session(&["cat", &file]).await?;
        let mut viewer = stack.attach(&id).await?;
        let relayed = stack::drain_to_exit(&mut viewer).await?;
        let relay_time = started.elapsed();
        if relayed != raw_bytes {
            bail!("relayed {relayed} bytes but the PTY produced {raw_bytes}");
        }
        let raw_rate = raw_bytes as f64 / raw_time.as_secs_f64();
        let relay_rate = relayed as f64 / relay_time.as_secs_f64();
        ratios.push(relay_rate / raw_rate);
        pairs.push(json!({"raw_bytes_per_s": raw_rate, "relay_bytes_per_s": relay_rate, "bytes": relayed}));
    }
    let ratio = median(&mut ratios);
    println!("\nthroughput ({} MB, {} interleaved pairs)", plan.throughput_bytes / 1_000_000, plan.pairs);
    for (i, p) in pairs.iter().enumerate() {
        println!(
            "  pair {i}: raw PTY {:>8.1} MB/s   AgentRelay {:>8.1} MB/s   bytes {}",
            p["raw_bytes_per_s"].as_f64().unwrap_or(0.0) / 1e6,
            p["relay_bytes_per_s"].as_f64().unwrap_or(0.0) / 1e6,
            p["bytes"]
        );
    }
    println!("  median ratio: {:.1} % of raw (target ≥ 90 %), every byte delivered", ratio * 100.0);
    Ok(json!({"pairs": pairs, "median_ratio": ratio}))
}

/// Keystroke echo: one byte through viewer → HQ → runner → PTY and back, against the floor.
pub(crate) async fn echo(plan: &Plan) -> anyhow::Result<Value> {
    let stack = Stack::start(&[]).await?;
    let mut relay_echo = ViewerEcho::start(&stack).await?;
    let mut pty_echo = raw::PtyEcho::start().await?;
    let mut tcp_echo = raw::TcpEcho::start().await?;
    // In rounds, each measurement in turn: a moment of noise on the VM lands on all three.
    let (mut relay, mut pty, mut tcp) = (Vec::new(), Vec::new(), Vec::new());
    for samples in rounds(plan.echo_samples) {
        relay_echo.sample(samples, &mut relay).await?;
        pty_echo.sample(samples, &mut pty).await?;
        tcp_echo.sample(samples, &mut tcp).await?;
    }
    for list in [&mut relay, &mut pty, &mut tcp] {
        list.sort();
    }
    let row = |name: &str, list: &[Duration]| {
        println!(
            "  {name:<28} p50 {:>7.1} µs   p99 {:>7.1} µs   p999 {:>7.1} µs",
            micros(quantile(list, 0.5)),
            micros(quantile(list, 0.99)),
            micros(quantile(list, 0.999))
        );
    };
    println!("\nkeystroke echo ({} samples)", plan.echo_samples);
    row("AgentRelay (2 hops)", &relay);
    row("raw PTY", &pty);
    row("loopback TCP round trip", &tcp);
    let floor50 = quantile(&pty, 0.5) + 2 * quantile(&tcp, 0.5);
    let floor99 = quantile(&pty, 0.99) + 2 * quantile(&tcp, 0.99);
    let over50 = micros(quantile(&relay, 0.5)) - micros(floor50);
    let over99 = micros(quantile(&relay, 0.99)) - micros(floor99);
    println!(
        "  floor (PTY + 2 TCP)          p50 {:>7.1} µs   p99 {:>7.1} µs",
        micros(floor50),
        micros(floor99)
    );
    println!("  over the floor: p50 {over50:+.1} µs (target ≤ +100), p99 {over99:+.1} µs (target ≤ +300)");
    let stats = |list: &[Duration]| json!({"p50_us": micros(quantile(list, 0.5)), "p99_us": micros(quantile(list, 0.99)), "p999_us": micros(quantile(list, 0.999))});
    Ok(json!({
        "relay": stats(&relay), "raw_pty": stats(&pty), "tcp_round_trip": stats(&tcp),
        "floor_p50_us": micros(floor50), "floor_p99_us": micros(floor99),
        "over_floor_p50_us": over50, "over_floor_p99_us": over99,
    }))
}

/// Session start: `POST /api/sessions` to the first output byte at a viewer.
pub(crate) async fn session_start(plan: &Plan) -> anyhow::Result<Value> {
    let stack = Stack::start(&[]).await?;
    let mut times = Vec::with_capacity(plan.starts);
    for _ in 0..plan.starts {
        let start = Instant::now();
        let id = stack.start_session(&["echo", "x"]).await?;
        let mut viewer = stack.attach(&id).await?;
        loop {
            match viewer.next().await {
                Some(Ok(Message::Binary(_))) => break,
                Some(Ok(_)) => continue,
                other => bail!("no output: {other:?}"),
            }
        }
        times.push(start.elapsed());
        stack::drain_to_exit(&mut viewer).await?;
    }
    times.sort();
    let (p50, p99) = (quantile(&times, 0.5), quantile(&times, 0.99));
    println!(
        "\nsession start ({} sessions): p50 {:.2} ms, p99 {:.2} ms (target p99 ≤ 50 ms)",
        plan.starts,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    Ok(json!({"p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3}))
}

/// The load generator: a line every `every`, forever.
pub(crate) fn tick(every: Duration) -> ! {
    use std::io::Write;
    let mut n = 0u64;
    let stdout = std::io::stdout();
    loop {
        let _ = writeln!(stdout.lock(), "tick {n} the quick brown fox");
        n += 1;
        std::thread::sleep(every);
    }
}

/// Many live sessions, each printing a line every 100 ms to its own viewer: HQ and runner CPU
/// and memory.
pub(crate) async fn scale(plan: &Plan) -> anyhow::Result<Value> {
    let stack = Stack::start(&["--max-sessions-per-runner", "100000"]).await?;
    let me = std::env::current_exe()?;
    let me = me.to_str().context("path is not UTF-8")?.to_owned();
    let (hq_idle, _) = memory_kib(stack.hq_pid());
    let mut readers = Vec::new();
    for _ in 0..plan.scale_sessions {
        let id = stack.start_session(&[&me, "tick", "100"]).await?;
        let mut viewer = stack.attach(&id).await?;
        readers.push(tokio::spawn(async move { while let Some(Ok(_)) = viewer.next().await {} }));
    }
    // Let every session reach its steady state, then measure a window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (hq0, runner0) = (cpu_ticks(stack.hq_pid()), cpu_ticks(stack.runner_pid()));
    let window = Instant::now();
    tokio::time::sleep(plan.scale_window).await;
    let seconds = window.elapsed().as_secs_f64();
    let hz = ticks_per_second();
    let hq_cpu = (cpu_ticks(stack.hq_pid()) - hq0) as f64 / hz / seconds * 100.0;
    let runner_cpu = (cpu_ticks(stack.runner_pid()) - runner0) as f64 / hz / seconds * 100.0;
    let (hq_rss, _) = memory_kib(stack.hq_pid());
    let (runner_rss, _) = memory_kib(stack.runner_pid());
    let per_session = (hq_rss.saturating_sub(hq_idle)) as f64 / plan.scale_sessions as f64;
    println!("\nscale: {} live sessions, a line every 100 ms each, one viewer each", plan.scale_sessions);
    println!(
        "  HQ     CPU {hq_cpu:>6.1} % of one core (target < 100 %)   RSS {:>8.1} MiB ({per_session:.1} KiB per session incl. ring use)",
        hq_rss as f64 / 1024.0
    );
    println!(
        "  runner CPU {runner_cpu:>6.1} % of one core                     RSS {:>8.1} MiB",
        runner_rss as f64 / 1024.0
    );
    for reader in readers {
        reader.abort();
    }
    Ok(json!({
        "sessions": plan.scale_sessions, "hq_cpu_percent": hq_cpu, "runner_cpu_percent": runner_cpu,
        "hq_rss_kib": hq_rss, "runner_rss_kib": runner_rss, "hq_kib_per_session": per_session,
    }))
}

/// Idle sessions on one runner: what each costs the runner, and what its session host costs.
pub(crate) async fn idle_sessions(plan: &Plan) -> anyhow::Result<Value> {
    let stack = Stack::start(&["--max-sessions-per-runner", "100000"]).await?;
    let before_hosts = stack::session_hosts();
    let (runner_idle, _) = memory_kib(stack.runner_pid());
    for _ in 0..plan.idle_sessions {
        stack.start_session(&["sleep", "3600"]).await?;
    }
    // Every host up and quiet.
    let hosts = stack::wait_for(|| async {
        let hosts: Vec<u32> =
            stack::session_hosts().into_iter().filter(|h| !before_hosts.contains(h)).collect();
        (hosts.len() >= plan.idle_sessions).then_some(hosts)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (runner_rss, _) = memory_kib(stack.runner_pid());
    let runner_per_session = runner_rss.saturating_sub(runner_idle) as f64 / plan.idle_sessions as f64;
    let rss: Vec<u64> = hosts.iter().map(|h| memory_kib(*h).0).collect();
    let pss: Vec<u64> = hosts.iter().map(|h| stack::pss_kib(*h)).collect();
    let mean = |values: &[u64]| values.iter().sum::<u64>() as f64 / values.len().max(1) as f64;
    let (host_rss, host_pss) = (mean(&rss), mean(&pss));
    println!(
        "
idle sessions: {} sessions running `sleep`, no viewers",
        plan.idle_sessions
    );
    println!("  runner  {runner_per_session:>8.1} KiB per session (RSS growth)");
    println!("  host    {host_pss:>8.1} KiB PSS each ({host_rss:.1} KiB RSS, its binary's pages shared)");
    Ok(json!({
        "sessions": plan.idle_sessions,
        "runner_kib_per_session": runner_per_session,
        "host_pss_kib": host_pss,
        "host_rss_kib": host_rss,
    }))
}

/// Idle runner connections from a simulator that speaks the runner protocol: HQ memory per runner.
pub(crate) async fn idle_runners(plan: &Plan) -> anyhow::Result<Value> {
    let stack = Stack::start(&[]).await?;
    let (before, _) = memory_kib(stack.hq_pid());
    let addr = stack.addr.clone();
    let mut connections = Vec::with_capacity(plan.idle_runners);
    let started = Instant::now();
    let batches: Vec<Vec<usize>> =
        (0..plan.idle_runners).collect::<Vec<_>>().chunks(200).map(<[usize]>::to_vec).collect();
    for batch in batches {
        let opened =
            futures_util::future::join_all(batch.into_iter().map(|i| simulated_runner(addr.clone(), i)))
                .await;
        for socket in opened {
            connections.push(socket?);
        }
    }
    let connect_time = started.elapsed();
    let online = stack
        .get("/api/runners")
        .await?
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["status"] == "online").count());
    let (after, _) = memory_kib(stack.hq_pid());
    let per_runner = (after.saturating_sub(before)) as f64 / plan.idle_runners as f64;
    println!(
        "\nidle runners: {} simulated connections ({} online) in {:.1} s; HQ RSS {:.1} → {:.1} MiB, {per_runner:.1} KiB per runner (target ≤ 20)",
        plan.idle_runners,
        online,
        connect_time.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    drop(connections);
    Ok(
        json!({"runners": plan.idle_runners, "online": online, "hq_rss_before_kib": before, "hq_rss_after_kib": after, "hq_kib_per_runner": per_runner}),
    )
}

/// One simulated runner: dials, says hello, waits for the welcome, then keeps the socket.
/// (The benchmark ends long before HQ's 15 s heartbeat timeout.)
async fn simulated_runner(addr: String, index: usize) -> anyhow::Result<stack::Socket> {
    let mut request = format!("ws://{addr}/api/v1/ws/register").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_str(&format!("Bearer {}", stack::RUNNER))?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let hello = Hello {
        id: uuid::Uuid::now_v7(),
        name: format!("sim-{index}"),
        labels: Default::default(),
        hostname: "sim".into(),
        os: "linux/x86_64".into(),
        version: "bench".into(),
        protocol_version: PROTOCOL_VERSION,
        presets: vec![],
        sessions: vec![],
        policy: Default::default(),
        ended: Vec::new(),
        repos: vec![],
        workspaces: false,
    };
    socket.send(Message::text(serde_json::to_string(&RunnerMessage::Hello(hello))?)).await?;
    match socket.next().await {
        Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str())? {
            HqMessage::Welcome(_) => Ok(socket),
            other => bail!("refused: {other:?}"),
        },
        other => bail!("no welcome: {other:?}"),
    }
}

/// A viewer that reads nothing while a session writes a lot: HQ's memory stays bounded.
pub(crate) async fn slow_viewer(plan: &Plan) -> anyhow::Result<Value> {
    let stack = Stack::start(&[]).await?;
    let (before, _) = memory_kib(stack.hq_pid());
    let command = format!("head -c {} /dev/zero | tr '\\0' x", plan.slow_bytes);
    let id = stack.start_session(&["sh", "-c", &command]).await?;
    let _stalled = stack.attach(&id).await?;
    let mut reader = stack.attach(&id).await?;
    let started = Instant::now();
    let bytes = stack::drain_to_exit(&mut reader).await?;
    let elapsed = started.elapsed();
    let (_, peak) = memory_kib(stack.hq_pid());
    println!(
        "\nslow viewer: {} MB written while one viewer read nothing; the other got {} bytes at {:.1} MB/s; HQ RSS {:.1} MiB at rest, peak {:.1} MiB",
        plan.slow_bytes / 1_000_000,
        bytes,
        bytes as f64 / elapsed.as_secs_f64() / 1e6,
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    Ok(json!({"bytes": bytes, "hq_rss_before_kib": before, "hq_peak_kib": peak}))
}

/// PostgreSQL and NATS for the cluster scenario: `AGENTRELAY_TEST_DATABASE_URL` /
/// `AGENTRELAY_TEST_NATS_URL`, else the defaults on 127.0.0.1. A database of its own is made
/// (and dropped by the returned guard).
struct ClusterDeps {
    admin_url: String,
    database: String,
    url: String,
    nats_url: String,
}

impl ClusterDeps {
    fn find() -> Option<Self> {
        let admin_url = std::env::var("AGENTRELAY_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let nats_url =
            std::env::var("AGENTRELAY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let database = format!("agentrelay_bench_{}", uuid::Uuid::now_v7().simple());
        let create = format!("CREATE DATABASE {database}");
        let admin = admin_url.clone();
        let created = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).ok()?;
            client.batch_execute(&create).ok()
        })
        .join()
        .ok()
        .flatten();
        created?;
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{database}");
        Some(Self { admin_url, database, url, nats_url })
    }

    /// Transactions committed in the scenario's database so far.
    fn commits(&self) -> i64 {
        let (admin, database) = (self.admin_url.clone(), self.database.clone());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).ok()?;
            let row = client
                .query_one("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", &[&database])
                .ok()?;
            Some(row.get::<_, i64>(0))
        })
        .join()
        .ok()
        .flatten()
        .unwrap_or(0)
    }
}

/// What PostgreSQL counts for one database, cumulatively.
#[derive(Clone, Copy, Default)]
struct PgLoad {
    commits: i64,
    rows_written: i64,
    rows_read: i64,
}

impl ClusterDeps {
    /// Transactions committed, rows inserted, updated or deleted, and rows read (fetched) in the
    /// scenario's database so far.
    fn load(&self) -> PgLoad {
        let (admin, database) = (self.admin_url.clone(), self.database.clone());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).ok()?;
            let row = client
                .query_one(
                    "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted, tup_fetched
                     FROM pg_stat_database WHERE datname = $1",
                    &[&database],
                )
                .ok()?;
            Some(PgLoad { commits: row.get(0), rows_written: row.get(1), rows_read: row.get(2) })
        })
        .join()
        .ok()
        .flatten()
        .unwrap_or_default()
    }
}

impl Drop for ClusterDeps {
    fn drop(&mut self) {
        let (admin, drop) =
            (self.admin_url.clone(), format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database));
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&admin, postgres::NoTls) {
                let _ = client.batch_execute(&drop);
            }
        })
        .join();
    }
}

/// A viewer on the stack's viewing replica, retried while it has not heard of the session yet.
async fn attach_when_known(stack: &Stack, id: &str) -> anyhow::Result<stack::Socket> {
    Ok(attach_when_known_timed(stack, id).await?.0)
}

/// The same, and how long after the call the viewing replica knew the session (the change feed's
/// delay, at most).
async fn attach_when_known_timed(stack: &Stack, id: &str) -> anyhow::Result<(stack::Socket, Duration)> {
    let started = Instant::now();
    // Long enough for a loaded cluster's feed; how long it took is what the run reports.
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(socket) = stack.attach(id).await {
            return Ok((socket, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let socket = stack.attach(id).await.with_context(|| format!("replica never knew session {id}"))?;
    Ok((socket, started.elapsed()))
}

/// Echo measurements take turns in this many rounds.
const ECHO_ROUNDS: usize = 20;

/// `samples` split into [`ECHO_ROUNDS`] rounds.
fn rounds(samples: usize) -> impl Iterator<Item = usize> {
    let per = samples.div_ceil(ECHO_ROUNDS).max(1);
    (0..samples).step_by(per).map(move |done| per.min(samples - done))
}

/// A session running the echo program with a viewer through `stack`: keystroke round trips
/// through HQ and the runner, sampled in rounds.
struct ViewerEcho {
    viewer: stack::Socket,
    sent: usize,
}

impl ViewerEcho {
    async fn start(stack: &Stack) -> anyhow::Result<Self> {
        let id = stack.start_session(&["sh", "-c", raw::ECHO_PROGRAM]).await?;
        let mut viewer = attach_when_known(stack, &id).await?;
        // Measuring starts once the terminal is raw and `cat` runs.
        let mut seen = Vec::new();
        while !seen.ends_with(raw::READY) {
            match tokio::time::timeout(Duration::from_secs(10), viewer.next()).await? {
                Some(Ok(Message::Binary(bytes))) => seen.extend_from_slice(&bytes),
                Some(Ok(_)) => continue,
                other => bail!("the echo program did not start: {other:?}"),
            }
        }
        Ok(Self { viewer, sent: 0 })
    }

    /// `samples` round trips of one keystroke, into `times`.
    async fn sample(&mut self, samples: usize, times: &mut Vec<Duration>) -> anyhow::Result<()> {
        for _ in 0..samples {
            let byte = [b'a' + (self.sent % 26) as u8];
            self.sent += 1;
            let start = Instant::now();
            self.viewer.send(Message::Binary(Bytes::copy_from_slice(&byte))).await?;
            loop {
                match tokio::time::timeout(Duration::from_secs(10), self.viewer.next()).await? {
                    Some(Ok(Message::Binary(bytes))) if bytes.as_ref() == byte => break,
                    Some(Ok(_)) => continue,
                    other => bail!("echo failed: {other:?}"),
                }
            }
            times.push(start.elapsed());
        }
        Ok(())
    }
}

/// Two replicas on PostgreSQL and NATS, the runner on one and the viewer on the other, beside a
/// single HQ in the same run: throughput and echo (issue 18's targets: ≥ 80 % of single-node
/// throughput; echo p50 within +300 µs and p99 within +1 ms of single-node), and PostgreSQL's
/// transactions per second while output streams.
pub(crate) async fn cluster(plan: &Plan) -> anyhow::Result<Value> {
    let Some(deps) = ClusterDeps::find() else {
        println!("\ncluster: skipped (no PostgreSQL to sign in to without a password, or no NATS)");
        return Ok(Value::Null);
    };
    let prefix = format!("bench{}", uuid::Uuid::now_v7().simple());
    let args = ["--database-url", deps.url.as_str(), "--nats-url", &deps.nats_url, "--nats-prefix", &prefix];
    let single = Stack::start(&[]).await?;
    let cluster = Stack::start_replicas(&args, 2).await?;
    let dir = tempfile::tempdir()?;
    let bytes = plan.throughput_bytes / 4;
    let file = stack::text_file(dir.path(), bytes)?;
    let file = file.to_str().context("temp path is not UTF-8")?.to_owned();
    let mut ratios = Vec::new();
    let mut rates = Vec::new();
    let mut commits_per_s = Vec::new();
    // Where a cluster run's time goes: known on B, first byte, last byte, exit.
    let mut phases = Vec::new();
    for _ in 0..plan.pairs {
        let started = Instant::now();
        let id = single.start_session(&["cat", &file]).await?;
        let single_bytes = stack::drain_to_exit(&mut single.attach(&id).await?).await?;
        let single_rate = single_bytes as f64 / started.elapsed().as_secs_f64();
        let commits = deps.commits();
        let started = Instant::now();
        let id = cluster.start_session(&["cat", &file]).await?;
        let (mut viewer, known) = attach_when_known_timed(&cluster, &id).await?;
        let drained = stack::drain_to_exit_timed(&mut viewer).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let cluster_bytes = drained.bytes;
        let since = |at: Option<Instant>| at.map_or(f64::NAN, |at| (at - started).as_secs_f64() * 1e3);
        phases.push(json!({
            "known_ms": known.as_secs_f64() * 1e3,
            "first_byte_ms": since(drained.first_byte),
            "last_byte_ms": since(drained.last_byte),
            "exit_ms": elapsed * 1e3,
        }));
        if cluster_bytes != single_bytes {
            bail!("the cluster relayed {cluster_bytes} bytes, the single HQ {single_bytes}");
        }
        commits_per_s.push((deps.commits() - commits) as f64 / elapsed);
        let cluster_rate = cluster_bytes as f64 / elapsed;
        ratios.push(cluster_rate / single_rate);
        rates.push(json!({"single_bytes_per_s": single_rate, "cluster_bytes_per_s": cluster_rate, "bytes": cluster_bytes}));
    }
    let ratio = median(&mut ratios);
    let commits = median(&mut commits_per_s);
    let samples = plan.echo_samples.min(2000);
    let (mut single_echo, mut cluster_echo) = (Vec::new(), Vec::new());
    let mut single_viewer = ViewerEcho::start(&single).await?;
    let mut cluster_viewer = ViewerEcho::start(&cluster).await?;
    for round in rounds(samples) {
        single_viewer.sample(round, &mut single_echo).await?;
        cluster_viewer.sample(round, &mut cluster_echo).await?;
    }
    single_echo.sort();
    cluster_echo.sort();
    println!("\ncluster: runner on replica A, viewer on replica B (PostgreSQL and NATS), beside a single HQ");
    for (i, (p, t)) in rates.iter().zip(&phases).enumerate() {
        let ms = |key: &str| t[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "  pair {i}: single {:>8.1} MB/s   cluster {:>8.1} MB/s   bytes {}   cluster ms: known {:.0}, first byte {:.0}, last byte {:.0}, exit {:.0}",
            p["single_bytes_per_s"].as_f64().unwrap_or(0.0) / 1e6,
            p["cluster_bytes_per_s"].as_f64().unwrap_or(0.0) / 1e6,
            p["bytes"],
            ms("known_ms"),
            ms("first_byte_ms"),
            ms("last_byte_ms"),
            ms("exit_ms"),
        );
    }
    println!(
        "  throughput: median {:.1} % of single-node (target ≥ 80 %), every byte delivered",
        ratio * 100.0
    );
    println!("  PostgreSQL while streaming: {commits:.0} transactions/s (group commit, not one per chunk)");
    let p = |list: &[Duration], q| micros(quantile(list, q));
    println!(
        "  echo ({samples} samples): single p50 {:.1} µs p99 {:.1} µs; cluster p50 {:.1} µs p99 {:.1} µs",
        p(&single_echo, 0.5),
        p(&single_echo, 0.99),
        p(&cluster_echo, 0.5),
        p(&cluster_echo, 0.99)
    );
    let over50 = p(&cluster_echo, 0.5) - p(&single_echo, 0.5);
    let over99 = p(&cluster_echo, 0.99) - p(&single_echo, 0.99);
    println!("  over single-node: p50 {over50:+.1} µs (target ≤ +300), p99 {over99:+.1} µs (target ≤ +1000)");
    drop(cluster);
    Ok(json!({
        "throughput": {"pairs": rates, "phases": phases, "median_ratio": ratio},
        "postgres_commits_per_s": commits,
        "echo": {
            "single": {"p50_us": p(&single_echo, 0.5), "p99_us": p(&single_echo, 0.99)},
            "cluster": {"p50_us": p(&cluster_echo, 0.5), "p99_us": p(&cluster_echo, 0.99)},
            "over_p50_us": over50, "over_p99_us": over99,
        },
    }))
}

/// Issue 18's cluster at scale: three replicas on PostgreSQL and NATS, `idle_runners` simulated
/// idle runners spread over them, and `scale_sessions` live sessions (a line every 100 ms each)
/// on a real runner on the first replica, each with a viewer on the third. Over a window: CPU and
/// memory per replica, PostgreSQL's load (transactions, rows written and read per second) and
/// NATS's (messages and bytes per second on the cluster's subjects).
pub(crate) async fn cluster_scale(plan: &Plan) -> anyhow::Result<Value> {
    let Some(deps) = ClusterDeps::find() else {
        println!("\ncluster at scale: skipped (no PostgreSQL to sign in to without a password, or no NATS)");
        return Ok(Value::Null);
    };
    let prefix = format!("bench{}", uuid::Uuid::now_v7().simple());
    // Simulated runners send no heartbeats: the replicas wait for them longer than the run.
    let args = [
        "--database-url",
        deps.url.as_str(),
        "--nats-url",
        &deps.nats_url,
        "--nats-prefix",
        &prefix,
        "--max-sessions-per-runner",
        "100000",
        "--heartbeat-timeout",
        "1h",
    ];
    let cluster = Stack::start_replicas(&args, 3).await?;
    let replicas = cluster.replica_addrs.len();
    let started = Instant::now();
    let mut connections = Vec::with_capacity(plan.idle_runners);
    let batches: Vec<Vec<usize>> =
        (0..plan.idle_runners).collect::<Vec<_>>().chunks(200).map(<[usize]>::to_vec).collect();
    for batch in batches {
        let opened = futures_util::future::join_all(
            batch.into_iter().map(|i| simulated_runner(cluster.replica_addrs[i % replicas].clone(), i)),
        )
        .await;
        for socket in opened {
            connections.push(socket?);
        }
    }
    let connect_time = started.elapsed();
    let me = std::env::current_exe()?;
    let me = me.to_str().context("path is not UTF-8")?.to_owned();
    let mut readers = Vec::with_capacity(plan.scale_sessions);
    let mut known_after = Vec::with_capacity(plan.scale_sessions);
    for _ in 0..plan.scale_sessions {
        let id = cluster.start_session(&[&me, "tick", "100"]).await?;
        let (mut viewer, after) = attach_when_known_timed(&cluster, &id).await?;
        known_after.push(after);
        readers.push(tokio::spawn(async move { while let Some(Ok(_)) = viewer.next().await {} }));
    }
    known_after.sort();
    // Everything published on the cluster's subjects, counted by a client of NATS's own.
    let nats = async_nats::connect(&deps.nats_url).await.context("connecting to NATS")?;
    let mut subjects = nats.subscribe(format!("{prefix}.>")).await.context("subscribing to NATS")?;
    let (messages, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let counter = {
        let (messages, bytes) = (messages.clone(), bytes.clone());
        tokio::spawn(async move {
            while let Some(message) = subjects.next().await {
                messages.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(message.payload.len() as u64, Ordering::Relaxed);
            }
        })
    };
    // Let every session reach its steady state, then measure a window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids = cluster.replica_pids();
    let cpu0: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let runner0 = cpu_ticks(cluster.runner_pid());
    let (pg0, messages0, bytes0) =
        (deps.load(), messages.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed));
    let window = Instant::now();
    tokio::time::sleep(plan.scale_window).await;
    let seconds = window.elapsed().as_secs_f64();
    let (pg1, messages1, bytes1) =
        (deps.load(), messages.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed));
    let hz = ticks_per_second();
    let percent = |ticks: u64| ticks as f64 / hz / seconds * 100.0;
    let per_second = |delta: i64| delta as f64 / seconds;
    let online: usize = cluster
        .get("/api/runners")
        .await?
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["status"] == "online").count());
    println!(
        "\ncluster at scale: {} idle runners over {replicas} replicas ({online} online, connected in {:.1} s), {} live sessions (a line every 100 ms) on replica 1 with their viewers on replica {replicas}",
        plan.idle_runners,
        connect_time.as_secs_f64(),
        plan.scale_sessions,
    );
    let known = |q| quantile(&known_after, q).as_secs_f64() * 1e3;
    println!(
        "  a new session known on the viewers' replica after: p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms (target: within a second)",
        known(0.5),
        known(0.99),
        known(1.0)
    );
    let mut per_replica = Vec::new();
    for (i, (pid, before)) in pids.iter().zip(&cpu0).enumerate() {
        let cpu = percent(cpu_ticks(*pid).saturating_sub(*before));
        let (rss, _) = memory_kib(*pid);
        println!("  replica {}  CPU {cpu:>6.1} % of one core   RSS {:>8.1} MiB", i + 1, rss as f64 / 1024.0);
        per_replica.push(json!({"cpu_percent": cpu, "rss_kib": rss}));
    }
    let runner_cpu = percent(cpu_ticks(cluster.runner_pid()).saturating_sub(runner0));
    let (runner_rss, _) = memory_kib(cluster.runner_pid());
    println!(
        "  runner     CPU {runner_cpu:>6.1} % of one core   RSS {:>8.1} MiB",
        runner_rss as f64 / 1024.0
    );
    let (commits, written, read) = (
        per_second(pg1.commits - pg0.commits),
        per_second(pg1.rows_written - pg0.rows_written),
        per_second(pg1.rows_read - pg0.rows_read),
    );
    println!(
        "  PostgreSQL {commits:>8.0} transactions/s   {written:>8.0} rows written/s   {read:>8.0} rows read/s"
    );
    let (nats_messages, nats_bytes) =
        (per_second((messages1 - messages0) as i64), per_second((bytes1 - bytes0) as i64));
    println!(
        "  NATS       {nats_messages:>8.0} messages/s        {:>8.1} kB/s on the cluster's subjects",
        nats_bytes / 1e3
    );
    counter.abort();
    for reader in readers {
        reader.abort();
    }
    drop(connections);
    drop(cluster);
    // The change feed's stream goes with the run.
    let _ = async_nats::jetstream::new(nats).delete_stream(format!("{prefix}_feed")).await;
    Ok(json!({
        "idle_runners": plan.idle_runners, "online": online, "sessions": plan.scale_sessions,
        "connect_seconds": connect_time.as_secs_f64(),
        "session_known_after_ms": {"p50": known(0.5), "p99": known(0.99), "max": known(1.0)},
        "replicas": per_replica,
        "runner": {"cpu_percent": runner_cpu, "rss_kib": runner_rss},
        "postgres": {"transactions_per_s": commits, "rows_written_per_s": written, "rows_read_per_s": read},
        "nats": {"messages_per_s": nats_messages, "bytes_per_s": nats_bytes},
    }))
}
