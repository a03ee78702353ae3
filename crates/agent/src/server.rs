//! The calls the agent makes to the vsc server, over HTTPS that trusts only the instance's CA.
//!
//! | call | route |
//! |---|---|
//! | [`ServerLink::create_request`] | `POST /api/v1/auth/requests` |
//! | [`ServerLink::poll`] | `GET /api/v1/auth/requests/{id}?wait=S` (`X-Vsc-Request-Secret`) |
//! | [`ServerLink::cancel`] | `POST /api/v1/auth/requests/{id}/cancel` (`X-Vsc-Request-Secret`) |
//! | [`ServerLink::session`] | `GET /api/v1/session` (ticket) |
//! | [`ServerLink::select_role`] | `POST /api/v1/session/role` (ticket) |
//! | [`ServerLink::logout`] | `POST /api/v1/session/logout` (ticket) |
//! | [`ServerLink::validate`] | `POST /api/v1/tickets/validate` (what a relying system asks) |
//!
//! JSON calls go through the authenticator's pinned [`Client`]. Two things it cannot do yet —
//! a `POST` with the request secret header (cancel), and accept the empty `204` answer of a
//! logout — go through a second HTTP client built with the same trust anchor, whose errors are
//! the same [`ClientError`]s.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::de::DeserializeOwned;
use url::Url;
use vsc_authenticator::client::parse_fingerprint;
use vsc_authenticator::{Client, ClientError, PinnedRootVerifier};
use vsc_proto::signin::{
    AuthContext, AuthRequestCreated, AuthRequestOutcome, CreateAuthRequest, SelectRole,
    SessionInfo, TicketValidation, ValidateTicket,
};

/// The header carrying a request's poll secret.
const REQUEST_SECRET_HEADER: &str = "x-vsc-request-secret";
/// Long enough for the longest long-poll the server allows (30 s) plus a margin.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the agent recognises its server: the instance root CA, or its SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTrust {
    /// The root CA certificate (PEM): the only trust anchor.
    RootPem(String),
    /// The root CA's SHA-256 fingerprint (hex, colons allowed): the presented chain must contain
    /// that certificate and verify up to it.
    Fingerprint(String),
}

/// A connection to one vsc server.
#[derive(Debug, Clone)]
pub struct ServerLink {
    api: Client,
    raw: reqwest::Client,
}

impl ServerLink {
    /// A link to `server`, trusting only what `trust` names. Checks the URL and the trust
    /// anchor; makes no connection.
    pub fn new(server: &Url, trust: &ServerTrust) -> Result<ServerLink, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let (api, mut config) = match trust {
            ServerTrust::Fingerprint(fp) => {
                let pin = parse_fingerprint(fp)?;
                let config = builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(PinnedRootVerifier::new(pin)))
                    .with_no_client_auth();
                (Client::with_fingerprint(server.clone(), fp)?, config)
            }
            ServerTrust::RootPem(pem) => {
                let api = Client::with_root_pem(server.clone(), pem)?;
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| ClientError::BadRoot(e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| ClientError::BadRoot(e.to_string()))?;
                }
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| ClientError::BadRoot(e.to_string()))?;
                (
                    api,
                    builder.with_webpki_verifier(verifier).with_no_client_auth(),
                )
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let raw = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("vsc-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(error_chain(&e)))?;
        Ok(ServerLink { api, raw })
    }

    /// The server's base URL (ends with `/`).
    pub fn base_url(&self) -> &Url {
        self.api.base_url()
    }

    /// The server's origin, for example `https://127.0.0.1:8443`.
    pub fn origin(&self) -> String {
        self.api.origin()
    }

    /// Opens an authentication request for `uid`, bound to `context`.
    pub async fn create_request(
        &self,
        uid: &str,
        context: &AuthContext,
    ) -> Result<AuthRequestCreated, ClientError> {
        self.api
            .post_json(
                "/api/v1/auth/requests",
                &CreateAuthRequest {
                    uid: uid.to_owned(),
                    context: context.clone(),
                },
                None,
            )
            .await
    }

    /// The request's outcome, waiting up to `wait_seconds` while it is pending. An approved
    /// request is collected by this call: the answer then carries the ticket, once.
    pub async fn poll(
        &self,
        request_id: &str,
        poll_secret: &str,
        wait_seconds: u64,
    ) -> Result<AuthRequestOutcome, ClientError> {
        let path = format!(
            "/api/v1/auth/requests/{}?wait={wait_seconds}",
            checked_id(request_id)?
        );
        self.api
            .get_json_with_headers(&path, &[(REQUEST_SECRET_HEADER, poll_secret)])
            .await
    }

    /// Withdraws a pending request. A request that is no longer pending answers
    /// `request_already_decided`.
    pub async fn cancel(&self, request_id: &str, poll_secret: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/auth/requests/{}/cancel", checked_id(request_id)?);
        let request = self
            .raw
            .post(self.url(&path)?)
            .header(REQUEST_SECRET_HEADER, poll_secret);
        self.send_raw::<serde_json::Value>(&path, request)
            .await
            .map(|_| ())
    }

    /// The session of `ticket` (this counts as use of the session).
    pub async fn session(&self, ticket: &str) -> Result<SessionInfo, ClientError> {
        // Looking must not count as use: only the person's own activity keeps a session alive.
        self.api
            .get_json("/api/v1/session?touch=false", Some(ticket))
            .await
    }

    /// Selects one of the session's roles.
    pub async fn select_role(
        &self,
        ticket: &str,
        position_id: &str,
    ) -> Result<SessionInfo, ClientError> {
        self.api
            .post_json(
                "/api/v1/session/role",
                &SelectRole {
                    position_id: position_id.to_owned(),
                },
                Some(ticket),
            )
            .await
    }

    /// Ends the session of `ticket` at once.
    pub async fn logout(&self, ticket: &str) -> Result<(), ClientError> {
        let path = "/api/v1/session/logout";
        let request = self.raw.post(self.url(path)?).bearer_auth(ticket);
        self.send_raw::<serde_json::Value>(path, request)
            .await
            .map(|_| ())
    }

    /// What a relying system learns from `ticket`.
    pub async fn validate(&self, ticket: &str) -> Result<TicketValidation, ClientError> {
        self.api
            .post_json(
                "/api/v1/tickets/validate",
                &ValidateTicket {
                    ticket: ticket.to_owned(),
                },
                None,
            )
            .await
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.api
            .base_url()
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Setup(format!("bad path {path}: {e}")))
    }

    /// Sends `request`; `None` for an empty success (`204`).
    async fn send_raw<R: DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<R>, ClientError> {
        let response = request.send().await.map_err(|e| self.connect_error(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.connect_error(&e))?;
        if !status.is_success() {
            if let Ok(err) = serde_json::from_slice::<vsc_proto::ErrorBody>(&body) {
                return Err(ClientError::Server {
                    status: status.as_u16(),
                    code: err.error.code,
                    message: err.error.message,
                });
            }
            let text = String::from_utf8_lossy(&body);
            return Err(ClientError::UnexpectedResponse {
                server: self.origin(),
                path: path.to_owned(),
                status: status.as_u16(),
                snippet: text.chars().take(200).collect(),
            });
        }
        if body.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ClientError::BadResponse {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    fn connect_error(&self, err: &reqwest::Error) -> ClientError {
        ClientError::Connect {
            server: self.origin(),
            detail: error_chain(err),
        }
    }
}

/// A request id as the server makes them; anything else is refused before it reaches a URL.
fn checked_id(id: &str) -> Result<&str, ClientError> {
    if !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(ClientError::BadResponse {
            path: "/api/v1/auth/requests".into(),
            reason: "the request id has characters a request id cannot have".into(),
        })
    }
}

/// Every message in an error's chain, joined, without repeats.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_check_their_inputs() {
        let url = Url::parse("https://127.0.0.1:8443").expect("url");
        let fp = "ab".repeat(32);
        let link = ServerLink::new(&url, &ServerTrust::Fingerprint(fp)).expect("link");
        assert_eq!(link.origin(), "https://127.0.0.1:8443");
        assert!(matches!(
            ServerLink::new(&url, &ServerTrust::Fingerprint("00ff".into())),
            Err(ClientError::BadFingerprint(_))
        ));
        assert!(matches!(
            ServerLink::new(&url, &ServerTrust::RootPem("nothing".into())),
            Err(ClientError::BadRoot(_))
        ));
        let http = Url::parse("http://127.0.0.1:8443").expect("url");
        assert!(matches!(
            ServerLink::new(&http, &ServerTrust::Fingerprint("ab".repeat(32))),
            Err(ClientError::NotHttps(_))
        ));
    }

    #[test]
    fn request_ids_are_checked_before_use() {
        assert!(checked_id("0f3a-B_9").is_ok());
        for bad in ["", "../session/logout", "a?b", "a/b", "a%2f"] {
            assert!(checked_id(bad).is_err(), "{bad}");
        }
    }
}
