//! Benchmark seeding: multi-row inserts that bypass the use cases and the audit trail, for
//! `aliquot bench` only.
//!
//! API boundary: this is not part of [`Store`](crate::Store) or [`Tx`](crate::Tx). The
//! production interface has no unaudited write of patient data; a `BenchSeeder` opens its own
//! connection to a database the store has already created and migrated, so nothing in the
//! server or the use cases can reach it.

use std::time::Duration;

use sqlx::{ConnectOptions, Connection};

use crate::records::PatientRecord;
use crate::{DatabaseConfig, StoreResult};

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// One connection for seeding a benchmark database.
pub struct BenchSeeder {
    conn: Conn,
}

impl BenchSeeder {
    /// Connects to a database that [`open`](crate::open) has created and migrated.
    pub async fn connect(config: &DatabaseConfig) -> StoreResult<BenchSeeder> {
        let conn = match config {
            DatabaseConfig::Sqlite { path } => Conn::Sqlite(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(30))
                    .connect()
                    .await?,
            ),
            DatabaseConfig::Postgres { url } => {
                Conn::Postgres(sqlx::PgConnection::connect(url).await?)
            }
        };
        Ok(BenchSeeder { conn })
    }

    /// Inserts patients in multi-row statements, 1000 rows per transaction; no audit.
    pub async fn insert_patients(&mut self, rows: &[PatientRecord]) -> StoreResult<()> {
        for chunk in rows.chunks(1_000) {
            match &mut self.conn {
                Conn::Sqlite(c) => {
                    let mut tx = c.begin().await?;
                    crate::queries::sqlite::registration::bulk_insert_patients(&mut *tx, chunk)
                        .await?;
                    tx.commit().await?;
                }
                Conn::Postgres(c) => {
                    let mut tx = c.begin().await?;
                    crate::queries::pg::registration::bulk_insert_patients(&mut *tx, chunk).await?;
                    tx.commit().await?;
                }
            }
        }
        Ok(())
    }

    /// Releases a result with `body` for every test of every received tube without one, in
    /// one statement; no audit.
    pub async fn release_all_results(
        &mut self,
        body: &str,
        at: jiff::Timestamp,
    ) -> StoreResult<u64> {
        match &mut self.conn {
            Conn::Sqlite(c) => {
                crate::queries::sqlite::results::bench_release_all(&mut *c, body, at).await
            }
            Conn::Postgres(c) => {
                crate::queries::pg::results::bench_release_all(&mut *c, body, at).await
            }
        }
    }

    pub async fn close(self) -> StoreResult<()> {
        match self.conn {
            Conn::Sqlite(c) => c.close().await?,
            Conn::Postgres(c) => c.close().await?,
        }
        Ok(())
    }
}
