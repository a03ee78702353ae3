//! `vsc ra versions`. (Being built.)

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use vsc_https::Client;

/// `vsc ra versions …`.
#[derive(Debug, Subcommand)]
pub enum VersionsCommand {
    /// The policy and the versions in use.
    List,
}

/// Runs a `vsc ra versions` command.
pub async fn run(
    command: VersionsCommand,
    _client: &Client,
    _token: &str,
    _json: bool,
) -> Result<ExitCode> {
    match command {
        VersionsCommand::List => bail!("not built yet"),
    }
}
