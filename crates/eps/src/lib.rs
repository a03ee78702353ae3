//! EPS R2 (NHS Electronic Prescription Service) prescription signatures.
//!
//! * [`xml`]: the one XML reader (roxmltree, no DTD, at most 256 nested
//!   elements), and an iterative tree walk.
//! * [`c14n`]: exclusive XML canonicalisation over `roxmltree`.
//! * [`fragments`]: the `FragmentsToBeHashed` document EPS computes from a
//!   `ParentPrescription` (its parts found strictly: no decoys), and its
//!   canonical bytes and digest.
//! * [`sign`]: the signing side — preparing the digest and `SignedInfo`
//!   (on the server, or on the phone from the fragments alone), assembling
//!   the XML-DSig `Signature` and putting it into the prescription.
//! * [`summary`]: what the phone shows the prescriber, derived from the
//!   fragments it signs.
//! * [`screen`]: the phone's approval screen for prescriptions, shared by
//!   the phone and `vsc eps preview`.
//! * [`verify`]: EPS's signature checks, in EPS's order, as a report
//!   (including CRL-based revocation and chain building to a trusted CA);
//!   behind the default feature `verify`, which the phone app's WebAssembly
//!   core turns off (it needs aws-lc-rs and the PKI crates).
#![forbid(unsafe_code)]

pub mod c14n;
pub mod fragments;
pub mod screen;
pub mod sign;
pub mod summary;
#[cfg(feature = "verify")]
pub mod verify;
pub mod xml;

/// Namespace of HL7 v3 messages.
pub const HL7_NS: &str = "urn:hl7-org:v3";
/// Namespace of XML digital signatures.
pub const XMLDSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
