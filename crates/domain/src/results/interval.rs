//! Reference intervals (issue 11 item 2, DOMAIN §5.1): effective-dated rows keyed by specimen
//! type, clinical sex, a half-open age band and method; the one shown is the one in force at
//! **collection**.
//!
//! Choices, documented here once:
//! - Ages are calendar ages at the collection date **in the lab's time zone** (the date on the
//!   lab's calendar when the tube was drawn): `from` ≤ age < `to`, bounds in hours, days,
//!   months or years (`48h`, `15d`, `2y`).
//! - Hours of life (neonatal bands): the time from birth to collection, birth being the birth
//!   date at the patient's time of birth in the lab's time zone. Without a time of birth the
//!   age in hours is known only to lie between "born at the start of the birth date" and "born
//!   at its end"; a row whose hour bound falls inside that range is **not** applied (no
//!   guess: no interval rather than a wrong one).
//! - Sex: the clinical sex (Gender Harmony SPCU) when recorded, else the administrative sex.
//!   Female/male select that sex's rows.
//! - A row that names a specimen type or method wins over one that does not.
//! - Clinical sex `specified`/`unknown`, or (without a clinical sex) administrative sex O, U, A
//!   or N: no sex-specific interval is guessed, never male by default. When the female and male
//!   rows differ, the interval shown is the **widest** (lowest low, highest high), so no result
//!   is flagged that is normal for either, and its text names both (`F 0.44–1.00; M 0.61–1.24`).
//! - Limits are inclusive: a value equal to a limit is within the interval.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use thiserror::Error;

use crate::error::impl_domain_error;
use crate::patient::{AdministrativeSex, ClinicalSex};

/// The unit of an age bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeUnit {
    Hours,
    Days,
    Months,
    Years,
}

/// An age bound such as `48h`, `15d`, `6m` or `19y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeBound {
    pub value: u16,
    pub unit: AgeUnit,
}

/// Why an interval row was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IntervalError {
    #[error("{input:?} is not an age such as 48h, 15d, 6m or 19y")]
    Age { input: String },
    #[error("the age band is empty: `age_from` must be below `age_to`")]
    EmptyAgeBand,
    #[error("the interval needs a low or a high limit, or a text")]
    NoLimits,
    #[error("the low limit is above the high limit")]
    LowAboveHigh,
    #[error("{input:?} is not a sex for an interval (F or M; leave it out for both)")]
    Sex { input: String },
    #[error("`effective_to` must be after `effective_from`")]
    EmptyPeriod,
    #[error(
        "an interval in force before {now} cannot be changed or removed: close it with `effective_to` and add a new row"
    )]
    RewritesHistory { now: Timestamp },
}

impl IntervalError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Age { .. } => "interval_age",
            Self::EmptyAgeBand => "interval_empty_age_band",
            Self::NoLimits => "interval_no_limits",
            Self::LowAboveHigh => "interval_low_above_high",
            Self::Sex { .. } => "interval_sex",
            Self::EmptyPeriod => "interval_empty_period",
            Self::RewritesHistory { .. } => "interval_rewrites_history",
        }
    }

    /// The field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Self::Age { .. } | Self::EmptyAgeBand => "age_from",
            Self::NoLimits | Self::LowAboveHigh => "low",
            Self::Sex { .. } => "sex",
            Self::EmptyPeriod => "effective_to",
            Self::RewritesHistory { .. } => "reference_intervals",
        })
    }
}

impl_domain_error!(IntervalError);

impl AgeBound {
    /// Parses `48h`, `15d`, `6m`, `19y`.
    pub fn parse(input: &str) -> Result<Self, IntervalError> {
        let err = || IntervalError::Age {
            input: input.chars().take(20).collect(),
        };
        let s = input.trim();
        let unit = match s.chars().last() {
            Some('h') => AgeUnit::Hours,
            Some('d') => AgeUnit::Days,
            Some('m') => AgeUnit::Months,
            Some('y') => AgeUnit::Years,
            _ => return Err(err()),
        };
        let digits = &s[..s.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let value = digits.parse::<u16>().map_err(|_| err())?;
        if value > 150 * 366 {
            return Err(err());
        }
        Ok(Self { value, unit })
    }

    /// As written: `15d`.
    pub fn as_string(&self) -> String {
        let u = match self.unit {
            AgeUnit::Hours => 'h',
            AgeUnit::Days => 'd',
            AgeUnit::Months => 'm',
            AgeUnit::Years => 'y',
        };
        format!("{}{u}", self.value)
    }

    /// The date on which a person born on `birth` reaches this age in days, months or years
    /// (end-of-month clamped, so someone born on 29 February is one year old on 28 February).
    fn reached_on(&self, birth: Date) -> Date {
        let span = match self.unit {
            AgeUnit::Hours => return Date::MAX,
            AgeUnit::Days => jiff::Span::new().days(i64::from(self.value)),
            AgeUnit::Months => jiff::Span::new().months(i64::from(self.value)),
            AgeUnit::Years => jiff::Span::new().years(i64::from(self.value)),
        };
        birth.checked_add(span).unwrap_or(Date::MAX)
    }

    /// Whether a person born on `birth` has reached this age (days, months, years) on `on`.
    /// An hour bound is never reached by dates alone: use [`AgeBound::reached_at`].
    pub fn reached(&self, birth: Date, on: Date) -> bool {
        self.reached_on(birth) <= on
    }

    /// Whether this age is reached at collection: `Some(true|false)` when certain, `None`
    /// when an hour bound falls inside the uncertainty of an unknown time of birth.
    pub fn reached_at(&self, age: &AgeAtCollection) -> Option<bool> {
        match self.unit {
            AgeUnit::Hours => {
                let v = i64::from(self.value);
                if age.min_hours >= v {
                    Some(true)
                } else if age.max_hours < v {
                    Some(false)
                } else {
                    None
                }
            }
            _ => Some(self.reached(age.birth_date, age.on)),
        }
    }

    /// A comparable length in hours (30-day months, 365-day years), for ordering bounds only.
    fn approx_hours(&self) -> u32 {
        let v = u32::from(self.value);
        match self.unit {
            AgeUnit::Hours => v,
            AgeUnit::Days => v * 24,
            AgeUnit::Months => v * 30 * 24,
            AgeUnit::Years => v * 365 * 24,
        }
    }
}

/// A patient's age at collection: the collection date on the lab's calendar and the hours of
/// life, exact with a time of birth, else a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeAtCollection {
    pub birth_date: Date,
    /// The collection date in the lab's time zone.
    pub on: Date,
    /// Completed hours of life, at least.
    pub min_hours: i64,
    /// Completed hours of life, at most.
    pub max_hours: i64,
}

impl AgeAtCollection {
    /// The age at `collected_at` of someone born on `birth_date` (at `birth_time` when known),
    /// both read in the lab's time zone `tz`.
    pub fn new(
        birth_date: Date,
        birth_time: Option<jiff::civil::Time>,
        collected_at: Timestamp,
        tz: &TimeZone,
    ) -> Self {
        let on = collected_at.to_zoned(tz.clone()).date();
        let hours_since = |t: Option<Timestamp>| {
            t.map_or(0, |t| {
                collected_at.duration_since(t).as_secs().div_euclid(3600)
            })
        };
        let at = |d: Date, time: jiff::civil::Time| {
            d.to_datetime(time)
                .to_zoned(tz.clone())
                .ok()
                .map(|z| z.timestamp())
        };
        let (min_hours, max_hours) = match birth_time {
            Some(time) => {
                let h = hours_since(at(birth_date, time));
                (h, h)
            }
            None => {
                let start = at(birth_date, jiff::civil::Time::midnight());
                let end = birth_date
                    .tomorrow()
                    .ok()
                    .and_then(|d| at(d, jiff::civil::Time::midnight()));
                (hours_since(end), hours_since(start))
            }
        };
        Self {
            birth_date,
            on,
            min_hours,
            max_hours,
        }
    }
}

/// The sex a row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalSex {
    Female,
    Male,
}

impl IntervalSex {
    /// `F` or `M`.
    pub fn parse(input: &str) -> Result<Self, IntervalError> {
        match input {
            "F" => Ok(Self::Female),
            "M" => Ok(Self::Male),
            _ => Err(IntervalError::Sex {
                input: input.chars().take(10).collect(),
            }),
        }
    }

    /// `F` or `M`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "F",
            Self::Male => "M",
        }
    }
}

/// One reference-interval row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalRow {
    /// `None`: both sexes.
    pub sex: Option<IntervalSex>,
    pub age_from: Option<AgeBound>,
    pub age_to: Option<AgeBound>,
    /// `None`: any specimen type of the test.
    pub specimen_type: Option<String>,
    /// `None`: any method.
    pub method: Option<String>,
    pub low: Option<Decimal>,
    pub high: Option<Decimal>,
    /// Text shown instead of or beside the limits (e.g. "Negative", "< 200 desirable").
    pub text: Option<String>,
    pub effective_from: Timestamp,
    pub effective_to: Option<Timestamp>,
}

impl IntervalRow {
    /// Checks a row's own consistency.
    pub fn validate(&self) -> Result<(), IntervalError> {
        if let (Some(f), Some(t)) = (self.age_from, self.age_to)
            && f.approx_hours() >= t.approx_hours()
        {
            return Err(IntervalError::EmptyAgeBand);
        }
        if self.low.is_none() && self.high.is_none() && self.text.is_none() {
            return Err(IntervalError::NoLimits);
        }
        if let (Some(l), Some(h)) = (self.low, self.high)
            && l > h
        {
            return Err(IntervalError::LowAboveHigh);
        }
        if let Some(to) = self.effective_to
            && to <= self.effective_from
        {
            return Err(IntervalError::EmptyPeriod);
        }
        Ok(())
    }

    fn in_force(&self, at: Timestamp) -> bool {
        self.effective_from <= at && self.effective_to.is_none_or(|t| at < t)
    }

    /// Whether the row's age band certainly holds the age (an uncertain bound: no).
    fn covers_age(&self, age: &AgeAtCollection) -> bool {
        self.age_from
            .is_none_or(|f| f.reached_at(age) == Some(true))
            && self.age_to.is_none_or(|t| t.reached_at(age) == Some(false))
    }
}

/// A change of a test's interval rows may not rewrite what was in force before `now`: every
/// old row that took effect before `now` must still be there unchanged, except that an open
/// row may be closed (`effective_to` set, not before `now`). Rows taking effect later are free.
pub fn check_interval_change(
    old: &[IntervalRow],
    new: &[IntervalRow],
    now: Timestamp,
) -> Result<(), IntervalError> {
    for row in new {
        row.validate()?;
    }
    for o in old.iter().filter(|o| o.effective_from < now) {
        let kept = new.iter().any(|n| {
            let same_apart_from_end = IntervalRow {
                effective_to: o.effective_to,
                ..n.clone()
            } == *o;
            same_apart_from_end
                && (n.effective_to == o.effective_to
                    || (o.effective_to.is_none_or(|t| t > now)
                        && n.effective_to.is_some_and(|t| t >= now)))
        });
        if !kept {
            return Err(IntervalError::RewritesHistory { now });
        }
    }
    Ok(())
}

/// Who and what a result is about, for choosing its interval.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Administrative sex (HL7 0001), used when no clinical sex is recorded.
    pub sex: AdministrativeSex,
    /// Sex parameter for clinical use, when recorded: it wins.
    pub clinical_sex: Option<ClinicalSex>,
    pub birth_date: Date,
    /// Local time of birth, when recorded (hours-of-life bands).
    pub birth_time: Option<jiff::civil::Time>,
    /// The lab's time zone: ages are computed on its calendar.
    pub time_zone: &'a TimeZone,
    pub collected_at: Timestamp,
    pub specimen_type: &'a str,
    pub method: Option<&'a str>,
}

/// The interval shown with a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownInterval {
    pub low: Option<Decimal>,
    pub high: Option<Decimal>,
    /// As printed: `3.5–5.1`, `≤ 40`, a row's text, or both sexes' for O/U/A/N.
    pub text: String,
}

fn limits_text(low: Option<Decimal>, high: Option<Decimal>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("{l}–{h}"),
        (Some(l), None) => format!("≥ {l}"),
        (None, Some(h)) => format!("≤ {h}"),
        (None, None) => String::new(),
    }
}

fn row_text(r: &IntervalRow) -> String {
    match (&r.text, limits_text(r.low, r.high)) {
        (Some(t), l) if l.is_empty() => t.clone(),
        (Some(t), l) => format!("{l} ({t})"),
        (None, l) => l,
    }
}

/// The best row among `rows` for one sex (`None` = rows for both sexes only).
fn best<'r>(rows: &[&'r IntervalRow], sex: Option<IntervalSex>) -> Option<&'r IntervalRow> {
    rows.iter()
        .filter(|r| r.sex.is_none() || r.sex == sex)
        .max_by_key(|r| {
            (
                r.sex.is_some(),
                r.specimen_type.is_some(),
                r.method.is_some(),
                r.effective_from,
            )
        })
        .copied()
}

/// The sex whose rows apply: the clinical sex when recorded, else the administrative sex;
/// `None` (no sex-specific row is guessed) for clinical `specified`/`unknown` and for
/// administrative O, U, A, N without a clinical sex.
pub fn interval_sex(sex: AdministrativeSex, clinical: Option<ClinicalSex>) -> Option<IntervalSex> {
    match clinical {
        Some(ClinicalSex::Female) => Some(IntervalSex::Female),
        Some(ClinicalSex::Male) => Some(IntervalSex::Male),
        Some(ClinicalSex::Specified | ClinicalSex::Unknown) => None,
        None => match sex {
            AdministrativeSex::Female => Some(IntervalSex::Female),
            AdministrativeSex::Male => Some(IntervalSex::Male),
            _ => None,
        },
    }
}

/// The interval in force at the subject's collection: `None` when no row applies.
pub fn select_interval(rows: &[IntervalRow], s: &Subject<'_>) -> Option<ShownInterval> {
    let age = AgeAtCollection::new(s.birth_date, s.birth_time, s.collected_at, s.time_zone);
    let candidates: Vec<&IntervalRow> = rows
        .iter()
        .filter(|r| r.in_force(s.collected_at))
        .filter(|r| r.covers_age(&age))
        .filter(|r| {
            r.specimen_type
                .as_deref()
                .is_none_or(|t| t == s.specimen_type)
        })
        .filter(|r| r.method.as_deref().is_none_or(|m| Some(m) == s.method))
        .collect();
    let shown = |r: &IntervalRow| ShownInterval {
        low: r.low,
        high: r.high,
        text: row_text(r),
    };
    match interval_sex(s.sex, s.clinical_sex) {
        Some(sex) => best(&candidates, Some(sex)).map(shown),
        None => {
            let f = best(&candidates, Some(IntervalSex::Female));
            let m = best(&candidates, Some(IntervalSex::Male));
            match (f, m) {
                (Some(f), Some(m)) if f.low == m.low && f.high == m.high && f.text == m.text => {
                    Some(shown(f))
                }
                (Some(f), Some(m)) => {
                    let low = match (f.low, m.low) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        _ => None,
                    };
                    let high = match (f.high, m.high) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                    Some(ShownInterval {
                        low,
                        high,
                        text: format!("F {}; M {}", row_text(f), row_text(m)),
                    })
                }
                // Only one sex has a row: guessing it would apply is what we refuse to do,
                // unless the row is for both sexes (then f and m are the same row).
                _ => best(&candidates, None).map(shown),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }
    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn row(
        sex: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        low: &str,
        high: &str,
    ) -> IntervalRow {
        IntervalRow {
            sex: sex.map(|s| IntervalSex::parse(s).unwrap()),
            age_from: from.map(|a| AgeBound::parse(a).unwrap()),
            age_to: to.map(|a| AgeBound::parse(a).unwrap()),
            specimen_type: None,
            method: None,
            low: Some(d(low)),
            high: Some(d(high)),
            text: None,
            effective_from: ts("2020-01-01T00:00:00Z"),
            effective_to: None,
        }
    }

    /// Creatinine, enzymatic (DOMAIN §5.3, UCSF): half-open age bands and sexes.
    fn creatinine() -> Vec<IntervalRow> {
        vec![
            row(None, None, Some("15d"), "0.30", "0.90"),
            row(None, Some("15d"), Some("2y"), "0.10", "0.30"),
            row(None, Some("2y"), Some("5y"), "0.20", "0.40"),
            row(None, Some("5y"), Some("12y"), "0.30", "0.60"),
            row(None, Some("12y"), Some("15y"), "0.40", "0.80"),
            row(Some("M"), Some("15y"), Some("19y"), "0.60", "1.00"),
            row(Some("F"), Some("15y"), Some("19y"), "0.50", "0.80"),
            row(Some("M"), Some("19y"), None, "0.61", "1.24"),
            row(Some("F"), Some("19y"), None, "0.44", "1.00"),
        ]
    }

    #[test]
    fn the_interval_follows_age_sex_and_the_edges_of_each_band() {
        // birth date, sex, collected at → interval text
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("2026-01-01", "M", "2026-01-01T08:00:00Z", Some("0.30–0.90")), // day 0
            ("2026-01-01", "M", "2026-01-15T08:00:00Z", Some("0.30–0.90")), // 14 days
            ("2026-01-01", "M", "2026-01-16T08:00:00Z", Some("0.10–0.30")), // 15 days: next band
            ("2024-01-01", "F", "2025-12-31T23:59:59Z", Some("0.10–0.30")), // a day short of 2y
            ("2024-01-01", "F", "2026-01-01T00:00:00Z", Some("0.20–0.40")), // exactly 2y
            ("2007-06-01", "M", "2026-05-31T12:00:00Z", Some("0.60–1.00")), // 18y 364d
            ("2007-06-01", "M", "2026-06-01T00:00:00Z", Some("0.61–1.24")), // 19y
            ("2007-06-01", "F", "2026-06-01T00:00:00Z", Some("0.44–1.00")),
            // O/U/A/N adult: both sexes' rows, widest limits shown.
            (
                "1980-03-04",
                "U",
                "2026-06-01T00:00:00Z",
                Some("F 0.44–1.00; M 0.61–1.24"),
            ),
            (
                "1980-03-04",
                "O",
                "2026-06-01T00:00:00Z",
                Some("F 0.44–1.00; M 0.61–1.24"),
            ),
            // A child's rows do not depend on sex, so nothing is widened.
            ("2020-03-04", "N", "2026-06-01T00:00:00Z", Some("0.30–0.60")),
            // Before the rows took effect: none.
            ("1980-03-04", "F", "2019-12-31T23:59:59Z", None),
        ];
        let rows = creatinine();
        for (birth, sex, at, expected) in cases {
            let s = Subject {
                sex: AdministrativeSex::parse(sex).unwrap(),
                birth_date: birth.parse().unwrap(),
                collected_at: ts(at),
                specimen_type: "serum",
                method: None,
                clinical_sex: None,
                birth_time: None,
                time_zone: &TimeZone::UTC,
            };
            let got = select_interval(&rows, &s).map(|i| i.text);
            assert_eq!(got.as_deref(), *expected, "{birth} {sex} {at}");
        }
        let u = select_interval(
            &rows,
            &Subject {
                sex: AdministrativeSex::Unknown,
                birth_date: "1980-03-04".parse().unwrap(),
                collected_at: ts("2026-06-01T00:00:00Z"),
                specimen_type: "serum",
                method: None,
                clinical_sex: None,
                birth_time: None,
                time_zone: &TimeZone::UTC,
            },
        )
        .unwrap();
        assert_eq!((u.low, u.high), (Some(d("0.44")), Some(d("1.24"))));
    }

    #[test]
    fn the_interval_in_force_at_collection_is_shown_also_after_a_change() {
        let mut old = row(None, None, None, "3.5", "5.1");
        old.effective_to = Some(ts("2026-06-01T00:00:00Z"));
        let mut new = row(None, None, None, "3.4", "5.0");
        new.effective_from = ts("2026-06-01T00:00:00Z");
        let rows = vec![old, new];
        let at = |t: &str| {
            select_interval(
                &rows,
                &Subject {
                    sex: AdministrativeSex::Female,
                    birth_date: "1980-03-04".parse().unwrap(),
                    collected_at: ts(t),
                    specimen_type: "serum",
                    method: None,
                    clinical_sex: None,
                    birth_time: None,
                    time_zone: &TimeZone::UTC,
                },
            )
            .unwrap()
            .text
        };
        assert_eq!(at("2026-05-31T23:59:59Z"), "3.5–5.1");
        assert_eq!(at("2026-06-01T00:00:00Z"), "3.4–5.0");
    }

    #[test]
    fn a_specific_specimen_type_or_method_wins() {
        let mut plasma = row(None, None, None, "3.4", "4.8");
        plasma.specimen_type = Some("plasma".into());
        let rows = vec![row(None, None, None, "3.5", "5.1"), plasma];
        let pick = |t: &str| {
            select_interval(
                &rows,
                &Subject {
                    sex: AdministrativeSex::Male,
                    birth_date: "1980-03-04".parse().unwrap(),
                    collected_at: ts("2026-01-01T00:00:00Z"),
                    specimen_type: t,
                    method: None,
                    clinical_sex: None,
                    birth_time: None,
                    time_zone: &TimeZone::UTC,
                },
            )
            .unwrap()
            .text
        };
        assert_eq!(pick("plasma"), "3.4–4.8");
        assert_eq!(pick("serum"), "3.5–5.1");
    }

    #[test]
    fn rows_are_checked() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a str, &'a str, &'a str);
        let cases: &[Case] = &[
            (Some("2y"), Some("15d"), "1", "2", "interval_empty_age_band"),
            (None, None, "5", "2", "interval_low_above_high"),
        ];
        for (from, to, low, high, code) in cases {
            assert_eq!(
                row(None, *from, *to, low, high)
                    .validate()
                    .unwrap_err()
                    .code(),
                *code
            );
        }
        for bad in ["", "d", "12", "1.5y", "-1y", "12w", "h"] {
            assert_eq!(
                AgeBound::parse(bad).unwrap_err().code(),
                "interval_age",
                "{bad:?}"
            );
        }
        assert_eq!(AgeBound::parse("15d").unwrap().as_string(), "15d");
        assert_eq!(AgeBound::parse("48h").unwrap().as_string(), "48h");
        assert_eq!(
            row(None, Some("2d"), Some("36h"), "1", "2")
                .validate()
                .unwrap_err()
                .code(),
            "interval_empty_age_band"
        );
    }

    /// Item 17 of issue 10: the clinical sex wins over the administrative one; O/U/A/N and
    /// `specified`/`unknown` never fall back to male.
    #[test]
    fn clinical_sex_selects_the_rows_case_table() {
        let rows = creatinine();
        // administrative, clinical → interval text (adult)
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("F", None, "0.44–1.00"),
            ("M", None, "0.61–1.24"),
            ("M", Some("female"), "0.44–1.00"),
            ("F", Some("male"), "0.61–1.24"),
            ("O", Some("male"), "0.61–1.24"),
            ("U", Some("female"), "0.44–1.00"),
            ("M", Some("unknown"), "F 0.44–1.00; M 0.61–1.24"),
            ("F", Some("specified"), "F 0.44–1.00; M 0.61–1.24"),
            ("A", None, "F 0.44–1.00; M 0.61–1.24"),
            ("N", None, "F 0.44–1.00; M 0.61–1.24"),
            ("O", Some("unknown"), "F 0.44–1.00; M 0.61–1.24"),
        ];
        for (admin, clinical, want) in cases {
            let s = Subject {
                sex: AdministrativeSex::parse(admin).unwrap(),
                clinical_sex: clinical.map(|c| ClinicalSex::parse(c).unwrap()),
                birth_date: "1980-03-04".parse().unwrap(),
                birth_time: None,
                time_zone: &TimeZone::UTC,
                collected_at: ts("2026-06-01T00:00:00Z"),
                specimen_type: "serum",
                method: None,
            };
            let got = select_interval(&rows, &s).map(|i| i.text);
            assert_eq!(got.as_deref(), Some(*want), "{admin} {clinical:?}");
        }
        // Only a male row exists: an unknown clinical sex is not given it.
        let only_male = vec![row(Some("M"), None, None, "1", "2")];
        let s = Subject {
            sex: AdministrativeSex::Male,
            clinical_sex: Some(ClinicalSex::Unknown),
            birth_date: "1980-03-04".parse().unwrap(),
            birth_time: None,
            time_zone: &TimeZone::UTC,
            collected_at: ts("2026-06-01T00:00:00Z"),
            specimen_type: "serum",
            method: None,
        };
        assert_eq!(select_interval(&only_male, &s), None);
    }

    /// Neonatal bilirubin-style bands by hours of life, and ages on the lab's calendar.
    #[test]
    fn hours_of_life_and_the_lab_calendar_case_table() {
        let rows = vec![
            row(None, None, Some("24h"), "1", "6"),
            row(None, Some("24h"), Some("48h"), "6", "10"),
            row(None, Some("48h"), Some("15d"), "4", "12"),
            row(None, Some("15d"), None, "0", "1"),
        ];
        let ny = TimeZone::get("America/New_York").unwrap();
        // birth date, birth time, collected at (UTC), zone → interval text
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a TimeZone,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            // Born 10:00 New York (15:00Z); drawn 23 h later: first band.
            (
                "2026-03-01",
                Some("10:00"),
                "2026-03-02T14:00:00Z",
                &ny,
                Some("1–6"),
            ),
            // 24 h exactly: second band (half-open).
            (
                "2026-03-01",
                Some("10:00"),
                "2026-03-02T15:00:00Z",
                &ny,
                Some("6–10"),
            ),
            (
                "2026-03-01",
                Some("10:00"),
                "2026-03-03T14:59:00Z",
                &ny,
                Some("6–10"),
            ),
            (
                "2026-03-01",
                Some("10:00"),
                "2026-03-03T15:00:00Z",
                &ny,
                Some("4–12"),
            ),
            // Without a birth time, 30 h after the start of the birth date could be 6–30 h of
            // life: the band cannot be known, nothing is guessed.
            ("2026-03-01", None, "2026-03-02T11:00:00Z", &ny, None),
            // …but 3 days later it is at least 48 h whatever the hour of birth.
            (
                "2026-03-01",
                None,
                "2026-03-04T12:00:00Z",
                &ny,
                Some("4–12"),
            ),
            // Day bands on the lab's calendar: drawn 2026-03-16 01:00Z is still the 15th in
            // New York (14 days old there, 15 in UTC).
            (
                "2026-03-01",
                None,
                "2026-03-16T01:00:00Z",
                &ny,
                Some("4–12"),
            ),
            (
                "2026-03-01",
                None,
                "2026-03-16T01:00:00Z",
                &TimeZone::UTC,
                Some("0–1"),
            ),
        ];
        for (birth, time, at, tz, want) in cases {
            let s = Subject {
                sex: AdministrativeSex::Female,
                clinical_sex: None,
                birth_date: birth.parse().unwrap(),
                birth_time: time.map(|t| t.parse().unwrap()),
                time_zone: tz,
                collected_at: ts(at),
                specimen_type: "serum",
                method: None,
            };
            let got = select_interval(&rows, &s).map(|i| i.text);
            assert_eq!(got.as_deref(), *want, "{birth} {time:?} {at}");
        }
    }

    #[test]
    fn history_is_closed_never_rewritten() {
        let now = ts("2026-11-28T00:00:00Z");
        let old = vec![row(None, None, None, "3.5", "5.1")];
        // Editing the limits of a row in force: refused.
        let edited = vec![row(None, None, None, "3.4", "5.1")];
        assert_eq!(
            check_interval_change(&old, &edited, now)
                .unwrap_err()
                .code(),
            "interval_rewrites_history"
        );
        // Removing it: refused.
        assert!(check_interval_change(&old, &[], now).is_err());
        // Closing it now and adding a successor: accepted.
        let mut closed = old[0].clone();
        closed.effective_to = Some(now);
        let mut next = row(None, None, None, "3.4", "5.1");
        next.effective_from = now;
        assert!(check_interval_change(&old, &[closed.clone(), next.clone()], now).is_ok());
        // Closing it in the past: refused.
        let mut back = old[0].clone();
        back.effective_to = Some(ts("2026-01-01T00:00:00Z"));
        assert!(check_interval_change(&old, &[back, next], now).is_err());
        // A future row may be changed freely.
        let mut future = row(None, None, None, "1", "2");
        future.effective_from = ts("2027-01-01T00:00:00Z");
        assert!(check_interval_change(&[closed.clone(), future], &[closed], now).is_ok());
    }
}
