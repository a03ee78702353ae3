//! The browser tests' driver process: a Python selenium script beside each test (`driver.py`,
//! `rp.py`) that starts chromedriver and Chromium and talks to the Rust side in JSON lines on
//! its standard input and output. Shared by `console_browser`, `oidc_browser` and `phone_app`
//! (`#[path = "../browser/driver.rs"] mod driver;`).

// Each test binary includes this file and uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The script running in its own process group (it starts chromedriver and chromium), killed
/// with the whole group when dropped: on success, failure, panic or timeout alike.
pub struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
    label: &'static str,
    /// The script's file name, for messages.
    script: String,
}

impl Driver {
    /// Starts `python -u script`; `label` names the test in what it prints.
    pub async fn spawn(python: &Path, script: &Path, label: &'static str) -> Driver {
        let mut child = Command::new(python)
            .arg("-u")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} {}: {e}",
                    python.display(),
                    script.display()
                )
            });
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let mut err = child.stderr.take().unwrap();
        let keep = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                keep.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Driver {
            child,
            stdin,
            lines,
            stderr,
            label,
            script: script
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        }
    }

    /// The last 3000 characters the script wrote to its standard error.
    pub fn stderr_tail(&self) -> String {
        let all = self.stderr.lock().unwrap();
        let start = all.char_indices().rev().nth(3000).map_or(0, |(i, _)| i);
        all[start..].to_owned()
    }

    /// Sends one JSON message (a line).
    pub async fn send(&mut self, message: &Value) {
        let line = format!("{message}\n");
        if let Err(e) = self.stdin.write_all(line.as_bytes()).await {
            panic!(
                "cannot write to {} ({e}); its stderr:\n{}",
                self.script,
                self.stderr_tail()
            );
        }
        self.stdin.flush().await.unwrap();
    }

    /// The next message that is not progress; progress and notes are printed, and an error
    /// from the script fails the test with its message.
    pub async fn next(&mut self) -> Value {
        loop {
            let line = match self.lines.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) | Err(_) => {
                    let status = self.child.wait().await.ok();
                    panic!(
                        "{} ended (status {status:?}); its stderr:\n{}",
                        self.script,
                        self.stderr_tail()
                    );
                }
            };
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!(
                    "{} wrote something that is not JSON ({e}): {line}",
                    self.script
                )
            });
            match message["event"].as_str() {
                Some("step") => eprintln!("{} ({}): {message}", self.label, self.script),
                Some("note") => eprintln!(
                    "{}: NOTE: {}",
                    self.label,
                    message["message"].as_str().unwrap_or_default()
                ),
                Some("error") => panic!(
                    "the browser side failed: {}\n{}'s stderr:\n{}",
                    message["message"].as_str().unwrap_or_default(),
                    self.script,
                    self.stderr_tail()
                ),
                _ => return message,
            }
        }
    }

    /// Waits for the script to exit by itself (it has closed the browser).
    pub async fn finish(&mut self) {
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} did not exit within 20 s after its last step",
                    self.script
                )
            })
            .unwrap();
        assert!(
            status.success(),
            "{} exited with {status}; stderr:\n{}",
            self.script,
            self.stderr_tail()
        );
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is the script, chromedriver and chromium; after a clean exit it is gone.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Driver {
    /// The next message, which must be the event `name` (for scripts that answer in a fixed
    /// order).
    pub async fn expect(&mut self, name: &str) -> Value {
        let message = self.next().await;
        assert_eq!(
            message["event"].as_str(),
            Some(name),
            "{} sent {message} while the test waited for {name:?}",
            self.script
        );
        message
    }
}
