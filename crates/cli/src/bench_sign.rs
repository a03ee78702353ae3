//! `vsc bench sign`: a batch of prescriptions signed end to end — identity agent → server →
//! simulated phone (review, passcode, one RSA signature per prescription) → server
//! verification → agent (signatures placed and re-verified) — timed per batch.
//!
//! Unlike `vsc bench login`, the phone here unlocks its keystore for every batch, as a real
//! phone does after the prescriber's passcode: that Argon2id step (64 MiB, 3 passes) is machine
//! time on the phone and is counted. Human time (reading, typing) is not.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use vsc_agent::eps::PrescriptionToSign;
use vsc_agent::{Agent, AgentConfig, ServerTrust};
use vsc_eps::sign::SignatureAlgorithm;

use crate::lab::{self, CLINICIAN, Lab};

/// A corpus prescription compiled in, used when no directory is given.
const SAMPLE: &str = include_str!(
    "../../eps/tests/data/corpus/primary-care__acute__nominated-pharmacy__medical-prescriber.xml"
);

/// `vsc bench sign`.
#[derive(Debug, Args)]
pub struct SignBench {
    /// Prescriptions per batch (one approval on the phone).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    batch: u32,
    /// Batches to time (after one warm-up batch).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// `RS1` or `RS256`.
    #[arg(long, default_value = "RS1", value_parser = ["RS1", "RS256"])]
    algorithm: String,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct SignResult {
    algorithm: String,
    batch: u32,
    runs: u32,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    per_prescription_ms: f64,
}

/// Runs `vsc bench sign`.
pub async fn run(args: SignBench) -> Result<ExitCode> {
    let algorithm: SignatureAlgorithm = args
        .algorithm
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown algorithm"))?;
    let tmp = tempfile::tempdir()?;
    let lab = Lab::start(tmp.path(), "127.0.0.1:0".parse()?, |cfg| {
        cfg.signing.max_batch = 1000;
    })
    .await?;
    let (uid, card) = lab.register("Bench", "Prescriber", &[CLINICIAN]).await?;
    let phone_dir = tmp.path().join("phone");
    lab.enrol_phone(&phone_dir, &card.code.url).await?;
    let home = vsc_authenticator::Home::open(&phone_dir)?;
    lab::follow_server(&home, &lab.url)?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    // The simulated phone reads the number the agent shows.
    let screen = vsc_authenticator::WorkstationScreen::new();
    let phone = tokio::spawn(vsc_authenticator::auto_approve(
        home,
        lab::lab_passcode()?,
        screen.clone(),
        |_| {},
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));

    let mut config = AgentConfig::new(
        lab.url.clone(),
        ServerTrust::RootPem(lab.root_pem()),
        vsc_agent::Workstation::new("bench-ws", "BENCH-WORKSTATION"),
    );
    config.registration = Some(lab.registered_workstation("BENCH-WORKSTATION").await?);
    config.on_event = Some(lab::showing_numbers(screen, None));
    let agent = Agent::new(config)?;
    agent.set_default_uid(Some(uid));
    agent.get_ticket().await.context("sign in")?;

    let now = time::OffsetDateTime::now_utc();
    let sample = vsc_agent::eps::stamp_author_time(SAMPLE, now).map_err(anyhow::Error::msg)?;
    let batch: Vec<PrescriptionToSign> = (0..args.batch)
        .map(|i| PrescriptionToSign {
            id: format!("rx-{i}"),
            xml: sample.clone(),
        })
        .collect();
    if !args.json {
        eprintln!(
            "signing {} batches of {} prescriptions ({}) after one warm-up…",
            args.runs, args.batch, args.algorithm
        );
    }
    let mut times = Vec::new();
    for run in 0..=args.runs {
        let started = Instant::now();
        let signed = agent
            .sign_prescriptions(algorithm, batch.clone(), false)
            .await?;
        let took = started.elapsed();
        if signed.signed.len() != batch.len() {
            bail!(
                "only {} of {} prescriptions were signed: {:?}",
                signed.signed.len(),
                batch.len(),
                signed.failed_signatures.first()
            );
        }
        if run > 0 {
            times.push(took);
        }
    }
    let _ = stop_tx.send(true);
    let _ = phone.await;
    let _ = agent.logout().await;
    lab.stop().await?;

    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(times[times.len() / 2]);
    let result = SignResult {
        algorithm: args.algorithm.clone(),
        batch: args.batch,
        runs: args.runs,
        median_ms: median,
        min_ms: ms(times[0]),
        max_ms: ms(times[times.len() - 1]),
        per_prescription_ms: median / f64::from(args.batch),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "batch of {} ({}): median {:.0} ms (min {:.0}, max {:.0}; {:.1} ms per prescription)",
            result.batch,
            result.algorithm,
            result.median_ms,
            result.min_ms,
            result.max_ms,
            result.per_prescription_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
