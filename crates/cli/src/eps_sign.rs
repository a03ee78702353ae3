//! `vsc eps sign`: signs prescriptions with the phone through a running identity agent (by
//! default the one `vsc sandbox` runs), one approval for the whole batch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use vsc_agent::eps::PrescriptionToSign;
use vsc_agent::{AgentHome, LocalClient};

/// `vsc eps sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Prescription files (a ParentPrescription, or a PORX_IN020101SM31 message carrying one).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// `RS256` (rsa-sha256) or `RS1` (rsa-sha1, which EPS still accepts).
    #[arg(long, default_value = "RS256", value_parser = ["RS1", "RS256"])]
    algorithm: String,
    /// Set each prescription's author/time to the signing time first (EPS checks the
    /// certificate was valid at author/time; a prescribing system stamps it when the
    /// prescriber signs).
    #[arg(long)]
    stamp_author_time: bool,
    /// Write each signed file into this directory (same file name). Without it, and without
    /// --in-place, signed files are written next to the originals as NAME.signed.xml.
    #[arg(long, value_name = "DIR", conflicts_with = "in_place")]
    out_dir: Option<PathBuf>,
    /// Replace each file with its signed version.
    #[arg(long)]
    in_place: bool,
    /// The identity agent's home (its address and secret); by default the sandbox's agent.
    #[arg(long, env = "VSC_AGENT_HOME", default_value = "./vsc-sandbox/agent")]
    agent_home: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn output_path(args: &SignArgs, input: &Path) -> PathBuf {
    if args.in_place {
        return input.to_owned();
    }
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prescription.xml".into());
    match &args.out_dir {
        Some(dir) => dir.join(name),
        None => {
            let stem = name.strip_suffix(".xml").unwrap_or(&name);
            input.with_file_name(format!("{stem}.signed.xml"))
        }
    }
}

/// Runs `vsc eps sign`.
pub async fn run(args: SignArgs) -> Result<ExitCode> {
    let no_agent = || {
        anyhow::anyhow!(
            "no identity agent is running with home {}; start `vsc sandbox` (its agent lives in ./vsc-sandbox/agent) or `vsc agent run`, or give --agent-home",
            args.agent_home.display()
        )
    };
    if !args.agent_home.is_dir() {
        return Err(no_agent());
    }
    let home = AgentHome::open(&args.agent_home)?;
    let client = LocalClient::for_home(&home).map_err(|e| match e {
        vsc_agent::AgentError::NoAgent { .. } => no_agent(),
        other => other.into(),
    })?;
    let mut prescriptions = Vec::with_capacity(args.files.len());
    let mut paths = std::collections::HashMap::new();
    for (n, file) in args.files.iter().enumerate() {
        let xml = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        // Ids must be unique and short; the file name is kept for the messages.
        let id = format!("{:03}", n + 1);
        paths.insert(id.clone(), file.clone());
        prescriptions.push(PrescriptionToSign { id, xml });
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if !args.json {
        eprintln!(
            "asking the phone to sign {} prescription{} ({}); approve on the phone…",
            prescriptions.len(),
            if prescriptions.len() == 1 { "" } else { "s" },
            args.algorithm
        );
    }
    let batch = client
        .sign_prescriptions(&args.algorithm, args.stamp_author_time, &prescriptions)
        .await?;
    let mut written = Vec::new();
    for signed in &batch.signed {
        let Some(input) = paths.get(&signed.id) else {
            bail!("the agent returned an unknown id {}", signed.id);
        };
        let out = output_path(&args, input);
        std::fs::write(&out, &signed.xml)
            .with_context(|| format!("cannot write {}", out.display()))?;
        written.push(serde_json::json!({"file": input, "signed": out}));
        if !args.json {
            println!("signed   {} -> {}", input.display(), out.display());
        }
    }
    let mut failed = Vec::new();
    for f in &batch.failed_signatures {
        let file = paths
            .get(&f.id)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if !args.json {
            println!("FAILED   {file}: {}", f.reason);
        }
        failed.push(serde_json::json!({"file": file, "reason": f.reason}));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"signed": written, "failed": failed})
            )?
        );
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
