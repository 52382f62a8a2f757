//! Delta checks (issue 11 item 5, DOMAIN §3): the current result against the same patient's
//! previous released result of the same test, within the rule's look-back window.

use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;

use super::rules::{DeltaMode, DeltaRule};

/// A result to compare: its value and collection time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub value: Decimal,
    pub collected_at: Timestamp,
}

/// The outcome of a delta check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// The test has no delta rule.
    NoRule,
    /// No previous result in the window (the first result, or an older one).
    NoPrevious,
    /// Within the limit; `delta` in the rule's measure.
    Passed { delta: Decimal },
    /// Beyond the limit.
    Failed { delta: Decimal, limit: Decimal },
}

impl DeltaOutcome {
    /// Whether the check failed.
    pub fn failed(self) -> bool {
        matches!(self, Self::Failed { .. })
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Compares `current` with `previous` (the latest earlier released result, if any).
///
/// - Percent: the denominator is the previous value; a previous value of zero makes any
///   change a failure (the percentage is unbounded).
/// - Rate per day: Δt is between the two collections; collections at the same instant compare
///   as an absolute difference (the rate is unbounded when they differ).
/// - The window is measured between collections and is inclusive.
pub fn delta_check(
    rule: Option<&DeltaRule>,
    previous: Option<Point>,
    current: Point,
) -> DeltaOutcome {
    let Some(rule) = rule else {
        return DeltaOutcome::NoRule;
    };
    let Some(prev) = previous else {
        return DeltaOutcome::NoPrevious;
    };
    let elapsed = current.collected_at.duration_since(prev.collected_at);
    if elapsed < SignedDuration::ZERO || elapsed > rule.window {
        return DeltaOutcome::NoPrevious;
    }
    let diff = current.value - prev.value;
    let unbounded = DeltaOutcome::Failed {
        delta: Decimal::MAX,
        limit: rule.limit,
    };
    let delta = match rule.mode {
        DeltaMode::Absolute => diff.abs(),
        DeltaMode::Percent => {
            if prev.value.is_zero() {
                return if diff.is_zero() {
                    DeltaOutcome::Passed {
                        delta: Decimal::ZERO,
                    }
                } else {
                    unbounded
                };
            }
            match (diff * Decimal::ONE_HUNDRED).checked_div(prev.value) {
                Some(p) => p.abs(),
                None => return unbounded,
            }
        }
        DeltaMode::RatePerDay => {
            let micros = elapsed.as_micros();
            if micros == 0 {
                if diff.is_zero() {
                    return DeltaOutcome::Passed {
                        delta: Decimal::ZERO,
                    };
                }
                return unbounded;
            }
            let days = Decimal::from_i128_with_scale(micros, 0) / Decimal::from(MICROS_PER_DAY);
            match diff.checked_div(days) {
                Some(r) => r.abs(),
                None => return unbounded,
            }
        }
    };
    if delta > rule.limit {
        DeltaOutcome::Failed {
            delta,
            limit: rule.limit,
        }
    } else {
        DeltaOutcome::Passed { delta }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn p(v: &str, at: &str) -> Point {
        Point {
            value: d(v),
            collected_at: at.parse().unwrap(),
        }
    }
    fn rule(mode: DeltaMode, limit: &str, hours: i64) -> DeltaRule {
        DeltaRule {
            mode,
            limit: d(limit),
            window: SignedDuration::from_hours(hours),
        }
    }

    /// mode, limit, window h, previous (value, at), current (value, at) → failed?, delta
    type DeltaCase = (
        DeltaMode,
        &'static str,
        i64,
        (&'static str, &'static str),
        (&'static str, &'static str),
        Option<bool>,
        &'static str,
    );

    #[test]
    fn delta_modes_from_a_case_table() {
        use DeltaMode::*;
        const T0: &str = "2026-11-27T08:00:00Z";
        // mode, limit, window h, previous (value, at), current (value, at) → failed?, delta
        let cases: &[DeltaCase] = &[
            (
                Absolute,
                "1.0",
                24,
                ("4.0", T0),
                ("5.0", "2026-11-28T08:00:00Z"),
                Some(false),
                "1.0",
            ),
            (
                Absolute,
                "1.0",
                24,
                ("4.0", T0),
                ("5.1", "2026-11-28T08:00:00Z"),
                Some(true),
                "1.1",
            ),
            (
                Absolute,
                "1.0",
                24,
                ("4.0", T0),
                ("2.9", "2026-11-27T09:00:00Z"),
                Some(true),
                "1.1",
            ),
            // Outside the window: no comparison.
            (
                Absolute,
                "1.0",
                24,
                ("4.0", T0),
                ("9.0", "2026-11-28T08:00:01Z"),
                None,
                "",
            ),
            // Percent of the previous value.
            (
                Percent,
                "50",
                168,
                ("1.00", T0),
                ("1.50", "2026-11-28T08:00:00Z"),
                Some(false),
                "50",
            ),
            (
                Percent,
                "50",
                168,
                ("1.00", T0),
                ("1.51", "2026-11-28T08:00:00Z"),
                Some(true),
                "51",
            ),
            (
                Percent,
                "50",
                168,
                ("2.00", T0),
                ("0.99", "2026-11-28T08:00:00Z"),
                Some(true),
                "50.5",
            ),
            (
                Percent,
                "50",
                168,
                ("0", T0),
                ("0.1", "2026-11-28T08:00:00Z"),
                Some(true),
                "",
            ),
            // Rate per day: 2 mg/dL over 12 hours is 4 per day.
            (
                RatePerDay,
                "3",
                72,
                ("1.0", T0),
                ("3.0", "2026-11-27T20:00:00Z"),
                Some(true),
                "4",
            ),
            (
                RatePerDay,
                "3",
                72,
                ("1.0", T0),
                ("3.0", "2026-11-28T08:00:00Z"),
                Some(false),
                "2",
            ),
        ];
        for (mode, limit, hours, prev, cur, failed, delta) in cases {
            let out = delta_check(
                Some(&rule(*mode, limit, *hours)),
                Some(p(prev.0, prev.1)),
                p(cur.0, cur.1),
            );
            match (failed, out) {
                (None, DeltaOutcome::NoPrevious) => {}
                (Some(false), DeltaOutcome::Passed { delta: got }) => {
                    assert_eq!(
                        got.normalize(),
                        d(delta).normalize(),
                        "{mode:?} {prev:?} {cur:?}"
                    )
                }
                (Some(true), DeltaOutcome::Failed { delta: got, .. }) => {
                    if !delta.is_empty() {
                        assert_eq!(
                            got.normalize(),
                            d(delta).normalize(),
                            "{mode:?} {prev:?} {cur:?}"
                        )
                    }
                }
                other => panic!("{mode:?} {prev:?} {cur:?}: {other:?}"),
            }
        }
        assert_eq!(delta_check(None, None, p("1", T0)), DeltaOutcome::NoRule);
        assert_eq!(
            delta_check(Some(&rule(Absolute, "1", 24)), None, p("1", T0)),
            DeltaOutcome::NoPrevious
        );
    }

    proptest! {
        /// The absolute delta is symmetric: swapping the two values gives the same verdict.
        #[test]
        fn absolute_delta_is_symmetric(a in -10_000i64..10_000, b in -10_000i64..10_000, limit in 0i64..5_000) {
            let r = rule(DeltaMode::Absolute, &limit.to_string(), 24);
            let x = |v: i64, t: &str| Point { value: Decimal::new(v, 1), collected_at: t.parse().unwrap() };
            let one = delta_check(Some(&r), Some(x(a, "2026-01-01T00:00:00Z")), x(b, "2026-01-01T06:00:00Z"));
            let two = delta_check(Some(&r), Some(x(b, "2026-01-01T00:00:00Z")), x(a, "2026-01-01T06:00:00Z"));
            prop_assert_eq!(one, two);
        }
    }
}
