//! Results: values, intervals, flags, checks and calculations.

pub mod autoverify;
pub mod calc;
pub mod convert;
pub mod delta;
pub mod interval;
pub mod rules;
pub mod value;
