//! patient
