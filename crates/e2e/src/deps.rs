//! The real PostgreSQL and NATS (JetStream on) that cluster tests run against.
//!
//! Each comes from `AGENTRELAY_TEST_DATABASE_URL` / `AGENTRELAY_TEST_NATS_URL` when set, else
//! from the default address (`127.0.0.1:5432` as `postgres`, `127.0.0.1:4222`) when something
//! answers there, else from a private instance this process starts from the installed binaries
//! (`initdb`/`postgres`, `nats-server -js`) on a free port, stopped when the last test using it
//! is done. Every test gets a database of its own (dropped afterwards) and a NATS prefix of its
//! own (its stream deleted afterwards), so tests run in parallel and leave nothing behind.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A database of one test's own; dropped with it.
pub struct TestDatabase {
    /// `postgres://…/<name>`.
    pub url: String,
    admin_url: String,
    name: String,
    _server: Option<Arc<Private>>,
}

/// A NATS prefix of one test's own; its JetStream stream is deleted with it.
pub struct TestNats {
    /// `nats://…`.
    pub url: String,
    /// The subject and stream prefix (`--nats-prefix`).
    pub prefix: String,
    _server: Option<Arc<Private>>,
}

/// A server this process started; killed when the last user lets go.
struct Private {
    child: Mutex<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Private {
    fn drop(&mut self) {
        let mut child = crate::lock_ignoring_poison(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn answers(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .ok()
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok())
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("its address").port()
}

fn wait_for(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(addr) {
        assert!(Instant::now() < deadline, "{what} did not start on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program from PATH or PostgreSQL's versioned directory.
fn pg_binary(name: &str) -> PathBuf {
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> =
            dirs.filter_map(|d| d.ok()).map(|d| d.path().join("bin").join(name)).collect();
        versions.sort();
        if let Some(found) = versions.into_iter().rev().find(|p| p.exists()) {
            return found;
        }
    }
    PathBuf::from(name)
}

static POSTGRES: Mutex<Weak<Private>> = Mutex::new(Weak::new());
static PRIVATE_PG_URL: Mutex<Option<String>> = Mutex::new(None);
static NATS: Mutex<Weak<Private>> = Mutex::new(Weak::new());
static PRIVATE_NATS_URL: Mutex<Option<String>> = Mutex::new(None);

/// Starts a private PostgreSQL (trust auth, user `postgres`) in a temp dir.
fn start_postgres() -> (String, Arc<Private>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // PostgreSQL refuses to run as root: as root, the server runs as `nobody`-like `postgres`.
    let as_postgres = |program: &Path| {
        let mut command = if nix_is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    };
    if nix_is_root() {
        let _ = Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status();
    }
    let status = as_postgres(&pg_binary("initdb"))
        .args(["-U", "postgres", "--auth=trust", "-D"])
        .arg(&data)
        .status()
        .expect("initdb (install Debian's postgresql: make test-deps)");
    assert!(status.success(), "initdb failed");
    let port = free_port();
    let child = as_postgres(&pg_binary("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
        .arg(dir.path())
        .spawn()
        .expect("postgres");
    let addr = format!("127.0.0.1:{port}");
    wait_for(&addr, "PostgreSQL");
    (
        format!("postgres://postgres@{addr}/postgres"),
        Arc::new(Private { child: Mutex::new(child), _dir: dir }),
    )
}

fn nix_is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false)
}

/// The server to make test databases on, and the private instance behind it, if any.
fn postgres_admin() -> (String, Option<Arc<Private>>) {
    if let Ok(url) = std::env::var("AGENTRELAY_TEST_DATABASE_URL") {
        return (url, None);
    }
    let default = "postgres://postgres@127.0.0.1:5432/postgres";
    // Something answers there, and lets `postgres` in without a password (else: our own).
    if answers("127.0.0.1:5432") && admin_sql(default, "SELECT 1".to_owned()).is_ok() {
        return (default.to_owned(), None);
    }
    let mut shared = crate::lock_ignoring_poison(&POSTGRES);
    if let (Some(server), Some(url)) =
        (shared.upgrade(), crate::lock_ignoring_poison(&PRIVATE_PG_URL).clone())
    {
        return (url, Some(server));
    }
    let (url, server) = start_postgres();
    *shared = Arc::downgrade(&server);
    *crate::lock_ignoring_poison(&PRIVATE_PG_URL) = Some(url.clone());
    (url, Some(server))
}

/// Runs `sql` on the server behind `admin_url`, on a thread of its own (tests run inside a
/// runtime, and the blocking client runs one of its own).
fn admin_sql(admin_url: &str, sql: String) -> anyhow::Result<()> {
    let admin_url = admin_url.to_owned();
    std::thread::spawn(move || -> anyhow::Result<()> {
        let mut client = postgres::Client::connect(&admin_url, postgres::NoTls)?;
        client.batch_execute(&sql)?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the admin thread panicked"))?
}

impl TestDatabase {
    /// A fresh, empty database.
    pub fn create() -> Self {
        let (admin_url, server) = postgres_admin();
        let name = format!("agentrelay_test_{}", uuid::Uuid::now_v7().simple());
        admin_sql(&admin_url, format!("CREATE DATABASE {name}")).expect("CREATE DATABASE");
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Self { url, admin_url: admin_url.clone(), name, _server: server }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = admin_sql(&self.admin_url, sql) {
            eprintln!("could not drop test database {}: {error:#}", self.name);
        }
    }
}

impl TestNats {
    /// A NATS server with JetStream, and a prefix nobody else uses.
    pub fn start() -> Self {
        let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
        if let Ok(url) = std::env::var("AGENTRELAY_TEST_NATS_URL") {
            return Self { url, prefix, _server: None };
        }
        if answers("127.0.0.1:4222") {
            return Self { url: "nats://127.0.0.1:4222".to_owned(), prefix, _server: None };
        }
        let mut shared = crate::lock_ignoring_poison(&NATS);
        if let (Some(server), Some(url)) =
            (shared.upgrade(), crate::lock_ignoring_poison(&PRIVATE_NATS_URL).clone())
        {
            return Self { url, prefix, _server: Some(server) };
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (install Debian's nats-server: make test-deps)");
        let addr = format!("127.0.0.1:{port}");
        wait_for(&addr, "nats-server");
        let server = Arc::new(Private { child: Mutex::new(child), _dir: dir });
        *shared = Arc::downgrade(&server);
        let url = format!("nats://{addr}");
        *crate::lock_ignoring_poison(&PRIVATE_NATS_URL) = Some(url.clone());
        Self { url, prefix, _server: Some(server) }
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        // Its own runtime on its own thread: Drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let client = async_nats::connect(&url).await.ok()?;
                let jetstream = async_nats::jetstream::new(client);
                let _ = jetstream.delete_stream(format!("{prefix}_feed")).await;
                Some(())
            })
        })
        .join();
    }
}
