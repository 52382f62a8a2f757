//! aliquot-domain: the pure domain rules of the Aliquot laboratory information system.
//!
//! No I/O, no async, no clock reads (time is always passed in as `jiff::Timestamp`), no serde.
//! Every input crosses into the domain through a fallible `parse`/`new` constructor whose error
//! carries a stable machine code (see [`error::DomainError`]).
//!
//! Rules cite `/work/shared/reference/DOMAIN.md` sections (e.g. "DOMAIN §6.2") and the
//! underlying standards (CLSI, HL7, CMS, CLIA).

pub mod catalog;
pub mod error;
pub mod ids;
pub mod order;
pub mod patient;
pub mod routing;
pub mod specimen;
pub mod storage;
pub mod tat;
