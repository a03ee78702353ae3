//! Persistent state of a vsc server: an embedded SQLite database in WAL mode, its migrations, the
//! typed queries the server composes into transactions, and the hash-chained audit log.
//!
//! Every state change happens inside one write transaction ([`Store::write`], `BEGIN IMMEDIATE`,
//! so SQLite takes the write lock up front and two requests cannot interleave) and appends its
//! audit event in that same transaction: either both land or neither does. Single-use values
//! (activation codes, challenges) are consumed with one conditional `UPDATE`, so even two server
//! processes sharing a database cannot both accept one.

pub mod audit;
pub mod device_secrets;
pub mod repo;
pub mod schema;
pub mod signin;
pub mod signing;
pub mod workstation;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub use audit::{AuditEvent, NewEvent, Outcome, VerifyReport};

/// A write transaction.
pub type Tx = Transaction<'static, Sqlite>;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or a query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// `--data` points to a directory with no database.
    #[error(
        "no vsc database at {0}: start the server once with `vsc serve --data DIR` to create it"
    )]
    Missing(String),
    /// A stored value does not parse (the database was edited by hand or is corrupt).
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// Writing an export failed.
    #[error("could not write: {0}")]
    Io(#[from] std::io::Error),
}

/// The database: a pool of readers and a single writer connection.
///
/// SQLite admits one writer at a time. Giving writes their own one-connection pool makes
/// writers queue in the pool (in order, without polling) instead of colliding inside SQLite and
/// sleeping in its busy handler, which under load turned into long latency tails.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let store = Store::connect(path, true).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens an existing database without changing it (for offline tools such as `vsc audit`).
    pub async fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        Store::connect(path, false).await
    }

    async fn connect(path: &Path, create: bool) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an issued certificate or an audit event must survive a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // The writer first: it creates the file and switches it to WAL before readers open it.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.create_if_missing(false))
            .await?;
        Ok(Store { pool, writer })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&self.writer)
        .await?;
        for (name, sql) in schema::MIGRATIONS {
            let mut tx = self.write().await?;
            let done: Option<(String,)> =
                sqlx::query_as("SELECT name FROM schema_migrations WHERE name = ?")
                    .bind(*name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            tracing::info!(migration = name, "applying database migration");
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (name, applied_at) VALUES (?, unixepoch())")
                .bind(*name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Begins a write transaction, taking SQLite's write lock at once.
    pub async fn write(&self) -> Result<Tx, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The pool, for reads (writes go through [`Store::write`]).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection (on shutdown), checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}
