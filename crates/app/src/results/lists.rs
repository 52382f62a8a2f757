//! Worklists per department, the open critical calls, and a patient's cumulative results.

use std::collections::HashMap;

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::Department;
use jiff::Timestamp;

use super::entry::interval_in_force;
use super::rules::{ParsedRules, doc_of};
use super::{Body, IntervalView, ReasonView, call_view};
use crate::catalog::definition;
use crate::shown::{ShowsPatient, Subject};
use crate::{Actor, App, AppError, AppResult};

/// A critical result's call, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalCallView {
    pub id: i64,
    pub result_id: i64,
    pub result_version: i64,
    pub opened_at: Timestamp,
    pub due_at: Timestamp,
    /// Not documented and past its due time (escalate).
    pub overdue: bool,
    pub called_at: Option<Timestamp>,
    pub called_by: Option<String>,
    pub notified_name: Option<String>,
    pub notified_role: Option<String>,
    pub read_back: Option<bool>,
}

/// An open call on the list of calls to make, with what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCallView {
    pub call: CriticalCallView,
    pub order_id: i64,
    pub test_code: String,
    pub value: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
}

impl ShowsPatient for OpenCallView {
    fn subject(&self) -> Subject {
        Subject::Order(self.order_id)
    }
}

/// A running test's worklist line, with its held result if it has one.
fn worklist_item(
    r: &aliquot_store::TatRow,
    tat: &crate::TestTatView,
    held: Option<&aliquot_store::ResultRecord>,
    now: Timestamp,
) -> AppResult<WorklistItem> {
    let body = held.map(|h| Body::parse(&h.body)).transpose()?;
    let since = r.received_at.unwrap_or(r.ordered_at);
    Ok(WorklistItem {
        order_id: r.order_id,
        test_code: r.test_code.clone(),
        accession: r.accession.clone(),
        priority: r.priority.clone(),
        status: if held.is_some() { "held" } else { "pending" },
        result_id: held.map(|h| h.id),
        value: body.as_ref().map(|b| b.value.clone()),
        flags: body.as_ref().map(|b| b.flags.clone()).unwrap_or_default(),
        hold_reasons: body.map(|b| b.hold_reasons).unwrap_or_default(),
        received_at: r.received_at,
        age_minutes: now.duration_since(since).as_secs().div_euclid(60),
        tat_status: tat.in_lab.status,
    })
}

/// One line of a department's worklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorklistItem {
    pub order_id: i64,
    pub test_code: String,
    pub accession: String,
    pub priority: String,
    /// `pending` (no result yet) or `held` (a result awaits review).
    pub status: &'static str,
    pub result_id: Option<i64>,
    pub value: Option<String>,
    pub flags: Vec<String>,
    pub hold_reasons: Vec<ReasonView>,
    pub received_at: Option<Timestamp>,
    /// Minutes since receipt (since ordering when not received).
    pub age_minutes: i64,
    /// In-lab TAT: `on_time`, `at_risk`, `overdue`, or `no_target`.
    pub tat_status: &'static str,
}

impl ShowsPatient for WorklistItem {
    fn subject(&self) -> Subject {
        Subject::Order(self.order_id)
    }
}

/// A patient's previous released result of a test, shown beside a new one's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousResult {
    pub result_id: i64,
    pub value: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
    pub collected_at: Option<Timestamp>,
}

/// What an entry row shows before a value is typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryHint {
    /// In force at the tube's collection, for this patient.
    pub reference_interval: Option<IntervalView>,
    /// The test's reporting units.
    pub units: Option<String>,
    pub previous: Option<PreviousResult>,
}

/// A department's entry list: the first rows of its worklist with their hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryListView {
    pub department: String,
    /// Pending and held tests in all (the list shows the first of them).
    pub total: usize,
    pub items: Vec<(WorklistItem, EntryHint)>,
}

/// A held result on the review list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub department: Option<String>,
    pub item: WorklistItem,
}

/// A department's worklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorklistView {
    pub department: String,
    pub items: Vec<WorklistItem>,
}

/// One point of a patient's cumulative results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CumulativePoint {
    pub result_id: i64,
    pub order_id: i64,
    pub collected_at: Option<Timestamp>,
    pub value: String,
    pub units: Option<String>,
    pub flags: Vec<String>,
    /// The interval in force at that collection.
    pub reference_interval: Option<IntervalView>,
    pub status: String,
}

/// A patient's results of one test over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CumulativeView {
    pub patient_id: i64,
    pub test_code: String,
    pub points: Vec<CumulativePoint>,
}

/// The most results a cumulative view shows (the newest).
pub const CUMULATIVE_LIMIT: i64 = 500;

impl App {
    /// The tests running in the lab (pending, or held for review) with their department, of
    /// one department or all, only the held ones with `held_only`: STAT first, then the oldest
    /// specimen. No access log: the callers' lists log it.
    pub(crate) async fn running_items(
        &self,
        department: Option<Department>,
        held_only: bool,
    ) -> AppResult<Vec<(Option<String>, WorklistItem)>> {
        let rows = self.store.running_tests(crate::OVERDUE_SCAN_LIMIT).await?;
        let mut departments: HashMap<String, Option<String>> = HashMap::new();
        for r in &rows {
            if !departments.contains_key(&r.test_code) {
                let d = match self.store.catalog_by_code(&r.test_code).await? {
                    Some(c) => definition(&c)?.department,
                    None => None,
                };
                departments.insert(r.test_code.clone(), d);
            }
        }
        let held: HashMap<i64, aliquot_store::ResultRecord> = self
            .store
            .held_results(crate::OVERDUE_SCAN_LIMIT)
            .await?
            .into_iter()
            .map(|r| (r.order_test_id, r))
            .collect();
        let rows: Vec<aliquot_store::TatRow> = rows
            .into_iter()
            .filter(|r| {
                department.is_none_or(|d| {
                    departments.get(&r.test_code).cloned().flatten().as_deref() == Some(d.as_str())
                }) && (!held_only || held.contains_key(&r.order_test_id))
            })
            .collect();
        let tat = self.tat_views(&rows).await?;
        let now = self.now();
        let mut items = Vec::with_capacity(rows.len());
        for (r, t) in rows.iter().zip(tat) {
            items.push((
                departments.get(&r.test_code).cloned().flatten(),
                worklist_item(r, &t, held.get(&r.order_test_id), now)?,
            ));
        }
        // The store gives STAT first, then the oldest specimen; keep that order.
        Ok(items)
    }

    /// A department's pending and held tests, most urgent first, then the oldest
    /// (`result.enter`). Recorded in the access log.
    pub async fn results_worklist(
        &self,
        actor: &Actor,
        department: &str,
    ) -> AppResult<WorklistView> {
        actor.require(Permission::ResultEnter)?;
        let dept = Department::parse(department)
            .map_err(|e| AppError::invalid("department", e.code(), e.to_string()))?;
        let items = self
            .running_items(Some(dept), false)
            .await?
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        let items = self
            .worklist(actor, "worklist.read", "worklist", dept.as_str(), items)
            .await?;
        Ok(WorklistView {
            department: dept.as_str().to_owned(),
            items,
        })
    }

    /// The bench's entry list of a department: its first `limit` pending and held tests (the
    /// most urgent), each with what the technologist judges a value against — the reference
    /// interval in force at the tube's collection and the patient's previous released result
    /// of the same test (the one the delta check compares with) — and how many there are in
    /// all (`result.enter`). Recorded in the access log.
    ///
    /// Only the shown rows are read in full: the department's running tests are counted, the
    /// first `limit` read with their tubes, patients, held and previous results in a few set
    /// queries (`Store::entry_list_rows`).
    pub async fn results_entry_list(
        &self,
        actor: &Actor,
        department: &str,
        limit: usize,
    ) -> AppResult<EntryListView> {
        actor.require(Permission::ResultEnter)?;
        let dept = Department::parse(department)
            .map_err(|e| AppError::invalid("department", e.code(), e.to_string()))?;
        // The department's tests, retired ones included (their orders may still run).
        let mut units: HashMap<String, Option<String>> = HashMap::new();
        for c in self.store.list_catalog(true).await? {
            let d = definition(&c)?;
            if d.department.as_deref() == Some(dept.as_str()) {
                units.insert(c.code.clone(), d.units);
            }
        }
        let mut codes: Vec<String> = units.keys().cloned().collect();
        codes.sort_unstable();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.store.entry_list_rows(&codes, limit).await?;
        let held: HashMap<i64, &aliquot_store::ResultRecord> =
            rows.held.iter().map(|r| (r.order_test_id, r)).collect();
        let tat = self.tat_views(&rows.tests).await?;
        let now = self.now();
        let items = rows
            .tests
            .iter()
            .zip(&tat)
            .map(|(r, t)| worklist_item(r, t, held.get(&r.order_test_id).copied(), now))
            .collect::<AppResult<Vec<_>>>()?;
        let items = self
            .worklist(actor, "worklist.read", "worklist", dept.as_str(), items)
            .await?;
        let time_zone = self.lab_timezone().await?;
        let tubes: HashMap<&str, &aliquot_store::SpecimenRecord> = rows
            .specimens
            .iter()
            .map(|s| (s.accession.as_str(), s))
            .collect();
        let patients: HashMap<i64, &aliquot_store::PatientRecord> =
            rows.patients.iter().map(|p| (p.id, p)).collect();
        let mut rules: HashMap<String, ParsedRules> = HashMap::new();
        let mut out = Vec::with_capacity(items.len());
        for (item, previous) in items.into_iter().zip(&rows.previous) {
            let (Some(specimen), Some(units)) = (
                tubes.get(item.accession.as_str()),
                units.get(&item.test_code),
            ) else {
                out.push((item, EntryHint::default()));
                continue;
            };
            let patient = patients
                .get(&specimen.patient_id)
                .ok_or_else(|| AppError::Internal("specimen without patient".into()))?;
            if !rules.contains_key(&item.test_code) {
                let parsed = match self.store.result_rules(&item.test_code).await? {
                    Some(r) => doc_of(&r)?.parse(r.version)?,
                    None => ParsedRules::default(),
                };
                rules.insert(item.test_code.clone(), parsed);
            }
            let interval = match rules.get(&item.test_code) {
                Some(r) => interval_in_force(r, patient, specimen, &time_zone)?,
                None => None,
            };
            let previous = previous
                .as_ref()
                .map(|r| {
                    let b = Body::parse(&r.body)?;
                    Ok::<_, AppError>(PreviousResult {
                        result_id: r.id,
                        value: b.value,
                        units: b.units,
                        flags: b.flags,
                        collected_at: r.collected_at,
                    })
                })
                .transpose()?;
            out.push((
                item,
                EntryHint {
                    reference_interval: interval.map(IntervalView::from),
                    units: units.clone(),
                    previous,
                },
            ));
        }
        Ok(EntryListView {
            department: dept.as_str().to_owned(),
            total: usize::try_from(rows.total).unwrap_or(0),
            items: out,
        })
    }

    /// Every held result waiting for review, across departments, with its department and
    /// its hold reasons: STAT first, then the oldest (`result.verify`). Recorded in the
    /// access log.
    pub async fn review_list(&self, actor: &Actor) -> AppResult<Vec<ReviewItem>> {
        actor.require(Permission::ResultVerify)?;
        let items = self.running_items(None, true).await?;
        self.log_shown(
            actor,
            "review.read",
            "worklist",
            "held",
            items.iter().map(|(_, i)| i.subject()),
        )
        .await?;
        Ok(items
            .into_iter()
            .map(|(department, item)| ReviewItem { department, item })
            .collect())
    }

    /// Critical calls not yet documented, the most overdue first (`result.verify`).
    pub async fn open_critical_calls(&self, actor: &Actor) -> AppResult<Vec<OpenCallView>> {
        actor.require(Permission::ResultVerify)?;
        let now = self.now();
        let mut out = Vec::new();
        for c in self.store.open_critical_calls(1000).await? {
            let Some(r) = self.store.result_by_id(c.result_id).await? else {
                continue;
            };
            let b = Body::parse(&r.body)?;
            out.push(OpenCallView {
                call: call_view(&c, now),
                order_id: r.order_id,
                test_code: r.test_code,
                value: b.value,
                units: b.units,
                flags: b.flags,
            });
        }
        self.worklist(actor, "critical_calls.read", "critical_call", "open", out)
            .await
    }

    /// A patient's released results of one test over time, each with the interval then in
    /// force (`order.read`). Recorded in the access log.
    pub async fn cumulative_results(
        &self,
        actor: &Actor,
        patient_id: i64,
        test: &str,
    ) -> AppResult<CumulativeView> {
        actor.require(Permission::OrderRead)?;
        self.store
            .patient_by_id(patient_id)
            .await?
            .ok_or(AppError::NotFound { entity: "patient" })?;
        self.require_patient_visible(actor, patient_id, "patient")
            .await?;
        let code = self.test_code_of(test).await?;
        let points = self
            .store
            .patient_results(patient_id, &code, CUMULATIVE_LIMIT)
            .await?
            .into_iter()
            .map(|r| {
                let b = Body::parse(&r.body)?;
                Ok(CumulativePoint {
                    result_id: r.id,
                    order_id: r.order_id,
                    collected_at: r.collected_at,
                    value: b.value,
                    units: b.units,
                    flags: b.flags,
                    reference_interval: b.interval,
                    status: r.status,
                })
            })
            .collect::<AppResult<Vec<_>>>()?;
        self.store
            .record_access(&self.access(
                actor,
                "patient.results",
                "patient",
                patient_id,
                vec![patient_id],
            ))
            .await?;
        Ok(CumulativeView {
            patient_id,
            test_code: code,
            points,
        })
    }
}
