//! Two real `vsc serve` processes on one PostgreSQL database, and one of them SIGKILLed in the
//! middle of a sign-in.
//!
//! Node A is started on a throwaway database; the first RA Manager, a person with a card on a
//! phone (`vsc authenticator`, its own home) and a registered workstation are set up through
//! the real binary, as the other CLI tests do. Node B joins as an operator adds a node: a
//! `cp -a` of A's data directory and the same `--database`. The phone talks to A, the agent
//! (`vsc agent login`, a real process) to B, all over real TLS on loopback.
//!
//! What this proves:
//!
//! 1. A sign-in crosses nodes: the agent opens its request on B, the phone sees it on A and
//!    approves there, the agent collects its ticket from B, and A validates B's ticket.
//! 2. Killing a node mid-sign-in leaves nothing half-written. The kill point: the agent has
//!    opened its request on B and is long-polling B for the outcome, the phone has the request
//!    in front of it (listed on A), and nobody has answered yet; then B gets `kill -9`, a real
//!    SIGKILL of the process (no shutdown, its connections to PostgreSQL die with it). The
//!    phone then approves on A, the surviving node. Afterwards `vsc audit verify` reports an
//!    intact chain with no gap in its sequence numbers, the request is `approved` with no
//!    session (a ticket nobody can collect was never made), every session in the database has
//!    its `session.created` event, every request its `auth.requested` event, every approved or
//!    collected request its `auth.approved` event, and a request is `collected` exactly when it
//!    has a session.
//! 3. The next sign-in succeeds on the surviving node (the agent pointed at A).
//! 4. The killed node restarts from its data directory and serves a cross-node sign-in again.
//! 5. A second SIGKILL of B, inside the transaction that collects the ticket: the phone
//!    approves on A; B, woken by A's notification, starts collecting for its long-polling agent
//!    (in one transaction: request marked collected, session, `session.created`); the test
//!    holds B there (an uncommitted session row of its own for the same request makes B's
//!    insert wait, as in `crates/server/tests/multinode.rs`), sees B's backend waiting in
//!    `pg_stat_activity`, kills B, and releases the hold. B's half-done transaction is rolled
//!    back by PostgreSQL when its dead connection is noticed: the request is still `approved`,
//!    with no session and no `session.created`, and the same checks as above hold.
//! 6. The next sign-in succeeds on the surviving node again.
//! 7. The surviving node stops cleanly on SIGTERM, and the chain still verifies.
//!
//! Needs the PostgreSQL server of `VSC_POSTGRES_SERVER` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, as `cli_db`); the database it makes
//! (`VSC_TEST_DB_PREFIX`, default `vsc_test`, then `_kill_PID_NANOS`) is dropped at the end,
//! also when the test fails. Every wait is bounded.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, VSC};
use sqlx::Connection;

const PASSCODE: &str = "246810";
/// The longest any one `vsc` command may take.
const STEP: Duration = Duration::from_secs(20);
/// The longest a sign-in may wait for its events.
const SIGN_IN: Duration = Duration::from_secs(20);

fn postgres_server() -> String {
    std::env::var("VSC_POSTGRES_SERVER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The throwaway database of this test; dropped when this goes out of scope, panic or not.
struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Database {
        let prefix = std::env::var("VSC_TEST_DB_PREFIX").unwrap_or_else(|_| "vsc_test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("{prefix}_kill_{}_{nanos}", std::process::id());
        let server = postgres_server();
        let url = runtime()
            .block_on(async {
                tokio::time::timeout(STEP, vsc_store::postgres::create_database(&server, &name))
                    .await
            })
            .expect("PostgreSQL answers in time")
            .expect("create an empty PostgreSQL database");
        Database { server, name, url }
    }

    /// One number from the database.
    fn count(&self, sql: &'static str) -> i64 {
        self.scalar(sql, None)
    }

    fn scalar<T>(&self, sql: &'static str, bind: Option<&str>) -> T
    where
        T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        runtime().block_on(async {
            tokio::time::timeout(STEP, async {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let mut query = sqlx::query_scalar::<_, T>(sql);
                if let Some(value) = bind {
                    query = query.bind(value.to_owned());
                }
                let value = query.fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                value
            })
            .await
            .expect("PostgreSQL answers in time")
        })
    }

    fn request_state(&self, request_id: &str) -> String {
        self.scalar(
            "SELECT state FROM auth_requests WHERE id = $1",
            Some(request_id),
        )
    }

    fn sessions_of(&self, request_id: &str) -> i64 {
        self.scalar(
            "SELECT COUNT(*) FROM sessions WHERE request_id = $1",
            Some(request_id),
        )
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let dropped = runtime().block_on(async {
            tokio::time::timeout(
                STEP,
                vsc_store::postgres::drop_database(&self.server, &self.name),
            )
            .await
        });
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "could not drop the test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// Runs `vsc ARGS` (with `stdin` as its input), killing it if it takes longer than [`STEP`].
fn vsc(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(VSC)
        .args(args)
        .env_remove("VSC_PASSCODE")
        .env_remove("VSC_DATABASE_URL")
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
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(STEP) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("vsc {args:?} did not finish within {STEP:?}");
        }
    }
}

/// Runs `vsc ARGS`, which must succeed; its standard output.
fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = vsc(args, stdin);
    assert!(
        out.status.success(),
        "vsc {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    serde_json::from_str(&ok(args, stdin)).expect("--json prints JSON")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Waits for `child` to end, at most `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `vsc agent --json login`, as a workstation runs it: the process becomes the agent, opens
/// the request (its number is a JSON event), waits for the phone and keeps the session until
/// SIGTERM.
struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Agent {
    fn login(home: &Path, uid: &str, server: &Server, fingerprint: &str) -> Agent {
        let mut child = Command::new(VSC)
            .args(["agent", "--home", path(home), "--json", "login", uid])
            .args(["--server", &server.url, "--ca-fingerprint", fingerprint])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vsc agent starts");
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        Agent {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// The next JSON event named `wanted`; fails on a failed sign-in or after `limit`.
    fn event(&mut self, wanted: &str, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no {wanted:?} event within {limit:?}; the agent said:\n{}",
                    self.seen
                )
            });
            self.seen.push_str(&line);
            self.seen.push('\n');
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["event"] == wanted {
                return event;
            }
            assert_ne!(
                event["event"], "sign-in-failed",
                "waiting for {wanted:?}:\n{}",
                self.seen
            );
        }
    }

    /// What the agent has printed so far, and more within `limit`.
    fn output(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        self.seen.clone()
    }

    /// SIGTERM (the agent withdraws a waiting request and logs out), and its exit status.
    fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        wait_exit(&mut self.child, STEP).expect("the agent stops on SIGTERM")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The person's phone and the workstation's agent.
struct People {
    uid: String,
    phone: PathBuf,
    agent: PathBuf,
    fingerprint: String,
}

impl People {
    /// The one sign-in request waiting for the phone (asked of the phone's node, A).
    fn pending(&self) -> serde_json::Value {
        let pending = json(
            &[
                "authenticator",
                "--home",
                path(&self.phone),
                "--json",
                "pending",
                "--wait",
                "10",
            ],
            None,
        );
        let pending = pending.as_array().unwrap();
        assert_eq!(pending.len(), 1, "one request waits: {pending:?}");
        pending[0].clone()
    }

    fn approve(&self, request_id: &str, number: u64) {
        let approved = json(
            &[
                "authenticator",
                "--home",
                path(&self.phone),
                "--json",
                "approve",
                request_id,
                "--number",
                &format!("{number:02}"),
            ],
            Some(PASSCODE),
        );
        assert_eq!(approved["state"], "approved");
    }

    /// Points the workstation's registration at `node` (nodes of one instance share their
    /// registrations; in production they share one public URL, here each has its own port).
    fn agent_uses(&self, node: &Server) {
        let home = vsc_agent::AgentHome::open(&self.agent).unwrap();
        let url = url::Url::parse(&node.url).unwrap();
        vsc_agent::workstation::follow_server(&home, &url).unwrap();
    }

    /// A whole sign-in: the agent on `agent_node`, the phone on its own node. Returns the agent
    /// (signed in, keeping the session), the request id and the ticket.
    fn sign_in(&self, agent_node: &Server) -> (Agent, String, String) {
        self.agent_uses(agent_node);
        let mut agent = Agent::login(&self.agent, &self.uid, agent_node, &self.fingerprint);
        let number = agent.event("number", SIGN_IN)["number"].as_u64().unwrap();
        let request = self.pending();
        let request_id = request["request_id"].as_str().unwrap().to_owned();
        self.approve(&request_id, number);
        let signed_in = agent.event("signed-in", SIGN_IN);
        assert_eq!(signed_in["session"]["uid"], self.uid.as_str());
        let ticket = ok(
            &["agent", "--home", path(&self.agent), "ticket", "--no-auth"],
            None,
        )
        .trim()
        .to_owned();
        assert!(ticket.len() >= 40, "a ticket: {ticket}");
        (agent, request_id, ticket)
    }
}

/// POST the ticket to `node`'s validation endpoint over TLS pinned to the instance root.
fn validate(node: &Server, ticket: &str) -> serde_json::Value {
    let body = format!("{{\"ticket\":\"{ticket}\"}}");
    let out = Command::new("curl")
        .args(["-sSf", "--max-time", "10", "--cacert"])
        .arg(node.data.join("ca/root.pem"))
        .args(["-H", "content-type: application/json", "-d", &body])
        .arg(format!("{}/api/v1/tickets/validate", node.url))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An uncommitted session row for one request, on its own connection: a node that collects
/// that request inserts its own session row and waits for this transaction, in the middle of
/// its own.
struct Hold {
    rt: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
    url: String,
}

impl Hold {
    fn session_of(db: &Database, request_id: &str) -> Hold {
        let rt = runtime();
        let conn = rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            let held = sqlx::query(
                "INSERT INTO sessions (id, ticket_hash, uid, card_id, request_id, workstation_id,
                                       auth_time, last_used, idle_seconds, expires_at)
                 SELECT 'held-by-the-test', decode(md5(random()::text), 'hex'), uid, card_id, id,
                        workstation_id, 0, 0, 0, 0
                 FROM auth_requests WHERE id = $1",
            )
            .bind(request_id.to_owned())
            .execute(&mut conn)
            .await
            .unwrap();
            assert_eq!(held.rows_affected(), 1);
            conn
        });
        Hold {
            rt,
            conn,
            url: db.url.clone(),
        }
    }

    /// The server backend of the node that is collecting, once it waits on this hold.
    fn wait_for_collector(&self) -> i32 {
        self.rt.block_on(async {
            let mut watch = sqlx::PgConnection::connect(&self.url).await.unwrap();
            let deadline = Instant::now() + SIGN_IN;
            loop {
                let waiting: Option<i32> = sqlx::query_scalar(
                    "SELECT pid FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'
                       AND query ILIKE '%INSERT INTO sessions%' AND pid <> pg_backend_pid()",
                )
                .fetch_optional(&mut watch)
                .await
                .unwrap();
                if let Some(pid) = waiting {
                    // It has already written in this transaction: the request marked collected.
                    let wrote: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                         WHERE l.pid = $1 AND c.relname = 'auth_requests'
                           AND l.mode = 'RowExclusiveLock'",
                    )
                    .bind(pid)
                    .fetch_one(&mut watch)
                    .await
                    .unwrap();
                    assert_eq!(wrote, 1, "the collector updated the request first");
                    watch.close().await.unwrap();
                    return pid;
                }
                assert!(
                    Instant::now() < deadline,
                    "no node started collecting within {SIGN_IN:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    }

    /// Rolls the held row back and waits until the collector's backend, whose process is
    /// gone, has ended too (aborting its transaction).
    fn release(mut self, collector: i32) {
        self.rt.block_on(async {
            sqlx::query("ROLLBACK")
                .execute(&mut self.conn)
                .await
                .unwrap();
            let deadline = Instant::now() + STEP;
            loop {
                let alive: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1")
                        .bind(collector)
                        .fetch_one(&mut self.conn)
                        .await
                        .unwrap();
                if alive == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the dead node's backend lives on"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.conn.close().await.unwrap();
        });
    }
}

/// Nothing half-written: the audit chain verifies with no gap, and every row that needs an
/// audit event has it. Returns the number of events.
fn assert_consistent(db: &Database, data: &Path, when: &str) -> u64 {
    let report = json(
        &[
            "audit",
            "verify",
            "--data",
            path(data),
            "--database",
            &db.url,
            "--json",
        ],
        None,
    );
    assert!(
        report["first_broken"].is_null(),
        "{when}: the audit chain is broken: {report}"
    );
    let events = report["events"].as_u64().unwrap();
    let max_seq = db.count("SELECT COALESCE(MAX(seq), 0) FROM audit_events");
    let rows = db.count("SELECT COUNT(*) FROM audit_events");
    assert_eq!(
        (events, rows),
        (max_seq as u64, max_seq),
        "{when}: one chain, no gaps"
    );
    let checks: [(&str, &'static str); 4] = [
        (
            "a session without its session.created event",
            "SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (
                 SELECT 1 FROM audit_events e
                 WHERE e.action = 'session.created' AND e.detail LIKE '%' || s.request_id || '%')",
        ),
        (
            "a sign-in request without its auth.requested event",
            "SELECT COUNT(*) FROM auth_requests r WHERE NOT EXISTS (
                 SELECT 1 FROM audit_events e
                 WHERE e.action = 'auth.requested' AND e.detail LIKE '%' || r.id || '%')",
        ),
        (
            "an approved request without its auth.approved event",
            "SELECT COUNT(*) FROM auth_requests r
             WHERE r.state IN ('approved', 'collected') AND NOT EXISTS (
                 SELECT 1 FROM audit_events e
                 WHERE e.action = 'auth.approved' AND e.detail LIKE '%' || r.id || '%')",
        ),
        (
            "a request collected without a session, or a session of an uncollected request",
            "SELECT COUNT(*) FROM auth_requests r
             WHERE (r.state = 'collected') <> EXISTS (SELECT 1 FROM sessions s WHERE s.request_id = r.id)",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(db.count(sql), 0, "{when}: {what}");
    }
    events
}

#[test]
fn a_node_killed_mid_sign_in_leaves_nothing_half_written() {
    let started = Instant::now();
    // Declared first, dropped last: after every process below is gone.
    let db = Database::create();
    let tmp = tempfile::tempdir().unwrap();
    let a_data = tmp.path().join("node-a");
    let b_data = tmp.path().join("node-b");
    let a = Server::start_with(&a_data, &["--database", &db.url]);
    assert!(a.stdout.contains("No RA Manager has enrolled yet"));

    // The first RA Manager, from the bootstrap activation node A printed and saved.
    let bootstrap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a_data.join("bootstrap.json")).unwrap()).unwrap();
    let link = bootstrap["activation"]["url"].as_str().unwrap().to_owned();
    let ram = tmp.path().join("ram-phone");
    ok(
        &["authenticator", "--home", path(&ram), "enrol", &link],
        Some(PASSCODE),
    );
    ok(&["ra", "--home", path(&ram), "login"], Some(PASSCODE));
    let ra = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["ra", "--home", path(&ram), "--json"];
        full.extend_from_slice(args);
        json(&full, None)
    };
    ra(&["org", "create", "--ods", "RX1", "--name", "Example Trust"]);

    // A clinician with a role and a card on their phone.
    let person = ra(&[
        "person", "create", "--given", "Mary", "--family", "Seacole", "--org", "RX1",
    ]);
    let uid = person["uid"].as_str().unwrap().to_owned();
    ra(&[
        "person",
        "id-check",
        &uid,
        "--evidence",
        "passport",
        "--evidence",
        "proof-of-address",
        "--level",
        "3",
        "--org",
        "RX1",
    ]);
    ra(&[
        "person",
        "position",
        &uid,
        "--org",
        "RX1",
        "--role-code",
        "S8000:G8000:R8000",
        "--role-name",
        "Clinical Practitioner Access Role",
        "--activity",
        "B0570",
    ]);
    let issued = ra(&["card", "issue", &uid, "--org", "RX1"]);
    let phone = tmp.path().join("mary-phone");
    ok(
        &[
            "authenticator",
            "--home",
            path(&phone),
            "enrol",
            issued["code"]["url"].as_str().unwrap(),
        ],
        Some(PASSCODE),
    );
    let status = json(
        &["authenticator", "--home", path(&phone), "--json", "status"],
        None,
    );
    assert_eq!(
        status["server"].as_str().unwrap().trim_end_matches('/'),
        a.url,
        "the phone talks to node A"
    );
    let code = ra(&[
        "workstation",
        "code",
        "--org",
        "RX1",
        "--name",
        "WARD-7-PC-03",
    ]);
    let fingerprint = code["ca_fingerprint"].as_str().unwrap().to_owned();

    // Node B joins: a copy of A's data directory, the same database; no second bootstrap.
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&a_data)
        .arg(&b_data)
        .status()
        .unwrap();
    assert!(copied.success());
    let b = Server::start_with(&b_data, &["--database", &db.url]);
    assert!(!b.stdout.contains("new instance"), "{}", b.stdout);
    assert!(!b.stdout.contains("No RA Manager"), "{}", b.stdout);
    assert_ne!(a.url, b.url);

    // The workstation registers through B and its agent talks to B.
    let agent_home = tmp.path().join("agent");
    let enrolled = json(
        &[
            "agent",
            "--home",
            path(&agent_home),
            "--json",
            "enrol",
            "--server",
            &b.url,
            "--ca-fingerprint",
            &fingerprint,
            "--code",
            code["code"].as_str().unwrap(),
            "--name",
            "WARD-7-PC-03",
        ],
        None,
    );
    assert_eq!(enrolled["organisation"], "RX1");
    let people = People {
        uid: uid.clone(),
        phone,
        agent: agent_home,
        fingerprint,
    };

    // 1. Across nodes: request on B, approval on A, ticket from B, validated on A.
    let (agent, request_id, ticket) = people.sign_in(&b);
    assert_eq!(db.request_state(&request_id), "collected");
    let validated = validate(&a, &ticket);
    assert_eq!(validated["uid"], uid.as_str());
    assert!(agent.stop().success(), "the agent logs out and stops");
    assert_consistent(&db, &a_data, "after a sign-in across nodes");

    // 2. Mid-sign-in: the agent's request is open on B and it long-polls B; the phone on A
    //    has the request in front of it. B dies by SIGKILL.
    people.agent_uses(&b);
    let mut stranded = Agent::login(&people.agent, &uid, &b, &people.fingerprint);
    let number = stranded.event("number", SIGN_IN)["number"]
        .as_u64()
        .unwrap();
    let request = people.pending();
    let request_id = request["request_id"].as_str().unwrap().to_owned();
    assert_eq!(db.request_state(&request_id), "pending");
    let killed = b.kill9();
    assert_eq!(killed.signal(), Some(9), "B died of SIGKILL: {killed:?}");
    // The phone answers on the surviving node.
    people.approve(&request_id, number);
    // Nothing half-written: approved, but no session (B made no ticket), one intact chain.
    assert_eq!(db.request_state(&request_id), "approved");
    assert_eq!(db.sessions_of(&request_id), 0, "a session nobody collected");
    let events = assert_consistent(&db, &a_data, "after B was killed mid-sign-in");
    // The agent's node is gone: its agent never signs in; stopped, it ends its wait.
    let exited = wait_exit(&mut stranded.child, Duration::from_secs(2));
    let said = stranded.output(Duration::from_millis(100));
    assert!(!said.contains("\"signed-in\""), "{said}");
    eprintln!("the agent whose node was killed: exited by itself {exited:?}; said:\n{said}");
    if exited.is_none() {
        let stopped = stranded.stop();
        eprintln!("the stranded agent stopped on SIGTERM: {stopped:?}");
    }

    // 3. The next sign-in, on the surviving node alone.
    let (agent, next_id, ticket) = people.sign_in(&a);
    assert_ne!(next_id, request_id);
    assert_eq!(validate(&a, &ticket)["uid"], uid.as_str());
    assert!(agent.stop().success());
    let old = db.request_state(&request_id);
    assert_ne!(old, "collected", "the request of the killed node");
    assert_eq!(db.sessions_of(&request_id), 0);
    eprintln!("the request opened on the killed node is now {old}");
    assert!(assert_consistent(&db, &a_data, "after the next sign-in") > events);

    // 4. The killed node restarts from its data directory and rejoins.
    let b = Server::start_with(&b_data, &["--database", &db.url]);
    assert!(!b.stdout.contains("new instance"), "{}", b.stdout);
    let (agent, _, ticket) = people.sign_in(&b);
    assert_eq!(validate(&a, &ticket)["uid"], uid.as_str());
    assert!(agent.stop().success());

    // 5. Killed again, inside the transaction that collects. The test holds an uncommitted
    //    session row for the request (PostgreSQL makes B's insert of the same request's
    //    session wait for it), then the phone approves on A; B, woken by A's notification,
    //    starts collecting for its long-polling agent: the request is marked collected and its
    //    session insert waits, uncommitted. B gets SIGKILL there, then the hold is released.
    people.agent_uses(&b);
    let mut caught = Agent::login(&people.agent, &uid, &b, &people.fingerprint);
    let number = caught.event("number", SIGN_IN)["number"].as_u64().unwrap();
    let request_id = people.pending()["request_id"].as_str().unwrap().to_owned();
    let hold = Hold::session_of(&db, &request_id);
    people.approve(&request_id, number);
    let collecting = hold.wait_for_collector();
    let killed = b.kill9();
    assert_eq!(killed.signal(), Some(9), "B died of SIGKILL: {killed:?}");
    hold.release(collecting);
    let said = caught.output(Duration::from_millis(200));
    assert!(!said.contains("\"signed-in\""), "{said}");
    // All or nothing: B's transaction died with it; the request is as the phone left it.
    assert_eq!(db.request_state(&request_id), "approved");
    assert_eq!(
        db.sessions_of(&request_id),
        0,
        "a session without its event"
    );
    assert_consistent(&db, &a_data, "after B was killed inside a collection");
    let _ = caught.stop();

    // 6. The next sign-in succeeds on the surviving node.
    let (agent, _, ticket) = people.sign_in(&a);
    assert_eq!(validate(&a, &ticket)["uid"], uid.as_str());
    assert!(agent.stop().success());

    // 7. The surviving node stops cleanly; the chain verifies with no node running.
    let a_stopped = a.stop();
    assert!(a_stopped.success(), "A on SIGTERM: {a_stopped:?}");
    assert_consistent(&db, &a_data, "after the surviving node stopped");
    eprintln!(
        "two nodes, two SIGKILLs and five sign-ins in {:?}",
        started.elapsed()
    );
}
