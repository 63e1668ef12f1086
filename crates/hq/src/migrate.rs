//! `agentrelay-hq admin migrate --to postgres://…`: moves a single HQ's state (its SQLite
//! database and session logs in `--data-dir`) into an empty PostgreSQL database, for a cluster
//! of replicas to start on. The data dir is only read.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};

use crate::store::postgres::PgStore;
use crate::store::{Change, SqliteStore, Store};

/// Bytes of a session log copied per row.
const CHUNK: usize = 1024 * 1024;

/// What was copied.
#[derive(Debug, Default)]
pub struct Migrated {
    /// Runners.
    pub runners: usize,
    /// Sessions.
    pub sessions: usize,
    /// Output bytes of all sessions.
    pub output_bytes: u64,
    /// Active tokens.
    pub tokens: usize,
    /// Users.
    pub users: usize,
    /// Audit entries.
    pub audit: usize,
}

/// Copies everything in `data_dir` into the database at `url`, which must hold no sessions yet.
/// Blocking: run it off any async runtime's threads.
pub fn to_postgres(data_dir: &Path, url: &str) -> anyhow::Result<Migrated> {
    if !data_dir.join("hq.db").exists() {
        bail!("no HQ database in {} (give the single HQ's --data-dir)", data_dir.display());
    }
    let mut from = SqliteStore::open(data_dir)?;
    let mut to = PgStore::open(url)?;
    if !to.holds_no_sessions()? {
        bail!("the PostgreSQL database already holds sessions; migrate into an empty one");
    }
    let mut done = Migrated::default();
    for user in from.users()? {
        to.save_user(&user)?;
        done.users += 1;
    }
    let snapshot = from.load()?;
    let mut changes: Vec<Change> = Vec::new();
    changes.extend(snapshot.runners.iter().cloned().map(|r| Change::Runner(Box::new(r))));
    changes.extend(snapshot.sessions.iter().cloned().map(|s| Change::Session(Box::new(s))));
    to.apply(&changes)?;
    done.runners = snapshot.runners.len();
    done.sessions = snapshot.sessions.len();
    for (session, grant) in &snapshot.grants {
        to.save_grant(*session, grant)?;
    }
    for token in from.active_tokens()? {
        to.insert_token(&token)?;
        done.tokens += 1;
    }
    for login in from.logins()? {
        to.insert_login(&login)?;
    }
    let mut audit = from.audit(usize::MAX)?;
    audit.reverse();
    done.audit = audit.len();
    to.append_audit(&audit)?;
    to.add_usage(&from.usage("0000-00-00", "9999-99-99")?)?;
    let logs = data_dir.join("sessions");
    for session in &snapshot.sessions {
        let out = logs.join(format!("{}.out", session.id));
        if let Ok(mut file) = std::fs::File::open(&out) {
            let mut offset = 0u64;
            let mut buffer = vec![0; CHUNK];
            loop {
                let read = file.read(&mut buffer).with_context(|| format!("reading {}", out.display()))?;
                if read == 0 {
                    break;
                }
                to.import_output(session.id, offset, &buffer[..read])?;
                offset += read as u64;
            }
            done.output_bytes += offset;
        }
        let timing = logs.join(format!("{}.timing", session.id));
        if let Ok(text) = std::fs::read_to_string(&timing) {
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            to.import_timing(session.id, &lines)?;
        }
    }
    Ok(done)
}
