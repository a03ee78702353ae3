//! Web Push (issue 13): waking the closed phone app when a sign-in or signing request is opened
//! for the card it holds.
//!
//! The phone app stores its browser's push subscription with `POST
//! /api/v1/device/push/subscription` ([`crate::routes::device`]). When a request is opened,
//! the opening route calls [`notify`] after its transaction has committed; [`notify`] spawns a
//! task and returns at once, so pushing never delays or fails the opening. The task reads the
//! subscription of the phone holding the card, builds the message with `vsc-webpush` (RFC 8291
//! `aes128gcm`, RFC 8292 VAPID; plaintext `{"request_id":"…"}` and nothing else; TTL the
//! request's remaining life; `Urgency: high`) and POSTs it to the push service (10 s timeout,
//! no redirects, `https:` only unless the test switch allows loopback `http:`).
//!
//! Only the node that opened the request sends: hub events reach every node of a multi-node
//! instance, so sending from them would push once per node.
//!
//! A `404` or `410` answer means the browser dropped the subscription: it is deleted (only if
//! the phone has not replaced it since) with a `device.push_subscription_gone` audit event in
//! the same transaction. Other failures are logged (the push service's origin, never the
//! endpoint, which is a capability, nor the keys) and counted in `vsc_push_notices_total`.

use std::path::Path;
use std::time::Duration as StdDuration;

use vsc_store::{NewEvent, Outcome};
use vsc_webpush::subscription::{AuthSecret, Endpoint, UaPublicKey};
use vsc_webpush::{
    Contact, DeliveryOptions, LoopbackHttp, PushNotice, Subscription, Urgency, VapidKey,
    build_request,
};

use crate::config::ServerConfig;
use crate::state::AppState;

/// How long one delivery to a push service may take.
const SEND_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Most deliveries in flight at once; beyond it a notice is dropped (and counted `failed`):
/// the app also hears of requests on its open channel, and a silent push service must not
/// pile up tasks and sockets.
const MAX_IN_FLIGHT: usize = 64;

/// The server's side of Web Push: its VAPID key, contact, endpoint policy and HTTP client.
pub struct Push {
    key: VapidKey,
    contact: Contact,
    loopback: LoopbackHttp,
    http: reqwest::Client,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Resolves push services' names to public addresses only ([`vsc_webpush::is_public_address`]):
/// an endpoint whose name leads into a private network (or is rebound there after it was
/// checked) is not connected to.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 443))
                .await?
                .filter(|a| vsc_webpush::is_public_address(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push")
            .field("key", &self.key)
            .field("contact", &self.contact)
            .field("loopback", &self.loopback)
            .finish_non_exhaustive()
    }
}

/// Why Web Push could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum PushSetupError {
    /// The key file could not be read, made or trusted.
    #[error("the VAPID key {path}: {source}")]
    Key {
        /// The file.
        path: String,
        /// Cause.
        source: vsc_webpush::VapidError,
    },
    /// The default contact (the public URL) is not usable.
    #[error("no usable VAPID contact ({0}); give one with --vapid-contact mailto:ADDRESS")]
    Contact(String),
    /// The HTTP client could not be built.
    #[error("the push HTTP client: {0}")]
    Http(String),
}

impl Push {
    /// Loads the VAPID key (making it, 0600, when the file is absent) and prepares the client;
    /// also answers whether the key was made now.
    pub fn load(
        config: &ServerConfig,
        public_url: &url::Url,
    ) -> Result<(Push, bool), PushSetupError> {
        let path = config.vapid_key_path();
        let (key, created) = load_key(&path)?;
        let contact = match &config.push.contact {
            Some(c) => c.clone(),
            None => Contact::parse(&public_url.origin().ascii_serialization())
                .map_err(|e| PushSetupError::Contact(e.to_string()))?,
        };
        let loopback = if config.push.allow_loopback_http_for_tests {
            LoopbackHttp::AllowForTests
        } else {
            LoopbackHttp::Refuse
        };
        let mut http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .connect_timeout(SEND_TIMEOUT / 2)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would connect for us, past the address check.
            .no_proxy()
            .https_only(loopback == LoopbackHttp::Refuse);
        if loopback == LoopbackHttp::Refuse {
            http = http.dns_resolver(PublicOnlyResolver);
        }
        let http = http
            .build()
            .map_err(|e| PushSetupError::Http(e.to_string()))?;
        Ok((
            Push {
                key,
                contact,
                loopback,
                http,
                in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            },
            created,
        ))
    }

    /// The VAPID public key, base64url: the app's `applicationServerKey`.
    pub fn public_key_base64url(&self) -> String {
        self.key.public_key_base64url()
    }

    /// Whether loopback `http:` endpoints are accepted (tests only).
    pub fn loopback(&self) -> LoopbackHttp {
        self.loopback
    }
}

fn load_key(path: &Path) -> Result<(VapidKey, bool), PushSetupError> {
    VapidKey::load_or_generate(path).map_err(|source| PushSetupError::Key {
        path: path.display().to_string(),
        source,
    })
}

/// The associated data the auth secret of `device_id`'s subscription is sealed with.
pub(crate) fn auth_aad(device_id: &str) -> Vec<u8> {
    format!("vsc-push-auth/v1|{device_id}").into_bytes()
}

/// How one push ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The push service accepted the message.
    Delivered,
    /// The push service said the subscription is gone; it was deleted.
    Gone,
    /// Anything else: not built, not sent, or refused.
    Failed,
}

impl PushOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PushOutcome::Delivered => "delivered",
            PushOutcome::Gone => "gone",
            PushOutcome::Failed => "failed",
        }
    }
}

/// Wakes the phone holding `card_id` for the request `request_id` (expiring at `expires_at`,
/// Unix seconds), if it has a push subscription. Call after the request's transaction has
/// committed; returns at once (the sending runs in a task of its own).
pub fn notify(state: &AppState, card_id: &str, request_id: &str, expires_at: i64) {
    let Ok(permit) = state.push().in_flight.clone().try_acquire_owned() else {
        tracing::warn!(
            request_id,
            "push: too many notices in flight; this one is dropped"
        );
        state.metrics().push_sent(PushOutcome::Failed);
        return;
    };
    let state = state.clone();
    let card_id = card_id.to_owned();
    let request_id = request_id.to_owned();
    tokio::spawn(async move {
        if let Some(outcome) = deliver(&state, &card_id, &request_id, expires_at).await {
            state.metrics().push_sent(outcome);
        }
        drop(permit);
    });
}

/// One delivery; `None` when the phone has no subscription.
async fn deliver(
    state: &AppState,
    card_id: &str,
    request_id: &str,
    expires_at: i64,
) -> Option<PushOutcome> {
    let row = {
        let mut conn = match state.store().pool().acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, request_id, "push: cannot read the subscription");
                return Some(PushOutcome::Failed);
            }
        };
        match vsc_store::push::of_card_holder(&mut conn, card_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, request_id, "push: cannot read the subscription");
                return Some(PushOutcome::Failed);
            }
        }
    };
    let push = state.push();
    let subscription = match stored_subscription(state, &row, push.loopback) {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!(
                device_id = row.device_id,
                request_id,
                why,
                "push: the stored subscription is unusable"
            );
            return Some(PushOutcome::Failed);
        }
    };
    let origin = subscription.endpoint.origin();
    let now = state.now_unix();
    let options = DeliveryOptions {
        ttl_secs: u32::try_from((expires_at - now).max(0)).unwrap_or(u32::MAX),
        urgency: Some(Urgency::High),
    };
    let request = PushNotice::new(request_id).and_then(|notice| {
        build_request(
            &subscription,
            &push.key,
            &push.contact,
            &notice,
            &options,
            u64::try_from(now).unwrap_or(0),
        )
    });
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, request_id, "push: cannot build the message");
            return Some(PushOutcome::Failed);
        }
    };
    let mut post = push.http.post(request.url.clone()).body(request.body);
    for (name, value) in &request.headers {
        post = post.header(*name, value);
    }
    let status = match post.send().await {
        Ok(response) => response.status(),
        Err(e) => {
            tracing::warn!(error = %e.without_url(), push_service = origin, request_id, "push: not delivered");
            return Some(PushOutcome::Failed);
        }
    };
    if status.is_success() {
        tracing::debug!(push_service = origin, request_id, "push: delivered");
        return Some(PushOutcome::Delivered);
    }
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        if let Err(e) = forget(state, &row, &origin, status.as_u16(), request_id).await {
            tracing::warn!(error = %e, device_id = row.device_id, "push: cannot delete a subscription the push service says is gone");
            return Some(PushOutcome::Failed);
        }
        return Some(PushOutcome::Gone);
    }
    tracing::warn!(push_service = origin, %status, request_id, "push: refused by the push service");
    Some(PushOutcome::Failed)
}

/// The stored row as a checked subscription (its auth secret unsealed).
fn stored_subscription(
    state: &AppState,
    row: &vsc_store::push::PushSubscriptionRow,
    loopback: LoopbackHttp,
) -> Result<Subscription, &'static str> {
    let auth = state
        .master_key()
        .open(&auth_aad(&row.device_id), &row.auth_sealed)
        .map_err(|_| "the auth secret does not unseal")?;
    Ok(Subscription {
        endpoint: Endpoint::parse_with(&row.endpoint, loopback)
            .map_err(|_| "the endpoint is not allowed")?,
        p256dh: UaPublicKey::from_bytes(&row.p256dh).map_err(|_| "the p256dh key is invalid")?,
        auth: AuthSecret::from_bytes(&auth).map_err(|_| "the auth secret is invalid")?,
    })
}

/// Deletes a subscription the push service says is gone, with its audit event.
async fn forget(
    state: &AppState,
    row: &vsc_store::push::PushSubscriptionRow,
    origin: &str,
    status: u16,
    request_id: &str,
) -> Result<(), vsc_store::StoreError> {
    let mut tx = state.write().await?;
    if vsc_store::push::delete_if_endpoint(&mut tx, &row.device_id, &row.endpoint).await? {
        let event = NewEvent {
            actor: "system".into(),
            action: "device.push_subscription_gone".into(),
            subject: row.device_id.clone(),
            organisation: String::new(),
            source: "server".into(),
            outcome: Outcome::Success,
            detail: serde_json::json!({
                "endpoint_origin": origin,
                "status": status,
                "request_id": request_id,
            }),
        };
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
    }
    tx.commit().await?;
    Ok(())
}
