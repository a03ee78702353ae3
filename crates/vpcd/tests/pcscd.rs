//! The link against the real stack: pcscd with vsmartcard's vpcd driver, started by
//! `scripts/pcscd-up`, and OpenSC's `opensc-tool` as the PC/SC application.
//!
//! The Debian packages `pcscd`, `vsmartcard-vpcd` and `opensc` must be installed (the test
//! command installs them); without them this test fails rather than skips. Everything here
//! shares one pcscd, so it is a single test that goes through the steps in order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use vsc_vpcd::{DEFAULT_VPCD_ADDR, LinkConfig, LinkError, Mode, VirtualCard, run};

const READER: &str = "Virtual PCD 00 00";
const REVERSED_READER: &str = "Virtual PCD reversed 00 00";
/// Loopback port for the reversed-mode reader (vpcd also uses the next one, for slot 1).
const REVERSED_ADDR: &str = "127.0.0.1:35990";
/// pcscd notices a card arriving or leaving at its next 400 ms poll; allow for a few.
const SETTLE: Duration = Duration::from_secs(10);

/// The PIV application identifier (RID A000000308, PIX 00001000 0100).
const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// SELECT with a right-truncated PIV AID, as PIV middleware sends it.
const SELECT_PIV: &str = "00A4040009A00000030800001000";

/// Answers SELECT of the PIV application (by its full or right-truncated AID, at least the 9
/// bytes up to the version) with `90 00`, anything else with `6D 00`.
struct SelectOnlyCard;

impl VirtualCard for SelectOnlyCard {
    fn atr(&self) -> Vec<u8> {
        // TS, T0 (TD1 follows), TD1 (TD2 follows, T=0), TD2 (T=1), TCK.
        vec![0x3B, 0x80, 0x80, 0x01, 0x01]
    }
    fn power_off(&mut self) {}
    fn power_on(&mut self) {}
    fn reset(&mut self) {}
    fn transmit(&mut self, apdu: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send {
        let selects_piv = match apdu.as_slice() {
            [0x00, 0xA4, 0x04, 0x00, lc, rest @ ..] => {
                let aid = &rest[..rest.len().min(usize::from(*lc))];
                aid.len() == usize::from(*lc) && aid.len() >= 9 && PIV_AID.starts_with(aid)
            }
            _ => false,
        };
        std::future::ready(if selects_piv {
            vec![0x90, 0x00]
        } else {
            vec![0x6D, 0x00]
        })
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pcscd-up")
}

/// Runs `scripts/pcscd-up` with `args`; returns whether it succeeded and what it printed.
async fn pcscd_up(args: &[&str]) -> (bool, String) {
    let out = Command::new(script())
        .args(args)
        .output()
        .await
        .expect("run scripts/pcscd-up");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("scripts/pcscd-up {}: {text}", args.join(" "));
    (out.status.success(), text)
}

async fn opensc_tool(args: &[&str]) -> String {
    let out = Command::new("opensc-tool")
        .args(args)
        .output()
        .await
        .expect("opensc-tool is not installed (Debian package opensc)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The reader's index and whether a card is in it, from `opensc-tool --list-readers`:
/// `Nr.  Card  Features  Name` rows such as `0    Yes             Virtual PCD 00 00`.
async fn reader_state(name: &str) -> Option<(String, bool)> {
    let list = opensc_tool(&["--list-readers"]).await;
    list.lines().find(|line| line.ends_with(name)).map(|line| {
        let mut cols = line.split_whitespace();
        let index = cols.next().unwrap_or_default().to_owned();
        (index, cols.next() == Some("Yes"))
    })
}

/// Waits until the reader is listed with (or without) a card; returns its index.
async fn wait_card(name: &str, present: bool) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let state = reader_state(name).await;
        if let Some((index, card)) = &state
            && *card == present
        {
            return index.clone();
        }
        assert!(
            Instant::now() < deadline,
            "reader {name:?}: wanted card present = {present}, have {state:?}\n{}",
            opensc_tool(&["--list-readers"]).await
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one APDU through PC/SC and returns opensc-tool's output.
async fn send_apdu(reader_index: &str, apdu: &str) -> String {
    // `-c default`: skip OpenSC's card-driver probing, which would send its own APDUs first.
    opensc_tool(&[
        "--reader",
        reader_index,
        "-c",
        "default",
        "--send-apdu",
        apdu,
    ])
    .await
}

fn start(mode: Mode) -> (watch::Sender<bool>, JoinHandle<Result<(), LinkError>>) {
    let (stop, stop_rx) = watch::channel(false);
    let config = LinkConfig {
        mode,
        reconnect_initial: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
    };
    (stop, tokio::spawn(run(config, SelectOnlyCard, stop_rx)))
}

async fn stop(link: (watch::Sender<bool>, JoinHandle<Result<(), LinkError>>)) {
    let (stop, handle) = link;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the link did not stop")
        .unwrap()
        .unwrap();
}

/// The driver's file name carries the virtualsmartcard version: `libifdvpcd.so.0.8`.
fn vpcd_supports_reversed_mode() -> bool {
    let driver = std::fs::canonicalize("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
        .expect("vpcd is not installed (Debian package vsmartcard-vpcd)");
    let name = driver.file_name().unwrap().to_string_lossy().into_owned();
    let version: Vec<u32> = name
        .rsplit(".so.")
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect();
    version >= vec![0, 9]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_appears_answers_leaves_and_survives_a_pcscd_restart() {
    let (ok, out) = pcscd_up(&[]).await;
    assert!(ok, "scripts/pcscd-up failed:\n{out}");
    wait_card(READER, false).await;

    // Insert: the reader shows a card, and PC/SC reaches it.
    let link = start(Mode::Connect(DEFAULT_VPCD_ADDR));
    let index = wait_card(READER, true).await;
    let out = send_apdu(&index, SELECT_PIV).await;
    assert!(out.contains("SW1=0x90, SW2=0x00"), "{out}");
    let out = send_apdu(&index, "00A4040005A000000001").await;
    assert!(out.contains("SW1=0x6D, SW2=0x00"), "{out}");

    // Remove: stopping the link closes the socket and the card is gone.
    stop(link).await;
    wait_card(READER, false).await;

    // pcscd restarts under a running link: it reconnects by itself.
    let link = start(Mode::Connect(DEFAULT_VPCD_ADDR));
    wait_card(READER, true).await;
    let (ok, out) = pcscd_up(&["--stop"]).await;
    assert!(
        ok && out.contains("stopping pcscd"),
        "could not stop pcscd:\n{out}"
    );
    let (ok, out) = pcscd_up(&[]).await;
    assert!(
        ok && out.contains("started pcscd"),
        "could not restart pcscd:\n{out}"
    );
    let index = wait_card(READER, true).await;
    let out = send_apdu(&index, SELECT_PIV).await;
    assert!(out.contains("SW1=0x90, SW2=0x00"), "{out}");

    // Reversed mode: vpcd connects to the link.
    let (ok, out) = pcscd_up(&["--reversed", REVERSED_ADDR]).await;
    if vpcd_supports_reversed_mode() {
        assert!(ok, "scripts/pcscd-up --reversed failed:\n{out}");
        let addr: SocketAddr = REVERSED_ADDR.parse().unwrap();
        let reversed = start(Mode::Listen(addr));
        let index = wait_card(REVERSED_READER, true).await;
        let out = send_apdu(&index, SELECT_PIV).await;
        assert!(out.contains("SW1=0x90, SW2=0x00"), "{out}");
        stop(reversed).await;
        wait_card(REVERSED_READER, false).await;
        // The listening reader is still served (the link reconnected after the restart).
        wait_card(READER, true).await;
        let (ok, out) = pcscd_up(&[]).await;
        assert!(ok, "could not go back to the default config:\n{out}");
    } else {
        // vpcd < 0.9 aborts pcscd when a reversed-mode card disconnects: the script refuses.
        assert!(!ok && out.contains("aborts pcscd"), "{out}");
    }

    wait_card(READER, true).await;
    stop(link).await;
    wait_card(READER, false).await;
}
