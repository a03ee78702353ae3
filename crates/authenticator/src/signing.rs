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
//! The review itself (checks, screen, bytes to sign) is [`vsc_phone_core::review`], the same
//! code the web app runs in WebAssembly; this module re-exports it and signs with the keystore.

use vsc_eps::sign::SignatureAlgorithm;
use vsc_proto::signing::{CompleteSigningRequest, ItemSignature, PendingSigningRequest};

use crate::AuthenticatorError;
use crate::keystore::{Keystore, KeystoreError, PivKey};

pub use vsc_phone_core::review::{ReviewedItem, SigningReview, displayable, short_fingerprint};

/// Checks a signing request and works out, for each item, what to show and what to sign.
pub fn review(request: &PendingSigningRequest) -> Result<SigningReview, AuthenticatorError> {
    Ok(vsc_phone_core::review::review(request)?)
}

/// Signing a reviewed request with the native keystore (the review itself is portable and knows
/// no keystore, hence a trait here rather than a method there).
pub trait SignReview {
    /// Signs every reviewed item separately with the card's signing key (after the passcode
    /// has opened `keys`).
    fn sign(&self, keys: &dyn Keystore) -> Result<CompleteSigningRequest, AuthenticatorError>;
}

impl SignReview for SigningReview {
    fn sign(&self, keys: &dyn Keystore) -> Result<CompleteSigningRequest, AuthenticatorError> {
        let mut signatures = Vec::with_capacity(self.items.len());
        for item in &self.items {
            use base64::Engine as _;
            if let Some(slot) = item.card_slot() {
                let key = if slot == "9c" {
                    PivKey::Signature
                } else {
                    PivKey::Authentication
                };
                let digest: &[u8; 32] = item.to_sign().try_into().map_err(|_| {
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
                SignatureAlgorithm::RsaSha1 => {
                    keys.sign_rsa_sha1_digest(&vsc_phone_core::review::sha1_digest(item.to_sign()))?
                }
                SignatureAlgorithm::RsaSha256 => keys.sign_rsa_sha256(item.to_sign())?,
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
