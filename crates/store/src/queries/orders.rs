//! Orders, their tests, and requisition scans.

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{OrderRecord, OrderTestRecord, ScanRecord};

type ScanRow = (i64, i64, String, String, i64, i64, String);

fn scan(r: ScanRow) -> StoreResult<ScanRecord> {
    Ok(ScanRecord {
        id: r.0,
        order_id: r.1,
        sha256: r.2,
        media_type: r.3,
        size_bytes: r.4,
        created_at: ts(r.5)?,
        created_by: r.6,
    })
}

pub(crate) async fn insert_scan<'e, E: Executor<'e, Database = Db>>(
    e: E,
    s: &ScanRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO order_scans (order_id, sha256, media_type, size_bytes, created_at, \
         created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(s.order_id)
    .bind(&s.sha256)
    .bind(&s.media_type)
    .bind(s.size_bytes)
    .bind(us(s.created_at))
    .bind(&s.created_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn scan_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<ScanRecord>> {
    sqlx::query_as::<_, ScanRow>(
        "SELECT id, order_id, sha256, media_type, size_bytes, created_at, created_by \
         FROM order_scans WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(scan)
    .transpose()
}

pub(crate) async fn scans_of_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
) -> StoreResult<Vec<ScanRecord>> {
    sqlx::query_as::<_, ScanRow>(
        "SELECT id, order_id, sha256, media_type, size_bytes, created_at, created_by \
         FROM order_scans WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(scan)
    .collect()
}

macro_rules! order_cols {
    () => {
        "id, patient_id, provider_id, location_id, priority, timed_at, \
    placer_order_number, clinical_notes, diagnosis_codes, status, created_at, \
    created_by, cancelled_at, cancel_reason, winged_collection_set"
    };
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: i64,
    patient_id: i64,
    provider_id: i64,
    location_id: i64,
    priority: String,
    timed_at: Option<i64>,
    placer_order_number: Option<String>,
    clinical_notes: Option<String>,
    diagnosis_codes: String,
    status: String,
    created_at: i64,
    created_by: String,
    cancelled_at: Option<i64>,
    cancel_reason: Option<String>,
    winged_collection_set: bool,
}

fn order(r: OrderRow) -> StoreResult<OrderRecord> {
    Ok(OrderRecord {
        id: r.id,
        patient_id: r.patient_id,
        provider_id: r.provider_id,
        location_id: r.location_id,
        priority: r.priority,
        timed_at: opt_ts(r.timed_at)?,
        placer_order_number: r.placer_order_number,
        clinical_notes: r.clinical_notes,
        diagnosis_codes: r.diagnosis_codes,
        status: r.status,
        created_at: ts(r.created_at)?,
        created_by: r.created_by,
        cancelled_at: opt_ts(r.cancelled_at)?,
        cancel_reason: r.cancel_reason,
        winged_collection_set: r.winged_collection_set,
    })
}

pub(crate) async fn insert_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    o: &OrderRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO orders (patient_id, provider_id, location_id, priority, timed_at, \
         placer_order_number, clinical_notes, diagnosis_codes, status, created_at, \
         created_by, winged_collection_set) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(o.patient_id)
    .bind(o.provider_id)
    .bind(o.location_id)
    .bind(&o.priority)
    .bind(o.timed_at.map(us))
    .bind(&o.placer_order_number)
    .bind(&o.clinical_notes)
    .bind(&o.diagnosis_codes)
    .bind(&o.status)
    .bind(us(o.created_at))
    .bind(&o.created_by)
    .bind(o.winged_collection_set)
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn order_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<OrderRecord>> {
    sqlx::query_as::<_, OrderRow>(concat!(
        "SELECT ",
        order_cols!(),
        " FROM orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(order)
    .transpose()
}

pub(crate) async fn orders_by<'e, E: Executor<'e, Database = Db>>(
    e: E,
    placer_order_number: Option<&str>,
    patient_id: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<OrderRecord>> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        order_cols!(),
        " FROM orders WHERE 1 = 1"
    ));
    if let Some(p) = placer_order_number {
        qb.push(" AND placer_order_number = ")
            .push_bind(p.to_owned());
    }
    if let Some(id) = patient_id {
        qb.push(" AND patient_id = ").push_bind(id);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    qb.build_query_as::<OrderRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(order)
        .collect()
}

pub(crate) async fn active_order_by_placer<'e, E: Executor<'e, Database = Db>>(
    e: E,
    location_id: i64,
    placer_order_number: &str,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT id FROM orders WHERE placer_order_number = $1 AND location_id = $2 \
         AND status <> 'cancelled' ORDER BY id LIMIT 1",
    )
    .bind(placer_order_number)
    .bind(location_id)
    .fetch_optional(e)
    .await?)
}

pub(crate) async fn cancel_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    at: Timestamp,
    reason: &str,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE orders SET status = 'cancelled', cancelled_at = $1, cancel_reason = $2 \
         WHERE id = $3 AND status <> 'cancelled'",
    )
    .bind(us(at))
    .bind(reason)
    .bind(id)
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks every test of an order that is not cancelled yet as cancelled; returns
/// how many changed. Specimens are never changed here: each one goes through the
/// specimen lifecycle (guarded update and custody event).
pub(crate) async fn cancel_order_tests<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE order_tests SET status = 'cancelled' \
         WHERE order_id = $1 AND status <> 'cancelled'",
    )
    .bind(order_id)
    .execute(e)
    .await?;
    Ok(r.rows_affected())
}

/// Inserts several order tests in one statement.
pub(crate) async fn insert_order_tests<'e, E: Executor<'e, Database = Db>>(
    e: E,
    rows: &[OrderTestRecord],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO order_tests (order_id, test_code, panel_code, specimen_id, status, \
         added_at) ",
    );
    qb.push_values(rows, |mut b, t| {
        b.push_bind(t.order_id)
            .push_bind(t.test_code.clone())
            .push_bind(t.panel_code.clone())
            .push_bind(t.specimen_id)
            .push_bind(t.status.clone())
            .push_bind(us(t.added_at));
    });
    qb.build().execute(e).await?;
    Ok(())
}

pub(crate) async fn insert_order_test<'e, E: Executor<'e, Database = Db>>(
    e: E,
    t: &OrderTestRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO order_tests (order_id, test_code, panel_code, specimen_id, status, \
         added_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(t.order_id)
    .bind(&t.test_code)
    .bind(&t.panel_code)
    .bind(t.specimen_id)
    .bind(&t.status)
    .bind(us(t.added_at))
    .fetch_one(e)
    .await?;
    Ok(id)
}

type OrderTestRow = (i64, i64, String, Option<String>, i64, String, i64);

fn order_test(r: OrderTestRow) -> StoreResult<OrderTestRecord> {
    Ok(OrderTestRecord {
        id: r.0,
        order_id: r.1,
        test_code: r.2,
        panel_code: r.3,
        specimen_id: r.4,
        status: r.5,
        added_at: ts(r.6)?,
    })
}

pub(crate) async fn tests_of_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
) -> StoreResult<Vec<OrderTestRecord>> {
    sqlx::query_as::<_, OrderTestRow>(
        "SELECT id, order_id, test_code, panel_code, specimen_id, status, added_at \
         FROM order_tests WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(order_test)
    .collect()
}

/// [`tests_of_order`] of many orders, by order then id.
pub(crate) async fn tests_of_orders<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_ids: &[i64],
) -> StoreResult<Vec<OrderTestRecord>> {
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "SELECT id, order_id, test_code, panel_code, specimen_id, status, added_at \
         FROM order_tests WHERE order_id IN (",
    );
    let mut list = qb.separated(", ");
    for id in order_ids {
        list.push_bind(*id);
    }
    qb.push(") ORDER BY order_id, id");
    qb.build_query_as::<OrderTestRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(order_test)
        .collect()
}

/// The orders with these ids (those that exist).
pub(crate) async fn orders_by_ids<'e, E: Executor<'e, Database = Db>>(
    e: E,
    ids: &[i64],
) -> StoreResult<Vec<OrderRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        order_cols!(),
        " FROM orders WHERE id IN ("
    ));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    qb.push(")");
    qb.build_query_as::<OrderRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(order)
        .collect()
}
