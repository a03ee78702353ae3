//! The link itself: connect to (or accept) vpcd, serve the card, reconnect when the connection
//! drops, close the socket when told to stop.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::frame::{self, FrameReader, Request};

/// Where vpcd listens in its default configuration (`DEVICENAME /dev/null:0x8C7B` in
/// `/etc/reader.conf.d/vpcd`): port 35963 (0x8C7B) for the reader's first slot,
/// "Virtual PCD 00 00". (vpcd binds it on *all* interfaces; we always connect over loopback.)
pub const DEFAULT_VPCD_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 35963);

/// The longest ATR PC/SC accepts (ISO 7816-3: 33 bytes; pcsc-lite's `MAX_ATR_SIZE`).
pub const MAX_ATR_LEN: usize = 33;

/// Sent instead of a response the card cannot have meant: an empty one (vpcd treats a
/// zero-length reply as "card removed" and drops the connection), a 1-byte one, or one longer
/// than a frame can carry. ISO 7816-4 `6F 00`: no precise diagnosis.
const SW_NO_PRECISE_DIAGNOSIS: [u8; 2] = [0x6F, 0x00];

/// How many messages may arrive while the card is still working on an APDU before the peer is
/// judged not to be vpcd. vpcd sends one request and waits for its reply (pcscd holds the
/// slot's lock across the whole exchange), so in practice this queue is always empty.
const MAX_QUEUED: usize = 8;

/// Give up on one connection attempt after this long (loopback answers at once; this only
/// guards against a black-holed address).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// pcscd polls an idle slot every 400 ms (`PCSCLITE_STATUS_POLL_RATE`), and vpcd accepts a
/// waiting card during that poll, so a connection that has carried nothing for this long was
/// most likely accepted by the kernel but not by vpcd (another card holds the slot, or the
/// peer is not vpcd at all). Worth a warning; the link keeps waiting.
const SILENCE_WARNING: Duration = Duration::from_secs(5);

/// A smart card as the link sees it. The PIV card state machine implements this.
///
/// All methods but [`VirtualCard::transmit`] are synchronous and must return at once: vpcd
/// asks for the ATR every 400 ms while the slot is idle.
pub trait VirtualCard: Send + 'static {
    /// The card's answer to reset, 1 to [`MAX_ATR_LEN`] bytes. The link caches it when a
    /// connection starts and after every power-on and reset, and answers vpcd's ATR requests
    /// from that cache.
    fn atr(&self) -> Vec<u8>;

    /// vpcd powered the card off. Also called whenever a connection ends, for whatever reason:
    /// the card has left the reader, so any security state (a verified PIN) must go.
    fn power_off(&mut self);

    /// vpcd powered the card on (a PC/SC application connected to it).
    fn power_on(&mut self);

    /// vpcd reset the card (warm reset).
    fn reset(&mut self);

    /// Processes one command APDU and returns the response APDU (data and SW1 SW2, at least
    /// two bytes). May take minutes (a private-key operation waits for a person on a phone).
    ///
    /// The link drops the returned future unfinished when the connection closes or the link
    /// is stopped while it is pending; the card must stay consistent when that happens (and
    /// should cancel whatever it asked of the phone). [`VirtualCard::power_off`] follows.
    fn transmit(&mut self, apdu: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send;
}

/// Which side opens the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// vpcd listens (its default, `DEVICENAME /dev/null:<port>`) and the link connects to it,
    /// normally at [`DEFAULT_VPCD_ADDR`].
    Connect(SocketAddr),
    /// "Reversed mode": the link listens and vpcd connects to it
    /// (`DEVICENAME 127.0.0.1:<port>` in pcscd's reader configuration). vpcd only connects
    /// over IPv4, so use `127.0.0.1`. vpcd releases before virtualsmartcard 0.9 (Debian 12
    /// ships one) abort pcscd when a reversed-mode card disconnects; see the crate docs.
    Listen(SocketAddr),
}

impl Mode {
    /// The address the link connects to or listens on.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Mode::Connect(addr) | Mode::Listen(addr) => *addr,
        }
    }
}

/// How [`run`] reaches vpcd and how it retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Connect to vpcd, or let vpcd connect to us.
    pub mode: Mode,
    /// Wait this long before the first reconnection attempt; doubled after every failure.
    pub reconnect_initial: Duration,
    /// The longest wait between attempts.
    pub reconnect_max: Duration,
}

impl LinkConfig {
    /// `mode` with the default backoff: 250 ms doubling up to 5 s.
    pub fn new(mode: Mode) -> Self {
        LinkConfig {
            mode,
            reconnect_initial: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

impl Default for LinkConfig {
    /// Connect to vpcd's default listener, [`DEFAULT_VPCD_ADDR`].
    fn default() -> Self {
        LinkConfig::new(Mode::Connect(DEFAULT_VPCD_ADDR))
    }
}

/// Why [`run`] could not start. Once running, connection problems are logged and retried,
/// never returned.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The address is not a loopback address. The link carries every APDU in clear, PIN
    /// VERIFY commands included, so it must not leave the machine.
    #[error(
        "{addr} is not a loopback address; the vpcd link carries PINs in clear and must stay on this machine"
    )]
    NotLoopback {
        /// The refused address.
        addr: SocketAddr,
    },
    /// In [`Mode::Listen`], the address could not be bound (another process holds the port).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The card's ATR is empty or longer than [`MAX_ATR_LEN`] bytes; vpcd would report the card
    /// as removed (empty) or pcscd would refuse it (too long).
    #[error("the card's ATR is {len} bytes; PC/SC needs 1 to {MAX_ATR_LEN}")]
    InvalidAtr {
        /// Its length.
        len: usize,
    },
    /// `reconnect_initial` is zero or greater than `reconnect_max`.
    #[error("reconnect backoff must start above zero and not exceed its maximum")]
    InvalidBackoff,
}

/// Presents `card` to PC/SC through vpcd until `stop` becomes `true` (or its sender is
/// dropped), then closes the socket, which vpcd reports to pcscd as the card being removed.
///
/// When the connection drops (pcscd restarted, vpcd sent something malformed) the card is
/// powered off and the link reconnects — or, in [`Mode::Listen`], accepts again — waiting
/// `reconnect_initial`, doubling up to `reconnect_max`; the wait starts over after a connection
/// on which vpcd sent at least one valid message. Returns `Ok(())` once stopped; errors are only
/// returned for a configuration that can never work (see [`LinkError`]).
pub async fn run<C: VirtualCard>(
    config: LinkConfig,
    mut card: C,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LinkError> {
    let addr = config.mode.addr();
    if !addr.ip().is_loopback() {
        return Err(LinkError::NotLoopback { addr });
    }
    if config.reconnect_initial.is_zero() || config.reconnect_initial > config.reconnect_max {
        return Err(LinkError::InvalidBackoff);
    }
    checked_atr(&card).map_err(|len| LinkError::InvalidAtr { len })?;
    let mut backoff = Backoff::new(config.reconnect_initial, config.reconnect_max);
    match config.mode {
        Mode::Connect(addr) => connect_loop(addr, &mut card, &mut stop, &mut backoff).await,
        Mode::Listen(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| LinkError::Listen { addr, source })?;
            let local = listener.local_addr().unwrap_or(addr);
            info!(%local, "listening for vpcd (reversed mode)");
            accept_loop(&listener, &mut card, &mut stop, &mut backoff).await
        }
    }
    Ok(())
}

async fn connect_loop<C: VirtualCard>(
    addr: SocketAddr,
    card: &mut C,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) {
    // Log the first failure of a run of failures at warn, the rest at debug: pcscd may stay
    // down for hours and the log should say so once, not every five seconds.
    let mut failing = false;
    loop {
        let attempt = tokio::select! {
            biased;
            () = stopped(stop) => return,
            attempt = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)) => attempt,
        };
        match attempt {
            Ok(Ok(stream)) => {
                failing = false;
                info!(%addr, "connected to vpcd; the card is in the reader");
                match session(stream, card, stop).await {
                    End::Stopped => return,
                    End::Closed { served, reason } => {
                        if served {
                            backoff.reset();
                        }
                        warn!(%addr, "vpcd connection ended ({reason}); the card is out of the reader, reconnecting");
                    }
                }
            }
            Ok(Err(e)) => {
                if failing {
                    debug!(%addr, "vpcd still unreachable: {e}");
                } else {
                    warn!(%addr, "cannot connect to vpcd ({e}); is pcscd running with the vpcd reader? retrying");
                    failing = true;
                }
            }
            Err(_) => warn!(%addr, "connecting to vpcd timed out; retrying"),
        }
        if sleep_or_stop(backoff.next_delay(), stop).await {
            return;
        }
    }
}

async fn accept_loop<C: VirtualCard>(
    listener: &TcpListener,
    card: &mut C,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(stop) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) if peer.ip().is_loopback() => {
                info!(%peer, "vpcd connected; the card is in the reader");
                match session(stream, card, stop).await {
                    End::Stopped => return,
                    End::Closed { served, reason } => {
                        if served {
                            backoff.reset();
                        }
                        warn!(%peer, "vpcd connection ended ({reason}); the card is out of the reader, waiting for vpcd");
                    }
                }
            }
            Ok((_, peer)) => warn!(%peer, "refused a connection from outside this machine"),
            Err(e) => warn!("accepting a connection from vpcd failed: {e}"),
        }
        if sleep_or_stop(backoff.next_delay(), stop).await {
            return;
        }
    }
}

/// How a connection ended.
enum End {
    /// `stop` became true (or its sender went away); the socket is closed.
    Stopped,
    /// The connection is gone or unusable.
    Closed {
        /// vpcd sent at least one valid message: the connection worked, so the next attempt
        /// starts with the shortest wait.
        served: bool,
        reason: String,
    },
}

/// Serves one connection, then powers the card off: it has left the reader.
async fn session<C: VirtualCard>(
    stream: TcpStream,
    card: &mut C,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let end = serve(stream, card, stop).await;
    card.power_off();
    end
}

async fn serve<C: VirtualCard>(
    stream: TcpStream,
    card: &mut C,
    stop: &mut watch::Receiver<bool>,
) -> End {
    // Request and response are one small frame each; don't let Nagle hold them back.
    if let Err(e) = stream.set_nodelay(true) {
        debug!("TCP_NODELAY: {e}");
    }
    let (read_half, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read_half);
    let mut atr = match checked_atr(card) {
        Ok(atr) => atr,
        Err(len) => return invalid_atr(false, len),
    };
    // Messages that arrived while the card was busy with an APDU, answered in order after it.
    let mut queue: VecDeque<Request> = VecDeque::new();
    let mut served = false;
    let silence = tokio::time::sleep(SILENCE_WARNING);
    tokio::pin!(silence);
    let mut warned = false;

    loop {
        let request = match queue.pop_front() {
            Some(request) => request,
            None => tokio::select! {
                biased;
                () = stopped(stop) => return End::Stopped,
                next = reader.next() => match next {
                    Ok(Some(request)) => request,
                    Ok(None) => return closed(served, "vpcd closed the connection".into()),
                    Err(e) => return closed(served, format!("bad input from vpcd: {e}")),
                },
                () = &mut silence, if !served && !warned => {
                    warned = true;
                    warn!("vpcd has not sent anything for {SILENCE_WARNING:?}; another card may hold this reader slot, or the peer is not vpcd");
                    continue;
                }
            },
        };
        if !served {
            served = true;
            debug!("vpcd is polling the card");
        }
        match request {
            Request::PowerOff => {
                debug!("power off");
                card.power_off();
            }
            Request::PowerOn | Request::Reset => {
                if request == Request::PowerOn {
                    debug!("power on");
                    card.power_on();
                } else {
                    debug!("reset");
                    card.reset();
                }
                atr = match checked_atr(card) {
                    Ok(atr) => atr,
                    Err(len) => return invalid_atr(served, len),
                };
            }
            Request::GetAtr => {
                if let Err(end) = send(&mut write, &atr, served, stop).await {
                    return end;
                }
            }
            Request::Apdu(apdu) => {
                // Never log APDU contents: PIN VERIFY carries the PIN.
                debug!(len = apdu.len(), "command APDU");
                let response = {
                    let transmit = card.transmit(apdu);
                    tokio::pin!(transmit);
                    loop {
                        tokio::select! {
                            biased;
                            () = stopped(stop) => return End::Stopped,
                            response = &mut transmit => break response,
                            // Keep reading while the card works: a closed connection or a stop
                            // must cancel the operation now, not after the phone answers.
                            next = reader.next() => match next {
                                Ok(Some(request)) if queue.len() < MAX_QUEUED => {
                                    debug!(?request, "message while an APDU is pending; queued");
                                    queue.push_back(request);
                                }
                                Ok(Some(_)) => return closed(served, format!("more than {MAX_QUEUED} messages while an APDU was pending")),
                                Ok(None) => return closed(served, "vpcd closed the connection while an APDU was pending".into()),
                                Err(e) => return closed(served, format!("bad input from vpcd while an APDU was pending: {e}")),
                            },
                        }
                    }
                };
                let response = usable_response(response);
                debug!(len = response.len(), "response APDU");
                if let Err(end) = send(&mut write, &response, served, stop).await {
                    return end;
                }
            }
        }
    }
}

fn closed(served: bool, reason: String) -> End {
    End::Closed { served, reason }
}

fn invalid_atr(served: bool, len: usize) -> End {
    error!(
        len,
        "the card's ATR has an invalid length; dropping the connection"
    );
    closed(served, format!("invalid ATR length {len}"))
}

/// Writes one frame, giving up if the link is stopped meanwhile.
async fn send(
    write: &mut OwnedWriteHalf,
    payload: &[u8],
    served: bool,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), End> {
    // Callers only pass payloads of at most MAX_PAYLOAD bytes (usable_response, checked_atr).
    let Some(frame) = frame::encode(payload) else {
        return Err(closed(served, "reply too long for a frame".into()));
    };
    tokio::select! {
        biased;
        () = stopped(stop) => Err(End::Stopped),
        written = write.write_all(&frame) => {
            written.map_err(|e| closed(served, format!("write failed: {e}")))
        }
    }
}

/// The card's response, or `6F 00` if vpcd cannot carry it or would misread it.
fn usable_response(response: Vec<u8>) -> Vec<u8> {
    if response.len() < 2 || response.len() > frame::MAX_PAYLOAD {
        error!(
            len = response.len(),
            "the card returned a response APDU that vpcd cannot carry; sending 6F 00"
        );
        return SW_NO_PRECISE_DIAGNOSIS.to_vec();
    }
    response
}

fn checked_atr<C: VirtualCard>(card: &C) -> Result<Vec<u8>, usize> {
    let atr = card.atr();
    if atr.is_empty() || atr.len() > MAX_ATR_LEN {
        return Err(atr.len());
    }
    Ok(atr)
}

/// Resolves once `stop` is `true` or its sender is gone (nobody could stop the link any more,
/// so it must not keep the card in the reader). Cancel-safe.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Sleeps `delay`; `true` if the link was stopped meanwhile.
async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        biased;
        () = stopped(stop) => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// Exponential backoff between connection attempts.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}
