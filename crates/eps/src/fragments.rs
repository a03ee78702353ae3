//! The `FragmentsToBeHashed` document EPS signs (via its digest).
//!
//! From a `ParentPrescription`, EPS takes, in order:
//! 1. `{author/time, id[0]}` of the `pertinentPrescription`;
//! 2. the author's `AgentPerson`;
//! 3. the `ParentPrescription`'s `recordTarget`;
//! 4. each `pertinentLineItem`, with `repeatNumber/low` removed and
//!    `pertinentInformation4` dropped.
//!
//! Each fragment is copied into the `urn:hl7-org:v3` namespace and wrapped as
//! `<FragmentsToBeHashed><Fragment>…</Fragment>…</FragmentsToBeHashed>`
//! (whitespace-only text dropped), then canonicalised with exclusive C14N.

use aws_lc_rs::digest;
use roxmltree::{Document, Node};

use crate::HL7_NS;
use crate::c14n::{self, C14nOptions, escape_attribute, escape_text};

/// Errors building the fragments of a prescription.
#[derive(Debug, thiserror::Error)]
pub enum FragmentsError {
    /// The input is not well-formed XML.
    #[error("XML parse error: {0}")]
    Xml(#[from] roxmltree::Error),
    /// A required element is absent.
    #[error("missing element: {0}")]
    Missing(&'static str),
}

/// A digest algorithm used by EPS signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestAlgorithm {
    /// SHA-1 (`http://www.w3.org/2000/09/xmldsig#sha1`).
    Sha1,
    /// SHA-256 (`http://www.w3.org/2001/04/xmlenc#sha256`).
    Sha256,
}

impl DigestAlgorithm {
    /// The algorithm named by an XML-DSig `DigestMethod` URI, if supported.
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            "http://www.w3.org/2000/09/xmldsig#sha1" => Some(Self::Sha1),
            "http://www.w3.org/2001/04/xmlenc#sha256" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// The XML-DSig `DigestMethod` URI of this algorithm.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Sha1 => "http://www.w3.org/2000/09/xmldsig#sha1",
            Self::Sha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
        }
    }

    /// Hash `data` with this algorithm.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }
}

/// True when `node` is an element named `name` in the HL7 v3 namespace or in
/// no namespace (EPS test data uses both).
pub(crate) fn is_hl7(node: Node<'_, '_>, name: &str) -> bool {
    node.is_element()
        && node.tag_name().name() == name
        && matches!(node.tag_name().namespace(), None | Some(HL7_NS))
}

pub(crate) fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| is_hl7(*n, name))
}

pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |n| is_hl7(*n, name))
}

/// Find the `ParentPrescription` element: the root element itself, or the
/// one inside a message such as `PORX_IN020101SM31`.
pub fn find_parent_prescription<'a, 'i>(
    doc: &'a Document<'i>,
) -> Result<Node<'a, 'i>, FragmentsError> {
    doc.descendants()
        .find(|n| is_hl7(*n, "ParentPrescription"))
        .ok_or(FragmentsError::Missing("ParentPrescription"))
}

/// The `pertinentPrescription` of a `ParentPrescription`.
pub fn pertinent_prescription<'a, 'i>(
    parent: Node<'a, 'i>,
) -> Result<Node<'a, 'i>, FragmentsError> {
    child(parent, "pertinentInformation1")
        .and_then(|n| child(n, "pertinentPrescription"))
        .ok_or(FragmentsError::Missing(
            "pertinentInformation1/pertinentPrescription",
        ))
}

/// The `author` of the `pertinentPrescription` of a `ParentPrescription`.
pub fn author<'a, 'i>(parent: Node<'a, 'i>) -> Result<Node<'a, 'i>, FragmentsError> {
    child(pertinent_prescription(parent)?, "author").ok_or(FragmentsError::Missing("author"))
}

/// The `value` of the author's `time` (HL7 `YYYYMMDDhhmmss`).
pub fn author_time<'a>(parent: Node<'a, '_>) -> Result<&'a str, FragmentsError> {
    child(author(parent)?, "time")
        .and_then(|t| t.attribute("value"))
        .ok_or(FragmentsError::Missing("author/time/@value"))
}

/// What to leave out when copying a fragment.
#[derive(Clone, Copy)]
enum Pruning {
    None,
    LineItem,
}

fn skipped(node: Node<'_, '_>, fragment_root: Node<'_, '_>, pruning: Pruning) -> bool {
    match pruning {
        Pruning::None => false,
        Pruning::LineItem => {
            let parent = node.parent_element();
            if parent == Some(fragment_root) {
                return is_hl7(node, "pertinentInformation4");
            }
            is_hl7(node, "low")
                && parent.is_some_and(|p| {
                    is_hl7(p, "repeatNumber") && p.parent_element() == Some(fragment_root)
                })
        }
    }
}

/// Copy `node` into the HL7 namespace as XML text.
fn copy_element(
    node: Node<'_, '_>,
    fragment_root: Node<'_, '_>,
    pruning: Pruning,
    out: &mut String,
) {
    let input = node.document().input_text();
    let name = node.tag_name().name();
    out.push('<');
    out.push_str(name);
    if node == fragment_root {
        out.push_str(" xmlns=\"");
        out.push_str(HL7_NS);
        out.push('"');
    }
    for attribute in node.attributes() {
        let qname = input
            .get(attribute.range_qname())
            .unwrap_or(attribute.name());
        if let (Some(ns), Some((prefix, _))) = (attribute.namespace(), qname.split_once(':'))
            && prefix != "xml"
        {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
            escape_attribute(ns, out);
            out.push('"');
        }
        out.push(' ');
        out.push_str(qname);
        out.push_str("=\"");
        escape_attribute(attribute.value(), out);
        out.push('"');
    }
    out.push('>');
    for child in node.children() {
        if child.is_element() {
            if !skipped(child, fragment_root, pruning) {
                copy_element(child, fragment_root, pruning, out);
            }
        } else if child.is_text() {
            let text = child.text().unwrap_or("");
            if !text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
                escape_text(text, out);
            }
        }
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn copy_fragment(node: Node<'_, '_>, pruning: Pruning, out: &mut String) {
    copy_element(node, node, pruning, out);
}

/// Build the (non-canonical) `FragmentsToBeHashed` XML for a
/// `ParentPrescription` element.
pub fn fragments_xml(parent: Node<'_, '_>) -> Result<String, FragmentsError> {
    let prescription = pertinent_prescription(parent)?;
    let author = child(prescription, "author").ok_or(FragmentsError::Missing("author"))?;
    let time = child(author, "time").ok_or(FragmentsError::Missing("author/time"))?;
    let id =
        child(prescription, "id").ok_or(FragmentsError::Missing("pertinentPrescription/id"))?;
    let agent =
        child(author, "AgentPerson").ok_or(FragmentsError::Missing("author/AgentPerson"))?;
    let record_target =
        child(parent, "recordTarget").ok_or(FragmentsError::Missing("recordTarget"))?;

    let mut out = String::from("<FragmentsToBeHashed><Fragment>");
    copy_fragment(time, Pruning::None, &mut out);
    copy_fragment(id, Pruning::None, &mut out);
    out.push_str("</Fragment><Fragment>");
    copy_fragment(agent, Pruning::None, &mut out);
    out.push_str("</Fragment><Fragment>");
    copy_fragment(record_target, Pruning::None, &mut out);
    out.push_str("</Fragment>");
    for info in children(prescription, "pertinentInformation2") {
        for item in children(info, "pertinentLineItem") {
            out.push_str("<Fragment>");
            copy_fragment(item, Pruning::LineItem, &mut out);
            out.push_str("</Fragment>");
        }
    }
    out.push_str("</FragmentsToBeHashed>");
    Ok(out)
}

/// Canonicalise a `FragmentsToBeHashed` document given as XML text
/// (whitespace-only text dropped, exclusive C14N).
pub fn canonicalize_fragments_document(xml: &str) -> Result<String, FragmentsError> {
    let doc = Document::parse(xml)?;
    Ok(c14n::canonicalize_with(
        doc.root(),
        C14nOptions {
            strip_whitespace_text: true,
        },
    ))
}

/// The canonical `FragmentsToBeHashed` bytes for a `ParentPrescription`
/// element: what EPS hashes into `DigestValue`.
pub fn canonical_fragments(parent: Node<'_, '_>) -> Result<String, FragmentsError> {
    canonicalize_fragments_document(&fragments_xml(parent)?)
}

/// The canonical `FragmentsToBeHashed` bytes for a prescription document
/// (a `ParentPrescription`, alone or inside a message).
pub fn canonical_fragments_from_str(xml: &str) -> Result<String, FragmentsError> {
    let doc = Document::parse(xml)?;
    canonical_fragments(find_parent_prescription(&doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"<ParentPrescription xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <recordTarget typeCode="RCT"><Patient><id root="p"/></Patient></recordTarget>
  <pertinentInformation1>
    <pertinentPrescription>
      <id root="A"/>
      <id root="B"/>
      <author>
        <time value="20210101000000"/>
        <signatureText nullFlavor="NA"/>
        <AgentPerson classCode="AGNT"><id root="x" xsi:type="II"/></AgentPerson>
      </author>
      <pertinentInformation2>
        <pertinentLineItem>
          <id root="L1"/>
          <repeatNumber><low value="1"/><high value="6"/></repeatNumber>
          <pertinentInformation4><x/></pertinentInformation4>
          <note>a &amp; b</note>
        </pertinentLineItem>
      </pertinentInformation2>
      <pertinentInformation2>
        <pertinentLineItem><id root="L2"/></pertinentLineItem>
      </pertinentInformation2>
    </pertinentPrescription>
  </pertinentInformation1>
</ParentPrescription>"#;

    #[test]
    fn builds_fragments_in_order_with_pruning() {
        let canonical = canonical_fragments_from_str(MINI).expect("fragments");
        let expected = concat!(
            "<FragmentsToBeHashed>",
            "<Fragment><time xmlns=\"urn:hl7-org:v3\" value=\"20210101000000\"></time>",
            "<id xmlns=\"urn:hl7-org:v3\" root=\"A\"></id></Fragment>",
            "<Fragment><AgentPerson xmlns=\"urn:hl7-org:v3\" classCode=\"AGNT\">",
            "<id xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" root=\"x\" xsi:type=\"II\"></id>",
            "</AgentPerson></Fragment>",
            "<Fragment><recordTarget xmlns=\"urn:hl7-org:v3\" typeCode=\"RCT\"><Patient><id root=\"p\"></id></Patient></recordTarget></Fragment>",
            "<Fragment><pertinentLineItem xmlns=\"urn:hl7-org:v3\"><id root=\"L1\"></id>",
            "<repeatNumber><high value=\"6\"></high></repeatNumber><note>a &amp; b</note></pertinentLineItem></Fragment>",
            "<Fragment><pertinentLineItem xmlns=\"urn:hl7-org:v3\"><id root=\"L2\"></id></pertinentLineItem></Fragment>",
            "</FragmentsToBeHashed>",
        );
        assert_eq!(canonical, expected);
    }

    #[test]
    fn missing_parts_are_errors() {
        assert!(matches!(
            canonical_fragments_from_str("<ParentPrescription/>"),
            Err(FragmentsError::Missing(_))
        ));
        assert!(matches!(
            canonical_fragments_from_str("<other/>"),
            Err(FragmentsError::Missing("ParentPrescription"))
        ));
        assert!(matches!(
            canonical_fragments_from_str("<oops"),
            Err(FragmentsError::Xml(_))
        ));
    }

    #[test]
    fn digest_algorithms() {
        assert_eq!(
            DigestAlgorithm::from_uri("http://www.w3.org/2000/09/xmldsig#sha1"),
            Some(DigestAlgorithm::Sha1)
        );
        assert_eq!(DigestAlgorithm::from_uri("urn:nope"), None);
        assert_eq!(DigestAlgorithm::Sha1.digest(b"abc").len(), 20);
        assert_eq!(DigestAlgorithm::Sha256.digest(b"abc").len(), 32);
    }
}
