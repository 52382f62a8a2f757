//! Results: values, intervals, flags, checks and calculations.

pub mod convert;
