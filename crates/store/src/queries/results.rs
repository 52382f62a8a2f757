//! Results: result rules and their versions, results and their versions, critical calls and
//! correction notices.

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{
    CriticalCallRecord, ResultNoticeRecord, ResultRecord, ResultRuleVersionRecord,
    ResultRulesRecord, ResultVersionRecord,
};

// ── result rules ──

type RulesRow = (String, i64, String, i64, String);

fn rules(r: RulesRow) -> StoreResult<ResultRulesRecord> {
    Ok(ResultRulesRecord {
        test_code: r.0,
        version: r.1,
        definition: r.2,
        updated_at: ts(r.3)?,
        updated_by: r.4,
    })
}

pub(crate) async fn result_rules<'e, E: Executor<'e, Database = Db>>(
    e: E,
    test_code: &str,
) -> StoreResult<Option<ResultRulesRecord>> {
    sqlx::query_as::<_, RulesRow>(
        "SELECT test_code, version, definition, updated_at, updated_by FROM result_rules \
         WHERE test_code = $1",
    )
    .bind(test_code)
    .fetch_optional(e)
    .await?
    .map(rules)
    .transpose()
}

pub(crate) async fn all_result_rules<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<ResultRulesRecord>> {
    sqlx::query_as::<_, RulesRow>(
        "SELECT test_code, version, definition, updated_at, updated_by FROM result_rules \
         ORDER BY test_code",
    )
    .fetch_all(e)
    .await?
    .into_iter()
    .map(rules)
    .collect()
}

/// What changes whenever any test's rule set does: how many there are, the sum of their
/// versions (a change adds one to its test's) and the latest change's time. Rule sets are
/// never deleted.
pub(crate) async fn result_rules_fingerprint<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<(i64, i64, i64)> {
    Ok(sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT COUNT(*), COALESCE(CAST(SUM(version) AS BIGINT), 0), \
         COALESCE(MAX(updated_at), 0) FROM result_rules",
    )
    .fetch_one(e)
    .await?)
}

/// Inserts version 1 or replaces version `r.version - 1`; false when another change came
/// first (the version moved on).
pub(crate) async fn put_result_rules<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ResultRulesRecord,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO result_rules (test_code, version, definition, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (test_code) DO UPDATE SET version = excluded.version, \
         definition = excluded.definition, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by \
         WHERE result_rules.version = excluded.version - 1",
    )
    .bind(&r.test_code)
    .bind(r.version)
    .bind(&r.definition)
    .bind(us(r.updated_at))
    .bind(&r.updated_by)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn insert_result_rule_version<'e, E: Executor<'e, Database = Db>>(
    e: E,
    v: &ResultRuleVersionRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO result_rule_versions (test_code, version, definition, changed_at, \
         changed_by, reason) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&v.test_code)
    .bind(v.version)
    .bind(&v.definition)
    .bind(us(v.changed_at))
    .bind(&v.changed_by)
    .bind(&v.reason)
    .execute(e)
    .await?;
    Ok(())
}

pub(crate) async fn result_rule_versions<'e, E: Executor<'e, Database = Db>>(
    e: E,
    test_code: &str,
) -> StoreResult<Vec<ResultRuleVersionRecord>> {
    sqlx::query_as::<_, (String, i64, String, i64, String, String)>(
        "SELECT test_code, version, definition, changed_at, changed_by, reason \
         FROM result_rule_versions WHERE test_code = $1 ORDER BY version",
    )
    .bind(test_code)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(ResultRuleVersionRecord {
            test_code: r.0,
            version: r.1,
            definition: r.2,
            changed_at: ts(r.3)?,
            changed_by: r.4,
            reason: r.5,
        })
    })
    .collect()
}

// ── results ──

type ResultRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    i64,
    Option<String>,
);

fn result(r: ResultRow) -> StoreResult<ResultRecord> {
    Ok(ResultRecord {
        id: r.0,
        order_test_id: r.1,
        order_id: r.2,
        patient_id: r.3,
        specimen_id: r.4,
        test_code: r.5,
        status: r.6,
        version: r.7,
        collected_at: opt_ts(r.8)?,
        resulted_at: ts(r.9)?,
        verified_at: opt_ts(r.10)?,
        released_at: opt_ts(r.11)?,
        body: r.12,
        updated_at: ts(r.13)?,
        instrument: r.14,
    })
}

macro_rules! result_cols {
    () => {
        "r.id, r.order_test_id, r.order_id, r.patient_id, r.specimen_id, r.test_code, r.status, \
         r.version, r.collected_at, r.resulted_at, r.verified_at, r.released_at, r.body, \
         r.updated_at, r.instrument"
    };
}

pub(crate) async fn result_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<ResultRecord>> {
    sqlx::query_as::<_, ResultRow>(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(result)
    .transpose()
}

pub(crate) async fn result_by_order_test<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_test_id: i64,
) -> StoreResult<Option<ResultRecord>> {
    sqlx::query_as::<_, ResultRow>(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.order_test_id = $1"
    ))
    .bind(order_test_id)
    .fetch_optional(e)
    .await?
    .map(result)
    .transpose()
}

pub(crate) async fn results_of_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
) -> StoreResult<Vec<ResultRecord>> {
    sqlx::query_as::<_, ResultRow>(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.order_id = $1 ORDER BY r.order_test_id"
    ))
    .bind(order_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(result)
    .collect()
}

/// Held results, oldest first.
pub(crate) async fn held_results<'e, E: Executor<'e, Database = Db>>(
    e: E,
    limit: i64,
) -> StoreResult<Vec<ResultRecord>> {
    sqlx::query_as::<_, ResultRow>(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.status = 'held' ORDER BY r.resulted_at, r.id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(result)
    .collect()
}

/// A patient's released results of one test, oldest collection first (at most `limit`, the
/// newest kept).
pub(crate) async fn patient_results<'e, E: Executor<'e, Database = Db>>(
    e: E,
    patient_id: i64,
    test_code: &str,
    limit: i64,
) -> StoreResult<Vec<ResultRecord>> {
    let mut rows = sqlx::query_as::<_, ResultRow>(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.patient_id = $1 AND r.test_code = $2 \
         AND r.status IN ('released', 'corrected') \
         ORDER BY r.collected_at DESC, r.id DESC LIMIT $3"
    ))
    .bind(patient_id)
    .bind(test_code)
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(result)
    .collect::<StoreResult<Vec<_>>>()?;
    rows.reverse();
    Ok(rows)
}

/// Benchmark seeding only ([`crate::seed::BenchSeeder`]): a released result with `body` for
/// every test of a received tube that has none; unaudited. Returns the rows written.
pub(crate) async fn bench_release_all<'e, E: Executor<'e, Database = Db>>(
    e: E,
    body: &str,
    at: Timestamp,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "INSERT INTO results (order_test_id, order_id, patient_id, specimen_id, test_code, \
         status, version, collected_at, resulted_at, verified_at, released_at, body, updated_at) \
         SELECT ot.id, ot.order_id, s.patient_id, s.id, ot.test_code, 'released', 1, \
         s.collected_at, $1, $1, $1, $2, $1 \
         FROM order_tests ot JOIN specimens s ON s.id = ot.specimen_id \
         WHERE s.status = 'received' \
         AND NOT EXISTS (SELECT 1 FROM results r WHERE r.order_test_id = ot.id)",
    )
    .bind(us(at))
    .bind(body)
    .execute(e)
    .await?
    .rows_affected())
}

/// A page of a patient's released results (released or corrected) with their tubes, newest
/// first by id, filtered by test codes (any of) and a collection-time range `[from, to)`, after
/// the keyset `before_id` (exclusive). Served by the `results_patient_test` index.
pub(crate) async fn released_results_page<'e, E: Executor<'e, Database = Db>>(
    e: E,
    q: &crate::ReleasedResultQuery<'_>,
) -> StoreResult<Vec<crate::ReleasedResultRecord>> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        result_cols!(),
        ", s.accession, s.specimen_type FROM results r \
         JOIN specimens s ON s.id = r.specimen_id WHERE r.patient_id = "
    ));
    qb.push_bind(q.patient_id);
    qb.push(" AND r.status IN ('released', 'corrected')");
    if !q.test_codes.is_empty() {
        qb.push(" AND r.test_code IN (");
        let mut sep = qb.separated(", ");
        for c in q.test_codes {
            sep.push_bind(c.clone());
        }
        qb.push(")");
    }
    if let Some(from) = q.collected_from {
        qb.push(" AND r.collected_at >= ").push_bind(us(from));
    }
    if let Some(to) = q.collected_before {
        qb.push(" AND r.collected_at < ").push_bind(us(to));
    }
    if let Some(id) = q.before_id {
        qb.push(" AND r.id < ").push_bind(id);
    }
    if let Some(id) = q.id {
        qb.push(" AND r.id = ").push_bind(id);
    }
    qb.push(" ORDER BY r.id DESC LIMIT ").push_bind(q.limit);
    // Seventeen columns: more than a tuple row holds, so read by position.
    qb.build()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(|row| {
            use sqlx::Row;
            Ok(crate::ReleasedResultRecord {
                result: result((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                    row.try_get(7)?,
                    row.try_get(8)?,
                    row.try_get(9)?,
                    row.try_get(10)?,
                    row.try_get(11)?,
                    row.try_get(12)?,
                    row.try_get(13)?,
                    row.try_get(14)?,
                ))?,
                accession: row.try_get(15)?,
                specimen_type: row.try_get(16)?,
            })
        })
        .collect()
}

/// All the patient's released (or corrected) results, by test and collection time (at most
/// `limit`, the newest kept).
pub(crate) async fn released_results_of_patient<'e, E: Executor<'e, Database = Db>>(
    e: E,
    patient_id: i64,
    limit: i64,
) -> StoreResult<Vec<ResultRecord>> {
    let mut rows = sqlx::query_as::<_, ResultRow>(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.patient_id = $1 AND r.status IN ('released', 'corrected') \
         ORDER BY r.collected_at DESC, r.id DESC LIMIT $2"
    ))
    .bind(patient_id)
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(result)
    .collect::<StoreResult<Vec<_>>>()?;
    rows.reverse();
    Ok(rows)
}

/// The patient's latest released result of a test collected before `before`.
pub(crate) async fn previous_released<'e, E: Executor<'e, Database = Db>>(
    e: E,
    patient_id: i64,
    test_code: &str,
    before: Timestamp,
) -> StoreResult<Option<ResultRecord>> {
    sqlx::query_as::<_, ResultRow>(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.patient_id = $1 AND r.test_code = $2 \
         AND r.status IN ('released', 'corrected') AND r.collected_at < $3 \
         ORDER BY r.collected_at DESC, r.id DESC LIMIT 1"
    ))
    .bind(patient_id)
    .bind(test_code)
    .bind(us(before))
    .fetch_optional(e)
    .await?
    .map(result)
    .transpose()
}

pub(crate) async fn insert_result<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ResultRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO results (order_test_id, order_id, patient_id, specimen_id, test_code, \
         status, version, collected_at, resulted_at, verified_at, released_at, body, updated_at, \
         instrument) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )
    .bind(r.order_test_id)
    .bind(r.order_id)
    .bind(r.patient_id)
    .bind(r.specimen_id)
    .bind(&r.test_code)
    .bind(&r.status)
    .bind(r.version)
    .bind(r.collected_at.map(us))
    .bind(us(r.resulted_at))
    .bind(r.verified_at.map(us))
    .bind(r.released_at.map(us))
    .bind(&r.body)
    .bind(us(r.updated_at))
    .bind(&r.instrument)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Replaces the result's current version, guarded by the version it replaces: false when
/// another request changed it first.
pub(crate) async fn update_result<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ResultRecord,
    replaces: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE results SET status = $1, version = $2, resulted_at = $3, verified_at = $4, \
         released_at = $5, body = $6, updated_at = $7, collected_at = $8, instrument = $11 \
         WHERE id = $9 AND version = $10",
    )
    .bind(&r.status)
    .bind(r.version)
    .bind(us(r.resulted_at))
    .bind(r.verified_at.map(us))
    .bind(r.released_at.map(us))
    .bind(&r.body)
    .bind(us(r.updated_at))
    .bind(r.collected_at.map(us))
    .bind(r.id)
    .bind(replaces)
    .bind(&r.instrument)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn insert_result_version<'e, E: Executor<'e, Database = Db>>(
    e: E,
    v: &ResultVersionRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO result_versions (result_id, version, status, body, reason, at, by_user) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(v.result_id)
    .bind(v.version)
    .bind(&v.status)
    .bind(&v.body)
    .bind(&v.reason)
    .bind(us(v.at))
    .bind(&v.by_user)
    .execute(e)
    .await?;
    Ok(())
}

/// Every version of every result of an order, by result then version.
pub(crate) async fn result_versions_of_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
) -> StoreResult<Vec<ResultVersionRecord>> {
    sqlx::query_as::<_, (i64, i64, String, String, Option<String>, i64, String)>(
        "SELECT v.result_id, v.version, v.status, v.body, v.reason, v.at, v.by_user \
         FROM result_versions v JOIN results r ON r.id = v.result_id \
         WHERE r.order_id = $1 ORDER BY v.result_id, v.version",
    )
    .bind(order_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(ResultVersionRecord {
            result_id: r.0,
            version: r.1,
            status: r.2,
            body: r.3,
            reason: r.4,
            at: ts(r.5)?,
            by_user: r.6,
        })
    })
    .collect()
}

pub(crate) async fn set_order_test_status<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_test_id: i64,
    status: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE order_tests SET status = $1 WHERE id = $2 AND status <> 'cancelled'")
        .bind(status)
        .bind(order_test_id)
        .execute(e)
        .await?;
    Ok(())
}

/// Moves a patient's results of the given orders to another patient (a merge or its undo).
pub(crate) async fn move_results<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
    from: i64,
    to: i64,
) -> StoreResult<u64> {
    Ok(
        sqlx::query("UPDATE results SET patient_id = $1 WHERE order_id = $2 AND patient_id = $3")
            .bind(to)
            .bind(order_id)
            .bind(from)
            .execute(e)
            .await?
            .rows_affected(),
    )
}

/// Patient results of a test measured on an instrument (by code) since `since` (all when
/// `None`), oldest first, at most `limit`: the results a rejected run puts in doubt.
pub(crate) async fn results_on_instrument<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_code: &str,
    test_code: &str,
    since: Option<Timestamp>,
    limit: i64,
) -> StoreResult<Vec<ResultRecord>> {
    let rows = sqlx::query_as::<_, ResultRow>(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.instrument = $1 AND r.test_code = $2 AND r.resulted_at >= $3 \
         ORDER BY r.resulted_at, r.id LIMIT $4"
    ))
    .bind(instrument_code)
    .bind(test_code)
    .bind(since.map_or(i64::MIN, us))
    .bind(limit)
    .fetch_all(e)
    .await?;
    rows.into_iter().map(result).collect()
}

// ── critical calls ──

type CallRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<bool>,
);

fn call(r: CallRow) -> StoreResult<CriticalCallRecord> {
    Ok(CriticalCallRecord {
        id: r.0,
        result_id: r.1,
        result_version: r.2,
        opened_at: ts(r.3)?,
        due_at: ts(r.4)?,
        called_at: opt_ts(r.5)?,
        called_by: r.6,
        notified_name: r.7,
        notified_role: r.8,
        read_back: r.9,
    })
}

macro_rules! call_cols {
    () => {
        "c.id, c.result_id, c.result_version, c.opened_at, c.due_at, c.called_at, c.called_by, \
         c.notified_name, c.notified_role, c.read_back"
    };
}

pub(crate) async fn insert_critical_call<'e, E: Executor<'e, Database = Db>>(
    e: E,
    c: &CriticalCallRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO critical_calls (result_id, result_version, opened_at, due_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(c.result_id)
    .bind(c.result_version)
    .bind(us(c.opened_at))
    .bind(us(c.due_at))
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// The result's open call, if any (the newest).
pub(crate) async fn open_call_of_result<'e, E: Executor<'e, Database = Db>>(
    e: E,
    result_id: i64,
) -> StoreResult<Option<CriticalCallRecord>> {
    sqlx::query_as::<_, CallRow>(concat!(
        "SELECT ",
        call_cols!(),
        " FROM critical_calls c WHERE c.result_id = $1 AND c.called_at IS NULL \
         ORDER BY c.id DESC LIMIT 1"
    ))
    .bind(result_id)
    .fetch_optional(e)
    .await?
    .map(call)
    .transpose()
}

/// Documents an open call; false when it was documented meanwhile.
pub(crate) async fn document_critical_call<'e, E: Executor<'e, Database = Db>>(
    e: E,
    c: &CriticalCallRecord,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE critical_calls SET called_at = $1, called_by = $2, notified_name = $3, \
         notified_role = $4, read_back = $5 WHERE id = $6 AND called_at IS NULL",
    )
    .bind(c.called_at.map(us))
    .bind(&c.called_by)
    .bind(&c.notified_name)
    .bind(&c.notified_role)
    .bind(c.read_back)
    .bind(c.id)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn critical_calls_of_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
) -> StoreResult<Vec<CriticalCallRecord>> {
    sqlx::query_as::<_, CallRow>(concat!(
        "SELECT ",
        call_cols!(),
        " FROM critical_calls c JOIN results r ON r.id = c.result_id \
         WHERE r.order_id = $1 ORDER BY c.id"
    ))
    .bind(order_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(call)
    .collect()
}

/// Calls not yet documented, the most overdue first.
pub(crate) async fn open_critical_calls<'e, E: Executor<'e, Database = Db>>(
    e: E,
    limit: i64,
) -> StoreResult<Vec<CriticalCallRecord>> {
    sqlx::query_as::<_, CallRow>(concat!(
        "SELECT ",
        call_cols!(),
        " FROM critical_calls c WHERE c.called_at IS NULL ORDER BY c.due_at, c.id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(call)
    .collect()
}

// ── correction notices ──

pub(crate) async fn insert_result_notice<'e, E: Executor<'e, Database = Db>>(
    e: E,
    n: &ResultNoticeRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO result_notices (result_id, result_version, provider_id, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(n.result_id)
    .bind(n.result_version)
    .bind(n.provider_id)
    .bind(us(n.created_at))
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn open_result_notices<'e, E: Executor<'e, Database = Db>>(
    e: E,
    limit: i64,
) -> StoreResult<Vec<ResultNoticeRecord>> {
    sqlx::query_as::<_, (i64, i64, i64, i64, i64, Option<i64>, Option<String>)>(
        "SELECT id, result_id, result_version, provider_id, created_at, acknowledged_at, \
         acknowledged_by FROM result_notices WHERE acknowledged_at IS NULL \
         ORDER BY created_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(ResultNoticeRecord {
            id: r.0,
            result_id: r.1,
            result_version: r.2,
            provider_id: r.3,
            created_at: ts(r.4)?,
            acknowledged_at: opt_ts(r.5)?,
            acknowledged_by: r.6,
        })
    })
    .collect()
}

// ── a batch of results, as set operations (see `Tx::result_batch_rows`) ──

/// The results of every order in `order_ids`, by order then ordered test.
pub(crate) async fn results_of_orders<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_ids: &[i64],
) -> StoreResult<Vec<ResultRecord>> {
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.order_id IN ("
    ));
    let mut list = qb.separated(", ");
    for id in order_ids {
        list.push_bind(*id);
    }
    qb.push(") ORDER BY r.order_id, r.order_test_id");
    qb.build_query_as::<ResultRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(result)
        .collect()
}

/// [`previous_released`] for many `(patient, test, before)` at once: the id of each one's
/// previous released result, by the key's position in `keys`.
pub(crate) async fn previous_released_ids<'e, E: Executor<'e, Database = Db>>(
    e: E,
    keys: &[(i64, String, Timestamp)],
) -> StoreResult<Vec<(i64, i64)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new("WITH q (k, pid, code, before) AS (");
    qb.push_values(
        keys.iter().enumerate(),
        |mut b, (k, (pid, code, before))| {
            b.push_bind(i64::try_from(k).unwrap_or(i64::MAX))
                .push_bind(*pid)
                .push_bind(code.clone())
                .push_bind(us(*before));
        },
    );
    qb.push(
        ") SELECT q.k, (SELECT r.id FROM results r WHERE r.patient_id = q.pid \
         AND r.test_code = q.code AND r.status IN ('released', 'corrected') \
         AND r.collected_at < q.before ORDER BY r.collected_at DESC, r.id DESC LIMIT 1) FROM q",
    );
    Ok(qb
        .build_query_as::<(i64, Option<i64>)>()
        .fetch_all(e)
        .await?
        .into_iter()
        .filter_map(|(k, id)| Some((k, id?)))
        .collect())
}

/// [`previous_released`] for many `(patient, test, before)`: one answer per key, in the
/// keys' order.
pub(crate) async fn previous_released_many(
    c: &mut <Db as sqlx::Database>::Connection,
    keys: &[(i64, String, Timestamp)],
) -> StoreResult<Vec<Option<ResultRecord>>> {
    let found = previous_released_ids(&mut *c, keys).await?;
    let mut ids: Vec<i64> = found.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: std::collections::HashMap<i64, ResultRecord> = results_by_ids(&mut *c, &ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut out = vec![None; keys.len()];
    for (k, id) in found {
        if let Some(slot) = usize::try_from(k).ok().and_then(|k| out.get_mut(k)) {
            *slot = rows.get(&id).cloned();
        }
    }
    Ok(out)
}

pub(crate) async fn results_by_ids<'e, E: Executor<'e, Database = Db>>(
    e: E,
    ids: &[i64],
) -> StoreResult<Vec<ResultRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        result_cols!(),
        " FROM results r WHERE r.id IN ("
    ));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    qb.push(")");
    qb.build_query_as::<ResultRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(result)
        .collect()
}

/// Rows per multi-row statement: 14 parameters each stays far below SQLite's 32,766.
const ROWS_PER_INSERT: usize = 500;

/// Inserts new results (each for another ordered test); their ids in the order given.
pub(crate) async fn insert_results(
    c: &mut <Db as sqlx::Database>::Connection,
    rows: &[ResultRecord],
) -> StoreResult<Vec<i64>> {
    let mut by_test = std::collections::HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO results (order_test_id, order_id, patient_id, specimen_id, test_code, \
             status, version, collected_at, resulted_at, verified_at, released_at, body, \
             updated_at, instrument) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.order_test_id)
                .push_bind(r.order_id)
                .push_bind(r.patient_id)
                .push_bind(r.specimen_id)
                .push_bind(r.test_code.clone())
                .push_bind(r.status.clone())
                .push_bind(r.version)
                .push_bind(r.collected_at.map(us))
                .push_bind(us(r.resulted_at))
                .push_bind(r.verified_at.map(us))
                .push_bind(r.released_at.map(us))
                .push_bind(r.body.clone())
                .push_bind(us(r.updated_at))
                .push_bind(r.instrument.clone());
        });
        // RETURNING's row order is not promised: the ordered test names each row.
        qb.push(" RETURNING id, order_test_id");
        for (id, order_test_id) in qb.build_query_as::<(i64, i64)>().fetch_all(&mut *c).await? {
            by_test.insert(order_test_id, id);
        }
    }
    rows.iter()
        .map(|r| {
            by_test.get(&r.order_test_id).copied().ok_or_else(|| {
                crate::StoreError::Database("a result's row was not returned".into())
            })
        })
        .collect()
}

pub(crate) async fn insert_result_versions(
    c: &mut <Db as sqlx::Database>::Connection,
    rows: &[ResultVersionRecord],
) -> StoreResult<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO result_versions (result_id, version, status, body, reason, at, by_user) ",
        );
        qb.push_values(chunk, |mut b, v| {
            b.push_bind(v.result_id)
                .push_bind(v.version)
                .push_bind(v.status.clone())
                .push_bind(v.body.clone())
                .push_bind(v.reason.clone())
                .push_bind(us(v.at))
                .push_bind(v.by_user.clone());
        });
        qb.build().execute(&mut *c).await?;
    }
    Ok(())
}

/// [`set_order_test_status`] for many ordered tests: one statement per status.
pub(crate) async fn set_order_tests_status(
    c: &mut <Db as sqlx::Database>::Connection,
    rows: &[(i64, String)],
) -> StoreResult<()> {
    let mut statuses: Vec<&str> = rows.iter().map(|(_, s)| s.as_str()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let ids: Vec<i64> = rows
            .iter()
            .filter(|(_, s)| s == status)
            .map(|(id, _)| *id)
            .collect();
        for chunk in ids.chunks(ROWS_PER_INSERT * 10) {
            let mut qb = sqlx::QueryBuilder::<Db>::new("UPDATE order_tests SET status = ");
            qb.push_bind(status.to_owned());
            qb.push(" WHERE status <> 'cancelled' AND id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            qb.build().execute(&mut *c).await?;
        }
    }
    Ok(())
}

pub(crate) async fn insert_critical_calls(
    c: &mut <Db as sqlx::Database>::Connection,
    rows: &[CriticalCallRecord],
) -> StoreResult<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO critical_calls (result_id, result_version, opened_at, due_at) ",
        );
        qb.push_values(chunk, |mut b, call| {
            b.push_bind(call.result_id)
                .push_bind(call.result_version)
                .push_bind(us(call.opened_at))
                .push_bind(us(call.due_at));
        });
        qb.build().execute(&mut *c).await?;
    }
    Ok(())
}
