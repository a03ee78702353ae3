//! A browser's push subscription as the phone app hands it over: the push service's endpoint URL
//! and the two keys the browser made for it (`PushSubscription.toJSON()`), each checked once here
//! so that encryption and VAPID signing only ever see valid values.

use std::net::IpAddr;

use aws_lc_rs::agreement::{self, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use url::{Host, Url};
use zeroize::Zeroizing;

/// Length of an uncompressed P-256 point (0x04 || X || Y), the only form RFC 8291 allows.
pub const UNCOMPRESSED_POINT_LEN: usize = 65;

/// Length of the authentication secret (RFC 8291 §3.2).
pub const AUTH_SECRET_LEN: usize = 16;

/// Longest endpoint accepted (browsers' endpoints are a few hundred characters).
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// Name suffixes that only ever mean a private network.
const INTERNAL_SUFFIXES: &[&str] = &[
    ".localhost",
    ".local",
    ".internal",
    ".intranet",
    ".corp",
    ".home",
    ".lan",
    ".home.arpa",
    ".localdomain",
];

/// Why a subscription (or one of its parts) was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscriptionError {
    /// The endpoint is not a URL.
    #[error("the push endpoint is not a URL: {0}")]
    EndpointNotUrl(String),
    /// The endpoint does not use `https:` (and is not an allowed loopback `http:` URL).
    #[error("the push endpoint must be an https: URL, not {0}:")]
    EndpointNotHttps(String),
    /// The endpoint has no host, or carries user information.
    #[error("the push endpoint must name a host and carry no user name or password")]
    EndpointMalformed,
    /// The endpoint names the inside of a network (an IP address, a single-label or internal
    /// name) or is too long: push services are public, named hosts.
    #[error(
        "the push endpoint must be a push service on the internet, named by a public host name; {0} is not"
    )]
    EndpointNotPublic(String),
    /// A key is not base64url.
    #[error("the subscription's {field} key is not base64url")]
    NotBase64Url {
        /// `p256dh` or `auth`.
        field: &'static str,
    },
    /// The `p256dh` key is not 65 bytes starting with 0x04.
    #[error(
        "the subscription's p256dh key is {0} bytes; an uncompressed P-256 point is 65 bytes starting with 0x04"
    )]
    PublicKeyNotUncompressed(usize),
    /// The `p256dh` key has the right shape but is not a point on P-256.
    #[error("the subscription's p256dh key is not a point on the P-256 curve")]
    PublicKeyNotOnCurve,
    /// The `auth` secret is not 16 bytes.
    #[error("the subscription's auth secret is {0} bytes; it must be 16")]
    AuthSecretLength(usize),
    /// The subscription JSON does not have the expected shape.
    #[error("the subscription is not PushSubscription JSON: {0}")]
    Json(String),
}

/// Whether `http:` endpoints on loopback are accepted (push-service stand-ins in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopbackHttp {
    /// Only `https:` endpoints: what a real deployment uses.
    Refuse,
    /// Also `http://127.0.0.1`, `http://[::1]` and `http://localhost`, for tests only.
    AllowForTests,
}

/// A push service endpoint: an `https:` URL with a host and no user information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(Url);

impl Endpoint {
    /// Parses an endpoint, refusing anything but `https:`.
    pub fn parse(text: &str) -> Result<Self, SubscriptionError> {
        Self::parse_with(text, LoopbackHttp::Refuse)
    }

    /// Parses an endpoint under an explicit loopback policy.
    pub fn parse_with(text: &str, loopback: LoopbackHttp) -> Result<Self, SubscriptionError> {
        let url = Url::parse(text).map_err(|e| SubscriptionError::EndpointNotUrl(e.to_string()))?;
        let host = url.host_str().ok_or(SubscriptionError::EndpointMalformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SubscriptionError::EndpointMalformed);
        }
        let loopback_host = matches!(host, "127.0.0.1" | "[::1]" | "localhost");
        match url.scheme() {
            // The stand-in push service of a test: nothing more to check.
            "http" if loopback == LoopbackHttp::AllowForTests && loopback_host => {}
            // The server POSTs to this URL: refuse what names the inside of a network (the
            // server's own, or its neighbours'), so that a phone cannot make it a probe.
            "https" => public_host(&url, text.len())?,
            other => return Err(SubscriptionError::EndpointNotHttps(other.to_owned())),
        }
        Ok(Self(url))
    }

    /// The URL the push message is POSTed to.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The endpoint's origin, `scheme://host[:port]` (the default port omitted): the VAPID
    /// token's audience (RFC 8292 §2).
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }
}

/// Refuses an `https:` endpoint that is an IP address, a single-label or internal name, or
/// longer than [`MAX_ENDPOINT_LEN`]. (Names that resolve to private addresses are refused when
/// the server connects: [`is_public_address`].)
fn public_host(url: &Url, len: usize) -> Result<(), SubscriptionError> {
    if len > MAX_ENDPOINT_LEN {
        return Err(SubscriptionError::EndpointNotPublic(format!(
            "an endpoint of {len} characters"
        )));
    }
    match url.host() {
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let internal = name == "localhost"
                || !name.contains('.')
                || INTERNAL_SUFFIXES.iter().any(|s| name.ends_with(s));
            if internal {
                Err(SubscriptionError::EndpointNotPublic(format!("host {name}")))
            } else {
                Ok(())
            }
        }
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => Err(SubscriptionError::EndpointNotPublic(
            "an IP address".to_owned(),
        )),
        None => Err(SubscriptionError::EndpointMalformed),
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private (RFC 1918, unique
/// local), link-local, shared (RFC 6598), benchmarking, documentation, multicast, reserved or
/// unspecified; an IPv4-mapped or NAT64 IPv6 address is judged by its IPv4 address. The server
/// connects to push services only at such addresses, whatever a name resolves to.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let [first, second, third, _] = a.octets();
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_multicast()
                || first == 0
                || first >= 240
                || (first == 100 && (second & 0xc0) == 64)
                || (first == 198 && (second & 0xfe) == 18)
                || (first == 192 && second == 0 && third == 0))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public_address(IpAddr::V4(v4));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [hi, lo] = [s[6].to_be_bytes(), s[7].to_be_bytes()];
                return is_public_address(IpAddr::from([hi[0], hi[1], lo[0], lo[1]]));
            }
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// The browser's public key for this subscription (`p256dh`): a validated uncompressed P-256 point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaPublicKey([u8; UNCOMPRESSED_POINT_LEN]);

impl UaPublicKey {
    /// Checks raw bytes: 65 bytes, uncompressed form, on the curve.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SubscriptionError> {
        let point: [u8; UNCOMPRESSED_POINT_LEN] = bytes
            .try_into()
            .map_err(|_| SubscriptionError::PublicKeyNotUncompressed(bytes.len()))?;
        if point[0] != 0x04 {
            return Err(SubscriptionError::PublicKeyNotUncompressed(bytes.len()));
        }
        ParsedPublicKey::try_from(&UnparsedPublicKey::new(&agreement::ECDH_P256, &point))
            .map_err(|_| SubscriptionError::PublicKeyNotOnCurve)?;
        Ok(Self(point))
    }

    /// Decodes and checks the base64url `p256dh` value.
    pub fn from_base64url(text: &str) -> Result<Self, SubscriptionError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| SubscriptionError::NotBase64Url { field: "p256dh" })?;
        Self::from_bytes(&bytes)
    }

    /// The 65 bytes of the point.
    pub fn as_bytes(&self) -> &[u8; UNCOMPRESSED_POINT_LEN] {
        &self.0
    }
}

/// The subscription's 16-byte authentication secret (`auth`), wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthSecret(Zeroizing<[u8; AUTH_SECRET_LEN]>);

impl std::fmt::Debug for AuthSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthSecret(..)")
    }
}

impl AuthSecret {
    /// Checks the length of raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SubscriptionError> {
        let secret: [u8; AUTH_SECRET_LEN] = bytes
            .try_into()
            .map_err(|_| SubscriptionError::AuthSecretLength(bytes.len()))?;
        Ok(Self(Zeroizing::new(secret)))
    }

    /// Decodes and checks the base64url `auth` value.
    pub fn from_base64url(text: &str) -> Result<Self, SubscriptionError> {
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| SubscriptionError::NotBase64Url { field: "auth" })?,
        );
        Self::from_bytes(&bytes)
    }

    /// The 16 secret bytes.
    pub fn as_bytes(&self) -> &[u8; AUTH_SECRET_LEN] {
        &self.0
    }
}

/// A checked push subscription: where to send, and the keys to encrypt for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The push service URL.
    pub endpoint: Endpoint,
    /// The browser's P-256 public key.
    pub p256dh: UaPublicKey,
    /// The authentication secret.
    pub auth: AuthSecret,
}

/// `PushSubscription.toJSON()` as browsers produce it (`expirationTime` is ignored).
#[derive(Deserialize)]
struct SubscriptionJson {
    endpoint: String,
    keys: SubscriptionKeysJson,
}

#[derive(Deserialize)]
struct SubscriptionKeysJson {
    p256dh: String,
    auth: String,
}

impl Subscription {
    /// Checks the three base64url / URL strings of a subscription.
    pub fn parse(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        loopback: LoopbackHttp,
    ) -> Result<Self, SubscriptionError> {
        Ok(Self {
            endpoint: Endpoint::parse_with(endpoint, loopback)?,
            p256dh: UaPublicKey::from_base64url(p256dh)?,
            auth: AuthSecret::from_base64url(auth)?,
        })
    }

    /// Parses the JSON of `PushSubscription.toJSON()`:
    /// `{"endpoint": "...", "keys": {"p256dh": "...", "auth": "..."}}`.
    pub fn from_json(json: &str, loopback: LoopbackHttp) -> Result<Self, SubscriptionError> {
        let parsed: SubscriptionJson =
            serde_json::from_str(json).map_err(|e| SubscriptionError::Json(e.to_string()))?;
        let auth = Zeroizing::new(parsed.keys.auth);
        Self::parse(&parsed.endpoint, &parsed.keys.p256dh, &auth, loopback)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    #[test]
    fn endpoints_inside_a_network_are_refused() {
        for bad in [
            "https://127.0.0.1/push",
            "https://10.0.0.5/push",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/push",
            "https://[fd00::1]/push",
            "https://localhost/push",
            "https://metadata/computeMetadata",
            "https://metadata.internal:8443/x",
            "https://printer.local/x",
            "https://router.home.arpa/x",
        ] {
            assert!(
                matches!(
                    Endpoint::parse(bad),
                    Err(SubscriptionError::EndpointNotPublic(_))
                ),
                "{bad}"
            );
        }
        let long = format!("https://push.example.net/{}", "a".repeat(MAX_ENDPOINT_LEN));
        assert!(matches!(
            Endpoint::parse(&long),
            Err(SubscriptionError::EndpointNotPublic(_))
        ));
        // Even the test policy allows loopback only over http: (the stand-in push service).
        assert!(Endpoint::parse_with("https://127.0.0.1/p", LoopbackHttp::AllowForTests).is_err());
        assert!(Endpoint::parse_with("http://127.0.0.1:9/p", LoopbackHttp::AllowForTests).is_ok());
        assert!(Endpoint::parse("https://fcm.googleapis.com/fcm/send/x").is_ok());
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public_address(private.parse().unwrap()), "{private}");
        }
        for public in [
            "142.250.180.10",
            "2a00:1450:4009:81f::200a",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public_address(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn browser_json_parses() {
        let json = format!(
            r#"{{"endpoint":"https://push.example.net/wpush/v2/abc","expirationTime":null,"keys":{{"p256dh":"{P256DH}","auth":"{AUTH}"}}}}"#
        );
        let sub = Subscription::from_json(&json, LoopbackHttp::Refuse).unwrap();
        assert_eq!(sub.endpoint.origin(), "https://push.example.net");
        assert_eq!(sub.p256dh.as_bytes()[0], 0x04);
        assert_eq!(sub.auth.as_bytes().len(), 16);
    }

    #[test]
    fn origin_keeps_a_non_default_port() {
        let e = Endpoint::parse("https://push.example.net:8443/a/b?c").unwrap();
        assert_eq!(e.origin(), "https://push.example.net:8443");
        let e = Endpoint::parse("https://push.example.net:443/a").unwrap();
        assert_eq!(e.origin(), "https://push.example.net");
    }

    #[test]
    fn endpoints_must_be_https() {
        assert_eq!(
            Endpoint::parse("http://push.example.net/a"),
            Err(SubscriptionError::EndpointNotHttps("http".into()))
        );
        assert!(matches!(
            Endpoint::parse("not a url"),
            Err(SubscriptionError::EndpointNotUrl(_))
        ));
        assert_eq!(
            Endpoint::parse("https://user:pw@push.example.net/a"),
            Err(SubscriptionError::EndpointMalformed)
        );
        // Loopback http only with the explicit test policy, and only on loopback.
        assert!(Endpoint::parse("http://127.0.0.1:9000/push").is_err());
        let local = Endpoint::parse_with("http://127.0.0.1:9000/push", LoopbackHttp::AllowForTests);
        assert_eq!(local.unwrap().origin(), "http://127.0.0.1:9000");
        assert!(Endpoint::parse_with("http://localhost/p", LoopbackHttp::AllowForTests).is_ok());
        assert!(
            Endpoint::parse_with("http://push.example.net/p", LoopbackHttp::AllowForTests).is_err()
        );
    }

    #[test]
    fn bad_keys_are_refused_with_their_reason() {
        let e = "https://push.example.net/a";
        assert_eq!(
            Subscription::parse(e, "not*base64", AUTH, LoopbackHttp::Refuse),
            Err(SubscriptionError::NotBase64Url { field: "p256dh" })
        );
        assert_eq!(
            Subscription::parse(e, P256DH, "%%", LoopbackHttp::Refuse),
            Err(SubscriptionError::NotBase64Url { field: "auth" })
        );
        // A compressed point (33 bytes) is not accepted.
        let compressed = URL_SAFE_NO_PAD.encode([0x02; 33]);
        assert_eq!(
            Subscription::parse(e, &compressed, AUTH, LoopbackHttp::Refuse),
            Err(SubscriptionError::PublicKeyNotUncompressed(33))
        );
        // 65 bytes in the right form, but (almost certainly) not on the curve.
        let mut off_curve = URL_SAFE_NO_PAD.decode(P256DH).unwrap();
        off_curve[64] ^= 1;
        assert_eq!(
            UaPublicKey::from_bytes(&off_curve),
            Err(SubscriptionError::PublicKeyNotOnCurve)
        );
        let short_auth = URL_SAFE_NO_PAD.encode([1u8; 12]);
        assert_eq!(
            Subscription::parse(e, P256DH, &short_auth, LoopbackHttp::Refuse),
            Err(SubscriptionError::AuthSecretLength(12))
        );
        assert!(matches!(
            Subscription::from_json(r#"{"endpoint":"https://x/"}"#, LoopbackHttp::Refuse),
            Err(SubscriptionError::Json(_))
        ));
    }
}
