//! `c14n`: reading XML as EPS does (`vsc_eps::xml::parse`, with its depth and size limits)
//! and exclusive canonicalisation (`vsc_eps::c14n`) of the document and of element subtrees,
//! with and without EPS's whitespace stripping.
//!
//! Input: XML text. Properties: canonicalisation never panics or overflows the stack on
//! anything the parser accepts; its output is XML the same parser accepts; and it is
//! idempotent (canonicalising the canonical form gives it back), for the whole document and
//! for each element subtree (exclusive C14N makes a subtree self-contained).

use vsc_eps::c14n::{C14nOptions, canonicalize_with};
use vsc_eps::xml;

/// Element subtrees canonicalised per input, beyond the document itself (bounds the time one
/// input takes).
const SUBTREES: usize = 24;

fn idempotent(canonical: &str, options: C14nOptions, what: &str) {
    let again = xml::parse(canonical).unwrap_or_else(|e| {
        panic!("canonical form of {what} is not accepted XML: {e}\n{canonical}")
    });
    assert_eq!(
        canonicalize_with(again.root(), options),
        canonical,
        "canonicalising the canonical form of {what} changes it ({options:?})"
    );
}

/// The target.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(doc) = xml::parse(text) else {
        return;
    };
    for strip_whitespace_text in [false, true] {
        let options = C14nOptions {
            strip_whitespace_text,
        };
        let canonical = canonicalize_with(doc.root(), options);
        idempotent(&canonical, options, "the document");
        for element in doc
            .descendants()
            .filter(roxmltree::Node::is_element)
            .take(SUBTREES)
        {
            let canonical = canonicalize_with(element, options);
            idempotent(&canonical, options, "a subtree");
        }
    }
}
