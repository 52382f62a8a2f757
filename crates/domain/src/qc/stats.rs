//! Exact QC statistics (DOMAIN §1.7): n, Σx and Σx² kept as exact decimals, so months (or any
//! periods) pool exactly with [`Accumulator::merge`]; mean, SD with the n−1 denominator, CV%.
//!
//! The variance is computed as (n·Σx² − (Σx)²) / (n·(n−1)): the numerator is exact (no
//! cancellation error, since nothing is rounded before the subtraction), and only the final
//! division and square root round, at `rust_decimal`'s 28th significant digit.

use rust_decimal::{Decimal, MathematicalOps};

use super::QcError;

/// Running sums of a set of control values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accumulator {
    n: u64,
    sum: Decimal,
    sum_sq: Decimal,
}

const OVERFLOW: QcError = QcError::Overflow { field: "value" };

impl Accumulator {
    /// No values yet.
    pub fn new() -> Accumulator {
        Accumulator::default()
    }

    /// Adds one value; refused (nothing changed) when a sum would overflow.
    pub fn push(&mut self, x: Decimal) -> Result<(), QcError> {
        let sq = x.checked_mul(x).ok_or(OVERFLOW)?;
        let sum = self.sum.checked_add(x).ok_or(OVERFLOW)?;
        let sum_sq = self.sum_sq.checked_add(sq).ok_or(OVERFLOW)?;
        *self = Accumulator {
            n: self.n + 1,
            sum,
            sum_sq,
        };
        Ok(())
    }

    /// Pools another period's values with these (exactly).
    pub fn merge(&mut self, other: &Accumulator) -> Result<(), QcError> {
        let sum = self.sum.checked_add(other.sum).ok_or(OVERFLOW)?;
        let sum_sq = self.sum_sq.checked_add(other.sum_sq).ok_or(OVERFLOW)?;
        *self = Accumulator {
            n: self.n + other.n,
            sum,
            sum_sq,
        };
        Ok(())
    }

    /// The number of values.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Σx.
    pub fn sum(&self) -> Decimal {
        self.sum
    }

    /// Σx².
    pub fn sum_of_squares(&self) -> Decimal {
        self.sum_sq
    }

    /// Σx / n; `None` without values.
    pub fn mean(&self) -> Option<Decimal> {
        if self.n == 0 {
            return None;
        }
        self.sum.checked_div(Decimal::from(self.n))
    }

    /// The sample SD, √(Σ(x − mean)² / (n − 1)); `None` for fewer than two values.
    pub fn sd(&self) -> Option<Decimal> {
        if self.n < 2 {
            return None;
        }
        let n = Decimal::from(self.n);
        let numerator = n
            .checked_mul(self.sum_sq)?
            .checked_sub(self.sum.checked_mul(self.sum)?)?;
        let denominator = n.checked_mul(n - Decimal::ONE)?;
        let variance = numerator.checked_div(denominator)?;
        // Exact arithmetic never makes it negative; zero spread has SD zero.
        if variance <= Decimal::ZERO {
            return Some(Decimal::ZERO);
        }
        variance.sqrt()
    }

    /// CV% = 100 · SD / mean; `None` for fewer than two values or a mean of zero.
    pub fn cv_pct(&self) -> Option<Decimal> {
        let mean = self.mean()?;
        if mean.is_zero() {
            return None;
        }
        self.sd()?
            .checked_mul(Decimal::ONE_HUNDRED)?
            .checked_div(mean)
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

    fn acc(values: &[&str]) -> Accumulator {
        let mut a = Accumulator::new();
        for v in values {
            a.push(d(v)).unwrap();
        }
        a
    }

    #[test]
    fn domain_worked_example() {
        // DOMAIN §1.7: 98, 101, 100, 97, 104 → mean 100.0, SD 2.739, CV 2.74 %.
        let a = acc(&["98", "101", "100", "97", "104"]);
        assert_eq!(a.n(), 5);
        assert_eq!(a.mean(), Some(d("100")));
        let sd = a.sd().unwrap();
        assert_eq!(sd.round_dp(3), d("2.739"));
        // √7.5 = 2.73861278752583…
        assert!(
            (sd - d("2.7386127875258")).abs() < d("0.0000000000001"),
            "{sd}"
        );
        assert_eq!(a.cv_pct().unwrap().round_dp(2), d("2.74"));
    }

    #[test]
    fn too_few_values() {
        assert_eq!(Accumulator::new().mean(), None);
        assert_eq!(Accumulator::new().sd(), None);
        let one = acc(&["5.1"]);
        assert_eq!(one.mean(), Some(d("5.1")));
        assert_eq!(one.sd(), None);
        assert_eq!(one.cv_pct(), None);
        let same = acc(&["5.1", "5.1", "5.1"]);
        assert_eq!(same.sd(), Some(Decimal::ZERO));
        assert_eq!(same.cv_pct(), Some(Decimal::ZERO));
        let zero_mean = acc(&["-1", "1"]);
        assert_eq!(zero_mean.cv_pct(), None);
    }

    #[test]
    fn months_pool_exactly() {
        let mut october = acc(&["98", "101", "100"]);
        let november = acc(&["97", "104"]);
        october.merge(&november).unwrap();
        assert_eq!(october, acc(&["98", "101", "100", "97", "104"]));
    }

    #[test]
    fn overflow_is_refused_and_changes_nothing() {
        let mut a = acc(&["1"]);
        let before = a;
        assert_eq!(a.push(Decimal::MAX).unwrap_err().code(), "qc_overflow");
        assert_eq!(a, before);
    }

    proptest! {
        /// Pooling two parts equals accumulating everything; the SD matches the two-pass
        /// definition Σ(x − mean)² / (n − 1) to 20 decimal places.
        #[test]
        fn pooled_equals_whole_and_two_pass(
            xs in prop::collection::vec(-100_000i64..100_000, 2..40),
            split in 0usize..40,
        ) {
            let values: Vec<Decimal> = xs.iter().map(|&x| Decimal::new(x, 2)).collect();
            let split = split.min(values.len());
            let mut whole = Accumulator::new();
            values.iter().for_each(|&v| whole.push(v).unwrap());
            let (mut a, mut b) = (Accumulator::new(), Accumulator::new());
            values[..split].iter().for_each(|&v| a.push(v).unwrap());
            values[split..].iter().for_each(|&v| b.push(v).unwrap());
            a.merge(&b).unwrap();
            prop_assert_eq!(a, whole);

            let n = Decimal::from(values.len());
            let mean = values.iter().sum::<Decimal>() / n;
            let ss: Decimal = values.iter().map(|v| (v - mean) * (v - mean)).sum();
            let var = ss / (n - Decimal::ONE);
            let sd = whole.sd().unwrap();
            prop_assert!((sd * sd - var).abs() < d("0.00000000000000000001") * (var + Decimal::ONE),
                "sd {} var {}", sd, var);
        }
    }
}
