//! SQLite WAL checkpoints off the writer's path.
//!
//! By default SQLite checkpoints inside the `COMMIT` that takes the write-ahead log past 1,000
//! pages: that commit copies the log into the database file and syncs it before it returns,
//! and every write waiting for the connection (and every ACK waiting for the group) waits with
//! it. Here a connection of its own runs a `PASSIVE` checkpoint every [`EVERY`]: it copies what
//! it can without taking the write lock, so commits only append to the log. The writer keeps
//! an automatic checkpoint at [`WRITER_BACKSTOP_PAGES`] as a backstop for a log the checkpointer
//! could not keep up with; by then most of the log is already copied, so that checkpoint is
//! short.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::sync::oneshot;

/// How often the checkpointer runs.
pub const EVERY: Duration = Duration::from_millis(250);
/// The writer's own automatic checkpoint threshold, in pages (SQLite's default is 1,000).
pub const WRITER_BACKSTOP_PAGES: &str = "16384";

/// Stops the checkpointer when dropped (with the store).
pub(crate) struct Checkpointer {
    _stop: oneshot::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database `options` opens.
    pub(crate) fn start(options: SqliteConnectOptions) -> Checkpointer {
        let (stop, mut stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut conn = None;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(EVERY) => {}
                }
                if conn.is_none() {
                    conn = options.connect().await.ok();
                }
                let Some(c) = conn.as_mut() else { continue };
                if let Err(e) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut *c)
                    .await
                {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying with a new connection");
                    if let Some(c) = conn.take() {
                        let _ = c.close().await;
                    }
                }
            }
            if let Some(c) = conn {
                let _ = c.close().await;
            }
        });
        Checkpointer { _stop: stop }
    }
}
