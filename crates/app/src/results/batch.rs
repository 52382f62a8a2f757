//! A batch of results posted as set operations.
//!
//! Posting one result one statement at a time costs about fifteen statements (the tube, the
//! order and its tests, the patient, dilutions, the existing, previous and sibling results,
//! the insert, its version, the test's status), and each statement costs a thread hand-off in
//! sqlx's SQLite driver (BENCHMARKS.md). Here a batch reads everything it is judged with in a
//! few set queries, judges every item in memory, and writes the new results, their versions,
//! their tests' statuses and their calls in a few multi-row statements.
//!
//! **The answer is the same as posting the items one by one, in order.** Each item is judged
//! against the stored results *and* the results this batch has stored before it (its order's
//! other results for the consistency checks, the patient's previous released result for the
//! delta check). Items whose answer could depend on something the set path does not model
//! are *deferred* and posted one by one, in order, after the batch's new results are written:
//! an item for an ordered test that already has a result (a repeat, a duplicate), a second
//! item for the same ordered test, and every later item of an order or patient that has a
//! deferred item or a released result with calculated tests depending on it (recalculation
//! writes more results). A deferred item never influences an item before it in the batch, and
//! nothing written by the set path after it can influence it (it shares no order and no
//! patient with those items), so moving it to the end changes no decision.

use std::collections::{HashMap, HashSet};

use aliquot_domain::auth::Permission;
use aliquot_domain::ids::AccessionNumber;
use aliquot_domain::results::autoverify::QcStatus;
use aliquot_domain::results::delta::Point;
use aliquot_store::{
    DilutionRecord, NewResultRows, OrderTestRecord, ResultRecord, SendOutRecord,
    SpecimenEventRecord, SpecimenRecord, Tx,
};
use jiff::Timestamp;

use super::entry::{
    Context, EntrySettings, Looked, ResultInput, ResultOutcome, Stored, TestCache, after_writing,
    judge, new_call, point_from, point_of, prefix_field, reading_of, refused, related_of, stored,
    wants_previous,
};
use crate::stability::history_from;
use crate::{Actor, App, AppError, AppResult};

/// What a batch reads once, before it is judged: its tubes by accession, the ordered tests of
/// their orders, their dilutions. Result posting changes none of these.
#[derive(Default)]
pub(crate) struct Prefetch {
    pub(crate) specimens: HashMap<String, SpecimenRecord>,
    pub(crate) tests: HashMap<i64, Vec<OrderTestRecord>>,
    pub(crate) dilutions: HashMap<i64, Vec<DilutionRecord>>,
    /// Every tube's send-outs (an empty list for a tube without any).
    pub(crate) send_outs: HashMap<i64, Vec<SendOutRecord>>,
}

/// An item judged on the set path, waiting to be written.
struct Pending {
    index: usize,
    ctx: Context,
    stored: Stored,
    released: bool,
    flags: Vec<String>,
    hold_reasons: Vec<super::ReasonView>,
}

impl App {
    /// Posts `items` inside `tx` (the caller commits): each item judged and stored or refused
    /// on its own; `Err` only for a failure that must abort the whole transaction. The one
    /// entry path of every edge (REST, the web UI, instrument messages).
    pub(crate) async fn post_results_in(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        items: &[ResultInput],
        settings: EntrySettings,
    ) -> AppResult<Vec<ResultOutcome>> {
        self.post_results_in_parts(tx, actor, items, &[0], settings)
            .await
    }

    /// [`App::post_results_in`] for `items` that are several requests one after another,
    /// `starts` giving where each begins: every answer's `index` and every error's field
    /// (`results[i]…`) count from its own request's start. The answers are those of posting
    /// the requests one after another, as the items of one request are those of posting them
    /// one by one.
    pub(crate) async fn post_results_in_parts(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        items: &[ResultInput],
        starts: &[usize],
        settings: EntrySettings,
    ) -> AppResult<Vec<ResultOutcome>> {
        actor.require(Permission::ResultEnter)?;
        // Item `i`'s index within its own request.
        let local = |i: usize| i - starts[starts.partition_point(|&s| s <= i).max(1) - 1];
        let tm_start = std::time::Instant::now();
        let mut cache = TestCache::default();
        let mut accessions: Vec<String> = items
            .iter()
            .filter_map(|i| AccessionNumber::parse(i.accession.trim()).ok())
            .map(|a| a.as_str().to_owned())
            .collect();
        accessions.sort_unstable();
        accessions.dedup();
        let rows = tx.result_batch_rows(&accessions).await?;
        let tm_rows = std::time::Instant::now();
        let mut pre = Prefetch::default();
        for t in rows.tests {
            pre.tests.entry(t.order_id).or_default().push(t);
        }
        for d in rows.dilutions {
            pre.dilutions.entry(d.specimen_id).or_default().push(d);
        }
        for o in rows.send_outs {
            pre.send_outs.entry(o.specimen_id).or_default().push(o);
        }
        // Each tube's temperature history from its custody events and spins (an aliquot's
        // includes its parent's: read on its own when needed).
        let mut events: HashMap<i64, Vec<SpecimenEventRecord>> = HashMap::new();
        for e in rows.events {
            events.entry(e.specimen_id).or_default().push(e);
        }
        let mut spins: HashMap<i64, Vec<Timestamp>> = HashMap::new();
        for c in rows.centrifugations {
            spins.entry(c.specimen_id).or_default().push(c.started_at);
        }
        let aliquots: HashSet<i64> = rows.aliquots.into_iter().collect();
        for s in rows.specimens {
            pre.send_outs.entry(s.id).or_default();
            if !aliquots.contains(&s.id) {
                let history = history_from(
                    s.collected_at,
                    events.get(&s.id).map_or(&[][..], Vec::as_slice),
                    spins.get(&s.id).map_or(&[][..], Vec::as_slice),
                );
                cache.histories.insert(s.id, history);
            }
            pre.specimens.insert(s.accession.clone(), s);
        }
        cache
            .orders
            .extend(rows.orders.into_iter().map(|o| (o.id, o)));
        cache
            .patients
            .extend(rows.patients.into_iter().map(|p| (p.id, p)));
        let mut by_order: HashMap<i64, Vec<ResultRecord>> = HashMap::new();
        let mut has_result: HashSet<i64> = HashSet::new();
        for r in rows.results {
            has_result.insert(r.order_test_id);
            by_order.entry(r.order_id).or_default().push(r);
        }
        cache.pre = Some(pre);

        let mut out: Vec<Option<ResultOutcome>> = items.iter().map(|_| None).collect();
        let mut deferred: Vec<usize> = Vec::new();
        // Orders and patients from an item on (its index): later items of theirs are deferred.
        let mut tainted_orders: HashMap<i64, usize> = HashMap::new();
        let mut tainted_patients: HashMap<i64, usize> = HashMap::new();
        let mut touched: HashSet<i64> = HashSet::new();

        // Pass 1: each item's context; refusals answered, the rest on the set path or deferred.
        let mut fast: Vec<(usize, Context)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("results[{}]", local(i));
            if let Some(order) = self.order_of_tube(&cache, &item.accession)
                && (tainted_orders.contains_key(&order.0)
                    || tainted_patients.contains_key(&order.1))
            {
                deferred.push(i);
                continue;
            }
            let ctx = match self
                .item_context(tx, &mut cache, item, settings.lab_suspended)
                .await
            {
                Ok(ctx) => ctx,
                Err(AppError::Internal(m)) => return Err(AppError::Internal(m)),
                Err(e) => {
                    out[i] = Some(refused(local(i), prefix_field(e, &prefix)));
                    continue;
                }
            };
            if has_result.contains(&ctx.test.id) || !touched.insert(ctx.test.id) {
                tainted_orders.entry(ctx.order.id).or_insert(i);
                tainted_patients.entry(ctx.patient.id).or_insert(i);
                deferred.push(i);
                continue;
            }
            fast.push((i, ctx));
        }

        let tm_pass1 = std::time::Instant::now();
        // The previous released results the delta checks need, in one query.
        let mut keys = Vec::new();
        let mut key_of: HashMap<usize, usize> = HashMap::new();
        for (i, ctx) in &fast {
            if wants_previous(ctx, &reading_of(&items[*i]))? {
                key_of.insert(*i, keys.len());
                keys.push((
                    ctx.patient.id,
                    ctx.test.test_code.clone(),
                    ctx.collected_at(),
                ));
            }
        }
        let previous = tx.previous_released_many(&keys).await?;
        let tm_prev = std::time::Instant::now();

        // Pass 2: judge in order, against the stored results and this batch's.
        let time_zone = self.lab_timezone().await?;
        let now = self.now();
        let mut qc: HashMap<(String, String), (QcStatus, bool)> = HashMap::new();
        let mut released_here: HashMap<(i64, String), Vec<Point>> = HashMap::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut recalc: Vec<usize> = Vec::new();
        for (i, ctx) in fast {
            let tainted =
                |m: &HashMap<i64, usize>, id: i64| m.get(&id).is_some_and(|&from| from < i);
            if tainted(&tainted_orders, ctx.order.id) || tainted(&tainted_patients, ctx.patient.id)
            {
                deferred.push(i);
                continue;
            }
            let reading = reading_of(&items[i]);
            let collected_at = ctx.collected_at();
            let stored_previous = key_of
                .get(&i)
                .and_then(|k| previous.get(*k))
                .and_then(|r| r.as_ref())
                .and_then(point_of);
            let key = (ctx.patient.id, ctx.test.test_code.clone());
            // The batch's own results are newer (higher ids) than every stored one: on equal
            // collection times they win, as they would one by one.
            let batch_previous = released_here
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|p| p.collected_at < collected_at)
                .fold(None::<Point>, |best, p| match best {
                    Some(b) if b.collected_at > p.collected_at => Some(b),
                    _ => Some(*p),
                });
            let previous = match (stored_previous, batch_previous) {
                (Some(s), Some(b)) if s.collected_at > b.collected_at => Some(s),
                (s, None) => s,
                (_, b) => b,
            };
            let (qc_status, calibration_overdue) = match reading.instrument.map(str::trim) {
                Some(code) if !code.is_empty() => {
                    let k = (code.to_owned(), ctx.test.test_code.clone());
                    match qc.get(&k) {
                        Some(f) => *f,
                        None => {
                            let f = self
                                .qc_facts(&mut **tx, code, &ctx.test.test_code, now)
                                .await?;
                            qc.insert(k, f);
                            f
                        }
                    }
                }
                _ => (QcStatus::NotEvaluated, false),
            };
            let looked = Looked {
                time_zone: time_zone.clone(),
                previous,
                related: related_of(
                    by_order.get(&ctx.order.id).into_iter().flatten(),
                    ctx.test.id,
                ),
                qc: qc_status,
                calibration_overdue,
            };
            let ev = match judge(&ctx, &reading, actor, now, looked) {
                Ok(ev) => ev,
                Err(AppError::Internal(m)) => return Err(AppError::Internal(m)),
                Err(e) => {
                    out[i] = Some(refused(
                        local(i),
                        prefix_field(e, &format!("results[{}]", local(i))),
                    ));
                    continue;
                }
            };
            let s = stored(&ctx, &ev, actor, None, now, None)?;
            let released = s.record.status == "released";
            if released {
                // From the body itself, not read back from its stored text.
                if let Some(p) = point_from(&ev.body, s.record.collected_at) {
                    released_here.entry(key).or_default().push(p);
                }
                if !cache
                    .dependents(self, &ctx.test.test_code)
                    .await?
                    .is_empty()
                {
                    tainted_orders.entry(ctx.order.id).or_insert(i);
                    tainted_patients.entry(ctx.patient.id).or_insert(i);
                    recalc.push(pending.len());
                }
            }
            by_order
                .entry(ctx.order.id)
                .or_default()
                .push(s.record.clone());
            pending.push(Pending {
                index: i,
                flags: ev.body.flags.clone(),
                hold_reasons: ev.body.hold_reasons.clone(),
                released: ev.released,
                ctx,
                stored: s,
            });
        }

        let tm_pass2 = std::time::Instant::now();
        // Pass 3: write the batch's new results (from here on a failure aborts the batch).
        let rows: Vec<NewResultRows> = pending
            .iter()
            .map(|p| NewResultRows {
                result: p.stored.record.clone(),
                version: p.stored.version.clone(),
                test_status: p.stored.test_status.to_owned(),
                critical_call: p
                    .stored
                    .critical
                    .then(|| new_call(0, p.stored.record.version, settings.call_minutes, now)),
            })
            .collect();
        let ids = tx
            .insert_new_results(&rows)
            .await
            .map_err(|e| after_writing(e.into()))?;
        let tm_insert = std::time::Instant::now();
        let destinations = if pending.iter().any(|p| p.released) {
            tx.active_destination_ids().await?
        } else {
            Vec::new()
        };
        let mut outbox = Vec::new();
        for (p, id) in pending.iter_mut().zip(ids) {
            p.stored.record.id = id;
            let record = &p.stored.record;
            if p.released {
                outbox.extend(
                    self.outbox_rows(tx, &p.ctx, record, &destinations)
                        .await
                        .map_err(after_writing)?,
                );
            }
            let body = std::mem::take(&mut p.stored.audit_body);
            tx.audit(self.result_audit(actor, &p.ctx, record, body, false, None, None));
            // The first result of a sent-out test: its results may all be back.
            if let Some(sent) = &p.ctx.sent_out {
                self.results_back(tx, actor, p.ctx.order.id, sent, now)
                    .await
                    .map_err(after_writing)?;
            }
            out[p.index] = Some(ResultOutcome {
                index: local(p.index),
                outcome: if record.status == "released" {
                    "released"
                } else {
                    "held"
                },
                result_id: Some(id),
                status: Some(record.status.clone()),
                flags: std::mem::take(&mut p.flags),
                hold_reasons: std::mem::take(&mut p.hold_reasons),
                error: None,
            });
        }
        // One message per order and destination (issue 12).
        self.queue_outbox_rows(tx, outbox)
            .await
            .map_err(after_writing)?;
        for k in recalc {
            let ctx = &pending[k].ctx;
            self.recalculate(tx, &mut cache, actor, ctx, settings.call_minutes, now)
                .await
                .map_err(after_writing)?;
        }

        let tm_written = std::time::Instant::now();
        tracing::debug!(
            items = items.len(),
            deferred = deferred.len(),
            read_us = (tm_rows - tm_start).as_micros() as u64,
            contexts_us = (tm_pass1 - tm_rows).as_micros() as u64,
            previous_us = (tm_prev - tm_pass1).as_micros() as u64,
            judge_us = (tm_pass2 - tm_prev).as_micros() as u64,
            insert_us = (tm_insert - tm_pass2).as_micros() as u64,
            rest_us = (tm_written - tm_insert).as_micros() as u64,
            "result batch (set path)"
        );
        // Pass 4: the deferred items, one by one in order, against what is now stored.
        deferred.sort_unstable();
        for i in deferred {
            let prefix = format!("results[{}]", local(i));
            match self
                .post_one(tx, &mut cache, actor, &items[i], settings)
                .await
            {
                Ok(o) => {
                    out[i] = Some(ResultOutcome {
                        index: local(i),
                        ..o
                    })
                }
                Err(AppError::Internal(m)) => return Err(AppError::Internal(m)),
                Err(e) => out[i] = Some(refused(local(i), prefix_field(e, &prefix))),
            }
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| AppError::Internal("a result item was not answered".into())))
            .collect()
    }

    /// The order and patient of the tube `accession` names, when the batch read it.
    fn order_of_tube(&self, cache: &TestCache, accession: &str) -> Option<(i64, i64)> {
        let acc = AccessionNumber::parse(accession.trim()).ok()?;
        let spec = cache.pre.as_ref()?.specimens.get(acc.as_str())?;
        let order = cache.orders.get(&spec.order_id)?;
        Some((order.id, order.patient_id))
    }
}
