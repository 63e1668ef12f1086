//! Managed tokens: random secrets with a visible prefix per scope (so secret scanners can find a
//! leaked one), shown once, stored only as SHA-256, optionally expiring, revocable. Revoking a
//! token cuts off every live connection that authenticated with it.
//!
//! SHA-256 is the right hash here: the secrets are 192 random bits, not passwords, so there is
//! nothing to brute-force. Lookups go by hash; the static `--admin-token`/`--runner-token` are
//! compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use agentrelay_protocol::{CreatedToken, Scope, TokenInfo};
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::{StoreHandle, TokenRecord};

/// How often HQ rereads tokens from the database, to pick up `agentrelay-hq admin reset-token`
/// run beside a live HQ.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// The visible prefix of each scope's tokens.
pub fn prefix(scope: Scope) -> &'static str {
    match scope {
        Scope::Admin => "arl_adm_",
        Scope::User => "arl_usr_",
        Scope::Runner => "arl_run_",
        Scope::Share => "arl_shr_",
    }
}

/// A new secret for `scope`: the prefix and 192 random bits in hex.
pub fn generate(scope: Scope) -> String {
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut secret);
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", prefix(scope))
}

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A token that authenticated, with the signal that cuts its connections off.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The token's public part.
    pub info: TokenInfo,
    /// The user it acts as.
    pub user_id: Uuid,
    /// Cancelled when the token is revoked.
    pub revoked: CancellationToken,
}

struct Active {
    record: TokenRecord,
    revoked: CancellationToken,
}

impl Active {
    fn authenticated(&self) -> Authenticated {
        Authenticated {
            info: self.record.info.clone(),
            user_id: self.record.user_id,
            revoked: self.revoked.child_token(),
        }
    }
}

/// What a new token is.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// When it stops working.
    pub expires_in: Option<Duration>,
    /// For a share: its session.
    pub session_id: Option<Uuid>,
    /// The user it acts as.
    pub user_id: Uuid,
    /// For a runner token: it enrolls shared runners.
    pub shared: bool,
}

/// The active managed tokens, cached from the store.
pub struct Tokens {
    store: StoreHandle,
    by_hash: Mutex<HashMap<[u8; 32], Active>>,
    /// Held across each change's database write and cache update. Without it a refresh that read
    /// the database just before a create or revoke would put back its stale picture: the new
    /// token forgotten, or the revoked one working again until the next refresh.
    writes: tokio::sync::Mutex<()>,
    /// Told of every create and revoke (a cluster tells the other replicas).
    on_change: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Tokens {
    /// Loads the active tokens.
    pub async fn load(store: StoreHandle) -> anyhow::Result<Self> {
        let tokens = Self {
            store,
            by_hash: Mutex::default(),
            writes: tokio::sync::Mutex::new(()),
            on_change: std::sync::OnceLock::new(),
        };
        tokens.refresh().await?;
        Ok(tokens)
    }

    /// Calls `hook` after every create and revoke from now on (once; later calls are ignored).
    pub fn on_change(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_change.set(Box::new(hook));
    }

    fn changed(&self) {
        if let Some(hook) = self.on_change.get() {
            hook();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Active>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rereads the database: new tokens appear, tokens revoked elsewhere are cut off.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let _writing = self.writes.lock().await;
        let records = self.store.call(|store| store.active_tokens()).await?;
        let mut map = self.lock();
        let mut fresh = HashMap::with_capacity(records.len());
        for record in records {
            let revoked = map.remove(&record.hash).map(|a| a.revoked).unwrap_or_default();
            fresh.insert(record.hash, Active { record, revoked });
        }
        for (_, gone) in map.drain() {
            gone.revoked.cancel();
        }
        *map = fresh;
        Ok(())
    }

    /// The token a secret belongs to, if it is active and unexpired.
    pub fn authenticate(&self, secret: &str) -> Option<Authenticated> {
        let map = self.lock();
        let active = map.get(&hash(secret))?;
        if active.record.info.expires_at.is_some_and(|at| at <= Utc::now()) {
            return None;
        }
        Some(active.authenticated())
    }

    /// The token with this id, if it is active and unexpired.
    pub fn by_id(&self, id: Uuid) -> Option<Authenticated> {
        let map = self.lock();
        let active = map.values().find(|a| a.record.info.id == id)?;
        if active.record.info.expires_at.is_some_and(|at| at <= Utc::now()) {
            return None;
        }
        Some(active.authenticated())
    }

    /// Creates a token; the returned secret is not kept anywhere.
    pub async fn create(&self, new: NewToken) -> anyhow::Result<CreatedToken> {
        let NewToken { name, scope, expires_in, session_id, user_id, shared } = new;
        let secret = generate(scope);
        let now = Utc::now();
        let expires_at = expires_in.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| now + d);
        let info = TokenInfo {
            id: Uuid::now_v7(),
            name,
            scope,
            created_at: now,
            expires_at,
            session_id,
            user: None,
            shared,
        };
        let record = TokenRecord { info: info.clone(), hash: hash(&secret), user_id };
        let saved = record.clone();
        let _writing = self.writes.lock().await;
        self.store.call(move |store| store.insert_token(&saved)).await?;
        self.lock().insert(record.hash, Active { record, revoked: CancellationToken::new() });
        self.changed();
        Ok(CreatedToken {
            id: info.id,
            name: info.name,
            scope,
            token: secret,
            expires_at,
            user: None,
            shared,
        })
    }

    /// Revokes a token and cuts its connections; whether it was active.
    pub async fn revoke(&self, id: Uuid) -> anyhow::Result<bool> {
        let _writing = self.writes.lock().await;
        let existed = self.store.call(move |store| store.revoke_token(id)).await?;
        let mut map = self.lock();
        let hashes: Vec<[u8; 32]> =
            map.iter().filter(|(_, a)| a.record.info.id == id).map(|(h, _)| *h).collect();
        for h in hashes {
            if let Some(active) = map.remove(&h) {
                active.revoked.cancel();
            }
        }
        drop(map);
        self.changed();
        Ok(existed)
    }

    /// Every active token, oldest first.
    pub fn list(&self) -> Vec<TokenRecord> {
        let mut list: Vec<TokenRecord> = self.lock().values().map(|a| a.record.clone()).collect();
        list.sort_by_key(|t| t.info.id);
        list
    }

    /// Cuts every live connection made with a token of this user (their tokens stay; whether
    /// they still work is the user's to say: a disabled user's do not).
    pub fn cut_user(&self, user_id: Uuid) {
        for active in self.lock().values_mut().filter(|a| a.record.user_id == user_id) {
            let cut = std::mem::take(&mut active.revoked);
            cut.cancel();
        }
    }

    /// Whether any active admin token exists.
    pub fn has_admin(&self) -> bool {
        self.lock().values().any(|a| a.record.info.scope == Scope::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_long_and_distinct() {
        let a = generate(Scope::Runner);
        let b = generate(Scope::Runner);
        assert!(a.starts_with("arl_run_") && a.len() == "arl_run_".len() + 48);
        assert_ne!(a, b);
        assert_ne!(hash(&a), hash(&b));
        assert!(generate(Scope::Admin).starts_with("arl_adm_"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_never_undoes_a_create_or_a_revoke() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::SqliteStore::open(dir.path()).expect("store");
        let store = crate::store::start_writer(Box::new(store)).expect("writer");
        let tokens = std::sync::Arc::new(Tokens::load(store).await.expect("load"));
        let stop = CancellationToken::new();
        let refresher = tokio::spawn({
            let (tokens, stop) = (tokens.clone(), stop.clone());
            async move {
                while !stop.is_cancelled() {
                    tokens.refresh().await.expect("refresh");
                }
            }
        });
        for i in 0..3000 {
            let new = NewToken {
                name: format!("t{i}"),
                scope: Scope::User,
                expires_in: None,
                session_id: None,
                user_id: crate::store::BUILTIN_ADMIN,
                shared: false,
            };
            let created = tokens.create(new).await.expect("create");
            assert!(tokens.authenticate(&created.token).is_some(), "token {i} was forgotten");
            tokens.revoke(created.id).await.expect("revoke");
            assert!(tokens.authenticate(&created.token).is_none(), "token {i} works after its revocation");
        }
        stop.cancel();
        refresher.await.expect("refresher");
    }
}
