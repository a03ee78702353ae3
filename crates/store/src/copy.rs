//! Copying an instance's store from its embedded SQLite database into PostgreSQL
//! (`vsc db migrate-to-postgres`): every table, row for row, in one PostgreSQL transaction, from
//! one consistent SQLite snapshot; then the copy is checked (row counts per table, the audit
//! chain verified on PostgreSQL and ending in the same head hash as the source).

use serde::Serialize;

use crate::audit::{self, NewEvent, Outcome};
use crate::{Backend, Conn, Store, StoreError};

/// What one copied table held.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: String,
    /// Rows copied (equal in source and target).
    pub rows: i64,
}

/// What [`sqlite_to_postgres`] did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// Every table copied, in the order it was copied (parents before children).
    pub tables: Vec<TableCopy>,
    /// Audit events copied; the chain verified on the target.
    pub audit_events: u64,
    /// The source's audit head hash, which the copied chain ends in.
    pub audit_head_hash: String,
}

/// The types a column of the store can have, as PostgreSQL names them.
enum ColumnType {
    Integer,
    Text,
    Bytes,
}

/// Copies everything in `source` (SQLite) into `target` (a PostgreSQL store whose tables exist
/// and hold no data yet), checks the copy, and records the migration as an audit event on the
/// target. `progress` is told each table as it is done.
pub async fn sqlite_to_postgres(
    source: &Store,
    target: &Store,
    at_ms: i64,
    mut progress: impl FnMut(&TableCopy),
) -> Result<CopyReport, StoreError> {
    if source.backend() != Backend::Sqlite || target.backend() != Backend::Postgres {
        return Err(StoreError::BadLocation(
            "the copy goes from a SQLite store to a PostgreSQL store".into(),
        ));
    }
    let source_report = audit::verify(source).await?;
    if let Some(broken) = &source_report.first_broken {
        return Err(StoreError::Corrupt(format!(
            "the source's audit chain is broken at event {} ({}); nothing was copied",
            broken.seq, broken.reason
        )));
    }

    // One read transaction: in WAL mode SQLite keeps this snapshot for every statement in it,
    // even while a server writes.
    let mut read = source.pool().begin().await?;
    // sqlite_master lists tables in creation order, so a table comes after those it refers to.
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY rowid",
    )
    .fetch_all(&mut *read)
    .await?;

    let mut write = target.write().await?;
    let mut copied = Vec::new();
    for (table,) in &tables {
        // Names go into SQL text below; only the store's own kind of name is let through.
        if !table
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(StoreError::Corrupt(format!(
                "the source has a table named {table:?}, which vsc never creates"
            )));
        }
        let columns = target_columns(&mut write, table).await?;
        if columns.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "table {table} is in the source but not in the target: is the target's vsc \
                 older than the source's?"
            )));
        }
        let (existing,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *write)
                .await?;
        if existing > 0 {
            return Err(StoreError::BadLocation(format!(
                "the target already holds data (table {table} has {existing} rows): migrate \
                 into a new, empty database"
            )));
        }
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(select))
            .fetch_all(&mut *read)
            .await?;
        for row in &rows {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
            for (i, (name, ty)) in columns.iter().enumerate() {
                query = bind_column(query, row, i, ty)
                    .map_err(|e| StoreError::Corrupt(format!("{table}.{name}: {e}")))?;
            }
            query.execute(&mut *write).await?;
        }
        reset_identity(&mut write, table).await?;
        let done = TableCopy {
            table: table.clone(),
            rows: rows.len() as i64,
        };
        progress(&done);
        copied.push(done);
    }
    drop(read);

    // Check inside the transaction: counts as read from the target itself.
    for t in &copied {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            t.table
        )))
        .fetch_one(&mut *write)
        .await?;
        if n != t.rows {
            return Err(StoreError::Corrupt(format!(
                "table {} has {n} rows after the copy, {} expected; nothing was kept",
                t.table, t.rows
            )));
        }
    }
    let total: i64 = copied.iter().map(|t| t.rows).sum();
    audit::append(
        &mut write,
        &NewEvent {
            actor: "system".into(),
            action: "store.migrated_to_postgres".into(),
            subject: String::new(),
            organisation: String::new(),
            source: "vsc db migrate-to-postgres".into(),
            outcome: Outcome::Success,
            detail: serde_json::json!({
                "tables": copied.len(),
                "rows": total,
                "audit_head_hash": source_report.head_hash,
            }),
        },
        at_ms,
    )
    .await?;
    write.commit().await?;

    let target_report = audit::verify(target).await?;
    if let Some(broken) = &target_report.first_broken {
        return Err(StoreError::Corrupt(format!(
            "the copied audit chain is broken at event {} ({})",
            broken.seq, broken.reason
        )));
    }
    if target_report.events != source_report.events + 1 {
        return Err(StoreError::Corrupt(format!(
            "the copy holds {} audit events, {} expected",
            target_report.events,
            source_report.events + 1
        )));
    }
    Ok(CopyReport {
        tables: copied,
        audit_events: source_report.events,
        audit_head_hash: source_report.head_hash,
    })
}

/// The target table's columns with their types, in table order.
async fn target_columns(
    conn: &mut Conn,
    table: &str,
) -> Result<Vec<(String, ColumnType)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(name, ty)| {
            let ty = match ty.as_str() {
                "bigint" | "integer" | "smallint" => ColumnType::Integer,
                "text" | "character varying" => ColumnType::Text,
                "bytea" => ColumnType::Bytes,
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "{table}.{name} has type {other}, which the copy does not know"
                    )));
                }
            };
            Ok((name, ty))
        })
        .collect()
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_column<'q>(
    query: AnyQuery<'q>,
    row: &sqlx::any::AnyRow,
    i: usize,
    ty: &ColumnType,
) -> Result<AnyQuery<'q>, sqlx::Error> {
    use sqlx::Row;
    Ok(match ty {
        ColumnType::Integer => query.bind(row.try_get::<Option<i64>, _>(i)?),
        ColumnType::Text => query.bind(row.try_get::<Option<String>, _>(i)?),
        ColumnType::Bytes => query.bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
    })
}

/// Moves an identity column's sequence past the copied values, so new rows get fresh ids.
async fn reset_identity(conn: &mut Conn, table: &str) -> Result<(), StoreError> {
    let identity: Vec<(String,)> = sqlx::query_as(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for (column,) in identity {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
             COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
