//! Round 2 of the phone app test (issue 13): what the workstation side does for a prescription
//! batch, a card operation and a lock with an RA unlock, answering driver.py's questions.
//!
//! * A signed-in session: `vsc agent --json login UID --vpcd ADDR` kept running after the phone
//!   approved it (the agent serves its loopback API and presents the virtual card meanwhile).
//! * A prescription batch: three corpus prescriptions (their stale signatures stripped, as a
//!   prescribing system's unsigned ones arrive) POSTed to the agent's `/v1/eps/sign` with the
//!   agent secret, as a prescribing system does; what the phone must show is worked out here
//!   from the request the server holds, with the shared core's review (`vsc_authenticator::
//!   signing::review`, the code the app runs in WebAssembly). The signed prescriptions then pass
//!   `vsc eps verify` (the instance's root and issuing CA, its CRL) and the independent check
//!   (`crates/eps/tests/independent/eps_check.py`: libxml2's exclusive C14N through lxml, and
//!   OpenSSL); then one prescription with special characters (RS256). A batch is declined: the
//!   agent's call fails with `signing_declined`.
//! * A card operation: `pkcs11-tool --login --sign` with the 9A key through OpenSC, pcscd and
//!   vpcd; the signature verifies with `openssl dgst` against the 9A certificate read off the
//!   card. The card PIN is written to the server's database (the app has no card-PIN screen
//!   yet). Without pcscd/vpcd/OpenSC this part is skipped with a message, unless
//!   `VSC_REQUIRE_BROWSER` is set.
//! * The RA's unlock code (`POST /api/v1/ra/cards/{id}/unlock`, the RA API as the keystore
//!   tests use it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use vsc_proto::CardWithCode;
use vsc_proto::signing::{PendingSigningRequest, SigningItem, SigningKind};

use crate::common::TestServer;
use crate::{AgentRun, Workstation};

/// The corpus prescriptions of the approved batch: three prescribers' kinds, one with several
/// medications.
const BATCH: [&str; 3] = [
    "primary-care__acute__nominated-pharmacy__medical-prescriber.xml",
    "secondary-care__community__acute__nominated-pharmacy__nurse__multiple-medications.xml",
    "secondary-care__homecare__acute__nominated-pharmacy__clinical-practitioner.xml",
];
/// A batch of one: `&`, `<`, non-ASCII names, attributes in unusual order, namespace prefixes.
const SPECIAL: &str = "../special-characters.xml";
/// The declined batch.
const DECLINED_BATCH: [&str; 2] = [
    "primary-care__repeat-prescribing.xml",
    "secondary-care__community__acute__nominated-pharmacy__paramedic.xml",
];

/// The card PIN the app sets through its home screen's form (6 to 8 digits).
pub(crate) const CARD_PIN: &str = "357913";

/// vpcd's second slot by default ("Virtual PCD 00 01", port 35964), so that the CLI's card test
/// (first slot) can run at the same time; `VSC_PHONE_APP_VPCD=127.0.0.1:35963` for the first.
fn vpcd() -> (String, String) {
    let vpcd = std::env::var("VSC_PHONE_APP_VPCD").unwrap_or_else(|_| "127.0.0.1:35964".into());
    let slot = match vpcd.rsplit(':').next() {
        Some("35963") => 0,
        Some("35964") => 1,
        _ => panic!("VSC_PHONE_APP_VPCD={vpcd}: vpcd listens on 127.0.0.1:35963 or :35964"),
    };
    (vpcd, format!("Virtual PCD 00 {slot:02}"))
}

/// Where Debian's opensc-pkcs11 installs the module.
const MODULES: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/opensc-pkcs11.so",
];

/// The card tools, or why the card part cannot run.
pub(crate) struct CardTools {
    module: PathBuf,
    vpcd: String,
    reader: String,
}

impl CardTools {
    /// pcscd with vpcd's reader (started by `scripts/pcscd-up` when not running), OpenSC's
    /// module and tools, openssl. `Err` says what is missing.
    pub(crate) fn find() -> Result<CardTools, String> {
        for tool in ["pkcs11-tool", "opensc-tool", "openssl"] {
            if crate::first_of(&[], tool).is_none() {
                return Err(format!("{tool} is not installed (Debian: opensc, openssl)"));
            }
        }
        if !Path::new("/etc/reader.conf.d/vpcd").is_file() {
            return Err("vpcd is not installed (Debian: vsmartcard-vpcd)".into());
        }
        let module = MODULES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("no OpenSC PKCS#11 module (Debian: opensc-pkcs11)")?;
        let up = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pcscd-up");
        let out = std::process::Command::new(&up)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", up.display()))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/pcscd-up failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let (vpcd, reader) = vpcd();
        Ok(CardTools {
            module,
            vpcd,
            reader,
        })
    }

    /// Whether the reader holds a card, from `opensc-tool --list-readers`.
    async fn present(&self) -> (Option<bool>, String) {
        let out = tokio::process::Command::new("opensc-tool")
            .arg("--list-readers")
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let present = text
            .lines()
            .find(|l| l.trim_end().ends_with(&self.reader))
            .map(|l| l.split_whitespace().nth(1) == Some("Yes"));
        (present, text)
    }

    async fn wait_present(&self, wanted: bool, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (state, text) = self.present().await;
            if state == Some(wanted) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{}: wanted a card present = {wanted} within {limit:?}; opensc-tool says:\n{text}",
                    self.reader
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn pkcs11(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("pkcs11-tool");
        cmd.arg("--module")
            .arg(&self.module)
            .args(["--slot-description", &self.reader])
            .kill_on_drop(true);
        cmd
    }
}

/// Round 2's state between driver.py's questions.
pub(crate) struct Round2 {
    temp: PathBuf,
    uid: String,
    card_id: String,
    ra_token: String,
    card: Result<CardTools, String>,
    /// The signed-in session's agent.
    session: Option<AgentRun>,
    /// Signing requests already shown to the driver.
    seen: Vec<String>,
    /// The agent's answer to the batch under way, and whether it is to be declined.
    eps: Option<(JoinHandle<(u16, Value)>, bool)>,
    /// pkcs11-tool signing, under way: its output.
    card_job: Option<JoinHandle<std::io::Result<std::process::Output>>>,
}

impl Round2 {
    pub(crate) fn new(
        temp: &Path,
        uid: &str,
        card_id: &str,
        ra_token: &str,
        card: Result<CardTools, String>,
    ) -> Round2 {
        let temp = temp.join("round2");
        std::fs::create_dir_all(&temp).unwrap();
        Round2 {
            temp,
            uid: uid.to_owned(),
            card_id: card_id.to_owned(),
            ra_token: ra_token.to_owned(),
            card,
            session: None,
            seen: Vec::new(),
            eps: None,
            card_job: None,
        }
    }

    /// Ends the kept session (SIGTERM: the agent signs out and removes the card).
    pub(crate) async fn end_session(&mut self) -> Option<String> {
        let run = self.session.take()?;
        let (ended, _) = run.stop().await;
        Some(ended)
    }

    /// Answers `m` when it is one of round 2's questions.
    pub(crate) async fn check(
        &mut self,
        s: &TestServer,
        m: &Value,
        workstation: &mut Workstation,
        opened: &mut std::collections::HashMap<String, vsc_proto::signin::AuthRequestCreated>,
    ) -> Option<Value> {
        Some(match m["what"].as_str().unwrap_or_default() {
            "session_open" => self.session_open(s, workstation, opened).await,
            "session_ready" => self.session_ready(m, workstation).await,
            "session_end" => json!({"ok": true, "ended": self.end_session().await}),
            "eps_start" => self.eps_start(s, m).await,
            "eps_result" => self.eps_result(s).await,
            "card_start" => self.card_start(s).await,
            "card_result" => self.card_result(s).await,
            "ra_unlock" => {
                let unlock: CardWithCode = s
                    .post(
                        Some(&self.ra_token),
                        &format!("/api/v1/ra/cards/{}/unlock", self.card_id),
                        &json!({}),
                    )
                    .await
                    .expect("the RA's unlock code");
                json!({"ok": true, "code": unlock.code.code, "url": unlock.code.url})
            }
            // The server's approved-version policy, as an RA sets it (`vsc ra versions deny`):
            // this exact version of the web app (platform `web`) refused, then allowed again.
            "deny_app_version" => {
                let changed: vsc_proto::versions::VersionRuleChanged = s
                    .post(
                        Some(&self.ra_token),
                        vsc_proto::routes::RA_VERSIONS_DENY,
                        &vsc_proto::versions::SetVersionRule {
                            client: "authenticator".into(),
                            // The web app's version is the workspace's (vsc-phone-web's).
                            versions: env!("CARGO_PKG_VERSION").to_owned(),
                            platform: Some("web".into()),
                            reason: Some("withdrawn in the phone app test".into()),
                        },
                    )
                    .await
                    .expect("the RA denies the app's version");
                json!({"ok": true, "rule": changed.rule.id})
            }
            "remove_version_rule" => {
                let id = m["rule"].as_i64().unwrap_or_default().to_string();
                let removed: serde_json::Value = s
                    .post(
                        Some(&self.ra_token),
                        &vsc_proto::routes::fill(vsc_proto::routes::RA_VERSION_RULE_REMOVE, &id),
                        &json!({}),
                    )
                    .await
                    .expect("the RA removes the rule");
                json!({"ok": true, "removed": removed})
            }
            _ => return None,
        })
    }

    /// A sign-in by the agent that stays running (with the virtual card when it can).
    async fn session_open(
        &mut self,
        s: &TestServer,
        workstation: &mut Workstation,
        opened: &mut std::collections::HashMap<String, vsc_proto::signin::AuthRequestCreated>,
    ) -> Value {
        let Workstation::Agent(agent) = workstation else {
            return json!({"ok": false, "skip": "the workstation is the API in-process (no vsc binary): \
                          no agent to sign prescriptions or present the card"});
        };
        let mut card_note = Value::Null;
        match &self.card {
            Ok(card) => {
                if let Err(busy) = card.wait_present(false, Duration::from_secs(10)).await {
                    panic!(
                        "another card holds vpcd's slot (stop other agents presenting a card to {}, \
                         or set VSC_PHONE_APP_VPCD): {busy}",
                        card.vpcd
                    );
                }
                // The PIN was set in the app (#pin-set) before this session was asked for.
                agent.vpcd = Some(card.vpcd.clone());
            }
            Err(why) => card_note = json!(why),
        }
        let answer = workstation.open(s, &self.uid, opened).await;
        if let Workstation::Agent(agent) = workstation {
            agent.vpcd = None;
        }
        let mut answer = answer;
        answer["card_skipped"] = card_note;
        answer
    }

    /// Waits for the kept agent to say `signed-in`, and keeps it running.
    async fn session_ready(&mut self, m: &Value, workstation: &mut Workstation) -> Value {
        let Workstation::Agent(agent) = workstation else {
            return json!({"ok": false, "error": "no agent"});
        };
        let mut run = agent.run.take().expect("an agent waiting for the phone");
        assert_eq!(run.request_id, m["request_id"].as_str().unwrap_or_default());
        loop {
            match run.event(Duration::from_secs(40)).await {
                Some(e) if e["event"] == "signed-in" => {
                    self.session = Some(run);
                    return json!({"ok": true, "event": e});
                }
                Some(e) if e["event"] == "sign-in-failed" => {
                    let (ended, seen) = run.stop().await;
                    return json!({"ok": false, "event": e, "agent": ended, "said": seen});
                }
                Some(_) => {}
                None => {
                    let (ended, seen) = run.stop().await;
                    return json!({"ok": false, "error": "the agent did not sign in within 40 s",
                                  "agent": ended, "said": seen});
                }
            }
        }
    }

    /// The newest pending signing request of the card that the driver has not seen, waited for.
    async fn pending_signing(
        &mut self,
        s: &TestServer,
        kind: &str,
    ) -> Option<PendingSigningRequest> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let rows: Vec<SigningRow> = sqlx::query_as(
                "SELECT id, kind, algorithm, workstation, role, items, created_at, expires_at
                     FROM signing_requests WHERE card_id = $1 AND state = 'pending' AND kind = $2
                     ORDER BY created_at DESC",
            )
            .bind(&self.card_id)
            .bind(kind)
            .fetch_all(s.state.store().pool())
            .await
            .unwrap();
            if let Some((id, kind, algorithm, ws, role, items, created, expires)) =
                rows.into_iter().find(|r| !self.seen.contains(&r.0))
            {
                self.seen.push(id.clone());
                let stored: Vec<Value> = serde_json::from_str(&items).unwrap();
                let items: Vec<SigningItem> = stored
                    .into_iter()
                    .map(|i| serde_json::from_value(i["item"].clone()).unwrap())
                    .collect();
                let kind: SigningKind = serde_json::from_value(json!(kind)).unwrap();
                return Some(PendingSigningRequest {
                    request_id: id,
                    uid: self.uid.clone(),
                    kind,
                    algorithm,
                    workstation: ws,
                    role,
                    items,
                    created_at: time::OffsetDateTime::from_unix_timestamp(created).unwrap(),
                    expires_at: time::OffsetDateTime::from_unix_timestamp(expires).unwrap(),
                });
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A prescribing system asks the agent to sign a batch; answers what the phone must show.
    async fn eps_start(&mut self, s: &TestServer, m: &Value) -> Value {
        let decline = m["decline"].as_bool().unwrap_or(false);
        let algorithm = m["algorithm"].as_str().unwrap_or("RS1").to_owned();
        if self.session.is_none() {
            return json!({"ok": false, "error": "no signed-in agent session"});
        }
        let home = self.agent_home_of_session();
        let names: &[&str] = match (decline, m["set"].as_str()) {
            (true, _) => &DECLINED_BATCH,
            (false, Some("special")) => &[SPECIAL],
            (false, _) => &BATCH,
        };
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eps/tests/data/corpus");
        let prescriptions: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let xml = std::fs::read_to_string(corpus.join(name))
                    .unwrap_or_else(|e| panic!("corpus prescription {name}: {e}"));
                let unsigned = vsc_eps::sign::strip_signature(&xml).unwrap();
                json!({"id": format!("rx-{}", i + 1), "xml": unsigned})
            })
            .collect();
        let body = json!({
            "algorithm": algorithm,
            "stamp_author_time": true,
            "prescriptions": prescriptions,
        });
        let call = tokio::spawn(async move { agent_call(&home, "/v1/eps/sign", &body).await });
        let Some(request) = self.pending_signing(s, "prescriptions").await else {
            let answer = if call.is_finished() {
                call.await.unwrap()
            } else {
                call.abort();
                (0, json!("still waiting"))
            };
            return json!({"ok": false, "error": format!(
                "no prescription signing request reached the server within 30 s; the agent's \
                 API answered {answer:?}")});
        };
        self.eps = Some((call, decline));
        let review = vsc_authenticator::signing::review(&request)
            .unwrap_or_else(|e| panic!("the core refuses the batch the agent sent: {e}"));
        let view = serde_json::to_value(review.view()).unwrap();
        let items: Vec<Value> = view["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let lines: Vec<String> = item["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_str().unwrap().to_owned())
                    .collect();
                // The medication lines: "1. NAME [dm+d CODE]" and its dose, quantity and the
                // like, up to the next medication.
                let medication: Vec<&String> = lines
                    .iter()
                    .skip_while(|l| !starts_numbered(l))
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                let prescriber = lines
                    .iter()
                    .find(|l| l.trim_start().starts_with("Prescriber:"));
                json!({"id": item["id"], "lines": lines, "medication": medication,
                       "prescriber": prescriber})
            })
            .collect();
        json!({
            "ok": true,
            "request_id": request.request_id,
            "count": items.len(),
            "header": view["header"],
            "items": items,
            "refused": view["refused"],
        })
    }

    fn agent_home_of_session(&self) -> PathBuf {
        self.temp.parent().unwrap().join("agent")
    }

    /// The agent's answer to the batch; for an approved one, the signed prescriptions checked by
    /// `vsc eps verify` and independently.
    async fn eps_result(&mut self, s: &TestServer) -> Value {
        let Some((call, declined)) = self.eps.take() else {
            return json!({"ok": false, "error": "no batch under way"});
        };
        let (status, answer) = match tokio::time::timeout(Duration::from_secs(60), call).await {
            Ok(r) => r.unwrap(),
            Err(_) => {
                return json!({"ok": false, "error": "the agent's /v1/eps/sign did not answer within 60 s"});
            }
        };
        let request_id = self.seen.last().cloned().unwrap_or_default();
        let db_state: Option<(String,)> =
            sqlx::query_as("SELECT state FROM signing_requests WHERE id = $1")
                .bind(&request_id)
                .fetch_optional(s.state.store().pool())
                .await
                .unwrap();
        let db_state = db_state.map(|r| r.0);
        if declined || status != 200 {
            return json!({"ok": true, "status": status, "answer": answer, "db_state": db_state});
        }
        let dir = self.temp.join(format!("signed-{request_id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = Vec::new();
        for signed in answer["signed"].as_array().cloned().unwrap_or_default() {
            let path = dir.join(format!("{}.xml", signed["id"].as_str().unwrap()));
            std::fs::write(&path, signed["xml"].as_str().unwrap()).unwrap();
            files.push(path);
        }
        // What a receiver trusts: the instance's root and issuing CA, and the issuing CA's CRL.
        let trust = self.temp.join("trust.pem");
        let crl = self.temp.join("issuing.crl");
        let root = crate::fetch(s, "/ca/root.pem").await.2;
        let issuing = crate::fetch(s, "/ca/issuing.pem").await.2;
        std::fs::write(&trust, [root, issuing].concat()).unwrap();
        std::fs::write(&crl, crate::fetch(s, "/ca/issuing.crl").await.2).unwrap();
        let vsc = crate::vsc_binary().expect("the vsc binary (the agent ran)");
        let out = tokio::process::Command::new(&vsc)
            .args(["eps", "verify", "--json", "--trust"])
            .arg(&trust)
            .arg("--crl")
            .arg(&crl)
            .args(&files)
            .output()
            .await
            .unwrap();
        let reports: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let all_passed = reports.as_array().is_some_and(|r| {
            r.len() == files.len()
                && r.iter().all(|r| {
                    r["checks"].as_array().is_some_and(|c| {
                        !c.is_empty() && c.iter().all(|c| c["outcome"] == "passed")
                    })
                })
        });
        let verify = json!({
            "ok": out.status.success() && all_passed,
            "output": format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        });
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../eps/tests/independent/eps_check.py");
        let mut independent = Vec::new();
        for file in &files {
            let out = tokio::process::Command::new("/usr/bin/python3")
                .arg(&script)
                .arg(file)
                .output()
                .await
                .expect("/usr/bin/python3 with python3-lxml (the test command installs them)");
            independent.push(json!({
                "file": file.file_name().unwrap().to_string_lossy(),
                "ok": out.status.success(),
                "output": format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_owned(),
            }));
        }
        eprintln!(
            "phone_app: the batch {request_id}: {} signed, `vsc eps verify` {}, independent {independent:?}",
            files.len(),
            verify["ok"]
        );
        json!({
            "ok": true,
            "status": status,
            "signed": files.len(),
            "failed_signatures": answer["failed_signatures"],
            "verify": verify,
            "independent": independent,
            "db_state": db_state,
        })
    }

    /// `pkcs11-tool --sign` with the 9A key, started; answers what the phone must show.
    async fn card_start(&mut self, s: &TestServer) -> Value {
        let card = match &self.card {
            Ok(card) => card,
            Err(why) => return json!({"ok": false, "skip": why}),
        };
        if self.session.is_none() {
            return json!({"ok": false, "error": "no signed-in agent session"});
        }
        if let Err(e) = card.wait_present(true, Duration::from_secs(20)).await {
            let said = self
                .session
                .as_mut()
                .map(|r| {
                    while let Ok(line) = r.lines.try_recv() {
                        r.seen.push_str(&line);
                        r.seen.push('\n');
                    }
                    r.seen.clone()
                })
                .unwrap_or_default();
            return json!({"ok": false, "error": format!(
                "the agent's session did not present the card: {e}; the agent said:\n{said}")});
        }
        let cert = self.temp.join("card-9a.der");
        let read = card
            .pkcs11()
            .args(["--read-object", "--type", "cert", "--id", "01", "-o"])
            .arg(&cert)
            .output()
            .await
            .unwrap();
        if !read.status.success() {
            return json!({"ok": false, "error": format!("pkcs11-tool --read-object (9A certificate): {}{}",
                String::from_utf8_lossy(&read.stdout), String::from_utf8_lossy(&read.stderr))});
        }
        let document = self.temp.join("card-document.txt");
        std::fs::write(
            &document,
            b"a document signed with the phone app's virtual smartcard\n",
        )
        .unwrap();
        let signature = self.temp.join("card-signature.der");
        let mut sign = card.pkcs11();
        sign.args([
            "--login",
            "--pin",
            CARD_PIN,
            "--sign",
            "--id",
            "01",
            "-m",
            "ECDSA-SHA256",
        ])
        .args(["--signature-format", "openssl", "-i"])
        .arg(&document)
        .arg("-o")
        .arg(&signature);
        self.card_job = Some(tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(90), sign.output())
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::other(
                        "pkcs11-tool did not finish within 90 s",
                    ))
                })
        }));
        let Some(request) = self.pending_signing(s, "card").await else {
            let job = self.card_job.take().unwrap();
            let out = if job.is_finished() {
                format!("{:?}", job.await.unwrap())
            } else {
                job.abort();
                "still running".into()
            };
            return json!({"ok": false, "error": format!(
                "no card operation reached the server within 30 s; pkcs11-tool: {out}")});
        };
        let slot = request.items.first().and_then(|i| i.slot.clone());
        json!({
            "ok": true,
            "request_id": request.request_id,
            "workstation": request.workstation,
            "slot": slot,
            "description": request.items.first().and_then(|i| i.description.clone()),
        })
    }

    /// pkcs11-tool's result, and the signature checked with openssl against the card's 9A
    /// certificate.
    async fn card_result(&mut self, s: &TestServer) -> Value {
        let Some(job) = self.card_job.take() else {
            return json!({"ok": false, "error": "no card operation under way"});
        };
        let out = match job.await.unwrap() {
            Ok(out) => out,
            Err(e) => return json!({"ok": false, "error": e.to_string()}),
        };
        let request_id = self.seen.last().cloned().unwrap_or_default();
        let db_state: Option<(String,)> =
            sqlx::query_as("SELECT state FROM signing_requests WHERE id = $1")
                .bind(&request_id)
                .fetch_optional(s.state.store().pool())
                .await
                .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let signature = self.temp.join("card-signature.der");
        if !out.status.success() || !signature.exists() {
            return json!({"ok": true, "signed": false, "pkcs11_tool": said, "db_state": db_state});
        }
        let public = self.temp.join("card-9a.pub.pem");
        let x509 = tokio::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
            .arg(self.temp.join("card-9a.der"))
            .arg("-out")
            .arg(&public)
            .output()
            .await
            .unwrap();
        assert!(
            x509.status.success(),
            "openssl x509 on the card's 9A certificate: {x509:?}"
        );
        let verify = |file: PathBuf| {
            let public = public.clone();
            let signature = signature.clone();
            async move {
                tokio::process::Command::new("openssl")
                    .args(["dgst", "-sha256", "-verify"])
                    .arg(&public)
                    .arg("-signature")
                    .arg(&signature)
                    .arg(file)
                    .output()
                    .await
                    .unwrap()
            }
        };
        let good = verify(self.temp.join("card-document.txt")).await;
        let other = self.temp.join("card-other.txt");
        std::fs::write(&other, b"not what was signed\n").unwrap();
        let bad = verify(other).await;
        json!({
            "ok": true,
            "signed": true,
            "verified": good.status.success() && String::from_utf8_lossy(&good.stdout).contains("Verified OK"),
            "other_refused": !bad.status.success(),
            "openssl": format!("{}{}", String::from_utf8_lossy(&good.stdout), String::from_utf8_lossy(&good.stderr)),
            "pkcs11_tool": said,
            "db_state": db_state,
        })
    }
}

/// A signing request as the server keeps it: id, kind, algorithm, workstation, role, items,
/// created, expires.
type SigningRow = (String, String, String, String, String, String, i64, i64);

/// "1. Paracetamol …": a numbered medication line.
fn starts_numbered(line: &str) -> bool {
    let t = line.trim_start();
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && t[digits..].starts_with(". ")
}

/// POST `body` to the running agent's loopback API (its address in agent.port, its secret in
/// agent.secret), as a prescribing system does: (status, JSON answer).
async fn agent_call(home: &Path, path: &str, body: &Value) -> (u16, Value) {
    let address = std::fs::read_to_string(home.join("agent.port"))
        .unwrap_or_else(|e| panic!("the agent's agent.port: {e}"));
    let secret = std::fs::read_to_string(home.join("agent.secret"))
        .unwrap_or_else(|e| panic!("the agent's agent.secret: {e}"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(150))
        .build()
        .unwrap();
    let response = client
        .post(format!("http://{}{path}", address.trim()))
        .header("X-Vsc-Agent-Secret", secret.trim())
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            let answer = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
            (status, answer)
        }
        Err(e) => (0, json!(e.to_string())),
    }
}
