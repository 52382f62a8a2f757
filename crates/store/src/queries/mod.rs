//! Queries written once, as plain Rust over `Db`, and compiled once per backend: each context
//! file here is included in `sqlite` (with `Db = sqlx::Sqlite`) and in `pg` (with
//! `Db = sqlx::Postgres`). A query is one function over any executor (the read pool or a
//! transaction). New contexts go here, one file each, instead of into `reg_queries!`.

pub(crate) mod pg;
pub(crate) mod sqlite;
