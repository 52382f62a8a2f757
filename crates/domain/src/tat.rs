//! Turnaround time (TAT): milestones, elapsed time, status against a target, overdue lists.
//!
//! # Rules and sources (DOMAIN §11)
//! - Milestones per test: ordered → collected → received → in_process → resulted → verified →
//!   reported. Store all timestamps; compute intervals per test (§11.1).
//! - Default interval is in-lab TAT, received → verified (§11.1: "most common internal metric");
//!   the start and end milestones are configurable ([`TatPolicy`], e.g. ordered → reported for
//!   total TAT).
//! - Targets come per priority from [`TatTargets`] ([CONFIG], §11.2 typical targets).
//! - Status while running: `overdue` when elapsed > target; `at_risk` when elapsed ≥ the at-risk
//!   fraction of the target (default 80 %, [CONFIG]); otherwise `on_time`. Once the end milestone
//!   is recorded: `met` (elapsed ≤ target) or `missed`.
//! - [`overdue_list`] returns the running items that are at risk or overdue, most urgent
//!   priority first (STAT), then least time remaining first (already-breached items have
//!   negative remaining time and come first within their priority), then by key.

use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

use crate::catalog::{Priority, TatTargets, code_enum};
use crate::error::impl_domain_error;

code_enum! {
    /// TAT milestones in lifecycle order.
    Milestone, "milestone" {
        Ordered => "ordered",
        Collected => "collected",
        Received => "received",
        InProcess => "in_process",
        Resulted => "resulted",
        Verified => "verified",
        Reported => "reported",
    }
}

impl Milestone {
    fn index(self) -> usize {
        Self::ALL.iter().position(|&m| m == self).unwrap_or(0)
    }
}

/// Recorded milestone timestamps for one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Milestones {
    times: [Option<Timestamp>; 7],
}

/// TAT configuration and data errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TatError {
    #[error("{later} ({later_at}) is recorded before {earlier} ({earlier_at})")]
    OutOfOrder {
        earlier: Milestone,
        earlier_at: Timestamp,
        later: Milestone,
        later_at: Timestamp,
    },
    #[error("the TAT start milestone {start} must come before the end milestone {end}")]
    StartNotBeforeEnd { start: Milestone, end: Milestone },
    #[error("the at-risk threshold is a percentage of the target in 1..=99; got {percent}")]
    AtRiskPercent { percent: u8 },
}

impl TatError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OutOfOrder { .. } => "tat_milestones_out_of_order",
            Self::StartNotBeforeEnd { .. } => "tat_start_not_before_end",
            Self::AtRiskPercent { .. } => "tat_at_risk_percent",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Self::OutOfOrder { later, .. } => later.as_str(),
            Self::StartNotBeforeEnd { .. } => "start",
            Self::AtRiskPercent { .. } => "at_risk_percent",
        })
    }
}

impl Milestones {
    /// Records (or corrects) a milestone time.
    pub fn set(&mut self, milestone: Milestone, at: Timestamp) {
        self.times[milestone.index()] = Some(at);
    }

    /// Builder form of [`Milestones::set`].
    pub fn with(mut self, milestone: Milestone, at: Timestamp) -> Self {
        self.set(milestone, at);
        self
    }

    /// The time of a milestone, if recorded.
    pub fn get(&self, milestone: Milestone) -> Option<Timestamp> {
        self.times[milestone.index()]
    }

    /// Checks that recorded milestones never go backwards in time.
    pub fn check_sequence(&self) -> Result<(), TatError> {
        let mut latest: Option<(Milestone, Timestamp)> = None;
        for &m in Milestone::ALL {
            if let Some(at) = self.get(m) {
                if let Some((earlier, earlier_at)) = latest
                    && at < earlier_at
                {
                    return Err(TatError::OutOfOrder {
                        earlier,
                        earlier_at,
                        later: m,
                        later_at: at,
                    });
                }
                latest = Some((m, at));
            }
        }
        Ok(())
    }
}

/// How TAT is measured ([CONFIG]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TatPolicy {
    start: Milestone,
    end: Milestone,
    at_risk_percent: u8,
    targets: TatTargets,
}

impl TatPolicy {
    /// Default at-risk threshold: 80 % of the target.
    pub const DEFAULT_AT_RISK_PERCENT: u8 = 80;

    /// Builds a policy; `start` must precede `end`, `at_risk_percent` in 1..=99.
    pub fn new(
        start: Milestone,
        end: Milestone,
        at_risk_percent: u8,
        targets: TatTargets,
    ) -> Result<Self, TatError> {
        if start >= end {
            return Err(TatError::StartNotBeforeEnd { start, end });
        }
        if !(1..=99).contains(&at_risk_percent) {
            return Err(TatError::AtRiskPercent {
                percent: at_risk_percent,
            });
        }
        Ok(Self {
            start,
            end,
            at_risk_percent,
            targets,
        })
    }

    /// In-lab TAT (received → verified), at risk at 80 %.
    pub fn in_lab(targets: TatTargets) -> Self {
        Self {
            start: Milestone::Received,
            end: Milestone::Verified,
            at_risk_percent: Self::DEFAULT_AT_RISK_PERCENT,
            targets,
        }
    }

    /// Start milestone.
    pub fn start(&self) -> Milestone {
        self.start
    }
    /// End milestone.
    pub fn end(&self) -> Milestone {
        self.end
    }
}

/// TAT status of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TatStatus {
    /// The start milestone has not happened yet.
    NotStarted,
    /// No target is configured for the priority.
    NoTarget,
    OnTime,
    AtRisk,
    Overdue,
    /// Finished within the target.
    Met,
    /// Finished after the target.
    Missed,
}

impl TatStatus {
    /// Stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "not_started",
            Self::NoTarget => "no_target",
            Self::OnTime => "on_time",
            Self::AtRisk => "at_risk",
            Self::Overdue => "overdue",
            Self::Met => "met",
            Self::Missed => "missed",
        }
    }
}

/// Result of evaluating one test's TAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TatEvaluation {
    pub status: TatStatus,
    /// Start → end (or → now while running); `None` if not started.
    pub elapsed: Option<SignedDuration>,
    pub target: Option<SignedDuration>,
    /// Target − elapsed (negative once breached); `None` without target or start.
    pub remaining: Option<SignedDuration>,
}

/// Evaluates TAT for one test at `now`.
pub fn evaluate(
    milestones: &Milestones,
    priority: Priority,
    now: Timestamp,
    policy: &TatPolicy,
) -> TatEvaluation {
    let target = policy.targets.target(priority);
    let Some(start) = milestones.get(policy.start) else {
        return TatEvaluation {
            status: TatStatus::NotStarted,
            elapsed: None,
            target,
            remaining: None,
        };
    };
    let finished = milestones.get(policy.end);
    let elapsed = finished.unwrap_or(now).duration_since(start);
    let Some(target) = target else {
        return TatEvaluation {
            status: TatStatus::NoTarget,
            elapsed: Some(elapsed),
            target: None,
            remaining: None,
        };
    };
    let status = match finished {
        Some(_) if elapsed <= target => TatStatus::Met,
        Some(_) => TatStatus::Missed,
        None if elapsed > target => TatStatus::Overdue,
        None if elapsed.as_nanos() * 100
            >= target.as_nanos() * i128::from(policy.at_risk_percent) =>
        {
            TatStatus::AtRisk
        }
        None => TatStatus::OnTime,
    };
    TatEvaluation {
        status,
        elapsed: Some(elapsed),
        target: Some(target),
        remaining: target.checked_sub(elapsed),
    }
}

/// One test to watch; `key` is the caller's identifier (e.g. order-test id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TatItem<K> {
    pub key: K,
    pub priority: Priority,
    pub milestones: Milestones,
}

/// An at-risk or overdue item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueEntry<'a, K> {
    pub item: &'a TatItem<K>,
    pub evaluation: TatEvaluation,
}

/// The running items that are at risk or overdue, sorted STAT first, then least remaining time.
pub fn overdue_list<'a, K: Ord>(
    items: &'a [TatItem<K>],
    now: Timestamp,
    policy: &TatPolicy,
) -> Vec<OverdueEntry<'a, K>> {
    overdue_list_by(items, now, |_| *policy)
}

/// [`overdue_list`] where each item has its own policy (targets differ from test to test).
pub fn overdue_list_by<'a, K: Ord>(
    items: &'a [TatItem<K>],
    now: Timestamp,
    policy_of: impl Fn(&TatItem<K>) -> TatPolicy,
) -> Vec<OverdueEntry<'a, K>> {
    let mut out: Vec<OverdueEntry<'a, K>> = items
        .iter()
        .map(|item| OverdueEntry {
            item,
            evaluation: evaluate(&item.milestones, item.priority, now, &policy_of(item)),
        })
        .filter(|e| matches!(e.evaluation.status, TatStatus::AtRisk | TatStatus::Overdue))
        .collect();
    out.sort_by(|a, b| {
        a.item
            .priority
            .urgency()
            .cmp(&b.item.priority.urgency())
            .then(a.evaluation.remaining.cmp(&b.evaluation.remaining))
            .then_with(|| a.item.key.cmp(&b.item.key))
    });
    out
}

impl_domain_error!(TatError);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy() -> TatPolicy {
        TatPolicy::in_lab(TatTargets::typical_chemistry())
    }

    fn received_at(s: &str) -> Milestones {
        Milestones::default().with(Milestone::Received, ts(s))
    }

    #[test]
    fn per_item_policies_rank_by_their_own_targets() {
        let now = ts("2026-11-21T10:00:00Z");
        let item = |key: u32, received: &str| TatItem {
            key,
            priority: Priority::Stat,
            milestones: received_at(received),
        };
        // Both received 50 min ago: on time against a 60 min target, overdue against 45 min.
        let items = [
            item(1, "2026-11-21T09:10:00Z"),
            item(2, "2026-11-21T09:10:00Z"),
        ];
        let short = TatTargets::new(Some(SignedDuration::from_mins(45)), None, None, None).unwrap();
        let list = overdue_list_by(&items, now, |i| {
            if i.key == 2 {
                TatPolicy::in_lab(short)
            } else {
                policy()
            }
        });
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].item.key, 2);
        assert_eq!(list[0].evaluation.status, TatStatus::Overdue);
        assert_eq!(list[1].evaluation.status, TatStatus::AtRisk);
    }

    #[test]
    fn status_thresholds() {
        let m = received_at("2026-11-21T08:00:00Z");
        let at = |t: &str| evaluate(&m, Priority::Stat, ts(t), &policy()).status;
        assert_eq!(at("2026-11-21T08:47:59Z"), TatStatus::OnTime);
        assert_eq!(at("2026-11-21T08:48:00Z"), TatStatus::AtRisk); // 80 % of 60 min
        assert_eq!(at("2026-11-21T09:00:00Z"), TatStatus::AtRisk);
        assert_eq!(at("2026-11-21T09:00:01Z"), TatStatus::Overdue);
        let e = evaluate(&m, Priority::Stat, ts("2026-11-21T09:10:00Z"), &policy());
        assert_eq!(e.remaining, Some(SignedDuration::from_mins(-10)));
        assert_eq!(
            evaluate(&m, Priority::Timed, ts("2026-11-21T09:10:00Z"), &policy()).status,
            TatStatus::NoTarget
        );
        assert_eq!(
            evaluate(
                &Milestones::default(),
                Priority::Stat,
                ts("2026-11-21T09:10:00Z"),
                &policy()
            )
            .status,
            TatStatus::NotStarted
        );
    }

    #[test]
    fn finished_items_are_met_or_missed() {
        let m = received_at("2026-11-21T08:00:00Z")
            .with(Milestone::Verified, ts("2026-11-21T08:59:00Z"));
        assert_eq!(
            evaluate(&m, Priority::Stat, ts("2026-11-22T00:00:00Z"), &policy()).status,
            TatStatus::Met
        );
        let late = m.with(Milestone::Verified, ts("2026-11-21T09:01:00Z"));
        assert_eq!(
            evaluate(&late, Priority::Stat, ts("2026-11-22T00:00:00Z"), &policy()).status,
            TatStatus::Missed
        );
    }

    #[test]
    fn configurable_start_milestone() {
        let total = TatPolicy::new(
            Milestone::Ordered,
            Milestone::Reported,
            80,
            TatTargets::typical_chemistry(),
        )
        .unwrap();
        let m = Milestones::default()
            .with(Milestone::Ordered, ts("2026-11-21T07:00:00Z"))
            .with(Milestone::Received, ts("2026-11-21T08:00:00Z"));
        assert_eq!(
            evaluate(&m, Priority::Stat, ts("2026-11-21T08:30:00Z"), &total).status,
            TatStatus::Overdue
        );
        assert_eq!(
            evaluate(&m, Priority::Stat, ts("2026-11-21T08:30:00Z"), &policy()).status,
            TatStatus::OnTime
        );
        assert_eq!(
            TatPolicy::new(
                Milestone::Verified,
                Milestone::Received,
                80,
                TatTargets::default()
            )
            .unwrap_err()
            .code(),
            "tat_start_not_before_end"
        );
        assert_eq!(
            TatPolicy::new(
                Milestone::Received,
                Milestone::Verified,
                100,
                TatTargets::default()
            )
            .unwrap_err()
            .code(),
            "tat_at_risk_percent"
        );
    }

    #[test]
    fn milestone_sequence_check() {
        let ok = received_at("2026-11-21T08:00:00Z")
            .with(Milestone::Verified, ts("2026-11-21T08:30:00Z"));
        assert_eq!(ok.check_sequence(), Ok(()));
        let bad = ok.with(Milestone::Collected, ts("2026-11-21T09:00:00Z"));
        let err = bad.check_sequence().unwrap_err();
        assert_eq!(err.code(), "tat_milestones_out_of_order");
        assert_eq!(err.field(), Some("received"));
    }

    #[test]
    fn overdue_list_orders_stat_first() {
        let now = ts("2026-11-21T12:00:00Z");
        let items = vec![
            TatItem {
                key: 1,
                priority: Priority::Routine,
                milestones: received_at("2026-11-21T07:00:00Z"),
            }, // overdue
            TatItem {
                key: 2,
                priority: Priority::Stat,
                milestones: received_at("2026-11-21T11:10:00Z"),
            }, // at risk, 10 min left
            TatItem {
                key: 3,
                priority: Priority::Stat,
                milestones: received_at("2026-11-21T10:30:00Z"),
            }, // overdue by 30 min
            TatItem {
                key: 4,
                priority: Priority::Stat,
                milestones: received_at("2026-11-21T11:50:00Z"),
            }, // on time
        ];
        let list = overdue_list(&items, now, &policy());
        let keys: Vec<i32> = list.iter().map(|e| e.item.key).collect();
        assert_eq!(keys, vec![3, 2, 1]);
    }

    proptest! {
        #[test]
        fn status_is_monotone_while_running(mins in 0i64..600, more in 0i64..600) {
            let m = received_at("2026-11-21T08:00:00Z");
            let rank = |s: TatStatus| match s { TatStatus::OnTime => 0, TatStatus::AtRisk => 1, TatStatus::Overdue => 2, _ => 99 };
            let t1 = ts("2026-11-21T08:00:00Z") + SignedDuration::from_mins(mins);
            let t2 = t1 + SignedDuration::from_mins(more);
            let s1 = evaluate(&m, Priority::Routine, t1, &policy()).status;
            let s2 = evaluate(&m, Priority::Routine, t2, &policy()).status;
            prop_assert!(rank(s1) <= rank(s2));
        }

        #[test]
        fn overdue_list_is_sorted(rows in prop::collection::vec((prop::sample::select(Priority::ALL.to_vec()), 0i64..600), 0..30)) {
            let now = ts("2026-11-21T18:00:00Z");
            let items: Vec<TatItem<usize>> = rows.iter().enumerate().map(|(i, &(p, ago))| TatItem {
                key: i,
                priority: p,
                milestones: Milestones::default().with(Milestone::Received, now - SignedDuration::from_mins(ago)),
            }).collect();
            let list = overdue_list(&items, now, &policy());
            for e in &list {
                prop_assert!(matches!(e.evaluation.status, TatStatus::AtRisk | TatStatus::Overdue));
            }
            for w in list.windows(2) {
                let (a, b) = (&w[0], &w[1]);
                prop_assert!(a.item.priority.urgency() <= b.item.priority.urgency());
                if a.item.priority == b.item.priority {
                    prop_assert!(a.evaluation.remaining <= b.evaluation.remaining);
                }
            }
        }
    }
}
