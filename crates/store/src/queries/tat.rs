//! Turnaround time: the milestones of each test.

use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts};
use crate::records::TatRow;

type TatTuple = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn tat_row(r: TatTuple) -> StoreResult<TatRow> {
    Ok(TatRow {
        order_test_id: r.0,
        order_id: r.1,
        test_code: r.2,
        test_status: r.3,
        accession: r.4,
        specimen_status: r.5,
        priority: r.6,
        ordered_at: ts(r.7)?,
        collected_at: opt_ts(r.8)?,
        received_at: opt_ts(r.9)?,
        in_process_at: opt_ts(r.10)?,
        resulted_at: opt_ts(r.11)?,
        verified_at: opt_ts(r.12)?,
        released_at: opt_ts(r.13)?,
    })
}

// An aliquot was never received itself: its tests count from the receipt (and the
// start of processing) of the tube it was poured from.
macro_rules! tat_select {
    () => {
        "SELECT t.id, t.order_id, t.test_code, t.status, s.accession, s.status, \
         o.priority, o.created_at, s.collected_at, \
         (SELECT MIN(e.at) FROM specimen_events e WHERE e.specimen_id IN (s.id, s.parent_id) \
          AND e.kind = 'receive'), \
         (SELECT MIN(e.at) FROM specimen_events e WHERE e.specimen_id IN (s.id, s.parent_id) \
          AND e.kind = 'start_processing'), \
         (SELECT MIN(v.at) FROM result_versions v WHERE v.result_id = r.id), \
         r.verified_at, r.released_at \
         FROM order_tests t JOIN specimens s ON s.id = t.specimen_id \
         JOIN orders o ON o.id = t.order_id \
         LEFT JOIN results r ON r.order_test_id = t.id "
    };
}

/// The tests of one order with their milestones, in test order.
pub(crate) async fn tat_of_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
) -> StoreResult<Vec<TatRow>> {
    sqlx::query_as::<_, TatTuple>(concat!(
        tat_select!(),
        "WHERE t.order_id = $1 ORDER BY t.id"
    ))
    .bind(order_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(tat_row)
    .collect()
}

// What makes a test running, over `order_tests t`, `specimens s` and `orders o`: its
// specimen is held by the lab, its order is active, the test is not finished.
macro_rules! running_where {
    () => {
        "WHERE s.status IN ('received', 'in_process', 'processed', 'stored') \
         AND o.status = 'active' \
         AND t.status NOT IN ('released', 'cancelled', 'not_performed') "
    };
}

// [`running_where`] with its tables.
macro_rules! running_from {
    () => {
        concat!(
            "FROM order_tests t JOIN specimens s ON s.id = t.specimen_id \
             JOIN orders o ON o.id = t.order_id ",
            running_where!()
        )
    };
}

// The running tests' order: most urgent priority first, then the oldest tube.
macro_rules! running_order {
    () => {
        " ORDER BY CASE o.priority WHEN 'stat' THEN 0 WHEN 'asap' THEN 1 \
         WHEN 'timed' THEN 2 ELSE 3 END, s.id, t.id"
    };
}

/// Tests still running in the lab: their specimen is held by the lab (received,
/// in process, processed or stored), the order is active and the test has no released
/// result. At most `limit`, most urgent priority first, then oldest specimen.
pub(crate) async fn running_tests<'e, E: Executor<'e, Database = Db>>(
    e: E,
    limit: i64,
) -> StoreResult<Vec<TatRow>> {
    sqlx::query_as::<_, TatTuple>(concat!(
        tat_select!(),
        running_where!(),
        running_order!(),
        " LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(tat_row)
    .collect()
}

fn push_codes(qb: &mut sqlx::QueryBuilder<Db>, test_codes: &[String]) {
    qb.push("AND t.test_code IN (");
    let mut list = qb.separated(", ");
    for c in test_codes {
        list.push_bind(c.clone());
    }
    qb.push(")");
}

/// [`running_tests`] of the tests `test_codes` only: the first `limit` in the same order
/// (the milestones read for those only), and how many there are in all.
pub(crate) async fn running_tests_of(
    c: &mut <Db as sqlx::Database>::Connection,
    test_codes: &[String],
    limit: i64,
) -> StoreResult<(Vec<TatRow>, i64)> {
    if test_codes.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!("SELECT COUNT(*) ", running_from!()));
    push_codes(&mut qb, test_codes);
    let (total,) = qb.build_query_as::<(i64,)>().fetch_one(&mut *c).await?;
    if total == 0 || limit <= 0 {
        return Ok((Vec::new(), total));
    }
    // The first `limit` ids by the list's order, then their milestones: the correlated
    // subqueries run for the rows shown, not for every running test.
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        tat_select!(),
        "WHERE t.id IN (SELECT t.id ",
        running_from!()
    ));
    push_codes(&mut qb, test_codes);
    qb.push(concat!(running_order!(), " LIMIT "));
    qb.push_bind(limit);
    qb.push(concat!(")", running_order!()));
    let rows = qb
        .build_query_as::<TatTuple>()
        .fetch_all(&mut *c)
        .await?
        .into_iter()
        .map(tat_row)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((rows, total))
}
