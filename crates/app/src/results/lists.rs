//! Worklists per department, the open critical calls, and a patient's cumulative results.

use std::collections::HashMap;

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::Department;
use jiff::Timestamp;

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
        let tat = self.tat_views(&rows).await?;
        let now = self.now();
        let mut items = Vec::new();
        for (r, t) in rows.iter().zip(tat) {
            if departments.get(&r.test_code).cloned().flatten().as_deref() != Some(dept.as_str()) {
                continue;
            }
            let result = held.get(&r.order_test_id);
            let body = result.map(|h| Body::parse(&h.body)).transpose()?;
            let since = r.received_at.unwrap_or(r.ordered_at);
            items.push(WorklistItem {
                order_id: r.order_id,
                test_code: r.test_code.clone(),
                accession: r.accession.clone(),
                priority: r.priority.clone(),
                status: if result.is_some() { "held" } else { "pending" },
                result_id: result.map(|h| h.id),
                value: body.as_ref().map(|b| b.value.clone()),
                flags: body.as_ref().map(|b| b.flags.clone()).unwrap_or_default(),
                hold_reasons: body.map(|b| b.hold_reasons).unwrap_or_default(),
                received_at: r.received_at,
                age_minutes: now.duration_since(since).as_secs().div_euclid(60),
                tat_status: t.in_lab.status,
            });
        }
        // The store gives STAT first, then the oldest specimen; keep that order.
        let items = self
            .worklist(actor, "worklist.read", "worklist", dept.as_str(), items)
            .await?;
        Ok(WorklistView {
            department: dept.as_str().to_owned(),
            items,
        })
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
