//! `private_key_jwt` client authentication (RFC 7523 §3, OIDC Core §9): checks the signed JWT a
//! client sends as `client_assertion` to the token endpoint.
//!
//! Replay protection needs state, so it is left to the caller: this module returns the assertion's
//! `jti` and `exp`, and the caller must refuse a `jti` it has already seen before `exp`. The upper
//! bound on `exp` keeps that store small.

use serde_json::{Map, Value};

use crate::jose::{self, Alg, JoseError, Jwk};

/// Algorithms a client may sign its assertion with.
const ALLOWED_ALGS: &[Alg] = &[Alg::RS256, Alg::RS512, Alg::ES256];
/// How far ahead `exp` may be: assertions are meant to be used once, right away.
pub const MAX_LIFETIME_SECS: i64 = 300;
/// Allowance for the client's clock running ahead of ours.
pub const CLOCK_SKEW_SECS: i64 = 30;
/// Longest `jti` accepted (in characters), so that the replay store stays bounded.
pub const MAX_JTI_LEN: usize = 256;

/// A verified client assertion: what the caller needs for its single-use (replay) store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAssertion {
    /// The assertion's unique identifier.
    pub jti: String,
    /// When the assertion expires (seconds since the Unix epoch); the `jti` must be remembered
    /// until then.
    pub exp: i64,
}

/// Why a client assertion was refused. Messages are written for the client's developer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionError {
    /// The JWS could not be verified with the client's registered keys.
    #[error(
        "the client assertion could not be verified with the client's registered keys \
         (it must be a JWT signed with RS256, RS512 or ES256): {0}"
    )]
    Signature(#[from] JoseError),
    /// `iss` is missing or is not the client_id.
    #[error("the client assertion's iss must be the client_id {client_id:?}")]
    Issuer {
        /// The client_id the assertion was checked for.
        client_id: String,
    },
    /// `sub` is missing or is not the client_id.
    #[error("the client assertion's sub must be the client_id {client_id:?} (the same as iss)")]
    Subject {
        /// The client_id the assertion was checked for.
        client_id: String,
    },
    /// `aud` is missing or contains none of the accepted audiences.
    #[error("the client assertion's aud must be {}", describe_audiences(.expected))]
    Audience {
        /// The accepted audiences (token endpoint URL, issuer).
        expected: Vec<String>,
    },
    /// `exp` is missing or not a number.
    #[error("the client assertion must have an exp claim (seconds since the Unix epoch)")]
    MissingExp,
    /// `exp` is not after the current time.
    #[error("the client assertion has expired (exp {exp} is not after the server time {now})")]
    Expired {
        /// The assertion's `exp`.
        exp: i64,
        /// The server's current time.
        now: i64,
    },
    /// `exp` is too far in the future.
    #[error(
        "the client assertion's exp {exp} is too far in the future: it may be at most \
         {MAX_LIFETIME_SECS} seconds after the server time {now}; create a new short-lived \
         assertion for each request"
    )]
    ExpTooFar {
        /// The assertion's `exp`.
        exp: i64,
        /// The server's current time.
        now: i64,
    },
    /// `nbf` is in the future.
    #[error("the client assertion is not valid yet (nbf {nbf} is after the server time {now})")]
    NotYetValid {
        /// The assertion's `nbf`.
        nbf: i64,
        /// The server's current time.
        now: i64,
    },
    /// `iat` is in the future.
    #[error("the client assertion's iat {iat} is in the future (server time {now})")]
    IssuedInFuture {
        /// The assertion's `iat`.
        iat: i64,
        /// The server's current time.
        now: i64,
    },
    /// A time claim is present but not a number.
    #[error("the client assertion's {0} must be a number of seconds since the Unix epoch")]
    BadTime(&'static str),
    /// `jti` is missing or not a string.
    #[error("the client assertion must have a jti claim (a unique string) to prevent replay")]
    MissingJti,
    /// `jti` is empty or too long.
    #[error("the client assertion's jti must be 1 to {MAX_JTI_LEN} characters long")]
    BadJti,
}

fn describe_audiences(expected: &[String]) -> String {
    match expected {
        [] => "an audience this server accepts".to_owned(),
        [one] => format!("{one:?}"),
        [first @ .., last] => {
            let first: Vec<String> = first.iter().map(|a| format!("{a:?}")).collect();
            format!("{} or {last:?}", first.join(", "))
        }
    }
}

/// Verifies a `client_assertion` for `client_id` (the caller has already checked that
/// `client_assertion_type` is `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`).
///
/// Checks: the signature against `keys` with RS256, RS512 or ES256; `iss` and `sub` both equal
/// `client_id`; `aud` (a string or an array) contains one of `audiences`; `exp` is present, after
/// `now_unix` and at most 300 s (+30 s clock skew) ahead; `nbf` and `iat`, if present, are not
/// more than 30 s ahead; `jti` is 1 to 256 characters.
///
/// # Errors
/// An [`AssertionError`] naming the first check that failed.
pub fn verify_client_assertion(
    token: &str,
    client_id: &str,
    audiences: &[&str],
    keys: &[Jwk],
    now_unix: i64,
) -> Result<ClientAssertion, AssertionError> {
    let (_header, claims) = jose::verify_jwt(token, keys, ALLOWED_ALGS)?;

    if string_claim(&claims, "iss") != Some(client_id) {
        return Err(AssertionError::Issuer {
            client_id: client_id.to_owned(),
        });
    }
    if string_claim(&claims, "sub") != Some(client_id) {
        return Err(AssertionError::Subject {
            client_id: client_id.to_owned(),
        });
    }

    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => audiences.contains(&aud.as_str()),
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|a| a.as_str().is_some_and(|a| audiences.contains(&a))),
        _ => false,
    };
    if !aud_ok {
        return Err(AssertionError::Audience {
            expected: audiences.iter().map(|&a| a.to_owned()).collect(),
        });
    }

    let now = now_unix;
    let exp = time_claim(&claims, "exp")?.ok_or(AssertionError::MissingExp)?;
    if exp <= now {
        return Err(AssertionError::Expired { exp, now });
    }
    if exp > now.saturating_add(MAX_LIFETIME_SECS + CLOCK_SKEW_SECS) {
        return Err(AssertionError::ExpTooFar { exp, now });
    }
    let latest = now.saturating_add(CLOCK_SKEW_SECS);
    if let Some(nbf) = time_claim(&claims, "nbf")?
        && nbf > latest
    {
        return Err(AssertionError::NotYetValid { nbf, now });
    }
    if let Some(iat) = time_claim(&claims, "iat")?
        && iat > latest
    {
        return Err(AssertionError::IssuedInFuture { iat, now });
    }

    let jti = string_claim(&claims, "jti").ok_or(AssertionError::MissingJti)?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI_LEN {
        return Err(AssertionError::BadJti);
    }

    Ok(ClientAssertion {
        jti: jti.to_owned(),
        exp,
    })
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// A NumericDate claim (RFC 7519 §2): absent is `None`; a non-number is an error. Fractions are
/// dropped (rounding down), which only ever makes `exp` earlier.
fn time_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, AssertionError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    if let Some(i) = value.as_i64() {
        return Ok(Some(i));
    }
    match value.as_f64() {
        // `as` saturates for out-of-range floats; those then fail the range checks.
        Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
        _ => Err(AssertionError::BadTime(name)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::jose::SigningKey;
    use serde_json::json;

    const CLIENT: &str = "client-123";
    const TOKEN_ENDPOINT: &str = "https://op.example/token";
    const ISSUER: &str = "https://op.example";
    const NOW: i64 = 1_700_000_000;
    const AUDS: &[&str] = &[TOKEN_ENDPOINT, ISSUER];

    fn good_claims() -> Value {
        json!({
            "iss": CLIENT,
            "sub": CLIENT,
            "aud": TOKEN_ENDPOINT,
            "exp": NOW + 60,
            "iat": NOW,
            "jti": "a-unique-id",
        })
    }

    fn check(key: &SigningKey, claims: &Value) -> Result<ClientAssertion, AssertionError> {
        let token = key.sign_jwt(claims, None).unwrap();
        verify_client_assertion(&token, CLIENT, AUDS, &[key.public_jwk()], NOW)
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    #[test]
    fn good_assertion_passes() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let ok = check(&key, &good_claims()).unwrap();
        assert_eq!(
            ok,
            ClientAssertion {
                jti: "a-unique-id".into(),
                exp: NOW + 60
            }
        );
        // aud as an array containing the issuer; RSA key; no iat/nbf; exp at the upper bound.
        let rsa = SigningKey::generate(Alg::RS256).unwrap();
        let claims = with(good_claims(), "aud", json!(["https://other", ISSUER]));
        let claims = without(claims, "iat");
        let claims = with(claims, "exp", json!(NOW + 330));
        check(&rsa, &claims).unwrap();
        // Small clock skew on iat / nbf is tolerated.
        let claims = with(good_claims(), "iat", json!(NOW + 30));
        let claims = with(claims, "nbf", json!(NOW + 30));
        check(&key, &claims).unwrap();
    }

    #[test]
    fn wrong_issuer() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let claims = with(good_claims(), "iss", json!("someone-else"));
        assert!(matches!(
            check(&key, &claims),
            Err(AssertionError::Issuer { .. })
        ));
        assert!(matches!(
            check(&key, &without(good_claims(), "iss")),
            Err(AssertionError::Issuer { .. })
        ));
    }

    #[test]
    fn subject_differs_from_issuer() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        let claims = with(good_claims(), "sub", json!("someone-else"));
        assert!(matches!(
            check(&key, &claims),
            Err(AssertionError::Subject { .. })
        ));
    }

    #[test]
    fn wrong_audience() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        for aud in [
            json!("https://op.example/authorize"),
            json!(["https://elsewhere"]),
            json!([]),
            json!(42),
        ] {
            let claims = with(good_claims(), "aud", aud);
            let err = check(&key, &claims).unwrap_err();
            assert!(matches!(err, AssertionError::Audience { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains(TOKEN_ENDPOINT) && msg.contains(ISSUER),
                "{msg}"
            );
        }
        assert!(matches!(
            check(&key, &without(good_claims(), "aud")),
            Err(AssertionError::Audience { .. })
        ));
    }

    #[test]
    fn expiry_rules() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        assert!(matches!(
            check(&key, &with(good_claims(), "exp", json!(NOW - 1))),
            Err(AssertionError::Expired { .. })
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "exp", json!(NOW))),
            Err(AssertionError::Expired { .. })
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "exp", json!(NOW + 600))),
            Err(AssertionError::ExpTooFar { .. })
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "exp", json!(NOW + 331))),
            Err(AssertionError::ExpTooFar { .. })
        ));
        assert!(matches!(
            check(&key, &without(good_claims(), "exp")),
            Err(AssertionError::MissingExp)
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "exp", json!("soon"))),
            Err(AssertionError::BadTime("exp"))
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "exp", json!(1e300))),
            Err(AssertionError::ExpTooFar { .. })
        ));
        // i64::MAX as "now" must not overflow.
        let token = key.sign_jwt(&good_claims(), None).unwrap();
        assert!(
            verify_client_assertion(&token, CLIENT, AUDS, &[key.public_jwk()], i64::MAX).is_err()
        );
    }

    #[test]
    fn nbf_and_iat_in_the_future() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        assert!(matches!(
            check(&key, &with(good_claims(), "nbf", json!(NOW + 31))),
            Err(AssertionError::NotYetValid { .. })
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "iat", json!(NOW + 31))),
            Err(AssertionError::IssuedInFuture { .. })
        ));
    }

    #[test]
    fn jti_rules() {
        let key = SigningKey::generate(Alg::ES256).unwrap();
        assert!(matches!(
            check(&key, &without(good_claims(), "jti")),
            Err(AssertionError::MissingJti)
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "jti", json!(7))),
            Err(AssertionError::MissingJti)
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "jti", json!(""))),
            Err(AssertionError::BadJti)
        ));
        assert!(matches!(
            check(&key, &with(good_claims(), "jti", json!("j".repeat(257)))),
            Err(AssertionError::BadJti)
        ));
        check(&key, &with(good_claims(), "jti", json!("é".repeat(256)))).unwrap();
    }

    #[test]
    fn signed_by_another_key() {
        let registered = SigningKey::generate(Alg::ES256).unwrap();
        let attacker = SigningKey::generate(Alg::ES256).unwrap();
        let token = attacker.sign_jwt(&good_claims(), None).unwrap();
        // The attacker's kid is unknown.
        let err = verify_client_assertion(&token, CLIENT, AUDS, &[registered.public_jwk()], NOW)
            .unwrap_err();
        assert!(matches!(
            err,
            AssertionError::Signature(JoseError::UnknownKid(_))
        ));
        // Even when the registered key carries the kid the attacker used, the signature fails.
        let mut registered_jwk = registered.public_jwk();
        registered_jwk.kid = Some(attacker.kid().to_owned());
        let err =
            verify_client_assertion(&token, CLIENT, AUDS, &[registered_jwk], NOW).unwrap_err();
        assert!(matches!(
            err,
            AssertionError::Signature(JoseError::BadSignature)
        ));
        assert!(err.to_string().contains("registered keys"));
    }
}
