//! Posting results: a batch in one transaction, each item judged on its own (one item's
//! refusal does not lose the others; a refused item writes nothing), the same item posted
//! twice stored once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use aliquot_domain::auth::Permission;
use aliquot_domain::ids::AccessionNumber;
use aliquot_domain::patient::{AdministrativeSex, BirthTime, ClinicalSex};
use aliquot_domain::results::autoverify::{Facts, QcStatus, Suspension, autoverify};
use aliquot_domain::results::convert::convert;
use aliquot_domain::results::delta::{DeltaOutcome, Point, delta_check};
use aliquot_domain::results::interval::{Subject, select_interval};
use aliquot_domain::results::rules::{Flag, Indices, flags, measure};
use aliquot_domain::results::value::{Numeric, ResultValue, display, parse_numeric, parse_value};
use aliquot_domain::specimen::stability::SpecimenHistory;
use aliquot_store::{
    CriticalCallRecord, OrderRecord, OrderTestRecord, PatientRecord, ResultRecord,
    ResultVersionRecord, SpecimenRecord, Tx,
};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde_json::json;

use super::batch::Prefetch;
use super::rules::{ParsedRules, doc_of};
use super::{Body, IndicesInput, IntervalView, ReasonView, result_type};
use crate::catalog::{TestDefinition, definition};
use crate::patients::invalid;
use crate::sendouts::SentOut;
use crate::{Actor, App, AppError, AppResult};

/// At most this many results in one request.
pub const MAX_BATCH: usize = 5000;

/// Minutes a critical result's call may stay undocumented before it is overdue (setting
/// `results.critical_call_minutes`).
pub const DEFAULT_CALL_MINUTES: i64 = 30;

/// The lab-wide settings result entry reads once per batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntrySettings {
    pub(crate) lab_suspended: bool,
    pub(crate) call_minutes: i64,
}

/// One posted result.
#[derive(Debug, Clone, Default)]
pub struct ResultInput {
    pub accession: String,
    /// Local code or LOINC.
    pub test: String,
    pub value: String,
    pub units: Option<String>,
    pub instrument: Option<String>,
    pub flags: Vec<String>,
    pub indices: Option<IndicesInput>,
    pub comment: Option<String>,
    /// A result as received from this reference laboratory (its code): `test` may be the
    /// laboratory's own code, and the test must have been sent out to it.
    pub reference_lab: Option<String>,
}

/// What happened to one posted result.
#[derive(Debug)]
pub struct ResultOutcome {
    pub index: usize,
    /// `released`, `held`, `duplicate` (already stored, nothing changed) or `refused`.
    pub outcome: &'static str,
    pub result_id: Option<i64>,
    pub status: Option<String>,
    pub flags: Vec<String>,
    pub hold_reasons: Vec<ReasonView>,
    pub error: Option<AppError>,
}

/// What a batch reads once: each test's catalogue code, definition and rules, the orders and
/// patients of its tubes, and which calculated tests use which inputs. (Per-statement round
/// trips dominate result posting; see BENCHMARKS.md.)
#[derive(Default)]
pub(crate) struct TestCache {
    codes: HashMap<String, String>,
    tests: HashMap<String, (TestDefinition, ParsedRules)>,
    pub(crate) orders: HashMap<i64, OrderRecord>,
    pub(crate) patients: HashMap<i64, PatientRecord>,
    pub(crate) histories: HashMap<i64, SpecimenHistory>,
    dependents: Option<Arc<Dependents>>,
    /// A batch's tubes, ordered tests and dilutions, read as set queries before the batch is
    /// judged (`batch.rs`). Result posting changes none of them.
    pub(crate) pre: Option<Prefetch>,
}

/// Each test's calculated tests (the tests whose calculation takes it as an input), read from
/// every rule set.
pub(crate) type Dependents = HashMap<String, Vec<String>>;

/// The [`Dependents`] of the rule sets as they were at `fingerprint`
/// (`Store::result_rules_fingerprint`), kept between batches: every rule set read and parsed
/// again only when one has changed.
pub(crate) type DependentsCache = std::sync::Mutex<Option<((i64, i64, i64), Arc<Dependents>)>>;

impl TestCache {
    /// The calculated tests computed from `code`.
    pub(crate) async fn dependents(&mut self, app: &App, code: &str) -> AppResult<Vec<String>> {
        if self.dependents.is_none() {
            self.dependents = Some(app.dependents().await?);
        }
        Ok(self
            .dependents
            .as_ref()
            .and_then(|m| m.get(code).cloned())
            .unwrap_or_default())
    }
}

impl App {
    /// The rule sets' [`Dependents`]: from the cache while the fingerprint read first is
    /// unchanged, else every rule set read and parsed (and cached under that fingerprint, so
    /// a change between the two reads only makes the next call read them again).
    async fn dependents(&self) -> AppResult<Arc<Dependents>> {
        let fingerprint = self.store.result_rules_fingerprint().await?;
        // The slot is only ever replaced whole: a panic elsewhere cannot leave it half-written.
        let cached = self
            .dependents_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((at, map)) = cached
            && at == fingerprint
        {
            return Ok(map);
        }
        let mut map = Dependents::new();
        for r in self.store.all_result_rules().await? {
            if let Some(calc) = doc_of(&r)?.calculation {
                for input in calc.inputs.values() {
                    map.entry(input.clone())
                        .or_default()
                        .push(r.test_code.clone());
                }
            }
        }
        let map = Arc::new(map);
        *self
            .dependents_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((fingerprint, map.clone()));
        Ok(map)
    }
}

/// What a result is evaluated with, loaded once per item.
pub(crate) struct Context {
    pub order: OrderRecord,
    pub test: OrderTestRecord,
    pub specimen: SpecimenRecord,
    pub patient: PatientRecord,
    pub def: TestDefinition,
    pub rules: ParsedRules,
    pub dilution: Option<Decimal>,
    pub lab_suspended: bool,
    /// The send-out of a test performed by a reference laboratory.
    pub sent_out: Option<SentOut>,
    /// The tube's temperature history and separation time.
    pub history: SpecimenHistory,
}

impl Context {
    /// When the specimen was collected (its record's time when the draw time is unknown):
    /// the time intervals, deltas and stability are judged at.
    pub(crate) fn collected_at(&self) -> Timestamp {
        self.specimen.collected_or_created()
    }
}

/// The inputs of one evaluation.
pub(crate) struct Reading<'a> {
    pub value: &'a str,
    pub units: Option<&'a str>,
    pub instrument: Option<&'a str>,
    pub instrument_flags: &'a [String],
    pub indices: IndicesInput,
    pub comment: Option<&'a str>,
}

/// An evaluated result: its body and whether the rules release it.
pub(crate) struct Evaluated {
    pub body: Body,
    pub released: bool,
    pub critical: bool,
    /// Stored with this status instead of `released`/`held` (a recalculated `corrected`).
    pub status: Option<&'static str>,
}

pub(crate) fn refused(index: usize, e: AppError) -> ResultOutcome {
    ResultOutcome {
        index,
        outcome: "refused",
        result_id: None,
        status: None,
        flags: Vec::new(),
        hold_reasons: Vec::new(),
        error: Some(e),
    }
}

fn conflict(field: &str, code: &'static str, message: impl Into<String>) -> AppError {
    AppError::Conflict {
        field: Some(field.to_owned()),
        code,
        message: message.into(),
    }
}

/// A comment is at most 1,000 characters.
pub(crate) fn check_comment(item: &ResultInput) -> AppResult<()> {
    if item
        .comment
        .as_deref()
        .is_some_and(|c| c.chars().count() > 1000)
    {
        return Err(AppError::invalid(
            "comment",
            "comment_too_long",
            "at most 1000 characters",
        ));
    }
    Ok(())
}

/// A posted item as a reading.
pub(crate) fn reading_of(item: &ResultInput) -> Reading<'_> {
    Reading {
        value: &item.value,
        units: item.units.as_deref(),
        instrument: item.instrument.as_deref(),
        instrument_flags: &item.flags,
        indices: item.indices.unwrap_or_default(),
        comment: item.comment.as_deref(),
    }
}

/// A stored result's number for checks across results (delta, consistency, calculations):
/// `None` for a coded or text result and for a censored value (`<0.5` is no number to
/// subtract from or compute with).
pub(crate) fn numeric_of(body: &Body) -> Option<Decimal> {
    if body.kind != "numeric" {
        return None;
    }
    parse_numeric(&body.value)
        .ok()
        .filter(|n| n.comparator.is_none())
        .map(|n| n.value)
}

/// What a typed value would be judged as, before it is posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultPreview {
    /// As it would be reported (dilution applied, censored at the reportable range).
    pub value: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
    pub critical: bool,
    /// Why it would be held; empty when the rules would release it.
    pub hold_reasons: Vec<ReasonView>,
}

impl App {
    /// Judges a value as [`App::post_results`] would — the same context and evaluation —
    /// and stores nothing: the transaction it reads in is never committed (`result.enter`).
    /// The bench shows the flags while the value is typed.
    pub async fn preview_result(
        &self,
        actor: &Actor,
        item: &ResultInput,
    ) -> AppResult<ResultPreview> {
        actor.require(Permission::ResultEnter)?;
        let settings = self.entry_settings().await?;
        let mut tx = self.store.begin().await?;
        let mut cache = TestCache::default();
        let ctx = self
            .result_context(
                &mut tx,
                &mut cache,
                &item.accession,
                &item.test,
                settings.lab_suspended,
                true,
            )
            .await?;
        let reading = Reading {
            value: &item.value,
            units: item.units.as_deref(),
            instrument: item.instrument.as_deref(),
            instrument_flags: &item.flags,
            indices: item.indices.unwrap_or_default(),
            comment: item.comment.as_deref(),
        };
        let ev = self
            .evaluate(&mut tx, &ctx, &reading, actor, self.now())
            .await?;
        // Dropped without a commit: rolled back, nothing written.
        drop(tx);
        Ok(ResultPreview {
            value: ev.body.value,
            units: ev.body.units,
            flags: ev.body.flags,
            critical: ev.critical,
            hold_reasons: ev.body.hold_reasons,
        })
    }

    /// Posts a batch of results (`result.enter`). Each item is answered on its own.
    pub async fn post_results(
        &self,
        actor: &Actor,
        items: Vec<ResultInput>,
    ) -> AppResult<Vec<ResultOutcome>> {
        actor.require(Permission::ResultEnter)?;
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(AppError::invalid(
                "results",
                "batch_size",
                format!("1 to {MAX_BATCH} results per request"),
            ));
        }
        // A request holding an idempotency claim commits on its own task (`group.rs`).
        if aliquot_store::claim::held() {
            return self.post_results_alone(actor, &items).await;
        }
        self.post_results_queued(actor, items).await
    }

    /// Posts one request's batch in a transaction of its own.
    pub(super) async fn post_results_alone(
        &self,
        actor: &Actor,
        items: &[ResultInput],
    ) -> AppResult<Vec<ResultOutcome>> {
        let settings = self.entry_settings().await?;
        let mut tx = self.store.begin().await?;
        let out = self
            .post_results_in(&mut tx, actor, items, settings)
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The lab-wide settings result entry reads, read before its transaction begins.
    pub(crate) async fn entry_settings(&self) -> AppResult<EntrySettings> {
        Ok(EntrySettings {
            lab_suspended: self
                .flag_setting("results.autoverification_suspended")
                .await?,
            call_minutes: self.call_minutes().await?,
        })
    }

    /// An item's context, refusing what it cannot be posted for: its tube and test (a result
    /// as received from a reference laboratory may name the test in the laboratory's codes,
    /// and must be for a test sent out to it), its comment's length.
    pub(crate) async fn item_context(
        &self,
        tx: &mut Box<dyn Tx>,
        cache: &mut TestCache,
        item: &ResultInput,
        lab_suspended: bool,
    ) -> AppResult<Context> {
        let (test, from_lab) = match item.reference_lab.as_deref().map(str::trim) {
            Some(l) if !l.is_empty() => {
                let (lab, code) = self.reference_test_code(tx, l, &item.test).await?;
                (code, Some(lab))
            }
            _ => (item.test.clone(), None),
        };
        let ctx = self
            .result_context(tx, cache, &item.accession, &test, lab_suspended, true)
            .await?;
        if let Some(lab) = &from_lab
            && ctx.sent_out.as_ref().is_none_or(|s| s.lab.code != lab.code)
        {
            return Err(conflict(
                "reference_lab",
                "not_sent_to_reference_lab",
                format!("{} was not sent out to {}", ctx.test.test_code, lab.code),
            ));
        }
        check_comment(item)?;
        Ok(ctx)
    }

    /// Posts one item, reading what it is judged with one statement at a time (the path of
    /// the items `batch.rs` defers).
    pub(crate) async fn post_one(
        &self,
        tx: &mut Box<dyn Tx>,
        cache: &mut TestCache,
        actor: &Actor,
        item: &ResultInput,
        settings: EntrySettings,
    ) -> AppResult<ResultOutcome> {
        let call_minutes = settings.call_minutes;
        let ctx = self
            .item_context(tx, cache, item, settings.lab_suspended)
            .await?;
        let reading = reading_of(item);
        let existing = tx.result_by_order_test(ctx.test.id).await?;
        let now = self.now();
        let evaluated = self.evaluate(tx, &ctx, &reading, actor, now).await?;
        if let Some(old) = &existing {
            let old_body = Body::parse(&old.body)?;
            let same = old_body.value == evaluated.body.value
                && old_body.units == evaluated.body.units
                && old_body.instrument_flags == evaluated.body.instrument_flags
                && old_body.indices == evaluated.body.indices;
            if same {
                return Ok(ResultOutcome {
                    index: 0,
                    outcome: "duplicate",
                    result_id: Some(old.id),
                    status: Some(old.status.clone()),
                    flags: old_body.flags,
                    hold_reasons: old_body.hold_reasons,
                    error: None,
                });
            }
            if old.status != "held" {
                return Err(conflict(
                    "value",
                    "result_released",
                    format!(
                        "{} already has a released result: change it with a correction and a reason \
                         (POST /api/v1/results/{}/correct)",
                        ctx.test.test_code, old.id
                    ),
                ));
            }
        }
        let status = evaluated.status.unwrap_or(if evaluated.released {
            "released"
        } else {
            "held"
        });
        let flags = evaluated.body.flags.clone();
        let hold_reasons = evaluated.body.hold_reasons.clone();
        // Everything above only read. From here on the item has written: a failure now must
        // not be answered as one refused item while its rows stay in the batch's transaction,
        // so it aborts the whole batch (nothing is committed).
        let id = self
            .store_evaluated(
                tx,
                actor,
                &ctx,
                existing.as_ref(),
                evaluated,
                call_minutes,
                now,
                None,
            )
            .await
            .map_err(after_writing)?;
        if status == "released" {
            self.recalculate(tx, cache, actor, &ctx, call_minutes, now)
                .await
                .map_err(after_writing)?;
        }
        Ok(ResultOutcome {
            index: 0,
            outcome: if status == "released" {
                "released"
            } else {
                "held"
            },
            result_id: Some(id),
            status: Some(status.to_owned()),
            flags,
            hold_reasons,
            error: None,
        })
    }

    /// Loads what a result for `test` on the tube `accession` is judged with, refusing a tube
    /// or test it cannot be for.
    pub(crate) async fn result_context(
        &self,
        tx: &mut Box<dyn Tx>,
        cache: &mut TestCache,
        accession: &str,
        test: &str,
        lab_suspended: bool,
        entry: bool,
    ) -> AppResult<Context> {
        let acc = AccessionNumber::parse(accession.trim())
            .map_err(|e| invalid(&e, "", "accession").with_field("accession"))?;
        let found = match &cache.pre {
            Some(pre) => pre.specimens.get(acc.as_str()).cloned(),
            None => tx.specimen_by_accession(acc.as_str()).await?,
        };
        let specimen = found.ok_or_else(|| {
            AppError::invalid(
                "accession",
                "unknown_specimen",
                "no tube has this accession number",
            )
        })?;
        match specimen.status.as_str() {
            // A correction is about a result already reported, whatever became of the tube.
            _ if !entry => {}
            "received" | "in_process" | "processed" | "stored" | "sent_out" => {}
            "planned" | "collected" | "in_transit" => {
                return Err(conflict(
                    "accession",
                    "specimen_not_received",
                    "the tube has not been received in the laboratory",
                ));
            }
            "rejected" => {
                return Err(conflict(
                    "accession",
                    "specimen_rejected",
                    "the tube was rejected: no result may be reported from it",
                ));
            }
            other => {
                return Err(conflict(
                    "accession",
                    "specimen_not_available",
                    format!("the tube is {other}"),
                ));
            }
        }
        let order = match cache.orders.get(&specimen.order_id) {
            Some(o) => o.clone(),
            None => {
                let o = tx
                    .order_by_id(specimen.order_id)
                    .await?
                    .ok_or_else(|| AppError::Internal("specimen without order".into()))?;
                cache.orders.insert(o.id, o.clone());
                o
            }
        };
        if entry && order.status == "cancelled" {
            return Err(conflict(
                "accession",
                "order_cancelled",
                "the order was cancelled",
            ));
        }
        let code = match cache.codes.get(test) {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .test_code_of(test)
                    .await
                    .map_err(|e| e.with_field("test"))?;
                cache.codes.insert(test.to_owned(), c.clone());
                c
            }
        };
        let tests = match cache.pre.as_ref().and_then(|p| p.tests.get(&order.id)) {
            Some(t) => t.clone(),
            None => tx.tests_of_order(order.id).await?,
        };
        let test_row = tests
            .into_iter()
            .find(|t| t.test_code == code)
            .ok_or_else(|| {
                AppError::invalid(
                    "test",
                    "test_not_ordered",
                    format!("{code} was not ordered on this requisition"),
                )
            })?;
        if entry && test_row.status == "cancelled" {
            return Err(conflict(
                "test",
                "test_cancelled",
                format!("{code} was cancelled"),
            ));
        }
        if entry && test_row.status == "not_performed" {
            return Err(conflict(
                "test",
                "test_not_performed",
                format!("{code} was marked not performed"),
            ));
        }
        // The test's tube, or a tube poured from it or it from: the same specimen.
        if test_row.specimen_id != specimen.id {
            let parent = tx.specimen_parent(specimen.id).await?;
            let test_parent = tx.specimen_parent(test_row.specimen_id).await?;
            let related = parent
                .as_ref()
                .is_some_and(|p| p.id == test_row.specimen_id)
                || test_parent.as_ref().is_some_and(|p| p.id == specimen.id);
            if !related {
                return Err(AppError::invalid(
                    "accession",
                    "wrong_specimen",
                    format!("{code} is run on another tube of this order"),
                ));
            }
        }
        let patient = match cache.patients.get(&order.patient_id) {
            Some(p) => p.clone(),
            None => {
                let p = tx
                    .patient_by_id(order.patient_id)
                    .await?
                    .ok_or_else(|| AppError::Internal("order without patient".into()))?;
                cache.patients.insert(p.id, p.clone());
                p
            }
        };
        if !cache.tests.contains_key(&code) {
            let catalog = tx
                .catalog_by_code(&code)
                .await?
                .ok_or_else(|| AppError::Internal("ordered test missing from catalogue".into()))?;
            let def = definition(&catalog)?;
            let rules = match tx.result_rules(&code).await? {
                Some(r) => doc_of(&r)?.parse(r.version)?,
                None => ParsedRules::default(),
            };
            cache.tests.insert(code.clone(), (def, rules));
        }
        let (def, rules) = cache
            .tests
            .get(&code)
            .cloned()
            .ok_or_else(|| AppError::Internal("test cache".into()))?;
        // A test performed by a reference laboratory: no result before its shipment left.
        let sent_out = self
            .sent_out_of(
                tx,
                specimen.id,
                test_row.specimen_id,
                &code,
                cache.pre.as_ref().map(|p| &p.send_outs),
            )
            .await?;
        if entry && let Some(s) = &sent_out {
            Self::check_results_accepted(s)?;
        }
        let dilutions = match cache.pre.as_ref() {
            Some(pre) => pre.dilutions.get(&specimen.id).cloned().unwrap_or_default(),
            None => self.store.dilutions(specimen.id).await?,
        };
        let dilution = dilutions
            .into_iter()
            .filter(|d| d.test_code.as_deref().is_none_or(|t| t == code))
            .max_by_key(|d| d.id)
            .and_then(|d| Decimal::from_str(&d.factor).ok());
        let history = match cache.histories.get(&specimen.id) {
            Some(h) => h.clone(),
            None => {
                let h = self.specimen_history(&specimen).await?;
                cache.histories.insert(specimen.id, h.clone());
                h
            }
        };
        Ok(Context {
            history,
            order,
            test: test_row,
            specimen,
            patient,
            def,
            rules,
            dilution,
            lab_suspended,
            sent_out,
        })
    }

    /// Evaluates a reading against the context: value, units, dilution, reportable range,
    /// interval in force at collection, flags, delta, stability at analysis, the checks.
    pub(crate) async fn evaluate(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &Context,
        reading: &Reading<'_>,
        actor: &Actor,
        now: Timestamp,
    ) -> AppResult<Evaluated> {
        let time_zone = self.lab_timezone().await?;
        let collected_at = ctx.collected_at();
        let previous = if wants_previous(ctx, reading)? {
            tx.previous_released(ctx.patient.id, &ctx.test.test_code, collected_at)
                .await?
                .as_ref()
                .and_then(point_of)
        } else {
            None
        };
        let siblings = tx.results_of_order(ctx.order.id).await?;
        let related = related_of(siblings.iter(), ctx.test.id);
        let (qc, calibration_overdue) = match reading.instrument.map(str::trim) {
            Some(code) if !code.is_empty() => {
                self.qc_facts(&mut **tx, code, &ctx.test.test_code, now)
                    .await?
            }
            _ => (QcStatus::NotEvaluated, false),
        };
        judge(
            ctx,
            reading,
            actor,
            now,
            Looked {
                time_zone,
                previous,
                related,
                qc,
                calibration_overdue,
            },
        )
    }
}

/// What judging a result reads besides its context (read one result at a time by
/// [`App::evaluate`], for a whole batch at once by `batch.rs`).
pub(crate) struct Looked {
    /// The lab's time zone: ages are computed on its calendar.
    pub time_zone: jiff::tz::TimeZone,
    /// The patient's previous released result of the test, as a number (delta check).
    pub previous: Option<Point>,
    /// The numbers of the order's other results (consistency checks).
    pub related: Vec<(String, Decimal)>,
    pub qc: QcStatus,
    pub calibration_overdue: bool,
}

/// Whether the delta check may need the previous result: a numeric test's uncensored number.
pub(crate) fn wants_previous(ctx: &Context, reading: &Reading<'_>) -> AppResult<bool> {
    Ok(matches!(
        parse_value(&result_type(&ctx.def)?, reading.value),
        Ok(ResultValue::Numeric(n)) if n.comparator.is_none()
    ))
}

/// A released result as the delta check's previous point.
pub(crate) fn point_of(r: &ResultRecord) -> Option<Point> {
    point_from(&Body::parse(&r.body).ok()?, r.collected_at)
}

/// A result's point for delta checks from its body (what [`point_of`] reads from the text).
pub(crate) fn point_from(body: &Body, collected_at: Option<Timestamp>) -> Option<Point> {
    Some(Point {
        value: numeric_of(body)?,
        collected_at: collected_at?,
    })
}

/// The numbers of an order's results other than the ordered test `except`'s.
pub(crate) fn related_of<'a>(
    results: impl Iterator<Item = &'a ResultRecord>,
    except: i64,
) -> Vec<(String, Decimal)> {
    results
        .filter(|s| s.order_test_id != except)
        .filter_map(|s| {
            Some((
                s.test_code.clone(),
                numeric_of(&Body::parse(&s.body).ok()?)?,
            ))
        })
        .collect()
}

/// Judges a reading against its context and what was looked up: value, units, dilution,
/// reportable range, interval in force at collection, flags, delta, stability at analysis,
/// the autoverification checks. Reads nothing.
pub(crate) fn judge(
    ctx: &Context,
    reading: &Reading<'_>,
    actor: &Actor,
    now: Timestamp,
    looked: Looked,
) -> AppResult<Evaluated> {
    let rtype = result_type(&ctx.def)?;
    let parsed = parse_value(&rtype, reading.value).map_err(|e| invalid(&e, "", "value"))?;
    let test_units = ctx.def.units.clone();
    let rules = &ctx.rules.rules;
    let (value, reading_text, dilution, not_validated, outside) = match &parsed {
        ResultValue::Numeric(n) => {
            let n = match (reading.units.map(str::trim), test_units.as_deref()) {
                // Converted, then rounded to the test's reported decimals (the reading
                // and its units are kept beside it).
                (Some(u), Some(t)) if u != t => Numeric {
                    comparator: n.comparator,
                    value: Decimal::from_str(&display(
                        convert(ctx.rules.analyte, n.value, u, t)
                            .map_err(|e| invalid(&e, "", "units"))?,
                        u32::from(ctx.def.precision.unwrap_or(0)),
                    ))
                    .map_err(|e| AppError::Internal(e.to_string()))?,
                },
                (Some(_), None) => {
                    return Err(AppError::invalid(
                        "units",
                        "unit_not_convertible",
                        format!("{} is reported without units", ctx.def.code),
                    ));
                }
                _ => n.clone(),
            };
            let m = measure(&n, ctx.dilution, rules);
            let reading_text = (m.reported != n || reading.value.trim() != n.text())
                .then(|| reading.value.trim().to_owned());
            (
                ResultValue::Numeric(m.reported),
                reading_text,
                m.dilution,
                m.dilution_not_validated,
                m.outside,
            )
        }
        other => {
            if reading.units.is_some_and(|u| !u.trim().is_empty()) {
                return Err(AppError::invalid(
                    "units",
                    "unit_not_convertible",
                    format!("{} is a coded or text result without units", ctx.def.code),
                ));
            }
            (other.clone(), None, None, false, None)
        }
    };
    let collected_at = ctx.collected_at();
    // Ages are computed on the lab's calendar (and hours of life from the local birth time).
    let time_zone = looked.time_zone;
    let interval = interval_in_force(&ctx.rules, &ctx.patient, &ctx.specimen, &time_zone)?;
    let fl = flags(&value, interval.as_ref(), rules);
    let previous = match value.numeric() {
        Some(n) if n.comparator.is_none() => looked.previous,
        _ => None,
    };
    let delta = match value.numeric() {
        Some(n) if n.comparator.is_none() => delta_check(
            rules.delta.as_ref(),
            previous,
            Point {
                value: n.value,
                collected_at,
            },
        ),
        _ => DeltaOutcome::NoPrevious,
    };
    // Stability at analysis over the whole temperature history, before and after
    // separation (issue 10 item 2), never the last temperature alone.
    let stability = ctx
        .history
        .judge(collected_at, now, &ctx.def.full_stability_rule());
    let related_values = looked.related;
    let related: Vec<(&str, Decimal)> = related_values
        .iter()
        .map(|(c, v)| (c.as_str(), *v))
        .collect();
    let suspended = if ctx.lab_suspended {
        Suspension::LabWide
    } else if ctx.rules.suspended {
        Suspension::Test
    } else {
        Suspension::None
    };
    let (qc, calibration_overdue) = (looked.qc, looked.calibration_overdue);
    let decision = autoverify(
        rules,
        &Facts {
            value: &value,
            flags: &fl,
            outside,
            dilution_not_validated: not_validated,
            instrument_flags: reading.instrument_flags,
            indices: Indices {
                hemolysis: reading.indices.hemolysis,
                icterus: reading.indices.icterus,
                lipemia: reading.indices.lipemia,
            },
            delta,
            stability: &stability,
            related: &related,
            qc,
            calibration_overdue,
            suspended,
        },
    );
    let units = match &value {
        ResultValue::Numeric(_) => test_units,
        _ => None,
    };
    let critical = fl.iter().any(|f| f.is_critical());
    let body = Body {
        value: value.text(),
        kind: value.kind().into(),
        reading: reading_text,
        posted_units: reading.units.map(|u| u.trim().to_owned()),
        units,
        dilution: dilution.map(|d| d.to_string()),
        flags: fl.iter().map(|f| Flag::as_str(*f).to_owned()).collect(),
        interval: interval.map(IntervalView::from),
        hold_reasons: decision
            .reasons()
            .iter()
            .map(|r| ReasonView {
                code: r.code.into(),
                message: r.message.clone(),
            })
            .collect(),
        instrument: reading
            .instrument
            .map(|s| s.trim().chars().take(64).collect()),
        instrument_flags: reading.instrument_flags.to_vec(),
        indices: reading.indices,
        comment: reading
            .comment
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        rules_version: rules.version,
        autoverified: decision.released(),
        calculated: false,
        entered_by: actor.username.clone(),
        verified_by: None,
        performing_lab: ctx.sent_out.as_ref().map(|s| s.lab.clone()),
        signature: None,
        signed_off: None,
    };
    Ok(Evaluated {
        released: decision.released(),
        critical,
        body,
        status: None,
    })
}

impl App {
    /// Writes an evaluated result as a new result or a new version of a held one, with its
    /// version row, the ordered test's status, a critical call when critical, and the audit
    /// entry. Returns the result's id.
    #[expect(clippy::too_many_arguments, reason = "the facts of one stored version")]
    pub(crate) async fn store_evaluated(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        ctx: &Context,
        existing: Option<&ResultRecord>,
        ev: Evaluated,
        call_minutes: i64,
        now: Timestamp,
        reason: Option<&str>,
    ) -> AppResult<i64> {
        let Stored {
            mut record,
            version,
            test_status,
            critical,
            audit_body,
        } = stored(ctx, &ev, actor, existing, now, reason)?;
        let status = record.status.clone();
        let (id, old_value) = match existing {
            None => (tx.insert_result(&record).await?, None),
            Some(old) => {
                record.id = old.id;
                if !tx.update_result(&record, old.version).await? {
                    return Err(conflict(
                        "value",
                        "result_changed",
                        "the result was changed meanwhile: reload it",
                    ));
                }
                (
                    old.id,
                    Some(
                        json!({"version": old.version, "status": old.status, "body": serde_json::from_str::<serde_json::Value>(&old.body).unwrap_or_default()}),
                    ),
                )
            }
        };
        record.id = id;
        tx.insert_result_version(&ResultVersionRecord {
            result_id: id,
            ..version
        })
        .await?;
        tx.set_order_test_status(ctx.test.id, test_status).await?;
        if critical {
            open_call(tx, id, record.version, call_minutes, now).await?;
        }
        // The first result of a sent-out test: its results may all be back.
        if existing.is_none()
            && let Some(sent) = &ctx.sent_out
        {
            self.results_back(tx, actor, ctx.order.id, sent, now)
                .await?;
        }
        if ev.released && (status == "released" || status == "corrected") {
            self.queue_outbound(tx, ctx, &record).await?;
        }
        tx.audit(self.result_audit(
            actor,
            ctx,
            &record,
            audit_body,
            existing.is_some(),
            old_value,
            reason,
        ));
        Ok(id)
    }

    /// The audit entry of a stored result version.
    #[expect(
        clippy::too_many_arguments,
        reason = "the facts of one audited version"
    )]
    pub(crate) fn result_audit(
        &self,
        actor: &Actor,
        ctx: &Context,
        record: &ResultRecord,
        body: serde_json::Value,
        repeat: bool,
        old_value: Option<serde_json::Value>,
        reason: Option<&str>,
    ) -> aliquot_store::AuditEntry {
        self.entry(
            actor,
            match (record.status.as_str(), repeat) {
                ("not_performed", _) => "result.not_performed",
                (_, true) => "result.repeat",
                (_, false) => "result.enter",
            },
            "result",
            record.id,
            old_value,
            Some(json!({
                "order_id": ctx.order.id, "test": ctx.test.test_code, "accession": ctx.specimen.accession,
                "version": record.version, "status": record.status,
                "body": body,
            })),
            reason,
        )
    }

    pub(crate) async fn flag_setting(&self, key: &str) -> AppResult<bool> {
        Ok(self
            .store
            .setting(key)
            .await?
            .is_some_and(|s| s.value.trim() == "true"))
    }

    pub(crate) async fn call_minutes(&self) -> AppResult<i64> {
        Ok(self
            .store
            .setting("results.critical_call_minutes")
            .await?
            .and_then(|s| s.value.trim().parse::<i64>().ok())
            .unwrap_or(DEFAULT_CALL_MINUTES))
    }
}

/// The reference interval in force at the tube's collection for its patient (sex, age on the
/// lab's calendar, specimen type): the one selection used by evaluation and shown beside an
/// entry row before a value is typed.
pub(crate) fn interval_in_force(
    rules: &ParsedRules,
    patient: &PatientRecord,
    specimen: &SpecimenRecord,
    time_zone: &jiff::tz::TimeZone,
) -> AppResult<Option<aliquot_domain::results::interval::ShownInterval>> {
    let collected_at = specimen.collected_or_created();
    let sex =
        AdministrativeSex::parse(&patient.sex).map_err(|e| AppError::Internal(e.to_string()))?;
    let clinical_sex = patient
        .clinical_sex
        .as_deref()
        .map(ClinicalSex::parse)
        .transpose()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let birth_time = patient
        .birth_time
        .as_deref()
        .map(BirthTime::parse)
        .transpose()
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map(BirthTime::time);
    let birth_date = patient
        .birth_date
        .parse()
        .map_err(|_| AppError::Internal("patient birth date".into()))?;
    Ok(select_interval(
        &rules.intervals,
        &Subject {
            sex,
            clinical_sex,
            birth_date,
            birth_time,
            time_zone,
            collected_at,
            specimen_type: &specimen.specimen_type,
            method: None,
        },
    ))
}

/// The rows an evaluated result is stored as: the result (its `id` still to be assigned),
/// its version row (likewise), its ordered test's status, and whether it opens a call.
pub(crate) struct Stored {
    pub record: ResultRecord,
    pub version: ResultVersionRecord,
    pub test_status: &'static str,
    pub critical: bool,
    /// The body as the audit entry records it (built from the body itself rather than by
    /// parsing `record.body` back).
    pub audit_body: serde_json::Value,
}

/// See [`Stored`]: a new result when there is no `existing` one, else its next version.
pub(crate) fn stored(
    ctx: &Context,
    ev: &Evaluated,
    actor: &Actor,
    existing: Option<&ResultRecord>,
    now: Timestamp,
    reason: Option<&str>,
) -> AppResult<Stored> {
    let status = ev
        .status
        .unwrap_or(if ev.released { "released" } else { "held" });
    let body = ev.body.json()?;
    let audit_body = serde_json::to_value(&ev.body)
        .map_err(|e| AppError::Internal(format!("result body: {e}")))?;
    let record = ResultRecord {
        id: existing.map_or(0, |o| o.id),
        order_test_id: ctx.test.id,
        order_id: ctx.order.id,
        patient_id: ctx.patient.id,
        specimen_id: ctx.specimen.id,
        test_code: ctx.test.test_code.clone(),
        status: status.into(),
        version: existing.map_or(1, |o| o.version + 1),
        collected_at: ctx.specimen.collected_at,
        resulted_at: now,
        verified_at: ev.released.then_some(now),
        released_at: ev.released.then_some(now),
        body: body.clone(),
        updated_at: now,
        instrument: ev.body.instrument.clone(),
    };
    let version = ResultVersionRecord {
        result_id: record.id,
        version: record.version,
        status: status.into(),
        body,
        reason: reason
            .map(str::to_owned)
            .or_else(|| existing.map(|_| "repeat".to_owned())),
        at: now,
        by_user: actor.username.clone(),
    };
    let test_status = match status {
        "not_performed" => "not_performed",
        _ if ev.released => "released",
        _ => "resulted",
    };
    Ok(Stored {
        record,
        version,
        test_status,
        critical: ev.critical,
        audit_body,
    })
}

/// A critical result's call, opened now and due in `minutes` (its result still to be named).
pub(crate) fn new_call(
    result_id: i64,
    version: i64,
    minutes: i64,
    now: Timestamp,
) -> CriticalCallRecord {
    CriticalCallRecord {
        id: 0,
        result_id,
        result_version: version,
        opened_at: now,
        due_at: now
            .checked_add(SignedDuration::from_mins(minutes))
            .unwrap_or(now),
        called_at: None,
        called_by: None,
        notified_name: None,
        notified_role: None,
        read_back: None,
    }
}

/// Opens a critical result's call, due in `minutes`, unless one is open already.
pub(crate) async fn open_call(
    tx: &mut Box<dyn Tx>,
    result_id: i64,
    version: i64,
    minutes: i64,
    now: Timestamp,
) -> AppResult<()> {
    if tx.open_call_of_result(result_id).await?.is_none() {
        tx.insert_critical_call(&new_call(result_id, version, minutes, now))
            .await?;
    }
    Ok(())
}

/// An error after an item wrote: the batch is aborted.
pub(crate) fn after_writing(e: AppError) -> AppError {
    match e {
        AppError::Internal(m) => AppError::Internal(m),
        other => AppError::Internal(format!("result batch aborted after a write: {other}")),
    }
}

/// The same error with its field under `prefix` (`results[3].value`).
pub(crate) fn prefix_field(e: AppError, prefix: &str) -> AppError {
    match e {
        AppError::Invalid {
            field,
            code,
            message,
        } => AppError::Invalid {
            field: Some(format!("{prefix}.{}", field.unwrap_or_default())),
            code,
            message,
        },
        AppError::Conflict {
            field,
            code,
            message,
        } => AppError::Conflict {
            field: Some(format!("{prefix}.{}", field.unwrap_or_default())),
            code,
            message,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body with nothing but its value and kind.
    fn body(value: &str, kind: &str) -> Body {
        Body {
            value: value.into(),
            kind: kind.into(),
            reading: None,
            posted_units: None,
            units: None,
            dilution: None,
            flags: Vec::new(),
            interval: None,
            hold_reasons: Vec::new(),
            instrument: None,
            instrument_flags: Vec::new(),
            indices: IndicesInput::default(),
            comment: None,
            rules_version: 1,
            autoverified: false,
            calculated: false,
            entered_by: "t".into(),
            verified_by: None,
            performing_lab: None,
            signature: None,
            signed_off: None,
        }
    }

    #[test]
    fn only_uncensored_numbers_are_used_across_results() {
        assert_eq!(
            numeric_of(&body("0.90", "numeric")),
            Some(Decimal::new(90, 2))
        );
        assert_eq!(numeric_of(&body("-3", "numeric")), Some(Decimal::from(-3)));
        assert_eq!(numeric_of(&body("<0.10", "numeric")), None);
        assert_eq!(numeric_of(&body(">10.0", "numeric")), None);
        assert_eq!(numeric_of(&body("Trace", "coded")), None);
    }

    /// The audit entry records the body built from the body itself (`Stored::audit_body`),
    /// and the set path takes a released result's number from it: the same as the stored
    /// text parsed back, every optional part present or not.
    #[test]
    fn the_audited_body_is_the_stored_body() {
        let bare = body("<0.10", "numeric");
        let full = Body {
            reading: Some("0.05".into()),
            posted_units: Some("mg/dL".into()),
            units: Some("mmol/L".into()),
            dilution: Some("1:2".into()),
            flags: vec!["L".into()],
            interval: Some(IntervalView {
                low: Some("3.5".into()),
                high: None,
                text: "≥ 3.5 \"quoted\"".into(),
            }),
            hold_reasons: vec![ReasonView {
                code: "delta".into(),
                message: "changed by 40 %".into(),
            }],
            instrument: Some("AU1".into()),
            instrument_flags: vec!["H".into()],
            indices: IndicesInput {
                hemolysis: Some(3),
                icterus: None,
                lipemia: Some(0),
            },
            comment: Some("line\nbreak".into()),
            verified_by: Some("ana".into()),
            performing_lab: Some(crate::PerformingLab {
                code: "REF".into(),
                name: "Reference".into(),
                address: "1 Main St".into(),
                clia: "05D0000000".into(),
            }),
            ..bare.clone()
        };
        for b in [bare, full] {
            let parsed: serde_json::Value = serde_json::from_str(&b.json().unwrap()).unwrap();
            assert_eq!(serde_json::to_value(&b).unwrap(), parsed);
            // The set path takes a released result's number from the body itself too.
            assert_eq!(Body::parse(&b.json().unwrap()).unwrap(), b);
        }
    }
}
