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
//!
//! The parts are found strictly ([`signed_parts`]): where EPS reads one HL7
//! element (`recordTarget`, `author`, `time`, `AgentPerson`, …) there must be
//! exactly one element of that name, in `urn:hl7-org:v3` (or in no namespace
//! in a document that uses none), and inside the signed parts every element
//! is an HL7 element and no single-valued element is repeated. A decoy placed
//! before the real element — in another namespace, in no namespace
//! (`xmlns=""`), or a second copy — makes the prescription an error instead of
//! deciding what is signed, shown or checked. The copy is iterative.

use roxmltree::{Document, Node};
use sha1::Digest as _;

use crate::HL7_NS;
use crate::c14n::{self, C14nOptions, escape_attribute, escape_text};
use crate::xml::{self, Edge, XmlError, traverse};

/// Errors building the fragments of a prescription.
#[derive(Debug, thiserror::Error)]
pub enum FragmentsError {
    /// The input is not well-formed XML, or nests too deep.
    #[error("XML parse error: {0}")]
    Xml(#[from] XmlError),
    /// A required element is absent.
    #[error("missing element: {0}")]
    Missing(&'static str),
    /// An element EPS reads once appears more than once (a decoy beside the
    /// real one): which one a reader takes would decide what is checked or
    /// shown, so the prescription is refused.
    #[error(
        "element {name} appears more than once in {parent}; EPS reads one, so the prescription is refused"
    )]
    Duplicate {
        /// The parent element's local name.
        parent: String,
        /// The repeated element's local name.
        name: String,
    },
    /// An element outside the HL7 v3 namespace where EPS reads HL7 elements
    /// (including a no-namespace `xmlns=""` copy inside an HL7 document).
    #[error(
        "element {name} in namespace {namespace} inside {parent}: where EPS reads a prescription, only urn:hl7-org:v3 elements are accepted"
    )]
    ForeignElement {
        /// The parent element's local name.
        parent: String,
        /// The element's local name.
        name: String,
        /// Its namespace URI (`(none)` for no namespace).
        namespace: String,
    },
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
        // SHA-1 only because EPS R2 still uses rsa-sha1 signatures.
        match self {
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }
}

/// Whether an element is in HL7's namespace as EPS reads it: `urn:hl7-org:v3`,
/// or no namespace in a document that uses none (EPS's own test vectors) —
/// never a no-namespace element under an element that has one (an
/// `xmlns=""` copy placed inside an HL7 document).
pub(crate) fn in_hl7_namespace(node: Node<'_, '_>) -> bool {
    match namespace_of(node) {
        Some(ns) => ns == HL7_NS,
        None => node
            .parent_element()
            .is_none_or(|p| namespace_of(p).is_none()),
    }
}

/// An element's namespace URI; `None` for no namespace (also when it was
/// undeclared with `xmlns=""`).
pub(crate) fn namespace_of<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    node.tag_name().namespace().filter(|ns| !ns.is_empty())
}

/// True when `node` is an element named `name` in HL7's namespace (see
/// [`in_hl7_namespace`]).
pub(crate) fn is_hl7(node: Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && in_hl7_namespace(node)
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

fn local_name<'a>(node: Option<Node<'_, 'a>>) -> String {
    node.map_or_else(
        || "the document".to_owned(),
        |n| n.tag_name().name().to_owned(),
    )
}

fn foreign(node: Node<'_, '_>) -> FragmentsError {
    FragmentsError::ForeignElement {
        parent: local_name(node.parent_element()),
        name: node.tag_name().name().to_owned(),
        namespace: namespace_of(node).unwrap_or("(none)").to_owned(),
    }
}

/// The element children of `node` with local name `name`, in any namespace;
/// an error when any of them is not an HL7 element (a foreign-namespace
/// decoy before or after the real one).
pub(crate) fn named_children<'a, 'i>(
    node: Node<'a, 'i>,
    name: &str,
) -> Result<Vec<Node<'a, 'i>>, FragmentsError> {
    let found: Vec<Node<'a, 'i>> = node
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == name)
        .collect();
    if let Some(bad) = found.iter().find(|n| !in_hl7_namespace(**n)) {
        return Err(foreign(*bad));
    }
    Ok(found)
}

/// The one HL7 child of `node` named `name`, if any; an error when there are
/// several (in any namespace) or it is not an HL7 element.
pub(crate) fn one_child<'a, 'i>(
    node: Node<'a, 'i>,
    name: &str,
) -> Result<Option<Node<'a, 'i>>, FragmentsError> {
    let found = named_children(node, name)?;
    if found.len() > 1 {
        return Err(FragmentsError::Duplicate {
            parent: node.tag_name().name().to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(found.into_iter().next())
}

fn required_child<'a, 'i>(
    node: Node<'a, 'i>,
    name: &str,
    what: &'static str,
) -> Result<Node<'a, 'i>, FragmentsError> {
    one_child(node, name)?.ok_or(FragmentsError::Missing(what))
}

/// Whether an element named `name` may appear only once under an element
/// named `parent` in a prescription's signed parts: the single-valued HL7
/// attributes and associations EPS's messages use, and everything the
/// phone's screen reads one of. Repeatable elements (`id`, `name` parts,
/// address lines, `pertinentInformation2`/`3`, …) are shown in full instead.
pub(crate) fn is_singleton(parent: &str, name: &str) -> bool {
    matches!(
        name,
        "code"
            | "value"
            | "quantity"
            | "time"
            | "effectiveTime"
            | "statusCode"
            | "repeatNumber"
            | "low"
            | "high"
            | "center"
            | "width"
            | "birthTime"
            | "administrativeGenderCode"
            | "recordTarget"
            | "Patient"
            | "patientPerson"
            | "author"
            | "AgentPerson"
            | "agentPerson"
            | "representedOrganization"
            | "pertinentPrescription"
            | "pertinentLineItem"
            | "product"
            | "manufacturedProduct"
            | "manufacturedRequestedMaterial"
            | "lineItemQuantity"
            | "pertinentDosageInstructions"
            | "pertinentAdditionalInstructions"
            | "pertinentPrescriberEndorsement"
            | "seperatableInd"
            | "signatureText"
    ) || matches!(
        (parent, name),
        (
            "patientPerson" | "agentPerson" | "representedOrganization",
            "name"
        ) | (
            "representedOrganization" | "AgentPerson" | "pertinentLineItem",
            "id"
        ) | (
            "pertinentLineItem",
            "component" | "pertinentInformation1" | "pertinentInformation4"
        ) | ("quantity", "translation")
    )
}

/// Check a signed subtree (iteratively): every element is an HL7 element and
/// no singleton (see [`is_singleton`]) is repeated.
pub(crate) fn check_signed_subtree(root: Node<'_, '_>) -> Result<(), FragmentsError> {
    check_subtree(root, in_hl7_namespace)
}

fn check_subtree(
    root: Node<'_, '_>,
    accepted: fn(Node<'_, '_>) -> bool,
) -> Result<(), FragmentsError> {
    if !accepted(root) {
        return Err(foreign(root));
    }
    for node in root.descendants().filter(Node::is_element) {
        let parent = node.tag_name().name();
        let mut seen: Vec<&str> = Vec::new();
        for child in node.children().filter(Node::is_element) {
            if !accepted(child) {
                return Err(foreign(child));
            }
            let name = child.tag_name().name();
            if is_singleton(parent, name) {
                if seen.contains(&name) {
                    return Err(FragmentsError::Duplicate {
                        parent: parent.to_owned(),
                        name: name.to_owned(),
                    });
                }
                seen.push(name);
            }
        }
    }
    Ok(())
}

/// [`check_signed_subtree`] for a fragment of a `FragmentsToBeHashed`
/// document, where the copy put every element into `urn:hl7-org:v3`: no
/// other namespace (not even none) is accepted.
pub(crate) fn check_fragment_subtree(root: Node<'_, '_>) -> Result<(), FragmentsError> {
    check_subtree(root, |n| n.tag_name().namespace() == Some(HL7_NS))
}

/// Find the `ParentPrescription` element: the root element itself, or the
/// one inside a message such as `PORX_IN020101SM31`. There must be exactly
/// one element of that name in the document, in HL7's namespace.
pub fn find_parent_prescription<'a, 'i>(
    doc: &'a Document<'i>,
) -> Result<Node<'a, 'i>, FragmentsError> {
    let mut found = doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "ParentPrescription");
    let parent = found
        .next()
        .ok_or(FragmentsError::Missing("ParentPrescription"))?;
    if found.next().is_some() {
        return Err(FragmentsError::Duplicate {
            parent: "the document".to_owned(),
            name: "ParentPrescription".to_owned(),
        });
    }
    if !in_hl7_namespace(parent) {
        return Err(foreign(parent));
    }
    Ok(parent)
}

/// The `pertinentPrescription` of a `ParentPrescription`.
pub fn pertinent_prescription<'a, 'i>(
    parent: Node<'a, 'i>,
) -> Result<Node<'a, 'i>, FragmentsError> {
    let info = required_child(
        parent,
        "pertinentInformation1",
        "pertinentInformation1/pertinentPrescription",
    )?;
    required_child(
        info,
        "pertinentPrescription",
        "pertinentInformation1/pertinentPrescription",
    )
}

/// The `author` of the `pertinentPrescription` of a `ParentPrescription`.
pub fn author<'a, 'i>(parent: Node<'a, 'i>) -> Result<Node<'a, 'i>, FragmentsError> {
    required_child(pertinent_prescription(parent)?, "author", "author")
}

/// The `value` of the author's `time` (HL7 `YYYYMMDDhhmmss`).
pub fn author_time<'a>(parent: Node<'a, '_>) -> Result<&'a str, FragmentsError> {
    required_child(author(parent)?, "time", "author/time/@value")?
        .attribute("value")
        .ok_or(FragmentsError::Missing("author/time/@value"))
}

/// The parts of a `ParentPrescription` EPS signs, found strictly: each one
/// HL7 element where EPS reads one (no duplicates, no foreign-namespace
/// copies), and every signed subtree made only of HL7 elements with no
/// repeated singleton.
pub struct SignedParts<'a, 'i> {
    /// `author/time`.
    pub time: Node<'a, 'i>,
    /// The `pertinentPrescription`'s first `id`.
    pub id: Node<'a, 'i>,
    /// The author's `AgentPerson`.
    pub agent: Node<'a, 'i>,
    /// The `recordTarget`.
    pub record_target: Node<'a, 'i>,
    /// Every `pertinentInformation2/pertinentLineItem`, in order.
    pub line_items: Vec<Node<'a, 'i>>,
}

/// Find and check the signed parts of a `ParentPrescription` (see
/// [`SignedParts`]).
pub fn signed_parts<'a, 'i>(parent: Node<'a, 'i>) -> Result<SignedParts<'a, 'i>, FragmentsError> {
    let prescription = pertinent_prescription(parent)?;
    let author = required_child(prescription, "author", "author")?;
    let time = required_child(author, "time", "author/time")?;
    one_child(author, "signatureText")?;
    let id = named_children(prescription, "id")?
        .into_iter()
        .next()
        .ok_or(FragmentsError::Missing("pertinentPrescription/id"))?;
    let agent = required_child(author, "AgentPerson", "author/AgentPerson")?;
    let record_target = required_child(parent, "recordTarget", "recordTarget")?;
    let mut line_items = Vec::new();
    for info in named_children(prescription, "pertinentInformation2")? {
        line_items.extend(named_children(info, "pertinentLineItem")?);
    }
    for part in [time, id, agent, record_target]
        .into_iter()
        .chain(line_items.iter().copied())
    {
        check_signed_subtree(part)?;
    }
    Ok(SignedParts {
        time,
        id,
        agent,
        record_target,
        line_items,
    })
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

/// Copy the subtree of `root` into the HL7 namespace as XML text
/// (iteratively: the input's depth cannot exhaust the stack).
fn copy_fragment(root: Node<'_, '_>, pruning: Pruning, out: &mut String) {
    let input = root.document().input_text();
    // The element whose subtree is being left out, if any.
    let mut skipping: Option<Node<'_, '_>> = None;
    for edge in traverse(root) {
        match edge {
            Edge::Open(node) => {
                if skipping.is_some() {
                    continue;
                }
                if node.is_element() {
                    if node != root && skipped(node, root, pruning) {
                        skipping = Some(node);
                        continue;
                    }
                    write_copied_start_tag(node, node == root, input, out);
                } else if node.is_text() {
                    let text = node.text().unwrap_or("");
                    if !text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
                        escape_text(text, out);
                    }
                }
            }
            Edge::Close(node) => {
                if let Some(skipped_node) = skipping {
                    if skipped_node == node {
                        skipping = None;
                    }
                    continue;
                }
                if node.is_element() {
                    out.push_str("</");
                    out.push_str(node.tag_name().name());
                    out.push('>');
                }
            }
        }
    }
}

fn write_copied_start_tag(node: Node<'_, '_>, is_root: bool, input: &str, out: &mut String) {
    out.push('<');
    out.push_str(node.tag_name().name());
    if is_root {
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
}

/// Build the (non-canonical) `FragmentsToBeHashed` XML for a
/// `ParentPrescription` element (its parts found and checked by
/// [`signed_parts`]).
pub fn fragments_xml(parent: Node<'_, '_>) -> Result<String, FragmentsError> {
    let parts = signed_parts(parent)?;
    let mut out = String::from("<FragmentsToBeHashed><Fragment>");
    copy_fragment(parts.time, Pruning::None, &mut out);
    copy_fragment(parts.id, Pruning::None, &mut out);
    out.push_str("</Fragment><Fragment>");
    copy_fragment(parts.agent, Pruning::None, &mut out);
    out.push_str("</Fragment><Fragment>");
    copy_fragment(parts.record_target, Pruning::None, &mut out);
    out.push_str("</Fragment>");
    for item in parts.line_items {
        out.push_str("<Fragment>");
        copy_fragment(item, Pruning::LineItem, &mut out);
        out.push_str("</Fragment>");
    }
    out.push_str("</FragmentsToBeHashed>");
    Ok(out)
}

/// Canonicalise a `FragmentsToBeHashed` document given as XML text
/// (whitespace-only text dropped, exclusive C14N).
pub fn canonicalize_fragments_document(xml: &str) -> Result<String, FragmentsError> {
    let doc = xml::parse(xml)?;
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
    let doc = xml::parse(xml)?;
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
    fn decoys_are_refused() {
        // A foreign-namespace recordTarget before the real one.
        let foreign = MINI.replace(
            "<recordTarget typeCode=\"RCT\">",
            "<x:recordTarget xmlns:x=\"urn:evil\"><Patient><id root=\"q\"/></Patient></x:recordTarget><recordTarget typeCode=\"RCT\">",
        );
        assert!(matches!(
            canonical_fragments_from_str(&foreign),
            Err(FragmentsError::ForeignElement { ref name, .. }) if name == "recordTarget"
        ));
        // A no-namespace copy (xmlns="") inside the HL7 document.
        let unnamespaced = MINI.replace(
            "<recordTarget typeCode=\"RCT\">",
            "<recordTarget xmlns=\"\"><Patient><id root=\"q\"/></Patient></recordTarget><recordTarget typeCode=\"RCT\">",
        );
        assert!(matches!(
            canonical_fragments_from_str(&unnamespaced),
            Err(FragmentsError::ForeignElement { .. })
        ));
        // Two recordTargets.
        let twice = MINI.replace(
            "<recordTarget typeCode=\"RCT\">",
            "<recordTarget><Patient><id root=\"q\"/></Patient></recordTarget><recordTarget typeCode=\"RCT\">",
        );
        assert!(matches!(
            canonical_fragments_from_str(&twice),
            Err(FragmentsError::Duplicate { ref name, .. }) if name == "recordTarget"
        ));
        // A foreign element inside a signed part.
        let inside = MINI.replace(
            "<id root=\"p\"/>",
            "<id root=\"p\"/><y:note xmlns:y=\"urn:y\"/>",
        );
        assert!(matches!(
            canonical_fragments_from_str(&inside),
            Err(FragmentsError::ForeignElement { .. })
        ));
        // Two `high`s in a signed line item.
        let two_high = MINI.replace(
            "<high value=\"6\"/>",
            "<high value=\"6\"/><high value=\"60\"/>",
        );
        assert!(matches!(
            canonical_fragments_from_str(&two_high),
            Err(FragmentsError::Duplicate { ref name, .. }) if name == "high"
        ));
        // Two ParentPrescriptions.
        let two = format!("<m xmlns=\"urn:hl7-org:v3\">{}{}</m>", MINI, MINI);
        assert!(canonical_fragments_from_str(&two).is_err());
    }

    #[test]
    fn deep_prescriptions_are_refused_at_parse_time() {
        let deep = MINI.replace(
            "<Patient><id root=\"p\"/></Patient>",
            &format!(
                "<Patient><id root=\"p\"/>{}</Patient>",
                crate::xml::nested("x", 40_000)
            ),
        );
        assert!(matches!(
            canonical_fragments_from_str(&deep),
            Err(FragmentsError::Xml(XmlError::TooDeep))
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
