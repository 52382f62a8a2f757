//! Group commit: many write transactions, one durable commit.
//!
//! A durable commit costs an fsync (SQLite `synchronous=FULL`, PostgreSQL WAL flush), and the
//! audit chain serialises audited writes anyway, so each write transaction waiting for its own
//! fsync caps throughput at one fsync per write. Here every write transaction of a process runs
//! on one writer connection, each inside its own `SAVEPOINT` within an outer transaction. When a
//! transaction commits it releases its savepoint and joins the current *group*; the group is
//! committed (one fsync) as soon as no other writer is waiting for the connection, or when it
//! reaches [`MAX_GROUP`]. Only then does each member's `commit` return: nothing is acknowledged
//! before it is durable. A member that fails is rolled back to its savepoint alone; if the
//! group's commit fails, every member gets the error (none was acknowledged).
//!
//! Progress never depends on a waiter that might go away: a member waiting for its group
//! re-checks every [`NUDGE`] and commits the group itself when the connection is free. A
//! transaction dropped without commit leaves its savepoint marked dirty; whoever takes the
//! connection next rolls it back first, and a clean-up task closes an idle outer transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::{StoreError, StoreResult};

/// The most transactions one durable commit carries (bounds the latency of the first member).
pub const MAX_GROUP: usize = 64;
/// How often a member waiting for its group checks whether it should commit it itself.
pub const NUDGE: Duration = Duration::from_millis(2);

pub struct GroupState<C> {
    pub conn: C,
    /// An outer transaction is open on the connection.
    open: bool,
    /// A member's savepoint is still open (its transaction was dropped, or is running).
    dirty: bool,
    /// Members whose savepoints are released, waiting for the group's commit.
    members: Vec<oneshot::Sender<Result<(), String>>>,
}

macro_rules! group_writer {
    ($writer:ident, $member:ident, $conn:ty, $begin_sql:literal) => {
        /// The process's writer connection, shared by group commit.
        pub struct $writer {
            state: Arc<Mutex<GroupState<$conn>>>,
            waiting: Arc<AtomicUsize>,
        }

        /// One write transaction's hold on the writer connection. Dereferences to the
        /// connection, so queries run on it as on a `sqlx::Transaction`.
        pub struct $member {
            guard: Option<OwnedMutexGuard<GroupState<$conn>>>,
            waiting: Arc<AtomicUsize>,
            state: Arc<Mutex<GroupState<$conn>>>,
        }

        impl $writer {
            pub fn new(conn: $conn) -> $writer {
                $writer {
                    state: Arc::new(Mutex::new(GroupState {
                        conn,
                        open: false,
                        dirty: false,
                        members: Vec::new(),
                    })),
                    waiting: Arc::new(AtomicUsize::new(0)),
                }
            }

            /// Rolls back a savepoint left by a dropped transaction.
            async fn settle(g: &mut GroupState<$conn>) -> StoreResult<()> {
                if g.dirty {
                    sqlx::query("ROLLBACK TO SAVEPOINT member")
                        .execute(&mut g.conn)
                        .await?;
                    sqlx::query("RELEASE SAVEPOINT member")
                        .execute(&mut g.conn)
                        .await?;
                    g.dirty = false;
                }
                Ok(())
            }

            /// Commits the open group and tells every member the outcome.
            async fn commit_group(g: &mut GroupState<$conn>) {
                let outcome = if g.open {
                    match sqlx::query("COMMIT").execute(&mut g.conn).await {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            let _ = sqlx::query("ROLLBACK").execute(&mut g.conn).await;
                            Err(e.to_string())
                        }
                    }
                } else {
                    Ok(())
                };
                g.open = false;
                for m in g.members.drain(..) {
                    let _ = m.send(outcome.clone());
                }
            }

            /// Takes the connection and opens a savepoint for one transaction.
            pub async fn begin(&self) -> StoreResult<$member> {
                struct Waiting<'a>(&'a AtomicUsize);
                impl Drop for Waiting<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                self.waiting.fetch_add(1, Ordering::AcqRel);
                let waiting = Waiting(&self.waiting);
                let mut g = self.state.clone().lock_owned().await;
                drop(waiting);
                Self::settle(&mut g).await?;
                if !g.open {
                    sqlx::query($begin_sql).execute(&mut g.conn).await?;
                    g.open = true;
                }
                if let Err(e) = sqlx::query("SAVEPOINT member").execute(&mut g.conn).await {
                    // Leave no half-open group behind that nobody will commit.
                    if g.members.is_empty() {
                        let _ = sqlx::query("ROLLBACK").execute(&mut g.conn).await;
                        g.open = false;
                    }
                    return Err(e.into());
                }
                g.dirty = true;
                Ok($member {
                    guard: Some(g),
                    waiting: self.waiting.clone(),
                    state: self.state.clone(),
                })
            }

            /// Commits whatever group is open (at shutdown).
            pub async fn flush(&self) -> StoreResult<()> {
                let mut g = self.state.lock().await;
                Self::settle(&mut g).await?;
                Self::commit_group(&mut g).await;
                Ok(())
            }
        }

        impl $member {
            fn guard(&self) -> &OwnedMutexGuard<GroupState<$conn>> {
                match &self.guard {
                    Some(g) => g,
                    None => unreachable!("a transaction is not used after its commit"),
                }
            }

            /// Releases this transaction's savepoint into the group and returns once the group
            /// is durably committed.
            pub async fn commit(&mut self) -> StoreResult<()> {
                let Some(mut g) = self.guard.take() else {
                    return Err(StoreError::Database("transaction already finished".into()));
                };
                if let Err(e) = sqlx::query("RELEASE SAVEPOINT member")
                    .execute(&mut g.conn)
                    .await
                {
                    // Still dirty: the next holder rolls this member back.
                    return Err(e.into());
                }
                g.dirty = false;
                let (tx, mut rx) = oneshot::channel();
                g.members.push(tx);
                if self.waiting.load(Ordering::Acquire) == 0 || g.members.len() >= MAX_GROUP {
                    $writer::commit_group(&mut g).await;
                }
                drop(g);
                loop {
                    tokio::select! {
                        outcome = &mut rx => {
                            return match outcome {
                                Ok(Ok(())) => Ok(()),
                                Ok(Err(e)) => Err(StoreError::Database(e)),
                                Err(_) => Err(StoreError::Database("the writer went away before commit".into())),
                            };
                        }
                        _ = tokio::time::sleep(NUDGE) => {
                            let mut g = self.state.clone().lock_owned().await;
                            if !g.members.is_empty() {
                                $writer::settle(&mut g).await?;
                                $writer::commit_group(&mut g).await;
                            }
                        }
                    }
                }
            }
        }

        impl std::ops::Deref for $member {
            type Target = $conn;
            fn deref(&self) -> &$conn {
                &self.guard().conn
            }
        }

        impl std::ops::DerefMut for $member {
            fn deref_mut(&mut self) -> &mut $conn {
                match &mut self.guard {
                    Some(g) => &mut g.conn,
                    None => unreachable!("a transaction is not used after its commit"),
                }
            }
        }

        impl Drop for $member {
            /// A transaction dropped without commit: roll its savepoint back now if a runtime is
            /// at hand (otherwise the next holder does), and close an outer transaction that
            /// nobody else is using.
            fn drop(&mut self) {
                let Some(mut g) = self.guard.take() else { return };
                let waiting = self.waiting.clone();
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        if $writer::settle(&mut g).await.is_err() {
                            return;
                        }
                        if waiting.load(Ordering::Acquire) == 0 {
                            if g.members.is_empty() {
                                if g.open {
                                    let _ = sqlx::query("ROLLBACK").execute(&mut g.conn).await;
                                    g.open = false;
                                }
                            } else {
                                $writer::commit_group(&mut g).await;
                            }
                        }
                    });
                }
            }
        }
    };
}

group_writer!(
    SqliteWriter,
    SqliteMember,
    sqlx::SqliteConnection,
    "BEGIN IMMEDIATE"
);
group_writer!(PgWriter, PgMember, sqlx::PgConnection, "BEGIN");
