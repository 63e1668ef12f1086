//! Durable state: the runners HQ has seen and every session, in SQLite (WAL) under `--data-dir`,
//! behind the small [`Store`] trait so another database can come later.
//!
//! Writes never happen on the data path: changes go over a channel to one writer thread, which
//! applies them in batched transactions. [`StoreHandle::flush`] waits until it has caught up.

pub mod postgres;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::mpsc;

use agentrelay_protocol::{
    Access, AuditEntry, Owner, Role, Runner, RunnerStatus, Scope, Session, SessionStatus, TokenInfo,
    UsageRow, User,
};
use anyhow::{Context, bail};
use rusqlite::{Connection, params};
use uuid::Uuid;

/// A change to persist: the same events the dashboard receives, each carrying the whole object.
pub use crate::events::Event as Change;

/// Everything persisted, as read at startup.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Runners seen, as last known.
    pub runners: Vec<Runner>,
    /// Sessions, as last known.
    pub sessions: Vec<Session>,
    /// Grants on sessions: the session, and the grant.
    pub grants: Vec<(Uuid, GrantRecord)>,
}

/// A user as stored: what the API shows, and how single sign-on knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// Id, name, e-mail, role, disabled, times.
    pub user: User,
    /// `<issuer> <sub>` of their single sign-on identity, once they signed in that way.
    pub subject: Option<String>,
}

/// A grant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// Who may.
    pub user_id: Uuid,
    /// What.
    pub access: Access,
    /// Who granted it.
    pub granted_by: Option<Uuid>,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The built-in admin user: the static `--admin-token` and, after an upgrade, every admin token
/// made before users existed act as this user. It cannot be disabled or demoted.
pub const BUILTIN_ADMIN: Uuid = Uuid::from_u128(0x00000000_0000_4000_8000_000000000001);

/// A managed token as stored: its public part and the SHA-256 of its secret.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Id, name, scope, times.
    pub info: TokenInfo,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// The user the token acts as.
    pub user_id: Uuid,
}

/// A dashboard sign-in as stored: which credential it was made with, never the cookie itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// SHA-256 of the cookie value.
    pub hash: [u8; 32],
    /// The managed token signed in with, if it was one.
    pub token_id: Option<Uuid>,
    /// Otherwise the SHA-256 of the `--admin-token` of the time: a new one signs everyone out.
    pub static_hash: Option<[u8; 32]>,
    /// Or the user who signed in through single sign-on.
    pub user_id: Option<Uuid>,
    /// When the sign-in ends.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A place to keep HQ's state.
pub trait Store: Send + 'static {
    /// Reads everything.
    fn load(&mut self) -> anyhow::Result<Snapshot>;
    /// Applies changes atomically.
    fn apply(&mut self, changes: &[Change]) -> anyhow::Result<()>;
    /// Appends to the audit log.
    fn append_audit(&mut self, entries: &[AuditEntry]) -> anyhow::Result<()>;
    /// The newest audit entries, newest first.
    fn audit(&mut self, limit: usize) -> anyhow::Result<Vec<AuditEntry>>;
    /// Saves a new token.
    fn insert_token(&mut self, token: &TokenRecord) -> anyhow::Result<()>;
    /// Marks a token revoked; whether it existed and was active.
    fn revoke_token(&mut self, id: Uuid) -> anyhow::Result<bool>;
    /// Every token neither revoked nor expired.
    fn active_tokens(&mut self) -> anyhow::Result<Vec<TokenRecord>>;
    /// Saves a dashboard sign-in.
    fn insert_login(&mut self, login: &LoginRecord) -> anyhow::Result<()>;
    /// Forgets a sign-in (sign-out).
    fn delete_login(&mut self, hash: [u8; 32]) -> anyhow::Result<()>;
    /// Every unexpired sign-in (expired ones are deleted on the way).
    fn logins(&mut self) -> anyhow::Result<Vec<LoginRecord>>;
    /// Adds what agents used to the sums of their day, runner and user.
    fn add_usage(&mut self, rows: &[UsageRow]) -> anyhow::Result<()>;
    /// The sums per day, runner and user from day `from` to day `to` (`YYYY-MM-DD`, both
    /// included), oldest first.
    fn usage(&mut self, from: &str, to: &str) -> anyhow::Result<Vec<UsageRow>>;
    /// Every user.
    fn users(&mut self) -> anyhow::Result<Vec<UserRecord>>;
    /// Creates or updates a user (by id).
    fn save_user(&mut self, user: &UserRecord) -> anyhow::Result<()>;
    /// Records when a user was last seen.
    fn user_seen(&mut self, id: Uuid, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()>;
    /// Creates or replaces a grant on a session.
    fn save_grant(&mut self, session_id: Uuid, grant: &GrantRecord) -> anyhow::Result<()>;
    /// Removes a user's grant on a session; whether there was one.
    fn delete_grant(&mut self, session_id: Uuid, user_id: Uuid) -> anyhow::Result<bool>;
    /// A cheap query proving the database answers (for `/readyz`).
    fn check(&mut self) -> anyhow::Result<()>;
    /// Folds the write-ahead log into the database file (on a clean stop, so a copy of
    /// `hq.db` alone is complete).
    fn checkpoint(&mut self) -> anyhow::Result<()>;
}

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: runners, sessions, and room for tokens and the audit log.
    "CREATE TABLE runners (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        hostname TEXT NOT NULL,
        os TEXT NOT NULL,
        version TEXT NOT NULL,
        presets TEXT NOT NULL,
        connected_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        runner_id TEXT NOT NULL,
        command TEXT NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        signal TEXT,
        error TEXT,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        ended_at TEXT,
        output_bytes INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_runner ON sessions (runner_id);
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        scope TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT,
        action TEXT NOT NULL,
        target TEXT,
        address TEXT,
        detail TEXT
    );",
    // 2: share tokens name the one session they open.
    "ALTER TABLE tokens ADD COLUMN session_id TEXT;",
    // 3: the preset a session started from, so its prompt patterns survive a restart.
    "ALTER TABLE sessions ADD COLUMN preset TEXT;",
    // 4: why the output log stopped (a full disk), so a restart still says the log is short.
    "ALTER TABLE sessions ADD COLUMN log_error TEXT;",
    // 5: dashboard sign-ins, so a restart of HQ does not sign everyone out.
    "CREATE TABLE logins (
        hash BLOB PRIMARY KEY,
        token_id TEXT,
        static_hash BLOB,
        expires_at TEXT NOT NULL
    );",
    // 6: the name people gave a session.
    "ALTER TABLE sessions ADD COLUMN name TEXT;",
    // 7: tokens and cost: each session's totals, and sums per day, runner and user that outlive
    // the sessions (retention deletes sessions, not these).
    "ALTER TABLE sessions ADD COLUMN usage TEXT;
    CREATE TABLE usage_daily (
        day TEXT NOT NULL,
        runner_id TEXT NOT NULL,
        user TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_creation_tokens INTEGER NOT NULL,
        cost_usd REAL,
        PRIMARY KEY (day, runner_id, user)
    );",
    // 8: a session's git worktree on its runner (JSON: repo, branch, base, base commit, path,
    // last change summary, whether it was removed).
    "ALTER TABLE sessions ADD COLUMN workspace TEXT;",
    // 9: people. Users (the built-in admin, and one member per name of the `user` tokens made
    // before users existed); every token belongs to a user (`user` tokens to the member of
    // their name, every other token to the built-in admin, runner tokens enrolling shared
    // runners as before); sessions belong to the member named by `created_by`, else the
    // built-in admin; runners enrolled so far are shared (no owner). Grants on sessions, and
    // who is behind each sign-in and audit entry.
    "CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        last_seen_at TEXT,
        subject TEXT UNIQUE,
        source TEXT NOT NULL
    );
    CREATE UNIQUE INDEX users_by_email ON users (email) WHERE email <> '';
    INSERT INTO users (id, name, email, role, created_at, source)
        VALUES ('00000000-0000-4000-8000-000000000001', 'admin', '', 'admin',
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'builtin');
    INSERT INTO users (id, name, email, role, created_at, source)
        SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
                 || substr(lower(hex(randomblob(2))), 2) || '-a' || substr(lower(hex(randomblob(2))), 2)
                 || '-' || lower(hex(randomblob(6))),
               name, '', 'member', MIN(created_at), 'upgrade'
        FROM tokens WHERE scope = 'user' GROUP BY name;
    ALTER TABLE tokens ADD COLUMN user_id TEXT;
    ALTER TABLE tokens ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
    UPDATE tokens SET user_id = (SELECT u.id FROM users u WHERE u.source = 'upgrade' AND u.name = tokens.name)
        WHERE scope = 'user';
    UPDATE tokens SET user_id = '00000000-0000-4000-8000-000000000001', shared = (scope = 'runner')
        WHERE user_id IS NULL;
    ALTER TABLE sessions ADD COLUMN owner_id TEXT;
    UPDATE sessions SET owner_id = COALESCE(
        (SELECT u.id FROM users u WHERE u.source = 'upgrade' AND u.name = sessions.created_by),
        '00000000-0000-4000-8000-000000000001');
    ALTER TABLE runners ADD COLUMN owner_id TEXT;
    CREATE TABLE grants (
        session_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        access TEXT NOT NULL,
        granted_by TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (session_id, user_id)
    );
    ALTER TABLE logins ADD COLUMN user_id TEXT;
    ALTER TABLE audit ADD COLUMN user_id TEXT;
    ALTER TABLE audit ADD COLUMN user_name TEXT;",
];

/// SQLite in WAL mode.
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) `hq.db` in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        if !data_dir.exists() {
            // Session output can hold secrets agents printed: the owner only.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        }
        let path = data_dir.join("hq.db");
        let conn = Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL").context("enabling WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Self { conn };
        store.migrate().with_context(|| format!("migrating {}", path.display()))?;
        Ok(store)
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            bail!("the database is from a newer HQ (schema {version}, this HQ knows {})", MIGRATIONS.len());
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql).with_context(|| format!("migration {}", index + 1))?;
            tx.pragma_update(None, "user_version", (index + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }
}

fn status_text<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(text) => Ok(text),
        other => bail!("not a string enum: {other}"),
    }
}

/// A runner's presets as saved: objects, or the bare names an older HQ kept (now empty, since
/// a name alone cannot be started; the runner's next hello brings them back).
fn parse_presets(text: &str) -> Vec<agentrelay_protocol::Preset> {
    serde_json::from_str(text).unwrap_or_default()
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {e}").into(),
        )
    })
}

fn parse_time(text: &str) -> rusqlite::Result<chrono::DateTime<chrono::Utc>> {
    parse_json(&format!("\"{text}\""), "time")
}

fn parse_uuid(text: &str) -> rusqlite::Result<Uuid> {
    parse_json(&format!("\"{text}\""), "id")
}

/// The owner in columns `at` (id), `at + 1` (name), `at + 2` (e-mail) of a `LEFT JOIN users`.
fn owner_at(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<Owner>> {
    let Some(id) = row.get::<_, Option<String>>(at)? else { return Ok(None) };
    Ok(Some(Owner { id: parse_uuid(&id)?, name: row.get(at + 1)?, email: row.get(at + 2)? }))
}

impl Store for SqliteStore {
    fn load(&mut self) -> anyhow::Result<Snapshot> {
        let mut runners = Vec::new();
        let mut statement = self.conn.prepare(
            "SELECT r.id, r.name, r.labels, r.hostname, r.os, r.version, r.presets, r.connected_at,
                    r.last_seen_at, u.id, u.name, u.email
             FROM runners r LEFT JOIN users u ON u.id = r.owner_id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(Runner {
                id: parse_json(&format!("\"{}\"", row.get::<_, String>(0)?), "runner id")?,
                name: row.get(1)?,
                labels: parse_json(&row.get::<_, String>(2)?, "labels")?,
                // Nobody is connected to a freshly started HQ.
                status: RunnerStatus::Offline,
                hostname: row.get(3)?,
                os: row.get(4)?,
                version: row.get(5)?,
                presets: parse_presets(&row.get::<_, String>(6)?),
                // Its next hello says what it allows and offers; until then it is offline anyway.
                policy: Default::default(),
                repos: Vec::new(),
                owner: owner_at(row, 9)?,
                connected_at: parse_time(&row.get::<_, String>(7)?)?,
                last_seen_at: parse_time(&row.get::<_, String>(8)?)?,
            })
        })?;
        for runner in rows {
            runners.push(runner.context("reading a runner")?);
        }
        drop(statement);

        let mut sessions = Vec::new();
        let mut statement = self.conn.prepare(
            "SELECT s.id, s.runner_id, s.command, s.status, s.exit_code, s.signal, s.error, s.created_by,
                    s.created_at, s.ended_at, s.output_bytes, s.preset, s.log_error, s.name, s.usage,
                    s.workspace, u.id, u.name, u.email
             FROM sessions s LEFT JOIN users u ON u.id = s.owner_id ORDER BY s.id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(Session {
                id: parse_json(&format!("\"{}\"", row.get::<_, String>(0)?), "session id")?,
                runner_id: parse_json(&format!("\"{}\"", row.get::<_, String>(1)?), "runner id")?,
                command: parse_json(&row.get::<_, String>(2)?, "command")?,
                status: parse_json::<SessionStatus>(&format!("\"{}\"", row.get::<_, String>(3)?), "status")?,
                exit_code: row.get(4)?,
                signal: row.get(5)?,
                error: row.get(6)?,
                created_by: row.get(7)?,
                owner: owner_at(row, 16)?,
                created_at: parse_time(&row.get::<_, String>(8)?)?,
                ended_at: row.get::<_, Option<String>>(9)?.map(|t| parse_time(&t)).transpose()?,
                output_bytes: row.get::<_, i64>(10)?.max(0) as u64,
                preset: row.get(11)?,
                log_error: row.get(12)?,
                name: row.get(13)?,
                // Figures for people: a row whose usage cannot be read still loads, without them.
                usage: row.get::<_, Option<String>>(14)?.and_then(|u| serde_json::from_str(&u).ok()),
                workspace: row
                    .get::<_, Option<String>>(15)?
                    .map(|w| parse_json(&w, "workspace"))
                    .transpose()?,
                // Live state, rebuilt as the session goes on.
                activity: None,
                activity_since: None,
                activity_source: None,
                viewers: Vec::new(),
            })
        })?;
        for session in rows {
            sessions.push(session.context("reading a session")?);
        }
        drop(statement);

        let mut statement = self.conn.prepare(
            "SELECT session_id, user_id, access, granted_by, created_at FROM grants ORDER BY created_at",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                parse_uuid(&row.get::<_, String>(0)?)?,
                GrantRecord {
                    user_id: parse_uuid(&row.get::<_, String>(1)?)?,
                    access: parse_json(&format!("\"{}\"", row.get::<_, String>(2)?), "access")?,
                    granted_by: row.get::<_, Option<String>>(3)?.map(|id| parse_uuid(&id)).transpose()?,
                    created_at: parse_time(&row.get::<_, String>(4)?)?,
                },
            ))
        })?;
        let grants = rows.collect::<Result<_, _>>().context("reading grants")?;
        Ok(Snapshot { runners, sessions, grants })
    }

    fn apply(&mut self, changes: &[Change]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        for change in changes {
            match change {
                Change::Runner(r) => {
                    tx.prepare_cached(
                        "INSERT INTO runners (id, name, labels, hostname, os, version, presets, connected_at,
                           last_seen_at, owner_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (id) DO UPDATE SET name = ?2, labels = ?3, hostname = ?4, os = ?5,
                           version = ?6, presets = ?7, connected_at = ?8, last_seen_at = ?9, owner_id = ?10",
                    )?
                    .execute(params![
                        r.id.to_string(),
                        r.name,
                        serde_json::to_string(&r.labels)?,
                        r.hostname,
                        r.os,
                        r.version,
                        serde_json::to_string(&r.presets)?,
                        r.connected_at.to_rfc3339(),
                        r.last_seen_at.to_rfc3339(),
                        r.owner.as_ref().map(|o| o.id.to_string()),
                    ])?;
                }
                // Kept with the session's next save (its `workspace`), not on its own.
                Change::Changes { .. } => {}
                Change::SessionRemoved(id) => {
                    tx.prepare_cached("DELETE FROM sessions WHERE id = ?1")?
                        .execute(params![id.to_string()])?;
                    tx.prepare_cached("DELETE FROM grants WHERE session_id = ?1")?
                        .execute(params![id.to_string()])?;
                }
                Change::Session(s) => {
                    tx.prepare_cached(
                        "INSERT INTO sessions (id, runner_id, command, status, exit_code, signal, error,
                           created_by, created_at, ended_at, output_bytes, preset, log_error, name, usage,
                           workspace, owner_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
                         ON CONFLICT (id) DO UPDATE SET status = ?4, exit_code = ?5, signal = ?6, error = ?7,
                           ended_at = ?10, output_bytes = MAX(output_bytes, ?11), log_error = ?13, name = ?14,
                           usage = ?15, workspace = ?16",
                    )?
                    .execute(params![
                        s.id.to_string(),
                        s.runner_id.to_string(),
                        serde_json::to_string(&s.command)?,
                        status_text(&s.status)?,
                        s.exit_code,
                        s.signal,
                        s.error,
                        s.created_by,
                        s.created_at.to_rfc3339(),
                        s.ended_at.map(|t| t.to_rfc3339()),
                        i64::try_from(s.output_bytes).unwrap_or(i64::MAX),
                        s.preset,
                        s.log_error,
                        s.name,
                        s.usage.as_ref().map(serde_json::to_string).transpose()?,
                        s.workspace.as_ref().map(serde_json::to_string).transpose()?,
                        s.owner.as_ref().map(|o| o.id.to_string()),
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn append_audit(&mut self, entries: &[AuditEntry]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        for e in entries {
            tx.prepare_cached(
                "INSERT INTO audit (at, actor, action, target, address, detail, user_id, user_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                e.at.to_rfc3339(),
                e.actor,
                e.action,
                e.target,
                e.address,
                e.detail,
                e.user_id.map(|id| id.to_string()),
                e.user,
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn add_usage(&mut self, rows: &[UsageRow]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        for row in rows {
            let u = &row.usage;
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            tx.prepare_cached(
                "INSERT INTO usage_daily (day, runner_id, user, input_tokens, output_tokens,
                   cache_read_tokens, cache_creation_tokens, cost_usd)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (day, runner_id, user) DO UPDATE SET
                   input_tokens = input_tokens + ?4, output_tokens = output_tokens + ?5,
                   cache_read_tokens = cache_read_tokens + ?6,
                   cache_creation_tokens = cache_creation_tokens + ?7,
                   cost_usd = CASE WHEN cost_usd IS NULL AND ?8 IS NULL THEN NULL
                                   ELSE COALESCE(cost_usd, 0) + COALESCE(?8, 0) END",
            )?
            .execute(params![
                row.day,
                row.runner_id.to_string(),
                row.user,
                count(u.input_tokens),
                count(u.output_tokens),
                count(u.cache_read_tokens),
                count(u.cache_creation_tokens),
                u.cost_usd,
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn usage(&mut self, from: &str, to: &str) -> anyhow::Result<Vec<UsageRow>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT day, runner_id, user, input_tokens, output_tokens, cache_read_tokens,
                    cache_creation_tokens, cost_usd
             FROM usage_daily WHERE day >= ?1 AND day <= ?2 ORDER BY day, runner_id, user",
        )?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let rows = statement.query_map(params![from, to], |row| {
            Ok(UsageRow {
                day: row.get(0)?,
                runner_id: parse_json(&format!("\"{}\"", row.get::<_, String>(1)?), "runner id")?,
                runner: None,
                user: row.get(2)?,
                usage: agentrelay_protocol::Usage {
                    input_tokens: count(row.get(3)?),
                    output_tokens: count(row.get(4)?),
                    cache_read_tokens: count(row.get(5)?),
                    cache_creation_tokens: count(row.get(6)?),
                    cost_usd: row.get(7)?,
                    model: None,
                },
            })
        })?;
        rows.collect::<Result<_, _>>().context("reading usage figures")
    }

    fn audit(&mut self, limit: usize) -> anyhow::Result<Vec<AuditEntry>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT at, actor, action, target, address, detail, user_id, user_name FROM audit
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit as i64], |row| {
            Ok(AuditEntry {
                at: parse_time(&row.get::<_, String>(0)?)?,
                actor: row.get(1)?,
                action: row.get(2)?,
                target: row.get(3)?,
                address: row.get(4)?,
                detail: row.get(5)?,
                user_id: row.get::<_, Option<String>>(6)?.map(|id| parse_uuid(&id)).transpose()?,
                user: row.get(7)?,
            })
        })?;
        rows.collect::<Result<_, _>>().context("reading the audit log")
    }

    fn insert_token(&mut self, token: &TokenRecord) -> anyhow::Result<()> {
        let t = &token.info;
        self.conn.execute(
            "INSERT INTO tokens (id, name, scope, hash, created_at, expires_at, session_id, user_id, shared)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                t.id.to_string(),
                t.name,
                status_text(&t.scope)?,
                token.hash.as_slice(),
                t.created_at.to_rfc3339(),
                t.expires_at.map(|e| e.to_rfc3339()),
                t.session_id.map(|id| id.to_string()),
                token.user_id.to_string(),
                t.shared,
            ],
        )?;
        Ok(())
    }

    fn revoke_token(&mut self, id: Uuid) -> anyhow::Result<bool> {
        let changed = self.conn.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id.to_string(), chrono::Utc::now().to_rfc3339()],
        )?;
        Ok(changed == 1)
    }

    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .context("checkpointing the write-ahead log")
    }

    fn check(&mut self) -> anyhow::Result<()> {
        self.conn.query_row("SELECT 1", [], |_| Ok(())).context("the database does not answer")
    }

    fn insert_login(&mut self, login: &LoginRecord) -> anyhow::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO logins (hash, token_id, static_hash, expires_at, user_id)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                &login.hash[..],
                login.token_id.map(|id| id.to_string()),
                login.static_hash.as_ref().map(|h| &h[..]),
                login.expires_at.to_rfc3339(),
                login.user_id.map(|id| id.to_string()),
            ])
            .context("saving a sign-in")?;
        Ok(())
    }

    fn delete_login(&mut self, hash: [u8; 32]) -> anyhow::Result<()> {
        self.conn.prepare_cached("DELETE FROM logins WHERE hash = ?1")?.execute(params![&hash[..]])?;
        Ok(())
    }

    fn logins(&mut self) -> anyhow::Result<Vec<LoginRecord>> {
        let now = chrono::Utc::now();
        let mut statement = self
            .conn
            .prepare_cached("SELECT hash, token_id, static_hash, expires_at, user_id FROM logins")?;
        let rows = statement.query_map([], |row| {
            let hash: Vec<u8> = row.get(0)?;
            let token_id: Option<String> = row.get(1)?;
            let static_hash: Option<Vec<u8>> = row.get(2)?;
            let user_id: Option<String> = row.get(4)?;
            Ok((hash, token_id, static_hash, parse_time(&row.get::<_, String>(3)?)?, user_id))
        })?;
        let mut logins = Vec::new();
        let mut expired = Vec::new();
        for row in rows {
            let (hash, token_id, static_hash, expires_at, user_id) = row.context("reading a sign-in")?;
            let (Ok(hash), Ok(static_hash)) = (
                <[u8; 32]>::try_from(hash.as_slice()),
                static_hash.map(|h| <[u8; 32]>::try_from(h.as_slice())).transpose(),
            ) else {
                continue;
            };
            if expires_at <= now {
                expired.push(hash);
                continue;
            }
            let token_id = token_id.and_then(|id| id.parse().ok());
            let user_id = user_id.and_then(|id| id.parse().ok());
            logins.push(LoginRecord { hash, token_id, static_hash, expires_at, user_id });
        }
        drop(statement);
        for hash in expired {
            self.delete_login(hash)?;
        }
        Ok(logins)
    }

    fn users(&mut self) -> anyhow::Result<Vec<UserRecord>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, name, email, role, disabled, created_at, last_seen_at, subject FROM users ORDER BY created_at, id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(UserRecord {
                user: User {
                    id: parse_uuid(&row.get::<_, String>(0)?)?,
                    name: row.get(1)?,
                    email: row.get(2)?,
                    role: parse_json::<Role>(&format!("\"{}\"", row.get::<_, String>(3)?), "role")?,
                    disabled: row.get(4)?,
                    created_at: parse_time(&row.get::<_, String>(5)?)?,
                    last_seen_at: row.get::<_, Option<String>>(6)?.map(|t| parse_time(&t)).transpose()?,
                },
                subject: row.get(7)?,
            })
        })?;
        rows.collect::<Result<_, _>>().context("reading users")
    }

    fn save_user(&mut self, record: &UserRecord) -> anyhow::Result<()> {
        let u = &record.user;
        self.conn
            .prepare_cached(
                "INSERT INTO users (id, name, email, role, disabled, created_at, last_seen_at, subject, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'api')
                 ON CONFLICT (id) DO UPDATE SET name = ?2, email = ?3, role = ?4, disabled = ?5,
                   last_seen_at = ?7, subject = ?8",
            )?
            .execute(params![
                u.id.to_string(),
                u.name,
                u.email,
                status_text(&u.role)?,
                u.disabled,
                u.created_at.to_rfc3339(),
                u.last_seen_at.map(|t| t.to_rfc3339()),
                record.subject,
            ])
            .context("saving a user")?;
        Ok(())
    }

    fn user_seen(&mut self, id: Uuid, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
        self.conn
            .prepare_cached("UPDATE users SET last_seen_at = ?2 WHERE id = ?1")?
            .execute(params![id.to_string(), at.to_rfc3339()])?;
        Ok(())
    }

    fn save_grant(&mut self, session_id: Uuid, grant: &GrantRecord) -> anyhow::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO grants (session_id, user_id, access, granted_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (session_id, user_id) DO UPDATE SET access = ?3, granted_by = ?4, created_at = ?5",
            )?
            .execute(params![
                session_id.to_string(),
                grant.user_id.to_string(),
                status_text(&grant.access)?,
                grant.granted_by.map(|id| id.to_string()),
                grant.created_at.to_rfc3339(),
            ])
            .context("saving a grant")?;
        Ok(())
    }

    fn delete_grant(&mut self, session_id: Uuid, user_id: Uuid) -> anyhow::Result<bool> {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM grants WHERE session_id = ?1 AND user_id = ?2")?
            .execute(params![session_id.to_string(), user_id.to_string()])?;
        Ok(deleted == 1)
    }

    fn active_tokens(&mut self) -> anyhow::Result<Vec<TokenRecord>> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, name, scope, hash, created_at, expires_at, session_id, user_id, shared FROM tokens
             WHERE revoked_at IS NULL ORDER BY id",
        )?;
        let now = chrono::Utc::now();
        let rows = statement.query_map([], |row| {
            let hash: Vec<u8> = row.get(3)?;
            Ok(TokenRecord {
                info: TokenInfo {
                    id: parse_json(&format!("\"{}\"", row.get::<_, String>(0)?), "token id")?,
                    name: row.get(1)?,
                    scope: parse_json::<Scope>(&format!("\"{}\"", row.get::<_, String>(2)?), "scope")?,
                    created_at: parse_time(&row.get::<_, String>(4)?)?,
                    expires_at: row.get::<_, Option<String>>(5)?.map(|t| parse_time(&t)).transpose()?,
                    session_id: row
                        .get::<_, Option<String>>(6)?
                        .map(|id| parse_json(&format!("\"{id}\""), "token session"))
                        .transpose()?,
                    // Filled in from the user cache where the API shows it.
                    user: None,
                    shared: row.get(8)?,
                },
                hash: hash.try_into().unwrap_or([0; 32]),
                user_id: row
                    .get::<_, Option<String>>(7)?
                    .map(|id| parse_uuid(&id))
                    .transpose()?
                    .unwrap_or(BUILTIN_ADMIN),
            })
        })?;
        let tokens: Vec<TokenRecord> = rows.collect::<Result<_, _>>().context("reading tokens")?;
        Ok(tokens.into_iter().filter(|t| t.info.expires_at.is_none_or(|e| e > now)).collect())
    }
}

/// A closure run on the store thread, with access to the store.
type Call = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// Messages to the writer thread.
enum Op {
    Change(Change),
    Audit(AuditEntry),
    Usage(UsageRow),
    /// Runs after everything queued before it, e.g. a read or a token write.
    Call(Call),
}

/// The handle through which HQ persists changes; cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Op>,
}

impl StoreHandle {
    /// Queues a change for the writer thread; never blocks.
    pub fn save(&self, change: Change) {
        // Fails only after close(), when nothing more can be saved anyway.
        let _ = self.tx.send(Op::Change(change));
    }

    /// Queues an audit entry; never blocks.
    pub fn audit(&self, entry: AuditEntry) {
        let _ = self.tx.send(Op::Audit(entry));
    }

    /// Queues usage to add to its day's sums; never blocks.
    pub fn add_usage(&self, row: UsageRow) {
        let _ = self.tx.send(Op::Usage(row));
    }

    /// Runs `f` on the store thread after everything queued so far, and returns its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let call: Call = Box::new(move |store| {
            let _ = reply.send(f(store));
        });
        self.tx.send(Op::Call(call)).map_err(|_| anyhow::anyhow!("the store has stopped"))?;
        answer.await.map_err(|_| anyhow::anyhow!("the store has stopped"))?
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) {
        let _ = self.call(|_| Ok(())).await;
    }
}

/// Starts the writer thread for `store`. It runs until every handle is dropped; call
/// [`StoreHandle::flush`] before exiting to be sure everything is committed.
pub fn start_writer(mut store: Box<dyn Store>) -> anyhow::Result<StoreHandle> {
    let (tx, rx) = mpsc::channel::<Op>();
    std::thread::Builder::new()
        .name("hq-store".to_owned())
        .spawn(move || {
            // Batch whatever is queued into one transaction.
            while let Ok(first) = rx.recv() {
                let mut changes = Vec::new();
                let mut audits = Vec::new();
                let mut usage = Vec::new();
                let mut calls = Vec::new();
                for op in std::iter::once(first).chain(rx.try_iter().take(1024)) {
                    match op {
                        Op::Change(change) => changes.push(change),
                        Op::Audit(entry) => audits.push(entry),
                        Op::Usage(row) => usage.push(row),
                        Op::Call(call) => calls.push(call),
                    }
                }
                if let Err(error) = if changes.is_empty() { Ok(()) } else { store.apply(&changes) } {
                    tracing::error!(error = format!("{error:#}"), "cannot save state");
                }
                if let Err(error) = if audits.is_empty() { Ok(()) } else { store.append_audit(&audits) } {
                    tracing::error!(error = format!("{error:#}"), "cannot write the audit log");
                }
                if let Err(error) = if usage.is_empty() { Ok(()) } else { store.add_usage(&usage) } {
                    tracing::error!(error = format!("{error:#}"), "cannot save usage figures");
                }
                // Calls run after the writes queued before them.
                for call in calls {
                    call(store.as_mut());
                }
            }
        })
        .context("cannot start the store thread")?;
    Ok(StoreHandle { tx })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn runner() -> Runner {
        Runner {
            id: Uuid::now_v7(),
            name: "box".into(),
            labels: [("gpu".to_owned(), "true".to_owned())].into(),
            status: RunnerStatus::Online,
            hostname: "h".into(),
            os: "linux/x86_64".into(),
            version: "1".into(),
            presets: vec![agentrelay_protocol::Preset {
                name: "claude".into(),
                description: "Claude Code".into(),
                command: vec!["claude".into()],
                prompt_patterns: vec!["Do you want to".into()],
                takes_prompt: true,
            }],
            policy: Default::default(),
            repos: Vec::new(),
            owner: None,
            connected_at: Utc::now(),
            last_seen_at: Utc::now(),
        }
    }

    #[test]
    fn sign_ins_are_kept_until_they_expire() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = SqliteStore::open(dir.path()).expect("open");
        let live = LoginRecord {
            hash: [1; 32],
            token_id: Some(Uuid::now_v7()),
            static_hash: None,
            expires_at: Utc::now() + chrono::Duration::hours(1),
            user_id: None,
        };
        let admin = LoginRecord { hash: [2; 32], token_id: None, static_hash: Some([9; 32]), ..live.clone() };
        let old = LoginRecord {
            hash: [3; 32],
            expires_at: Utc::now() - chrono::Duration::seconds(1),
            ..live.clone()
        };
        for login in [&live, &admin, &old] {
            store.insert_login(login).expect("insert");
        }
        store.delete_login(admin.hash).expect("delete");
        let mut kept = store.logins().expect("logins");
        kept.iter_mut().for_each(|l| l.expires_at = live.expires_at);
        assert_eq!(kept, std::slice::from_ref(&live));
        let rows: i64 =
            store.conn.query_row("SELECT COUNT(*) FROM logins", [], |row| row.get(0)).expect("count");
        assert_eq!(rows, 1, "the expired one is gone from the table too");
    }

    #[test]
    fn usage_sums_per_day_runner_and_user() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = SqliteStore::open(dir.path()).expect("open");
        let runner = Uuid::now_v7();
        let row = |day: &str, user: &str, input: u64, cost: Option<f64>| UsageRow {
            day: day.into(),
            runner_id: runner,
            runner: None,
            user: user.into(),
            usage: agentrelay_protocol::Usage {
                input_tokens: input,
                output_tokens: 1,
                cost_usd: cost,
                ..Default::default()
            },
        };
        store
            .add_usage(&[row("2026-12-01", "ann", 10, None), row("2026-12-01", "ann", 5, Some(0.25))])
            .expect("add");
        store
            .add_usage(&[row("2026-12-01", "bob", 7, None), row("2026-12-03", "ann", 1, None)])
            .expect("add");
        let rows = store.usage("2026-12-01", "2026-12-02").expect("read");
        let summed: Vec<_> = rows
            .iter()
            .map(|r| (r.user.as_str(), r.usage.input_tokens, r.usage.output_tokens, r.usage.cost_usd))
            .collect();
        assert_eq!(summed, [("ann", 15, 2, Some(0.25)), ("bob", 7, 1, None)]);
        assert_eq!(store.usage("2026-12-03", "2026-12-03").expect("read").len(), 1);
    }

    #[test]
    fn state_survives_reopening_and_runners_come_back_offline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = runner();
        let mut session = Session {
            id: Uuid::now_v7(),
            runner_id: r.id,
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            status: SessionStatus::Running,
            exit_code: None,
            signal: None,
            error: None,
            created_by: "admin".into(),
            owner: Some(Owner { id: BUILTIN_ADMIN, name: "admin".into(), email: String::new() }),
            created_at: Utc::now(),
            ended_at: None,
            output_bytes: 10,
            preset: Some("claude".into()),
            name: Some("fix the bug".into()),
            activity: None,
            activity_since: None,
            activity_source: None,
            viewers: Vec::new(),
            log_error: None,
            usage: None,
            workspace: Some(agentrelay_protocol::workspace::Workspace {
                repo: "app".into(),
                branch: "agentrelay/01a2b3c4".into(),
                base: "main".into(),
                base_commit: "0123456789abcdef0123456789abcdef01234567".into(),
                path: "/state/workspaces/x".into(),
                changes: None,
                removed: false,
            }),
        };
        {
            let mut store = SqliteStore::open(dir.path()).expect("open");
            store
                .apply(&[Change::Runner(Box::new(r.clone())), Change::Session(Box::new(session.clone()))])
                .expect("apply");
            session.status = SessionStatus::Exited;
            session.exit_code = Some(3);
            session.ended_at = Some(Utc::now());
            session.output_bytes = 5; // never moves backwards
            session.log_error = Some("output log stopped at byte 7: disk full".into());
            session.usage = Some(agentrelay_protocol::Usage {
                input_tokens: 12,
                output_tokens: 34,
                cost_usd: Some(0.5),
                model: Some("m".into()),
                ..Default::default()
            });
            if let Some(workspace) = session.workspace.as_mut() {
                workspace.changes = Some(Default::default());
                workspace.removed = true;
            }
            store.apply(&[Change::Session(Box::new(session.clone()))]).expect("apply");
        }
        let mut store = SqliteStore::open(dir.path()).expect("reopen");
        let snapshot = store.load().expect("load");
        assert_eq!(snapshot.runners.len(), 1);
        assert_eq!(snapshot.runners[0].status, RunnerStatus::Offline);
        assert_eq!(snapshot.runners[0].labels, r.labels);
        let loaded = &snapshot.sessions[0];
        assert_eq!(
            (loaded.status, loaded.exit_code, loaded.output_bytes),
            (SessionStatus::Exited, Some(3), 10)
        );
        assert_eq!(loaded.command, session.command);
        assert_eq!(loaded.preset.as_deref(), Some("claude"));
        assert_eq!(loaded.name.as_deref(), Some("fix the bug"));
        assert_eq!(loaded.log_error, session.log_error);
        assert_eq!(loaded.usage, session.usage);
        assert_eq!(loaded.workspace, session.workspace);
        assert_eq!(loaded.owner, session.owner);
        let tokens: i64 =
            store.conn.query_row("SELECT COUNT(*) FROM tokens", [], |row| row.get(0)).expect("tokens table");
        assert_eq!(tokens, 0);
    }

    /// An HQ of schema 8 (before users) upgraded: each `user` token's name becomes a member who
    /// holds those tokens and owns the sessions made with them; admin, runner and share tokens
    /// belong to the built-in admin, runner tokens enroll shared runners as before, other
    /// sessions belong to the built-in admin, and runners stay shared.
    #[test]
    fn an_upgrade_maps_every_token_and_session_to_a_user() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let conn = Connection::open(dir.path().join("hq.db")).expect("raw open");
            for sql in &MIGRATIONS[..8] {
                conn.execute_batch(sql).expect("old schema");
            }
            conn.pragma_update(None, "user_version", 8).expect("version");
            let token = |id: &str, name: &str, scope: &str, revoked: Option<&str>| {
                conn.execute(
                    "INSERT INTO tokens (id, name, scope, hash, created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, name, scope, id.as_bytes(), "2026-01-01T00:00:00Z", revoked],
                )
                .expect("token");
            };
            token("00000000-0000-7000-8000-00000000000a", "ann", "user", None);
            token("00000000-0000-7000-8000-00000000000b", "ann", "user", None);
            token("00000000-0000-7000-8000-00000000000c", "bob", "user", Some("2026-02-01T00:00:00Z"));
            token("00000000-0000-7000-8000-00000000000d", "ops", "admin", None);
            token("00000000-0000-7000-8000-00000000000e", "gpu-box", "runner", None);
            let session = |id: &str, by: &str| {
                conn.execute(
                    "INSERT INTO sessions (id, runner_id, command, status, created_by, created_at, output_bytes)
                     VALUES (?1, '00000000-0000-7000-8000-0000000000ff', '[\"sh\"]', 'exited', ?2,
                             '2026-01-01T00:00:00Z', 0)",
                    params![id, by],
                )
                .expect("session");
            };
            session("00000000-0000-7000-8000-000000000001", "ann");
            session("00000000-0000-7000-8000-000000000002", "bob");
            session("00000000-0000-7000-8000-000000000003", "ops");
            conn.execute(
                "INSERT INTO runners (id, name, labels, hostname, os, version, presets, connected_at, last_seen_at)
                 VALUES ('00000000-0000-7000-8000-0000000000ff', 'box', '{}', 'h', 'linux', '1', '[]',
                         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                [],
            )
            .expect("runner");
        }
        let mut store = SqliteStore::open(dir.path()).expect("upgrade");
        let users = store.users().expect("users");
        let named = |name: &str| users.iter().find(|u| u.user.name == name).map(|u| u.user.clone());
        let admin = named("admin").expect("the built-in admin");
        assert_eq!((admin.id, admin.role), (BUILTIN_ADMIN, Role::Admin));
        let (ann, bob) = (named("ann").expect("ann"), named("bob").expect("bob"));
        assert_eq!((ann.role, bob.role), (Role::Member, Role::Member));
        assert_eq!(users.len(), 3, "no user for admin or runner token names: {users:?}");
        let tokens = store.active_tokens().expect("tokens");
        let holder = |id: &str| {
            tokens.iter().find(|t| t.info.id.to_string() == id).map(|t| (t.user_id, t.info.shared))
        };
        assert_eq!(holder("00000000-0000-7000-8000-00000000000a"), Some((ann.id, false)));
        assert_eq!(holder("00000000-0000-7000-8000-00000000000b"), Some((ann.id, false)));
        assert_eq!(holder("00000000-0000-7000-8000-00000000000d"), Some((BUILTIN_ADMIN, false)));
        assert_eq!(holder("00000000-0000-7000-8000-00000000000e"), Some((BUILTIN_ADMIN, true)));
        let snapshot = store.load().expect("load");
        let owner = |n: usize| snapshot.sessions[n].owner.as_ref().map(|o| o.id);
        assert_eq!([owner(0), owner(1), owner(2)], [Some(ann.id), Some(bob.id), Some(BUILTIN_ADMIN)]);
        assert_eq!(snapshot.runners[0].owner, None, "runners enrolled before users are shared");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(SqliteStore::open(dir.path()).expect("open"));
        let conn = Connection::open(dir.path().join("hq.db")).expect("raw open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        let error = SqliteStore::open(dir.path()).err().expect("refused");
        assert!(format!("{error:#}").contains("newer HQ"), "{error:#}");
    }
}
