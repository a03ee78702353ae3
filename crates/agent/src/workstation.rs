//! This workstation's registration with the vsc server.
//!
//! `vsc agent enrol --server URL --code CODE --name NAME` ([`enrol`]) makes an ECDSA P-256 key
//! here, sends a CSR with the one-time code an RA gave out, and keeps what comes back:
//!
//! * `workstation.key`: the private key (PKCS#8, PEM), mode 0600 — it never leaves this home;
//! * `workstation.json` ([`Registration`]): the registration id, the registered name and
//!   organisation, and the certificate the instance CA issued.
//!
//! From then on the agent signs every sign-in request it opens (over a server challenge) and
//! the collection of each ticket with this key ([`RegisteredWorkstation`]), and the phone is
//! shown the registered name and organisation.

use std::fmt;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use url::Url;
use vsc_https::fsutil;
use vsc_proto::ChallengeResponse;
use vsc_proto::signin::{AuthContext, AuthRequestCreated, WorkstationProof};
use vsc_proto::workstation::{EnrolWorkstation, WorkstationEnrolled};
use zeroize::Zeroizing;

use crate::home::AgentHome;
use crate::server::{ServerLink, ServerTrust};
use crate::{AgentError, Result};

const KEY_FILE: &str = "workstation.key";
const REGISTRATION_FILE: &str = "workstation.json";

/// What `workstation.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The server it is registered with.
    pub server: Url,
    /// Registration id.
    pub workstation_id: String,
    /// Registered name (what phones show).
    pub name: String,
    /// ODS code of the organisation.
    pub organisation: String,
    /// The organisation's name.
    pub organisation_name: String,
    /// The workstation certificate (PEM).
    pub certificate_pem: String,
}

/// A registered workstation: its registration and its key.
pub struct RegisteredWorkstation {
    /// The registration.
    pub registration: Registration,
    key: EcdsaKeyPair,
}

impl fmt::Debug for RegisteredWorkstation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredWorkstation")
            .field("registration", &self.registration)
            .finish_non_exhaustive()
    }
}

impl RegisteredWorkstation {
    /// A registration and the PKCS#8 key it was made for.
    pub fn new(registration: Registration, pkcs8: &[u8]) -> Result<RegisteredWorkstation> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
            .map_err(|_| AgentError::Internal("the workstation key is not ECDSA P-256".into()))?;
        Ok(RegisteredWorkstation { registration, key })
    }

    /// Registration id.
    pub fn id(&self) -> &str {
        &self.registration.workstation_id
    }

    /// Signs `msg` (ECDSA P-256 SHA-256); standard base64 of the DER signature.
    pub fn sign(&self, msg: &[u8]) -> Result<String> {
        let sig = self
            .key
            .sign(&SystemRandom::new(), msg)
            .map_err(|_| AgentError::Internal("signing with the workstation key failed".into()))?;
        Ok(B64.encode(sig.as_ref()))
    }

    /// The proof that opens a sign-in request for `uid` with `context` over `challenge`.
    pub fn open_proof(
        &self,
        challenge: &ChallengeResponse,
        uid: &str,
        context: &AuthContext,
        origin: &str,
    ) -> Result<WorkstationProof> {
        let statement = vsc_proto::signin::workstation_open_statement(
            &challenge.challenge_id,
            &challenge.nonce,
            self.id(),
            uid,
            &context.purpose,
            &context.agent_version,
            origin,
        );
        Ok(WorkstationProof {
            workstation_id: self.id().to_owned(),
            challenge_id: challenge.challenge_id.clone(),
            signature: self.sign(&statement)?,
        })
    }

    /// The signature that collects the ticket of `created` (header
    /// [`vsc_proto::signin::WORKSTATION_SIGNATURE_HEADER`]).
    pub fn collect_signature(&self, created: &AuthRequestCreated, origin: &str) -> Result<String> {
        self.sign(&vsc_proto::signin::workstation_collect_statement(
            &created.request_id,
            &created.nonce,
            self.id(),
            origin,
        ))
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AgentError {
    let path = path.to_path_buf();
    move |source| AgentError::Io {
        action,
        path,
        source,
    }
}

/// A new workstation key: (PKCS#8 DER, CSR DER).
fn new_key_and_csr(name: &str) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| AgentError::Internal(format!("cannot make a workstation key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let csr = params
        .serialize_request(&key)
        .map_err(|e| AgentError::Internal(format!("cannot make the CSR: {e}")))?;
    Ok((
        Zeroizing::new(key.serialized_der().to_vec()),
        csr.der().to_vec(),
    ))
}

/// Registers a workstation with `server` using the one-time `code` an RA gave out, as `name`:
/// makes a key here and sends its CSR. Returns the registered workstation and its key (PKCS#8),
/// kept nowhere: [`enrol`] keeps them in an agent home, in-process labs keep them in memory.
pub async fn register(
    server: &Url,
    trust: &ServerTrust,
    code: &str,
    name: &str,
) -> Result<(RegisteredWorkstation, Zeroizing<Vec<u8>>)> {
    let link = ServerLink::new(server, trust)?;
    let (pkcs8, csr) = new_key_and_csr(name.trim())?;
    let enrolled: WorkstationEnrolled = link
        .enrol_workstation(&EnrolWorkstation {
            code: code.trim().to_owned(),
            name: name.trim().to_owned(),
            csr: B64.encode(&csr),
        })
        .await?;
    let registration = Registration {
        server: server.clone(),
        workstation_id: enrolled.workstation_id,
        name: enrolled.name,
        organisation: enrolled.organisation,
        organisation_name: enrolled.organisation_name,
        certificate_pem: enrolled.certificate_pem,
    };
    Ok((RegisteredWorkstation::new(registration, &pkcs8)?, pkcs8))
}

/// Registers this workstation ([`register`]) and keeps the key (`workstation.key`, 0600) and
/// the registration (`workstation.json`) in `home`, replacing an earlier registration.
pub async fn enrol(
    home: &AgentHome,
    server: &Url,
    trust: &ServerTrust,
    code: &str,
    name: &str,
) -> Result<Registration> {
    let (ws, pkcs8) = register(server, trust, code, name).await?;
    // The key goes first: a registration file without its key would be useless.
    let key_path = home.dir().join(KEY_FILE);
    let pem = Zeroizing::new(vsc_https::pem::encode("PRIVATE KEY", &pkcs8));
    fsutil::write_private_atomic(&key_path, pem.as_bytes())
        .map_err(io_error("write", &key_path))?;
    save_registration(home, &ws.registration)?;
    Ok(ws.registration)
}

/// Points this home's registration at `server` (a lab server that came back on another port);
/// the registration itself does not change.
pub fn follow_server(home: &AgentHome, server: &Url) -> Result<()> {
    if let Some(ws) = load(home)?
        && ws.registration.server != *server
    {
        let mut registration = ws.registration;
        registration.server = server.clone();
        save_registration(home, &registration)?;
    }
    Ok(())
}

fn save_registration(home: &AgentHome, registration: &Registration) -> Result<()> {
    let path = home.dir().join(REGISTRATION_FILE);
    let mut bytes = serde_json::to_vec_pretty(registration)
        .map_err(|e| AgentError::Internal(format!("cannot encode workstation.json: {e}")))?;
    bytes.push(b'\n');
    fsutil::write_private_atomic(&path, &bytes).map_err(io_error("write", &path))
}

/// This home's registration with its key, if the workstation is registered.
pub fn load(home: &AgentHome) -> Result<Option<RegisteredWorkstation>> {
    let path = home.dir().join(REGISTRATION_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", &path)(e)),
    };
    let registration: Registration =
        serde_json::from_slice(&bytes).map_err(|e| AgentError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let key_path = home.dir().join(KEY_FILE);
    let meta = std::fs::metadata(&key_path).map_err(io_error("read", &key_path))?;
    if fsutil::accessible_by_others(&meta) {
        return Err(AgentError::SecretPermissions { path: key_path });
    }
    let pem =
        Zeroizing::new(std::fs::read_to_string(&key_path).map_err(io_error("read", &key_path))?);
    let pkcs8 = private_key_from_pem(&pem).ok_or_else(|| AgentError::Corrupt {
        path: key_path.clone(),
        reason: "not a PEM private key".into(),
    })?;
    let ws = RegisteredWorkstation::new(registration, pkcs8.secret_pkcs8_der()).map_err(|_| {
        AgentError::Corrupt {
            path: key_path.clone(),
            reason: "not an ECDSA P-256 key".into(),
        }
    })?;
    // The key must be the one the certificate was issued for: its public point (65 bytes,
    // uncompressed) sits inside the certificate's SubjectPublicKeyInfo.
    let point = ws.key.public_key().as_ref();
    let cert_has_key = CertificateDer::from_pem_slice(ws.registration.certificate_pem.as_bytes())
        .is_ok_and(|der| der.windows(point.len()).any(|w| w == point));
    if !cert_has_key {
        return Err(AgentError::Corrupt {
            path,
            reason: "the certificate is not for workstation.key; enrol again".into(),
        });
    }
    Ok(Some(ws))
}

/// The PKCS#8 key in `workstation.key`, held so that it is wiped when dropped.
fn private_key_from_pem(pem: &str) -> Option<Zeroizing<PrivatePkcs8KeyDer<'static>>> {
    PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_sign() {
        let (pkcs8, csr) = new_key_and_csr("WARD-7-PC-03").expect("key");
        assert!(!csr.is_empty());
        let pem = vsc_https::pem::encode("PRIVATE KEY", &pkcs8);
        let back = private_key_from_pem(&pem).expect("pem");
        assert_eq!(back.secret_pkcs8_der(), &pkcs8[..]);
        let ws = RegisteredWorkstation::new(
            Registration {
                server: Url::parse("https://127.0.0.1:8443").expect("url"),
                workstation_id: "w1".into(),
                name: "WARD-7-PC-03".into(),
                organisation: "RX1".into(),
                organisation_name: "Example".into(),
                certificate_pem: "-----BEGIN CERTIFICATE-----\n".into(),
            },
            back.secret_pkcs8_der(),
        )
        .expect("workstation");
        let sig = B64.decode(ws.sign(b"hello").expect("sign")).expect("b64");
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            ws.key.public_key().as_ref(),
        )
        .verify(b"hello", &sig)
        .expect("verifies");
    }
}
