//! Web Push for the vsc phone app: waking a closed phone app when a sign-in or signing request
//! is waiting for it.
//!
//! The phone app is an installable web app. While it is open it hears of new requests over its
//! own channel to the vsc server; when it is closed, only the browser's push service can reach
//! the phone. This crate makes what the vsc server sends through that service:
//!
//! - [`subscription`]: the browser's push subscription (endpoint URL, `p256dh` key, `auth`
//!   secret), checked once.
//! - [`ece`]: RFC 8291 message encryption in the RFC 8188 `aes128gcm` content coding, so that
//!   the push service carries the message without being able to read it; also the receiving side,
//!   for the phone and for tests. Tested byte for byte against RFC 8291 Appendix A.
//! - [`vapid`]: RFC 8292 VAPID, the server's P-256 key (generated, stored 0600, loaded) and the
//!   `Authorization: vapid t=…, k=…` header that identifies the server to the push service.
//! - [`notice`]: the message itself, [`PushNotice`], which carries only a request id and nothing
//!   personal (the app fetches the request over its authenticated channel), and
//!   [`build_request`], which assembles URL, headers and body without sending anything.
//!
//! Not here, but in the server (`vsc_server::push` and its device routes): `vsc serve
//! --vapid-key FILE` calling [`VapidKey::load_or_generate`], the device routes that store the
//! phone's subscription and hand out [`VapidKey::public_key_base64url`] as the
//! `applicationServerKey`, and sending the [`PushRequest`] with the server's HTTP client when a
//! request is opened for the device (a `404`/`410` answer from the push service means the
//! subscription is gone).

pub mod ece;
pub mod notice;
pub mod subscription;
pub mod vapid;

pub use ece::{EceError, MAX_PLAINTEXT_LEN, ReceiverKeys};
pub use notice::{DeliveryOptions, PushError, PushNotice, PushRequest, Urgency, build_request};
pub use subscription::{
    Endpoint, LoopbackHttp, Subscription, SubscriptionError, is_public_address,
};
pub use vapid::{Contact, KeyFileFormat, VapidError, VapidKey};
