//! Aliquot's domain: the rules of a clinical laboratory as pure functions and types.
//!
//! No I/O, no async, no SQL, no clock reads (time is passed in), no serde. Every rule that
//! an edge (HTTP, HL7, ASTM, CLI) relies on lives here once and is unit- and property-tested.

pub mod auth;
