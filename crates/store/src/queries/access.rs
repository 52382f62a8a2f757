//! The access log (who read which patient's data) and the patients behind a read.

use sqlx::Executor;

use super::Db;
use crate::backend::us;
use crate::records::AccessEntry;
use crate::{StoreError, StoreResult};

pub(crate) async fn insert_access<'e, E: Executor<'e, Database = Db>>(
    e: E,
    a: &AccessEntry,
) -> StoreResult<()> {
    let ids = serde_json::to_string(&a.patient_ids)
        .map_err(|err| StoreError::Database(err.to_string()))?;
    sqlx::query(
        "INSERT INTO access_log (occurred_at, actor_id, actor_name, source, action, \
         entity_type, entity_id, patient_ids) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(us(a.at))
    .bind(a.actor_id)
    .bind(&a.actor_name)
    .bind(&a.source)
    .bind(&a.action)
    .bind(&a.entity_type)
    .bind(&a.entity_id)
    .bind(ids)
    .execute(e)
    .await?;
    Ok(())
}

/// The patients of these specimens and orders, sorted and without repeats. Asked
/// in slices of at most 1000 ids (each backend caps the parameters of a query).
pub(crate) async fn patients_of(
    e: &sqlx::Pool<Db>,
    specimen_ids: &[i64],
    order_ids: &[i64],
) -> StoreResult<Vec<i64>> {
    let mut out = std::collections::BTreeSet::new();
    for (table, ids) in [("specimens", specimen_ids), ("orders", order_ids)] {
        for chunk in ids.chunks(1000) {
            let mut qb = sqlx::QueryBuilder::<Db>::new("SELECT DISTINCT patient_id FROM ");
            qb.push(table);
            qb.push(" WHERE id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(")");
            let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(e).await?;
            out.extend(rows.into_iter().map(|(id,)| id));
        }
    }
    Ok(out.into_iter().collect())
}
