//! `vsc`: one command for every part of the virtual smartcard platform.
//!
//! * `vsc serve` runs the server (RA issuance, enrolment, CA, sign-in, audit) on embedded SQLite;
//! * `vsc ra …` is the Registration Authority's console, signed in with the RA's own card;
//! * `vsc authenticator …` is the phone app's core with a terminal front;
//! * `vsc agent …` is the identity agent on the workstation;
//! * `vsc audit …` verifies and exports the hash-chained audit log;
//! * `vsc backup` and `vsc restore` write an instance to one archive (online) and bring it back;
//! * `vsc demo`, `vsc sandbox` and `vsc bench` run the whole system in one process, to learn it,
//!   to integrate with it, and to measure it.
//!
//! Every command exits 0 only on success, prints errors as one readable line with what to do
//! next, and takes `--json` where scripts read its output.

mod agent;
mod assurance;
mod audit;
mod authenticator;
mod backup;
mod bench;
mod bench_ocsp;
mod bench_sign;
mod db;
mod demo;
mod eps;
mod eps_sign;
mod lab;
mod logging;
mod passcode;
mod qr;
mod ra;
mod ra_bulk;
mod ra_client;
mod ra_licences;
mod ra_versions;
mod ra_workstation;
mod sandbox;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// vsc: a virtual smartcard for health and care staff, with keys held on the person's phone.
#[derive(Debug, Parser)]
#[command(name = "vsc", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the vsc server (HTTPS; embedded SQLite, or PostgreSQL with --database).
    Serve(serve::ServeArgs),
    /// Registration Authority console: people, positions, identity checks, cards.
    Ra(ra::RaArgs),
    /// The phone app's core: enrol a card, answer sign-in requests, unlock it, show its state.
    Authenticator(authenticator::AuthenticatorArgs),
    /// Verify or export the server's audit log (offline, from the instance's database).
    Audit(audit::AuditArgs),
    /// The instance's database as a whole: move it from SQLite to PostgreSQL.
    Db(db::DbArgs),
    /// The instance's standing as it can evidence itself, for an NHS assurance assessment.
    Assurance(assurance::AssuranceArgs),
    /// Back up an instance into one archive while it runs (database snapshot, keys, certificates).
    Backup(backup::BackupArgs),
    /// Restore an instance from a `vsc backup` archive into a new data directory.
    Restore(backup::RestoreArgs),
    /// The identity agent: sign in with your phone, keep the session, serve tickets on loopback.
    Agent(agent::AgentArgs),
    /// Measure the server: complete sign-ins per second and their latency.
    Bench(bench::BenchArgs),
    /// Electronic prescriptions: verify signatures as the EPS verifier does.
    Eps(eps::EpsArgs),
    /// Walk through the whole sign-in path on a throwaway server (no set-up needed).
    Demo(demo::DemoArgs),
    /// Run a local sandbox for integrators: server, agent and a simulated phone.
    Sandbox(sandbox::SandboxArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Ra(args) => ra::run(args).await,
            Command::Authenticator(args) => authenticator::run(args).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Db(args) => db::run(args).await,
            Command::Assurance(args) => assurance::run(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Eps(args) => eps::run(args).await,
            Command::Sandbox(args) => sandbox::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
