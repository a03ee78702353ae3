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
//!
//! `vsc bench flood` measures what a flood of unauthenticated bad requests does to sign-ins:
//! sign-in latency alone, then the same sign-ins while other tasks send bad requests (unknown
//! sign-in requests, made-up device tokens and tickets) to the same server over loopback. Those
//! refusals are audited as counts (`refusals.aggregated`), not one fsync'd row each, so the
//! aim is a sign-in p99 under the flood within twice the p99 without it.

use std::process::ExitCode;
use std::time::{Duration, Instant};
use vsc_proto::routes;

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
    /// Sign-in latency with and without a flood of unauthenticated bad requests on loopback.
    Flood(FloodBench),
    /// OCSP answers per second and their latency (`/ca/ocsp`, a fresh nonce each, verified).
    Ocsp(crate::bench_ocsp::OcspBench),
    /// Run a benchmark server on its own (sandbox mode, no per-card request cap) for
    /// `vsc bench login --server` to load from another process; several on one PostgreSQL
    /// database are the nodes of one instance.
    Server(ServerBench),
}

#[derive(Debug, Args)]
#[command(
    long_about = "Runs the lab server of the benchmarks in this process until Ctrl-C or SIGTERM: \
the real vsc server in sandbox mode (simulated phones accepted), without the per-card cap on \
sign-in requests, its first RA Manager enrolled on a simulated phone in DATA/phones. Prints its \
URL, its root CA file and the `vsc bench login` command that loads it, then `ready`.\n\n\
For two nodes on PostgreSQL, start the first with --database, copy its data directory once it \
is ready (`cp -a DATA DATA2`), start the second on DATA2 with the same --database and another \
--listen, and pass both URLs to `vsc bench login --server`.",
    after_help = "Examples:\n  vsc bench server --data /tmp/vsc-bench --listen 127.0.0.1:8443\n  \
vsc bench login --server https://127.0.0.1:8443 --ca-file /tmp/vsc-bench/server/ca/root.pem --lab /tmp/vsc-bench"
)]
struct ServerBench {
    /// The lab directory: the server's data (DATA/server) and the RA Manager's simulated phone.
    #[arg(long, default_value = "./vsc-bench")]
    data: std::path::PathBuf,
    /// Address to listen on (loopback: the load generator runs on the same machine).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: std::net::SocketAddr,
    /// Run on this PostgreSQL database (default: embedded SQLite in DATA/server).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

#[derive(Debug, Args)]
struct FloodBench {
    /// Bad requests sent during the flood run.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    bad: u32,
    /// Concurrent senders of bad requests.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    senders: u32,
    /// Bad requests per second, spread evenly over the flood (0: as fast as the senders can).
    /// The default spreads 10,000 over 10 s, so that several hundred sign-ins run inside the
    /// flood and their p99 is a percentile rather than the slowest one.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    rate: u32,
    /// Sign-ins measured without the flood (during it: as many as fit while it lasts, at most
    /// ten times as many).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    sign_ins: u32,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// What `vsc bench flood` found.
#[derive(Debug, Serialize)]
struct FloodResult {
    without_flood: RunResult,
    with_flood: RunResult,
    bad_requests: u32,
    /// The pace asked for (bad requests per second; 0 means as fast as possible).
    rate: u32,
    flood_seconds: f64,
    bad_per_second: f64,
    audit_rows_added_by_flood: i64,
    p99_ratio: f64,
    within_2x: bool,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Measures complete sign-ins (the workstation opens a request, the server pushes it \
to the phone, the phone approves, the workstation collects the ticket) over real TLS on loopback \
with simulated phones: one pair signing in after another (sequential), every pair as fast as it \
can (concurrent), then every pair held to a rate (paced). Prints sign-ins per second, latency \
percentiles and the server's CPU time per sign-in.\n\nBy default the server runs in this \
process (on SQLite in a temporary directory, or --database). With --server it loads a \
`vsc bench server` running in another process (several --server: the nodes of one instance), \
so that the figures and the CPU time are the server's own.",
    after_help = "Examples:\n  vsc bench login\n  vsc bench login --phones 8 --seconds 20 --json\n  \
vsc bench server --data /tmp/b --listen 127.0.0.1:8443 &\n  \
vsc bench login --server https://127.0.0.1:8443 --ca-file /tmp/b/server/ca/root.pem --lab /tmp/b"
)]
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
    /// Run the benchmark's server on this PostgreSQL database (it must exist and be empty;
    /// default: embedded SQLite in a temporary directory).
    #[arg(long, value_name = "URL", conflicts_with = "server")]
    database: Option<String>,
    /// Load a server running in another process (`vsc bench server`) instead of one in this
    /// process. Repeat for the nodes of one instance: pair N's workstation talks to node N and
    /// its phone to the next node, so every sign-in crosses nodes.
    #[arg(long, value_name = "URL", requires_all = ["ca_file", "lab"])]
    server: Vec<url::Url>,
    /// The instance's root CA (PEM), with --server: DATA/server/ca/root.pem of `vsc bench server`.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// The lab directory of `vsc bench server --data` (its RA Manager's simulated phone
    /// registers the benchmark's people), with --server.
    #[arg(long, value_name = "DIR")]
    lab: Option<std::path::PathBuf>,
    /// Bearer token file for the servers' GET /metrics (when they were started with one).
    #[arg(long, value_name = "FILE")]
    metrics_token_file: Option<std::path::PathBuf>,
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
    /// CPU seconds the server processes used per sign-in, in milliseconds (from their
    /// `vsc_process_cpu_seconds_total`). In-process, the server shares its process with the
    /// phones and agents, so the figure counts them too.
    server_cpu_ms_per_sign_in: Option<f64>,
}

/// A simulated workstation + phone pair.
struct Pair {
    uid: String,
    agent: ServerLink,
    phone: PhoneLink,
    listener: Listener,
    keys: vsc_authenticator::UnlockedKeys,
    context: AuthContext,
    /// The registered workstation that signs the request and its collection.
    workstation: std::sync::Arc<vsc_agent::RegisteredWorkstation>,
}

impl Pair {
    /// One complete sign-in; returns its latency.
    async fn sign_in(&mut self) -> Result<Duration> {
        let start = Instant::now();
        let created = self
            .agent
            .create_request(&self.uid, &self.context, Some(&self.workstation))
            .await?;
        let collect = self
            .workstation
            .collect_signature(&created, &self.agent.origin())?;
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
            .poll(
                &created.request_id,
                &created.poll_secret,
                10,
                Some(&collect),
            )
            .await?;
        if outcome.ticket.is_none() {
            bail!("sign-in ended {} without a ticket", outcome.state);
        }
        Ok(start.elapsed())
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
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
        server_cpu_ms_per_sign_in: None,
    }
}

/// Reads the servers' CPU seconds from their `/metrics`.
struct CpuMeter {
    clients: Vec<vsc_https::Client>,
    token: Option<String>,
}

impl CpuMeter {
    /// The CPU seconds all servers have used so far; `None` when one does not tell.
    async fn read(&self) -> Option<f64> {
        let mut total = 0.0;
        for client in &self.clients {
            let text = match client
                .get_text(routes::METRICS, self.token.as_deref())
                .await
            {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cannot read the server's CPU time from /metrics: {e}");
                    return None;
                }
            };
            total += text.lines().find_map(|l| {
                l.strip_prefix("vsc_process_cpu_seconds_total ")
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })?;
        }
        Some(total)
    }

    /// Sets `result`'s CPU per sign-in from a reading taken before its run.
    async fn finish(&self, before: Option<f64>, result: &mut RunResult) {
        if let (Some(before), Some(after)) = (before, self.read().await)
            && result.sign_ins > 0
        {
            result.server_cpu_ms_per_sign_in =
                Some((after - before) * 1000.0 / result.sign_ins as f64);
        }
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
    let (lab, servers) = if args.server.is_empty() {
        eprintln!(
            "starting a server and enrolling {} simulated phones…",
            args.phones
        );
        let database = args.database.clone();
        let lab = Lab::start(tmp.path(), "127.0.0.1:0".parse()?, |cfg| {
            // The per-card request cap guards against abuse; a benchmark signs one card in many times.
            cfg.signin.requests_per_window = i64::MAX;
            cfg.database = database;
        })
        .await?;
        let url = lab.url.clone();
        (lab, vec![url])
    } else {
        let (Some(ca_file), Some(lab_dir)) = (&args.ca_file, &args.lab) else {
            bail!("--server needs --ca-file and --lab (see `vsc bench server --help`)");
        };
        let root_pem = std::fs::read_to_string(ca_file)
            .with_context(|| format!("cannot read the root CA {}", ca_file.display()))?;
        eprintln!(
            "enrolling {} simulated phones with {}…",
            args.phones,
            args.server
                .iter()
                .map(url::Url::as_str)
                .collect::<Vec<_>>()
                .join(" and ")
        );
        let lab = Lab::connect(lab_dir, args.server[0].clone(), root_pem).await?;
        (lab, args.server.clone())
    };
    let token = match &args.metrics_token_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let meter = CpuMeter {
        clients: servers
            .iter()
            .map(|u| vsc_https::Client::with_root_pem(u.clone(), &lab.root_pem()))
            .collect::<Result<_, _>>()?,
        token,
    };
    let passcode = lab::lab_passcode()?;
    let trust = ServerTrust::RootPem(lab.root_pem());
    // Names differ per run: a server in another process keeps the people of earlier runs.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 100_000);
    let mut pairs = Vec::new();
    for i in 0..args.phones {
        let n = servers.len();
        let (uid, card) = lab
            .register("Bench", &format!("Clinician {run_id}-{i}"), &[CLINICIAN])
            .await?;
        let home = lab
            .enrol_phone(
                &tmp.path().join("phones").join(format!("p{i}")),
                &card.code.url,
            )
            .await?;
        // With several nodes the phone listens on the node after its workstation's.
        lab::follow_server(&home, &servers[(i as usize + 1) % n])?;
        let phone = PhoneLink::new(&home)?;
        let mut listener = phone.listener();
        // Connect the event stream before the first request, as an idle phone would be.
        let _ = tokio::time::timeout(Duration::from_millis(50), listener.next()).await;
        let keys = phone.unlock_keys(&passcode).await?;
        pairs.push(Pair {
            uid,
            agent: ServerLink::new(&servers[i as usize % n], &trust)?,
            phone,
            listener,
            keys,
            context: AuthContext {
                workstation_id: format!("bench-ws-{i}"),
                workstation_name: format!("BENCH-{i:03}"),
                client_address: "127.0.0.1".into(),
                agent_version: format!("vsc-bench/{}", env!("CARGO_PKG_VERSION")),
                purpose: "Benchmark sign-in".into(),
                ..AuthContext::default()
            },
            workstation: lab.registered_workstation(&format!("BENCH-{i:03}")).await?,
        });
    }
    // Warm up every connection (TLS handshakes, device tokens).
    for pair in &mut pairs {
        pair.sign_in().await?;
    }

    let mut results = Vec::new();
    eprintln!("sequential: {} sign-ins…", args.sequential);
    let cpu = meter.read().await;
    let start = Instant::now();
    let mut latencies = Vec::new();
    for _ in 0..args.sequential {
        latencies.push(pairs[0].sign_in().await?);
    }
    let mut result = summarise("sequential", 1, latencies, start.elapsed());
    meter.finish(cpu, &mut result).await;
    results.push(result);

    eprintln!("concurrent: {} phones for {} s…", args.phones, args.seconds);
    let cpu = meter.read().await;
    let (pairs, latencies, elapsed) = concurrent(pairs, args.seconds, Duration::ZERO).await?;
    let mut max = summarise("concurrent", args.phones, latencies, elapsed);
    meter.finish(cpu, &mut max).await;
    let rate = args.rate.unwrap_or(max.per_second / 2.0).max(1.0);
    results.push(max);

    eprintln!("paced: {rate:.0} sign-ins/s for {} s…", args.seconds);
    let pace = Duration::from_secs_f64(f64::from(args.phones) / rate);
    let cpu = meter.read().await;
    let (_pairs, latencies, elapsed) = concurrent(pairs, args.seconds, pace).await?;
    let mut paced = summarise(
        &format!("paced {rate:.0}/s"),
        args.phones,
        latencies,
        elapsed,
    );
    meter.finish(cpu, &mut paced).await;
    results.push(paced);

    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "{:<16} {:>5} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "mode",
            "conc",
            "sign-ins",
            "seconds",
            "per second",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "server cpu"
        );
        for r in &results {
            println!(
                "{:<16} {:>5} {:>9} {:>8.1} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10}",
                r.mode,
                r.concurrency,
                r.sign_ins,
                r.seconds,
                r.per_second,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms,
                r.server_cpu_ms_per_sign_in
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms"))
            );
        }
        if args.server.is_empty() {
            eprintln!(
                "server cpu: per sign-in, of this whole process (server, phones and agents share it); \
run `vsc bench server` and `vsc bench login --server` for the server alone"
            );
        }
    }
    if let Ok(state) = lab.local() {
        let events = vsc_store::audit::verify(state.store()).await?;
        if events.first_broken.is_some() {
            bail!("the audit chain broke under load");
        }
        eprintln!("audit log intact: {} events", events.events);
    } else {
        eprintln!(
            "check the servers' audit chain with `vsc audit verify --data DIR/server` (and --database for PostgreSQL)"
        );
    }
    lab.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// `vsc bench server`: the lab server alone, until a stop signal.
async fn server_bench(args: ServerBench) -> Result<ExitCode> {
    if !args.listen.ip().is_loopback() {
        bail!("the benchmark server listens on loopback only; use 127.0.0.1 or [::1]");
    }
    crate::logging::init(crate::logging::LogFormat::Text);
    let stop = crate::signals::stop_signals()?;
    let database = args.database.clone();
    let lab = Lab::start(&args.data, args.listen, |cfg| {
        cfg.signin.requests_per_window = i64::MAX;
        cfg.database = database;
    })
    .await?;
    let ca_file = args.data.join("server").join("ca").join("root.pem");
    println!("vsc bench server listening on {}", lab.url);
    println!("root CA: {}", ca_file.display());
    println!(
        "load it from another terminal:\n  vsc bench login --server {} --ca-file {} --lab {}",
        lab.url.as_str().trim_end_matches('/'),
        ca_file.display(),
        args.data.display()
    );
    println!("ready");
    stop.await;
    eprintln!("stopping…");
    lab.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// One bad request of kind `i % 3`: an unknown sign-in request (with a long made-up id), a
/// made-up device token, a made-up session ticket. Each is refused before authentication.
async fn bad_request(client: &vsc_https::Client, i: u32) -> bool {
    let junk = format!("{i:08x}{}", "z".repeat(200));
    match i % 3 {
        0 => client
            .get_json_with_headers::<serde_json::Value>(
                &format!("{}?wait=0", routes::fill(routes::AUTH_REQUEST, &junk)),
                &[(routes::headers::REQUEST_SECRET, junk.as_str())],
            )
            .await
            .is_err(),
        1 => client
            .get_json::<serde_json::Value>(routes::DEVICE_REQUESTS, Some(&junk))
            .await
            .is_err(),
        _ => client
            .get_json::<serde_json::Value>(routes::SESSION, Some(&junk))
            .await
            .is_err(),
    }
}

/// The audit log's events (sequence number and outcome), read through its export.
async fn audit_outcomes(lab: &Lab) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    vsc_store::audit::export(lab.local()?.store(), &mut out).await?;
    let mut events = Vec::new();
    for line in String::from_utf8(out)?.lines() {
        let e: serde_json::Value = serde_json::from_str(line)?;
        let seq = e["seq"].as_i64().context("an exported event without seq")?;
        events.push((seq, e["outcome"].as_str().unwrap_or_default().to_owned()));
    }
    Ok(events)
}

async fn flood_bench(args: FloodBench) -> Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    eprintln!("starting a server and enrolling a simulated phone…");
    let lab = Lab::start(tmp.path(), "127.0.0.1:0".parse()?, |cfg| {
        cfg.signin.requests_per_window = i64::MAX;
    })
    .await?;
    let passcode = lab::lab_passcode()?;
    let trust = ServerTrust::RootPem(lab.root_pem());
    let (uid, card) = lab
        .register("Bench", "Flood Clinician", &[CLINICIAN])
        .await?;
    let home = lab
        .enrol_phone(&tmp.path().join("phones").join("p0"), &card.code.url)
        .await?;
    let phone = PhoneLink::new(&home)?;
    let mut listener = phone.listener();
    let _ = tokio::time::timeout(Duration::from_millis(50), listener.next()).await;
    let keys = phone.unlock_keys(&passcode).await?;
    let mut pair = Pair {
        uid,
        agent: ServerLink::new(&lab.url, &trust)?,
        phone,
        listener,
        keys,
        context: AuthContext {
            workstation_id: "bench-ws-flood".into(),
            workstation_name: "BENCH-FLOOD".into(),
            client_address: "127.0.0.1".into(),
            agent_version: format!("vsc-bench/{}", env!("CARGO_PKG_VERSION")),
            purpose: "Benchmark sign-in".into(),
            ..AuthContext::default()
        },
        workstation: lab.registered_workstation("BENCH-FLOOD").await?,
    };
    for _ in 0..5 {
        pair.sign_in().await?;
    }

    eprintln!("without flood: {} sign-ins…", args.sign_ins);
    let start = Instant::now();
    let mut latencies = Vec::new();
    for _ in 0..args.sign_ins {
        latencies.push(pair.sign_in().await?);
    }
    let without = summarise("without flood", 1, latencies, start.elapsed());

    eprintln!(
        "with flood: {} bad requests from {} senders ({}) while signing in…",
        args.bad,
        args.senders,
        if args.rate == 0 {
            "as fast as they can".to_owned()
        } else {
            format!("{} a second", args.rate)
        }
    );
    let fingerprint = lab.local()?.ca().root_fingerprint().to_hex();
    let rows_before = audit_outcomes(&lab).await?.last().map_or(0, |e| e.0);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let flood_start = Instant::now();
    // Request i leaves no earlier than i/rate seconds after the start.
    let pace = (args.rate > 0).then(|| Duration::from_secs(1) / args.rate);
    let mut senders = Vec::new();
    for _ in 0..args.senders {
        let client = vsc_https::Client::with_fingerprint(lab.url.clone(), &fingerprint)?;
        let (next, total) = (next.clone(), args.bad);
        let flood_start = tokio::time::Instant::from_std(flood_start);
        senders.push(tokio::spawn(async move {
            let mut refused = 0u32;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if let Some(pace) = pace {
                    tokio::time::sleep_until(flood_start + pace * i).await;
                }
                if bad_request(&client, i).await {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let start = Instant::now();
    let mut latencies = Vec::new();
    // Only sign-ins that ended while bad requests were still being sent count (bounded).
    while senders.iter().any(|t| !t.is_finished()) {
        let latency = pair.sign_in().await?;
        if senders.iter().any(|t| !t.is_finished()) {
            latencies.push(latency);
        }
        if latencies.len() as u32 >= args.sign_ins.saturating_mul(10) {
            break;
        }
    }
    let with = summarise("with flood", 1, latencies, start.elapsed());
    let mut refused = 0u32;
    for t in senders {
        refused += t.await.context("a flood sender failed")?;
    }
    let flood_seconds = flood_start.elapsed().as_secs_f64();
    if refused != args.bad {
        bail!(
            "{} of {} bad requests were not refused",
            args.bad - refused,
            args.bad
        );
    }
    lab.local()?.flush_refusals(true).await;
    // The sign-ins succeed; the flood's rows are the failures (individual and aggregated).
    let flood_rows = audit_outcomes(&lab)
        .await?
        .iter()
        .filter(|(seq, outcome)| *seq > rows_before && outcome == "failure")
        .count() as i64;
    let p99_ratio = if without.p99_ms > 0.0 {
        with.p99_ms / without.p99_ms
    } else {
        f64::INFINITY
    };
    let result = FloodResult {
        bad_requests: args.bad,
        rate: args.rate,
        flood_seconds,
        bad_per_second: f64::from(args.bad) / flood_seconds,
        audit_rows_added_by_flood: flood_rows,
        p99_ratio,
        within_2x: p99_ratio <= 2.0,
        without_flood: without,
        with_flood: with,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "{:<16} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "run", "sign-ins", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for r in [&result.without_flood, &result.with_flood] {
            println!(
                "{:<16} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                r.mode, r.sign_ins, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms
            );
        }
        println!(
            "flood: {} bad requests in {:.1} s ({:.0}/s), {} audit rows for them",
            result.bad_requests,
            result.flood_seconds,
            result.bad_per_second,
            result.audit_rows_added_by_flood
        );
        println!(
            "sign-in p99 with/without flood: {:.2}x ({})",
            result.p99_ratio,
            if result.within_2x {
                "within 2x"
            } else {
                "NOT within 2x"
            }
        );
    }
    let events = vsc_store::audit::verify(lab.local()?.store()).await?;
    if events.first_broken.is_some() {
        bail!("the audit chain broke under the flood");
    }
    lab.stop().await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `vsc bench`.
pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    match args.command {
        BenchCommand::Login(l) => login_bench(l).await,
        BenchCommand::Sign(s) => crate::bench_sign::run(s).await,
        BenchCommand::Flood(f) => flood_bench(f).await,
        BenchCommand::Ocsp(o) => crate::bench_ocsp::run(o).await,
        BenchCommand::Server(s) => server_bench(s).await,
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
