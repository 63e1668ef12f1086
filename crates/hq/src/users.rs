//! The people HQ knows, cached from the store: who each is, their role, whether they are
//! disabled, and the signal that cuts every connection of theirs when an admin disables them or
//! changes their role.

use std::collections::HashMap;
use std::sync::Mutex;

use agentrelay_protocol::{Owner, Role, User};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::lock;
use crate::store::{BUILTIN_ADMIN, StoreHandle, UserRecord};

/// How stale `last_seen_at` may get before it is written again.
const SEEN_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Why a user cannot be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Another user has this e-mail address.
    #[error("a user with e-mail '{0}' already exists")]
    EmailTaken(String),
    /// The built-in admin is the break-glass account.
    #[error("the built-in admin cannot be disabled or demoted")]
    BuiltIn,
    /// No such user.
    #[error("no user '{0}'")]
    Unknown(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Every user, by id.
pub struct Users {
    store: StoreHandle,
    by_id: Mutex<HashMap<Uuid, UserRecord>>,
    /// Held across each change's database write and cache update, so two changes never
    /// interleave (two sign-ups with one e-mail, say).
    writes: tokio::sync::Mutex<()>,
}

impl Users {
    /// Loads every user.
    pub async fn load(store: StoreHandle) -> anyhow::Result<Self> {
        let records = store.call(|store| store.users()).await?;
        let by_id = records.into_iter().map(|r| (r.user.id, r)).collect();
        Ok(Self { store, by_id: Mutex::new(by_id), writes: tokio::sync::Mutex::new(()) })
    }

    /// Rereads every user (another replica of a cluster changed one).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let _writing = self.writes.lock().await;
        let records = self.store.call(|store| store.users()).await?;
        *lock(&self.by_id) = records.into_iter().map(|r| (r.user.id, r)).collect();
        Ok(())
    }

    /// One user.
    pub fn get(&self, id: Uuid) -> Option<User> {
        lock(&self.by_id).get(&id).map(|r| r.user.clone())
    }

    /// One user as an owner (id, name, e-mail).
    pub fn owner(&self, id: Uuid) -> Option<Owner> {
        lock(&self.by_id).get(&id).map(|r| Owner::from(&r.user))
    }

    /// The built-in admin.
    pub fn builtin_admin(&self) -> Owner {
        self.owner(BUILTIN_ADMIN).unwrap_or_else(|| Owner {
            id: BUILTIN_ADMIN,
            name: "admin".to_owned(),
            email: String::new(),
        })
    }

    /// A user named by id or e-mail (case-insensitive), as requests name them.
    pub fn find(&self, id_or_email: &str) -> Option<User> {
        let wanted = id_or_email.trim();
        let users = lock(&self.by_id);
        if let Ok(id) = Uuid::parse_str(wanted) {
            return users.get(&id).map(|r| r.user.clone());
        }
        users
            .values()
            .find(|r| !r.user.email.is_empty() && r.user.email.eq_ignore_ascii_case(wanted))
            .map(|r| r.user.clone())
    }

    /// The user a single sign-on identity belongs to: by its subject, else by its e-mail.
    pub fn by_subject_or_email(&self, subject: &str, email: &str) -> Option<UserRecord> {
        let users = lock(&self.by_id);
        users.values().find(|r| r.subject.as_deref() == Some(subject)).cloned().or_else(|| {
            users.values().find(|r| !email.is_empty() && r.user.email.eq_ignore_ascii_case(email)).cloned()
        })
    }

    /// Everyone, oldest first.
    pub fn list(&self) -> Vec<User> {
        let mut list: Vec<User> = lock(&self.by_id).values().map(|r| r.user.clone()).collect();
        list.sort_by_key(|u| (u.created_at, u.id));
        list
    }

    /// Creates a user.
    pub async fn create(
        &self,
        name: String,
        email: String,
        role: Role,
        subject: Option<String>,
    ) -> Result<User, UserError> {
        let _writing = self.writes.lock().await;
        let email = email.trim().to_owned();
        if self.find(&email).is_some() {
            return Err(UserError::EmailTaken(email));
        }
        let now = Utc::now();
        let user = User {
            id: Uuid::now_v7(),
            name,
            email,
            role,
            disabled: false,
            created_at: now,
            last_seen_at: subject.is_some().then_some(now),
        };
        let record = UserRecord { user: user.clone(), subject };
        let saved = record.clone();
        self.store.call(move |store| store.save_user(&saved)).await?;
        lock(&self.by_id).insert(user.id, record);
        Ok(user)
    }

    /// Applies `change` to a user and saves it; the user before and after.
    pub async fn update(
        &self,
        id: Uuid,
        change: impl FnOnce(&mut UserRecord) -> Result<(), UserError>,
    ) -> Result<(User, User), UserError> {
        let _writing = self.writes.lock().await;
        let mut record =
            lock(&self.by_id).get(&id).cloned().ok_or_else(|| UserError::Unknown(id.to_string()))?;
        let before = record.user.clone();
        change(&mut record)?;
        if id == BUILTIN_ADMIN && (record.user.disabled || record.user.role != Role::Admin) {
            return Err(UserError::BuiltIn);
        }
        let saved = record.clone();
        self.store.call(move |store| store.save_user(&saved)).await?;
        let after = record.user.clone();
        lock(&self.by_id).insert(id, record);
        Ok((before, after))
    }

    /// Notes that a user was seen now; written at most once a minute per user, off the request.
    pub fn seen(&self, id: Uuid) {
        let now: DateTime<Utc> = Utc::now();
        {
            let mut users = lock(&self.by_id);
            let Some(record) = users.get_mut(&id) else { return };
            if record.user.last_seen_at.is_some_and(|at| now - at < SEEN_EVERY) {
                return;
            }
            record.user.last_seen_at = Some(now);
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(error) = store.call(move |store| store.user_seen(id, now)).await {
                tracing::warn!(error = format!("{error:#}"), "cannot save when a user was last seen");
            }
        });
    }
}
