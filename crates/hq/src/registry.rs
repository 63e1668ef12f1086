//! The runner registry: every runner HQ has seen, and the control link of those online.

use std::collections::HashMap;
use std::sync::Mutex;

use agentrelay_protocol::runner::{Hello, HqMessage};
use agentrelay_protocol::{Runner, RunnerStatus};
use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::{Event, EventBus};

/// Why a hello was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Another online runner (with another id) uses the name.
    #[error("a runner named '{0}' is already online with another id; pick another --name")]
    NameTaken(String),
    /// The runner id is enrolled with another owner (or shared, or personal): a token of
    /// someone else's cannot take a runner over.
    #[error(
        "runner {0} is enrolled as {1}; a token of another owner cannot take it over (start it with a fresh --state-dir to enroll it anew)"
    )]
    OwnerChanged(Uuid, String),
}

/// The live control link to an online runner.
struct Link {
    /// Distinguishes this connection from an older one of the same runner.
    connection: u64,
    /// Control frames to the runner; the runner's socket task receives them.
    tx: mpsc::Sender<HqMessage>,
    /// Cancelled when a newer connection of the same runner replaces this one.
    replaced: CancellationToken,
}

struct Entry {
    info: Runner,
    link: Option<Link>,
    /// Its hello said it answers workspace requests.
    workspaces: bool,
}

/// All runners known to HQ. Locks are held only to read or update a map entry, never across I/O.
pub struct Registry {
    runners: Mutex<HashMap<Uuid, Entry>>,
    next_connection: std::sync::atomic::AtomicU64,
    events: EventBus,
    /// Workspace requests sent to runners and not answered yet.
    pub requests: crate::workspace::Pending,
}

/// What a runner's socket task gets back when its hello is accepted.
pub struct Registration {
    /// This connection's number, to pass back to [`Registry::disconnect`].
    pub connection: u64,
    /// Control frames for this runner.
    pub rx: mpsc::Receiver<HqMessage>,
    /// Cancelled if the same runner connects again elsewhere.
    pub replaced: CancellationToken,
}

impl Registry {
    /// An empty registry that publishes runner changes on `events`.
    pub fn new(events: EventBus) -> Self {
        Self {
            runners: Mutex::default(),
            next_connection: Default::default(),
            events,
            requests: Default::default(),
        }
    }

    /// Marks a runner online with a fresh control link, replacing any older link it had.
    /// `owner` is the user whose personal runner it is (`None`: shared), as its token says.
    pub fn connect(
        &self,
        hello: &Hello,
        owner: Option<agentrelay_protocol::Owner>,
    ) -> Result<Registration, Refusal> {
        let mut runners = self.lock();
        let taken = runners.values().any(|e| {
            e.info.id != hello.id && e.info.name == hello.name && e.info.status == RunnerStatus::Online
        });
        if taken {
            return Err(Refusal::NameTaken(hello.name.clone()));
        }
        if let Some(known) = runners.get(&hello.id)
            && known.info.owner.as_ref().map(|o| o.id) != owner.as_ref().map(|o| o.id)
        {
            let was = known
                .info
                .owner
                .as_ref()
                .map_or("a shared runner".to_owned(), |o| format!("{}'s personal runner", o.name));
            return Err(Refusal::OwnerChanged(hello.id, was));
        }
        let now = Utc::now();
        let (tx, rx) = mpsc::channel(64);
        let connection = self.next_connection.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let replaced = CancellationToken::new();
        let info = Runner {
            id: hello.id,
            name: hello.name.clone(),
            labels: hello.labels.clone(),
            status: RunnerStatus::Online,
            hostname: hello.hostname.clone(),
            os: hello.os.clone(),
            version: hello.version.clone(),
            presets: hello.presets.clone(),
            policy: hello.policy.clone(),
            repos: hello.repos.clone(),
            owner,
            connected_at: now,
            last_seen_at: now,
        };
        let link = Link { connection, tx, replaced: replaced.clone() };
        self.events.publish(Event::Runner(Box::new(info.clone())));
        if let Some(Entry { link: Some(old_link), .. }) =
            runners.insert(hello.id, Entry { info, link: Some(link), workspaces: hello.workspaces })
        {
            old_link.replaced.cancel();
        }
        Ok(Registration { connection, rx, replaced })
    }

    /// Adds a runner remembered from the store, offline until it dials in.
    pub fn restore(&self, mut runner: Runner) {
        runner.status = RunnerStatus::Offline;
        self.lock().entry(runner.id).or_insert(Entry { info: runner, link: None, workspaces: false });
    }

    /// Records that the runner was heard from.
    pub fn touch(&self, id: Uuid) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.info.last_seen_at = Utc::now();
        }
    }

    /// Marks the runner offline, unless a newer connection has taken over. Returns whether it did.
    pub fn disconnect(&self, id: Uuid, connection: u64) -> bool {
        let mut runners = self.lock();
        let Some(entry) = runners.get_mut(&id) else { return false };
        if entry.link.as_ref().is_none_or(|link| link.connection != connection) {
            return false;
        }
        entry.link = None;
        entry.info.status = RunnerStatus::Offline;
        self.requests.drop_runner(id);
        entry.info.last_seen_at = Utc::now();
        self.events.publish(Event::Runner(Box::new(entry.info.clone())));
        true
    }

    /// Whether the runner is online now (here, or on another replica of a cluster).
    pub fn is_online(&self, id: Uuid) -> bool {
        self.lock().get(&id).is_some_and(|e| e.link.is_some() || e.info.status == RunnerStatus::Online)
    }

    /// Another replica's news of a runner (a cluster's change feed): kept as it says, except
    /// that a runner connected here stays online here; told to this replica's subscribers.
    pub fn apply_remote(&self, runner: Runner) {
        let mut runners = self.lock();
        let entry = runners.entry(runner.id).or_insert_with(|| Entry {
            info: runner.clone(),
            link: None,
            workspaces: false,
        });
        // A runner that moved on to a newer connection (here or elsewhere) is not taken back by
        // news of an older one (say, the replica it left saying it went offline).
        if (entry.link.is_some() && runner.status == RunnerStatus::Offline)
            || runner.connected_at < entry.info.connected_at
        {
            return;
        }
        entry.info = runner.clone();
        drop(runners);
        self.events.publish_local(Event::Runner(Box::new(runner)));
    }

    /// Whether the runner's connection answers workspace requests.
    pub fn speaks_workspaces(&self, id: Uuid) -> bool {
        self.lock().get(&id).is_some_and(|e| e.link.is_some() && e.workspaces)
    }

    /// One runner.
    pub fn get(&self, id: Uuid) -> Option<Runner> {
        self.lock().get(&id).map(|e| e.info.clone())
    }

    /// Finds a runner by name, preferring one `usable` says the caller may use, then an online one.
    pub fn find_by_name(&self, name: &str, usable: impl Fn(&Runner) -> bool) -> Option<Runner> {
        let runners = self.lock();
        let mut matches: Vec<&Runner> =
            runners.values().map(|e| &e.info).filter(|r| r.name == name).collect();
        matches.sort_by_key(|r| {
            (!usable(r), r.status != RunnerStatus::Online, std::cmp::Reverse(r.last_seen_at))
        });
        matches.first().map(|r| (*r).clone())
    }

    /// Online runners whose labels include all of `labels`.
    pub fn online_with_labels(&self, labels: &std::collections::BTreeMap<String, String>) -> Vec<Runner> {
        self.lock()
            .values()
            .filter(|e| e.link.is_some() || e.info.status == RunnerStatus::Online)
            .filter(|e| labels.iter().all(|(k, v)| e.info.labels.get(k) == Some(v)))
            .map(|e| e.info.clone())
            .collect()
    }

    /// All runners, by name.
    pub fn list(&self) -> Vec<Runner> {
        let mut list: Vec<Runner> = self.lock().values().map(|e| e.info.clone()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        list
    }

    /// Who owns the runner: `Some(None)` for a shared runner, `None` for an unknown one.
    pub fn owner_of(&self, id: Uuid) -> Option<Option<Uuid>> {
        self.lock().get(&id).map(|e| e.info.owner.as_ref().map(|o| o.id))
    }

    /// The control channel of an online runner.
    pub fn sender(&self, id: Uuid) -> Option<mpsc::Sender<HqMessage>> {
        self.lock().get(&id).and_then(|e| e.link.as_ref().map(|l| l.tx.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        // A poisoned lock means a panic mid-update of plain data; the map itself is still usable.
        self.runners.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
