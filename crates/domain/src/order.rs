//! Ordering: test codes, container (tube) planning and add-on checks.
//!
//! # Rules and sources
//! - Tube planning: tests that need the same specimen type in the same container type share a
//!   tube; their minimum volumes add up; when the container's usable volume
//!   ([`ContainerType::usable_volume_ul`], [CONFIG]) would be exceeded another tube of the same
//!   type is added. Packing is first-fit decreasing (largest volume first, ties by test code),
//!   which keeps the number of tubes — and so the blood drawn — low; it guarantees that no two
//!   tubes of one kind could have been merged. A single test needing more than one tube holds is
//!   refused (it can't be split).
//! - Draw list order: CLSI GP41 order of draw (DOMAIN §6.2) via [`ContainerType::draw_rank`],
//!   then container code, specimen type and tube number, so the plan is fully deterministic and
//!   does not depend on the order in which tests were entered.
//! - Discard tube (DOMAIN §6.2): with a winged (butterfly) set, a citrate tube drawn first needs
//!   a discard tube before it ([`needs_discard_tube`], [`discard_tube_before`] for an order's
//!   tubes still to be drawn).
//! - Priorities reuse [`crate::catalog::Priority`] (HL7 S/A/R/T).
//! - Add-on tests (DOMAIN §6.3, §11.1): a test may be added to a specimen already collected only
//!   while the specimen is within the test's stability at the temperature it has been kept.
//!   Elapsed time equal to the limit is still within stability; one second more is not.

use std::collections::BTreeMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use thiserror::Error;

use crate::catalog::{
    ContainerCode, ContainerType, Department, DrawRank, SpecimenType, Stability, Temperature,
};
use crate::error::impl_domain_error;
use crate::specimen::stability::{SpecimenHistory, StabilityFinding, StabilityRule};

mod add_on;
pub use add_on::{AddOnPlacement, AddOnTube, place_add_on};

/// A test code from the lab's catalogue: 1–20 characters of `[A-Z0-9._-]`, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TestCode(String);

/// Why a test code was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a test code is 1–20 characters of A–Z, 0–9, '.', '_' or '-'; got {input:?}")]
pub struct TestCodeError {
    /// The rejected input.
    pub input: String,
}

impl TestCodeError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "test_code"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("test_code")
    }
}

impl TestCode {
    /// Longest test code, in characters.
    pub const MAX_LEN: usize = 20;

    /// Parses a test code (upper-cased).
    pub fn parse(input: &str) -> Result<Self, TestCodeError> {
        let ok = (1..=Self::MAX_LEN).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(TestCodeError {
                input: input.to_owned(),
            });
        }
        Ok(Self(input.to_ascii_uppercase()))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TestCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One ordered test with its specimen requirements (from the catalogue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedTest {
    pub test_code: TestCode,
    pub specimen_type: SpecimenType,
    pub container: ContainerCode,
    /// Minimum specimen volume in µL (including the analyser's dead volume, [CONFIG]).
    pub min_volume_ul: u32,
    pub department: Department,
}

/// One tube of the draw list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTube {
    pub container: ContainerCode,
    pub specimen_type: SpecimenType,
    pub draw_rank: DrawRank,
    /// Tests served by this tube, sorted by code.
    pub tests: Vec<TestCode>,
    /// Departments of those tests (sorted, unique) — input for routing/aliquot planning.
    pub departments: Vec<Department>,
    /// Sum of the tests' minimum volumes, µL.
    pub volume_ul: u32,
    /// Usable volume of the container, µL.
    pub capacity_ul: u32,
}

/// Why no tube plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error(
        "test {test_code} needs container {container}, which is not in the container catalogue"
    )]
    UnknownContainer {
        test_code: TestCode,
        container: ContainerCode,
    },
    #[error(
        "test {test_code} needs {required_ul} µL but one {container} holds only {capacity_ul} µL"
    )]
    ExceedsContainer {
        test_code: TestCode,
        container: ContainerCode,
        required_ul: u32,
        capacity_ul: u32,
    },
    #[error("test {test_code} is ordered twice")]
    DuplicateTest { test_code: TestCode },
}

impl PlanError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownContainer { .. } => "plan_unknown_container",
            Self::ExceedsContainer { .. } => "plan_test_exceeds_container",
            Self::DuplicateTest { .. } => "plan_duplicate_test",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("tests")
    }
}

/// Plans the tubes to draw for `tests`, in CLSI GP41 order of draw (see the module doc).
pub fn plan_containers(
    tests: &[OrderedTest],
    containers: &[ContainerType],
) -> Result<Vec<PlannedTube>, PlanError> {
    let mut seen = std::collections::BTreeSet::new();
    // Group key sorts in draw order: (rank, container code, specimen type).
    let mut groups: BTreeMap<(DrawRank, ContainerCode, SpecimenType), (u32, Vec<&OrderedTest>)> =
        BTreeMap::new();
    for test in tests {
        if !seen.insert(&test.test_code) {
            return Err(PlanError::DuplicateTest {
                test_code: test.test_code.clone(),
            });
        }
        let container = containers
            .iter()
            .find(|c| c.code == test.container)
            .ok_or_else(|| PlanError::UnknownContainer {
                test_code: test.test_code.clone(),
                container: test.container.clone(),
            })?;
        if test.min_volume_ul > container.usable_volume_ul {
            return Err(PlanError::ExceedsContainer {
                test_code: test.test_code.clone(),
                container: container.code.clone(),
                required_ul: test.min_volume_ul,
                capacity_ul: container.usable_volume_ul,
            });
        }
        groups
            .entry((
                container.draw_rank,
                container.code.clone(),
                test.specimen_type,
            ))
            .or_insert_with(|| (container.usable_volume_ul, Vec::new()))
            .1
            .push(test);
    }

    let mut plan = Vec::new();
    for ((draw_rank, container, specimen_type), (capacity_ul, mut members)) in groups {
        members.sort_by(|a, b| {
            b.min_volume_ul
                .cmp(&a.min_volume_ul)
                .then_with(|| a.test_code.cmp(&b.test_code))
        });
        let mut tubes: Vec<(u32, Vec<&OrderedTest>)> = Vec::new();
        for test in members {
            // Each test fits an empty tube (checked above), so first fit always succeeds.
            match tubes
                .iter_mut()
                .find(|(used, _)| capacity_ul - *used >= test.min_volume_ul)
            {
                Some((used, assigned)) => {
                    *used += test.min_volume_ul;
                    assigned.push(test);
                }
                None => tubes.push((test.min_volume_ul, vec![test])),
            }
        }
        for (volume_ul, assigned) in tubes {
            let mut codes: Vec<TestCode> = assigned.iter().map(|t| t.test_code.clone()).collect();
            codes.sort();
            let mut departments: Vec<Department> = assigned.iter().map(|t| t.department).collect();
            departments.sort();
            departments.dedup();
            plan.push(PlannedTube {
                container: container.clone(),
                specimen_type,
                draw_rank,
                tests: codes,
                departments,
                volume_ul,
                capacity_ul,
            });
        }
    }
    Ok(plan)
}

/// Whether a discard tube must be drawn first (DOMAIN §6.2, CLSI GP41): when a winged
/// (butterfly) collection set is used and the citrate tube is the first tube of the draw, the
/// tubing's dead-space air would under-fill it.
pub fn needs_discard_tube(plan: &[PlannedTube], winged_collection_set: bool) -> bool {
    discard_tube_before(plan.iter().map(|t| t.draw_rank), winged_collection_set)
}

/// [`needs_discard_tube`] for a draw given by its tubes' ranks (an order's tubes still to be
/// drawn, in any order): the first tube of the draw is the one of the lowest rank. A discard
/// tube is drawn only when a winged set is used and that tube is a citrate tube; a blood
/// culture drawn first (it comes before citrate in CLSI GP41) already clears the tubing's air,
/// and an empty draw needs nothing.
pub fn discard_tube_before(
    draw_ranks: impl IntoIterator<Item = DrawRank>,
    winged_collection_set: bool,
) -> bool {
    winged_collection_set && draw_ranks.into_iter().min() == Some(DrawRank::CITRATE)
}

// ---------------------------------------------------------------------------------------------
// Stability and add-on

/// A stability problem for a specimen kept at a temperature since collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StabilityProblem {
    #[error("the collection time is after now")]
    CollectedInFuture,
    #[error("the specimen must not be kept {temperature}")]
    TemperatureNotAllowed { temperature: Temperature },
    #[error(
        "the specimen is {} old; stability is {}",
        crate::duration::human(.elapsed),
        crate::duration::human(.limit)
    )]
    Exceeded {
        elapsed: SignedDuration,
        limit: SignedDuration,
    },
    /// Judged over the temperature history (issue 10 item 2): the cumulative fraction of the
    /// limits is above one.
    #[error(
        "the specimen is {} old and has used {used_percent} % of its stability over its \
         temperature history",
        crate::duration::human(.elapsed)
    )]
    HistoryExceeded {
        elapsed: SignedDuration,
        used_percent: u64,
    },
    /// A special-handling flag of the test was broken (kept refrigerated against "do not
    /// refrigerate", at room temperature against "on ice").
    #[error("the specimen was kept {temperature} against {flag}")]
    HandlingBroken {
        flag: crate::catalog::SpecialHandling,
        temperature: Temperature,
    },
}

/// Checks that a specimen collected at `collected_at` and kept at `temperature` is still within
/// `stability` at `now`.
pub fn check_stability(
    collected_at: Timestamp,
    now: Timestamp,
    temperature: Temperature,
    stability: &Stability,
) -> Result<(), StabilityProblem> {
    if collected_at > now {
        return Err(StabilityProblem::CollectedInFuture);
    }
    let limit = stability
        .limit(temperature)
        .ok_or(StabilityProblem::TemperatureNotAllowed { temperature })?;
    let elapsed = now.duration_since(collected_at);
    if elapsed > limit {
        return Err(StabilityProblem::Exceeded { elapsed, limit });
    }
    Ok(())
}

/// Why an add-on test can't be run on the existing specimen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("add-on refused: {0}")]
pub struct AddOnError(pub StabilityProblem);

impl AddOnError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self.0 {
            StabilityProblem::CollectedInFuture => "add_on_collected_in_future",
            StabilityProblem::TemperatureNotAllowed { .. } => "add_on_temperature_not_allowed",
            StabilityProblem::Exceeded { .. } | StabilityProblem::HistoryExceeded { .. } => {
                "add_on_stability_exceeded"
            }
            StabilityProblem::HandlingBroken { .. } => "add_on_handling_broken",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        None
    }
}

/// Whether a test with the stability `rule` can be added on to a specimen collected at
/// `collected_at` with its temperature `history` (issue 10 item 2: judged over every segment
/// by the cumulative fraction of `specimen::stability`, before and after separation, with the
/// test's handling flags; never by the last temperature alone). A specimen with no recorded
/// segment is judged as kept at room temperature since collection.
pub fn can_add_on(
    collected_at: Timestamp,
    now: Timestamp,
    history: &SpecimenHistory,
    rule: &StabilityRule,
) -> Result<(), AddOnError> {
    if collected_at > now {
        return Err(AddOnError(StabilityProblem::CollectedInFuture));
    }
    let findings = history.judge(collected_at, now, rule);
    match findings.first() {
        None => Ok(()),
        Some(StabilityFinding::TemperatureNotAllowed { temperature, .. }) => {
            Err(AddOnError(StabilityProblem::TemperatureNotAllowed {
                temperature: *temperature,
            }))
        }
        Some(StabilityFinding::Exceeded {
            elapsed,
            used_percent,
            ..
        }) => Err(AddOnError(StabilityProblem::HistoryExceeded {
            elapsed: *elapsed,
            used_percent: *used_percent,
        })),
        Some(StabilityFinding::Handling {
            flag, temperature, ..
        }) => Err(AddOnError(StabilityProblem::HandlingBroken {
            flag: *flag,
            temperature: *temperature,
        })),
    }
}

impl_domain_error!(TestCodeError, PlanError, AddOnError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specimen::stability::{TemperatureSegment, TemperatureStage};
    use proptest::prelude::*;

    fn test(
        code: &str,
        st: SpecimenType,
        container: &str,
        vol: u32,
        dept: Department,
    ) -> OrderedTest {
        OrderedTest {
            test_code: TestCode::parse(code).unwrap(),
            specimen_type: st,
            container: ContainerCode::parse(container).unwrap(),
            min_volume_ul: vol,
            department: dept,
        }
    }

    #[test]
    fn test_code_parse() {
        assert_eq!(TestCode::parse("bmp").unwrap().as_str(), "BMP");
        assert_eq!(TestCode::parse("").unwrap_err().code(), "test_code");
        assert!(TestCode::parse("A B").is_err());
    }

    #[test]
    fn shared_tubes_follow_order_of_draw() {
        use Department::*;
        use SpecimenType::*;
        let tests = vec![
            test("CBC", WholeBlood, "LAV", 1000, Hematology),
            test("GLU", Plasma, "GRY", 500, Chemistry),
            test("BMP", Serum, "SST", 800, Chemistry),
            test("PT", Plasma, "BLU", 1000, Coagulation),
            test("LIPID", Serum, "SST", 700, Chemistry),
            test("HBA1C", WholeBlood, "LAV", 500, Chemistry),
        ];
        let plan = plan_containers(&tests, &ContainerType::defaults()).unwrap();
        let order: Vec<&str> = plan.iter().map(|t| t.container.as_str()).collect();
        assert_eq!(order, ["BLU", "SST", "LAV", "GRY"]);
        assert_eq!(plan[1].volume_ul, 1500);
        assert_eq!(
            plan[1].tests,
            vec![
                TestCode::parse("BMP").unwrap(),
                TestCode::parse("LIPID").unwrap()
            ]
        );
        assert_eq!(plan[2].departments, vec![Chemistry, Hematology]);
    }

    #[test]
    fn overflow_splits_into_another_tube() {
        let tests = vec![
            test("A", SpecimenType::Serum, "SST", 1500, Department::Chemistry),
            test("B", SpecimenType::Serum, "SST", 1000, Department::Chemistry),
            test("C", SpecimenType::Serum, "SST", 700, Department::Chemistry),
        ];
        // SST usable volume is 2200 µL: A+C = 2200 fits exactly, B goes to a second tube.
        let plan = plan_containers(&tests, &ContainerType::defaults()).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].volume_ul, 2200);
        assert_eq!(plan[1].volume_ul, 1000);
    }

    #[test]
    fn discard_tube_only_for_winged_set_with_citrate_first() {
        let defaults = ContainerType::defaults();
        let pt = [test(
            "PT",
            SpecimenType::Plasma,
            "BLU",
            1000,
            Department::Coagulation,
        )];
        let plan = plan_containers(&pt, &defaults).unwrap();
        assert!(needs_discard_tube(&plan, true));
        assert!(!needs_discard_tube(&plan, false));
        let with_culture = [
            pt[0].clone(),
            test(
                "BCX",
                SpecimenType::WholeBlood,
                "BCX",
                8000,
                Department::Microbiology,
            ),
        ];
        let plan = plan_containers(&with_culture, &defaults).unwrap();
        assert!(!needs_discard_tube(&plan, true));
        assert!(!needs_discard_tube(&[], true));
    }

    /// CLSI GP41 (DOMAIN §6.2): the discard tube, case by case.
    #[test]
    fn discard_tube_case_table() {
        use DrawRank as R;
        #[rustfmt::skip]
        let cases: &[(&str, &[DrawRank], bool, bool)] = &[
            // what is drawn,                       ranks,                               winged, discard
            ("citrate alone, winged set",           &[R::CITRATE],                       true,  true),
            ("citrate alone, straight needle",      &[R::CITRATE],                       false, false),
            ("citrate then serum and EDTA, winged", &[R::CITRATE, R::SERUM, R::EDTA],    true,  true),
            ("the same tubes listed out of order",  &[R::EDTA, R::SERUM, R::CITRATE],    true,  true),
            ("blood culture before citrate",        &[R::BLOOD_CULTURE, R::CITRATE],     true,  false),
            ("no citrate tube, winged set",         &[R::SERUM, R::HEPARIN, R::EDTA],    true,  false),
            ("urine only, winged set",              &[R::NOT_BLOOD],                     true,  false),
            ("nothing left to draw",                &[],                                 true,  false),
            ("two citrate tubes, winged set",       &[R::CITRATE, R::CITRATE],           true,  true),
        ];
        for (what, ranks, winged, expected) in cases {
            assert_eq!(
                discard_tube_before(ranks.iter().copied(), *winged),
                *expected,
                "{what}"
            );
        }
    }

    #[test]
    fn plan_errors() {
        let defaults = ContainerType::defaults();
        let too_big = [test(
            "A",
            SpecimenType::Serum,
            "SST",
            2201,
            Department::Chemistry,
        )];
        assert_eq!(
            plan_containers(&too_big, &defaults).unwrap_err().code(),
            "plan_test_exceeds_container"
        );
        let unknown = [test(
            "A",
            SpecimenType::Serum,
            "NOPE",
            1,
            Department::Chemistry,
        )];
        assert_eq!(
            plan_containers(&unknown, &defaults).unwrap_err().code(),
            "plan_unknown_container"
        );
        let dup = [
            test("A", SpecimenType::Serum, "SST", 1, Department::Chemistry),
            test("a", SpecimenType::Serum, "SST", 1, Department::Chemistry),
        ];
        assert_eq!(
            plan_containers(&dup, &defaults).unwrap_err().code(),
            "plan_duplicate_test"
        );
        assert_eq!(plan_containers(&[], &defaults), Ok(vec![]));
    }

    fn kept(from: Timestamp, t: Temperature) -> SpecimenHistory {
        SpecimenHistory::kept(from, t, TemperatureStage::Collection)
    }

    /// One row: the history (segments from the draw at 08:00), now → accepted or the code.
    #[test]
    fn add_on_case_table() {
        let collected: Timestamp = "2026-11-21T08:00:00Z".parse().unwrap();
        let rule = StabilityRule::simple(
            Stability::new(
                Some(SignedDuration::from_hours(8)),
                Some(SignedDuration::from_hours(48)),
                None,
            )
            .unwrap(),
        );
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let seg = |from: &str, t: Temperature| TemperatureSegment {
            from: at(from),
            temperature: t,
            stage: TemperatureStage::Storage,
        };
        let history = |segs: Vec<TemperatureSegment>| SpecimenHistory {
            segments: segs,
            separated_at: None,
        };
        use Temperature::{Frozen, Refrigerated, Room};
        let rows: Vec<(SpecimenHistory, &str, Result<(), &str>, &str)> = vec![
            (
                kept(collected, Room),
                "2026-11-21T16:00:00Z",
                Ok(()),
                "room, at the limit",
            ),
            (
                kept(collected, Room),
                "2026-11-21T16:00:01Z",
                Err("add_on_stability_exceeded"),
                "room, a second past",
            ),
            (
                kept(collected, Refrigerated),
                "2026-11-22T16:00:00Z",
                Ok(()),
                "refrigerated 32 h",
            ),
            (
                kept(collected, Frozen),
                "2026-11-21T09:00:00Z",
                Err("add_on_temperature_not_allowed"),
                "frozen is not allowed",
            ),
            (
                kept(collected, Room),
                "2026-11-21T07:00:00Z",
                Err("add_on_collected_in_future"),
                "drawn after now",
            ),
            // Issue 10 item 2: the history, not the last temperature. 6 h at room temperature
            // (75 %) then 13 h refrigerated (27 %): refused, though it is refrigerated now.
            (
                history(vec![
                    seg("2026-11-21T08:00:00Z", Room),
                    seg("2026-11-21T14:00:00Z", Refrigerated),
                ]),
                "2026-11-22T03:00:00Z",
                Err("add_on_stability_exceeded"),
                "room then refrigerated, over",
            ),
            // 1 h at room temperature (12.5 %) then 36 h refrigerated (75 %): accepted.
            (
                history(vec![
                    seg("2026-11-21T08:00:00Z", Room),
                    seg("2026-11-21T09:00:00Z", Refrigerated),
                ]),
                "2026-11-22T21:00:00Z",
                Ok(()),
                "room then refrigerated, within",
            ),
            // No segment recorded: judged as room temperature since the draw.
            (
                history(vec![]),
                "2026-11-21T16:00:01Z",
                Err("add_on_stability_exceeded"),
                "none",
            ),
        ];
        for (h, now, expected, why) in rows {
            assert_eq!(
                can_add_on(collected, at(now), &h, &rule).map_err(|e| e.code()),
                expected,
                "{why}"
            );
        }
        // A handling flag is broken by a segment at a forbidden temperature.
        let mut no_fridge = rule.clone();
        no_fridge.handling = vec![crate::catalog::SpecialHandling::DoNotRefrigerate];
        assert_eq!(
            can_add_on(
                collected,
                at("2026-11-21T10:00:00Z"),
                &kept(collected, Refrigerated),
                &no_fridge
            )
            .unwrap_err()
            .code(),
            "add_on_handling_broken"
        );
    }

    fn arb_tests() -> impl Strategy<Value = Vec<OrderedTest>> {
        let containers = vec!["BLU", "SST", "RED", "PST", "LAV", "GRY", "UCUP", "BCX"];
        let types = SpecimenType::ALL.to_vec();
        prop::collection::vec(
            (
                prop::sample::select(containers),
                prop::sample::select(types),
                0u32..=1200,
            ),
            0..25,
        )
        .prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (c, st, v))| test(&format!("T{i}"), st, c, v, Department::Chemistry))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn plan_invariants(tests in arb_tests(), seed in any::<u64>()) {
            let catalogue = ContainerType::defaults();
            let plan = plan_containers(&tests, &catalogue).unwrap();
            // Every test exactly once.
            let mut placed: Vec<TestCode> = plan.iter().flat_map(|t| t.tests.clone()).collect();
            placed.sort();
            let mut expected: Vec<TestCode> = tests.iter().map(|t| t.test_code.clone()).collect();
            expected.sort();
            prop_assert_eq!(placed, expected);
            for tube in &plan {
                prop_assert!(tube.volume_ul <= tube.capacity_ul);
                let sum: u32 = tests.iter().filter(|t| tube.tests.contains(&t.test_code)).map(|t| t.min_volume_ul).sum();
                prop_assert_eq!(sum, tube.volume_ul);
            }
            // Draw order never goes backwards.
            prop_assert!(plan.windows(2).all(|w| w[0].draw_rank <= w[1].draw_rank));
            // No two tubes of the same kind could be merged.
            for (i, a) in plan.iter().enumerate() {
                for b in &plan[i + 1..] {
                    if a.container == b.container && a.specimen_type == b.specimen_type {
                        prop_assert!(a.volume_ul + b.volume_ul > a.capacity_ul);
                    }
                }
            }
            // Input order does not matter.
            let mut shuffled = tests.clone();
            let n = shuffled.len();
            if n > 1 {
                let mut s = seed;
                for i in (1..n).rev() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let j = usize::try_from(s >> 33).unwrap_or(0) % (i + 1);
                    shuffled.swap(i, j);
                }
            }
            prop_assert_eq!(plan_containers(&shuffled, &catalogue).unwrap(), plan);
        }

        #[test]
        fn add_on_is_monotone_in_time(hours in 0i64..100, extra in 0i64..100) {
            let collected: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
            let stability = Stability::new(Some(SignedDuration::from_hours(24)), None, None).unwrap();
            let t1 = collected + SignedDuration::from_hours(hours);
            let t2 = t1 + SignedDuration::from_hours(extra);
            let rule = StabilityRule::simple(stability);
            let h = kept(collected, Temperature::Room);
            // Once refused, a later add-on is refused too.
            if can_add_on(collected, t1, &h, &rule).is_err() {
                prop_assert!(can_add_on(collected, t2, &h, &rule).is_err());
            }
            prop_assert_eq!(can_add_on(collected, t1, &h, &rule).is_ok(), hours <= 24);
        }
    }
}
