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

use aws_lc_rs::digest;
use vsc_eps::sign::SignatureAlgorithm;
use vsc_proto::signing::{
    CompleteSigningRequest, FailedSignature, ItemSignature, PendingSigningRequest, SigningKind,
};

use crate::AuthenticatorError;
use crate::keystore::{Keystore, KeystoreError, PivKey};

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
}

pub use vsc_eps::screen::{displayable, short_fingerprint};

/// Checks a signing request and works out, for each item, what to show and what to sign.
pub fn review(request: &PendingSigningRequest) -> Result<SigningReview, AuthenticatorError> {
    let algorithm: SignatureAlgorithm = if request.kind == SigningKind::Card {
        // Card operations carry their own per-slot algorithm; this one is not used.
        SignatureAlgorithm::RsaSha256
    } else {
        request
            .algorithm
            .parse()
            .map_err(|_| AuthenticatorError::BadSigningRequest {
                request_id: request.request_id.clone(),
                reason: format!("unknown algorithm '{}'", request.algorithm),
            })?
    };
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
    })
}

fn review_card(item: &vsc_proto::signing::SigningItem) -> Result<ReviewedItem, String> {
    use base64::Engine as _;
    let slot = item
        .slot
        .as_deref()
        .ok_or("the card operation names no slot")?;
    let input = base64::engine::general_purpose::STANDARD
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
    item: &vsc_proto::signing::SigningItem,
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
    item: &vsc_proto::signing::SigningItem,
    algorithm: SignatureAlgorithm,
) -> Result<ReviewedItem, String> {
    use base64::Engine as _;
    let payload = item.payload.as_deref().ok_or("the item has no payload")?;
    let bytes = base64::engine::general_purpose::STANDARD
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

    /// Signs every reviewed item separately with the card's signing key (after the passcode
    /// has opened `keys`).
    pub fn sign(&self, keys: &dyn Keystore) -> Result<CompleteSigningRequest, AuthenticatorError> {
        let mut signatures = Vec::with_capacity(self.items.len());
        for item in &self.items {
            use base64::Engine as _;
            if let Some(slot) = &item.card_slot {
                let key = if slot == "9c" {
                    PivKey::Signature
                } else {
                    PivKey::Authentication
                };
                let digest: &[u8; 32] = item.signed_info.as_slice().try_into().map_err(|_| {
                    KeystoreError::Crypto("a card operation signs a 32-byte digest")
                })?;
                let result = keys.sign_piv_digest(key, digest)?;
                signatures.push(ItemSignature {
                    id: item.id.clone(),
                    signature: base64::engine::general_purpose::STANDARD.encode(result),
                });
                continue;
            }
            let signature = match self.algorithm {
                // aws-lc-rs signs SHA-1 only through the FFI crate (a digest made here).
                SignatureAlgorithm::RsaSha1 => keys.sign_rsa_sha1_digest(
                    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &item.signed_info).as_ref(),
                )?,
                SignatureAlgorithm::RsaSha256 => keys.sign_rsa_sha256(&item.signed_info)?,
            };
            signatures.push(ItemSignature {
                id: item.id.clone(),
                signature: base64::engine::general_purpose::STANDARD.encode(signature),
            });
        }
        Ok(CompleteSigningRequest {
            signatures,
            refused: self.refused.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_reordering_characters_are_shown_as_replacements() {
        assert_eq!(displayable("5\u{202E}gm 05"), "5\u{FFFD}gm 05");
        assert_eq!(short_fingerprint(b"abc"), "ba78 16bf 8f01 cfea");
    }
}
