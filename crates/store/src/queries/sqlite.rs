//! The query contexts compiled for SQLite.

pub(crate) type Db = sqlx::Sqlite;

// Each context file is compiled once per backend, on purpose (see `queries/mod.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "access.rs"]
pub(crate) mod access;
#[allow(clippy::duplicate_mod)]
#[path = "catalog.rs"]
pub(crate) mod catalog;
#[allow(clippy::duplicate_mod)]
#[path = "connections.rs"]
pub(crate) mod connections;
#[allow(clippy::duplicate_mod)]
#[path = "idempotency.rs"]
pub(crate) mod idempotency;
#[allow(clippy::duplicate_mod)]
#[path = "orders.rs"]
pub(crate) mod orders;
#[allow(clippy::duplicate_mod)]
#[path = "outbox.rs"]
pub(crate) mod outbox;
#[allow(clippy::duplicate_mod)]
#[path = "qc.rs"]
pub(crate) mod qc;
#[allow(clippy::duplicate_mod)]
#[path = "registration.rs"]
pub(crate) mod registration;
#[allow(clippy::duplicate_mod)]
#[path = "reports.rs"]
pub(crate) mod reports;
#[allow(clippy::duplicate_mod)]
#[path = "results.rs"]
pub(crate) mod results;
#[allow(clippy::duplicate_mod)]
#[path = "security.rs"]
pub(crate) mod security;
#[allow(clippy::duplicate_mod)]
#[path = "sendouts.rs"]
pub(crate) mod sendouts;
#[allow(clippy::duplicate_mod)]
#[path = "specimens.rs"]
pub(crate) mod specimens;
#[allow(clippy::duplicate_mod)]
#[path = "storage.rs"]
pub(crate) mod storage;
#[allow(clippy::duplicate_mod)]
#[path = "tat.rs"]
pub(crate) mod tat;
