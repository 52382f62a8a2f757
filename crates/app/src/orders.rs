//! Requisitions: placing an order (positive identification, accession numbers, tube
//! planning), reading, cancelling, and adding a test to an existing order.

use std::collections::BTreeMap;

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::{ContainerCode, ContainerType, DrawRank, Priority, SpecimenType};
use aliquot_domain::ids::{AccessionNumber, AccessionPrefix, Icd10Cm};
use aliquot_domain::order::{
    AddOnPlacement, AddOnTube, discard_tube_before, place_add_on, plan_containers,
};
use aliquot_domain::specimen::stability::SpecimenHistory;
use aliquot_domain::specimen::{Event, SpecimenState, TestStatus, transition};
use aliquot_store::{CatalogTestRecord, OrderRecord, OrderTestRecord, SpecimenRecord, Store, Tx};
use jiff::Timestamp;
use serde_json::json;

use crate::catalog::{TestDefinition, catalog_key, definition};
use crate::patients::{PatientIdentification, invalid};
use crate::results::{ResultView, result_view};
use crate::specimens::{Transition, changed_meanwhile, state_of, transition_conflict};
use crate::{Actor, App, AppError, AppResult, require_reason};

#[derive(Debug, Clone, Default)]
pub struct NewOrderInput {
    pub patient: PatientIdentification,
    pub provider_id: i64,
    pub location_id: i64,
    /// Local test or panel codes, or LOINC codes.
    pub tests: Vec<String>,
    pub priority: String,
    /// Required for `timed` orders (RFC 3339).
    pub timed_at: Option<String>,
    pub clinical_notes: Option<String>,
    pub diagnosis_codes: Vec<String>,
    pub placer_order_number: Option<String>,
    /// The draw uses a winged (butterfly) collection set: with a citrate tube first, a
    /// discard tube is drawn before it (issue 10 item 9).
    pub winged_collection_set: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecimenView {
    pub id: i64,
    pub accession: String,
    pub container: String,
    pub container_name: String,
    pub cap_colour: String,
    pub additive: String,
    pub specimen_type: String,
    pub draw_order: i64,
    pub status: String,
    /// Measured specimen content, µL (0 before receipt).
    pub volume_ul: i64,
    /// The planned demand of the tests on the tube, µL.
    pub demand_ul: i64,
    pub capacity_ul: i64,
    pub collected_at: Option<Timestamp>,
    pub tests: Vec<String>,
    /// A discard tube is drawn just before this tube (the first tube still to draw, a
    /// citrate tube, with a winged set).
    pub discard_tube_before: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTestView {
    pub test_code: String,
    pub panel_code: Option<String>,
    pub accession: String,
    pub status: String,
    /// The test's result (`None` while none was posted).
    pub result: Option<ResultView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub id: i64,
    pub patient_id: i64,
    pub provider_id: i64,
    pub location_id: i64,
    pub priority: String,
    pub timed_at: Option<Timestamp>,
    pub placer_order_number: Option<String>,
    pub clinical_notes: Option<String>,
    pub diagnosis_codes: Vec<String>,
    pub status: String,
    pub created_at: Timestamp,
    pub cancelled_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    pub winged_collection_set: bool,
    /// A discard tube must be drawn first: a winged set is used and the first tube still to
    /// draw is a citrate tube (CLSI GP41).
    pub discard_tube: bool,
    /// In order of draw.
    pub specimens: Vec<SpecimenView>,
    pub tests: Vec<OrderTestView>,
}

/// A tube of the order as add-on placement sees it, with its temperature history.
fn add_on_tube(s: &SpecimenRecord, history: SpecimenHistory) -> AppResult<AddOnTube> {
    let bad = |what: &str| AppError::Internal(format!("specimen {}: {what}", s.id));
    let ul = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    Ok(AddOnTube {
        state: state_of(s)?,
        container: ContainerCode::parse(&s.container).map_err(|_| bad("container"))?,
        specimen_type: SpecimenType::parse(&s.specimen_type).map_err(|_| bad("specimen type"))?,
        capacity_ul: ul(s.capacity_ul),
        demand_ul: ul(s.demand_ul),
        content_ul: ul(s.volume_ul),
        collected_at: s.collected_at,
        history,
    })
}

/// The tube of `o` a discard tube is drawn before, if any (issue 10 item 9, CLSI GP41):
/// the order uses a winged set and the first of its tubes still to draw (`planned`) is a
/// citrate tube ([`discard_tube_before`]).
pub(crate) fn discard_tube_before_of<'a>(
    o: &OrderRecord,
    specimens: impl IntoIterator<Item = &'a SpecimenRecord>,
) -> Option<i64> {
    let planned: Vec<&SpecimenRecord> = specimens
        .into_iter()
        .filter(|s| s.status == "planned")
        .collect();
    let rank = |s: &SpecimenRecord| DrawRank(u8::try_from(s.draw_rank).unwrap_or(u8::MAX));
    if !discard_tube_before(planned.iter().map(|&s| rank(s)), o.winged_collection_set) {
        return None;
    }
    // The first in the draw list's own order.
    planned
        .iter()
        .min_by(|a, b| (a.draw_rank, &a.container, a.id).cmp(&(b.draw_rank, &b.container, b.id)))
        .map(|s| s.id)
}

pub(crate) fn view(
    o: &OrderRecord,
    specimens: &[SpecimenRecord],
    tests: &[OrderTestRecord],
) -> AppResult<OrderView> {
    let containers = ContainerType::defaults();
    let mut specimens: Vec<&SpecimenRecord> = specimens.iter().collect();
    specimens
        .sort_by(|a, b| (a.draw_rank, &a.container, a.id).cmp(&(b.draw_rank, &b.container, b.id)));
    let accession_of: BTreeMap<i64, &str> = specimens
        .iter()
        .map(|s| (s.id, s.accession.as_str()))
        .collect();
    let discard_before = discard_tube_before_of(o, specimens.iter().copied());
    Ok(OrderView {
        id: o.id,
        patient_id: o.patient_id,
        provider_id: o.provider_id,
        location_id: o.location_id,
        priority: o.priority.clone(),
        timed_at: o.timed_at,
        placer_order_number: o.placer_order_number.clone(),
        clinical_notes: o.clinical_notes.clone(),
        diagnosis_codes: serde_json::from_str(&o.diagnosis_codes)
            .map_err(|e| AppError::Internal(format!("diagnosis codes: {e}")))?,
        status: o.status.clone(),
        created_at: o.created_at,
        cancelled_at: o.cancelled_at,
        cancel_reason: o.cancel_reason.clone(),
        winged_collection_set: o.winged_collection_set,
        discard_tube: discard_before.is_some(),
        specimens: specimens
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let c = containers.iter().find(|c| c.code.as_str() == s.container);
                SpecimenView {
                    id: s.id,
                    accession: s.accession.clone(),
                    container: s.container.clone(),
                    container_name: c.map(|c| c.name.clone()).unwrap_or_default(),
                    cap_colour: c.map(|c| c.cap_colour.clone()).unwrap_or_default(),
                    additive: c
                        .map(|c| c.additive.as_str().to_owned())
                        .unwrap_or_default(),
                    specimen_type: s.specimen_type.clone(),
                    draw_order: i as i64 + 1,
                    status: s.status.clone(),
                    volume_ul: s.volume_ul,
                    demand_ul: s.demand_ul,
                    capacity_ul: s.capacity_ul,
                    collected_at: s.collected_at,
                    tests: tests
                        .iter()
                        .filter(|t| t.specimen_id == s.id)
                        .map(|t| t.test_code.clone())
                        .collect(),
                    discard_tube_before: discard_before == Some(s.id),
                }
            })
            .collect(),
        tests: tests
            .iter()
            .map(|t| OrderTestView {
                test_code: t.test_code.clone(),
                panel_code: t.panel_code.clone(),
                accession: accession_of
                    .get(&t.specimen_id)
                    .map(|a| (*a).to_owned())
                    .unwrap_or_default(),
                status: t.status.clone(),
                result: None,
            })
            .collect(),
    })
}

/// Resolves the names on a requisition (local code or LOINC) to orderable tests, expanding
/// panels; a test named twice (alone and in a panel) is ordered once.
async fn resolve_tests(
    store: &dyn Store,
    names: &[String],
    field: &str,
) -> AppResult<Vec<(TestDefinition, Option<String>)>> {
    let mut out: Vec<(TestDefinition, Option<String>)> = Vec::new();
    let active = |r: Option<CatalogTestRecord>, f: &str| -> AppResult<CatalogTestRecord> {
        let r = r.ok_or_else(|| {
            AppError::invalid(f, "unknown_test", "no such test or panel in the catalogue")
        })?;
        if r.retired_at.is_some() {
            return Err(AppError::invalid(
                f,
                "test_retired",
                format!("{} is retired and cannot be ordered", r.code),
            ));
        }
        Ok(r)
    };
    for (i, name) in names.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let r = active(store.catalog_by_code(&catalog_key(name)).await?, &f)?;
        let d = definition(&r)?;
        if d.is_panel() {
            for c in &d.components {
                let m = active(store.catalog_by_code(c).await?, &f)?;
                let md = definition(&m)?;
                if !out.iter().any(|(t, _)| t.code == md.code) {
                    out.push((md, Some(d.code.clone())));
                }
            }
        } else if !out.iter().any(|(t, _)| t.code == d.code) {
            out.push((d, None));
        }
    }
    Ok(out)
}

/// The accession series of the moment: the `lab.accession_prefix` setting (default `A`) and
/// the year in the lab's time zone (`lab.timezone`, default UTC). Read once per transaction.
struct AccessionSeries {
    prefix: AccessionPrefix,
    year: i16,
    counter: String,
}

impl AccessionSeries {
    async fn current(app: &App) -> AppResult<AccessionSeries> {
        let prefix = app
            .store
            .setting("lab.accession_prefix")
            .await?
            .map(|s| s.value)
            .unwrap_or_else(|| "A".into());
        let prefix =
            AccessionPrefix::parse(&prefix).map_err(|e| AppError::Internal(e.to_string()))?;
        let tz = app.lab_timezone().await?;
        let year = app.now().to_zoned(tz).year();
        let counter = format!("accession:{}{:02}", prefix.as_str(), year.rem_euclid(100));
        Ok(AccessionSeries {
            prefix,
            year,
            counter,
        })
    }

    /// The next `n` numbers of the series: one database counter step (row-locked until
    /// commit), so a number is never issued twice, across processes too.
    async fn next(&self, tx: &mut Box<dyn Tx>, n: usize) -> AppResult<Vec<String>> {
        let n = i64::try_from(n).map_err(|_| AppError::Internal("too many specimens".into()))?;
        let last = tx.next_counter_by(&self.counter, n).await?;
        (last - n + 1..=last)
            .map(|seq| {
                let seq = u32::try_from(seq)
                    .map_err(|_| AppError::Internal("accession sequence exhausted".into()))?;
                Ok(AccessionNumber::generate(&self.prefix, self.year, seq)
                    .as_str()
                    .to_owned())
            })
            .collect()
    }
}

/// An order checked against the reference data (parsed fields, resolved tests, tube plan,
/// accession series), ready to be placed inside a write transaction.
pub(crate) struct PreparedOrder {
    priority: Priority,
    timed_at: Option<Timestamp>,
    diagnoses: Vec<String>,
    placer: Option<String>,
    notes: Option<String>,
    tests: Vec<(TestDefinition, Option<String>)>,
    plan: Vec<aliquot_domain::order::PlannedTube>,
    series: AccessionSeries,
}

impl App {
    /// Places an order (`POST /api/v1/orders`): the reference data is checked first, then
    /// [`App::place_order_in`] in one transaction.
    pub async fn place_order(&self, actor: &Actor, input: NewOrderInput) -> AppResult<OrderView> {
        actor.require(Permission::OrderWrite)?;
        let prepared = self.prepare_order(&input).await?;
        let mut tx = self.store.begin().await?;
        let v = self
            .place_order_in(&mut tx, actor, &input, prepared)
            .await?;
        tx.commit().await?;
        Ok(v)
    }

    /// The checks of an order that need no write transaction: its fields, the provider,
    /// location and tests, the tube plan.
    pub(crate) async fn prepare_order(&self, input: &NewOrderInput) -> AppResult<PreparedOrder> {
        let priority = Priority::parse(input.priority.trim())
            .map_err(|e| invalid(&e, "", "priority").with_field("priority"))?;
        let timed_at = match (priority, input.timed_at.as_deref()) {
            (Priority::Timed, Some(t)) => Some(t.parse::<Timestamp>().map_err(|_| {
                AppError::invalid(
                    "timed_at",
                    "timed_at_format",
                    "an RFC 3339 time, e.g. 2026-05-01T08:00:00Z",
                )
            })?),
            (Priority::Timed, None) => {
                return Err(AppError::invalid(
                    "timed_at",
                    "required",
                    "a timed order needs timed_at",
                ));
            }
            (_, Some(_)) => {
                return Err(AppError::invalid(
                    "timed_at",
                    "timed_at_not_timed",
                    "timed_at is only for timed orders",
                ));
            }
            (_, None) => None,
        };
        let mut diagnoses = Vec::new();
        for (i, d) in input.diagnosis_codes.iter().enumerate() {
            let code = Icd10Cm::parse(d.trim())
                .map_err(|e| invalid(&e, "", "").with_field(&format!("diagnosis_codes[{i}]")))?;
            diagnoses.push(code.as_str().to_owned());
        }
        let placer = input
            .placer_order_number
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        if placer.is_some_and(|p| p.chars().count() > 64 || p.chars().any(char::is_control)) {
            return Err(AppError::invalid(
                "placer_order_number",
                "placer_format",
                "at most 64 characters",
            ));
        }
        let notes = input
            .clinical_notes
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if notes.is_some_and(|n| n.chars().count() > 2000) {
            return Err(AppError::invalid(
                "clinical_notes",
                "notes_too_long",
                "at most 2000 characters",
            ));
        }
        if input.tests.is_empty() || input.tests.len() > 100 {
            return Err(AppError::invalid(
                "tests",
                "tests_count",
                "order 1 to 100 tests or panels",
            ));
        }

        // Reference data is read before the write transaction, on the read side: providers
        // and locations are never deleted, and the catalogue and settings change rarely (an
        // entry retired a moment before is ordered as if the order had come a moment
        // earlier). This keeps the single writer's critical section short.
        if self
            .store
            .provider_by_id(input.provider_id)
            .await?
            .is_none()
        {
            return Err(AppError::invalid(
                "provider_id",
                "unknown_provider",
                "no such provider",
            ));
        }
        if self
            .store
            .location_by_id(input.location_id)
            .await?
            .is_none()
        {
            return Err(AppError::invalid(
                "location_id",
                "unknown_location",
                "no such client location",
            ));
        }
        let tests = resolve_tests(self.store.as_ref(), &input.tests, "tests").await?;
        let ordered = tests
            .iter()
            .map(|(d, _)| d.ordered_test())
            .collect::<AppResult<Vec<_>>>()?;
        let plan = plan_containers(&ordered, &ContainerType::defaults())
            .map_err(|e| invalid(&e, "", "tests"))?;
        let series = AccessionSeries::current(self).await?;
        Ok(PreparedOrder {
            priority,
            timed_at,
            diagnoses,
            placer: placer.map(str::to_owned),
            notes: notes.map(str::to_owned),
            tests,
            plan,
            series,
        })
    }

    /// Places a prepared order inside `tx` (not committed): the patient identified, the
    /// placer order number checked, the order, its tubes and tests written and audited. The
    /// same code for every edge (REST, HL7 orders from an EMR).
    pub(crate) async fn place_order_in(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        input: &NewOrderInput,
        prepared: PreparedOrder,
    ) -> AppResult<OrderView> {
        actor.require(Permission::OrderWrite)?;
        let PreparedOrder {
            priority,
            timed_at,
            diagnoses,
            placer,
            notes,
            tests,
            plan,
            series,
        } = prepared;
        let placer = placer.as_deref();
        // Identification is checked inside the transaction: a merge can't slip in between.
        let patient = self.identify_patient(tx, &input.patient).await?;
        // The same requisition sent again by its client (a retry without an idempotency key,
        // an interface resending) is a duplicate, not a second order. Checked inside the
        // transaction: write transactions are serialised, so two copies can't both pass.
        if let Some(p) = placer
            && let Some(existing) = tx.active_order_by_placer(input.location_id, p).await?
        {
            return Err(AppError::Conflict {
                field: Some("placer_order_number".into()),
                code: "duplicate_placer_order",
                message: format!(
                    "order {existing} already carries this placer order number from this client; \
                     cancel it first or send another number"
                ),
            });
        }

        let now = self.now();
        let mut order = OrderRecord {
            id: 0,
            patient_id: patient.id,
            provider_id: input.provider_id,
            location_id: input.location_id,
            priority: priority.as_str().to_owned(),
            timed_at,
            placer_order_number: placer.map(str::to_owned),
            clinical_notes: notes,
            diagnosis_codes: serde_json::to_string(&diagnoses)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            status: "active".into(),
            created_at: now,
            created_by: actor.username.clone(),
            cancelled_at: None,
            cancel_reason: None,
            winged_collection_set: input.winged_collection_set,
        };
        order.id = tx.insert_order(&order).await?;
        let accessions = series.next(tx, plan.len()).await?;
        let mut specimens: Vec<SpecimenRecord> = plan
            .iter()
            .zip(accessions)
            .map(|(tube, accession)| SpecimenRecord {
                id: 0,
                accession,
                order_id: order.id,
                patient_id: patient.id,
                container: tube.container.as_str().to_owned(),
                specimen_type: tube.specimen_type.as_str().to_owned(),
                draw_rank: i64::from(tube.draw_rank.0),
                status: "planned".into(),
                volume_ul: 0,
                capacity_ul: i64::from(tube.capacity_ul),
                created_at: now,
                collected_at: None,
                temperature: None,
                demand_ul: i64::from(tube.volume_ul),
                received_container: None,
            })
            .collect();
        for (accession, id) in tx.insert_specimens(&specimens).await? {
            if let Some(s) = specimens.iter_mut().find(|s| s.accession == accession) {
                s.id = id;
            }
        }
        let mut order_tests = Vec::with_capacity(tests.len());
        for (tube, s) in plan.iter().zip(&specimens) {
            for code in &tube.tests {
                let panel = tests
                    .iter()
                    .find(|(d, _)| d.code == code.as_str())
                    .and_then(|(_, p)| p.clone());
                order_tests.push(OrderTestRecord {
                    id: 0,
                    order_id: order.id,
                    test_code: code.as_str().to_owned(),
                    panel_code: panel,
                    specimen_id: s.id,
                    status: "ordered".into(),
                    added_at: now,
                });
            }
        }
        // Inserted in this order, so a later read (by id) lists them the same way.
        tx.insert_order_tests(&order_tests).await?;
        let v = view(&order, &specimens, &order_tests)?;
        tx.audit(self.entry(actor, "order.create", "order", order.id, None, Some(json!({
            "patient_id": order.patient_id, "provider_id": order.provider_id,
            "location_id": order.location_id, "priority": order.priority,
            "timed_at": order.timed_at.map(|t| t.to_string()),
            "placer_order_number": order.placer_order_number, "diagnosis_codes": diagnoses,
            "clinical_notes": order.clinical_notes,
            "winged_collection_set": order.winged_collection_set,
            "specimens": v.specimens.iter().map(|s| json!({"accession": s.accession, "container": s.container, "tests": s.tests})).collect::<Vec<_>>(),
        })), None));
        Ok(v)
    }

    pub async fn order(&self, actor: &Actor, id: i64) -> AppResult<OrderView> {
        actor.require(Permission::OrderRead)?;
        let o = self
            .store
            .order_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        self.require_patient_visible(actor, o.patient_id, "order")
            .await?;
        let specimens = self.store.specimens_of_order(id).await?;
        let tests = self.store.tests_of_order(id).await?;
        self.store
            .record_access(&self.access(actor, "order.read", "order", id, vec![o.patient_id]))
            .await?;
        let mut v = view(&o, &specimens, &tests)?;
        self.attach_results(&mut v, &tests).await?;
        Ok(v)
    }

    /// Fills in each test's result with its versions and critical call.
    pub(crate) async fn attach_results(
        &self,
        v: &mut OrderView,
        tests: &[OrderTestRecord],
    ) -> AppResult<()> {
        let results = self.store.results_of_order(v.id).await?;
        if results.is_empty() {
            return Ok(());
        }
        let versions = self.store.result_versions_of_order(v.id).await?;
        let calls = self.store.critical_calls_of_order(v.id).await?;
        let now = self.now();
        for (view, record) in v.tests.iter_mut().zip(tests) {
            if let Some(r) = results.iter().find(|r| r.order_test_id == record.id) {
                view.result = Some(result_view(r, &versions, &calls, now)?);
            }
        }
        Ok(())
    }

    /// Orders by placer order number and/or patient (newest first, at most 100).
    pub async fn find_orders(
        &self,
        actor: &Actor,
        placer_order_number: Option<&str>,
        patient_id: Option<i64>,
    ) -> AppResult<Vec<OrderView>> {
        actor.require(Permission::OrderRead)?;
        let placer = placer_order_number.map(str::trim).filter(|p| !p.is_empty());
        if placer.is_none() && patient_id.is_none() {
            return Err(AppError::invalid(
                "placer_order_number",
                "search_criteria_required",
                "give placer_order_number or patient_id",
            ));
        }
        let mut orders = self.store.orders_by(placer, patient_id, 100).await?;
        // A physician sees the orders of their own patients only.
        if self.patient_scope(actor).await? != crate::PatientScope::All {
            let mut visible = Vec::with_capacity(orders.len());
            for o in orders {
                if self
                    .require_patient_visible(actor, o.patient_id, "order")
                    .await
                    .is_ok()
                {
                    visible.push(o);
                }
            }
            orders = visible;
        }
        let mut out = Vec::with_capacity(orders.len());
        for o in &orders {
            let s = self.store.specimens_of_order(o.id).await?;
            let t = self.store.tests_of_order(o.id).await?;
            out.push(view(o, &s, &t)?);
        }
        let mut ids: Vec<i64> = orders.iter().map(|o| o.patient_id).collect();
        ids.sort_unstable();
        ids.dedup();
        self.store
            .record_access(&self.access(actor, "order.search", "order", "search", ids))
            .await?;
        Ok(out)
    }

    /// Cancels an order with a reason: its tests are marked cancelled; each planned
    /// (never collected) tube is cancelled through the specimen lifecycle; each tube that
    /// exists keeps its status and gets a custody event `order_cancel`. One transaction,
    /// audited.
    pub async fn cancel_order(
        &self,
        actor: &Actor,
        id: i64,
        reason: Option<&str>,
    ) -> AppResult<OrderView> {
        actor.require(Permission::OrderWrite)?;
        let reason = require_reason(reason)?;
        let mut tx = self.store.begin().await?;
        let v = self.cancel_order_in(&mut tx, actor, id, &reason).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// [`App::cancel_order`] inside `tx` (not committed); `reason` already checked.
    pub(crate) async fn cancel_order_in(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        id: i64,
        reason: &str,
    ) -> AppResult<OrderView> {
        actor.require(Permission::OrderWrite)?;
        let o = tx
            .order_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        let now = self.now();
        if !tx.cancel_order(id, now, reason).await? {
            return Err(AppError::Conflict {
                field: None,
                code: "order_cancelled",
                message: "the order is already cancelled".into(),
            });
        }
        // The tests first (as they were), then each tube through the specimen lifecycle.
        let tests = tx.tests_of_order(id).await?;
        tx.cancel_order_tests(id).await?;
        let mut tubes_cancelled = Vec::new();
        let mut tubes_kept = Vec::new();
        for s in tx.specimens_of_order(id).await? {
            let tube_tests: Vec<&str> = tests
                .iter()
                .filter(|t| t.specimen_id == s.id && t.status != "cancelled")
                .map(|t| t.test_code.as_str())
                .collect();
            let details = json!({"order_id": id, "reason": reason, "tests_cancelled": tube_tests});
            match state_of(&s)? {
                // Never drawn: the planned tube is cancelled.
                state @ SpecimenState::Planned => {
                    let next = transition(state, &Event::Cancel).map_err(transition_conflict)?;
                    self.change_status(tx, &s, next, None).await?;
                    let t = Transition {
                        kind: "cancel",
                        next: next.as_str(),
                        details,
                        location: None,
                    };
                    self.record_transition(tx, actor, &s, t).await?;
                    tubes_cancelled.push(s.accession.clone());
                }
                // Nothing physical left to account for.
                SpecimenState::Cancelled | SpecimenState::Disposed => {}
                // A tube that exists keeps its status (it is still somewhere and is handled,
                // stored or disposed of as a tube); its custody says the order was cancelled.
                _ => {
                    if !self.guard_unchanged(tx, &s).await? {
                        return Err(changed_meanwhile());
                    }
                    let t = Transition {
                        kind: "order_cancel",
                        next: &s.status,
                        details,
                        location: None,
                    };
                    self.record_transition(tx, actor, &s, t).await?;
                    tubes_kept.push(s.accession.clone());
                }
            }
        }
        tx.audit(self.entry(
            actor,
            "order.cancel",
            "order",
            id,
            Some(json!({"status": o.status})),
            Some(
                json!({"status": "cancelled", "specimens_cancelled": tubes_cancelled,
                "specimens_kept": tubes_kept}),
            ),
            Some(reason),
        ));
        let o = tx
            .order_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        let s = tx.specimens_of_order(id).await?;
        let t = tx.tests_of_order(id).await?;
        view(&o, &s, &t)
    }

    /// Cancels one test of an order with a reason (issue 10 item 11): the rest of the order
    /// and its tubes go on. A released result is corrected, not cancelled. The tube gets a
    /// custody event `test_cancel`; audited `order.cancel_test` with the reason.
    pub async fn cancel_order_test(
        &self,
        actor: &Actor,
        id: i64,
        test: &str,
        reason: Option<&str>,
    ) -> AppResult<OrderView> {
        actor.require(Permission::OrderWrite)?;
        let reason = require_reason(reason)?;
        let code = catalog_key(test);
        let mut tx = self.store.begin().await?;
        let o = tx
            .order_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        let tests = tx.tests_of_order(id).await?;
        let t = tests.iter().find(|t| t.test_code == code).ok_or_else(|| {
            AppError::invalid(
                "test",
                "test_not_ordered",
                format!("{code} was not ordered"),
            )
        })?;
        let status = TestStatus::parse(&t.status)
            .map_err(|_| AppError::Internal(format!("order test {}: status", t.id)))?;
        if !status.is_pending() {
            return Err(AppError::Conflict {
                field: Some("test".into()),
                code: "test_closed",
                message: format!(
                    "{} is {}; a released result is corrected, not cancelled",
                    t.test_code, t.status
                ),
            });
        }
        tx.set_order_test_status(t.id, TestStatus::Cancelled.as_str())
            .await?;
        let tube = tx
            .specimen_by_id(t.specimen_id)
            .await?
            .ok_or_else(|| AppError::Internal("test without tube".into()))?;
        // The custody event keeps the tube's status; the guarded no-op change makes a tube
        // changed meanwhile a 409.
        if !self.guard_unchanged(&mut tx, &tube).await? {
            return Err(changed_meanwhile());
        }
        let details = json!({"test": t.test_code, "reason": &reason});
        tx.insert_specimen_event(&self.custody(
            actor,
            &tube,
            "test_cancel",
            &tube.status,
            details,
            None,
        ))
        .await?;
        tx.audit(self.entry(
            actor,
            "order.cancel_test",
            "order",
            id,
            Some(json!({"test": t.test_code, "status": t.status})),
            Some(json!({"test": t.test_code, "status": "cancelled", "accession": tube.accession})),
            Some(&reason),
        ));
        let s = tx.specimens_of_order(id).await?;
        let t = tx.tests_of_order(id).await?;
        tx.commit().await?;
        view(&o, &s, &t)
    }

    /// Plans a replacement tube in order `o` like `like` (container, specimen type, draw
    /// rank), for the tests `codes` moved onto it from `like`, whose planned demand it takes
    /// over. Returns the new tube.
    pub(crate) async fn plan_replacement(
        &self,
        tx: &mut Box<dyn Tx>,
        o: &OrderRecord,
        like: &SpecimenRecord,
        codes: &[String],
    ) -> AppResult<SpecimenRecord> {
        let series = AccessionSeries::current(self).await?;
        let mut demand = 0;
        for code in codes {
            if let Some(entry) = tx.catalog_by_code(code).await? {
                demand += i64::from(definition(&entry)?.min_volume_ul.unwrap_or(0));
            }
        }
        let capacity = ContainerType::defaults()
            .into_iter()
            .find(|c| c.code.as_str() == like.container)
            .map_or(like.capacity_ul, |c| i64::from(c.usable_volume_ul));
        let mut s = SpecimenRecord {
            id: 0,
            accession: series
                .next(tx, 1)
                .await?
                .pop()
                .ok_or_else(|| AppError::Internal("accession".into()))?,
            order_id: o.id,
            patient_id: o.patient_id,
            container: like.container.clone(),
            specimen_type: like.specimen_type.clone(),
            draw_rank: like.draw_rank,
            status: "planned".into(),
            volume_ul: 0,
            capacity_ul: capacity,
            created_at: self.now(),
            collected_at: None,
            temperature: None,
            demand_ul: demand,
            received_container: None,
        };
        s.id = tx.insert_specimen(&s).await?;
        let moved = tx.move_tests(like.id, s.id, codes).await?;
        if moved != codes.len() as u64 {
            return Err(changed_meanwhile());
        }
        Ok(s)
    }

    /// The open recollection task of a rejected tube, or a new one for the ordering location
    /// (a tube whose task was completed or never opened). Returns its id.
    pub(crate) async fn ensure_recollection(
        &self,
        tx: &mut Box<dyn Tx>,
        o: &OrderRecord,
        rejected: &SpecimenRecord,
        now: Timestamp,
    ) -> AppResult<i64> {
        if let Some(id) = tx.open_recollect_task_of(rejected.id).await? {
            return Ok(id);
        }
        let reason = self
            .store
            .specimen_events(rejected.id)
            .await?
            .into_iter()
            .rev()
            .find(|e| e.kind == "reject")
            .and_then(|e| {
                serde_json::from_str::<serde_json::Value>(&e.details)
                    .ok()?
                    .get("reason")?
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "add_on".to_owned());
        Ok(tx
            .insert_recollect_task(&aliquot_store::RecollectTaskRecord {
                id: 0,
                order_id: o.id,
                location_id: o.location_id,
                specimen_id: rejected.id,
                accession: rejected.accession.clone(),
                reason,
                created_at: now,
                done_at: None,
                done_by: None,
                replacement_accession: None,
            })
            .await?)
    }

    /// Adds a test (or panel) to an active order. A test goes on a tube of a kind it accepts
    /// with room left (planned capacity before receipt, measured content after, less the
    /// planned demand): a planned one, or a collected one still within the test's stability
    /// over its whole temperature history (issue 10 item 2), never a rejected, disposed, sent-out or cancelled one
    /// (`aliquot_domain::order::place_add_on`); otherwise a new tube is planned, with a
    /// recollection task when the tube of that kind was rejected.
    pub async fn add_order_test(&self, actor: &Actor, id: i64, test: &str) -> AppResult<OrderView> {
        actor.require(Permission::OrderWrite)?;
        let mut tx = self.store.begin().await?;
        let o = tx
            .order_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        if o.status != "active" {
            return Err(AppError::Conflict {
                field: None,
                code: "order_cancelled",
                message: "the order is cancelled".into(),
            });
        }
        let mut specimens = tx.specimens_of_order(id).await?;
        let existing = tx.tests_of_order(id).await?;
        let tests = resolve_tests(self.store.as_ref(), &[test.to_owned()], "tests").await?;
        let series = AccessionSeries::current(self).await?;
        let tests: Vec<_> = tests
            .into_iter()
            .filter(|(d, _)| !existing.iter().any(|e| e.test_code == d.code))
            .collect();
        if tests.is_empty() {
            return Err(AppError::Conflict {
                field: Some("test".into()),
                code: "test_already_ordered",
                message: "the order already has this test".into(),
            });
        }
        let now = self.now();
        // Each collected tube's temperature history (issue 10 item 2), read once.
        let mut histories: BTreeMap<i64, SpecimenHistory> = BTreeMap::new();
        for s in specimens.iter().filter(|s| s.collected_at.is_some()) {
            histories.insert(s.id, self.specimen_history(s).await?);
        }
        let mut added = Vec::new();
        for (d, panel) in &tests {
            let ot = d.ordered_test()?;
            let accepted = d.accepted_specimens()?;
            let tubes = specimens
                .iter()
                .map(|s| add_on_tube(s, histories.get(&s.id).cloned().unwrap_or_default()))
                .collect::<AppResult<Vec<_>>>()?;
            let placement = place_add_on(
                &tubes,
                &accepted,
                ot.min_volume_ul,
                &d.full_stability_rule(),
                now,
            )
            .map_err(|e| invalid(&e, "", "test").with_field("test"))?;
            let mut recollection = None;
            let sid = match placement {
                AddOnPlacement::Existing(i) => {
                    let s = &mut specimens[i];
                    s.demand_ul += i64::from(ot.min_volume_ul);
                    tx.set_specimen_demand(s.id, s.demand_ul).await?;
                    s.id
                }
                AddOnPlacement::NewTube { recollect_from } => {
                    let plan =
                        plan_containers(std::slice::from_ref(&ot), &ContainerType::defaults())
                            .map_err(|e| invalid(&e, "", "test").with_field("test"))?;
                    let tube = &plan[0];
                    let mut s = SpecimenRecord {
                        id: 0,
                        accession: series
                            .next(&mut tx, 1)
                            .await?
                            .pop()
                            .ok_or_else(|| AppError::Internal("accession".into()))?,
                        order_id: id,
                        patient_id: o.patient_id,
                        container: tube.container.as_str().to_owned(),
                        specimen_type: tube.specimen_type.as_str().to_owned(),
                        draw_rank: i64::from(tube.draw_rank.0),
                        status: "planned".into(),
                        volume_ul: 0,
                        capacity_ul: i64::from(tube.capacity_ul),
                        created_at: now,
                        collected_at: None,
                        temperature: None,
                        demand_ul: i64::from(tube.volume_ul),
                        received_container: None,
                    };
                    s.id = tx.insert_specimen(&s).await?;
                    // The tube of this kind was rejected: the patient must be drawn again.
                    if let Some(i) = recollect_from {
                        recollection = Some(
                            self.ensure_recollection(&mut tx, &o, &specimens[i], now)
                                .await?,
                        );
                    }
                    let sid = s.id;
                    specimens.push(s);
                    sid
                }
            };
            let t = OrderTestRecord {
                id: 0,
                order_id: id,
                test_code: d.code.clone(),
                panel_code: panel.clone(),
                specimen_id: sid,
                status: "ordered".into(),
                added_at: now,
            };
            tx.insert_order_test(&t).await?;
            let acc = specimens
                .iter()
                .find(|s| s.id == sid)
                .map(|s| s.accession.clone());
            added.push(json!({"test_code": d.code, "accession": acc,
                "recollect_task_id": recollection}));
        }
        tx.audit(self.entry(
            actor,
            "order.add_test",
            "order",
            id,
            None,
            Some(json!({"added": added})),
            None,
        ));
        let s = tx.specimens_of_order(id).await?;
        let t = tx.tests_of_order(id).await?;
        tx.commit().await?;
        view(&o, &s, &t)
    }
}
