//! Result values (issue 11 item 1): exact decimals that keep the text as reported, censored
//! values with a comparator, coded answers with their place on an ordinal scale, and text.
//!
//! No floating point: a numeric result is a [`Decimal`] plus the text the instrument or the
//! technologist reported ("5.0" stays "5.0"; its scale is the number of decimals shown).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use thiserror::Error;

use crate::catalog::ResultType;
use crate::error::impl_domain_error;

/// The longest value text accepted (a numeric or coded value; free text has its own limit).
pub const MAX_VALUE_LEN: usize = 40;
/// The longest free-text result accepted.
pub const MAX_TEXT_LEN: usize = 4000;

/// A censored value's comparator (HL7 SN-1, FHIR `Quantity.comparator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparator {
    /// `<`: the true value is below the number.
    Lt,
    /// `<=`.
    Le,
    /// `>`: the true value is above the number.
    Gt,
    /// `>=`.
    Ge,
}

impl Comparator {
    /// The comparator as written (`<`, `<=`, `>`, `>=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// A numeric result: the value, its comparator when censored, and the text as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numeric {
    /// `Some` for a censored value such as `<0.5`.
    pub comparator: Option<Comparator>,
    /// The number (exact; its scale is the number of decimals reported).
    pub value: Decimal,
}

impl Numeric {
    /// An uncensored value.
    pub fn exact(value: Decimal) -> Self {
        Self {
            comparator: None,
            value,
        }
    }

    /// The text as reported: comparator and number with the scale it was given (`<0.50`).
    pub fn text(&self) -> String {
        match self.comparator {
            Some(c) => format!("{}{}", c.as_str(), self.value),
            None => self.value.to_string(),
        }
    }

    /// Whether every value this result may stand for is strictly below `limit`.
    pub fn surely_below(&self, limit: Decimal) -> bool {
        match self.comparator {
            None | Some(Comparator::Le) => self.value < limit,
            Some(Comparator::Lt) => self.value <= limit,
            Some(Comparator::Gt | Comparator::Ge) => false,
        }
    }

    /// Whether every value this result may stand for is strictly above `limit`.
    pub fn surely_above(&self, limit: Decimal) -> bool {
        match self.comparator {
            None => self.value > limit,
            Some(Comparator::Gt) => self.value >= limit,
            Some(Comparator::Ge) => self.value > limit,
            Some(Comparator::Lt | Comparator::Le) => false,
        }
    }

    /// Whether every value this result may stand for is at or below `limit`.
    pub fn surely_at_most(&self, limit: Decimal) -> bool {
        match self.comparator {
            None | Some(Comparator::Le | Comparator::Lt) => self.value <= limit,
            Some(Comparator::Gt | Comparator::Ge) => false,
        }
    }

    /// Whether every value this result may stand for is at or above `limit`.
    pub fn surely_at_least(&self, limit: Decimal) -> bool {
        match self.comparator {
            None | Some(Comparator::Ge | Comparator::Gt) => self.value >= limit,
            Some(Comparator::Lt | Comparator::Le) => false,
        }
    }
}

impl fmt::Display for Numeric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// A coded answer: its text, its place on the test's ordinal scale (0 = first answer, e.g.
/// Negative < Trace < 1+ < 2+) and whether the lab calls it abnormal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coded {
    /// The answer, as the catalogue spells it.
    pub answer: String,
    /// Position in the catalogue's answer list (the ordinal order).
    pub rank: usize,
}

/// A result value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultValue {
    Numeric(Numeric),
    Coded(Coded),
    Text(String),
}

impl ResultValue {
    /// The value as reported (what a report prints).
    pub fn text(&self) -> String {
        match self {
            Self::Numeric(n) => n.text(),
            Self::Coded(c) => c.answer.clone(),
            Self::Text(t) => t.clone(),
        }
    }

    /// `numeric`, `coded` or `text`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Numeric(_) => "numeric",
            Self::Coded(_) => "coded",
            Self::Text(_) => "text",
        }
    }

    /// The numeric part, if any.
    pub fn numeric(&self) -> Option<&Numeric> {
        match self {
            Self::Numeric(n) => Some(n),
            _ => None,
        }
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("a value is required")]
    Empty,
    #[error("the value is longer than {max} characters")]
    TooLong { max: usize },
    #[error(
        "{input:?} is not a number (digits with an optional sign, decimal point and comparator <, <=, >, >=)"
    )]
    NotNumeric { input: String },
    #[error("{input:?} is not one of this test's answers ({answers})")]
    NotAnAnswer { input: String, answers: String },
    #[error("the value contains control characters")]
    Control,
}

impl ValueError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "value_required",
            Self::TooLong { .. } => "value_too_long",
            Self::NotNumeric { .. } => "value_not_numeric",
            Self::NotAnAnswer { .. } => "value_not_an_answer",
            Self::Control => "value_control_characters",
        }
    }

    /// Always the `value` field.
    pub fn field(&self) -> Option<&'static str> {
        Some("value")
    }
}

impl_domain_error!(ValueError);

/// Parses a number as labs write it: optional comparator, optional sign, digits, optional
/// decimal point and digits. No exponents, no thousands separators, no `NaN`.
pub fn parse_numeric(input: &str) -> Result<Numeric, ValueError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ValueError::Empty);
    }
    if s.len() > MAX_VALUE_LEN {
        return Err(ValueError::TooLong { max: MAX_VALUE_LEN });
    }
    let (comparator, rest) = if let Some(r) = s.strip_prefix("<=") {
        (Some(Comparator::Le), r)
    } else if let Some(r) = s.strip_prefix(">=") {
        (Some(Comparator::Ge), r)
    } else if let Some(r) = s.strip_prefix('<') {
        (Some(Comparator::Lt), r)
    } else if let Some(r) = s.strip_prefix('>') {
        (Some(Comparator::Gt), r)
    } else {
        (None, s)
    };
    let rest = rest.trim_start();
    let not_numeric = || ValueError::NotNumeric {
        input: s.to_owned(),
    };
    let digits = rest.strip_prefix(['-', '+']).unwrap_or(rest);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let ok =
        all_digits(int) && frac.is_none_or(|f| !f.is_empty() && all_digits(f)) && !int.is_empty();
    if !ok {
        return Err(not_numeric());
    }
    let value =
        Decimal::from_str(rest.strip_prefix('+').unwrap_or(rest)).map_err(|_| not_numeric())?;
    Ok(Numeric { comparator, value })
}

/// Parses a value for a test of `result_type`: a number, one of the coded answers (matched
/// without regard to case, stored as the catalogue spells it), or free text.
pub fn parse_value(result_type: &ResultType, input: &str) -> Result<ResultValue, ValueError> {
    match result_type {
        ResultType::Numeric { .. } => parse_numeric(input).map(ResultValue::Numeric),
        ResultType::Coded { answers } => {
            let s = input.trim();
            if s.is_empty() {
                return Err(ValueError::Empty);
            }
            answers
                .iter()
                .position(|a| a.eq_ignore_ascii_case(s))
                .map(|rank| {
                    ResultValue::Coded(Coded {
                        answer: answers[rank].clone(),
                        rank,
                    })
                })
                .ok_or_else(|| ValueError::NotAnAnswer {
                    input: s.chars().take(MAX_VALUE_LEN).collect(),
                    answers: answers.join(", "),
                })
        }
        ResultType::Text => {
            let s = input.trim();
            if s.is_empty() {
                return Err(ValueError::Empty);
            }
            if s.chars().count() > MAX_TEXT_LEN {
                return Err(ValueError::TooLong { max: MAX_TEXT_LEN });
            }
            if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return Err(ValueError::Control);
            }
            Ok(ResultValue::Text(s.to_owned()))
        }
    }
}

/// Rounds half away from zero to `places` decimals for display (the stored value is kept
/// unrounded, DOMAIN §5.4); a value with fewer decimals is padded ("5" → "5.0").
pub fn display(value: Decimal, places: u32) -> String {
    let mut v =
        value.round_dp_with_strategy(places, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    v.rescale(places);
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn numbers_as_labs_write_them() {
        // input → Ok(text) or Err(code)
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("5.0", Ok("5.0")),
            ("5", Ok("5")),
            (" 140 ", Ok("140")),
            ("0.050", Ok("0.050")),
            ("-2.5", Ok("-2.5")),
            ("+2.5", Ok("2.5")),
            ("<0.5", Ok("<0.5")),
            ("< 0.5", Ok("<0.5")),
            ("<=0.5", Ok("<=0.5")),
            (">1000", Ok(">1000")),
            (">=70", Ok(">=70")),
            ("", Err("value_required")),
            ("   ", Err("value_required")),
            ("1e3", Err("value_not_numeric")),
            ("NaN", Err("value_not_numeric")),
            ("1,5", Err("value_not_numeric")),
            ("1.", Err("value_not_numeric")),
            (".5", Err("value_not_numeric")),
            ("1 000", Err("value_not_numeric")),
            ("--1", Err("value_not_numeric")),
            ("<", Err("value_not_numeric")),
            ("positive", Err("value_not_numeric")),
            (
                "12345678901234567890123456789012345678901",
                Err("value_too_long"),
            ),
        ];
        for (input, expected) in cases {
            let got = parse_numeric(input).map(|n| n.text()).map_err(|e| e.code());
            assert_eq!(got.as_deref().map_err(|e| *e), *expected, "{input:?}");
        }
    }

    #[test]
    fn coded_answers_keep_their_rank_and_spelling() {
        let dip = ResultType::coded(&["Negative", "Trace", "1+", "2+", "3+"]).unwrap();
        let v = parse_value(&dip, "trace").unwrap();
        assert_eq!(
            v,
            ResultValue::Coded(Coded {
                answer: "Trace".into(),
                rank: 1
            })
        );
        assert_eq!(
            parse_value(&dip, "4+").unwrap_err().code(),
            "value_not_an_answer"
        );
        assert_eq!(
            parse_value(&ResultType::Numeric { precision: 1 }, "Trace")
                .unwrap_err()
                .code(),
            "value_not_numeric"
        );
        assert_eq!(
            parse_value(&ResultType::Text, "No growth\u{7}")
                .unwrap_err()
                .code(),
            "value_control_characters"
        );
    }

    #[test]
    fn censored_values_compare_by_what_they_may_stand_for() {
        let lt = parse_numeric("<0.5").unwrap();
        assert!(lt.surely_below(d("0.5")));
        assert!(!lt.surely_below(d("0.4")));
        assert!(!lt.surely_above(d("0.1")));
        let le = parse_numeric("<=0.5").unwrap();
        assert!(!le.surely_below(d("0.5")));
        assert!(le.surely_at_most(d("0.5")));
        let gt = parse_numeric(">1000").unwrap();
        assert!(gt.surely_above(d("1000")));
        assert!(gt.surely_at_least(d("1000")));
        assert!(!gt.surely_below(d("2000")));
        let exact = parse_numeric("5.0").unwrap();
        assert!(exact.surely_at_least(d("5")) && exact.surely_at_most(d("5")));
        assert!(!exact.surely_below(d("5")) && !exact.surely_above(d("5")));
    }

    #[test]
    fn display_rounds_half_away_from_zero_and_pads() {
        assert_eq!(display(d("2.45"), 1), "2.5");
        assert_eq!(display(d("-2.45"), 1), "-2.5");
        assert_eq!(display(d("5"), 1), "5.0");
        assert_eq!(display(d("0.0549"), 2), "0.05");
    }

    proptest! {
        /// The text as reported survives a parse: "5.0" stays "5.0".
        #[test]
        fn reported_text_round_trips(int in 0u32..100_000, frac in proptest::option::of("[0-9]{1,6}"), cmp in 0usize..5) {
            let prefix = ["", "<", "<=", ">", ">="][cmp];
            let text = match frac { Some(f) => format!("{prefix}{int}.{f}"), None => format!("{prefix}{int}") };
            prop_assert_eq!(parse_numeric(&text).unwrap().text(), text);
        }
    }
}
