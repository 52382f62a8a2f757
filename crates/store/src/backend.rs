//! The two backends. Every method body is written once, in [`backend!`], and stamped out for
//! SQLite and for PostgreSQL; the SQL uses `$N` placeholders, which both accept. What differs
//! (opening, pool shape, how a write transaction begins) is in the `open` functions below.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Pool, Postgres, Sqlite};

use crate::access_chain::{
    AccessChainVerifier, AccessHashInput, AccessHead, access_hash, access_head_mac,
};
use crate::audit::{
    Anchor, AuditEntry, AuditRecord, ChainKey, ChainReport, ChainVerifier, HashInput, HeadInfo,
    head_mac, row_hash,
};
use crate::group::{PgEngine, PgMember, PgWriter, SqliteEngine, SqliteMember, SqliteWriter};
use crate::migrations;
use crate::records::*;
use crate::{Backend, Store, StoreError, StoreResult, Tx};

pub(crate) fn us(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn ts(v: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(v)
        .map_err(|e| StoreError::Database(format!("timestamp out of range: {e}")))
}

pub(crate) fn opt_ts(v: Option<i64>) -> StoreResult<Option<Timestamp>> {
    v.map(ts).transpose()
}

macro_rules! user_cols {
    () => {
        "u.id, u.username, u.display_name, u.role, u.password_hash, u.created_at, \
         u.password_changed_at, u.disabled_at"
    };
}

macro_rules! audit_cols {
    () => {
        "seq, occurred_at, actor_id, actor_name, actor_role, source, action, entity_type, \
         entity_id, reason, old_value, new_value, prev_hash, hash"
    };
}

type UserRow = (i64, String, String, String, String, i64, i64, Option<i64>);

fn user(r: UserRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: r.0,
        username: r.1,
        display_name: r.2,
        role: r.3,
        password_hash: r.4,
        created_at: ts(r.5)?,
        password_changed_at: ts(r.6)?,
        disabled_at: opt_ts(r.7)?,
    })
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    occurred_at: i64,
    actor_id: Option<i64>,
    actor_name: String,
    actor_role: Option<String>,
    source: String,
    action: String,
    entity_type: String,
    entity_id: String,
    reason: Option<String>,
    old_value: Option<String>,
    new_value: Option<String>,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    fn hash_input(&self) -> HashInput<'_> {
        HashInput {
            seq: self.seq,
            occurred_at_us: self.occurred_at,
            actor_id: self.actor_id,
            actor_name: &self.actor_name,
            actor_role: self.actor_role.as_deref(),
            source: &self.source,
            action: &self.action,
            entity_type: &self.entity_type,
            entity_id: &self.entity_id,
            reason: self.reason.as_deref(),
            old_value: self.old_value.as_deref(),
            new_value: self.new_value.as_deref(),
        }
    }

    fn into_record(self) -> StoreResult<AuditRecord> {
        let parse = |t: &Option<String>| {
            t.as_deref()
                .map(|s| serde_json::from_str(s).unwrap_or(serde_json::Value::String(s.into())))
        };
        Ok(AuditRecord {
            seq: self.seq,
            entry: AuditEntry {
                at: ts(self.occurred_at)?,
                actor_id: self.actor_id,
                actor_name: self.actor_name,
                actor_role: self.actor_role,
                source: self.source,
                action: self.action,
                entity_type: self.entity_type,
                entity_id: self.entity_id,
                reason: self.reason,
                old_value: parse(&self.old_value),
                new_value: parse(&self.new_value),
            },
            old_text: self.old_value,
            new_text: self.new_value,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

fn setting(r: (String, String, i64, Option<i64>)) -> StoreResult<SettingRecord> {
    Ok(SettingRecord {
        key: r.0,
        value: r.1,
        updated_at: ts(r.2)?,
        updated_by: r.3,
    })
}

type AccessRow = (
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    String,
    String,
);

/// A chained access row as the verifier reads it: place, columns, prev_hash, hash.
type AccessChainRow = (
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn access(r: AccessRow) -> StoreResult<AccessRecord> {
    Ok(AccessRecord {
        id: r.0,
        at: ts(r.1)?,
        actor_id: r.2,
        actor_name: r.3,
        source: r.4,
        action: r.5,
        entity_type: r.6,
        entity_id: r.7,
        patient_ids: serde_json::from_str(&r.8)
            .map_err(|e| StoreError::Database(format!("access_log.patient_ids: {e}")))?,
    })
}

const VERIFY_PAGE: i64 = 5_000;

/// The migration that added the audit key columns (0020).
const KEYED_SCHEMA: i64 = 20;

macro_rules! backend {
    ($store:ident, $tx:ident, $db:ty, $backend:expr, $writer:ty, $member:ty, $ctx:ident) => {
        /// A store on this backend: a pool of readers, and one writer connection shared by
        /// every write transaction of the process through group commit (see [`crate::group`]).
        pub struct $store {
            read: Pool<$db>,
            writer: $writer,
            /// The audit chain's key (scheme 2), when the database is opened with a key file.
            key: Option<std::sync::Arc<ChainKey>>,
            /// SQLite: the shared lock on `<database>.lock` (see `crate::backup`).
            _lock: Option<crate::backup::DatabaseLock>,
            /// SQLite: WAL checkpoints off the writer's path (see `crate::checkpoint`).
            _checkpointer: Option<crate::checkpoint::Checkpointer>,
        }

        pub struct $tx {
            tx: $member,
            audit: Vec<AuditEntry>,
            /// Access-log rows, chained and written by `commit` (`crate::access_chain`).
            access: Vec<AccessEntry>,
            key: Option<std::sync::Arc<ChainKey>>,
        }

        impl $store {
            /// The audit head with its key columns (`FOR UPDATE` on PostgreSQL with `lock`).
            pub(crate) async fn read_head(
                conn: &mut <$db as sqlx::Database>::Connection,
                lock: bool,
            ) -> StoreResult<HeadInfo> {
                Self::read_head_of(conn, lock, true).await
            }

            /// `keyed_schema`: the database has migration 0020's columns (a copy taken by an
            /// older release may not).
            async fn read_head_of(
                conn: &mut <$db as sqlx::Database>::Connection,
                lock: bool,
                keyed_schema: bool,
            ) -> StoreResult<HeadInfo> {
                if !keyed_schema {
                    let (seq, hash) = sqlx::query_as::<_, (i64, String)>(
                        "SELECT seq, last_hash FROM audit_head WHERE id = 1",
                    )
                    .fetch_one(&mut *conn)
                    .await?;
                    return Ok(HeadInfo {
                        seq,
                        hash,
                        key_id: None,
                        keyed_from: None,
                        mac: None,
                    });
                }
                let sql = if lock && $backend == Backend::Postgres {
                    "SELECT seq, last_hash, key_id, keyed_from, head_mac FROM audit_head \
                     WHERE id = 1 FOR UPDATE"
                } else {
                    "SELECT seq, last_hash, key_id, keyed_from, head_mac FROM audit_head WHERE id = 1"
                };
                let (seq, hash, key_id, keyed_from, mac) = sqlx::query_as::<
                    _,
                    (i64, String, Option<String>, Option<i64>, Option<String>),
                >(sql)
                .fetch_one(&mut *conn)
                .await?;
                Ok(HeadInfo {
                    seq,
                    hash,
                    key_id,
                    keyed_from,
                    mac,
                })
            }

            /// Appends rows to the access log's chain (`crate::access_chain`): takes the
            /// `access_head` row lock (after `audit_head`'s, which the group's first statement
            /// took), keys the chain at the first append of a keyed store, hashes the rows and
            /// writes them with multi-row INSERTs, then advances the head with its MAC.
            pub(crate) async fn append_access(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: Option<&ChainKey>,
                entries: &[AccessEntry],
            ) -> StoreResult<()> {
                if entries.is_empty() {
                    return Ok(());
                }
                let n = entries.len() as i64;
                let (last, mut prev, key_id, keyed_from) =
                    sqlx::query_as::<_, (i64, String, Option<String>, Option<i64>)>(
                        "UPDATE access_head SET seq = seq + $1 WHERE id = 1 \
                         RETURNING seq, last_hash, key_id, keyed_from",
                    )
                    .bind(n)
                    .fetch_one(&mut *conn)
                    .await?;
                let first = last - n + 1;
                // The key file's start is the chain's (the database's copy may be moved).
                let keyed_from = match (key, &key_id) {
                    (Some(k), None) => {
                        let from = k.access_from.unwrap_or(first);
                        sqlx::query(
                            "UPDATE access_head SET key_id = $1, keyed_from = $2 WHERE id = 1",
                        )
                        .bind(&k.id)
                        .bind(from)
                        .execute(&mut *conn)
                        .await?;
                        Some(from)
                    }
                    (Some(k), Some(id)) if *id != k.id => {
                        return Err(StoreError::Config(format!(
                            "the access log is keyed with key {id}, not with the key file's key {}",
                            k.id
                        )));
                    }
                    (None, Some(id)) => {
                        return Err(StoreError::Config(format!(
                            "the access log is keyed (key {id}): open the database with its audit key file"
                        )));
                    }
                    (Some(k), Some(_)) => k.access_from.or(keyed_from),
                    (None, None) => keyed_from,
                };
                let mut rows = Vec::with_capacity(entries.len());
                for (i, e) in entries.iter().enumerate() {
                    let seq = first + i as i64;
                    let ids = serde_json::to_string(&e.patient_ids)
                        .map_err(|err| StoreError::Database(err.to_string()))?;
                    let at = us(e.at);
                    let hash = access_hash(
                        key,
                        keyed_from,
                        &prev,
                        &AccessHashInput {
                            seq,
                            occurred_at_us: at,
                            actor_id: e.actor_id,
                            actor_name: &e.actor_name,
                            source: &e.source,
                            action: &e.action,
                            entity_type: &e.entity_type,
                            entity_id: &e.entity_id,
                            patient_ids: &ids,
                        },
                    );
                    let prev_hash = std::mem::replace(&mut prev, hash.clone());
                    rows.push((seq, at, e, ids, prev_hash, hash));
                }
                for chunk in rows.chunks(64) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO access_log (seq, occurred_at, actor_id, actor_name, source, \
                         action, entity_type, entity_id, patient_ids, prev_hash, hash) ",
                    );
                    qb.push_values(chunk, |mut b, (seq, at, e, ids, prev_hash, hash)| {
                        b.push_bind(*seq)
                            .push_bind(*at)
                            .push_bind(e.actor_id)
                            .push_bind(&e.actor_name)
                            .push_bind(&e.source)
                            .push_bind(&e.action)
                            .push_bind(&e.entity_type)
                            .push_bind(&e.entity_id)
                            .push_bind(ids)
                            .push_bind(prev_hash)
                            .push_bind(hash);
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                let mac = key
                    .filter(|_| keyed_from.is_some())
                    .map(|k| access_head_mac(k, last, &prev));
                sqlx::query("UPDATE access_head SET last_hash = $1, head_mac = $2 WHERE id = 1")
                    .bind(&prev)
                    .bind(mac)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Walks every chained access row on one connection, inside the caller's
            /// snapshot (`crate::access_chain`).
            pub(crate) async fn walk_access_chain(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: Option<&ChainKey>,
            ) -> StoreResult<ChainReport> {
                let (seq, hash, key_id, keyed_from, mac) = sqlx::query_as::<
                    _,
                    (i64, String, Option<String>, Option<i64>, Option<String>),
                >(
                    "SELECT seq, last_hash, key_id, keyed_from, head_mac FROM access_head WHERE id = 1",
                )
                .fetch_one(&mut *conn)
                .await?;
                let head = AccessHead {
                    seq,
                    hash,
                    key_id,
                    keyed_from,
                    mac,
                };
                let mut verifier = AccessChainVerifier::new(key.cloned(), &head);
                let mut after = 0;
                loop {
                    let page = sqlx::query_as::<_, AccessChainRow>(
                        "SELECT seq, occurred_at, actor_id, actor_name, source, action, \
                         entity_type, entity_id, patient_ids, prev_hash, hash FROM access_log \
                         WHERE seq > $1 ORDER BY seq LIMIT $2",
                    )
                    .bind(after)
                    .bind(VERIFY_PAGE)
                    .fetch_all(&mut *conn)
                    .await?;
                    let Some(last) = page.last() else { break };
                    after = last.0;
                    for r in &page {
                        verifier.push(
                            &AccessHashInput {
                                seq: r.0,
                                occurred_at_us: r.1,
                                actor_id: r.2,
                                actor_name: &r.3,
                                source: &r.4,
                                action: &r.5,
                                entity_type: &r.6,
                                entity_id: &r.7,
                                patient_ids: &r.8,
                            },
                            r.9.as_deref().unwrap_or(""),
                            r.10.as_deref().unwrap_or(""),
                        );
                    }
                }
                Ok(verifier.finish(&head))
            }

            /// Walks every audit row present on one connection, inside the caller's snapshot
            /// (rows past the head are an error: see `ChainVerifier`).
            pub(crate) async fn walk_chain(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: Option<&ChainKey>,
                anchor: Option<&Anchor>,
                keyed_schema: bool,
            ) -> StoreResult<ChainReport> {
                let head = Self::read_head_of(&mut *conn, false, keyed_schema).await?;
                let mut verifier = ChainVerifier::new(key.cloned(), &head, anchor.cloned());
                let mut after = 0;
                loop {
                    let page = sqlx::query_as::<_, AuditRow>(concat!(
                        "SELECT ",
                        audit_cols!(),
                        " FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2"
                    ))
                    .bind(after)
                    .bind(VERIFY_PAGE)
                    .fetch_all(&mut *conn)
                    .await?;
                    let Some(last) = page.last() else { break };
                    after = last.seq;
                    for row in &page {
                        verifier.push(&row.hash_input(), &row.prev_hash, &row.hash);
                    }
                }
                Ok(verifier.finish(head.seq, &head.hash))
            }

            /// Binds the chain to its key file when the database is opened (one transaction,
            /// holding the head: SQLite's write lock, PostgreSQL's row lock). A key file
            /// that does not exist is created, keying events from the next one on; a key
            /// file must be this database's (its id and `from` are in `audit_head`); a
            /// keyed database is never opened without its key, which would append unkeyed
            /// events to a keyed chain.
            async fn setup_key(
                conn: &mut <$db as sqlx::Database>::Connection,
                key_file: Option<&Path>,
            ) -> StoreResult<Option<std::sync::Arc<ChainKey>>> {
                let begin = if $backend == Backend::Sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" };
                sqlx::query(begin).execute(&mut *conn).await?;
                let result = async {
                    let head = Self::read_head(&mut *conn, true).await?;
                    let Some(path) = key_file else {
                        return match &head.key_id {
                            None => Ok(None),
                            Some(id) => Err(StoreError::Config(format!(
                                "the audit chain of this database is keyed (key {id}, from event {}): \
                                 open it with its audit key file (--audit-key)",
                                head.keyed_from.unwrap_or(0)
                            ))),
                        };
                    };
                    let key = match crate::keyfile::load(path)? {
                        Some(k) => k,
                        None => {
                            if let Some(id) = &head.key_id {
                                return Err(StoreError::Config(format!(
                                    "the audit key file {} is missing, and this database's chain is keyed \
                                     with key {id}: copy that key file there (from another server of this \
                                     database, or from a backup), or name it with --audit-key",
                                    path.display()
                                )));
                            }
                            crate::keyfile::create(path, head.seq + 1)?
                        }
                    };
                    match &head.key_id {
                        Some(id) if *id == key.id && head.keyed_from == Some(key.from) => {}
                        Some(id) => {
                            return Err(StoreError::Config(format!(
                                "the audit key file {} (key {}) is not this database's (key {id}): \
                                 name the right one with --audit-key",
                                path.display(),
                                key.id
                            )));
                        }
                        None if head.seq + 1 != key.from => {
                            return Err(StoreError::Config(format!(
                                "the audit key file {} keys events from {} on, but this database's \
                                 chain is at event {} (the key would start at the next): it is another database's \
                                 key file",
                                path.display(),
                                key.from,
                                head.seq
                            )));
                        }
                        None => {
                            sqlx::query(
                                "UPDATE audit_head SET key_id = $1, keyed_from = $2 WHERE id = 1",
                            )
                            .bind(&key.id)
                            .bind(key.from)
                            .execute(&mut *conn)
                            .await?;
                            // The first keyed event records the key's creation, so a keyed
                            // chain is never empty of keyed events (their removal shows).
                            let seq = key.from;
                            let at = us(Timestamp::now());
                            let new_value =
                                serde_json::json!({"key_id": key.id, "from": key.from}).to_string();
                            let hash = row_hash(
                                Some(&key),
                                &head.hash,
                                &HashInput {
                                    seq,
                                    occurred_at_us: at,
                                    actor_id: None,
                                    actor_name: "system",
                                    actor_role: None,
                                    source: "system",
                                    action: "audit.key_create",
                                    entity_type: "audit",
                                    entity_id: &key.id,
                                    reason: None,
                                    old_value: None,
                                    new_value: Some(&new_value),
                                },
                            );
                            sqlx::query(concat!(
                                "INSERT INTO audit_event (",
                                audit_cols!(),
                                ") VALUES ($1, $2, NULL, 'system', NULL, 'system', \
                                 'audit.key_create', 'audit', $3, NULL, NULL, $4, $5, $6)"
                            ))
                            .bind(seq)
                            .bind(at)
                            .bind(&key.id)
                            .bind(&new_value)
                            .bind(&head.hash)
                            .bind(&hash)
                            .execute(&mut *conn)
                            .await?;
                            sqlx::query(
                                "UPDATE audit_head SET seq = $1, last_hash = $2, head_mac = $3 \
                                 WHERE id = 1",
                            )
                            .bind(seq)
                            .bind(&hash)
                            .bind(head_mac(&key, seq, &hash))
                            .execute(&mut *conn)
                            .await?;
                        }
                    }
                    let key = Self::bind_access_chain(&mut *conn, path, key).await?;
                    Ok(Some(std::sync::Arc::new(key)))
                }
                .await;
                match &result {
                    Ok(_) => {
                        sqlx::query("COMMIT").execute(&mut *conn).await?;
                    }
                    Err(_) => {
                        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    }
                }
                result
            }

            /// Keys the access log at open, inside `setup_key`'s transaction (which holds
            /// the audit head, so no append runs meanwhile), and records its keyed start in
            /// the key file, where a database writer cannot move it (`crate::access_chain`):
            /// - a key file that states it already: the database is keyed to match if it is
            ///   not (a crash between the file's write and the commit); a database that says
            ///   otherwise is left as it is, for `audit verify` to report;
            /// - a key file from before it was recorded, and an access log already keyed with
            ///   this key: its start is recorded once;
            /// - an access log not yet keyed: it is keyed from its next row, and that row is
            ///   recorded.
            ///
            /// The file is written before the commit: should the commit fail, the next open
            /// finds the file's start and keys the database to it.
            async fn bind_access_chain(
                conn: &mut <$db as sqlx::Database>::Connection,
                path: &Path,
                key: ChainKey,
            ) -> StoreResult<ChainKey> {
                let (seq, last_hash, key_id, keyed_from) =
                    sqlx::query_as::<_, (i64, String, Option<String>, Option<i64>)>(
                        "SELECT seq, last_hash, key_id, keyed_from FROM access_head WHERE id = 1",
                    )
                    .fetch_one(&mut *conn)
                    .await?;
                // Keyed, the head carries its MAC from the start (no row appended yet).
                let key_it = "UPDATE access_head SET key_id = $1, keyed_from = $2, head_mac = $3 \
                              WHERE id = 1";
                let mac = access_head_mac(&key, seq, &last_hash);
                let from = match (key.access_from, &key_id, keyed_from) {
                    (Some(from), None, _) => {
                        sqlx::query(key_it)
                            .bind(&key.id)
                            .bind(from)
                            .bind(&mac)
                            .execute(&mut *conn)
                        .await?;
                        return Ok(key);
                    }
                    (Some(_), Some(_), _) => return Ok(key),
                    (None, Some(id), Some(from)) if *id == key.id => from,
                    // Keyed with another key: appends refuse it, `audit verify` reports it.
                    (None, Some(_), _) => return Ok(key),
                    (None, None, _) => {
                        let from = seq + 1;
                        sqlx::query(key_it)
                            .bind(&key.id)
                            .bind(from)
                            .bind(&mac)
                            .execute(&mut *conn)
                        .await?;
                        from
                    }
                };
                crate::keyfile::record_access_from(path, &key, from)
            }

            /// What a copy of the database holds (see `crate::backup`): its schema version,
            /// its audit chain and the scans it names.
            pub(crate) async fn inspect_conn(
                conn: &mut <$db as sqlx::Database>::Connection,
                key: Option<&ChainKey>,
            ) -> StoreResult<crate::backup::SnapshotInfo> {
                let schema_version: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM _sqlx_migrations",
                )
                .fetch_one(&mut *conn)
                .await?;
                let scans: Vec<String> =
                    sqlx::query_scalar("SELECT DISTINCT sha256 FROM order_scans ORDER BY sha256")
                        .fetch_all(&mut *conn)
                        .await?;
                let integrity = if $backend == Backend::Sqlite {
                    sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
                        .fetch_all(&mut *conn)
                        .await?
                        .into_iter()
                        .filter(|r| r != "ok")
                        .collect()
                } else {
                    Vec::new()
                };
                let keyed_schema = schema_version >= KEYED_SCHEMA;
                let chain = Self::walk_chain(&mut *conn, key, None, keyed_schema).await?;
                Ok(crate::backup::SnapshotInfo {
                    schema_version,
                    integrity,
                    chain,
                    scans,
                })
            }

            async fn fetch_user_by_id<'e, E: sqlx::Executor<'e, Database = $db>>(
                e: E,
                id: i64,
            ) -> StoreResult<Option<UserRecord>> {
                sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_cols!(),
                    " FROM users u WHERE u.id = $1"
                ))
                .bind(id)
                .fetch_optional(e)
                .await?
                .map(user)
                .transpose()
            }

            /// One count of `login_attempts` (see `LoginAttempts`): `which` 0 is the pair, 1 the
            /// address, 2 the other addresses on the account.
            async fn fetch_login_count<'e, E: sqlx::Executor<'e, Database = $db>>(
                e: E,
                which: u8,
                address: &str,
                account: &str,
                since: Timestamp,
            ) -> StoreResult<Option<(i64, Timestamp)>> {
                let sql = match which {
                    0 => "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT), MAX(last_failure_at) \
                          FROM login_attempts \
                          WHERE address = $1 AND account = $2 AND last_failure_at >= $3",
                    1 => "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT), MAX(last_failure_at) \
                          FROM login_attempts \
                          WHERE address = $1 AND last_failure_at >= $3 AND $2 = $2",
                    _ => "SELECT COUNT(*), MAX(last_failure_at) FROM login_attempts \
                          WHERE account = $2 AND address <> $1 AND last_failure_at >= $3",
                };
                let (n, last) = sqlx::query_as::<_, (i64, Option<i64>)>(sql)
                    .bind(address)
                    .bind(account)
                    .bind(us(since))
                    .fetch_one(e)
                    .await?;
                match last {
                    Some(l) if n > 0 => Ok(Some((n, ts(l)?))),
                    _ => Ok(None),
                }
            }

            async fn fetch_setting<'e, E: sqlx::Executor<'e, Database = $db>>(
                e: E,
                key: &str,
            ) -> StoreResult<Option<SettingRecord>> {
                sqlx::query_as::<_, (String, String, i64, Option<i64>)>(
                    "SELECT key, value, updated_at, updated_by FROM settings WHERE key = $1",
                )
                .bind(key)
                .fetch_optional(e)
                .await?
                .map(setting)
                .transpose()
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
                let tx = self.writer.begin().await?;
                Ok(Box::new($tx {
                    tx,
                    audit: Vec::new(),
                    access: Vec::new(),
                    key: self.key.clone(),
                }))
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.read).await?;
                Ok(())
            }

            async fn close(&self) {
                if let Err(e) = self.writer.flush().await {
                    tracing::error!(error = %e, "flushing the last write group at close failed");
                }
                self.read.close().await;
            }

            async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
                sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_cols!(),
                    " FROM users u WHERE u.username = $1"
                ))
                .bind(username)
                .fetch_optional(&self.read)
                .await?
                .map(user)
                .transpose()
            }

            async fn user_by_id(&self, id: i64) -> StoreResult<Option<UserRecord>> {
                Self::fetch_user_by_id(&self.read, id).await
            }

            async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
                sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_cols!(),
                    " FROM users u ORDER BY u.username"
                ))
                .fetch_all(&self.read)
                .await?
                .into_iter()
                .map(user)
                .collect()
            }

            async fn user_mfa(&self, user_id: i64) -> StoreResult<Option<MfaRecord>> {
                crate::queries::$ctx::security::user_mfa(&self.read, user_id).await
            }

            async fn role_grants(&self, pending_only: bool, limit: i64) -> StoreResult<Vec<RoleGrantRecord>> {
                crate::queries::$ctx::security::role_grants(&self.read, pending_only, limit).await
            }

            async fn session_by_token_hash(
                &self,
                token_hash: &str,
            ) -> StoreResult<Option<SessionAuth>> {
                type Row = (i64, i64, i64, Option<i64>, i64, String, String, String, String, i64, i64, Option<i64>);
                let row = sqlx::query_as::<_, Row>(concat!(
                    "SELECT s.id, s.expires_at, s.last_seen_at, s.revoked_at, ",
                    user_cols!(),
                    " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1"
                ))
                .bind(token_hash)
                .fetch_optional(&self.read)
                .await?;
                row.map(|r| {
                    Ok(SessionAuth {
                        session_id: r.0,
                        expires_at: ts(r.1)?,
                        last_seen_at: ts(r.2)?,
                        revoked_at: opt_ts(r.3)?,
                        user: user((r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11))?,
                    })
                })
                .transpose()
            }

            async fn login_attempts(
                &self,
                address: &str,
                account: &str,
                since: Timestamp,
            ) -> StoreResult<LoginAttempts> {
                Ok(LoginAttempts {
                    pair: Self::fetch_login_count(&self.read, 0, address, account, since).await?,
                    address: Self::fetch_login_count(&self.read, 1, address, account, since).await?,
                    other_addresses: Self::fetch_login_count(&self.read, 2, address, account, since)
                        .await?,
                })
            }

            async fn list_settings(&self) -> StoreResult<Vec<SettingRecord>> {
                sqlx::query_as::<_, (String, String, i64, Option<i64>)>(
                    "SELECT key, value, updated_at, updated_by FROM settings ORDER BY key",
                )
                .fetch_all(&self.read)
                .await?
                .into_iter()
                .map(setting)
                .collect()
            }

            async fn setting(&self, key: &str) -> StoreResult<Option<SettingRecord>> {
                Self::fetch_setting(&self.read, key).await
            }

            async fn audit_events(
                &self,
                after: i64,
                limit: i64,
                entity: Option<(&str, &str)>,
            ) -> StoreResult<Vec<AuditRecord>> {
                let rows = match entity {
                    None => {
                        sqlx::query_as::<_, AuditRow>(concat!(
                            "SELECT ",
                            audit_cols!(),
                            " FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2"
                        ))
                        .bind(after)
                        .bind(limit)
                        .fetch_all(&self.read)
                        .await?
                    }
                    Some((entity_type, entity_id)) => {
                        sqlx::query_as::<_, AuditRow>(concat!(
                            "SELECT ",
                            audit_cols!(),
                            " FROM audit_event WHERE seq > $1 AND entity_type = $3 \
                             AND entity_id = $4 ORDER BY seq LIMIT $2"
                        ))
                        .bind(after)
                        .bind(limit)
                        .bind(entity_type)
                        .bind(entity_id)
                        .fetch_all(&self.read)
                        .await?
                    }
                };
                rows.into_iter().map(AuditRow::into_record).collect()
            }

            async fn access_log(&self, after: i64, limit: i64) -> StoreResult<Vec<AccessRecord>> {
                sqlx::query_as::<_, AccessRow>(
                    "SELECT id, occurred_at, actor_id, actor_name, source, action, entity_type, \
                     entity_id, patient_ids FROM access_log WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.read)
                .await?
                .into_iter()
                .map(access)
                .collect()
            }

            async fn integrity_check(&self) -> StoreResult<Option<Vec<String>>> {
                if $backend != Backend::Sqlite {
                    return Ok(None);
                }
                let rows = sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
                    .fetch_all(&self.read)
                    .await?;
                Ok(Some(rows.into_iter().filter(|r| r != "ok").collect()))
            }

            async fn verify_audit_chain(&self) -> StoreResult<ChainReport> {
                self.verify_audit_anchor(None).await
            }

            async fn verify_audit_anchor(&self, anchor: Option<&Anchor>) -> StoreResult<ChainReport> {
                // One snapshot: the head and every row as of one moment, so rows appended
                // while we walk are neither seen nor taken for rows past the head.
                let mut conn = self.read.acquire().await?;
                let begin = if $backend == Backend::Sqlite {
                    "BEGIN"
                } else {
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                };
                sqlx::query(begin).execute(&mut *conn).await?;
                let report = Self::walk_chain(&mut conn, self.key.as_deref(), anchor, true).await;
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                report
            }

            async fn verify_access_chain(&self) -> StoreResult<ChainReport> {
                // One snapshot, as for the audit chain.
                let mut conn = self.read.acquire().await?;
                let begin = if $backend == Backend::Sqlite {
                    "BEGIN"
                } else {
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                };
                sqlx::query(begin).execute(&mut *conn).await?;
                let report = Self::walk_access_chain(&mut conn, self.key.as_deref()).await;
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                report
            }

            async fn record_access(&self, e: &AccessEntry) -> StoreResult<()> {
                // One row, chained, through the writer: it joins the current commit group.
                let mut w = self.writer.begin().await?;
                Self::append_access(&mut *w, self.key.as_deref(), std::slice::from_ref(e)).await?;
                w.commit().await
            }

            async fn patient_by_id(&self, id: i64) -> StoreResult<Option<PatientRecord>> {
                crate::queries::$ctx::registration::patient_by_id(&self.read, id).await
            }

            async fn search_patients(&self, q: &PatientQuery) -> StoreResult<Vec<PatientRecord>> {
                crate::queries::$ctx::registration::search_patients(&self.read, q).await
            }

            async fn user_provider(&self, user_id: i64) -> StoreResult<Option<i64>> {
                crate::queries::$ctx::registration::user_provider(&self.read, user_id).await
            }

            async fn patient_ordered_by(&self, patient_id: i64, provider_id: i64) -> StoreResult<bool> {
                crate::queries::$ctx::registration::patient_ordered_by(&self.read, patient_id, provider_id).await
            }

            async fn merge_by_id(&self, id: i64) -> StoreResult<Option<MergeRecord>> {
                crate::queries::$ctx::registration::merge_by_id(&self.read, id).await
            }

            async fn patient_versions(&self, patient_id: i64) -> StoreResult<Vec<PatientVersionRecord>> {
                crate::queries::$ctx::registration::patient_versions(&self.read, patient_id).await
            }

            async fn provider_by_id(&self, id: i64) -> StoreResult<Option<ProviderRecord>> {
                crate::queries::$ctx::registration::provider_by_id(&self.read, id).await
            }

            async fn provider_by_npi(&self, npi: &str) -> StoreResult<Option<ProviderRecord>> {
                crate::queries::$ctx::registration::provider_by_npi(&self.read, npi).await
            }

            async fn list_providers(&self) -> StoreResult<Vec<ProviderRecord>> {
                crate::queries::$ctx::registration::list_providers(&self.read).await
            }

            async fn location_by_id(&self, id: i64) -> StoreResult<Option<LocationRecord>> {
                crate::queries::$ctx::registration::location_by_id(&self.read, id).await
            }

            async fn location_by_code(&self, code: &str) -> StoreResult<Option<LocationRecord>> {
                crate::queries::$ctx::registration::location_by_code(&self.read, code).await
            }

            async fn list_locations(&self) -> StoreResult<Vec<LocationRecord>> {
                crate::queries::$ctx::registration::list_locations(&self.read).await
            }

            async fn list_catalog(&self, include_retired: bool) -> StoreResult<Vec<CatalogTestRecord>> {
                crate::queries::$ctx::catalog::list_catalog(&self.read, include_retired).await
            }

            async fn catalog_by_code(&self, code: &str) -> StoreResult<Option<CatalogTestRecord>> {
                crate::queries::$ctx::catalog::catalog_by_code(&self.read, code).await
            }

            async fn order_by_id(&self, id: i64) -> StoreResult<Option<OrderRecord>> {
                crate::queries::$ctx::orders::order_by_id(&self.read, id).await
            }

            async fn orders_by(&self, placer_order_number: Option<&str>, patient_id: Option<i64>, limit: i64) -> StoreResult<Vec<OrderRecord>> {
                crate::queries::$ctx::orders::orders_by(&self.read, placer_order_number, patient_id, limit).await
            }

            async fn specimens_of_order(&self, order_id: i64) -> StoreResult<Vec<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimens_of_order(&self.read, order_id).await
            }

            async fn tests_of_order(&self, order_id: i64) -> StoreResult<Vec<OrderTestRecord>> {
                crate::queries::$ctx::orders::tests_of_order(&self.read, order_id).await
            }

            async fn catalog_versions(&self, test_id: i64) -> StoreResult<Vec<CatalogVersionRecord>> {
                crate::queries::$ctx::catalog::catalog_versions(&self.read, test_id).await
            }

            async fn scan_by_id(&self, id: i64) -> StoreResult<Option<ScanRecord>> {
                crate::queries::$ctx::orders::scan_by_id(&self.read, id).await
            }

            async fn scans_of_order(&self, order_id: i64) -> StoreResult<Vec<ScanRecord>> {
                crate::queries::$ctx::orders::scans_of_order(&self.read, order_id).await
            }

            async fn specimen_by_accession(&self, accession: &str) -> StoreResult<Option<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimen_by_accession(&self.read, accession).await
            }

            async fn specimen_events(&self, specimen_id: i64) -> StoreResult<Vec<SpecimenEventRecord>> {
                crate::queries::$ctx::specimens::specimen_events(&self.read, specimen_id).await
            }

            async fn planned_specimens(&self, location_id: Option<i64>, limit: i64) -> StoreResult<Vec<SpecimenRecord>> {
                crate::queries::$ctx::specimens::planned_specimens(&self.read, location_id, limit).await
            }

            async fn receipt_times(&self, since: Timestamp) -> StoreResult<Vec<Timestamp>> {
                crate::queries::$ctx::specimens::receipt_times(&self.read, since).await
            }

            async fn problem_log(&self, open_only: bool, limit: i64) -> StoreResult<Vec<ProblemRecord>> {
                crate::queries::$ctx::specimens::problem_log(&self.read, open_only, limit).await
            }

            async fn problem_by_id(&self, id: i64) -> StoreResult<Option<ProblemRecord>> {
                crate::queries::$ctx::specimens::problem_by_id(&self.read, id).await
            }

            async fn recollect_task_by_id(&self, id: i64) -> StoreResult<Option<RecollectTaskRecord>> {
                crate::queries::$ctx::specimens::recollect_task_by_id(&self.read, id).await
            }

            async fn recollect_tasks(&self, open_only: bool, limit: i64) -> StoreResult<Vec<RecollectTaskRecord>> {
                crate::queries::$ctx::specimens::recollect_tasks(&self.read, open_only, limit).await
            }

            // ── processing: centrifugation, aliquots, dilutions, routing (issue 4) ──

            async fn specimen_children(&self, parent_id: i64) -> StoreResult<Vec<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimen_children(&self.read, parent_id).await
            }

            async fn specimen_parent(&self, specimen_id: i64) -> StoreResult<Option<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimen_parent(&self.read, specimen_id).await
            }

            async fn centrifugations(&self, specimen_id: i64) -> StoreResult<Vec<CentrifugationRecord>> {
                crate::queries::$ctx::specimens::centrifugations(&self.read, specimen_id).await
            }

            async fn dilutions(&self, specimen_id: i64) -> StoreResult<Vec<DilutionRecord>> {
                crate::queries::$ctx::specimens::dilutions(&self.read, specimen_id).await
            }

            async fn sorting_list(&self, a: &str, b: &str, limit: i64) -> StoreResult<Vec<SortingRecord>> {
                crate::queries::$ctx::specimens::sorting_list(&self.read, a, b, limit).await
            }

            // ── outbox (issue 12) ──
            async fn destinations(&self, active: bool) -> StoreResult<Vec<DestinationRecord>> {
                crate::queries::$ctx::outbox::destinations(&self.read, active).await
            }
            async fn destination_by_code(&self, code: &str) -> StoreResult<Option<DestinationRecord>> {
                crate::queries::$ctx::outbox::destination_by_code(&self.read, code).await
            }
            async fn outbox_by_id(&self, id: i64) -> StoreResult<Option<OutboxRecord>> {
                crate::queries::$ctx::outbox::outbox_by_id(&self.read, id).await
            }
            async fn outbox_queue_counts(&self) -> StoreResult<Vec<(i64, String, i64)>> {
                crate::queries::$ctx::outbox::outbox_queue_counts(&self.read).await
            }
            async fn outbox_head(&self, destination_id: i64) -> StoreResult<Option<OutboxRecord>> {
                crate::queries::$ctx::outbox::outbox_head(&self.read, destination_id).await
            }
            async fn outbox_list(&self, destination_id: Option<i64>, status: Option<&str>, before: Option<i64>, limit: i64) -> StoreResult<Vec<OutboxRecord>> {
                crate::queries::$ctx::outbox::outbox_list(&self.read, destination_id, status, before, limit).await
            }

            // ── quality control (issue 13) ──
            async fn qc_lots(&self) -> StoreResult<Vec<QcLotRecord>> {
                crate::queries::$ctx::qc::lots(&self.read).await
            }
            async fn qc_lot(&self, lot: &str, level: i64) -> StoreResult<Option<QcLotRecord>> {
                crate::queries::$ctx::qc::lot_by_key(&self.read, lot, level).await
            }
            async fn qc_targets(&self, instrument_id: i64, test_code: &str) -> StoreResult<Vec<QcTargetRecord>> {
                crate::queries::$ctx::qc::targets(&self.read, instrument_id, test_code).await
            }
            async fn qc_config(&self, instrument_id: i64, test_code: &str) -> StoreResult<Option<QcConfigRecord>> {
                crate::queries::$ctx::qc::config_of(&self.read, instrument_id, test_code).await
            }
            async fn qc_configs(&self) -> StoreResult<Vec<QcConfigRecord>> {
                crate::queries::$ctx::qc::configs(&self.read).await
            }
            async fn qc_runs(&self, instrument_id: i64, test_code: &str, range: RunRange) -> StoreResult<Vec<QcRunRecord>> {
                crate::queries::$ctx::qc::runs(&self.read, instrument_id, test_code, range).await
            }
            async fn qc_pairs(&self) -> StoreResult<Vec<(i64, String)>> {
                crate::queries::$ctx::qc::qc_pairs(&self.read).await
            }
            async fn qc_open_lock(&self, instrument_id: i64, test_code: &str) -> StoreResult<Option<QcLockRecord>> {
                crate::queries::$ctx::qc::open_lock(&self.read, instrument_id, test_code).await
            }
            async fn qc_locks(&self, instrument_id: i64, test_code: &str, limit: i64) -> StoreResult<Vec<QcLockRecord>> {
                crate::queries::$ctx::qc::locks(&self.read, instrument_id, test_code, limit).await
            }
            async fn qc_corrective_actions(&self, lock_id: i64) -> StoreResult<Vec<QcCorrectiveActionRecord>> {
                crate::queries::$ctx::qc::corrective_actions(&self.read, lock_id).await
            }
            async fn qc_corrective_actions_between(&self, instrument_id: i64, test_code: &str, from: Timestamp, to: Timestamp) -> StoreResult<Vec<QcCorrectiveActionRecord>> {
                crate::queries::$ctx::qc::corrective_actions_between(&self.read, instrument_id, test_code, from, to).await
            }
            async fn qc_calibrations(&self, instrument_id: i64, test_code: &str, limit: i64) -> StoreResult<Vec<QcCalibrationRecord>> {
                crate::queries::$ctx::qc::calibrations(&self.read, instrument_id, test_code, limit).await
            }
            async fn results_on_instrument(&self, instrument_code: &str, test_code: &str, since: Option<Timestamp>, limit: i64) -> StoreResult<Vec<ResultRecord>> {
                crate::queries::$ctx::results::results_on_instrument(&self.read, instrument_code, test_code, since, limit).await
            }

            // ── connections (issue 12) ──
            async fn instruments(&self) -> StoreResult<Vec<InstrumentRecord>> {
                crate::queries::$ctx::connections::instruments(&self.read).await
            }
            async fn instrument_by_code(&self, code: &str) -> StoreResult<Option<InstrumentRecord>> {
                crate::queries::$ctx::connections::instrument_by_code(&self.read, code).await
            }
            async fn instrument_by_sender(&self, protocol: &str, sender: &str) -> StoreResult<Option<InstrumentRecord>> {
                crate::queries::$ctx::connections::instrument_by_sender(&self.read, protocol, sender).await
            }
            async fn instrument_test_codes(&self, instrument_id: i64) -> StoreResult<Vec<InstrumentTestCodeRecord>> {
                crate::queries::$ctx::connections::instrument_test_codes(&self.read, instrument_id).await
            }
            async fn interface_message_by_id(&self, id: i64) -> StoreResult<Option<InterfaceMessageRecord>> {
                crate::queries::$ctx::connections::interface_message_by_id(&self.read, id).await
            }
            async fn interface_messages(&self, status: Option<&str>, connection: Option<&str>, before: Option<i64>, limit: i64) -> StoreResult<Vec<InterfaceMessageRecord>> {
                crate::queries::$ctx::connections::interface_messages(&self.read, status, connection, before, limit).await
            }

            // ── results (issue 11) ──
            async fn result_rules(&self, test_code: &str) -> StoreResult<Option<ResultRulesRecord>> {
                crate::queries::$ctx::results::result_rules(&self.read, test_code).await
            }
            async fn all_result_rules(&self) -> StoreResult<Vec<ResultRulesRecord>> {
                crate::queries::$ctx::results::all_result_rules(&self.read).await
            }
            async fn result_rules_fingerprint(&self) -> StoreResult<(i64, i64, i64)> {
                crate::queries::$ctx::results::result_rules_fingerprint(&self.read).await
            }
            async fn result_rule_versions(&self, test_code: &str) -> StoreResult<Vec<ResultRuleVersionRecord>> {
                crate::queries::$ctx::results::result_rule_versions(&self.read, test_code).await
            }
            async fn result_by_id(&self, id: i64) -> StoreResult<Option<ResultRecord>> {
                crate::queries::$ctx::results::result_by_id(&self.read, id).await
            }
            async fn results_of_order(&self, order_id: i64) -> StoreResult<Vec<ResultRecord>> {
                crate::queries::$ctx::results::results_of_order(&self.read, order_id).await
            }
            async fn result_versions_of_order(&self, order_id: i64) -> StoreResult<Vec<ResultVersionRecord>> {
                crate::queries::$ctx::results::result_versions_of_order(&self.read, order_id).await
            }
            async fn critical_calls_of_order(&self, order_id: i64) -> StoreResult<Vec<CriticalCallRecord>> {
                crate::queries::$ctx::results::critical_calls_of_order(&self.read, order_id).await
            }
            async fn open_critical_calls(&self, limit: i64) -> StoreResult<Vec<CriticalCallRecord>> {
                crate::queries::$ctx::results::open_critical_calls(&self.read, limit).await
            }
            async fn held_results(&self, limit: i64) -> StoreResult<Vec<ResultRecord>> {
                crate::queries::$ctx::results::held_results(&self.read, limit).await
            }
            async fn patient_results(&self, patient_id: i64, test_code: &str, limit: i64) -> StoreResult<Vec<ResultRecord>> {
                crate::queries::$ctx::results::patient_results(&self.read, patient_id, test_code, limit).await
            }
            async fn released_results_page(&self, q: &crate::ReleasedResultQuery<'_>) -> StoreResult<Vec<crate::ReleasedResultRecord>> {
                crate::queries::$ctx::results::released_results_page(&self.read, q).await
            }
            async fn open_result_notices(&self, limit: i64) -> StoreResult<Vec<ResultNoticeRecord>> {
                crate::queries::$ctx::results::open_result_notices(&self.read, limit).await
            }
            async fn released_results_of_patient(&self, patient_id: i64, limit: i64) -> StoreResult<Vec<ResultRecord>> {
                crate::queries::$ctx::results::released_results_of_patient(&self.read, patient_id, limit).await
            }

            // ── reports (issue 14) ──
            async fn report_version(&self, order_id: i64, version: Option<i64>) -> StoreResult<Option<ReportVersionRecord>> {
                crate::queries::$ctx::reports::report_version(&self.read, order_id, version).await
            }
            async fn orders_released_since(&self, location_id: i64, since: Timestamp, limit: i64) -> StoreResult<Vec<i64>> {
                crate::queries::$ctx::reports::orders_released_since(&self.read, location_id, since, limit).await
            }

            // ── storage, transport, send-out, disposal (issue 4) ──
            async fn storage_units(&self) -> StoreResult<Vec<StorageUnitRecord>> {
                crate::queries::$ctx::storage::storage_units(&self.read).await
            }

            async fn placement_counts(&self) -> StoreResult<Vec<(i64, i64)>> {
                crate::queries::$ctx::storage::placement_counts(&self.read).await
            }

            async fn stored_in(&self, unit_ids: &[i64], limit: i64) -> StoreResult<Vec<StoredSpecimenRecord>> {
                crate::queries::$ctx::storage::stored_in(&self.read, unit_ids, limit).await
            }

            async fn patients_of(&self, specimen_ids: &[i64], order_ids: &[i64]) -> StoreResult<Vec<i64>> {
                crate::queries::$ctx::access::patients_of(&self.read, specimen_ids, order_ids).await
            }

            async fn latest_placement(&self, specimen_id: i64) -> StoreResult<Option<PlacementRecord>> {
                crate::queries::$ctx::storage::latest_placement(&self.read, specimen_id).await
            }

            async fn retention_policies(&self) -> StoreResult<Vec<RetentionPolicyRecord>> {
                crate::queries::$ctx::storage::retention_policies(&self.read).await
            }

            async fn retention_use_policies(&self) -> StoreResult<Vec<RetentionUseRecord>> {
                crate::queries::$ctx::storage::retention_use_policies(&self.read).await
            }

            async fn stored_before(&self, cutoffs: &[(String, Timestamp)], limit: i64) -> StoreResult<Vec<StoredSpecimenRecord>> {
                crate::queries::$ctx::storage::stored_before(&self.read, cutoffs, limit).await
            }

            async fn rejected_specimens(&self, limit: i64) -> StoreResult<Vec<RejectedSpecimenRecord>> {
                crate::queries::$ctx::storage::rejected_specimens(&self.read, limit).await
            }

            async fn send_outs(&self, open_only: bool, limit: i64) -> StoreResult<Vec<SendOutRecord>> {
                crate::queries::$ctx::sendouts::send_outs(&self.read, open_only, limit).await
            }

            // ── reference laboratories and shipments (issue 14 item 4) ──
            async fn reference_labs(&self) -> StoreResult<Vec<ReferenceLabRecord>> {
                crate::queries::$ctx::sendouts::reference_labs(&self.read).await
            }
            async fn reference_lab_by_code(&self, code: &str) -> StoreResult<Option<ReferenceLabRecord>> {
                crate::queries::$ctx::sendouts::reference_lab_by_code(&self.read, code).await
            }
            async fn reference_lab_by_id(&self, id: i64) -> StoreResult<Option<ReferenceLabRecord>> {
                crate::queries::$ctx::sendouts::reference_lab_by_id(&self.read, id).await
            }
            async fn reference_lab_test_codes(&self, reference_lab_id: i64) -> StoreResult<Vec<ReferenceLabTestCodeRecord>> {
                crate::queries::$ctx::sendouts::reference_lab_test_codes(&self.read, reference_lab_id).await
            }
            async fn shipments(&self, status: Option<&str>, limit: i64) -> StoreResult<Vec<ShipmentRecord>> {
                crate::queries::$ctx::sendouts::shipments(&self.read, status, limit).await
            }
            async fn shipment_by_id(&self, id: i64) -> StoreResult<Option<ShipmentRecord>> {
                crate::queries::$ctx::sendouts::shipment_by_id(&self.read, id).await
            }
            async fn shipment_events(&self, shipment_id: i64) -> StoreResult<Vec<ShipmentEventRecord>> {
                crate::queries::$ctx::sendouts::shipment_events(&self.read, shipment_id).await
            }
            async fn send_outs_of_shipment(&self, shipment_id: i64) -> StoreResult<Vec<SendOutRecord>> {
                crate::queries::$ctx::sendouts::send_outs_of_shipment(&self.read, shipment_id).await
            }
            async fn send_outs_of_specimen(&self, specimen_id: i64) -> StoreResult<Vec<SendOutRecord>> {
                crate::queries::$ctx::sendouts::send_outs_of_specimen(&self.read, specimen_id).await
            }

            // ── turnaround time (issue 4) ──
            async fn tat_of_order(&self, order_id: i64) -> StoreResult<Vec<TatRow>> {
                crate::queries::$ctx::tat::tat_of_order(&self.read, order_id).await
            }

            async fn running_tests(&self, limit: i64) -> StoreResult<Vec<TatRow>> {
                crate::queries::$ctx::tat::running_tests(&self.read, limit).await
            }

            async fn entry_list_rows(&self, test_codes: &[String], limit: i64) -> StoreResult<EntryListRows> {
                use crate::queries::$ctx::{registration, results, specimens, tat};
                // One connection for the few set reads (no transaction to leave open if
                // the caller goes away between them).
                let mut conn = self.read.acquire().await?;
                let (tests, total) = tat::running_tests_of(&mut conn, test_codes, limit).await?;
                let mut accessions: Vec<String> = tests.iter().map(|t| t.accession.clone()).collect();
                accessions.sort_unstable();
                accessions.dedup();
                let specimens = specimens::specimens_by_accessions(&mut *conn, &accessions).await?;
                let mut patient_ids: Vec<i64> = specimens.iter().map(|s| s.patient_id).collect();
                patient_ids.sort_unstable();
                patient_ids.dedup();
                let patients = registration::patients_by_ids(&mut *conn, &patient_ids).await?;
                let mut order_ids: Vec<i64> = tests.iter().map(|t| t.order_id).collect();
                order_ids.sort_unstable();
                order_ids.dedup();
                let shown: std::collections::HashSet<i64> = tests.iter().map(|t| t.order_test_id).collect();
                let held = results::results_of_orders(&mut *conn, &order_ids)
                    .await?
                    .into_iter()
                    .filter(|r| r.status == "held" && shown.contains(&r.order_test_id))
                    .collect();
                let tube: std::collections::HashMap<&str, &SpecimenRecord> =
                    specimens.iter().map(|s| (s.accession.as_str(), s)).collect();
                let keys: Vec<(i64, String, Timestamp)> = tests
                    .iter()
                    .map(|t| match tube.get(t.accession.as_str()) {
                        Some(s) => (s.patient_id, t.test_code.clone(), s.collected_or_created()),
                        // A tube not found has no previous result to show.
                        None => (0, t.test_code.clone(), Timestamp::UNIX_EPOCH),
                    })
                    .collect();
                let previous = results::previous_released_many(&mut conn, &keys).await?;
                Ok(EntryListRows { total, tests, held, specimens, patients, previous })
            }
        }

        #[async_trait]
        impl Tx for $tx {
            async fn insert_user(&mut self, u: &NewUser) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO users (username, display_name, role, password_hash, created_at, \
                     password_changed_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                )
                .bind(&u.username)
                .bind(&u.display_name)
                .bind(&u.role)
                .bind(&u.password_hash)
                .bind(us(u.created_at))
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(id)
            }

            async fn user_by_id(&mut self, id: i64) -> StoreResult<Option<UserRecord>> {
                $store::fetch_user_by_id(&mut *self.tx, id).await
            }

            async fn user_provider(&mut self, user_id: i64) -> StoreResult<Option<i64>> {
                crate::queries::$ctx::registration::user_provider(&mut *self.tx, user_id).await
            }

            async fn set_user_provider(&mut self, user_id: i64, provider_id: Option<i64>) -> StoreResult<bool> {
                crate::queries::$ctx::registration::set_user_provider(&mut *self.tx, user_id, provider_id).await
            }

            async fn set_user_role(&mut self, id: i64, role: &str) -> StoreResult<()> {
                let r = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                    .bind(role)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn set_user_disabled(&mut self, id: i64, at: Option<Timestamp>) -> StoreResult<()> {
                let r = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
                    .bind(at.map(us))
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn set_user_password(&mut self, id: i64, hash: &str, at: Timestamp) -> StoreResult<()> {
                let r = sqlx::query(
                    "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
                )
                .bind(hash)
                .bind(us(at))
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                if r.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn user_mfa(&mut self, user_id: i64) -> StoreResult<Option<MfaRecord>> {
                crate::queries::$ctx::security::user_mfa(&mut *self.tx, user_id).await
            }

            async fn start_mfa(&mut self, user_id: i64, secret: &str, at: Timestamp) -> StoreResult<bool> {
                let started =
                    crate::queries::$ctx::security::start_mfa(&mut *self.tx, user_id, secret, at).await?;
                if started {
                    crate::queries::$ctx::security::delete_recovery_codes(&mut *self.tx, user_id).await?;
                }
                Ok(started)
            }

            async fn use_mfa_step(
                &mut self,
                user_id: i64,
                step: i64,
                confirm: Option<Timestamp>,
            ) -> StoreResult<bool> {
                crate::queries::$ctx::security::use_step(&mut *self.tx, user_id, step, confirm).await
            }

            async fn replace_recovery_codes(&mut self, user_id: i64, hashes: &[String]) -> StoreResult<()> {
                crate::queries::$ctx::security::delete_recovery_codes(&mut *self.tx, user_id).await?;
                for h in hashes {
                    crate::queries::$ctx::security::insert_recovery_code(&mut *self.tx, user_id, h).await?;
                }
                Ok(())
            }

            async fn use_recovery_code(
                &mut self,
                user_id: i64,
                code_hash: &str,
                at: Timestamp,
            ) -> StoreResult<bool> {
                crate::queries::$ctx::security::use_recovery_code(&mut *self.tx, user_id, code_hash, at).await
            }

            async fn delete_mfa(&mut self, user_id: i64) -> StoreResult<bool> {
                crate::queries::$ctx::security::delete_recovery_codes(&mut *self.tx, user_id).await?;
                crate::queries::$ctx::security::delete_mfa(&mut *self.tx, user_id).await
            }

            async fn insert_role_grant(
                &mut self,
                user_id: i64,
                role: &str,
                reason: &str,
                requested_by: i64,
                at: Timestamp,
            ) -> StoreResult<i64> {
                crate::queries::$ctx::security::insert_role_grant(&mut *self.tx, user_id, role, reason, requested_by, at).await
            }

            async fn role_grant(&mut self, id: i64) -> StoreResult<Option<RoleGrantRecord>> {
                crate::queries::$ctx::security::role_grant(&mut *self.tx, id).await
            }

            async fn decide_role_grant(
                &mut self,
                id: i64,
                status: &str,
                decided_by: i64,
                reason: Option<&str>,
                at: Timestamp,
            ) -> StoreResult<bool> {
                crate::queries::$ctx::security::decide_role_grant(&mut *self.tx, id, status, decided_by, reason, at).await
            }

            async fn insert_session(&mut self, s: &NewSession) -> StoreResult<i64> {
                let (id,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $3) RETURNING id",
                )
                .bind(&s.token_hash)
                .bind(s.user_id)
                .bind(us(s.created_at))
                .bind(us(s.expires_at))
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(id)
            }

            async fn revoke_session(&mut self, token_hash: &str, at: Timestamp) -> StoreResult<bool> {
                let r = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
                )
                .bind(us(at))
                .bind(token_hash)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn revoke_user_sessions(
                &mut self,
                user_id: i64,
                keep: Option<i64>,
                at: Timestamp,
            ) -> StoreResult<u64> {
                let r = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
                     AND id <> $3",
                )
                .bind(us(at))
                .bind(user_id)
                .bind(keep.unwrap_or(-1))
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected())
            }

            async fn touch_session(&mut self, session_id: i64, at: Timestamp) -> StoreResult<()> {
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                    .bind(us(at))
                    .bind(session_id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn record_login_failure(
                &mut self,
                address: &str,
                account: &str,
                at: Timestamp,
                since: Timestamp,
            ) -> StoreResult<LoginAttempts> {
                sqlx::query("DELETE FROM login_attempts WHERE last_failure_at < $1")
                    .bind(us(since))
                    .execute(&mut *self.tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO login_attempts (address, account, failures, first_failure_at, last_failure_at) \
                     VALUES ($1, $2, 1, $3, $3) \
                     ON CONFLICT (address, account) DO UPDATE SET \
                     failures = login_attempts.failures + 1, last_failure_at = excluded.last_failure_at",
                )
                .bind(address)
                .bind(account)
                .bind(us(at))
                .execute(&mut *self.tx)
                .await?;
                Ok(LoginAttempts {
                    pair: $store::fetch_login_count(&mut *self.tx, 0, address, account, since).await?,
                    address: $store::fetch_login_count(&mut *self.tx, 1, address, account, since)
                        .await?,
                    other_addresses: $store::fetch_login_count(
                        &mut *self.tx,
                        2,
                        address,
                        account,
                        since,
                    )
                    .await?,
                })
            }

            async fn clear_login_failures(&mut self, address: &str, account: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM login_attempts WHERE address = $1 AND account = $2")
                    .bind(address)
                    .bind(account)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn setting(&mut self, key: &str) -> StoreResult<Option<SettingRecord>> {
                $store::fetch_setting(&mut *self.tx, key).await
            }

            async fn put_setting(&mut self, s: &SettingRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                )
                .bind(&s.key)
                .bind(&s.value)
                .bind(us(s.updated_at))
                .bind(s.updated_by)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn next_counter(&mut self, name: &str) -> StoreResult<i64> {
                let (v,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO counters (name, value) VALUES ($1, 1) ON CONFLICT (name) \
                     DO UPDATE SET value = counters.value + 1 RETURNING value",
                )
                .bind(name)
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(v)
            }

            async fn next_counter_by(&mut self, name: &str, n: i64) -> StoreResult<i64> {
                let (v,) = sqlx::query_as::<_, (i64,)>(
                    "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) \
                     DO UPDATE SET value = counters.value + $2 RETURNING value",
                )
                .bind(name)
                .bind(n)
                .fetch_one(&mut *self.tx)
                .await?;
                Ok(v)
            }

            async fn serialize_writes(&mut self) -> StoreResult<()> {
                sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            fn audit(&mut self, entry: AuditEntry) {
                self.audit.push(entry);
            }

            async fn patient_by_id(&mut self, id: i64) -> StoreResult<Option<PatientRecord>> {
                crate::queries::$ctx::registration::patient_by_id(&mut *self.tx, id).await
            }

            async fn patient_by_mrn(&mut self, mrn: &str) -> StoreResult<Option<PatientRecord>> {
                crate::queries::$ctx::registration::patient_by_mrn(&mut *self.tx, mrn).await
            }

            async fn patients_born_on(&mut self, dates: &[String]) -> StoreResult<Vec<PatientRecord>> {
                crate::queries::$ctx::registration::patients_born_on(&mut *self.tx, dates).await
            }

            async fn insert_patient(&mut self, p: &PatientRecord) -> StoreResult<i64> {
                crate::queries::$ctx::registration::insert_patient(&mut *self.tx, p).await
            }

            async fn correct_patient(&mut self, p: &PatientRecord) -> StoreResult<bool> {
                crate::queries::$ctx::registration::correct_patient(&mut *self.tx, p).await
            }

            async fn insert_patient_version(&mut self, v: &PatientVersionRecord) -> StoreResult<i64> {
                crate::queries::$ctx::registration::insert_patient_version(&mut *self.tx, v).await
            }

            async fn set_merged_into(&mut self, id: i64, into: Option<i64>, at: Timestamp) -> StoreResult<()> {
                crate::queries::$ctx::registration::set_merged_into(&mut *self.tx, id, into, at).await
            }

            async fn order_ids_of_patient(&mut self, patient_id: i64) -> StoreResult<Vec<i64>> {
                crate::queries::$ctx::registration::order_ids_of_patient(&mut *self.tx, patient_id).await
            }

            async fn specimen_ids_of_patient(&mut self, patient_id: i64) -> StoreResult<Vec<i64>> {
                crate::queries::$ctx::registration::specimen_ids_of_patient(&mut *self.tx, patient_id).await
            }

            async fn move_row(&mut self, specimen: bool, id: i64, from: i64, to: i64) -> StoreResult<bool> {
                crate::queries::$ctx::registration::move_row(&mut *self.tx, specimen, id, from, to).await
            }

            async fn insert_merge(&mut self, m: &MergeRecord) -> StoreResult<i64> {
                crate::queries::$ctx::registration::insert_merge(&mut *self.tx, m).await
            }

            async fn merge_by_id(&mut self, id: i64) -> StoreResult<Option<MergeRecord>> {
                crate::queries::$ctx::registration::merge_by_id(&mut *self.tx, id).await
            }

            async fn set_merge_undone(&mut self, id: i64, at: Timestamp, by: &str) -> StoreResult<bool> {
                crate::queries::$ctx::registration::set_merge_undone(&mut *self.tx, id, at, by).await
            }

            async fn insert_provider(&mut self, p: &ProviderRecord) -> StoreResult<i64> {
                crate::queries::$ctx::registration::insert_provider(&mut *self.tx, p).await
            }

            async fn provider_by_id(&mut self, id: i64) -> StoreResult<Option<ProviderRecord>> {
                crate::queries::$ctx::registration::provider_by_id(&mut *self.tx, id).await
            }

            async fn insert_location(&mut self, l: &LocationRecord) -> StoreResult<i64> {
                crate::queries::$ctx::registration::insert_location(&mut *self.tx, l).await
            }

            async fn location_by_id(&mut self, id: i64) -> StoreResult<Option<LocationRecord>> {
                crate::queries::$ctx::registration::location_by_id(&mut *self.tx, id).await
            }

            async fn catalog_by_code(&mut self, code: &str) -> StoreResult<Option<CatalogTestRecord>> {
                crate::queries::$ctx::catalog::catalog_by_code(&mut *self.tx, code).await
            }

            async fn insert_catalog(&mut self, c: &CatalogTestRecord) -> StoreResult<i64> {
                crate::queries::$ctx::catalog::insert_catalog(&mut *self.tx, c).await
            }

            async fn update_catalog(&mut self, c: &CatalogTestRecord) -> StoreResult<()> {
                crate::queries::$ctx::catalog::update_catalog(&mut *self.tx, c).await
            }

            async fn insert_catalog_version(&mut self, c: &CatalogTestRecord, by: &str) -> StoreResult<()> {
                crate::queries::$ctx::catalog::insert_catalog_version(&mut *self.tx, c, by).await
            }

            async fn insert_order(&mut self, o: &OrderRecord) -> StoreResult<i64> {
                crate::queries::$ctx::orders::insert_order(&mut *self.tx, o).await
            }

            async fn order_by_id(&mut self, id: i64) -> StoreResult<Option<OrderRecord>> {
                crate::queries::$ctx::orders::order_by_id(&mut *self.tx, id).await
            }

            async fn active_order_by_placer(
                &mut self,
                location_id: i64,
                placer_order_number: &str,
            ) -> StoreResult<Option<i64>> {
                crate::queries::$ctx::orders::active_order_by_placer(&mut *self.tx, location_id, placer_order_number).await
            }

            async fn cancel_order(&mut self, id: i64, at: Timestamp, reason: &str) -> StoreResult<bool> {
                crate::queries::$ctx::orders::cancel_order(&mut *self.tx, id, at, reason).await
            }

            async fn cancel_order_tests(&mut self, order_id: i64) -> StoreResult<u64> {
                crate::queries::$ctx::orders::cancel_order_tests(&mut *self.tx, order_id).await
            }

            async fn insert_specimen(&mut self, s: &SpecimenRecord) -> StoreResult<i64> {
                crate::queries::$ctx::specimens::insert_specimen(&mut *self.tx, s).await
            }

            async fn set_specimen_volume(&mut self, id: i64, volume_ul: i64) -> StoreResult<()> {
                crate::queries::$ctx::specimens::set_specimen_volume(&mut *self.tx, id, volume_ul).await
            }

            async fn open_recollect_task_of(&mut self, specimen_id: i64) -> StoreResult<Option<i64>> {
                crate::queries::$ctx::specimens::open_recollect_task_of(&mut *self.tx, specimen_id).await
            }

            async fn set_specimen_demand(&mut self, id: i64, demand_ul: i64) -> StoreResult<()> {
                crate::queries::$ctx::specimens::set_specimen_demand(&mut *self.tx, id, demand_ul).await
            }

            async fn set_received_container(
                &mut self,
                id: i64,
                container: &str,
                specimen_type: &str,
            ) -> StoreResult<()> {
                crate::queries::$ctx::specimens::set_received_container(&mut *self.tx, id, container, specimen_type).await
            }

            async fn specimens_of_order(&mut self, order_id: i64) -> StoreResult<Vec<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimens_of_order(&mut *self.tx, order_id).await
            }

            async fn insert_order_test(&mut self, t: &OrderTestRecord) -> StoreResult<i64> {
                crate::queries::$ctx::orders::insert_order_test(&mut *self.tx, t).await
            }

            async fn tests_of_order(&mut self, order_id: i64) -> StoreResult<Vec<OrderTestRecord>> {
                crate::queries::$ctx::orders::tests_of_order(&mut *self.tx, order_id).await
            }

            async fn insert_specimens(&mut self, rows: &[SpecimenRecord]) -> StoreResult<Vec<(String, i64)>> {
                crate::queries::$ctx::specimens::insert_specimens(&mut *self.tx, rows).await
            }

            async fn insert_order_tests(&mut self, rows: &[OrderTestRecord]) -> StoreResult<()> {
                crate::queries::$ctx::orders::insert_order_tests(&mut *self.tx, rows).await
            }

            async fn specimen_by_accession(&mut self, accession: &str) -> StoreResult<Option<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimen_by_accession(&mut *self.tx, accession).await
            }

            async fn change_specimen(&mut self, change: &SpecimenChange) -> StoreResult<bool> {
                crate::queries::$ctx::specimens::change_specimen(&mut *self.tx, change).await
            }

            async fn count_label_print(&mut self, specimen_id: i64) -> StoreResult<i64> {
                crate::queries::$ctx::specimens::count_label_print(&mut *self.tx, specimen_id).await
            }

            async fn insert_specimen_event(&mut self, event: &SpecimenEventRecord) -> StoreResult<i64> {
                crate::queries::$ctx::specimens::insert_specimen_event(&mut *self.tx, event).await
            }

            async fn resolve_problem(&mut self, id: i64, at: Timestamp, by: &str, resolution: &str) -> StoreResult<bool> {
                crate::queries::$ctx::specimens::resolve_problem(&mut *self.tx, id, at, by, resolution).await
            }

            async fn complete_recollect_task(&mut self, id: i64, at: Timestamp, by: &str, replacement_accession: &str) -> StoreResult<bool> {
                crate::queries::$ctx::specimens::complete_recollect_task(&mut *self.tx, id, at, by, replacement_accession).await
            }

            async fn insert_problem(&mut self, problem: &ProblemRecord) -> StoreResult<i64> {
                crate::queries::$ctx::specimens::insert_problem(&mut *self.tx, problem).await
            }

            async fn insert_recollect_task(&mut self, task: &RecollectTaskRecord) -> StoreResult<i64> {
                crate::queries::$ctx::specimens::insert_recollect_task(&mut *self.tx, task).await
            }

            // ── processing: centrifugation, aliquots, dilutions, routing (issue 4) ──

            async fn specimen_children(&mut self, parent_id: i64) -> StoreResult<Vec<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimen_children(&mut *self.tx, parent_id).await
            }

            async fn specimen_parent(&mut self, specimen_id: i64) -> StoreResult<Option<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimen_parent(&mut *self.tx, specimen_id).await
            }

            async fn insert_aliquot(&mut self, s: &SpecimenRecord, parent_id: i64) -> StoreResult<i64> {
                crate::queries::$ctx::specimens::insert_aliquot(&mut *self.tx, s, parent_id).await
            }

            async fn take_volume(&mut self, id: i64, status: &str, volume_ul: i64) -> StoreResult<bool> {
                crate::queries::$ctx::specimens::take_volume(&mut *self.tx, id, status, volume_ul).await
            }

            async fn move_tests(&mut self, from: i64, to: i64, codes: &[String]) -> StoreResult<u64> {
                crate::queries::$ctx::specimens::move_tests(&mut *self.tx, from, to, codes).await
            }

            async fn insert_centrifugation(&mut self, c: &CentrifugationRecord) -> StoreResult<i64> {
                crate::queries::$ctx::specimens::insert_centrifugation(&mut *self.tx, c).await
            }

            async fn centrifugations(&mut self, specimen_id: i64) -> StoreResult<Vec<CentrifugationRecord>> {
                crate::queries::$ctx::specimens::centrifugations(&mut *self.tx, specimen_id).await
            }

            async fn insert_dilution(&mut self, d: &DilutionRecord) -> StoreResult<i64> {
                crate::queries::$ctx::specimens::insert_dilution(&mut *self.tx, d).await
            }

            // ── outbox (issue 12) ──
            async fn active_destination_ids(&mut self) -> StoreResult<Vec<i64>> {
                crate::queries::$ctx::outbox::active_destination_ids(&mut *self.tx).await
            }
            async fn destination_by_code(&mut self, code: &str) -> StoreResult<Option<DestinationRecord>> {
                crate::queries::$ctx::outbox::destination_by_code(&mut *self.tx, code).await
            }
            async fn insert_destination(&mut self, r: &DestinationRecord) -> StoreResult<i64> {
                crate::queries::$ctx::outbox::insert_destination(&mut *self.tx, r).await
            }
            async fn update_destination(&mut self, r: &DestinationRecord) -> StoreResult<bool> {
                crate::queries::$ctx::outbox::update_destination(&mut *self.tx, r).await
            }
            async fn insert_outbox_many(&mut self, rows: &[OutboxRecord]) -> StoreResult<()> {
                crate::queries::$ctx::outbox::insert_outbox_many(&mut *self.tx, rows).await
            }
            async fn insert_outbox(&mut self, r: &OutboxRecord) -> StoreResult<i64> {
                crate::queries::$ctx::outbox::insert_outbox(&mut *self.tx, r).await
            }
            async fn outbox_by_id(&mut self, id: i64) -> StoreResult<Option<OutboxRecord>> {
                crate::queries::$ctx::outbox::outbox_by_id(&mut *self.tx, id).await
            }
            async fn update_outbox(&mut self, r: &OutboxRecord, seen_status: &str, seen_attempts: i64) -> StoreResult<bool> {
                crate::queries::$ctx::outbox::update_outbox(&mut *self.tx, r, seen_status, seen_attempts).await
            }
            async fn last_outbox_of_order(&mut self, destination_id: i64, order_id: i64) -> StoreResult<Option<OutboxRecord>> {
                crate::queries::$ctx::outbox::last_outbox_of_order(&mut *self.tx, destination_id, order_id).await
            }
            async fn update_outbox_document(&mut self, id: i64, document: &str) -> StoreResult<bool> {
                crate::queries::$ctx::outbox::update_outbox_document(&mut *self.tx, id, document).await
            }
            async fn claim_outbox(&mut self, id: i64, seen_attempts: i64, now: Timestamp, lease_until: Timestamp) -> StoreResult<bool> {
                crate::queries::$ctx::outbox::claim_outbox(&mut *self.tx, id, seen_attempts, now, lease_until).await
            }

            // ── quality control (issue 13) ──
            async fn qc_lot(&mut self, lot: &str, level: i64) -> StoreResult<Option<QcLotRecord>> {
                crate::queries::$ctx::qc::lot_by_key(&mut *self.tx, lot, level).await
            }
            async fn insert_qc_lot(&mut self, r: &QcLotRecord) -> StoreResult<i64> {
                crate::queries::$ctx::qc::insert_lot(&mut *self.tx, r).await
            }
            async fn qc_target_at(&mut self, lot_id: i64, instrument_id: i64, test_code: &str, at: Timestamp) -> StoreResult<Option<QcTargetRecord>> {
                crate::queries::$ctx::qc::target_at(&mut *self.tx, lot_id, instrument_id, test_code, at).await
            }
            async fn insert_qc_target(&mut self, r: &QcTargetRecord) -> StoreResult<i64> {
                crate::queries::$ctx::qc::insert_target(&mut *self.tx, r).await
            }
            async fn qc_config(&mut self, instrument_id: i64, test_code: &str) -> StoreResult<Option<QcConfigRecord>> {
                crate::queries::$ctx::qc::config_of(&mut *self.tx, instrument_id, test_code).await
            }
            async fn put_qc_config(&mut self, r: &QcConfigRecord) -> StoreResult<bool> {
                crate::queries::$ctx::qc::put_config(&mut *self.tx, r).await
            }
            async fn qc_runs(&mut self, instrument_id: i64, test_code: &str, range: RunRange) -> StoreResult<Vec<QcRunRecord>> {
                crate::queries::$ctx::qc::runs(&mut *self.tx, instrument_id, test_code, range).await
            }
            async fn insert_qc_run(&mut self, r: &QcRunRecord) -> StoreResult<i64> {
                let id = crate::queries::$ctx::qc::insert_run(&mut *self.tx, r).await?;
                crate::queries::$ctx::qc::insert_run_controls(&mut *self.tx, id, &r.controls).await?;
                Ok(id)
            }
            async fn qc_run_of_message(&mut self, instrument_id: i64, test_code: &str, message_key: &str) -> StoreResult<Option<i64>> {
                crate::queries::$ctx::qc::run_of_message(&mut *self.tx, instrument_id, test_code, message_key).await
            }
            async fn update_qc_run_verdict(&mut self, r: &QcRunRecord) -> StoreResult<()> {
                crate::queries::$ctx::qc::update_run_verdict(&mut *self.tx, r).await
            }
            async fn qc_last_good_run_before(&mut self, instrument_id: i64, test_code: &str, at: Timestamp) -> StoreResult<Option<Timestamp>> {
                crate::queries::$ctx::qc::last_good_run_before(&mut *self.tx, instrument_id, test_code, at).await
            }
            async fn qc_open_lock(&mut self, instrument_id: i64, test_code: &str) -> StoreResult<Option<QcLockRecord>> {
                crate::queries::$ctx::qc::open_lock(&mut *self.tx, instrument_id, test_code).await
            }
            async fn insert_qc_lock(&mut self, r: &QcLockRecord) -> StoreResult<i64> {
                crate::queries::$ctx::qc::insert_lock(&mut *self.tx, r).await
            }
            async fn lift_qc_lock(&mut self, id: i64, at: Timestamp, run_id: i64) -> StoreResult<bool> {
                crate::queries::$ctx::qc::lift_lock(&mut *self.tx, id, at, run_id).await
            }
            async fn qc_corrective_actions(&mut self, lock_id: i64) -> StoreResult<Vec<QcCorrectiveActionRecord>> {
                crate::queries::$ctx::qc::corrective_actions(&mut *self.tx, lock_id).await
            }
            async fn insert_qc_corrective_action(&mut self, r: &QcCorrectiveActionRecord) -> StoreResult<i64> {
                crate::queries::$ctx::qc::insert_corrective_action(&mut *self.tx, r).await
            }
            async fn qc_calibrations(&mut self, instrument_id: i64, test_code: &str, limit: i64) -> StoreResult<Vec<QcCalibrationRecord>> {
                crate::queries::$ctx::qc::calibrations(&mut *self.tx, instrument_id, test_code, limit).await
            }
            async fn insert_qc_calibration(&mut self, r: &QcCalibrationRecord) -> StoreResult<i64> {
                crate::queries::$ctx::qc::insert_calibration(&mut *self.tx, r).await
            }
            async fn qc_locked(&mut self, instrument_code: &str, test_code: &str) -> StoreResult<bool> {
                crate::queries::$ctx::qc::locked_by_code(&mut *self.tx, instrument_code, test_code).await
            }
            async fn qc_calibration_state(&mut self, instrument_code: &str, test_code: &str, at: Timestamp) -> StoreResult<Option<(Option<i64>, Option<Timestamp>)>> {
                crate::queries::$ctx::qc::calibration_state(&mut *self.tx, instrument_code, test_code, at).await
            }
            async fn qc_control_lot(&mut self, instrument_id: i64, control_id: &str) -> StoreResult<Option<i64>> {
                crate::queries::$ctx::qc::control_lot(&mut *self.tx, instrument_id, control_id).await
            }
            async fn put_qc_control_id(&mut self, instrument_id: i64, control_id: &str, lot_id: i64) -> StoreResult<()> {
                crate::queries::$ctx::qc::put_control_id(&mut *self.tx, instrument_id, control_id, lot_id).await
            }

            // ── connections (issue 12) ──
            async fn instrument_by_code(&mut self, code: &str) -> StoreResult<Option<InstrumentRecord>> {
                crate::queries::$ctx::connections::instrument_by_code(&mut *self.tx, code).await
            }
            async fn instrument_by_sender(&mut self, protocol: &str, sender: &str) -> StoreResult<Option<InstrumentRecord>> {
                crate::queries::$ctx::connections::instrument_by_sender(&mut *self.tx, protocol, sender).await
            }
            async fn insert_instrument(&mut self, r: &InstrumentRecord) -> StoreResult<i64> {
                crate::queries::$ctx::connections::insert_instrument(&mut *self.tx, r).await
            }
            async fn update_instrument(&mut self, r: &InstrumentRecord) -> StoreResult<bool> {
                crate::queries::$ctx::connections::update_instrument(&mut *self.tx, r).await
            }
            async fn instrument_test_codes(&mut self, instrument_id: i64) -> StoreResult<Vec<InstrumentTestCodeRecord>> {
                crate::queries::$ctx::connections::instrument_test_codes(&mut *self.tx, instrument_id).await
            }
            async fn replace_instrument_test_codes(&mut self, instrument_id: i64, rows: &[InstrumentTestCodeRecord]) -> StoreResult<()> {
                crate::queries::$ctx::connections::delete_instrument_test_codes(&mut *self.tx, instrument_id).await?;
                crate::queries::$ctx::connections::insert_instrument_test_codes(&mut *self.tx, rows).await
            }
            async fn interface_message_by_key(&mut self, protocol: &str, sender: &str, control_id: &str) -> StoreResult<Option<InterfaceMessageRecord>> {
                crate::queries::$ctx::connections::interface_message_by_key(&mut *self.tx, protocol, sender, control_id).await
            }
            async fn interface_message_by_id(&mut self, id: i64) -> StoreResult<Option<InterfaceMessageRecord>> {
                crate::queries::$ctx::connections::interface_message_by_id(&mut *self.tx, id).await
            }
            async fn interface_messages_by_keys(&mut self, keys: &[(String, String, String)]) -> StoreResult<Vec<Option<InterfaceMessageRecord>>> {
                let found = crate::queries::$ctx::connections::interface_messages_by_keys(&mut *self.tx, keys).await?;
                let mut out = vec![None; keys.len()];
                for (k, m) in found {
                    if let Some(slot) = usize::try_from(k).ok().and_then(|k| out.get_mut(k)) {
                        *slot = Some(m);
                    }
                }
                Ok(out)
            }
            async fn insert_interface_messages(&mut self, rows: &[InterfaceMessageRecord]) -> StoreResult<Vec<i64>> {
                crate::queries::$ctx::connections::insert_interface_messages(&mut *self.tx, rows).await
            }
            async fn qc_control_ids_of(&mut self, instrument_id: i64) -> StoreResult<Vec<(String, i64)>> {
                crate::queries::$ctx::qc::control_ids_of(&mut *self.tx, instrument_id).await
            }
            async fn insert_interface_message(&mut self, m: &InterfaceMessageRecord) -> StoreResult<i64> {
                crate::queries::$ctx::connections::insert_interface_message(&mut *self.tx, m).await
            }
            async fn purge_interface_messages(&mut self, before: Timestamp, at: Timestamp) -> StoreResult<u64> {
                crate::queries::$ctx::connections::purge_interface_messages(&mut *self.tx, before, at).await
            }
            async fn update_interface_message(&mut self, m: &InterfaceMessageRecord, seen: Timestamp) -> StoreResult<bool> {
                crate::queries::$ctx::connections::update_interface_message(&mut *self.tx, m, seen).await
            }

            // ── results (issue 11) ──
            async fn result_rules(&mut self, test_code: &str) -> StoreResult<Option<ResultRulesRecord>> {
                crate::queries::$ctx::results::result_rules(&mut *self.tx, test_code).await
            }
            async fn put_result_rules(&mut self, r: &ResultRulesRecord) -> StoreResult<bool> {
                crate::queries::$ctx::results::put_result_rules(&mut *self.tx, r).await
            }
            async fn insert_result_rule_version(&mut self, v: &ResultRuleVersionRecord) -> StoreResult<()> {
                crate::queries::$ctx::results::insert_result_rule_version(&mut *self.tx, v).await
            }
            async fn result_by_id(&mut self, id: i64) -> StoreResult<Option<ResultRecord>> {
                crate::queries::$ctx::results::result_by_id(&mut *self.tx, id).await
            }
            async fn result_by_order_test(&mut self, order_test_id: i64) -> StoreResult<Option<ResultRecord>> {
                crate::queries::$ctx::results::result_by_order_test(&mut *self.tx, order_test_id).await
            }
            async fn results_of_order(&mut self, order_id: i64) -> StoreResult<Vec<ResultRecord>> {
                crate::queries::$ctx::results::results_of_order(&mut *self.tx, order_id).await
            }
            async fn report_version(&mut self, order_id: i64, version: Option<i64>) -> StoreResult<Option<ReportVersionRecord>> {
                crate::queries::$ctx::reports::report_version(&mut *self.tx, order_id, version).await
            }
            async fn insert_report_version(&mut self, v: &ReportVersionRecord) -> StoreResult<i64> {
                crate::queries::$ctx::reports::insert_report_version(&mut *self.tx, v).await
            }
            async fn previous_released(&mut self, patient_id: i64, test_code: &str, before: Timestamp) -> StoreResult<Option<ResultRecord>> {
                crate::queries::$ctx::results::previous_released(&mut *self.tx, patient_id, test_code, before).await
            }
            async fn insert_result(&mut self, r: &ResultRecord) -> StoreResult<i64> {
                crate::queries::$ctx::results::insert_result(&mut *self.tx, r).await
            }
            async fn result_batch_rows(&mut self, accessions: &[String]) -> StoreResult<ResultBatchRows> {
                use crate::queries::$ctx::{orders, registration, results, sendouts, specimens};
                let specimens = specimens::specimens_by_accessions(&mut *self.tx, accessions).await?;
                let mut order_ids: Vec<i64> = specimens.iter().map(|s| s.order_id).collect();
                order_ids.sort_unstable();
                order_ids.dedup();
                let mut specimen_ids: Vec<i64> = specimens.iter().map(|s| s.id).collect();
                specimen_ids.sort_unstable();
                let orders = orders::orders_by_ids(&mut *self.tx, &order_ids).await?;
                let mut patient_ids: Vec<i64> = orders.iter().map(|o| o.patient_id).collect();
                patient_ids.sort_unstable();
                patient_ids.dedup();
                Ok(ResultBatchRows {
                    tests: orders::tests_of_orders(&mut *self.tx, &order_ids).await?,
                    patients: registration::patients_by_ids(&mut *self.tx, &patient_ids).await?,
                    results: results::results_of_orders(&mut *self.tx, &order_ids).await?,
                    dilutions: specimens::dilutions_of(&mut *self.tx, &specimen_ids).await?,
                    events: specimens::specimen_events_of(&mut *self.tx, &specimen_ids).await?,
                    centrifugations: specimens::centrifugations_of(&mut *self.tx, &specimen_ids).await?,
                    send_outs: sendouts::send_outs_of_specimens(&mut *self.tx, &specimen_ids).await?,
                    aliquots: specimens::with_parent(&mut *self.tx, &specimen_ids).await?,
                    specimens,
                    orders,
                })
            }
            async fn tube_owners(&mut self, accessions: &[String]) -> StoreResult<Vec<(String, PatientRecord)>> {
                use crate::queries::$ctx::{orders, registration, specimens};
                let tubes = specimens::specimens_by_accessions(&mut *self.tx, accessions).await?;
                let mut order_ids: Vec<i64> = tubes.iter().map(|s| s.order_id).collect();
                order_ids.sort_unstable();
                order_ids.dedup();
                let orders: std::collections::HashMap<i64, i64> = orders::orders_by_ids(&mut *self.tx, &order_ids)
                    .await?
                    .into_iter()
                    .map(|o| (o.id, o.patient_id))
                    .collect();
                let mut patient_ids: Vec<i64> = orders.values().copied().collect();
                patient_ids.sort_unstable();
                patient_ids.dedup();
                let patients: std::collections::HashMap<i64, PatientRecord> = registration::patients_by_ids(&mut *self.tx, &patient_ids)
                    .await?
                    .into_iter()
                    .map(|p| (p.id, p))
                    .collect();
                Ok(tubes
                    .into_iter()
                    .filter_map(|s| {
                        let patient = patients.get(orders.get(&s.order_id)?)?;
                        Some((s.accession, patient.clone()))
                    })
                    .collect())
            }
            async fn previous_released_many(&mut self, keys: &[(i64, String, Timestamp)]) -> StoreResult<Vec<Option<ResultRecord>>> {
                crate::queries::$ctx::results::previous_released_many(&mut self.tx, keys).await
            }
            async fn insert_new_results(&mut self, rows: &[NewResultRows]) -> StoreResult<Vec<i64>> {
                use crate::queries::$ctx::results;
                let records: Vec<ResultRecord> = rows.iter().map(|r| r.result.clone()).collect();
                let ids = results::insert_results(&mut *self.tx, &records).await?;
                let versions: Vec<ResultVersionRecord> = rows
                    .iter()
                    .zip(&ids)
                    .map(|(r, id)| ResultVersionRecord { result_id: *id, ..r.version.clone() })
                    .collect();
                results::insert_result_versions(&mut *self.tx, &versions).await?;
                let statuses: Vec<(i64, String)> = rows
                    .iter()
                    .map(|r| (r.result.order_test_id, r.test_status.clone()))
                    .collect();
                results::set_order_tests_status(&mut *self.tx, &statuses).await?;
                let calls: Vec<CriticalCallRecord> = rows
                    .iter()
                    .zip(&ids)
                    .filter_map(|(r, id)| Some(CriticalCallRecord { result_id: *id, ..r.critical_call.clone()? }))
                    .collect();
                results::insert_critical_calls(&mut *self.tx, &calls).await?;
                Ok(ids)
            }
            async fn update_result(&mut self, r: &ResultRecord, replaces: i64) -> StoreResult<bool> {
                crate::queries::$ctx::results::update_result(&mut *self.tx, r, replaces).await
            }
            async fn insert_result_version(&mut self, v: &ResultVersionRecord) -> StoreResult<()> {
                crate::queries::$ctx::results::insert_result_version(&mut *self.tx, v).await
            }
            async fn set_order_test_status(&mut self, order_test_id: i64, status: &str) -> StoreResult<()> {
                crate::queries::$ctx::results::set_order_test_status(&mut *self.tx, order_test_id, status).await
            }
            async fn move_results(&mut self, order_id: i64, from: i64, to: i64) -> StoreResult<u64> {
                crate::queries::$ctx::results::move_results(&mut *self.tx, order_id, from, to).await
            }
            async fn insert_critical_call(&mut self, c: &CriticalCallRecord) -> StoreResult<i64> {
                crate::queries::$ctx::results::insert_critical_call(&mut *self.tx, c).await
            }
            async fn open_call_of_result(&mut self, result_id: i64) -> StoreResult<Option<CriticalCallRecord>> {
                crate::queries::$ctx::results::open_call_of_result(&mut *self.tx, result_id).await
            }
            async fn document_critical_call(&mut self, c: &CriticalCallRecord) -> StoreResult<bool> {
                crate::queries::$ctx::results::document_critical_call(&mut *self.tx, c).await
            }
            async fn insert_result_notice(&mut self, n: &ResultNoticeRecord) -> StoreResult<i64> {
                crate::queries::$ctx::results::insert_result_notice(&mut *self.tx, n).await
            }
            async fn specimen_by_id(&mut self, id: i64) -> StoreResult<Option<SpecimenRecord>> {
                crate::queries::$ctx::specimens::specimen_by_id(&mut *self.tx, id).await
            }
            async fn result_versions_of_order(&mut self, order_id: i64) -> StoreResult<Vec<ResultVersionRecord>> {
                crate::queries::$ctx::results::result_versions_of_order(&mut *self.tx, order_id).await
            }
            async fn critical_calls_of_order(&mut self, order_id: i64) -> StoreResult<Vec<CriticalCallRecord>> {
                crate::queries::$ctx::results::critical_calls_of_order(&mut *self.tx, order_id).await
            }

            // ── storage, transport, send-out, disposal (issue 4) ──
            async fn storage_unit_by_path(&mut self, path: &str) -> StoreResult<Option<StorageUnitRecord>> {
                crate::queries::$ctx::storage::storage_unit_by_path(&mut *self.tx, path).await
            }

            async fn insert_storage_unit(&mut self, unit: &StorageUnitRecord) -> StoreResult<i64> {
                crate::queries::$ctx::storage::insert_storage_unit(&mut *self.tx, unit).await
            }

            async fn latest_placement(&mut self, specimen_id: i64) -> StoreResult<Option<PlacementRecord>> {
                crate::queries::$ctx::storage::latest_placement(&mut *self.tx, specimen_id).await
            }

            async fn insert_placement(&mut self, p: &PlacementRecord) -> StoreResult<i64> {
                crate::queries::$ctx::storage::insert_placement(&mut *self.tx, p).await
            }

            async fn close_placement(&mut self, id: i64, at: Timestamp, by: &str, removal: &str, reason: Option<&str>) -> StoreResult<bool> {
                crate::queries::$ctx::storage::close_placement(&mut *self.tx, id, at, by, removal, reason).await
            }

            async fn retention_policies(&mut self) -> StoreResult<Vec<RetentionPolicyRecord>> {
                crate::queries::$ctx::storage::retention_policies(&mut *self.tx).await
            }

            async fn put_retention_policy(&mut self, p: &RetentionPolicyRecord) -> StoreResult<()> {
                crate::queries::$ctx::storage::put_retention_policy(&mut *self.tx, p).await
            }

            async fn retention_use_policies(&mut self) -> StoreResult<Vec<RetentionUseRecord>> {
                crate::queries::$ctx::storage::retention_use_policies(&mut *self.tx).await
            }

            async fn put_retention_use_policy(&mut self, p: &RetentionUseRecord) -> StoreResult<()> {
                crate::queries::$ctx::storage::put_retention_use_policy(&mut *self.tx, p).await
            }

            async fn insert_send_out(&mut self, s: &SendOutRecord) -> StoreResult<i64> {
                crate::queries::$ctx::sendouts::insert_send_out(&mut *self.tx, s).await
            }

            // ── reference laboratories and shipments (issue 14 item 4) ──
            async fn reference_lab_by_code(&mut self, code: &str) -> StoreResult<Option<ReferenceLabRecord>> {
                crate::queries::$ctx::sendouts::reference_lab_by_code(&mut *self.tx, code).await
            }
            async fn reference_lab_by_id(&mut self, id: i64) -> StoreResult<Option<ReferenceLabRecord>> {
                crate::queries::$ctx::sendouts::reference_lab_by_id(&mut *self.tx, id).await
            }
            async fn insert_reference_lab(&mut self, r: &ReferenceLabRecord) -> StoreResult<i64> {
                crate::queries::$ctx::sendouts::insert_reference_lab(&mut *self.tx, r).await
            }
            async fn update_reference_lab(&mut self, r: &ReferenceLabRecord) -> StoreResult<bool> {
                crate::queries::$ctx::sendouts::update_reference_lab(&mut *self.tx, r).await
            }
            async fn reference_lab_test_codes(&mut self, reference_lab_id: i64) -> StoreResult<Vec<ReferenceLabTestCodeRecord>> {
                crate::queries::$ctx::sendouts::reference_lab_test_codes(&mut *self.tx, reference_lab_id).await
            }
            async fn replace_reference_lab_test_codes(&mut self, reference_lab_id: i64, rows: &[ReferenceLabTestCodeRecord]) -> StoreResult<()> {
                crate::queries::$ctx::sendouts::delete_reference_lab_test_codes(&mut *self.tx, reference_lab_id).await?;
                for r in rows {
                    crate::queries::$ctx::sendouts::insert_reference_lab_test_code(&mut *self.tx, r).await?;
                }
                Ok(())
            }
            async fn send_outs_of_specimen(&mut self, specimen_id: i64) -> StoreResult<Vec<SendOutRecord>> {
                crate::queries::$ctx::sendouts::send_outs_of_specimen(&mut *self.tx, specimen_id).await
            }
            async fn send_outs_of_shipment(&mut self, shipment_id: i64) -> StoreResult<Vec<SendOutRecord>> {
                crate::queries::$ctx::sendouts::send_outs_of_shipment(&mut *self.tx, shipment_id).await
            }
            async fn unpacked_send_outs(&mut self, reference_lab_id: i64, limit: i64) -> StoreResult<Vec<SendOutRecord>> {
                crate::queries::$ctx::sendouts::unpacked_send_outs(&mut *self.tx, reference_lab_id, limit).await
            }
            async fn pack_send_out(&mut self, id: i64, shipment_id: i64) -> StoreResult<bool> {
                crate::queries::$ctx::sendouts::pack_send_out(&mut *self.tx, id, shipment_id).await
            }
            async fn close_send_out(&mut self, id: i64, at: Timestamp) -> StoreResult<bool> {
                crate::queries::$ctx::sendouts::close_send_out(&mut *self.tx, id, at).await
            }
            async fn insert_shipment(&mut self, r: &ShipmentRecord) -> StoreResult<i64> {
                crate::queries::$ctx::sendouts::insert_shipment(&mut *self.tx, r).await
            }
            async fn shipment_by_id(&mut self, id: i64) -> StoreResult<Option<ShipmentRecord>> {
                crate::queries::$ctx::sendouts::shipment_by_id(&mut *self.tx, id).await
            }
            async fn update_shipment(&mut self, r: &ShipmentRecord) -> StoreResult<bool> {
                crate::queries::$ctx::sendouts::update_shipment(&mut *self.tx, r).await
            }
            async fn insert_shipment_event(&mut self, r: &ShipmentEventRecord) -> StoreResult<i64> {
                crate::queries::$ctx::sendouts::insert_shipment_event(&mut *self.tx, r).await
            }

            // ── turnaround time (issue 4) ──

            async fn insert_patient_identifier(&mut self, patient_id: i64, system: &str, value: &str) -> StoreResult<()> {
                crate::queries::$ctx::registration::insert_patient_identifier(&mut *self.tx, patient_id, system, value).await
            }

            async fn patient_by_identifier(&mut self, system: &str, value: &str) -> StoreResult<Option<PatientRecord>> {
                crate::queries::$ctx::registration::patient_by_identifier(&mut *self.tx, system, value).await
            }

            async fn insert_scan(&mut self, s: &ScanRecord) -> StoreResult<i64> {
                crate::queries::$ctx::orders::insert_scan(&mut *self.tx, s).await
            }

            async fn log_access(&mut self, e: &AccessEntry) -> StoreResult<()> {
                // Chained and written by `commit`, in this transaction.
                self.access.push(e.clone());
                Ok(())
            }

            async fn idempotency_by_key(
                &mut self,
                user_id: i64,
                key: &str,
            ) -> StoreResult<Option<IdempotencyRecord>> {
                crate::queries::$ctx::idempotency::by_key(&mut *self.tx, user_id, key).await
            }

            async fn insert_idempotency(
                &mut self,
                user_id: i64,
                key: &str,
                fingerprint: &str,
                token: &str,
                at: Timestamp,
            ) -> StoreResult<i64> {
                crate::queries::$ctx::idempotency::insert(&mut *self.tx, user_id, key, fingerprint, token, at).await
            }

            async fn take_over_idempotency(
                &mut self,
                id: i64,
                old_token: &str,
                new_token: &str,
                at: Timestamp,
            ) -> StoreResult<bool> {
                crate::queries::$ctx::idempotency::take_over(&mut *self.tx, id, old_token, new_token, at).await
            }

            async fn complete_idempotency(
                &mut self,
                id: i64,
                token: &str,
                status: i64,
                content_type: Option<&str>,
                body: &str,
                at: Timestamp,
            ) -> StoreResult<bool> {
                crate::queries::$ctx::idempotency::complete(&mut *self.tx, id, token, status, content_type, body, at).await
            }

            async fn release_idempotency(&mut self, id: i64, token: &str) -> StoreResult<bool> {
                crate::queries::$ctx::idempotency::release(&mut *self.tx, id, token).await
            }

            async fn commit(mut self: Box<Self>) -> StoreResult<Vec<i64>> {
                if let Some(claim) = crate::claim::current() {
                    let held = crate::queries::$ctx::idempotency::mark_applied(
                        &mut *self.tx,
                        claim.id,
                        &claim.token,
                        Timestamp::now(),
                    )
                    .await?;
                    if !held {
                        return Err(StoreError::Conflict(
                            "this request's idempotency key was taken over by a retry".into(),
                        ));
                    }
                }
                let entries = std::mem::take(&mut self.audit);
                let mut seqs = Vec::with_capacity(entries.len());
                if !entries.is_empty() {
                    let n = entries.len() as i64;
                    // Takes the head's row lock until commit: chain appends are serialised.
                    let (last, mut prev) = sqlx::query_as::<_, (i64, String)>(
                        "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, last_hash",
                    )
                    .bind(n)
                    .fetch_one(&mut *self.tx)
                    .await?;
                    let first = last - n + 1;
                    // Hash the chain first, then write it in multi-row INSERTs: one round trip
                    // per 64 entries instead of one per entry.
                    let mut rows = Vec::with_capacity(entries.len());
                    for (i, e) in entries.iter().enumerate() {
                        let seq = first + i as i64;
                        let old = e.old_value.as_ref().map(|v| v.to_string());
                        let new = e.new_value.as_ref().map(|v| v.to_string());
                        let at = us(e.at);
                        let hash = row_hash(
                            self.key.as_deref(),
                            &prev,
                            &HashInput {
                                seq,
                                occurred_at_us: at,
                                actor_id: e.actor_id,
                                actor_name: &e.actor_name,
                                actor_role: e.actor_role.as_deref(),
                                source: &e.source,
                                action: &e.action,
                                entity_type: &e.entity_type,
                                entity_id: &e.entity_id,
                                reason: e.reason.as_deref(),
                                old_value: old.as_deref(),
                                new_value: new.as_deref(),
                            },
                        );
                        let row = (seq, at, e, old, new, std::mem::replace(&mut prev, hash.clone()), hash);
                        rows.push(row);
                        seqs.push(seq);
                    }
                    for chunk in rows.chunks(64) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                            "INSERT INTO audit_event (",
                            audit_cols!(),
                            ") "
                        ));
                        qb.push_values(chunk, |mut b, (seq, at, e, old, new, prev_hash, hash)| {
                            b.push_bind(*seq)
                                .push_bind(*at)
                                .push_bind(e.actor_id)
                                .push_bind(&e.actor_name)
                                .push_bind(&e.actor_role)
                                .push_bind(&e.source)
                                .push_bind(&e.action)
                                .push_bind(&e.entity_type)
                                .push_bind(&e.entity_id)
                                .push_bind(&e.reason)
                                .push_bind(old)
                                .push_bind(new)
                                .push_bind(prev_hash)
                                .push_bind(hash);
                        });
                        qb.build().execute(&mut *self.tx).await?;
                    }
                    let mac = self
                        .key
                        .as_deref()
                        .filter(|k| last >= k.from)
                        .map(|k| head_mac(k, last, &prev));
                    sqlx::query("UPDATE audit_head SET last_hash = $1, head_mac = $2 WHERE id = 1")
                        .bind(&prev)
                        .bind(mac)
                        .execute(&mut *self.tx)
                        .await?;
                }
                // The access log's chain: its head's lock after the audit head's.
                let access = std::mem::take(&mut self.access);
                $store::append_access(&mut self.tx, self.key.as_deref(), &access).await?;
                self.tx.commit().await?;
                Ok(seqs)
            }
        }
    };
}

backend!(
    SqliteStore,
    SqliteTx,
    Sqlite,
    Backend::Sqlite,
    SqliteWriter,
    SqliteMember,
    sqlite
);
backend!(
    PgStore,
    PgTx,
    Postgres,
    Backend::Postgres,
    PgWriter,
    PgMember,
    pg
);

/// The SQLite writer's page cache, in KiB (negative: a size, not a page count).
const WRITER_CACHE_KIB: &str = "-65536";

impl SqliteStore {
    /// Opens the database file, creating it and its directory when new, and migrates it.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with_key(path, None).await
    }

    /// Opens the database and binds its audit chain to the key file `key_file` (created
    /// when missing; see `setup_key`).
    pub async fn open_with_key(path: &Path, key_file: Option<&Path>) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Held while the store lives: a restore cannot replace the file under it.
        let lock = crate::backup::lock_shared(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Each write transaction runs in a savepoint of its group (group.rs): a page's
            // first change in a savepoint is copied to the statement journal, a temporary file
            // by default (a write system call per page). In memory it costs a copy.
            .pragma("temp_store", "memory");
        // The writer is one connection; `BEGIN IMMEDIATE` takes the write lock up front
        // (waiting under busy_timeout when another process writes) instead of upgrading a read
        // transaction later, which fails with SQLITE_BUSY without waiting. Its page cache
        // holds a write group's pages (the 2 MB default spills them mid-transaction and
        // re-reads the indexes a batch touches from the file).
        //
        // Its statement journal: in memory (`temp_store = memory`) SQLite keeps it as a list
        // of 1 KiB chunks, and the end of every statement inside a savepoint walks that list
        // from its start to truncate it, so a large group pays for its own size on every
        // statement. Built with a large `SQLITE_STMTJRNL_SPILL` (`.cargo/config.toml`), the
        // journal of a file-backed temp store is one chunk in memory up to that size: no walk,
        // and no file unless a group changes more than that.
        let temp_store = if late_spill(&options).await? {
            "file"
        } else {
            "memory"
        };
        let writer_options = options
            .clone()
            .pragma("temp_store", temp_store)
            .pragma("cache_size", WRITER_CACHE_KIB)
            .pragma(
                "wal_autocheckpoint",
                crate::checkpoint::WRITER_BACKSTOP_PAGES,
            )
            .row_buffer_size(1024);
        let mut conn = writer_options.connect().await?;
        migrations::migrator(migrations::SQLITE)
            .run(&mut conn)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        crate::queries::sqlite::registration::backfill_match_keys(&mut conn).await?;
        let key = Self::setup_key(&mut conn, key_file).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone().read_only(true))
            .await?;
        Ok(SqliteStore {
            read,
            writer: SqliteWriter::new(
                SqliteEngine {
                    options: writer_options,
                },
                conn,
            ),
            key,
            _lock: Some(lock),
            _checkpointer: Some(crate::checkpoint::Checkpointer::start(options)),
        })
    }

    /// Inspects a database file without changing it (opened read-only and immutable, no
    /// migrations): a backup's copy, before it is written or restored.
    pub(crate) async fn inspect_file(
        path: &Path,
        key: Option<&ChainKey>,
    ) -> StoreResult<crate::backup::SnapshotInfo> {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true)
            .connect()
            .await?;
        let info = Self::inspect_conn(&mut conn, key).await;
        let _ = sqlx::Connection::close(conn).await;
        info
    }
}

impl PgStore {
    /// Connects, creating the database when it does not exist, and migrates it. Several
    /// processes may do this at once: creation races are tolerated and migrations take an
    /// advisory lock.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_with_key(url, None).await
    }

    /// Opens the database and binds its audit chain to the key file `key_file` (created
    /// when missing; see `setup_key`).
    pub async fn open_with_key(url: &str, key_file: Option<&Path>) -> StoreResult<Self> {
        if !Postgres::database_exists(url).await?
            && let Err(e) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await?
        {
            return Err(e.into());
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        migrations::migrator(migrations::POSTGRES)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        crate::queries::pg::registration::backfill_match_keys(&pool).await?;
        let key = {
            let mut conn = pool.acquire().await?;
            Self::setup_key(&mut conn, key_file).await?
        };
        let options: sqlx::postgres::PgConnectOptions = url.parse()?;
        let conn = options.connect().await?;
        Ok(PgStore {
            writer: PgWriter::new(
                PgEngine {
                    options,
                    read: pool.clone(),
                },
                conn,
            ),
            read: pool,
            key,
            _lock: None,
            _checkpointer: None,
        })
    }
}

/// Whether the linked SQLite keeps a statement journal of at least 1 MiB in memory before it
/// spills to a file (`SQLITE_STMTJRNL_SPILL`, set for the bundled build in
/// `.cargo/config.toml`).
pub(crate) async fn late_spill(options: &SqliteConnectOptions) -> StoreResult<bool> {
    let mut conn = options.connect().await?;
    let spill: Option<String> = sqlx::query_scalar(
        "SELECT compile_options FROM pragma_compile_options \
         WHERE compile_options LIKE 'STMTJRNL_SPILL=%'",
    )
    .fetch_optional(&mut conn)
    .await?;
    sqlx::Connection::close(conn).await?;
    Ok(spill
        .and_then(|s| s.trim_start_matches("STMTJRNL_SPILL=").parse::<i64>().ok())
        .is_some_and(|bytes| bytes >= 1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled SQLite is built with the project's flags (`.cargo/config.toml`): a write
    /// group's statement journal stays one chunk in memory. Without them the writer falls back
    /// to the in-memory temp store and every statement of a large group gets slower.
    #[tokio::test]
    async fn the_bundled_sqlite_keeps_a_large_statement_journal_in_one_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true);
        assert!(late_spill(&options).await.unwrap());
    }
}
