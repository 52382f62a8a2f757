//! Storage: units, placements, retention and disposal lists (send-outs: `sendouts.rs`).

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{
    PlacementRecord, RejectedSpecimenRecord, RetentionPolicyRecord, RetentionUseRecord,
    StorageUnitRecord, StoredSpecimenRecord,
};

type UnitRow = (
    i64,
    String,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    String,
);

fn storage_unit(r: UnitRow) -> StoreResult<StorageUnitRecord> {
    Ok(StorageUnitRecord {
        id: r.0,
        path: r.1,
        parent_id: r.2,
        kind: r.3,
        name: r.4,
        temperature: r.5,
        grid_rows: r.6,
        grid_cols: r.7,
        created_at: ts(r.8)?,
        created_by: r.9,
    })
}

macro_rules! unit_cols {
    () => {
        "id, path, parent_id, kind, name, temperature, grid_rows, grid_cols, \
         created_at, created_by"
    };
}

pub(crate) async fn storage_units<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<StorageUnitRecord>> {
    sqlx::query_as::<_, UnitRow>(concat!(
        "SELECT ",
        unit_cols!(),
        " FROM storage_units ORDER BY path"
    ))
    .fetch_all(e)
    .await?
    .into_iter()
    .map(storage_unit)
    .collect()
}

pub(crate) async fn storage_unit_by_path<'e, E: Executor<'e, Database = Db>>(
    e: E,
    path: &str,
) -> StoreResult<Option<StorageUnitRecord>> {
    sqlx::query_as::<_, UnitRow>(concat!(
        "SELECT ",
        unit_cols!(),
        " FROM storage_units WHERE path = $1"
    ))
    .bind(path)
    .fetch_optional(e)
    .await?
    .map(storage_unit)
    .transpose()
}

pub(crate) async fn insert_storage_unit<'e, E: Executor<'e, Database = Db>>(
    e: E,
    u: &StorageUnitRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO storage_units (path, parent_id, kind, name, temperature, grid_rows, \
         grid_cols, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         RETURNING id",
    )
    .bind(&u.path)
    .bind(u.parent_id)
    .bind(&u.kind)
    .bind(&u.name)
    .bind(&u.temperature)
    .bind(u.grid_rows)
    .bind(u.grid_cols)
    .bind(us(u.created_at))
    .bind(&u.created_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn placement_counts<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<(i64, i64)>> {
    Ok(sqlx::query_as::<_, (i64, i64)>(
        "SELECT unit_id, COUNT(*) FROM specimen_placements WHERE removed_at IS NULL \
         GROUP BY unit_id",
    )
    .fetch_all(e)
    .await?)
}

type StoredRow = (
    i64,
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
    String,
);

fn stored(r: StoredRow) -> StoreResult<StoredSpecimenRecord> {
    Ok(StoredSpecimenRecord {
        specimen_id: r.0,
        accession: r.1,
        specimen_type: r.2,
        status: r.3,
        unit_id: r.4,
        unit_path: r.5,
        position: r.6,
        stored_at: ts(r.7)?,
        stored_by: r.8,
    })
}

const STORED_FROM: &str = "SELECT s.id, s.accession, s.specimen_type, s.status, p.unit_id, \
    u.path, p.position, p.stored_at, p.stored_by FROM specimen_placements p \
    JOIN specimens s ON s.id = p.specimen_id JOIN storage_units u ON u.id = p.unit_id \
    WHERE p.removed_at IS NULL";

pub(crate) async fn stored_in<'e, E: Executor<'e, Database = Db>>(
    e: E,
    unit_ids: &[i64],
    limit: i64,
) -> StoreResult<Vec<StoredSpecimenRecord>> {
    if unit_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(STORED_FROM);
    qb.push(" AND p.unit_id IN (");
    let mut sep = qb.separated(", ");
    for id in unit_ids {
        sep.push_bind(*id);
    }
    qb.push(") ORDER BY u.path, p.position, p.id LIMIT ");
    qb.push_bind(limit);
    qb.build_query_as::<StoredRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(stored)
        .collect()
}

pub(crate) async fn stored_before<'e, E: Executor<'e, Database = Db>>(
    e: E,
    cutoffs: &[(String, Timestamp)],
    limit: i64,
) -> StoreResult<Vec<StoredSpecimenRecord>> {
    if cutoffs.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(STORED_FROM);
    qb.push(" AND s.status = 'stored' AND (");
    for (i, (specimen_type, cutoff)) in cutoffs.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("(s.specimen_type = ");
        qb.push_bind(specimen_type.clone());
        qb.push(" AND p.stored_at <= ");
        qb.push_bind(us(*cutoff));
        qb.push(")");
    }
    qb.push(") ORDER BY p.stored_at, p.id LIMIT ");
    qb.push_bind(limit);
    qb.build_query_as::<StoredRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(stored)
        .collect()
}

type PlacementRow = (
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) async fn latest_placement<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_id: i64,
) -> StoreResult<Option<PlacementRecord>> {
    sqlx::query_as::<_, PlacementRow>(
        "SELECT p.id, p.specimen_id, p.unit_id, u.path, p.position, p.stored_at, \
         p.stored_by, p.removed_at, p.removed_by, p.removal, p.removal_reason \
         FROM specimen_placements p JOIN storage_units u ON u.id = p.unit_id \
         WHERE p.specimen_id = $1 ORDER BY p.id DESC LIMIT 1",
    )
    .bind(specimen_id)
    .fetch_optional(e)
    .await?
    .map(|r| {
        Ok(PlacementRecord {
            id: r.0,
            specimen_id: r.1,
            unit_id: r.2,
            unit_path: r.3,
            position: r.4,
            stored_at: ts(r.5)?,
            stored_by: r.6,
            removed_at: opt_ts(r.7)?,
            removed_by: r.8,
            removal: r.9,
            removal_reason: r.10,
        })
    })
    .transpose()
}

pub(crate) async fn insert_placement<'e, E: Executor<'e, Database = Db>>(
    e: E,
    p: &PlacementRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO specimen_placements (specimen_id, unit_id, position, stored_at, \
         stored_by) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(p.specimen_id)
    .bind(p.unit_id)
    .bind(&p.position)
    .bind(us(p.stored_at))
    .bind(&p.stored_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

pub(crate) async fn close_placement<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    at: Timestamp,
    by: &str,
    removal: &str,
    reason: Option<&str>,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE specimen_placements SET removed_at = $1, removed_by = $2, removal = $3, \
         removal_reason = $4 WHERE id = $5 AND removed_at IS NULL",
    )
    .bind(us(at))
    .bind(by)
    .bind(removal)
    .bind(reason)
    .bind(id)
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn retention_policies<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<RetentionPolicyRecord>> {
    sqlx::query_as::<_, (String, i64, i64, String)>(
        "SELECT specimen_type, hours, updated_at, updated_by FROM retention_policies \
         ORDER BY specimen_type",
    )
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(RetentionPolicyRecord {
            specimen_type: r.0,
            hours: r.1,
            updated_at: ts(r.2)?,
            updated_by: r.3,
        })
    })
    .collect()
}

pub(crate) async fn put_retention_policy<'e, E: Executor<'e, Database = Db>>(
    e: E,
    p: &RetentionPolicyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO retention_policies (specimen_type, hours, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (specimen_type) DO UPDATE SET \
         hours = excluded.hours, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by",
    )
    .bind(&p.specimen_type)
    .bind(p.hours)
    .bind(us(p.updated_at))
    .bind(&p.updated_by)
    .execute(e)
    .await?;
    Ok(())
}

pub(crate) async fn rejected_specimens<'e, E: Executor<'e, Database = Db>>(
    e: E,
    limit: i64,
) -> StoreResult<Vec<RejectedSpecimenRecord>> {
    sqlx::query_as::<_, (i64, String, String, Option<i64>)>(
        "SELECT s.id, s.accession, s.specimen_type, \
         (SELECT MAX(ev.at) FROM specimen_events ev WHERE ev.specimen_id = s.id \
         AND ev.kind = 'reject') AS rejected_at \
         FROM specimens s WHERE s.status = 'rejected' \
         ORDER BY rejected_at, s.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(RejectedSpecimenRecord {
            specimen_id: r.0,
            accession: r.1,
            specimen_type: r.2,
            rejected_at: opt_ts(r.3)?,
        })
    })
    .collect()
}

pub(crate) async fn retention_use_policies<'e, E: Executor<'e, Database = Db>>(
    e: E,
) -> StoreResult<Vec<RetentionUseRecord>> {
    sqlx::query_as::<_, (String, String, String, i64, i64, String)>(
        "SELECT specimen_type, use_kind, use_code, hours, updated_at, updated_by \
         FROM retention_use_policies ORDER BY specimen_type, use_kind, use_code",
    )
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(RetentionUseRecord {
            specimen_type: r.0,
            use_kind: r.1,
            use_code: r.2,
            hours: r.3,
            updated_at: ts(r.4)?,
            updated_by: r.5,
        })
    })
    .collect()
}

pub(crate) async fn put_retention_use_policy<'e, E: Executor<'e, Database = Db>>(
    e: E,
    p: &RetentionUseRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO retention_use_policies \
         (specimen_type, use_kind, use_code, hours, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (specimen_type, use_kind, use_code) DO UPDATE SET \
         hours = excluded.hours, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by",
    )
    .bind(&p.specimen_type)
    .bind(&p.use_kind)
    .bind(&p.use_code)
    .bind(p.hours)
    .bind(us(p.updated_at))
    .bind(&p.updated_by)
    .execute(e)
    .await?;
    Ok(())
}
