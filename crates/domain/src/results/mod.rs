//! Results: values, intervals, flags, checks and calculations.

pub mod calc;
pub mod convert;
