//! Creating and dropping PostgreSQL databases: what `vsc db` and the test command need around a
//! store that lives on a PostgreSQL server (the store itself only ever opens one database).

use sqlx::AnyConnection;
use sqlx::Connection;

use crate::StoreError;

/// Checks that `name` is a database name we create: lower-case ASCII letters, digits and `_`,
/// starting with a letter, at most 63 bytes (PostgreSQL's limit). Names are put into SQL
/// (`CREATE DATABASE` takes no parameters), so nothing else is let through.
fn checked_name(name: &str) -> Result<&str, StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(StoreError::BadLocation(format!(
            "`{name}` is not a database name vsc creates: use lower-case letters, digits and _"
        )))
    }
}

/// The URL of database `name` on the server `server_url` points at (same user, host, port
/// and parameters; only the database changes).
pub fn database_url(server_url: &str, name: &str) -> Result<String, StoreError> {
    let mut url = url::Url::parse(server_url)
        .map_err(|e| StoreError::BadLocation(format!("not a PostgreSQL URL: {e}")))?;
    url.set_path(&format!("/{}", checked_name(name)?));
    Ok(url.to_string())
}

/// Creates the empty database `name` on the server `server_url` points at (connecting to the
/// database the URL names, e.g. `postgres`), and returns its URL.
pub async fn create_database(server_url: &str, name: &str) -> Result<String, StoreError> {
    sqlx::any::install_default_drivers();
    let name = checked_name(name)?;
    let mut conn = AnyConnection::connect(server_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    database_url(server_url, name)
}

/// Drops database `name` (if it exists) on the server `server_url` points at, ending its
/// other connections first.
pub async fn drop_database(server_url: &str, name: &str) -> Result<(), StoreError> {
    sqlx::any::install_default_drivers();
    let name = checked_name(name)?;
    let mut conn = AnyConnection::connect(server_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// For test harnesses: when `VSC_TEST_POSTGRES` holds a PostgreSQL server URL (e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`), creates a fresh, uniquely named database
/// there and returns its URL; otherwise `None` (the test uses embedded SQLite). Names start
/// with `VSC_TEST_DB_PREFIX` (default `vsc_test`) so that the test command can drop every
/// database of its run afterwards.
pub async fn test_database() -> Result<Option<String>, StoreError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let Ok(server) = std::env::var("VSC_TEST_POSTGRES") else {
        return Ok(None);
    };
    if server.is_empty() {
        return Ok(None);
    }
    let prefix = std::env::var("VSC_TEST_DB_PREFIX").unwrap_or_else(|_| "vsc_test".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    create_database(&server, &name).await.map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "vsc_test_1").unwrap(),
            "postgres://postgres@127.0.0.1:5432/vsc_test_1"
        );
        assert_eq!(
            database_url("postgres://u:p@h/postgres?sslmode=require", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=require"
        );
        for bad in ["", "1abc", "a\"; DROP", "A", "a-b", &"a".repeat(64)] {
            assert!(checked_name(bad).is_err(), "{bad}");
        }
    }
}
