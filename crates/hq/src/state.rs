//! The state every handler and socket task shares.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{LoginLimiter, Logins};
use crate::config::HqConfig;
use crate::events::EventBus;
use crate::registry::Registry;
use crate::session::Sessions;
use crate::store::StoreHandle;
use crate::tokens::Tokens;

/// A cheap handle on HQ's shared state.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points at.
pub struct Shared {
    /// The configuration HQ started with.
    pub config: HqConfig,
    /// The static admin token (`--admin-token`), if one was given.
    pub admin_token: Option<String>,
    /// The static runner enrollment token (`--runner-token`), if one was given.
    pub runner_token: Option<String>,
    /// Managed tokens.
    pub tokens: Tokens,
    /// The people HQ knows.
    pub users: crate::users::Users,
    /// Single sign-on, when configured.
    pub oidc: Option<crate::oidc::Oidc>,
    /// The CLI's browser sign-ins waiting for their code exchange.
    pub cli_logins: crate::cli_login::CliLogins,
    /// Sign-in attempts per address.
    pub login_limiter: LoginLimiter,
    /// The database, for audit entries and reads.
    pub store: StoreHandle,
    /// Known runners.
    pub registry: Registry,
    /// Known sessions.
    pub sessions: Sessions,
    /// Dashboard sign-ins (cookie values).
    pub logins: Logins,
    /// Change feed for `/api/events`.
    pub events: EventBus,
    /// Cancelled when HQ shuts down; every socket task watches it.
    pub shutdown: CancellationToken,
    /// Tracks background tasks (timers) so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// This replica's place in a cluster (`--database-url`); `None` for a single HQ on SQLite.
    pub cluster: Option<std::sync::Arc<crate::cluster::Cluster>>,
    /// Data-path counters for `/metrics`.
    pub counters: crate::metrics::Counters,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Wraps the shared state.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}
