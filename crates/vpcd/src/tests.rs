//! The link against a fake vpcd on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::{LinkConfig, LinkError, Mode, VirtualCard, run};

const ATR: [u8; 4] = [0x3B, 0x80, 0x80, 0x01];
const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    PowerOff,
    PowerOn,
    Reset,
    Apdu(Vec<u8>),
    /// A transmit future was dropped before it finished.
    Cancelled,
}

/// What the card saw, shared with the test.
#[derive(Clone, Default)]
struct Probe {
    events: Arc<Mutex<Vec<Event>>>,
    atr_reads: Arc<AtomicUsize>,
}

impl Probe {
    fn push(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
    fn atr_reads(&self) -> usize {
        self.atr_reads.load(Ordering::SeqCst)
    }
}

/// Echoes every APDU back with `90 00` appended, or answers with `response` if set; waits for
/// a permit from `gate` first if there is one (a slow private-key operation).
struct TestCard {
    probe: Probe,
    atr: Vec<u8>,
    gate: Option<Arc<Semaphore>>,
    response: Option<Vec<u8>>,
}

impl TestCard {
    fn new(probe: &Probe) -> Self {
        TestCard {
            probe: probe.clone(),
            atr: ATR.to_vec(),
            gate: None,
            response: None,
        }
    }
}

struct CancelGuard {
    probe: Probe,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.probe.push(Event::Cancelled);
        }
    }
}

impl VirtualCard for TestCard {
    fn atr(&self) -> Vec<u8> {
        self.probe.atr_reads.fetch_add(1, Ordering::SeqCst);
        self.atr.clone()
    }
    fn power_off(&mut self) {
        self.probe.push(Event::PowerOff);
    }
    fn power_on(&mut self) {
        self.probe.push(Event::PowerOn);
    }
    fn reset(&mut self) {
        self.probe.push(Event::Reset);
    }
    fn transmit(&mut self, apdu: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send {
        let probe = self.probe.clone();
        let gate = self.gate.clone();
        let fixed = self.response.clone();
        async move {
            probe.push(Event::Apdu(apdu.clone()));
            let mut guard = CancelGuard { probe, done: false };
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            guard.done = true;
            fixed.unwrap_or_else(|| {
                let mut response = apdu;
                response.extend_from_slice(&[0x90, 0x00]);
                response
            })
        }
    }
}

fn config(mode: Mode) -> LinkConfig {
    LinkConfig {
        mode,
        reconnect_initial: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(100),
    }
}

fn start(mode: Mode, card: TestCard) -> (watch::Sender<bool>, JoinHandle<Result<(), LinkError>>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let handle = tokio::spawn(run(config(mode), card, stop_rx));
    (stop_tx, handle)
}

async fn stop_and_join(stop: watch::Sender<bool>, handle: JoinHandle<Result<(), LinkError>>) {
    stop.send(true).unwrap();
    timeout(WAIT, handle).await.unwrap().unwrap().unwrap();
}

/// vpcd's side of the socket.
struct FakeVpcd {
    listener: TcpListener,
}

impl FakeVpcd {
    async fn bind(addr: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr).unwrap();
        FakeVpcd {
            listener: socket.listen(1).unwrap(),
        }
    }
    async fn start() -> Self {
        Self::bind("127.0.0.1:0".parse().unwrap()).await
    }
    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }
    async fn accept(&self) -> Conn {
        let (stream, _) = timeout(WAIT, self.listener.accept())
            .await
            .expect("the link did not connect")
            .unwrap();
        Conn { stream }
    }
}

struct Conn {
    stream: TcpStream,
}

impl Conn {
    async fn connect_retrying(addr: SocketAddr) -> Conn {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Conn { stream },
                Err(e) if tokio::time::Instant::now() > deadline => panic!("connect {addr}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }
    async fn send(&mut self, payload: &[u8]) {
        let mut frame = u16::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.send_raw(&frame).await;
    }
    async fn recv(&mut self) -> Vec<u8> {
        let mut len = [0u8; 2];
        timeout(WAIT, self.stream.read_exact(&mut len))
            .await
            .expect("no reply from the link")
            .unwrap();
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        timeout(WAIT, self.stream.read_exact(&mut payload))
            .await
            .expect("reply cut short")
            .unwrap();
        payload
    }
    async fn get_atr(&mut self) -> Vec<u8> {
        self.send(&[0x04]).await;
        self.recv().await
    }
    /// Asserts that the link sends nothing for `quiet`.
    async fn silent_for(&mut self, quiet: Duration) {
        let mut byte = [0u8; 1];
        if let Ok(read) = timeout(quiet, self.stream.read(&mut byte)).await {
            panic!("expected silence, read {read:?} {byte:?}");
        }
    }
    /// Asserts that the link closes the connection (soon).
    async fn closed(&mut self) {
        let mut rest = Vec::new();
        let read = timeout(WAIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("the link kept the connection open");
        // A reset is as good as an orderly close.
        if let Ok(n) = read {
            assert_eq!(n, 0, "unexpected bytes before close: {rest:?}");
        }
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn control_messages_and_apdus() {
    let vpcd = FakeVpcd::start().await;
    let probe = Probe::default();
    let (stop, handle) = start(Mode::Connect(vpcd.addr()), TestCard::new(&probe));
    let mut conn = vpcd.accept().await;

    // pcscd's presence poll, then SCardConnect: power on + ATR, an APDU, reset + ATR, off.
    assert_eq!(conn.get_atr().await, ATR);
    conn.send(&[0x01]).await;
    assert_eq!(
        conn.get_atr().await,
        ATR,
        "power on gets no reply of its own"
    );
    let select = [0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00];
    conn.send(&select).await;
    assert_eq!(conn.recv().await, [&select[..], &[0x90, 0x00]].concat());
    conn.send(&[0x02]).await;
    assert_eq!(conn.get_atr().await, ATR);
    conn.send(&[0x00]).await;
    // Two-byte and 65 535-byte APDUs are passed through; the reply is framed in one piece.
    conn.send(&[0x00, 0x00]).await;
    assert_eq!(conn.recv().await, [0x00, 0x00, 0x90, 0x00]);
    conn.send(&[0x00, 0x00, 0x90, 0x00]).await;
    assert_eq!(conn.recv().await, [0x00, 0x00, 0x90, 0x00, 0x90, 0x00]);
    conn.silent_for(Duration::from_millis(50)).await;

    stop_and_join(stop, handle).await;
    conn.closed().await;
    assert_eq!(
        probe.events(),
        vec![
            Event::PowerOn,
            Event::Apdu(select.to_vec()),
            Event::Reset,
            Event::PowerOff,
            Event::Apdu(vec![0x00, 0x00]),
            Event::Apdu(vec![0x00, 0x00, 0x90, 0x00]),
            // the connection closed: the card left the reader
            Event::PowerOff,
        ]
    );
}

#[tokio::test]
async fn largest_apdu_and_response_fit_one_frame_each() {
    let vpcd = FakeVpcd::start().await;
    let probe = Probe::default();
    let mut card = TestCard::new(&probe);
    let big_response = vec![0x61; crate::frame::MAX_PAYLOAD];
    card.response = Some(big_response.clone());
    let (stop, handle) = start(Mode::Connect(vpcd.addr()), card);
    let mut conn = vpcd.accept().await;
    let big_apdu = vec![0x80; crate::frame::MAX_PAYLOAD];
    conn.send(&big_apdu).await;
    assert_eq!(conn.recv().await, big_response);
    stop_and_join(stop, handle).await;
}

#[tokio::test]
async fn get_atr_during_a_slow_apdu_is_answered_from_the_cache_in_request_order() {
    let vpcd = FakeVpcd::start().await;
    let probe = Probe::default();
    let gate = Arc::new(Semaphore::new(0));
    let mut card = TestCard::new(&probe);
    card.gate = Some(gate.clone());
    let (stop, handle) = start(Mode::Connect(vpcd.addr()), card);
    let mut conn = vpcd.accept().await;
    assert_eq!(conn.get_atr().await, ATR);

    // A signature waiting for the phone; vpcd (hypothetically) asks for the ATR meanwhile.
    let sign = [0x00, 0x87, 0x07, 0x9A, 0x02, 0x7C, 0x00];
    conn.send(&sign).await;
    eventually("the card got the APDU", || {
        probe.events().contains(&Event::Apdu(sign.to_vec()))
    })
    .await;
    let atr_reads = probe.atr_reads();
    conn.send(&[0x04]).await;
    // Nothing may overtake the APDU's response: vpcd reads replies in the order it asked.
    conn.silent_for(Duration::from_millis(150)).await;
    gate.add_permits(1);
    assert_eq!(conn.recv().await, [&sign[..], &[0x90, 0x00]].concat());
    assert_eq!(
        conn.recv().await,
        ATR,
        "the queued ATR request follows at once"
    );
    assert_eq!(probe.atr_reads(), atr_reads, "the ATR came from the cache");
    // Idle again: the poll is answered as before.
    assert_eq!(conn.get_atr().await, ATR);
    stop_and_join(stop, handle).await;
    assert!(!probe.events().contains(&Event::Cancelled));
}

#[tokio::test]
async fn stop_closes_the_socket_even_while_an_apdu_is_pending() {
    let vpcd = FakeVpcd::start().await;
    let probe = Probe::default();
    let mut card = TestCard::new(&probe);
    card.gate = Some(Arc::new(Semaphore::new(0)));
    let (stop, handle) = start(Mode::Connect(vpcd.addr()), card);
    let mut conn = vpcd.accept().await;
    conn.send(&[0x01]).await;
    conn.send(&[0x00, 0x88, 0x00, 0x00]).await;
    eventually("the card got the APDU", || probe.events().len() == 2).await;

    stop_and_join(stop, handle).await;
    conn.closed().await;
    assert_eq!(
        probe.events(),
        vec![
            Event::PowerOn,
            Event::Apdu(vec![0x00, 0x88, 0x00, 0x00]),
            Event::Cancelled,
            Event::PowerOff,
        ]
    );
    // Stopped means stopped: no reconnection.
    assert!(
        timeout(Duration::from_millis(200), vpcd.listener.accept())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn dropping_the_stop_sender_stops_the_link() {
    let vpcd = FakeVpcd::start().await;
    let probe = Probe::default();
    let (stop, handle) = start(Mode::Connect(vpcd.addr()), TestCard::new(&probe));
    let mut conn = vpcd.accept().await;
    assert_eq!(conn.get_atr().await, ATR);
    drop(stop);
    timeout(WAIT, handle).await.unwrap().unwrap().unwrap();
    conn.closed().await;
}

#[tokio::test]
async fn vpcd_closing_during_a_slow_apdu_cancels_it_and_the_link_reconnects() {
    let vpcd = FakeVpcd::start().await;
    let probe = Probe::default();
    let mut card = TestCard::new(&probe);
    card.gate = Some(Arc::new(Semaphore::new(0)));
    let (stop, handle) = start(Mode::Connect(vpcd.addr()), card);
    let mut conn = vpcd.accept().await;
    conn.send(&[0x00, 0x88, 0x00, 0x00]).await;
    eventually("the card got the APDU", || probe.events().len() == 1).await;
    drop(conn); // pcscd went away

    let mut conn = vpcd.accept().await;
    assert_eq!(
        probe.events(),
        vec![
            Event::Apdu(vec![0x00, 0x88, 0x00, 0x00]),
            Event::Cancelled,
            Event::PowerOff,
        ]
    );
    assert_eq!(conn.get_atr().await, ATR);
    stop_and_join(stop, handle).await;
}

#[tokio::test]
async fn reconnects_when_vpcd_goes_away_and_comes_back() {
    let vpcd = FakeVpcd::start().await;
    let addr = vpcd.addr();
    let probe = Probe::default();
    let (stop, handle) = start(Mode::Connect(addr), TestCard::new(&probe));
    let mut conn = vpcd.accept().await;
    assert_eq!(conn.get_atr().await, ATR);

    // pcscd stops: the connection and the listener go away for a while (several refused
    // attempts), then pcscd is back on the same port.
    drop(conn);
    drop(vpcd);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let vpcd = FakeVpcd::bind(addr).await;
    let mut conn = vpcd.accept().await;
    assert_eq!(conn.get_atr().await, ATR);
    conn.send(&[0x00, 0xCA, 0x00, 0x00]).await;
    assert_eq!(conn.recv().await, [0x00, 0xCA, 0x00, 0x00, 0x90, 0x00]);
    stop_and_join(stop, handle).await;
    assert_eq!(probe.events().first(), Some(&Event::PowerOff));
}

#[tokio::test]
async fn malformed_frames_close_the_connection_and_the_link_reconnects() {
    let vpcd = FakeVpcd::start().await;
    let probe = Probe::default();
    let (stop, handle) = start(Mode::Connect(vpcd.addr()), TestCard::new(&probe));

    // An empty frame, an unknown control byte, a frame cut off by the peer closing.
    for bad in [&[0x00, 0x00][..], &[0x00, 0x01, 0x07][..]] {
        let mut conn = vpcd.accept().await;
        assert_eq!(conn.get_atr().await, ATR);
        conn.send_raw(bad).await;
        conn.closed().await;
    }
    let mut conn = vpcd.accept().await;
    conn.send_raw(&[0x00, 0x05, 0x00, 0xA4]).await;
    conn.stream.shutdown().await.unwrap();
    conn.closed().await;

    let mut conn = vpcd.accept().await;
    assert_eq!(conn.get_atr().await, ATR, "a good connection still works");
    stop_and_join(stop, handle).await;
}

#[tokio::test]
async fn responses_vpcd_would_misread_become_6f00() {
    let vpcd = FakeVpcd::start().await;
    let probe = Probe::default();
    for bad in [vec![], vec![0x90], vec![0u8; crate::frame::MAX_PAYLOAD + 1]] {
        let mut card = TestCard::new(&probe);
        card.response = Some(bad);
        let (stop, handle) = start(Mode::Connect(vpcd.addr()), card);
        let mut conn = vpcd.accept().await;
        conn.send(&[0x00, 0xB0, 0x00, 0x00, 0x00]).await;
        assert_eq!(conn.recv().await, [0x6F, 0x00]);
        assert_eq!(conn.get_atr().await, ATR, "the connection stays up");
        stop_and_join(stop, handle).await;
    }
}

#[tokio::test]
async fn listen_mode_serves_vpcd_connecting_to_it() {
    // Learn a free loopback port, then let the link listen there.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let probe = Probe::default();
    let (stop, handle) = start(Mode::Listen(addr), TestCard::new(&probe));

    let mut conn = Conn::connect_retrying(addr).await;
    assert_eq!(conn.get_atr().await, ATR);
    conn.send(&[0x00, 0xCA, 0x00, 0x00]).await;
    assert_eq!(conn.recv().await, [0x00, 0xCA, 0x00, 0x00, 0x90, 0x00]);
    drop(conn);

    // vpcd reconnects after pcscd restarts: the link accepts again.
    let mut conn = Conn::connect_retrying(addr).await;
    assert_eq!(conn.get_atr().await, ATR);

    stop_and_join(stop, handle).await;
    conn.closed().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed once stopped"
    );
}

#[tokio::test]
async fn non_loopback_addresses_are_refused() {
    for addr in [
        "0.0.0.0:35963",
        "192.0.2.1:35963",
        "[::]:35963",
        "[2001:db8::1]:35963",
    ] {
        let addr: SocketAddr = addr.parse().unwrap();
        for mode in [Mode::Listen(addr), Mode::Connect(addr)] {
            let (_stop, handle) = start(mode, TestCard::new(&Probe::default()));
            let result = timeout(WAIT, handle).await.unwrap().unwrap();
            assert!(
                matches!(result, Err(LinkError::NotLoopback { addr: refused }) if refused == addr),
                "{mode:?}: {result:?}"
            );
        }
    }
}

#[tokio::test]
async fn listen_mode_reports_a_port_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let (_stop, handle) = start(Mode::Listen(addr), TestCard::new(&Probe::default()));
    let result = timeout(WAIT, handle).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(LinkError::Listen { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn unusable_configurations_are_refused() {
    let addr = "127.0.0.1:9".parse().unwrap();
    for atr in [vec![], vec![0x3B; 34]] {
        let mut card = TestCard::new(&Probe::default());
        card.atr = atr.clone();
        let (_stop, handle) = start(Mode::Connect(addr), card);
        let result = timeout(WAIT, handle).await.unwrap().unwrap();
        assert!(
            matches!(result, Err(LinkError::InvalidAtr { len }) if len == atr.len()),
            "{result:?}"
        );
    }
    let (_stop, stop_rx) = watch::channel(false);
    let mut bad = config(Mode::Connect(addr));
    bad.reconnect_initial = Duration::ZERO;
    let result = run(bad, TestCard::new(&Probe::default()), stop_rx.clone()).await;
    assert!(matches!(result, Err(LinkError::InvalidBackoff)));
    let mut bad = config(Mode::Connect(addr));
    bad.reconnect_max = Duration::from_millis(1);
    let result = run(bad, TestCard::new(&Probe::default()), stop_rx).await;
    assert!(matches!(result, Err(LinkError::InvalidBackoff)));
}

#[test]
fn default_config_connects_to_vpcd_on_loopback() {
    let config = LinkConfig::default();
    assert_eq!(
        config.mode,
        Mode::Connect("127.0.0.1:35963".parse().unwrap())
    );
    assert!(config.reconnect_initial <= config.reconnect_max);
}

/// A card need not be `Sync` (the PIV state machine may hold `Cell`s); `run` must still be a
/// `Send` future so that it can be spawned.
#[test]
fn run_is_send_for_cards_that_are_not_sync() {
    struct CellCard(std::cell::Cell<u8>);
    impl VirtualCard for CellCard {
        fn atr(&self) -> Vec<u8> {
            ATR.to_vec()
        }
        fn power_off(&mut self) {
            self.0.set(0);
        }
        fn power_on(&mut self) {}
        fn reset(&mut self) {}
        fn transmit(&mut self, _apdu: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send {
            self.0.set(self.0.get().wrapping_add(1));
            std::future::ready(vec![0x90, 0x00])
        }
    }
    fn assert_send<T: Send>(_: &T) {}
    let (_stop, stop_rx) = watch::channel(false);
    let link = run(
        LinkConfig::default(),
        CellCard(std::cell::Cell::new(0)),
        stop_rx,
    );
    assert_send(&link);
}
