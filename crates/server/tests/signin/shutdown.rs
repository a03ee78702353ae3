//! Stopping the server with a phone's event stream open: the stream ends, and the graceful
//! shutdown does not wait for it.

use std::time::Duration;

use tokio::time::timeout;
use vsc_authenticator::{DeviceEvent, PhoneLink};

use crate::common::start;

async fn next<S: futures_core::Stream>(stream: &mut std::pin::Pin<Box<S>>) -> Option<S::Item> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_does_not_hold_up_shutdown() {
    let mut s = start().await;
    let ram = s.enrol_bootstrap_ram().await;
    let t = ram.token.as_str();
    s.create_org(t, "RX1").await;
    let (uid, _card, phone) = s.enrolled_person(t, "RX1").await;
    let link = PhoneLink::new(&phone.home).expect("link");
    let mut events = Box::pin(link.events().await.expect("event stream"));
    let created = s.open_request(&uid, "pc-1").await;
    let event = timeout(Duration::from_secs(2), next(&mut events))
        .await
        .expect("the stream delivers")
        .expect("open")
        .expect("an event");
    assert!(
        matches!(&event, DeviceEvent::Request(r) if r.request_id == created.request_id),
        "{event:?}"
    );
    // The store closes with the server: check the audit chain first.
    s.assert_audit_intact().await;

    let took = s.stop(Duration::from_secs(8)).await;
    assert!(
        took < Duration::from_secs(3),
        "the server took {took:?} to stop with an event stream open"
    );
    let end = timeout(Duration::from_secs(2), next(&mut events))
        .await
        .expect("the phone sees its stream end");
    assert!(
        !matches!(end, Some(Ok(_))),
        "nothing more arrives after the shutdown: {end:?}"
    );
}
