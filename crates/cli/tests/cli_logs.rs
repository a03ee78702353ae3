//! The server's log as an operator's tooling receives it: the real `vsc serve` with its output
//! piped (as under systemd, Docker or a log shipper) writes no ANSI escape codes, `--log-format
//! json` writes one JSON object per line, `RUST_LOG` chooses what is logged, and a metrics
//! token that would be easy to guess is refused before the server starts.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VSC: &str = env!("CARGO_BIN_EXE_vsc");

/// What one run of `vsc serve` printed, from start to a SIGTERM.
struct Run {
    stdout: String,
    stderr: String,
}

/// Starts `vsc serve` on a fresh data directory with `args` and `env`, waits until it serves,
/// stops it with SIGTERM, and returns its output.
fn serve_once(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(VSC);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .env_remove("VSC_LOG")
        .env_remove("RUST_LOG")
        .env_remove("VSC_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("vsc serve starts");
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        stderr_pipe.read_to_string(&mut all).unwrap();
        all
    });
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the server exited early:\n{stdout}"
        );
        stdout.push_str(&line);
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not start");
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    reader.read_to_string(&mut stdout).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "exit {status}:\n{stdout}\n{stderr}");
    Run { stdout, stderr }
}

fn assert_no_escape_codes(run: &Run) {
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains('\u{1b}'),
            "{name} carries escape codes though it is a pipe:\n{text:?}"
        );
    }
}

#[test]
fn piped_text_logs_are_plain_and_json_logs_parse() {
    let dir = tempfile::tempdir().unwrap();

    // Text: readable lines without colour, from start (migrations) to stop.
    let text = serve_once(&dir.path().join("text"), &[], &[]);
    assert_no_escape_codes(&text);
    assert!(
        text.stderr.contains("INFO") && text.stderr.contains("applying database migration"),
        "{}",
        text.stderr
    );
    assert!(text.stderr.contains("stopped"), "{}", text.stderr);

    // JSON: every line one object, with a level and a message.
    let json = serve_once(
        &dir.path().join("json"),
        &["--log-format", "json"],
        &[("RUST_LOG", "info,sqlx=warn")],
    );
    assert_no_escape_codes(&json);
    let lines: Vec<serde_json::Value> = json
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{}", json.stderr);
    for line in &lines {
        assert!(line["level"].is_string(), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "stopped"),
        "{}",
        json.stderr
    );

    // RUST_LOG chooses what is logged (VSC_LOG, when set, wins over it).
    let quiet = serve_once(&dir.path().join("quiet"), &[], &[("RUST_LOG", "warn")]);
    assert!(!quiet.stderr.contains("INFO"), "{}", quiet.stderr);
    let vsc_log = serve_once(
        &dir.path().join("vsc-log"),
        &[],
        &[("RUST_LOG", "info"), ("VSC_LOG", "error")],
    );
    assert!(!vsc_log.stderr.contains("INFO"), "{}", vsc_log.stderr);
}

#[test]
fn a_weak_metrics_token_stops_the_server_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("metrics.token");
    std::fs::write(&token, "letmein\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = Command::new(VSC)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--metrics-token-file")
        .arg(&token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shorter than 16 characters") && stderr.contains("metrics.token"),
        "{stderr}"
    );
    // Nothing was created, nothing listened, and the token itself is not echoed.
    assert!(!stderr.contains("letmein"), "{stderr}");
    assert!(!dir.path().join("data").exists());
}
