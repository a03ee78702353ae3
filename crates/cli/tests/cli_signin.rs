//! `vsc demo` and `vsc sandbox` through the real binary: the demo tells the whole story and
//! exits 0; the sandbox prints `ready`, serves tickets through its agent that the server
//! validates over TLS, stops cleanly on SIGTERM and reuses its data on the next start.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Sandbox, VSC};

#[test]
fn demo_walks_through_sign_in_and_exits_cleanly() {
    let out = Command::new(VSC)
        .arg("demo")
        .output()
        .expect("vsc demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "The RA registers a clinician",
        "Workstation shows:",
        "Type the number shown on the workstation",
        "Role selection",
        "\"level_of_assurance\": \"AAL2\"",
        "Unlocking needs a fresh approval",
        "the role is kept: Clinical Practitioner Access Role",
        "session_ended",
        "Done.",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}

#[test]
fn sandbox_is_ready_serves_tickets_and_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sandbox");
    let sandbox = Sandbox::start(&data);
    let server = sandbox
        .field("server")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let person = sandbox.field("test person");
    let uid = person
        .split("UID ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    // An application asks the agent for a ticket: the simulated phone approves by itself.
    let out = Command::new(VSC)
        .args(["agent", "--home"])
        .arg(data.join("agent"))
        .arg("ticket")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ticket = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(ticket.len() >= 40, "a 256-bit ticket: {ticket}");

    // A relying system validates it over the server's real TLS.
    let body = format!("{{\"ticket\":\"{ticket}\"}}");
    let out = Command::new("curl")
        .args(["-sSf", "--cacert"])
        .arg(data.join("server/ca/root.pem"))
        .args(["-H", "content-type: application/json", "-d", &body])
        .arg(format!("{server}api/v1/tickets/validate"))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let validation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(validation["uid"], uid.as_str());
    assert_eq!(validation["role"]["role_code"], "S8000:G8000:R8000");

    // Without the agent's secret the ticket API refuses.
    let agent_url = sandbox
        .field("agent ticket API")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &agent_url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");

    // The phone web app is served, and the second test person has a one-time link into it.
    let app_url = sandbox.field("phone web app");
    assert_eq!(app_url, format!("{server}app/"));
    let out = Command::new("curl")
        .args(["-sSf", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(data.join("server/ca/root.pem"))
        .arg(&app_url)
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{app_url}");
    let app_person = sandbox.field("app person");
    let first_link = first_word(&sandbox.field("app activation"));
    assert!(
        first_link.starts_with(&format!("{app_url}#code=")) && first_link.contains("&fp="),
        "{first_link}"
    );

    assert!(
        sandbox.stop().success(),
        "SIGTERM stops the sandbox cleanly"
    );

    // The next start reuses the same people; the app person's card still waits for its
    // phone, so they get a new one-time link.
    let again = Sandbox::start(&data);
    assert!(again.field("test person").contains(&uid));
    assert_eq!(again.field("app person"), app_person);
    let second_link = first_word(&again.field("app activation"));
    // The server's port may differ from the first start's.
    let again_app_url = again.field("phone web app");
    assert!(
        second_link.starts_with(&format!("{again_app_url}#code=")),
        "{second_link}"
    );
    assert_ne!(second_link, first_link, "a new code at every start");
    assert!(again.stop().success());
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or_default().to_owned()
}

#[test]
fn bench_login_measures_and_reports_json() {
    let out = Command::new(VSC)
        .args([
            "bench",
            "login",
            "--phones",
            "2",
            "--sequential",
            "3",
            "--seconds",
            "1",
            "--json",
        ])
        .output()
        .expect("vsc bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3, "sequential, concurrent, paced");
    assert_eq!(runs[0]["mode"], "sequential");
    assert_eq!(runs[0]["sign_ins"], 3);
    for run in runs {
        assert!(run["per_second"].as_f64().unwrap() > 0.0, "{run}");
        assert!(
            run["p99_ms"].as_f64().unwrap() >= run["p50_ms"].as_f64().unwrap(),
            "{run}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit log intact"));
}

/// `vsc bench server` in one process, `vsc bench login --server` in another: the load reaches
/// the other process's server, the report carries that server's CPU time per sign-in (read from
/// its `/metrics`), and a `--server` without its CA and lab is refused before anything runs.
#[test]
fn bench_login_loads_a_server_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    // The benchmark server (sandbox mode: simulated phones accepted) never listens beyond
    // loopback, and a plain-HTTP server URL is refused before anything is enrolled.
    let outside = Command::new(VSC)
        .args(["bench", "server", "--listen", "0.0.0.0:0", "--data"])
        .arg(&lab)
        .output()
        .unwrap();
    assert!(!outside.status.success());
    assert!(
        String::from_utf8_lossy(&outside.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&outside.stderr)
    );
    assert!(!lab.exists(), "a refused start left a lab behind");
    let mut server = Command::new(VSC)
        .args(["bench", "server", "--listen", "127.0.0.1:0", "--data"])
        .arg(&lab)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("vsc bench server starts");
    let mut reader = BufReader::new(server.stdout.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the bench server exited early:\n{seen}"
        );
        seen.push_str(&line);
        if line.trim() == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "no `ready`:\n{seen}");
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    let url = seen
        .lines()
        .find_map(|l| l.strip_prefix("vsc bench server listening on "))
        .expect("the URL line")
        .trim()
        .to_owned();
    let ca = lab.join("server/ca/root.pem");

    let refused = Command::new(VSC)
        .args(["bench", "login", "--server", &url])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--ca-file"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let plain = Command::new(VSC)
        .args([
            "bench",
            "login",
            "--server",
            &url.replace("https://", "http://"),
            "--ca-file",
            ca.to_str().unwrap(),
            "--lab",
            lab.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("https"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );

    let out = Command::new(VSC)
        .args([
            "bench",
            "login",
            "--server",
            &url,
            "--ca-file",
            ca.to_str().unwrap(),
            "--lab",
            lab.to_str().unwrap(),
            "--phones",
            "2",
            "--sequential",
            "3",
            "--seconds",
            "1",
            "--json",
        ])
        .output()
        .expect("vsc bench login runs");
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let stopped = server.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stopped.success(), "SIGTERM stops the bench server cleanly");
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["sign_ins"], 3);
    for run in runs {
        let cpu = run["server_cpu_ms_per_sign_in"].as_f64();
        assert!(cpu.is_some_and(|ms| ms > 0.0), "{run}");
    }
    // The sign-ins happened in the other process: its audit log holds them.
    let verify = Command::new(VSC)
        .args(["audit", "verify", "--json", "--data"])
        .arg(lab.join("server"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert!(report["first_broken"].is_null(), "{report}");
    assert!(report["events"].as_u64().unwrap() > 20, "{report}");
}
