//! The phone web app (`/app/`) end to end: headless Chromium at phone size (390×844 CSS
//! pixels, pixel ratio 3, a mobile user agent), driven over WebDriver (selenium) by `driver.py`
//! (beside this file), against the real server over real TLS on loopback. The app is the one
//! the server embeds (`crates/server/app/`), its core the WebAssembly build of the shared Rust
//! core; nothing of the phone is simulated.
//!
//! Checked, in order:
//! * before any browser: `/app/` carries the strict CSP, and every script and style sheet of the
//!   page has a `sha384-` integrity attribute that matches the bytes the server sends;
//! * the service worker is active, the page has no inline script and no inline handler, and the
//!   browser reports no CSP violation on any screen;
//! * an activation link for another server's origin is refused and leaves the code unused;
//! * the clinician enrols with the activation link an RA issued (`/app/#code=…&fp=…`), sets a
//!   passcode; the status screen shows their UID and name; the server has the card active on a
//!   device of platform `web`;
//! * a workstation starts a sign-in with `vsc agent --json login UID` (a workstation registered
//!   with `vsc agent enrol`); the phone shows the workstation, organisation, address and time
//!   left; a wrong passcode is refused with the server's count and counted in the audit log; the
//!   number and the right passcode then approve, the agent says `signed-in`, and the ticket it
//!   gives an application (`vsc agent ticket`) validates for the clinician;
//! * the next sign-ins: declined (the agent's sign-in fails, `declined`); a wrong number (the
//!   server's message on the phone, `failed`); "I didn't do this" (`reported`, the server's
//!   alert, and the next sign-in refused while the card is blocked);
//! * round 2 (`round2.rs`): a session kept by `vsc agent login --vpcd` after the phone approved
//!   it; a prescribing system posts a batch of three corpus prescriptions to the agent's
//!   `/v1/eps/sign`: the `signing` screen shows the count, and each item's medication lines and
//!   prescriber as the shared core renders them; approved with the passcode, the signed
//!   prescriptions pass `vsc eps verify` (the instance's CA and CRL) and the independent check
//!   (libxml2's exclusive C14N through lxml, and OpenSSL); the same for a batch of one with
//!   special characters signed with RS256; a batch declined with `#signing-decline` fails the
//!   agent's call with `signing_declined`;
//! * `pkcs11-tool --sign` with the 9A key of the virtual card (OpenSC, pcscd, vpcd's second
//!   slot): the `card` screen shows the workstation, slot and purpose; approved with the
//!   passcode, the signature verifies with openssl against the 9A certificate read off the card
//!   (skipped with a message without pcscd/vpcd/OpenSC, a failure with `VSC_REQUIRE_BROWSER`);
//! * three wrong passcodes on a sign-in lock the card (the `locked` screen, the server's card
//!   locked, still shown when the app is reopened); the RA's unlock code with a new passcode
//!   unlocks it in the app; the old passcode is then refused and the new one signs in;
//! * the `/activate` landing page's "Set up in this browser" link carries the code into the
//!   app, and a second person's activation is refused on the enrolled phone (one person per
//!   device), the code left unused;
//! * a second phone (a fresh browser whose fake camera shows the QR code of a third person's
//!   activation letter, the PNG `vsc ra card reactivate --qr-png` writes) enrols by "Scan the
//!   QR code";
//! * offline: with the network emulated offline and the server stopped, reloading the app shows
//!   the status screen from the service worker's shell.
//!
//! The `vsc` binary belongs to another package: the test uses the one beside its own executable
//! (`cargo test --workspace` builds it) when it is newer than its sources; otherwise it says so
//! and makes the agent's calls in-process (a registered workstation's signed open and signed
//! collection, through the shared harness). `VSC_PHONE_APP_WORKSTATION=api` forces the latter.
//!
//! Screenshots of every screen (phone-app-<screen>.png) go to `$VSC_SCREENSHOTS_DIR` when it is
//! set, else to a temporary directory (so a test run never rewrites the checkout).
//!
//! Needs Debian's `chromium`, `chromium-driver` and `python3-selenium` (scripts/test installs
//! them). Without them the test says so and passes, unless `VSC_REQUIRE_BROWSER` is set (as
//! scripts/test does), when it fails.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../browser/driver.rs"]
mod driver;
mod qr_letter;
mod round2;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use vsc_authenticator::ClientError;
use vsc_proto::signin::AuthRequestCreated;
use vsc_proto::{CardWithCode, CreatePerson, Person};

use crate::common::{TestServer, auth_context, start};
use crate::driver::Driver;

/// The whole conversation, browser included, must finish within this (enrolment runs Argon2id
/// and RSA key generation in the browser, on a shared machine).
const OVERALL: Duration = Duration::from_secs(300);

/// The workstation the sign-ins come from.
const WORKSTATION: &str = "PC-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_enrols_and_signs_in_with_the_phone_app_in_chromium() {
    let tools = match Tools::find() {
        Ok(t) => t,
        Err(missing) => {
            assert!(
                !require_browser(),
                "VSC_REQUIRE_BROWSER is set but the browser test cannot run: {missing}"
            );
            eprintln!(
                "SKIPPED phone_app: {missing}. Install chromium chromium-driver python3-selenium \
                 (scripts/test does), or set VSC_REQUIRE_BROWSER=1 to make this a failure."
            );
            return;
        }
    };
    let started = Instant::now();
    tokio::time::timeout(OVERALL, run(tools))
        .await
        .unwrap_or_else(|_| panic!("the phone app test did not finish within {OVERALL:?}"));
    eprintln!(
        "phone_app: passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `VSC_REQUIRE_BROWSER` is set: what cannot run fails rather than being skipped.
fn require_browser() -> bool {
    std::env::var("VSC_REQUIRE_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The programs the test needs.
struct Tools {
    python: PathBuf,
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    /// Debian's python3 (which has Debian's packages; a `python3` on PATH may be a pyenv
    /// without them), chromium and chromedriver, or what is missing.
    fn find() -> Result<Tools, String> {
        let python = first_of(&["/usr/bin/python3"], "python3").ok_or("no python3")?;
        let chromium = first_of(&["/usr/bin/chromium"], "chromium").ok_or("no chromium")?;
        let chromedriver =
            first_of(&["/usr/bin/chromedriver"], "chromedriver").ok_or("no chromedriver")?;
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

/// Where the screenshots go: `$VSC_SCREENSHOTS_DIR` when set, else a temporary directory.
fn screenshots(temp: &Path) -> PathBuf {
    match std::env::var_os("VSC_SCREENSHOTS_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            dir.canonicalize().unwrap()
        }
        None => {
            let dir = temp.join("screenshots");
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }
    }
}

/// A person at `org` with an identity check, a position and an issued (not yet enrolled) card.
async fn clinician(
    s: &TestServer,
    token: &str,
    org: &str,
    given: &str,
    family: &str,
) -> (Person, CardWithCode) {
    let person: Person = s
        .post(
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
        .expect("create person");
    s.id_check(token, &person.uid, org).await;
    // A prescriber's position (B0420: the prescription batch needs it).
    s.assign_position_with(
        token,
        &person.uid,
        org,
        "S8000:G8000:R8000",
        &["B0570", "B0420"],
    )
    .await
    .expect("assign a position");
    let card = s.issue_card(token, &person.uid, org).await;
    (person, card)
}

/// A video for Chromium's fake camera (`--use-file-for-fake-video-capture`, YUV4MPEG2): the QR
/// code of `text` as an activation letter carries it (error correction M), black on white,
/// 8 pixels a module with the quiet zone, in the middle of a 640×480 frame, after two seconds
/// of an empty view.
fn write_qr_video(text: &str, path: &Path) {
    use qrcode::{Color, EcLevel, QrCode};
    const W: usize = 640;
    const H: usize = 480;
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
    let modules = code.width();
    let colors = code.to_colors();
    let scale = 8;
    let side = (modules + 8) * scale;
    assert!(side <= H, "the QR code of {text} does not fit the frame");
    let (left, top) = ((W - side) / 2, (H - side) / 2);
    let mut luma = vec![255u8; W * H];
    for y in 0..modules * scale {
        for x in 0..modules * scale {
            if colors[(y / scale) * modules + x / scale] == Color::Dark {
                luma[(top + 4 * scale + y) * W + left + 4 * scale + x] = 0;
            }
        }
    }
    // Two seconds of an empty grey view first (the camera pointed elsewhere: the scanner's
    // screenshot), then the letter; the fake camera loops the file.
    let empty = vec![190u8; W * H];
    let mut video = format!("YUV4MPEG2 W{W} H{H} F5:1 Ip A1:1 C420jpeg\n").into_bytes();
    for frame in std::iter::repeat_n(&empty, 10).chain(std::iter::repeat_n(&luma, 5)) {
        video.extend_from_slice(b"FRAME\n");
        video.extend_from_slice(frame);
        video.extend(std::iter::repeat_n(128u8, 2 * (W / 2) * (H / 2)));
    }
    std::fs::write(path, video).unwrap();
}

// --- what the server sends for /app/ -----------------------------------------------------------

/// The directives `/app/` carries (the contract's policy without the sources the app does not
/// use: no `data:`, no `blob:`, no `media-src`), checked directive by directive: no more, no
/// fewer.
const CSP_REQUIRED: &[&str] = &[
    "default-src 'none'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
];

/// `GET path` over TLS trusting only the instance root: status, headers, body.
async fn fetch(s: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let url = s.url.join(path).unwrap();
    let response = s
        .raw_http()
        .get(url.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

/// The value of attribute `name` in the tag text `tag` (`<script src="…" …>`), if any.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before = lower[..at].chars().last();
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let rest = lower[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let offset = tag.len() - rest.len();
        let value = tag[offset..].trim_start();
        let (quote, value) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &value[1..]),
            _ => (None, value),
        };
        let end = match quote {
            Some(q) => value.find(q),
            None => value.find(|c: char| c.is_whitespace() || c == '>'),
        }
        .unwrap_or(value.len());
        return Some(value[..end].to_owned());
    }
    None
}

/// The start tags named `name` in `html`, as text.
fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&open) {
        let at = from + i;
        let after = lower[at + open.len()..].chars().next();
        from = at + open.len();
        if !after.is_some_and(|c| c.is_whitespace() || c == '>') {
            continue;
        }
        let end = lower[at..].find('>').map_or(html.len(), |e| at + e + 1);
        out.push(&html[at..end]);
    }
    out
}

/// The CSP on `/app/` and the integrity of every script and style sheet the page names: what
/// the browser is given to enforce. Returns what was checked, for the driver to report.
async fn check_app_headers(s: &TestServer) -> Value {
    let (status, headers, body) = fetch(s, "/app/").await;
    assert_eq!(
        status,
        200,
        "GET /app/ answered {status} (the server does not serve the app: routes/app.rs): {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("GET /app/ has no Content-Security-Policy header: {headers:?}"))
        .to_str()
        .unwrap()
        .to_owned();
    let directives: Vec<String> = csp
        .split(';')
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for wanted in CSP_REQUIRED {
        assert!(
            directives.iter().any(|d| d == wanted),
            "the CSP of /app/ lacks `{wanted}`: {csp}"
        );
    }
    for got in directives.iter().filter(|d| !d.is_empty()) {
        assert!(
            CSP_REQUIRED.contains(&got.as_str()),
            "the CSP of /app/ has `{got}`, which the app does not need: {csp}"
        );
    }
    assert!(
        !csp.contains("'unsafe-inline'") && !csp.contains("'unsafe-eval'"),
        "the CSP of /app/ allows inline or eval'd script: {csp}"
    );
    for (name, wanted) in [
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(self), microphone=(), geolocation=(), payment=()",
        ),
    ] {
        let got = headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(
            got,
            Some(wanted),
            "GET /app/: {name} is {got:?}: {headers:?}"
        );
    }
    let html = String::from_utf8(body).expect("/app/ is UTF-8");
    let mut checked = Vec::new();
    let scripts = tags(&html, "script");
    assert!(!scripts.is_empty(), "/app/ has no script: {html}");
    let styles: Vec<&str> = tags(&html, "link")
        .into_iter()
        .filter(|t| {
            attribute(t, "rel").is_some_and(|r| {
                r.split_whitespace()
                    .any(|r| r == "stylesheet" || r == "modulepreload")
            })
        })
        .collect();
    for tag in scripts.iter().chain(styles.iter()) {
        let src = attribute(tag, "src")
            .or_else(|| attribute(tag, "href"))
            .unwrap_or_else(|| panic!("/app/ has an inline script (no src): {tag}"));
        let integrity = attribute(tag, "integrity")
            .unwrap_or_else(|| panic!("/app/ names {src} without an integrity attribute: {tag}"));
        let digest = integrity
            .split_whitespace()
            .find_map(|i| i.strip_prefix("sha384-"))
            .unwrap_or_else(|| panic!("the integrity of {src} is not sha384: {integrity}"))
            .to_owned();
        let url = s.url.join("/app/").unwrap().join(&src).unwrap();
        assert_eq!(
            url.origin(),
            s.url.origin(),
            "/app/ loads {src} from another origin"
        );
        let (status, _, bytes) = fetch(s, url.path()).await;
        assert_eq!(status, 200, "GET {} for /app/", url.path());
        let actual = B64.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA384,
            &bytes,
        ));
        assert_eq!(
            digest,
            actual,
            "the integrity attribute of {src} does not match the {} bytes the server sends",
            bytes.len()
        );
        checked.push(json!({"src": src, "integrity": integrity}));
    }
    // The core (WebAssembly, fetched by the glue rather than by a tag) is pinned by a meta tag
    // the app checks before instantiating it.
    for tag in tags(&html, "meta") {
        if attribute(tag, "name").as_deref() != Some("vsc-core-integrity") {
            continue;
        }
        let integrity = attribute(tag, "content").unwrap_or_default();
        let (status, _, bytes) = fetch(s, "/app/pkg/vsc_phone_web_bg.wasm").await;
        assert_eq!(status, 200, "GET /app/pkg/vsc_phone_web_bg.wasm");
        let actual = B64.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA384,
            &bytes,
        ));
        assert_eq!(
            integrity.strip_prefix("sha384-"),
            Some(actual.as_str()),
            "the core's pinned integrity does not match the {} bytes of the wasm served",
            bytes.len()
        );
        checked.push(json!({"src": "pkg/vsc_phone_web_bg.wasm", "integrity": integrity}));
    }
    // The service worker and the index are revalidated (a deployed update reaches phones).
    for path in ["/app/", "/app/sw.js"] {
        let (status, headers, _) = fetch(s, path).await;
        assert_eq!(status, 200, "GET {path}");
        let cache = headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            cache.contains("no-cache") || cache.contains("no-store"),
            "GET {path}: Cache-Control {cache:?}, the contract says no-cache"
        );
    }
    json!({"csp": csp, "integrity": checked})
}

// --- the run -----------------------------------------------------------------------------------

/// The passcode the clinician sets in the app (6+ digits).
const APP_PASSCODE: &str = "24681357";
/// A wrong one.
const WRONG_PASSCODE: &str = "11223344";
/// The one the clinician sets with the RA's unlock code.
const NEW_PASSCODE: &str = "97531864";

async fn run(tools: Tools) {
    let mut s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (person, card) = clinician(&s, t, "RX1", "Amara", "Okafor").await;
    let (_, second) = clinician(&s, t, "RX1", "Rhys", "Morgan").await;
    // A third, who enrols a second phone by scanning the letter's QR code with its camera.
    let (scanner, scanned) = clinician(&s, t, "RX1", "Priya", "Shah").await;
    let origin = s.origin();
    assert!(
        card.code.url.starts_with(&origin),
        "the activation link {} is not on {origin}",
        card.code.url
    );
    // The same activation, as a link of another server (the phone must not send it here).
    let elsewhere = card
        .code
        .url
        .replacen(&origin, "https://vsc.elsewhere.example", 1);

    let served = check_app_headers(&s).await;
    eprintln!("phone_app: /app/ headers and integrity checked: {served}");

    let temp = tempfile::tempdir().unwrap();
    let shots = screenshots(temp.path());
    // What a failure leaves (a screenshot of the phone) outlives the test's temporary directory.
    let failures = Path::new(env!("CARGO_TARGET_TMPDIR")).join("phone_app");
    std::fs::create_dir_all(&failures).unwrap();
    let qr_video = temp.path().join("activation-qr.y4m");
    // The letter's QR code as the RA's CLI renders it (`vsc ra card reactivate --qr-png`);
    // without the `vsc` binary (and only then), the same link drawn here.
    let scan_link = match vsc_binary() {
        Ok(vsc) => {
            let png = temp.path().join("activation-letter.png");
            let link = qr_letter::reactivate_with_qr_png(
                &vsc,
                ram.phone.home.dir(),
                common::PASSCODE,
                &scanned.card.id,
                &png,
            );
            qr_letter::png_to_camera_video(&png, &qr_video);
            link
        }
        Err(why) if require_browser() => {
            panic!("VSC_REQUIRE_BROWSER is set but the RA's QR code cannot be made: {why}")
        }
        Err(_) => {
            write_qr_video(&scanned.code.url, &qr_video);
            scanned.code.url.clone()
        }
    };
    let mut workstation = Workstation::new(&s, temp.path()).await;
    // The virtual card (pcscd, vpcd, OpenSC) for the card operation.
    let card_tools = round2::CardTools::find();
    if let Err(why) = &card_tools {
        assert!(
            !require_browser(),
            "VSC_REQUIRE_BROWSER is set but the card operation cannot run: {why}"
        );
        eprintln!("phone_app: SKIPPING the card operation: {why}");
    }
    let mut round2 = round2::Round2::new(temp.path(), &person.uid, &card.card.id, t, card_tools);
    let mut d = Driver::spawn(
        &tools.python,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/phone_app/driver.py"),
        "phone_app",
    )
    .await;
    d.send(&json!({"config": {
        "base": origin,
        "chromium": tools.chromium,
        "chromedriver": tools.chromedriver,
        "screenshots": shots,
        "failures": failures,
        "activation": card.code.url,
        "activation_elsewhere": elsewhere,
        "second_activation": second.code.url,
        "uid": person.uid,
        "given_name": person.given_name,
        "family_name": person.family_name,
        "card": card.card.id,
        "passcode": APP_PASSCODE,
        "card_pin": round2::CARD_PIN,
        "wrong_passcode": WRONG_PASSCODE,
        "new_passcode": NEW_PASSCODE,
        "workstation": workstation.name(),
        "workstation_kind": workstation.describe(),
        // The address the server saw the workstation's agent connect from (not the one it
        // claims in its context).
        "client_address": "127.0.0.1",
        "served": served,
        "qr": {
            "video": qr_video,
            "activation": scan_link,
            "uid": scanner.uid,
            "given_name": scanner.given_name,
            "family_name": scanner.family_name,
            "card": scanned.card.id,
        },
    }}))
    .await;

    let mut opened: HashMap<String, AuthRequestCreated> = HashMap::new();
    let mut stopped = false;
    let done = loop {
        let m = d.next().await;
        match m["event"].as_str().unwrap_or_default() {
            "check" => {
                let answer = match round2.check(&s, &m, &mut workstation, &mut opened).await {
                    Some(answer) => answer,
                    None => check(&s, &m, &person.uid, &mut workstation, &mut opened).await,
                };
                d.send(&answer).await;
            }
            "stop_server" => {
                // Everything about the server is asserted before it goes.
                round2.end_session().await;
                final_checks(&s, &person.uid, &card.card.id, &second.code.code).await;
                let took = s.stop(Duration::from_secs(30)).await;
                eprintln!("phone_app: server stopped in {took:?} (offline shell next)");
                stopped = true;
                d.send(&json!({"ok": true})).await;
            }
            "done" => break m,
            other => panic!("driver.py sent {m} ({other})"),
        }
    };
    d.finish().await;
    assert!(stopped, "driver.py never asked to stop the server");
    let gaps = done["missing"].as_array().unwrap();
    for gap in gaps {
        eprintln!("phone_app: NOT COVERED: {}", gap.as_str().unwrap());
    }
    assert!(
        gaps.is_empty() || !require_browser(),
        "VSC_REQUIRE_BROWSER is set but parts were not covered: {gaps:?}"
    );
    eprintln!("phone_app: covered {}", done["covered"]);
    eprintln!("phone_app: screenshots in {}", shots.display());
}

/// What must hold when the browser is done with the server.
async fn final_checks(s: &TestServer, uid: &str, card: &str, second_code: &str) {
    assert_eq!(s.card_state(card).await, "active");
    let enrolled = s.audit_events("card.enrolled").await;
    let event = enrolled
        .iter()
        .find(|e| e.subject == card)
        .unwrap_or_else(|| panic!("no card.enrolled event for {card}: {enrolled:?}"));
    let detail: Value = serde_json::from_str(&event.detail).unwrap();
    assert_eq!(
        (detail["uid"].as_str(), detail["platform"].as_str()),
        (Some(uid), Some("web")),
        "the audited enrolment of {card}: {event:?}"
    );
    assert_eq!(detail["simulated"], json!(false), "{event:?}");
    assert!(
        !s.code_used(second_code).await,
        "the second person's activation was used on the enrolled phone"
    );
    let alerts = s.audit_events("alert.not_me").await;
    assert_eq!(
        alerts.len(),
        1,
        "one \"I didn't do this\" alert: {alerts:?}"
    );
    assert_eq!(alerts[0].subject, uid);
    s.assert_audit_intact().await;
}

/// The device the card is enrolled on: (platform, app version, simulated).
async fn card_device(s: &TestServer, card: &str) -> Option<(String, String, i64)> {
    sqlx::query_as(
        "SELECT d.platform, d.app_version, CAST(d.simulated AS BIGINT) FROM cards c
         JOIN devices d ON d.device_id = c.device_id WHERE c.id = $1",
    )
    .bind(card)
    .fetch_optional(s.state.store().pool())
    .await
    .unwrap()
}

/// Whether the card has a PIN (set by the app's card-PIN form).
async fn card_pin_set(s: &TestServer, card: &str) -> bool {
    let (set,): (i64,) = sqlx::query_as(
        "SELECT CAST(CASE WHEN pin_hash IS NULL THEN 0 ELSE 1 END AS BIGINT) FROM cards WHERE id = $1",
    )
    .bind(card)
    .fetch_one(s.state.store().pool())
    .await
    .unwrap();
    set != 0
}

/// Answers the driver's questions about, and requests to, the server.
async fn check(
    s: &TestServer,
    m: &Value,
    uid: &str,
    workstation: &mut Workstation,
    opened: &mut HashMap<String, AuthRequestCreated>,
) -> Value {
    match m["what"].as_str().unwrap_or_default() {
        "card" => {
            let card = m["card"].as_str().unwrap();
            let device = card_device(s, card).await;
            let code = m["code"].as_str();
            let code_used = match code {
                Some(c) => Some(s.code_used(c).await),
                None => None,
            };
            json!({
                "ok": true,
                "state": s.card_state(card).await,
                "platform": device.as_ref().map(|d| d.0.clone()),
                "app_version": device.as_ref().map(|d| d.1.clone()),
                "simulated": device.as_ref().map(|d| d.2 != 0),
                "certificates": s.certificate_count(card).await,
                "pin_set": card_pin_set(s, card).await,
                "code_used": code_used,
            })
        }
        "code" => {
            let code = m["url"].as_str().unwrap();
            let code = code
                .split("#code=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap();
            json!({"ok": true, "used": s.code_used(code).await, "failures": s.code_failures(code).await})
        }
        // The workstation opens a sign-in for the clinician: the number it shows.
        "open" if m["via"] == "api" => open_by_api(s, uid, opened).await,
        "open" => workstation.open(s, uid, opened).await,
        // The workstation waits for the outcome and collects it.
        "outcome" => {
            let id = m["request_id"].as_str().unwrap();
            let wait = m["wait"].as_u64().unwrap_or(20);
            workstation.outcome(s, id, wait, opened).await
        }
        "passcode_failures" => {
            let failed = s.audit_events("card.passcode.failed").await;
            let verified = s.audit_events("card.passcode.verified").await;
            json!({
                "ok": true,
                "failed": failed.iter().map(|e| json!({"subject": e.subject, "detail": e.detail})).collect::<Vec<_>>(),
                "verified": verified.len(),
            })
        }
        "alerts" => {
            let alerts = s.audit_events("alert.not_me").await;
            json!({
                "ok": true,
                "alerts": alerts.iter().map(|e| json!({"subject": e.subject, "outcome": e.outcome, "detail": e.detail})).collect::<Vec<_>>(),
            })
        }
        other => panic!("driver.py asked about {other:?}"),
    }
}

/// The agent's call that opens a sign-in, made in-process by a registered workstation.
async fn open_by_api(
    s: &TestServer,
    uid: &str,
    opened: &mut HashMap<String, AuthRequestCreated>,
) -> Value {
    match s.try_open_request(uid, &auth_context(WORKSTATION)).await {
        Ok(created) => {
            let answer =
                json!({"ok": true, "request_id": created.request_id, "number": created.number});
            opened.insert(created.request_id.clone(), created);
            answer
        }
        Err(ClientError::Server {
            status,
            code,
            message,
        }) => json!({"ok": false, "status": status, "code": code, "message": message}),
        Err(e) => panic!("the workstation cannot open a sign-in: {e}"),
    }
}

/// The agent's signed collection of `request_id`, made in-process, and the ticket validated.
async fn outcome_by_api(
    s: &TestServer,
    id: &str,
    wait: u64,
    opened: &HashMap<String, AuthRequestCreated>,
) -> Value {
    let created = opened
        .get(id)
        .unwrap_or_else(|| panic!("no request {id} was opened"));
    match s.try_outcome(created, wait).await {
        Ok(outcome) => {
            let validated = match &outcome.ticket {
                Some(ticket) => match s.validate(ticket).await {
                    Ok(v) => json!({"uid": v.uid}),
                    Err(e) => json!({"error": e.to_string()}),
                },
                None => Value::Null,
            };
            json!({
                "ok": true,
                "state": outcome.state,
                "ticket": outcome.ticket.is_some(),
                "agent_key": outcome.agent_key.is_some(),
                "validated": validated,
                "db_state": s.request_state(id).await,
            })
        }
        Err(e) => {
            json!({"ok": false, "error": e.to_string(), "db_state": s.request_state(id).await})
        }
    }
}

// --- the workstation: `vsc agent login` ---------------------------------------------------------

/// The `vsc` binary of this build (beside the test's own executable's directory), if built:
/// `cargo test --workspace` builds it; `cargo test -p vsc-server` alone may not. `Err` says why
/// it is not used.
fn vsc_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let vsc = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("vsc"))
        .filter(|p| p.is_file())
        .ok_or("no vsc binary beside this test")?;
    // A binary older than the sources it is built from may speak an older protocol.
    let built = std::fs::metadata(&vsc)
        .and_then(|m| m.modified())
        .map_err(|e| e.to_string())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sources = ["cli", "agent", "authenticator", "proto", "https"]
        .iter()
        .filter_map(|c| newest(&root.join("crates").join(c).join("src")))
        .max();
    match sources {
        Some(newest) if newest > built => Err(format!(
            "{} is older than its sources (rebuild it with `cargo build -p vsc-cli`)",
            vsc.display()
        )),
        _ => Ok(vsc),
    }
}

/// When the newest file under `dir` was modified.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                newest(&entry.path())
            } else {
                meta.modified().ok()
            }
        })
        .max()
}

/// What shows the number and waits for the phone: the real identity agent (`vsc agent --json
/// login`, a registered workstation), or, without the `vsc` binary, the same calls to the
/// workstation API made in-process (a registered workstation's signed open and collection).
enum Workstation {
    Agent(Box<AgentWorkstation>),
    Api,
}

/// A registered workstation whose agent is the `vsc` binary.
struct AgentWorkstation {
    vsc: PathBuf,
    home: PathBuf,
    server: String,
    fingerprint: String,
    /// `--vpcd` for the next `vsc agent login` (the session presents the virtual card).
    vpcd: Option<String>,
    /// The `vsc agent login` of the sign-in under way.
    run: Option<AgentRun>,
}

/// One `vsc agent --json login` process and what it has said.
struct AgentRun {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: String,
    request_id: String,
}

impl AgentRun {
    /// The next JSON event of the agent, at most `limit` from now; `None` if it ended or
    /// said nothing more.
    async fn event(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .ok()??;
            self.seen.push_str(&line);
            self.seen.push('\n');
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event.get("event").is_some()
            {
                return Some(event);
            }
        }
    }

    /// Ends the agent as a workstation's session ends (SIGTERM: it signs out and exits): how
    /// it ended, and everything it said.
    async fn stop(mut self) -> (String, String) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        let ended = match status {
            Ok(Ok(status)) => format!("exited {status}"),
            _ => {
                let _ = self.child.kill().await;
                "killed: it did not exit within 15 s of SIGTERM".to_owned()
            }
        };
        (ended, self.seen)
    }
}

/// The name the agent registers the workstation under (what the phone shows).
const AGENT_WORKSTATION: &str = "WARD-7-PHONE-APP";

impl Workstation {
    /// The real agent when the `vsc` binary is there (registered with a code from the
    /// national organisation), else the API.
    async fn new(s: &TestServer, temp: &Path) -> Workstation {
        if std::env::var("VSC_PHONE_APP_WORKSTATION").is_ok_and(|v| v == "api") {
            return Workstation::Api;
        }
        let vsc = match vsc_binary() {
            Ok(vsc) => vsc,
            // The test command (VSC_REQUIRE_BROWSER) must prove the real agent's path.
            Err(why) if require_browser() => panic!(
                "VSC_REQUIRE_BROWSER is set but the real agent cannot run: {why} (`cargo build \
                 -p vsc-cli`, or run the workspace's tests, which build it)"
            ),
            Err(why) => {
                eprintln!(
                    "phone_app: NOTE: {why} (`cargo build -p vsc-cli` or the workspace's tests \
                     build it): the workstation is the agent's API calls made in-process, not \
                     `vsc agent login`"
                );
                return Workstation::Api;
            }
        };
        let home = temp.join("agent");
        let national = s.state.national_ods().to_owned();
        let code = s.workstation_code(&national, Some(AGENT_WORKSTATION)).await;
        let server = s.origin();
        let out = tokio::process::Command::new(&vsc)
            .arg("agent")
            .arg("--home")
            .arg(&home)
            .args([
                "--json",
                "enrol",
                "--server",
                &server,
                "--ca-fingerprint",
                &s.fp,
            ])
            .args(["--code", &code, "--name", AGENT_WORKSTATION])
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", vsc.display()));
        assert!(
            out.status.success(),
            "`vsc agent enrol` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "phone_app: the workstation is `{} agent login`, registered as {AGENT_WORKSTATION}",
            vsc.display()
        );
        Workstation::Agent(Box::new(AgentWorkstation {
            vsc,
            home,
            server,
            fingerprint: s.fp.clone(),
            vpcd: None,
            run: None,
        }))
    }

    /// The name the phone shows for the workstation.
    fn name(&self) -> String {
        match self {
            Workstation::Agent(_) => AGENT_WORKSTATION.to_owned(),
            Workstation::Api => auth_context(WORKSTATION).workstation_name,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Workstation::Agent(_) => "vsc agent login",
            Workstation::Api => "the workstation API, in-process",
        }
    }

    /// The workstation starts a sign-in for `uid`: the number it shows and the request's id.
    async fn open(
        &mut self,
        s: &TestServer,
        uid: &str,
        opened: &mut HashMap<String, AuthRequestCreated>,
    ) -> Value {
        let agent = match self {
            Workstation::Api => return open_by_api(s, uid, opened).await,
            Workstation::Agent(agent) => agent,
        };
        if let Some(run) = agent.run.take() {
            let _ = run.stop().await;
        }
        let mut child = Command::new(&agent.vsc)
            .arg("agent")
            .arg("--home")
            .arg(&agent.home)
            .args(["--json", "login", uid, "--server", &agent.server])
            .args(["--ca-fingerprint", &agent.fingerprint])
            .args(agent.vpcd.iter().flat_map(|v| ["--vpcd", v.as_str()]))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} agent login: {e}", agent.vsc.display()));
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let tx2 = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send(line);
            }
        });
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        let mut run = AgentRun {
            child,
            lines,
            seen: String::new(),
            request_id: String::new(),
        };
        loop {
            match run.event(Duration::from_secs(30)).await {
                Some(e) if e["event"] == "number" => {
                    let number = e["number"].as_i64().unwrap();
                    let row: Option<(String,)> = sqlx::query_as(
                        "SELECT id FROM auth_requests WHERE uid = $1 AND number = $2
                         AND state = 'pending' ORDER BY created_at DESC LIMIT 1",
                    )
                    .bind(uid)
                    .bind(number)
                    .fetch_optional(s.state.store().pool())
                    .await
                    .unwrap();
                    let (request_id,) = row.unwrap_or_else(|| {
                        panic!("the agent shows {number} but no such request is pending")
                    });
                    run.request_id.clone_from(&request_id);
                    agent.run = Some(run);
                    return json!({"ok": true, "request_id": request_id, "number": number});
                }
                Some(e) if e["event"] == "sign-in-failed" => {
                    let (ended, _) = run.stop().await;
                    return json!({"ok": false, "message": e["message"], "agent": ended});
                }
                Some(_) => {}
                None => {
                    let (ended, seen) = run.stop().await;
                    panic!(
                        "`vsc agent login` showed no number within 30 s ({ended}); it said:\n{seen}"
                    );
                }
            }
        }
    }

    /// What the workstation gets for `request_id`, waiting up to `wait` seconds; with the
    /// agent, `wait` 0 looks at the request without waiting for the agent.
    async fn outcome(
        &mut self,
        s: &TestServer,
        request_id: &str,
        wait: u64,
        opened: &HashMap<String, AuthRequestCreated>,
    ) -> Value {
        let agent = match self {
            Workstation::Api => return outcome_by_api(s, request_id, wait, opened).await,
            Workstation::Agent(agent) => agent,
        };
        if wait == 0 {
            let state = s.request_state(request_id).await;
            return json!({"ok": true, "state": state, "db_state": state});
        }
        let mut run = agent
            .run
            .take()
            .unwrap_or_else(|| panic!("no agent is waiting for {request_id}"));
        assert_eq!(
            run.request_id, request_id,
            "the agent waits for another request"
        );
        let limit = Duration::from_secs(wait + 15);
        let event = loop {
            match run.event(limit).await {
                Some(e) if e["event"] == "signed-in" || e["event"] == "sign-in-failed" => break e,
                Some(_) => {}
                None => {
                    let (ended, seen) = run.stop().await;
                    panic!(
                        "`vsc agent login` neither signed in nor failed within {limit:?} ({ended}); \
                         it said:\n{seen}"
                    );
                }
            }
        };
        let mut answer = json!({"ok": true, "agent_event": event});
        if event["event"] == "signed-in" {
            // An application asks the agent for the ticket, and a relying system validates it.
            let out = tokio::process::Command::new(&agent.vsc)
                .arg("agent")
                .arg("--home")
                .arg(&agent.home)
                .args(["ticket", "--no-auth"])
                .output()
                .await
                .unwrap();
            let ticket = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let validated = if out.status.success() && ticket.len() > 20 {
                match s.validate(&ticket).await {
                    Ok(v) => json!({"uid": v.uid}),
                    Err(e) => json!({"error": e.to_string()}),
                }
            } else {
                json!({"error": format!("`vsc agent ticket` answered {}: {ticket} {}", out.status, String::from_utf8_lossy(&out.stderr))})
            };
            answer["ticket"] = json!(validated.get("uid").is_some());
            // The agent key stays in the agent: the signed-in session proves it collected.
            answer["agent_key"] = answer["ticket"].clone();
            answer["validated"] = validated;
        }
        let (ended, seen) = run.stop().await;
        let state = s.request_state(request_id).await;
        answer["state"] = json!(state);
        answer["db_state"] = json!(state);
        answer["agent"] = json!(ended);
        eprintln!(
            "phone_app: `vsc agent login` for {request_id}: {state}, {ended}; it said:\n{seen}"
        );
        answer
    }
}
