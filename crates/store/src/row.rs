//! Reading query results into the store's row types **by column name**, never by position.
//!
//! Rows used to be read into long tuples and converted field by field (`t.0`, `t.13`, …): a
//! column added, removed or moved in the middle of a `SELECT` list silently shifted every field
//! after it, and two columns of the same type could be swapped without a compiler noticing.
//! Each row type now implements [`sqlx::FromRow`] for [`AnyRow`] and asks for its columns by
//! name (`row.try_get("id")`), so the order of a `SELECT` list no longer matters and a missing
//! column is an error that names it.
//!
//! The impls are written by hand (sqlx's `derive` feature would build the database drivers a
//! second time for the proc-macro host), through the [`from_row!`] macro and the small helpers
//! below, which keep the backend rules in one place: integers are `i64`, flags are `0`/`1`
//! integers (never `bool`), blobs are `Vec<u8>`, nullable columns are `Option<T>`.
//!
//! A stored value that does not parse (an unknown state name, bad JSON, an out-of-range number)
//! becomes a [`sqlx::Error::Decode`] carrying a [`CorruptValue`] that names the table, the
//! column and the value; `StoreError`'s `From<sqlx::Error>` turns it into
//! [`StoreError::Corrupt`](crate::StoreError::Corrupt), so callers see the same error as before.

use std::fmt::Display;
use std::str::FromStr;

use sqlx::Row as _;
use sqlx::any::{Any, AnyRow};

/// A stored value that does not parse: the database was edited by hand or is corrupt.
#[derive(Debug, thiserror::Error)]
#[error("{table}.{column} holds {value:?}: {reason}")]
pub(crate) struct CorruptValue {
    /// The table read.
    table: String,
    /// The column read.
    column: String,
    /// The stored value (as text).
    value: String,
    /// Why it does not parse.
    reason: String,
}

/// The [`sqlx::Error`] a `FromRow` impl returns for a value that does not parse.
pub(crate) fn corrupt(
    table: &str,
    column: &str,
    value: impl Display,
    reason: impl Display,
) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(CorruptValue {
        table: table.to_owned(),
        column: column.to_owned(),
        value: value.to_string(),
        reason: reason.to_string(),
    }))
}

/// The column named `column`, decoded as `T`.
pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, sqlx::Error>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get::<T, _>(column)
}

/// A plain column (what [`from_row!`] uses when a field names no reader).
pub(crate) fn value<'r, T>(row: &'r AnyRow, _table: &str, column: &str) -> Result<T, sqlx::Error>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    get(row, column)
}

/// A `0`/`1` integer flag.
pub(crate) fn flag(row: &AnyRow, _table: &str, column: &str) -> Result<bool, sqlx::Error> {
    Ok(get::<i64>(row, column)? != 0)
}

/// A value stored as its canonical name (a state such as [`vsc_core::CardState`]), parsed.
pub(crate) fn parsed<T>(row: &AnyRow, table: &str, column: &str) -> Result<T, sqlx::Error>
where
    T: FromStr,
    T::Err: Display,
{
    let stored: String = get(row, column)?;
    stored
        .parse()
        .map_err(|e: T::Err| corrupt(table, column, &stored, e))
}

/// A JSON text column, deserialised.
pub(crate) fn json<T>(row: &AnyRow, table: &str, column: &str) -> Result<T, sqlx::Error>
where
    T: serde::de::DeserializeOwned,
{
    let stored: String = get(row, column)?;
    serde_json::from_str(&stored).map_err(|e| corrupt(table, column, &stored, e))
}

/// A small number stored as an integer (`u8`: levels, reason codes).
pub(crate) fn small(row: &AnyRow, table: &str, column: &str) -> Result<u8, sqlx::Error> {
    let stored: i64 = get(row, column)?;
    u8::try_from(stored).map_err(|e| corrupt(table, column, stored, e))
}

/// A nullable small number.
pub(crate) fn small_opt(
    row: &AnyRow,
    table: &str,
    column: &str,
) -> Result<Option<u8>, sqlx::Error> {
    get::<Option<i64>>(row, column)?
        .map(|stored| u8::try_from(stored).map_err(|e| corrupt(table, column, stored, e)))
        .transpose()
}

/// Implements `sqlx::FromRow<'_, AnyRow>` for a struct, reading each field from the column of
/// the same name (or the one given after `=`) with a reader from this module (after `:`;
/// [`value`] when none is given) or any function of the same shape
/// (`fn(&AnyRow, table: &str, column: &str) -> Result<T, sqlx::Error>`):
///
/// ```text
/// from_row!(CardRow in "cards" {
///     id, uid, state: parsed, custody, issued_by, device_id,
/// });
/// from_row!(RevokedRow in "certificates" {
///     serial, revoked_at, reason_code = "revocation_reason_code": small_opt, invalidity_date,
/// });
/// ```
///
/// The table name only labels errors.
macro_rules! from_row {
    ($ty:ident in $table:literal {
        $($field:ident $(= $column:literal)? $(: $read:path)?),* $(,)?
    }) => {
        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $ty {
            fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
                Ok($ty {
                    $($field: $crate::row::from_row!(@read $($read)?)(
                        row,
                        $table,
                        $crate::row::from_row!(@column $field $($column)?),
                    )?,)*
                })
            }
        }
    };
    (@read) => { $crate::row::value };
    (@read $read:path) => { $read };
    (@column $field:ident) => { stringify!($field) };
    (@column $field:ident $column:literal) => { $column };
}

pub(crate) use from_row;
