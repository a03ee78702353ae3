//! Deep XML against the real server's signing route (issue 9, item 6): a prescription's fragments
//! nested 35,000 elements deep (as deep as the 256 KiB item limit allows; the recursive C14N
//! writer of old overflowed the stack on far less and aborted the whole server) are refused with a
//! clear error, and the same server keeps serving: the same prescriber then opens an honest
//! request. Decoys in the fragments (a second `code` before the real one) are refused the same
//! way, before the phone could show them.

use vsc_proto::signing::SigningItem;

use crate::common::{assert_api_error, start};
use crate::signing::{corpus_items, open, outcome, prescriber};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_fragments_are_refused_and_the_server_keeps_serving() {
    let s = start().await;
    let (ticket, _card, _phone) = prescriber(&s, &["B0420"]).await;
    let honest = corpus_items(1).remove(0);
    let fragments = honest.fragments.clone().expect("fragments");
    let deep = fragments.replacen(
        "<patientPerson",
        &format!("{}<patientPerson", vsc_eps::xml::nested("a", 35_000)),
        1,
    );
    assert!(deep.len() < 256 * 1024, "within the item size limit");
    let message = assert_api_error(
        open(
            &s,
            &ticket,
            "RS1",
            vec![SigningItem {
                fragments: Some(deep),
                ..honest.clone()
            }],
        )
        .await,
        400,
        "fragments_invalid",
    );
    assert!(
        message.contains("nested more than 256 levels deep"),
        "{message}"
    );

    // A second medication code before the real one (what a foreign-namespace decoy becomes in
    // EPS's copy): refused before any phone sees it.
    let start_of_code = fragments
        .find("<manufacturedRequestedMaterial")
        .and_then(|m| fragments[m..].find("<code ").map(|c| c + m))
        .expect("the medication code");
    let mut decoyed = fragments.clone();
    decoyed.insert_str(
        start_of_code,
        "<code code=\"39720311000001101\" displayName=\"Decoy 5mg tablets\"></code>",
    );
    let message = assert_api_error(
        open(
            &s,
            &ticket,
            "RS1",
            vec![SigningItem {
                fragments: Some(decoyed),
                ..honest.clone()
            }],
        )
        .await,
        400,
        "fragments_invalid",
    );
    assert!(message.contains("appears more than once"), "{message}");

    // Still serving: the same prescriber opens an honest request.
    let created = open(&s, &ticket, "RS1", vec![honest])
        .await
        .expect("the server still serves");
    assert_eq!(
        outcome(&s, &ticket, &created.request_id).await.state,
        "pending"
    );
}
