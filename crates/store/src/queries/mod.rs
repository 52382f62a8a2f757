//! Queries written once, as plain Rust over `Db`, and compiled once per backend: each context
//! file here is included in `sqlite` (with `Db = sqlx::Sqlite`) and in `pg` (with
//! `Db = sqlx::Postgres`). A query is one function over any executor (the read pool or a
//! transaction). Every query context lives here, one file each: `registration`, `catalog`,
//! `orders`, `specimens`, `storage`, `sendouts`, `tat`, `results`, `qc`, `access`, `idempotency` and `security` (second factors, electronic signatures,
//! pending role grants). A statement that must
//! differ by backend goes into `sqlite.rs` / `pg.rs` instead.

pub(crate) mod pg;
pub(crate) mod sqlite;
