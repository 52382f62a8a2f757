//! Quality control and calibration (issue 13): control lots, targets, configurations, runs
//! with their control values, locks, corrective actions and calibrations.

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{
    QcCalibrationRecord, QcConfigRecord, QcCorrectiveActionRecord, QcLockRecord, QcLotRecord,
    QcResultRecord, QcRunRecord, QcTargetRecord, RunRange,
};

// ── lots ──

type LotRow = (i64, String, String, String, i64, String, i64, String);

fn lot(r: LotRow) -> StoreResult<QcLotRecord> {
    Ok(QcLotRecord {
        id: r.0,
        material: r.1,
        manufacturer: r.2,
        lot: r.3,
        level: r.4,
        expires_on: r.5,
        created_at: ts(r.6)?,
        created_by: r.7,
    })
}

macro_rules! lot_cols {
    () => {
        "id, material, manufacturer, lot, level, expires_on, created_at, created_by"
    };
}

/// Every lot, newest first.
pub(crate) async fn lots<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<QcLotRecord>> {
    sqlx::query_as::<_, LotRow>(concat!(
        "SELECT ",
        lot_cols!(),
        " FROM qc_lots ORDER BY id DESC"
    ))
    .fetch_all(e)
    .await?
    .into_iter()
    .map(lot)
    .collect()
}

pub(crate) async fn lot_by_key<'e, E: Executor<'e, Database = Db>>(
    e: E,
    lot_number: &str,
    level: i64,
) -> StoreResult<Option<QcLotRecord>> {
    sqlx::query_as::<_, LotRow>(concat!(
        "SELECT ",
        lot_cols!(),
        " FROM qc_lots WHERE lot = $1 AND level = $2"
    ))
    .bind(lot_number)
    .bind(level)
    .fetch_optional(e)
    .await?
    .map(lot)
    .transpose()
}

/// `Conflict` when the lot and level exist.
pub(crate) async fn insert_lot<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &QcLotRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO qc_lots (material, manufacturer, lot, level, expires_on, created_at, \
         created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&r.material)
    .bind(&r.manufacturer)
    .bind(&r.lot)
    .bind(r.level)
    .bind(&r.expires_on)
    .bind(us(r.created_at))
    .bind(&r.created_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

// ── targets ──

type TargetRow = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<i64>,
    i64,
    i64,
    String,
    Option<String>,
);

fn target(r: TargetRow) -> StoreResult<QcTargetRecord> {
    Ok(QcTargetRecord {
        id: r.0,
        lot_id: r.1,
        instrument_id: r.2,
        test_code: r.3,
        mean: r.4,
        sd: r.5,
        source: r.6,
        points: r.7,
        effective_at: ts(r.8)?,
        set_at: ts(r.9)?,
        set_by: r.10,
        reason: r.11,
    })
}

macro_rules! target_cols {
    () => {
        "id, lot_id, instrument_id, test_code, mean, sd, source, points, effective_at, set_at, \
         set_by, reason"
    };
}

/// The lot's target on the instrument and test in force at `at`.
pub(crate) async fn target_at<'e, E: Executor<'e, Database = Db>>(
    e: E,
    lot_id: i64,
    instrument_id: i64,
    test_code: &str,
    at: Timestamp,
) -> StoreResult<Option<QcTargetRecord>> {
    sqlx::query_as::<_, TargetRow>(concat!(
        "SELECT ",
        target_cols!(),
        " FROM qc_targets WHERE instrument_id = $1 AND test_code = $2 AND lot_id = $3 \
         AND effective_at <= $4 ORDER BY effective_at DESC, id DESC LIMIT 1"
    ))
    .bind(instrument_id)
    .bind(test_code)
    .bind(lot_id)
    .bind(us(at))
    .fetch_optional(e)
    .await?
    .map(target)
    .transpose()
}

/// Every target of an instrument and test, in the order they took effect.
pub(crate) async fn targets<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
) -> StoreResult<Vec<QcTargetRecord>> {
    sqlx::query_as::<_, TargetRow>(concat!(
        "SELECT ",
        target_cols!(),
        " FROM qc_targets WHERE instrument_id = $1 AND test_code = $2 \
         ORDER BY effective_at, id"
    ))
    .bind(instrument_id)
    .bind(test_code)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(target)
    .collect()
}

pub(crate) async fn insert_target<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &QcTargetRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO qc_targets (lot_id, instrument_id, test_code, mean, sd, source, points, \
         effective_at, set_at, set_by, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(r.lot_id)
    .bind(r.instrument_id)
    .bind(&r.test_code)
    .bind(&r.mean)
    .bind(&r.sd)
    .bind(&r.source)
    .bind(r.points)
    .bind(us(r.effective_at))
    .bind(us(r.set_at))
    .bind(&r.set_by)
    .bind(&r.reason)
    .fetch_one(e)
    .await?;
    Ok(id)
}

// ── configurations ──

type ConfigRow = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    String,
);

fn config(r: ConfigRow) -> StoreResult<QcConfigRecord> {
    Ok(QcConfigRecord {
        instrument_id: r.0,
        test_code: r.1,
        rules: r.2,
        mode: r.3,
        calibration_interval_hours: r.4,
        tea_pct: r.5,
        bias_pct: r.6,
        version: r.7,
        updated_at: ts(r.8)?,
        updated_by: r.9,
    })
}

macro_rules! config_cols {
    () => {
        "instrument_id, test_code, rules, mode, calibration_interval_hours, tea_pct, bias_pct, \
         version, updated_at, updated_by"
    };
}

pub(crate) async fn config_of<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
) -> StoreResult<Option<QcConfigRecord>> {
    sqlx::query_as::<_, ConfigRow>(concat!(
        "SELECT ",
        config_cols!(),
        " FROM qc_configs WHERE instrument_id = $1 AND test_code = $2"
    ))
    .bind(instrument_id)
    .bind(test_code)
    .fetch_optional(e)
    .await?
    .map(config)
    .transpose()
}

/// Every configuration, by instrument and test.
pub(crate) async fn configs<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<QcConfigRecord>> {
    sqlx::query_as::<_, ConfigRow>(concat!(
        "SELECT ",
        config_cols!(),
        " FROM qc_configs ORDER BY instrument_id, test_code"
    ))
    .fetch_all(e)
    .await?
    .into_iter()
    .map(config)
    .collect()
}

/// Writes version `r.version`: inserted when it is 1 (`Conflict` when one exists), else over
/// version `r.version - 1` (false when another change came first).
pub(crate) async fn put_config<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &QcConfigRecord,
) -> StoreResult<bool> {
    let q = if r.version == 1 {
        sqlx::query(
            "INSERT INTO qc_configs (rules, mode, calibration_interval_hours, tea_pct, version, \
             updated_at, updated_by, instrument_id, test_code, bias_pct) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
    } else {
        sqlx::query(
            "UPDATE qc_configs SET rules = $1, mode = $2, calibration_interval_hours = $3, \
             tea_pct = $4, version = $5, updated_at = $6, updated_by = $7, bias_pct = $10 \
             WHERE instrument_id = $8 AND test_code = $9 AND version = $5 - 1",
        )
    };
    let done = q
        .bind(&r.rules)
        .bind(&r.mode)
        .bind(r.calibration_interval_hours)
        .bind(&r.tea_pct)
        .bind(r.version)
        .bind(us(r.updated_at))
        .bind(&r.updated_by)
        .bind(r.instrument_id)
        .bind(&r.test_code)
        .bind(&r.bias_pct)
        .execute(e)
        .await?;
    Ok(done.rows_affected() == 1)
}

// ── runs ──

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    instrument_id: i64,
    test_code: String,
    run_at: i64,
    status: String,
    findings: String,
    rules: String,
    mode: String,
    source: String,
    entered_at: i64,
    entered_by: String,
    evaluated_at: i64,
    message_key: Option<String>,
    lot_id: i64,
    level: i64,
    value: String,
    mean: String,
    sd: String,
}

/// Runs with their control values, oldest first (by time, then id).
pub(crate) async fn runs<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
    range: RunRange,
) -> StoreResult<Vec<QcRunRecord>> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "SELECT q.id, q.instrument_id, q.test_code, q.run_at, q.status, q.findings, q.rules, \
         q.mode, q.source, q.entered_at, q.entered_by, q.evaluated_at, q.message_key, c.lot_id, \
         c.level, \
         c.value, c.mean, c.sd FROM qc_runs q JOIN qc_results c ON c.run_id = q.id \
         WHERE q.id IN (SELECT id FROM qc_runs WHERE instrument_id = ",
    );
    qb.push_bind(instrument_id)
        .push(" AND test_code = ")
        .push_bind(test_code.to_owned());
    match range {
        RunRange::Between { from, to, limit } => {
            if let Some(from) = from {
                qb.push(" AND run_at >= ").push_bind(us(from));
            }
            if let Some(to) = to {
                qb.push(" AND run_at < ").push_bind(us(to));
            }
            qb.push(" ORDER BY run_at DESC, id DESC LIMIT ")
                .push_bind(limit);
        }
        RunRange::LastBefore { at, id, limit } => {
            qb.push(" AND (run_at < ")
                .push_bind(us(at))
                .push(" OR (run_at = ")
                .push_bind(us(at))
                .push(" AND id < ")
                .push_bind(id)
                .push(")) ORDER BY run_at DESC, id DESC LIMIT ")
                .push_bind(limit);
        }
        RunRange::After { at, id } => {
            qb.push(" AND (run_at > ")
                .push_bind(us(at))
                .push(" OR (run_at = ")
                .push_bind(us(at))
                .push(" AND id > ")
                .push_bind(id)
                .push("))");
        }
    }
    qb.push(") ORDER BY q.run_at, q.id, c.level, c.id");
    let rows: Vec<RunRow> = qb.build_query_as().fetch_all(e).await?;
    let mut out: Vec<QcRunRecord> = Vec::new();
    for r in rows {
        let control = QcResultRecord {
            lot_id: r.lot_id,
            level: r.level,
            value: r.value,
            mean: r.mean,
            sd: r.sd,
        };
        if let Some(last) = out.last_mut().filter(|l| l.id == r.id) {
            last.controls.push(control);
            continue;
        }
        out.push(QcRunRecord {
            id: r.id,
            instrument_id: r.instrument_id,
            test_code: r.test_code,
            run_at: ts(r.run_at)?,
            status: r.status,
            findings: r.findings,
            rules: r.rules,
            mode: r.mode,
            source: r.source,
            entered_at: ts(r.entered_at)?,
            entered_by: r.entered_by,
            evaluated_at: ts(r.evaluated_at)?,
            message_key: r.message_key,
            controls: vec![control],
        });
    }
    Ok(out)
}

/// The run an instrument message posted for a test, if it did.
pub(crate) async fn run_of_message<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
    message_key: &str,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_as::<_, (i64,)>(
        "SELECT id FROM qc_runs WHERE instrument_id = $1 AND test_code = $2 \
         AND message_key = $3",
    )
    .bind(instrument_id)
    .bind(test_code)
    .bind(message_key)
    .fetch_optional(e)
    .await?
    .map(|(id,)| id))
}

pub(crate) async fn insert_run<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &QcRunRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO qc_runs (instrument_id, test_code, run_at, status, findings, rules, mode, \
         source, entered_at, entered_by, evaluated_at, message_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(r.instrument_id)
    .bind(&r.test_code)
    .bind(us(r.run_at))
    .bind(&r.status)
    .bind(&r.findings)
    .bind(&r.rules)
    .bind(&r.mode)
    .bind(&r.source)
    .bind(us(r.entered_at))
    .bind(&r.entered_by)
    .bind(us(r.evaluated_at))
    .bind(&r.message_key)
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn insert_run_controls<'e, E: Executor<'e, Database = Db>>(
    e: E,
    run_id: i64,
    controls: &[QcResultRecord],
) -> StoreResult<()> {
    if controls.is_empty() {
        return Ok(());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO qc_results (run_id, lot_id, level, value, mean, sd) ",
    );
    qb.push_values(controls, |mut b, c| {
        b.push_bind(run_id)
            .push_bind(c.lot_id)
            .push_bind(c.level)
            .push_bind(c.value.clone())
            .push_bind(c.mean.clone())
            .push_bind(c.sd.clone());
    });
    qb.build().execute(e).await?;
    Ok(())
}

/// A run judged again (a run that arrived late came before it).
pub(crate) async fn update_run_verdict<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &QcRunRecord,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE qc_runs SET status = $1, findings = $2, rules = $3, mode = $4, \
         evaluated_at = $5 WHERE id = $6",
    )
    .bind(&r.status)
    .bind(&r.findings)
    .bind(&r.rules)
    .bind(&r.mode)
    .bind(us(r.evaluated_at))
    .bind(r.id)
    .execute(e)
    .await?;
    Ok(())
}

/// The time of the last accepted (or warning) run before `at`.
pub(crate) async fn last_good_run_before<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
    at: Timestamp,
) -> StoreResult<Option<Timestamp>> {
    let row = sqlx::query_as::<_, (Option<i64>,)>(
        "SELECT MAX(run_at) FROM qc_runs WHERE instrument_id = $1 AND test_code = $2 \
         AND status <> 'rejected' AND run_at < $3",
    )
    .bind(instrument_id)
    .bind(test_code)
    .bind(us(at))
    .fetch_one(e)
    .await?;
    opt_ts(row.0)
}

/// The instrument and test pairs that have QC runs or a configuration.
pub(crate) async fn qc_pairs<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<(i64, String)>> {
    Ok(sqlx::query_as::<_, (i64, String)>(
        "SELECT instrument_id, test_code FROM qc_runs \
         UNION SELECT instrument_id, test_code FROM qc_configs \
         ORDER BY 1, 2",
    )
    .fetch_all(e)
    .await?)
}

// ── locks ──

type LockRow = (
    i64,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn lock(r: LockRow) -> StoreResult<QcLockRecord> {
    Ok(QcLockRecord {
        id: r.0,
        instrument_id: r.1,
        test_code: r.2,
        rejected_run_id: r.3,
        locked_at: ts(r.4)?,
        since: opt_ts(r.5)?,
        lifted_at: opt_ts(r.6)?,
        lifting_run_id: r.7,
    })
}

macro_rules! lock_cols {
    () => {
        "id, instrument_id, test_code, rejected_run_id, locked_at, since, lifted_at, \
         lifting_run_id"
    };
}

pub(crate) async fn open_lock<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
) -> StoreResult<Option<QcLockRecord>> {
    sqlx::query_as::<_, LockRow>(concat!(
        "SELECT ",
        lock_cols!(),
        " FROM qc_locks WHERE instrument_id = $1 AND test_code = $2 AND lifted_at IS NULL"
    ))
    .bind(instrument_id)
    .bind(test_code)
    .fetch_optional(e)
    .await?
    .map(lock)
    .transpose()
}

/// Whether the instrument (by code) has an open lock on the test: the one lookup
/// autoverification makes.
pub(crate) async fn locked_by_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_code: &str,
    test_code: &str,
) -> StoreResult<bool> {
    Ok(sqlx::query_as::<_, (i64,)>(
        "SELECT l.id FROM qc_locks l JOIN instruments i ON i.id = l.instrument_id \
         WHERE i.code = $1 AND l.test_code = $2 AND l.lifted_at IS NULL",
    )
    .bind(instrument_code)
    .bind(test_code)
    .fetch_optional(e)
    .await?
    .is_some())
}

/// The locks of an instrument and test, newest first.
pub(crate) async fn locks<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
    limit: i64,
) -> StoreResult<Vec<QcLockRecord>> {
    sqlx::query_as::<_, LockRow>(concat!(
        "SELECT ",
        lock_cols!(),
        " FROM qc_locks WHERE instrument_id = $1 AND test_code = $2 \
         ORDER BY locked_at DESC, id DESC LIMIT $3"
    ))
    .bind(instrument_id)
    .bind(test_code)
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(lock)
    .collect()
}

/// `Conflict` when the instrument and test are locked already.
pub(crate) async fn insert_lock<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &QcLockRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO qc_locks (instrument_id, test_code, rejected_run_id, locked_at, since, \
         lifted_at, lifting_run_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(r.instrument_id)
    .bind(&r.test_code)
    .bind(r.rejected_run_id)
    .bind(us(r.locked_at))
    .bind(r.since.map(us))
    .bind(r.lifted_at.map(us))
    .bind(r.lifting_run_id)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Lifts an open lock; false when it was lifted already.
pub(crate) async fn lift_lock<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    at: Timestamp,
    run_id: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE qc_locks SET lifted_at = $1, lifting_run_id = $2 \
         WHERE id = $3 AND lifted_at IS NULL",
    )
    .bind(us(at))
    .bind(run_id)
    .bind(id)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ── corrective actions ──

type ActionRow = (i64, i64, String, String, i64, String);

fn action(r: ActionRow) -> StoreResult<QcCorrectiveActionRecord> {
    Ok(QcCorrectiveActionRecord {
        id: r.0,
        lock_id: r.1,
        action: r.2,
        reason: r.3,
        performed_at: ts(r.4)?,
        performed_by: r.5,
    })
}

/// The corrective actions of a lock, oldest first.
pub(crate) async fn corrective_actions<'e, E: Executor<'e, Database = Db>>(
    e: E,
    lock_id: i64,
) -> StoreResult<Vec<QcCorrectiveActionRecord>> {
    sqlx::query_as::<_, ActionRow>(
        "SELECT id, lock_id, action, reason, performed_at, performed_by \
         FROM qc_corrective_actions WHERE lock_id = $1 ORDER BY performed_at, id",
    )
    .bind(lock_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(action)
    .collect()
}

/// The corrective actions on an instrument and test between two times, oldest first (for
/// the chart).
pub(crate) async fn corrective_actions_between<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Vec<QcCorrectiveActionRecord>> {
    sqlx::query_as::<_, ActionRow>(
        "SELECT a.id, a.lock_id, a.action, a.reason, a.performed_at, a.performed_by \
         FROM qc_corrective_actions a JOIN qc_locks l ON l.id = a.lock_id \
         WHERE l.instrument_id = $1 AND l.test_code = $2 AND a.performed_at >= $3 \
         AND a.performed_at < $4 ORDER BY a.performed_at, a.id",
    )
    .bind(instrument_id)
    .bind(test_code)
    .bind(us(from))
    .bind(us(to))
    .fetch_all(e)
    .await?
    .into_iter()
    .map(action)
    .collect()
}

pub(crate) async fn insert_corrective_action<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &QcCorrectiveActionRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO qc_corrective_actions (lock_id, action, reason, performed_at, \
         performed_by) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(r.lock_id)
    .bind(&r.action)
    .bind(&r.reason)
    .bind(us(r.performed_at))
    .bind(&r.performed_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

// ── calibrations ──

type CalibrationRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
);

fn calibration(r: CalibrationRow) -> StoreResult<QcCalibrationRecord> {
    Ok(QcCalibrationRecord {
        id: r.0,
        instrument_id: r.1,
        test_code: r.2,
        kind: r.3,
        calibrator_lot: r.4,
        outcome: r.5,
        performed_at: ts(r.6)?,
        performed_by: r.7,
        notes: r.8,
    })
}

/// An instrument and test's calibration events, newest first.
pub(crate) async fn calibrations<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    test_code: &str,
    limit: i64,
) -> StoreResult<Vec<QcCalibrationRecord>> {
    sqlx::query_as::<_, CalibrationRow>(
        "SELECT id, instrument_id, test_code, kind, calibrator_lot, outcome, performed_at, \
         performed_by, notes FROM qc_calibrations WHERE instrument_id = $1 AND test_code = $2 \
         ORDER BY performed_at DESC, id DESC LIMIT $3",
    )
    .bind(instrument_id)
    .bind(test_code)
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(calibration)
    .collect()
}

/// The time of the last passed calibration of an instrument (by code) and test at or before
/// `at`, and the calibration interval configured for it: the lookup autoverification makes.
pub(crate) async fn calibration_state<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_code: &str,
    test_code: &str,
    at: Timestamp,
) -> StoreResult<Option<(Option<i64>, Option<Timestamp>)>> {
    let row = sqlx::query_as::<_, (Option<i64>, Option<i64>)>(
        "SELECT c.calibration_interval_hours, \
         (SELECT MAX(k.performed_at) FROM qc_calibrations k \
          WHERE k.instrument_id = c.instrument_id AND k.test_code = c.test_code \
          AND k.kind = 'calibration' AND k.outcome = 'passed' AND k.performed_at <= $3) \
         FROM qc_configs c JOIN instruments i ON i.id = c.instrument_id \
         WHERE i.code = $1 AND c.test_code = $2",
    )
    .bind(instrument_code)
    .bind(test_code)
    .bind(us(at))
    .fetch_optional(e)
    .await?;
    row.map(|(hours, last)| Ok((hours, opt_ts(last)?)))
        .transpose()
}

pub(crate) async fn insert_calibration<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &QcCalibrationRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO qc_calibrations (instrument_id, test_code, kind, calibrator_lot, outcome, \
         performed_at, performed_by, notes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         RETURNING id",
    )
    .bind(r.instrument_id)
    .bind(&r.test_code)
    .bind(&r.kind)
    .bind(&r.calibrator_lot)
    .bind(&r.outcome)
    .bind(us(r.performed_at))
    .bind(&r.performed_by)
    .bind(&r.notes)
    .fetch_one(e)
    .await?;
    Ok(id)
}

// ── control identifiers ──

/// The lot an instrument's sample id names, when it is one of its controls.
pub(crate) async fn control_lot<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    control_id: &str,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_as::<_, (i64,)>(
        "SELECT lot_id FROM qc_control_ids WHERE instrument_id = $1 AND control_id = $2",
    )
    .bind(instrument_id)
    .bind(control_id)
    .fetch_optional(e)
    .await?
    .map(|(id,)| id))
}

/// Registers (or re-points) an instrument's name for a control lot.
pub(crate) async fn put_control_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
    control_id: &str,
    lot_id: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO qc_control_ids (instrument_id, control_id, lot_id) VALUES ($1, $2, $3) \
         ON CONFLICT (instrument_id, control_id) DO UPDATE SET lot_id = excluded.lot_id",
    )
    .bind(instrument_id)
    .bind(control_id)
    .bind(lot_id)
    .execute(e)
    .await?;
    Ok(())
}

/// Every name an instrument gives its control lots, with the lot.
pub(crate) async fn control_ids_of<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
) -> StoreResult<Vec<(String, i64)>> {
    Ok(sqlx::query_as::<_, (String, i64)>(
        "SELECT control_id, lot_id FROM qc_control_ids WHERE instrument_id = $1",
    )
    .bind(instrument_id)
    .fetch_all(e)
    .await?)
}
