//! Connections: instruments and their test codes, inbound interface messages.

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{InstrumentRecord, InstrumentTestCodeRecord, InterfaceMessageRecord};

// ── instruments ──

macro_rules! instrument_cols {
    () => {
        "id, code, name, protocol, sender, department, version, updated_at, updated_by, retired_at, \
         connect_to"
    };
}

type InstrumentRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<i64>,
    Option<String>,
);

fn instrument(r: InstrumentRow) -> StoreResult<InstrumentRecord> {
    Ok(InstrumentRecord {
        id: r.0,
        code: r.1,
        name: r.2,
        protocol: r.3,
        sender: r.4,
        department: r.5,
        version: r.6,
        updated_at: ts(r.7)?,
        updated_by: r.8,
        retired_at: opt_ts(r.9)?,
        connect_to: r.10,
    })
}

pub(crate) async fn instruments<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<InstrumentRecord>> {
    sqlx::query_as::<_, InstrumentRow>(concat!(
        "SELECT ",
        instrument_cols!(),
        " FROM instruments ORDER BY code"
    ))
    .fetch_all(e)
    .await?
    .into_iter()
    .map(instrument)
    .collect()
}

pub(crate) async fn instrument_by_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    code: &str,
) -> StoreResult<Option<InstrumentRecord>> {
    sqlx::query_as::<_, InstrumentRow>(concat!(
        "SELECT ",
        instrument_cols!(),
        " FROM instruments WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(e)
    .await?
    .map(instrument)
    .transpose()
}

pub(crate) async fn instrument_by_sender<'e, E: Executor<'e, Database = Db>>(
    e: E,
    protocol: &str,
    sender: &str,
) -> StoreResult<Option<InstrumentRecord>> {
    sqlx::query_as::<_, InstrumentRow>(concat!(
        "SELECT ",
        instrument_cols!(),
        " FROM instruments WHERE protocol = $1 AND sender = $2"
    ))
    .bind(protocol)
    .bind(sender)
    .fetch_optional(e)
    .await?
    .map(instrument)
    .transpose()
}

pub(crate) async fn insert_instrument<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &InstrumentRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO instruments (code, name, protocol, sender, department, version, \
         updated_at, updated_by, retired_at, connect_to) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(&r.code)
    .bind(&r.name)
    .bind(&r.protocol)
    .bind(&r.sender)
    .bind(&r.department)
    .bind(r.version)
    .bind(us(r.updated_at))
    .bind(&r.updated_by)
    .bind(r.retired_at.map(us))
    .bind(&r.connect_to)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Replaces version `r.version - 1`; false when another change came first.
pub(crate) async fn update_instrument<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &InstrumentRecord,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE instruments SET name = $1, sender = $2, department = $3, version = $4, \
         updated_at = $5, updated_by = $6, retired_at = $7, connect_to = $10 \
         WHERE id = $8 AND version = $9",
    )
    .bind(&r.name)
    .bind(&r.sender)
    .bind(&r.department)
    .bind(r.version)
    .bind(us(r.updated_at))
    .bind(&r.updated_by)
    .bind(r.retired_at.map(us))
    .bind(r.id)
    .bind(r.version - 1)
    .bind(&r.connect_to)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn instrument_test_codes<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
) -> StoreResult<Vec<InstrumentTestCodeRecord>> {
    Ok(sqlx::query_as::<_, (i64, String, String, Option<String>)>(
        "SELECT instrument_id, code, test_code, units FROM instrument_test_codes \
         WHERE instrument_id = $1 ORDER BY code",
    )
    .bind(instrument_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| InstrumentTestCodeRecord {
        instrument_id: r.0,
        code: r.1,
        test_code: r.2,
        units: r.3,
    })
    .collect())
}

pub(crate) async fn delete_instrument_test_codes<'e, E: Executor<'e, Database = Db>>(
    e: E,
    instrument_id: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM instrument_test_codes WHERE instrument_id = $1")
        .bind(instrument_id)
        .execute(e)
        .await?;
    Ok(())
}

pub(crate) async fn insert_instrument_test_codes<'e, E: Executor<'e, Database = Db>>(
    e: E,
    rows: &[InstrumentTestCodeRecord],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO instrument_test_codes (instrument_id, code, test_code, units) ",
    );
    qb.push_values(rows, |mut b, r| {
        b.push_bind(r.instrument_id)
            .push_bind(r.code.clone())
            .push_bind(r.test_code.clone())
            .push_bind(r.units.clone());
    });
    qb.build().execute(e).await?;
    Ok(())
}

// ── interface messages ──

macro_rules! message_cols {
    () => {
        "id, protocol, connection, sender, control_id, message_type, received_at, raw, status, \
         ack, errors, posted, updated_at, updated_by"
    };
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    protocol: String,
    connection: String,
    sender: String,
    control_id: String,
    message_type: String,
    received_at: i64,
    raw: Vec<u8>,
    status: String,
    ack: Vec<u8>,
    errors: String,
    posted: i64,
    updated_at: i64,
    updated_by: String,
}

impl MessageRow {
    fn into_record(self) -> StoreResult<InterfaceMessageRecord> {
        Ok(InterfaceMessageRecord {
            id: self.id,
            protocol: self.protocol,
            connection: self.connection,
            sender: self.sender,
            control_id: self.control_id,
            message_type: self.message_type,
            received_at: ts(self.received_at)?,
            raw: self.raw,
            status: self.status,
            ack: self.ack,
            errors: self.errors,
            posted: self.posted,
            updated_at: ts(self.updated_at)?,
            updated_by: self.updated_by,
        })
    }
}

pub(crate) async fn interface_message_by_key<'e, E: Executor<'e, Database = Db>>(
    e: E,
    protocol: &str,
    sender: &str,
    control_id: &str,
) -> StoreResult<Option<InterfaceMessageRecord>> {
    sqlx::query_as::<_, MessageRow>(concat!(
        "SELECT ",
        message_cols!(),
        " FROM interface_messages WHERE protocol = $1 AND sender = $2 AND control_id = $3"
    ))
    .bind(protocol)
    .bind(sender)
    .bind(control_id)
    .fetch_optional(e)
    .await?
    .map(MessageRow::into_record)
    .transpose()
}

pub(crate) async fn interface_message_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<InterfaceMessageRecord>> {
    sqlx::query_as::<_, MessageRow>(concat!(
        "SELECT ",
        message_cols!(),
        " FROM interface_messages WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(MessageRow::into_record)
    .transpose()
}

/// Newest first; `status` and `connection` narrow the list, `before` pages it by id.
pub(crate) async fn interface_messages<'e, E: Executor<'e, Database = Db>>(
    e: E,
    status: Option<&str>,
    connection: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<InterfaceMessageRecord>> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        message_cols!(),
        " FROM interface_messages WHERE 1 = 1"
    ));
    if let Some(s) = status {
        qb.push(" AND status = ").push_bind(s.to_owned());
    }
    if let Some(c) = connection {
        qb.push(" AND connection = ").push_bind(c.to_owned());
    }
    if let Some(b) = before {
        qb.push(" AND id < ").push_bind(b);
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    qb.build_query_as::<MessageRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(MessageRow::into_record)
        .collect()
}

/// `Conflict` when the sender's control id is already stored.
pub(crate) async fn insert_interface_message<'e, E: Executor<'e, Database = Db>>(
    e: E,
    m: &InterfaceMessageRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO interface_messages (protocol, connection, sender, control_id, \
         message_type, received_at, raw, status, ack, errors, posted, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(&m.protocol)
    .bind(&m.connection)
    .bind(&m.sender)
    .bind(&m.control_id)
    .bind(&m.message_type)
    .bind(us(m.received_at))
    .bind(&m.raw)
    .bind(&m.status)
    .bind(&m.ack)
    .bind(&m.errors)
    .bind(m.posted)
    .bind(us(m.updated_at))
    .bind(&m.updated_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// A replay's outcome, written only over the status it was read with (`seen`); false when
/// another replay came first.
pub(crate) async fn update_interface_message<'e, E: Executor<'e, Database = Db>>(
    e: E,
    m: &InterfaceMessageRecord,
    seen: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE interface_messages SET status = $1, errors = $2, posted = $3, updated_at = $4, \
         updated_by = $5, connection = $6 WHERE id = $7 AND updated_at = $8",
    )
    .bind(&m.status)
    .bind(&m.errors)
    .bind(m.posted)
    .bind(us(m.updated_at))
    .bind(&m.updated_by)
    .bind(&m.connection)
    .bind(m.id)
    .bind(us(seen))
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Empties the content (raw message and acknowledgement) of accepted or replayed messages
/// received before `before`; returns how many. The key, status and counts stay.
pub(crate) async fn purge_interface_messages<'e, E: Executor<'e, Database = Db>>(
    e: E,
    before: Timestamp,
    at: Timestamp,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE interface_messages SET raw = $1, ack = $1, updated_at = $2, \
         updated_by = 'retention' WHERE status IN ('accepted', 'replayed') \
         AND received_at < $3 AND length(raw) > 0",
    )
    .bind(Vec::<u8>::new())
    .bind(us(at))
    .bind(us(before))
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}

// ── a group of messages, as set operations (see `Tx::interface_messages_by_keys`) ──

/// The stored messages with these `(protocol, sender, control id)` keys, by the key's
/// position in `keys`.
pub(crate) async fn interface_messages_by_keys<'e, E: Executor<'e, Database = Db>>(
    e: E,
    keys: &[(String, String, String)],
) -> StoreResult<Vec<(i64, InterfaceMessageRecord)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb =
        sqlx::QueryBuilder::<Db>::new("WITH q (k, q_protocol, q_sender, q_control_id) AS (");
    qb.push_values(keys.iter().enumerate(), |mut b, (k, (p, s, c))| {
        b.push_bind(i64::try_from(k).unwrap_or(i64::MAX))
            .push_bind(p.clone())
            .push_bind(s.clone())
            .push_bind(c.clone());
    });
    qb.push(concat!(
        ") SELECT ",
        message_cols!(),
        ", q.k FROM q JOIN interface_messages ON protocol = q.q_protocol \
         AND sender = q.q_sender AND control_id = q.q_control_id"
    ));
    let rows = qb.build().fetch_all(e).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        use sqlx::{FromRow, Row};
        let k: i64 = row.try_get("k")?;
        out.push((k, MessageRow::from_row(&row)?.into_record()?));
    }
    Ok(out)
}

/// Stores messages (each under a key not stored yet); their ids in the order given.
pub(crate) async fn insert_interface_messages(
    c: &mut <Db as sqlx::Database>::Connection,
    rows: &[InterfaceMessageRecord],
) -> StoreResult<Vec<i64>> {
    let mut ids = std::collections::HashMap::with_capacity(rows.len());
    // 13 parameters a row stays far below SQLite's 32,766.
    for chunk in rows.chunks(500) {
        let mut qb = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO interface_messages (protocol, connection, sender, control_id, \
             message_type, received_at, raw, status, ack, errors, posted, updated_at, updated_by) ",
        );
        qb.push_values(chunk, |mut b, m| {
            b.push_bind(m.protocol.clone())
                .push_bind(m.connection.clone())
                .push_bind(m.sender.clone())
                .push_bind(m.control_id.clone())
                .push_bind(m.message_type.clone())
                .push_bind(us(m.received_at))
                .push_bind(m.raw.clone())
                .push_bind(m.status.clone())
                .push_bind(m.ack.clone())
                .push_bind(m.errors.clone())
                .push_bind(m.posted)
                .push_bind(us(m.updated_at))
                .push_bind(m.updated_by.clone());
        });
        // RETURNING's row order is not promised: the key names each row.
        qb.push(" RETURNING id, protocol, sender, control_id");
        for (id, p, s, c2) in qb
            .build_query_as::<(i64, String, String, String)>()
            .fetch_all(&mut *c)
            .await?
        {
            ids.insert((p, s, c2), id);
        }
    }
    rows.iter()
        .map(|m| {
            ids.get(&(m.protocol.clone(), m.sender.clone(), m.control_id.clone()))
                .copied()
                .ok_or_else(|| {
                    crate::StoreError::Database("a message's row was not returned".into())
                })
        })
        .collect()
}
