//! Enrolment inputs: the activation link (scanned or opened on the phone) and the check that
//! the server's CA is the one the RA's link names (the link's fingerprint is the trust anchor:
//! in the browser the TLS certificate is checked by the browser, the CA by this).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::Digest as _;
use url::Url;

/// Why a link or a CA was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a link the app understands.
    #[error("that is not an activation link ({0}); paste the whole link your RA gave you")]
    NotActivation(String),
    /// The link is for another server than the one that served the app.
    #[error(
        "the activation link is for {link}, but this app was opened from {origin}; open the app from the server in the link"
    )]
    OtherServer {
        /// The link's origin.
        link: String,
        /// The app's origin.
        origin: String,
    },
    /// A parameter is missing.
    #[error("the activation link has no {0}; paste the whole link your RA gave you")]
    Missing(&'static str),
    /// The fingerprint is not 64 hex digits.
    #[error("the CA fingerprint in the link is not 64 hex digits")]
    Fingerprint,
    /// No certificate in the chain has that fingerprint.
    #[error(
        "the server's CA does not have the fingerprint in your activation link: this may not be your organisation's server. Do not enrol; tell your RA"
    )]
    CaMismatch,
    /// The chain holds no certificate.
    #[error("the server sent no CA certificate")]
    NoCertificate,
}

/// The parts of an activation link the app needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The one-time code.
    pub code: String,
    /// The root CA's SHA-256 fingerprint, lowercase hex.
    pub ca_fingerprint: String,
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Parses `https://host/activate#code=…&fp=…`, `https://host/app/#code=…&fp=…` or a bare
/// fragment `#code=…&fp=…` (for the server at `origin`). A link for another origin is refused:
/// the app talks only to the server that served it.
pub fn parse_activation(link: &str, origin: &str) -> Result<Activation, LinkError> {
    let link = link.trim();
    let fragment = if let Some(fragment) = link.strip_prefix('#') {
        fragment.to_owned()
    } else {
        let url = Url::parse(link).map_err(|_| LinkError::NotActivation("not a link".into()))?;
        let app = Url::parse(origin).map_err(|_| LinkError::NotActivation("bad origin".into()))?;
        if origin_of(&url) != origin_of(&app) {
            return Err(LinkError::OtherServer {
                link: origin_of(&url),
                origin: origin_of(&app),
            });
        }
        if !matches!(url.path(), "/activate" | "/app/" | "/app") {
            return Err(LinkError::NotActivation(format!("path {}", url.path())));
        }
        url.fragment().unwrap_or_default().to_owned()
    };
    let mut code = None;
    let mut fp = None;
    for pair in fragment.split('&') {
        match pair.split_once('=') {
            Some(("code", v)) if !v.is_empty() => code = Some(v.to_owned()),
            Some(("fp", v)) if !v.is_empty() => fp = Some(v.to_ascii_lowercase()),
            _ => {}
        }
    }
    let code = code.ok_or(LinkError::Missing("code"))?;
    let ca_fingerprint = fp.ok_or(LinkError::Missing("CA fingerprint (fp)"))?;
    if ca_fingerprint.len() != 64 || !ca_fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LinkError::Fingerprint);
    }
    Ok(Activation {
        code,
        ca_fingerprint,
    })
}

/// Crockford's base32 alphabet of one-time codes (`vsc_core::activation`): no I, L, O or U.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// A one-time code's public id and secret lengths.
const CODE_ID_LEN: usize = 8;
const CODE_SECRET_LEN: usize = 16;

/// Why an unlock code or link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnlockInputError {
    /// Nothing was typed.
    #[error("type the unlock code your RA gave you, or open the unlock link")]
    Empty,
    /// The code does not have the right length.
    #[error(
        "an unlock code has 24 letters and digits (in groups like K7QF3M2A-9XH4-PR2D-W8TC-5N6B); this one has {0}"
    )]
    Length(usize),
    /// A character outside the alphabet.
    #[error("'{0}' cannot appear in an unlock code")]
    Character(char),
    /// A link, but not an unlock link for this app.
    #[error("that is not an unlock link ({0}); type the code from it instead")]
    NotUnlock(String),
    /// The link is for another server.
    #[error(
        "the unlock link is for {link}, but this app is enrolled with {origin}; ask your RA for an unlock code for this server"
    )]
    OtherServer {
        /// The link's origin.
        link: String,
        /// The app's origin.
        origin: String,
    },
    /// The link's CA fingerprint is not the one this app enrolled with.
    #[error(
        "the unlock link names another CA than the one this app enrolled with: it may not be from your organisation. Do not use it; tell your RA"
    )]
    CaMismatch,
}

/// Normalises a one-time code as a person typed it (case, spaces and dashes do not matter; O, I
/// and L read as 0, 1 and 1) to its display form `IIIIIIII-SSSS-SSSS-SSSS-SSSS`, as
/// `vsc_core::ActivationCode::display` writes it (what the native app sends).
pub fn normalise_code(typed: &str) -> Result<String, UnlockInputError> {
    let mut chars = String::with_capacity(CODE_ID_LEN + CODE_SECRET_LEN);
    for c in typed.chars().filter(|c| !c.is_whitespace() && *c != '-') {
        let c = match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            u if u.is_ascii() && CODE_ALPHABET.contains(&(u as u8)) => u,
            _ => return Err(UnlockInputError::Character(c)),
        };
        chars.push(c);
    }
    if chars.is_empty() {
        return Err(UnlockInputError::Empty);
    }
    if chars.len() != CODE_ID_LEN + CODE_SECRET_LEN {
        return Err(UnlockInputError::Length(chars.len()));
    }
    let (id, secret) = chars.split_at(CODE_ID_LEN);
    Ok(format!(
        "{id}-{}-{}-{}-{}",
        &secret[0..4],
        &secret[4..8],
        &secret[8..12],
        &secret[12..16]
    ))
}

/// The unlock code from what the person typed or opened: a bare code, an unlock link
/// `https://host/unlock#code=…&fp=…`, the app's `https://host/app/#unlock=1&code=…&fp=…`, or
/// that fragment alone. A link must be for `origin` (the server the app is enrolled with) and
/// name the CA the app enrolled with (`enrolled_fp_hex`), as the native `redeem_unlock` checks.
/// Returns the code in its display form.
pub fn parse_unlock(
    input: &str,
    origin: &str,
    enrolled_fp_hex: &str,
) -> Result<String, UnlockInputError> {
    let input = input.trim();
    let fragment = if let Some(fragment) = input.strip_prefix('#') {
        Some(fragment.to_owned())
    } else if input.contains("://") {
        let url =
            Url::parse(input).map_err(|_| UnlockInputError::NotUnlock("not a link".into()))?;
        let app =
            Url::parse(origin).map_err(|_| UnlockInputError::NotUnlock("bad origin".into()))?;
        if origin_of(&url) != origin_of(&app) {
            return Err(UnlockInputError::OtherServer {
                link: origin_of(&url),
                origin: origin_of(&app),
            });
        }
        let fragment = url.fragment().unwrap_or_default().to_owned();
        match url.path() {
            "/unlock" => {}
            "/app/" | "/app" if fragment.split('&').any(|p| p == "unlock=1") => {}
            other => return Err(UnlockInputError::NotUnlock(format!("path {other}"))),
        }
        Some(fragment)
    } else {
        None
    };
    let Some(fragment) = fragment else {
        return normalise_code(input);
    };
    let mut code = None;
    let mut fp = None;
    for pair in fragment.split('&') {
        match pair.split_once('=') {
            Some(("code", v)) if !v.is_empty() => code = Some(v.to_owned()),
            Some(("fp", v)) if !v.is_empty() => fp = Some(v.to_ascii_lowercase()),
            _ => {}
        }
    }
    let code = code.ok_or(UnlockInputError::Empty)?;
    let fp = fp.ok_or_else(|| UnlockInputError::NotUnlock("no CA fingerprint".into()))?;
    if fp.replace(':', "") != enrolled_fp_hex.trim().to_ascii_lowercase().replace(':', "") {
        return Err(UnlockInputError::CaMismatch);
    }
    normalise_code(&code)
}

/// The DER certificates of a PEM bundle (other blocks skipped).
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(b64) = body.take()
                && let Ok(der) = B64.decode(b64)
            {
                out.push(der);
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

/// Succeeds when one certificate of `chain_pem` has the SHA-256 fingerprint
/// `ca_fingerprint_hex` (the one the RA's link names).
pub fn check_root_ca(chain_pem: &str, ca_fingerprint_hex: &str) -> Result<(), LinkError> {
    let want = hex::decode(ca_fingerprint_hex.trim()).map_err(|_| LinkError::Fingerprint)?;
    if want.len() != 32 {
        return Err(LinkError::Fingerprint);
    }
    let certs = pem_certificates(chain_pem);
    if certs.is_empty() {
        return Err(LinkError::NoCertificate);
    }
    if certs
        .iter()
        .any(|der| sha2::Sha256::digest(der).as_slice() == want.as_slice())
    {
        Ok(())
    } else {
        Err(LinkError::CaMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const FP: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn activation_links() {
        let origin = "https://vsc.example:8443";
        for link in [
            format!("https://vsc.example:8443/activate#code=AB-CD&fp={FP}"),
            format!(
                "https://vsc.example:8443/app/#code=AB-CD&fp={}",
                FP.to_uppercase()
            ),
            format!("#code=AB-CD&fp={FP}"),
        ] {
            let a = parse_activation(&link, origin).expect("parses");
            assert_eq!(a.code, "AB-CD");
            assert_eq!(a.ca_fingerprint, FP);
        }
        assert!(matches!(
            parse_activation(
                &format!("https://evil.example/activate#code=A&fp={FP}"),
                origin
            ),
            Err(LinkError::OtherServer { .. })
        ));
        assert_eq!(
            parse_activation("#fp=00", origin),
            Err(LinkError::Missing("code"))
        );
        assert_eq!(
            parse_activation("#code=a&fp=00", origin),
            Err(LinkError::Fingerprint)
        );
    }

    #[test]
    fn unlock_inputs() {
        let origin = "https://vsc.example:8443";
        let code = "K7QF3M2A-9XH4-PR2D-W8TC-5N6B";
        assert_eq!(
            normalise_code(" k7qf3m2a 9xh4-pr2d-w8tc-5n6b ").expect("a code"),
            code
        );
        assert_eq!(
            normalise_code("O1LI0000-0000-0000-0000-0000").expect("look-alikes"),
            "01110000-0000-0000-0000-0000"
        );
        assert_eq!(normalise_code("abc"), Err(UnlockInputError::Length(3)));
        assert_eq!(normalise_code("   "), Err(UnlockInputError::Empty));
        assert_eq!(
            normalise_code("K7QF3M2A-9XH4-PR2D-W8TC-5N6U"),
            Err(UnlockInputError::Character('U'))
        );
        for input in [
            code.to_owned(),
            format!("https://vsc.example:8443/unlock#code={code}&fp={FP}"),
            format!(
                "https://vsc.example:8443/app/#unlock=1&code={code}&fp={}",
                FP.to_uppercase()
            ),
            format!("#unlock=1&code={code}&fp={FP}"),
        ] {
            assert_eq!(
                parse_unlock(&input, origin, FP).expect("parses"),
                code,
                "{input}"
            );
        }
        assert!(matches!(
            parse_unlock(
                &format!("https://evil.example/unlock#code={code}&fp={FP}"),
                origin,
                FP
            ),
            Err(UnlockInputError::OtherServer { .. })
        ));
        assert_eq!(
            parse_unlock(
                &format!(
                    "https://vsc.example:8443/unlock#code={code}&fp={}",
                    "11".repeat(32)
                ),
                origin,
                FP
            ),
            Err(UnlockInputError::CaMismatch)
        );
        assert!(matches!(
            parse_unlock(
                &format!("https://vsc.example:8443/activate#code={code}&fp={FP}"),
                origin,
                FP
            ),
            Err(UnlockInputError::NotUnlock(_))
        ));
    }

    #[test]
    fn root_ca_fingerprint() {
        let der = b"not really a certificate, but bytes to hash";
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            B64.encode(der)
        );
        let fp = hex::encode(sha2::Sha256::digest(der));
        check_root_ca(&pem, &fp).expect("matches");
        assert_eq!(check_root_ca(&pem, FP), Err(LinkError::CaMismatch));
        assert_eq!(check_root_ca("", &fp), Err(LinkError::NoCertificate));
    }
}
