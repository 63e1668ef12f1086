//! Three HQ replicas behind nginx (Debian's package) as a real load balancer: the runner and the
//! viewers know only nginx's address; WebSocket upgrades and Server-Sent Events go through it,
//! and the replica holding the session's stream is killed (`kill -9`) mid-stream.

use std::process::Stdio;

use agentrelay_e2e::deps::{TestDatabase, TestNats};
use agentrelay_e2e::{Frame, HqClient, HqProcess, TIMEOUT, TestRunner, Viewer, read_events};
use agentrelay_protocol::RunnerStatus;
use agentrelay_protocol::viewer::ServerFrame;

/// nginx in front of `replicas`, on a free port, stopped on drop.
struct Nginx {
    addr: std::net::SocketAddr,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(replicas: &[&HqProcess]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // nginx's workers may run as another user: let them write their temp files here.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let d = dir.path().display();
        let servers: String =
            replicas.iter().map(|r| format!("server {} max_fails=1 fail_timeout=30s;\n", r.addr)).collect();
        let config = format!(
            "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream hq {{ {servers} }}
  server {{
    listen {addr};
    location / {{
      proxy_pass http://hq;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_buffering off;
      proxy_read_timeout 1d;
      proxy_connect_timeout 1s;
      proxy_next_upstream error timeout http_502;
    }}
  }}
}}
"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nginx");
        let child = tokio::process::Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx (install Debian's nginx: make test-deps)");
        let client = HqClient::new(addr);
        agentrelay_e2e::eventually("nginx to answer", || async {
            client.http.get(client.url("/healthz")).send().await.ok().filter(|r| r.status().is_success())
        })
        .await;
        Self { addr, child, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_nginx_survive_the_kill_of_the_one_holding_the_stream() {
    let database = TestDatabase::create();
    let nats = TestNats::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let name = format!("r{i}");
        let args = [
            "--database-url",
            &database.url,
            "--nats-url",
            &nats.url,
            "--nats-prefix",
            &nats.prefix,
            "--replica-name",
            &name,
        ];
        replicas.push(Some(HqProcess::spawn(dir.path(), None, &args).await));
    }
    let nginx = {
        let all: Vec<&HqProcess> = replicas.iter().flatten().collect();
        Nginx::start(&all).await
    };
    let hq = HqClient::new(nginx.addr);
    // The runner and every client know only nginx.
    let runner = TestRunner::spawn(&hq, "behind-nginx", &[]);
    hq.wait_for_runner("behind-nginx", RunnerStatus::Online).await;
    let mut events = hq.request(reqwest::Method::GET, "/api/events").send().await.unwrap();
    let lines = 20_000;
    let script = format!(
        "for i in $(seq 1 {lines}); do echo \"line $i\"; [ $((i % 1000)) = 0 ] && sleep 0.1; done; exit 9"
    );
    let session = hq.start_session(runner.id, &["sh", "-c", &script]).await;
    // Server-Sent Events through nginx: the session appears on the stream.
    read_events(&mut events, |seen| {
        seen.iter().any(|(name, data)| name == "session" && data["id"] == session.id.to_string())
    })
    .await;

    let mut viewer = hq.attach(session.id, Some(0)).await;
    viewer.read_until("line 2500\r\n").await.unwrap();
    // Kill the replica that holds the session's stream (its lease says which).
    let holder: String = {
        let url = database.url.clone();
        let id = session.id;
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client
                .query_one("SELECT replica FROM stream_leases WHERE session_id = $1", &[&id])
                .unwrap()
                .get(0)
        })
        .join()
        .unwrap()
    };
    let index: usize = holder.trim_start_matches('r').parse().unwrap();
    replicas[index].take().unwrap().kill().await;

    // The viewer may have been on that replica too: it resumes from its offset, as clients do.
    let mut output = Vec::new();
    let exit = loop {
        match tokio::time::timeout(TIMEOUT * 2, viewer.next_frame()).await.expect("output in time").unwrap() {
            Frame::Output(bytes) => viewer.output.extend_from_slice(&bytes),
            Frame::Control(ServerFrame::Exit(exit)) => break exit,
            Frame::Control(_) => {}
            Frame::Closed => {
                output.extend_from_slice(&viewer.output);
                let from = output.len() as u64;
                viewer = reattach(&hq, session.id, from).await;
            }
        }
    };
    output.extend_from_slice(&viewer.output);
    assert_eq!(exit.code, Some(9));
    let text = String::from_utf8_lossy(&output);
    let got: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let want: Vec<String> = (1..=lines).map(|i| format!("line {i}")).collect();
    assert!(got == want, "{} lines, not every line once in order", got.len());
    drop(runner);
}

/// A viewer again through nginx from `from`, retried while nginx still picks the dead replica.
async fn reattach(hq: &HqClient, session: uuid::Uuid, from: u64) -> Viewer {
    agentrelay_e2e::eventually("a viewer to reattach through nginx", || async {
        let path = format!("/api/v1/ws/session/{session}?from={from}");
        let socket = hq.ws(&path, Some(agentrelay_e2e::ADMIN_TOKEN), None).await.ok()?;
        Some(Viewer::new(socket).await)
    })
    .await
}
