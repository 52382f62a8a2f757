//! The sigma metric and Westgard Sigma Rules (DOMAIN §1.8).
//!
//! sigma = (TEa − |bias|) / CV, all in % at the same concentration (per control level; design
//! QC for the lowest clinically relevant one). The recommendation follows the Westgard Sigma
//! Rules table (2014), which has **no** 1-2s warning rule; every recommended rule set is in
//! [`Mode::Modern`]. Where the table offers two designs, the first is given:
//!
//! | sigma | 2 levels | 3 levels |
//! |---|---|---|
//! | ≥ 6 | 1-3s; N=2, R=1 | 1-3s; N=3, R=1 |
//! | 5 to < 6 | 1-3s/2-2s/R-4s; N=2, R=1 | 1-3s/2of3-2s/R-4s; N=3, R=1 |
//! | 4 to < 5 | 1-3s/2-2s/R-4s/4-1s; N=4, R=1 (or N=2, R=2) | 1-3s/2of3-2s/R-4s/3-1s; N=3, R=1 |
//! | < 4 | 1-3s/2-2s/R-4s/4-1s/8x; N=4, R=2 (or N=2, R=4) | 1-3s/2of3-2s/R-4s/3-1s/6x; N=6, R=1 (or N=3, R=2) |
//!
//! Below about 3 σ statistical QC cannot detect errors well enough: the method itself should be
//! improved ([`Recommendation::method_inadequate`]).

use rust_decimal::Decimal;

use super::QcError;
use super::westgard::{Mode, Rule, RuleSet};

/// (TEa − |bias|) / CV, unrounded. TEa and CV must be above zero.
pub fn sigma(tea_pct: Decimal, bias_pct: Decimal, cv_pct: Decimal) -> Result<Decimal, QcError> {
    if tea_pct <= Decimal::ZERO {
        return Err(QcError::TeaNotPositive { tea: tea_pct });
    }
    if cv_pct <= Decimal::ZERO {
        return Err(QcError::CvNotPositive { cv: cv_pct });
    }
    (tea_pct - bias_pct.abs())
        .checked_div(cv_pct)
        .ok_or(QcError::Overflow { field: "cv_pct" })
}

/// A QC design from the Westgard Sigma Rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// The rules, in modern mode.
    pub rules: RuleSet,
    /// Control measurements per QC event.
    pub n: u8,
    /// Runs (patient runs) per QC event.
    pub runs: u8,
    /// Sigma below 3: no QC design is adequate; improve the method.
    pub method_inadequate: bool,
}

/// The Westgard Sigma Rules design for `sigma` with 2 or 3 control levels (others refused,
/// `qc_sigma_levels`).
pub fn recommend(sigma: Decimal, levels: u8) -> Result<Recommendation, QcError> {
    use Rule::*;
    let band = if sigma >= Decimal::from(6) {
        0
    } else if sigma >= Decimal::from(5) {
        1
    } else if sigma >= Decimal::from(4) {
        2
    } else {
        3
    };
    let (rules, n, runs): (&[Rule], u8, u8) = match (levels, band) {
        (2, 0) => (&[OneThreeS], 2, 1),
        (2, 1) => (&[OneThreeS, TwoTwoS, RFourS], 2, 1),
        (2, 2) => (&[OneThreeS, TwoTwoS, RFourS, FourOneS], 4, 1),
        (2, _) => (&[OneThreeS, TwoTwoS, RFourS, FourOneS, EightX], 4, 2),
        (3, 0) => (&[OneThreeS], 3, 1),
        (3, 1) => (&[OneThreeS, TwoOfThreeTwoS, RFourS], 3, 1),
        (3, 2) => (&[OneThreeS, TwoOfThreeTwoS, RFourS, ThreeOneS], 3, 1),
        (3, _) => (&[OneThreeS, TwoOfThreeTwoS, RFourS, ThreeOneS, SixX], 6, 1),
        _ => return Err(QcError::SigmaLevels { levels }),
    };
    Ok(Recommendation {
        rules: RuleSet::new(Mode::Modern, rules)?,
        n,
        runs,
        method_inadequate: sigma < Decimal::from(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn codes(r: &Recommendation) -> Vec<&'static str> {
        r.rules.rules().map(|r| r.code()).collect()
    }

    #[test]
    fn domain_sigma_vectors() {
        // DOMAIN §1.8/§1.9: TEa 10 %, bias −2 %, CV 1.6 % → 5.0 σ.
        assert_eq!(sigma(d("10"), d("-2"), d("1.6")).unwrap(), d("5"));
        assert_eq!(sigma(d("10"), d("2"), d("1.6")).unwrap(), d("5"));
        // sigma, levels → rules, N, R, inadequate
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, u8, &[&str], u8, u8, bool)] = &[
            ("5.0", 2, &["1-3s", "2-2s", "R-4s"], 2, 1, false),
            ("4.9", 2, &["1-3s", "2-2s", "R-4s", "4-1s"], 4, 1, false),
            (
                "3.5",
                2,
                &["1-3s", "2-2s", "R-4s", "4-1s", "8x"],
                4,
                2,
                false,
            ),
            ("6", 2, &["1-3s"], 2, 1, false),
            ("5.99", 2, &["1-3s", "2-2s", "R-4s"], 2, 1, false),
            ("4", 2, &["1-3s", "2-2s", "R-4s", "4-1s"], 4, 1, false),
            (
                "3.99",
                2,
                &["1-3s", "2-2s", "R-4s", "4-1s", "8x"],
                4,
                2,
                false,
            ),
            (
                "2.9",
                2,
                &["1-3s", "2-2s", "R-4s", "4-1s", "8x"],
                4,
                2,
                true,
            ),
            ("-1", 2, &["1-3s", "2-2s", "R-4s", "4-1s", "8x"], 4, 2, true),
            ("7", 3, &["1-3s"], 3, 1, false),
            ("5", 3, &["1-3s", "2of3-2s", "R-4s"], 3, 1, false),
            ("4.5", 3, &["1-3s", "R-4s", "2of3-2s", "3-1s"], 3, 1, false),
            (
                "3",
                3,
                &["1-3s", "R-4s", "2of3-2s", "3-1s", "6x"],
                6,
                1,
                false,
            ),
        ];
        for &(s, levels, rules, n, runs, inadequate) in cases {
            let r = recommend(d(s), levels).unwrap();
            let mut want: Vec<&str> = rules.to_vec();
            want.sort_by_key(|c| Rule::ALL.iter().position(|r| r.code() == *c));
            assert_eq!(codes(&r), want, "sigma {s}, {levels} levels");
            assert_eq!(
                (r.n, r.runs, r.method_inadequate),
                (n, runs, inadequate),
                "sigma {s}"
            );
            assert_eq!(r.rules.mode(), Mode::Modern);
            assert!(!r.rules.contains(Rule::OneTwoS));
        }
    }

    #[test]
    fn refusals() {
        let e = sigma(d("10"), d("1"), d("0")).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            ("qc_cv_not_positive", Some("cv_pct"))
        );
        let e = sigma(d("10"), d("1"), d("-1.5")).unwrap_err();
        assert_eq!(e.code(), "qc_cv_not_positive");
        let e = sigma(d("0"), d("1"), d("1")).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            ("qc_tea_not_positive", Some("tea_pct"))
        );
        for levels in [0, 1, 4] {
            let e = recommend(d("5"), levels).unwrap_err();
            assert_eq!((e.code(), e.field()), ("qc_sigma_levels", Some("levels")));
        }
    }
}
