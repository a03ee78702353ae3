//! `eps_der`: the certificates and CRLs the EPS verifier reads (`vsc eps verify --trust`,
//! `--ca`, `--crl`, and the certificate inside a prescription's signature), around a real
//! signed prescription (`data/ValidSignature.xml`) and CA (`data/NHS_INT_Level1D_Base64_pem.cer`).
//!
//! Input: one byte that picks the role of the rest, which is DER: a CRL (`0`), a trusted CA
//! (`1`), an intermediate CA (`2`), the signing certificate in the prescription (`3`), or
//! the input of `certificate_is_self_issued` (`4`). Property: no panic, and the verifier
//! always gives a report (a DER input cannot make the XML unreadable).

use base64::Engine as _;
use vsc_eps::verify::{self, VerifyOptions};

const PRESCRIPTION: &str = include_str!("../data/ValidSignature.xml");
const CA_PEM: &str = include_str!("../data/NHS_INT_Level1D_Base64_pem.cer");

fn ca_der() -> Vec<u8> {
    vsc_pki::pem::pem_to_der(CA_PEM).unwrap_or_else(|e| panic!("the fixed CA is PEM: {e}"))
}

/// `PRESCRIPTION` with its signing certificate replaced by `der`.
fn with_certificate(der: &[u8]) -> String {
    let (open, close) = ("<X509Certificate>", "</X509Certificate>");
    let start = PRESCRIPTION.find(open).map(|i| i + open.len());
    let end = PRESCRIPTION.find(close);
    let (Some(start), Some(end)) = (start, end) else {
        panic!("the fixed prescription has an X509Certificate");
    };
    format!(
        "{}{}{}",
        &PRESCRIPTION[..start],
        base64::engine::general_purpose::STANDARD.encode(der),
        &PRESCRIPTION[end..]
    )
}

/// The target.
pub fn run(data: &[u8]) {
    let Some((&role, der)) = data.split_first() else {
        return;
    };
    let ca = ca_der();
    let base = VerifyOptions {
        allow_legacy_1024_bit_rsa: true,
        verification_time: Some(crate::prescription::verification_time()),
        ..VerifyOptions::default()
    };
    let given = [der];
    let (xml, options) = match role % 5 {
        0 => (
            PRESCRIPTION.to_owned(),
            VerifyOptions {
                trusted_ca_der: Some(&ca),
                crl_ders: &given,
                ..base
            },
        ),
        1 => (
            PRESCRIPTION.to_owned(),
            VerifyOptions {
                trusted_ca_der: Some(der),
                crl_ders: &given,
                ..base
            },
        ),
        2 => (
            PRESCRIPTION.to_owned(),
            VerifyOptions {
                trusted_ca_der: Some(&ca),
                intermediate_ca_ders: &given,
                ..base
            },
        ),
        3 => (
            with_certificate(der),
            VerifyOptions {
                trusted_ca_der: Some(&ca),
                ..base
            },
        ),
        _ => {
            let _ = verify::certificate_is_self_issued(der);
            return;
        }
    };
    if let Err(e) = verify::verify_prescription(&xml, &options) {
        panic!("a DER input made the fixed prescription unreadable: {e}");
    }
}
