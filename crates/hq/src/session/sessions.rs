//! Every session HQ knows, by id.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use super::Session;

/// All sessions HQ knows.
#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<Uuid, Arc<Session>>>,
}

impl Sessions {
    /// Adds a session.
    pub fn insert(&self, session: Arc<Session>) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert(session.id, session);
    }

    /// One session.
    pub fn get(&self, id: Uuid) -> Option<Arc<Session>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Forgets a session.
    pub fn remove(&self, id: Uuid) -> Option<Arc<Session>> {
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(&id)
    }

    /// All sessions, newest first.
    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut list: Vec<_> = self.map.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.id));
        list
    }

    /// Live (not ended) sessions on one runner.
    pub fn live_on_runner(&self, runner_id: Uuid) -> Vec<Arc<Session>> {
        self.list().into_iter().filter(|s| s.runner_id == runner_id && !s.status().is_final()).collect()
    }
}
