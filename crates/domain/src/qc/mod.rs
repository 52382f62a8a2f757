//! Statistical quality control (DOMAIN §1): the Westgard multirule evaluator, exact QC
//! statistics and the sigma metric with Westgard Sigma Rules.
//!
//! - [`westgard`]: rules, rule sets, scopes, and a stateful [`westgard::Evaluator`] that judges
//!   each run against the history before it (DOMAIN §1.1–1.5).
//! - [`stats`]: n, Σx, Σx² kept as exact decimals, so periods pool exactly; mean, SD (n−1),
//!   CV% (DOMAIN §1.7).
//! - [`sigma`]: (TEa − |bias|)/CV and the Westgard Sigma Rules table (DOMAIN §1.8).

use rust_decimal::Decimal;
use thiserror::Error;

use crate::error::impl_domain_error;

pub mod sigma;
pub mod stats;
pub mod westgard;

/// Why a QC input was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QcError {
    /// A rule name that is none of the spellings of [`westgard::Rule::code`].
    #[error(
        "unknown QC rule {text:?}; the rules are 1-2s, 1-3s, 2-2s, R-4s, 4-1s, 10x, 8x, 12x, 2of3-2s, 3-1s, 6x, 9x"
    )]
    UnknownRule { text: String },
    /// A rule set without any rejection rule (1-2s alone never rejects).
    #[error("a QC rule set needs at least one rejection rule (1-2s is a warning only)")]
    NoRejectionRule,
    /// A target SD of zero or less.
    #[error("the target SD must be greater than zero; got {sd}")]
    SdNotPositive { sd: Decimal },
    /// A control level other than 1, 2 or 3.
    #[error("the control level must be 1, 2 or 3; got {level}")]
    LevelOutOfRange { level: u8 },
    /// A run without any control observation.
    #[error("a QC run needs at least one control observation")]
    EmptyRun,
    /// A number so large that exact arithmetic on it overflows.
    #[error("{field} is too large to compute with")]
    Overflow { field: &'static str },
    /// Sigma needs a CV above zero.
    #[error("the CV must be greater than zero; got {cv}")]
    CvNotPositive { cv: Decimal },
    /// Sigma needs a total allowable error above zero.
    #[error("the total allowable error must be greater than zero; got {tea}")]
    TeaNotPositive { tea: Decimal },
    /// Westgard Sigma Rules are tabulated for 2 and 3 control levels.
    #[error("Westgard Sigma Rules are defined for 2 or 3 control levels; got {levels}")]
    SigmaLevels { levels: u8 },
}

impl QcError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownRule { .. } => "qc_unknown_rule",
            Self::NoRejectionRule => "qc_no_rejection_rule",
            Self::SdNotPositive { .. } => "qc_sd_not_positive",
            Self::LevelOutOfRange { .. } => "qc_level_out_of_range",
            Self::EmptyRun => "qc_run_empty",
            Self::Overflow { .. } => "qc_overflow",
            Self::CvNotPositive { .. } => "qc_cv_not_positive",
            Self::TeaNotPositive { .. } => "qc_tea_not_positive",
            Self::SigmaLevels { .. } => "qc_sigma_levels",
        }
    }

    /// The input field concerned.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::UnknownRule { .. } | Self::NoRejectionRule => Some("rules"),
            Self::SdNotPositive { .. } => Some("sd"),
            Self::LevelOutOfRange { .. } => Some("level"),
            Self::EmptyRun => None,
            Self::Overflow { field } => Some(field),
            Self::CvNotPositive { .. } => Some("cv_pct"),
            Self::TeaNotPositive { .. } => Some("tea_pct"),
            Self::SigmaLevels { .. } => Some("levels"),
        }
    }
}

impl_domain_error!(QcError);
