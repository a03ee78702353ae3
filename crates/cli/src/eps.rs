//! `vsc eps verify`: checks signed prescriptions the way the EPS verifier does — format, one
//! certificate, signature, digest, revocation, validity at `author/time`, trusted issuer, in that
//! order — and names every check's outcome.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use vsc_eps::verify::{Outcome, VerifyOptions, certificate_is_self_issued, verify_prescription};

/// `vsc eps`.
#[derive(Debug, Args)]
pub struct EpsArgs {
    #[command(subcommand)]
    command: EpsCommand,
}

#[derive(Debug, Subcommand)]
enum EpsCommand {
    /// Sign prescriptions with the phone through the running identity agent (by default the
    /// one `vsc sandbox` runs): one approval on the phone for all the files.
    #[command(after_help = "Examples:\n  vsc eps sign prescription.xml\n  \
vsc eps sign --algorithm RS1 --stamp-author-time --out-dir signed/ batch/*.xml\n  \
vsc eps sign --agent-home ~/.vsc/agent --in-place rx.xml")]
    Sign(crate::eps_sign::SignArgs),
    /// Verify the signature of each prescription (a ParentPrescription, or a PORX_IN020101SM31
    /// message carrying one). Exit status 0 only when every file is valid; a skipped check
    /// (trust without --trust, revocation without a --crl from the signer's CA) does not make a
    /// file invalid.
    #[command(after_help = "Examples:\n  vsc eps verify prescription.xml\n  \
vsc eps verify --trust nhs-level1d.pem --allow-legacy-1024-bit-rsa corpus/*.xml\n  \
vsc eps verify --trust root-and-issuing-ca.pem --crl issuing.crl --crl root.crl signed.xml\n  \
vsc eps verify --json signed.xml")]
    Verify {
        /// Prescription files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// CA certificates: a PEM bundle, or one DER certificate. Self-issued certificates
        /// (subject = issuer) are trust anchors and the others intermediates that may link the
        /// signer to an anchor; a bundle with no self-issued certificate trusts its first
        /// certificate. Without it the trust check is reported as skipped.
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
        /// A CRL (DER or PEM) issued by one of the --trust CAs; repeat for several (e.g. the
        /// issuing CA's CRL and the root's). Only CRLs whose signature verifies with their CA's
        /// key are used.
        #[arg(long = "crl", value_name = "FILE")]
        crls: Vec<PathBuf>,
        /// Accept RSA keys of 1024 to 2047 bits (NHS test-environment certificates use them).
        #[arg(long)]
        allow_legacy_1024_bit_rsa: bool,
        /// Print each file's per-check results as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The DER bodies of the PEM blocks labelled `label` in `text`.
fn pem_blocks(text: &str, label: &str, path: &Path) -> Result<Vec<Vec<u8>>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line == begin {
            body = Some(String::new());
        } else if line == end {
            let b64 = body
                .take()
                .with_context(|| format!("{}: {end} without {begin}", path.display()))?;
            blocks.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .with_context(|| {
                        format!("{}: a {label} block is not base64", path.display())
                    })?,
            );
        } else if let Some(b64) = body.as_mut() {
            b64.push_str(line);
        }
    }
    if body.is_some() {
        anyhow::bail!("{}: {begin} without {end}", path.display());
    }
    Ok(blocks)
}

/// The DER items of a file that is either PEM (blocks labelled `label`) or one DER item.
fn read_der_or_pem(path: &Path, label: &str) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not a PEM file", path.display()))?;
        let blocks = pem_blocks(&text, label, path)?;
        if blocks.is_empty() {
            anyhow::bail!("{} has no {label} PEM block", path.display());
        }
        return Ok(blocks);
    }
    Ok(vec![bytes])
}

/// The CA certificates of a `--trust` file, sorted.
#[derive(Default)]
struct TrustBundle {
    /// Self-issued certificates (or the first certificate, when none is).
    anchors: Vec<Vec<u8>>,
    /// The other certificates.
    intermediates: Vec<Vec<u8>>,
}

/// Trust anchors and intermediates from a `--trust` file.
fn read_trust(path: &Path) -> Result<TrustBundle> {
    let mut bundle = TrustBundle::default();
    for (i, der) in read_der_or_pem(path, "CERTIFICATE")?
        .into_iter()
        .enumerate()
    {
        match certificate_is_self_issued(&der) {
            Some(true) => bundle.anchors.push(der),
            Some(false) => bundle.intermediates.push(der),
            None => anyhow::bail!(
                "{}: certificate {} is not a valid X.509 certificate",
                path.display(),
                i + 1
            ),
        }
    }
    if bundle.anchors.is_empty() && !bundle.intermediates.is_empty() {
        let first = bundle.intermediates.remove(0);
        bundle.anchors.push(first);
    }
    Ok(bundle)
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
    let (files, trust, crls, allow_legacy_1024_bit_rsa, json) = match args.command {
        EpsCommand::Sign(sign) => return crate::eps_sign::run(sign).await,
        EpsCommand::Verify {
            files,
            trust,
            crls,
            allow_legacy_1024_bit_rsa,
            json,
        } => (files, trust, crls, allow_legacy_1024_bit_rsa, json),
    };
    let bundle = match &trust {
        Some(path) => read_trust(path)?,
        None => TrustBundle::default(),
    };
    let mut crl_ders = Vec::new();
    for path in &crls {
        crl_ders.extend(read_der_or_pem(path, "X509 CRL")?);
    }
    let anchor_refs: Vec<&[u8]> = bundle.anchors.iter().map(Vec::as_slice).collect();
    let intermediate_refs: Vec<&[u8]> = bundle.intermediates.iter().map(Vec::as_slice).collect();
    let crl_refs: Vec<&[u8]> = crl_ders.iter().map(Vec::as_slice).collect();
    let options = VerifyOptions {
        trusted_ca_der: anchor_refs.first().copied(),
        additional_trusted_ca_ders: anchor_refs.get(1..).unwrap_or_default(),
        intermediate_ca_ders: &intermediate_refs,
        crl_ders: &crl_refs,
        allow_legacy_1024_bit_rsa,
        verification_time: None,
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
