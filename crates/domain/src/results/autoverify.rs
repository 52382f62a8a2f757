//! Autoverification (issue 11 item 6, CLSI AUTO10/AUTO15, DOMAIN §2): a result is released
//! without review only when every check passes; otherwise it is held with **every** reason.
//!
//! The checks run in the order of DOMAIN §2.1 and are listed in [`CHECKS`]: a new kind of check
//! is one function `fn(&ResultRules, &Facts, &mut Vec<HoldReason>)` added there. Each reason
//! has a stable code (the contract with the review screens and the audit trail). The decision
//! carries the rule-set version it was made with.

use rust_decimal::Decimal;

use super::delta::DeltaOutcome;
use super::rules::{CriticalAction, Flag, Indices, Outside, ResultRules};
use super::value::ResultValue;
use crate::specimen::stability::StabilityFinding;

/// Why a result is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldReason {
    pub code: &'static str,
    pub message: String,
}

/// The QC status of the instrument and test at analysis (the QC workflow fills it in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QcStatus {
    /// The latest QC run bracketing the result was accepted.
    Accepted,
    /// No QC is evaluated for this instrument and test yet.
    #[default]
    NotEvaluated,
    /// The latest run was rejected: results are held until a corrective action.
    Rejected,
}

/// Whether autoverification is suspended, and by which switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Suspension {
    #[default]
    None,
    LabWide,
    Test,
}

/// Everything known about a result when it is evaluated.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub value: &'a ResultValue,
    pub flags: &'a [Flag],
    pub outside: Option<Outside>,
    pub dilution_not_validated: bool,
    pub instrument_flags: &'a [String],
    pub indices: Indices,
    pub delta: DeltaOutcome,
    /// The specimen's stability judged at analysis over its whole temperature history, before
    /// and after separation (`specimen::stability::judge`; issue 10 item 2: never the last
    /// temperature alone). Empty: within stability.
    pub stability: &'a [StabilityFinding],
    /// Other results of the same order (test code, value), for consistency checks.
    pub related: &'a [(&'a str, Decimal)],
    pub qc: QcStatus,
    /// The instrument's calibration of this test is overdue (its interval has passed since
    /// the last passed calibration).
    pub calibration_overdue: bool,
    pub suspended: Suspension,
}

/// The decision: release, or hold with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Release,
    Hold(Vec<HoldReason>),
}

impl Decision {
    /// Whether the result is released.
    pub fn released(&self) -> bool {
        matches!(self, Self::Release)
    }
    /// The reasons (empty when released).
    pub fn reasons(&self) -> &[HoldReason] {
        match self {
            Self::Release => &[],
            Self::Hold(r) => r,
        }
    }
}

/// One check: pushes a reason when it fails.
pub type Check = fn(&ResultRules, &Facts<'_>, &mut Vec<HoldReason>);

/// The checks, in order (DOMAIN §2.1), with their names.
pub const CHECKS: &[(&str, Check)] = &[
    ("suspended", suspended),
    ("enabled", enabled),
    ("specimen_stability", specimen_stability),
    ("instrument_flags", instrument_flags),
    ("qc", qc),
    ("calibration", calibration),
    ("reportable_range", reportable_range),
    ("serum_indices", serum_indices),
    ("critical", critical),
    ("delta", delta),
    ("plausibility", plausibility),
    ("autoverify_limits", autoverify_limits),
    ("consistency", consistency),
    ("pathologist", pathologist),
];

/// Runs every check.
pub fn autoverify(rules: &ResultRules, facts: &Facts<'_>) -> Decision {
    let mut reasons = Vec::new();
    for (_, check) in CHECKS {
        check(rules, facts, &mut reasons);
    }
    if reasons.is_empty() {
        Decision::Release
    } else {
        Decision::Hold(reasons)
    }
}

fn hold(out: &mut Vec<HoldReason>, code: &'static str, message: String) {
    out.push(HoldReason { code, message });
}

fn suspended(_: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    match f.suspended {
        Suspension::None => {}
        Suspension::LabWide => hold(
            out,
            "autoverification_suspended",
            "autoverification is suspended for the whole laboratory".into(),
        ),
        Suspension::Test => hold(
            out,
            "autoverification_suspended",
            "autoverification is suspended for this test".into(),
        ),
    }
}

fn enabled(r: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if !r.autoverify {
        hold(
            out,
            "manual_review",
            "this test's results are always reviewed by a technologist".into(),
        );
    } else if matches!(f.value, ResultValue::Text(_)) {
        hold(
            out,
            "manual_review",
            "text results are always reviewed".into(),
        );
    }
}

fn specimen_stability(_: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if f.stability.is_empty() {
        return;
    }
    let found: Vec<String> = f.stability.iter().map(ToString::to_string).collect();
    hold(
        out,
        "specimen_not_stable",
        format!("analysed out of stability: {}", found.join("; ")),
    );
}

fn instrument_flags(_: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if !f.instrument_flags.is_empty() {
        hold(
            out,
            "instrument_flag",
            format!(
                "the instrument flagged the result: {}",
                f.instrument_flags.join(", ")
            ),
        );
    }
}

fn qc(_: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if f.qc == QcStatus::Rejected {
        hold(
            out,
            "qc",
            "the latest QC run of this instrument and test was rejected".into(),
        );
    }
}

fn calibration(_: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if f.calibration_overdue {
        hold(
            out,
            "calibration",
            "the instrument's calibration of this test is overdue".into(),
        );
    }
}

fn reportable_range(_: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if f.outside == Some(Outside::Above) {
        hold(
            out,
            "above_reportable_range",
            "above the reportable range: dilute and repeat, or release as \">\" the limit".into(),
        );
    }
    if f.dilution_not_validated {
        hold(
            out,
            "dilution_not_validated",
            "the specimen's dilution is beyond the largest validated one".into(),
        );
    }
}

fn serum_indices(r: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    let checks = [
        ("hemolysis", f.indices.hemolysis, r.indices.hemolysis),
        ("icterus", f.indices.icterus, r.indices.icterus),
        ("lipemia", f.indices.lipemia, r.indices.lipemia),
    ];
    for (name, got, limit) in checks {
        if let (Some(got), Some(limit)) = (got, limit)
            && got > limit
        {
            hold(
                out,
                "serum_index",
                format!("{name} index {got} is above this test's limit {limit}"),
            );
        }
    }
}

fn critical(r: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if r.critical_action == CriticalAction::Hold && f.flags.iter().any(|x| x.is_critical()) {
        hold(
            out,
            "critical",
            "critical value: review, then call it to a responsible caregiver".into(),
        );
    }
}

fn delta(_: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if let DeltaOutcome::Failed { delta, limit } = f.delta {
        let shown = if delta == Decimal::MAX {
            "unbounded".to_owned()
        } else {
            delta.round_dp(2).normalize().to_string()
        };
        hold(
            out,
            "delta",
            format!(
                "changed by {shown} since the previous result (limit {limit}): check identity and specimen"
            ),
        );
    }
}

fn outside_limits(n: &super::value::Numeric, limits: super::rules::Limits) -> bool {
    limits.low.is_some_and(|l| !n.surely_at_least(l))
        || limits.high.is_some_and(|h| !n.surely_at_most(h))
}

fn plausibility(r: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if let Some(n) = f.value.numeric()
        && outside_limits(n, r.plausible)
    {
        hold(
            out,
            "implausible",
            "physiologically implausible: suspect contamination or the wrong specimen".into(),
        );
    }
}

fn autoverify_limits(r: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if let Some(n) = f.value.numeric()
        && outside_limits(n, r.autoverify_limits)
        && !f.flags.iter().any(|x| x.is_critical())
    {
        hold(
            out,
            "autoverify_limits",
            "outside the range this test's results are released automatically in".into(),
        );
    }
}

fn consistency(r: &ResultRules, f: &Facts<'_>, out: &mut Vec<HoldReason>) {
    use super::rules::Consistency;
    let Some(n) = f.value.numeric() else { return };
    for c in &r.consistency {
        let (other, above) = match c {
            Consistency::NotAbove(o) => (o, true),
            Consistency::NotBelow(o) => (o, false),
        };
        let Some((_, v)) = f.related.iter().find(|(code, _)| *code == other.as_str()) else {
            continue;
        };
        if above && n.surely_above(*v) {
            hold(
                out,
                "inconsistent",
                format!("higher than {other} ({v}) of the same order"),
            );
        } else if !above && n.surely_below(*v) {
            hold(
                out,
                "inconsistent",
                format!("lower than {other} ({v}) of the same order"),
            );
        }
    }
}

fn pathologist(r: &ResultRules, _: &Facts<'_>, out: &mut Vec<HoldReason>) {
    if r.requires_pathologist {
        hold(
            out,
            "pathologist_review",
            "a pathologist signs this test's results off".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Stability, Temperature};
    use crate::results::rules::{IndexLimits, Limits, flags};
    use crate::results::value::{ResultValue, parse_numeric};
    use crate::specimen::stability::{StabilityRule, TemperatureSegment, TemperatureStage, judge};
    use jiff::{SignedDuration, Timestamp};
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn potassium() -> ResultRules {
        ResultRules {
            version: 3,
            reportable: Limits::new(Some(d("1.0")), Some(d("10.0"))),
            critical: Limits::new(Some(d("2.9")), Some(d("6.0"))),
            plausible: Limits::new(Some(d("1.5")), Some(d("9.0"))),
            autoverify: true,
            autoverify_limits: Limits::new(Some(d("2.5")), Some(d("7.0"))),
            indices: IndexLimits {
                hemolysis: Some(20),
                ..IndexLimits::default()
            },
            ..ResultRules::default()
        }
    }

    /// One row of the case table.
    struct Case {
        name: &'static str,
        value: &'static str,
        edit: fn(&mut ResultRules, &mut Scenario),
        reasons: &'static [&'static str],
    }

    #[derive(Default)]
    struct Scenario {
        instrument_flags: Vec<String>,
        indices: Indices,
        delta: Option<DeltaOutcome>,
        age_minutes: i64,
        /// Room-temperature stability (refrigerated: a week); `None`: room temperature is not
        /// allowed.
        stability_hours: Option<i64>,
        /// Moved to a refrigerator this many minutes after collection.
        refrigerated_after_minutes: Option<i64>,
        related: Vec<(&'static str, Decimal)>,
        qc: QcStatus,
        calibration_overdue: bool,
        suspended: Suspension,
        outside: Option<Outside>,
    }

    fn run(rules: &ResultRules, value: &str, s: &Scenario) -> Decision {
        let v = ResultValue::Numeric(parse_numeric(value).unwrap());
        let fl = flags(&v, None, rules);
        let related: Vec<(&str, Decimal)> = s.related.iter().map(|(c, v)| (*c, *v)).collect();
        let drawn: Timestamp = "2026-11-21T06:00:00Z".parse().unwrap();
        let at = |m: i64| drawn.checked_add(SignedDuration::from_mins(m)).unwrap();
        let week = Some(SignedDuration::from_hours(168));
        let stability = Stability::new(
            s.stability_hours.map(SignedDuration::from_hours),
            week,
            None,
        )
        .unwrap();
        let mut segments = vec![TemperatureSegment {
            from: drawn,
            temperature: Temperature::Room,
            stage: TemperatureStage::Collection,
        }];
        if let Some(m) = s.refrigerated_after_minutes {
            segments.push(TemperatureSegment {
                from: at(m),
                temperature: Temperature::Refrigerated,
                stage: TemperatureStage::Storage,
            });
        }
        let findings = judge(
            drawn,
            None,
            &segments,
            at(s.age_minutes),
            &StabilityRule::simple(stability),
        );
        autoverify(
            rules,
            &Facts {
                value: &v,
                flags: &fl,
                outside: s.outside,
                dilution_not_validated: false,
                instrument_flags: &s.instrument_flags,
                indices: s.indices,
                delta: s.delta.unwrap_or(DeltaOutcome::NoPrevious),
                stability: &findings,
                related: &related,
                qc: s.qc,
                calibration_overdue: s.calibration_overdue,
                suspended: s.suspended,
            },
        )
    }

    #[test]
    fn every_rule_from_a_case_table() {
        let cases = [
            Case {
                name: "normal",
                value: "4.2",
                edit: |_, _| {},
                reasons: &[],
            },
            Case {
                name: "abnormal, not critical, within limits",
                value: "5.6",
                edit: |_, _| {},
                reasons: &[],
            },
            Case {
                name: "suspended lab-wide",
                value: "4.2",
                edit: |_, s| s.suspended = Suspension::LabWide,
                reasons: &["autoverification_suspended"],
            },
            Case {
                name: "suspended for the test",
                value: "4.2",
                edit: |_, s| s.suspended = Suspension::Test,
                reasons: &["autoverification_suspended"],
            },
            Case {
                name: "test never autoverified",
                value: "4.2",
                edit: |r, _| r.autoverify = false,
                reasons: &["manual_review"],
            },
            Case {
                name: "stale specimen",
                value: "4.2",
                edit: |_, s| s.age_minutes = 25 * 60,
                reasons: &["specimen_not_stable"],
            },
            Case {
                name: "stable at the limit",
                value: "4.2",
                edit: |_, s| s.age_minutes = 24 * 60,
                reasons: &[],
            },
            // Issue 10 item 2: the history counts, not the last temperature. 20 h at room
            // temperature (83 %) then 20 h refrigerated (12 %): within.
            Case {
                name: "room then refrigerated, within",
                value: "4.2",
                edit: |_, s| {
                    s.refrigerated_after_minutes = Some(20 * 60);
                    s.age_minutes = 40 * 60;
                },
                reasons: &[],
            },
            // 30 h at room temperature, then refrigerated: out of stability although the tube
            // is refrigerated now and 40 h is well within the refrigerated week.
            Case {
                name: "room then refrigerated, over",
                value: "4.2",
                edit: |_, s| {
                    s.refrigerated_after_minutes = Some(30 * 60);
                    s.age_minutes = 40 * 60;
                },
                reasons: &["specimen_not_stable"],
            },
            Case {
                name: "temperature not allowed",
                value: "4.2",
                edit: |_, s| s.stability_hours = None,
                reasons: &["specimen_not_stable"],
            },
            Case {
                name: "instrument flag",
                value: "4.2",
                edit: |_, s| s.instrument_flags = vec!["clot".into()],
                reasons: &["instrument_flag"],
            },
            Case {
                name: "qc rejected",
                value: "4.2",
                edit: |_, s| s.qc = QcStatus::Rejected,
                reasons: &["qc"],
            },
            Case {
                name: "calibration overdue",
                value: "4.2",
                edit: |_, s| s.calibration_overdue = true,
                reasons: &["calibration"],
            },
            Case {
                name: "qc rejected and calibration overdue",
                value: "4.2",
                edit: |_, s| {
                    s.qc = QcStatus::Rejected;
                    s.calibration_overdue = true;
                },
                reasons: &["qc", "calibration"],
            },
            Case {
                name: "above the AMR",
                value: ">10.0",
                edit: |_, s| s.outside = Some(Outside::Above),
                reasons: &["above_reportable_range", "critical", "implausible"],
            },
            Case {
                name: "haemolysed",
                value: "4.2",
                edit: |_, s| s.indices.hemolysis = Some(21),
                reasons: &["serum_index"],
            },
            Case {
                name: "haemolysis at the limit",
                value: "4.2",
                edit: |_, s| s.indices.hemolysis = Some(20),
                reasons: &[],
            },
            Case {
                name: "critical, held",
                value: "6.1",
                edit: |_, _| {},
                reasons: &["critical"],
            },
            Case {
                name: "critical, released and called",
                value: "6.1",
                edit: |r, _| r.critical_action = CriticalAction::ReleaseAndCall,
                reasons: &[],
            },
            Case {
                name: "delta failed",
                value: "4.2",
                edit: |_, s| {
                    s.delta = Some(DeltaOutcome::Failed {
                        delta: d("1.6"),
                        limit: d("1.0"),
                    })
                },
                reasons: &["delta"],
            },
            Case {
                name: "delta passed",
                value: "4.2",
                edit: |_, s| s.delta = Some(DeltaOutcome::Passed { delta: d("0.2") }),
                reasons: &[],
            },
            Case {
                name: "implausible low",
                value: "1.4",
                edit: |_, _| {},
                reasons: &["critical", "implausible"],
            },
            Case {
                name: "outside autoverify limits",
                value: "2.4",
                edit: |r, _| r.critical = Limits::default(),
                reasons: &["autoverify_limits"],
            },
            Case {
                name: "inconsistent",
                value: "4.2",
                edit: |r, s| {
                    r.consistency =
                        vec![crate::results::rules::Consistency::NotAbove("TBIL".into())];
                    s.related = vec![("TBIL", d("3.0"))];
                },
                reasons: &["inconsistent"],
            },
            Case {
                name: "consistent",
                value: "2.2",
                edit: |r, s| {
                    r.critical = Limits::default();
                    r.autoverify_limits = Limits::default();
                    r.consistency =
                        vec![crate::results::rules::Consistency::NotAbove("TBIL".into())];
                    s.related = vec![("TBIL", d("3.0"))];
                },
                reasons: &[],
            },
            Case {
                name: "pathologist",
                value: "4.2",
                edit: |r, _| r.requires_pathologist = true,
                reasons: &["pathologist_review"],
            },
            Case {
                name: "everything at once",
                value: "4.2",
                edit: |r, s| {
                    r.requires_pathologist = true;
                    s.qc = QcStatus::Rejected;
                    s.instrument_flags = vec!["clot".into()];
                },
                reasons: &["instrument_flag", "qc", "pathologist_review"],
            },
        ];
        for c in cases {
            let mut rules = potassium();
            let mut s = Scenario {
                stability_hours: Some(24),
                age_minutes: 60,
                ..Scenario::default()
            };
            (c.edit)(&mut rules, &mut s);
            let decision = run(&rules, c.value, &s);
            let codes: Vec<&str> = decision.reasons().iter().map(|r| r.code).collect();
            assert_eq!(codes, c.reasons, "{}", c.name);
            assert_eq!(decision.released(), c.reasons.is_empty(), "{}", c.name);
            for r in decision.reasons() {
                assert!(!r.message.is_empty(), "{}", c.name);
            }
        }
    }

    #[test]
    fn a_reason_names_the_figures() {
        let rules = potassium();
        let s = Scenario {
            stability_hours: Some(24),
            age_minutes: 25 * 60 + 3,
            ..Scenario::default()
        };
        let decision = run(&rules, "4.2", &s);
        assert_eq!(
            decision.reasons()[0].message,
            "analysed out of stability: 1 d 1 h after collection it has used 104 % of its \
             stability over its temperature history"
        );
    }

    proptest! {
        /// Released exactly when no check fails, and one more failing fact never releases.
        #[test]
        fn never_both_released_and_held(value in 10i64..120, hem in proptest::option::of(0u32..40),
                                        flagged in any::<bool>(), qc_bad in any::<bool>(), cal_bad in any::<bool>(), age in 0i64..3000) {
            let rules = potassium();
            let mut s = Scenario { stability_hours: Some(24), age_minutes: age, indices: Indices { hemolysis: hem, ..Indices::default() }, ..Scenario::default() };
            let text = Decimal::new(value, 1).to_string();
            let before = run(&rules, &text, &s);
            prop_assert_eq!(before.released(), before.reasons().is_empty());
            if flagged { s.instrument_flags = vec!["flag".into()]; }
            if qc_bad { s.qc = QcStatus::Rejected; }
            if cal_bad { s.calibration_overdue = true; }
            let after = run(&rules, &text, &s);
            if flagged || qc_bad || cal_bad {
                prop_assert!(!after.released());
            }
            for r in before.reasons() {
                prop_assert!(after.reasons().contains(r));
            }
        }
    }
}
