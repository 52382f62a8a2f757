//! Routing a received specimen to departments, aliquot planning and worklist ordering.
//!
//! # Rules and sources
//! - A specimen's tests determine the set of departments that need it.
//! - One physical tube can be in one place at a time. Departments may work from the same tube
//!   only if the lab allows it ([`SharingPolicy`], [CONFIG]; the default allows no sharing, e.g.
//!   hematology's whole-blood EDTA tube and chemistry can't share). Every other department gets
//!   an aliquot (child tube, DOMAIN §6.6: labelled before transfer, linked to the parent, never
//!   poured back).
//! - Which department keeps the primary tube follows a precedence list ([CONFIG], local policy —
//!   DOMAIN.md does not fix it). The default puts contamination-sensitive work first:
//!   microbiology (sterility), molecular (amplicon/carry-over), blood bank, hematology
//!   (whole blood must not be spun), coagulation, chemistry, urinalysis, send-out.
//! - Worklists: STAT first, then ASAP, timed, routine (HL7 priority), then by receipt time
//!   (oldest first), then by accession for a total, deterministic order ([`sort_key`]).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use thiserror::Error;

use crate::catalog::{Department, Priority};
use crate::error::impl_domain_error;
use crate::ids::AccessionNumber;
use crate::order::TestCode;

/// A test on the specimen and the department performing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedTest {
    pub test_code: TestCode,
    pub department: Department,
}

/// Which departments may share one tube and who keeps the primary ([CONFIG]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharingPolicy {
    /// Groups of departments that may work sequentially from the same tube.
    pub shared_groups: Vec<BTreeSet<Department>>,
    /// Precedence for the primary tube, first = keeps the primary. Departments missing from the
    /// list come after, in [`Department`] order.
    pub primary_precedence: Vec<Department>,
}

impl Default for SharingPolicy {
    fn default() -> Self {
        use Department::*;
        Self {
            shared_groups: Vec::new(),
            primary_precedence: vec![
                Microbiology,
                Molecular,
                BloodBank,
                Hematology,
                Coagulation,
                Chemistry,
                Urinalysis,
                SendOut,
            ],
        }
    }
}

impl SharingPolicy {
    fn can_share(&self, a: Department, b: Department) -> bool {
        a == b
            || self
                .shared_groups
                .iter()
                .any(|g| g.contains(&a) && g.contains(&b))
    }

    fn precedence(&self, d: Department) -> (usize, Department) {
        let rank = self
            .primary_precedence
            .iter()
            .position(|&p| p == d)
            .unwrap_or(self.primary_precedence.len());
        (rank, d)
    }
}

/// Where the primary tube goes and which aliquots to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingPlan {
    /// All departments that need the specimen.
    pub departments: BTreeSet<Department>,
    /// Departments working from the primary tube (the first keeps it).
    pub primary: Vec<Department>,
    /// Tests done on the primary tube.
    pub primary_tests: Vec<TestCode>,
    /// One aliquot per further department group, in precedence order.
    pub aliquots: Vec<AliquotRequest>,
}

/// An aliquot (child tube) to prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliquotRequest {
    /// Departments working from this aliquot.
    pub departments: Vec<Department>,
    pub tests: Vec<TestCode>,
}

/// Why a specimen can't be routed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoutingError {
    #[error("the specimen has no tests to route")]
    NoTests,
}

impl RoutingError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoTests => "routing_no_tests",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("tests")
    }
}

/// Routes a specimen's tests to departments and plans the aliquots.
pub fn plan_routing(
    tests: &[RoutedTest],
    policy: &SharingPolicy,
) -> Result<RoutingPlan, RoutingError> {
    if tests.is_empty() {
        return Err(RoutingError::NoTests);
    }
    let mut by_department: BTreeMap<Department, Vec<TestCode>> = BTreeMap::new();
    for t in tests {
        by_department
            .entry(t.department)
            .or_default()
            .push(t.test_code.clone());
    }
    let departments: BTreeSet<Department> = by_department.keys().copied().collect();
    let mut ordered: Vec<Department> = departments.iter().copied().collect();
    ordered.sort_by_key(|&d| policy.precedence(d));

    // Greedy grouping in precedence order: a department joins the first group it can share
    // with every member of.
    let mut groups: Vec<Vec<Department>> = Vec::new();
    for d in ordered {
        match groups
            .iter_mut()
            .find(|g| g.iter().all(|&m| policy.can_share(m, d)))
        {
            Some(g) => g.push(d),
            None => groups.push(vec![d]),
        }
    }
    let tests_of = |group: &[Department]| {
        let mut codes: Vec<TestCode> = group
            .iter()
            .flat_map(|d| by_department.get(d).cloned().unwrap_or_default())
            .collect();
        codes.sort();
        codes.dedup();
        codes
    };
    let mut groups = groups.into_iter();
    let primary = groups.next().unwrap_or_default();
    let primary_tests = tests_of(&primary);
    let aliquots = groups
        .map(|g| AliquotRequest {
            tests: tests_of(&g),
            departments: g,
        })
        .collect();
    Ok(RoutingPlan {
        departments,
        primary,
        primary_tests,
        aliquots,
    })
}

/// Worklist ordering key: priority urgency, then receipt time, then accession.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WorklistKey {
    urgency: u8,
    received_at: Timestamp,
    accession: String,
}

/// The worklist sort key for a specimen (sort ascending: STAT and oldest first).
pub fn sort_key(
    priority: Priority,
    received_at: Timestamp,
    accession: &AccessionNumber,
) -> WorklistKey {
    WorklistKey {
        urgency: priority.urgency(),
        received_at,
        accession: accession.as_str().to_owned(),
    }
}

impl_domain_error!(RoutingError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccessionPrefix;
    use Department::*;
    use proptest::prelude::*;

    fn rt(code: &str, d: Department) -> RoutedTest {
        RoutedTest {
            test_code: TestCode::parse(code).unwrap(),
            department: d,
        }
    }

    #[test]
    fn hematology_keeps_whole_blood_and_chemistry_gets_aliquot() {
        let plan = plan_routing(
            &[
                rt("HBA1C", Chemistry),
                rt("CBC", Hematology),
                rt("ESR", Hematology),
            ],
            &SharingPolicy::default(),
        )
        .unwrap();
        assert_eq!(plan.departments.len(), 2);
        assert_eq!(plan.primary, vec![Hematology]);
        assert_eq!(plan.primary_tests.len(), 2);
        assert_eq!(plan.aliquots.len(), 1);
        assert_eq!(plan.aliquots[0].departments, vec![Chemistry]);
    }

    #[test]
    fn microbiology_takes_primary_urine() {
        let plan = plan_routing(
            &[rt("UA", Urinalysis), rt("UCX", Microbiology)],
            &SharingPolicy::default(),
        )
        .unwrap();
        assert_eq!(plan.primary, vec![Microbiology]);
        assert_eq!(plan.aliquots[0].departments, vec![Urinalysis]);
    }

    #[test]
    fn shared_groups_avoid_aliquots() {
        let policy = SharingPolicy {
            shared_groups: vec![BTreeSet::from([Chemistry, SendOut])],
            ..SharingPolicy::default()
        };
        let plan = plan_routing(&[rt("BMP", Chemistry), rt("VITD", SendOut)], &policy).unwrap();
        assert_eq!(plan.primary, vec![Chemistry, SendOut]);
        assert!(plan.aliquots.is_empty());
        assert_eq!(
            plan_routing(&[], &policy).unwrap_err().code(),
            "routing_no_tests"
        );
    }

    #[test]
    fn stat_sorts_first_then_receipt_time() {
        let p = AccessionPrefix::parse("C").unwrap();
        let a = AccessionNumber::generate(&p, 2026, 1);
        let early: Timestamp = "2026-11-21T08:00:00Z".parse().unwrap();
        let late: Timestamp = "2026-11-21T09:00:00Z".parse().unwrap();
        let mut keys = [
            sort_key(Priority::Routine, early, &a),
            sort_key(Priority::Stat, late, &a),
            sort_key(Priority::Stat, early, &a),
        ];
        keys.sort();
        assert_eq!(keys[0], sort_key(Priority::Stat, early, &a));
        assert_eq!(keys[1], sort_key(Priority::Stat, late, &a));
    }

    proptest! {
        #[test]
        fn every_test_routed_exactly_once(
            rows in prop::collection::vec((0usize..8, prop::sample::select(Department::ALL.to_vec())), 1..20),
            share in any::<bool>(),
        ) {
            let tests: Vec<RoutedTest> = rows.iter().enumerate()
                .map(|(i, (_, d))| rt(&format!("T{i}"), *d)).collect();
            let policy = if share {
                SharingPolicy { shared_groups: vec![BTreeSet::from([Chemistry, Urinalysis, SendOut])], ..SharingPolicy::default() }
            } else {
                SharingPolicy::default()
            };
            let plan = plan_routing(&tests, &policy).unwrap();
            let mut all: Vec<TestCode> = plan.primary_tests.clone();
            all.extend(plan.aliquots.iter().flat_map(|a| a.tests.clone()));
            all.sort();
            let mut expected: Vec<TestCode> = tests.iter().map(|t| t.test_code.clone()).collect();
            expected.sort();
            prop_assert_eq!(all, expected);
            let groups = 1 + plan.aliquots.len();
            prop_assert!(groups <= plan.departments.len());
            if !share {
                prop_assert_eq!(groups, plan.departments.len());
            }
        }

        #[test]
        fn sorting_puts_higher_urgency_first(
            items in prop::collection::vec((prop::sample::select(Priority::ALL.to_vec()), 0i64..10_000), 1..30)
        ) {
            let acc = AccessionNumber::generate(&AccessionPrefix::parse("C").unwrap(), 2026, 1);
            let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
            let mut keyed: Vec<(WorklistKey, Priority, Timestamp)> = items.iter().map(|&(p, s)| {
                let t = base + jiff::SignedDuration::from_secs(s);
                (sort_key(p, t, &acc), p, t)
            }).collect();
            keyed.sort();
            for w in keyed.windows(2) {
                prop_assert!(w[0].1.urgency() <= w[1].1.urgency());
                if w[0].1 == w[1].1 {
                    prop_assert!(w[0].2 <= w[1].2);
                }
            }
        }
    }
}
