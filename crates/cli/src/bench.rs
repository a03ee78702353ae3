//! `vsc bench login`: complete sign-ins per second and their latency, against the real server
//! over loopback TLS, with simulated phones.
//!
//! One sign-in is what a workstation and a phone do for real: the agent opens a request, the
//! server pushes it to the phone over its event stream, the phone signs the approval, the agent
//! collects the session ticket. The server, the agents and the phones share this machine's
//! cores, so the figures are a floor for a server with a machine of its own.
//!
//! The simulated phones keep their keys unlocked: a real phone runs its passcode KDF on its own
//! processor, and counting thousands of phones' KDFs against one server would measure the wrong
//! thing.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use vsc_agent::{ServerLink, ServerTrust};
use vsc_authenticator::{DeviceEvent, Listener, PhoneLink};
use vsc_proto::signin::AuthContext;

use crate::lab::{self, CLINICIAN, Lab};

/// `vsc bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Complete sign-ins (request → push → approval → ticket) per second, sequential and concurrent.
    Login(LoginBench),
    /// A batch of prescriptions signed end to end (agent → server → phone → back), per batch.
    Sign(crate::bench_sign::SignBench),
}

#[derive(Debug, Args)]
struct LoginBench {
    /// Simulated phones (one card each); also the concurrency of the concurrent run.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=256))]
    phones: u32,
    /// Sign-ins in the sequential run.
    #[arg(long, default_value_t = 200)]
    sequential: u32,
    /// Seconds of the concurrent run (and of the paced run).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    seconds: u64,
    /// Also run paced at this many sign-ins per second (default: half the concurrent rate).
    #[arg(long)]
    rate: Option<f64>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// One run's figures.
#[derive(Debug, Serialize)]
struct RunResult {
    mode: String,
    concurrency: u32,
    sign_ins: usize,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// A simulated workstation + phone pair.
struct Pair {
    uid: String,
    agent: ServerLink,
    phone: PhoneLink,
    listener: Listener,
    keys: vsc_authenticator::UnlockedKeys,
    context: AuthContext,
}

impl Pair {
    /// One complete sign-in; returns its latency.
    async fn sign_in(&mut self) -> Result<Duration> {
        let start = Instant::now();
        let created = self.agent.create_request(&self.uid, &self.context).await?;
        let request = loop {
            match tokio::time::timeout(Duration::from_secs(10), self.listener.next()).await {
                Ok(Ok(DeviceEvent::Request(r))) if r.request_id == created.request_id => break r,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => bail!("the phone received no request within 10 s"),
            }
        };
        self.phone
            .approve_with_keys(&request, created.number, &self.keys)
            .await?;
        let outcome = self
            .agent
            .poll(&created.request_id, &created.poll_secret, 10)
            .await?;
        if outcome.ticket.is_none() {
            bail!("sign-in ended {} without a ticket", outcome.state);
        }
        Ok(start.elapsed())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn summarise(
    mode: &str,
    concurrency: u32,
    mut latencies: Vec<Duration>,
    elapsed: Duration,
) -> RunResult {
    latencies.sort();
    let secs = elapsed.as_secs_f64();
    RunResult {
        mode: mode.into(),
        concurrency,
        sign_ins: latencies.len(),
        seconds: secs,
        per_second: latencies.len() as f64 / secs,
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    }
}

/// Runs every pair in its own task for `seconds`, each waiting `pace` between starts (zero: as
/// fast as it can).
async fn concurrent(
    pairs: Vec<Pair>,
    seconds: u64,
    pace: Duration,
) -> Result<(Vec<Pair>, Vec<Duration>, Duration)> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, mut pair) in pairs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Spread paced workers over the interval so they do not start in step.
            let mut next = Instant::now() + pace.mul_f64((i as f64 * 0.618_034) % 1.0);
            while Instant::now() < deadline {
                if !pace.is_zero() {
                    tokio::time::sleep_until(next.into()).await;
                    next += pace;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                latencies.push(pair.sign_in().await?);
            }
            anyhow::Ok((pair, latencies))
        }));
    }
    let mut pairs = Vec::new();
    let mut all = Vec::new();
    for t in tasks {
        let (pair, latencies) = t.await.context("a benchmark worker failed")??;
        pairs.push(pair);
        all.extend(latencies);
    }
    Ok((pairs, all, start.elapsed()))
}

async fn login_bench(args: LoginBench) -> Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    eprintln!(
        "starting a server and enrolling {} simulated phones…",
        args.phones
    );
    let lab = Lab::start(tmp.path(), "127.0.0.1:0".parse()?, |cfg| {
        // The per-card request cap guards against abuse; a benchmark signs one card in many times.
        cfg.signin.requests_per_window = i64::MAX;
    })
    .await?;
    let passcode = lab::lab_passcode()?;
    let trust = ServerTrust::RootPem(lab.root_pem());
    let mut pairs = Vec::new();
    for i in 0..args.phones {
        let (uid, card) = lab
            .register("Bench", &format!("Clinician {i}"), &[CLINICIAN])
            .await?;
        let home = lab
            .enrol_phone(
                &tmp.path().join("phones").join(format!("p{i}")),
                &card.code.url,
            )
            .await?;
        let phone = PhoneLink::new(&home)?;
        let mut listener = phone.listener();
        // Connect the event stream before the first request, as an idle phone would be.
        let _ = tokio::time::timeout(Duration::from_millis(50), listener.next()).await;
        let keys = home.open_keystore()?.unlock(&passcode)?;
        pairs.push(Pair {
            uid,
            agent: ServerLink::new(&lab.url, &trust)?,
            phone,
            listener,
            keys,
            context: AuthContext {
                workstation_id: format!("bench-ws-{i}"),
                workstation_name: format!("BENCH-{i:03}"),
                client_address: "127.0.0.1".into(),
                agent_version: format!("vsc-bench/{}", env!("CARGO_PKG_VERSION")),
                purpose: "Benchmark sign-in".into(),
            },
        });
    }
    // Warm up every connection (TLS handshakes, device tokens).
    for pair in &mut pairs {
        pair.sign_in().await?;
    }

    let mut results = Vec::new();
    eprintln!("sequential: {} sign-ins…", args.sequential);
    let start = Instant::now();
    let mut latencies = Vec::new();
    for _ in 0..args.sequential {
        latencies.push(pairs[0].sign_in().await?);
    }
    results.push(summarise("sequential", 1, latencies, start.elapsed()));

    eprintln!("concurrent: {} phones for {} s…", args.phones, args.seconds);
    let (pairs, latencies, elapsed) = concurrent(pairs, args.seconds, Duration::ZERO).await?;
    let max = summarise("concurrent", args.phones, latencies, elapsed);
    let rate = args.rate.unwrap_or(max.per_second / 2.0).max(1.0);
    results.push(max);

    eprintln!("paced: {rate:.0} sign-ins/s for {} s…", args.seconds);
    let pace = Duration::from_secs_f64(f64::from(args.phones) / rate);
    let (_pairs, latencies, elapsed) = concurrent(pairs, args.seconds, pace).await?;
    results.push(summarise(
        &format!("paced {rate:.0}/s"),
        args.phones,
        latencies,
        elapsed,
    ));

    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "{:<16} {:>5} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8}",
            "mode",
            "conc",
            "sign-ins",
            "seconds",
            "per second",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms"
        );
        for r in &results {
            println!(
                "{:<16} {:>5} {:>9} {:>8.1} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                r.mode,
                r.concurrency,
                r.sign_ins,
                r.seconds,
                r.per_second,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms
            );
        }
    }
    let events = vsc_store::audit::verify(lab.state.store()).await?;
    if events.first_broken.is_some() {
        bail!("the audit chain broke under load");
    }
    eprintln!("audit log intact: {} events", events.events);
    lab.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `vsc bench`.
pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    match args.command {
        BenchCommand::Login(l) => login_bench(l).await,
        BenchCommand::Sign(s) => crate::bench_sign::run(s).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 0.5), 51.0);
        assert_eq!(percentile(&d, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
