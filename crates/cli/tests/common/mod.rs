//! The real `vsc sandbox` and `vsc serve` as child processes, shared by the CLI tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

/// A running `vsc serve` on a loopback port.
pub struct Server {
    child: Child,
    /// Its public URL, without a trailing slash.
    pub url: String,
    /// Its data directory.
    pub data: PathBuf,
    /// What it printed up to "Press Ctrl-C".
    pub stdout: String,
}

impl Server {
    /// `vsc serve --data DATA` on a free loopback port.
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    /// The same with more arguments (e.g. `--database URL`).
    pub fn start_with(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(VSC)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("vsc serve starts");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "server exited early:\n{seen}"
            );
            seen.push_str(&line);
            if line.starts_with("Press Ctrl-C") {
                break;
            }
            assert!(Instant::now() < deadline, "server did not start:\n{seen}");
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        let url = seen
            .lines()
            .find_map(|l| l.split("listening on ").nth(1))
            .expect("listening line")
            .trim()
            .trim_end_matches('/')
            .to_owned();
        Server {
            child,
            url,
            data: data.to_owned(),
            stdout: seen,
        }
    }

    /// SIGTERM, and the exit status of a graceful stop.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (`kill -9`): the process dies at once, as in a crash or an out-of-memory kill,
    /// with no chance to finish anything; returns its exit status once it is gone.
    pub fn kill9(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server survived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `path` with curl over TLS pinned to the instance root, into `out`.
    pub fn curl(&self, path: &str, out: &Path) {
        let status = Command::new("curl")
            .args(["-sSf", "--cacert"])
            .arg(self.data.join("ca/root.pem"))
            .arg("-o")
            .arg(out)
            .arg(format!("{}{path}", self.url))
            .status()
            .expect("curl runs");
        assert!(
            status.success(),
            "GET {path} over TLS pinned to the instance root"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Runs `vsc ARGS` with `stdin` as its input (and no `VSC_PASSCODE` from the environment).
pub fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(VSC)
        .args(args)
        .env_remove("VSC_PASSCODE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vsc runs");
    if let Some(input) = stdin {
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Runs `vsc ARGS`, which must succeed; returns its standard output.
pub fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "vsc {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
