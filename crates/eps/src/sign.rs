//! The signing side of EPS R2 prescription signatures.
//!
//! Signing a prescription takes four steps, split between the server (which
//! holds the prescription) and the phone (which holds the key):
//!
//! 1. Server: [`prepare`] builds the canonical `FragmentsToBeHashed` document
//!    of the prescription (see [`crate::fragments`]), its digest and the
//!    canonical `SignedInfo` that carries that digest.
//! 2. Phone: [`prepare_from_fragments`] re-canonicalises the fragments
//!    document it was sent and hashes it itself, so that what it signs is
//!    derived from the very bytes it shows the prescriber (see
//!    [`crate::summary::summarize_fragments`]); it then signs the returned
//!    `SignedInfo` bytes with RSA PKCS#1 v1.5 ([`SignatureAlgorithm`]).
//! 3. Server: [`signature_element`] wraps `SignedInfo`, the signature value
//!    and the signer's certificate into an XML-DSig `Signature`.
//! 4. Server: [`insert_signature`] puts that `Signature` into the
//!    prescription's `author/signatureText`, leaving every other byte of the
//!    document as it was ([`strip_signature`] does the reverse).
//!
//! The `SignedInfo` built here is exactly what EPS builds: exclusive C14N for
//! both the canonicalisation method and the single `Reference`'s transform,
//! no `Reference/@URI`, and `DigestValue` in base64.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use roxmltree::Node;

use crate::XMLDSIG_NS;
use crate::c14n::element_qname;
use crate::fragments::{self, DigestAlgorithm, FragmentsError, child};
use crate::xml::{self, XmlError};

/// The exclusive XML canonicalisation algorithm URI (without comments).
pub const EXC_C14N_URI: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// Errors preparing or assembling a signed prescription.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The input is not well-formed XML, or nests too deep.
    #[error("XML parse error: {0}")]
    Xml(#[from] XmlError),
    /// The prescription (or fragments document) lacks something EPS needs.
    #[error(transparent)]
    Prescription(#[from] FragmentsError),
    /// The document given as a fragments document has another root element.
    #[error("not a FragmentsToBeHashed document (root element is {0:?})")]
    NotFragmentsDocument(String),
    /// The XML given as a signature is not one XML-DSig `Signature` element.
    #[error("not an XML-DSig Signature element: {0}")]
    InvalidSignatureXml(String),
    /// A signature algorithm name that is not one of EPS's.
    #[error("unknown signature algorithm {0:?} (expected RS1, RS256, sha1 or sha256)")]
    UnknownAlgorithm(String),
    /// A prepared payload is not an XML-DSig SignedInfo for the agreed algorithm.
    #[error("not an XML-DSig SignedInfo for {algorithm}: {reason}")]
    NotSignedInfo {
        /// The algorithm agreed for the request.
        algorithm: SignatureAlgorithm,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Checks that a prepared payload is an XML-DSig `SignedInfo` whose `SignatureMethod` is
/// `algorithm`: what may be signed without seeing the prescription behind it (never a CSR, a
/// TLS handshake or any other blob).
pub fn check_signed_info(xml: &str, algorithm: SignatureAlgorithm) -> Result<(), SignError> {
    let doc = xml::parse(xml)?;
    let root = doc.root_element();
    if !root.has_tag_name((XMLDSIG_NS, "SignedInfo")) {
        return Err(SignError::NotSignedInfo {
            algorithm,
            reason: "the root element is not an XML-DSig SignedInfo",
        });
    }
    let method = root
        .children()
        .find(|n| n.has_tag_name((XMLDSIG_NS, "SignatureMethod")))
        .and_then(|n| n.attribute("Algorithm"));
    if method != Some(algorithm.signature_method_uri()) {
        return Err(SignError::NotSignedInfo {
            algorithm,
            reason: "its SignatureMethod is another algorithm",
        });
    }
    Ok(())
}

/// The signature algorithms EPS accepts: RSA PKCS#1 v1.5 with SHA-1 or
/// SHA-256 (the same hash is used for the fragments digest).
///
/// Serialised as the NHS Signing Service's algorithm codes, `"RS1"` and
/// `"RS256"`; parsed (via [`FromStr`]) from those or from `"sha1"` /
/// `"sha256"`, case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-1 (`xmldsig#rsa-sha1`); SHA-1 fragment digest.
    #[serde(rename = "RS1")]
    RsaSha1,
    /// RSA PKCS#1 v1.5 with SHA-256 (`xmldsig-more#rsa-sha256`); SHA-256
    /// fragment digest.
    #[serde(rename = "RS256")]
    RsaSha256,
}

impl SignatureAlgorithm {
    /// The XML-DSig `SignatureMethod` URI.
    pub fn signature_method_uri(self) -> &'static str {
        match self {
            Self::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        }
    }

    /// The algorithm named by an XML-DSig `SignatureMethod` URI, if EPS
    /// accepts it.
    pub fn from_signature_method_uri(uri: &str) -> Option<Self> {
        [Self::RsaSha1, Self::RsaSha256]
            .into_iter()
            .find(|a| a.signature_method_uri() == uri)
    }

    /// The digest algorithm used for the fragments (and inside the RSA
    /// signature).
    pub fn digest_algorithm(self) -> DigestAlgorithm {
        match self {
            Self::RsaSha1 => DigestAlgorithm::Sha1,
            Self::RsaSha256 => DigestAlgorithm::Sha256,
        }
    }

    /// The algorithm for an NHS Signing Service code (`"RS1"` or `"RS256"`,
    /// exactly).
    pub fn from_signing_service_code(code: &str) -> Option<Self> {
        match code {
            "RS1" => Some(Self::RsaSha1),
            "RS256" => Some(Self::RsaSha256),
            _ => None,
        }
    }

    /// The NHS Signing Service code: `"RS1"` or `"RS256"`.
    pub fn signing_service_code(self) -> &'static str {
        match self {
            Self::RsaSha1 => "RS1",
            Self::RsaSha256 => "RS256",
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    /// Writes the signing service code (`RS1`, `RS256`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.signing_service_code())
    }
}

impl FromStr for SignatureAlgorithm {
    type Err = SignError;

    /// Accepts `RS1`, `RS256`, `sha1` and `sha256`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rs1" | "sha1" => Ok(Self::RsaSha1),
            "rs256" | "sha256" => Ok(Self::RsaSha256),
            _ => Err(SignError::UnknownAlgorithm(s.to_owned())),
        }
    }
}

/// The canonical (exclusive C14N) `SignedInfo` carrying `digest`, exactly as
/// EPS builds it. These are the bytes the RSA signature is computed over.
///
/// It starts with `<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#">`.
pub fn signed_info(algorithm: SignatureAlgorithm, digest: &[u8]) -> String {
    let digest_value = base64::engine::general_purpose::STANDARD.encode(digest);
    format!(
        "<SignedInfo xmlns=\"{XMLDSIG_NS}\">\
         <CanonicalizationMethod Algorithm=\"{EXC_C14N_URI}\"></CanonicalizationMethod>\
         <SignatureMethod Algorithm=\"{}\"></SignatureMethod>\
         <Reference><Transforms><Transform Algorithm=\"{EXC_C14N_URI}\"></Transform></Transforms>\
         <DigestMethod Algorithm=\"{}\"></DigestMethod>\
         <DigestValue>{digest_value}</DigestValue></Reference></SignedInfo>",
        algorithm.signature_method_uri(),
        algorithm.digest_algorithm().uri(),
    )
}

/// What the server computes from a prescription before it can be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPrescription {
    /// The `pertinentPrescription`'s first `id/@root` (the prescription's
    /// long-form id, which is one of the signed fragments).
    pub prescription_id: String,
    /// The canonical `FragmentsToBeHashed` document (what the phone is sent).
    pub canonical_fragments: String,
    /// The digest of `canonical_fragments` with the algorithm's hash.
    pub digest: Vec<u8>,
    /// The canonical `SignedInfo` carrying `digest` (what is signed).
    pub signed_info: String,
    /// The signature algorithm this was prepared for.
    pub algorithm: SignatureAlgorithm,
}

/// Prepare a prescription document (a `ParentPrescription`, alone or inside
/// a message such as `PORX_IN020101SM31`) for signing. Any existing
/// signature is irrelevant: `signatureText` is never part of the fragments.
pub fn prepare(
    xml: &str,
    algorithm: SignatureAlgorithm,
) -> Result<PreparedPrescription, SignError> {
    let doc = xml::parse(xml)?;
    let parent = fragments::find_parent_prescription(&doc)?;
    let prescription = fragments::pertinent_prescription(parent)?;
    let prescription_id = child(prescription, "id")
        .and_then(|id| id.attribute("root"))
        .ok_or(FragmentsError::Missing("pertinentPrescription/id/@root"))?
        .to_owned();
    let canonical_fragments = fragments::canonical_fragments(parent)?;
    let digest = algorithm
        .digest_algorithm()
        .digest(canonical_fragments.as_bytes());
    let signed_info = signed_info(algorithm, &digest);
    Ok(PreparedPrescription {
        prescription_id,
        canonical_fragments,
        digest,
        signed_info,
        algorithm,
    })
}

/// What the phone runs on the fragments document it was sent (canonical or
/// not): re-canonicalise it, hash it, and build the canonical `SignedInfo`.
/// Returns `(digest, signed_info)`; the phone signs `signed_info`'s bytes.
///
/// This only checks that the root element is `FragmentsToBeHashed`; the
/// phone shows [`crate::summary::summarize_fragments`] of the same text
/// first, which refuses a document without EPS's fragment structure.
pub fn prepare_from_fragments(
    fragments_xml: &str,
    algorithm: SignatureAlgorithm,
) -> Result<(Vec<u8>, String), SignError> {
    let doc = xml::parse(fragments_xml)?;
    let root = doc.root_element();
    if root.tag_name().name() != "FragmentsToBeHashed" || root.tag_name().namespace().is_some() {
        return Err(SignError::NotFragmentsDocument(
            element_qname(root).to_owned(),
        ));
    }
    let canonical = fragments::canonicalize_fragments_document(fragments_xml)?;
    let digest = algorithm.digest_algorithm().digest(canonical.as_bytes());
    let signed_info = signed_info(algorithm, &digest);
    Ok((digest, signed_info))
}

/// The XML-DSig `Signature` element EPS expects: `SignedInfo` (as given, but
/// without repeating the xmldsig namespace declaration the `Signature`
/// carries), `SignatureValue` in base64, and exactly one base64 DER
/// `X509Certificate`.
///
/// `signed_info` is normally the output of [`signed_info`]; any other
/// well-formed `SignedInfo` is embedded unchanged.
pub fn signature_element(
    signed_info: &str,
    signature_value: &[u8],
    certificate_der: &[u8],
) -> String {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let declared = format!("<SignedInfo xmlns=\"{XMLDSIG_NS}\">");
    let signed_info = match signed_info.strip_prefix(declared.as_str()) {
        Some(rest) => format!("<SignedInfo>{rest}"),
        None => signed_info.to_owned(),
    };
    format!(
        "<Signature xmlns=\"{XMLDSIG_NS}\">{signed_info}<SignatureValue>{}</SignatureValue>\
         <KeyInfo><X509Data><X509Certificate>{}</X509Certificate></X509Data></KeyInfo></Signature>",
        b64.encode(signature_value),
        b64.encode(certificate_der),
    )
}

/// Put `signature_xml` (one XML-DSig `Signature` element, such as
/// [`signature_element`] gives) into the `pertinentPrescription`'s
/// `author/signatureText`, replacing whatever it held (and dropping a
/// `nullFlavor` attribute); `signatureText` is created right after
/// `author/time` when absent, with the same namespace prefix as `time`.
///
/// The rest of the document is kept byte for byte.
pub fn insert_signature(xml: &str, signature_xml: &str) -> Result<String, SignError> {
    let signature = signature_text_of(signature_xml)?;
    replace_signature_text(xml, SignatureText::Content(signature))
}

/// Empty the `pertinentPrescription`'s `author/signatureText`, leaving
/// `<signatureText nullFlavor="NA"/>` (how EPS writes an unsigned
/// prescription); created right after `author/time` when absent.
///
/// The rest of the document is kept byte for byte.
pub fn strip_signature(xml: &str) -> Result<String, SignError> {
    replace_signature_text(xml, SignatureText::NotApplicable)
}

/// The source text of the single `Signature` element in `signature_xml`.
fn signature_text_of(signature_xml: &str) -> Result<&str, SignError> {
    let doc =
        xml::parse(signature_xml).map_err(|e| SignError::InvalidSignatureXml(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name((XMLDSIG_NS, "Signature")) {
        return Err(SignError::InvalidSignatureXml(format!(
            "root element is {:?} in namespace {:?}",
            root.tag_name().name(),
            root.tag_name().namespace()
        )));
    }
    // The root element has no ancestors in its own document, so its source
    // text declares every namespace it uses.
    signature_xml
        .get(root.range())
        .ok_or_else(|| SignError::InvalidSignatureXml("bad element range".to_owned()))
}

enum SignatureText<'s> {
    Content(&'s str),
    NotApplicable,
}

fn replace_signature_text(xml: &str, new: SignatureText<'_>) -> Result<String, SignError> {
    let doc = xml::parse(xml)?;
    let parent = fragments::find_parent_prescription(&doc)?;
    let author = fragments::author(parent)?;
    let mut out = String::with_capacity(xml.len() + 4096);
    match child(author, "signatureText") {
        Some(existing) => {
            let range = existing.range();
            let tag = StartTag::of(xml, existing);
            out.push_str(&xml[..range.start]);
            out.push_str(&tag.without_null_flavor);
            match new {
                SignatureText::Content(signature) => {
                    out.push('>');
                    out.push_str(signature);
                    if tag.empty {
                        push_end_tag(element_qname(existing), &mut out);
                    } else {
                        // Keep the original end tag.
                        let end_tag = xml[..range.end].rfind("</").unwrap_or(range.end);
                        out.push_str(&xml[end_tag..range.end]);
                    }
                }
                SignatureText::NotApplicable => out.push_str(" nullFlavor=\"NA\"/>"),
            }
            out.push_str(&xml[range.end..]);
        }
        None => {
            let time = child(author, "time").ok_or(FragmentsError::Missing("author/time"))?;
            let prefix = element_qname(time)
                .split_once(':')
                .map_or(String::new(), |(p, _)| format!("{p}:"));
            let qname = format!("{prefix}signatureText");
            let at = time.range().end;
            out.push_str(&xml[..at]);
            out.push('<');
            out.push_str(&qname);
            match new {
                SignatureText::Content(signature) => {
                    out.push('>');
                    out.push_str(signature);
                    push_end_tag(&qname, &mut out);
                }
                SignatureText::NotApplicable => out.push_str(" nullFlavor=\"NA\"/>"),
            }
            out.push_str(&xml[at..]);
        }
    }
    Ok(out)
}

fn push_end_tag(qname: &str, out: &mut String) {
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
}

/// An element's start tag as written in the source.
struct StartTag {
    /// The start tag without its closing `>` or `/>`, without trailing
    /// whitespace and without a `nullFlavor` attribute.
    without_null_flavor: String,
    /// Whether the element was written as an empty-element tag (`<x/>`).
    empty: bool,
}

impl StartTag {
    fn of(input: &str, node: Node<'_, '_>) -> Self {
        let start = node.range().start;
        let bytes = input.as_bytes();
        // Find the `>` that closes the start tag, skipping quoted values.
        let mut quote = None;
        let mut end = node.range().end;
        for (i, &b) in bytes
            .iter()
            .enumerate()
            .take(node.range().end)
            .skip(start + 1)
        {
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if b == b'>' => {
                    end = i;
                    break;
                }
                None => {}
            }
        }
        let empty = end > start && bytes.get(end - 1) == Some(&b'/');
        let body_end = if empty { end - 1 } else { end };
        let mut text = String::new();
        let mut from = start;
        if let Some(attribute) = node
            .attributes()
            .find(|a| a.name() == "nullFlavor" && a.namespace().is_none())
        {
            let range = attribute.range();
            let cut = input[start..range.start].trim_end().len() + start;
            text.push_str(&input[from..cut]);
            from = range.end;
        }
        text.push_str(input[from..body_end].trim_end());
        StartTag {
            without_null_flavor: text,
            empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_signed_info_for_the_agreed_algorithm_passes_the_prepared_check() {
        let si = signed_info(SignatureAlgorithm::RsaSha1, &[7; 20]);
        check_signed_info(&si, SignatureAlgorithm::RsaSha1).expect("our own SignedInfo");
        assert!(matches!(
            check_signed_info(&si, SignatureAlgorithm::RsaSha256),
            Err(SignError::NotSignedInfo { .. })
        ));
        assert!(matches!(
            check_signed_info("<foo/>", SignatureAlgorithm::RsaSha1),
            Err(SignError::NotSignedInfo { .. })
        ));
        assert!(matches!(
            check_signed_info("<SignedInfo>", SignatureAlgorithm::RsaSha1),
            Err(SignError::Xml(_))
        ));
    }

    #[test]
    fn algorithm_names() {
        for (text, alg) in [
            ("RS1", SignatureAlgorithm::RsaSha1),
            ("rs1", SignatureAlgorithm::RsaSha1),
            ("SHA1", SignatureAlgorithm::RsaSha1),
            ("sha1", SignatureAlgorithm::RsaSha1),
            ("RS256", SignatureAlgorithm::RsaSha256),
            ("Sha256", SignatureAlgorithm::RsaSha256),
        ] {
            assert_eq!(text.parse::<SignatureAlgorithm>().expect(text), alg);
        }
        assert!(matches!(
            "md5".parse::<SignatureAlgorithm>(),
            Err(SignError::UnknownAlgorithm(_))
        ));
        assert_eq!(
            SignatureAlgorithm::from_signing_service_code("RS256"),
            Some(SignatureAlgorithm::RsaSha256)
        );
        assert_eq!(SignatureAlgorithm::from_signing_service_code("rs256"), None);
        assert_eq!(SignatureAlgorithm::RsaSha1.signing_service_code(), "RS1");
        assert_eq!(SignatureAlgorithm::RsaSha256.to_string(), "RS256");
        assert_eq!(
            SignatureAlgorithm::from_signature_method_uri(
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
            ),
            Some(SignatureAlgorithm::RsaSha256)
        );
        assert_eq!(
            SignatureAlgorithm::RsaSha1.digest_algorithm(),
            DigestAlgorithm::Sha1
        );
    }

    #[test]
    fn start_tags() {
        let xml = r#"<a><s x="1>" nullFlavor="NA"  /><t nullFlavor='NA' y="2"></t><u/></a>"#;
        let doc = xml::parse(xml).expect("parse");
        let tag = |name: &str| {
            let node = doc
                .descendants()
                .find(|n| n.has_tag_name(name))
                .expect(name);
            let tag = StartTag::of(xml, node);
            (tag.without_null_flavor, tag.empty)
        };
        assert_eq!(tag("s"), (r#"<s x="1>""#.to_owned(), true));
        assert_eq!(tag("t"), (r#"<t y="2""#.to_owned(), false));
        assert_eq!(tag("u"), ("<u".to_owned(), true));
    }

    const MINI: &str = r#"<ParentPrescription xmlns="urn:hl7-org:v3"><recordTarget><Patient/></recordTarget>
  <pertinentInformation1><pertinentPrescription><id root="A"/>
    <author><time value="20210101000000"/>SLOT<AgentPerson><id root="x"/></AgentPerson></author>
  </pertinentPrescription></pertinentInformation1></ParentPrescription>"#;

    #[test]
    fn insert_and_strip_keep_the_rest_of_the_document() {
        let signature =
            "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo/></Signature>";
        for (slot, signed, stripped) in [
            (
                "<signatureText nullFlavor=\"NA\"/>",
                format!("<signatureText>{signature}</signatureText>"),
                "<signatureText nullFlavor=\"NA\"/>".to_owned(),
            ),
            (
                "<signatureText>\n  <old/>\n</signatureText >",
                format!("<signatureText>{signature}</signatureText >"),
                "<signatureText nullFlavor=\"NA\"/>".to_owned(),
            ),
            (
                "",
                format!("<signatureText>{signature}</signatureText>"),
                "<signatureText nullFlavor=\"NA\"/>".to_owned(),
            ),
        ] {
            let xml = MINI.replace("SLOT", slot);
            let with = insert_signature(&xml, signature).expect("insert");
            assert_eq!(with, MINI.replace("SLOT", &signed));
            let without = strip_signature(&with).expect("strip");
            assert_eq!(without, MINI.replace("SLOT", &stripped));
            assert_eq!(strip_signature(&without).expect("again"), without);
        }
    }

    #[test]
    fn prefixed_documents_get_a_prefixed_signature_text() {
        let xml = r#"<h:ParentPrescription xmlns:h="urn:hl7-org:v3"><h:recordTarget/><h:pertinentInformation1><h:pertinentPrescription><h:id root="A"/><h:author><h:time value="2021"/><h:AgentPerson/></h:author></h:pertinentPrescription></h:pertinentInformation1></h:ParentPrescription>"#;
        let signature = "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/>";
        let with = insert_signature(xml, signature).expect("insert");
        assert!(with.contains(&format!(
            "<h:time value=\"2021\"/><h:signatureText>{signature}</h:signatureText><h:AgentPerson/>"
        )));
        xml::parse(&with).expect("well-formed");
    }

    #[test]
    fn signature_xml_must_be_a_signature() {
        for bad in [
            "<Signature/>",
            "<x xmlns=\"http://www.w3.org/2000/09/xmldsig#\"/>",
            "<Signature",
        ] {
            assert!(matches!(
                insert_signature(&MINI.replace("SLOT", ""), bad),
                Err(SignError::InvalidSignatureXml(_))
            ));
        }
    }

    #[test]
    fn signature_element_does_not_repeat_the_namespace() {
        let si = signed_info(SignatureAlgorithm::RsaSha256, &[0; 32]);
        assert!(si.starts_with("<SignedInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\">"));
        let element = signature_element(&si, b"sig", b"cert");
        assert!(element.starts_with(
            "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo><CanonicalizationMethod"
        ));
        assert!(element.ends_with(
            "<SignatureValue>c2ln</SignatureValue><KeyInfo><X509Data><X509Certificate>Y2VydA==</X509Certificate></X509Data></KeyInfo></Signature>"
        ));
        // Canonicalising the embedded SignedInfo gives the signed bytes back.
        let doc = xml::parse(&element).expect("parse");
        let node = doc
            .descendants()
            .find(|n| n.has_tag_name((XMLDSIG_NS, "SignedInfo")))
            .expect("SignedInfo");
        assert_eq!(crate::c14n::canonicalize(node), si);
    }

    #[test]
    fn fragments_documents_only() {
        assert!(matches!(
            prepare_from_fragments("<Other/>", SignatureAlgorithm::RsaSha1),
            Err(SignError::NotFragmentsDocument(name)) if name == "Other"
        ));
        let (digest, si) = prepare_from_fragments(
            "<FragmentsToBeHashed>\n <Fragment/>\n</FragmentsToBeHashed>",
            SignatureAlgorithm::RsaSha1,
        )
        .expect("fragments");
        assert_eq!(
            digest,
            DigestAlgorithm::Sha1
                .digest(b"<FragmentsToBeHashed><Fragment></Fragment></FragmentsToBeHashed>")
        );
        assert!(si.contains("xmldsig#sha1"));
    }
}
