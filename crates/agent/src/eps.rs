//! Prescription signing through the agent: the workstation side of EPS signing with the phone.
//!
//! * [`Agent::sign_prescriptions`]: whole ParentPrescriptions in (alone or inside a
//!   `PORX_IN020101SM31` message), the same documents out with the `Signature` in
//!   `author/signatureText`. The agent extracts each prescription's signature fragments exactly
//!   as EPS does and sends only those; the phone builds and shows what it signs from them.
//! * [`prepare_prescriptions`] and [`Agent::sign_prepared`]: the pair in the shape of the NHS
//!   Signing Service, for prescribing systems that build their own SignedInfo: payloads are
//!   base64 canonical SignedInfo, signatures come back per id with the certificate.
//!
//! A batch is one approval on the phone; each prescription is signed separately, and each
//! signed document is verified here (signature and digest, EPS's checks) before it is
//! returned.
//!
//! Every document is read through [`vsc_eps::xml::parse`] (elements nested at most 256 deep) and
//! copied into fragments by `vsc_eps`'s iterative copier, so a hostile prescription of tens of
//! thousands of nested elements is refused (`400 prescription_invalid`, "nested more than 256
//! levels deep") instead of exhausting the agent's stack; decoys (a second `recordTarget`, an
//! element outside the HL7 namespace) are refused the same way.

use std::time::Duration;
use vsc_proto::signing::state as signing_state;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use vsc_eps::sign::SignatureAlgorithm;
use vsc_proto::signing::{
    CreateSigningRequest, FailedSignature, SigningItem, SigningKind, SigningOutcome,
};

use crate::agent::Agent;
use crate::{AgentError, Result};

/// How long one poll for the phone's answer waits on the server.
const POLL_WAIT_SECONDS: u64 = 25;

/// A prescription to sign.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrescriptionToSign {
    /// The caller's id for it (1 to 64 printable characters, unique in the batch).
    pub id: String,
    /// The HL7v3 XML: a ParentPrescription, alone or inside a message.
    pub xml: String,
}

/// A signed prescription.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedPrescription {
    /// The caller's id.
    pub id: String,
    /// The document with its signature in `author/signatureText`.
    pub xml: String,
}

/// The answer to a batch of prescriptions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedBatch {
    /// The signed documents.
    pub signed: Vec<SignedPrescription>,
    /// Those not signed, and why.
    pub failed_signatures: Vec<FailedSignature>,
    /// Base64 DER of the signing certificate.
    pub certificate: String,
}

/// A prepared payload, as the NHS Signing Service takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreparedPayload {
    /// The caller's id.
    pub id: String,
    /// Base64 of the canonical SignedInfo.
    pub payload: String,
    /// Base64 of the fragments' digest (DigestValue).
    pub digest: String,
    /// What the phone would show for it, were it signed as a prescription.
    pub summary: Vec<String>,
}

/// Sets the prescription's `author/time` to `at` (HL7 `YYYYMMDDhhmmss`, UTC), as a prescribing
/// system does at the moment the prescriber signs: EPS checks that the certificate was valid
/// at `author/time`. The rest of the document is kept byte for byte.
pub fn stamp_author_time(
    xml: &str,
    at: time::OffsetDateTime,
) -> std::result::Result<String, String> {
    let doc = vsc_eps::xml::parse(xml).map_err(|e| format!("cannot read the XML: {e}"))?;
    let parent = vsc_eps::fragments::find_parent_prescription(&doc).map_err(|e| e.to_string())?;
    let author = vsc_eps::fragments::author(parent).map_err(|e| e.to_string())?;
    let value = author
        .children()
        .find(|n| n.has_tag_name((vsc_eps::HL7_NS, "time")))
        .and_then(|t| {
            t.attributes()
                .find(|a| a.name() == "value" && a.namespace().is_none())
        })
        .ok_or("the prescription has no author/time/@value")?;
    let at = at.to_offset(time::UtcOffset::UTC);
    let stamp = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let range = value.range_value();
    let mut out = String::with_capacity(xml.len());
    out.push_str(xml.get(..range.start).ok_or("bad range")?);
    out.push_str(&stamp);
    out.push_str(xml.get(range.end..).ok_or("bad range")?);
    Ok(out)
}

/// [`stamp_author_time`] for each prescription; the first one that cannot be stamped is the
/// error.
pub fn stamp_all(prescriptions: &mut [PrescriptionToSign], at: time::OffsetDateTime) -> Result<()> {
    for p in prescriptions {
        p.xml = stamp_author_time(&p.xml, at).map_err(|reason| AgentError::Prescription {
            id: p.id.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// Prepares SignedInfo for each prescription without signing (no phone, no server).
pub fn prepare_prescriptions(
    algorithm: SignatureAlgorithm,
    prescriptions: &[PrescriptionToSign],
) -> Result<Vec<PreparedPayload>> {
    prescriptions
        .iter()
        .map(|p| {
            let prepared = vsc_eps::sign::prepare(&p.xml, algorithm).map_err(|e| {
                AgentError::Prescription {
                    id: p.id.clone(),
                    reason: e.to_string(),
                }
            })?;
            let summary = vsc_eps::summary::summarize_prescription(&p.xml)
                .map(|s| s.display_lines())
                .unwrap_or_default();
            Ok(PreparedPayload {
                id: p.id.clone(),
                payload: B64.encode(prepared.signed_info.as_bytes()),
                digest: B64.encode(&prepared.digest),
                summary,
            })
        })
        .collect()
}

impl Agent {
    /// Signs prescriptions with the phone (one approval for the batch) and returns them with
    /// their signatures in place.
    /// With `stamp_author_time`, each prescription's `author/time` is first set to now (see
    /// [`stamp_author_time`]).
    pub async fn sign_prescriptions(
        &self,
        algorithm: SignatureAlgorithm,
        mut prescriptions: Vec<PrescriptionToSign>,
        stamp_author_time: bool,
    ) -> Result<SignedBatch> {
        if stamp_author_time {
            stamp_all(&mut prescriptions, time::OffsetDateTime::now_utc())?;
        }
        let mut prepared = Vec::with_capacity(prescriptions.len());
        let mut items = Vec::with_capacity(prescriptions.len());
        for p in &prescriptions {
            let prep = vsc_eps::sign::prepare(&p.xml, algorithm).map_err(|e| {
                AgentError::Prescription {
                    id: p.id.clone(),
                    reason: e.to_string(),
                }
            })?;
            items.push(SigningItem {
                id: p.id.clone(),
                fragments: Some(prep.canonical_fragments.clone()),
                payload: None,
                description: None,
                slot: None,
            });
            prepared.push(prep);
        }
        let outcome = self
            .run_signing(CreateSigningRequest {
                kind: SigningKind::Prescriptions,
                algorithm: algorithm.signing_service_code().to_owned(),
                items,
            })
            .await?;
        let certificate_b64 = outcome.certificate.clone().unwrap_or_default();
        let certificate = B64
            .decode(&certificate_b64)
            .map_err(|_| AgentError::UnexpectedState("certificate not base64".into()))?;
        let mut signed = Vec::new();
        let mut failed = outcome.failed_signatures.clone();
        for (p, prep) in prescriptions.iter().zip(&prepared) {
            let Some(sig) = outcome.signatures.iter().find(|s| s.id == p.id) else {
                if !failed.iter().any(|f| f.id == p.id) {
                    failed.push(FailedSignature {
                        id: p.id.clone(),
                        reason: "no signature came back".into(),
                    });
                }
                continue;
            };
            match assemble(p, prep, &sig.signature, &certificate) {
                Ok(xml) => signed.push(SignedPrescription {
                    id: p.id.clone(),
                    xml,
                }),
                Err(reason) => failed.push(FailedSignature {
                    id: p.id.clone(),
                    reason,
                }),
            }
        }
        Ok(SignedBatch {
            signed,
            failed_signatures: failed,
            certificate: certificate_b64,
        })
    }

    /// Signs SignedInfo payloads prepared by the caller. The phone shows each `description`
    /// marked as unverified, because it cannot see the prescription behind a prepared payload.
    pub async fn sign_prepared(
        &self,
        algorithm: SignatureAlgorithm,
        payloads: Vec<SigningItem>,
    ) -> Result<SigningOutcome> {
        let items = payloads
            .into_iter()
            .map(|p| SigningItem {
                id: p.id,
                fragments: None,
                payload: p.payload,
                description: p.description,
                slot: None,
            })
            .collect();
        self.run_signing(CreateSigningRequest {
            kind: SigningKind::Prepared,
            algorithm: algorithm.signing_service_code().to_owned(),
            items,
        })
        .await
    }

    /// Opens the request in the current session and waits for the phone's answer.
    async fn run_signing(&self, request: CreateSigningRequest) -> Result<SigningOutcome> {
        // Like get-ticket: signs the default person in first when nobody is (refused while
        // the workstation is locked).
        self.get_ticket().await?;
        let ticket = self.ticket().ok_or(AgentError::NotSignedIn)?;
        let link = self.server();
        let created = link.create_signing(&ticket, &request).await?;
        let give_up = tokio::time::Instant::now()
            + Duration::from_secs(
                u64::try_from(
                    (created.expires_at - time::OffsetDateTime::now_utc()).whole_seconds(),
                )
                .unwrap_or(0)
                    + 30,
            );
        loop {
            let outcome = link
                .signing_outcome(&ticket, &created.request_id, POLL_WAIT_SECONDS)
                .await?;
            match outcome.state.as_str() {
                signing_state::PENDING if tokio::time::Instant::now() < give_up => continue,
                signing_state::PENDING | signing_state::EXPIRED => {
                    return Err(AgentError::SigningExpired);
                }
                signing_state::COMPLETED => return Ok(outcome),
                signing_state::DECLINED => return Err(AgentError::SigningDeclined),
                other => return Err(AgentError::UnexpectedState(other.to_owned())),
            }
        }
    }
}

/// Puts the signature into the prescription and checks the result as EPS would (signature and
/// digest; the trust and revocation checks belong to the receiver).
fn assemble(
    prescription: &PrescriptionToSign,
    prepared: &vsc_eps::sign::PreparedPrescription,
    signature_b64: &str,
    certificate: &[u8],
) -> std::result::Result<String, String> {
    let signature = B64
        .decode(signature_b64.trim())
        .map_err(|_| "the signature is not base64".to_owned())?;
    let element = vsc_eps::sign::signature_element(&prepared.signed_info, &signature, certificate);
    let xml = vsc_eps::sign::insert_signature(&prescription.xml, &element)
        .map_err(|e| format!("the signature could not be placed: {e}"))?;
    let report =
        vsc_eps::verify::verify_prescription(&xml, &vsc_eps::verify::VerifyOptions::default())
            .map_err(|e| format!("the signed document does not verify: {e}"))?;
    if let Some(failure) = report.first_failure() {
        let hint = if failure.check == vsc_eps::verify::Check::ValidAtSigningTime {
            "; the prescription's author/time must be the signing time (ask for it to be stamped)"
        } else {
            ""
        };
        return Err(format!(
            "the signed document fails EPS's {:?} check: {}{hint}",
            failure.check, failure.message
        ));
    }
    Ok(xml)
}
