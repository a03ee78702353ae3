//! `vsc eps verify`: checks signed prescriptions the way the EPS verifier does — format, one
//! certificate, signature, digest, revocation, validity at `author/time`, trusted issuer, in that
//! order — and names every check's outcome. A prescription with a decoy where EPS reads one HL7
//! element (a second `recordTarget`, a foreign-namespace or `xmlns=""` copy) is refused, not
//! checked. Without a trust anchor the verdict is "signature valid, signer not trusted" and the
//! exit status is 1, unless `--no-trust-check` says that is enough.
//!
//! With `--ocsp` the signer's revocation is also asked of the OCSP responder named in the signing
//! certificate (Authority Information Access) or given with `--ocsp-url`: a fresh nonce per
//! request, HTTPS verified against the `--trust` CAs, and the response checked by the verifier
//! (signer authorised by the issuing CA, CertID, freshness, nonce) before its answer counts.
//!
//! `vsc eps preview`: prints the phone's approval screen for prescriptions, from the same code the
//! phone runs (`vsc_eps::screen`), for integrators and tests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use vsc_eps::sign::SignatureAlgorithm;
use vsc_eps::verify::{
    Check, OcspEvidence, Outcome, Verdict, VerifyOptions, certificate_is_self_issued,
    signer_and_issuer, verify_prescription,
};

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
    /// message carrying one). Exit status 0 only when every file is valid *and* its signer
    /// chains to a --trust CA (or --no-trust-check is given); a skipped revocation check (no
    /// --crl from the signer's CA) does not make a file invalid.
    #[command(after_help = "Examples:\n  \
vsc eps verify --trust vsc-sandbox/server/ca/root.pem --chain vsc-sandbox/server/ca/issuing.pem signed/*.xml\n  \
curl -s --cacert root.pem https://vsc.example/ca/chain.pem > chain.pem   # an instance's published chain\n  \
vsc eps verify --trust root.pem --chain chain.pem --crl issuing.crl signed.xml\n  \
vsc eps verify --trust root.pem --chain chain.pem --ocsp signed.xml   # ask the signer's OCSP responder\n  \
vsc eps verify --trust nhs-level1d.pem --allow-legacy-1024-bit-rsa corpus/*.xml\n  \
vsc eps verify --no-trust-check --json signed.xml      # signature and digest only")]
    Verify {
        /// Prescription files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// CA certificates to trust: a PEM bundle, or one DER certificate. Self-issued
        /// certificates (subject = issuer) are trust anchors and the others intermediates that
        /// may link the signer to an anchor; a bundle with no self-issued certificate trusts its
        /// first certificate. Without it (and without --no-trust-check) a file whose checks all
        /// pass is "signature valid, signer not trusted" and the exit status is 1.
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
        /// Untrusted CA certificates that may link the signer to a --trust anchor (PEM bundle or
        /// DER; repeatable): a vsc instance's published chain (`/ca/chain.pem`, or
        /// `ca/issuing.pem` in its data directory). Never trust anchors themselves.
        #[arg(long = "chain", value_name = "FILE")]
        chains: Vec<PathBuf>,
        /// Accept a valid signature without deciding who the signer is (no trust anchor): the
        /// trusted-issuer check is skipped and does not fail the file.
        #[arg(long, conflicts_with = "trust")]
        no_trust_check: bool,
        /// A CRL (DER or PEM) issued by one of the --trust or --chain CAs; repeat for several
        /// (e.g. the issuing CA's CRL and the root's). Only CRLs whose signature verifies with
        /// their CA's key are used. Key-compromise entries reject signatures from the entry's
        /// invalidity date on (all of them without one); other reasons from the revocation date.
        #[arg(long = "crl", value_name = "FILE")]
        crls: Vec<PathBuf>,
        /// Also check the signer's revocation by OCSP (RFC 6960): ask the responder named in the
        /// signing certificate's Authority Information Access (or --ocsp-url) with a fresh nonce.
        /// The response must be signed by the signer's issuing CA (a --trust or --chain CA) or a
        /// responder certificate it issued, answer for this certificate, be current and echo the
        /// nonce; `revoked` is judged like a CRL entry, `unknown` fails. With --crl too, either
        /// finding the certificate revoked fails the check. HTTPS responders are verified against
        /// the --trust CAs.
        #[arg(long)]
        ocsp: bool,
        /// The OCSP responder to ask instead of the certificate's own (implies --ocsp).
        #[arg(long, value_name = "URL")]
        ocsp_url: Option<url::Url>,
        /// Accept RSA keys of 1024 to 2047 bits (NHS test-environment certificates use them).
        #[arg(long)]
        allow_legacy_1024_bit_rsa: bool,
        /// Print each file's per-check results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the phone's approval screen for prescriptions: exactly the lines the phone shows
    /// (same code), items numbered as `vsc eps sign` numbers them. A prescription the phone
    /// would refuse (a decoy element, a repeated single element, too deep) is listed as NOT
    /// SIGNED with the reason, and the exit status is 1. The screen's second header line (the
    /// workstation and role of the session) depends on the session, not the files, and is not
    /// printed.
    #[command(after_help = "Examples:\n  vsc eps preview prescription.xml\n  \
vsc eps preview --algorithm RS1 --stamp-author-time batch/*.xml")]
    Preview {
        /// Prescription files (a ParentPrescription, or a PORX_IN020101SM31 message carrying
        /// one).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The signature algorithm (shown in the header, and what the fingerprint is of).
        #[arg(long, default_value = "RS256", value_parser = ["RS1", "RS256"])]
        algorithm: String,
        /// Set author/time to now first, as `vsc eps sign --stamp-author-time` does.
        #[arg(long)]
        stamp_author_time: bool,
    },
}

/// The DER items of a file that is either PEM (its blocks of type `T`, labelled `label`; blocks
/// with other labels are skipped) or one DER item.
fn read_der_or_pem<T: PemObject + AsRef<[u8]>>(path: &Path, label: &str) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let blocks = T::pem_slice_iter(&bytes)
            .map(|block| block.map(|der| der.as_ref().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a well-formed PEM file", path.display()))?;
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
    for (i, der) in read_der_or_pem::<CertificateDer>(path, "CERTIFICATE")?
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
    match args.command {
        EpsCommand::Sign(sign) => crate::eps_sign::run(sign).await,
        EpsCommand::Verify {
            files,
            trust,
            chains,
            no_trust_check,
            crls,
            ocsp,
            ocsp_url,
            allow_legacy_1024_bit_rsa,
            json,
        } => {
            verify(VerifyArgs {
                files,
                trust,
                chains,
                no_trust_check,
                crls,
                ocsp: ocsp || ocsp_url.is_some(),
                ocsp_url,
                allow_legacy_1024_bit_rsa,
                json,
            })
            .await
        }
        EpsCommand::Preview {
            files,
            algorithm,
            stamp_author_time,
        } => preview(&files, &algorithm, stamp_author_time),
    }
}

struct VerifyArgs {
    files: Vec<PathBuf>,
    trust: Option<PathBuf>,
    chains: Vec<PathBuf>,
    no_trust_check: bool,
    crls: Vec<PathBuf>,
    ocsp: bool,
    ocsp_url: Option<url::Url>,
    allow_legacy_1024_bit_rsa: bool,
    json: bool,
}

/// How long an OCSP responder has to answer.
const OCSP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// The most of a responder's answer that is read.
const OCSP_MAX_RESPONSE: usize = 64 * 1024;

/// An HTTP client for OCSP responders: HTTPS verified against the `--trust` anchors only (a vsc
/// instance's responder is under its own root); plain HTTP, the usual OCSP transport, as it is
/// (the response is signed).
pub(crate) fn ocsp_client(anchors: &[Vec<u8>]) -> Result<reqwest::Client> {
    let roots = anchors
        .iter()
        .map(|der| reqwest::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .context("a --trust certificate cannot be used as a TLS root")?;
    reqwest::Client::builder()
        .tls_certs_only(roots)
        .timeout(OCSP_TIMEOUT)
        .user_agent(concat!("vsc/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the OCSP HTTP client")
}

/// What `--ocsp` fetched for one file: the response, the nonce sent and where from.
struct Fetched {
    response: Vec<u8>,
    nonce: [u8; 16],
    url: String,
}

/// Asks the signer's OCSP responder about the signing certificate of `xml`.
async fn fetch_ocsp(
    http: &reqwest::Client,
    xml: &str,
    options: &VerifyOptions<'_>,
    url: Option<&url::Url>,
) -> Result<Fetched> {
    let (cert, issuer) = signer_and_issuer(xml, options)
        .context("no single readable signing certificate to ask about")?;
    let issuer = issuer.context(
        "the signer's issuing CA is not among the --trust or --chain certificates, so no OCSP \
         response could be authenticated; give it with --chain",
    )?;
    let url = match url {
        Some(url) => url.to_string(),
        None => vsc_pki::ocsp::ocsp_urls(&cert)?
            .into_iter()
            .next()
            .context("the signing certificate names no OCSP responder; give one with --ocsp-url")?,
    };
    let id =
        vsc_pki::ocsp::CertId::for_certificate(&cert, &issuer, vsc_pki::ocsp::CertIdHash::Sha256)?;
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    let request = vsc_pki::ocsp::build_request(&[id], Some(&nonce));
    let mut answer = http
        .post(&url)
        .header("content-type", "application/ocsp-request")
        .header("accept", "application/ocsp-response")
        .body(request)
        .send()
        .await
        .with_context(|| format!("OCSP request to {url} failed"))?;
    if !answer.status().is_success() {
        anyhow::bail!("OCSP responder {url} answered HTTP {}", answer.status());
    }
    let mut response = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .with_context(|| format!("reading the answer of {url}"))?
    {
        response.extend_from_slice(&chunk);
        if response.len() > OCSP_MAX_RESPONSE {
            anyhow::bail!("OCSP responder {url} sent more than {OCSP_MAX_RESPONSE} bytes");
        }
    }
    Ok(Fetched {
        response,
        nonce,
        url,
    })
}

/// What to tell a user whose chain stops short of the anchor.
const CHAIN_HINT: &str = "give the issuing CA with --chain (a vsc instance publishes it at \
/ca/chain.pem, and in its data directory as ca/issuing.pem)";

async fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let mut bundle = match &args.trust {
        Some(path) => read_trust(path)?,
        None => TrustBundle::default(),
    };
    for path in &args.chains {
        for (i, der) in read_der_or_pem::<CertificateDer>(path, "CERTIFICATE")?
            .into_iter()
            .enumerate()
        {
            if certificate_is_self_issued(&der).is_none() {
                anyhow::bail!(
                    "{}: certificate {} is not a valid X.509 certificate",
                    path.display(),
                    i + 1
                );
            }
            bundle.intermediates.push(der);
        }
    }
    let mut crl_ders = Vec::new();
    for path in &args.crls {
        crl_ders.extend(read_der_or_pem::<CertificateRevocationListDer>(
            path, "X509 CRL",
        )?);
    }
    let anchor_refs: Vec<&[u8]> = bundle.anchors.iter().map(Vec::as_slice).collect();
    let intermediate_refs: Vec<&[u8]> = bundle.intermediates.iter().map(Vec::as_slice).collect();
    let crl_refs: Vec<&[u8]> = crl_ders.iter().map(Vec::as_slice).collect();
    let options = VerifyOptions {
        trusted_ca_der: anchor_refs.first().copied(),
        additional_trusted_ca_ders: anchor_refs.get(1..).unwrap_or_default(),
        intermediate_ca_ders: &intermediate_refs,
        crl_ders: &crl_refs,
        allow_legacy_1024_bit_rsa: args.allow_legacy_1024_bit_rsa,
        verification_time: None,
        ocsp: None,
    };
    let http = if args.ocsp {
        Some(ocsp_client(&bundle.anchors)?)
    } else {
        None
    };
    let mut all_valid = true;
    let mut reports = Vec::new();
    for file in &args.files {
        let xml = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let fetched = match &http {
            None => None,
            Some(http) => match fetch_ocsp(http, &xml, &options, args.ocsp_url.as_ref()).await {
                Ok(fetched) => Some(fetched),
                Err(e) => {
                    // Asked to check by OCSP and could not: the file is not shown valid.
                    all_valid = false;
                    let error = format!("OCSP check not possible: {e:#}");
                    if args.json {
                        reports.push(serde_json::json!({
                            "file": file,
                            "valid": false,
                            "verdict": Verdict::Invalid,
                            "error": error,
                        }));
                    } else {
                        println!("{}: NOT VERIFIED ({error})", file.display());
                    }
                    continue;
                }
            },
        };
        let options = VerifyOptions {
            ocsp: fetched.as_ref().map(|f| OcspEvidence {
                response_der: &f.response,
                nonce: Some(&f.nonce),
                url: Some(&f.url),
            }),
            ..options
        };
        match verify_prescription(&xml, &options) {
            Ok(report) => {
                let verdict = report.verdict();
                let valid = verdict == Verdict::Valid
                    || (verdict == Verdict::SignatureValidSignerNotTrusted && args.no_trust_check);
                all_valid &= valid;
                let hint = report
                    .get(Check::TrustedIssuer)
                    .filter(|c| {
                        c.outcome == Outcome::Failed
                            && c.message
                                .contains("neither a trusted CA nor a given intermediate")
                    })
                    .map(|_| CHAIN_HINT);
                if args.json {
                    reports.push(serde_json::json!({
                        "file": file,
                        "valid": valid,
                        "verdict": verdict,
                        "checks": report.checks,
                    }));
                } else {
                    match (verdict, report.first_failure()) {
                        (Verdict::Invalid, Some(f)) => {
                            println!("{}: INVALID ({})", file.display(), f.message);
                        }
                        (Verdict::SignatureValidSignerNotTrusted, _) if args.no_trust_check => {
                            println!(
                                "{}: signature valid, signer not trusted (accepted: --no-trust-check)",
                                file.display()
                            );
                        }
                        (Verdict::SignatureValidSignerNotTrusted, _) => println!(
                            "{}: signature valid, signer not trusted (no --trust CA was given; \
                             --no-trust-check accepts this)",
                            file.display()
                        ),
                        (verdict, _) => println!("{}: {}", file.display(), verdict.describe()),
                    }
                    for c in &report.checks {
                        let name = serde_json::to_value(c.check)?
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        println!("  {:<22} {:<8} {}", name, word(c.outcome), c.message);
                    }
                    if let Some(hint) = hint {
                        println!("  hint: {hint}");
                    }
                }
            }
            Err(e) => {
                all_valid = false;
                if args.json {
                    reports.push(serde_json::json!({
                        "file": file,
                        "valid": false,
                        "verdict": Verdict::Invalid,
                        "error": e.to_string(),
                    }));
                } else {
                    println!("{}: REFUSED, not checked: {e}", file.display());
                }
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `vsc eps preview`: what the agent sends for each file (its signature fragments, exactly as
/// `vsc eps sign` would have them built) rendered by the phone's own screen code.
fn preview(files: &[PathBuf], algorithm: &str, stamp_author_time: bool) -> Result<ExitCode> {
    let algorithm: SignatureAlgorithm = algorithm.parse()?;
    let now = time::OffsetDateTime::now_utc();
    let mut shown: Vec<(String, Vec<String>)> = Vec::new();
    let mut refused: Vec<(String, String)> = Vec::new();
    for (n, file) in files.iter().enumerate() {
        // The ids `vsc eps sign` gives the phone.
        let id = format!("{:03}", n + 1);
        eprintln!("{id} = {}", file.display());
        let xml = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let xml = if stamp_author_time {
            match vsc_agent::eps::stamp_author_time(&xml, now) {
                Ok(xml) => xml,
                Err(reason) => {
                    refused.push((id, format!("cannot be stamped: {reason}")));
                    continue;
                }
            }
        } else {
            xml
        };
        let screen = vsc_eps::sign::prepare(&xml, algorithm)
            .map_err(|e| format!("the agent would not send it: {e}"))
            .and_then(|prepared| {
                vsc_eps::screen::prescription(&prepared.canonical_fragments, algorithm)
            });
        match screen {
            Ok(screen) => shown.push((id, screen.lines)),
            Err(reason) => refused.push((id, reason)),
        }
    }
    let header = [vsc_eps::screen::prescriptions_header(
        files.len(),
        algorithm,
    )];
    let items: Vec<vsc_eps::screen::ScreenItem<'_>> = shown
        .iter()
        .map(|(id, lines)| vsc_eps::screen::ScreenItem { id, lines })
        .collect();
    let refused_refs: Vec<(&str, &str)> = refused
        .iter()
        .map(|(id, reason)| (id.as_str(), reason.as_str()))
        .collect();
    for line in vsc_eps::screen::render(&header, &items, &refused_refs) {
        println!("{line}");
    }
    Ok(if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
