//! Turnaround time: each ordered test's milestones (ordered, collected, received, in process,
//! resulted, verified, reported), evaluated against the catalog's targets for the order's
//! priority, and the lab's overdue list (DOMAIN §11). The rules are the domain's
//! (`aliquot_domain::tat`); this module gathers the timestamps.
//!
//! Two intervals are evaluated: **in-lab** (received → verified, the lab's usual measure and
//! the one the catalog targets and the overdue list use) and **total** (ordered → reported,
//! what the clinician sees), the latter against the same targets for information. Resulted,
//! verified and reported are recorded by the results workflow; until a test has them its TAT
//! is still running.

use std::collections::HashMap;

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::{Priority, TatTargets};
use aliquot_domain::tat::{
    Milestone, Milestones, TatEvaluation, TatItem, TatPolicy, evaluate, overdue_list_by,
};
use aliquot_store::TatRow;
use jiff::{SignedDuration, Timestamp};

use crate::catalog::definition;
use crate::{Actor, App, AppError, AppResult};

/// How many running tests the overdue list looks at, most urgent priority first.
pub const OVERDUE_SCAN_LIMIT: i64 = 20_000;

/// One interval of one test against its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TatIntervalView {
    /// `not_started`, `no_target`, `on_time`, `at_risk`, `overdue`, `met` or `missed`.
    pub status: &'static str,
    pub elapsed_minutes: Option<i64>,
    pub target_minutes: Option<i64>,
    /// Negative once the target is breached.
    pub remaining_minutes: Option<i64>,
}

/// One ordered test's turnaround time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestTatView {
    pub order_id: i64,
    pub test_code: String,
    pub accession: String,
    pub priority: String,
    /// Milestone name → time, for those recorded, in lifecycle order.
    pub milestones: Vec<(&'static str, Timestamp)>,
    /// Received → verified.
    pub in_lab: TatIntervalView,
    /// Ordered → reported.
    pub total: TatIntervalView,
}

fn minutes(d: SignedDuration) -> i64 {
    d.as_secs().div_euclid(60)
}

fn interval(e: TatEvaluation) -> TatIntervalView {
    TatIntervalView {
        status: e.status.as_str(),
        elapsed_minutes: e.elapsed.map(minutes),
        target_minutes: e.target.map(minutes),
        remaining_minutes: e.remaining.map(minutes),
    }
}

fn milestones(r: &TatRow) -> Milestones {
    let mut m = Milestones::default().with(Milestone::Ordered, r.ordered_at);
    for (milestone, at) in [
        (Milestone::Collected, r.collected_at),
        (Milestone::Received, r.received_at),
        (Milestone::InProcess, r.in_process_at),
        (Milestone::Resulted, r.resulted_at),
        (Milestone::Verified, r.verified_at),
        // Released to the patient's record is reported (electronically, to the EMR and the
        // API); printed reports come with the reports workflow.
        (Milestone::Reported, r.released_at),
    ] {
        if let Some(at) = at {
            m.set(milestone, at);
        }
    }
    m
}

impl App {
    /// The catalog's targets for each test code of `rows`.
    async fn targets_of(&self, rows: &[TatRow]) -> AppResult<HashMap<String, TatTargets>> {
        let mut out = HashMap::new();
        for r in rows {
            if out.contains_key(&r.test_code) {
                continue;
            }
            let targets = match self.store.catalog_by_code(&r.test_code).await? {
                Some(entry) => definition(&entry)?.tat_targets()?,
                None => TatTargets::default(),
            };
            out.insert(r.test_code.clone(), targets);
        }
        Ok(out)
    }

    fn test_tat(&self, r: &TatRow, targets: TatTargets, now: Timestamp) -> AppResult<TestTatView> {
        let priority = Priority::parse(&r.priority)
            .map_err(|_| AppError::Internal(format!("order {} priority", r.order_id)))?;
        let m = milestones(r);
        let total = TatPolicy::new(
            Milestone::Ordered,
            Milestone::Reported,
            TatPolicy::DEFAULT_AT_RISK_PERCENT,
            targets,
        )
        .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(TestTatView {
            order_id: r.order_id,
            test_code: r.test_code.clone(),
            accession: r.accession.clone(),
            priority: r.priority.clone(),
            milestones: Milestone::ALL
                .iter()
                .filter_map(|&k| m.get(k).map(|at| (k.as_str(), at)))
                .collect(),
            in_lab: interval(evaluate(&m, priority, now, &TatPolicy::in_lab(targets))),
            total: interval(evaluate(&m, priority, now, &total)),
        })
    }

    /// The turnaround time of each row (no access log: the caller's list logs it).
    pub(crate) async fn tat_views(&self, rows: &[TatRow]) -> AppResult<Vec<TestTatView>> {
        let targets = self.targets_of(rows).await?;
        let now = self.now();
        rows.iter()
            .map(|r| self.test_tat(r, targets[&r.test_code], now))
            .collect()
    }

    /// The turnaround time of every test of an order. Recorded in the access log.
    pub async fn order_tat(&self, actor: &Actor, order_id: i64) -> AppResult<Vec<TestTatView>> {
        actor.require(Permission::OrderRead)?;
        let order = self
            .store
            .order_by_id(order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        self.require_patient_visible(actor, order.patient_id, "order")
            .await?;
        let rows = self.store.tat_of_order(order_id).await?;
        let targets = self.targets_of(&rows).await?;
        let now = self.now();
        let views = rows
            .iter()
            .map(|r| self.test_tat(r, targets[&r.test_code], now))
            .collect::<AppResult<Vec<_>>>()?;
        self.worklist(actor, "order.tat", "order", order_id, views)
            .await
    }

    /// Tests at risk of missing, or past, their in-lab target: STAT first, then the least
    /// time remaining (the most overdue first). Recorded in the access log.
    pub async fn overdue_tests(&self, actor: &Actor) -> AppResult<Vec<TestTatView>> {
        actor.require(Permission::SpecimenProcess)?;
        let rows = self.store.running_tests(OVERDUE_SCAN_LIMIT).await?;
        let targets = self.targets_of(&rows).await?;
        let now = self.now();
        let items: Vec<TatItem<usize>> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                Some(TatItem {
                    key: i,
                    priority: Priority::parse(&r.priority).ok()?,
                    milestones: milestones(r),
                })
            })
            .collect();
        let views = overdue_list_by(&items, now, |item| {
            TatPolicy::in_lab(targets[&rows[item.key].test_code])
        })
        .into_iter()
        .map(|e| {
            let r = &rows[e.item.key];
            self.test_tat(r, targets[&r.test_code], now)
        })
        .collect::<AppResult<Vec<_>>>()?;
        self.worklist(actor, "tat.overdue", "tat", "overdue", views)
            .await
    }
}
