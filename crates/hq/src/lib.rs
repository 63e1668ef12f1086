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
pub mod registry;
pub mod runner_data;
pub mod runner_socket;
pub mod session;
pub mod state;
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
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let events = events::EventBus::default();
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
        state.tasks.close();
        state.tasks.wait().await;
        Ok(())
    }
}
