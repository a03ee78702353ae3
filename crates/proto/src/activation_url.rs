//! The link form of a one-time code: `https://server/activate#code=…&fp=…`.
//!
//! The code and the CA fingerprint travel in the fragment, which browsers and proxies never send
//! to a server, so the secret does not land in an access log if somebody opens the link in a
//! browser. The fingerprint lets the phone pin the server's CA from its very first request.

use url::Url;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Enrol a new card.
    Activate,
    /// Set a new passcode after an RA unlock.
    Unlock,
}

impl LinkKind {
    fn path(self) -> &'static str {
        match self {
            LinkKind::Activate => "/activate",
            LinkKind::Unlock => "/unlock",
        }
    }
}

/// A parsed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationLink {
    /// Activation or unlock.
    pub kind: LinkKind,
    /// The server's base URL (`https://host:port`).
    pub server: Url,
    /// The one-time code.
    pub code: String,
    /// Root CA fingerprint, lowercase hex.
    pub ca_fingerprint: String,
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationLinkError {
    /// Not a URL at all.
    #[error("'{0}' is not a link")]
    NotUrl(String),
    /// Links must be HTTPS.
    #[error("the link must start with https://")]
    NotHttps,
    /// Neither `/activate` nor `/unlock`.
    #[error("the link is not an activation or unlock link (path {0})")]
    Path(String),
    /// A parameter is missing.
    #[error("the link has no {0}")]
    Missing(&'static str),
}

impl ActivationLink {
    /// Builds the link for `server` (its origin is kept, any path dropped).
    pub fn build(kind: LinkKind, server: &Url, code: &str, ca_fingerprint_hex: &str) -> String {
        let origin = server.origin().ascii_serialization();
        format!(
            "{origin}{}#code={code}&fp={ca_fingerprint_hex}",
            kind.path()
        )
    }

    /// Parses a link as scanned or pasted.
    pub fn parse(link: &str) -> Result<ActivationLink, ActivationLinkError> {
        let url =
            Url::parse(link.trim()).map_err(|_| ActivationLinkError::NotUrl(link.to_owned()))?;
        if url.scheme() != "https" {
            return Err(ActivationLinkError::NotHttps);
        }
        let kind = match url.path() {
            "/activate" => LinkKind::Activate,
            "/unlock" => LinkKind::Unlock,
            other => return Err(ActivationLinkError::Path(other.to_owned())),
        };
        let fragment = url.fragment().unwrap_or_default();
        let mut code = None;
        let mut fp = None;
        for pair in fragment.split('&') {
            match pair.split_once('=') {
                Some(("code", v)) if !v.is_empty() => code = Some(v.to_owned()),
                Some(("fp", v)) if !v.is_empty() => fp = Some(v.to_ascii_lowercase()),
                _ => {}
            }
        }
        // The origin only: a path, query, fragment or `user:password@` in the link must not
        // follow the phone into its requests (reqwest would send the userinfo as Basic auth).
        let server = Url::parse(&format!("{}/", url.origin().ascii_serialization()))
            .map_err(|_| ActivationLinkError::NotUrl(link.to_owned()))?;
        Ok(ActivationLink {
            kind,
            server,
            code: code.ok_or(ActivationLinkError::Missing("code"))?,
            ca_fingerprint: fp.ok_or(ActivationLinkError::Missing("CA fingerprint (fp)"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let server = Url::parse("https://127.0.0.1:8443/anything").expect("url");
        let link = ActivationLink::build(
            LinkKind::Activate,
            &server,
            "ABCD1234-AAAA-BBBB-CCCC-DDDD",
            "00ff",
        );
        assert_eq!(
            link,
            "https://127.0.0.1:8443/activate#code=ABCD1234-AAAA-BBBB-CCCC-DDDD&fp=00ff"
        );
        let parsed = ActivationLink::parse(&link).expect("parses");
        assert_eq!(parsed.kind, LinkKind::Activate);
        assert_eq!(parsed.server.as_str(), "https://127.0.0.1:8443/");
        assert_eq!(parsed.code, "ABCD1234-AAAA-BBBB-CCCC-DDDD");
        assert_eq!(parsed.ca_fingerprint, "00ff");
    }

    #[test]
    fn refuses_bad_links() {
        assert_eq!(
            ActivationLink::parse("http://x/activate#code=a&fp=b"),
            Err(ActivationLinkError::NotHttps)
        );
        assert_eq!(
            ActivationLink::parse("https://x/activate#fp=b"),
            Err(ActivationLinkError::Missing("code"))
        );
        assert!(matches!(
            ActivationLink::parse("https://x/other#code=a&fp=b"),
            Err(ActivationLinkError::Path(_))
        ));
        assert!(matches!(
            ActivationLink::parse("not a link"),
            Err(ActivationLinkError::NotUrl(_))
        ));
    }

    /// Found by the `link` fuzz target: the userinfo of a link stayed in `server`.
    #[test]
    fn server_is_the_origin_only() {
        let parsed =
            ActivationLink::parse("https://user:pw@vsc.example:8443/activate?q=1#code=A&fp=00")
                .expect("parses");
        assert_eq!(parsed.server.as_str(), "https://vsc.example:8443/");
    }
}
