//! Unit conversions of results: explicit, per analyte, exact.
//!
//! A result reported in another unit than the test's is converted only through a conversion
//! this module knows; anything else is refused ([`ConversionError::NoConversion`]), never
//! guessed. Units are UCUM codes compared as **case-sensitive strings** (`mg/dL`, not `mg/dl`).
//!
//! # Rules and sources
//! - **Identical units**: the value is returned unchanged.
//! - **Unit-only equivalences** ([`unit_factor`]): within one dimension a unit differs from
//!   another by a power of ten, whatever the analyte is, so these hold for every analyte (the
//!   decision asked for in DOMAIN §5.4: a mass concentration stays a mass concentration, and
//!   `g/dL` → `g/L` is ×10 for albumin, hemoglobin or anything else). The known units:
//!   - mass concentration: `g/L`, `g/dL` (×10 to `g/L`), `mg/dL` (×0.01), `mg/L` (×0.001);
//!   - substance concentration: `mmol/L`, `umol/L` (×0.001 to `mmol/L`);
//!   - number concentration (cell counts): `10*9/L` = `10*3/uL`, `10*12/L` = `10*6/uL`
//!     (×1000 to `10*9/L`) — DOMAIN §5.4 "10³/µL = 10⁹/L".
//!
//!   A unit outside this table converts only to itself.
//! - **Per-analyte conversions** ([`Analyte::si_conversion`]) between a conventional mass unit
//!   and an SI substance unit, with the factors of DOMAIN §5.4 (conventional → SI, multiply):
//!   glucose 0.0555 (mg/dL → mmol/L), creatinine 88.4 (mg/dL → umol/L), cholesterol 0.02586,
//!   triglycerides 0.01129, urea nitrogen → urea 0.357 (BUN mg/dL → urea mmol/L), calcium
//!   0.2495, bilirubin 17.1 (mg/dL → umol/L), hemoglobin 0.6206 (g/dL → mmol/L, Fe basis).
//!   Albumin and total protein have no molar conversion (g/dL ↔ g/L is unit-only).
//!   A per-analyte conversion composes with the unit-only equivalences on either side
//!   (glucose `g/L` → `mmol/L` is `g/L` → `mg/dL` → `mmol/L`).
//! - **SI → conventional divides by the same factor** (rather than multiplying by the rounded
//!   inverse DOMAIN §5.4 also lists, e.g. 18.0 for glucose), so one factor defines both
//!   directions and conventional → SI → conventional returns the original value exactly.
//! - **Rounding: none.** The converted value is returned unrounded (DOMAIN §5.4: "round only at
//!   display; store the unrounded converted value"), within `rust_decimal`'s 28 significant
//!   digits: a multiplication is exact while the product fits; a division by a factor
//!   (SI → conventional) is rounded at the 28th digit when it does not terminate.

use thiserror::Error;

use rust_decimal::Decimal;

use crate::error::impl_domain_error;

const fn dec(mantissa: u32, scale: u32) -> Decimal {
    Decimal::from_parts(mantissa, 0, 0, false, scale)
}

// ---------------------------------------------------------------------------------------------
// Analytes

/// An analyte with an explicit conventional ↔ SI conversion (DOMAIN §5.4), or one whose units
/// are named here so that a catalogue can say what a test measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Analyte {
    /// Glucose (MW 180.16).
    Glucose,
    /// Creatinine (MW 113.12).
    Creatinine,
    /// Cholesterol: total, HDL and LDL cholesterol share one factor (DOMAIN §5.4).
    Cholesterol,
    /// Triglycerides.
    Triglycerides,
    /// Total calcium.
    Calcium,
    /// Urea nitrogen (BUN), converted to urea in mmol/L.
    UreaNitrogen,
    /// Total bilirubin.
    Bilirubin,
    /// Hemoglobin.
    Hemoglobin,
    /// Albumin (mass units only).
    Albumin,
    /// Total protein (mass units only).
    TotalProtein,
}

/// A per-analyte conversion: `si = conventional × factor`, and `conventional = si / factor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiConversion {
    /// The conventional UCUM unit, e.g. `mg/dL`.
    pub conventional: &'static str,
    /// The SI UCUM unit, e.g. `mmol/L`.
    pub si: &'static str,
    /// Multiply a conventional value by this to get the SI value (DOMAIN §5.4).
    pub factor: Decimal,
}

/// A name that is not one of [`Analyte::as_str`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{input:?} is not a known analyte")]
pub struct AnalyteError {
    /// The rejected input.
    pub input: String,
}

impl AnalyteError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "analyte_unknown"
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        Some("analyte")
    }
}

impl Analyte {
    /// Every analyte, in declaration order.
    pub const ALL: [Analyte; 10] = [
        Self::Glucose,
        Self::Creatinine,
        Self::Cholesterol,
        Self::Triglycerides,
        Self::Calcium,
        Self::UreaNitrogen,
        Self::Bilirubin,
        Self::Hemoglobin,
        Self::Albumin,
        Self::TotalProtein,
    ];

    /// The stable snake_case name, e.g. `urea_nitrogen`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Glucose => "glucose",
            Self::Creatinine => "creatinine",
            Self::Cholesterol => "cholesterol",
            Self::Triglycerides => "triglycerides",
            Self::Calcium => "calcium",
            Self::UreaNitrogen => "urea_nitrogen",
            Self::Bilirubin => "bilirubin",
            Self::Hemoglobin => "hemoglobin",
            Self::Albumin => "albumin",
            Self::TotalProtein => "total_protein",
        }
    }

    /// Parses the snake_case name (exact, lower case).
    pub fn parse(input: &str) -> Result<Self, AnalyteError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == input)
            .ok_or_else(|| AnalyteError {
                input: input.to_owned(),
            })
    }

    /// The conventional ↔ SI conversion of DOMAIN §5.4, where the analyte has one beyond the
    /// unit-only equivalences.
    pub fn si_conversion(self) -> Option<SiConversion> {
        let (conventional, si, factor) = match self {
            Self::Glucose => ("mg/dL", "mmol/L", dec(555, 4)),
            Self::Creatinine => ("mg/dL", "umol/L", dec(884, 1)),
            Self::Cholesterol => ("mg/dL", "mmol/L", dec(2586, 5)),
            Self::Triglycerides => ("mg/dL", "mmol/L", dec(1129, 5)),
            Self::Calcium => ("mg/dL", "mmol/L", dec(2495, 4)),
            Self::UreaNitrogen => ("mg/dL", "mmol/L", dec(357, 3)),
            Self::Bilirubin => ("mg/dL", "umol/L", dec(171, 1)),
            Self::Hemoglobin => ("g/dL", "mmol/L", dec(6206, 4)),
            Self::Albumin | Self::TotalProtein => return None,
        };
        Some(SiConversion {
            conventional,
            si,
            factor,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Unit-only equivalences

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Mass,
    Substance,
    Number,
}

/// Unit, dimension, and the factor to the dimension's base unit (`g/L`, `mmol/L`, `10*9/L`).
const UNITS: [(&str, Dimension, Decimal); 10] = [
    ("g/L", Dimension::Mass, dec(1, 0)),
    ("g/dL", Dimension::Mass, dec(10, 0)),
    ("mg/dL", Dimension::Mass, dec(1, 2)),
    ("mg/L", Dimension::Mass, dec(1, 3)),
    ("mmol/L", Dimension::Substance, dec(1, 0)),
    ("umol/L", Dimension::Substance, dec(1, 3)),
    ("10*9/L", Dimension::Number, dec(1, 0)),
    ("10*3/uL", Dimension::Number, dec(1, 0)),
    ("10*12/L", Dimension::Number, dec(1000, 0)),
    ("10*6/uL", Dimension::Number, dec(1000, 0)),
];

fn unit_entry(unit: &str) -> Option<(Dimension, Decimal)> {
    UNITS
        .iter()
        .find(|(u, _, _)| *u == unit)
        .map(|&(_, dimension, factor)| (dimension, factor))
}

/// The analyte-independent factor from `from` to `to` (`to_value = from_value × factor`), when
/// both are the same unit or units of one dimension in this module's table (module doc). The
/// factor is a power of ten, so applying it is exact.
pub fn unit_factor(from: &str, to: &str) -> Option<Decimal> {
    if from == to {
        return Some(Decimal::ONE);
    }
    let (from_dim, from_factor) = unit_entry(from)?;
    let (to_dim, to_factor) = unit_entry(to)?;
    if from_dim != to_dim {
        return None;
    }
    from_factor.checked_div(to_factor)
}

// ---------------------------------------------------------------------------------------------
// Conversion

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConversionError {
    /// No explicit conversion between the two units (for this analyte, or without one).
    #[error("no conversion from {from:?} to {to:?} is defined")]
    NoConversion { from: String, to: String },
    /// The converted value does not fit in a decimal.
    #[error("the converted value overflows")]
    Overflow,
}

impl ConversionError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoConversion { .. } => "unit_not_convertible",
            Self::Overflow => "unit_conversion_overflow",
        }
    }
    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::NoConversion { .. } => Some("units"),
            Self::Overflow => Some("value"),
        }
    }
}

/// Converts `value` from unit `from` to unit `to` (UCUM, case-sensitive), in this order:
/// identical units → unchanged; a unit-only equivalence ([`unit_factor`]) → converted, whatever
/// the analyte; the analyte's [`SiConversion`] (composed with unit-only equivalences on either
/// side) → converted; otherwise [`ConversionError::NoConversion`]. No rounding (module doc).
pub fn convert(
    analyte: Option<Analyte>,
    value: Decimal,
    from: &str,
    to: &str,
) -> Result<Decimal, ConversionError> {
    if from == to {
        return Ok(value);
    }
    if let Some(factor) = unit_factor(from, to) {
        return value.checked_mul(factor).ok_or(ConversionError::Overflow);
    }
    if let Some(conversion) = analyte.and_then(Analyte::si_conversion) {
        // Conventional → SI: to the conventional unit, × factor, from the SI unit.
        if let (Some(before), Some(after)) = (
            unit_factor(from, conversion.conventional),
            unit_factor(conversion.si, to),
        ) {
            return value
                .checked_mul(before)
                .and_then(|v| v.checked_mul(conversion.factor))
                .and_then(|v| v.checked_mul(after))
                .ok_or(ConversionError::Overflow);
        }
        // SI → conventional: divided by the same factor.
        if let (Some(before), Some(after)) = (
            unit_factor(from, conversion.si),
            unit_factor(conversion.conventional, to),
        ) {
            return value
                .checked_mul(before)
                .and_then(|v| v.checked_div(conversion.factor))
                .and_then(|v| v.checked_mul(after))
                .ok_or(ConversionError::Overflow);
        }
    }
    Err(ConversionError::NoConversion {
        from: from.to_owned(),
        to: to.to_owned(),
    })
}

impl_domain_error!(AnalyteError, ConversionError);

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use proptest::prelude::*;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn analyte_names_round_trip() {
        for analyte in Analyte::ALL {
            assert_eq!(Analyte::parse(analyte.as_str()), Ok(analyte));
        }
        assert_eq!(Analyte::parse("urea_nitrogen"), Ok(Analyte::UreaNitrogen));
        for bad in ["", "Glucose", "urea nitrogen", "bun", "glucose "] {
            let err = Analyte::parse(bad).unwrap_err();
            assert_eq!(
                (err.code(), err.field()),
                ("analyte_unknown", Some("analyte"))
            );
        }
    }

    #[test]
    fn conversion_cases() {
        use Analyte::*;
        // One row: analyte, value, from, to → expected. Expected values are the DOMAIN §5.4
        // factor applied by hand (multiplication for conventional → SI, division for back).
        let cases: &[(Option<Analyte>, &str, &str, &str, &str)] = &[
            (Some(Glucose), "90", "mg/dL", "mmol/L", "4.995"),
            (Some(Glucose), "4.995", "mmol/L", "mg/dL", "90"),
            (Some(Glucose), "1", "g/L", "mmol/L", "5.55"), // g/L → 100 mg/dL → ×0.0555
            (Some(Glucose), "90", "mg/dL", "umol/L", "4995"),
            (Some(Creatinine), "1.0", "mg/dL", "umol/L", "88.4"),
            (Some(Creatinine), "88.4", "umol/L", "mg/dL", "1"),
            (Some(Creatinine), "1.0", "mg/dL", "mmol/L", "0.0884"),
            (Some(Creatinine), "0.0884", "mmol/L", "mg/dL", "1"),
            (Some(Cholesterol), "200", "mg/dL", "mmol/L", "5.172"),
            (Some(Cholesterol), "5.172", "mmol/L", "mg/dL", "200"),
            (Some(Triglycerides), "150", "mg/dL", "mmol/L", "1.6935"),
            (Some(Calcium), "10", "mg/dL", "mmol/L", "2.495"),
            (Some(Calcium), "2.495", "mmol/L", "mg/dL", "10"),
            (Some(UreaNitrogen), "14", "mg/dL", "mmol/L", "4.998"),
            (Some(Bilirubin), "1.2", "mg/dL", "umol/L", "20.52"),
            (Some(Hemoglobin), "14", "g/dL", "g/L", "140"),
            (Some(Hemoglobin), "14", "g/dL", "mmol/L", "8.6884"),
            (Some(Hemoglobin), "140", "g/L", "mmol/L", "8.6884"),
            (Some(Albumin), "4.0", "g/dL", "g/L", "40"),
            (Some(TotalProtein), "70", "g/L", "g/dL", "7"),
            // Unit-only equivalences need no analyte.
            (None, "4.0", "g/dL", "g/L", "40"),
            (None, "100", "mg/dL", "g/L", "1"),
            (None, "7.5", "10*3/uL", "10*9/L", "7.5"),
            (None, "4.5", "10*6/uL", "10*12/L", "4.5"),
            (None, "250", "10*9/L", "10*12/L", "0.25"),
            (None, "250", "10*3/uL", "10*6/uL", "0.25"),
            (None, "88.4", "umol/L", "mmol/L", "0.0884"),
            // Identical units: unchanged, even for units outside the table.
            (None, "12.5", "U/L", "U/L", "12.5"),
            (Some(Glucose), "-3", "mg/dL", "mg/dL", "-3"),
        ];
        for &(analyte, value, from, to, expected) in cases {
            assert_eq!(
                convert(analyte, d(value), from, to),
                Ok(d(expected)),
                "{analyte:?} {value} {from} → {to}"
            );
        }
    }

    #[test]
    fn refused_conversions() {
        use Analyte::*;
        // One row: analyte, from, to — each must be refused with `unit_not_convertible`.
        let cases: &[(Option<Analyte>, &str, &str)] = &[
            (None, "mg/dL", "mmol/L"),          // molar conversion needs the analyte
            (Some(Albumin), "g/dL", "mmol/L"),  // no molar factor for albumin
            (Some(Glucose), "mg/dl", "mmol/L"), // UCUM is case-sensitive
            (Some(Glucose), "mg/dL", "mmol/l"),
            (Some(Creatinine), "mg/dL", "10*9/L"),
            (Some(Glucose), "mg/dL", "U/L"),
            (None, "10*9/L", "g/L"),
            (None, "U/L", "[IU]/L"),
            (Some(Hemoglobin), "mmol/L", "umol/L/h"),
        ];
        for &(analyte, from, to) in cases {
            let err = convert(analyte, d("1"), from, to).unwrap_err();
            assert_eq!(
                err,
                ConversionError::NoConversion {
                    from: from.to_owned(),
                    to: to.to_owned()
                }
            );
            assert_eq!(
                (err.code(), err.field()),
                ("unit_not_convertible", Some("units"))
            );
        }
    }

    #[test]
    fn overflow_is_an_error() {
        let err = convert(None, Decimal::MAX, "g/dL", "mg/dL").unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            ("unit_conversion_overflow", Some("value"))
        );
    }

    #[test]
    fn si_to_conventional_divides_by_the_factor() {
        // 5 mmol/L glucose: 5 / 0.0555 = 90.09009009…, not 5 × 18 = 90 (module doc).
        let mg = convert(Some(Analyte::Glucose), d("5"), "mmol/L", "mg/dL").unwrap();
        assert_eq!(mg.round_dp(6), d("90.090090"));
    }

    fn analyte() -> impl Strategy<Value = Analyte> {
        prop::sample::select(Analyte::ALL.to_vec())
    }

    /// Non-negative values with up to 6 decimals, below 10^12.
    fn value() -> impl Strategy<Value = Decimal> {
        (0u64..1_000_000_000_000_000).prop_map(|m| Decimal::new(m as i64, 6))
    }

    proptest! {
        #[test]
        fn conventional_to_si_and_back_is_exact(analyte in analyte(), v in value()) {
            if let Some(c) = analyte.si_conversion() {
                let si = convert(Some(analyte), v, c.conventional, c.si).unwrap();
                let back = convert(Some(analyte), si, c.si, c.conventional).unwrap();
                prop_assert_eq!(back, v);
            }
        }

        #[test]
        fn si_to_conventional_and_back_is_within_rounding(analyte in analyte(), v in value()) {
            if let Some(c) = analyte.si_conversion() {
                let conventional = convert(Some(analyte), v, c.si, c.conventional).unwrap();
                let back = convert(Some(analyte), conventional, c.conventional, c.si).unwrap();
                // One rounding of the division at rust_decimal's precision (28 significant
                // digits, at most 28 decimal places), then multiplied by the factor.
                let tolerance = v * Decimal::new(1, 25) + Decimal::new(1, 26);
                prop_assert!((back - v).abs() <= tolerance, "{} → {} → {}", v, conventional, back);
            }
        }

        #[test]
        fn unit_only_round_trips_are_exact(
            v in value(),
            pair in prop::sample::select(vec![
                ("g/dL", "g/L"), ("mg/dL", "g/L"), ("mg/L", "g/dL"), ("umol/L", "mmol/L"),
                ("10*3/uL", "10*9/L"), ("10*6/uL", "10*12/L"), ("10*9/L", "10*12/L"),
            ]),
        ) {
            let (a, b) = pair;
            let there = convert(None, v, a, b).unwrap();
            prop_assert_eq!(convert(None, there, b, a).unwrap(), v);
        }
    }
}
