//! The HTTPS client that talks to the vsc server and trusts only the instance's own root CA.
//!
//! Before enrolment the phone knows just the root CA's SHA-256 fingerprint, from the activation
//! link. [`PinnedRootVerifier`] looks among the certificates the server presents (leaf, issuing
//! CA, root) for the one with that fingerprint, makes it the only trust anchor, and verifies the
//! chain and the host name with rustls' WebPKI verifier. After enrolment the stored root PEM is
//! the only root ([`Client::with_root_pem`]; the authenticator's `ClientForHome::for_home` builds
//! it from an enrolled home); the system's trust store is never used. The workstation agent and
//! the CLI use the same two constructors with the fingerprint or root they were given.
//!
//! Server errors arrive as an HTTP status and a [`vsc_proto::ErrorBody`] and become
//! [`ClientError::Server`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a vsc error.
    #[error("{message} (server error {code}, HTTP {status})")]
    Server {
        /// HTTP status.
        status: u16,
        /// Stable machine code, for example `activation_expired`.
        code: String,
        /// The server's sentence for a person.
        message: String,
    },
    /// The server presented no certificate with the pinned fingerprint.
    #[error(
        "the server at {server} did not present the CA certificate with fingerprint {fingerprint}: the address is wrong, the fingerprint was mistyped, or something is intercepting the connection; check both with your RA before trying again"
    )]
    PinMismatch {
        /// The server's base URL.
        server: String,
        /// The fingerprint looked for (lowercase hex).
        fingerprint: String,
    },
    /// No connection, or TLS failed.
    #[error(
        "could not reach the vsc server at {server} ({detail}); check the server address, that the server is running and reachable from here, and that the CA fingerprint is the one your RA gave you"
    )]
    Connect {
        /// The server's base URL.
        server: String,
        /// What went wrong, from the HTTP and TLS layers.
        detail: String,
    },
    /// A failure status without a vsc error body.
    #[error(
        "the server at {server} answered HTTP {status} to {path} without a vsc error ({snippet}); check that the server address points at a vsc server"
    )]
    UnexpectedResponse {
        /// The server's base URL.
        server: String,
        /// The path requested.
        path: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        snippet: String,
    },
    /// A success status with a body this app cannot read.
    #[error(
        "the server's answer to {path} could not be read ({reason}); the server and this app may be different versions, so check for an app update"
    )]
    BadResponse {
        /// The path requested.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// Not a SHA-256 fingerprint.
    #[error(
        "a CA fingerprint is 64 hexadecimal digits (SHA-256), optionally separated by colons, and '{0}' is not one; check what your RA gave you"
    )]
    BadFingerprint(String),
    /// Not an https URL.
    #[error(
        "the server address must be an https:// URL, and '{0}' is not; check the address your RA gave you"
    )]
    NotHttps(String),
    /// The stored root CA cannot be used.
    #[error(
        "the stored root CA certificate cannot be used ({0}); move the home directory away and enrol again"
    )]
    BadRoot(String),
    /// The HTTP client could not be built.
    #[error("could not set up the HTTPS client ({0}); this is a bug, please report it")]
    Setup(String),
}

/// Parses a SHA-256 fingerprint: 64 hex digits, any case, colons and spaces ignored.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], ClientError> {
    let cleaned: String = s
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bytes = hex::decode(&cleaned).map_err(|_| ClientError::BadFingerprint(s.to_owned()))?;
    bytes
        .try_into()
        .map_err(|_| ClientError::BadFingerprint(s.to_owned()))
}

/// SHA-256 of a DER certificate.
pub fn sha256_fingerprint(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, der).as_ref());
    out
}

/// The error [`PinnedRootVerifier`] puts inside rustls' error when the pinned CA is absent.
#[derive(Debug)]
pub struct PinNotPresented {
    /// The fingerprint looked for (lowercase hex).
    pub fingerprint: String,
}

impl fmt::Display for PinNotPresented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "none of the server's certificates has the pinned CA fingerprint {}",
            self.fingerprint
        )
    }
}

impl std::error::Error for PinNotPresented {}

/// A rustls server-certificate verifier for the first contact: the trust anchor is whichever
/// presented certificate has the pinned SHA-256 fingerprint, and the chain and host name are
/// then verified against it alone by rustls' WebPKI verifier (aws-lc-rs provider).
#[derive(Debug)]
pub struct PinnedRootVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedRootVerifier {
    /// Pins the root CA with this SHA-256 fingerprint.
    pub fn new(pin: [u8; 32]) -> PinnedRootVerifier {
        PinnedRootVerifier {
            pin,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        }
    }
}

impl ServerCertVerifier for PinnedRootVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let anchor = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|c| sha256_fingerprint(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    PinNotPresented {
                        fingerprint: hex::encode(self.pin),
                    },
                ))))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("pinned CA: {e}")))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTPS client for one vsc server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    pin: Option<String>,
}

impl Client {
    /// A client that trusts only the presented CA whose SHA-256 fingerprint is `fingerprint`
    /// (hex, colons allowed). For the first contact, before enrolment.
    pub fn with_fingerprint(base: Url, fingerprint: &str) -> Result<Client, ClientError> {
        let pin = parse_fingerprint(fingerprint)?;
        let verifier = Arc::new(PinnedRootVerifier::new(pin));
        let config = config_builder()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Client::build(base, config, Some(hex::encode(pin)))
    }

    /// A client whose only trust anchor is the root CA in `root_pem`.
    pub fn with_root_pem(base: Url, root_pem: &str) -> Result<Client, ClientError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
            let cert = cert.map_err(|e| ClientError::BadRoot(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::BadRoot(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ClientError::BadRoot("no certificate in the PEM".to_owned()));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| ClientError::BadRoot(e.to_string()))?;
        let config = config_builder()?
            .with_webpki_verifier(verifier)
            .with_no_client_auth();
        Client::build(base, config, None)
    }

    fn build(
        mut base: Url,
        mut config: rustls::ClientConfig,
        pin: Option<String>,
    ) -> Result<Client, ClientError> {
        if base.scheme() != "https" || base.cannot_be_a_base() {
            return Err(ClientError::NotHttps(base.to_string()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // The name it had before this client left vsc-authenticator, so that the server's
            // logs read the same.
            .user_agent(concat!("vsc-authenticator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(error_chain(&e)))?;
        Ok(Client { http, base, pin })
    }

    /// The server's base URL (ends with `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The server's origin, for example `https://127.0.0.1:8443`.
    pub fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }

    /// `GET path`, optionally with a bearer token, and read a JSON answer.
    pub async fn get_json<R: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<R, ClientError> {
        let url = self.url(path)?;
        let mut request = self.http.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        self.send(path, request).await
    }

    /// `GET path`, optionally with a bearer token, and read a text answer (for example the
    /// server's Prometheus metrics).
    pub async fn get_text(&self, path: &str, bearer: Option<&str>) -> Result<String, ClientError> {
        let url = self.url(path)?;
        let mut request = self.http.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.connect_error(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.connect_error(&e))?;
        if !status.is_success() {
            return Err(self.status_error(path, status, &body));
        }
        String::from_utf8(body.to_vec()).map_err(|e| ClientError::BadResponse {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// `GET path` with extra request headers (for example a sign-in request's
    /// `X-Vsc-Request-Secret`), and read a JSON answer.
    pub async fn get_json_with_headers<R: DeserializeOwned>(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<R, ClientError> {
        let url = self.url(path)?;
        let mut request = self.http.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(path, request).await
    }

    /// `POST path` with a JSON body, optionally with a bearer token, and read a JSON answer.
    pub async fn post_json<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
        bearer: Option<&str>,
    ) -> Result<R, ClientError> {
        let url = self.url(path)?;
        let mut request = self.http.post(url).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        self.send(path, request).await
    }

    /// `POST path` with a JSON body and extra headers (such as a request's poll secret).
    pub async fn post_json_with_headers<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
        headers: &[(&str, &str)],
    ) -> Result<R, ClientError> {
        let url = self.url(path)?;
        let mut request = self.http.post(url).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(path, request).await
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Setup(format!("bad path {path}: {e}")))
    }

    /// `GET path` for a long-lived stream of server-sent events, with a bearer token. Returns
    /// the response once its headers arrived with a success status; the caller reads the body
    /// with [`Client::next_chunk`]. The body may stay open for up to `lifetime`; the caller is
    /// expected to notice a silent connection itself.
    pub async fn open_event_stream(
        &self,
        path: &str,
        bearer: &str,
        lifetime: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url(path)?;
        let response = self
            .http
            .get(url)
            .bearer_auth(bearer)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(reqwest::header::CACHE_CONTROL, "no-cache")
            .timeout(lifetime)
            .send()
            .await
            .map_err(|e| self.connect_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.map_err(|e| self.connect_error(&e))?;
            return Err(self.status_error(path, status, &body));
        }
        Ok(response)
    }

    /// The next piece of a streamed body (from [`Client::open_event_stream`]); `None` at its
    /// end. Feed the pieces to an [`SseParser`](crate::sse::SseParser).
    pub async fn next_chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        response
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(|e| self.connect_error(&e))
    }

    async fn send<R: DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<R, ClientError> {
        let response = request.send().await.map_err(|e| self.connect_error(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.connect_error(&e))?;
        if !status.is_success() {
            return Err(self.status_error(path, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The error for a failure status: the server's vsc error if the body is one.
    fn status_error(&self, path: &str, status: reqwest::StatusCode, body: &[u8]) -> ClientError {
        if let Ok(err) = serde_json::from_slice::<vsc_proto::ErrorBody>(body) {
            return ClientError::Server {
                status: status.as_u16(),
                code: err.error.code,
                message: err.error.message,
            };
        }
        let text = String::from_utf8_lossy(body);
        let snippet: String = text.chars().take(200).collect();
        ClientError::UnexpectedResponse {
            server: self.origin(),
            path: path.to_owned(),
            status: status.as_u16(),
            snippet,
        }
    }

    fn connect_error(&self, err: &reqwest::Error) -> ClientError {
        if pin_not_presented(err) {
            return ClientError::PinMismatch {
                server: self.origin(),
                fingerprint: self.pin.clone().unwrap_or_default(),
            };
        }
        ClientError::Connect {
            server: self.origin(),
            detail: error_chain(err),
        }
    }
}

fn config_builder()
-> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, ClientError> {
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientError::Setup(e.to_string()))
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

/// Whether the failure was [`PinnedRootVerifier`] not finding the pinned CA. The rustls error
/// sits inside one or more `io::Error`s, whose `source()` skips the wrapped error itself, so
/// each link of the chain is also unwrapped through `io::Error::get_ref`.
fn pin_not_presented(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        let mut layer: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(l) = layer {
            if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                inner,
            )))) = l.downcast_ref::<rustls::Error>()
                && inner.downcast_ref::<PinNotPresented>().is_some()
            {
                return true;
            }
            layer = l
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn std::error::Error + 'static));
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

    /// A root, an issuing CA and a leaf for `127.0.0.1`.
    pub(crate) struct TestPki {
        root: CertificateDer<'static>,
        issuing: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
    }

    fn ca_params(name: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    }

    fn make_pki(root_name: &str) -> TestPki {
        let root_key = KeyPair::generate().expect("key");
        let root_params = ca_params(root_name);
        let root = root_params.clone().self_signed(&root_key).expect("root");
        let root_issuer = Issuer::new(root_params, root_key);
        let issuing_key = KeyPair::generate().expect("key");
        let issuing_params = ca_params("issuing");
        let issuing = issuing_params
            .clone()
            .signed_by(&issuing_key, &root_issuer)
            .expect("issuing");
        let issuing_issuer = Issuer::new(issuing_params, issuing_key);
        let leaf_key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &issuing_issuer)
            .expect("leaf");
        TestPki {
            root: root.der().clone(),
            issuing: issuing.der().clone(),
            leaf: leaf.der().clone(),
        }
    }

    fn verify(
        verifier: &PinnedRootVerifier,
        chain: &[CertificateDer<'static>],
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from("127.0.0.1").expect("name");
        verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
    }

    #[test]
    fn pinned_root_is_the_only_anchor() {
        let pki = make_pki("root");
        let other = make_pki("other root");
        let verifier = PinnedRootVerifier::new(sha256_fingerprint(&pki.root));
        let full = [pki.leaf.clone(), pki.issuing.clone(), pki.root.clone()];
        verify(&verifier, &full).expect("chain with the pinned root is accepted");

        // Without the root in the chain: refused, with our error inside.
        let err = verify(&verifier, &[pki.leaf.clone(), pki.issuing.clone()])
            .expect_err("no pinned root");
        assert!(matches!(
            &err,
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))
                if inner.downcast_ref::<PinNotPresented>().is_some()
        ));

        // Another PKI's chain, even complete, is refused.
        let other_chain = [
            other.leaf.clone(),
            other.issuing.clone(),
            other.root.clone(),
        ];
        assert!(verify(&verifier, &other_chain).is_err());

        // The pinned root presented next to a chain it did not sign: the chain fails WebPKI.
        let mixed = [other.leaf.clone(), other.issuing.clone(), pki.root.clone()];
        let err = verify(&verifier, &mixed).expect_err("root does not sign this chain");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
            "{err:?}"
        );

        // The wrong host name is refused.
        let name = ServerName::try_from("example.org").expect("name");
        assert!(
            verifier
                .verify_server_cert(&full[0], &full[1..], &name, &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn fingerprints_parse_in_both_spellings() {
        let pki = make_pki("root");
        let fp = sha256_fingerprint(&pki.root);
        let plain = hex::encode(fp);
        let colons = fp
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&plain).expect("plain"), fp);
        assert_eq!(parse_fingerprint(&colons).expect("colons"), fp);
        assert!(matches!(
            parse_fingerprint("00ff"),
            Err(ClientError::BadFingerprint(_))
        ));
        assert!(matches!(
            parse_fingerprint(&"zz".repeat(32)),
            Err(ClientError::BadFingerprint(_))
        ));
    }

    #[test]
    fn root_pem_round_trips_and_only_https_is_allowed() {
        let pki = make_pki("root");
        let pem = crate::pem::encode("CERTIFICATE", &pki.root);
        let parsed: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("parses");
        assert_eq!(parsed, vec![pki.root.clone()]);
        let base = Url::parse("https://127.0.0.1:8443").expect("url");
        let client = Client::with_root_pem(base, &pem).expect("client");
        assert_eq!(client.base_url().as_str(), "https://127.0.0.1:8443/");
        assert_eq!(client.origin(), "https://127.0.0.1:8443");
        assert_eq!(
            client.url("/api/v1/enrol").expect("url").as_str(),
            "https://127.0.0.1:8443/api/v1/enrol"
        );
        let prefixed =
            Client::with_root_pem(Url::parse("https://h/vsc").expect("url"), &pem).expect("client");
        assert_eq!(
            prefixed.url("/api/v1/info").expect("url").as_str(),
            "https://h/vsc/api/v1/info"
        );
        assert!(matches!(
            Client::with_root_pem(Url::parse("http://h/").expect("url"), &pem),
            Err(ClientError::NotHttps(_))
        ));
        assert!(matches!(
            Client::with_root_pem(Url::parse("https://h/").expect("url"), "nothing"),
            Err(ClientError::BadRoot(_))
        ));
    }

    #[test]
    fn server_error_display_shows_message_and_code() {
        let e = ClientError::Server {
            status: 410,
            code: "activation_expired".to_owned(),
            message: "this activation code has expired; ask your RA for a new one".to_owned(),
        };
        let text = e.to_string();
        assert!(
            text.contains("has expired") && text.contains("activation_expired"),
            "{text}"
        );
    }
}
