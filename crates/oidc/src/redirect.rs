//! Redirect URI rules: which URIs an administrator may register for a client, whether the
//! `redirect_uri` of a request matches a registered one, and the sandbox client's "any loopback"
//! rule.
//!
//! Matching is exact string comparison (OAuth 2.0 Security BCP, RFC 9700 §4.1.3), with the single
//! exception RFC 8252 §7.3 requires for native apps: an `http` loopback redirect may use any port,
//! because the app listens on whatever port the OS gives it.

use std::net::Ipv4Addr;

use url::{Host, Url};

/// Longest redirect URI accepted; longer ones are refused rather than parsed.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;

/// Why a redirect URI cannot be registered. Messages are meant for the administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// Longer than [`MAX_REDIRECT_URI_LEN`].
    #[error("the redirect URI is longer than {MAX_REDIRECT_URI_LEN} characters")]
    TooLong,
    /// Contains whitespace, a control character or a backslash, which URL parsers silently drop
    /// or rewrite, so the URI would not mean what it says.
    #[error(
        "the redirect URI contains whitespace, a control character or a backslash; \
         percent-encode them"
    )]
    BadCharacter,
    /// Not an absolute URL.
    #[error("the redirect URI is not an absolute URL ({0}); write it as https://host/path")]
    NotAbsolute(url::ParseError),
    /// Has a fragment (`#...`), which OAuth forbids (RFC 6749 §3.1.2).
    #[error("the redirect URI must not contain a fragment (#...)")]
    Fragment,
    /// Has a user name or password before the host.
    #[error("the redirect URI must not contain a user name or password (user@host)")]
    Userinfo,
    /// Neither `https` nor `http`.
    #[error(
        "the redirect URI uses the scheme {0:?}; only https is allowed \
         (and http for loopback addresses)"
    )]
    Scheme(String),
    /// `http` to a host that is not a loopback address.
    #[error(
        "the redirect URI uses http for the host {0:?}; http is only allowed for \
         127.0.0.1, [::1] or localhost, use https otherwise"
    )]
    InsecureHttp(String),
    /// No host.
    #[error("the redirect URI has no host")]
    NoHost,
}

/// Checks a redirect URI an administrator registers: an absolute URL without fragment or
/// userinfo, using `https`, or `http` only for loopback hosts (127.0.0.0/8, `[::1]`,
/// `localhost`).
///
/// # Errors
/// A [`RedirectError`] whose message says why the URI is refused.
pub fn validate_registration(uri: &str) -> Result<Url, RedirectError> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(RedirectError::TooLong);
    }
    if has_bad_chars(uri) {
        return Err(RedirectError::BadCharacter);
    }
    let url = Url::parse(uri).map_err(RedirectError::NotAbsolute)?;
    if url.fragment().is_some() {
        return Err(RedirectError::Fragment);
    }
    if has_userinfo(&url) {
        return Err(RedirectError::Userinfo);
    }
    if !matches!(url.scheme(), "https" | "http") {
        return Err(RedirectError::Scheme(url.scheme().to_owned()));
    }
    let host = url.host().ok_or(RedirectError::NoHost)?;
    if url.scheme() == "http" && !is_loopback_host(&host) {
        return Err(RedirectError::InsecureHttp(host.to_string()));
    }
    Ok(url)
}

/// Whether a presented `redirect_uri` matches a registered one: exact string comparison, except
/// that for `http` loopback registrations (host `127.0.0.1`-style, `[::1]` or `localhost`) the port
/// may differ (RFC 8252 §7.3); scheme, host, path and query must still be identical character for
/// character. The presented URI must have no fragment and no userinfo.
#[must_use]
pub fn matches(registered: &str, presented: &str) -> bool {
    if presented.len() > MAX_REDIRECT_URI_LEN || has_bad_chars(presented) {
        return false;
    }
    let Ok(url) = Url::parse(presented) else {
        return false;
    };
    if url.fragment().is_some() || has_userinfo(&url) {
        return false;
    }
    if registered == presented {
        return true;
    }
    // The loopback exception, done on the raw strings so that no URL normalisation (dot
    // segments, percent-encoding, case) can make two different strings match.
    let (Some(reg), Some(pre)) = (split_http(registered), split_http(presented)) else {
        return false;
    };
    reg.host == pre.host
        && is_loopback_raw_host(reg.host)
        && valid_port(reg.port)
        && valid_port(pre.port)
        && reg.rest == pre.rest
}

/// The sandbox client's rule: whether `presented` is an `http` or `https` URL to `127.0.0.1`
/// (any 127.0.0.0/8 address), `[::1]` or `localhost`, on any port and path, without fragment or
/// userinfo.
#[must_use]
pub fn is_loopback_redirect(presented: &str) -> bool {
    if presented.len() > MAX_REDIRECT_URI_LEN || has_bad_chars(presented) {
        return false;
    }
    let Ok(url) = Url::parse(presented) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.fragment().is_none()
        && !has_userinfo(&url)
        && url.host().is_some_and(|h| is_loopback_host(&h))
}

fn has_userinfo(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// Characters the WHATWG URL parser strips or reinterprets (tabs and newlines are removed,
/// backslashes become slashes), so a URI containing them is not what it looks like.
fn has_bad_chars(uri: &str) -> bool {
    uri.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
}

fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
    }
}

/// An `http://` URI split into host (as written), port (as written, without the colon) and the
/// rest (path, query, fragment, as written).
struct RawHttp<'a> {
    host: &'a str,
    port: &'a str,
    rest: &'a str,
}

fn split_http(uri: &str) -> Option<RawHttp<'_>> {
    let after = uri.strip_prefix("http://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, tail) = authority.split_at(close + 1);
        match tail {
            "" => (host, ""),
            _ => (host, tail.strip_prefix(':')?),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, port),
            None => (authority, ""),
        }
    };
    Some(RawHttp { host, port, rest })
}

/// Loopback hosts as a client writes them: a dotted-quad 127.0.0.0/8 address, `[::1]` or
/// `localhost`.
fn is_loopback_raw_host(host: &str) -> bool {
    host == "[::1]"
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Empty (the default port) or a decimal port 1..=65535.
fn valid_port(port: &str) -> bool {
    port.is_empty()
        || (port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn registration_rules() {
        assert!(validate_registration("https://rp.example/cb").is_ok());
        assert!(validate_registration("https://rp.example:8443/cb?x=1").is_ok());
        assert!(validate_registration("http://127.0.0.1:8080/cb").is_ok());
        assert!(validate_registration("http://127.1.2.3/cb").is_ok());
        assert!(validate_registration("http://[::1]:9000/").is_ok());
        assert!(validate_registration("http://localhost/cb").is_ok());

        assert_eq!(
            validate_registration("http://example.com/cb"),
            Err(RedirectError::InsecureHttp("example.com".into()))
        );
        assert_eq!(
            validate_registration("https://x/cb#frag"),
            Err(RedirectError::Fragment)
        );
        assert_eq!(
            validate_registration("https://x/cb#"),
            Err(RedirectError::Fragment)
        );
        assert_eq!(
            validate_registration("https://user:pw@x/cb"),
            Err(RedirectError::Userinfo)
        );
        assert_eq!(
            validate_registration("https://user@x/cb"),
            Err(RedirectError::Userinfo)
        );
        assert!(matches!(
            validate_registration("/cb"),
            Err(RedirectError::NotAbsolute(_))
        ));
        assert_eq!(
            validate_registration("com.example.app:/cb"),
            Err(RedirectError::Scheme("com.example.app".into()))
        );
        assert_eq!(
            validate_registration("ftp://x/cb"),
            Err(RedirectError::Scheme("ftp".into()))
        );
        assert_eq!(
            validate_registration("javascript://x/%0aalert(1)"),
            Err(RedirectError::Scheme("javascript".into()))
        );
        assert_eq!(
            validate_registration("https://x/c\nb"),
            Err(RedirectError::BadCharacter)
        );
        assert_eq!(
            validate_registration("http://localhost.evil.example/"),
            Err(RedirectError::InsecureHttp("localhost.evil.example".into()))
        );
        let long = format!("https://x/{}", "a".repeat(MAX_REDIRECT_URI_LEN));
        assert_eq!(validate_registration(&long), Err(RedirectError::TooLong));
        // Messages are readable.
        let msg = validate_registration("http://example.com/")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("https"), "{msg}");
    }

    #[test]
    fn exact_matching() {
        let reg = "https://rp.example/cb";
        assert!(matches(reg, reg));
        assert!(!matches(reg, "https://rp.example/cb/"));
        assert!(!matches("https://rp.example/cb/", reg));
        assert!(!matches(reg, "https://rp.example:8443/cb"));
        assert!(!matches(reg, "https://RP.example/cb"));
        assert!(!matches(reg, "https://rp.example/cb?x=1"));
        assert!(!matches(reg, "https://rp.example/CB"));
        assert!(!matches(reg, "https://rp.example/cb#x"));
        assert!(!matches(reg, "https://evil@rp.example/cb"));
        assert!(!matches(reg, "https://rp.example/a/../cb"));
        assert!(!matches(reg, ""));
        // Exact match still refuses a fragment or userinfo, even if one was registered.
        assert!(!matches(
            "https://rp.example/cb#x",
            "https://rp.example/cb#x"
        ));
        assert!(!matches(
            "https://u@rp.example/cb",
            "https://u@rp.example/cb"
        ));
    }

    #[test]
    fn loopback_port_may_differ() {
        let reg = "http://127.0.0.1:8080/cb";
        assert!(matches(reg, "http://127.0.0.1:51234/cb"));
        assert!(matches(reg, "http://127.0.0.1/cb"));
        assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:9/cb"));
        assert!(matches("http://[::1]/cb?a=b", "http://[::1]:4000/cb?a=b"));
        assert!(matches("http://localhost:1/cb", "http://localhost:2/cb"));

        // Path, query, host and scheme must still be identical.
        assert!(!matches(reg, "http://127.0.0.1:51234/cb2"));
        assert!(!matches(reg, "http://127.0.0.1:51234/cb/"));
        assert!(!matches(reg, "http://127.0.0.1:51234/x/../cb"));
        assert!(!matches(reg, "http://127.0.0.1:51234/cb?x"));
        assert!(!matches(reg, "http://localhost:51234/cb"));
        assert!(!matches(reg, "https://127.0.0.1:51234/cb"));
        assert!(!matches(reg, "http://127.0.0.1:51234/cb#f"));
        assert!(!matches(reg, "http://u@127.0.0.1:51234/cb"));
        assert!(!matches(reg, "http://127.0.0.1:0/cb"));
        assert!(!matches(reg, "http://127.0.0.1:99999/cb"));
        assert!(!matches(reg, "http://127.0.0.1:+80/cb"));
        assert!(!matches(reg, "http://127.0.0.1:80@evil.example/cb"));
        // https loopback gets no port exception, nor does a non-loopback http registration.
        assert!(!matches(
            "https://127.0.0.1:8080/cb",
            "https://127.0.0.1:9090/cb"
        ));
        assert!(!matches(
            "http://example.com:1/cb",
            "http://example.com:2/cb"
        ));
    }

    #[test]
    fn sandbox_loopback_rule() {
        assert!(is_loopback_redirect("http://127.0.0.1:1234/anything?x=1"));
        assert!(is_loopback_redirect("https://localhost/cb"));
        assert!(is_loopback_redirect("http://[::1]/"));
        assert!(is_loopback_redirect("http://127.0.0.1"));
        assert!(!is_loopback_redirect("http://127.0.0.1/cb#f"));
        assert!(!is_loopback_redirect("http://u@127.0.0.1/cb"));
        assert!(!is_loopback_redirect("http://127.0.0.1@evil.example/cb"));
        assert!(!is_loopback_redirect("http://localhost.evil.example/cb"));
        assert!(!is_loopback_redirect("http://evil.example/127.0.0.1"));
        assert!(!is_loopback_redirect("ftp://127.0.0.1/"));
        assert!(!is_loopback_redirect("http://127.0.0.1\\@evil.example/"));
        assert!(!is_loopback_redirect("not a url"));
    }
}
