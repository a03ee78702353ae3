//! `vsc db`: operations on an instance's database as a whole. Today one:
//! `vsc db migrate-to-postgres`, which moves an instance from its embedded SQLite database to
//! PostgreSQL (for more than one node).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use vsc_store::{Location, Store};

/// `vsc db`.
#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Copy an instance's SQLite database into an empty PostgreSQL database.
    #[command(
        long_about = "Copy an instance's embedded SQLite database (DATA/vsc.db) into an empty \
PostgreSQL database: every table, from one consistent snapshot, in one PostgreSQL transaction. \
The copy is then checked: row counts per table, and the audit chain verified on PostgreSQL, \
ending in the source's head hash. The migration itself is recorded as an audit event.\n\n\
Stop the server first (a server still running keeps writing to SQLite, and those writes would \
not be copied). Afterwards start every node with the same --database URL and a copy of the data \
directory (CA, TLS certificate, master key); the SQLite file is left as it was.",
        after_help = "Examples:\n  createdb -h 127.0.0.1 -U postgres vsc\n  vsc db migrate-to-postgres --data /var/lib/vsc --database postgres://postgres@127.0.0.1/vsc\n  vsc serve --data /var/lib/vsc --database postgres://postgres@127.0.0.1/vsc"
    )]
    MigrateToPostgres {
        /// The instance's data directory (holds vsc.db).
        #[arg(long, default_value = "./vsc-data", env = "VSC_DATA")]
        data: PathBuf,
        /// The PostgreSQL database to copy into (it must exist and be empty):
        /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
        #[arg(
            long,
            env = "VSC_DATABASE_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        database: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `vsc db`.
pub async fn run(args: DbArgs) -> Result<ExitCode> {
    match args.command {
        DbCommand::MigrateToPostgres {
            data,
            database,
            json,
        } => migrate_to_postgres(data, &database, json).await,
    }
}

async fn migrate_to_postgres(data: PathBuf, database: &str, json: bool) -> Result<ExitCode> {
    let target_location = Location::parse(database)?;
    if target_location.backend() != vsc_store::Backend::Postgres {
        bail!(
            "--database must be a postgres:// URL (got {})",
            target_location.redacted()
        );
    }
    let source = Store::open_existing(&data.join("vsc.db"))
        .await
        .with_context(|| {
            format!(
                "cannot open the instance's SQLite database in {}",
                data.display()
            )
        })?;
    let target = Store::open_at(&target_location).await.with_context(|| {
        format!(
            "cannot open {} (does the database exist? create it with `createdb`)",
            target_location.redacted()
        )
    })?;
    if !json {
        eprintln!(
            "copying {} into {}…",
            data.join("vsc.db").display(),
            target_location.redacted()
        );
    }
    let at_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let report = vsc_store::copy::sqlite_to_postgres(&source, &target, at_ms as i64, |t| {
        if !json {
            eprintln!("  {:<28} {:>8} rows", t.table, t.rows);
        }
    })
    .await
    .context("the copy failed; the PostgreSQL database was left as it was")?;
    source.close().await;
    target.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let rows: i64 = report.tables.iter().map(|t| t.rows).sum();
        println!(
            "copied {} tables, {rows} rows; audit chain verified on PostgreSQL: {} events, head {}",
            report.tables.len(),
            report.audit_events,
            report.audit_head_hash
        );
        println!(
            "next: start the server with --database {}",
            target_location.redacted()
        );
    }
    Ok(ExitCode::SUCCESS)
}
