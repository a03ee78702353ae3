//! Persistent state of a vsc server: an embedded SQLite database in WAL mode or PostgreSQL, the
//! migrations for both, the typed queries the server composes into transactions (rows read by
//! column name, `row`), and the hash-chained audit log.
//!
//! Every state change happens inside one write transaction ([`Store::write`]: the store's write
//! lock is taken up front, SQLite's `BEGIN IMMEDIATE` or PostgreSQL's advisory lock, so two
//! requests cannot interleave) and appends its audit event in that same transaction: either both
//! land or neither does. Concurrent write transactions share one durable commit (group commit,
//! [`Tx`]); each `commit` still returns only once its own writes are durable. Single-use values
//! (activation codes, challenges) are consumed with one conditional `UPDATE`, so even two server
//! processes sharing a database cannot both accept one.

pub mod assurance;
pub mod audit;
pub mod console;
pub mod console_audit;
pub mod copy;
pub mod device_secrets;
pub mod licences;
pub mod ocsp;
pub mod oidc;
pub mod oidc_clients;
pub mod postgres;
pub mod push;
pub mod renewal;
pub mod repo;
mod row;
pub mod schema;
pub mod signin;
pub mod signing;
pub mod versions;
pub mod workstation;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool};

pub use audit::{AuditEvent, NewEvent, Outcome, VerifyReport};
use writer::Writer;
pub use writer::{MAX_GROUP, Tx, WriterStats};

/// A connection to the store, whichever backend it is (what queries take).
pub type Conn = AnyConnection;

/// A pool of connections to the store.
pub type Pool = AnyPool;

/// Which database engine holds the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (the default: one node).
    Sqlite,
    /// A PostgreSQL server (15 or later), for more than one node.
    Postgres,
}

/// Where the store is: an embedded SQLite file, or a PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The SQLite database file.
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL (it may carry a password; never print it whole:
    /// see [`Location::redacted`]).
    Postgres(String),
}

impl Location {
    /// The store an instance uses: `database` (a URL from `--database` or
    /// `VSC_DATABASE_URL`) when given, else `vsc.db` in the data directory.
    pub fn for_instance(data_dir: &Path, database: Option<&str>) -> Result<Location, StoreError> {
        match database {
            None => Ok(Location::Sqlite(data_dir.join("vsc.db"))),
            Some(url) => Location::parse(url),
        }
    }

    /// Reads a database URL: `postgres://…`, `postgresql://…` or `sqlite://PATH`.
    pub fn parse(url: &str) -> Result<Location, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Location::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::BadLocation(
                    "sqlite:// needs a file path, e.g. sqlite:///var/lib/vsc/vsc.db".into(),
                ));
            }
            Ok(Location::Sqlite(PathBuf::from(path)))
        } else {
            Err(StoreError::BadLocation(format!(
                "`{}` is not a database URL: use postgres://USER@HOST/DB (PostgreSQL 15 or later) \
                 or sqlite://PATH",
                redact(url)
            )))
        }
    }

    /// The backend this location needs.
    pub fn backend(&self) -> Backend {
        match self {
            Location::Sqlite(_) => Backend::Sqlite,
            Location::Postgres(_) => Backend::Postgres,
        }
    }

    /// The location for messages and logs, without any password.
    pub fn redacted(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// `url` with the password of its user info, if any, replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let masked = if user_info.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// A SQLite file path as the path part of a `sqlite://` URL (sqlx percent-decodes it).
fn sqlite_url(path: &Path, create: bool) -> String {
    let mut encoded = String::new();
    for c in path.display().to_string().chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    format!(
        "sqlite://{encoded}?mode={}",
        if create { "rwc" } else { "rw" }
    )
}

/// The key of the PostgreSQL advisory lock that serialises writers (see [`Store::write`]).
const WRITE_LOCK_KEY: i64 = 0x7673_635f_7772_6974; // "vsc_writ"

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or a query failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
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
    /// A database URL that names no supported database.
    #[error("{0}")]
    BadLocation(String),
    /// The operation exists for one backend only (an online backup of a PostgreSQL store is
    /// `pg_dump`'s job, not ours).
    #[error("{0}")]
    Unsupported(String),
    /// The group commit that held this transaction failed: nothing of it was written.
    #[error("the database did not commit the transaction: {0}")]
    CommitFailed(String),
    /// The writer connection is gone (the store is closing).
    #[error("the database writer is closed")]
    WriterGone,
}

impl From<sqlx::Error> for StoreError {
    /// A query's error, except that a stored value a row type could not parse (see the `row`
    /// module) is [`StoreError::Corrupt`], naming the table, column and value.
    fn from(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::Decode(source) => match source.downcast::<row::CorruptValue>() {
                Ok(corrupt) => StoreError::Corrupt(corrupt.to_string()),
                Err(source) => StoreError::Database(sqlx::Error::Decode(source)),
            },
            e => StoreError::Database(e),
        }
    }
}

/// The database: a pool of readers and a single writer connection, on SQLite or PostgreSQL.
///
/// SQLite admits one writer at a time. Giving writes their own connection, behind one lock
/// (`writer`), makes writers queue in order without polling instead of colliding inside SQLite
/// and sleeping in its busy handler, which under load turned into long latency tails; the queue
/// is also what group commit gathers from. On
/// PostgreSQL the same single writer per node also takes a transaction-scoped advisory lock, so
/// writers on *different* nodes are serialised too: every read-check-write in a write
/// transaction (single-use codes, counters, the audit chain's previous hash) means the same on
/// both backends.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    writer: Writer,
    backend: Backend,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_at(&Location::Sqlite(path.to_owned())).await
    }

    /// Opens (creating a SQLite file if needed) the store at `location` and applies pending
    /// migrations. A PostgreSQL database must exist; its tables are created here.
    pub async fn open_at(location: &Location) -> Result<Store, StoreError> {
        let store = Store::connect(location, true).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens an existing SQLite database without changing it (for offline tools such as
    /// `vsc audit`).
    pub async fn open_existing(path: &Path) -> Result<Store, StoreError> {
        Store::open_existing_at(&Location::Sqlite(path.to_owned())).await
    }

    /// Opens an existing store without changing it.
    pub async fn open_existing_at(location: &Location) -> Result<Store, StoreError> {
        if let Location::Sqlite(path) = location
            && !path.exists()
        {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        Store::connect(location, false).await
    }

    async fn connect(location: &Location, create: bool) -> Result<Store, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = location.backend();
        let url = match location {
            Location::Sqlite(path) => sqlite_url(path, create),
            Location::Postgres(url) => url.clone(),
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool_options = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // FULL: an issued certificate or an audit event must survive a
                            // power cut.
                            sqlx::raw_sql(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .execute(&mut *conn)
                            .await?;
                        }
                        Ok(())
                    })
                })
        };
        // The writer first: it creates the file and switches it to WAL before readers open it.
        let writer = pool_options(1).connect_with(options.clone()).await?;
        let reader_options: AnyConnectOptions = match location {
            Location::Sqlite(path) => sqlite_url(path, false).parse()?,
            Location::Postgres(_) => options,
        };
        let pool = pool_options(8).connect_with(reader_options).await?;
        Ok(Store {
            pool,
            writer: Writer::new(writer, backend),
            backend,
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for (name, sql) in schema::MIGRATIONS {
            let mut tx = self.write().await?;
            let done: Option<(String,)> =
                sqlx::query_as("SELECT name FROM schema_migrations WHERE name = $1")
                    .bind(*name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            tracing::info!(migration = name, "applying database migration");
            let sql = schema::for_backend(sql, self.backend);
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)")
                .bind(*name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Begins a write transaction holding the store's write lock: SQLite's (`BEGIN
    /// IMMEDIATE`), or on PostgreSQL an advisory lock held until the transaction ends. Concurrent
    /// transactions share one durable commit (see [`Tx`]: group commit).
    pub async fn write(&self) -> Result<Tx, StoreError> {
        self.writer.begin().await
    }

    /// Write transactions committed and the durable commits they took (group commit).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// The pool, for reads (writes go through [`Store::write`]).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Which engine holds the store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes a consistent copy of the SQLite database to `path`, a file that must not exist
    /// yet, while the server keeps serving (`vsc backup`).
    ///
    /// `VACUUM INTO` reads one snapshot inside a read transaction, so in WAL mode writers carry
    /// on and the copy holds every committed transaction up to that point and none after: an
    /// audit chain in the copy always ends on a whole event. (Copying the file, or the file and
    /// its `-wal`, could catch a checkpoint half done.) The copy is also compacted. PostgreSQL
    /// is refused: `pg_dump` takes its consistent snapshot.
    pub async fn backup_to(&self, path: &Path) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Unsupported(
                "the database is on PostgreSQL: back it up with `pg_dump -Fc` (vsc backs up \
                 the embedded SQLite database only)"
                    .into(),
            ));
        }
        if path.exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            )));
        }
        let target = path.to_str().ok_or_else(|| {
            StoreError::Unsupported(format!(
                "the backup path {} is not valid UTF-8",
                path.display()
            ))
        })?;
        // A reader connection: the copy needs no write lock, so the server's writers never wait
        // for it.
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes every connection (on shutdown; on SQLite this checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// A fresh store for this crate's tests: SQLite in `dir`, or a new PostgreSQL database when
/// the test command runs the tests on PostgreSQL (`VSC_TEST_POSTGRES`).
#[cfg(test)]
pub(crate) async fn test_store(dir: &Path) -> Store {
    let location = match postgres::test_database()
        .await
        .expect("create a PostgreSQL test database")
    {
        Some(url) => Location::Postgres(url),
        None => Location::Sqlite(dir.join("vsc.db")),
    };
    Store::open_at(&location)
        .await
        .expect("open the test store")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_redact() {
        let dir = Path::new("/var/lib/vsc");
        assert_eq!(
            Location::for_instance(dir, None).unwrap(),
            Location::Sqlite(dir.join("vsc.db"))
        );
        let pg =
            Location::parse("postgres://vsc:s3cret@db.example:5432/vsc?sslmode=require").unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(
            pg.redacted(),
            "postgres://vsc:***@db.example:5432/vsc?sslmode=require"
        );
        assert!(!pg.redacted().contains("s3cret"));
        assert_eq!(
            Location::parse("postgresql://postgres@127.0.0.1/x")
                .unwrap()
                .redacted(),
            "postgresql://postgres@127.0.0.1/x"
        );
        assert_eq!(
            Location::parse("sqlite:///tmp/a.db").unwrap(),
            Location::Sqlite("/tmp/a.db".into())
        );
        for bad in ["sqlite://", "mysql://root:pw@h/db", "/tmp/a.db", ""] {
            let err = Location::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("pw@"), "{err}");
        }
        assert_eq!(
            sqlite_url(Path::new("/tmp/a?b#c%d.db"), true),
            "sqlite:///tmp/a%3Fb%23c%25d.db?mode=rwc"
        );
    }

    #[tokio::test]
    async fn a_backup_is_a_consistent_copy_taken_while_writers_carry_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("vsc.db")).await.unwrap();
        let event = |i: i64| audit::NewEvent {
            actor: "system".into(),
            action: format!("test.{i}"),
            subject: "s".into(),
            organisation: "X26".into(),
            source: "127.0.0.1".into(),
            outcome: audit::Outcome::Success,
            detail: serde_json::json!({}),
        };
        for i in 0..20 {
            let mut tx = store.write().await.unwrap();
            audit::append(&mut tx, &event(i), 1000 + i).await.unwrap();
            tx.commit().await.unwrap();
        }
        // A writer keeps appending while the backup runs.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 20..200 {
                    let mut tx = store.write().await.unwrap();
                    audit::append(&mut tx, &event(i), 1000 + i).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
        };
        let copy_path = dir.path().join("copy.db");
        store.backup_to(&copy_path).await.unwrap();
        writer.await.unwrap();
        let copy = Store::open_existing(&copy_path).await.unwrap();
        let report = audit::verify(&copy).await.unwrap();
        assert!(report.first_broken.is_none(), "{report:?}");
        assert!(report.events >= 20, "{report:?}");
        copy.close().await;
        // The target must not exist: a backup never overwrites a file.
        assert!(matches!(
            store.backup_to(&copy_path).await,
            Err(StoreError::Io(_))
        ));
        store.close().await;
    }
}
