//! The real `vsc sandbox` as a child process, shared by the CLI tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const VSC: &str = env!("CARGO_BIN_EXE_vsc");

/// A running sandbox.
pub struct Sandbox {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Sandbox {
    pub fn start(data: &Path) -> Sandbox {
        let mut child = Command::new(VSC)
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--agent-listen",
                "127.0.0.1:0",
                // The virtual card has its own test (cli_card), which owns vpcd's reader.
                "--no-card",
                "--data",
            ])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("vsc sandbox starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sandbox = Sandbox {
            child,
            lines,
            seen: String::new(),
        };
        sandbox.wait_for("ready", Duration::from_secs(90));
        sandbox
    }

    pub fn wait_for(&mut self, wanted: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line.trim() == wanted {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line {wanted:?} within {limit:?}; output so far:\n{}",
                    self.seen
                ),
            }
        }
    }

    pub fn field(&self, label: &str) -> String {
        self.seen
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", self.seen))
            .trim()
            .to_owned()
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the sandbox ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
