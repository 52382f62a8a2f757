//! A test's result rules (issue 11 items 3–6): reportable range, critical limits, plausibility
//! limits, autoverification limits, delta rule, serum-index limits, consistency checks and the
//! answers that are normal for a coded test; and the flags a value earns.
//!
//! Limits, documented once:
//! - Reference intervals are inclusive (a value at a limit is normal); `L`/`H` mean surely
//!   below/above it, so a censored `<0.5` is `L` only when 0.5 ≤ the low limit.
//! - Critical limits are inclusive, as labs publish them ("K ≤ 2.9 or ≥ 6.0 mmol/L"):
//!   `LL`/`HH` replace `L`/`H`.
//! - The reportable range (AMR) applies to the instrument's reading before a recorded dilution
//!   is applied. Below it the result is reported as `<low` (times the dilution); above it the
//!   number is never released: it is reported as `>high` and held for dilution.

use jiff::SignedDuration;
use rust_decimal::Decimal;

use super::interval::ShownInterval;
use super::value::{Comparator, Numeric, ResultValue};

/// A low and/or high limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub low: Option<Decimal>,
    pub high: Option<Decimal>,
}

impl Limits {
    /// Both limits.
    pub fn new(low: Option<Decimal>, high: Option<Decimal>) -> Self {
        Self { low, high }
    }
}

/// What autoverification does with a critical result (DOMAIN §2.1 item 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CriticalAction {
    /// Hold it for a technologist (the default).
    #[default]
    Hold,
    /// Release it and open the call at once.
    ReleaseAndCall,
}

/// How a delta is measured (DOMAIN §3.1; x1 = previous, x2 = current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaMode {
    /// |x2 − x1| > limit (units of the test).
    Absolute,
    /// |100 × (x2 − x1) / x1| > limit %; the denominator is the **previous** value.
    Percent,
    /// |(x2 − x1) / Δt| > limit per day, Δt between the collections.
    RatePerDay,
}

impl DeltaMode {
    /// `absolute`, `percent`, `rate_per_day`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "absolute" => Some(Self::Absolute),
            "percent" => Some(Self::Percent),
            "rate_per_day" => Some(Self::RatePerDay),
            _ => None,
        }
    }
    /// As parsed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Absolute => "absolute",
            Self::Percent => "percent",
            Self::RatePerDay => "rate_per_day",
        }
    }
}

/// A delta-check rule with its look-back window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaRule {
    pub mode: DeltaMode,
    pub limit: Decimal,
    pub window: SignedDuration,
}

/// Serum-index limits (CLSI C56), per analyte: a result whose index exceeds its limit is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexLimits {
    pub hemolysis: Option<u32>,
    pub icterus: Option<u32>,
    pub lipemia: Option<u32>,
}

/// Serum indices as the analyzer reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Indices {
    pub hemolysis: Option<u32>,
    pub icterus: Option<u32>,
    pub lipemia: Option<u32>,
}

/// A cross-analyte consistency check (DOMAIN §2.1 item 9): this test's value must not be
/// above (e.g. direct ≤ total bilirubin, HDL ≤ cholesterol) or below another test's value in
/// the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consistency {
    NotAbove(String),
    NotBelow(String),
}

/// A test's result rules, versioned by the store; the version is recorded with every decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultRules {
    pub version: i64,
    /// The analytical measurement range of the reading.
    pub reportable: Limits,
    /// The largest validated dilution (the clinically reportable range is AMR × this).
    pub max_dilution: Option<Decimal>,
    pub critical: Limits,
    pub critical_action: CriticalAction,
    /// Physiologically implausible ("absurd") limits: outside them, hold.
    pub plausible: Limits,
    /// Whether results of this test may be released without review.
    pub autoverify: bool,
    /// Autoverification limits: outside them (but not critical), hold.
    pub autoverify_limits: Limits,
    pub delta: Option<DeltaRule>,
    pub indices: IndexLimits,
    /// Coded tests: the answers that are normal (others are flagged `A`); empty = no flag.
    pub normal_answers: Vec<String>,
    pub consistency: Vec<Consistency>,
    /// Results need a pathologist's sign-off before release.
    pub requires_pathologist: bool,
}

/// An abnormal flag (HL7 v2 table 0078).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// Below the reference interval.
    Low,
    /// Above the reference interval.
    High,
    /// Critically low.
    CriticalLow,
    /// Critically high.
    CriticalHigh,
    /// Abnormal (coded).
    Abnormal,
}

impl Flag {
    /// `L`, `H`, `LL`, `HH`, `A`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "L",
            Self::High => "H",
            Self::CriticalLow => "LL",
            Self::CriticalHigh => "HH",
            Self::Abnormal => "A",
        }
    }

    /// Parses a flag as written by [`Flag::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "L" => Self::Low,
            "H" => Self::High,
            "LL" => Self::CriticalLow,
            "HH" => Self::CriticalHigh,
            "A" => Self::Abnormal,
            _ => return None,
        })
    }

    /// Whether the flag marks a critical value.
    pub fn is_critical(self) -> bool {
        matches!(self, Self::CriticalLow | Self::CriticalHigh)
    }
}

/// The flags a value earns against its interval, the critical limits and the normal answers.
pub fn flags(
    value: &ResultValue,
    interval: Option<&ShownInterval>,
    rules: &ResultRules,
) -> Vec<Flag> {
    match value {
        ResultValue::Numeric(n) => {
            let mut out = Vec::new();
            let crit = rules.critical;
            if crit.low.is_some_and(|l| n.surely_at_most(l)) {
                out.push(Flag::CriticalLow);
            } else if crit.high.is_some_and(|h| n.surely_at_least(h)) {
                out.push(Flag::CriticalHigh);
            } else if let Some(i) = interval {
                if i.low.is_some_and(|l| n.surely_below(l)) {
                    out.push(Flag::Low);
                } else if i.high.is_some_and(|h| n.surely_above(h)) {
                    out.push(Flag::High);
                }
            }
            out
        }
        ResultValue::Coded(c) => {
            let normal = rules.normal_answers.is_empty()
                || rules
                    .normal_answers
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&c.answer));
            if normal {
                Vec::new()
            } else {
                vec![Flag::Abnormal]
            }
        }
        ResultValue::Text(_) => Vec::new(),
    }
}

/// Where a reading lies against the reportable range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    Below,
    Above,
}

/// A reading turned into the reported number: the recorded dilution applied, and censored at
/// the reportable range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    pub reported: Numeric,
    pub outside: Option<Outside>,
    /// The dilution applied (`None` for an undiluted specimen).
    pub dilution: Option<Decimal>,
    /// The dilution is beyond the largest validated one.
    pub dilution_not_validated: bool,
}

/// Applies the specimen's recorded dilution to a reading and censors it at the reportable
/// range (module doc). Exact: the product keeps every decimal.
pub fn measure(reading: &Numeric, dilution: Option<Decimal>, rules: &ResultRules) -> Measured {
    let factor = dilution.unwrap_or(Decimal::ONE);
    let times = |v: Decimal| v.checked_mul(factor).unwrap_or(Decimal::MAX);
    let range = rules.reportable;
    let (reported, outside) = if range.low.is_some_and(|l| reading.surely_below(l)) {
        let l = range.low.unwrap_or_default();
        (
            Numeric {
                comparator: Some(Comparator::Lt),
                value: times(l),
            },
            Some(Outside::Below),
        )
    } else if range.high.is_some_and(|h| reading.surely_above(h)) {
        let h = range.high.unwrap_or_default();
        (
            Numeric {
                comparator: Some(Comparator::Gt),
                value: times(h),
            },
            Some(Outside::Above),
        )
    } else {
        (
            Numeric {
                comparator: reading.comparator,
                value: times(reading.value),
            },
            None,
        )
    };
    Measured {
        reported,
        outside,
        dilution,
        dilution_not_validated: dilution
            .is_some_and(|f| rules.max_dilution.is_none_or(|max| f > max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::value::parse_numeric;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn lim(l: &str, h: &str) -> Limits {
        Limits::new(Some(d(l)), Some(d(h)))
    }

    fn potassium() -> ResultRules {
        ResultRules {
            reportable: lim("1.0", "10.0"),
            max_dilution: None,
            critical: lim("2.9", "6.0"),
            ..ResultRules::default()
        }
    }

    #[test]
    fn numeric_flags_from_a_case_table() {
        let interval = ShownInterval {
            low: Some(d("3.5")),
            high: Some(d("5.1")),
            text: "3.5–5.1".into(),
        };
        let rules = potassium();
        // value → flags
        let cases: &[(&str, &[&str])] = &[
            ("4.0", &[]),
            ("3.5", &[]), // at the low limit: normal
            ("5.1", &[]), // at the high limit: normal
            ("3.4", &["L"]),
            ("5.2", &["H"]),
            ("3.0", &["L"]),
            ("2.9", &["LL"]), // critical limits are inclusive
            ("2.95", &["L"]),
            ("6.0", &["HH"]),
            ("5.99", &["H"]),
            ("<3.5", &["L"]), // every value it stands for is below 3.5
            ("<3.6", &[]),    // could be normal
            ("<=3.5", &[]),
            (">5.1", &["H"]),
            ("<2.9", &["LL"]),
            ("<3.0", &["L"]), // below 3.0 but not surely ≤ 2.9
            (">=6.0", &["HH"]),
        ];
        for (v, expected) in cases {
            let got: Vec<&str> = flags(
                &ResultValue::Numeric(parse_numeric(v).unwrap()),
                Some(&interval),
                &rules,
            )
            .into_iter()
            .map(Flag::as_str)
            .collect();
            assert_eq!(&got, expected, "{v}");
        }
        // No interval: only critical flags.
        assert!(
            flags(
                &ResultValue::Numeric(parse_numeric("5.5").unwrap()),
                None,
                &rules
            )
            .is_empty()
        );
    }

    #[test]
    fn coded_answers_outside_the_normal_ones_are_abnormal() {
        let rules = ResultRules {
            normal_answers: vec!["Negative".into()],
            ..ResultRules::default()
        };
        let coded = |a: &str| {
            ResultValue::Coded(crate::results::value::Coded {
                answer: a.into(),
                rank: 0,
            })
        };
        assert!(flags(&coded("Negative"), None, &rules).is_empty());
        assert_eq!(flags(&coded("2+"), None, &rules), vec![Flag::Abnormal]);
        assert!(flags(&coded("2+"), None, &ResultRules::default()).is_empty());
    }

    #[test]
    fn readings_outside_the_reportable_range_are_never_numbers() {
        let mut rules = potassium();
        rules.max_dilution = Some(d("10"));
        // reading, dilution → reported text, outside, dilution not validated
        type Case<'a> = (&'a str, Option<&'a str>, &'a str, Option<Outside>, bool);
        let cases: &[Case] = &[
            ("4.2", None, "4.2", None, false),
            ("0.8", None, "<1.0", Some(Outside::Below), false),
            ("10.0", None, "10.0", None, false),
            ("10.1", None, ">10.0", Some(Outside::Above), false),
            ("4.21", Some("2"), "8.42", None, false),
            ("12", Some("5"), ">50.0", Some(Outside::Above), false),
            ("4.2", Some("20"), "84.0", None, true),
            ("<1.0", None, "<1.0", Some(Outside::Below), false),
        ];
        for (reading, dil, text, outside, not_validated) in cases {
            let m = measure(&parse_numeric(reading).unwrap(), dil.map(d), &rules);
            assert_eq!(
                (
                    m.reported.text().as_str(),
                    m.outside,
                    m.dilution_not_validated
                ),
                (*text, *outside, *not_validated),
                "{reading} × {dil:?}"
            );
        }
    }
}
