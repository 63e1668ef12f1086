//! The store contract: the same tests against SQLite (a single HQ) and PostgreSQL (a cluster),
//! so both keep HQ's state the same way.

use agentrelay_e2e::deps::TestDatabase;
use agentrelay_hq::store::postgres::PgStore;
use agentrelay_hq::store::{
    BUILTIN_ADMIN, Change, GrantRecord, LoginRecord, SqliteStore, Store, TokenRecord, UserRecord,
};
use agentrelay_protocol::{
    Access, AuditEntry, Owner, Role, Runner, RunnerStatus, Scope, Session, SessionStatus, TokenInfo, Usage,
    UsageRow, User,
};
use chrono::Utc;
use uuid::Uuid;

/// Opens the store under test again (same file or database), as a restarted HQ would.
type Open<'a> = &'a dyn Fn() -> Box<dyn Store>;

fn both(test: impl Fn(Open<'_>)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    test(&move || Box::new(SqliteStore::open(&path).unwrap()));
    let database = TestDatabase::create();
    let url = database.url.clone();
    test(&move || Box::new(PgStore::open(&url).unwrap()));
}

fn runner() -> Runner {
    Runner {
        id: Uuid::now_v7(),
        name: "box".into(),
        labels: [("gpu".to_owned(), "true".to_owned())].into(),
        status: RunnerStatus::Online,
        hostname: "h".into(),
        os: "linux/x86_64".into(),
        version: "1".into(),
        presets: Vec::new(),
        policy: Default::default(),
        repos: Vec::new(),
        owner: None,
        connected_at: Utc::now(),
        last_seen_at: Utc::now(),
    }
}

fn session(runner_id: Uuid, status: SessionStatus) -> Session {
    Session {
        id: Uuid::now_v7(),
        runner_id,
        command: vec!["bash".into(), "-l".into()],
        status,
        exit_code: None,
        signal: None,
        error: None,
        created_by: "admin".into(),
        owner: Some(Owner { id: BUILTIN_ADMIN, name: "admin".into(), email: String::new() }),
        created_at: Utc::now(),
        ended_at: None,
        output_bytes: 10,
        preset: Some("claude".into()),
        name: Some("nightly".into()),
        activity: None,
        activity_since: None,
        activity_source: None,
        viewers: Vec::new(),
        log_error: None,
        usage: Some(Usage { input_tokens: 3, ..Default::default() }),
        workspace: None,
    }
}

#[test]
fn state_survives_reopening_and_runners_come_back_offline() {
    both(|open| {
        let runner = runner();
        let mut live = session(runner.id, SessionStatus::Running);
        let mut ended = session(runner.id, SessionStatus::Exited);
        ended.exit_code = Some(3);
        ended.ended_at = Some(Utc::now());
        {
            let mut store = open();
            let changes = [
                Change::Runner(Box::new(runner.clone())),
                Change::Session(Box::new(live.clone())),
                Change::Session(Box::new(ended.clone())),
            ];
            store.apply(&changes).unwrap();
            live.output_bytes = 99;
            store.apply(&[Change::Session(Box::new(live.clone()))]).unwrap();
        }
        let snapshot = open().load().unwrap();
        assert_eq!(snapshot.runners.len(), 1);
        assert_eq!(snapshot.runners[0].status, RunnerStatus::Offline);
        assert_eq!(snapshot.runners[0].labels, runner.labels);
        let loaded = |id| snapshot.sessions.iter().find(|s| s.id == id).unwrap().clone();
        let back = loaded(live.id);
        assert_eq!((back.status, back.output_bytes), (SessionStatus::Running, 99));
        assert_eq!((back.name.as_deref(), back.preset.as_deref()), (Some("nightly"), Some("claude")));
        assert_eq!(back.command, live.command);
        assert_eq!(back.usage, live.usage);
        assert_eq!(back.owner.map(|o| o.id), Some(BUILTIN_ADMIN));
        assert_eq!(loaded(ended.id).exit_code, Some(3));
        let mut store = open();
        store.apply(&[Change::SessionRemoved(ended.id)]).unwrap();
        assert_eq!(store.load().unwrap().sessions.len(), 1);
    });
}

#[test]
fn tokens_are_found_until_revoked_or_expired() {
    both(|open| {
        let mut store = open();
        let token = |name: &str, expires_in: i64| TokenRecord {
            info: TokenInfo {
                id: Uuid::now_v7(),
                name: name.into(),
                scope: Scope::User,
                created_at: Utc::now(),
                expires_at: Some(Utc::now() + chrono::Duration::seconds(expires_in)),
                session_id: None,
                user: None,
                shared: false,
            },
            hash: *Uuid::now_v7().as_bytes().repeat(2).first_chunk::<32>().unwrap(),
            user_id: BUILTIN_ADMIN,
        };
        let (kept, revoked, expired) = (token("kept", 3600), token("revoked", 3600), token("expired", -1));
        for t in [&kept, &revoked, &expired] {
            store.insert_token(t).unwrap();
        }
        assert!(store.revoke_token(revoked.info.id).unwrap());
        assert!(!store.revoke_token(revoked.info.id).unwrap(), "revoked twice");
        let active = open().active_tokens().unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!((active[0].info.id, active[0].hash), (kept.info.id, kept.hash));
    });
}

#[test]
fn sign_ins_are_kept_until_they_expire() {
    both(|open| {
        let mut store = open();
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
            store.insert_login(login).unwrap();
        }
        store.delete_login(admin.hash).unwrap();
        let kept = open().logins().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].hash, kept[0].token_id), (live.hash, live.token_id));
    });
}

#[test]
fn usage_sums_per_day_runner_and_user() {
    both(|open| {
        let mut store = open();
        let runner = Uuid::now_v7();
        let row = |day: &str, tokens: u64, cost: Option<f64>| UsageRow {
            day: day.into(),
            runner_id: runner,
            runner: None,
            user: "ann".into(),
            usage: Usage { input_tokens: tokens, output_tokens: 1, cost_usd: cost, ..Default::default() },
        };
        store.add_usage(&[row("2026-11-01", 5, None), row("2026-11-01", 7, Some(0.5))]).unwrap();
        store.add_usage(&[row("2026-11-02", 1, None)]).unwrap();
        let rows = open().usage("2026-11-01", "2026-11-01").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].usage.input_tokens, rows[0].usage.output_tokens), (12, 2));
        assert_eq!(rows[0].usage.cost_usd, Some(0.5));
    });
}

#[test]
fn users_grants_and_the_audit_log_are_kept() {
    both(|open| {
        let mut store = open();
        let ann = UserRecord {
            user: User {
                id: Uuid::now_v7(),
                name: "ann".into(),
                email: "ann@example.com".into(),
                role: Role::Member,
                disabled: false,
                created_at: Utc::now(),
                last_seen_at: None,
            },
            subject: None,
        };
        store.save_user(&ann).unwrap();
        let mut disabled = ann.clone();
        disabled.user.disabled = true;
        store.save_user(&disabled).unwrap();
        let users = open().users().unwrap();
        assert!(users.iter().any(|u| u.user.id == BUILTIN_ADMIN && u.user.role == Role::Admin));
        assert!(users.iter().any(|u| u.user.id == ann.user.id && u.user.disabled));

        let runner = runner();
        let live = session(runner.id, SessionStatus::Running);
        store.apply(&[Change::Session(Box::new(live.clone()))]).unwrap();
        let grant = GrantRecord {
            user_id: ann.user.id,
            access: Access::Drive,
            granted_by: None,
            created_at: Utc::now(),
        };
        store.save_grant(live.id, &grant).unwrap();
        assert_eq!(open().load().unwrap().grants.len(), 1);
        assert!(store.delete_grant(live.id, ann.user.id).unwrap());
        assert!(!store.delete_grant(live.id, ann.user.id).unwrap());
        assert!(open().load().unwrap().grants.is_empty());

        let entry = |action: &str| AuditEntry {
            at: Utc::now(),
            actor: Some("admin".into()),
            user_id: None,
            user: None,
            action: action.into(),
            target: None,
            address: Some("127.0.0.1".into()),
            detail: None,
        };
        store.append_audit(&[entry("first"), entry("second")]).unwrap();
        let newest: Vec<String> = open().audit(10).unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(newest, ["second", "first"]);
        store.check().unwrap();
    });
}

/// Two replicas may save the same session from views of different ages: PostgreSQL never takes
/// a session's status (nor its exit) back.
#[test]
fn a_stale_view_never_takes_a_session_back_in_postgres() {
    let database = TestDatabase::create();
    let mut store = PgStore::open(&database.url).unwrap();
    let runner = runner();
    let mut running = session(runner.id, SessionStatus::Running);
    let mut exited = running.clone();
    exited.status = SessionStatus::Exited;
    exited.exit_code = Some(7);
    exited.ended_at = Some(Utc::now());
    store.apply(&[Change::Session(Box::new(exited))]).unwrap();
    running.name = Some("renamed".into());
    store.apply(&[Change::Session(Box::new(running.clone()))]).unwrap();
    let back = store.load().unwrap().sessions.into_iter().find(|s| s.id == running.id).unwrap();
    assert_eq!((back.status, back.exit_code), (SessionStatus::Exited, Some(7)));
    assert_eq!(back.name.as_deref(), Some("renamed"), "the rest of the view still counts");
}

#[test]
fn stored_output_is_compressed_with_lz4_not_pglz() {
    let database = TestDatabase::create();
    drop(PgStore::open(&database.url).unwrap());
    let mut client = postgres::Client::connect(&database.url, postgres::NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT attcompression::text, attstorage::text FROM pg_attribute
             WHERE attrelid = 'output_chunks'::regclass AND attname = 'data'",
            &[],
        )
        .unwrap();
    let (compression, storage): (String, String) = (row.get(0), row.get(1));
    // lz4, or on a server built without it no compression at all: never pglz, the default, which
    // capped how fast output could be stored.
    assert!(compression == "l" || storage == "e", "compression {compression:?}, storage {storage:?}");
}
