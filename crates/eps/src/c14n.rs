//! Exclusive XML canonicalisation (`http://www.w3.org/2001/10/xml-exc-c14n#`,
//! without comments, no `InclusiveNamespaces` prefix list) over [`roxmltree`].
//!
//! The output is UTF-8 without an XML declaration or DTD. Empty elements are
//! written as start/end tag pairs, attributes are sorted by (namespace URI,
//! local name) after the namespace declarations (sorted by prefix, default
//! first), and a namespace declaration is written on an element only where it
//! is visibly utilised there and not already rendered with the same value by
//! an output ancestor.
//!
//! The writer walks the tree iteratively: a document parsed elsewhere, without
//! [`crate::xml::parse`]'s depth limit, still cannot exhaust the stack here.

use std::collections::BTreeMap;

use roxmltree::{Node, NodeType};

use crate::xml::{Edge, traverse};

/// The XML namespace, bound to the `xml` prefix by definition.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Options for [`canonicalize_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct C14nOptions {
    /// Drop text nodes that consist only of XML whitespace (as EPS does for
    /// `SignedInfo` and for the fragments document). Not part of the W3C
    /// algorithm; off by default.
    pub strip_whitespace_text: bool,
}

/// Canonicalise a document (when `node` is the root node) or the subtree of
/// an element, with default options.
pub fn canonicalize(node: Node<'_, '_>) -> String {
    canonicalize_with(node, C14nOptions::default())
}

/// Canonicalise a document (when `node` is the root node) or the subtree of
/// an element (or a single text/processing-instruction node).
pub fn canonicalize_with(node: Node<'_, '_>, options: C14nOptions) -> String {
    let mut out = String::new();
    let rendered = BTreeMap::new();
    match node.node_type() {
        NodeType::Root => {
            let mut seen_root_element = false;
            for child in node.children() {
                match child.node_type() {
                    NodeType::Element => {
                        write_element(child, &rendered, options, &mut out);
                        seen_root_element = true;
                    }
                    NodeType::PI => {
                        if seen_root_element {
                            out.push('\n');
                        }
                        write_pi(child, &mut out);
                        if !seen_root_element {
                            out.push('\n');
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => write_node(node, &rendered, options, &mut out),
    }
    out
}

fn write_node(
    node: Node<'_, '_>,
    rendered: &BTreeMap<String, String>,
    options: C14nOptions,
    out: &mut String,
) {
    match node.node_type() {
        NodeType::Element => write_element(node, rendered, options, out),
        NodeType::Text => write_text(node, options, out),
        NodeType::PI => write_pi(node, out),
        NodeType::Comment | NodeType::Root => {}
    }
}

fn write_text(node: Node<'_, '_>, options: C14nOptions, out: &mut String) {
    let text = node.text().unwrap_or("");
    if options.strip_whitespace_text && text.chars().all(is_xml_whitespace) {
        return;
    }
    escape_text(text, out);
}

fn is_xml_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The prefix an element or attribute was written with, read from the source
/// text (roxmltree keeps only the resolved namespace URI).
fn prefix_of(qname: &str) -> Option<&str> {
    qname.split_once(':').map(|(prefix, _)| prefix)
}

/// The qualified name of an element, read from its start tag in the source.
pub(crate) fn element_qname<'a>(node: Node<'_, 'a>) -> &'a str {
    let input = node.document().input_text();
    let start = node.range().start + 1;
    let rest = input.get(start..).unwrap_or("");
    let end = rest
        .find(|c: char| is_xml_whitespace(c) || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Write the subtree of element `top`. Iterative (an explicit stack of the
/// namespace declarations in scope), so the depth of the input cannot
/// exhaust the call stack.
fn write_element(
    top: Node<'_, '_>,
    rendered: &BTreeMap<String, String>,
    options: C14nOptions,
    out: &mut String,
) {
    // The declarations rendered by output ancestors: a map for each open
    // element that changed them, and for every open element whether it did.
    let mut scopes: Vec<BTreeMap<String, String>> = Vec::new();
    let mut changed: Vec<bool> = Vec::new();
    for edge in traverse(top) {
        match edge {
            Edge::Open(node) => match node.node_type() {
                NodeType::Element => {
                    let current = scopes.last().unwrap_or(rendered);
                    match write_start_tag(node, current, out) {
                        Some(scope) => {
                            scopes.push(scope);
                            changed.push(true);
                        }
                        None => changed.push(false),
                    }
                }
                NodeType::Text => write_text(node, options, out),
                NodeType::PI => write_pi(node, out),
                NodeType::Comment | NodeType::Root => {}
            },
            Edge::Close(node) => {
                if node.is_element() {
                    if changed.pop() == Some(true) {
                        scopes.pop();
                    }
                    out.push_str("</");
                    out.push_str(element_qname(node));
                    out.push('>');
                }
            }
        }
    }
}

/// Write an element's start tag; returns the declarations in scope for its
/// children when it rendered any.
fn write_start_tag(
    node: Node<'_, '_>,
    rendered: &BTreeMap<String, String>,
    out: &mut String,
) -> Option<BTreeMap<String, String>> {
    let input = node.document().input_text();
    let qname = element_qname(node);
    let element_prefix = prefix_of(qname).unwrap_or("");

    // Visibly utilised prefixes: the element's own and its attributes'.
    let mut utilised: BTreeMap<&str, &str> = BTreeMap::new();
    let element_ns = node.tag_name().namespace().unwrap_or("");
    utilised.insert(element_prefix, element_ns);

    let mut attributes: Vec<(&str, &str, &str, &str)> = Vec::new();
    for attribute in node.attributes() {
        let attr_qname = input
            .get(attribute.range_qname())
            .unwrap_or(attribute.name());
        let ns = attribute.namespace().unwrap_or("");
        if let Some(prefix) = prefix_of(attr_qname)
            && prefix != "xml"
        {
            utilised.insert(prefix, ns);
        }
        attributes.push((ns, attribute.name(), attr_qname, attribute.value()));
    }
    attributes.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

    let mut child_rendered: Option<BTreeMap<String, String>> = None;
    let mut declarations: Vec<(&str, &str)> = Vec::new();
    for (&prefix, &uri) in &utilised {
        if prefix == "xml" && uri == XML_NS {
            continue;
        }
        let current = rendered.get(prefix).map(String::as_str).unwrap_or("");
        let already = if prefix.is_empty() {
            current == uri
        } else {
            rendered.get(prefix).map(String::as_str) == Some(uri)
        };
        if !already {
            declarations.push((prefix, uri));
            child_rendered
                .get_or_insert_with(|| rendered.clone())
                .insert(prefix.to_owned(), uri.to_owned());
        }
    }

    out.push('<');
    out.push_str(qname);
    for (prefix, uri) in &declarations {
        if prefix.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(prefix);
            out.push_str("=\"");
        }
        escape_attribute(uri, out);
        out.push('"');
    }
    for (_, _, attr_qname, value) in &attributes {
        out.push(' ');
        out.push_str(attr_qname);
        out.push_str("=\"");
        escape_attribute(value, out);
        out.push('"');
    }
    out.push('>');
    child_rendered
}

fn write_pi(node: Node<'_, '_>, out: &mut String) {
    if let Some(pi) = node.pi() {
        out.push_str("<?");
        out.push_str(pi.target);
        if let Some(value) = pi.value
            && !value.is_empty()
        {
            out.push(' ');
            out.push_str(value);
        }
        out.push_str("?>");
    }
}

/// Escape character content as exclusive C14N requires.
pub fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

/// Escape an attribute value as exclusive C14N requires.
pub fn escape_attribute(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str) -> String {
        let doc = crate::xml::parse(xml).expect("parse");
        canonicalize(doc.root())
    }

    fn c14n_element(xml: &str, name: &str) -> String {
        let doc = roxmltree::Document::parse(xml).expect("parse");
        let node = doc
            .descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .expect("element");
        canonicalize(node)
    }

    #[test]
    fn empty_elements_become_pairs_and_declaration_dropped() {
        assert_eq!(
            c14n("<?xml version=\"1.0\"?>\n<a><b/></a>"),
            "<a><b></b></a>"
        );
    }

    #[test]
    fn attributes_sorted_by_namespace_then_local_name() {
        let xml = r#"<e xmlns:b="urn:b" xmlns:a="urn:a" z="1" b:y="2" a:y="3" a="4"/>"#;
        assert_eq!(
            c14n(xml),
            r#"<e xmlns:a="urn:a" xmlns:b="urn:b" a="4" z="1" a:y="3" b:y="2"></e>"#
        );
    }

    #[test]
    fn unused_namespaces_omitted_and_pushed_down() {
        let xml = r#"<a xmlns:p="urn:p" xmlns:q="urn:q"><p:b><p:c q:x="1"/></p:b></a>"#;
        assert_eq!(
            c14n(xml),
            r#"<a><p:b xmlns:p="urn:p"><p:c xmlns:q="urn:q" q:x="1"></p:c></p:b></a>"#
        );
    }

    #[test]
    fn subtree_declares_inherited_namespaces_it_uses() {
        let xml = r#"<r xmlns="urn:d" xmlns:u="urn:u"><s u:k="v"><t/></s></r>"#;
        assert_eq!(
            c14n_element(xml, "s"),
            r#"<s xmlns="urn:d" xmlns:u="urn:u" u:k="v"><t></t></s>"#
        );
    }

    #[test]
    fn default_namespace_redeclared_and_undeclared() {
        let xml = r#"<a xmlns="urn:one"><b xmlns="urn:two"><c/></b><d xmlns=""><e/></d><f xmlns="urn:one"/></a>"#;
        assert_eq!(
            c14n(xml),
            r#"<a xmlns="urn:one"><b xmlns="urn:two"><c></c></b><d xmlns=""><e></e></d><f></f></a>"#
        );
    }

    #[test]
    fn no_empty_default_declaration_at_top() {
        assert_eq!(c14n(r#"<a xmlns=""><b/></a>"#), "<a><b></b></a>");
    }

    #[test]
    fn text_and_attribute_escaping() {
        let xml = "<a v=\"&amp;&lt;&quot;&#x9;&#xA;&#xD;>'\">&amp;&lt;&gt;&#xD;\"'</a>";
        assert_eq!(
            c14n(xml),
            "<a v=\"&amp;&lt;&quot;&#x9;&#xA;&#xD;>'\">&amp;&lt;&gt;&#xD;\"'</a>"
        );
    }

    #[test]
    fn comments_dropped_and_pis_kept() {
        let xml = "<?pi-a data?><!--c--><a><!--x--><?p  d ?>t</a><?pi-b?>";
        assert_eq!(c14n(xml), "<?pi-a data?>\n<a><?p d ?>t</a>\n<?pi-b?>");
    }

    #[test]
    fn strip_whitespace_option() {
        let doc = roxmltree::Document::parse("<a>\n  <b> x </b>\n</a>").expect("parse");
        let stripped = canonicalize_with(
            doc.root(),
            C14nOptions {
                strip_whitespace_text: true,
            },
        );
        assert_eq!(stripped, "<a><b> x </b></a>");
        assert_eq!(canonicalize(doc.root()), "<a>\n  <b> x </b>\n</a>");
    }

    #[test]
    fn deep_documents_do_not_recurse() {
        // Parsed without the crate's depth limit, on purpose.
        let xml = crate::xml::nested("a", 100_000);
        let doc = roxmltree::Document::parse(&xml).expect("parse");
        assert_eq!(canonicalize(doc.root()), xml);
    }

    /// W3C Canonical XML 1.0, section 3.3 (start and end tags), without the
    /// DTD, under exclusive C14N: unused `xmlns:a` declarations disappear.
    #[test]
    fn w3c_c14n_section_3_3_example_exclusive() {
        let xml = r#"<doc>
   <e1   />
   <e2   ></e2>
   <e3   name = "elem3"   id="elem3"   />
   <e4   name="elem4"   id="elem4"   ></e4>
   <e5 a:attr="out" b:attr="sorted" attr2="all" attr="I'm"
      xmlns:b="http://www.ietf.org"
      xmlns:a="http://www.w3.org"
      xmlns="http://example.org"/>
   <e6 xmlns="" xmlns:a="http://www.w3.org">
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="" xmlns:a="http://www.w3.org">
            <e9 xmlns="" xmlns:a="http://www.ietf.org"/>
         </e8>
      </e7>
   </e6>
</doc>"#;
        let expected = r#"<doc>
   <e1></e1>
   <e2></e2>
   <e3 id="elem3" name="elem3"></e3>
   <e4 id="elem4" name="elem4"></e4>
   <e5 xmlns="http://example.org" xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I'm" attr2="all" b:attr="sorted" a:attr="out"></e5>
   <e6>
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="">
            <e9></e9>
         </e8>
      </e7>
   </e6>
</doc>"#;
        assert_eq!(c14n(xml), expected);
    }

    /// W3C Canonical XML 1.0, section 3.4 (character modifications and
    /// character references), without the DTD-dependent parts.
    #[test]
    fn w3c_c14n_section_3_4_example_characters() {
        let xml = "<doc>\n   <text>First line&#x0d;&#10;Second line</text>\n   <value>&#x32;</value>\n   <compute><![CDATA[value>\"0\" && value<\"10\" ?\"valid\":\"error\"]]></compute>\n   <compute expr='value>\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"'>valid</compute>\n   <norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>\n</doc>";
        let expected = "<doc>\n   <text>First line&#xD;\nSecond line</text>\n   <value>2</value>\n   <compute>value&gt;\"0\" &amp;&amp; value&lt;\"10\" ?\"valid\":\"error\"</compute>\n   <compute expr=\"value>&quot;0&quot; &amp;&amp; value&lt;&quot;10&quot; ?&quot;valid&quot;:&quot;error&quot;\">valid</compute>\n   <norm attr=\" '    &#xD;&#xA;&#x9;   ' \"></norm>\n</doc>";
        assert_eq!(c14n(xml), expected);
    }

    /// W3C Exclusive XML Canonicalization 1.0, section 2.2: exclusive C14N of
    /// `n1:elem2` gives the same result in both contexts.
    #[test]
    fn w3c_exc_c14n_section_2_2_example() {
        let first = r#"<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>"#;
        let second = r#"<n2:pdu xmlns:n1="http://example.com" xmlns:n2="http://foo.example" xml:lang="fr" xml:space="retain"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n2:pdu>"#;
        let expected = r#"<n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>"#;
        assert_eq!(c14n_element(first, "elem2"), expected);
        assert_eq!(c14n_element(second, "elem2"), expected);
    }
}
