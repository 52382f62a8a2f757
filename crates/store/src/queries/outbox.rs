//! The outbox (issue 12): outbound destinations and the messages queued for them.

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{DestinationRecord, OutboxRecord};

// ── destinations ──

macro_rules! destination_cols {
    () => {
        "id, code, name, host, port, version, created_at, created_by, updated_at, updated_by, \
         retired_at"
    };
}

#[derive(sqlx::FromRow)]
struct DestinationRow {
    id: i64,
    code: String,
    name: String,
    host: String,
    port: i64,
    version: i64,
    created_at: i64,
    created_by: String,
    updated_at: i64,
    updated_by: String,
    retired_at: Option<i64>,
}

impl DestinationRow {
    fn into_record(self) -> StoreResult<DestinationRecord> {
        Ok(DestinationRecord {
            id: self.id,
            code: self.code,
            name: self.name,
            host: self.host,
            port: self.port,
            version: self.version,
            created_at: ts(self.created_at)?,
            created_by: self.created_by,
            updated_at: ts(self.updated_at)?,
            updated_by: self.updated_by,
            retired_at: opt_ts(self.retired_at)?,
        })
    }
}

/// Every destination by code; `active` leaves out the retired ones.
pub(crate) async fn destinations<'e, E: Executor<'e, Database = Db>>(
    e: E,
    active: bool,
) -> StoreResult<Vec<DestinationRecord>> {
    let sql = if active {
        concat!(
            "SELECT ",
            destination_cols!(),
            " FROM outbound_destinations WHERE retired_at IS NULL ORDER BY code"
        )
    } else {
        concat!(
            "SELECT ",
            destination_cols!(),
            " FROM outbound_destinations ORDER BY code"
        )
    };
    sqlx::query_as::<_, DestinationRow>(sql)
        .fetch_all(e)
        .await?
        .into_iter()
        .map(DestinationRow::into_record)
        .collect()
}

/// The ids of the active destinations (the cheap check of every release).
pub(crate) async fn active_destination_ids<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<i64>> {
    Ok(sqlx::query_as::<_, (i64,)>(
        "SELECT id FROM outbound_destinations WHERE retired_at IS NULL ORDER BY id",
    )
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|(id,)| id)
    .collect())
}

pub(crate) async fn destination_by_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    code: &str,
) -> StoreResult<Option<DestinationRecord>> {
    sqlx::query_as::<_, DestinationRow>(concat!(
        "SELECT ",
        destination_cols!(),
        " FROM outbound_destinations WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(e)
    .await?
    .map(DestinationRow::into_record)
    .transpose()
}

/// `Conflict` when the code is taken.
pub(crate) async fn insert_destination<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &DestinationRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO outbound_destinations (code, name, host, port, version, created_at, \
         created_by, updated_at, updated_by, retired_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(&r.code)
    .bind(&r.name)
    .bind(&r.host)
    .bind(r.port)
    .bind(r.version)
    .bind(us(r.created_at))
    .bind(&r.created_by)
    .bind(us(r.updated_at))
    .bind(&r.updated_by)
    .bind(r.retired_at.map(us))
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Replaces version `r.version - 1`; false when another change came first.
pub(crate) async fn update_destination<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &DestinationRecord,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE outbound_destinations SET name = $1, host = $2, port = $3, version = $4, \
         updated_at = $5, updated_by = $6, retired_at = $7 WHERE id = $8 AND version = $9",
    )
    .bind(&r.name)
    .bind(&r.host)
    .bind(r.port)
    .bind(r.version)
    .bind(us(r.updated_at))
    .bind(&r.updated_by)
    .bind(r.retired_at.map(us))
    .bind(r.id)
    .bind(r.version - 1)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ── outbox ──

macro_rules! outbox_cols {
    () => {
        "id, destination_id, order_id, result_id, result_version, control_id, document, status, \
         attempts, refusals, next_attempt_at, last_error, message, ack, created_at, sent_at, \
         updated_at, updated_by"
    };
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    destination_id: i64,
    order_id: i64,
    result_id: i64,
    result_version: i64,
    control_id: String,
    document: String,
    status: String,
    attempts: i64,
    refusals: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    message: Option<Vec<u8>>,
    ack: Option<Vec<u8>>,
    created_at: i64,
    sent_at: Option<i64>,
    updated_at: i64,
    updated_by: String,
}

impl OutboxRow {
    fn into_record(self) -> StoreResult<OutboxRecord> {
        Ok(OutboxRecord {
            id: self.id,
            destination_id: self.destination_id,
            order_id: self.order_id,
            result_id: self.result_id,
            result_version: self.result_version,
            control_id: self.control_id,
            document: self.document,
            status: self.status,
            attempts: self.attempts,
            refusals: self.refusals,
            next_attempt_at: ts(self.next_attempt_at)?,
            last_error: self.last_error,
            message: self.message,
            ack: self.ack,
            created_at: ts(self.created_at)?,
            sent_at: opt_ts(self.sent_at)?,
            updated_at: ts(self.updated_at)?,
            updated_by: self.updated_by,
        })
    }
}

pub(crate) async fn insert_outbox<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &OutboxRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO outbox (destination_id, order_id, result_id, result_version, control_id, \
         document, status, attempts, refusals, next_attempt_at, last_error, message, ack, \
         created_at, sent_at, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         RETURNING id",
    )
    .bind(r.destination_id)
    .bind(r.order_id)
    .bind(r.result_id)
    .bind(r.result_version)
    .bind(&r.control_id)
    .bind(&r.document)
    .bind(&r.status)
    .bind(r.attempts)
    .bind(r.refusals)
    .bind(us(r.next_attempt_at))
    .bind(&r.last_error)
    .bind(&r.message)
    .bind(&r.ack)
    .bind(us(r.created_at))
    .bind(r.sent_at.map(us))
    .bind(us(r.updated_at))
    .bind(&r.updated_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn outbox_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<OutboxRecord>> {
    sqlx::query_as::<_, OutboxRow>(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(OutboxRow::into_record)
    .transpose()
}

/// The newest row of a destination for an order (the one a result of the order may join).
pub(crate) async fn last_outbox_of_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    destination_id: i64,
    order_id: i64,
) -> StoreResult<Option<OutboxRecord>> {
    sqlx::query_as::<_, OutboxRow>(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE order_id = $1 AND destination_id = $2 ORDER BY id DESC LIMIT 1"
    ))
    .bind(order_id)
    .bind(destination_id)
    .fetch_optional(e)
    .await?
    .map(OutboxRow::into_record)
    .transpose()
}

/// Replaces the document of a row never attempted (pending, no attempt): false when a worker
/// claimed it first or an analyst changed it.
pub(crate) async fn update_outbox_document<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    document: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE outbox SET document = $1 WHERE id = $2 AND status = 'pending' AND attempts = 0",
    )
    .bind(document)
    .bind(id)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many rows each destination's queue holds, by status (`pending`, `failed`).
pub(crate) async fn outbox_queue_counts<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT destination_id, status, COUNT(*) FROM outbox          WHERE status IN ('pending', 'failed') GROUP BY destination_id, status          ORDER BY destination_id, status",
    )
    .fetch_all(e)
    .await?)
}

/// The head of a destination's queue: its oldest row neither sent nor skipped.
pub(crate) async fn outbox_head<'e, E: Executor<'e, Database = Db>>(
    e: E,
    destination_id: i64,
) -> StoreResult<Option<OutboxRecord>> {
    sqlx::query_as::<_, OutboxRow>(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE destination_id = $1 AND status IN ('pending', 'failed') \
         ORDER BY id LIMIT 1"
    ))
    .bind(destination_id)
    .fetch_optional(e)
    .await?
    .map(OutboxRow::into_record)
    .transpose()
}

/// Newest first; `destination` and `status` narrow the list, `before` pages it by id.
pub(crate) async fn outbox_list<'e, E: Executor<'e, Database = Db>>(
    e: E,
    destination_id: Option<i64>,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<OutboxRecord>> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE 1 = 1"
    ));
    if let Some(d) = destination_id {
        qb.push(" AND destination_id = ").push_bind(d);
    }
    if let Some(s) = status {
        qb.push(" AND status = ").push_bind(s.to_owned());
    }
    if let Some(b) = before {
        qb.push(" AND id < ").push_bind(b);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    qb.build_query_as::<OutboxRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(OutboxRow::into_record)
        .collect()
}

/// Writes a row's new state over the state it was read in (`seen_status`, `seen_attempts`):
/// false when another worker or an analyst changed it first.
pub(crate) async fn update_outbox<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &OutboxRecord,
    seen_status: &str,
    seen_attempts: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE outbox SET status = $1, attempts = $2, refusals = $3, next_attempt_at = $4, \
         last_error = $5, message = $6, ack = $7, sent_at = $8, updated_at = $9, \
         updated_by = $10 WHERE id = $11 AND status = $12 AND attempts = $13",
    )
    .bind(&r.status)
    .bind(r.attempts)
    .bind(r.refusals)
    .bind(us(r.next_attempt_at))
    .bind(&r.last_error)
    .bind(&r.message)
    .bind(&r.ack)
    .bind(r.sent_at.map(us))
    .bind(us(r.updated_at))
    .bind(&r.updated_by)
    .bind(r.id)
    .bind(seen_status)
    .bind(seen_attempts)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims a due pending row for one attempt: `attempts` goes up by one and the row is not due
/// again before `lease_until`, so of several workers (servers sharing a database) exactly one
/// sends it. False when it was not due or another worker claimed it first.
pub(crate) async fn claim_outbox<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    seen_attempts: i64,
    now: Timestamp,
    lease_until: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1 \
         WHERE id = $2 AND status = 'pending' AND attempts = $3 AND next_attempt_at <= $4",
    )
    .bind(us(lease_until))
    .bind(id)
    .bind(seen_attempts)
    .bind(us(now))
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// [`insert_outbox`] for many rows in multi-row statements (ids in the order given, so each
/// order's messages keep their order).
pub(crate) async fn insert_outbox_many(
    c: &mut <Db as sqlx::Database>::Connection,
    rows: &[OutboxRecord],
) -> StoreResult<()> {
    // 17 parameters a row stays far below SQLite's 32,766.
    for chunk in rows.chunks(500) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO outbox (destination_id, order_id, result_id, result_version, \
             control_id, document, status, attempts, refusals, next_attempt_at, last_error, \
             message, ack, created_at, sent_at, updated_at, updated_by) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.destination_id)
                .push_bind(r.order_id)
                .push_bind(r.result_id)
                .push_bind(r.result_version)
                .push_bind(r.control_id.clone())
                .push_bind(r.document.clone())
                .push_bind(r.status.clone())
                .push_bind(r.attempts)
                .push_bind(r.refusals)
                .push_bind(us(r.next_attempt_at))
                .push_bind(r.last_error.clone())
                .push_bind(r.message.clone())
                .push_bind(r.ack.clone())
                .push_bind(us(r.created_at))
                .push_bind(r.sent_at.map(us))
                .push_bind(us(r.updated_at))
                .push_bind(r.updated_by.clone());
        });
        qb.build().execute(&mut *c).await?;
    }
    Ok(())
}
