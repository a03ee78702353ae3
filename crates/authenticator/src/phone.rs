//! The device channel: how the phone receives sign-in requests and answers them.
//!
//! A workstation's agent opens a sign-in request for a person; the server pushes it to the phone
//! holding that person's card. This module is the phone's side:
//!
//! * **Authenticating the connection.** [`PhoneLink`] proves it is the enrolled device by
//!   signing a single-use server challenge with the device channel key
//!   ([`crate::device_key`]) and gets a short-lived device token, cached until a minute before
//!   it expires and renewed by itself when the server says it has lapsed. No static secret is
//!   ever sent.
//! * **Receiving.** [`PhoneLink::events`] is one server-sent-event stream
//!   (`GET /api/v1/device/events`): on connect the server first sends every still-valid pending
//!   request, then each new one as it is made, and tells when one is closed.
//!   [`PhoneLink::pending`] is the long-poll fallback. [`Listener`] keeps a connection up
//!   across failures: it reconnects with backoff, falls back to long-polling when the event
//!   stream does not work, and delivers each request once.
//! * **Answering.** [`check_request`] recomputes the digest of the context the phone is about to
//!   show and refuses a request whose digest does not match or that has expired. The server
//!   never sends the phone the number: the person reads it off the workstation and types it.
//!   [`PhoneLink::approve`] then unlocks the keystore with the passcode (checked and counted by
//!   the server, [`crate::unlock`]) and signs [`vsc_proto::signin::approval_statement`] — request id, server nonce,
//!   context digest, the typed number, server origin — with the card's authentication key. A
//!   wrong number fails the request on the server (and counts towards the card's lock).
//!   [`PhoneLink::decline`] declines, or reports "I didn't do this".
//! * **The simulated phone.** [`auto_approve`] is the demo's and sandbox's phone: it approves by
//!   itself every request, with the number it reads from a [`WorkstationScreen`] that the
//!   workstation side fills in (as a person would read the screen).
//!
//! The device token and the passcode are never logged or printed; the token is wiped from
//! memory when dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use vsc_proto::errors;
use vsc_proto::routes;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::time::Instant;
use vsc_proto::ChallengeResponse;
use vsc_proto::signin::{
    ApproveAuthRequest, AuthRequestOutcome, DeclineAuthRequest, DeviceChallengeRequest,
    DeviceToken, DeviceTokenRequest, PendingAuthRequest,
};
use vsc_proto::signing::{CompleteSigningRequest, PendingSigningRequest, SigningOutcome};
use zeroize::Zeroizing;

use crate::AuthenticatorError;
use crate::client::{Client, ClientError, ClientForHome as _};
use crate::device_key::DeviceKey;
use crate::home::{Home, HomeError};
use crate::keystore::{Keystore as _, KeystoreError, Passcode};
use crate::signing::{SignReview as _, SigningReview};
use crate::sse::{SseEvent, SseParser};

/// `POST`: a challenge for the device key.
pub const DEVICE_CHALLENGE_PATH: &str = routes::DEVICE_CHALLENGE;
/// `POST`: a device token for a signed challenge.
pub const DEVICE_TOKEN_PATH: &str = routes::DEVICE_TOKEN;
/// `GET`: the server-sent event stream.
pub const DEVICE_EVENTS_PATH: &str = routes::DEVICE_EVENTS;
/// `GET`: the pending requests (long-poll with `?wait=S`); `POST …/{id}/approve`, `…/decline`.
pub const DEVICE_REQUESTS_PATH: &str = routes::DEVICE_REQUESTS;
/// `GET`: signing requests waiting for this phone; `POST …/{id}/complete` or `…/{id}/decline`.
pub const DEVICE_SIGNING_PATH: &str = routes::DEVICE_SIGNING;

/// This app's version, as the server's approved-versions policy judges it.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The server answers a long-poll after at most this long.
pub const MAX_WAIT_SECONDS: u64 = 30;
/// A cached device token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// The server sends a keep-alive every 15 seconds; this much silence means the connection is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(45);
/// An event stream is closed and reopened after this long, whatever happens.
const STREAM_LIFETIME: Duration = Duration::from_secs(3600);
/// How long the listener waits per long-poll.
const LONG_POLL_SECONDS: u64 = 25;
/// Pause between long-polls that brought nothing new (the server answers at once while any
/// request is pending).
const LONG_POLL_PAUSE: Duration = Duration::from_secs(1);
/// Consecutive failures of the event stream before the listener long-polls instead.
const SSE_FAILURES_BEFORE_FALLBACK: u32 = 3;
/// How long the listener long-polls before it tries the event stream again.
const SSE_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the phone hears from the server.
// A sign-in request (with its renewal and licence warnings) is much larger than the other
// variants; events are handled one at a time and only a few ever wait in the queue, so boxing
// it would buy nothing and change every caller.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A sign-in request waiting for an answer.
    Request(PendingAuthRequest),
    /// A signing request (prescriptions) waiting for an answer, fetched in full after the event
    /// stream named it.
    Signing(PendingSigningRequest),
    /// A request is no longer pending: `state` is `approved`, `declined`, `reported`, `failed`,
    /// `cancelled`, `superseded`; or `closed` when a long-poll found it gone without saying why.
    Closed {
        /// The request.
        request_id: String,
        /// Its new state.
        state: String,
    },
    /// The server may have missed telling this phone something: read
    /// [`PhoneLink::pending`] again. ([`Listener`] does that itself.)
    Resync,
}

impl DeviceEvent {
    /// The event a server-sent event stands for; `None` for event types this app does not know.
    fn from_sse(raw: &SseEvent) -> Result<Option<DeviceEvent>, AuthenticatorError> {
        let bad = |e: serde_json::Error| AuthenticatorError::BadEvent {
            event: raw.event.clone(),
            reason: e.to_string(),
        };
        match raw.event.as_str() {
            "auth-request" => Ok(Some(DeviceEvent::Request(
                serde_json::from_str(&raw.data).map_err(bad)?,
            ))),
            // The stream only names a signing request (a batch can be megabytes): fetching
            // what is pending brings it, exactly as after a resync.
            "signing-request" => Ok(Some(DeviceEvent::Resync)),
            "auth-request-closed" | "signing-request-closed" => {
                #[derive(Deserialize)]
                struct Closed {
                    request_id: String,
                    state: String,
                }
                let closed: Closed = serde_json::from_str(&raw.data).map_err(bad)?;
                Ok(Some(DeviceEvent::Closed {
                    request_id: closed.request_id,
                    state: closed.state,
                }))
            }
            "resync" => Ok(Some(DeviceEvent::Resync)),
            _ => Ok(None),
        }
    }
}

/// Checks a request before it is shown or signed: the context digest recomputed from what will
/// be shown must equal the server's (otherwise the context on screen would not be the one
/// signed), and the request must not have expired at `now`. The check is
/// [`vsc_phone_core::signin::check_request`], the one the web app runs too.
pub fn check_request(
    req: &PendingAuthRequest,
    now: OffsetDateTime,
) -> Result<(), AuthenticatorError> {
    Ok(vsc_phone_core::signin::check_request(req, now)?)
}

/// Request ids come from the server; one typed in is checked before it becomes part of a path.
fn check_request_id(id: &str) -> Result<(), AuthenticatorError> {
    Ok(vsc_phone_core::signin::check_request_id(id)?)
}

/// A device token and when to renew it.
struct CachedToken {
    token: Zeroizing<String>,
    renew_at: Instant,
}

struct LinkInner {
    home: Home,
    client: Client,
    device_id: String,
    key: DeviceKey,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

/// The phone's authenticated link to its server: device tokens, receiving requests, answering
/// them. Cheap to clone (clones share the cached token).
#[derive(Clone)]
pub struct PhoneLink {
    inner: Arc<LinkInner>,
}

impl fmt::Debug for PhoneLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneLink")
            .field("server", &self.inner.client.origin())
            .field("device_id", &self.inner.device_id)
            .finish_non_exhaustive()
    }
}

impl PhoneLink {
    /// The link of an enrolled home: its server (trusting only the stored root CA), its device
    /// id and its device channel key. Nothing is sent yet.
    pub fn new(home: &Home) -> Result<PhoneLink, AuthenticatorError> {
        let client = Client::for_home(home)?;
        let device = home.device()?.ok_or(AuthenticatorError::NotEnrolled)?;
        let key = home.device_key()?.ok_or(AuthenticatorError::NoDeviceKey)?;
        if key.device_id() != device.device_id {
            return Err(HomeError::Corrupt {
                path: home.device_key_path(),
                reason: format!(
                    "the key was made for device {}, but this home is device {}",
                    key.device_id(),
                    device.device_id
                ),
            }
            .into());
        }
        Ok(PhoneLink {
            inner: Arc::new(LinkInner {
                home: home.clone(),
                client,
                device_id: device.device_id,
                key,
                token: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The server's origin, as the statements this phone signs name it.
    pub fn server_origin(&self) -> String {
        self.inner.client.origin()
    }

    /// A device token: the cached one until a minute before it expires, else a new one
    /// (`POST` [`DEVICE_CHALLENGE_PATH`], sign
    /// [`vsc_proto::signin::device_token_statement`] with the device key, `POST`
    /// [`DEVICE_TOKEN_PATH`]).
    async fn token(&self) -> Result<Zeroizing<String>, AuthenticatorError> {
        let inner = &self.inner;
        let mut slot = inner.token.lock().await;
        if let Some(cached) = slot.as_ref()
            && Instant::now() < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        *slot = None;
        let challenge: ChallengeResponse = inner
            .client
            .post_json(
                DEVICE_CHALLENGE_PATH,
                &DeviceChallengeRequest {
                    device_id: inner.device_id.clone(),
                },
                None,
            )
            .await?;
        let statement = vsc_proto::signin::device_token_statement(
            &challenge.challenge_id,
            &challenge.nonce,
            &inner.device_id,
            &inner.client.origin(),
        );
        let signature = inner.key.sign(&statement)?;
        // The running app's version goes with every new token, so the server judges the app
        // the person has now (against the approved versions), not the one they enrolled with.
        let mut answer: DeviceToken = inner
            .client
            .post_json_with_headers(
                DEVICE_TOKEN_PATH,
                &DeviceTokenRequest {
                    device_id: inner.device_id.clone(),
                    challenge_id: challenge.challenge_id,
                    signature: B64.encode(signature),
                },
                &[(routes::headers::APP_VERSION, APP_VERSION)],
            )
            .await?;
        let token = Zeroizing::new(std::mem::take(&mut answer.token));
        let lifetime = Duration::try_from(answer.expires_at - OffsetDateTime::now_utc())
            .unwrap_or(Duration::ZERO)
            .saturating_sub(TOKEN_MARGIN);
        *slot = Some(CachedToken {
            token: token.clone(),
            renew_at: Instant::now() + lifetime,
        });
        Ok(token)
    }

    async fn forget_token(&self) {
        *self.inner.token.lock().await = None;
    }

    /// Runs `op` with a device token; if the server says the token is no longer valid, once
    /// more with a new one.
    async fn authed<T, F, Fut>(&self, op: F) -> Result<T, AuthenticatorError>
    where
        F: Fn(Zeroizing<String>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let token = self.token().await?;
        match op(token).await {
            Err(ClientError::Server {
                status: 401, code, ..
            }) if code == errors::DEVICE_TOKEN_EXPIRED
                || code == errors::DEVICE_UNAUTHENTICATED =>
            {
                self.forget_token().await;
                let token = self.token().await?;
                Ok(op(token).await?)
            }
            other => Ok(other?),
        }
    }

    /// The still-valid requests waiting for this phone (`GET` [`DEVICE_REQUESTS_PATH`]). With
    /// `wait_seconds` > 0 the server holds the answer until a request arrives or the time is
    /// up (at most [`MAX_WAIT_SECONDS`]): the long-poll fallback of [`PhoneLink::events`].
    pub async fn pending(
        &self,
        wait_seconds: u64,
    ) -> Result<Vec<PendingAuthRequest>, AuthenticatorError> {
        let path = format!(
            "{DEVICE_REQUESTS_PATH}?wait={}",
            wait_seconds.min(MAX_WAIT_SECONDS)
        );
        let path = path.as_str();
        let client = &self.inner.client;
        let pending: Vec<PendingAuthRequest> = self
            .authed(|token| async move { client.get_json(path, Some(&token)).await })
            .await?;
        // The last request is the server's latest word on the card's renewal window.
        if let Some(last) = pending.last() {
            crate::flows::note_request_renewal(&self.inner.home, last);
        }
        Ok(pending)
    }

    async fn connect(&self) -> Result<EventConnection, AuthenticatorError> {
        let client = &self.inner.client;
        let response = self
            .authed(|token| async move {
                client
                    .open_event_stream(DEVICE_EVENTS_PATH, &token, STREAM_LIFETIME)
                    .await
            })
            .await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !content_type
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
        {
            return Err(AuthenticatorError::NoEventStream { content_type });
        }
        Ok(EventConnection {
            client: client.clone(),
            response,
            parser: SseParser::new(),
            queue: VecDeque::new(),
        })
    }

    /// Opens the server-sent event stream (`GET` [`DEVICE_EVENTS_PATH`]) and returns once the
    /// server has accepted it: from then on no request for this phone is missed. The server
    /// first sends every still-valid pending request, then each new one as it is made.
    ///
    /// The stream ends when the connection does (after an error item if it failed, or after
    /// 45 seconds without even a keep-alive); an event that cannot be read is an error item and
    /// the stream goes on. Reconnecting is the caller's business: [`Listener`] does it.
    pub async fn events(
        &self,
    ) -> Result<
        impl futures_core::Stream<Item = Result<DeviceEvent, AuthenticatorError>> + Send + use<>,
        AuthenticatorError,
    > {
        let mut connection = self.connect().await?;
        Ok(async_stream::stream! {
            loop {
                match connection.next().await {
                    Ok(Some(event)) => yield Ok(event),
                    Ok(None) => break,
                    Err(e @ AuthenticatorError::BadEvent { .. }) => yield Err(e),
                    Err(e) => {
                        yield Err(e);
                        break;
                    }
                }
            }
        })
    }

    /// A [`Listener`] on this link.
    pub fn listener(&self) -> Listener {
        Listener::new(self.clone())
    }

    /// Approves `request` with the number the person typed (read off the workstation): unlocks
    /// the keystore with `passcode` (a wrong one is counted), signs the approval statement —
    /// which includes the number — with the card's authentication key, and sends the number and
    /// signature. Nothing is sent if a local check fails or the passcode is wrong.
    ///
    /// The phone cannot tell a wrong number: the server refuses it (`wrong_number`), the request
    /// is then dead, and the failure counts towards locking the card.
    pub async fn approve(
        &self,
        request: &PendingAuthRequest,
        number: u8,
        passcode: &Passcode,
    ) -> Result<(), AuthenticatorError> {
        let statement = self.checked_statement(request, number)?;
        let signature = sign_with_card(self, passcode, statement).await?;
        self.send_approval(request, number, signature).await
    }

    /// Like [`PhoneLink::approve`], with keys already unlocked. For load tests only: a real
    /// phone asks for the passcode for every approval; a benchmark of the *server* keeps the
    /// simulated phones' keys open so their passcode KDF, which a real fleet runs on thousands
    /// of separate devices, is not counted against the server.
    pub async fn approve_with_keys(
        &self,
        request: &PendingAuthRequest,
        number: u8,
        keys: &crate::keystore::UnlockedKeys,
    ) -> Result<(), AuthenticatorError> {
        let statement = self.checked_statement(request, number)?;
        let signature = keys.sign_auth(&statement)?;
        self.send_approval(request, number, signature).await
    }

    /// The approval statement for `number`, after every local check.
    fn checked_statement(
        &self,
        request: &PendingAuthRequest,
        number: u8,
    ) -> Result<Vec<u8>, AuthenticatorError> {
        // Digest, expiry, id and number checked as the web app checks them; whether it is the
        // right number only the server knows (it fails the request if not).
        Ok(vsc_phone_core::signin::approval_statement(
            request,
            u32::from(number),
            &self.inner.client.origin(),
            OffsetDateTime::now_utc(),
        )?)
    }

    async fn send_approval(
        &self,
        request: &PendingAuthRequest,
        number: u8,
        signature: Vec<u8>,
    ) -> Result<(), AuthenticatorError> {
        let path = format!("{DEVICE_REQUESTS_PATH}/{}/approve", request.request_id);
        let body = ApproveAuthRequest {
            number,
            signature: B64.encode(signature),
        };
        let (path, body, client) = (path.as_str(), &body, &self.inner.client);
        let _: AuthRequestOutcome = self
            .authed(|token| async move { client.post_json(path, body, Some(&token)).await })
            .await?;
        Ok(())
    }

    /// Declines a request; with `not_me`, reports "I didn't do this": the server records an
    /// alert and blocks new sign-in requests to the card for a while.
    pub async fn decline(&self, request_id: &str, not_me: bool) -> Result<(), AuthenticatorError> {
        check_request_id(request_id)?;
        let path = format!("{DEVICE_REQUESTS_PATH}/{request_id}/decline");
        let body = DeclineAuthRequest {
            reason: if not_me { "not-me" } else { "declined" }.to_owned(),
        };
        let (path, body, client) = (path.as_str(), &body, &self.inner.client);
        let _: AuthRequestOutcome = self
            .authed(|token| async move { client.post_json(path, body, Some(&token)).await })
            .await?;
        Ok(())
    }
}

impl PhoneLink {
    /// The signing requests waiting for this phone (`GET` [`DEVICE_SIGNING_PATH`]).
    pub async fn pending_signing(&self) -> Result<Vec<PendingSigningRequest>, AuthenticatorError> {
        let client = &self.inner.client;
        self.authed(|token| async move { client.get_json(DEVICE_SIGNING_PATH, Some(&token)).await })
            .await
    }

    /// Signs a reviewed signing request: `passcode` opens the keystore (a wrong one is
    /// counted), each item is signed separately with the card's signing key, and the signatures
    /// go to the server, which verifies each against the signing certificate.
    pub async fn sign(
        &self,
        review: &SigningReview,
        passcode: &Passcode,
    ) -> Result<SigningOutcome, AuthenticatorError> {
        check_request_id(&review.request_id)?;
        let keys = self.unlock_keys(passcode).await?;
        let review_copy = review.clone();
        let body = tokio::task::spawn_blocking(
            move || -> Result<CompleteSigningRequest, AuthenticatorError> {
                review_copy.sign(&keys)
            },
        )
        .await
        .map_err(|_| KeystoreError::Crypto("sign (the worker thread stopped)"))??;
        self.complete_signing(&review.request_id, &body).await
    }

    /// Sends the phone's answer to a signing request.
    pub async fn complete_signing(
        &self,
        request_id: &str,
        body: &CompleteSigningRequest,
    ) -> Result<SigningOutcome, AuthenticatorError> {
        check_request_id(request_id)?;
        let path = format!("{DEVICE_SIGNING_PATH}/{request_id}/complete");
        let (path, client) = (path.as_str(), &self.inner.client);
        self.authed(|token| async move { client.post_json(path, body, Some(&token)).await })
            .await
    }

    /// Sets the card PIN (6 to 8 digits) that the virtual smartcard asks for at the
    /// workstation. The server keeps only its hash; setting it clears the wrong-PIN count.
    pub async fn set_card_pin(&self, pin: &str) -> Result<(), AuthenticatorError> {
        let body = vsc_proto::card::SetCardPin {
            pin: pin.to_owned(),
        };
        let (body, client) = (&body, &self.inner.client);
        let _: serde_json::Value = self
            .authed(|token| async move {
                client
                    .post_json(routes::DEVICE_CARD_PIN, body, Some(&token))
                    .await
            })
            .await?;
        Ok(())
    }

    /// Declines a signing request; with `not_me`, reports "I didn't do this": the server ends
    /// the session that asked and raises an alert.
    pub async fn decline_signing(
        &self,
        request_id: &str,
        not_me: bool,
    ) -> Result<(), AuthenticatorError> {
        check_request_id(request_id)?;
        let path = format!("{DEVICE_SIGNING_PATH}/{request_id}/decline");
        let body = DeclineAuthRequest {
            reason: if not_me { "not-me" } else { "declined" }.to_owned(),
        };
        let (path, body, client) = (path.as_str(), &body, &self.inner.client);
        let _: SigningOutcome = self
            .authed(|token| async move { client.post_json(path, body, Some(&token)).await })
            .await?;
        Ok(())
    }
}

/// Unlocks the keystore with `passcode` (checked by the server, [`crate::unlock`]) and signs
/// `statement` with the card's authentication key.
async fn sign_with_card(
    link: &PhoneLink,
    passcode: &Passcode,
    statement: Vec<u8>,
) -> Result<Vec<u8>, AuthenticatorError> {
    let keys = link.unlock_keys(passcode).await?;
    Ok(keys.sign_auth(&statement)?)
}

impl PhoneLink {
    /// Opens the keystore with `passcode`, checked by the server over this link's connection
    /// and signed with its device key (see [`crate::unlock`]); a wrong passcode is counted by
    /// the server.
    pub async fn unlock_keys(
        &self,
        passcode: &Passcode,
    ) -> Result<crate::keystore::UnlockedKeys, AuthenticatorError> {
        let inner = &self.inner;
        crate::unlock::open_keystore(&inner.home, &inner.client, &inner.key, passcode).await
    }
}

/// One open event stream.
struct EventConnection {
    client: Client,
    response: reqwest::Response,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
}

impl EventConnection {
    /// The next event this app understands; `None` when the server ended the stream. Cancel
    /// safe: nothing read is lost if the future is dropped.
    async fn next(&mut self) -> Result<Option<DeviceEvent>, AuthenticatorError> {
        loop {
            while let Some(raw) = self.queue.pop_front() {
                if let Some(event) = DeviceEvent::from_sse(&raw)? {
                    return Ok(Some(event));
                }
            }
            let chunk =
                tokio::time::timeout(STREAM_SILENCE, self.client.next_chunk(&mut self.response))
                    .await
                    .map_err(|_| AuthenticatorError::StreamSilent {
                        seconds: STREAM_SILENCE.as_secs(),
                    })??;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            let events = self
                .parser
                .push(&chunk)
                .map_err(|e| AuthenticatorError::EventStream(e.to_string()))?;
            self.queue.extend(events);
        }
    }
}

/// How a [`Listener`] is currently receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One long-lived server-sent event stream.
    ServerSentEvents,
    /// Repeated long-polls.
    LongPoll,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::ServerSentEvents => "server-sent events",
            Transport::LongPoll => "long-polling",
        })
    }
}

/// What a [`Listener`] reports about its connection, for a front end to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenNotice {
    /// Connected (again); requests are being received.
    Connected(Transport),
    /// The connection failed or ended; the listener tries again after `retry_in`.
    Lost {
        /// What went wrong.
        reason: String,
        /// The pause before the next attempt.
        retry_in: Duration,
    },
    /// The event stream does not work from here; long-polling instead for a while.
    FallingBack {
        /// Why.
        reason: String,
    },
    /// An event the server sent could not be read and was skipped.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for ListenNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenNotice::Connected(t) => {
                write!(f, "connected; waiting for sign-in requests ({t})")
            }
            ListenNotice::Lost { reason, retry_in } => write!(
                f,
                "connection lost ({reason}); trying again in {} s",
                retry_in.as_secs().max(1)
            ),
            ListenNotice::FallingBack { reason } => write!(
                f,
                "the event stream does not work from here ({reason}); long-polling instead"
            ),
            ListenNotice::Skipped { reason } => {
                write!(f, "skipped an event the server sent ({reason})")
            }
        }
    }
}

type NoticeFn = Arc<dyn Fn(&ListenNotice) + Send + Sync>;

/// Keeps the phone listening: server-sent events, falling back to long-polling, reconnecting
/// with backoff (1 s doubling to 30 s, or longer if the server asked with `retry:`) after
/// failures. Each request is delivered once (the
/// server repeats every pending request on reconnect). Errors that retrying cannot fix (not
/// enrolled, the server no longer knows this device, a damaged home) end it.
///
/// [`Listener::next`] is cancel safe: use it in `tokio::select!` with a shutdown signal.
pub struct Listener {
    link: PhoneLink,
    transport: Transport,
    connection: Option<EventConnection>,
    /// Long-polling is working (for the `Connected` notice).
    polling: bool,
    queue: VecDeque<DeviceEvent>,
    /// Requests delivered and not known to be closed, with their expiry.
    delivered: HashMap<String, OffsetDateTime>,
    /// Which of `delivered` are signing requests.
    delivered_signing: HashSet<String>,
    failures: u32,
    sse_failures: u32,
    retry_sse_at: Option<Instant>,
    next_attempt: Option<Instant>,
    /// The reconnection delay the server asked for (`retry:`), if it did.
    server_retry: Option<Duration>,
    notice: Option<NoticeFn>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("link", &self.link)
            .field("transport", &self.transport)
            .field("connected", &(self.connection.is_some() || self.polling))
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener on `link`; it connects on the first [`Listener::next`].
    pub fn new(link: PhoneLink) -> Listener {
        Listener {
            link,
            transport: Transport::ServerSentEvents,
            connection: None,
            polling: false,
            queue: VecDeque::new(),
            delivered: HashMap::new(),
            delivered_signing: HashSet::new(),
            failures: 0,
            sse_failures: 0,
            retry_sse_at: None,
            next_attempt: None,
            server_retry: None,
            notice: None,
        }
    }

    /// Reports connection changes to `f` (for printing).
    pub fn on_notice(mut self, f: impl Fn(&ListenNotice) + Send + Sync + 'static) -> Listener {
        self.notice = Some(Arc::new(f));
        self
    }

    /// Starts with long-polling instead of the event stream (for networks that break
    /// streaming responses).
    pub fn long_poll_only(mut self) -> Listener {
        self.transport = Transport::LongPoll;
        self.retry_sse_at = None;
        self
    }

    /// How the listener is receiving now.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The link.
    pub fn link(&self) -> &PhoneLink {
        &self.link
    }

    fn notify(&self, notice: ListenNotice) {
        if let Some(f) = &self.notice {
            f(&notice);
        }
    }

    /// The next event: a request not delivered before, or a request closing. Waits as long as
    /// it takes, reconnecting as needed; returns an error only when retrying cannot help.
    pub async fn next(&mut self) -> Result<DeviceEvent, AuthenticatorError> {
        loop {
            if let Some(event) = self.pop() {
                return Ok(event);
            }
            if let Some(at) = self.next_attempt {
                tokio::time::sleep_until(at).await;
                self.next_attempt = None;
            }
            let step = match self.transport {
                Transport::ServerSentEvents => self.step_sse().await,
                Transport::LongPoll => self.step_long_poll().await,
            };
            if let Err(e) = step {
                self.recover(e)?;
            }
        }
    }

    fn pop(&mut self) -> Option<DeviceEvent> {
        let now = OffsetDateTime::now_utc();
        self.delivered
            .retain(|_, expires| *expires > now - time::Duration::minutes(1));
        let delivered = &self.delivered;
        self.delivered_signing
            .retain(|id| delivered.contains_key(id));
        while let Some(event) = self.queue.pop_front() {
            match &event {
                DeviceEvent::Request(r) => {
                    if self.delivered.contains_key(&r.request_id) {
                        continue;
                    }
                    self.delivered.insert(r.request_id.clone(), r.expires_at);
                    crate::flows::note_request_renewal(&self.link.inner.home, r);
                    return Some(event);
                }
                DeviceEvent::Signing(r) => {
                    if self.delivered.contains_key(&r.request_id) {
                        continue;
                    }
                    self.delivered.insert(r.request_id.clone(), r.expires_at);
                    self.delivered_signing.insert(r.request_id.clone());
                    return Some(event);
                }
                DeviceEvent::Closed { request_id, .. } => {
                    self.delivered.remove(request_id);
                    self.delivered_signing.remove(request_id);
                    return Some(event);
                }
                DeviceEvent::Resync => {}
            }
        }
        None
    }

    /// Queues what the server says is pending now: new requests, and a `Closed` for each
    /// delivered request that is no longer there. Returns whether anything was new.
    /// `signing` is `None` when the signing requests could not be read this time: then the
    /// signing requests delivered before are not taken for closed.
    fn absorb(
        &mut self,
        pending: Vec<PendingAuthRequest>,
        signing: Option<Vec<PendingSigningRequest>>,
    ) -> bool {
        let signing_known = signing.is_some();
        let signing = signing.unwrap_or_default();
        let ids: HashSet<&str> = pending
            .iter()
            .map(|r| r.request_id.as_str())
            .chain(signing.iter().map(|r| r.request_id.as_str()))
            .collect();
        let mut gone: Vec<String> = self
            .delivered
            .keys()
            .filter(|id| !ids.contains(id.as_str()))
            .filter(|id| signing_known || !self.delivered_signing.contains(id.as_str()))
            .cloned()
            .collect();
        gone.sort();
        let mut new = !gone.is_empty();
        for request_id in gone {
            self.queue.push_back(DeviceEvent::Closed {
                request_id,
                state: "closed".to_owned(),
            });
        }
        for r in pending {
            if !self.delivered.contains_key(&r.request_id) {
                new = true;
                self.queue.push_back(DeviceEvent::Request(r));
            }
        }
        for r in signing {
            if !self.delivered.contains_key(&r.request_id) {
                new = true;
                self.queue.push_back(DeviceEvent::Signing(r));
            }
        }
        new
    }

    async fn step_sse(&mut self) -> Result<(), AuthenticatorError> {
        if self.connection.is_none() {
            let connection = self.link.connect().await?;
            self.connection = Some(connection);
            self.failures = 0;
            self.sse_failures = 0;
            self.notify(ListenNotice::Connected(Transport::ServerSentEvents));
            if !self.delivered.is_empty() {
                // Back after a break: requests delivered before may have closed meanwhile.
                let pending = self.link.pending(0).await?;
                let signing = self.signing_requests().await;
                self.absorb(pending, signing);
            }
        }
        let Some(connection) = self.connection.as_mut() else {
            return Ok(());
        };
        match connection.next().await {
            Ok(Some(DeviceEvent::Resync)) => {
                let pending = self.link.pending(0).await?;
                let signing = self.signing_requests().await;
                self.absorb(pending, signing);
                Ok(())
            }
            Ok(Some(event)) => {
                self.queue.push_back(event);
                Ok(())
            }
            Ok(None) => Err(AuthenticatorError::StreamEnded),
            Err(AuthenticatorError::BadEvent { event, reason }) => {
                self.notify(ListenNotice::Skipped {
                    reason: format!("{event}: {reason}"),
                });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn step_long_poll(&mut self) -> Result<(), AuthenticatorError> {
        if let Some(at) = self.retry_sse_at
            && Instant::now() >= at
        {
            self.retry_sse_at = None;
            self.polling = false;
            self.transport = Transport::ServerSentEvents;
            return Ok(());
        }
        let pending = self.link.pending(LONG_POLL_SECONDS).await?;
        let signing = self.signing_requests().await;
        if !self.polling {
            self.polling = true;
            self.failures = 0;
            self.notify(ListenNotice::Connected(Transport::LongPoll));
        }
        let had_any = !pending.is_empty() || signing.as_ref().is_some_and(|s| !s.is_empty());
        if !self.absorb(pending, signing) && had_any {
            // The server answers at once while anything is pending; do not spin.
            self.next_attempt = Some(Instant::now() + LONG_POLL_PAUSE);
        }
        Ok(())
    }

    /// The signing requests waiting now, or `None` (reported as a notice) when they cannot be
    /// read: a failure there must not stop sign-in requests from arriving.
    async fn signing_requests(&self) -> Option<Vec<PendingSigningRequest>> {
        match self.link.pending_signing().await {
            Ok(list) => Some(list),
            Err(e) => {
                self.notify(ListenNotice::Skipped {
                    reason: format!("signing requests could not be read: {e}"),
                });
                None
            }
        }
    }

    /// After a failed step: `Err` if retrying cannot help, else schedules the next attempt.
    fn recover(&mut self, error: AuthenticatorError) -> Result<(), AuthenticatorError> {
        if let Some(retry) = self.connection.take().and_then(|c| c.parser.retry_ms()) {
            self.server_retry = Some(Duration::from_millis(retry).min(MAX_BACKOFF));
        }
        self.polling = false;
        let unsupported = is_stream_unsupported(&error);
        if !unsupported && !is_transient(&error) {
            return Err(error);
        }
        self.failures = self.failures.saturating_add(1);
        let mut delay = backoff(self.failures);
        if self.transport == Transport::ServerSentEvents {
            delay = delay.max(self.server_retry.unwrap_or_default());
            self.sse_failures = self.sse_failures.saturating_add(1);
            if unsupported || self.sse_failures >= SSE_FAILURES_BEFORE_FALLBACK {
                self.transport = Transport::LongPoll;
                self.sse_failures = 0;
                self.retry_sse_at = Some(Instant::now() + SSE_RETRY_AFTER);
                self.notify(ListenNotice::FallingBack {
                    reason: error.to_string(),
                });
                if unsupported {
                    // The server is reachable; long-poll at once.
                    delay = Duration::ZERO;
                }
            }
        }
        if !delay.is_zero() {
            self.notify(ListenNotice::Lost {
                reason: error.to_string(),
                retry_in: delay,
            });
        }
        self.next_attempt = Some(Instant::now() + delay);
        Ok(())
    }
}

/// 1 s, 2 s, 4 s … up to 30 s, each with up to 20 % taken off at random so that many phones
/// cut off together do not come back together.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(MAX_BACKOFF);
    let mut r = [0u8; 1];
    let jitter = if aws_lc_rs::rand::fill(&mut r).is_ok() {
        u32::from(r[0])
    } else {
        0
    };
    base - base.mul_f64(f64::from(jitter) / 255.0 * 0.2)
}

/// The event stream does not work here, but the server may well answer long-polls.
fn is_stream_unsupported(e: &AuthenticatorError) -> bool {
    match e {
        AuthenticatorError::NoEventStream { .. } => true,
        AuthenticatorError::Client(ClientError::UnexpectedResponse { status, .. }) => {
            matches!(status, 404 | 405 | 406 | 501)
        }
        _ => false,
    }
}

/// A failure that may go away by itself: the network, the server restarting, a proxy.
fn is_transient(e: &AuthenticatorError) -> bool {
    match e {
        AuthenticatorError::Client(ClientError::Connect { .. })
        | AuthenticatorError::Client(ClientError::BadResponse { .. })
        | AuthenticatorError::StreamEnded
        | AuthenticatorError::StreamSilent { .. }
        | AuthenticatorError::EventStream(_)
        | AuthenticatorError::NoEventStream { .. } => true,
        AuthenticatorError::Client(ClientError::Server { status, .. })
        | AuthenticatorError::Client(ClientError::UnexpectedResponse { status, .. }) => {
            *status >= 500 || matches!(status, 408 | 429)
        }
        _ => false,
    }
}

/// What the workstation's screen shows, as the simulated phone of [`auto_approve`] reads it.
///
/// The server never sends the phone the number: a person reads it off the workstation and
/// types it. For the demo and sandbox, the workstation side calls [`WorkstationScreen::show`]
/// when it shows a number (the identity agent's `AgentEvent::Number`), and the simulated phone
/// reads the number shown for the request's person. Each shown number is read once; a new one
/// for the same person replaces an unread one.
#[derive(Debug, Clone, Default)]
pub struct WorkstationScreen {
    inner: Arc<ScreenInner>,
}

#[derive(Debug, Default)]
struct ScreenInner {
    shown: std::sync::Mutex<HashMap<String, u8>>,
    changed: tokio::sync::Notify,
}

impl WorkstationScreen {
    /// An empty screen.
    pub fn new() -> WorkstationScreen {
        WorkstationScreen::default()
    }

    /// The workstation shows `number` for a sign-in of `uid`.
    pub fn show(&self, uid: &str, number: u8) {
        self.inner
            .shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid.to_owned(), number);
        self.inner.changed.notify_waiters();
    }

    fn take(&self, uid: &str) -> Option<u8> {
        self.inner
            .shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid)
    }

    /// Waits up to `within` for a number shown for `uid` and reads it.
    pub async fn read(&self, uid: &str, within: Duration) -> Option<u8> {
        let deadline = Instant::now() + within;
        loop {
            // Registered before looking, so a number shown in between is not missed.
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(number) = self.take(uid) {
                return Some(number);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.take(uid);
            }
        }
    }
}

/// Longest the simulated phone waits for the workstation to show a request's number.
const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// The simulated phone of the demo and sandbox: listens (server-sent events, falling back to
/// long-polling, reconnecting with backoff) and approves, with `passcode`, every request with
/// the number `screen` shows for its person (the server never sends the number). A request
/// whose number the workstation does not show within 30 seconds (or before it expires) is
/// ignored. Returns when `shutdown` completes.
///
/// Refuses to run unless the home is a simulated phone. The passcode is tried once at start,
/// and the phone stops at the first wrong passcode, so it never locks the card by itself.
/// Each approval, each refusal and each connection change is reported as a line of text
/// through `on_event` (for printing).
pub async fn auto_approve(
    home: Home,
    passcode: Passcode,
    screen: WorkstationScreen,
    on_event: impl Fn(&str) + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AuthenticatorError> {
    auto_approve_with(
        home,
        passcode,
        screen,
        AutoApprove::default(),
        on_event,
        shutdown,
    )
    .await
}

/// What the simulated phone of [`auto_approve_with`] does besides approving sign-ins.
#[derive(Debug, Clone, Copy, Default)]
pub struct AutoApprove {
    /// Decline every virtual-smartcard operation (to show a refusal) instead of signing it.
    pub decline_card_operations: bool,
}

/// [`auto_approve`] with options.
pub async fn auto_approve_with(
    home: Home,
    passcode: Passcode,
    screen: WorkstationScreen,
    options: AutoApprove,
    on_event: impl Fn(&str) + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AuthenticatorError> {
    let device = home.device()?.ok_or(AuthenticatorError::NotEnrolled)?;
    if !device.simulated {
        return Err(AuthenticatorError::NotSimulated);
    }
    let link = PhoneLink::new(&home)?;
    // Check the passcode now rather than at the first request.
    sign_with_card(
        &link,
        &passcode,
        b"vsc-auto-approve passcode check".to_vec(),
    )
    .await?;
    let on_event: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(on_event);
    let notices = on_event.clone();
    let mut listener = link.listener().on_notice(move |n| notices(&n.to_string()));
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return Ok(()),
            event = listener.next() => event?,
        };
        let request = match event {
            DeviceEvent::Request(request) => request,
            DeviceEvent::Signing(request) => {
                if options.decline_card_operations
                    && request.kind == vsc_proto::signing::SigningKind::Card
                {
                    match link.decline_signing(&request.request_id, false).await {
                        Ok(()) => on_event(&format!(
                            "declined card operation {} from {}",
                            request.request_id, request.workstation
                        )),
                        Err(e) => {
                            on_event(&format!("could not decline {}: {e}", request.request_id))
                        }
                    }
                    continue;
                }
                auto_sign(&link, &request, &passcode, on_event.as_ref()).await?;
                continue;
            }
            _ => continue,
        };
        // The registered name and organisation (or the "unregistered" mark) and the address
        // the server saw.
        let from = &format!(
            "{} at {}",
            request.context.workstation_label(),
            request.context.client_address
        );
        let left = Duration::try_from(request.expires_at - OffsetDateTime::now_utc())
            .unwrap_or(Duration::ZERO);
        let read = screen.read(&request.uid, left.min(SCREEN_WAIT));
        let number = tokio::select! {
            () = &mut shutdown => return Ok(()),
            number = read => number,
        };
        let Some(number) = number else {
            on_event(&format!(
                "ignored sign-in request {} from {from}: the workstation showed no number for it",
                request.request_id
            ));
            continue;
        };
        match link.approve(&request, number, &passcode).await {
            Ok(()) => on_event(&format!(
                "approved sign-in request {} from {from} ({}) with number {number:02}",
                request.request_id, request.context.purpose
            )),
            Err(e @ AuthenticatorError::Keystore(_)) => return Err(e),
            Err(e) => on_event(&format!(
                "could not approve sign-in request {} from {from}: {e}",
                request.request_id
            )),
        }
    }
}

/// The simulated phone's answer to a signing request: review (the same checks a real phone
/// makes), sign every item it can, report.
async fn auto_sign(
    link: &PhoneLink,
    request: &PendingSigningRequest,
    passcode: &Passcode,
    on_event: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), AuthenticatorError> {
    let review = match crate::signing::review(request) {
        Ok(r) => r,
        Err(e) => {
            on_event(&format!(
                "declining signing request {}: {e}",
                request.request_id
            ));
            if let Err(e) = link.decline_signing(&request.request_id, false).await {
                on_event(&format!("could not decline {}: {e}", request.request_id));
            }
            return Ok(());
        }
    };
    match link.sign(&review, passcode).await {
        Ok(outcome) => on_event(&format!(
            "signed request {} from {}: {} signed, {} not signed",
            request.request_id,
            request.workstation,
            outcome.signatures.len(),
            outcome.failed_signatures.len()
        )),
        Err(e @ AuthenticatorError::Keystore(_)) => return Err(e),
        Err(e) => on_event(&format!(
            "could not sign request {}: {e}",
            request.request_id
        )),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vsc_proto::signin::AuthContext;

    fn request() -> PendingAuthRequest {
        let context = AuthContext {
            workstation_id: "ws-1".into(),
            workstation_name: "WARD-7-PC-03".into(),
            client_address: "10.0.0.7".into(),
            agent_version: "0.1.0".into(),
            purpose: "Sign in to clinical systems".into(),
            ..AuthContext::default()
        };
        let created_at = 1_700_000_000;
        PendingAuthRequest {
            request_id: "req-1".into(),
            uid: "123456789012".into(),
            nonce: "bm9uY2U=".into(),
            context_digest: vsc_proto::signin::context_digest(&context, created_at),
            context,
            created_at,
            expires_at: OffsetDateTime::from_unix_timestamp(created_at + 120).expect("time"),
            card_renewal: None,
            licence_warning: None,
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).expect("time")
    }

    #[test]
    fn check_request_refuses_what_it_should() {
        let good = request();
        check_request(&good, at(1_700_000_010)).expect("good request");

        for tamper in [
            |r: &mut PendingAuthRequest| r.context.workstation_name = "OTHER-PC".into(),
            |r: &mut PendingAuthRequest| r.context.purpose.push('!'),
            |r: &mut PendingAuthRequest| r.context.client_address.clear(),
            |r: &mut PendingAuthRequest| r.created_at += 1,
            |r: &mut PendingAuthRequest| r.context_digest = "00".repeat(32),
        ] {
            let mut r = good.clone();
            tamper(&mut r);
            assert!(matches!(
                check_request(&r, at(1_700_000_010)),
                Err(AuthenticatorError::ContextMismatch { .. })
            ));
        }
        let err = check_request(&good, at(1_700_000_120)).expect_err("expired");
        assert!(matches!(err, AuthenticatorError::RequestExpired { .. }));
        assert!(err.to_string().contains("sign in again"), "{err}");
    }

    #[test]
    fn request_ids_are_checked_before_they_become_paths() {
        check_request_id("0123abcd-EF_9").expect("server-made id");
        for bad in ["", "../ra/me", "a/b", "a?b", "a b", &"x".repeat(129)] {
            assert!(matches!(
                check_request_id(bad),
                Err(AuthenticatorError::BadRequestId(_))
            ));
        }
    }

    #[test]
    fn server_sent_events_become_device_events() {
        let r = request();
        let raw = SseEvent {
            event: "auth-request".into(),
            data: serde_json::to_string(&r).expect("json"),
            id: None,
        };
        assert_eq!(
            DeviceEvent::from_sse(&raw).expect("reads"),
            Some(DeviceEvent::Request(r))
        );
        let raw = SseEvent {
            event: "auth-request-closed".into(),
            data: r#"{"request_id":"req-1","state":"approved"}"#.into(),
            id: None,
        };
        assert_eq!(
            DeviceEvent::from_sse(&raw).expect("reads"),
            Some(DeviceEvent::Closed {
                request_id: "req-1".into(),
                state: "approved".into()
            })
        );
        let raw = SseEvent {
            event: "resync".into(),
            data: "{}".into(),
            id: None,
        };
        assert_eq!(
            DeviceEvent::from_sse(&raw).expect("reads"),
            Some(DeviceEvent::Resync)
        );
        let raw = SseEvent {
            event: "something-new".into(),
            data: "{}".into(),
            id: None,
        };
        assert_eq!(DeviceEvent::from_sse(&raw).expect("ignored"), None);
        let raw = SseEvent {
            event: "auth-request".into(),
            data: "{not json".into(),
            id: None,
        };
        assert!(matches!(
            DeviceEvent::from_sse(&raw),
            Err(AuthenticatorError::BadEvent { .. })
        ));
    }

    #[tokio::test]
    async fn the_screen_is_read_once_per_shown_number() {
        let screen = WorkstationScreen::new();
        assert_eq!(
            screen.read("1", Duration::from_millis(10)).await,
            None,
            "nothing shown yet"
        );
        screen.show("1", 7);
        screen.show("2", 55);
        screen.show("1", 42);
        assert_eq!(
            screen.read("1", Duration::ZERO).await,
            Some(42),
            "the latest"
        );
        assert_eq!(
            screen.read("1", Duration::from_millis(10)).await,
            None,
            "read once"
        );
        assert_eq!(screen.read("2", Duration::ZERO).await, Some(55));
        // A reader waiting when the number appears gets it.
        let waiting = tokio::spawn({
            let screen = screen.clone();
            async move { screen.read("1", Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        screen.show("1", 0);
        assert_eq!(waiting.await.expect("reader"), Some(0));
    }

    #[test]
    fn backoff_grows_to_a_cap() {
        let first = backoff(1);
        assert!(first <= Duration::from_secs(1) && first >= Duration::from_millis(800));
        let fourth = backoff(4);
        assert!(fourth <= Duration::from_secs(8) && fourth >= Duration::from_millis(6400));
        for n in [6, 7, 50, u32::MAX] {
            let d = backoff(n);
            assert!(
                d <= MAX_BACKOFF && d >= MAX_BACKOFF.mul_f64(0.8),
                "{n}: {d:?}"
            );
        }
    }

    #[test]
    fn failures_are_sorted_into_transient_and_final() {
        let connect = AuthenticatorError::Client(ClientError::Connect {
            server: "s".into(),
            detail: "refused".into(),
        });
        assert!(is_transient(&connect));
        let server = |status: u16, code: &str| {
            AuthenticatorError::Client(ClientError::Server {
                status,
                code: code.into(),
                message: String::new(),
            })
        };
        assert!(is_transient(&server(503, "unavailable")));
        assert!(is_transient(&server(429, "too_many")));
        assert!(!is_transient(&server(404, "unknown_device")));
        assert!(!is_transient(&server(401, "signature_invalid")));
        assert!(!is_transient(&AuthenticatorError::NotEnrolled));
        let not_found = AuthenticatorError::Client(ClientError::UnexpectedResponse {
            server: "s".into(),
            path: DEVICE_EVENTS_PATH.into(),
            status: 404,
            snippet: String::new(),
        });
        assert!(is_stream_unsupported(&not_found));
        assert!(is_stream_unsupported(&AuthenticatorError::NoEventStream {
            content_type: "application/json".into()
        }));
        assert!(!is_stream_unsupported(&connect));
    }

    #[test]
    fn absorbing_a_poll_queues_new_requests_and_closes_vanished_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::open(dir.path()).expect("home");
        // A link needs an enrolled home; the listener's bookkeeping does not touch it.
        let link = PhoneLink {
            inner: Arc::new(LinkInner {
                home,
                client: Client::with_fingerprint(
                    url::Url::parse("https://127.0.0.1:1/").expect("url"),
                    &"00".repeat(32),
                )
                .expect("client"),
                device_id: "d".into(),
                key: DeviceKey::generate("d").expect("key"),
                token: tokio::sync::Mutex::new(None),
            }),
        };
        let mut listener = Listener::new(link);
        let mut one = request();
        one.expires_at = OffsetDateTime::now_utc() + time::Duration::minutes(2);
        let mut two = one.clone();
        two.request_id = "req-2".into();
        assert!(listener.absorb(vec![one.clone()], Some(Vec::new())));
        assert_eq!(listener.pop(), Some(DeviceEvent::Request(one.clone())));
        assert_eq!(listener.pop(), None);
        // Delivered once only.
        assert!(!listener.absorb(vec![one.clone()], Some(Vec::new())));
        listener.queue.push_back(DeviceEvent::Request(one.clone()));
        assert_eq!(listener.pop(), None);
        // One vanishes, another arrives.
        assert!(listener.absorb(vec![two.clone()], Some(Vec::new())));
        assert_eq!(
            listener.pop(),
            Some(DeviceEvent::Closed {
                request_id: "req-1".into(),
                state: "closed".into()
            })
        );
        assert_eq!(listener.pop(), Some(DeviceEvent::Request(two)));
        assert_eq!(listener.pop(), None);
    }
}
