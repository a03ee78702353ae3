//! The one thing vsc pushes, and the complete request that carries it.
//!
//! A [`PushNotice`] says only "there is a request waiting, this is its id": no name, no
//! prescription, no workstation. Push services and anyone who breaks the encryption learn nothing
//! personal; the phone app wakes up, fetches the request over its own authenticated channel to
//! the vsc server and shows it there. [`build_request`] makes everything a push service needs
//! (URL, headers, encrypted body) without sending it, so this crate needs no HTTP client.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::ece::{self, EceError};
use crate::subscription::Subscription;
use crate::vapid::{Contact, VapidError, VapidKey};

/// The longest request id a notice carries (vsc's ids are far shorter; this bounds the message).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Why a push request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The request id is empty, too long, or has characters other than ASCII letters, digits,
    /// `-`, `_` and `.`.
    #[error("a push notice's request id must be 1 to 128 ASCII letters, digits, '-', '_' or '.'")]
    BadRequestId,
    /// The message could not be encrypted.
    #[error(transparent)]
    Encryption(#[from] EceError),
    /// The VAPID header could not be made.
    #[error(transparent)]
    Vapid(#[from] VapidError),
    /// The notice could not be serialised.
    #[error("the push notice could not be serialised: {0}")]
    Json(String),
}

/// The whole plaintext of a vsc push message: `{"request_id":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushNotice {
    /// The sign-in or signing request the phone should fetch.
    pub request_id: String,
}

impl PushNotice {
    /// A notice for `request_id`, which must be a plain identifier (so that nothing else, such as
    /// a name, can be smuggled into the message through it).
    pub fn new(request_id: &str) -> Result<Self, PushError> {
        let plain = request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID_LEN || !plain {
            return Err(PushError::BadRequestId);
        }
        Ok(Self {
            request_id: request_id.to_owned(),
        })
    }

    /// The plaintext that is encrypted. The id is checked again here because the field is
    /// public and a notice may have been built or deserialised without [`PushNotice::new`].
    pub fn to_plaintext(&self) -> Result<Vec<u8>, PushError> {
        Self::new(&self.request_id)?;
        serde_json::to_vec(self).map_err(|e| PushError::Json(e.to_string()))
    }
}

/// RFC 8030 §5.3: how urgently the push service should deliver (and wake the device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// `very-low`.
    VeryLow,
    /// `low`.
    Low,
    /// `normal`.
    Normal,
    /// `high`: someone is waiting at a workstation for the phone.
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

/// Delivery options for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// RFC 8030 §5.2: seconds the push service keeps the message for an unreachable device. A
    /// request nobody answers within its lifetime is useless, so this is the request's lifetime.
    pub ttl_secs: u32,
    /// RFC 8030 §5.3; no header when `None`.
    pub urgency: Option<Urgency>,
}

/// A push message ready to POST: nothing here is sent by this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    /// Where to POST.
    pub url: Url,
    /// The headers, names as RFC 8030 / 8188 / 8292 write them.
    pub headers: Vec<(&'static str, String)>,
    /// The `aes128gcm` body.
    pub body: Vec<u8>,
}

/// Builds the push request for `notice` to `subscription`, signed with `vapid` (the token valid
/// 12 hours from `now`, Unix seconds).
pub fn build_request(
    subscription: &Subscription,
    vapid: &VapidKey,
    contact: &Contact,
    notice: &PushNotice,
    options: &DeliveryOptions,
    now: u64,
) -> Result<PushRequest, PushError> {
    let plaintext = notice.to_plaintext()?;
    let body = ece::encrypt(&subscription.p256dh, &subscription.auth, &plaintext)?;
    let mut headers = vec![
        (
            "Authorization",
            vapid.authorization(&subscription.endpoint, contact, now)?,
        ),
        ("Content-Encoding", "aes128gcm".to_owned()),
        ("Content-Type", "application/octet-stream".to_owned()),
        ("TTL", options.ttl_secs.to_string()),
    ];
    if let Some(urgency) = options.urgency {
        headers.push(("Urgency", urgency.as_str().to_owned()));
    }
    Ok(PushRequest {
        url: subscription.endpoint.url().clone(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ece::ReceiverKeys;
    use crate::subscription::{Endpoint, LoopbackHttp};
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn subscription_for(receiver: &ReceiverKeys) -> Subscription {
        Subscription {
            endpoint: Endpoint::parse("https://fcm.googleapis.com/fcm/send/dXJ4:APA91b").unwrap(),
            p256dh: receiver.public_key().clone(),
            auth: receiver.auth_secret().clone(),
        }
    }

    #[test]
    fn request_carries_only_the_request_id() {
        let receiver = ReceiverKeys::generate().unwrap();
        let vapid = VapidKey::generate().unwrap();
        let contact = Contact::parse("https://vsc.example.nhs.uk/contact").unwrap();
        let notice = PushNotice::new("sr_01HZX3K9Q7").unwrap();
        let options = DeliveryOptions {
            ttl_secs: 120,
            urgency: Some(Urgency::High),
        };
        let request = build_request(
            &subscription_for(&receiver),
            &vapid,
            &contact,
            &notice,
            &options,
            1_800_000_000,
        )
        .unwrap();

        assert_eq!(
            request.url.as_str(),
            "https://fcm.googleapis.com/fcm/send/dXJ4:APA91b"
        );
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("Content-Encoding"), Some("aes128gcm"));
        assert_eq!(header("Content-Type"), Some("application/octet-stream"));
        assert_eq!(header("TTL"), Some("120"));
        assert_eq!(header("Urgency"), Some("high"));
        assert_eq!(request.headers.len(), 5);

        // The Authorization header is a VAPID token for the push service's origin.
        let authorization = header("Authorization").unwrap();
        let (token, k) = authorization
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, vapid.public_key_base64url());
        let (signed, signature) = token.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, vapid.public_key())
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(signed.split_once('.').unwrap().1)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], "https://fcm.googleapis.com");

        // The decrypted body is exactly the notice, and the notice is one field.
        let plaintext = receiver.decrypt(&request.body).unwrap();
        assert_eq!(plaintext.as_slice(), br#"{"request_id":"sr_01HZX3K9Q7"}"#);
        let value: serde_json::Value = serde_json::from_slice(&plaintext).unwrap();
        assert_eq!(value.as_object().unwrap().len(), 1);
        let parsed: PushNotice = serde_json::from_slice(&plaintext).unwrap();
        assert_eq!(parsed, notice);
    }

    #[test]
    fn no_urgency_means_no_header() {
        let receiver = ReceiverKeys::generate().unwrap();
        let request = build_request(
            &subscription_for(&receiver),
            &VapidKey::generate().unwrap(),
            &Contact::parse("mailto:ops@example.nhs.uk").unwrap(),
            &PushNotice::new("r1").unwrap(),
            &DeliveryOptions {
                ttl_secs: 0,
                urgency: None,
            },
            0,
        )
        .unwrap();
        assert!(request.headers.iter().all(|(n, _)| *n != "Urgency"));
        assert!(request.headers.contains(&("TTL", "0".to_owned())));
    }

    #[test]
    fn loopback_endpoint_for_tests_gets_its_origin_as_audience() {
        let receiver = ReceiverKeys::generate().unwrap();
        let subscription = Subscription {
            endpoint: Endpoint::parse_with(
                "http://127.0.0.1:40123/push/1",
                LoopbackHttp::AllowForTests,
            )
            .unwrap(),
            ..subscription_for(&receiver)
        };
        let request = build_request(
            &subscription,
            &VapidKey::generate().unwrap(),
            &Contact::parse("mailto:ops@example.nhs.uk").unwrap(),
            &PushNotice::new("r1").unwrap(),
            &DeliveryOptions {
                ttl_secs: 60,
                urgency: None,
            },
            0,
        )
        .unwrap();
        assert_eq!(request.url.as_str(), "http://127.0.0.1:40123/push/1");
    }

    #[test]
    fn request_ids_are_plain_identifiers() {
        for good in ["a", "sr_01HZX3K9Q7", "0f3c-9a.b_c", &"x".repeat(128)] {
            assert!(PushNotice::new(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            &"x".repeat(129),
            "Dr Jane Smith",
            "id\"}",
            "r\u{e9}q",
            "a/b",
        ] {
            assert!(
                matches!(PushNotice::new(bad), Err(PushError::BadRequestId)),
                "{bad:?} accepted"
            );
        }
        // A notice with any other field is refused when read back.
        assert!(serde_json::from_str::<PushNotice>(r#"{"request_id":"a","name":"x"}"#).is_err());
        // A notice built around the constructor is still checked before it is sent.
        let sneaky = PushNotice {
            request_id: "Dr Jane Smith".into(),
        };
        assert!(matches!(
            sneaky.to_plaintext(),
            Err(PushError::BadRequestId)
        ));
    }
}
