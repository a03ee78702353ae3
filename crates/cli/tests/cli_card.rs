//! The virtual smartcard end to end, through the real binary and real middleware: `vsc sandbox`
//! inserts the test person's PIV card into vsmartcard's vpcd reader in pcscd, and OpenSC
//! (`pkcs11-tool`, `ssh-keygen -D`), OpenSSH (`ssh` with the PKCS#11 provider against a private
//! `sshd`), OpenSSL and Yubico's `yubico-piv-tool` use it as they would a physical card. Every
//! private-key operation goes to the simulated phone, which approves it (or, with
//! `--decline-card-operations`, declines it); the PIN is checked by the server.
//!
//! Needs root (sshd logs in as root; pcscd is started by `scripts/pcscd-up`) and the Debian
//! packages pcscd, vsmartcard-vpcd, opensc, opensc-pkcs11, yubico-piv-tool, openssh-server,
//! openssh-client and openssl (the test command installs them). A missing tool fails the test;
//! nothing is skipped. Every step shares one pcscd and vpcd's first slot ("Virtual PCD 00 00"),
//! so this is one test that goes through the steps in order, and no other card may sit in that
//! slot meanwhile (the test waits for it to be free, then fails).

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod common;

use common::VSC;

const PCSCD_UP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pcscd-up");
/// vpcd's first slot (`DEVICENAME /dev/null:0x8C7B` in /etc/reader.conf.d/vpcd) and its reader.
/// `VSC_CARD_TEST_VPCD=127.0.0.1:35964` uses the second slot ("Virtual PCD 00 01") instead, for
/// when the first one is busy.
fn target() -> &'static (String, String) {
    static TARGET: OnceLock<(String, String)> = OnceLock::new();
    TARGET.get_or_init(|| {
        let vpcd =
            std::env::var("VSC_CARD_TEST_VPCD").unwrap_or_else(|_| "127.0.0.1:35963".to_owned());
        let slot = match vpcd.rsplit(':').next() {
            Some("35963") => 0,
            Some("35964") => 1,
            _ => panic!("VSC_CARD_TEST_VPCD={vpcd}: vpcd listens on 127.0.0.1:35963 or :35964"),
        };
        (vpcd, format!("Virtual PCD 00 {slot:02}"))
    })
}

/// Where the sandbox connects to vpcd.
fn vpcd() -> &'static str {
    &target().0
}

/// The PC/SC reader the card appears in.
fn reader() -> &'static str {
    &target().1
}
/// Where Debian's opensc-pkcs11 installs the module (the first is a symlink to the second).
const MODULES: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/opensc-pkcs11.so",
];
const SSHD: &str = "/usr/sbin/sshd";
/// A single command never needs longer (a phone approval in the sandbox takes about a second).
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// pcscd notices a card arriving or leaving at its next 400 ms poll; allow for many.
const SETTLE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Running tools

/// What a finished command left behind.
struct Ran {
    line: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.status.success()
    }

    /// stdout and stderr together.
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Everything about the run, for assertion messages.
    fn report(&self) -> String {
        format!(
            "$ {}\n[{}]\n--- stdout\n{}--- stderr\n{}---",
            self.line, self.status, self.stdout, self.stderr
        )
    }

    fn expect_ok(self) -> Ran {
        assert!(self.ok(), "the command failed:\n{}", self.report());
        self
    }
}

/// Which Debian package provides a tool, for the "not installed" message.
fn package_of(program: &str) -> &'static str {
    match Path::new(program).file_name().and_then(|n| n.to_str()) {
        Some("pkcs11-tool" | "opensc-tool") => "opensc",
        Some("yubico-piv-tool") => "yubico-piv-tool",
        Some("ssh" | "ssh-keygen") => "openssh-client",
        Some("sshd") => "openssh-server",
        Some("openssl") => "openssl",
        _ => "(see the file's header)",
    }
}

/// Fails the test, naming the package to install, unless `program` is an executable file or
/// one on PATH.
fn require(program: &str) {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        executable(Path::new(program))
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .any(|dir| executable(&dir.join(program)))
    };
    assert!(
        found,
        "{program} is not installed: install the Debian package {} (the test command installs it)",
        package_of(program)
    );
}

/// Runs `cmd` (stdin closed, output captured in files under `logs`) for at most
/// [`COMMAND_LIMIT`]; a tool that is not installed fails the test.
fn run_in(logs: &Path, cmd: &mut Command) -> Ran {
    static COUNT: Mutex<u32> = Mutex::new(0);
    let n = {
        let mut count = COUNT.lock().unwrap();
        *count += 1;
        *count
    };
    let program = cmd.get_program().to_string_lossy().into_owned();
    let line = std::iter::once(program.clone())
        .chain(cmd.get_args().map(|a| {
            let a = a.to_string_lossy();
            if a.contains(' ') || a.is_empty() {
                format!("'{a}'")
            } else {
                a.into_owned()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ");
    let out_path = logs.join(format!("{n:03}.stdout"));
    let err_path = logs.join(format!("{n:03}.stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): install the Debian package {} (the test command installs it)",
                package_of(&program)
            )
        });
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{line} did not finish within {COMMAND_LIMIT:?}; output so far:\n{}{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        line,
        status,
        stdout: String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned(),
    }
}

/// The OpenSC PKCS#11 module.
fn opensc_module() -> PathBuf {
    MODULES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no OpenSC PKCS#11 module at any of {MODULES:?}: install the Debian package opensc-pkcs11"
            )
        })
}

// ---------------------------------------------------------------------------------------------
// The sandbox with its card

/// `vsc sandbox` presenting the test person's card to vpcd.
struct CardSandbox {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr_path: PathBuf,
}

impl CardSandbox {
    /// Starts `vsc sandbox` (`extra` options added) and waits for `ready`; its output goes to
    /// `logs/sandbox-<name>.stdout` and `.stderr`.
    fn start(data: &Path, logs: &Path, name: &str, extra: &[&str]) -> CardSandbox {
        let stderr_path = logs.join(format!("sandbox-{name}.stderr"));
        let mut child = Command::new(VSC)
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--agent-listen",
                "127.0.0.1:0",
                "--vpcd",
                vpcd(),
                "--data",
            ])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .expect("vsc sandbox starts");
        let pipe = child.stdout.take().unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        {
            let stdout = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let ready = line.trim() == "ready";
                    {
                        let mut all = stdout.lock().unwrap();
                        all.push_str(&line);
                        all.push('\n');
                    }
                    if ready {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        let sandbox = CardSandbox {
            child,
            stdout,
            stderr_path,
        };
        if ready_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            panic!(
                "the sandbox printed no `ready` within 120 s:\n{}",
                sandbox.output()
            );
        }
        sandbox
    }

    /// Everything the sandbox printed so far (stdout, then its log on stderr).
    fn output(&self) -> String {
        format!(
            "--- sandbox stdout\n{}--- sandbox stderr (last 60 lines)\n{}",
            self.stdout.lock().unwrap(),
            tail(&self.stderr_path, 60)
        )
    }

    /// The rest of the line `  <label> …` that the sandbox printed before `ready`.
    fn field(&self, label: &str) -> String {
        let out = self.stdout.lock().unwrap();
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .unwrap_or_else(|| panic!("the sandbox printed no {label:?} line:\n{out}"))
            .trim()
            .to_owned()
    }

    fn stop(mut self) -> ExitStatus {
        let status = self.terminate();
        // the reader thread has seen everything once the process is gone
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(
            self.stderr_path.with_extension("stdout"),
            self.stdout.lock().unwrap().as_bytes(),
        )
        .unwrap();
        status
    }

    fn terminate(&mut self) -> ExitStatus {
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
            assert!(
                Instant::now() < deadline,
                "the sandbox ignored SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for CardSandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    out.push('\n');
    out
}

/// Whether `opensc-tool --list-readers` shows a card in [`reader`]: rows are
/// `Nr.  Card  Features  Name`, for example `0    Yes             Virtual PCD 00 00`.
fn card_present(logs: &Path) -> (Option<bool>, String) {
    let ran = run_in(logs, Command::new("opensc-tool").arg("--list-readers"));
    let text = ran.text();
    let present = text
        .lines()
        .find(|l| l.trim_end().ends_with(reader()))
        .map(|l| l.split_whitespace().nth(1) == Some("Yes"));
    (present, text)
}

/// Waits until [`reader`] holds a card (or none).
fn wait_card(logs: &Path, present: bool, limit: Duration, context: &dyn Fn() -> String) {
    let deadline = Instant::now() + limit;
    loop {
        let (state, list) = card_present(logs);
        if state == Some(present) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: wanted a card present = {present} within {limit:?}, opensc-tool says:\n{list}\n{}",
            reader(),
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// The card through OpenSC

/// `pkcs11-tool` on the OpenSC module and the vpcd reader's slot.
struct Pkcs11<'a> {
    module: &'a Path,
    logs: &'a Path,
}

impl Pkcs11<'_> {
    fn run(&self, args: &[&str]) -> Ran {
        run_in(
            self.logs,
            Command::new("pkcs11-tool")
                .arg("--module")
                .arg(self.module)
                .args(["--slot-description", reader()])
                .args(args),
        )
    }

    /// Logs in with `pin` and signs `document` with the 9A key (ECDSA-SHA256) into `out`.
    fn sign_9a(&self, pin: &str, document: &Path, out: &Path) -> Ran {
        self.run(&[
            "--login",
            "--pin",
            pin,
            "--sign",
            "--id",
            "01",
            "-m",
            "ECDSA-SHA256",
            "-i",
            document.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
    }

    fn list_slots(&self) -> Ran {
        run_in(
            self.logs,
            Command::new("pkcs11-tool")
                .arg("--module")
                .arg(self.module)
                .arg("--list-slots"),
        )
    }
}

/// One object from `pkcs11-tool --list-objects`: its heading line, label and ID.
#[derive(Debug)]
struct Object {
    heading: String,
    label: String,
    id: String,
}

fn objects(listing: &str) -> Vec<Object> {
    let mut out: Vec<Object> = Vec::new();
    for line in listing.lines() {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            out.push(Object {
                heading: line.trim().to_owned(),
                label: String::new(),
                id: String::new(),
            });
        } else if let Some(object) = out.last_mut() {
            let line = line.trim();
            if let Some(label) = line.strip_prefix("label:") {
                object.label = label.trim().to_owned();
            } else if let Some(id) = line.strip_prefix("ID:") {
                object.id = id.trim().to_owned();
            }
        }
    }
    out
}

fn has_object(listing: &[Object], heading: &str, label: &str, id: &str) -> bool {
    listing
        .iter()
        .any(|o| o.heading.starts_with(heading) && o.label == label && o.id == id)
}

/// The key algorithm in a certificate: `ec` (P-256) or `rsa` (2048).
fn key_algorithm(logs: &Path, cert_der: &Path) -> &'static str {
    let text = run_in(
        logs,
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(cert_der),
    )
    .expect_ok()
    .stdout;
    if text.contains("id-ecPublicKey") {
        assert!(
            text.contains("prime256v1") || text.contains("P-256"),
            "an EC key not on P-256:\n{text}"
        );
        "ec"
    } else {
        assert!(
            text.contains("rsaEncryption") && text.contains("(2048 bit)"),
            "neither EC P-256 nor RSA 2048:\n{text}"
        );
        "rsa"
    }
}

/// Signs `data` with the key `id` through the card and checks the signature with OpenSSL against
/// the public key in `public_pem` (taken from the card's certificate).
fn sign_and_verify(
    p11: &Pkcs11<'_>,
    tmp: &Path,
    pin: &str,
    id: &str,
    algorithm: &str,
    data: &Path,
    public_pem: &Path,
) {
    let sig = tmp.join(format!("signature-{id}.bin"));
    let (mechanism, format): (&str, &[&str]) = match algorithm {
        // pkcs11-tool returns ECDSA signatures as raw r‖s unless asked for DER
        "ec" => ("ECDSA-SHA256", &["--signature-format", "openssl"]),
        _ => ("SHA256-RSA-PKCS", &[]),
    };
    let mut args = vec![
        "--login", "--pin", pin, "--sign", "--id", id, "-m", mechanism,
    ];
    args.extend_from_slice(format);
    args.extend(["-i", data.to_str().unwrap(), "-o", sig.to_str().unwrap()]);
    let signed = p11.run(&args).expect_ok();
    assert!(
        std::fs::metadata(&sig).map(|m| m.len()).unwrap_or(0) > 0,
        "no signature written:\n{}",
        signed.report()
    );
    let verify = |file: &Path| {
        run_in(
            p11.logs,
            Command::new("openssl")
                .args(["dgst", "-sha256", "-verify"])
                .arg(public_pem)
                .arg("-signature")
                .arg(&sig)
                .arg(file),
        )
    };
    let good = verify(data);
    assert!(
        good.ok() && good.stdout.contains("Verified OK"),
        "the card's {mechanism} signature with key {id} does not verify:\n{}\n{}",
        signed.report(),
        good.report()
    );
    // and the check is a real one: other data does not verify
    let other = tmp.join(format!("other-{id}.txt"));
    std::fs::write(&other, b"not what was signed\n").unwrap();
    let bad = verify(&other);
    assert!(
        !bad.ok(),
        "a signature verified over data it was not made for:\n{}",
        bad.report()
    );
}

// ---------------------------------------------------------------------------------------------
// A private sshd

struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Sshd {
    /// sshd on 127.0.0.1 (a free port), its own host key, public-key logins as root with the
    /// keys in `authorized_keys`, no PAM, no passwords; its log (`-e`) in `dir/sshd.log`.
    fn start(dir: &Path, logs: &Path, authorized_keys: &Path) -> Sshd {
        // sshd refuses to start without its privilege separation directory, which systemd
        // normally creates (RuntimeDirectory=sshd).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let host_key = dir.join("ssh_host_ed25519_key");
        run_in(
            logs,
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key),
        )
        .expect_ok();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {}\n\
                 PidFile none\n\
                 AuthorizedKeysFile {}\n\
                 PubkeyAuthentication yes\n\
                 AuthenticationMethods publickey\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitRootLogin yes\n\
                 LogLevel VERBOSE\n",
                host_key.display(),
                authorized_keys.display()
            ),
        )
        .unwrap();
        let check = run_in(logs, Command::new(SSHD).arg("-t").arg("-f").arg(&config));
        assert!(
            check.ok(),
            "sshd -t refuses the config:\n{}",
            check.report()
        );
        // -D: stay in the foreground; -e: log to stderr
        let log = dir.join("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SSHD} ({e}): install openssh-server"));
        let mut sshd = Sshd { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = sshd.child.try_wait().unwrap() {
                panic!("sshd exited ({status}):\n{}", tail(&sshd.log, 40));
            }
            assert!(
                Instant::now() < deadline,
                "sshd does not listen on {port}:\n{}",
                tail(&sshd.log, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ssh root@127.0.0.1 true` with the card's keys through OpenSC: the PIN comes from an
    /// askpass program (SSH_ASKPASS_REQUIRE=force), as a desktop's PIN dialog would give it.
    fn login(&self, dir: &Path, logs: &Path, module: &Path, askpass: &Path) -> Ran {
        run_in(
            logs,
            Command::new("ssh")
                .args(["-v", "-F", "/dev/null"])
                .arg("-I")
                .arg(module)
                .arg(format!("-oPKCS11Provider={}", module.display()))
                .args([
                    "-o",
                    "BatchMode=no",
                    "-o",
                    "IdentityAgent=none",
                    "-o",
                    "PreferredAuthentications=publickey",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "ConnectTimeout=10",
                ])
                .arg(format!(
                    "-oUserKnownHostsFile={}",
                    dir.join("known_hosts").display()
                ))
                .args(["-p", &self.port.to_string(), "root@127.0.0.1", "true"])
                .env_remove("SSH_AUTH_SOCK")
                .env("SSH_ASKPASS", askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0"),
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The public key of a DER certificate as an OpenSSH `authorized_keys` line, and its SHA256
/// fingerprint as ssh prints it.
fn ssh_public_key(logs: &Path, tmp: &Path, cert_der: &Path) -> (String, String) {
    let pem = tmp.join("ssh-source.pem");
    run_in(
        logs,
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
            .arg(cert_der)
            .arg("-out")
            .arg(&pem),
    )
    .expect_ok();
    let key = run_in(
        logs,
        Command::new("ssh-keygen")
            .args(["-i", "-m", "PKCS8", "-f"])
            .arg(&pem),
    )
    .expect_ok()
    .stdout
    .trim()
    .to_owned();
    let file = tmp.join("ssh-source.pub");
    std::fs::write(&file, format!("{key}\n")).unwrap();
    let fingerprint = run_in(logs, Command::new("ssh-keygen").arg("-lf").arg(&file))
        .expect_ok()
        .stdout;
    let fingerprint = fingerprint
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    (key, fingerprint)
}

/// `vsc agent --home … status --json`.
fn agent_status(logs: &Path, agent_home: &Path) -> serde_json::Value {
    let ran = run_in(
        logs,
        Command::new(VSC)
            .arg("agent")
            .arg("--home")
            .arg(agent_home)
            .args(["status", "--json"]),
    )
    .expect_ok();
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", ran.report()))
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_virtual_card_works_with_opensc_ssh_and_yubico_piv_tool() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // VSC_CARD_TEST_KEEP=1 keeps every tool's output (logs/NNN.stdout, .stderr) for a look.
    let tmp = if std::env::var_os("VSC_CARD_TEST_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("keeping {}", kept.display());
        kept
    } else {
        tmp.path().to_owned()
    };
    let tmp = tmp.as_path();
    let step = |what: &str| eprintln!("[{:5.1} s] {what}", started.elapsed().as_secs_f64());
    let logs = tmp.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let logs = logs.as_path();
    let data = tmp.join("sandbox");
    let agent_home = data.join("agent");
    let module = opensc_module();
    let p11 = Pkcs11 {
        module: &module,
        logs,
    };
    for tool in [
        "pkcs11-tool",
        "opensc-tool",
        "yubico-piv-tool",
        "ssh",
        "ssh-keygen",
        SSHD,
        "openssl",
    ] {
        require(tool);
    }

    step("1. pcscd and the sandbox");
    // 1. pcscd with vpcd's reader (no --auto-exit), then a sandbox whose card goes into it.
    let up = run_in(logs, &mut Command::new(PCSCD_UP));
    assert!(up.ok(), "scripts/pcscd-up:\n{}", up.report());
    let nothing_else = || {
        format!(
            "another card holds vpcd's slot: stop other sandboxes and agents presenting a card \
             to {} while this test runs (or set VSC_CARD_TEST_VPCD=127.0.0.1:35964)",
            vpcd()
        )
    };
    wait_card(logs, false, SETTLE, &nothing_else);

    let sandbox = CardSandbox::start(&data, logs, "approving", &[]);
    let pin = sandbox.field("card PIN");
    assert!(
        pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()),
        "the card PIN is not 6 digits: {pin:?}\n{}",
        sandbox.output()
    );
    let reader_line = sandbox.field("card reader");
    assert!(
        reader_line.starts_with(&format!("{} (vpcd {})", reader(), vpcd())),
        "the sandbox names the wrong reader: {reader_line:?}, wanted \"{} (vpcd {})\"",
        reader(),
        vpcd()
    );
    // "Test Clinician, UID 123456789012 (card …)"
    let person = sandbox.field("test person");
    let uid = person
        .split("UID ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no UID in {person:?}"))
        .to_owned();
    let holder = person.split(',').next().unwrap().trim().to_owned();
    wait_card(logs, true, SETTLE, &|| sandbox.output());
    let status = agent_status(logs, &agent_home);
    assert_eq!(status["state"], "signed-in", "{status}");

    step("2. pkcs11-tool --list-slots");
    // 2. OpenSC sees a token in the vpcd reader, labelled with the holder's name.
    let slots = p11.list_slots().expect_ok();
    let text = slots.text();
    let ours = text
        .split("\nSlot ")
        .find(|s| s.contains(reader()))
        .unwrap_or_else(|| panic!("no slot for {}:\n{}", reader(), slots.report()));
    assert!(
        ours.lines()
            .any(|l| l.trim_start().starts_with("token label") && l.contains(&holder)),
        "the token in {} is not labelled {holder:?}:\n{}",
        reader(),
        slots.report()
    );

    step("3. pkcs11-tool --list-objects");
    // 3. Both certificates and public keys without the PIN; the private keys after it.
    let public = p11.run(&["--list-objects"]).expect_ok();
    let listed = objects(&public.stdout);
    for (heading, label, id) in [
        (
            "Certificate Object",
            "Certificate for PIV Authentication",
            "01",
        ),
        (
            "Certificate Object",
            "Certificate for Digital Signature",
            "02",
        ),
        ("Public Key Object; EC", "PIV AUTH pubkey", "01"),
        ("Public Key Object", "SIGN pubkey", "02"),
    ] {
        assert!(
            has_object(&listed, heading, label, id),
            "no {heading} {label:?} with ID {id}:\n{}",
            public.report()
        );
    }
    assert!(
        !listed
            .iter()
            .any(|o| o.heading.starts_with("Private Key Object")),
        "private keys are listed without the PIN:\n{}",
        public.report()
    );
    let private = p11
        .run(&["--login", "--pin", &pin, "--list-objects"])
        .expect_ok();
    let listed = objects(&private.stdout);
    assert!(
        has_object(&listed, "Private Key Object; EC", "PIV AUTH key", "01"),
        "no 9A private key (ID 01) after login:\n{}",
        private.report()
    );
    assert!(
        has_object(&listed, "Private Key Object", "SIGN key", "02"),
        "no 9C private key (ID 02) after login:\n{}",
        private.report()
    );

    step("3b. the certificates");
    // The certificates off the card: the test person's, issued by the sandbox's CA.
    let ca = data.join("server").join("ca");
    let mut certificates = Vec::new();
    for (id, slot) in [("01", "9A"), ("02", "9C")] {
        let der = tmp.join(format!("cert-{id}.der"));
        p11.run(&[
            "--read-object",
            "--type",
            "cert",
            "--id",
            id,
            "-o",
            der.to_str().unwrap(),
        ])
        .expect_ok();
        let pem = tmp.join(format!("cert-{id}.pem"));
        run_in(
            logs,
            Command::new("openssl")
                .args(["x509", "-inform", "DER", "-in"])
                .arg(&der)
                .arg("-out")
                .arg(&pem),
        )
        .expect_ok();
        let subject = run_in(
            logs,
            Command::new("openssl")
                .args(["x509", "-noout", "-nameopt", "RFC2253", "-subject", "-in"])
                .arg(&pem),
        )
        .expect_ok()
        .stdout;
        assert!(
            subject.contains(&format!("CN={holder}"))
                && subject.contains(&format!("serialNumber={uid}")),
            "slot {slot}'s certificate is not the test person's ({holder}, {uid}): {subject}"
        );
        let chain = run_in(
            logs,
            Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(ca.join("root.pem"))
                .arg("-untrusted")
                .arg(ca.join("issuing.pem"))
                .arg(&pem),
        );
        assert!(
            chain.ok(),
            "slot {slot}'s certificate does not chain to the sandbox CA:\n{}",
            chain.report()
        );
        let public_pem = tmp.join(format!("public-{id}.pem"));
        run_in(
            logs,
            Command::new("openssl")
                .args(["x509", "-noout", "-pubkey", "-in"])
                .arg(&pem)
                .arg("-out")
                .arg(&public_pem),
        )
        .expect_ok();
        let algorithm = key_algorithm(logs, &der);
        certificates.push((id, slot, der, public_pem, algorithm));
    }
    assert_eq!(
        certificates[0].4, "ec",
        "slot 9A must hold an ECDSA P-256 key"
    );

    step("4. pkcs11-tool --test");
    // 4. pkcs11-tool's self-test, logged in (its signature tests use the phone).
    let selftest = p11.run(&["--login", "--pin", &pin, "--test"]);
    assert!(
        selftest.ok() && selftest.stdout.contains("No errors"),
        "pkcs11-tool --test:\n{}\n{}",
        selftest.report(),
        sandbox.output()
    );

    step("5. sign and verify");
    // 5. Signatures made by the phone through the card verify with OpenSSL against the
    //    certificates read off the card.
    let document = tmp.join("document.txt");
    std::fs::write(&document, b"a document signed with the virtual smartcard\n").unwrap();
    for (id, _, _, public_pem, algorithm) in &certificates {
        sign_and_verify(&p11, tmp, &pin, id, algorithm, &document, public_pem);
    }

    step("6. ssh");
    // 6. ssh with the card's authentication key (9A), against a private sshd.
    let (auth_key, fingerprint) = ssh_public_key(logs, tmp, &certificates[0].2);
    let listed = run_in(logs, Command::new("ssh-keygen").arg("-D").arg(&module)).expect_ok();
    let blob = auth_key.split_whitespace().nth(1).unwrap();
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.contains(blob) && l.ends_with("PIV AUTH pubkey")),
        "ssh-keygen -D does not list the 9A key {auth_key}:\n{}",
        listed.report()
    );
    let ssh_dir = tmp.join("ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let authorized_keys = ssh_dir.join("authorized_keys");
    std::fs::write(
        &authorized_keys,
        format!("{auth_key} 9A of the virtual card\n"),
    )
    .unwrap();
    let askpass = ssh_dir.join("askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\necho {pin}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let sshd = Sshd::start(&ssh_dir, logs, &authorized_keys);
    let ssh = sshd.login(&ssh_dir, logs, &module, &askpass);
    assert!(
        ssh.ok(),
        "ssh with the card failed:\n{}\n--- sshd\n{}\n{}",
        ssh.report(),
        sshd.log(),
        sandbox.output()
    );
    let accepted = "Accepted publickey for root from 127.0.0.1";
    assert!(
        sshd.log()
            .lines()
            .any(|l| l.contains(accepted) && l.contains(&fingerprint)),
        "sshd did not accept the card's key {fingerprint}:\n{}",
        sshd.log()
    );

    step("7. yubico-piv-tool");
    // 7. Yubico's tool sees both slots (it speaks PIV directly, without OpenSC).
    let piv = run_in(
        logs,
        Command::new("yubico-piv-tool").args(["-r", reader(), "-a", "status"]),
    )
    .expect_ok();
    for (_, slot, _, _, algorithm) in &certificates {
        let section = piv
            .stdout
            .split(&format!("Slot {}:", slot.to_lowercase()))
            .nth(1)
            .unwrap_or_else(|| panic!("no slot {slot}:\n{}", piv.report()));
        let section = section.split("Slot ").next().unwrap_or_default();
        let expected = if *algorithm == "ec" {
            "ECCP256"
        } else {
            "RSA2048"
        };
        assert!(
            section.contains(expected) && section.contains(&holder),
            "slot {slot} is not {expected} of {holder}:\n{}",
            piv.report()
        );
    }
    let pem_9a = tmp.join("yubico-9a.pem");
    run_in(
        logs,
        Command::new("yubico-piv-tool")
            .args(["-r", reader(), "-a", "read-certificate", "-s", "9a", "-o"])
            .arg(&pem_9a),
    )
    .expect_ok();
    run_in(
        logs,
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&pem_9a)
            .arg("-out")
            .arg(tmp.join("yubico-9a.der")),
    )
    .expect_ok();
    assert_eq!(
        std::fs::read(tmp.join("yubico-9a.der")).unwrap(),
        std::fs::read(&certificates[0].2).unwrap(),
        "yubico-piv-tool and OpenSC read different 9A certificates"
    );

    step("8. logout");
    // 8. Logging out removes the card: the reader is empty and signing fails.
    run_in(
        logs,
        Command::new(VSC)
            .arg("agent")
            .arg("--home")
            .arg(&agent_home)
            .arg("logout"),
    )
    .expect_ok();
    wait_card(logs, false, SETTLE, &|| sandbox.output());
    let after = tmp.join("after-logout.sig");
    let refused = p11.sign_9a(&pin, &document, &after);
    assert!(
        !refused.ok() && !after.exists(),
        "signing worked after logout:\n{}",
        refused.report()
    );
    let status = sandbox.stop();
    assert!(status.success(), "the sandbox stopped with {status}");
    wait_card(logs, false, SETTLE, &nothing_else);

    step("restart with --decline-card-operations");
    // The same person and phone again, now declining every card operation.
    let sandbox = CardSandbox::start(&data, logs, "declining", &["--decline-card-operations"]);
    assert_eq!(sandbox.field("card PIN"), pin, "{}", sandbox.output());
    wait_card(logs, true, SETTLE, &|| sandbox.output());
    let again = tmp.join("cert-01-again.der");
    p11.run(&[
        "--read-object",
        "--type",
        "cert",
        "--id",
        "01",
        "-o",
        again.to_str().unwrap(),
    ])
    .expect_ok();
    assert_eq!(
        ssh_public_key(logs, tmp, &again).0,
        auth_key,
        "the card's 9A key changed between sessions of the same person and phone"
    );

    step("lock and unlock");
    // Locking the workstation removes the card; unlocking (a fresh sign-in) brings it back.
    let agent = |what: &str| {
        run_in(
            logs,
            Command::new(VSC)
                .arg("agent")
                .arg("--home")
                .arg(&agent_home)
                .arg(what),
        )
        .expect_ok()
    };
    agent("lock");
    wait_card(logs, false, SETTLE, &|| sandbox.output());
    agent("unlock");
    wait_card(logs, true, SETTLE, &|| sandbox.output());

    step("6b. ssh and pkcs11-tool, declined");
    // 6b. The phone declines: ssh gets no signature and is refused.
    let ssh = sshd.login(&ssh_dir, logs, &module, &askpass);
    assert!(
        !ssh.ok(),
        "ssh succeeded though the phone declines:\n{}\n{}",
        ssh.report(),
        sshd.log()
    );
    assert_eq!(
        sshd.log().matches(accepted).count(),
        1,
        "sshd accepted a second login:\n{}",
        sshd.log()
    );
    let declined = tmp.join("declined.sig");
    let refused = p11.sign_9a(&pin, &document, &declined);
    assert!(
        !refused.ok(),
        "pkcs11-tool signed though the phone declines:\n{}",
        refused.report()
    );
    drop(sshd);

    step("9. three wrong PINs");
    // 9. Three wrong PINs lock the card: the session ends, the card leaves the reader and the
    //    right PIN no longer helps. (Last: the card stays locked until an RA unlocks it.)
    for attempt in 1..=3 {
        let wrong = p11.run(&["--login", "--pin", "000000", "--list-objects"]);
        assert!(
            !wrong.ok(),
            "wrong PIN {attempt} was accepted:\n{}",
            wrong.report()
        );
        // the third answer is "blocked", unless the card has already left the reader
        let expected: &[&str] = if attempt < 3 {
            &["CKR_PIN_INCORRECT"]
        } else {
            &[
                "CKR_PIN_LOCKED",
                "CKR_TOKEN_NOT_PRESENT",
                "CKR_DEVICE_REMOVED",
            ]
        };
        assert!(
            expected.iter().any(|e| wrong.text().contains(e)),
            "wrong PIN {attempt}: wanted one of {expected:?}:\n{}",
            wrong.report()
        );
    }
    let deadline = Instant::now() + SETTLE;
    let status = loop {
        let status = agent_status(logs, &agent_home);
        if status["state"] == "signed-out" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the session did not end after three wrong PINs: {status}\n{}",
            sandbox.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status["last_end"]
            .as_str()
            .is_some_and(|r| r.contains("card-locked")),
        "the session did not end because the card locked: {status}"
    );
    wait_card(logs, false, SETTLE, &|| sandbox.output());
    let right = p11.run(&["--login", "--pin", &pin, "--list-objects"]);
    assert!(
        !right.ok(),
        "the right PIN worked on a locked card:\n{}",
        right.report()
    );
    let status = sandbox.stop();
    assert!(status.success(), "the sandbox stopped with {status}");
    eprintln!("the virtual card test took {:?}", started.elapsed());
}
