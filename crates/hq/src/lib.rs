//! AgentRelay HQ: the control plane. Runners dial in (`ws::runner_control`, `ws::runner_data`),
//! the REST API starts and lists sessions (`api`), viewers attach to live terminals
//! (`ws::viewer`), and each session (`session`) joins a viewer's keystrokes to its runner.
//!
//! `main.rs` only parses flags and waits for a signal; everything here is testable through
//! [`Hq::bind`] and [`Hq::serve`].

pub mod api;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod bus;
pub mod cli_login;
pub mod client_ip;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod metrics;
pub mod migrate;
pub mod oidc;
pub mod registry;
pub mod retention;
pub mod session;
pub mod state;
pub mod store;
pub mod tokens;
pub mod users;
pub mod webhook;
pub mod workspace;
pub mod ws;

/// Locks a mutex of plain data. A poisoned lock means a panic mid-update; the data itself is
/// still usable, and HQ must not fall over because one task did.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

use std::net::SocketAddr;

use agentrelay_protocol::Scope;
use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::HqConfig;

/// Name of the admin token HQ creates on first start (and `admin reset-token` replaces).
pub const BOOTSTRAP_ADMIN: &str = "bootstrap-admin";
use state::{AppState, Shared};

/// A bound, not yet serving, HQ.
pub struct Hq {
    listener: std::net::TcpListener,
    /// `--metrics-listen`: `/metrics` without auth, for a scraper on a private network.
    metrics_listener: Option<std::net::TcpListener>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    state: AppState,
}

impl Hq {
    /// Checks the configuration and binds the listening socket.
    pub async fn bind(config: HqConfig) -> anyhow::Result<Self> {
        config.check()?;
        let admin_token = config.admin_token.clone().filter(|t| !t.is_empty());
        let runner_token = config.resolved_runner_token();
        // PostgreSQL (and with NATS, a cluster of replicas), or SQLite in the data dir.
        let (store, cluster): (Box<dyn store::Store>, _) = match &config.database_url {
            Some(url) => {
                let url = url.clone();
                let store = tokio::task::spawn_blocking(move || store::postgres::PgStore::open(&url))
                    .await
                    .context("opening PostgreSQL")??;
                let cluster = cluster::Cluster::connect(&config).await?;
                cluster.load_ends().await.context("cannot read where stored output ends")?;
                tracing::info!(replica = %cluster.replica, nats = config.nats_url.is_some(), "HQ state in PostgreSQL");
                (Box::new(store), Some(cluster))
            }
            None => (Box::new(store::SqliteStore::open(&config.data_dir)?), None),
        };
        let (store, snapshot) = tokio::task::spawn_blocking(move || {
            let mut store = store;
            let snapshot = store.load();
            (store, snapshot)
        })
        .await
        .context("reading HQ's database")?;
        let snapshot = snapshot.context("cannot read HQ's database")?;
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on --metrics-listen {addr}"))?,
            ),
            None => None,
        };
        metrics::install();
        let tls = load_tls(&config).await?;
        let store = store::start_writer(store)?;
        let tokens = tokens::Tokens::load(store.clone()).await.context("cannot read tokens")?;
        let users = users::Users::load(store.clone()).await.context("cannot read users")?;
        let oidc = oidc::Oidc::from_config(&config)?;
        if admin_token.is_none() {
            create_bootstrap_admin(&tokens).await?;
        }
        if runner_token.is_none() {
            tracing::info!("no --runner-token: runners need a runner token made with POST /api/tokens");
        }
        if let Some(cluster) = &cluster {
            // Other replicas reread tokens when one is made or revoked here.
            let feed = cluster.feed_sender();
            tokens.on_change(move || {
                let _ = feed.send(cluster::feed::FeedMessage::Tokens);
            });
        }
        let events = match &cluster {
            Some(cluster) => events::EventBus::clustered(store.clone(), cluster.feed_sender()),
            None => events::EventBus::new(Some(store.clone())),
        };
        let state = AppState::new(Shared {
            login_limiter: auth::LoginLimiter::new(config.login_attempts),
            config,
            admin_token,
            runner_token,
            tokens,
            users,
            oidc,
            cli_logins: Default::default(),
            store,
            registry: registry::Registry::new(events.clone()),
            sessions: Default::default(),
            logins: Default::default(),
            events,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            cluster,
            counters: Default::default(),
        });
        session::start::restore(&state, snapshot);
        let saved = state.store.call(|store| store.logins()).await.context("cannot read sign-ins")?;
        state.logins.restore(saved, &state);
        Ok(Self { listener, metrics_listener, tls, state })
    }

    /// The address of the `--metrics-listen` socket, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address HQ listens on (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("listener has no local address")
    }

    /// Serves until `shutdown` is cancelled, then closes every connection and waits for tasks.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state.clone();
        if let Some(cluster) = &state.cluster {
            cluster.start(&state);
        }
        state.tasks.spawn(refresh_tokens(state.clone()));
        state.tasks.spawn(retention::run(state.clone()));
        if let Some(url) = state.config.webhook_url.clone() {
            state.tasks.spawn(webhook::run(url, state.clone()));
        }
        if let Some(listener) = self.metrics_listener {
            listener.set_nonblocking(true).context("metrics listener")?;
            let listener = tokio::net::TcpListener::from_std(listener).context("metrics listener")?;
            let app = axum::Router::new()
                .route("/metrics", axum::routing::get(metrics::serve))
                .with_state(state.clone());
            let stop = state.shutdown.clone();
            state.tasks.spawn(async move {
                let served = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
                if let Err(error) = served {
                    tracing::error!(error = %error, "metrics listener failed");
                }
            });
        }
        let app = api::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        let forward = state.shutdown.clone();
        let watcher = tokio::spawn(async move {
            shutdown.cancelled().await;
            // Socket tasks watch this token and close their WebSockets, so the server drains.
            forward.cancel();
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        let header_timeout = Some(state.config.header_timeout);
        let served = match self.tls {
            // TCP_NODELAY on every accepted socket: a keystroke's echo must not wait for Nagle.
            Some(tls) => {
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                    .acceptor(axum_server::accept::NoDelayAcceptor::new());
                let mut server = axum_server::from_tcp(self.listener)?.acceptor(acceptor).handle(handle);
                server.http_builder().http1().header_read_timeout(header_timeout);
                server.serve(app).await
            }
            None => {
                let mut server = axum_server::from_tcp(self.listener)?
                    .acceptor(axum_server::accept::NoDelayAcceptor::new())
                    .handle(handle);
                server.http_builder().http1().header_read_timeout(header_timeout);
                server.serve(app).await
            }
        };
        watcher.abort();
        served.context("HTTP server failed")?;
        // Output logs drain what they hold, then the database catches up.
        state.tasks.close();
        state.tasks.wait().await;
        state.events.flush().await;
        if let Some(cluster) = &state.cluster {
            cluster.close().await;
        }
        if let Err(error) = state.store.call(|store| store.checkpoint()).await {
            tracing::warn!(error = format!("{error:#}"), "the database keeps recent changes in hq.db-wal");
        }
        Ok(())
    }
}

/// The certificate and key of `--tls-cert`/`--tls-key`, when both are given.
async fn load_tls(config: &HqConfig) -> anyhow::Result<Option<axum_server::tls_rustls::RustlsConfig>> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else { return Ok(None) };
    // rustls leaves the choice of crypto provider to the program; ours is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let loaded =
        axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.with_context(|| {
            format!("cannot load the TLS certificate {} and key {}", cert.display(), key.display())
        })?;
    Ok(Some(loaded))
}

/// Without `--admin-token`, an HQ with no admin token makes one and prints it: there is no other
/// way to get the first one.
async fn create_bootstrap_admin(tokens: &tokens::Tokens) -> anyhow::Result<()> {
    if tokens.has_admin() {
        return Ok(());
    }
    let created = tokens
        .create(tokens::NewToken {
            name: BOOTSTRAP_ADMIN.to_owned(),
            scope: Scope::Admin,
            expires_in: None,
            session_id: None,
            user_id: store::BUILTIN_ADMIN,
            shared: false,
        })
        .await?;
    // The one time a secret is printed.
    eprintln!(
        "agentrelay-hq: created the first admin token (shown once; keep it safe):\n  {}",
        created.token
    );
    Ok(())
}

/// Rereads tokens now and then, so a token reset on the HQ host takes effect in a live HQ.
async fn refresh_tokens(state: AppState) {
    // Loading just read them: the first reread is one period away.
    let first = tokio::time::Instant::now() + tokens::REFRESH_EVERY;
    let mut every = tokio::time::interval_at(first, tokens::REFRESH_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(error) = state.tokens.refresh().await {
                    tracing::warn!(error = format!("{error:#}"), "cannot reread tokens");
                }
            }
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// Revokes the bootstrap admin token(s) in `data_dir` and returns a new one, for
/// `agentrelay-hq admin reset-token`. A running HQ picks the change up within seconds.
pub fn reset_admin_token(data_dir: &std::path::Path) -> anyhow::Result<String> {
    use store::Store;
    let mut store = store::SqliteStore::open(data_dir)?;
    for token in store.active_tokens()? {
        if token.info.name == BOOTSTRAP_ADMIN {
            store.revoke_token(token.info.id)?;
        }
    }
    let secret = tokens::generate(Scope::Admin);
    let now = chrono::Utc::now();
    let info = agentrelay_protocol::TokenInfo {
        id: uuid::Uuid::now_v7(),
        name: BOOTSTRAP_ADMIN.to_owned(),
        scope: Scope::Admin,
        created_at: now,
        expires_at: None,
        session_id: None,
        user: None,
        shared: false,
    };
    let record = store::TokenRecord { info, hash: tokens::hash(&secret), user_id: store::BUILTIN_ADMIN };
    store.insert_token(&record)?;
    store.append_audit(&[agentrelay_protocol::AuditEntry {
        at: now,
        actor: Some("agentrelay-hq admin".to_owned()),
        action: "token.reset".to_owned(),
        target: Some(BOOTSTRAP_ADMIN.to_owned()),
        address: None,
        detail: None,
        user_id: None,
        user: None,
    }])?;
    Ok(secret)
}
