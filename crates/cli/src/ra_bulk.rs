//! `vsc ra bulk-issue FILE.csv [--dry-run] [--results FILE]`: bulk issuance for scripts, through
//! `POST /api/v1/ra/bulk-issue` — the same checks and the same run as the web console's
//! `/ra/bulk` (the server's `routes::ra_bulk`), and the same CSV reader (`vsc_proto::bulk`).
//!
//! A dry run sends the whole file at once. A real run sends it in parts of [`CHUNK`] rows, so
//! rows are reported as they finish and no request runs long; the results file is rewritten
//! after each part, so a broken connection loses no activation code already shown.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use vsc_https::Client;
use vsc_proto::bulk::{
    self, BulkIssueReport, BulkIssueRequest, BulkRow, COLUMNS, MAX_BYTES, MAX_ROWS,
};
use vsc_proto::routes;

/// Rows a request of a real run carries.
const CHUNK: usize = 50;

/// `vsc ra bulk-issue`.
#[derive(Debug, Args)]
#[command(
    long_about = "Register people, record their identity checks, assign their positions and issue \
their cards from a CSV file, row by row; a row that is refused does not stop the others.\n\n\
The first row names the columns (any order): given_name, family_name, email, organisation (ODS \
code), role_code (S8000:G8000:R8000), role_name (optional), activities (codes separated by spaces \
or semicolons), evidence (e.g. \"passport proof-of-address\"), level (3 for a card), checker_uid \
(who saw the evidence: an RA Manager, RA Agent or ID Checker of the organisation). At most 1,000 \
rows and 1 MiB.\n\n\
Check the file first with --dry-run: every row is checked and its errors named, nothing is \
written. Exit status 0 when every row passed, 1 otherwise.",
    after_help = "Examples:\n  vsc ra bulk-issue staff.csv --dry-run\n  vsc ra bulk-issue staff.csv --results staff-results.csv\n\n\
Example file:\n  given_name,family_name,email,organisation,role_code,role_name,activities,evidence,level,checker_uid\n  \
Mary,Seacole,mary.seacole@example.nhs.uk,RX1,S8000:G8000:R8000,Clinical Practitioner Access Role,B0570,passport proof-of-address,3,545737588804"
)]
pub struct BulkIssueArgs {
    /// The CSV file (`-` for standard input).
    file: PathBuf,
    /// Check every row and print the report; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the results CSV (one line per row, with the activation codes) here, mode 0600.
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
}

fn read_file(args: &BulkIssueArgs) -> Result<String> {
    let mut bytes = Vec::new();
    let limit = (MAX_BYTES + 1) as u64;
    if args.file.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?
            .take(limit)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
    }
    if bytes.len() > MAX_BYTES {
        bail!("{} is larger than 1 MiB: split it", args.file.display());
    }
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", args.file.display()))
}

/// A field quoted as a whole, so it reads back exactly as it was.
fn quoted(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

/// The file cut into parts of [`CHUNK`] rows, each with the header; with each part's offset
/// (the rows before it).
fn parts(text: &str) -> Result<Vec<(usize, String)>> {
    // The server reads each part again; reading it here first names a broken file at once, with
    // the same messages.
    bulk::read_bulk_csv(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let records = bulk::parse_csv(text, MAX_ROWS + 1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(((_, header), rows)) = records.split_first() else {
        bail!(
            "the file is empty; the first row names the columns: {}",
            COLUMNS.join(",")
        );
    };
    let line = |fields: &[String]| {
        let mut l = fields
            .iter()
            .map(|f| quoted(f))
            .collect::<Vec<_>>()
            .join(",");
        l.push_str("\r\n");
        l
    };
    Ok(rows
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, chunk)| {
            let mut csv = line(header);
            for (_, r) in chunk {
                csv.push_str(&line(r));
            }
            (i * CHUNK, csv)
        })
        .collect())
}

fn print_row(r: &BulkRow, dry_run: bool) {
    let name = format!(
        "{} {} <{}> {}",
        r.given_name, r.family_name, r.email, r.organisation
    );
    if r.is_ok() {
        if dry_run {
            println!("row {:>4}  OK     {name}", r.row);
        } else {
            println!(
                "row {:>4}  OK     {name}  UID {}  card {}",
                r.row,
                r.uid.as_deref().unwrap_or("?"),
                r.card_id.as_deref().unwrap_or("?")
            );
            if let Some(a) = &r.activation {
                println!("           code {}  link {}", a.code, a.url);
            }
        }
        return;
    }
    println!("row {:>4}  ERROR  {name}", r.row);
    if !r.done.is_empty() {
        println!(
            "           done: {} (UID {})",
            r.done.join(", "),
            r.uid.as_deref().unwrap_or("?")
        );
    }
    for e in &r.errors {
        println!("           {}: {} ({})", e.field, e.message, e.code);
    }
}

fn write_results(path: &Option<PathBuf>, rows: &[BulkRow]) -> Result<()> {
    if let Some(p) = path {
        vsc_https::fsutil::write_private_atomic(p, bulk::results_csv(rows).as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// Runs `vsc ra bulk-issue`.
pub async fn run(
    args: BulkIssueArgs,
    client: &Client,
    token: &str,
    json: bool,
) -> Result<ExitCode> {
    let text = read_file(&args)?;
    let requests = if args.dry_run {
        vec![(0, text)]
    } else {
        parts(&text)?
    };
    let mut all = BulkIssueReport {
        dry_run: args.dry_run,
        rows: Vec::new(),
    };
    for (offset, csv) in requests {
        let report: BulkIssueReport = client
            .post_json(
                routes::RA_BULK_ISSUE,
                &BulkIssueRequest {
                    csv,
                    dry_run: args.dry_run,
                },
                Some(token),
            )
            .await?;
        for mut r in report.rows {
            r.row += offset;
            if !json {
                print_row(&r, args.dry_run);
            }
            all.rows.push(r);
        }
        write_results(&args.results, &all.rows)?;
    }
    let (ok, failed) = (all.ok_rows(), all.failed_rows());
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if args.dry_run {
        println!(
            "{} rows: {ok} ready, {failed} with errors (dry run: nothing written)",
            all.rows.len()
        );
    } else {
        println!(
            "{} rows: {ok} cards issued, {failed} not issued",
            all.rows.len()
        );
        if ok > 0 && args.results.is_none() {
            eprintln!(
                "The activation codes are shown only now: keep them (--results FILE writes them to a 0600 file)."
            );
        }
    }
    if let Some(p) = &args.results {
        eprintln!("wrote {} (mode 0600)", p.display());
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
