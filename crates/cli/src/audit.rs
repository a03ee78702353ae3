//! `vsc audit verify` and `vsc audit export`: offline tools that read the audit log straight
//! from the instance's database (the data directory's SQLite file, or `--database`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vsc_store::Store;

/// `vsc audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; names the first broken event. Exit status 1 if broken.
    Verify {
        /// The server's data directory.
        #[arg(long, default_value = "./vsc-data", env = "VSC_DATA")]
        data: PathBuf,
        /// The instance's database when it is not DATA/vsc.db (`postgres://…`, as `vsc serve
        /// --database`).
        #[arg(
            long,
            env = "VSC_DATABASE_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        database: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every event as a JSON line (to standard output, or a file).
    Export {
        /// The server's data directory.
        #[arg(long, default_value = "./vsc-data", env = "VSC_DATA")]
        data: PathBuf,
        /// The instance's database when it is not DATA/vsc.db (`postgres://…`, as `vsc serve
        /// --database`).
        #[arg(
            long,
            env = "VSC_DATABASE_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        database: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

async fn open(data: &std::path::Path, database: Option<&str>) -> Result<Store> {
    let location = vsc_store::Location::for_instance(data, database)?;
    Store::open_existing_at(&location)
        .await
        .with_context(|| format!("cannot open the audit log in {}", location.redacted()))
}

/// Runs `vsc audit`.
pub async fn run(args: AuditArgs) -> Result<ExitCode> {
    match args.command {
        AuditCommand::Verify {
            data,
            database,
            json,
        } => {
            let store = open(&data, database.as_deref()).await?;
            let report = vsc_store::audit::verify(&store).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if let Some(b) = &report.first_broken {
                println!("audit log BROKEN at event {}: {}", b.seq, b.reason);
                println!(
                    "{} events before it verify; last good hash {}",
                    report.events, report.head_hash
                );
            } else {
                println!(
                    "audit log intact: {} events, head hash {}",
                    report.events, report.head_hash
                );
            }
            Ok(if report.first_broken.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        AuditCommand::Export {
            data,
            database,
            output,
        } => {
            let store = open(&data, database.as_deref()).await?;
            let count = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    let n = vsc_store::audit::export(&store, &mut w).await?;
                    w.flush()?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut w = std::io::BufWriter::new(stdout.lock());
                    let n = vsc_store::audit::export(&store, &mut w).await?;
                    w.flush()?;
                    n
                }
            };
            if let Some(path) = output {
                eprintln!("exported {count} events to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
