//! What receipt attests and checks about the tube that actually arrived (issue 10, items 5, 6
//! and 10): the container, the fill, and the specimen type really tested.
//!
//! # Explicit attestations
//! Nothing at receipt defaults to "fine". The receiving technologist states the label
//! ([`LabelStatus`]), the container in hand and the fill ([`Fill`]); the edges refuse a receipt
//! that leaves one out. A tube with a fill line (sodium citrate, DOMAIN §6.1: 9 parts blood to
//! 1 part citrate, ≥ 90 % of the nominal draw) is judged by eye against the line
//! ([`LineFill`]); every other tube by its measured content in µL.
//!
//! # One unit per quantity
//! Three volumes of a citrate tube used to contradict each other (planned 600 µL, capacity
//! 1,200 µL, under-fill limit 2,430 µL): the first two are plasma, the last is whole blood. Now
//! the *demand* of the tests and the *capacity* and *content* of a tube are all specimen
//! volume (plasma or serum available for testing, [`ContainerType::usable_volume_ul`]); the
//! whole-blood draw of a citrate tube is never compared in µL, only the line is. A citrate tube
//! filled to the line holds its usable volume ([`content_after_receipt`]).
//!
//! # Accepted specimens
//! A test accepts a list of (specimen type, container) pairs, the first being the one tube
//! planning uses (e.g. potassium: serum in SST, lithium-heparin plasma in PST; a CBC: EDTA
//! whole blood in lavender or pink). The received container must be accepted by every test on
//! the tube ([`match_container`]); the specimen type of the matching pair is the one really
//! tested, which selects the reference interval.

use crate::catalog::{ContainerCode, ContainerType, SpecimenType, code_enum};

use super::{ReceiptProblem, ReceiptTest};

code_enum! {
    /// A citrate tube's fill, judged against the line on the tube.
    LineFill, "fill" {
        /// Filled to the line (within the tube's tolerance).
        ToLine => "to_line",
        /// Below the line: too much citrate for the blood (falsely long clotting times).
        Under => "under",
        /// Above the line: too little citrate for the blood.
        Over => "over",
    }
}

/// How full the tube that arrived is, as the technologist attests it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Measured (or read off the graduation) specimen content in µL.
    Measured { volume_ul: u32 },
    /// Judged against the fill line (tubes with a minimum fill only).
    Line(LineFill),
}

/// A (specimen type, container) pair a test accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedSpecimen {
    pub specimen_type: SpecimenType,
    pub container: ContainerCode,
}

/// The outcome of [`match_container`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMatch {
    /// The specimen type tested in the received container: the type of the pair every test
    /// matched when they agree, else the planned type (an EDTA tube carrying whole-blood and
    /// plasma tests keeps its planned type).
    pub tested_type: SpecimenType,
    /// One [`ReceiptProblem::WrongContainer`] per test that does not accept the container.
    pub problems: Vec<ReceiptProblem>,
}

/// Checks the received container against every test's accepted pairs.
pub fn match_container(
    tests: &[ReceiptTest],
    received: &ContainerCode,
    planned_type: SpecimenType,
) -> ContainerMatch {
    let mut problems = Vec::new();
    let mut types: Vec<SpecimenType> = Vec::new();
    for test in tests {
        match test.accepted.iter().find(|a| &a.container == received) {
            Some(pair) => {
                if !types.contains(&pair.specimen_type) {
                    types.push(pair.specimen_type);
                }
            }
            None => problems.push(ReceiptProblem::WrongContainer {
                test_code: test.test_code.clone(),
                expected: test
                    .accepted
                    .iter()
                    .map(|a| a.container.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                actual: received.clone(),
            }),
        }
    }
    let tested_type = match types.as_slice() {
        [only] => *only,
        _ => planned_type,
    };
    ContainerMatch {
        tested_type,
        problems,
    }
}

/// Why a fill attestation does not suit the tube (an input error, not a specimen problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error("a {container} has a fill line: say whether it is filled to_line, under or over")]
    LineRequired { container: String },
    #[error("a {container} has no fill line: give its measured volume_ul")]
    VolumeRequired { container: String },
    #[error("a {container} holds at most {max_ul} µL; check the volume and its unit")]
    ExceedsContainer { container: String, max_ul: u32 },
}

impl FillError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::LineRequired { .. } => "fill_line_required",
            Self::VolumeRequired { .. } => "fill_volume_required",
            Self::ExceedsContainer { .. } => "volume_exceeds_container",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Self::LineRequired { .. } => "fill",
            Self::VolumeRequired { .. } | Self::ExceedsContainer { .. } => "volume_ul",
        })
    }
}

crate::error::impl_domain_error!(FillError);

/// Whether the attestation suits the container: a line for tubes with a minimum fill, a
/// measured volume the container can hold for the others.
pub fn check_fill_form(container: &ContainerType, fill: Fill) -> Result<(), FillError> {
    match (container.min_fill_percent.is_some(), fill) {
        (true, Fill::Line(_)) => Ok(()),
        (true, Fill::Measured { .. }) => Err(FillError::LineRequired {
            container: container.name.clone(),
        }),
        (false, Fill::Line(_)) => Err(FillError::VolumeRequired {
            container: container.name.clone(),
        }),
        (false, Fill::Measured { volume_ul }) if volume_ul > container.max_content_ul() => {
            Err(FillError::ExceedsContainer {
                container: container.name.clone(),
                max_ul: container.max_content_ul(),
            })
        }
        (false, Fill::Measured { .. }) => Ok(()),
    }
}

/// The specimen volume the tube holds after receipt, in the unit of the tests' demand: the
/// measured content, or for a tube filled to (or over) the line its usable volume; an
/// under-filled tube is counted as empty (it is refused anyway).
pub fn content_after_receipt(container: &ContainerType, fill: Fill) -> u32 {
    match fill {
        Fill::Measured { volume_ul } => volume_ul,
        Fill::Line(LineFill::ToLine | LineFill::Over) => container.usable_volume_ul,
        Fill::Line(LineFill::Under) => 0,
    }
}

/// The fill problems: a tube off its line, or less specimen than the tests need.
pub fn fill_problems(
    container: &ContainerType,
    fill: Fill,
    tests: &[ReceiptTest],
) -> Vec<ReceiptProblem> {
    let mut problems = Vec::new();
    match fill {
        Fill::Line(LineFill::Under) => problems.push(ReceiptProblem::Underfilled {
            container: container.name.clone(),
        }),
        Fill::Line(LineFill::Over) => problems.push(ReceiptProblem::Overfilled {
            container: container.name.clone(),
        }),
        Fill::Line(LineFill::ToLine) | Fill::Measured { .. } => {}
    }
    if !matches!(fill, Fill::Line(LineFill::Under)) {
        let required: u64 = tests.iter().map(|t| u64::from(t.min_volume_ul)).sum();
        let actual = content_after_receipt(container, fill);
        if u64::from(actual) < required {
            problems.push(ReceiptProblem::InsufficientVolume {
                required_ul: u32::try_from(required).unwrap_or(u32::MAX),
                actual_ul: actual,
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::TestCode;
    use crate::specimen::RejectionReason;

    fn container(code: &str) -> ContainerType {
        ContainerType::defaults()
            .into_iter()
            .find(|c| c.code.as_str() == code)
            .unwrap()
    }

    fn pair(t: SpecimenType, c: &str) -> AcceptedSpecimen {
        AcceptedSpecimen {
            specimen_type: t,
            container: ContainerCode::parse(c).unwrap(),
        }
    }

    fn test(code: &str, min: u32, accepted: Vec<AcceptedSpecimen>) -> ReceiptTest {
        ReceiptTest {
            test_code: TestCode::parse(code).unwrap(),
            accepted,
            min_volume_ul: min,
            stability: crate::specimen::stability::StabilityRule::default(),
        }
    }

    use SpecimenType as T;

    /// One row: the tests' accepted pairs, the container received, the planned type →
    /// the type tested and the tests refused.
    #[test]
    fn container_case_table() {
        let k = || {
            test(
                "K",
                500,
                vec![pair(T::Serum, "SST"), pair(T::Plasma, "PST")],
            )
        };
        let na = || test("NA", 500, vec![pair(T::Serum, "SST")]);
        let cbc = || {
            test(
                "CBC",
                1000,
                vec![pair(T::WholeBlood, "LAV"), pair(T::WholeBlood, "PNK")],
            )
        };
        let bnp = || test("BNP", 500, vec![pair(T::Plasma, "LAV")]);
        type Row = (
            Vec<ReceiptTest>,
            &'static str,
            T,
            T,
            Vec<&'static str>,
            &'static str,
        );
        let rows: Vec<Row> = vec![
            (vec![k()], "SST", T::Serum, T::Serum, vec![], "planned tube"),
            (
                vec![k()],
                "PST",
                T::Serum,
                T::Plasma,
                vec![],
                "lithium heparin instead of serum: plasma tested",
            ),
            (
                vec![k(), na()],
                "PST",
                T::Serum,
                T::Plasma,
                vec!["NA"],
                "sodium only on serum",
            ),
            (
                vec![k()],
                "LAV",
                T::Serum,
                T::Serum,
                vec!["K"],
                "EDTA for potassium",
            ),
            (
                vec![cbc()],
                "PNK",
                T::WholeBlood,
                T::WholeBlood,
                vec![],
                "pink for lavender",
            ),
            (
                vec![cbc()],
                "SST",
                T::WholeBlood,
                T::WholeBlood,
                vec!["CBC"],
                "serum tube for a CBC",
            ),
            (
                vec![cbc(), bnp()],
                "LAV",
                T::WholeBlood,
                T::WholeBlood,
                vec![],
                "whole blood and plasma on one EDTA tube: planned type kept",
            ),
            (
                vec![],
                "UCUP",
                T::Urine,
                T::Urine,
                vec![],
                "no tests: nothing to refuse",
            ),
        ];
        for (tests, received, planned, tested, refused, why) in rows {
            let m = match_container(&tests, &ContainerCode::parse(received).unwrap(), planned);
            assert_eq!(m.tested_type, tested, "{why}");
            let got: Vec<String> = m
                .problems
                .iter()
                .map(|p| match p {
                    ReceiptProblem::WrongContainer { test_code, .. } => {
                        test_code.as_str().to_owned()
                    }
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(got, refused, "{why}");
            for p in &m.problems {
                assert_eq!(p.rejection_reason(), RejectionReason::WrongContainer);
            }
        }
        let m = match_container(&[k()], &ContainerCode::parse("LAV").unwrap(), T::Serum);
        assert_eq!(
            m.problems[0].to_string(),
            "test K needs container SST or PST, got LAV"
        );
    }

    /// One row: container, fill attestation → form error code, or the problems' codes.
    #[test]
    fn fill_case_table() {
        let pt = || test("PT", 600, vec![pair(T::Plasma, "BLU")]);
        let k = || test("K", 500, vec![pair(T::Serum, "SST")]);
        type Row = (
            &'static str,
            Fill,
            Vec<ReceiptTest>,
            Result<Vec<&'static str>, &'static str>,
            &'static str,
        );
        let line = Fill::Line;
        let ml = |v| Fill::Measured { volume_ul: v };
        let rows: Vec<Row> = vec![
            (
                "BLU",
                line(LineFill::ToLine),
                vec![pt()],
                Ok(vec![]),
                "citrate to the line: 1,200 µL plasma ≥ 600 µL",
            ),
            (
                "BLU",
                line(LineFill::Under),
                vec![pt()],
                Ok(vec!["receipt_underfilled"]),
                "under the line",
            ),
            (
                "BLU",
                line(LineFill::Over),
                vec![pt()],
                Ok(vec!["receipt_overfilled"]),
                "over the line",
            ),
            (
                "BLU",
                ml(2_700),
                vec![pt()],
                Err("fill_line_required"),
                "citrate in µL",
            ),
            (
                "BLU",
                line(LineFill::ToLine),
                vec![pt(), pt(), pt()],
                Ok(vec!["receipt_insufficient_volume"]),
                "three tests of 600 µL exceed the plasma yield",
            ),
            ("SST", ml(1_000), vec![k()], Ok(vec![]), "enough serum"),
            (
                "SST",
                ml(400),
                vec![k()],
                Ok(vec!["receipt_insufficient_volume"]),
                "too little",
            ),
            ("SST", ml(0), vec![], Ok(vec![]), "no test, nothing needed"),
            (
                "SST",
                line(LineFill::ToLine),
                vec![k()],
                Err("fill_volume_required"),
                "no line on an SST",
            ),
            ("SST", ml(5_500), vec![k()], Ok(vec![]), "nominal + 10 %"),
            (
                "SST",
                ml(5_501),
                vec![k()],
                Err("volume_exceeds_container"),
                "more than a 5 mL tube holds",
            ),
            (
                "SST",
                ml(99_999),
                vec![k()],
                Err("volume_exceeds_container"),
                "99,999 µL in a 5 mL tube",
            ),
            (
                "UCUP",
                ml(99_999),
                vec![],
                Ok(vec![]),
                "a urine cup holds 100 mL",
            ),
        ];
        for (code, fill, tests, expected, why) in rows {
            let c = container(code);
            let got = check_fill_form(&c, fill).map_err(|e| e.code()).map(|()| {
                fill_problems(&c, fill, &tests)
                    .iter()
                    .map(ReceiptProblem::code)
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, expected, "{why}");
        }
    }

    #[test]
    fn citrate_quantities_agree() {
        // Planned demand, capacity and content after a correct fill are one unit (plasma):
        // the demo's coagulation test fits a tube filled to the line, which is accepted.
        let blu = container("BLU");
        let content = content_after_receipt(&blu, Fill::Line(LineFill::ToLine));
        assert_eq!(content, blu.usable_volume_ul);
        assert!(content >= 600);
        assert_eq!(content_after_receipt(&blu, Fill::Line(LineFill::Under)), 0);
        assert_eq!(
            ReceiptProblem::Underfilled {
                container: blu.name.clone()
            }
            .rejection_reason(),
            RejectionReason::Qns
        );
        assert_eq!(LineFill::parse("to_line"), Ok(LineFill::ToLine));
    }
}
