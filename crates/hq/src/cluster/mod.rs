//! HQ as one replica of several (`--database-url`, `--nats-url`): what the replicas share and
//! how it moves between them.
//!
//! * State lives in PostgreSQL ([`crate::store::postgres`]), output too ([`stored`]): every
//!   replica reads every session, and no byte is only on one replica's disk.
//! * The replica a runner's data connection reaches stores that session's output under a lease
//!   ([`stream`]); it acknowledges to the runner only what is stored, so a replica killed
//!   mid-stream costs nothing: the runner redials another, which takes the lease and resumes
//!   from where the stored output ends.
//! * Live output goes over the bus to replicas with viewers, keystrokes and start orders go over
//!   it to the replica holding the runner ([`stream`]), and every change goes to every replica
//!   through the change feed ([`feed`]).
//! * One replica at a time, the leader (a PostgreSQL advisory lock), runs what must happen once
//!   per cluster: retention and webhooks.

pub mod feed;
pub mod pg;
pub mod stored;
pub mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::{Bus, MemoryBus, Subjects};
use crate::config::HqConfig;

/// The advisory lock whose holder leads the cluster.
const LEADER_LOCK: i64 = 7_243_110_018_001;
/// How often a replica that does not lead tries to.
const LEADER_RETRY: Duration = Duration::from_secs(2);

/// This replica's place in the cluster.
pub struct Cluster {
    /// `--replica-name`.
    pub replica: String,
    /// Distinguishes this process from every other replica (names may repeat).
    pub instance: Uuid,
    /// The cluster's subject names.
    pub subjects: Subjects,
    /// The bus to the other replicas.
    pub bus: Arc<dyn Bus>,
    /// Async connections for output reads, leases and sign-in attempts.
    pub pg: Arc<pg::Pg>,
    /// The output writer (group commit).
    pub writer: stored::Writer,
    /// Changes to send to the other replicas; the feed's publisher task receives.
    feed: tokio::sync::mpsc::UnboundedSender<feed::FeedMessage>,
    feed_rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<feed::FeedMessage>>>,
    /// The other replicas' changes from before this replica read its state from PostgreSQL on;
    /// taken by the feed's follower when HQ starts serving.
    followed: std::sync::Mutex<Option<crate::bus::Subscription>>,
    /// Sessions whose output this replica stores, and how to stop doing so.
    streams: stream::Streams,
    /// Whether this replica leads now.
    leader: AtomicBool,
    /// Where each session's stored output ended when this replica started.
    ends: std::sync::Mutex<std::collections::HashMap<Uuid, u64>>,
    /// Stops the writer task; cancelled by [`Cluster::close`].
    writer_stop: CancellationToken,
    writer_done: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Cluster {
    /// Connects to PostgreSQL's async side and to the bus (NATS, or in process for a single
    /// replica on PostgreSQL).
    pub async fn connect(config: &HqConfig) -> anyhow::Result<Arc<Self>> {
        let url = config.database_url.as_deref().context("a cluster needs --database-url")?;
        let replica = config.replica();
        let subjects = Subjects::new(&config.nats_prefix);
        let bus: Arc<dyn Bus> = match &config.nats_url {
            Some(nats) => Arc::new(crate::bus::nats::NatsBus::connect(nats, &subjects, &replica).await?),
            None => Arc::new(MemoryBus::new()),
        };
        // Followed before anything is read from PostgreSQL: a change another replica makes
        // while this one loads its state is in the snapshot, or in the feed, or both (applying
        // one twice is harmless), never in neither.
        let followed = match bus.follow(subjects.feed_all()).await {
            Ok(followed) => Some(followed),
            Err(error) => {
                tracing::warn!(%error, "cannot follow the change feed yet; retrying once serving");
                None
            }
        };
        let pg = Arc::new(pg::Pg::new(url)?);
        pg.get().await.context("PostgreSQL (async connection)")?;
        let writer_stop = CancellationToken::new();
        let (writer, writer_done) = stored::Writer::start(pg.clone(), writer_stop.clone());
        let (feed, feed_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            replica,
            instance: Uuid::now_v7(),
            subjects,
            bus,
            pg,
            writer,
            feed,
            feed_rx: std::sync::Mutex::new(Some(feed_rx)),
            followed: std::sync::Mutex::new(followed),
            streams: Default::default(),
            ends: Default::default(),
            leader: AtomicBool::new(false),
            writer_stop,
            writer_done: std::sync::Mutex::new(Some(writer_done)),
        }))
    }

    /// Reads where every session's stored output ends (before restoring sessions).
    pub async fn load_ends(&self) -> anyhow::Result<()> {
        *crate::lock(&self.ends) = stored::all_ends(&self.pg).await?;
        Ok(())
    }

    /// Where a session's stored output ended at start (0 for one this replica never saw).
    pub fn stored_end_hint(&self, session: Uuid, _saved: u64) -> u64 {
        crate::lock(&self.ends).remove(&session).unwrap_or(0)
    }

    /// A sender into the feed, for the event bus.
    pub fn feed_sender(&self) -> tokio::sync::mpsc::UnboundedSender<feed::FeedMessage> {
        self.feed.clone()
    }

    /// Sends a change to the other replicas (in order, after any sent before).
    pub fn send(&self, message: feed::FeedMessage) {
        // Fails only once the publisher is gone (HQ stopping): nobody is left to tell.
        let _ = self.feed.send(message);
    }

    /// The change feed as followed since before this replica loaded its state, once.
    pub fn take_followed(&self) -> Option<crate::bus::Subscription> {
        crate::lock(&self.followed).take()
    }

    /// Whether this replica leads the cluster now (retention, webhooks).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Starts the replica's background work: the feed's publisher and follower, and the
    /// contest for leadership. All of them stop with `shutdown`.
    pub fn start(self: &Arc<Self>, state: &crate::state::AppState) {
        if let Some(rx) = crate::lock(&self.feed_rx).take() {
            state.tasks.spawn(feed::publish(self.clone(), rx, state.shutdown.clone()));
        }
        state.tasks.spawn(feed::follow(state.clone(), self.clone()));
        state.tasks.spawn(lead(self.clone(), state.shutdown.clone()));
    }

    /// Stops the output writer once everything queued is written (after the sessions' tasks
    /// have ended).
    pub async fn close(&self) {
        self.writer_stop.cancel();
        let done = crate::lock(&self.writer_done).take();
        if let Some(done) = done {
            let _ = done.await;
        }
    }

    /// A session another replica started a moment ago (its row is in the database before its
    /// runner hears of it), taken in here as the feed will bring it anyway.
    pub async fn fetch_session(
        &self,
        state: &crate::state::AppState,
        id: &str,
    ) -> Result<Arc<crate::session::Session>, crate::error::AppError> {
        use crate::error::AppError;
        let unknown = || AppError::NotFound(format!("no session '{id}'"));
        let uuid = Uuid::parse_str(id).map_err(|_| unknown())?;
        let client = self.pg.get().await.map_err(AppError::Internal)?;
        let sql = format!(
            "SELECT {} FROM sessions s LEFT JOIN users u ON u.id = s.owner_id WHERE s.id = $1",
            crate::store::postgres::SESSION_COLUMNS
        );
        let row = client.query_opt(sql.as_str(), &[&uuid]).await.map_err(|e| AppError::Internal(e.into()))?;
        let view =
            crate::store::postgres::session_row(&row.ok_or_else(unknown)?).map_err(AppError::Internal)?;
        if let Some(session) = state.sessions.get(uuid) {
            return Ok(session);
        }
        crate::cluster::feed::apply(state, feed::FeedMessage::Session(Box::new(view))).await;
        state.sessions.get(uuid).ok_or_else(unknown)
    }

    /// `/readyz`: what is down, if anything.
    pub async fn check(&self) -> Result<(), String> {
        let pg = async {
            let client = self.pg.get().await?;
            client.simple_query("SELECT 1").await.context("PostgreSQL does not answer")?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(2), pg).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(format!("PostgreSQL is down: {error:#}")),
            Err(_) => return Err("PostgreSQL did not answer within 2 s".to_owned()),
        }
        if !self.bus.is_up() {
            return Err("NATS is unreachable".to_owned());
        }
        Ok(())
    }

    /// Counts a sign-in attempt from `address` across the cluster; whether it is allowed
    /// (at most `per_minute` a minute). A database that does not answer allows it: the
    /// attempt still has to present a valid token.
    pub async fn allow_login(&self, address: std::net::IpAddr, per_minute: u32) -> bool {
        let counted = async {
            let client = self.pg.get().await?;
            let row = client
                .query_one(
                    "INSERT INTO login_attempts (address, minute, attempts)
                     VALUES ($1, date_trunc('minute', now()), 1)
                     ON CONFLICT (address, minute) DO UPDATE SET attempts = login_attempts.attempts + 1
                     RETURNING attempts",
                    &[&address.to_string()],
                )
                .await?;
            anyhow::Ok(row.get::<_, i32>(0))
        };
        match tokio::time::timeout(Duration::from_secs(2), counted).await {
            Ok(Ok(attempts)) => u32::try_from(attempts).unwrap_or(u32::MAX) <= per_minute,
            Ok(Err(error)) => {
                tracing::warn!(error = format!("{error:#}"), "cannot count a sign-in attempt");
                true
            }
            Err(_) => true,
        }
    }
}

/// The way to a runner's control connection: here, or through the replica that holds it.
pub enum ControlLink {
    /// Connected to this replica.
    Local(tokio::sync::mpsc::Sender<agentrelay_protocol::runner::HqMessage>),
    /// Connected to another replica of the cluster.
    Remote(Arc<Cluster>, Uuid),
}

impl ControlLink {
    /// The link to an online runner, if it is online anywhere.
    pub fn to(state: &crate::state::AppState, runner: Uuid) -> Option<Self> {
        if let Some(tx) = state.registry.sender(runner) {
            return Some(Self::Local(tx));
        }
        let cluster = state.cluster.as_ref()?;
        state.registry.is_online(runner).then(|| Self::Remote(cluster.clone(), runner))
    }

    /// Sends a message; fails when the runner is gone.
    pub async fn send(
        &self,
        message: agentrelay_protocol::runner::HqMessage,
    ) -> Result<(), crate::bus::BusError> {
        match self {
            Self::Local(tx) => tx
                .send(message)
                .await
                .map_err(|_| crate::bus::BusError::Down("runner disconnected".to_owned())),
            Self::Remote(cluster, runner) => cluster.send_control(*runner, &message).await,
        }
    }
}

/// Tries for the leader's lock until it holds it, then keeps the connection that holds it; a
/// lost connection loses the lock, and the contest starts again.
async fn lead(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    loop {
        let held = async {
            let client = cluster.pg.connect().await?;
            loop {
                let got: bool =
                    client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]).await?.get(0);
                if got {
                    break;
                }
                tokio::time::sleep(LEADER_RETRY).await;
            }
            cluster.leader.store(true, Ordering::Release);
            tracing::info!(replica = %cluster.replica, "this replica leads the cluster");
            // Held while the connection lives; ask now and then to notice when it does not.
            loop {
                tokio::time::sleep(LEADER_RETRY).await;
                client
                    .simple_query("DELETE FROM login_attempts WHERE minute < now() - interval '5 minutes'")
                    .await?;
            }
            #[allow(unreachable_code)]
            anyhow::Ok(())
        };
        tokio::select! {
            result = held => {
                if let Err(error) = result {
                    tracing::warn!(error = format!("{error:#}"), "lost or could not contest the cluster's lead");
                }
            }
            () = shutdown.cancelled() => {
                cluster.leader.store(false, Ordering::Release);
                return;
            }
        }
        cluster.leader.store(false, Ordering::Release);
        tokio::select! {
            () = tokio::time::sleep(LEADER_RETRY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
