//! The query contexts compiled for PostgreSQL.

pub(crate) type Db = sqlx::Postgres;

// Each context file is compiled once per backend, on purpose (see `queries/mod.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "idempotency.rs"]
pub(crate) mod idempotency;
