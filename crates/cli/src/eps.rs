//! `vsc eps verify`: checks signed prescriptions the way the EPS verifier does — format, one
//! certificate, signature, digest, revocation, validity at `author/time`, trusted issuer, in that
//! order — and names every check's outcome.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vsc_eps::verify::{Outcome, VerifyOptions, verify_prescription};

/// `vsc eps`.
#[derive(Debug, Args)]
pub struct EpsArgs {
    #[command(subcommand)]
    command: EpsCommand,
}

#[derive(Debug, Subcommand)]
enum EpsCommand {
    /// Verify the signature of each prescription (a ParentPrescription, or a PORX_IN020101SM31
    /// message carrying one). Exit status 0 only when every file is valid; a skipped check
    /// (trust without --trust, revocation for now) does not make a file invalid.
    #[command(after_help = "Examples:\n  vsc eps verify prescription.xml\n  \
vsc eps verify --trust nhs-level1d.pem --allow-legacy-1024-bit-rsa corpus/*.xml\n  vsc eps verify --json signed.xml")]
    Verify {
        /// Prescription files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The CA (PEM or DER) that must have issued the signing certificate; without it the
        /// trust check is reported as skipped.
        #[arg(long, value_name = "CA")]
        trust: Option<PathBuf>,
        /// Accept RSA keys of 1024 to 2047 bits (NHS test-environment certificates use them).
        #[arg(long)]
        allow_legacy_1024_bit_rsa: bool,
        /// Print each file's per-check results as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn read_ca(path: &PathBuf) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = String::from_utf8(bytes).context("the CA file is not text")?;
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        use base64::Engine as _;
        return base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .with_context(|| format!("{} is not a PEM certificate", path.display()));
    }
    Ok(bytes)
}

fn word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "FAILED",
        Outcome::Skipped => "skipped",
    }
}

/// Runs `vsc eps`.
pub async fn run(args: EpsArgs) -> Result<ExitCode> {
    let EpsCommand::Verify {
        files,
        trust,
        allow_legacy_1024_bit_rsa,
        json,
    } = args.command;
    let ca = trust.as_ref().map(read_ca).transpose()?;
    let options = VerifyOptions {
        trusted_ca_der: ca.as_deref(),
        allow_legacy_1024_bit_rsa,
    };
    let mut all_valid = true;
    let mut reports = Vec::new();
    for file in &files {
        let xml = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        match verify_prescription(&xml, &options) {
            Ok(report) => {
                let valid = report.no_failures();
                all_valid &= valid;
                if json {
                    reports.push(
                        serde_json::json!({"file": file, "valid": valid, "checks": report.checks}),
                    );
                } else {
                    match report.first_failure() {
                        None => println!("{}: valid", file.display()),
                        Some(f) => println!("{}: INVALID ({})", file.display(), f.message),
                    }
                    for c in &report.checks {
                        let name = serde_json::to_value(c.check)?
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        println!("  {:<22} {:<8} {}", name, word(c.outcome), c.message);
                    }
                }
            }
            Err(e) => {
                all_valid = false;
                if json {
                    reports.push(
                        serde_json::json!({"file": file, "valid": false, "error": e.to_string()}),
                    );
                } else {
                    println!(
                        "{}: not a prescription this verifier can read: {e}",
                        file.display()
                    );
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
