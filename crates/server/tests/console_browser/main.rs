//! The RA console (`/ra`) in a real browser: headless Chromium driven over WebDriver (selenium)
//! by `driver.py` (beside this file) against the real server over TLS on loopback. The phones
//! are the real authenticator library: this test approves on them with the number the page
//! shows, and enrols a new phone with the activation it decodes from the QR code on the page.
//!
//! Checked, in order: the RA Manager opens `/ra`, is sent to the provider's sign-in page, types
//! their UID, the phone approves with the number shown and the page continues by itself to the
//! dashboard (the `__Host-` session cookie Secure, HttpOnly, SameSite=Strict; no CSP violation
//! and every form control labelled, on every page); search and a person's page, on a laptop and
//! a tablet; the person actions and bulk issuance (see `driver.py`); and an RA Agent of RX1 who
//! does not find RY2's people and is refused RY2's person's page with the API's own message.
//!
//! Screenshots go to `docs/screenshots/` when `VSC_WRITE_SCREENSHOTS=1`, else to a temporary
//! directory (so a test run never rewrites the checkout).
//!
//! Needs Debian's `chromium`, `chromium-driver`, `python3-selenium` and `zbar-tools`
//! (scripts/test installs them). Without them the test says so and passes, unless
//! `VSC_REQUIRE_BROWSER` is set (as scripts/test does), when it fails.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../browser/driver.rs"]
mod driver;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vsc_authenticator::{ClientError, PhoneLink};
use vsc_proto::bulk::{BulkIssueReport, BulkIssueRequest};
use vsc_proto::{CreatePerson, Person};

use crate::common::{Phone, Ra, TestServer, passcode, start};
use crate::driver::Driver;

/// The whole conversation, browser included, must finish within this.
const OVERALL: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ra_works_in_the_console_in_chromium() {
    let tools = match Tools::find() {
        Ok(t) => t,
        Err(missing) => {
            let required =
                std::env::var("VSC_REQUIRE_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0");
            assert!(
                !required,
                "VSC_REQUIRE_BROWSER is set but the browser test cannot run: {missing}"
            );
            eprintln!(
                "SKIPPED console_browser: {missing}. Install chromium chromium-driver \
                 python3-selenium zbar-tools (scripts/test does), or set VSC_REQUIRE_BROWSER=1 to \
                 make this a failure."
            );
            return;
        }
    };
    let started = Instant::now();
    tokio::time::timeout(OVERALL, run(tools))
        .await
        .unwrap_or_else(|_| panic!("the browser test did not finish within {OVERALL:?}"));
    eprintln!(
        "console_browser: passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The programs the test needs.
struct Tools {
    python: PathBuf,
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    /// Debian's python3 (which has Debian's packages; a `python3` on PATH may be a pyenv
    /// without them), chromium, chromedriver and zbarimg, or what is missing.
    fn find() -> Result<Tools, String> {
        let python = first_of(&["/usr/bin/python3"], "python3").ok_or("no python3")?;
        let chromium = first_of(&["/usr/bin/chromium"], "chromium").ok_or("no chromium")?;
        let chromedriver =
            first_of(&["/usr/bin/chromedriver"], "chromedriver").ok_or("no chromedriver")?;
        first_of(&["/usr/bin/zbarimg"], "zbarimg").ok_or("no zbarimg (zbar-tools)")?;
        let probe = std::process::Command::new(&python)
            .args(["-c", "import selenium"])
            .output()
            .map_err(|e| format!("{} cannot run: {e}", python.display()))?;
        if !probe.status.success() {
            return Err(format!(
                "{} cannot import selenium: {}",
                python.display(),
                String::from_utf8_lossy(&probe.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ));
        }
        Ok(Tools {
            python,
            chromium,
            chromedriver,
        })
    }
}

/// The first of `paths` that exists, else `name` on PATH.
fn first_of(paths: &[&str], name: &str) -> Option<PathBuf> {
    if let Some(p) = paths.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Where the screenshots go: `docs/screenshots` when asked for, else a temporary directory.
fn screenshots(temp: &Path) -> PathBuf {
    if std::env::var("VSC_WRITE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        docs.canonicalize().unwrap()
    } else {
        let dir = temp.join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

/// A person registered by the RA API, with the given names.
async fn person(s: &TestServer, token: &str, org: &str, given: &str, family: &str) -> Person {
    s.post(
        Some(token),
        "/api/v1/ra/people",
        &CreatePerson {
            given_name: given.to_owned(),
            family_name: family.to_owned(),
            email: Some(format!(
                "{}.{}@{}.nhs.example",
                given.to_lowercase(),
                family.to_lowercase(),
                org.to_lowercase()
            )),
            organisation: org.to_owned(),
        },
    )
    .await
    .expect("create person")
}

/// A person at `org` with an identity check, a position and a card enrolled on a phone.
async fn person_with_phone(
    s: &TestServer,
    token: &str,
    org: &str,
    given: &str,
    family: &str,
) -> String {
    let uid = person(s, token, org, given, family).await.uid;
    s.id_check(token, &uid, org).await;
    s.assign_position(token, &uid, org, "S8000:G8000:R8000")
        .await
        .unwrap();
    let card = s.issue_card(token, &uid, org).await;
    s.enrol(&Phone::new(), &card.code.url).await.expect("enrol");
    uid
}

/// Approves the newest request on `phone` with `number`.
async fn approve(phone: &Phone, number: u8) {
    let link = PhoneLink::new(&phone.home).unwrap();
    let pending = link.pending(5).await.unwrap();
    let request = pending.last().expect("a request on the phone").clone();
    link.approve(&request, number, &passcode()).await.unwrap();
}

async fn run(tools: Tools) {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    s.create_org(t, "RY2").await;
    // Some people to find, in two organisations.
    let listed = person_with_phone(&s, t, "RX1", "Amara", "Okafor").await;
    person_with_phone(&s, t, "RX1", "Tom", "Okafort").await;
    person(&s, t, "RX1", "Priya", "Shah").await;
    let other = person(&s, t, "RY2", "Rhys", "Morgan").await;
    s.id_check(t, &other.uid, "RY2").await;
    let agent = s.new_ra(t, "RX1", "ra-agent", &[]).await;
    // What the API says to the agent about RY2's person: the console must say the same.
    let refusal = match s
        .get::<Person>(
            Some(&agent.token),
            &format!("/api/v1/ra/people/{}", other.uid),
        )
        .await
    {
        Err(ClientError::Server {
            status, message, ..
        }) => {
            assert_eq!(status, 403, "{message}");
            message
        }
        other => panic!("the API let an RA Agent of RX1 read RY2's person: {other:?}"),
    };

    // A file for RY2 from the agent: what the API's dry run says.
    let agent_email = "rhian.evans@ry2.nhs.example";
    let agent_csv = format!(
        "given_name,family_name,email,organisation,role_code,activities,evidence,level,checker_uid\n\
         Rhian,Evans,{agent_email},RY2,S8000:G8000:R8000,B0570,passport driving-licence,3,{}\n",
        ram.uid
    );
    let agent_report: BulkIssueReport = s
        .post(
            Some(&agent.token),
            "/api/v1/ra/bulk-issue",
            &BulkIssueRequest {
                csv: agent_csv.clone(),
                dry_run: true,
            },
        )
        .await
        .expect("the agent's dry run");
    assert_eq!(agent_report.rows.len(), 1);
    assert!(
        !agent_report.rows[0].errors.is_empty(),
        "the API lets an RA Agent of RX1 issue at RY2: {agent_report:?}"
    );
    let agent_bulk = json!({
        "csv": agent_csv,
        "errors": agent_report.rows[0].errors.iter().map(|e| json!({"code": e.code, "message": e.message})).collect::<Vec<_>>(),
    });

    let temp = tempfile::tempdir().unwrap();
    let shots = screenshots(temp.path());
    let bulk = bulk_case(&s, &ram).await;

    let mut d = Driver::spawn(
        &tools.python,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console_browser/driver.py"),
        "console_browser",
    )
    .await;
    d.send(&json!({"config": {
        "base": s.state.issuer(),
        "chromium": tools.chromium,
        "chromedriver": tools.chromedriver,
        "screenshots": shots,
        "failures": temp.path(),
        "ram_uid": ram.uid,
        "search": "Okafor",
        "person_listed": "Okafor, Amara",
        "person_name": "Amara Okafor",
        "person_uid": listed,
        "other_org_person": {
            "uid": other.uid,
            "given_name": other.given_name,
            "family_name": other.family_name,
        },
        "agent": {"uid": agent.uid, "refusal": refusal, "bulk": agent_bulk},
        "new_person": {
            "given_name": "Mary",
            "family_name": "Seacole",
            "email": "mary.seacole@rx1.nhs.example",
        },
        "bulk": bulk.config,
    }}))
    .await;

    let phones = Phones {
        ram: &ram,
        agent: &agent,
    };
    let mut enrolled: Vec<(String, Phone)> = Vec::new();
    let done = loop {
        let m = d.next().await;
        match m["event"].as_str().unwrap_or_default() {
            "number" => {
                let number = u8::try_from(m["number"].as_u64().unwrap()).unwrap();
                let phone = phones.of(m["who"].as_str().unwrap());
                approve(phone, number).await;
                eprintln!(
                    "console_browser: {} approved {} with {number}",
                    m["who"], m["why"]
                );
                d.send(&json!({"approved": true})).await;
            }
            "activation" => {
                let url = m["url"].as_str().unwrap();
                let phone = Phone::new();
                let done = s
                    .enrol(&phone, url)
                    .await
                    .unwrap_or_else(|e| panic!("a phone cannot enrol with the QR's {url}: {e}"));
                assert_eq!(s.card_state(&done.card_id).await, "active");
                eprintln!(
                    "console_browser: a phone enrolled with the QR code: {} card {}",
                    done.uid, done.card_id
                );
                d.send(&json!({"enrolled": true, "uid": done.uid, "card": done.card_id}))
                    .await;
                enrolled.push((done.card_id, phone));
            }
            "unlock" => {
                let url = m["url"].as_str().unwrap();
                let card = m["card"].as_str().unwrap();
                let (_, phone) = enrolled
                    .iter()
                    .find(|(c, _)| c == card)
                    .unwrap_or_else(|| panic!("no phone holds card {card}"));
                vsc_authenticator::redeem_unlock(&phone.home, url, &passcode())
                    .await
                    .unwrap_or_else(|e| {
                        panic!("the phone cannot redeem the unlock QR's {url}: {e}")
                    });
                assert_eq!(s.card_state(card).await, "active");
                d.send(&json!({"ok": true})).await;
            }
            "check" => {
                let answer = check(&s, &m, &bulk).await;
                d.send(&answer).await;
            }
            "done" => break m,
            other => panic!("driver.py sent {m} ({other})"),
        }
    };
    d.finish().await;
    assert_eq!(
        people_with_email(&s, &bulk.emails[0]).await,
        1,
        "the good row ran"
    );
    assert_eq!(
        people_with_email(&s, &bulk.emails[1]).await,
        0,
        "the bad row did not"
    );
    for gap in done["missing"].as_array().unwrap() {
        eprintln!("console_browser: NOT COVERED: {}", gap.as_str().unwrap());
    }
    eprintln!("console_browser: covered {}", done["covered"]);
    s.assert_audit_intact().await;
}

/// The phones the pages ask to approve on.
struct Phones<'a> {
    ram: &'a Ra,
    agent: &'a Ra,
}

impl Phones<'_> {
    fn of(&self, who: &str) -> &Phone {
        match who {
            "ram" => &self.ram.phone,
            "agent" => &self.agent.phone,
            _ => panic!("no phone {who:?}"),
        }
    }
}

/// The bulk upload: a good and a bad row, and the errors the API names for the bad one.
struct Bulk {
    config: Value,
    emails: [String; 2],
    /// The email of the RY2 row the RA Agent of RX1 tries.
    agent_email: String,
}

async fn bulk_case(s: &TestServer, ram: &Ra) -> Bulk {
    let good = "grace.hopper@rx1.nhs.example";
    let bad = "ada.lovelace@rx1.nhs.example";
    let csv = format!(
        "given_name,family_name,email,organisation,role_code,role_name,activities,evidence,level,checker_uid\n\
         Grace,Hopper,{good},RX1,S8000:G8000:R8000,Clinical Practitioner Access Role,B0570 B0278,passport driving-licence,3,{checker}\n\
         Ada,Lovelace,{bad},RX1,S8000:G8000:R8000,Clinical Practitioner Access Role,B0570,library-card,3,{checker}\n",
        checker = ram.uid
    );
    // What the API's dry run says of the file: the console's preview must say the same.
    let report: BulkIssueReport = s
        .post(
            Some(&ram.token),
            "/api/v1/ra/bulk-issue",
            &BulkIssueRequest {
                csv: csv.clone(),
                dry_run: true,
            },
        )
        .await
        .expect("the API's dry run");
    assert_eq!(report.rows.len(), 2, "{report:?}");
    assert!(report.rows[0].is_ok(), "the good row: {:?}", report.rows[0]);
    assert!(
        !report.rows[1].errors.is_empty(),
        "the bad row: {:?}",
        report.rows[1]
    );
    Bulk {
        config: json!({
            "csv": csv,
            "good_row": report.rows[0].row,
            "bad_row": report.rows[1].row,
            "bad_errors": report.rows[1].errors.iter().map(|e| json!({"code": e.code, "message": e.message})).collect::<Vec<_>>(),
        }),
        emails: [good.to_owned(), bad.to_owned()],
        agent_email: "rhian.evans@ry2.nhs.example".to_owned(),
    }
}

/// How many people are registered with `email`.
async fn people_with_email(s: &TestServer, email: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM people WHERE email = $1")
        .bind(email)
        .fetch_one(s.state.store().pool())
        .await
        .unwrap();
    n
}

/// Answers the driver's questions about the server's state.
async fn check(s: &TestServer, m: &Value, bulk: &Bulk) -> Value {
    match m["what"].as_str().unwrap_or_default() {
        "bulk_written" => {
            let mut people = 0;
            for email in &bulk.emails {
                people += people_with_email(s, email).await;
            }
            json!({"ok": true, "people": people})
        }
        "agent_bulk_written" => {
            json!({"ok": true, "people": people_with_email(s, &bulk.agent_email).await})
        }
        "card_state" => {
            let card = m["card"].as_str().unwrap();
            json!({"ok": true, "state": s.card_state(card).await})
        }
        other => panic!("driver.py asked about {other:?}"),
    }
}
