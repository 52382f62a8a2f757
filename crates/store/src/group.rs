//! Group commit: many write transactions, one durable commit; safe to cancel at every await.
//!
//! A durable commit costs an fsync (SQLite `synchronous=FULL`, PostgreSQL WAL flush), and the
//! audit chain serialises audited writes anyway, so each write transaction waiting for its own
//! fsync caps throughput at one fsync per write. Here every write transaction of a process runs
//! on one writer connection, each inside its own `SAVEPOINT` within an outer transaction (the
//! *group*). When a transaction commits it releases its savepoint and joins the group; the group
//! is committed (one fsync) as soon as no other writer is waiting for the connection, or when
//! it reaches [`MAX_GROUP`]. Only then does each member's `commit` return `Ok`: nothing is
//! acknowledged before it is durable.
//!
//! # Guarantees
//!
//! * **Cancel safety.** A request future may be dropped at any `.await` (its client went away).
//!   Every step that changes the writer's state (begin the group and the savepoint, release the
//!   savepoint, commit the group, roll a dropped member back, close an idle group) runs in a
//!   spawned task that owns the connection's lock and always runs to the end, updating the
//!   state right after each statement. A dropped caller only stops *waiting*; the state stays
//!   true to the connection. A member dropped before its commit is rolled back to its
//!   savepoint by such a task.
//! * **Exactly the truth.** `commit` returns `Ok` only after the group's `COMMIT` succeeded, and
//!   `Err` only when the member's changes are not in the database. If the `COMMIT` itself fails
//!   on PostgreSQL (a lost connection), the group's transaction id, taken at `BEGIN`, is looked
//!   up with `txid_status` on another connection once the old one is closed: committed groups
//!   are reported `Ok`, aborted ones `Err`. PostgreSQL answers `COMMIT` in an aborted
//!   transaction with success (tag `ROLLBACK`); the commit statement is therefore preceded, in
//!   the same round trip, by a statement that fails in an aborted transaction.
//! * **Self-healing.** On any error of the writer's own statements the group is rolled back,
//!   every member not yet committed is told `Err`, and when even `ROLLBACK` fails the
//!   connection is dropped (the server rolls back what it held) and a new one is opened by the
//!   next transaction. A restarted PostgreSQL or a `pg_terminate_backend` costs the requests in
//!   flight, not the process.
//! * **One lock order.** On PostgreSQL every group takes the `audit_head` row lock in its first
//!   statement, before anything else, and holds it to the commit; every other row lock
//!   (counters, specimens, …) is taken after it. Two servers sharing a database can therefore
//!   not deadlock: their groups queue on `audit_head`. On SQLite `BEGIN IMMEDIATE` takes the
//!   database's write lock first, to the same effect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::{StoreError, StoreResult};

/// The most transactions one durable commit carries (bounds the latency of the first member).
pub const MAX_GROUP: usize = 64;
/// How often a member waiting for its group checks that the group is still being finished.
pub const NUDGE: Duration = Duration::from_millis(20);

/// What differs between the backends: how to connect, run a statement, open and commit a
/// group, and find out whether a group whose `COMMIT` failed was committed after all.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    type Conn: Send + 'static;

    async fn connect(&self) -> sqlx::Result<Self::Conn>;
    async fn exec(&self, conn: &mut Self::Conn, sql: &'static str) -> sqlx::Result<()>;
    /// Opens the group's transaction and takes the first lock of the lock order. Returns the
    /// transaction id where the backend can look up a transaction's fate later.
    async fn begin_group(&self, conn: &mut Self::Conn) -> sqlx::Result<Option<i64>>;
    /// Commits, failing (rather than rolling back silently) when the transaction is aborted.
    async fn commit_group(&self, conn: &mut Self::Conn) -> sqlx::Result<()>;
    /// Whether the transaction `xid` committed (`Some(true)`), did not (`Some(false)`), or
    /// cannot be told (`None`). Called after the connection that ran it was closed.
    async fn outcome(&self, xid: i64) -> Option<bool>;
}

type Outcome = Result<(), String>;

struct State<C> {
    /// `None` after the connection was given up; the next transaction opens a new one.
    conn: Option<C>,
    /// The open group's transaction (`Some(xid)` where the backend gives one).
    open: Option<Option<i64>>,
    /// A member's savepoint is open (its transaction is running, or was dropped).
    dirty: bool,
    /// Members whose savepoints are released, waiting for the group's commit.
    members: Vec<oneshot::Sender<Outcome>>,
}

type Guard<C> = OwnedMutexGuard<State<C>>;

struct Shared<E: Engine> {
    engine: E,
    state: Arc<Mutex<State<E::Conn>>>,
    /// Transactions waiting for the connection.
    waiting: AtomicUsize,
}

/// The process's writer connection, shared by group commit.
pub struct Writer<E: Engine> {
    shared: Arc<Shared<E>>,
}

/// One write transaction's hold on the writer connection. Dereferences to the connection, so
/// queries run on it as on a `sqlx::Transaction`. Dropped without [`Member::commit`], its
/// changes are rolled back.
pub struct Member<E: Engine> {
    guard: Option<Guard<E::Conn>>,
    shared: Arc<Shared<E>>,
}

impl<E: Engine> Shared<E> {
    fn conn(g: &mut Guard<E::Conn>) -> Result<&mut E::Conn, sqlx::Error> {
        g.conn
            .as_mut()
            .ok_or_else(|| sqlx::Error::Protocol("the writer connection is closed".into()))
    }

    async fn exec(&self, g: &mut Guard<E::Conn>, sql: &'static str) -> sqlx::Result<()> {
        let conn = Self::conn(g)?;
        self.engine.exec(conn, sql).await
    }

    /// Rolls the group back after an error of the writer's own statements: every member not
    /// committed is told `Err`, and the connection is given up when it cannot roll back.
    async fn reset(&self, g: &mut Guard<E::Conn>, cause: &str) {
        if (g.open.is_some() || g.dirty) && self.exec(g, "ROLLBACK").await.is_err() {
            g.conn = None;
        }
        g.open = None;
        g.dirty = false;
        for m in g.members.drain(..) {
            let _ = m.send(Err(format!("the write group was rolled back: {cause}")));
        }
    }

    /// Rolls back the savepoint of a member that will not commit.
    async fn settle(&self, g: &mut Guard<E::Conn>) {
        if !g.dirty {
            return;
        }
        let undone = match self.exec(g, "ROLLBACK TO SAVEPOINT member").await {
            Ok(()) => self.exec(g, "RELEASE SAVEPOINT member").await,
            Err(e) => Err(e),
        };
        match undone {
            Ok(()) => g.dirty = false,
            Err(e) => self.reset(g, &e.to_string()).await,
        }
    }

    /// Commits the open group and tells every member the outcome.
    async fn commit_group(&self, g: &mut Guard<E::Conn>) {
        let Some(xid) = g.open else {
            for m in g.members.drain(..) {
                let _ = m.send(Err("the write group was lost".into()));
            }
            return;
        };
        let tc = std::time::Instant::now();
        let result = match Self::conn(g) {
            Ok(conn) => self.engine.commit_group(conn).await,
            Err(e) => Err(e),
        };
        tracing::debug!(
            members = g.members.len(),
            commit_us = tc.elapsed().as_micros() as u64,
            "write group committed"
        );
        g.open = None;
        let outcome = match result {
            Ok(()) => Ok(()),
            Err(e) => {
                // The transaction is over or must end now; its fate is then looked up.
                if self.exec(g, "ROLLBACK").await.is_err() {
                    g.conn = None;
                }
                match xid {
                    Some(xid) => match self.engine.outcome(xid).await {
                        Some(true) => Ok(()),
                        Some(false) => Err(format!("commit failed: {e}")),
                        None => Err(format!("commit outcome unknown: {e}")),
                    },
                    None => Err(format!("commit failed: {e}")),
                }
            }
        };
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, members = g.members.len(), "write group not committed");
        }
        for m in g.members.drain(..) {
            let _ = m.send(outcome.clone());
        }
    }

    /// Ends the group when nobody waits to join it: commits it when it has members, else
    /// closes the idle transaction (it holds the write lock).
    async fn finish_if_idle(&self, g: &mut Guard<E::Conn>) {
        if self.waiting.load(Ordering::Acquire) != 0 || g.dirty {
            return;
        }
        if !g.members.is_empty() {
            self.commit_group(g).await;
        } else if g.open.is_some() {
            g.open = None;
            if self.exec(g, "ROLLBACK").await.is_err() {
                g.conn = None;
            }
        }
    }

    /// A transaction that will not commit: roll its savepoint back, finish the group if idle.
    async fn abandon(&self, mut g: Guard<E::Conn>) {
        self.settle(&mut g).await;
        self.finish_if_idle(&mut g).await;
    }

    /// Opens (or joins) the group and this transaction's savepoint. One retry on a fresh
    /// connection, so the first write after a lost connection succeeds.
    async fn prepare(&self, g: &mut Guard<E::Conn>) -> StoreResult<()> {
        self.settle(g).await;
        let mut last = None;
        for _ in 0..2 {
            if g.conn.is_none() {
                match self.engine.connect().await {
                    Ok(conn) => g.conn = Some(conn),
                    Err(e) => return Err(StoreError::from(e)),
                }
            }
            if g.open.is_none() {
                let begun = match Self::conn(g) {
                    Ok(conn) => self.engine.begin_group(conn).await,
                    Err(e) => Err(e),
                };
                match begun {
                    Ok(xid) => g.open = Some(xid),
                    Err(e) => {
                        // The connection may be dead: give it up, the retry reconnects.
                        g.conn = None;
                        self.reset(g, &e.to_string()).await;
                        last = Some(e);
                        continue;
                    }
                }
            }
            match self.exec(g, "SAVEPOINT member").await {
                Ok(()) => {
                    g.dirty = true;
                    return Ok(());
                }
                Err(e) => {
                    g.conn = None;
                    self.reset(g, &e.to_string()).await;
                    last = Some(e);
                }
            }
        }
        Err(last.map_or_else(
            || StoreError::Database("the writer could not begin".into()),
            StoreError::from,
        ))
    }

    /// Releases a member's savepoint into the group and commits the group when due. Returns
    /// the receiver of the group's outcome.
    async fn release(&self, g: &mut Guard<E::Conn>) -> StoreResult<oneshot::Receiver<Outcome>> {
        if let Err(e) = self.exec(g, "RELEASE SAVEPOINT member").await {
            // Still dirty: roll this member back alone (or the group, if that fails too).
            self.settle(g).await;
            self.finish_if_idle(g).await;
            return Err(e.into());
        }
        g.dirty = false;
        let (tx, rx) = oneshot::channel();
        g.members.push(tx);
        if g.members.len() >= MAX_GROUP {
            self.commit_group(g).await;
        } else {
            self.finish_if_idle(g).await;
        }
        Ok(rx)
    }
}

/// Counts a transaction waiting for the connection; one that stops waiting (it was
/// cancelled) has whoever holds the connection next, or a tidy-up task, finish the group.
struct Waiting<E: Engine>(Arc<Shared<E>>, bool);

impl<E: Engine> Drop for Waiting<E> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        if !self.1
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            // Cancelled while waiting: the holder may have left the group open for us.
            let shared = self.0.clone();
            handle.spawn(async move {
                let mut g = shared.state.clone().lock_owned().await;
                shared.finish_if_idle(&mut g).await;
            });
        }
    }
}

impl<E: Engine> Writer<E> {
    pub fn new(engine: E, conn: E::Conn) -> Writer<E> {
        Writer {
            shared: Arc::new(Shared {
                engine,
                state: Arc::new(Mutex::new(State {
                    conn: Some(conn),
                    open: None,
                    dirty: false,
                    members: Vec::new(),
                })),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Takes the connection and opens a savepoint for one transaction.
    pub async fn begin(&self) -> StoreResult<Member<E>> {
        self.shared.waiting.fetch_add(1, Ordering::AcqRel);
        let mut waiting = Waiting(self.shared.clone(), false);
        let g = self.shared.state.clone().lock_owned().await;
        waiting.1 = true;
        drop(waiting);
        let (tx, rx) = oneshot::channel::<StoreResult<Member<E>>>();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut g = g;
            match shared.prepare(&mut g).await {
                // If the caller went away, the member is dropped (here or with the channel)
                // and its `Drop` rolls the savepoint back.
                Ok(()) => {
                    let _ = tx.send(Ok(Member {
                        guard: Some(g),
                        shared: shared.clone(),
                    }));
                }
                Err(e) => {
                    shared.finish_if_idle(&mut g).await;
                    let _ = tx.send(Err(e));
                }
            }
        });
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Database("the writer task failed".into())),
        }
    }

    /// Commits whatever group is open (at shutdown).
    pub async fn flush(&self) -> StoreResult<()> {
        let mut g = self.shared.state.clone().lock_owned().await;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            shared.settle(&mut g).await;
            if g.members.is_empty() {
                if g.open.take().is_some() && shared.exec(&mut g, "ROLLBACK").await.is_err() {
                    g.conn = None;
                }
            } else {
                shared.commit_group(&mut g).await;
            }
        })
        .await
        .map_err(|e| StoreError::Database(format!("flushing the writer failed: {e}")))
    }
}

impl<E: Engine> Member<E> {
    /// Releases this transaction's savepoint into the group and returns once the group is
    /// durably committed (`Ok`), or once it is certain the changes are not stored (`Err`).
    pub async fn commit(&mut self) -> StoreResult<()> {
        let Some(mut g) = self.guard.take() else {
            return Err(StoreError::Database("transaction already finished".into()));
        };
        let shared = self.shared.clone();
        let released = tokio::spawn(async move { shared.release(&mut g).await });
        let mut rx = match released.await {
            Ok(Ok(rx)) => rx,
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(StoreError::Database(format!("the writer task failed: {e}"))),
        };
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
                    // Liveness backstop: finish the group if its finisher is gone.
                    let mut g = self.shared.state.clone().lock_owned().await;
                    let shared = self.shared.clone();
                    let _ = tokio::spawn(async move { shared.finish_if_idle(&mut g).await }).await;
                }
            }
        }
    }

    fn conn_ref(&self) -> &E::Conn {
        match self.guard.as_ref().and_then(|g| g.conn.as_ref()) {
            Some(c) => c,
            None => unreachable!("a transaction holds an open connection until its commit"),
        }
    }
}

impl<E: Engine> std::ops::Deref for Member<E> {
    type Target = E::Conn;
    fn deref(&self) -> &E::Conn {
        self.conn_ref()
    }
}

impl<E: Engine> std::ops::DerefMut for Member<E> {
    fn deref_mut(&mut self) -> &mut E::Conn {
        match self.guard.as_mut().and_then(|g| g.conn.as_mut()) {
            Some(c) => c,
            None => unreachable!("a transaction holds an open connection until its commit"),
        }
    }
}

impl<E: Engine> Drop for Member<E> {
    /// A transaction dropped without commit (an error, or its request was cancelled at any
    /// await, possibly in the middle of a statement): roll its savepoint back in a task that
    /// owns the connection until done. Without a runtime the next holder rolls it back.
    fn drop(&mut self) {
        let Some(g) = self.guard.take() else { return };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            handle.spawn(async move { shared.abandon(g).await });
        }
    }
}

/// SQLite: `BEGIN IMMEDIATE` takes the database's write lock first (waiting under the busy
/// timeout while another process writes).
pub struct SqliteEngine {
    pub options: sqlx::sqlite::SqliteConnectOptions,
}

#[async_trait]
impl Engine for SqliteEngine {
    type Conn = sqlx::SqliteConnection;

    async fn connect(&self) -> sqlx::Result<Self::Conn> {
        use sqlx::ConnectOptions;
        self.options.connect().await
    }

    async fn exec(&self, conn: &mut Self::Conn, sql: &'static str) -> sqlx::Result<()> {
        sqlx::raw_sql(sql).execute(conn).await.map(|_| ())
    }

    async fn begin_group(&self, conn: &mut Self::Conn) -> sqlx::Result<Option<i64>> {
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(conn).await?;
        Ok(None)
    }

    async fn commit_group(&self, conn: &mut Self::Conn) -> sqlx::Result<()> {
        // SQLite refuses COMMIT outside a transaction, and a failed COMMIT never commits.
        sqlx::raw_sql("COMMIT").execute(conn).await.map(|_| ())
    }

    async fn outcome(&self, _xid: i64) -> Option<bool> {
        None
    }
}

/// PostgreSQL: the group's first statement locks `audit_head` (the lock order) and takes the
/// transaction id; a lost commit is resolved with `txid_status` on the read pool.
pub struct PgEngine {
    pub options: sqlx::postgres::PgConnectOptions,
    pub read: sqlx::PgPool,
}

/// How long an in-doubt commit is looked up before it is reported unknown.
const OUTCOME_WAIT: Duration = Duration::from_secs(10);

#[async_trait]
impl Engine for PgEngine {
    type Conn = sqlx::PgConnection;

    async fn connect(&self) -> sqlx::Result<Self::Conn> {
        use sqlx::ConnectOptions;
        self.options.connect().await
    }

    async fn exec(&self, conn: &mut Self::Conn, sql: &'static str) -> sqlx::Result<()> {
        sqlx::raw_sql(sql).execute(conn).await.map(|_| ())
    }

    async fn begin_group(&self, conn: &mut Self::Conn) -> sqlx::Result<Option<i64>> {
        use sqlx::Row;
        let rows = sqlx::raw_sql(
            "BEGIN; SELECT txid_current() AS xid FROM audit_head WHERE id = 1 FOR UPDATE",
        )
        .fetch_all(conn)
        .await?;
        let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
        Ok(Some(row.try_get::<i64, _>(0)?))
    }

    async fn commit_group(&self, conn: &mut Self::Conn) -> sqlx::Result<()> {
        // In an aborted transaction the SELECT fails and the COMMIT is not run (a simple query's
        // remaining statements are skipped after an error), where a bare COMMIT would answer
        // success with tag ROLLBACK.
        sqlx::raw_sql("SELECT 1; COMMIT")
            .execute(conn)
            .await
            .map(|_| ())
    }

    async fn outcome(&self, xid: i64) -> Option<bool> {
        let deadline = tokio::time::Instant::now() + OUTCOME_WAIT;
        loop {
            let status = sqlx::query_scalar::<_, Option<String>>("SELECT txid_status($1)")
                .bind(xid)
                .fetch_one(&self.read)
                .await;
            match status.as_ref().map(|s| s.as_deref()) {
                Ok(Some("committed")) => return Some(true),
                Ok(Some("aborted")) => return Some(false),
                // Still in progress: its backend has not yet noticed the closed connection.
                _ if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return None,
            }
        }
    }
}

pub type SqliteWriter = Writer<SqliteEngine>;
pub type SqliteMember = Member<SqliteEngine>;
pub type PgWriter = Writer<PgEngine>;
pub type PgMember = Member<PgEngine>;
