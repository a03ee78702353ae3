//! Issue 9, item 10: a copy of the keystore file used to be guessable offline (six digits,
//! Argon2id, checked on the phone). Now the keystore opens only with the passcode *and* the
//! server secret, which the server releases for the right verifier on a request signed with the
//! device key over a fresh challenge; the server counts wrong passcodes and locks the card at
//! the third, whatever the phone's file says.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use vsc_authenticator::{
    AuthenticatorError, DeviceKey, KeystoreError, Passcode, ServerSecret, SoftwareKeystore,
};
use vsc_proto::passcode::{
    PASSCODE_CHALLENGE_PATH, PASSCODE_CHECK_PATH, PasscodeCheckResponse, passcode_check_statement,
};
use vsc_proto::signin::DeviceChallengeRequest;
use vsc_proto::{CardWithCode, ChallengeResponse};

use crate::common::{TestServer, assert_api_error, passcode, start};

async fn passcode_challenge(s: &TestServer, device_id: &str) -> ChallengeResponse {
    s.post(
        None,
        PASSCODE_CHALLENGE_PATH,
        &DeviceChallengeRequest {
            device_id: device_id.to_owned(),
        },
    )
    .await
    .expect("a passcode challenge")
}

/// A passcode check of `verifier` for `card_id`, signed by `key` over `challenge`.
fn signed_check(
    s: &TestServer,
    key: &DeviceKey,
    device_id: &str,
    card_id: &str,
    challenge: &ChallengeResponse,
    verifier: &str,
) -> serde_json::Value {
    let statement = passcode_check_statement(
        &challenge.challenge_id,
        &challenge.nonce,
        device_id,
        card_id,
        verifier,
        &s.state.origin(),
    );
    serde_json::json!({
        "device_id": device_id,
        "card_id": card_id,
        "challenge_id": challenge.challenge_id,
        "verifier": verifier,
        "signature": B64.encode(key.sign(&statement).expect("sign")),
    })
}

fn is_wrong(err: &AuthenticatorError, left: u32) -> bool {
    matches!(err, AuthenticatorError::Keystore(KeystoreError::WrongPasscode { remaining }) if *remaining == left)
}

fn is_locked(err: &AuthenticatorError) -> bool {
    matches!(err, AuthenticatorError::Keystore(KeystoreError::Locked))
}

/// (a) A thief with a copy of the file: no guess, the right one included, opens it or can be
/// told apart from a wrong one without the server. With the server and the device key the right
/// passcode does open it (so the test is not vacuous) — and every try there is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_keystore_cannot_be_guessed_at_offline() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let (_, card_id, phone) = s.enrolled_person(&ram.token, "X26").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("stolen-keystore.json");
    std::fs::copy(phone.home.keystore_path(), &copy).expect("copy the file");
    let stolen = SoftwareKeystore::open(&copy).expect("the thief reads the copy");

    // Offline: every guess fails the same way with any secret the thief can make up.
    let made_up = [
        ServerSecret::from_base64(&B64.encode([0u8; 32])).expect("secret"),
        ServerSecret::from_base64(&B64.encode([0xa5u8; 32])).expect("secret"),
    ];
    for guess in [crate::common::PASSCODE, "000000", "999999"] {
        let stretched = stolen
            .stretch(&Passcode::new(guess).expect("format"))
            .expect("stretch");
        for secret in &made_up {
            let mut store = SoftwareKeystore::open(&copy).expect("open");
            let err = store
                .unlock_with_secret(&stretched, secret)
                .expect_err("nothing opens the copy offline");
            assert!(
                matches!(err, KeystoreError::ServerSecretMismatch { .. }),
                "{err}"
            );
        }
    }
    // Nothing in the file is the verifier, so a guess has nothing to be compared with; and the
    // server keeps the verifier and the secret sealed, not in clear.
    let right = stolen.stretch(&passcode()).expect("stretch");
    let verifier = right.verifier_base64();
    let text = std::fs::read_to_string(&copy).expect("read");
    assert!(!text.contains(verifier.as_str()));
    let (sealed_v, sealed_s): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT sealed_verifier, sealed_secret FROM card_passcode_secrets WHERE card_id = $1",
    )
    .bind(&card_id)
    .fetch_one(s.state.store().pool())
    .await
    .expect("the server holds the card's passcode check");
    let raw_v = B64.decode(verifier.as_str()).expect("base64");
    assert!(!sealed_v.windows(32).any(|w| w == raw_v.as_slice()));

    // Online, with the device key: the right verifier gets the secret, which opens the copy.
    let key = phone.home.device_key().expect("read").expect("key");
    let challenge = passcode_challenge(&s, &phone.device_id()).await;
    let answer: PasscodeCheckResponse = s
        .post(
            None,
            PASSCODE_CHECK_PATH,
            &signed_check(
                &s,
                &key,
                &phone.device_id(),
                &card_id,
                &challenge,
                &verifier,
            ),
        )
        .await
        .expect("the check");
    assert!(answer.correct);
    let secret =
        ServerSecret::from_base64(answer.secret.as_deref().expect("the secret")).expect("32 bytes");
    assert!(
        !sealed_s
            .windows(32)
            .any(|w| w == B64.decode(secret.to_base64().as_str()).expect("b64"))
    );
    let mut store = SoftwareKeystore::open(&copy).expect("open");
    store
        .unlock_with_secret(&right, &secret)
        .expect("the server's secret and the right passcode open it");
    s.assert_audit_intact().await;
}

/// (b) and (c): the honest path works; three wrong passcodes through the server lock the card
/// on the server even when the thief puts back an old copy of the file between tries; an RA
/// unlock sets a new passcode and clears the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passcodes_are_counted_by_the_server_and_a_restored_file_does_not_help() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let (uid, card_id, phone) = s.enrolled_person(t, "X26").await;
    let home = &phone.home;

    // (c) The honest path: the right passcode opens the keys, again and again.
    for _ in 0..2 {
        vsc_authenticator::unlock_keys(home, &passcode())
            .await
            .expect("the right passcode");
    }
    let backup = std::fs::read(home.keystore_path()).expect("a copy of the fresh file");

    let wrong = Passcode::new("999999").expect("format");
    let err = vsc_authenticator::unlock_keys(home, &wrong)
        .await
        .expect_err("wrong");
    assert!(is_wrong(&err, 2), "{err}");
    let err = vsc_authenticator::unlock_keys(home, &wrong)
        .await
        .expect_err("wrong");
    assert!(is_wrong(&err, 1), "{err}");
    assert_eq!(
        vsc_authenticator::status(home)
            .expect("status")
            .failed_attempts,
        2
    );

    // The thief rewinds the file: the phone's own view forgets the count, the server does not.
    std::fs::write(home.keystore_path(), &backup).expect("restore the old copy");
    assert_eq!(
        vsc_authenticator::status(home)
            .expect("status")
            .failed_attempts,
        0
    );
    // A sign-in is waiting for the phone when the third wrong passcode locks the card: it
    // fails with the lock, and the workstation's long-poll hears at once (not at its expiry,
    // and the request does not come back to the phone after an unlock).
    let waiting = s.open_request(&uid, "WS-LOCKED-CARD").await;
    let asked = std::time::Instant::now();
    let (outcome, third) = tokio::join!(s.outcome(&waiting, 25), async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        vsc_authenticator::unlock_keys(home, &wrong).await
    });
    let err = third.expect_err("third wrong");
    assert!(is_locked(&err), "{err}");
    assert_eq!(s.card_state(&card_id).await, "locked");
    assert_eq!(outcome.state, "failed", "{outcome:?}");
    // Woken by the lock, not by the end of its 25 s wait (which re-reads the row as well).
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(15),
        "the workstation heard after {:?}",
        asked.elapsed()
    );
    assert_eq!(s.request_state(&waiting.request_id).await, "failed");
    let err = vsc_authenticator::unlock_keys(home, &passcode())
        .await
        .expect_err("locked refuses the right passcode");
    assert!(is_locked(&err), "{err}");
    // And again with the file rewound.
    std::fs::write(home.keystore_path(), &backup).expect("restore the old copy");
    let err = vsc_authenticator::unlock_keys(home, &passcode())
        .await
        .expect_err("still locked");
    assert!(is_locked(&err), "{err}");
    assert!(vsc_authenticator::status(home).expect("status").locked);

    // Audited: three counted failures, one lock, the refusals of the locked card.
    let failed = s.audit_events("card.passcode.failed").await;
    assert_eq!(failed.len(), 3);
    let locked = s.audit_events("card.locked").await;
    assert_eq!(locked.len(), 1);
    assert!(
        locked[0].detail.contains("three wrong passcodes")
            && locked[0].detail.contains(&waiting.request_id),
        "{:?}",
        locked[0]
    );
    s.assert_audited("card.passcode.check", "card_locked", 2)
        .await;

    // An RA unlock: new passcode, count cleared, the old passcode no longer works.
    let unlock: CardWithCode = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card_id}/unlock"),
            &serde_json::json!({}),
        )
        .await
        .expect("unlock code");
    let new_passcode = Passcode::new("13572468").expect("format");
    vsc_authenticator::redeem_unlock(home, &unlock.code.url, &new_passcode)
        .await
        .expect("redeem");
    assert_eq!(s.card_state(&card_id).await, "active");
    vsc_authenticator::unlock_keys(home, &new_passcode)
        .await
        .expect("the new passcode");
    let err = vsc_authenticator::unlock_keys(home, &passcode())
        .await
        .expect_err("the old passcode");
    assert!(is_wrong(&err, 2), "{err}");
    // The pre-unlock copy of the file opens with neither passcode: its salt makes the new
    // passcode's verifier come out wrong (and counted), and the old passcode's verifier and
    // secret are gone from the server.
    std::fs::write(home.keystore_path(), &backup).expect("restore the old copy");
    let err = vsc_authenticator::unlock_keys(home, &new_passcode)
        .await
        .expect_err("old file");
    assert!(is_wrong(&err, 1), "{err}");
    s.assert_audit_intact().await;
}

/// (d) A passcode check needs a fresh challenge signed by the device key: a replay, a
/// signature by another key, an expired challenge, or another phone's card are refused, are
/// audited, and do not count as (or reveal) a passcode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passcode_checks_need_the_device_key_over_a_fresh_challenge() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let (_, card_id, phone) = s.enrolled_person(&ram.token, "X26").await;
    let device_id = phone.device_id();
    let key = phone.home.device_key().expect("read").expect("key");
    let verifier = SoftwareKeystore::open(&phone.home.keystore_path())
        .expect("open")
        .stretch(&passcode())
        .expect("stretch")
        .verifier_base64();

    // The honest check, then its replay.
    let challenge = passcode_challenge(&s, &device_id).await;
    let request = signed_check(&s, &key, &device_id, &card_id, &challenge, &verifier);
    let answer: PasscodeCheckResponse = s
        .post(None, PASSCODE_CHECK_PATH, &request)
        .await
        .expect("the check");
    assert!(answer.correct && answer.secret.is_some());
    assert_api_error(
        s.post::<_, PasscodeCheckResponse>(None, PASSCODE_CHECK_PATH, &request)
            .await,
        401,
        "challenge_used",
    );

    // Somebody with the file (so the verifier of a guess) and the device id, but not the key.
    let thief = DeviceKey::generate(&device_id).expect("key");
    let challenge = passcode_challenge(&s, &device_id).await;
    assert_api_error(
        s.post::<_, PasscodeCheckResponse>(
            None,
            PASSCODE_CHECK_PATH,
            &signed_check(&s, &thief, &device_id, &card_id, &challenge, &verifier),
        )
        .await,
        401,
        "signature_invalid",
    );

    // An expired challenge.
    let challenge = passcode_challenge(&s, &device_id).await;
    s.clock.advance(time::Duration::minutes(3));
    assert_api_error(
        s.post::<_, PasscodeCheckResponse>(
            None,
            PASSCODE_CHECK_PATH,
            &signed_check(&s, &key, &device_id, &card_id, &challenge, &verifier),
        )
        .await,
        401,
        "challenge_expired",
    );

    // Another enrolled phone, signing properly, asking for this card's secret.
    let (_, _, other) = s.enrolled_person(&ram.token, "X26").await;
    let other_key = other.home.device_key().expect("read").expect("key");
    let challenge = passcode_challenge(&s, &other.device_id()).await;
    assert_api_error(
        s.post::<_, PasscodeCheckResponse>(
            None,
            PASSCODE_CHECK_PATH,
            &signed_check(
                &s,
                &other_key,
                &other.device_id(),
                &card_id,
                &challenge,
                &verifier,
            ),
        )
        .await,
        403,
        "card_not_on_this_device",
    );

    // None of that counted as a wrong passcode, and the card works.
    assert!(s.audit_events("card.passcode.failed").await.is_empty());
    vsc_authenticator::unlock_keys(&phone.home, &passcode())
        .await
        .expect("the right passcode");
    s.assert_audited("card.passcode.check", "challenge_used", 1)
        .await;
    s.assert_audited("card.passcode.check", "signature_invalid", 1)
        .await;
    s.assert_audited("card.passcode.check", "challenge_expired", 1)
        .await;
    s.assert_audited("card.passcode.check", "card_not_on_this_device", 1)
        .await;
    s.assert_audit_intact().await;
}

/// A card enrolled before the server checked passcodes has no verifier: its phone is told to
/// get an unlock code, and redeeming one sets the check up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_without_a_passcode_check_is_upgraded_by_an_unlock() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let (_, card_id, phone) = s.enrolled_person(t, "X26").await;
    let mut tx = s.state.store().write().await.expect("tx");
    sqlx::query("DELETE FROM card_passcode_secrets WHERE card_id = $1")
        .bind(&card_id)
        .execute(&mut *tx)
        .await
        .expect("as before migration 0006");
    tx.commit().await.expect("commit");
    let err = vsc_authenticator::unlock_keys(&phone.home, &passcode())
        .await
        .expect_err("no check on the server");
    crate::common::assert_flow_error::<()>(Err(err), 409, "passcode_not_registered");

    let unlock: CardWithCode = s
        .post(
            Some(t),
            &format!("/api/v1/ra/cards/{card_id}/unlock"),
            &serde_json::json!({}),
        )
        .await
        .expect("unlock code");
    vsc_authenticator::redeem_unlock(&phone.home, &unlock.code.url, &passcode())
        .await
        .expect("redeem");
    vsc_authenticator::unlock_keys(&phone.home, &passcode())
        .await
        .expect("the check is set up again");
}
