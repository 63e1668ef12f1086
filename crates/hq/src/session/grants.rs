//! Who else a session's owner let in, and how far (`view` or `drive`), with the signal that
//! closes a grantee's viewers the moment their grant is revoked or changed.

use std::collections::HashMap;
use std::sync::Mutex;

use agentrelay_protocol::Access;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::lock;
use crate::store::GrantRecord;

/// A session's grants, by user.
#[derive(Default)]
pub struct Grants {
    by_user: Mutex<HashMap<Uuid, Entry>>,
}

struct Entry {
    grant: GrantRecord,
    /// Cancelled when this grant is revoked or changed: each viewer attached through it
    /// watches a child of it.
    cut: CancellationToken,
}

impl Grants {
    /// What `user` was granted, if anything.
    pub fn access(&self, user: Uuid) -> Option<Access> {
        lock(&self.by_user).get(&user).map(|e| e.grant.access)
    }

    /// The signal a viewer attached through `user`'s grant watches; `None` without a grant.
    pub fn viewer_cut(&self, user: Uuid) -> Option<CancellationToken> {
        lock(&self.by_user).get(&user).map(|e| e.cut.child_token())
    }

    /// Sets a grant; a changed grant closes the viewers attached through the old one, so they
    /// come back with what the new one allows.
    pub fn set(&self, grant: GrantRecord) {
        let mut grants = lock(&self.by_user);
        let entry = Entry { grant: grant.clone(), cut: CancellationToken::new() };
        if let Some(old) = grants.insert(grant.user_id, entry) {
            if old.grant.access == grant.access {
                // The same access again: keep the viewers (the new entry takes the old signal).
                if let Some(new) = grants.get_mut(&grant.user_id) {
                    new.cut = old.cut;
                }
            } else {
                old.cut.cancel();
            }
        }
    }

    /// Revokes `user`'s grant and closes their viewers; whether there was one.
    pub fn remove(&self, user: Uuid) -> bool {
        match lock(&self.by_user).remove(&user) {
            Some(old) => {
                old.cut.cancel();
                true
            }
            None => false,
        }
    }

    /// Every grant, oldest first.
    pub fn list(&self) -> Vec<GrantRecord> {
        let mut list: Vec<GrantRecord> = lock(&self.by_user).values().map(|e| e.grant.clone()).collect();
        list.sort_by_key(|g| (g.created_at, g.user_id));
        list
    }
}
