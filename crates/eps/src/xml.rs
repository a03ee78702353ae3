//! Reading untrusted XML: the one place this crate (and the agent) parses XML.
//!
//! [`parse`] is `roxmltree`'s parser (no DTD, entity expansion bounded by
//! `roxmltree`) plus two limits that hold before any other code walks the
//! tree:
//!
//! * element nesting of at most [`MAX_DEPTH`] levels. `roxmltree` builds its
//!   tree without recursion, but it has no depth limit; everything that walks
//!   a document afterwards (C14N, the fragment copier, summaries) would be at
//!   the mercy of the deepest input. An EPS prescription is about 20 levels
//!   deep; a hostile one of 40,000 levels is refused here with
//!   [`XmlError::TooDeep`], before anything recursive could see it (and the
//!   walkers in this crate are iterative as well);
//! * at most [`MAX_NODES`] nodes, so a document's tree stays proportionate to
//!   its size;
//! * no processing instruction whose target is `xml` in any case (XML 1.0
//!   §2.6 reserves it). `roxmltree` accepts `<?xml$x?>` inside a document as a
//!   PI; exclusive C14N would write it back as `<?xml $x?>`, an XML declaration
//!   in the wrong place, so the canonical form would no longer parse and a
//!   signature over it could not be checked by anyone else (found by the
//!   `c14n` fuzz target).

use roxmltree::{Document, Node, ParsingOptions};

/// The deepest element nesting accepted (the root element is depth 1).
pub const MAX_DEPTH: usize = 256;

/// The most nodes (elements, attributes' owners, text, comments, PIs) a
/// document may have.
pub const MAX_NODES: u32 = 4_000_000;

/// Why a text is not accepted as XML.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed, a DTD, an entity loop, or too many nodes.
    #[error("{0}")]
    Syntax(#[from] roxmltree::Error),
    /// Elements are nested deeper than [`MAX_DEPTH`].
    #[error(
        "elements are nested more than {MAX_DEPTH} levels deep (refused before reading further)"
    )]
    TooDeep,
    /// A processing instruction with the reserved target `xml` (any case).
    #[error("a processing instruction may not be named `{0}` (the name is reserved by XML)")]
    ReservedPiTarget(String),
}

/// Parse `text` with the limits above.
pub fn parse(text: &str) -> Result<Document<'_>, XmlError> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        entity_resolver: None,
    };
    let doc = Document::parse_with_options(text, options)?;
    check_depth(&doc)?;
    if let Some(pi) = doc
        .descendants()
        .filter_map(|node| node.pi())
        .find(|pi| pi.target.eq_ignore_ascii_case("xml"))
    {
        return Err(XmlError::ReservedPiTarget(pi.target.to_owned()));
    }
    Ok(doc)
}

/// Fail when `doc` nests elements deeper than [`MAX_DEPTH`] (an iterative
/// walk over the whole document).
pub fn check_depth(doc: &Document<'_>) -> Result<(), XmlError> {
    let mut depth = 0usize;
    for edge in traverse(doc.root()) {
        match edge {
            Edge::Open(node) if node.is_element() => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
            }
            Edge::Close(node) if node.is_element() => depth -= 1,
            _ => {}
        }
    }
    Ok(())
}

/// One step of a depth-first walk: entering or leaving a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge<'a, 'input> {
    /// Before the node's children.
    Open(Node<'a, 'input>),
    /// After the node's children.
    Close(Node<'a, 'input>),
}

/// A depth-first walk of the subtree of `root` (itself included), entering
/// and leaving each node, without recursion.
pub fn traverse<'a, 'input>(root: Node<'a, 'input>) -> Traverse<'a, 'input> {
    Traverse {
        root,
        next: Some(Edge::Open(root)),
    }
}

/// The iterator of [`traverse`].
#[derive(Debug, Clone)]
pub struct Traverse<'a, 'input> {
    root: Node<'a, 'input>,
    next: Option<Edge<'a, 'input>>,
}

impl<'a, 'input> Iterator for Traverse<'a, 'input> {
    type Item = Edge<'a, 'input>;

    fn next(&mut self) -> Option<Self::Item> {
        let current = self.next.take()?;
        self.next = match current {
            Edge::Open(node) => Some(match node.first_child() {
                Some(child) => Edge::Open(child),
                None => Edge::Close(node),
            }),
            Edge::Close(node) if node == self.root => None,
            Edge::Close(node) => match node.next_sibling() {
                Some(sibling) => Some(Edge::Open(sibling)),
                None => node.parent().map(Edge::Close),
            },
        };
        Some(current)
    }
}

/// `depth` elements named `name` nested in each other (for tests: the attack
/// this module refuses).
pub fn nested(name: &str, depth: usize) -> String {
    let mut out = String::with_capacity(depth * (2 * name.len() + 5));
    for _ in 0..depth {
        out.push('<');
        out.push_str(name);
        out.push('>');
    }
    for _ in 0..depth {
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traverse_enters_and_leaves_every_node() {
        let doc = parse("<a><b>t</b><c/></a>").expect("parse");
        let walk: Vec<String> = traverse(doc.root_element())
            .map(|e| match e {
                Edge::Open(n) => format!("+{}", n.tag_name().name()),
                Edge::Close(n) => format!("-{}", n.tag_name().name()),
            })
            .collect();
        assert_eq!(walk, ["+a", "+b", "+", "-", "-b", "+c", "-c", "-a"]);
    }

    #[test]
    fn depth_limit() {
        assert!(parse(&nested("a", MAX_DEPTH)).is_ok());
        assert!(matches!(
            parse(&nested("a", MAX_DEPTH + 1)),
            Err(XmlError::TooDeep)
        ));
        // Far deeper than any stack would survive recursively.
        assert!(matches!(
            parse(&nested("a", 40_000)),
            Err(XmlError::TooDeep)
        ));
        assert!(matches!(parse("<a>"), Err(XmlError::Syntax(_))));
        // The fuzzer's find: a reserved PI target C14N would turn into a declaration.
        assert!(matches!(
            parse("<a><?xml$a?></a>"),
            Err(XmlError::ReservedPiTarget(t)) if t == "xml"
        ));
        assert!(matches!(
            parse("<a><?XmL x?></a>"),
            Err(XmlError::ReservedPiTarget(_))
        ));
        assert!(parse("<?xml version=\"1.0\"?><a><?xml-stylesheet x?></a>").is_ok());
        assert!(matches!(
            parse("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>"),
            Err(XmlError::Syntax(_))
        ));
    }
}
