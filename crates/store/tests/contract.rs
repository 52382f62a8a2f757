//! The store contract: the same checks on SQLite and on PostgreSQL, plus the migration
//! lockstep and schema-parity checks between the two.

use std::collections::BTreeSet;
use std::sync::Arc;

use aliquot_store::{
    AccessEntry, AuditEntry, Backend, DatabaseConfig, LocationRecord, LoginAttempts, NewUser,
    OrderRecord, PatientRecord, PatientVersionRecord, ProblemRecord, ProviderRecord,
    RecollectTaskRecord, SettingRecord, SpecimenChange, SpecimenEventRecord, SpecimenRecord, Store,
    StoreError, migrations,
};
use jiff::Timestamp;
use serde_json::json;
use sqlx::migrate::MigrateDatabase;

#[derive(Clone, Copy, Debug)]
enum Db {
    Sqlite,
    Postgres,
}

fn pg_server() -> String {
    std::env::var("ALIQUOT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

struct Fixture {
    store: Arc<dyn Store>,
    config: DatabaseConfig,
    _dir: tempfile::TempDir,
}

async fn fixture(db: Db) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = match db {
        Db::Sqlite => DatabaseConfig::Sqlite {
            path: dir.path().join("contract.db"),
        },
        Db::Postgres => DatabaseConfig::Postgres {
            url: format!(
                "{}/aliquot_t_{}",
                pg_server(),
                uuid::Uuid::new_v4().simple()
            ),
        },
    };
    let store = aliquot_store::open(&config)
        .await
        .unwrap_or_else(|e| panic!("cannot open {config:?}: {e} (is PostgreSQL running?)"));
    Fixture {
        store,
        config,
        _dir: dir,
    }
}

impl Fixture {
    /// The same database reopened with an audit key file in the fixture's directory (the
    /// key is created, and the database keyed, by this open).
    async fn keyed(self) -> (Fixture, std::path::PathBuf) {
        self.store.close().await;
        let key = self._dir.path().join("audit.key");
        let store = aliquot_store::open_with_key(&self.config, Some(&key))
            .await
            .unwrap();
        (Fixture { store, ..self }, key)
    }

    /// Raw SQL built at run time, as a superuser.
    async fn raw_owned(&self, sql: String) {
        match &self.config {
            DatabaseConfig::Sqlite { path } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            DatabaseConfig::Postgres { url } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }

    async fn finish(self) {
        self.store.close().await;
        if let DatabaseConfig::Postgres { url } = &self.config {
            let _ = sqlx::Postgres::force_drop_database(url).await;
        }
    }

    /// Runs raw SQL as a database superuser would, outside the store.
    async fn raw(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        match &self.config {
            DatabaseConfig::Sqlite { path } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let pool = sqlx::SqlitePool::connect_with(opts).await?;
                let r = sqlx::raw_sql(sql)
                    .execute(&pool)
                    .await
                    .map(|r| r.rows_affected());
                pool.close().await;
                r
            }
            DatabaseConfig::Postgres { url } => {
                let pool = sqlx::PgPool::connect(url).await?;
                let r = sqlx::raw_sql(sql)
                    .execute(&pool)
                    .await
                    .map(|r| r.rows_affected());
                pool.close().await;
                r
            }
        }
    }
}

fn entry(action: &str, n: i64) -> AuditEntry {
    AuditEntry {
        at: Timestamp::now(),
        actor_id: Some(1),
        actor_name: "tester".into(),
        actor_role: Some("admin".into()),
        source: "api".into(),
        action: action.into(),
        entity_type: "setting".into(),
        entity_id: format!("k{n}"),
        reason: None,
        old_value: None,
        new_value: Some(json!({"n": n})),
    }
}

async fn append(store: &Arc<dyn Store>, n: i64) {
    let mut tx = store.begin().await.unwrap();
    tx.audit(entry("test.append", n));
    tx.commit().await.unwrap();
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Db::Sqlite).await })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Db::Postgres).await })* }
    };
}

both!(
    users_are_unique_and_round_trip,
    rollback_discards_the_change_and_its_audit,
    audit_rows_cannot_be_updated_or_deleted,
    tampering_is_found_at_the_altered_row,
    removing_the_newest_rows_is_found,
    counters_never_repeat_under_concurrency,
    upserts_replace,
    reopening_is_idempotent,
    failing_transactions_in_a_group_leave_the_others_whole,
    specimen_changes_are_guarded_and_custody_is_kept,
    cancelled_transactions_are_all_or_nothing_and_the_writer_lives_on,
    patient_versions_are_numbered_and_append_only,
    backup_under_write_load_restores_one_consistent_state,
    a_keyed_chain_refuses_a_rewound_head,
    a_keyed_chain_cannot_be_recomputed_without_the_key,
    a_reset_head_is_reported_with_every_row,
    the_access_log_is_one_chain_and_tampering_is_found_at_its_row,
    a_keyed_access_log_refuses_a_rewound_head,
    the_access_logs_keyed_start_is_in_the_key_file,
);

async fn users_are_unique_and_round_trip(db: Db) {
    let f = fixture(db).await;
    let now = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap();
    let user = NewUser {
        username: "ana".into(),
        display_name: "Ana".into(),
        role: "technician".into(),
        password_hash: "$argon2id$x".into(),
        created_at: now,
    };
    let mut tx = f.store.begin().await.unwrap();
    let id = tx.insert_user(&user).await.unwrap();
    tx.commit().await.unwrap();
    let got = f.store.user_by_username("ana").await.unwrap().unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.created_at, now, "timestamps keep microseconds");
    assert_eq!(got.disabled_at, None);
    let mut tx = f.store.begin().await.unwrap();
    match tx.insert_user(&user).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    drop(tx);
    assert_eq!(f.store.list_users().await.unwrap().len(), 1);
    f.finish().await;
}

async fn rollback_discards_the_change_and_its_audit(db: Db) {
    let f = fixture(db).await;
    let mut tx = f.store.begin().await.unwrap();
    tx.put_setting(&SettingRecord {
        key: "lab.name".into(),
        value: "X".into(),
        updated_at: Timestamp::now(),
        updated_by: None,
    })
    .await
    .unwrap();
    tx.audit(entry("setting.update", 1));
    drop(tx); // no commit
    assert!(f.store.setting("lab.name").await.unwrap().is_none());
    let report = f.store.verify_audit_chain().await.unwrap();
    assert_eq!((report.rows, report.head_seq), (0, 0));
    assert!(report.is_intact());
    f.finish().await;
}

async fn audit_rows_cannot_be_updated_or_deleted(db: Db) {
    let f = fixture(db).await;
    append(&f.store, 1).await;
    let update = f
        .raw("UPDATE audit_event SET actor_name = 'mallory' WHERE seq = 1")
        .await;
    assert!(update.is_err(), "an UPDATE of an audit row went through");
    let delete = f.raw("DELETE FROM audit_event WHERE seq = 1").await;
    assert!(delete.is_err(), "a DELETE of an audit row went through");
    let delete = f.raw("DELETE FROM access_log").await;
    assert!(delete.is_err() || delete.unwrap() == 0);
    assert!(f.store.verify_audit_chain().await.unwrap().is_intact());
    f.finish().await;
}

async fn tampering_is_found_at_the_altered_row(db: Db) {
    let f = fixture(db).await;
    for n in 1..=5 {
        append(&f.store, n).await;
    }
    assert!(f.store.verify_audit_chain().await.unwrap().is_intact());
    // A superuser gets around the append-only trigger and edits row 3.
    let sql: &'static str = match db {
        Db::Sqlite => {
            "DROP TRIGGER audit_event_no_update; \
             UPDATE audit_event SET new_value = '{\"n\":33}' WHERE seq = 3;"
        }
        Db::Postgres => {
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update; \
             UPDATE audit_event SET new_value = '{\"n\":33}' WHERE seq = 3; \
             ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update;"
        }
    };
    f.raw(sql).await.unwrap();
    let report = f.store.verify_audit_chain().await.unwrap();
    let b = report.first_break.expect("tampering not detected");
    assert_eq!(b.seq, 3, "{b:?}");
    f.finish().await;
}

async fn removing_the_newest_rows_is_found(db: Db) {
    let f = fixture(db).await;
    for n in 1..=4 {
        append(&f.store, n).await;
    }
    let sql: &'static str = match db {
        Db::Sqlite => "DROP TRIGGER audit_event_no_delete; DELETE FROM audit_event WHERE seq >= 3;",
        Db::Postgres => {
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update; \
             DELETE FROM audit_event WHERE seq >= 3;"
        }
    };
    f.raw(sql).await.unwrap();
    let b = f
        .store
        .verify_audit_chain()
        .await
        .unwrap()
        .first_break
        .expect("not detected");
    assert_eq!(b.seq, 3, "{b:?}");
    f.finish().await;
}

async fn counters_never_repeat_under_concurrency(db: Db) {
    let f = fixture(db).await;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = f.store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let v = tx.next_counter("accession:A26").await.unwrap();
                tx.audit(entry("counter.take", v));
                tx.commit().await.unwrap();
                v
            })
        })
        .collect();
    let mut values = vec![];
    for t in tasks {
        values.push(t.await.unwrap());
    }
    let set: BTreeSet<i64> = values.iter().copied().collect();
    assert_eq!(set.len(), 40, "a counter value repeated: {values:?}");
    assert_eq!(set, (1..=40).collect());
    assert!(f.store.verify_audit_chain().await.unwrap().is_intact());
    f.finish().await;
}

async fn upserts_replace(db: Db) {
    let f = fixture(db).await;
    let t0 = Timestamp::from_second(2_000_000_000).unwrap();
    let at = |s: i64| t0.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
    // Three failures of one pair, one of the same account from another address, one of
    // another account from the first address: aggregate counters, not one row per attempt.
    for (address, account, s) in [
        ("192.0.2.1", "x", 0),
        ("192.0.2.1", "x", 1),
        ("192.0.2.9", "x", 2),
        ("192.0.2.1", "y", 3),
        ("192.0.2.1", "x", 4),
    ] {
        let mut tx = f.store.begin().await.unwrap();
        tx.record_login_failure(address, account, at(s), t0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let got = f.store.login_attempts("192.0.2.1", "x", t0).await.unwrap();
    assert_eq!(got.pair, Some((3, at(4))));
    assert_eq!(got.address, Some((4, at(4))));
    assert_eq!(got.other_addresses, Some((1, at(2))));
    // A later failure forgets every counter older than its window.
    let mut tx = f.store.begin().await.unwrap();
    let after = tx
        .record_login_failure("192.0.2.1", "x", at(100), at(4))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(after.pair, Some((4, at(100))));
    assert_eq!(
        after.address,
        Some((4, at(100))),
        "y's counter was forgotten"
    );
    assert_eq!(after.other_addresses, None);
    // Success clears the pair only.
    let mut tx = f.store.begin().await.unwrap();
    tx.clear_login_failures("192.0.2.1", "x").await.unwrap();
    tx.commit().await.unwrap();
    let got = f.store.login_attempts("192.0.2.1", "x", t0).await.unwrap();
    assert_eq!(got, LoginAttempts::default());
    f.finish().await;
}

async fn reopening_is_idempotent(db: Db) {
    let f = fixture(db).await;
    append(&f.store, 1).await;
    let again = aliquot_store::open(&f.config).await.unwrap();
    assert_eq!(again.verify_audit_chain().await.unwrap().rows, 1);
    again.close().await;
    f.finish().await;
}

/// Many concurrent transactions share group commits; the ones that fail (a unique-key clash,
/// or dropped without commit) leave no trace, and every one that committed is there.
async fn failing_transactions_in_a_group_leave_the_others_whole(db: Db) {
    let f = fixture(db).await;
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let store = f.store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                // Every third task reuses a name that another task also inserts.
                let name = if i % 3 == 0 {
                    "shared".to_owned()
                } else {
                    format!("user{i}")
                };
                let inserted = tx
                    .insert_user(&NewUser {
                        username: name.clone(),
                        display_name: name.clone(),
                        role: "technician".into(),
                        password_hash: "$argon2id$x".into(),
                        created_at: Timestamp::now(),
                    })
                    .await;
                if inserted.is_err() {
                    return None; // dropped: rolled back
                }
                tx.audit(entry("user.create", i));
                if i % 7 == 0 {
                    drop(tx); // gave up: rolled back
                    return None;
                }
                tx.commit().await.unwrap();
                Some(name)
            })
        })
        .collect();
    let mut committed = BTreeSet::new();
    for t in tasks {
        if let Some(name) = t.await.unwrap() {
            assert!(committed.insert(name.clone()), "{name} committed twice");
        }
    }
    let stored: BTreeSet<String> = f
        .store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(stored, committed);
    let report = f.store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows as usize, committed.len());
    f.finish().await;
}

/// A small deterministic generator (xorshift), so a failing run can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn setting_record(key: String) -> SettingRecord {
    SettingRecord {
        key,
        value: "v".into(),
        updated_at: Timestamp::now(),
        updated_by: None,
    }
}

/// What happened to one transaction raced against a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Committed,
    Failed,
    Cancelled,
}

/// Every transaction that returned `Ok` is stored exactly once (its row and its one audit
/// entry), every one that returned `Err` is absent, whatever the fate of the others; cancelled
/// ones are either whole or absent. Returns the keys by fate.
async fn check_fates(store: &Arc<dyn Store>, prefix: &str, fates: &[(String, Fate)]) {
    let stored: BTreeSet<String> = store
        .list_settings()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .filter(|k| k.starts_with(prefix))
        .collect();
    let mut audited = std::collections::BTreeMap::<String, usize>::new();
    let mut after = 0;
    loop {
        let page = store.audit_events(after, 10_000, None).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            if r.entry.entity_id.starts_with(prefix) {
                *audited.entry(r.entry.entity_id).or_default() += 1;
            }
        }
    }
    for (key, fate) in fates {
        let row = stored.contains(key);
        let entries = audited.get(key).copied().unwrap_or(0);
        match fate {
            Fate::Committed => {
                assert!(
                    row && entries == 1,
                    "{key} returned Ok: row {row}, {entries} audit entries"
                )
            }
            Fate::Failed => {
                assert!(
                    !row && entries == 0,
                    "{key} returned Err but is stored: row {row}, {entries} audit entries"
                )
            }
            Fate::Cancelled => assert_eq!(
                row,
                entries == 1,
                "{key} was cancelled and is half-written: row {row}, {entries} audit entries"
            ),
        }
    }
    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
}

/// One audited write: a setting row and its audit entry. With `fail`, a statement of the
/// transaction fails (a unique-key clash): the caller gives up (the transaction is dropped),
/// or, on PostgreSQL, ignores the error and commits anyway, where the commit must fail (the
/// transaction is aborted; a bare `COMMIT` would answer success with tag `ROLLBACK`).
async fn audited_write(store: &Arc<dyn Store>, key: String, fail: bool) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    tx.put_setting(&setting_record(key.clone())).await?;
    let mut e = entry("test.write", 0);
    e.entity_id = key;
    tx.audit(e);
    if fail {
        let clash = NewUser {
            username: "admin-clash".into(),
            display_name: "x".into(),
            role: "admin".into(),
            password_hash: "$argon2id$x".into(),
            created_at: Timestamp::now(),
        };
        let clashed = tx.insert_user(&clash).await;
        assert!(clashed.is_err(), "the clash did not clash");
        if store.backend() != Backend::Postgres {
            return clashed.map(|_| ());
        }
    }
    tx.commit().await.map(|_| ())
}

/// Issue 9: request futures are dropped at any await when their client goes away. 10,000
/// audited transactions from 16 tasks, each raced against a timeout of random length (so the
/// drop lands in `begin`, in a statement, in the audit append, in `RELEASE`, in the group's
/// `COMMIT`, or while waiting for it), some failing on purpose. Afterwards every `Ok` is
/// stored exactly once, no `Err` is stored, nothing is half-written, and the writer still
/// works.
async fn cancelled_transactions_are_all_or_nothing_and_the_writer_lives_on(db: Db) {
    let f = fixture(db).await;
    // The clashing user exists once, so the second insert of a failing transaction clashes.
    let mut tx = f.store.begin().await.unwrap();
    tx.insert_user(&NewUser {
        username: "admin-clash".into(),
        display_name: "x".into(),
        role: "admin".into(),
        password_hash: "$argon2id$x".into(),
        created_at: Timestamp::now(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();

    const TASKS: u64 = 16;
    const PER_TASK: u64 = 625;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = f.store.clone();
            tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                let mut fates = Vec::new();
                for i in 0..PER_TASK {
                    let key = format!("cancel.{t}.{i}");
                    let r = rng.next();
                    let fail = r.is_multiple_of(11);
                    let write = audited_write(&store, key.clone(), fail);
                    let fate = if r.is_multiple_of(4) {
                        match write.await {
                            Ok(()) => Fate::Committed,
                            Err(_) => Fate::Failed,
                        }
                    } else {
                        let limit = std::time::Duration::from_micros((r >> 8) % 3_000);
                        match tokio::time::timeout(limit, write).await {
                            Ok(Ok(())) => Fate::Committed,
                            Ok(Err(_)) => Fate::Failed,
                            Err(_) => Fate::Cancelled,
                        }
                    };
                    if fail {
                        assert_ne!(fate, Fate::Committed, "{key}: a failed statement committed");
                    }
                    fates.push((key, fate));
                }
                fates
            })
        })
        .collect();
    let mut fates = Vec::new();
    for t in tasks {
        fates.extend(t.await.unwrap());
    }
    let count = |x: Fate| fates.iter().filter(|(_, f)| *f == x).count();
    assert!(
        count(Fate::Committed) > 500,
        "too few commits to mean anything"
    );
    assert!(
        count(Fate::Cancelled) > 500,
        "too few cancellations to mean anything"
    );
    assert!(
        count(Fate::Failed) > 100,
        "too few failures to mean anything"
    );

    // The writer still works, without a restart: the next writes succeed.
    for i in 0..20 {
        let key = format!("cancel.after.{i}");
        audited_write(&f.store, key.clone(), false).await.unwrap();
        fates.push((key, Fate::Committed));
    }
    check_fates(&f.store, "cancel.", &fates).await;
    f.finish().await;
}

/// Issue 9: the PostgreSQL writer connection is killed (`pg_terminate_backend`) under load,
/// three times. Requests in flight may fail and are then absent; the next writes succeed
/// without a restart; every `Ok` is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writer_survives_its_connection_being_killed() {
    let f = fixture(Db::Postgres).await;
    let DatabaseConfig::Postgres { url } = f.config.clone() else {
        unreachable!()
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = f.store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut fates = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    let key = format!("kill.{t}.{i}");
                    let fate = match audited_write(&store, key.clone(), false).await {
                        Ok(()) => Fate::Committed,
                        Err(_) => Fate::Failed,
                    };
                    fates.push((key, fate));
                    i += 1;
                }
                fates
            })
        })
        .collect();
    let killer = sqlx::PgPool::connect(&url).await.unwrap();
    let mut killed = 0;
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        killed += sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) k",
        )
        .fetch_one(&killer)
        .await
        .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    killer.close().await;
    assert!(killed >= 3, "the writer's connection was never killed");
    let mut fates = Vec::new();
    for t in tasks {
        fates.extend(t.await.unwrap());
    }
    assert!(fates.iter().any(|(_, f)| *f == Fate::Committed));
    for i in 0..20 {
        let key = format!("kill.after.{i}");
        audited_write(&f.store, key.clone(), false)
            .await
            .unwrap_or_else(|e| panic!("write {i} after the kill failed: {e}"));
        fates.push((key, Fate::Committed));
    }
    check_fates(&f.store, "kill.", &fates).await;
    f.finish().await;
}

/// Both backends list the same migrations, and every file on disk is listed.
#[test]
fn migrations_are_in_lockstep() {
    let names = |l: &[migrations::MigrationSource]| -> Vec<(i64, &str)> {
        l.iter().map(|(v, n, _)| (*v, *n)).collect()
    };
    assert_eq!(names(migrations::SQLITE), names(migrations::POSTGRES));
    for (dir, list) in [
        ("sqlite", migrations::SQLITE),
        ("postgres", migrations::POSTGRES),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut on_disk: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let listed: Vec<String> = list.iter().map(|(_, n, _)| format!("{n}.sql")).collect();
        assert_eq!(
            on_disk, listed,
            "{dir}: every migration file must be listed, in order"
        );
        // Versions are 1, 2, 3, … without a gap: a gap is a migration that did not land.
        for (i, (v, n, _)) in list.iter().enumerate() {
            assert_eq!(*v, i as i64 + 1, "{n}: versions are numbered without a gap");
            assert!(
                n.starts_with(&format!("{v:04}_")),
                "{n} must start with its version"
            );
        }
    }
}

/// One backend's schema, reduced to what both dialects can state alike.
#[derive(Default)]
struct SchemaFacts {
    /// `(table, column, type family, not null)`.
    columns: BTreeSet<(String, String, &'static str, bool)>,
    /// `(table, column, declared type)` of every column whose type has no family below.
    unmapped: Vec<(String, String, String)>,
    /// `(table, primary-key columns in key order)`.
    primary_keys: BTreeSet<(String, Vec<String>)>,
    /// `(table, columns in index order, unique, partial)`, primary keys left out (SQLite keeps
    /// an `INTEGER PRIMARY KEY` as the rowid with no index at all; PostgreSQL always builds
    /// one): they are compared as `primary_keys`. Names are not compared; an expression
    /// column shows as `<expr>`.
    indexes: BTreeSet<(String, Vec<String>, bool, bool)>,
    /// `(table, number of CHECK constraints)`. Only the number: PostgreSQL gives the
    /// expression back normalised (`pg_get_constraintdef`: casts, `ANY (ARRAY[…])`, added
    /// parentheses) and SQLite only keeps the `CREATE TABLE` text, so comparing expressions
    /// across the two dialects would need an SQL parser.
    checks: BTreeSet<(String, usize)>,
    /// `(table, timing, event)`. One PostgreSQL trigger may fire on several events; each
    /// counts. SQLite has no `TRUNCATE` (an unqualified `DELETE` runs its DELETE triggers
    /// row by row), so there a DELETE trigger stands for a TRUNCATE trigger too: a
    /// PostgreSQL table that refuses DELETE must refuse TRUNCATE as well.
    triggers: BTreeSet<(String, &'static str, &'static str)>,
}

/// The common family of a column type, from SQLite's declared type or PostgreSQL's
/// `information_schema.columns.data_type`; `None` when it has none (the test then fails).
fn type_family(declared: &str) -> Option<&'static str> {
    let t = declared.trim().to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or_default().trim();
    Some(match base {
        "integer" | "int" | "bigint" | "smallint" | "int2" | "int4" | "int8" => "integer",
        "text" | "varchar" | "character varying" | "char" | "character" | "clob" => "text",
        "real" | "double" | "double precision" | "float" | "float4" | "float8" => "real",
        "boolean" | "bool" => "boolean",
        "blob" | "bytea" => "blob",
        "numeric" | "decimal" => "numeric",
        _ => return None,
    })
}

/// How many `CHECK (` clauses an SQLite `CREATE TABLE` text holds, `--` comments left out.
fn count_checks(create_table: &str) -> usize {
    let sql: String = create_table
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_uppercase();
    sql.match_indices("CHECK")
        .filter(|(i, _)| {
            let before = sql[..*i].chars().next_back();
            let after = sql[i + "CHECK".len()..].trim_start();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && after.starts_with('(')
        })
        .count()
}

/// `(timing, event)` of an SQLite `CREATE TRIGGER` text.
fn sqlite_trigger_kind(create_trigger: &str) -> (&'static str, &'static str) {
    let sql = create_trigger.to_ascii_uppercase();
    let words: Vec<&str> = sql.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| matches!(*w, "INSERT" | "UPDATE" | "DELETE"))
        .unwrap_or_else(|| panic!("no event in trigger {create_trigger}"));
    let event = match words[at] {
        "INSERT" => "INSERT",
        "UPDATE" => "UPDATE",
        _ => "DELETE",
    };
    let timing = match words[at - 1] {
        "AFTER" => "AFTER",
        "OF" if words[at - 2] == "INSTEAD" => "INSTEAD OF",
        _ => "BEFORE",
    };
    (timing, event)
}

async fn sqlite_schema(path: &std::path::Path) -> SchemaFacts {
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
            .await
            .unwrap();
    let mut s = SchemaFacts::default();
    // The tables of the schema, as `m`.
    macro_rules! tables {
        () => {
            "(SELECT name, sql FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations') m"
        };
    }

    let columns: Vec<(String, String, String, i64, i64)> = sqlx::query_as(concat!(
        "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk FROM ",
        tables!(),
        " JOIN pragma_table_info(m.name) p ORDER BY m.name, p.pk"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut keys = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (table, column, declared, not_null, pk) in columns {
        let family = type_family(&declared).unwrap_or_else(|| {
            s.unmapped.push((
                table.clone(),
                column.clone(),
                format!("SQLite {declared:?}"),
            ));
            "?"
        });
        if pk > 0 {
            keys.entry(table.clone()).or_default().push(column.clone());
        }
        s.columns
            .insert((table, column, family, not_null == 1 || pk > 0));
    }
    s.primary_keys = keys.into_iter().collect();

    let index_columns: Vec<(String, String, i64, String, i64, Option<String>)> =
        sqlx::query_as(concat!(
            "SELECT m.name, l.name, l.\"unique\", l.origin, l.partial, i.name FROM ",
            tables!(),
            " JOIN pragma_index_list(m.name) l JOIN pragma_index_info(l.name) i \
             ORDER BY m.name, l.name, i.seqno"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut indexes =
        std::collections::BTreeMap::<(String, String), (Vec<String>, bool, bool)>::new();
    for (table, index, unique, origin, partial, column) in index_columns {
        if origin == "pk" {
            continue;
        }
        indexes
            .entry((table, index))
            .or_insert_with(|| (Vec::new(), unique == 1, partial == 1))
            .0
            .push(column.unwrap_or_else(|| "<expr>".into()));
    }
    s.indexes = indexes
        .into_iter()
        .map(|((table, _), (cols, unique, partial))| (table, cols, unique, partial))
        .collect();

    let tables: Vec<(String, String)> =
        sqlx::query_as(concat!("SELECT m.name, m.sql FROM ", tables!()))
            .fetch_all(&pool)
            .await
            .unwrap();
    s.checks = tables
        .into_iter()
        .map(|(table, sql)| (table, count_checks(&sql)))
        .filter(|(_, n)| *n > 0)
        .collect();

    let triggers: Vec<(String, String)> =
        sqlx::query_as("SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (table, sql) in triggers {
        let (timing, event) = sqlite_trigger_kind(&sql);
        if event == "DELETE" {
            s.triggers.insert((table.clone(), timing, "TRUNCATE"));
        }
        s.triggers.insert((table, timing, event));
    }
    pool.close().await;
    s
}

async fn pg_schema(url: &str) -> SchemaFacts {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut s = SchemaFacts::default();

    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (table, column, data_type, nullable) in columns {
        let family = type_family(&data_type).unwrap_or_else(|| {
            s.unmapped.push((
                table.clone(),
                column.clone(),
                format!("PostgreSQL {data_type:?}"),
            ));
            "?"
        });
        s.columns.insert((table, column, family, nullable == "NO"));
    }

    let indexes: Vec<(String, bool, bool, bool, Vec<String>)> = sqlx::query_as(
        "SELECT c.relname::text, i.indisunique, i.indisprimary, i.indpred IS NOT NULL, \
         (SELECT array_agg(coalesce(a.attname::text, '<expr>') ORDER BY k.ord) \
          FROM unnest(i.indkey) WITH ORDINALITY k (attnum, ord) \
          LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (table, unique, primary, partial, cols) in indexes {
        if primary {
            s.primary_keys.insert((table, cols));
        } else {
            s.indexes.insert((table, cols, unique, partial));
        }
    }

    let checks: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.relname::text, count(*) FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE k.contype = 'c' AND n.nspname = 'public' GROUP BY c.relname",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    s.checks = checks
        .into_iter()
        .map(|(table, n)| (table, usize::try_from(n).unwrap()))
        .collect();

    // `tgtype` bits (PostgreSQL's `pg_trigger.h`): 2 BEFORE, 4 INSERT, 8 DELETE, 16 UPDATE,
    // 32 TRUNCATE, 64 INSTEAD OF.
    let triggers: Vec<(String, i32)> = sqlx::query_as(
        "SELECT c.relname::text, t.tgtype::int4 FROM pg_trigger t \
         JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT t.tgisinternal AND n.nspname = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (table, tgtype) in triggers {
        let timing = if tgtype & 64 != 0 {
            "INSTEAD OF"
        } else if tgtype & 2 != 0 {
            "BEFORE"
        } else {
            "AFTER"
        };
        for (bit, event) in [
            (4, "INSERT"),
            (8, "DELETE"),
            (16, "UPDATE"),
            (32, "TRUNCATE"),
        ] {
            if tgtype & bit != 0 {
                s.triggers.insert((table.clone(), timing, event));
            }
        }
    }
    pool.close().await;
    s
}

/// Appends to `out` what only one of the two sets holds.
fn schema_diff<T: Ord + std::fmt::Debug>(
    what: &str,
    sqlite: &BTreeSet<T>,
    pg: &BTreeSet<T>,
    out: &mut Vec<String>,
) {
    let only_sqlite: Vec<_> = sqlite.difference(pg).collect();
    let only_pg: Vec<_> = pg.difference(sqlite).collect();
    if !only_sqlite.is_empty() || !only_pg.is_empty() {
        out.push(format!(
            "{what}\n  only in SQLite: {only_sqlite:?}\n  only in PostgreSQL: {only_pg:?}"
        ));
    }
}

/// The two schemas have the same tables and columns (type family, nullability), primary
/// keys, indexes (columns, uniqueness, partial), number of CHECK constraints per table and
/// triggers (table, timing, event). There is no allow-list: every difference fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_schemas_are_the_same() {
    let sqlite = fixture(Db::Sqlite).await;
    let pg = fixture(Db::Postgres).await;
    let DatabaseConfig::Sqlite { path } = &sqlite.config else {
        unreachable!()
    };
    let DatabaseConfig::Postgres { url } = &pg.config else {
        unreachable!()
    };
    let (s, p) = (sqlite_schema(path).await, pg_schema(url).await);
    assert!(!s.columns.is_empty() && !s.indexes.is_empty() && !s.triggers.is_empty());
    assert!(
        !s.checks.is_empty(),
        "no CHECK found: is count_checks broken?"
    );

    let mut drift = Vec::new();
    let unmapped: Vec<_> = s.unmapped.iter().chain(&p.unmapped).collect();
    if !unmapped.is_empty() {
        drift.push(format!(
            "column types with no family in `type_family`: {unmapped:?}"
        ));
    }
    schema_diff(
        "columns (table, column, type, not null)",
        &s.columns,
        &p.columns,
        &mut drift,
    );
    schema_diff("primary keys", &s.primary_keys, &p.primary_keys, &mut drift);
    schema_diff(
        "indexes (table, columns, unique, partial)",
        &s.indexes,
        &p.indexes,
        &mut drift,
    );
    schema_diff(
        "CHECK constraints per table",
        &s.checks,
        &p.checks,
        &mut drift,
    );
    schema_diff(
        "triggers (table, timing, event)",
        &s.triggers,
        &p.triggers,
        &mut drift,
    );
    assert!(drift.is_empty(), "schema drift:\n{}", drift.join("\n"));
    sqlite.finish().await;
    pg.finish().await;
}

/// A patient, provider, location, order and one planned specimen; returns
/// `(order_id, location_id, specimen_id)`.
async fn seed_specimen(store: &Arc<dyn Store>, accession: &str) -> (i64, i64, i64) {
    let now = Timestamp::now();
    let mut tx = store.begin().await.unwrap();
    let patient = tx
        .insert_patient(&PatientRecord {
            id: 0,
            mrn: format!("M-{accession}"),
            family_name: "Doe".into(),
            given_name: "Jane".into(),
            middle_name: None,
            family_key: "DOE".into(),
            given_key: "JANE".into(),
            birth_date: "1980-01-01".into(),
            sex: "F".into(),
            clinical_sex: None,
            birth_time: None,
            facility_ids: "[]".into(),
            contact: "{}".into(),
            created_at: now,
            updated_at: now,
            merged_into: None,
        })
        .await
        .unwrap();
    let provider = tx
        .insert_provider(&ProviderRecord {
            id: 0,
            npi: format!("N-{accession}"),
            family_name: "House".into(),
            given_name: "Greg".into(),
            phone: "1".into(),
            created_at: now,
        })
        .await
        .unwrap();
    let location = tx
        .insert_location(&LocationRecord {
            id: 0,
            code: format!("L-{accession}"),
            name: "Clinic".into(),
            kind: "clinic".into(),
            address: "1 Main St".into(),
            phone: None,
            contact_name: None,
            created_at: now,
        })
        .await
        .unwrap();
    let order = tx
        .insert_order(&OrderRecord {
            id: 0,
            patient_id: patient,
            provider_id: provider,
            location_id: location,
            priority: "routine".into(),
            timed_at: None,
            placer_order_number: None,
            clinical_notes: None,
            diagnosis_codes: "[]".into(),
            status: "active".into(),
            created_at: now,
            created_by: "t".into(),
            cancelled_at: None,
            cancel_reason: None,
            winged_collection_set: false,
        })
        .await
        .unwrap();
    let specimen = tx
        .insert_specimen(&SpecimenRecord {
            id: 0,
            accession: accession.into(),
            order_id: order,
            patient_id: patient,
            container: "LAV".into(),
            specimen_type: "whole_blood".into(),
            draw_rank: 1,
            status: "planned".into(),
            volume_ul: 0,
            capacity_ul: 2000,
            created_at: now,
            collected_at: None,
            temperature: None,
            demand_ul: 500,
            received_container: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (order, location, specimen)
}

async fn specimen_changes_are_guarded_and_custody_is_kept(db: Db) {
    let f = fixture(db).await;
    let (order, location, id) = seed_specimen(&f.store, "A2600000012X").await;
    let at = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap();
    let collect = SpecimenChange {
        id,
        from: "planned".into(),
        to: "collected".into(),
        collected_at: Some(at),
        temperature: Some("room".into()),
        volume_ul: None,
    };
    let mut tx = f.store.begin().await.unwrap();
    assert!(tx.change_specimen(&collect).await.unwrap());
    assert_eq!(tx.count_label_print(id).await.unwrap(), 1);
    assert_eq!(tx.count_label_print(id).await.unwrap(), 2);
    tx.insert_specimen_event(&SpecimenEventRecord {
        id: 0,
        specimen_id: id,
        at,
        actor_id: None,
        actor_name: "cli:test".into(),
        kind: "collect".into(),
        from_status: "planned".into(),
        to_status: "collected".into(),
        details: "{}".into(),
        location: Some("Ward 3".into()),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The same change again finds the status moved on: nothing is applied.
    let mut tx = f.store.begin().await.unwrap();
    assert!(!tx.change_specimen(&collect).await.unwrap());
    let receive = SpecimenChange {
        from: "collected".into(),
        to: "received".into(),
        collected_at: None,
        temperature: None,
        volume_ul: Some(300),
        ..collect.clone()
    };
    assert!(tx.change_specimen(&receive).await.unwrap());
    tx.commit().await.unwrap();
    let s = f
        .store
        .specimen_by_accession("A2600000012X")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.status, "received");
    assert_eq!(s.collected_at, Some(at));
    assert_eq!(s.temperature.as_deref(), Some("room"));
    assert_eq!(s.volume_ul, 300);
    let events = f.store.specimen_events(id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].at, at);
    assert_eq!(events[0].location.as_deref(), Some("Ward 3"));

    let mut tx = f.store.begin().await.unwrap();
    tx.insert_problem(&ProblemRecord {
        id: 0,
        specimen_id: id,
        accession: String::new(),
        reason: "hemolyzed".into(),
        comment: None,
        opened_at: at,
        opened_by: "t".into(),
        resolved_at: None,
        resolved_by: None,
        resolution: None,
    })
    .await
    .unwrap();
    tx.insert_recollect_task(&RecollectTaskRecord {
        id: 0,
        order_id: order,
        location_id: location,
        specimen_id: id,
        accession: String::new(),
        reason: "hemolyzed".into(),
        created_at: at,
        done_at: None,
        done_by: None,
        replacement_accession: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let open = f.store.problem_log(true, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].reason, "hemolyzed");
    assert_eq!(open[0].accession, "A2600000012X");
    assert_eq!(open[0].opened_at, at);
    let tasks = f.store.recollect_tasks(true, 10).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!((tasks[0].order_id, tasks[0].location_id), (order, location));
    assert_eq!(tasks[0].accession, "A2600000012X");

    // The chain of custody is append-only, like the audit trail: even SQL cannot rewrite it.
    let events = f.store.specimen_events(id).await.unwrap();
    assert!(!events.is_empty());
    let update = f
        .raw("UPDATE specimen_events SET actor_name = 'mallory'")
        .await;
    assert!(update.is_err(), "an UPDATE of a custody event went through");
    let delete = f.raw("DELETE FROM specimen_events").await;
    assert!(delete.is_err(), "a DELETE of a custody event went through");
    assert_eq!(f.store.specimen_events(id).await.unwrap(), events);
    f.finish().await;
}

async fn patient_versions_are_numbered_and_append_only(db: Db) {
    let f = fixture(db).await;
    let (order, _, _) = seed_specimen(&f.store, "A2600000013X").await;
    let patient = f
        .store
        .order_by_id(order)
        .await
        .unwrap()
        .unwrap()
        .patient_id;
    let now = Timestamp::now();
    let mut tx = f.store.begin().await.unwrap();
    let mut record = tx.patient_by_id(patient).await.unwrap().unwrap();
    for (n, given) in [(1, "Jane"), (2, "Janet")] {
        let version = tx
            .insert_patient_version(&PatientVersionRecord {
                id: 0,
                patient_id: patient,
                version: 0,
                family_name: record.family_name.clone(),
                given_name: record.given_name.clone(),
                middle_name: None,
                birth_date: record.birth_date.clone(),
                sex: record.sex.clone(),
                clinical_sex: None,
                birth_time: None,
                contact: record.contact.clone(),
                replaced_at: now,
                replaced_by: "t".into(),
                reason: "typo".into(),
            })
            .await
            .unwrap();
        assert_eq!(version, n);
        record.given_name = format!("{given}e");
        record.given_key = record.given_name.to_uppercase();
        record.updated_at = now;
        assert!(tx.correct_patient(&record).await.unwrap());
    }
    tx.commit().await.unwrap();
    let versions = f.store.patient_versions(patient).await.unwrap();
    let given: Vec<&str> = versions.iter().map(|v| v.given_name.as_str()).collect();
    assert_eq!(given, ["Jane", "Janee"]);
    assert_eq!(
        versions[0].replaced_at.as_microsecond(),
        now.as_microsecond()
    );
    let current = f.store.patient_by_id(patient).await.unwrap().unwrap();
    assert_eq!(
        (current.given_name.as_str(), current.given_key.as_str()),
        ("Janete", "JANETE")
    );
    assert_eq!(current.mrn, "M-A2600000013X");

    // A merged-away patient is not corrected.
    let mut tx = f.store.begin().await.unwrap();
    let other = tx
        .insert_patient(&PatientRecord {
            mrn: "M-2".into(),
            ..current.clone()
        })
        .await
        .unwrap();
    tx.set_merged_into(other, Some(patient), now).await.unwrap();
    let merged = PatientRecord {
        id: other,
        ..current.clone()
    };
    assert!(!tx.correct_patient(&merged).await.unwrap());
    tx.commit().await.unwrap();

    // Versions are append-only, like the audit trail: even SQL cannot rewrite them.
    let update = f
        .raw("UPDATE patient_versions SET given_name = 'mallory'")
        .await;
    assert!(
        update.is_err(),
        "an UPDATE of a patient version went through"
    );
    let delete = f.raw("DELETE FROM patient_versions").await;
    assert!(
        delete.is_err(),
        "a DELETE of a patient version went through"
    );
    assert_eq!(f.store.patient_versions(patient).await.unwrap(), versions);
    f.finish().await;
}

/// Issue 16 item 5: a backup taken while a writer keeps committing is one committed state
/// (its head lies between what was acknowledged before and after it, its chain is intact),
/// it restores into a fresh database that verifies, and a damaged backup, a database in use
/// or an existing database are refused before anything changes.
async fn backup_under_write_load_restores_one_consistent_state(db: Db) {
    use aliquot_store::backup::{self, BackupError, ExtraFile};
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    let (f, keyfile) = fixture(db).await.keyed().await;
    let chain_key = aliquot_store::keyfile::load(&keyfile).unwrap();
    assert!(chain_key.is_some());
    let work = tempfile::tempdir().unwrap();
    let scans = work.path().join("scans");
    let extras = [ExtraFile {
        name: backup::KEY_FILE,
        path: keyfile.clone(),
    }];
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicI64::new(0));
    let writer = {
        let (store, stop, acked) = (f.store.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mut tx = store.begin().await.unwrap();
                tx.put_setting(&SettingRecord {
                    key: format!("load.{}", n % 50),
                    value: n.to_string(),
                    updated_at: Timestamp::now(),
                    updated_by: None,
                })
                .await
                .unwrap();
                tx.audit(entry("load.write", n));
                tx.commit().await.unwrap();
                acked.store(n, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let out = work.path().join("backup");
    let before = acked.load(Ordering::SeqCst);
    let report = match &f.config {
        DatabaseConfig::Sqlite { path } => {
            backup::backup_sqlite(path, chain_key.as_ref(), &scans, &extras, &out).await
        }
        DatabaseConfig::Postgres { url } => {
            backup::backup_postgres(url, chain_key.as_ref(), &scans, &extras, &out).await
        }
    }
    .unwrap();
    let after = acked.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let head = report.manifest.audit_head.clone();
    assert!(
        (before..=after).contains(&head.seq),
        "head {} outside [{before}, {after}]",
        head.seq
    );
    assert!(report.chain.as_ref().unwrap().is_intact());
    assert_eq!(report.manifest.files.len(), 2, "{:?}", report.manifest);
    assert_eq!(backup::read_manifest(&out).unwrap(), report.manifest);
    backup::check_files(&out, &report.manifest).unwrap();

    // Restore into a fresh place: the same state, the chain intact, the extra file back.
    let target = tempfile::tempdir().unwrap();
    let key2 = target.path().join("audit.key");
    let extras2 = [ExtraFile {
        name: backup::KEY_FILE,
        path: key2.clone(),
    }];
    let target_config = match db {
        Db::Sqlite => DatabaseConfig::Sqlite {
            path: target.path().join("restored.db"),
        },
        Db::Postgres => DatabaseConfig::Postgres {
            url: format!(
                "{}/aliquot_t_{}",
                pg_server(),
                uuid::Uuid::new_v4().simple()
            ),
        },
    };
    let restore = |force: bool| {
        let (out, scans, extras2, target_config) = (
            out.clone(),
            target.path().join("scans"),
            extras2.clone(),
            target_config.clone(),
        );
        async move {
            match &target_config {
                DatabaseConfig::Sqlite { path } => {
                    backup::restore_sqlite(&out, path, &scans, &extras2, force).await
                }
                DatabaseConfig::Postgres { url } => {
                    backup::restore_postgres(&out, url, &scans, &extras2, force).await
                }
            }
        }
    };

    // A damaged backup is refused and nothing is written.
    let copy = out.join(match db {
        Db::Sqlite => backup::SQLITE_FILE,
        Db::Postgres => backup::PG_DUMP_FILE,
    });
    let original = std::fs::read(&copy).unwrap();
    let mut damaged = original.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x40;
    std::fs::write(&copy, &damaged).unwrap();
    let e = restore(false).await.unwrap_err();
    assert!(matches!(e, BackupError::Damaged(_)), "{e}");
    assert!(e.to_string().contains("does not match its SHA-256"), "{e}");
    assert!(!key2.exists());
    if let DatabaseConfig::Sqlite { path } = &target_config {
        assert!(!path.exists());
    }
    std::fs::write(&copy, &original).unwrap();

    let restored = restore(false).await.unwrap();
    assert_eq!(restored.manifest.audit_head, head);
    assert_eq!(
        std::fs::read(&key2).unwrap(),
        std::fs::read(&keyfile).unwrap()
    );
    let store = aliquot_store::open_with_key(&target_config, Some(&key2))
        .await
        .unwrap();
    let chain = store.verify_audit_chain().await.unwrap();
    assert!(chain.is_intact(), "{chain:?}");
    assert_eq!(
        (chain.head_seq, chain.head_hash.clone()),
        (head.seq, head.hash.clone())
    );
    assert_eq!(chain.rows, head.seq);

    // Over a database in use: refused (SQLite: the lock; PostgreSQL: it is not empty).
    let e = restore(true).await.unwrap_err();
    assert!(matches!(e, BackupError::Refused(_)), "{e}");
    store.close().await;
    drop(store);
    if matches!(target_config, DatabaseConfig::Sqlite { .. }) {
        assert!(e.to_string().contains("is in use"), "{e}");
        // Not in use, but there: refused without --force, moved aside with it.
        let e = restore(false).await.unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        let again = restore(true).await.unwrap();
        let aside = again.replaced.expect("the old database is kept");
        assert!(aside.exists());
    } else {
        assert!(e.to_string().contains("not empty"), "{e}");
    }
    if let DatabaseConfig::Postgres { url } = &target_config {
        let _ = sqlx::Postgres::force_drop_database(url).await;
    }
    f.finish().await;
}

/// SQL that lets a superuser rewrite the chain: the append-only triggers out of the way.
fn bypass_triggers(db: Db) -> &'static str {
    match db {
        Db::Sqlite => {
            "DROP TRIGGER audit_event_no_update; DROP TRIGGER audit_event_no_delete; \
             DROP TRIGGER audit_head_only_advances;"
        }
        Db::Postgres => {
            "ALTER TABLE audit_event DISABLE TRIGGER USER; \
             ALTER TABLE audit_head DISABLE TRIGGER USER;"
        }
    }
}

/// Issue 16 item 4: a keyed chain (key file created with mode 0600, the key's creation the
/// first keyed event) whose head only advances (trigger), and whose newest rows deleted with
/// the head rewound are found by the head's MAC; an anchor taken before finds it too.
async fn a_keyed_chain_refuses_a_rewound_head(db: Db) {
    let (f, key) = fixture(db).await.keyed().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for n in 1..=6 {
        append(&f.store, n).await;
    }
    let report = f.store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.rows, report.keyed_from), (7, Some(1)));
    let first = f.store.audit_events(0, 1, None).await.unwrap();
    assert_eq!(first[0].entry.action, "audit.key_create");
    let anchor = aliquot_store::Anchor {
        seq: report.head_seq,
        hash: report.head_hash.clone(),
    };
    assert!(
        f.store
            .verify_audit_anchor(Some(&anchor))
            .await
            .unwrap()
            .is_intact()
    );
    // Without its key the database is not opened (it would append unkeyed events).
    let e = aliquot_store::open(&f.config)
        .await
        .err()
        .expect("opened without the key");
    assert!(e.to_string().contains("keyed"), "{e}");
    // The head only advances, and is never deleted.
    let e = f
        .raw("UPDATE audit_head SET seq = 3 WHERE id = 1")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only advances"), "{e}");
    let e = f.raw("DELETE FROM audit_head").await.unwrap_err();
    assert!(e.to_string().contains("only advances"), "{e}");
    // A superuser deletes the newest rows and rewinds the head to match them.
    f.raw(bypass_triggers(db)).await.unwrap();
    f.raw(
        "DELETE FROM audit_event WHERE seq >= 6; \
         UPDATE audit_head SET seq = 5, last_hash = (SELECT hash FROM audit_event WHERE seq = 5) \
         WHERE id = 1;",
    )
    .await
    .unwrap();
    let b = f
        .store
        .verify_audit_chain()
        .await
        .unwrap()
        .first_break
        .expect("not detected");
    assert!(b.problem.contains("MAC"), "{b:?}");
    let b = f
        .store
        .verify_audit_anchor(Some(&anchor))
        .await
        .unwrap()
        .first_break
        .expect("not detected");
    assert!(b.seq <= 7, "{b:?}");
    f.finish().await;
}

/// Issue 16 item 4: a row edited and every later hash recomputed (with the head set to
/// match) by someone without the key is found at the edited row.
async fn a_keyed_chain_cannot_be_recomputed_without_the_key(db: Db) {
    use aliquot_store::audit::{HashInput, chain_hash};
    let (f, _key) = fixture(db).await.keyed().await;
    for n in 1..=5 {
        append(&f.store, n).await;
    }
    let rows = f.store.audit_events(0, 100, None).await.unwrap();
    assert_eq!(rows.len(), 6);
    let mut sql = bypass_triggers(db).to_owned();
    let mut prev = rows[1].hash.clone();
    for r in &rows[2..] {
        let actor = if r.seq == 3 {
            "mallory"
        } else {
            r.entry.actor_name.as_str()
        };
        let hash = chain_hash(
            &prev,
            &HashInput {
                seq: r.seq,
                occurred_at_us: r.entry.at.as_microsecond(),
                actor_id: r.entry.actor_id,
                actor_name: actor,
                actor_role: r.entry.actor_role.as_deref(),
                source: &r.entry.source,
                action: &r.entry.action,
                entity_type: &r.entry.entity_type,
                entity_id: &r.entry.entity_id,
                reason: r.entry.reason.as_deref(),
                old_value: r.old_text.as_deref(),
                new_value: r.new_text.as_deref(),
            },
        );
        sql.push_str(&format!(
            " UPDATE audit_event SET actor_name = '{actor}', prev_hash = '{prev}', hash = '{hash}' \
             WHERE seq = {};",
            r.seq
        ));
        prev = hash;
    }
    sql.push_str(&format!(
        " UPDATE audit_head SET last_hash = '{prev}' WHERE id = 1;"
    ));
    f.raw_owned(sql).await;
    let b = f
        .store
        .verify_audit_chain()
        .await
        .unwrap()
        .first_break
        .expect("not detected");
    assert_eq!(b.seq, 3, "{b:?}");
    assert!(b.problem.contains("altered"), "{b:?}");
    f.finish().await;
}

/// Issue 16 item 4: a head reset to nothing (the PostgreSQL report: 0 events while rows
/// exist) is reported, and every row present is counted.
async fn a_reset_head_is_reported_with_every_row(db: Db) {
    let (f, _key) = fixture(db).await.keyed().await;
    for n in 1..=4 {
        append(&f.store, n).await;
    }
    f.raw(bypass_triggers(db)).await.unwrap();
    f.raw("UPDATE audit_head SET seq = 0, last_hash = 'genesis', head_mac = NULL WHERE id = 1")
        .await
        .unwrap();
    let report = f.store.verify_audit_chain().await.unwrap();
    assert_eq!(report.rows, 5, "{report:?}");
    let b = report.first_break.expect("not detected");
    assert_eq!(b.seq, 1, "{b:?}");
    assert!(
        b.problem.contains("past the head") || b.problem.contains("removed"),
        "{b:?}"
    );
    // Unkeyed too: rows past the head are an error, not ignored.
    let g = fixture(db).await;
    for n in 1..=3 {
        append(&g.store, n).await;
    }
    g.raw(bypass_triggers(db)).await.unwrap();
    g.raw("UPDATE audit_head SET seq = 1, last_hash = (SELECT hash FROM audit_event WHERE seq = 1) WHERE id = 1")
        .await
        .unwrap();
    let b = g
        .store
        .verify_audit_chain()
        .await
        .unwrap()
        .first_break
        .expect("not detected");
    assert!(b.problem.contains("past the head"), "{b:?}");
    g.finish().await;
    f.finish().await;
}

/// A backup taken by a release before the audit key (schema 19: no key columns) is checked
/// and restored by this one, then migrated and keyed when opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_from_before_the_audit_key_restores() {
    use aliquot_store::backup;
    use sqlx::ConnectOptions;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        let old: Vec<_> = migrations::SQLITE
            .iter()
            .filter(|m| m.0 < 20)
            .map(|(version, name, sql)| {
                sqlx::migrate::Migration::new(
                    *version,
                    std::borrow::Cow::Borrowed(*name),
                    sqlx::migrate::MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect();
        sqlx::migrate::Migrator::with_migrations(old)
            .run(&mut conn)
            .await
            .unwrap();
    }
    let out = dir.path().join("backup");
    let report = backup::backup_sqlite(&db, None, &dir.path().join("scans"), &[], &out)
        .await
        .unwrap();
    assert_eq!(report.manifest.schema_version, 19);
    let target = dir.path().join("restored").join("aliquot.db");
    let key = dir.path().join("restored").join("audit.key");
    backup::restore_sqlite(&out, &target, &dir.path().join("scans2"), &[], false)
        .await
        .unwrap();
    let store = aliquot_store::open_with_key(&DatabaseConfig::Sqlite { path: target }, Some(&key))
        .await
        .unwrap();
    let chain = store.verify_audit_chain().await.unwrap();
    assert!(chain.is_intact(), "{chain:?}");
    assert_eq!((chain.rows, chain.keyed_from), (1, Some(1)));
    store.close().await;
}

fn access_entry(n: i64) -> AccessEntry {
    AccessEntry {
        at: Timestamp::now(),
        actor_id: Some(1),
        actor_name: "tech".into(),
        source: "api".into(),
        action: "patient.read".into(),
        entity_type: "patient".into(),
        entity_id: n.to_string(),
        patient_ids: vec![n],
    }
}

/// Five access rows: three by `record_access`, two by a transaction's `log_access` (and one
/// of a dropped transaction, which is not written).
async fn five_access_rows(store: &Arc<dyn Store>) {
    for n in 1..=3 {
        store.record_access(&access_entry(n)).await.unwrap();
    }
    let mut tx = store.begin().await.unwrap();
    tx.log_access(&access_entry(4)).await.unwrap();
    tx.log_access(&access_entry(5)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.log_access(&access_entry(6)).await.unwrap();
    drop(tx);
}

/// SQL that gets the access log's append-only triggers out of a superuser's way.
fn bypass_access_triggers(db: Db) -> &'static str {
    match db {
        Db::Sqlite => {
            "DROP TRIGGER access_log_no_update; DROP TRIGGER access_log_no_delete; \
             DROP TRIGGER access_head_only_advances;"
        }
        Db::Postgres => {
            "ALTER TABLE access_log DISABLE TRIGGER USER; \
             ALTER TABLE access_head DISABLE TRIGGER USER;"
        }
    }
}

/// Issue 16 item 4: the access log is chained like the audit trail. Every way a superuser
/// could rewrite it (a row edited, removed, reordered, the newest rows cut off) is found at
/// the row where it happened; the rows cannot be changed through the triggers at all.
async fn the_access_log_is_one_chain_and_tampering_is_found_at_its_row(db: Db) {
    // (what is done, the row where the chain breaks).
    let cases: &[(&'static str, i64)] = &[
        ("UPDATE access_log SET entity_id = '33' WHERE seq = 3", 3),
        ("UPDATE access_log SET patient_ids = '[9]' WHERE seq = 5", 5),
        ("DELETE FROM access_log WHERE seq = 2", 2),
        ("DELETE FROM access_log WHERE seq >= 4", 4),
        (
            "UPDATE access_log SET seq = 100 WHERE seq = 4; \
             UPDATE access_log SET seq = 4 WHERE seq = 5; \
             UPDATE access_log SET seq = 5 WHERE seq = 100",
            4,
        ),
        (
            "UPDATE access_head SET seq = 3, last_hash = (SELECT hash FROM access_log WHERE seq = 3) WHERE id = 1",
            4,
        ),
    ];
    for (sql, at) in cases {
        let f = fixture(db).await;
        five_access_rows(&f.store).await;
        let report = f.store.verify_access_chain().await.unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.rows, report.head_seq), (5, 5));
        assert_eq!(f.store.access_log(0, 100).await.unwrap().len(), 5);
        // Through the triggers, nothing changes.
        assert!(
            f.raw("UPDATE access_log SET entity_id = '33' WHERE seq = 3")
                .await
                .is_err()
        );
        assert!(f.raw("DELETE FROM access_log WHERE seq = 3").await.is_err());
        assert!(
            f.raw("UPDATE access_head SET seq = 1 WHERE id = 1")
                .await
                .is_err()
        );
        f.raw(bypass_access_triggers(db)).await.unwrap();
        f.raw_owned((*sql).to_owned()).await;
        let b = f
            .store
            .verify_access_chain()
            .await
            .unwrap()
            .first_break
            .unwrap_or_else(|| panic!("not found: {sql}"));
        assert_eq!(b.seq, *at, "{sql}: {b:?}");
        f.finish().await;
    }
}

/// Issue 16 item 4: with an audit key, the access log is keyed (HMAC-SHA256) and its head
/// carries a MAC: the newest rows cut off with the head rewound to match, or a row edited and
/// every later hash recomputed with SHA-256, are found without an anchor.
async fn a_keyed_access_log_refuses_a_rewound_head(db: Db) {
    let (f, _key) = fixture(db).await.keyed().await;
    five_access_rows(&f.store).await;
    let report = f.store.verify_access_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.keyed_from, Some(1));
    f.raw(bypass_access_triggers(db)).await.unwrap();
    f.raw(
        "DELETE FROM access_log WHERE seq >= 4; \
         UPDATE access_head SET seq = 3, last_hash = (SELECT hash FROM access_log WHERE seq = 3) \
         WHERE id = 1;",
    )
    .await
    .unwrap();
    let b = f
        .store
        .verify_access_chain()
        .await
        .unwrap()
        .first_break
        .expect("not detected");
    assert!(b.problem.contains("MAC"), "{b:?}");
    f.finish().await;
}

/// Issue 16: the access log's keyed start is written into the audit key file (once, when the
/// access log is first keyed), like the audit chain's `from`: a database writer who moves
/// `access_head.keyed_from` (to pass keyed rows off as unkeyed ones, which need no key to
/// recompute) is reported. A key file from before the start was recorded gets it at the next
/// open.
async fn the_access_logs_keyed_start_is_in_the_key_file(db: Db) {
    for moved in [
        "UPDATE access_head SET keyed_from = 4 WHERE id = 1",
        "UPDATE access_head SET keyed_from = NULL WHERE id = 1",
        "UPDATE access_head SET keyed_from = 100 WHERE id = 1",
    ] {
        let (f, key) = fixture(db).await.keyed().await;
        let text = std::fs::read_to_string(&key).unwrap();
        assert!(text.contains("\naccess_from=1\n"), "{text}");
        five_access_rows(&f.store).await;
        let report = f.store.verify_access_chain().await.unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.keyed_from, Some(1));

        // An older key file (no `access_from=`): the start is recorded at the next open.
        let old: String = text
            .lines()
            .filter(|l| !l.contains("access_from") && !l.contains("access log"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&key, old).unwrap();
        let (f, _) = f.keyed().await;
        let text = std::fs::read_to_string(&key).unwrap();
        assert!(text.contains("\naccess_from=1\n"), "{text}");
        let report = f.store.verify_access_chain().await.unwrap();
        assert!(report.is_intact(), "{report:?}");

        f.raw(bypass_access_triggers(db)).await.unwrap();
        f.raw(moved).await.unwrap();
        let b = f
            .store
            .verify_access_chain()
            .await
            .unwrap()
            .first_break
            .unwrap_or_else(|| panic!("not found: {moved}"));
        assert!(b.problem.contains("keyed_from was moved"), "{moved}: {b:?}");
        // A reopen does not take the database's word for it either.
        let (f, _) = f.keyed().await;
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .contains("\naccess_from=1\n")
        );
        let b = f.store.verify_access_chain().await.unwrap().first_break;
        assert!(b.is_some(), "{moved}: not found after a reopen");
        f.finish().await;
    }
}
