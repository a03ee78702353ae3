//! The store's one writer, with group commit.
//!
//! Writers are serialised: SQLite admits one writer at a time, and on PostgreSQL a
//! transaction-scoped advisory lock serialises the writers of every node, so each
//! read-check-write (single-use codes, counters, the audit chain's previous hash) means the same
//! on both. Committing every write transaction on its own costs one durable flush each (an fsync
//! of SQLite's WAL with `synchronous = FULL`, or PostgreSQL's WAL flush), which caps the store at
//! the disk's flush rate however fast the statements themselves run.
//!
//! Group commit lifts that cap without weakening what a commit means. A [`Tx`] is a `SAVEPOINT`
//! inside a longer physical transaction (the first of a group needs none: it is alone in it
//! until it commits). [`Tx::commit`] releases the savepoint; when more writers
//! are already queued for the lock, the physical transaction stays open for them, and the last
//! writer of the group (or the first committer to get the lock back, whichever comes first) runs
//! one `COMMIT` for all of them. `commit` returns only once that `COMMIT` is durable, so:
//!
//! - nothing a transaction wrote is reported as done, or visible to readers, before it is
//!   durable, exactly as with a transaction of its own;
//! - a transaction dropped without `commit` rolls back to its savepoint and leaves the rest of
//!   its group intact;
//! - the members of a group are written together or not at all: if the group's `COMMIT` fails,
//!   every member's `commit` returns the error. A member sees the writes of earlier members of
//!   its group before they are durable, which is safe because they share that fate.
//!
//! A group holds at most [`MAX_GROUP`] transactions, so a steady stream of writers cannot
//! postpone a commit indefinitely. The work after `RELEASE` runs in a spawned task: a caller
//! that is cancelled while waiting (a client that hung up) cannot leave its group uncommitted.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::{Backend, Pool, StoreError, WRITE_LOCK_KEY};

/// Most transactions committed by one `COMMIT`.
pub const MAX_GROUP: usize = 64;

/// The savepoint each [`Tx`] runs in (one at a time, so one name serves).
const SAVEPOINT: &str = "vsc_tx";

/// The serialised writer of a [`crate::Store`].
#[derive(Clone)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("backend", &self.shared.backend)
            .field("queued", &self.shared.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// The writer connection and the open group; whoever holds this lock is the writer.
    slot: Arc<Mutex<Slot>>,
    /// Callers of [`Writer::begin`] waiting for the lock: while there are any, a committing
    /// transaction leaves the group open for them.
    queued: AtomicUsize,
    backend: Backend,
    /// The one-connection pool the writer connection comes from.
    pool: Pool,
    /// Transactions committed, and the `COMMIT`s that made them durable.
    committed: AtomicU64,
    groups: AtomicU64,
}

/// How much group commit saves: transactions committed and the durable commits it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Write transactions committed since the store opened.
    pub transactions: u64,
    /// `COMMIT`s run for them (each one durable flush).
    pub commits: u64,
}

#[derive(Default)]
struct Slot {
    conn: Option<PoolConnection<Any>>,
    /// The open physical transaction, if any.
    group: Option<Arc<Group>>,
    /// Transactions released into the open group.
    members: usize,
    /// A transaction was dropped without commit: its work is still to be rolled back.
    rollback_pending: bool,
    /// Whether the current transaction runs in a savepoint (every member but the first).
    savepoint: bool,
    /// The audit chain's head as the open group last wrote it (see `audit::append_in`).
    audit_head: Option<(i64, String)>,
}

/// One physical transaction and, once it has ended, how.
#[derive(Default)]
struct Group {
    outcome: OnceLock<Result<(), String>>,
}

/// Counts a caller as queued for the writer until it holds the lock (or gives up waiting).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(counter: &'a AtomicUsize) -> Queued<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        Queued(counter)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writer {
    pub(crate) fn new(pool: Pool, backend: Backend) -> Writer {
        Writer {
            shared: Arc::new(Shared {
                slot: Arc::new(Mutex::new(Slot::default())),
                queued: AtomicUsize::new(0),
                backend,
                pool,
                committed: AtomicU64::new(0),
                groups: AtomicU64::new(0),
            }),
        }
    }

    /// Transactions and commits so far.
    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.shared.committed.load(Ordering::Relaxed),
            commits: self.shared.groups.load(Ordering::Relaxed),
        }
    }

    /// Takes the write lock and opens a transaction (a savepoint in the current group).
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        let mut slot = {
            let _queued = Queued::new(&self.shared.queued);
            self.shared.slot.clone().lock_owned().await
        };
        slot.settle().await;
        if slot.conn.is_none() {
            slot.conn = Some(self.shared.pool.acquire().await?);
        }
        if slot.group.is_none() {
            if let Err(e) = slot.open_group(self.shared.backend).await {
                slot.discard_connection();
                return Err(e.into());
            }
            // The first transaction of a group has it to itself: it needs no savepoint (a
            // rollback ends the physical transaction), so an uncontended write costs what a
            // plain transaction does.
            slot.savepoint = false;
        } else {
            let conn = slot.conn.as_deref_mut().ok_or(StoreError::WriterGone)?;
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SAVEPOINT {SAVEPOINT}")))
                .execute(&mut *conn)
                .await
            {
                // The group has work of others in it; let whoever comes next finish it.
                finish_in_background(slot, self.shared.clone());
                return Err(e.into());
            }
            slot.savepoint = true;
        }
        Ok(Tx {
            slot: Some(slot),
            shared: self.shared.clone(),
        })
    }

    /// Ends any open group, gives the connection back and closes the writer's pool.
    pub(crate) async fn close(&self) {
        let mut slot = self.shared.slot.clone().lock_owned().await;
        slot.finish(&self.shared).await;
        slot.conn = None;
        self.shared.pool.close().await;
    }
}

impl Slot {
    async fn open_group(&mut self, backend: Backend) -> Result<(), sqlx::Error> {
        let conn = self
            .conn
            .as_deref_mut()
            .ok_or_else(|| sqlx::Error::PoolClosed)?;
        match backend {
            Backend::Sqlite => {
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            }
            Backend::Postgres => {
                sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
                if let Err(e) = sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK_KEY)
                    .execute(&mut *conn)
                    .await
                {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    return Err(e);
                }
            }
        }
        self.group = Some(Arc::new(Group::default()));
        self.members = 0;
        // Another process may have appended since this one last wrote.
        self.audit_head = None;
        Ok(())
    }

    /// Rolls back the savepoint of a transaction that was dropped without commit. If that
    /// fails, the database has already ended the physical transaction (SQLite does on some
    /// errors): the whole group is lost, and its members are told so.
    async fn settle(&mut self) {
        if !std::mem::take(&mut self.rollback_pending) {
            return;
        }
        // The rolled-back transaction may have appended.
        self.audit_head = None;
        let Some(conn) = self.conn.as_deref_mut() else {
            return;
        };
        if !self.savepoint {
            // The group's first transaction: nobody else's work is in it.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            if let Some(group) = self.group.take() {
                let _ = group
                    .outcome
                    .set(Err("the transaction was rolled back".to_owned()));
            }
            self.members = 0;
            return;
        }
        let undone = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
        )))
        .execute(&mut *conn)
        .await;
        if let Err(e) = undone {
            tracing::warn!(error = %e, "a write transaction could not roll back to its savepoint; its whole group is rolled back");
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            if let Some(group) = self.group.take() {
                let _ = group.outcome.set(Err(format!(
                    "the transaction was rolled back with a failed transaction committed in the same group: {e}"
                )));
            }
            self.members = 0;
            self.discard_connection();
        }
    }

    /// Ends the open group: `COMMIT` when it has members, else `ROLLBACK`; records the outcome
    /// (and counts it in `shared`).
    async fn finish(&mut self, shared: &Shared) {
        self.settle().await;
        let Some(group) = self.group.take() else {
            return;
        };
        self.audit_head = None;
        let members = std::mem::take(&mut self.members);
        let outcome = match self.conn.as_deref_mut() {
            Some(conn) => {
                let sql = if members > 0 { "COMMIT" } else { "ROLLBACK" };
                let result = sqlx::raw_sql(sql).execute(&mut *conn).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, members, "a group commit failed; its transactions are rolled back");
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                }
                result.map(|_| ()).map_err(|e| e.to_string())
            }
            None => Err("the writer connection was lost".to_owned()),
        };
        if outcome.is_err() {
            self.discard_connection();
        } else if members > 0 {
            shared.groups.fetch_add(1, Ordering::Relaxed);
            shared
                .committed
                .fetch_add(members as u64, Ordering::Relaxed);
        }
        let _ = group.outcome.set(outcome);
    }

    /// Closes the connection instead of reusing it (its state is unknown after an error).
    fn discard_connection(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

/// Finishes the group in a task of its own when nobody is queued to join it, else only rolls
/// back a pending savepoint; for paths that cannot wait (drop, errors).
fn finish_in_background(mut slot: OwnedMutexGuard<Slot>, shared: Arc<Shared>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime (shutting down): the next holder of the lock settles the savepoint.
        return;
    };
    runtime.spawn(async move {
        if shared.queued.load(Ordering::SeqCst) == 0 {
            slot.finish(&shared).await;
        } else {
            slot.settle().await;
        }
    });
}

/// A write transaction holding the store's write lock. Use it as a connection (`&mut tx`);
/// [`Tx::commit`] makes its writes durable, dropping it rolls them back.
pub struct Tx {
    slot: Option<OwnedMutexGuard<Slot>>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl Tx {
    // The slot and its connection are present from `begin` until `commit`, `rollback` or drop
    // take them, and nothing else touches them meanwhile: the expects state that invariant.
    #[allow(clippy::expect_used)]
    fn conn(&self) -> &AnyConnection {
        self.slot
            .as_ref()
            .and_then(|s| s.conn.as_deref())
            .expect("an open transaction holds the writer connection")
    }

    /// Commits: returns once this transaction's writes are durable (with those of the other
    /// transactions of its group), or with the error that kept them from being written.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(mut slot) = self.slot.take() else {
            return Err(StoreError::WriterGone);
        };
        let in_savepoint = slot.savepoint;
        let released = match slot.conn.as_deref_mut() {
            Some(_) if !in_savepoint => Ok(()),
            Some(conn) => sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "RELEASE SAVEPOINT {SAVEPOINT}"
            )))
            .execute(&mut *conn)
            .await
            .map(|_| ()),
            None => Err(sqlx::Error::PoolClosed),
        };
        if let Err(e) = released {
            slot.rollback_pending = true;
            finish_in_background(slot, self.shared.clone());
            return Err(e.into());
        }
        slot.members += 1;
        let Some(group) = slot.group.clone() else {
            return Err(StoreError::WriterGone);
        };
        let shared = self.shared.clone();
        let (done, outcome) = oneshot::channel();
        tokio::spawn(async move {
            if shared.queued.load(Ordering::SeqCst) > 0 && slot.members < MAX_GROUP {
                // Writers are queued: they join this group. Come back for the lock after them
                // and commit, unless one of them already has.
                drop(slot);
                let mut slot = shared.slot.clone().lock_owned().await;
                if group.outcome.get().is_none() {
                    slot.finish(&shared).await;
                }
            } else {
                slot.finish(&shared).await;
            }
            let _ = done.send(
                group
                    .outcome
                    .get()
                    .cloned()
                    .unwrap_or_else(|| Err("the group ended without an outcome".to_owned())),
            );
        });
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(StoreError::CommitFailed(reason)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// The audit chain's head as this group last wrote it, if it is known.
    pub(crate) fn audit_head(&self) -> Option<(i64, String)> {
        self.slot.as_ref().and_then(|s| s.audit_head.clone())
    }

    /// Remembers the head this transaction just wrote (forgotten again if it rolls back).
    pub(crate) fn remember_audit_head(&mut self, seq: i64, hash: String) {
        if let Some(slot) = self.slot.as_mut() {
            slot.audit_head = Some((seq, hash));
        }
    }

    /// Forgets the head (after a failed append).
    pub(crate) fn forget_audit_head(&mut self) {
        if let Some(slot) = self.slot.as_mut() {
            slot.audit_head = None;
        }
    }

    /// Rolls back now (as dropping does, but waits for it).
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        if let Some(mut slot) = self.slot.take() {
            slot.rollback_pending = true;
            if self.shared.queued.load(Ordering::SeqCst) == 0 {
                slot.finish(&self.shared).await;
            } else {
                slot.settle().await;
            }
        }
        Ok(())
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn()
    }
}

impl DerefMut for Tx {
    #[allow(clippy::expect_used)] // See `Tx::conn`.
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.slot
            .as_mut()
            .and_then(|s| s.conn.as_deref_mut())
            .expect("an open transaction holds the writer connection")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            slot.rollback_pending = true;
            finish_in_background(slot, self.shared.clone());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use crate::{Store, test_store};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(dir.path()).await;
        let mut tx = store.write().await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE gc_parent (id BIGINT PRIMARY KEY); \
             CREATE TABLE gc_child (id BIGINT PRIMARY KEY, parent BIGINT REFERENCES gc_parent(id) DEFERRABLE INITIALLY DEFERRED); \
             INSERT INTO gc_parent (id) VALUES (1);",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        (dir, store)
    }

    async fn children(store: &Store) -> Vec<i64> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM gc_child ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
        rows.into_iter().map(|(id,)| id).collect()
    }

    /// Inserts child `id` of `parent` in a transaction of its own.
    async fn insert(store: &Store, id: i64, parent: i64) -> Result<(), crate::StoreError> {
        let mut tx = store.write().await?;
        sqlx::query("INSERT INTO gc_child (id, parent) VALUES ($1, $2)")
            .bind(id)
            .bind(parent)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    #[tokio::test]
    async fn concurrent_writers_share_commits_and_all_land() {
        let (_dir, store) = store().await;
        let before = store.writer_stats();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { insert(&store, i, 1).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        // Every commit that returned is visible to readers at once.
        assert_eq!(children(&store).await, (0..200).collect::<Vec<_>>());
        let after = store.writer_stats();
        let transactions = after.transactions - before.transactions;
        let commits = after.commits - before.commits;
        assert_eq!(transactions, 200);
        assert!(
            commits < transactions,
            "200 concurrent writers took {commits} commits: nothing was grouped"
        );
    }

    #[tokio::test]
    async fn a_dropped_transaction_leaves_its_group_intact() {
        let (_dir, store) = store().await;
        let holder = store.write().await.unwrap();
        let a = tokio::spawn({
            let store = store.clone();
            async move { insert(&store, 10, 1).await }
        });
        let dropped = tokio::spawn({
            let store = store.clone();
            async move {
                let mut tx = store.write().await.unwrap();
                sqlx::query("INSERT INTO gc_child (id, parent) VALUES (11, 1)")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                // Dropped: rolled back to its savepoint.
            }
        });
        let c = tokio::spawn({
            let store = store.clone();
            async move { insert(&store, 12, 1).await }
        });
        // Let all three queue behind the holder, so they run in one group.
        tokio::time::sleep(Duration::from_millis(200)).await;
        holder.commit().await.unwrap();
        a.await.unwrap().unwrap();
        dropped.await.unwrap();
        c.await.unwrap().unwrap();
        assert_eq!(children(&store).await, vec![10, 12]);
    }

    #[tokio::test]
    async fn a_dropped_first_transaction_takes_only_its_own_work() {
        let (_dir, store) = store().await;
        let mut first = store.write().await.unwrap();
        sqlx::query("INSERT INTO gc_child (id, parent) VALUES (40, 1)")
            .execute(&mut *first)
            .await
            .unwrap();
        let queued = tokio::spawn({
            let store = store.clone();
            async move { insert(&store, 41, 1).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        queued.await.unwrap().unwrap();
        assert_eq!(children(&store).await, vec![41]);
    }

    #[tokio::test]
    async fn a_failed_group_commit_fails_every_member_and_writes_nothing() {
        let (_dir, store) = store().await;
        let holder = store.write().await.unwrap();
        let good = tokio::spawn({
            let store = store.clone();
            async move { insert(&store, 20, 1).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A deferred foreign key fails only at COMMIT: the whole group's COMMIT.
        let bad = tokio::spawn({
            let store = store.clone();
            async move { insert(&store, 21, 99).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let held = holder.commit().await;
        let good = good.await.unwrap();
        let bad = bad.await.unwrap();
        assert!(bad.is_err(), "the violating transaction committed");
        assert!(
            good.is_err(),
            "a member of a failed group was told it committed"
        );
        assert!(
            held.is_err(),
            "a member of a failed group was told it committed"
        );
        assert!(
            matches!(good, Err(crate::StoreError::CommitFailed(_))),
            "{good:?}"
        );
        assert_eq!(children(&store).await, Vec::<i64>::new());
        // The writer recovers: the next transaction commits on its own.
        insert(&store, 22, 1).await.unwrap();
        assert_eq!(children(&store).await, vec![22]);
    }

    #[tokio::test]
    async fn a_cancelled_committer_still_commits_its_group() {
        let (_dir, store) = store().await;
        let holder = store.write().await.unwrap();
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { insert(&store, 30, 1).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The holder's commit is abandoned while it waits for the queued writer's turn.
        let abandoned = tokio::time::timeout(Duration::from_millis(1), holder.commit()).await;
        drop(abandoned);
        waiting.await.unwrap().unwrap();
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT COUNT(*) FROM gc_parent")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(rows[0].0, 1);
        assert_eq!(children(&store).await, vec![30]);
        // Nothing is left open: a second writer gets the lock and commits.
        insert(&store, 31, 1).await.unwrap();
        assert_eq!(children(&store).await, vec![30, 31]);
    }
}
