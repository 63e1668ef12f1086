//! Several HQ replicas on one PostgreSQL and one NATS (issue 18): any replica answers, no
//! output lives only on one replica, and a replica killed mid-stream costs no byte.

use std::time::Duration;

use agentrelay_e2e::deps::{TestDatabase, TestNats};
use agentrelay_e2e::{HqProcess, RUNNER_TOKEN, TIMEOUT, TcpProxy, TestRunner, Viewer, eventually};
use agentrelay_protocol::{RunnerStatus, SessionStatus};

/// The flags that make a replica of the cluster on `database` and `nats`.
fn replica_args<'a>(database: &'a str, nats: &'a TestNats, name: &'a str) -> Vec<&'a str> {
    vec![
        "--database-url",
        database,
        "--nats-url",
        &nats.url,
        "--nats-prefix",
        &nats.prefix,
        "--replica-name",
        name,
    ]
}

/// `line 1` … `line N`, each exactly once and in order, then nothing but the prompt-less end.
/// What two replicas stand on: their data dirs, their NATS prefix and their database.
type Backing = ([tempfile::TempDir; 2], TestNats, TestDatabase);

/// Replicas A and B on a database and a NATS prefix of their own. Bind the backing first, so it
/// is dropped after them.
async fn two_replicas() -> (Backing, HqProcess, HqProcess) {
    let database = TestDatabase::create();
    let nats = TestNats::start();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = HqProcess::spawn(dirs[0].path(), None, &replica_args(&database.url, &nats, "a")).await;
    let b = HqProcess::spawn(dirs[1].path(), None, &replica_args(&database.url, &nats, "b")).await;
    ((dirs, nats, database), a, b)
}

fn assert_every_line_once(text: &str, lines: usize) {
    let got: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()).collect();
    let want: Vec<String> = (1..=lines).map(|i| format!("line {i}")).collect();
    if got != want {
        let first_bad = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
        panic!(
            "{} lines instead of {lines}; first difference at line {}: got {:?}, want {:?}",
            got.len(),
            first_bad + 1,
            got.get(first_bad),
            want.get(first_bad)
        );
    }
}

/// The viewer reads to the exit of a `counting` session within `limit`: exit code 7, every line
/// once.
async fn assert_exits_with_every_line(viewer: &mut Viewer, limit: Duration, lines: usize) {
    let exit = tokio::time::timeout(limit, viewer.read_to_exit()).await.expect("exit in time").unwrap();
    assert_eq!(exit.code, Some(7));
    assert_every_line_once(&viewer.text(), lines);
}

/// A fresh viewer on `hq` replays the ended session from its start: every line once.
async fn assert_replays_every_line(hq: &HqProcess, session: uuid::Uuid, lines: usize) {
    let mut replay = hq.attach(session, Some(0)).await;
    replay.read_to_exit().await.unwrap();
    assert_every_line_once(&replay.text(), lines);
}

/// Prints `lines` numbered lines in bursts of 1,000 (so a replica dies with output it has not
/// stored yet), then exits 7.
fn counting(lines: usize) -> String {
    format!(
        "for i in $(seq 1 {lines}); do echo \"line $i\"; [ $((i % 1000)) = 0 ] && sleep 0.1; done; exit 7"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_runners_replica_mid_stream_loses_and_repeats_no_byte() {
    let (_backing, a, b) = two_replicas().await;
    // The runner knows both, and reaches A first.
    let (url_a, url_b) = (a.url(""), b.url(""));
    // A small buffer: only what HQ acknowledged as stored may leave it.
    let runner =
        TestRunner::spawn(&a, "ha-runner", &["--hq", &url_a, "--hq", &url_b, "--buffer-size", "64KiB"]);
    a.wait_for_runner("ha-runner", RunnerStatus::Online).await;
    // B hears of it through the change feed, and starts a session on it through A.
    b.wait_for_runner("ha-runner", RunnerStatus::Online).await;
    let lines = 20_000;
    let session = b.start_session(runner.id, &["sh", "-c", &counting(lines)]).await;
    let mut viewer = b.attach(session.id, Some(0)).await;
    viewer.read_until("line 2500\r\n").await.unwrap();
    a.kill().await;
    // The runner redials B, which takes the session's output over from what is stored: the
    // viewer on B sees every line once, and the exit.
    assert_exits_with_every_line(&mut viewer, TIMEOUT * 2, lines).await;
    // The whole output is stored: a fresh viewer on B replays it from PostgreSQL.
    let ended = b.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!(ended.exit_code, Some(7));
    assert_replays_every_line(&b, session.id, lines).await;
    // So does its log, from PostgreSQL.
    let log =
        b.request(reqwest::Method::GET, &format!("/api/sessions/{}/log", session.id)).send().await.unwrap();
    assert_eq!(log.status(), 200);
    assert_every_line_once(&log.text().await.unwrap(), lines);
    drop(runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_closes_its_viewers_on_another() {
    let (_backing, a, b) = two_replicas().await;
    let runner = TestRunner::start(&a, "ha-tokens").await;
    let session = a.start_session(runner.id, &["sh", "-c", "echo ready; sleep 60"]).await;
    b.wait_for_session(session.id, SessionStatus::Running).await;
    // A token made on A works on B at once.
    let token = a.create_token("watcher", "admin").await;
    let socket = eventually("B to know the new token", || async {
        b.ws(&format!("/api/v1/ws/session/{}", session.id), Some(&token), None).await.ok()
    })
    .await;
    let mut viewer = agentrelay_e2e::Viewer::new(socket).await;
    viewer.read_until("ready").await.unwrap();
    let tokens = a.get_json("/api/tokens").await;
    let id = tokens.as_array().unwrap().iter().find(|t| t["name"] == "watcher").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = std::time::Instant::now();
    let status =
        a.request(reqwest::Method::DELETE, &format!("/api/tokens/{id}")).send().await.unwrap().status();
    assert_eq!(status, 204);
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let agentrelay_e2e::Frame::Closed = viewer.next_frame().await.unwrap() {
                return viewer.close_code;
            }
        }
    })
    .await
    .expect("the viewer on B is closed within 2 s of the revocation on A");
    assert_eq!(closed, Some(1008));
    assert!(revoked.elapsed() < Duration::from_secs(2));
    drop(runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_the_dependency_that_is_down() {
    let database = TestDatabase::create();
    let nats = TestNats::start();
    // PostgreSQL and NATS each behind a proxy that can cut them off.
    let pg_addr = database.url.split('@').nth(1).unwrap().split('/').next().unwrap().parse().unwrap();
    let pg_proxy = TcpProxy::start(pg_addr).await;
    let nats_addr = nats.url.trim_start_matches("nats://").parse().unwrap();
    let nats_proxy = TcpProxy::start(nats_addr).await;
    let via_proxy =
        database.url.replacen(&pg_addr.to_string(), pg_proxy.url().trim_start_matches("http://"), 1);
    let nats_url = format!("nats://{}", nats_proxy.url().trim_start_matches("http://"));
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--database-url",
        &via_proxy,
        "--nats-url",
        &nats_url,
        "--nats-prefix",
        &nats.prefix,
        "--replica-name",
        "r",
    ];
    let hq = HqProcess::spawn(dir.path(), None, &args).await;
    let ready = || async {
        let response = hq.http_get("/readyz").await;
        (response.0, response.1["reason"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(ready().await.0, 200);
    let version = hq.get_json("/api/version").await;
    assert_eq!(version["replica"], "r");

    nats_proxy.refuse(true);
    nats_proxy.cut();
    let reason = eventually("readyz to say NATS is down", || async {
        let (status, reason) = ready().await;
        (status == 503).then_some(reason)
    })
    .await;
    assert!(reason.contains("NATS"), "{reason}");
    nats_proxy.refuse(false);
    eventually("readyz to recover", || async { (ready().await.0 == 200).then_some(()) }).await;

    pg_proxy.refuse(true);
    pg_proxy.cut();
    let reason = eventually("readyz to say PostgreSQL is down", || async {
        let (status, reason) = ready().await;
        (status == 503).then_some(reason)
    })
    .await;
    assert!(reason.contains("PostgreSQL"), "{reason}");
    pg_proxy.refuse(false);
    eventually("readyz to recover", || async { (ready().await.0 == 200).then_some(()) }).await;
}

#[tokio::test]
async fn nats_without_a_database_is_a_startup_error() {
    let output = tokio::process::Command::new(agentrelay_e2e::binary("agentrelay-hq"))
        .args(["--nats-url", "nats://127.0.0.1:4222", "--listen", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--nats-url needs --database-url"), "{stderr}");
}

/// What lets a replica die with output it has not stored: the runner keeps output until HQ
/// acknowledges it as stored, not merely until it is sent. Against a stand-in HQ that never
/// acknowledges: the runner stops at its buffer (the process waits), and after a reconnect it
/// still holds everything from the last acknowledged offset on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_keeps_output_until_hq_acknowledges_it_stored() {
    use agentrelay_e2e::{HqClient, RogueHq};
    use agentrelay_protocol::TermSize;
    use agentrelay_protocol::runner::{Ack, DataDown, Resume, StartSession};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let rogue = RogueHq::start().await;
    let buffer = 64 * 1024;
    let _runner = TestRunner::spawn(
        &HqClient::new(rogue.addr()),
        "acks",
        &["--allow", "sh,head,tr,sleep", "--buffer-size", "64KiB"],
    );
    let (mut control, _) = rogue.accept_runner().await;
    let id = uuid::Uuid::now_v7();
    let start = StartSession {
        session_id: id,
        command: ["sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; sleep 60"].map(str::to_owned).to_vec(),
        cwd: None,
        env: Default::default(),
        size: TermSize::DEFAULT,
        preset: None,
        prompt: None,
        workspace: false,
    };
    let (mut data, open) = rogue.start_data(&mut control, start).await;
    assert!(open.acks, "a runner of this version asks for acks");
    let send = |frame: DataDown| Message::text(serde_json::to_string(&frame).unwrap());
    data.send(send(DataDown::Resume(Resume { from: 0, acks: true }))).await.unwrap();
    // Read until the runner stops sending: without acks it holds at its buffer.
    let mut received = 0usize;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_millis(500), data.next()).await {
        if let Message::Binary(bytes) = frame {
            received += bytes.len();
        }
    }
    assert!(received <= buffer + 64 * 1024, "the runner sent {received} bytes without an ack");
    let acked = 10_000u64;
    data.send(send(DataDown::Ack(Ack { offset: acked }))).await.unwrap();
    drop(data);
    // The runner dials again: it still holds output from the acknowledged offset on.
    let (mut data, open) = rogue.accept_data(id).await;
    assert!(
        open.start <= acked,
        "the runner let go of unacknowledged output: it holds [{}, {})",
        open.start,
        open.end
    );
    data.send(send(DataDown::Resume(Resume { from: acked, acks: true }))).await.unwrap();
    let first = tokio::time::timeout(TIMEOUT, data.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, Message::Binary(_)), "output resumes at once, no gap: {first:?}");
}

/// A PostgreSQL outage mid-stream (and NATS's at the same time) loses no output: the replica
/// stops storing, its ring and the runner's hold the output (the runner's process waits), and
/// everything is stored and shown once they are back; `/readyz` says what is down meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_postgres_and_nats_mid_stream_loses_no_output() {
    let database = TestDatabase::create();
    let nats = TestNats::start();
    let pg_addr = database.url.split('@').nth(1).unwrap().split('/').next().unwrap().parse().unwrap();
    let pg_proxy = TcpProxy::start(pg_addr).await;
    let nats_proxy = TcpProxy::start(nats.url.trim_start_matches("nats://").parse().unwrap()).await;
    let database_url =
        database.url.replacen(&pg_addr.to_string(), pg_proxy.url().trim_start_matches("http://"), 1);
    let nats_url = format!("nats://{}", nats_proxy.url().trim_start_matches("http://"));
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--database-url",
        &database_url,
        "--nats-url",
        &nats_url,
        "--nats-prefix",
        &nats.prefix,
        "--ring-size",
        "64KiB",
    ];
    let hq = HqProcess::spawn(dir.path(), None, &args).await;
    let runner = TestRunner::start_with(&hq, "outage", &["--buffer-size", "64KiB"]).await;
    let lines = 20_000;
    let session = hq.start_session(runner.id, &["sh", "-c", &counting(lines)]).await;
    let mut viewer = hq.attach(session.id, Some(0)).await;
    viewer.read_until("line 1500\r\n").await.unwrap();
    for proxy in [&pg_proxy, &nats_proxy] {
        proxy.refuse(true);
        proxy.cut();
    }
    eventually("readyz to say what is down", || async {
        (hq.http_get("/readyz").await.0 == 503).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for proxy in [&pg_proxy, &nats_proxy] {
        proxy.refuse(false);
    }
    assert_exits_with_every_line(&mut viewer, TIMEOUT * 3, lines).await;
    assert_replays_every_line(&hq, session.id, lines).await;
    drop(runner);
}

/// A single HQ's state moves into PostgreSQL with `admin migrate`, and a replica started on it
/// serves its sessions, their output and its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_migrate_moves_a_single_hq_into_postgres() {
    let data = tempfile::tempdir().unwrap();
    let single = HqProcess::spawn(data.path(), None, &[]).await;
    let runner = TestRunner::start(&single, "moved").await;
    let session = single.start_session(runner.id, &["sh", "-c", "echo kept-output; exit 4"]).await;
    single.wait_for_session(session.id, SessionStatus::Exited).await;
    let token = single.create_token("kept-token", "admin").await;
    drop(runner);
    assert!(single.terminate().await.success());

    let database = TestDatabase::create();
    let migrate = tokio::process::Command::new(agentrelay_e2e::binary("agentrelay-hq"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["admin", "migrate", "--to", &database.url])
        .output()
        .await
        .unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("1 sessions"));

    let nats = TestNats::start();
    let dir = tempfile::tempdir().unwrap();
    let replica = HqProcess::spawn(dir.path(), None, &replica_args(&database.url, &nats, "after")).await;
    let moved = replica.session(session.id).await;
    assert_eq!((moved.status, moved.exit_code), (SessionStatus::Exited, Some(4)));
    let mut replay = replica.attach(session.id, Some(0)).await;
    replay.read_to_exit().await.unwrap();
    assert!(replay.text().contains("kept-output"), "{}", replay.text());
    let me = replica.http.get(replica.url("/api/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200, "the token made before the move still works");
    // Copying twice into the same database is refused.
    let again = tokio::process::Command::new(agentrelay_e2e::binary("agentrelay-hq"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["admin", "migrate", "--to", &database.url])
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
}

/// A replica that loses a session's stream while its runner is still connected to it (another
/// replica took the lease: here a data connection for the session opened on B) closes that
/// connection. The runner redials, the lease comes back with it, and it resends what was not
/// stored. A fenced replica that kept the connection would store and acknowledge nothing more, so
/// the session's exit, which waits for its output to be stored, would never be recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_the_stream_closes_the_runners_connection_and_the_runner_follows() {
    use agentrelay_protocol::runner::{DataDown, DataUp, OpenData};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (_backing, a, b) = two_replicas().await;
    let runner = TestRunner::spawn(&a, "loyal", &["--hq", &a.url(""), "--buffer-size", "64KiB"]);
    b.wait_for_runner("loyal", RunnerStatus::Online).await;
    let lines = 1500;
    let script = format!("for i in $(seq 1 {lines}); do echo \"line $i\"; sleep 0.001; done; exit 7");
    let session = a.start_session(runner.id, &["sh", "-c", &script]).await;
    let mut viewer = a.attach(session.id, Some(0)).await;
    viewer.read_until("line 100\r\n").await.unwrap();

    // B takes the stream's lease for a data connection of its own.
    let mut usurper =
        b.ws(&format!("/api/v1/ws/runner/session/{}", session.id), Some(RUNNER_TOKEN), None).await.unwrap();
    let open =
        DataUp::Open(OpenData { runner_id: runner.id, session_id: session.id, start: 0, end: 0, acks: true });
    usurper.send(Message::text(serde_json::to_string(&open).unwrap())).await.unwrap();
    loop {
        match tokio::time::timeout(TIMEOUT, usurper.next()).await.expect("resume in time") {
            Some(Ok(Message::Text(text))) => {
                if let Ok(DataDown::Resume(_)) = serde_json::from_str(text.as_str()) {
                    break;
                }
            }
            other => panic!("expected resume, got {other:?}"),
        }
    }

    assert_exits_with_every_line(&mut viewer, TIMEOUT * 2, lines).await;
    let ended = a.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_eq!(ended.exit_code, Some(7));
    assert_replays_every_line(&b, session.id, lines).await;
    drop(runner);
}

/// A network partition mid-stream: the replica holding the stream (A) is cut off from the runner
/// and from PostgreSQL at once, silently (its sockets stay open, nothing moves). The runner moves
/// to B within seconds, B takes the stream's lease and resumes from what is stored, and the
/// viewer on B sees every line once and the exit. Two things make that work: the runner's data
/// connections redial when its control connection goes quiet (they may be silent, or stuck on a
/// full socket, themselves), and PostgreSQL ends A's transaction left open mid-write, whose
/// share lock on the lease would hold B's takeover back. When A is reachable again, what it had
/// received but not stored goes nowhere: the stored output has no byte twice, and A serves the
/// whole output as B stored it. (That a stale holder's append is refused is tested on its own in
/// `ha_lease.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_replica_is_fenced_and_the_runner_carries_on_through_another() {
    let database = TestDatabase::create();
    let nats = TestNats::start();
    let pg_addr = database.url.split('@').nth(1).unwrap().split('/').next().unwrap().parse().unwrap();
    let pg_proxy = TcpProxy::start(pg_addr).await;
    let a_database =
        database.url.replacen(&pg_addr.to_string(), pg_proxy.url().trim_start_matches("http://"), 1);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let beats = ["--heartbeat-interval", "200ms", "--heartbeat-timeout", "1s"];
    let mut args_a = replica_args(&a_database, &nats, "a");
    args_a.extend(beats);
    let mut args_b = replica_args(&database.url, &nats, "b");
    args_b.extend(beats);
    let a = HqProcess::spawn(dir_a.path(), None, &args_a).await;
    let b = HqProcess::spawn(dir_b.path(), None, &args_b).await;
    let to_a = TcpProxy::start(a.addr).await;
    let runner = TestRunner::spawn(
        &a,
        "partitioned",
        &["--hq", &to_a.url(), "--hq", &b.url(""), "--buffer-size", "64KiB"],
    );
    b.wait_for_runner("partitioned", RunnerStatus::Online).await;
    let lines = 20_000;
    let session = b.start_session(runner.id, &["sh", "-c", &counting(lines)]).await;
    let mut viewer = b.attach(session.id, Some(0)).await;
    viewer.read_until("line 2500\r\n").await.unwrap();

    for proxy in [&pg_proxy, &to_a] {
        proxy.refuse(true);
        proxy.freeze();
    }
    assert_exits_with_every_line(&mut viewer, TIMEOUT * 2, lines).await;

    // A is back: its frozen connections drop and it dials PostgreSQL again.
    for proxy in [&pg_proxy, &to_a] {
        proxy.refuse(false);
        proxy.cut();
    }
    let pg = agentrelay_hq::cluster::pg::Pg::new(&database.url).unwrap();
    let client = pg.get().await.unwrap();
    let holder: String = client
        .query_one("SELECT replica FROM stream_leases WHERE session_id = $1", &[&session.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(holder, "b");
    a.wait_for_session(session.id, SessionStatus::Exited).await;
    assert_replays_every_line(&a, session.id, lines).await;
    let overlapping: i64 = client
        .query_one(
            "SELECT count(*) FROM output_chunks x JOIN output_chunks y ON x.session_id = y.session_id
               AND x.start_offset < y.start_offset AND y.start_offset < x.end_offset
             WHERE x.session_id = $1",
            &[&session.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(overlapping, 0, "two holders both appended");
    drop(runner);
}
