//! What the phone does with a signing request: it signs only what it can show.
//!
//! For prescriptions the request carries each prescription's signature *fragments*. The phone
//! canonicalises and hashes them itself, builds the SignedInfo itself, and derives what it
//! shows (patient with every NHS number, date of birth and address; prescriber; each item's
//! medication name next to its dm+d code, doses, quantity, issues authorised, additional
//! instructions and endorsements; the prescription id) from those same fragments, so the screen
//! and the signature cannot disagree. Fragments holding a decoy (an element outside the HL7
//! namespace, a repeated single element such as two `recordTarget`s or two `code`s) or nested
//! too deep are refused before anything is shown. The screen is rendered by
//! [`vsc_eps::screen`], the same code `vsc eps preview` prints. For prepared
//! SignedInfo (a prescribing system that prepares its own, as with the NHS Signing Service) the
//! phone cannot see the prescription: it shows the caller's description marked as unverified,
//! and signs only an XML-DSig SignedInfo for the agreed algorithm (never an arbitrary blob).
//!
//! A batch is one approval that lists every prescription; each is signed separately.
//!
//! This is the one implementation: `vsc authenticator` (native, signing with its keystore) and
//! the web app (WebAssembly, signing with WebCrypto and the web keystore) both call it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use vsc_eps::sign::SignatureAlgorithm;
use vsc_proto::signing::{FailedSignature, PendingSigningRequest, SigningItem, SigningKind};

pub use vsc_eps::screen::{displayable, short_fingerprint};

/// A signing request this app will not sign at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing request {request_id} cannot be signed: {reason}")]
pub struct ReviewError {
    /// The request.
    pub request_id: String,
    /// What was wrong.
    pub reason: String,
}

/// One item as the phone understood it.
#[derive(Debug, Clone)]
pub struct ReviewedItem {
    /// The caller's id for it.
    pub id: String,
    /// What the screen shows for it.
    pub lines: Vec<String>,
    /// Whether `lines` were derived from the signed bytes (prescriptions) or only supplied by
    /// the caller (prepared SignedInfo).
    pub verified: bool,
    /// What will be signed: the canonical SignedInfo, or a card operation's input.
    signed_info: Vec<u8>,
    /// For a card operation: the slot (`9a` or `9c`).
    card_slot: Option<String>,
}

impl ReviewedItem {
    /// What will be signed: the canonical SignedInfo (signed whole, RSA PKCS#1 v1.5), or for a
    /// card operation the 32-byte digest the workstation's middleware computed.
    pub fn to_sign(&self) -> &[u8] {
        &self.signed_info
    }

    /// For a card operation: the slot (`9a` or `9c`); `None` for prescriptions.
    pub fn card_slot(&self) -> Option<&str> {
        self.card_slot.as_deref()
    }
}

/// A signing request after the phone's own checks: what it will show and sign.
#[derive(Debug, Clone)]
pub struct SigningReview {
    /// The request.
    pub request_id: String,
    /// The algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The items the phone can sign.
    pub items: Vec<ReviewedItem>,
    /// Items it will not sign, and why.
    pub refused: Vec<FailedSignature>,
    /// Header lines (who asks, from where, in which role).
    pub header: Vec<String>,
    /// What the items are.
    pub kind: SigningKind,
    /// The workstation that asked, as the server names it.
    pub workstation: String,
}

/// Checks a signing request and works out, for each item, what to show and what to sign.
pub fn review(request: &PendingSigningRequest) -> Result<SigningReview, ReviewError> {
    let algorithm: SignatureAlgorithm = if request.kind == SigningKind::Card {
        // Card operations carry their own per-slot algorithm; this one is not used.
        SignatureAlgorithm::RsaSha256
    } else {
        request.algorithm.parse().map_err(|_| ReviewError {
            request_id: request.request_id.clone(),
            reason: format!("unknown algorithm '{}'", request.algorithm),
        })?
    };
    if request.kind == SigningKind::Card {
        check_card_request(request)?;
    }
    let mut items = Vec::new();
    let mut refused = Vec::new();
    for item in &request.items {
        let outcome = match request.kind {
            SigningKind::Prescriptions => review_prescription(item, algorithm),
            SigningKind::Prepared => review_prepared(item, algorithm),
            SigningKind::Card => review_card(item),
        };
        match outcome {
            Ok(reviewed) => items.push(reviewed),
            Err(reason) => refused.push(FailedSignature {
                id: item.id.clone(),
                reason,
            }),
        }
    }
    let what = match request.kind {
        SigningKind::Prescriptions => "prescription",
        SigningKind::Prepared => "prepared signature",
        SigningKind::Card => "smartcard operation",
    };
    if request.kind == SigningKind::Card {
        let header = vec![format!(
            "Use your smartcard key on {} ({})",
            request.workstation,
            items
                .first()
                .and_then(|i: &ReviewedItem| i.card_slot.as_deref())
                .unwrap_or("?")
        )];
        return Ok(SigningReview {
            request_id: request.request_id.clone(),
            algorithm,
            items,
            refused,
            header,
            kind: request.kind,
            workstation: request.workstation.clone(),
        });
    }
    let mut header = vec![
        vsc_eps::screen::header_line(request.items.len(), what, algorithm),
        format!("from {} as {}", request.workstation, request.role),
    ];
    if request.kind == SigningKind::Prepared {
        header.push(
            "WARNING: the prescribing system prepared these; this phone cannot see the prescriptions and cannot check the descriptions below".into(),
        );
    }
    Ok(SigningReview {
        request_id: request.request_id.clone(),
        algorithm,
        items,
        refused,
        header,
        kind: request.kind,
        workstation: request.workstation.clone(),
    })
}

/// A card operation is one digest for one slot, and its screen names that slot: a request with
/// several items (which could mix `9a` and `9c` under a header naming only one) or none is
/// refused whole.
fn check_card_request(request: &PendingSigningRequest) -> Result<(), ReviewError> {
    let count = request.items.len();
    if count == 1 {
        return Ok(());
    }
    let mut slots: Vec<&str> = request
        .items
        .iter()
        .map(|item| match item.slot.as_deref() {
            Some("9a") => "9a",
            Some("9c") => "9c",
            Some(_) => "an unknown slot",
            None => "no slot",
        })
        .collect();
    slots.sort_unstable();
    slots.dedup();
    let reason = if count == 0 {
        "a card operation is one digest for one slot; this request has no items".to_owned()
    } else if slots.len() > 1 {
        format!(
            "a card operation is one digest for one slot; this request has {count} items with mixed slots ({})",
            slots.join(", ")
        )
    } else {
        format!("a card operation is one digest for one slot; this request has {count} items")
    };
    Err(ReviewError {
        request_id: request.request_id.clone(),
        reason,
    })
}

fn review_card(item: &SigningItem) -> Result<ReviewedItem, String> {
    let slot = item
        .slot
        .as_deref()
        .ok_or("the card operation names no slot")?;
    let input = B64
        .decode(item.payload.as_deref().unwrap_or("").trim())
        .map_err(|_| "the card operation's input is not base64".to_owned())?;
    if !matches!(slot, "9a" | "9c") || input.len() != 32 {
        return Err(format!(
            "slot {slot} signs a 32-byte digest, not {} bytes",
            input.len()
        ));
    }
    Ok(ReviewedItem {
        id: item.id.clone(),
        lines: vec![
            item.description
                .clone()
                .unwrap_or_else(|| format!("slot {slot}")),
            format!("fingerprint {}", short_fingerprint(&input)),
        ],
        verified: false,
        signed_info: input,
        card_slot: Some(slot.to_owned()),
    })
}

fn review_prescription(
    item: &SigningItem,
    algorithm: SignatureAlgorithm,
) -> Result<ReviewedItem, String> {
    let fragments = item
        .fragments
        .as_deref()
        .ok_or("the item has no prescription fragments")?;
    // The screen and the bytes to sign come from the same code `vsc eps preview` uses.
    let screen = vsc_eps::screen::prescription(fragments, algorithm)?;
    Ok(ReviewedItem {
        id: item.id.clone(),
        lines: screen.lines,
        verified: true,
        signed_info: screen.signed_info.into_bytes(),
        card_slot: None,
    })
}

fn review_prepared(
    item: &SigningItem,
    algorithm: SignatureAlgorithm,
) -> Result<ReviewedItem, String> {
    let payload = item.payload.as_deref().ok_or("the item has no payload")?;
    let bytes = B64
        .decode(payload.trim())
        .map_err(|_| "the payload is not base64".to_owned())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "the payload is not UTF-8".to_owned())?;
    vsc_eps::sign::check_signed_info(text, algorithm).map_err(|e| e.to_string())?;
    let description = item
        .description
        .as_deref()
        .unwrap_or("(no description given)");
    Ok(ReviewedItem {
        id: item.id.clone(),
        lines: vec![
            format!("UNVERIFIED (from the prescribing system): {description}"),
            format!("signature fingerprint {}", short_fingerprint(&bytes)),
        ],
        verified: false,
        signed_info: bytes,
        card_slot: None,
    })
}

impl SigningReview {
    /// Everything the approval screen shows, one line each (made [`displayable`]).
    pub fn display_lines(&self) -> Vec<String> {
        let items: Vec<vsc_eps::screen::ScreenItem<'_>> = self
            .items
            .iter()
            .map(|item| vsc_eps::screen::ScreenItem {
                id: &item.id,
                lines: &item.lines,
            })
            .collect();
        let refused: Vec<(&str, &str)> = self
            .refused
            .iter()
            .map(|r| (r.id.as_str(), r.reason.as_str()))
            .collect();
        vsc_eps::screen::render(&self.header, &items, &refused)
    }

    /// The review as the web app receives it (see [`ReviewView`]).
    pub fn view(&self) -> ReviewView {
        ReviewView {
            request_id: self.request_id.clone(),
            kind: self.kind.as_str().to_owned(),
            workstation: displayable(&self.workstation),
            algorithm: self.algorithm.to_string(),
            header: self.header.iter().map(|l| displayable(l)).collect(),
            display_lines: self.display_lines(),
            items: self
                .items
                .iter()
                .map(|i| ReviewItemView {
                    id: i.id.clone(),
                    lines: i.lines.iter().map(|l| displayable(l)).collect(),
                    verified: i.verified,
                    to_sign: B64.encode(&i.signed_info),
                    slot: i.card_slot.clone(),
                })
                .collect(),
            refused: self
                .refused
                .iter()
                .map(|r| RefusedView {
                    id: r.id.clone(),
                    reason: displayable(&r.reason),
                })
                .collect(),
        }
    }
}

/// A review for a front end that signs itself (the web app with WebCrypto): every line to
/// show, and per item the exact bytes to sign.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewView {
    /// The request.
    pub request_id: String,
    /// `prescriptions`, `prepared` or `card`.
    pub kind: String,
    /// The workstation that asked (made [`displayable`]).
    pub workstation: String,
    /// `RS1` (RSA with SHA-1) or `RS256` (RSA with SHA-256); card operations: per slot, ECDSA
    /// P-256 over the digest.
    pub algorithm: String,
    /// Header lines.
    pub header: Vec<String>,
    /// The whole screen, one line each.
    pub display_lines: Vec<String>,
    /// What can be signed.
    pub items: Vec<ReviewItemView>,
    /// What will not be signed, and why.
    pub refused: Vec<RefusedView>,
}

/// One signable item of a [`ReviewView`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewItemView {
    /// The caller's id.
    pub id: String,
    /// Its lines.
    pub lines: Vec<String>,
    /// Derived from the signed bytes (true) or only the caller's description (false).
    pub verified: bool,
    /// The bytes to sign, standard base64.
    pub to_sign: String,
    /// For a card operation, `9a` or `9c`.
    pub slot: Option<String>,
}

/// One refused item of a [`ReviewView`].
#[derive(Debug, Clone, Serialize)]
pub struct RefusedView {
    /// The caller's id.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// The SHA-1 digest an EPS `rsa-sha1` signature is made over (the signer signs the digest:
/// WebCrypto and aws-lc-rs cannot sign SHA-1 over a message).
pub fn sha1_digest(bytes: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn hidden_and_reordering_characters_are_shown_as_replacements() {
        assert_eq!(displayable("5\u{202E}gm 05"), "5\u{FFFD}gm 05");
        assert_eq!(short_fingerprint(b"abc"), "ba78 16bf 8f01 cfea");
    }

    fn card_request(items: serde_json::Value) -> PendingSigningRequest {
        serde_json::from_value(serde_json::json!({
            "request_id": "req-1",
            "uid": "555000000001",
            "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-01T00:05:00Z",
            "kind": "card",
            "algorithm": "",
            "workstation": "WARD-7",
            "role": "",
            "items": items
        }))
        .expect("request")
    }

    #[test]
    fn card_operation_review() {
        let request = card_request(serde_json::json!([
            {"id": "a", "slot": "9a", "payload": B64.encode([7u8; 32]), "description": "Sign in to Windows"}
        ]));
        let review = review(&request).expect("review");
        assert_eq!(review.items.len(), 1);
        assert_eq!(review.items[0].card_slot(), Some("9a"));
        assert_eq!(review.items[0].to_sign(), &[7u8; 32]);
        assert!(review.refused.is_empty());
        assert!(review.header[0].contains("(9a)"), "{:?}", review.header);
        let view = review.view();
        assert_eq!(view.items[0].to_sign, B64.encode([7u8; 32]));
        assert_eq!(view.kind, "card");
        assert_eq!(view.workstation, "WARD-7");
        assert_eq!(view.items[0].slot.as_deref(), Some("9a"));
        assert!(
            view.display_lines
                .iter()
                .any(|l| l.contains("Sign in to Windows"))
        );
        // An input that is not a 32-byte digest is refused, and nothing is left to sign.
        let request = card_request(serde_json::json!([
            {"id": "b", "slot": "9a", "payload": B64.encode([7u8; 31])}
        ]));
        let refused = super::review(&request).expect("review");
        assert!(refused.items.is_empty());
        assert_eq!(refused.refused.len(), 1);
        assert_eq!(refused.refused[0].id, "b");
    }

    /// The card screen names one slot, so a card request is one item: several items (whatever
    /// their slots) or none are refused whole, with the reason.
    #[test]
    fn card_requests_with_several_items_or_mixed_slots_are_refused() {
        let digest = B64.encode([7u8; 32]);
        let mixed = card_request(serde_json::json!([
            {"id": "a", "slot": "9a", "payload": digest, "description": "Sign in to Windows"},
            {"id": "b", "slot": "9c", "payload": digest}
        ]));
        let error = review(&mixed).expect_err("mixed slots are refused");
        assert_eq!(error.request_id, "req-1");
        assert!(error.reason.contains("2 items"), "{}", error.reason);
        assert!(
            error.reason.contains("mixed slots (9a, 9c)"),
            "{}",
            error.reason
        );
        let same = card_request(serde_json::json!([
            {"id": "a", "slot": "9c", "payload": digest},
            {"id": "b", "slot": "9c", "payload": digest}
        ]));
        let error = review(&same).expect_err("several items are refused");
        assert!(error.reason.contains("2 items"), "{}", error.reason);
        assert!(!error.reason.contains("mixed"), "{}", error.reason);
        // A slot the request makes up is not echoed.
        let odd = card_request(serde_json::json!([
            {"id": "a", "slot": "9a", "payload": digest},
            {"id": "b", "slot": "\u{202E}82", "payload": digest}
        ]));
        let error = review(&odd).expect_err("refused");
        assert!(
            error.reason.contains("mixed slots (9a, an unknown slot)"),
            "{}",
            error.reason
        );
        let none = card_request(serde_json::json!([]));
        let error = review(&none).expect_err("no items is refused");
        assert!(error.reason.contains("no items"), "{}", error.reason);
    }
}
