//! `link`: activation and unlock links as a phone scans or is pasted them
//! (`vsc_proto::activation_url`), and one-time codes as a person types them
//! (`vsc_core::ActivationCode`).
//!
//! Input: text (the link, and the same text as a typed code). Properties: no panic; a parsed
//! link is HTTPS with the server's origin only (no path, query, fragment or userinfo left
//! that could carry the secret elsewhere or follow the phone into its requests) and non-empty code and fingerprint; building a link from the
//! parts and parsing it again gives the same parts whenever the code and fingerprint are
//! plain (letters, digits, `-`); and a parsed code prints in the form it parses from again.

use vsc_core::ActivationCode;
use vsc_proto::activation_url::ActivationLink;

fn plain(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The target.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    if let Ok(code) = ActivationCode::parse(text) {
        let again = ActivationCode::parse(&code.display())
            .unwrap_or_else(|e| panic!("a parsed code does not parse from its own display: {e}"));
        assert!(again == code, "a code changes through its display form");
    }
    let Ok(link) = ActivationLink::parse(text) else {
        return;
    };
    assert_eq!(link.server.scheme(), "https");
    assert_eq!(link.server.path(), "/");
    assert!(link.server.query().is_none() && link.server.fragment().is_none());
    assert!(
        link.server.username().is_empty() && link.server.password().is_none(),
        "the link's userinfo stays in the server URL: {}",
        link.server
    );
    assert!(!link.code.is_empty() && !link.ca_fingerprint.is_empty());
    if plain(&link.code) && plain(&link.ca_fingerprint) {
        let built =
            ActivationLink::build(link.kind, &link.server, &link.code, &link.ca_fingerprint);
        let again = ActivationLink::parse(&built)
            .unwrap_or_else(|e| panic!("a built link does not parse: {e}: {built}"));
        assert_eq!(again, link, "a link changes through build and parse");
    }
}
