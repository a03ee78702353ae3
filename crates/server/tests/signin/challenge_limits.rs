//! Challenge limits for phones: the phones of a whole trust reach the server from one address
//! (the hospital network's NAT), so challenges for *enrolled* devices are limited per device,
//! not per address; challenges naming devices the server does not know are still limited per
//! address, so nobody can make the server write rows for made-up devices without bound.

use vsc_proto::ChallengeResponse;
use vsc_proto::signin::DeviceChallengeRequest;

use vsc_authenticator::ClientError;

use crate::common::{assert_api_error, start};

/// The error code of a refusal that is either "unknown device" (404) or "too many" (429).
fn assert_api_error_either(result: Result<ChallengeResponse, ClientError>) -> &'static str {
    match result {
        Err(ClientError::Server {
            status: 404, code, ..
        }) if code == "unknown_device" => "unknown_device",
        Err(ClientError::Server {
            status: 429, code, ..
        }) if code == "too_many_requests" => "too_many_requests",
        other => panic!("expected unknown_device or too_many_requests, got {other:?}"),
    }
}

const CHALLENGE: &str = "/api/v1/device/challenge";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_sharing_an_address_are_limited_per_device_not_per_address() {
    let s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    let mut phones = Vec::new();
    for _ in 0..3 {
        let (_, _, phone) = s.enrolled_person(t, "X26").await;
        phones.push(phone);
    }
    // 3 × 25 = 75 challenges from 127.0.0.1 in one minute: more than an address may ask for
    // unknown devices (60), all granted because each device stays under its own 30.
    for phone in &phones {
        for _ in 0..25 {
            let _: ChallengeResponse = s
                .post(
                    None,
                    CHALLENGE,
                    &DeviceChallengeRequest {
                        device_id: phone.device_id(),
                    },
                )
                .await
                .expect("an enrolled device gets its challenge");
        }
    }
    // One device asking too often is refused (its 31st in the minute), the others are not.
    let first = phones[0].device_id();
    for _ in 0..5 {
        let _: ChallengeResponse = s
            .post(
                None,
                CHALLENGE,
                &DeviceChallengeRequest {
                    device_id: first.clone(),
                },
            )
            .await
            .expect("still within the device's allowance");
    }
    assert_api_error(
        s.post::<_, ChallengeResponse>(
            None,
            CHALLENGE,
            &DeviceChallengeRequest { device_id: first },
        )
        .await,
        429,
        "too_many_requests",
    );
    let _: ChallengeResponse = s
        .post(
            None,
            CHALLENGE,
            &DeviceChallengeRequest {
                device_id: phones[1].device_id(),
            },
        )
        .await
        .expect("another device on the same address is not held up");
    s.assert_audit_intact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_devices_are_limited_per_address() {
    let s = start().await;
    let _ram = s.enrol_bootstrap_ram().await;
    let before = s.snapshot().await;
    // 60 a minute per address, of which the RA's own sign-in above used one.
    let mut refused_at = None;
    for i in 0..61 {
        let result = s
            .post::<_, ChallengeResponse>(
                None,
                CHALLENGE,
                &DeviceChallengeRequest {
                    device_id: format!("made-up-device-{i}"),
                },
            )
            .await;
        if refused_at.is_none() {
            match assert_api_error_either(result) {
                "unknown_device" => continue,
                _ => refused_at = Some(i),
            }
        } else {
            assert_api_error(result, 429, "too_many_requests");
        }
    }
    assert_eq!(refused_at, Some(59), "the address's allowance ran out");
    let after = s.snapshot().await;
    s.assert_unchanged(&before, &after, "challenges for made-up devices");
    s.assert_audit_intact().await;
}
