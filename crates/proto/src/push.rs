//! Web Push (issue 13): what the phone app exchanges with the server to be woken when it is
//! closed. The subscription itself travels as the browser's own `PushSubscription.toJSON()`
//! (`{"endpoint": …, "keys": {"p256dh": …, "auth": …}}`), which the server checks with
//! `vsc-webpush`; the answers are [`PushStatus`]. What is pushed is only `{"request_id": "…"}`:
//! the app then fetches the request over its authenticated channel.

use serde::{Deserialize, Serialize};

/// `GET /api/v1/device/push` and the answer to subscribing and unsubscribing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushStatus {
    /// The server's VAPID public key, base64url (an uncompressed P-256 point): the
    /// `applicationServerKey` the app passes to `pushManager.subscribe`.
    pub application_server_key: String,
    /// Whether the calling phone has a push subscription stored.
    pub subscribed: bool,
    /// The origin of its push service (`https://host[:port]`), when subscribed; never the full
    /// endpoint, which is a capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_origin: Option<String>,
}
