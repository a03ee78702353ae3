//! The phone's API as the running server answers it: every `/api/v1/device/*` route (and
//! enrolment) is registered once in the whole application (a method it does not take is
//! `405`, not `404`), and each keeps its body limit: the signing answers take large bodies, the
//! other routes refuse anything over 64 KiB before reading it.

use reqwest::{Method, StatusCode};
use vsc_proto::routes;

use crate::common::start;

/// Every phone route with the method it takes.
const PHONE_ROUTES: [(&str, Method); 18] = [
    (routes::ENROL, Method::POST),
    (routes::PASSCODE_CHALLENGE, Method::POST),
    (routes::PASSCODE_CHECK, Method::POST),
    (routes::UNLOCK_CHALLENGE, Method::POST),
    (routes::UNLOCK, Method::POST),
    (routes::DEVICE_CHALLENGE, Method::POST),
    (routes::DEVICE_TOKEN, Method::POST),
    (routes::DEVICE_EVENTS, Method::GET),
    (routes::DEVICE_REQUESTS, Method::GET),
    (routes::DEVICE_REQUEST_APPROVE, Method::POST),
    (routes::DEVICE_REQUEST_DECLINE, Method::POST),
    (routes::DEVICE_SIGNING, Method::GET),
    (routes::DEVICE_SIGNING_COMPLETE, Method::POST),
    (routes::DEVICE_SIGNING_DECLINE, Method::POST),
    (routes::DEVICE_CARD_PIN, Method::POST),
    (routes::DEVICE_PUSH, Method::GET),
    (routes::DEVICE_PUSH_SUBSCRIPTION, Method::POST),
    (routes::DEVICE_PUSH_UNSUBSCRIBE, Method::POST),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phone_route_is_registered_with_its_body_limit() {
    let s = start().await;
    let http = s.raw_http();
    let url = |template: &str| {
        s.url
            .join(routes::fill(template, "r-1").trim_start_matches('/'))
            .unwrap()
    };
    for (template, method) in PHONE_ROUTES {
        let other = if method == Method::GET {
            Method::DELETE
        } else {
            Method::PUT
        };
        let response = http
            .request(other.clone(), url(template))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{other} {template}"
        );
    }
    // 100 KiB: over the application's limit, well within the signing routes'. A phone with a
    // device token gets past the token check, so a route without the small limit reads the
    // whole body (and refuses it as not JSON); one with it refuses it unread: `413`, or the
    // connection closed while the body was still being sent.
    let ram = s.enrol_bootstrap_ram().await;
    s.create_org(&ram.token, "RX1").await;
    let (_uid, _card_id, phone) = s.enrolled_person(&ram.token, "RX1").await;
    let token = s.device_token(&phone).await;
    let big = vec![b' '; 100 * 1024];
    for (template, limited) in [
        (routes::DEVICE_CARD_PIN, true),
        (routes::DEVICE_PUSH_SUBSCRIPTION, true),
        (routes::DEVICE_REQUEST_APPROVE, true),
        (routes::DEVICE_TOKEN, true),
        (routes::ENROL, true),
        (routes::DEVICE_SIGNING_COMPLETE, false),
        (routes::DEVICE_SIGNING_DECLINE, false),
    ] {
        // A client of its own: a connection the server closed on a refusal is not reused.
        let sent = s
            .raw_http()
            .post(url(template))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await;
        match (limited, sent) {
            (true, Ok(response)) => {
                assert_eq!(
                    response.status(),
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "{template}"
                );
            }
            (true, Err(e)) => assert!(e.is_request(), "{template}: {e:?}"),
            (false, sent) => {
                let response = sent.unwrap();
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{template}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "invalid_request", "{template}");
            }
        }
    }
}
