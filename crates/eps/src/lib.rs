//! EPS R2 (NHS Electronic Prescription Service) prescription signatures.
//!
//! * [`c14n`]: exclusive XML canonicalisation over `roxmltree`.
//! * [`fragments`]: the `FragmentsToBeHashed` document EPS computes from a
//!   `ParentPrescription`, and its canonical bytes and digest.
//! * [`sign`]: the signing side — preparing the digest and `SignedInfo`
//!   (on the server, or on the phone from the fragments alone), assembling
//!   the XML-DSig `Signature` and putting it into the prescription.
//! * [`summary`]: what the phone shows the prescriber, derived from the
//!   fragments it signs.
//! * [`verify`]: EPS's signature checks, in EPS's order, as a report
//!   (including CRL-based revocation and chain building to a trusted CA).
#![forbid(unsafe_code)]

pub mod c14n;
pub mod fragments;
pub mod sign;
pub mod summary;
pub mod verify;

/// Namespace of HL7 v3 messages.
pub const HL7_NS: &str = "urn:hl7-org:v3";
/// Namespace of XML digital signatures.
pub const XMLDSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
