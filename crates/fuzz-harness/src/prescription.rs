//! `prescription`: everything that reads a whole prescription from a prescribing system —
//! the signed fragments and their canonical form (`vsc_eps::fragments`), the summary
//! (`vsc_eps::summary`), the server's signing preparation (`vsc_eps::sign::prepare`) and the
//! verifier (`vsc_eps::verify`, without trust anchors or CRLs).
//!
//! Input: XML text. Properties, beyond no panic: what the server prepares is what the phone
//! reproduces — for the canonical fragments the server sends, the phone's
//! `prepare_from_fragments` gives the same digest and `SignedInfo`, re-canonicalising them
//! changes nothing, and when the prescription can be summarised, the phone's summary of those
//! fragments is the same (without the unsigned short-form id).

use time::OffsetDateTime;
use vsc_eps::fragments;
use vsc_eps::sign::{self, SignatureAlgorithm};
use vsc_eps::summary;
use vsc_eps::verify::{self, VerifyOptions};

/// A fixed verification time (2026-01-01), so the result does not depend on the clock.
pub(crate) fn verification_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The target.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let canonical = fragments::canonical_fragments_from_str(text);
    let whole_summary = summary::summarize_prescription(text);
    for algorithm in [SignatureAlgorithm::RsaSha1, SignatureAlgorithm::RsaSha256] {
        let Ok(prepared) = sign::prepare(text, algorithm) else {
            continue;
        };
        assert_eq!(
            canonical.as_deref().ok(),
            Some(prepared.canonical_fragments.as_str()),
            "prepare and canonical_fragments_from_str disagree"
        );
        let again = fragments::canonicalize_fragments_document(&prepared.canonical_fragments)
            .unwrap_or_else(|e| panic!("the canonical fragments do not parse again: {e}"));
        assert_eq!(
            again, prepared.canonical_fragments,
            "re-canonicalising the fragments changes them"
        );
        let (digest, signed_info) =
            sign::prepare_from_fragments(&prepared.canonical_fragments, algorithm)
                .unwrap_or_else(|e| panic!("the phone cannot prepare the server's fragments: {e}"));
        assert_eq!(digest, prepared.digest, "phone and server digests differ");
        assert_eq!(
            signed_info, prepared.signed_info,
            "phone and server SignedInfo differ"
        );
        sign::check_signed_info(&signed_info, algorithm)
            .unwrap_or_else(|e| panic!("the server's own SignedInfo is refused: {e}"));
        if let Ok(whole) = &whole_summary {
            let phone =
                summary::summarize_fragments(&prepared.canonical_fragments).unwrap_or_else(|e| {
                    panic!("the prescription has a summary but its canonical fragments do not: {e}")
                });
            let mut expected = whole.clone();
            expected.short_form_id = None;
            assert_eq!(phone, expected, "the phone would show something else");
        }
    }
    let options = VerifyOptions {
        allow_legacy_1024_bit_rsa: true,
        verification_time: Some(verification_time()),
        ..VerifyOptions::default()
    };
    let _ = verify::verify_prescription(text, &options);
    let _ = sign::strip_signature(text);
}
