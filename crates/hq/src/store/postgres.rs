//! The [`Store`] in PostgreSQL (`--database-url postgres://…`): the same tables as SQLite, plus
//! what a cluster of replicas shares (session output, stream leases, sign-in attempts; see
//! `crate::cluster`). It runs on the store's one writer thread like SQLite, through the blocking
//! `postgres` client; the output path uses its own async connections.
//!
//! A dropped connection (PostgreSQL restarted, a network blip) is dialled again, and the call
//! that found it dropped is retried, for up to [`OUTAGE`]: the writer thread waits meanwhile, so
//! changes queue up instead of being lost.

use std::time::{Duration, Instant};

use agentrelay_protocol::{
    AuditEntry, Owner, Role, Runner, RunnerStatus, Scope, Session, SessionStatus, TokenInfo, UsageRow, User,
};
use anyhow::{Context, bail};
use postgres::{Client, NoTls, Row};
use serde_json::Value;
use uuid::Uuid;

use super::{
    BUILTIN_ADMIN, Change, GrantRecord, LoginRecord, Snapshot, Store, TokenRecord, UserRecord, status_text,
};

/// How long a call keeps redialling a database that went away before it gives up.
pub const OUTAGE: Duration = Duration::from_secs(60);

/// Schema versions, applied in order; `agentrelay_schema.version` records how many ran. Version 1
/// is SQLite's schema 9 (users and grants) plus the cluster's tables.
const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite has at its schema 9, and what replicas share: output chunks by offset
    // (`output_chunks`; the resizes and write times of `output_timing` for recordings), one lease
    // per live session stream with its fencing number (`stream_leases`), and sign-in attempts per
    // address and minute (`login_attempts`).
    "CREATE TABLE users (
        id UUID PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMPTZ NOT NULL,
        last_seen_at TIMESTAMPTZ,
        subject TEXT UNIQUE,
        source TEXT NOT NULL
    );
    CREATE UNIQUE INDEX users_by_email ON users (email) WHERE email <> '';
    INSERT INTO users (id, name, email, role, created_at, source)
        VALUES ('00000000-0000-4000-8000-000000000001', 'admin', '', 'admin', now(), 'builtin');
    CREATE TABLE runners (
        id UUID PRIMARY KEY,
        name TEXT NOT NULL,
        labels JSONB NOT NULL,
        hostname TEXT NOT NULL,
        os TEXT NOT NULL,
        version TEXT NOT NULL,
        presets JSONB NOT NULL,
        connected_at TIMESTAMPTZ NOT NULL,
        last_seen_at TIMESTAMPTZ NOT NULL,
        owner_id UUID
    );
    CREATE TABLE sessions (
        id UUID PRIMARY KEY,
        runner_id UUID NOT NULL,
        command JSONB NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        signal TEXT,
        error TEXT,
        created_by TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        ended_at TIMESTAMPTZ,
        output_bytes BIGINT NOT NULL,
        preset TEXT,
        log_error TEXT,
        name TEXT,
        usage JSONB,
        workspace JSONB,
        owner_id UUID
    );
    CREATE INDEX sessions_by_runner ON sessions (runner_id);
    CREATE TABLE tokens (
        id UUID PRIMARY KEY,
        name TEXT NOT NULL,
        scope TEXT NOT NULL,
        hash BYTEA NOT NULL UNIQUE,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ,
        revoked_at TIMESTAMPTZ,
        session_id UUID,
        user_id UUID,
        shared BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL,
        actor TEXT,
        action TEXT NOT NULL,
        target TEXT,
        address TEXT,
        detail TEXT,
        user_id UUID,
        user_name TEXT
    );
    CREATE TABLE logins (
        hash BYTEA PRIMARY KEY,
        token_id UUID,
        static_hash BYTEA,
        expires_at TIMESTAMPTZ NOT NULL,
        user_id UUID
    );
    CREATE TABLE usage_daily (
        day TEXT NOT NULL,
        runner_id UUID NOT NULL,
        user_name TEXT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cache_read_tokens BIGINT NOT NULL,
        cache_creation_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION,
        PRIMARY KEY (day, runner_id, user_name)
    );
    CREATE TABLE grants (
        session_id UUID NOT NULL,
        user_id UUID NOT NULL,
        access TEXT NOT NULL,
        granted_by UUID,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (session_id, user_id)
    );
    CREATE TABLE output_chunks (
        session_id UUID NOT NULL,
        start_offset BIGINT NOT NULL,
        end_offset BIGINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (session_id, start_offset)
    );
    CREATE INDEX output_chunks_by_end ON output_chunks (session_id, end_offset);
    CREATE TABLE output_timing (
        id BIGSERIAL PRIMARY KEY,
        session_id UUID NOT NULL,
        line TEXT NOT NULL
    );
    CREATE INDEX output_timing_by_session ON output_timing (session_id, id);
    CREATE TABLE stream_leases (
        session_id UUID PRIMARY KEY,
        replica TEXT NOT NULL,
        fence BIGINT NOT NULL,
        taken_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE login_attempts (
        address TEXT NOT NULL,
        minute TIMESTAMPTZ NOT NULL,
        attempts INTEGER NOT NULL,
        PRIMARY KEY (address, minute)
    );",
    // 2: output is compressed with lz4, not PostgreSQL's default pglz, which compresses text at
    // some 35 MB/s on one core and so capped how fast a session's output could be stored (and
    // acknowledged). lz4 writes ten times faster and still halves terminal output. A server built
    // without lz4 stores output uncompressed instead.
    "DO $$ BEGIN
        ALTER TABLE output_chunks ALTER COLUMN data SET COMPRESSION lz4;
    EXCEPTION WHEN OTHERS THEN
        ALTER TABLE output_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
    END $$;",
];

/// Sessions' statuses in the order they move, so a save never takes one back (two replicas may
/// save the same session from views of different ages).
const STATUS_RANK: &str = "CASE {col} WHEN 'starting' THEN 0 WHEN 'running' THEN 1 ELSE 2 END";

/// HQ's state in PostgreSQL.
pub struct PgStore {
    url: String,
    client: Client,
}

/// Connects without TLS (a private network or a local socket; see docs/operations.md).
fn connect(url: &str) -> anyhow::Result<Client> {
    let mut config: postgres::Config = url.parse().context("--database-url is not a PostgreSQL URL")?;
    config.connect_timeout(Duration::from_secs(5));
    if config.get_application_name().is_none() {
        config.application_name("agentrelay-hq");
    }
    config.connect(NoTls).context("cannot connect to PostgreSQL")
}

impl PgStore {
    /// Connects to `url` and brings the schema up to date.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let client = connect(url)?;
        let mut store = Self { url: url.to_owned(), client };
        store.migrate().context("migrating the PostgreSQL schema")?;
        Ok(store)
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        let mut tx = self.client.transaction()?;
        // One replica migrates at a time; the others wait here and then find nothing to do.
        tx.execute("SELECT pg_advisory_xact_lock(7243110018)", &[])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS agentrelay_schema (version INTEGER NOT NULL)")?;
        let version: Option<i32> =
            tx.query_opt("SELECT version FROM agentrelay_schema", &[])?.map(|row| row.get(0));
        let version = match version {
            Some(version) => usize::try_from(version).unwrap_or(usize::MAX),
            None => {
                tx.execute("INSERT INTO agentrelay_schema (version) VALUES (0)", &[])?;
                0
            }
        };
        if version > MIGRATIONS.len() {
            bail!("the database is from a newer HQ (schema {version}, this HQ knows {})", MIGRATIONS.len());
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch_execute(sql).with_context(|| format!("migration {}", index + 1))?;
            tx.execute("UPDATE agentrelay_schema SET version = $1", &[&((index + 1) as i32)])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether no session is stored yet (`admin migrate` copies only into an empty database).
    pub fn holds_no_sessions(&mut self) -> anyhow::Result<bool> {
        let count: i64 = self.retry(|client| client.query_one("SELECT COUNT(*) FROM sessions", &[]))?.get(0);
        Ok(count == 0)
    }

    /// Stores a piece of a session's output (`admin migrate`).
    pub fn import_output(&mut self, session: Uuid, offset: u64, data: &[u8]) -> anyhow::Result<()> {
        let (start, end) = (offset as i64, (offset + data.len() as u64) as i64);
        self.retry(|client| {
            client.execute(
                "INSERT INTO output_chunks (session_id, start_offset, end_offset, data) VALUES ($1, $2, $3, $4)",
                &[&session, &start, &end, &data],
            )
        })?;
        Ok(())
    }

    /// Stores a session's timing lines (`admin migrate`).
    pub fn import_timing(&mut self, session: Uuid, lines: &[&str]) -> anyhow::Result<()> {
        let sessions = vec![session; lines.len()];
        self.retry(|client| {
            client.execute(
                "INSERT INTO output_timing (session_id, line) SELECT * FROM unnest($1::uuid[], $2::text[])",
                &[&sessions, &lines],
            )
        })?;
        Ok(())
    }

    /// Runs `op`, dialling again and retrying while the connection is down (up to [`OUTAGE`]).
    fn retry<T>(
        &mut self,
        mut op: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + OUTAGE;
        let mut delay = Duration::from_millis(100);
        loop {
            if !self.client.is_closed() {
                match op(&mut self.client) {
                    Ok(value) => return Ok(value),
                    Err(error) if !self.client.is_closed() && !is_connection_error(&error) => {
                        return Err(error.into());
                    }
                    Err(error) => tracing::warn!(%error, "PostgreSQL connection lost; redialling"),
                }
            }
            if Instant::now() >= deadline {
                bail!("PostgreSQL has not answered for {OUTAGE:?}");
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
            match connect(&self.url) {
                Ok(client) => self.client = client,
                Err(error) => tracing::debug!(error = format!("{error:#}"), "PostgreSQL still down"),
            }
        }
    }
}

/// Whether an error means the connection (not the statement) failed.
pub fn is_connection_error(error: &postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Class 08 (connection exception) and 57P0x (the server is shutting down or restarting).
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        // No SQL state: an I/O error on the socket.
        None => error.as_db_error().is_none(),
    }
}

fn owner(row: &Row, at: usize) -> Option<Owner> {
    let id: Option<Uuid> = row.get(at);
    id.map(|id| Owner { id, name: row.get(at + 1), email: row.get(at + 2) })
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(value).with_context(|| format!("reading {what}"))
}

fn enum_text<T: serde::de::DeserializeOwned>(text: String, what: &str) -> anyhow::Result<T> {
    from_json(Value::String(text), what)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn runner_row(row: &Row) -> anyhow::Result<Runner> {
    Ok(Runner {
        id: row.get(0),
        name: row.get(1),
        labels: from_json(row.get(2), "labels")?,
        status: RunnerStatus::Offline,
        hostname: row.get(3),
        os: row.get(4),
        version: row.get(5),
        presets: serde_json::from_value(row.get(6)).unwrap_or_default(),
        policy: Default::default(),
        repos: Vec::new(),
        owner: owner(row, 9),
        connected_at: row.get(7),
        last_seen_at: row.get(8),
    })
}

/// The columns [`session_row`] reads, from `sessions s LEFT JOIN users u`.
pub(crate) const SESSION_COLUMNS: &str =
    "s.id, s.runner_id, s.command, s.status, s.exit_code, s.signal, s.error,
    s.created_by, s.created_at, s.ended_at, s.output_bytes, s.preset, s.log_error, s.name, s.usage,
    s.workspace, u.id, u.name, u.email";

/// A session from a row of [`SESSION_COLUMNS`].
pub(crate) fn session_row(row: &Row) -> anyhow::Result<Session> {
    Ok(Session {
        id: row.get(0),
        runner_id: row.get(1),
        command: from_json(row.get(2), "command")?,
        status: enum_text::<SessionStatus>(row.get(3), "status")?,
        exit_code: row.get(4),
        signal: row.get(5),
        error: row.get(6),
        created_by: row.get(7),
        owner: owner(row, 16),
        created_at: row.get(8),
        ended_at: row.get(9),
        output_bytes: row.get::<_, i64>(10).max(0) as u64,
        preset: row.get(11),
        log_error: row.get(12),
        name: row.get(13),
        usage: row.get::<_, Option<Value>>(14).and_then(|u| serde_json::from_value(u).ok()),
        workspace: row.get::<_, Option<Value>>(15).map(|w| from_json(w, "workspace")).transpose()?,
        activity: None,
        activity_since: None,
        activity_source: None,
        viewers: Vec::new(),
    })
}

/// Saves one change inside a transaction.
fn apply_change(tx: &mut postgres::Transaction<'_>, change: &Change) -> Result<(), postgres::Error> {
    match change {
        Change::Runner(r) => {
            tx.execute(
                "INSERT INTO runners (id, name, labels, hostname, os, version, presets, connected_at,
                   last_seen_at, owner_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET name = $2, labels = $3, hostname = $4, os = $5,
                   version = $6, presets = $7, connected_at = $8, last_seen_at = $9, owner_id = $10",
                &[
                    &r.id,
                    &r.name,
                    &serde_json::to_value(&r.labels).unwrap_or_default(),
                    &r.hostname,
                    &r.os,
                    &r.version,
                    &serde_json::to_value(&r.presets).unwrap_or_default(),
                    &r.connected_at,
                    &r.last_seen_at,
                    &r.owner.as_ref().map(|o| o.id),
                ],
            )?;
        }
        Change::Changes { .. } => {}
        Change::SessionRemoved(id) => {
            tx.execute("DELETE FROM sessions WHERE id = $1", &[id])?;
            tx.execute("DELETE FROM grants WHERE session_id = $1", &[id])?;
            tx.execute("DELETE FROM output_chunks WHERE session_id = $1", &[id])?;
            tx.execute("DELETE FROM output_timing WHERE session_id = $1", &[id])?;
            tx.execute("DELETE FROM stream_leases WHERE session_id = $1", &[id])?;
        }
        Change::Session(s) => {
            let old = STATUS_RANK.replace("{col}", "sessions.status");
            let new = STATUS_RANK.replace("{col}", "EXCLUDED.status");
            // A view older than the row (another replica's, of a session that has moved on)
            // never takes the status, the exit or the end back.
            let sql = format!(
                "INSERT INTO sessions (id, runner_id, command, status, exit_code, signal, error,
                   created_by, created_at, ended_at, output_bytes, preset, log_error, name, usage,
                   workspace, owner_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                 ON CONFLICT (id) DO UPDATE SET
                   status = CASE WHEN {new} >= {old} THEN EXCLUDED.status ELSE sessions.status END,
                   exit_code = CASE WHEN {new} >= {old} THEN EXCLUDED.exit_code ELSE sessions.exit_code END,
                   signal = CASE WHEN {new} >= {old} THEN EXCLUDED.signal ELSE sessions.signal END,
                   error = CASE WHEN {new} >= {old} THEN EXCLUDED.error ELSE sessions.error END,
                   ended_at = CASE WHEN {new} >= {old} THEN EXCLUDED.ended_at ELSE sessions.ended_at END,
                   output_bytes = GREATEST(sessions.output_bytes, EXCLUDED.output_bytes),
                   log_error = COALESCE(EXCLUDED.log_error, sessions.log_error), name = EXCLUDED.name,
                   usage = EXCLUDED.usage, workspace = EXCLUDED.workspace"
            );
            let status = status_text(&s.status).unwrap_or_default();
            tx.execute(
                sql.as_str(),
                &[
                    &s.id,
                    &s.runner_id,
                    &serde_json::to_value(&s.command).unwrap_or_default(),
                    &status,
                    &s.exit_code,
                    &s.signal,
                    &s.error,
                    &s.created_by,
                    &s.created_at,
                    &s.ended_at,
                    &count(s.output_bytes),
                    &s.preset,
                    &s.log_error,
                    &s.name,
                    &s.usage.as_ref().and_then(|u| serde_json::to_value(u).ok()),
                    &s.workspace.as_ref().and_then(|w| serde_json::to_value(w).ok()),
                    &s.owner.as_ref().map(|o| o.id),
                ],
            )?;
        }
    }
    Ok(())
}

impl Store for PgStore {
    fn load(&mut self) -> anyhow::Result<Snapshot> {
        let (runners, sessions, grants) = self.retry(|client| {
            let runners = client.query(
                "SELECT r.id, r.name, r.labels, r.hostname, r.os, r.version, r.presets, r.connected_at,
                        r.last_seen_at, u.id, u.name, u.email
                 FROM runners r LEFT JOIN users u ON u.id = r.owner_id",
                &[],
            )?;
            let sessions = client.query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions s LEFT JOIN users u ON u.id = s.owner_id ORDER BY s.id"
                ),
                &[],
            )?;
            let grants = client.query(
                "SELECT session_id, user_id, access, granted_by, created_at FROM grants ORDER BY created_at",
                &[],
            )?;
            Ok((runners, sessions, grants))
        })?;
        let runners = runners.iter().map(runner_row).collect::<anyhow::Result<_>>()?;
        let sessions = sessions.iter().map(session_row).collect::<anyhow::Result<_>>()?;
        let grants = grants
            .iter()
            .map(|row| {
                Ok((
                    row.get(0),
                    GrantRecord {
                        user_id: row.get(1),
                        access: enum_text(row.get(2), "access")?,
                        granted_by: row.get(3),
                        created_at: row.get(4),
                    },
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Snapshot { runners, sessions, grants })
    }

    fn apply(&mut self, changes: &[Change]) -> anyhow::Result<()> {
        self.retry(|client| {
            let mut tx = client.transaction()?;
            for change in changes {
                apply_change(&mut tx, change)?;
            }
            tx.commit()
        })
    }

    fn append_audit(&mut self, entries: &[AuditEntry]) -> anyhow::Result<()> {
        self.retry(|client| {
            let mut tx = client.transaction()?;
            for e in entries {
                tx.execute(
                    "INSERT INTO audit (at, actor, action, target, address, detail, user_id, user_name)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[&e.at, &e.actor, &e.action, &e.target, &e.address, &e.detail, &e.user_id, &e.user],
                )?;
            }
            tx.commit()
        })
    }

    fn audit(&mut self, limit: usize) -> anyhow::Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.retry(|client| {
            client.query(
                "SELECT at, actor, action, target, address, detail, user_id, user_name FROM audit
                 ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
        })?;
        Ok(rows
            .iter()
            .map(|row| AuditEntry {
                at: row.get(0),
                actor: row.get(1),
                action: row.get(2),
                target: row.get(3),
                address: row.get(4),
                detail: row.get(5),
                user_id: row.get(6),
                user: row.get(7),
            })
            .collect())
    }

    fn insert_token(&mut self, token: &TokenRecord) -> anyhow::Result<()> {
        let t = &token.info;
        let scope = status_text(&t.scope)?;
        self.retry(|client| {
            client.execute(
                "INSERT INTO tokens (id, name, scope, hash, created_at, expires_at, session_id, user_id, shared)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &t.id,
                    &t.name,
                    &scope,
                    &token.hash.as_slice(),
                    &t.created_at,
                    &t.expires_at,
                    &t.session_id,
                    &token.user_id,
                    &t.shared,
                ],
            )
        })?;
        Ok(())
    }

    fn revoke_token(&mut self, id: Uuid) -> anyhow::Result<bool> {
        let changed = self.retry(|client| {
            client
                .execute("UPDATE tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", &[&id])
        })?;
        Ok(changed == 1)
    }

    fn active_tokens(&mut self) -> anyhow::Result<Vec<TokenRecord>> {
        let rows = self.retry(|client| {
            client.query(
                "SELECT id, name, scope, hash, created_at, expires_at, session_id, user_id, shared FROM tokens
                 WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) ORDER BY id",
                &[],
            )
        })?;
        rows.iter()
            .map(|row| {
                let hash: Vec<u8> = row.get(3);
                Ok(TokenRecord {
                    info: TokenInfo {
                        id: row.get(0),
                        name: row.get(1),
                        scope: enum_text::<Scope>(row.get(2), "scope")?,
                        created_at: row.get(4),
                        expires_at: row.get(5),
                        session_id: row.get(6),
                        user: None,
                        shared: row.get(8),
                    },
                    hash: hash.try_into().unwrap_or([0; 32]),
                    user_id: row.get::<_, Option<Uuid>>(7).unwrap_or(BUILTIN_ADMIN),
                })
            })
            .collect()
    }

    fn insert_login(&mut self, login: &LoginRecord) -> anyhow::Result<()> {
        self.retry(|client| {
            client.execute(
                "INSERT INTO logins (hash, token_id, static_hash, expires_at, user_id) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &login.hash.as_slice(),
                    &login.token_id,
                    &login.static_hash.as_ref().map(|h| h.as_slice()),
                    &login.expires_at,
                    &login.user_id,
                ],
            )
        })?;
        Ok(())
    }

    fn delete_login(&mut self, hash: [u8; 32]) -> anyhow::Result<()> {
        self.retry(|client| client.execute("DELETE FROM logins WHERE hash = $1", &[&hash.as_slice()]))?;
        Ok(())
    }

    fn logins(&mut self) -> anyhow::Result<Vec<LoginRecord>> {
        let rows = self.retry(|client| {
            client.execute("DELETE FROM logins WHERE expires_at <= now()", &[])?;
            client.query("SELECT hash, token_id, static_hash, expires_at, user_id FROM logins", &[])
        })?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let hash: Vec<u8> = row.get(0);
                let static_hash: Option<Vec<u8>> = row.get(2);
                let hash = <[u8; 32]>::try_from(hash.as_slice()).ok()?;
                let static_hash = static_hash.map(|h| <[u8; 32]>::try_from(h.as_slice())).transpose().ok()?;
                Some(LoginRecord {
                    hash,
                    token_id: row.get(1),
                    static_hash,
                    expires_at: row.get(3),
                    user_id: row.get(4),
                })
            })
            .collect())
    }

    fn add_usage(&mut self, rows: &[UsageRow]) -> anyhow::Result<()> {
        self.retry(|client| {
            let mut tx = client.transaction()?;
            for row in rows {
                let u = &row.usage;
                tx.execute(
                    "INSERT INTO usage_daily (day, runner_id, user_name, input_tokens, output_tokens,
                       cache_read_tokens, cache_creation_tokens, cost_usd)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (day, runner_id, user_name) DO UPDATE SET
                       input_tokens = usage_daily.input_tokens + $4,
                       output_tokens = usage_daily.output_tokens + $5,
                       cache_read_tokens = usage_daily.cache_read_tokens + $6,
                       cache_creation_tokens = usage_daily.cache_creation_tokens + $7,
                       cost_usd = CASE WHEN usage_daily.cost_usd IS NULL AND $8::DOUBLE PRECISION IS NULL THEN NULL
                                       ELSE COALESCE(usage_daily.cost_usd, 0) + COALESCE($8, 0) END",
                    &[
                        &row.day,
                        &row.runner_id,
                        &row.user,
                        &count(u.input_tokens),
                        &count(u.output_tokens),
                        &count(u.cache_read_tokens),
                        &count(u.cache_creation_tokens),
                        &u.cost_usd,
                    ],
                )?;
            }
            tx.commit()
        })
    }

    fn usage(&mut self, from: &str, to: &str) -> anyhow::Result<Vec<UsageRow>> {
        let rows = self.retry(|client| {
            client.query(
                "SELECT day, runner_id, user_name, input_tokens, output_tokens, cache_read_tokens,
                        cache_creation_tokens, cost_usd
                 FROM usage_daily WHERE day >= $1 AND day <= $2 ORDER BY day, runner_id, user_name",
                &[&from, &to],
            )
        })?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(rows
            .iter()
            .map(|row| UsageRow {
                day: row.get(0),
                runner_id: row.get(1),
                runner: None,
                user: row.get(2),
                usage: agentrelay_protocol::Usage {
                    input_tokens: count(row.get(3)),
                    output_tokens: count(row.get(4)),
                    cache_read_tokens: count(row.get(5)),
                    cache_creation_tokens: count(row.get(6)),
                    cost_usd: row.get(7),
                    model: None,
                },
            })
            .collect())
    }

    fn users(&mut self) -> anyhow::Result<Vec<UserRecord>> {
        let rows = self.retry(|client| {
            client.query(
                "SELECT id, name, email, role, disabled, created_at, last_seen_at, subject FROM users
                 ORDER BY created_at, id",
                &[],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(UserRecord {
                    user: User {
                        id: row.get(0),
                        name: row.get(1),
                        email: row.get(2),
                        role: enum_text::<Role>(row.get(3), "role")?,
                        disabled: row.get(4),
                        created_at: row.get(5),
                        last_seen_at: row.get(6),
                    },
                    subject: row.get(7),
                })
            })
            .collect()
    }

    fn save_user(&mut self, record: &UserRecord) -> anyhow::Result<()> {
        let u = &record.user;
        let role = status_text(&u.role)?;
        self.retry(|client| {
            client.execute(
                "INSERT INTO users (id, name, email, role, disabled, created_at, last_seen_at, subject, source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'api')
                 ON CONFLICT (id) DO UPDATE SET name = $2, email = $3, role = $4, disabled = $5,
                   last_seen_at = $7, subject = $8",
                &[&u.id, &u.name, &u.email, &role, &u.disabled, &u.created_at, &u.last_seen_at, &record.subject],
            )
        })
        .context("saving a user")?;
        Ok(())
    }

    fn user_seen(&mut self, id: Uuid, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
        self.retry(|client| client.execute("UPDATE users SET last_seen_at = $2 WHERE id = $1", &[&id, &at]))?;
        Ok(())
    }

    fn save_grant(&mut self, session_id: Uuid, grant: &GrantRecord) -> anyhow::Result<()> {
        let access = status_text(&grant.access)?;
        self.retry(|client| {
            client.execute(
                "INSERT INTO grants (session_id, user_id, access, granted_by, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (session_id, user_id) DO UPDATE SET access = $3, granted_by = $4, created_at = $5",
                &[&session_id, &grant.user_id, &access, &grant.granted_by, &grant.created_at],
            )
        })
        .context("saving a grant")?;
        Ok(())
    }

    fn delete_grant(&mut self, session_id: Uuid, user_id: Uuid) -> anyhow::Result<bool> {
        let deleted = self.retry(|client| {
            client.execute(
                "DELETE FROM grants WHERE session_id = $1 AND user_id = $2",
                &[&session_id, &user_id],
            )
        })?;
        Ok(deleted == 1)
    }

    fn check(&mut self) -> anyhow::Result<()> {
        // Not through `retry`: readiness wants the truth now, not after an outage.
        if self.client.is_closed() {
            self.client = connect(&self.url)?;
        }
        self.client.simple_query("SELECT 1").context("PostgreSQL does not answer")?;
        Ok(())
    }

    fn checkpoint(&mut self) -> anyhow::Result<()> {
        // PostgreSQL keeps its own write-ahead log; nothing to fold.
        Ok(())
    }
}
