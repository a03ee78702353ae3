//! `vsc bench ocsp`: OCSP answers per second and their latency, against the real responder
//! (`/ca/ocsp`) over loopback TLS.
//!
//! Each request is what a relying party that wants a fresh answer sends: a `POST` with one
//! `CertID` (SHA-256) of a live card's authentication certificate and a fresh 16-byte nonce, so
//! no cache can answer it and every request costs the server a status read and one ECDSA P-256
//! signature by the delegated responder key. The first answer is verified as a relying party
//! would (signer, `CertID`, freshness, nonce) before anything is timed; later answers are only
//! checked for HTTP 200, so the load generator spends its time sending.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use vsc_pki::ocsp::{self, CertId, CertIdHash, CertStatus};

use crate::bench::percentile;
use crate::lab::{CLINICIAN, Lab};

/// `vsc bench ocsp`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  vsc bench ocsp\n  vsc bench ocsp --requests 5000 \
--concurrency 32 --json"
)]
pub struct OcspBench {
    /// Requests in each run (sequential, then concurrent), after 50 not counted.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    requests: u32,
    /// Requests in flight at once in the concurrent run.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// One run's figures.
#[derive(Debug, Serialize)]
struct OcspRun {
    mode: String,
    concurrency: u32,
    requests: usize,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// What every request needs.
struct Target {
    http: reqwest::Client,
    url: url::Url,
    cert_id: CertId,
}

impl Target {
    /// The DER of a request with a fresh nonce.
    fn request(&self) -> Result<(Vec<u8>, [u8; 16])> {
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        Ok((
            ocsp::build_request(std::slice::from_ref(&self.cert_id), Some(&nonce)),
            nonce,
        ))
    }

    /// One request; returns the response DER and its latency.
    async fn ask(&self) -> Result<(Vec<u8>, [u8; 16], Duration)> {
        let (body, nonce) = self.request()?;
        let start = Instant::now();
        let answer = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/ocsp-request")
            .body(body)
            .send()
            .await
            .context("the OCSP request failed")?;
        if !answer.status().is_success() {
            bail!("the responder answered HTTP {}", answer.status());
        }
        let der = answer.bytes().await?.to_vec();
        Ok((der, nonce, start.elapsed()))
    }
}

fn summarise(
    mode: &str,
    concurrency: u32,
    mut latencies: Vec<Duration>,
    elapsed: Duration,
) -> OcspRun {
    latencies.sort();
    let seconds = elapsed.as_secs_f64();
    OcspRun {
        mode: mode.into(),
        concurrency,
        requests: latencies.len(),
        seconds,
        per_second: latencies.len() as f64 / seconds,
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    }
}

/// Runs `vsc bench ocsp`.
pub async fn run(args: OcspBench) -> Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    eprintln!("starting a server and enrolling a simulated phone…");
    let lab = Lab::start(tmp.path(), "127.0.0.1:0".parse()?, |_| {}).await?;
    let (_uid, card) = lab.register("Bench", "Relying", &[CLINICIAN]).await?;
    let home = lab
        .enrol_phone(&tmp.path().join("phone"), &card.code.url)
        .await?;
    let enrolment = home
        .enrolment()?
        .context("the simulated phone holds no enrolment")?;
    let cert = vsc_pki::pem::pem_to_der(&enrolment.auth_certificate_pem)?;
    // The chain starts with the issuing CA.
    let issuer = vsc_pki::pem::pem_to_der(&enrolment.ca_chain_pem)?;
    let root = vsc_pki::pem::pem_to_der(&lab.root_pem())?;
    let target = Arc::new(Target {
        http: crate::eps::ocsp_client(&[root])?,
        url: lab.url.join("ca/ocsp")?,
        cert_id: CertId::for_certificate(&cert, &issuer, CertIdHash::Sha256)?,
    });

    // The answer is right before it is fast.
    let (der, nonce, _) = target.ask().await?;
    let verified = ocsp::verify_response(
        &der,
        &cert,
        &issuer,
        Some(&nonce),
        time::OffsetDateTime::now_utc(),
    )
    .context("the responder's answer does not verify")?;
    if !matches!(verified.status, CertStatus::Good) {
        bail!(
            "the live card's certificate is not `good`: {:?}",
            verified.status
        );
    }
    for _ in 0..50 {
        target.ask().await?;
    }

    let n = args.requests as usize;
    eprintln!("sequential: {n} requests…");
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        latencies.push(target.ask().await?.2);
    }
    let sequential = summarise("sequential", 1, latencies, start.elapsed());

    eprintln!("concurrent: {n} requests, {} at a time…", args.concurrency);
    let start = Instant::now();
    let per_task = n.div_ceil(args.concurrency as usize);
    let mut tasks = Vec::new();
    for t in 0..args.concurrency as usize {
        let target = target.clone();
        let count = per_task.min(n.saturating_sub(t * per_task));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                latencies.push(target.ask().await?.2);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let concurrent = summarise("concurrent", args.concurrency, latencies, start.elapsed());
    lab.stop().await?;

    let runs = [sequential, concurrent];
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        println!(
            "| mode | in flight | requests | per second | p50 ms | p90 ms | p99 ms | max ms |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in &runs {
            println!(
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.mode,
                r.concurrency,
                r.requests,
                r.per_second,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
