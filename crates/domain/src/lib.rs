//! Aliquot's domain: the rules of a clinical laboratory as pure functions and types.
//!
//! No I/O, no async, no SQL, no clock reads (time is always passed in as `jiff::Timestamp`),
//! no serde. Every input crosses into the domain through a fallible `parse`/`new` constructor
//! whose error carries a stable machine code (see [`error::DomainError`]). Every rule that an
//! edge (HTTP, HL7, ASTM, CLI) relies on lives here once and is unit- and property-tested.
//!
//! Rules cite `shared/reference/DOMAIN.md` sections (e.g. "DOMAIN §6.2") and the underlying
//! standards (CLSI, HL7, CMS, CLIA).

pub mod auth;
pub mod catalog;
pub mod duration;
pub mod error;
pub mod ids;
pub mod order;
pub mod patient;
pub mod qc;
pub mod results;
pub mod routing;
pub mod scan;
pub mod sendout;
pub mod specimen;
pub mod storage;
pub mod tat;
pub mod totp;
