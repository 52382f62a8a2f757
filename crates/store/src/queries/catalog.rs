//! The test catalogue and its version history.

use sqlx::Executor;

use super::Db;
use crate::backend::{opt_ts, ts, us};
use crate::records::{CatalogTestRecord, CatalogVersionRecord};
use crate::{StoreError, StoreResult};

type CatalogRow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    i64,
    String,
    i64,
    Option<i64>,
);

macro_rules! catalog_cols {
    () => {
        "id, code, loinc, kind, name, version, definition, updated_at, retired_at"
    };
}

fn catalog(r: CatalogRow) -> StoreResult<CatalogTestRecord> {
    Ok(CatalogTestRecord {
        id: r.0,
        code: r.1,
        loinc: r.2,
        kind: r.3,
        name: r.4,
        version: r.5,
        definition: r.6,
        updated_at: ts(r.7)?,
        retired_at: opt_ts(r.8)?,
    })
}

pub(crate) async fn list_catalog<'e, E: Executor<'e, Database = Db>>(
    e: E,
    include_retired: bool,
) -> StoreResult<Vec<CatalogTestRecord>> {
    sqlx::query_as::<_, CatalogRow>(concat!(
        "SELECT ",
        catalog_cols!(),
        " FROM catalog_tests \
         WHERE $1 = 1 OR retired_at IS NULL ORDER BY code"
    ))
    .bind(i64::from(include_retired))
    .fetch_all(e)
    .await?
    .into_iter()
    .map(catalog)
    .collect()
}

/// By local code, or else by LOINC code (the active entry first).
pub(crate) async fn catalog_by_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    code: &str,
) -> StoreResult<Option<CatalogTestRecord>> {
    sqlx::query_as::<_, CatalogRow>(concat!(
        "SELECT ",
        catalog_cols!(),
        " FROM catalog_tests WHERE code = $1 OR loinc = $1 \
         ORDER BY CASE WHEN code = $1 THEN 0 ELSE 1 END, \
         CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, id LIMIT 1"
    ))
    .bind(code)
    .fetch_optional(e)
    .await?
    .map(catalog)
    .transpose()
}

pub(crate) async fn insert_catalog<'e, E: Executor<'e, Database = Db>>(
    e: E,
    c: &CatalogTestRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO catalog_tests (code, loinc, kind, name, version, definition, \
         updated_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(&c.code)
    .bind(&c.loinc)
    .bind(&c.kind)
    .bind(&c.name)
    .bind(c.version)
    .bind(&c.definition)
    .bind(us(c.updated_at))
    .bind(c.retired_at.map(us))
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Replaces the definition of entry `c.id`, which must still be at `c.version - 1`.
pub(crate) async fn update_catalog<'e, E: Executor<'e, Database = Db>>(
    e: E,
    c: &CatalogTestRecord,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE catalog_tests SET loinc = $1, kind = $2, name = $3, version = $4, \
         definition = $5, updated_at = $6, retired_at = $7 \
         WHERE id = $8 AND version = $9",
    )
    .bind(&c.loinc)
    .bind(&c.kind)
    .bind(&c.name)
    .bind(c.version)
    .bind(&c.definition)
    .bind(us(c.updated_at))
    .bind(c.retired_at.map(us))
    .bind(c.id)
    .bind(c.version - 1)
    .execute(e)
    .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::Conflict(
            "catalog entry changed meanwhile".into(),
        ));
    }
    Ok(())
}

pub(crate) async fn insert_catalog_version<'e, E: Executor<'e, Database = Db>>(
    e: E,
    c: &CatalogTestRecord,
    by: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO catalog_test_versions (test_id, version, definition, changed_at, \
         changed_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(c.id)
    .bind(c.version)
    .bind(&c.definition)
    .bind(us(c.updated_at))
    .bind(by)
    .execute(e)
    .await?;
    Ok(())
}

pub(crate) async fn catalog_versions<'e, E: Executor<'e, Database = Db>>(
    e: E,
    test_id: i64,
) -> StoreResult<Vec<CatalogVersionRecord>> {
    sqlx::query_as::<_, (i64, String, i64, String)>(
        "SELECT version, definition, changed_at, changed_by FROM catalog_test_versions \
         WHERE test_id = $1 ORDER BY version",
    )
    .bind(test_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|r| {
        Ok(CatalogVersionRecord {
            version: r.0,
            definition: r.1,
            changed_at: ts(r.2)?,
            changed_by: r.3,
        })
    })
    .collect()
}
