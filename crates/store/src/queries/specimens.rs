//! Specimens: their lifecycle and custody events, the problem log, recollection tasks,
//! and processing (aliquots, centrifugations, dilutions, sorting).

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{
    CentrifugationRecord, DilutionRecord, ProblemRecord, RecollectTaskRecord, SortingRecord,
    SpecimenChange, SpecimenEventRecord, SpecimenRecord,
};

macro_rules! specimen_cols {
    () => {
        "id, accession, order_id, patient_id, container, \
    specimen_type, draw_rank, status, volume_ul, capacity_ul, created_at, \
    collected_at, temperature, demand_ul, received_container"
    };
}

#[derive(sqlx::FromRow)]
struct SpecimenRow {
    id: i64,
    accession: String,
    order_id: i64,
    patient_id: i64,
    container: String,
    specimen_type: String,
    draw_rank: i64,
    status: String,
    volume_ul: i64,
    capacity_ul: i64,
    created_at: i64,
    collected_at: Option<i64>,
    temperature: Option<String>,
    demand_ul: i64,
    received_container: Option<String>,
}

fn specimen(r: SpecimenRow) -> StoreResult<SpecimenRecord> {
    Ok(SpecimenRecord {
        id: r.id,
        accession: r.accession,
        order_id: r.order_id,
        patient_id: r.patient_id,
        container: r.container,
        specimen_type: r.specimen_type,
        draw_rank: r.draw_rank,
        status: r.status,
        volume_ul: r.volume_ul,
        capacity_ul: r.capacity_ul,
        created_at: ts(r.created_at)?,
        collected_at: opt_ts(r.collected_at)?,
        temperature: r.temperature,
        demand_ul: r.demand_ul,
        received_container: r.received_container,
    })
}

pub(crate) async fn insert_specimen<'e, E: Executor<'e, Database = Db>>(
    e: E,
    s: &SpecimenRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO specimens (accession, order_id, patient_id, container, \
         specimen_type, draw_rank, status, volume_ul, capacity_ul, created_at, \
         collected_at, temperature, demand_ul, received_container) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )
    .bind(&s.accession)
    .bind(s.order_id)
    .bind(s.patient_id)
    .bind(&s.container)
    .bind(&s.specimen_type)
    .bind(s.draw_rank)
    .bind(&s.status)
    .bind(s.volume_ul)
    .bind(s.capacity_ul)
    .bind(us(s.created_at))
    .bind(s.collected_at.map(us))
    .bind(&s.temperature)
    .bind(s.demand_ul)
    .bind(&s.received_container)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Inserts several specimens in one statement; returns `(accession, id)` pairs.
pub(crate) async fn insert_specimens<'e, E: Executor<'e, Database = Db>>(
    e: E,
    rows: &[SpecimenRecord],
) -> StoreResult<Vec<(String, i64)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO specimens (accession, order_id, patient_id, container, \
         specimen_type, draw_rank, status, volume_ul, capacity_ul, created_at, \
         collected_at, temperature, demand_ul, received_container) ",
    );
    qb.push_values(rows, |mut b, s| {
        b.push_bind(s.accession.clone())
            .push_bind(s.order_id)
            .push_bind(s.patient_id)
            .push_bind(s.container.clone())
            .push_bind(s.specimen_type.clone())
            .push_bind(s.draw_rank)
            .push_bind(s.status.clone())
            .push_bind(s.volume_ul)
            .push_bind(s.capacity_ul)
            .push_bind(us(s.created_at))
            .push_bind(s.collected_at.map(us))
            .push_bind(s.temperature.clone())
            .push_bind(s.demand_ul)
            .push_bind(s.received_container.clone());
    });
    qb.push(" RETURNING accession, id");
    Ok(qb.build_query_as::<(String, i64)>().fetch_all(e).await?)
}

pub(crate) async fn set_specimen_volume<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    volume_ul: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE specimens SET volume_ul = $1 WHERE id = $2")
        .bind(volume_ul)
        .bind(id)
        .execute(e)
        .await?;
    Ok(())
}

/// The planned demand of the tests on a tube (issue 10 item 4: kept apart from its measured
/// content, `volume_ul`).
pub(crate) async fn set_specimen_demand<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    demand_ul: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE specimens SET demand_ul = $1 WHERE id = $2")
        .bind(demand_ul)
        .bind(id)
        .execute(e)
        .await?;
    Ok(())
}

/// The container that arrived at receipt, and the specimen type it stands for (issue 10
/// item 5): the tube is this container from now on.
pub(crate) async fn set_received_container<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    container: &str,
    specimen_type: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE specimens SET received_container = $1, container = $1, specimen_type = $2 \
         WHERE id = $3",
    )
    .bind(container)
    .bind(specimen_type)
    .bind(id)
    .execute(e)
    .await?;
    Ok(())
}

/// The open recollection task of a rejected tube, if any.
pub(crate) async fn open_recollect_task_of<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_id: i64,
) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_as::<_, (i64,)>(
        "SELECT id FROM recollect_tasks WHERE specimen_id = $1 AND done_at IS NULL \
         ORDER BY id LIMIT 1",
    )
    .bind(specimen_id)
    .fetch_optional(e)
    .await?
    .map(|(id,)| id))
}

pub(crate) async fn specimens_of_order<'e, E: Executor<'e, Database = Db>>(
    e: E,
    order_id: i64,
) -> StoreResult<Vec<SpecimenRecord>> {
    sqlx::query_as::<_, SpecimenRow>(concat!(
        "SELECT ",
        specimen_cols!(),
        " FROM specimens WHERE order_id = $1 \
         ORDER BY draw_rank, container, id"
    ))
    .bind(order_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(specimen)
    .collect()
}

/// Tubes still to be drawn of active orders (of one location, or all): STAT first, then the
/// oldest order, in order of draw.
pub(crate) async fn planned_specimens<'e, E: Executor<'e, Database = Db>>(
    e: E,
    location_id: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<SpecimenRecord>> {
    sqlx::query_as::<_, SpecimenRow>(
        "SELECT s.id, s.accession, s.order_id, s.patient_id, s.container, \
         s.specimen_type, s.draw_rank, s.status, s.volume_ul, s.capacity_ul, s.created_at, \
         s.collected_at, s.temperature, s.demand_ul, s.received_container \
         FROM specimens s JOIN orders o ON o.id = s.order_id \
         WHERE s.status = 'planned' AND o.status = 'active' \
         AND ($1 = 0 OR o.location_id = $1) \
         ORDER BY CASE o.priority WHEN 'stat' THEN 0 WHEN 'asap' THEN 1 \
         WHEN 'timed' THEN 2 ELSE 3 END, o.created_at, o.id, s.draw_rank, s.id LIMIT $2",
    )
    .bind(location_id.unwrap_or(0))
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(specimen)
    .collect()
}

/// The times of the custody events `receive` at or after `since`.
pub(crate) async fn receipt_times<'e, E: Executor<'e, Database = Db>>(
    e: E,
    since: Timestamp,
) -> StoreResult<Vec<Timestamp>> {
    sqlx::query_as::<_, (i64,)>(
        "SELECT at FROM specimen_events WHERE kind = 'receive' AND at >= $1 ORDER BY at",
    )
    .bind(us(since))
    .fetch_all(e)
    .await?
    .into_iter()
    .map(|(at,)| ts(at))
    .collect()
}

pub(crate) async fn specimen_by_accession<'e, E: Executor<'e, Database = Db>>(
    e: E,
    accession: &str,
) -> StoreResult<Option<SpecimenRecord>> {
    sqlx::query_as::<_, SpecimenRow>(concat!(
        "SELECT ",
        specimen_cols!(),
        " FROM specimens WHERE accession = $1"
    ))
    .bind(accession)
    .fetch_optional(e)
    .await?
    .map(specimen)
    .transpose()
}

pub(crate) async fn specimen_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<SpecimenRecord>> {
    sqlx::query_as::<_, SpecimenRow>(concat!(
        "SELECT ",
        specimen_cols!(),
        " FROM specimens WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(specimen)
    .transpose()
}

/// Applies a status change only while the status is still `from`; false when
/// another transaction changed it first.
pub(crate) async fn change_specimen<'e, E: Executor<'e, Database = Db>>(
    e: E,
    c: &SpecimenChange,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE specimens SET status = $1, collected_at = COALESCE($2, collected_at), \
         temperature = COALESCE($3, temperature), volume_ul = COALESCE($4, volume_ul) \
         WHERE id = $5 AND status = $6",
    )
    .bind(&c.to)
    .bind(c.collected_at.map(us))
    .bind(&c.temperature)
    .bind(c.volume_ul)
    .bind(c.id)
    .bind(&c.from)
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Counts one more label print; returns the new count (1 = the original print).
pub(crate) async fn count_label_print<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<i64> {
    let (n,) = sqlx::query_as::<_, (i64,)>(
        "UPDATE specimens SET label_prints = label_prints + 1 WHERE id = $1 \
         RETURNING label_prints",
    )
    .bind(id)
    .fetch_one(e)
    .await?;
    Ok(n)
}

pub(crate) async fn insert_specimen_event<'e, E: Executor<'e, Database = Db>>(
    e: E,
    ev: &SpecimenEventRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO specimen_events (specimen_id, at, actor_id, actor_name, kind, \
         from_status, to_status, details, location) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(ev.specimen_id)
    .bind(us(ev.at))
    .bind(ev.actor_id)
    .bind(&ev.actor_name)
    .bind(&ev.kind)
    .bind(&ev.from_status)
    .bind(&ev.to_status)
    .bind(&ev.details)
    .bind(&ev.location)
    .fetch_one(e)
    .await?;
    Ok(id)
}

type EventRow = (
    i64,
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

fn event(r: EventRow) -> StoreResult<SpecimenEventRecord> {
    Ok(SpecimenEventRecord {
        id: r.0,
        specimen_id: r.1,
        at: ts(r.2)?,
        actor_id: r.3,
        actor_name: r.4,
        kind: r.5,
        from_status: r.6,
        to_status: r.7,
        details: r.8,
        location: r.9,
    })
}

pub(crate) async fn specimen_events<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_id: i64,
) -> StoreResult<Vec<SpecimenEventRecord>> {
    sqlx::query_as::<_, EventRow>(
        "SELECT id, specimen_id, at, actor_id, actor_name, kind, from_status, to_status, \
         details, location FROM specimen_events WHERE specimen_id = $1 ORDER BY id",
    )
    .bind(specimen_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(event)
    .collect()
}

/// [`specimen_events`] of many specimens, by specimen then id.
pub(crate) async fn specimen_events_of<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_ids: &[i64],
) -> StoreResult<Vec<SpecimenEventRecord>> {
    if specimen_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "SELECT id, specimen_id, at, actor_id, actor_name, kind, from_status, to_status, \
         details, location FROM specimen_events WHERE specimen_id IN (",
    );
    let mut list = qb.separated(", ");
    for id in specimen_ids {
        list.push_bind(*id);
    }
    qb.push(") ORDER BY specimen_id, id");
    qb.build_query_as::<EventRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(event)
        .collect()
}

/// One problem-log entry.
pub(crate) async fn problem_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<ProblemRecord>> {
    sqlx::query_as::<_, ProblemRow>(
        "SELECT p.id, p.specimen_id, s.accession, p.reason, p.comment, p.opened_at, \
         p.opened_by, p.resolved_at, p.resolved_by, p.resolution FROM problem_log p \
         JOIN specimens s ON s.id = p.specimen_id WHERE p.id = $1",
    )
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(problem)
    .transpose()
}

/// One recollection task.
pub(crate) async fn recollect_task_by_id<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<RecollectTaskRecord>> {
    sqlx::query_as::<_, TaskRow>(
        "SELECT t.id, t.order_id, t.location_id, t.specimen_id, s.accession, t.reason, \
         t.created_at, t.done_at, t.done_by, t.replacement_accession FROM recollect_tasks t \
         JOIN specimens s ON s.id = t.specimen_id WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(e)
    .await?
    .map(task)
    .transpose()
}

/// Closes an open problem-log entry; false when there is none open with this id.
pub(crate) async fn resolve_problem<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    at: Timestamp,
    by: &str,
    resolution: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE problem_log SET resolved_at = $2, resolved_by = $3, resolution = $4 \
         WHERE id = $1 AND resolved_at IS NULL",
    )
    .bind(id)
    .bind(us(at))
    .bind(by)
    .bind(resolution)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks an open recollection task done; false when there is none open with this id.
pub(crate) async fn complete_recollect_task<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    at: Timestamp,
    by: &str,
    replacement_accession: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE recollect_tasks SET done_at = $2, done_by = $3, \
         replacement_accession = $4 WHERE id = $1 AND done_at IS NULL",
    )
    .bind(id)
    .bind(us(at))
    .bind(by)
    .bind(replacement_accession)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn insert_problem<'e, E: Executor<'e, Database = Db>>(
    e: E,
    p: &ProblemRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO problem_log (specimen_id, reason, comment, opened_at, opened_by) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(p.specimen_id)
    .bind(&p.reason)
    .bind(&p.comment)
    .bind(us(p.opened_at))
    .bind(&p.opened_by)
    .fetch_one(e)
    .await?;
    Ok(id)
}

type ProblemRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn problem(r: ProblemRow) -> StoreResult<ProblemRecord> {
    Ok(ProblemRecord {
        id: r.0,
        specimen_id: r.1,
        accession: r.2,
        reason: r.3,
        comment: r.4,
        opened_at: ts(r.5)?,
        opened_by: r.6,
        resolved_at: opt_ts(r.7)?,
        resolved_by: r.8,
        resolution: r.9,
    })
}

pub(crate) async fn problem_log<'e, E: Executor<'e, Database = Db>>(
    e: E,
    open_only: bool,
    limit: i64,
) -> StoreResult<Vec<ProblemRecord>> {
    let sql = if open_only {
        "SELECT p.id, p.specimen_id, s.accession, p.reason, p.comment, p.opened_at, \
         p.opened_by, p.resolved_at, p.resolved_by, p.resolution FROM problem_log p \
         JOIN specimens s ON s.id = p.specimen_id \
         WHERE p.resolved_at IS NULL ORDER BY p.id LIMIT $1"
    } else {
        "SELECT p.id, p.specimen_id, s.accession, p.reason, p.comment, p.opened_at, \
         p.opened_by, p.resolved_at, p.resolved_by, p.resolution FROM problem_log p \
         JOIN specimens s ON s.id = p.specimen_id ORDER BY p.id LIMIT $1"
    };
    sqlx::query_as::<_, ProblemRow>(sql)
        .bind(limit)
        .fetch_all(e)
        .await?
        .into_iter()
        .map(problem)
        .collect()
}

pub(crate) async fn insert_recollect_task<'e, E: Executor<'e, Database = Db>>(
    e: E,
    t: &RecollectTaskRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO recollect_tasks (order_id, location_id, specimen_id, reason, \
         created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(t.order_id)
    .bind(t.location_id)
    .bind(t.specimen_id)
    .bind(&t.reason)
    .bind(us(t.created_at))
    .fetch_one(e)
    .await?;
    Ok(id)
}

type TaskRow = (
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn task(r: TaskRow) -> StoreResult<RecollectTaskRecord> {
    Ok(RecollectTaskRecord {
        id: r.0,
        order_id: r.1,
        location_id: r.2,
        specimen_id: r.3,
        accession: r.4,
        reason: r.5,
        created_at: ts(r.6)?,
        done_at: opt_ts(r.7)?,
        done_by: r.8,
        replacement_accession: r.9,
    })
}

pub(crate) async fn recollect_tasks<'e, E: Executor<'e, Database = Db>>(
    e: E,
    open_only: bool,
    limit: i64,
) -> StoreResult<Vec<RecollectTaskRecord>> {
    let sql = if open_only {
        "SELECT t.id, t.order_id, t.location_id, t.specimen_id, s.accession, t.reason, \
         t.created_at, t.done_at, t.done_by, t.replacement_accession FROM recollect_tasks t \
         JOIN specimens s ON s.id = t.specimen_id \
         WHERE t.done_at IS NULL ORDER BY t.id LIMIT $1"
    } else {
        "SELECT t.id, t.order_id, t.location_id, t.specimen_id, s.accession, t.reason, \
         t.created_at, t.done_at, t.done_by, t.replacement_accession FROM recollect_tasks t \
         JOIN specimens s ON s.id = t.specimen_id ORDER BY t.id LIMIT $1"
    };
    sqlx::query_as::<_, TaskRow>(sql)
        .bind(limit)
        .fetch_all(e)
        .await?
        .into_iter()
        .map(task)
        .collect()
}

pub(crate) async fn specimen_children<'e, E: Executor<'e, Database = Db>>(
    e: E,
    parent_id: i64,
) -> StoreResult<Vec<SpecimenRecord>> {
    sqlx::query_as::<_, SpecimenRow>(concat!(
        "SELECT ",
        specimen_cols!(),
        " FROM specimens WHERE parent_id = $1 ORDER BY id"
    ))
    .bind(parent_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(specimen)
    .collect()
}

pub(crate) async fn specimen_parent<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_id: i64,
) -> StoreResult<Option<SpecimenRecord>> {
    sqlx::query_as::<_, SpecimenRow>(concat!(
        "SELECT ",
        specimen_cols!(),
        " FROM specimens \
         WHERE id = (SELECT parent_id FROM specimens WHERE id = $1)"
    ))
    .bind(specimen_id)
    .fetch_optional(e)
    .await?
    .map(specimen)
    .transpose()
}

pub(crate) async fn insert_aliquot<'e, E: Executor<'e, Database = Db>>(
    e: E,
    s: &SpecimenRecord,
    parent_id: i64,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO specimens (accession, order_id, patient_id, container, \
         specimen_type, draw_rank, status, volume_ul, capacity_ul, created_at, \
         collected_at, temperature, parent_id, demand_ul, received_container) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
    )
    .bind(&s.accession)
    .bind(s.order_id)
    .bind(s.patient_id)
    .bind(&s.container)
    .bind(&s.specimen_type)
    .bind(s.draw_rank)
    .bind(&s.status)
    .bind(s.volume_ul)
    .bind(s.capacity_ul)
    .bind(us(s.created_at))
    .bind(s.collected_at.map(us))
    .bind(&s.temperature)
    .bind(parent_id)
    .bind(s.demand_ul)
    .bind(&s.received_container)
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Takes volume from a specimen only while its status is unchanged and enough is
/// left: the guarded change of an aliquot.
pub(crate) async fn take_volume<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    status: &str,
    volume_ul: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE specimens SET volume_ul = volume_ul - $1 \
         WHERE id = $2 AND status = $3 AND volume_ul >= $1",
    )
    .bind(volume_ul)
    .bind(id)
    .bind(status)
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn move_tests<'e, E: Executor<'e, Database = Db>>(
    e: E,
    from: i64,
    to: i64,
    codes: &[String],
) -> StoreResult<u64> {
    if codes.is_empty() {
        return Ok(0);
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new("UPDATE order_tests SET specimen_id = ");
    qb.push_bind(to);
    qb.push(" WHERE specimen_id = ");
    qb.push_bind(from);
    qb.push(" AND test_code IN (");
    let mut sep = qb.separated(", ");
    for c in codes {
        sep.push_bind(c.clone());
    }
    qb.push(")");
    Ok(qb.build().execute(e).await?.rows_affected())
}

type CentrifugationRow = (
    i64,
    i64,
    String,
    i64,
    i64,
    String,
    i64,
    Option<i64>,
    String,
    i64,
);

pub(crate) async fn insert_centrifugation<'e, E: Executor<'e, Database = Db>>(
    e: E,
    c: &CentrifugationRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO centrifugations (specimen_id, centrifuge_id, rcf_g, minutes, \
         temperature_c, started_at, operator_id, operator_name, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(c.specimen_id)
    .bind(&c.centrifuge_id)
    .bind(c.rcf_g)
    .bind(c.minutes)
    .bind(&c.temperature_c)
    .bind(us(c.started_at))
    .bind(c.operator_id)
    .bind(&c.operator_name)
    .bind(us(c.recorded_at))
    .fetch_one(e)
    .await?;
    Ok(id)
}

fn centrifugation(r: CentrifugationRow) -> StoreResult<CentrifugationRecord> {
    Ok(CentrifugationRecord {
        id: r.0,
        specimen_id: r.1,
        centrifuge_id: r.2,
        rcf_g: r.3,
        minutes: r.4,
        temperature_c: r.5,
        started_at: ts(r.6)?,
        operator_id: r.7,
        operator_name: r.8,
        recorded_at: ts(r.9)?,
    })
}

pub(crate) async fn centrifugations<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_id: i64,
) -> StoreResult<Vec<CentrifugationRecord>> {
    sqlx::query_as::<_, CentrifugationRow>(
        "SELECT id, specimen_id, centrifuge_id, rcf_g, minutes, temperature_c, \
         started_at, operator_id, operator_name, recorded_at FROM centrifugations \
         WHERE specimen_id = $1 ORDER BY id",
    )
    .bind(specimen_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(centrifugation)
    .collect()
}

/// [`centrifugations`] of many specimens, by specimen then id.
pub(crate) async fn centrifugations_of<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_ids: &[i64],
) -> StoreResult<Vec<CentrifugationRecord>> {
    if specimen_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "SELECT id, specimen_id, centrifuge_id, rcf_g, minutes, temperature_c, \
         started_at, operator_id, operator_name, recorded_at FROM centrifugations \
         WHERE specimen_id IN (",
    );
    let mut list = qb.separated(", ");
    for id in specimen_ids {
        list.push_bind(*id);
    }
    qb.push(") ORDER BY specimen_id, id");
    qb.build_query_as::<CentrifugationRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(centrifugation)
        .collect()
}

pub(crate) async fn insert_dilution<'e, E: Executor<'e, Database = Db>>(
    e: E,
    d: &DilutionRecord,
) -> StoreResult<i64> {
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO dilutions (specimen_id, factor, test_code, diluent, recorded_at, \
         actor_id, actor_name) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(d.specimen_id)
    .bind(&d.factor)
    .bind(&d.test_code)
    .bind(&d.diluent)
    .bind(us(d.recorded_at))
    .bind(d.actor_id)
    .bind(&d.actor_name)
    .fetch_one(e)
    .await?;
    Ok(id)
}

type DilutionRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    String,
);

fn dilution(r: DilutionRow) -> StoreResult<DilutionRecord> {
    Ok(DilutionRecord {
        id: r.0,
        specimen_id: r.1,
        factor: r.2,
        test_code: r.3,
        diluent: r.4,
        recorded_at: ts(r.5)?,
        actor_id: r.6,
        actor_name: r.7,
    })
}

pub(crate) async fn dilutions<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_id: i64,
) -> StoreResult<Vec<DilutionRecord>> {
    sqlx::query_as::<_, DilutionRow>(
        "SELECT id, specimen_id, factor, test_code, diluent, recorded_at, actor_id, \
         actor_name FROM dilutions WHERE specimen_id = $1 ORDER BY id",
    )
    .bind(specimen_id)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(dilution)
    .collect()
}

type SortingRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    i64,
    Option<String>,
);

/// One query: the `limit` most urgent specimens (priority, receipt time, accession)
/// in status `a` or `b`, joined with their tests.
pub(crate) async fn sorting_list<'e, E: Executor<'e, Database = Db>>(
    e: E,
    a: &str,
    b: &str,
    limit: i64,
) -> StoreResult<Vec<SortingRecord>> {
    let rows = sqlx::query_as::<_, SortingRow>(
        "SELECT s.id, s.accession, s.status, s.container, s.specimen_type, s.volume_ul, \
         s.patient_id, s.priority, s.received_at, t.test_code FROM ( \
           SELECT s.id, s.accession, s.status, s.container, s.specimen_type, \
           s.volume_ul, s.patient_id, o.priority, \
           COALESCE((SELECT MIN(e.at) FROM specimen_events e \
                     WHERE e.specimen_id = s.id AND e.kind = 'receive'), \
                    s.created_at) AS received_at, \
           CASE o.priority WHEN 'stat' THEN 0 WHEN 'asap' THEN 1 \
                           WHEN 'timed' THEN 2 ELSE 3 END AS urgency \
           FROM specimens s JOIN orders o ON o.id = s.order_id \
           WHERE s.status = $1 OR s.status = $2 \
           ORDER BY urgency, received_at, s.accession LIMIT $3 \
         ) s LEFT JOIN order_tests t ON t.specimen_id = s.id \
           AND t.status <> 'cancelled' \
         ORDER BY s.urgency, s.received_at, s.accession, t.id",
    )
    .bind(a)
    .bind(b)
    .bind(limit)
    .fetch_all(e)
    .await?;
    let mut out: Vec<SortingRecord> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|l| l.specimen_id != r.0) {
            out.push(SortingRecord {
                specimen_id: r.0,
                accession: r.1,
                status: r.2,
                container: r.3,
                specimen_type: r.4,
                volume_ul: r.5,
                patient_id: r.6,
                priority: r.7,
                received_at: ts(r.8)?,
                tests: Vec::new(),
            });
        }
        if let (Some(last), Some(code)) = (out.last_mut(), r.9) {
            last.tests.push(code);
        }
    }
    Ok(out)
}

/// The tubes with these accession numbers (those that exist).
pub(crate) async fn specimens_by_accessions<'e, E: Executor<'e, Database = Db>>(
    e: E,
    accessions: &[String],
) -> StoreResult<Vec<SpecimenRecord>> {
    if accessions.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
        "SELECT ",
        specimen_cols!(),
        " FROM specimens WHERE accession IN ("
    ));
    let mut list = qb.separated(", ");
    for a in accessions {
        list.push_bind(a.clone());
    }
    qb.push(")");
    qb.build_query_as::<SpecimenRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(specimen)
        .collect()
}

/// [`dilutions`] of many specimens, by specimen then id.
pub(crate) async fn dilutions_of<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_ids: &[i64],
) -> StoreResult<Vec<DilutionRecord>> {
    if specimen_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "SELECT id, specimen_id, factor, test_code, diluent, recorded_at, actor_id, \
         actor_name FROM dilutions WHERE specimen_id IN (",
    );
    let mut list = qb.separated(", ");
    for id in specimen_ids {
        list.push_bind(*id);
    }
    qb.push(") ORDER BY specimen_id, id");
    qb.build_query_as::<DilutionRow>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(dilution)
        .collect()
}

/// Which of these specimens were poured from another (aliquots).
pub(crate) async fn with_parent<'e, E: Executor<'e, Database = Db>>(
    e: E,
    specimen_ids: &[i64],
) -> StoreResult<Vec<i64>> {
    if specimen_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "SELECT id FROM specimens WHERE parent_id IS NOT NULL AND id IN (",
    );
    let mut list = qb.separated(", ");
    for id in specimen_ids {
        list.push_bind(*id);
    }
    qb.push(")");
    Ok(qb
        .build_query_as::<(i64,)>()
        .fetch_all(e)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
}
