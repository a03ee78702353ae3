//! `fragments`: what the phone parses from the server — a prescription's
//! `FragmentsToBeHashed` document (the approval screen `vsc_eps::screen::prescription`, the
//! summary, the canonical form and digest) — and the `SignedInfo` check it applies before
//! signing anything that is not a prescription (`vsc_eps::sign::check_signed_info`).
//!
//! Input: XML text. Properties, beyond no panic: canonicalising the fragments is idempotent;
//! the screen's `SignedInfo` is the one `prepare_from_fragments` builds, and passes
//! `check_signed_info`; and the screen shows the summary's prescription id.

use vsc_eps::fragments;
use vsc_eps::screen;
use vsc_eps::sign::{self, SignatureAlgorithm};
use vsc_eps::summary;

/// The target.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let summary = summary::summarize_fragments(text);
    if let Ok(canonical) = fragments::canonicalize_fragments_document(text) {
        let again = fragments::canonicalize_fragments_document(&canonical)
            .unwrap_or_else(|e| panic!("canonical fragments do not parse again: {e}"));
        assert_eq!(
            again, canonical,
            "re-canonicalising the fragments changes them"
        );
    }
    for algorithm in [SignatureAlgorithm::RsaSha1, SignatureAlgorithm::RsaSha256] {
        let _ = sign::check_signed_info(text, algorithm);
        let prepared = sign::prepare_from_fragments(text, algorithm);
        if let Ok(shown) = screen::prescription(text, algorithm) {
            let summary = summary
                .as_ref()
                .unwrap_or_else(|e| panic!("the screen shows fragments that have no summary: {e}"));
            assert_eq!(shown.prescription_id, summary.prescription_id);
            let (_, signed_info) = prepared
                .as_ref()
                .unwrap_or_else(|e| panic!("shown but not preparable: {e}"));
            assert_eq!(
                &shown.signed_info, signed_info,
                "the screen signs something else"
            );
            sign::check_signed_info(&shown.signed_info, algorithm)
                .unwrap_or_else(|e| panic!("the phone's own SignedInfo is refused: {e}"));
        }
    }
}
