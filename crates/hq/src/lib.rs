//! AgentRelay HQ: the control plane. Runners dial in (`runner_socket`, `runner_data`), the REST
//! API starts and lists sessions (`api`), and viewers attach to live terminals (`viewer_socket`).
//!
//! `main.rs` only parses flags and waits for a signal; everything here is testable through
//! [`Hq::bind`] and [`Hq::serve`].

pub mod api;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod output_log;
pub mod recording;
pub mod registry;
pub mod runner_data;
pub mod runner_socket;
pub mod session;
pub mod state;
pub mod store;
pub mod terminal_model;
pub mod viewer_socket;

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::HqConfig;
use state::{AppState, Shared};

/// A bound, not yet serving, HQ.
pub struct Hq {
    listener: TcpListener,
    state: AppState,
}

impl Hq {
    /// Checks the configuration and binds the listening socket.
    pub async fn bind(config: HqConfig) -> anyhow::Result<Self> {
        let Some(admin_token) = config.admin_token.clone().filter(|t| !t.is_empty()) else {
            bail!("no admin token: pass --admin-token or set AGENTRELAY_ADMIN_TOKEN");
        };
        let Some(runner_token) = config.resolved_runner_token() else {
            bail!("no runner token: pass --runner-token or set RUNNER_TOKEN (runners present it)");
        };
        let mut store = store::SqliteStore::open(&config.data_dir)?;
        let snapshot = store::Store::load(&mut store).context("cannot read HQ's database")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let events = events::EventBus::new(Some(store::start_writer(Box::new(store))?));
        let state = AppState::new(Shared {
            config,
            admin_token,
            runner_token,
            registry: registry::Registry::new(events.clone()),
            sessions: Default::default(),
            logins: Default::default(),
            events,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        restore(&state, snapshot);
        Ok(Self { listener, state })
    }

    /// The address HQ listens on (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("listener has no local address")
    }

    /// Serves until `shutdown` is cancelled, then closes every connection and waits for tasks.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state.clone();
        let app = api::router(state.clone());
        let stop = shutdown.clone();
        let forward = state.shutdown.clone();
        let server = axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                stop.cancelled().await;
                // Socket tasks watch this token; they close their WebSockets so the server drains.
                forward.cancel();
            });
        server.await.context("HTTP server failed")?;
        // Output logs drain what they hold, then the database catches up.
        state.tasks.close();
        state.tasks.wait().await;
        state.events.flush().await;
        Ok(())
    }
}

/// Brings back what the store knew: every runner (offline until it dials in) and every session,
/// whose output continues after what its log holds. Live sessions whose runner does not return
/// within `--lost-after` become `lost`.
fn restore(state: &AppState, snapshot: store::Snapshot) {
    for runner in snapshot.runners {
        state.registry.restore(runner);
    }
    let mut waiting_runners = std::collections::HashSet::new();
    for view in snapshot.sessions {
        let live = !view.status.is_final();
        let log = open_log(state, view.id, view.created_at);
        let session = std::sync::Arc::new(session::Session::restore(
            view,
            state.config.ring_size,
            state.events.clone(),
            log,
        ));
        state.sessions.insert(session.clone());
        if live {
            waiting_runners.insert(session.runner_id);
            let model = session.start_model();
            state.tasks.spawn(terminal_model::follow(session.clone(), model, state.shutdown.clone()));
            state.tasks.spawn(session.persist(state.shutdown.clone()));
        }
    }
    for runner_id in waiting_runners {
        runner_socket::watch_for_lost_sessions(state, runner_id);
    }
}

/// Opens a session's output log; without one the session still works, from memory only.
pub(crate) fn open_log(
    state: &AppState,
    id: uuid::Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
) -> Option<std::sync::Arc<output_log::OutputLog>> {
    let elapsed = (chrono::Utc::now() - created_at).num_milliseconds().max(0) as u64;
    match output_log::OutputLog::open(&state.config.data_dir.join("sessions"), id, elapsed) {
        Ok(log) => Some(std::sync::Arc::new(log)),
        Err(error) => {
            tracing::error!(session = %id, error = format!("{error:#}"), "no output log; keeping output in memory only");
            None
        }
    }
}
