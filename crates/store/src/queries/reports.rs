//! Patient reports (issue 14): the issued versions of an order's report, and the orders whose
//! report changed since a time (batch print).

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{ts, us};
use crate::records::ReportVersionRecord;

type VersionRow = (i64, i64, i64, String, String, String, i64, String);

fn version(r: VersionRow) -> StoreResult<ReportVersionRecord> {
    Ok(ReportVersionRecord {
        id: r.0,
        order_id: r.1,
        version: r.2,
        status: r.3,
        content_sha256: r.4,
        document: r.5,
        issued_at: ts(r.6)?,
        issued_by: r.7,
    })
}

macro_rules! version_cols {
    () => {
        "id, order_id, version, status, content_sha256, document, issued_at, issued_by"
    };
}

/// Version `n` of the order's report, or the latest one (`n = None`).
pub(crate) async fn report_version<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
    n: Option<i64>,
) -> StoreResult<Option<ReportVersionRecord>> {
    let row = match n {
        Some(n) => {
            sqlx::query_as::<_, VersionRow>(concat!(
                "SELECT ",
                version_cols!(),
                " FROM report_versions WHERE order_id = $1 AND version = $2"
            ))
            .bind(order_id)
            .bind(n)
            .fetch_optional(e)
            .await?
        }
        None => {
            sqlx::query_as::<_, VersionRow>(concat!(
                "SELECT ",
                version_cols!(),
                " FROM report_versions WHERE order_id = $1 ORDER BY version DESC LIMIT 1"
            ))
            .bind(order_id)
            .fetch_optional(e)
            .await?
        }
    };
    row.map(version).transpose()
}

pub(crate) async fn insert_report_version<'e, E: Executor<'e, Database = Db>>(
    e: E,
    v: &ReportVersionRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO report_versions (order_id, version, status, content_sha256, document, \
         issued_at, issued_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(v.order_id)
    .bind(v.version)
    .bind(&v.status)
    .bind(&v.content_sha256)
    .bind(&v.document)
    .bind(us(v.issued_at))
    .bind(&v.issued_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Orders of a client location with a result released or corrected at or after `since`,
/// in order id order.
pub(crate) async fn orders_released_since<'e, E: Executor<'e, Database = Db>>(
    e: E,
    location_id: i64,
    since: Timestamp,
    limit: i64,
) -> StoreResult<Vec<i64>> {
    Ok(sqlx::query_as::<_, (i64,)>(
        "SELECT DISTINCT r.order_id FROM results r JOIN orders o ON o.id = r.order_id \
         WHERE o.location_id = $1 AND r.status IN ('released', 'corrected') \
         AND r.updated_at >= $2 ORDER BY r.order_id LIMIT $3",
    )
    .bind(location_id)
    .bind(us(since))
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| r.0)
    .collect())
}
