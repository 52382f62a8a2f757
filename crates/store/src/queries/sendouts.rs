//! Send-outs to reference laboratories (issue 14 item 4): the reference laboratories and
//! their test codes, send-outs, shipments and their steps.

use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{
    ReferenceLabRecord, ReferenceLabTestCodeRecord, SendOutRecord, ShipmentEventRecord,
    ShipmentRecord,
};

// ── reference laboratories ──

macro_rules! lab_cols {
    () => {
        "id, code, name, address, clia, phone, expected_tat_hours, version, updated_at, \
         updated_by, retired_at"
    };
}

type LabRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    String,
    Option<i64>,
);

fn lab(r: LabRow) -> StoreResult<ReferenceLabRecord> {
    Ok(ReferenceLabRecord {
        id: r.0,
        code: r.1,
        name: r.2,
        address: r.3,
        clia: r.4,
        phone: r.5,
        expected_tat_hours: r.6,
        version: r.7,
        updated_at: ts(r.8)?,
        updated_by: r.9,
        retired_at: opt_ts(r.10)?,
    })
}

pub(crate) async fn reference_labs<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<ReferenceLabRecord>> {
    sqlx::query_as::<_, LabRow>(concat!(
        "SELECT ",
        lab_cols!(),
        " FROM reference_labs ORDER BY code"
    ))
    .fetch_all(e)
    .await?
    .into_iter()
    .map(lab)
    .collect()
}

pub(crate) async fn reference_lab_by_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    code: &str,
) -> StoreResult<Option<ReferenceLabRecord>> {
    sqlx::query_as::<_, LabRow>(concat!(
        "SELECT ",
        lab_cols!(),
        " FROM reference_labs WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(e)
    .await?
    .map(lab)
    .transpose()
}

pub(crate) async fn reference_lab_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<ReferenceLabRecord>> {
    sqlx::query_as::<_, LabRow>(concat!(
        "SELECT ",
        lab_cols!(),
        " FROM reference_labs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(lab)
    .transpose()
}

pub(crate) async fn insert_reference_lab<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ReferenceLabRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO reference_labs (code, name, address, clia, phone, expected_tat_hours, \
         version, updated_at, updated_by, retired_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(&r.code)
    .bind(&r.name)
    .bind(&r.address)
    .bind(&r.clia)
    .bind(&r.phone)
    .bind(r.expected_tat_hours)
    .bind(r.version)
    .bind(us(r.updated_at))
    .bind(&r.updated_by)
    .bind(r.retired_at.map(us))
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Replaces version `r.version - 1`; false when another change came first.
pub(crate) async fn update_reference_lab<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ReferenceLabRecord,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE reference_labs SET name = $1, address = $2, clia = $3, phone = $4, \
         expected_tat_hours = $5, version = $6, updated_at = $7, updated_by = $8, \
         retired_at = $9 WHERE id = $10 AND version = $11",
    )
    .bind(&r.name)
    .bind(&r.address)
    .bind(&r.clia)
    .bind(&r.phone)
    .bind(r.expected_tat_hours)
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

pub(crate) async fn reference_lab_test_codes<'e, E: Executor<'e, Database = Db>>(
    e: E,
    lab_id: i64,
) -> StoreResult<Vec<ReferenceLabTestCodeRecord>> {
    Ok(sqlx::query_as::<_, (i64, String, String)>(
        "SELECT reference_lab_id, code, test_code FROM reference_lab_test_codes \
         WHERE reference_lab_id = $1 ORDER BY code",
    )
    .bind(lab_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| ReferenceLabTestCodeRecord {
        reference_lab_id: r.0,
        code: r.1,
        test_code: r.2,
    })
    .collect())
}

pub(crate) async fn delete_reference_lab_test_codes<'e, E: Executor<'e, Database = Db>>(
    e: E,
    lab_id: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM reference_lab_test_codes WHERE reference_lab_id = $1")
        .bind(lab_id)
        .execute(e)
        .await?;
    Ok(())
}

pub(crate) async fn insert_reference_lab_test_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ReferenceLabTestCodeRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO reference_lab_test_codes (reference_lab_id, code, test_code) \
         VALUES ($1, $2, $3)",
    )
    .bind(r.reference_lab_id)
    .bind(&r.code)
    .bind(&r.test_code)
    .execute(e)
    .await?;
    Ok(())
}

// ── send-outs ──

macro_rules! send_out_cols {
    () => {
        "o.id, o.specimen_id, s.accession, o.reference_lab, o.tests, o.tracking, \
         o.temperature, o.sent_at, o.sent_by, o.resulted_at, o.reference_lab_id, o.shipment_id \
         FROM send_outs o JOIN specimens s ON s.id = o.specimen_id"
    };
}

type SendOutRow = (
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn send_out(r: SendOutRow) -> StoreResult<SendOutRecord> {
    Ok(SendOutRecord {
        id: r.0,
        specimen_id: r.1,
        accession: r.2,
        reference_lab: r.3,
        tests: r.4,
        tracking: r.5,
        temperature: r.6,
        sent_at: ts(r.7)?,
        sent_by: r.8,
        resulted_at: opt_ts(r.9)?,
        reference_lab_id: r.10,
        shipment_id: r.11,
    })
}

pub(crate) async fn insert_send_out<'e, E: Executor<'e, Database = Db>>(
    e: E,
    o: &SendOutRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO send_outs (specimen_id, reference_lab, tests, tracking, temperature, \
         sent_at, sent_by, reference_lab_id, shipment_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(o.specimen_id)
    .bind(&o.reference_lab)
    .bind(&o.tests)
    .bind(&o.tracking)
    .bind(&o.temperature)
    .bind(us(o.sent_at))
    .bind(&o.sent_by)
    .bind(o.reference_lab_id)
    .bind(o.shipment_id)
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn send_outs<'e, E: Executor<'e, Database = Db>>(
    e: E,
    open_only: bool,
    limit: i64,
) -> StoreResult<Vec<SendOutRecord>> {
    let sql = if open_only {
        concat!(
            "SELECT ",
            send_out_cols!(),
            " WHERE o.resulted_at IS NULL ORDER BY o.id LIMIT $1"
        )
    } else {
        concat!("SELECT ", send_out_cols!(), " ORDER BY o.id LIMIT $1")
    };
    sqlx::query_as::<_, SendOutRow>(sql)
        .bind(limit)
        .fetch_all(e)
        .await?
        .into_iter()
        .map(send_out)
        .collect()
}

pub(crate) async fn send_outs_of_specimen<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_id: i64,
) -> StoreResult<Vec<SendOutRecord>> {
    sqlx::query_as::<_, SendOutRow>(concat!(
        "SELECT ",
        send_out_cols!(),
        " WHERE o.specimen_id = $1 ORDER BY o.id"
    ))
    .bind(specimen_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(send_out)
    .collect()
}

/// [`send_outs_of_specimen`] of many specimens, by specimen then id.
pub(crate) async fn send_outs_of_specimens<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_ids: &[i64],
) -> StoreResult<Vec<SendOutRecord>> {
    if specimen_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        send_out_cols!(),
        " WHERE o.specimen_id IN ("
    ));
    let mut list = qb.separated(", ");
    for id in specimen_ids {
        list.push_bind(*id);
    }
    qb.push(") ORDER BY o.specimen_id, o.id");
    qb.build_query_as::<SendOutRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(send_out)
        .collect()
}

pub(crate) async fn send_outs_of_shipment<'e, E: Executor<'e, Database = Db>>(
    e: E,
    shipment_id: i64,
) -> StoreResult<Vec<SendOutRecord>> {
    sqlx::query_as::<_, SendOutRow>(concat!(
        "SELECT ",
        send_out_cols!(),
        " WHERE o.shipment_id = $1 ORDER BY o.id"
    ))
    .bind(shipment_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(send_out)
    .collect()
}

/// Send-outs to a reference laboratory not yet packed into a shipment, oldest first.
pub(crate) async fn unpacked_send_outs<'e, E: Executor<'e, Database = Db>>(
    e: E,
    reference_lab_id: i64,
    limit: i64,
) -> StoreResult<Vec<SendOutRecord>> {
    sqlx::query_as::<_, SendOutRow>(concat!(
        "SELECT ",
        send_out_cols!(),
        " WHERE o.reference_lab_id = $1 AND o.shipment_id IS NULL ORDER BY o.id LIMIT $2"
    ))
    .bind(reference_lab_id)
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(send_out)
    .collect()
}

/// Packs a send-out into a shipment; false when it was packed meanwhile.
pub(crate) async fn pack_send_out<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    shipment_id: i64,
) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE send_outs SET shipment_id = $1 WHERE id = $2 AND shipment_id IS NULL")
            .bind(shipment_id)
            .bind(id)
            .execute(e)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a send-out's results back; false when they were already.
pub(crate) async fn close_send_out<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    at: jiff::Timestamp,
) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE send_outs SET resulted_at = $1 WHERE id = $2 AND resulted_at IS NULL")
            .bind(us(at))
            .bind(id)
            .execute(e)
            .await?;
    Ok(done.rows_affected() == 1)
}

// ── shipments ──

macro_rules! shipment_cols {
    () => {
        "id, manifest, reference_lab_id, status, temperature, packed_at, packed_by, courier, \
         tracking, shipped_at, received_at, resulted_at, version"
    };
}

type ShipmentRow = (
    i64,
    String,
    i64,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
);

fn shipment(r: ShipmentRow) -> StoreResult<ShipmentRecord> {
    Ok(ShipmentRecord {
        id: r.0,
        manifest: r.1,
        reference_lab_id: r.2,
        status: r.3,
        temperature: r.4,
        packed_at: ts(r.5)?,
        packed_by: r.6,
        courier: r.7,
        tracking: r.8,
        shipped_at: opt_ts(r.9)?,
        received_at: opt_ts(r.10)?,
        resulted_at: opt_ts(r.11)?,
        version: r.12,
    })
}

pub(crate) async fn insert_shipment<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ShipmentRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO shipments (manifest, reference_lab_id, status, temperature, packed_at, \
         packed_by, courier, tracking, shipped_at, received_at, resulted_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(&r.manifest)
    .bind(r.reference_lab_id)
    .bind(&r.status)
    .bind(&r.temperature)
    .bind(us(r.packed_at))
    .bind(&r.packed_by)
    .bind(&r.courier)
    .bind(&r.tracking)
    .bind(r.shipped_at.map(us))
    .bind(r.received_at.map(us))
    .bind(r.resulted_at.map(us))
    .bind(r.version)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Writes the shipment's new state over version `r.version - 1`; false when another change
/// came first.
pub(crate) async fn update_shipment<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ShipmentRecord,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE shipments SET status = $1, courier = $2, tracking = $3, shipped_at = $4, \
         received_at = $5, resulted_at = $6, version = $7 WHERE id = $8 AND version = $9",
    )
    .bind(&r.status)
    .bind(&r.courier)
    .bind(&r.tracking)
    .bind(r.shipped_at.map(us))
    .bind(r.received_at.map(us))
    .bind(r.resulted_at.map(us))
    .bind(r.version)
    .bind(r.id)
    .bind(r.version - 1)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn shipment_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<ShipmentRecord>> {
    sqlx::query_as::<_, ShipmentRow>(concat!(
        "SELECT ",
        shipment_cols!(),
        " FROM shipments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(shipment)
    .transpose()
}

/// Shipments, newest first, of one status when given.
pub(crate) async fn shipments<'e, E: Executor<'e, Database = Db>>(
    e: E,
    status: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<ShipmentRecord>> {
    match status {
        Some(st) => {
            sqlx::query_as::<_, ShipmentRow>(concat!(
                "SELECT ",
                shipment_cols!(),
                " FROM shipments WHERE status = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(st)
            .bind(limit)
            .fetch_all(e)
            .await?
        }
        None => {
            sqlx::query_as::<_, ShipmentRow>(concat!(
                "SELECT ",
                shipment_cols!(),
                " FROM shipments ORDER BY id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(e)
            .await?
        }
    }
    .into_iter()
    .map(shipment)
    .collect()
}

pub(crate) async fn insert_shipment_event<'e, E: Executor<'e, Database = Db>>(
    e: E,
    r: &ShipmentEventRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO shipment_events (shipment_id, at, by_user, kind, from_status, to_status, \
         details) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(r.shipment_id)
    .bind(us(r.at))
    .bind(&r.by_user)
    .bind(&r.kind)
    .bind(&r.from_status)
    .bind(&r.to_status)
    .bind(&r.details)
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn shipment_events<'e, E: Executor<'e, Database = Db>>(
    e: E,
    shipment_id: i64,
) -> StoreResult<Vec<ShipmentEventRecord>> {
    sqlx::query_as::<_, (i64, i64, i64, String, String, String, String, String)>(
        "SELECT id, shipment_id, at, by_user, kind, from_status, to_status, details \
         FROM shipment_events WHERE shipment_id = $1 ORDER BY id",
    )
    .bind(shipment_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(ShipmentEventRecord {
            id: r.0,
            shipment_id: r.1,
            at: ts(r.2)?,
            by_user: r.3,
            kind: r.4,
            from_status: r.5,
            to_status: r.6,
            details: r.7,
        })
    })
    .collect()
}
