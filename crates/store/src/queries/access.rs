//! The patients behind a read of the access log (who read which patient's data). Access
//! rows are written chained by the backend (`crate::access_chain`).

use super::Db;
use crate::StoreResult;

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
