//! Quality control and calibration (issue 13).
//!
//! - `setup`: control lots, their targets (mean and SD per instrument and test, from the
//!   manufacturer first, then established from the lab's own data), the instrument's names for
//!   its controls, and per instrument and test the rule set, mode, calibration interval and
//!   allowable total error.
//! - `runs`: a QC run posted (by hand or by an instrument) is judged at once by the Westgard
//!   evaluator of the domain crate against the history before it in collection-time order; a
//!   rejected run **locks** the instrument and test, which holds its patient results from
//!   autoverification (reason `qc`) until a corrective action is documented and a run is
//!   accepted after the rejection.
//! - `actions`: corrective actions and calibration events.
//! - `reports`: the lock state per instrument and test with the results put in doubt, runs,
//!   statistics (monthly and cumulative) and the data of a Levey-Jennings chart.
//!
//! **History policy** (DOMAIN §1.4, documented choices): the rules look back over the runs
//! before this one that were not rejected (a rejected run stays on the chart and in the record
//! but its values do not re-fire rules after its corrective action), since the last passed
//! calibration (a recalibration resets the history), and within each level only over values of
//! the lot the current run uses for that level (a new lot starts a new history). Limits change
//! prospectively: each value keeps the mean and SD it was judged with.

mod actions;
mod reports;
mod runs;
mod setup;

use std::str::FromStr;

use aliquot_domain::qc::westgard::{Mode, Rule, RuleSet};
use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::{AppError, AppResult};

pub use actions::{CalibrationInput, CalibrationView, CorrectiveActionInput, CorrectiveActionView};
pub use reports::{
    AffectedResultView, CalibrationStatusView, ChartData, ChartPoint, ChartQuery, LockView,
    QcStatusView, StatisticsRow, StatisticsView,
};
pub use runs::{ControlInput, ControlView, FindingView, RunInput, RunView};
pub use setup::{ConfigInput, ConfigView, LotInput, LotView, TargetInput, TargetView};

/// `qc_run.source` of a run entered by hand.
pub const SOURCE_MANUAL: &str = "manual";

pub(crate) use crate::short_text as text;

/// An exact decimal as typed (`"3.52"`); never a float.
pub(crate) fn decimal(field: &str, value: &str) -> AppResult<Decimal> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 30
        && v.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+');
    ok.then(|| Decimal::from_str(v.strip_prefix('+').unwrap_or(v)).ok())
        .flatten()
        .ok_or_else(|| {
            AppError::invalid(
                field,
                "not_numeric",
                "a number written with digits and at most one decimal point, e.g. 3.52",
            )
        })
}

/// A control level: 1, 2 or 3.
pub(crate) fn level(field: &str, level: i64) -> AppResult<i64> {
    if (1..=3).contains(&level) {
        Ok(level)
    } else {
        Err(AppError::invalid(
            field,
            "invalid_level",
            "a control level is 1, 2 or 3",
        ))
    }
}

/// The rule set stored for an instrument and test, or the default for the number of levels
/// in use (modern two-level rules, or the three-level rules when level 3 is run).
pub(crate) fn rule_set(rules: &str, mode: &str) -> AppResult<RuleSet> {
    let mode = parse_mode("mode", mode)?;
    let rules = parse_rules("rules", rules.split(',').filter(|s| !s.trim().is_empty()))?;
    new_rule_set(mode, &rules)
}

pub(crate) fn new_rule_set(mode: Mode, rules: &[Rule]) -> AppResult<RuleSet> {
    RuleSet::new(mode, rules).map_err(|e| AppError::invalid("rules", e.code(), e.to_string()))
}

/// The rules of an instrument and test without a configuration: the modern multirule for two
/// or three levels (DOMAIN §1.3), every rule every run, with 1-2s shown as a warning (never a
/// rejection) so a technologist sees a point beyond 2 SD.
pub(crate) fn default_rule_set(levels: usize) -> RuleSet {
    if levels >= 3 {
        RuleSet::three_level()
    } else {
        RuleSet::modern_two_level()
    }
    .with_rule(Rule::OneTwoS)
}

pub(crate) fn parse_mode(field: &str, mode: &str) -> AppResult<Mode> {
    match mode.trim() {
        "classic" => Ok(Mode::Classic),
        "modern" => Ok(Mode::Modern),
        _ => Err(AppError::invalid(
            field,
            "invalid_qc_mode",
            "`classic` (rules only after a 1-2s warning) or `modern` (every rule, every run)",
        )),
    }
}

pub(crate) fn mode_str(mode: Mode) -> &'static str {
    match mode {
        Mode::Classic => "classic",
        Mode::Modern => "modern",
    }
}

pub(crate) fn parse_rules<'a>(
    field: &str,
    rules: impl IntoIterator<Item = &'a str>,
) -> AppResult<Vec<Rule>> {
    let mut out = Vec::new();
    for r in rules {
        let rule = Rule::parse(r.trim()).map_err(|_| {
            AppError::invalid(
                field,
                "unknown_qc_rule",
                format!(
                    "`{}` is not a rule; the rules are {}",
                    r.trim().chars().take(20).collect::<String>(),
                    Rule::ALL.map(|r| r.code()).join(", ")
                ),
            )
        })?;
        if !out.contains(&rule) {
            out.push(rule);
        }
    }
    if out.is_empty() {
        return Err(AppError::invalid(
            field,
            "no_qc_rules",
            "choose at least one rule",
        ));
    }
    Ok(out)
}

pub(crate) fn rules_text(rules: &RuleSet) -> String {
    rules
        .rules()
        .map(|r| r.code())
        .collect::<Vec<_>>()
        .join(",")
}

/// An RFC 3339 time, kept to the microsecond (the database's resolution).
pub(crate) fn time(field: &str, text: &str) -> AppResult<Timestamp> {
    let t: Timestamp = text.trim().parse().map_err(|_| {
        AppError::invalid(
            field,
            "invalid_time",
            "an RFC 3339 time, e.g. 2026-05-01T08:00:00Z",
        )
    })?;
    Ok(Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t))
}

pub(crate) fn opt_time(field: &str, text: Option<&str>) -> AppResult<Option<Timestamp>> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| time(field, t))
        .transpose()
}

/// A time given by the caller: not more than the clock skew ahead of now.
pub(crate) fn not_future(field: &str, at: Timestamp, now: Timestamp) -> AppResult<Timestamp> {
    let skew = aliquot_domain::specimen::COLLECTION_CLOCK_SKEW;
    if at > now.checked_add(skew).unwrap_or(now) {
        return Err(AppError::invalid(
            field,
            "time_in_future",
            "the time lies in the future",
        ));
    }
    Ok(at)
}
