//! The phone's approval screen for prescriptions: one implementation, used by
//! the phone (`vsc-authenticator`) and by `vsc eps preview`, so what an
//! integrator previews is what the prescriber will see.
//!
//! For each prescription the phone receives only its signature fragments.
//! [`prescription`] re-canonicalises and hashes them, builds the SignedInfo it
//! will sign, and derives the lines to show from those same bytes
//! ([`crate::summary::summarize_fragments`], which refuses decoys and
//! anything too deep), ending with a fingerprint of the SignedInfo.
//! [`render`] lays out a whole request: header, then each item under `[n] id`
//! indented, then the items that will not be signed and why — every line made
//! [`displayable`] first.

use sha2::Digest as _;

use crate::sign::{self, SignatureAlgorithm};
use crate::summary;

/// What the phone shows and signs for one prescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrescriptionScreen {
    /// The prescription's long-form id (a signed fragment).
    pub prescription_id: String,
    /// The lines shown for it (before [`displayable`]).
    pub lines: Vec<String>,
    /// The canonical SignedInfo the phone signs.
    pub signed_info: String,
}

/// Check a prescription's fragments and work out what the phone shows and
/// signs for them. The error is the reason the phone gives for not signing
/// it.
pub fn prescription(
    fragments: &str,
    algorithm: SignatureAlgorithm,
) -> Result<PrescriptionScreen, String> {
    // The summary first: it refuses decoys and too-deep documents before
    // anything else reads the fragments.
    let summary = summary::summarize_fragments(fragments)
        .map_err(|e| format!("the prescription cannot be shown: {e}"))?;
    let (_digest, signed_info) = sign::prepare_from_fragments(fragments, algorithm)
        .map_err(|e| format!("the fragments cannot be read: {e}"))?;
    let mut lines = summary.display_lines();
    lines.push(format!(
        "signature fingerprint {}",
        short_fingerprint(signed_info.as_bytes())
    ));
    Ok(PrescriptionScreen {
        prescription_id: summary.prescription_id,
        lines,
        signed_info,
    })
}

/// The first header line of a request to sign `count` prescriptions.
pub fn prescriptions_header(count: usize, algorithm: SignatureAlgorithm) -> String {
    header_line(count, "prescription", algorithm)
}

/// The first header line of a request to sign `count` items of a kind
/// (`"prescription"`, `"prepared signature"`).
pub fn header_line(count: usize, what: &str, algorithm: SignatureAlgorithm) -> String {
    format!(
        "Sign {count} {what}{} ({})",
        if count == 1 { "" } else { "s" },
        algorithm.signing_service_code()
    )
}

/// One item of a request as the screen lists it.
#[derive(Debug, Clone, Copy)]
pub struct ScreenItem<'a> {
    /// The caller's id for it.
    pub id: &'a str,
    /// Its lines.
    pub lines: &'a [String],
}

/// The whole screen: the header lines, each item as `[n] id` followed by its
/// lines indented by four spaces, then `NOT SIGNED id: reason` for each
/// refused item. Every line is made [`displayable`].
pub fn render(
    header: &[String],
    items: &[ScreenItem<'_>],
    refused: &[(&str, &str)],
) -> Vec<String> {
    let mut out: Vec<String> = header.iter().map(|l| displayable(l)).collect();
    for (n, item) in items.iter().enumerate() {
        out.push(format!("[{}] {}", n + 1, displayable(item.id)));
        out.extend(item.lines.iter().map(|l| format!("    {}", displayable(l))));
    }
    for (id, reason) in refused {
        out.push(format!(
            "NOT SIGNED {}: {}",
            displayable(id),
            displayable(reason)
        ));
    }
    out
}

/// A short fingerprint of bytes, for a person to compare: the first 8 bytes
/// of SHA-256, hex in groups of four.
pub fn short_fingerprint(bytes: &[u8]) -> String {
    let d = sha2::Sha256::digest(bytes);
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    hex.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line as the screen may show it: control characters and the Unicode
/// controls that reorder or hide text (bidirectional overrides and isolates,
/// zero-width characters) are replaced by `�`, so a prescription cannot make
/// "5 mg" display as something other than what is signed.
pub fn displayable(line: &str) -> String {
    line.chars()
        .map(|c| {
            // Controls, format characters (soft hyphen, Arabic letter mark,
            // Mongolian vowel separator, zero-width and bidirectional
            // controls, invisible operators, tags), line and paragraph
            // separators, blank fillers, and private-use characters.
            let hidden = c.is_control()
                || matches!(c,
                    '\u{00AD}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{180E}'
                    | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                    | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
                    | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
                    | '\u{E000}'..='\u{F8FF}' | '\u{E0000}'..='\u{E0FFF}'
                    | '\u{F0000}'..='\u{10FFFF}');
            if hidden { '\u{FFFD}' } else { c }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_reordering_characters_are_shown_as_replacements() {
        assert_eq!(displayable("Paracetamol 500mg"), "Paracetamol 500mg");
        assert_eq!(displayable("Zoë Ångström"), "Zoë Ångström");
        assert_eq!(displayable("5\u{202E}gm 05"), "5\u{FFFD}gm 05");
        assert_eq!(
            displayable("a\u{200B}b\nc\u{2066}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
        assert_eq!(displayable("x\u{00AD}y\u{E0041}"), "x\u{FFFD}y\u{FFFD}");
    }

    #[test]
    fn fingerprint_format() {
        let f = short_fingerprint(b"abc");
        // SHA-256("abc") starts ba7816bf 8f01cfea.
        assert_eq!(f, "ba78 16bf 8f01 cfea");
    }
}
