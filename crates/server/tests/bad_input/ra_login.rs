//! RA sign-in refusals: replayed, expired or foreign-signed challenges, and a card holder who
//! is not an RA. A challenge is spent by any attempt; no session is created by a refusal.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_authenticator::Keystore as _;
use vsc_proto::{ChallengeRequest, ChallengeResponse, LoginRequest, LoginResponse};

use crate::common::{Phone, TestServer, assert_api_error, assert_flow_error, passcode, start};

const CHALLENGE: &str = "/api/v1/ra/auth/challenge";
const LOGIN: &str = "/api/v1/ra/auth/login";

async fn challenge(s: &TestServer, uid: &str) -> ChallengeResponse {
    s.post(
        None,
        CHALLENGE,
        &ChallengeRequest {
            uid: uid.to_owned(),
        },
    )
    .await
    .expect("a challenge")
}

/// What `phone` signs to log `uid` in with `challenge`.
async fn signed(
    s: &TestServer,
    phone: &Phone,
    challenge: &ChallengeResponse,
    uid: &str,
) -> LoginRequest {
    let keys = vsc_authenticator::unlock_keys(&phone.home, &passcode())
        .await
        .expect("unlock");
    let statement = vsc_proto::ra_login_statement(
        &challenge.challenge_id,
        &challenge.nonce,
        uid,
        &s.state.origin(),
    );
    LoginRequest {
        challenge_id: challenge.challenge_id.clone(),
        uid: uid.to_owned(),
        signature: B64.encode(keys.sign_auth(&statement).expect("sign")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ra_login_refusals() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let (holder_uid, _, holder) = s.enrolled_person(&ram.token, "X26").await;

    // A challenge signs in once.
    let c = challenge(&s, &ram.uid).await;
    let request = signed(&s, &ram.phone, &c, &ram.uid).await;
    let _: LoginResponse = s
        .post(None, LOGIN, &request)
        .await
        .expect("the first use of a challenge signs in");
    let before = s.snapshot().await;
    assert_api_error(
        s.post::<_, LoginResponse>(None, LOGIN, &request).await,
        401,
        "challenge_used",
    );

    // Another card's key: refused, and the challenge is spent all the same.
    let c = challenge(&s, &ram.uid).await;
    assert_api_error(
        s.post::<_, LoginResponse>(None, LOGIN, &signed(&s, &holder, &c, &ram.uid).await)
            .await,
        401,
        "signature_invalid",
    );
    assert_api_error(
        s.post::<_, LoginResponse>(None, LOGIN, &signed(&s, &ram.phone, &c, &ram.uid).await)
            .await,
        401,
        "challenge_used",
    );

    // A challenge lasts two minutes.
    let c = challenge(&s, &ram.uid).await;
    s.clock.advance(time::Duration::minutes(3));
    assert_api_error(
        s.post::<_, LoginResponse>(None, LOGIN, &signed(&s, &ram.phone, &c, &ram.uid).await)
            .await,
        401,
        "challenge_expired",
    );

    // A card holder without an RA role.
    assert_flow_error(
        vsc_authenticator::ra_login(&holder.home, &passcode()).await,
        403,
        "not_an_ra",
    );

    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "refused logins");
    for (code, n) in [
        ("challenge_used", 2),
        ("signature_invalid", 1),
        ("challenge_expired", 1),
    ] {
        let events = s.assert_audited("ra.login", code, n).await;
        assert!(events.iter().all(|e| e.subject == ram.uid), "{events:?}");
    }
    let events = s.assert_audited("ra.login", "not_an_ra", 1).await;
    assert_eq!(events[0].subject, holder_uid);
    s.assert_audit_intact().await;
}
