//! Issue 9, item 5: `POST /api/v1/device/unlock` used to hand the recovery key to anyone with
//! the unlock code and the (widely visible) device id. Now the request must be signed by the
//! card's device key over a challenge issued to that device. A request without that proof gets
//! nothing, leaves the code unused, counts as a wrong guess against the code, and is audited.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_authenticator::{DeviceKey, KeystoreError, Passcode};
use vsc_proto::passcode::{UNLOCK_CHALLENGE_PATH, UNLOCK_PATH, unlock_statement};
use vsc_proto::signin::DeviceChallengeRequest;
use vsc_proto::{CardWithCode, ChallengeResponse, LinkKind, UnlockRedeemResponse};

use crate::common::{
    TestServer, assert_api_error, assert_flow_error, is_link, mistype_secret, passcode, start,
};

/// An unlock request for `code`, signed by `key` over `challenge` as issued to `device_id`.
fn signed_unlock(
    s: &TestServer,
    key: &DeviceKey,
    device_id: &str,
    challenge: &ChallengeResponse,
    code: &str,
) -> serde_json::Value {
    let verifier = B64.encode([1u8; 32]);
    let secret = B64.encode([2u8; 32]);
    let statement = unlock_statement(
        &challenge.challenge_id,
        &challenge.nonce,
        device_id,
        code,
        &verifier,
        &secret,
        &s.state.origin(),
    );
    serde_json::json!({
        "unlock_code": code,
        "challenge_id": challenge.challenge_id,
        "signature": B64.encode(key.sign(&statement).expect("sign")),
        "passcode_verifier": verifier,
        "passcode_secret": secret,
    })
}

async fn unlock_challenge(s: &TestServer, device_id: &str) -> ChallengeResponse {
    s.post(
        None,
        UNLOCK_CHALLENGE_PATH,
        &DeviceChallengeRequest {
            device_id: device_id.to_owned(),
        },
    )
    .await
    .expect("anyone may ask for a challenge for a device")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlock_code_and_the_device_id_without_the_device_key_get_nothing() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let (_, card_id, phone) = s.enrolled_person(t, "X26").await;
    let unlock: CardWithCode = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card_id}/unlock"),
            &serde_json::json!({}),
        )
        .await
        .expect("an RA unlocks an enrolled card");
    assert!(is_link(&unlock.code.url, LinkKind::Unlock), "{unlock:?}");
    let code = unlock.code.code.clone();
    let victim_device = phone.device_id();
    let (_, _, other) = s.enrolled_person(t, "X26").await;
    let before = s.snapshot().await;

    // The attack of issue 9: the code and the device id, as the old API took them.
    assert_api_error(
        s.post::<_, UnlockRedeemResponse>(
            None,
            UNLOCK_PATH,
            &serde_json::json!({"unlock_code": code, "device_id": victim_device}),
        )
        .await,
        400,
        "invalid_request",
    );

    // The attacker asks for a challenge for the victim's device (it is only a name) and signs it
    // with a key of their own.
    let attacker_key = DeviceKey::generate(&victim_device).expect("a key");
    let challenge = unlock_challenge(&s, &victim_device).await;
    let message = assert_api_error(
        s.post::<_, UnlockRedeemResponse>(
            None,
            UNLOCK_PATH,
            &signed_unlock(&s, &attacker_key, &victim_device, &challenge, &code),
        )
        .await,
        401,
        "unlock_device_proof_failed",
    );
    assert!(message.contains("signature_invalid"), "{message}");
    assert!(message.contains("4 tries left"), "{message}");
    // The same challenge cannot be tried again, even with another signature.
    let message = assert_api_error(
        s.post::<_, UnlockRedeemResponse>(
            None,
            UNLOCK_PATH,
            &signed_unlock(&s, &attacker_key, &victim_device, &challenge, &code),
        )
        .await,
        401,
        "unlock_device_proof_failed",
    );
    assert!(message.contains("challenge_used"), "{message}");

    // An enrolled phone of somebody else, properly signing its own challenge.
    let other_key = other.home.device_key().expect("read").expect("a key");
    let challenge = unlock_challenge(&s, &other.device_id()).await;
    let message = assert_api_error(
        s.post::<_, UnlockRedeemResponse>(
            None,
            UNLOCK_PATH,
            &signed_unlock(&s, &other_key, &other.device_id(), &challenge, &code),
        )
        .await,
        401,
        "unlock_device_proof_failed",
    );
    assert!(message.contains("challenge_unknown"), "{message}");
    assert!(message.contains("2 tries left"), "{message}");

    // Each failed proof counted as a wrong guess, but the code was not spent and the card and
    // its recovery key are untouched.
    assert_eq!(s.code_failures(&code).await, 3);
    assert!(!s.code_used(&code).await);
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "unlock without the device key");
    let events = s
        .assert_audited("card.unlock.redeem", "unlock_device_proof_failed", 3)
        .await;
    assert!(events.iter().all(|e| e.subject == card_id));

    // Mistyped, properly signed by the card's phone: the usual wrong guess.
    let key = phone.home.device_key().expect("read").expect("a key");
    let challenge = unlock_challenge(&s, &victim_device).await;
    let message = assert_api_error(
        s.post::<_, UnlockRedeemResponse>(
            None,
            UNLOCK_PATH,
            &signed_unlock(&s, &key, &victim_device, &challenge, &mistype_secret(&code)),
        )
        .await,
        401,
        "unlock_code_wrong",
    );
    assert!(message.contains("1 tries left"), "{message}");

    // The holder's phone redeems it and sets a new passcode; the old one stops working.
    let new_passcode = Passcode::new("654321").expect("passcode");
    vsc_authenticator::redeem_unlock(&phone.home, &unlock.code.url, &new_passcode)
        .await
        .expect("the card's phone redeems the unlock code");
    assert!(s.code_used(&code).await);
    let err = vsc_authenticator::unlock_keys(&phone.home, &passcode())
        .await
        .expect_err("the old passcode");
    assert!(
        matches!(
            err,
            vsc_authenticator::AuthenticatorError::Keystore(KeystoreError::WrongPasscode { .. })
        ),
        "{err}"
    );
    vsc_authenticator::unlock_keys(&phone.home, &new_passcode)
        .await
        .expect("the new passcode opens the keystore");

    // Once only.
    let before = s.snapshot().await;
    assert_flow_error(
        vsc_authenticator::redeem_unlock(
            &phone.home,
            &unlock.code.url,
            &Passcode::new("111111").expect("passcode"),
        )
        .await,
        410,
        "unlock_code_used",
    );
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "unlock code used twice");
    vsc_authenticator::unlock_keys(&phone.home, &new_passcode)
        .await
        .expect("a refused unlock leaves the passcode alone");
    assert_eq!(s.card_state(&card_id).await, "active");

    s.assert_audited("unlock.redeem", "unlock_code_wrong", 1)
        .await;
    s.assert_audited("card.unlock.redeem", "unlock_code_used", 1)
        .await;
    let unlocked = s.audit_events("card.unlocked").await;
    assert_eq!(unlocked.len(), 1);
    s.assert_audit_intact().await;
}

/// Failed device proofs kill a code like mistyped ones: after five, the right phone cannot use
/// it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_device_proofs_use_up_the_code() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let (_, card_id, phone) = s.enrolled_person(t, "X26").await;
    let unlock: CardWithCode = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card_id}/unlock"),
            &serde_json::json!({}),
        )
        .await
        .expect("unlock code");
    let victim_device = phone.device_id();
    let attacker_key = DeviceKey::generate(&victim_device).expect("a key");
    for left in (0..5).rev() {
        let challenge = unlock_challenge(&s, &victim_device).await;
        let message = assert_api_error(
            s.post::<_, UnlockRedeemResponse>(
                None,
                UNLOCK_PATH,
                &signed_unlock(
                    &s,
                    &attacker_key,
                    &victim_device,
                    &challenge,
                    &unlock.code.code,
                ),
            )
            .await,
            401,
            "unlock_device_proof_failed",
        );
        assert!(message.contains(&format!("{left} tries left")), "{message}");
    }
    assert_flow_error(
        vsc_authenticator::redeem_unlock(
            &phone.home,
            &unlock.code.url,
            &Passcode::new("654321").expect("passcode"),
        )
        .await,
        429,
        "unlock_code_locked",
    );
    vsc_authenticator::unlock_keys(&phone.home, &passcode())
        .await
        .expect("the old passcode still works");
    s.assert_audit_intact().await;
}
