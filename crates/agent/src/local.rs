//! The agent's local API: JSON over HTTP on a loopback address only, for applications on this
//! workstation and for the `vsc agent …` subcommands.
//!
//! Every request must carry the agent secret ([`crate::secret`]) in `X-Vsc-Agent-Secret`;
//! without it, or with a wrong one, the answer is `401` with a JSON error. A `Host` header that
//! does not name a loopback address is refused too (`403`), so a web page cannot reach the API
//! through DNS rebinding. The one exception to the secret is `GET /v1/prove?nonce=…`, where the
//! agent proves to a client that it holds the secret before the client sends it (see
//! [`crate::secret`]). Errors are `{"error": {"code": "…", "message": "…"}}`, as on the
//! server.
//!
//! | route | what | answer |
//! |---|---|---|
//! | `GET /v1/ticket` | get-ticket: the ticket; signs the default UID in first when nobody is (the number shows in the agent's terminal and in `/v1/status`) | [`TicketAnswer`]; `423 locked` while locked |
//! | `GET /v1/ticket/no-auth` | get-ticket-no-auth: the ticket, or none; never signs in | [`TicketAnswer`] |
//! | `GET /v1/status[?check=true]` | the agent's state (no ticket); `check` asks the server about the session first | [`AgentStatus`] |
//! | `POST /v1/login {uid?, purpose?}` | sign in (waits for the phone) | [`AgentStatus`] |
//! | `POST /v1/cancel` | withdraw the request waiting for the phone | `{"cancelled": bool}` |
//! | `POST /v1/role {position_id}` | select a role (a position id, or a role code held once) | [`AgentStatus`] |
//! | `POST /v1/lock` | lock: the ticket is not handed out until an unlock; the server records the lock | [`AgentStatus`] |
//! | `POST /v1/unlock {uid?}` | unlock (for `uid`, whose session is parked here, when given): resume within the grace period, else a fresh phone approval keeping the role (waits for the phone) | [`AgentStatus`] with `last_unlock` |
//! | `POST /v1/logout {all?}` | end the active session (with `all`, the parked ones too) here and on the server at once | [`AgentStatus`] |
//! | `POST /v1/eps/sign {algorithm?, stamp_author_time?, prescriptions: [{id, xml}]}` | sign ParentPrescriptions with the phone (one approval for the batch) | [`SignedBatch`] |
//! | `POST /v1/eps/sign-xml?algorithm=&stamp_author_time=` (XML body) | sign one ParentPrescription: XML in, signed XML out | `application/xml` |
//! | `POST /v1/signing/prepare {algorithm?, stamp_author_time?, prescriptions}` | NHS Signing Service shape: base64 canonical SignedInfo per id (no phone) | `{algorithm, payloads: [{id, payload, digest, summary}]}` |
//! | `POST /v1/signing/sign {algorithm, payloads: [{id, payload, description?}]}` | sign prepared SignedInfo; the phone marks the descriptions unverified | `{signatures: [{id, signature}], certificate, failed_signatures}` |
//!
//! `algorithm` is `RS1` (rsa-sha1) or `RS256` (rsa-sha256, the default).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vsc_eps::sign::SignatureAlgorithm;
use vsc_https::ClientError;
use vsc_proto::signin::{SelectRole, SessionInfo};
use vsc_proto::signing::{SigningItem, SigningOutcome};
use vsc_proto::{ErrorBody, ErrorDetail};
use zeroize::Zeroize;

use crate::agent::Agent;
use crate::eps::{PreparedPayload, PrescriptionToSign, SignedBatch, prepare_prescriptions};
use crate::secret::{LocalSecret, NONCE_BYTES, PROOF_PATH, SECRET_HEADER};
use crate::{AgentError, Result};

/// Largest request body accepted by the session routes (the bodies are tiny).
const MAX_BODY: usize = 4096;
/// Largest body of the signing routes: a batch of prescriptions.
const MAX_SIGNING_BODY: usize = 16 * 1024 * 1024;

/// Where the agent's session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionState {
    /// Nobody is signed in.
    SignedOut,
    /// Nobody is signed in; a request is waiting for the phone.
    SigningIn,
    /// A session is held and its ticket is handed out.
    SignedIn,
    /// A session is held, but the workstation is locked: no ticket until an unlock.
    Locked,
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionState::SignedOut => "signed out",
            SessionState::SigningIn => "signing in",
            SessionState::SignedIn => "signed in",
            SessionState::Locked => "locked",
        })
    }
}

/// A request waiting for the phone: the number to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPrompt {
    /// Whose phone was asked.
    pub uid: String,
    /// The two-digit number the person must pick on the phone.
    pub number: u8,
    /// Why.
    pub purpose: String,
    /// When the request expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The answer of get-ticket and get-ticket-no-auth. The ticket is zeroized when this is
/// dropped and hidden from `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketAnswer {
    /// Where the session stands.
    pub state: SessionState,
    /// The ticket, when signed in.
    pub ticket: Option<String>,
    /// The session, when signed in.
    pub session: Option<SessionInfo>,
}

impl Drop for TicketAnswer {
    fn drop(&mut self) {
        self.ticket.zeroize();
    }
}

impl fmt::Debug for TicketAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketAnswer")
            .field("state", &self.state)
            .field("ticket", &self.ticket.as_ref().map(|_| "…"))
            .field("session", &self.session)
            .finish()
    }
}

/// What the agent holds (never the ticket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Where the session stands.
    pub state: SessionState,
    /// The vsc server.
    pub server: String,
    /// This workstation's id.
    pub workstation_id: String,
    /// This workstation's name.
    pub workstation_name: String,
    /// The agent's version.
    pub agent_version: String,
    /// The session, when signed in or locked.
    pub session: Option<SessionInfo>,
    /// The request waiting for the phone, if any.
    pub pending: Option<PendingPrompt>,
    /// Whom get-ticket signs in.
    pub default_uid: Option<String>,
    /// Why the last session ended.
    pub last_end: Option<String>,
    /// Locked sessions of other people kept on this workstation (fast user switching): each
    /// comes back with `vsc agent unlock --uid UID`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parked: Vec<SessionInfo>,
    /// How the last unlock went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_unlock: Option<UnlockReport>,
}

/// How an unlock went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockReport {
    /// Whose session was unlocked.
    pub uid: String,
    /// `true`: the server resumed the locked session within the grace period (no phone);
    /// `false`: a phone approval gave a new session.
    pub resumed_in_grace: bool,
    /// Seconds between the lock and the resume (grace resumes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_since_lock: Option<u64>,
    /// Whose session was locked and kept because this unlock switched person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked: Option<String>,
}

/// `POST /v1/unlock`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UnlockBody {
    /// Whom to unlock for: the active session's holder when absent, else a person whose
    /// session is parked here.
    pub uid: Option<String>,
}

/// `POST /v1/logout`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogoutBody {
    /// End the parked sessions of other people too.
    pub all: bool,
}

/// `POST /v1/login`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginBody {
    /// Whom to sign in; the agent's default UID when absent.
    pub uid: Option<String>,
    /// Why; the agent's configured purpose when absent.
    pub purpose: Option<String>,
}

/// `POST /v1/cancel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelAnswer {
    /// Whether a request was waiting.
    pub cancelled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusQuery {
    check: bool,
}

/// Binds the local API's listener, refusing any address that is not loopback.
pub async fn bind_loopback(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(AgentError::NotLoopback(addr));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(AgentError::Listen)
}

impl Agent {
    /// Serves the local API on `listener` (which must be bound to a loopback address) until
    /// `shutdown` completes, guarded by `secret`; watches the session meanwhile. At shutdown the
    /// request waiting for the phone is withdrawn and no new sign-in starts; the session itself
    /// is left to the caller (log out for "card removal").
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        secret: LocalSecret,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener.local_addr().map_err(AgentError::Listen)?;
        if !addr.ip().is_loopback() {
            return Err(AgentError::NotLoopback(addr));
        }
        let watcher = tokio::spawn(self.clone().watch());
        let agent = self.clone();
        let result = axum::serve(listener, router(self.clone(), secret))
            .with_graceful_shutdown(async move {
                shutdown.await;
                agent.close().await;
            })
            .await;
        watcher.abort();
        result.map_err(AgentError::Listen)
    }
}

/// The local API's routes, guarded by `secret`.
pub fn router(agent: Agent, secret: LocalSecret) -> Router {
    Router::new()
        .route("/v1/ticket", get(get_ticket))
        .route("/v1/ticket/no-auth", get(ticket_no_auth))
        .route("/v1/status", get(status))
        .route("/v1/login", post(login))
        .route("/v1/cancel", post(cancel))
        .route("/v1/role", post(select_role))
        .route("/v1/lock", post(lock))
        .route("/v1/unlock", post(unlock))
        .route("/v1/logout", post(logout))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .merge(
            Router::new()
                .route("/v1/eps/sign", post(eps_sign))
                .route("/v1/eps/sign-xml", post(eps_sign_xml))
                .route("/v1/signing/prepare", post(signing_prepare))
                .route("/v1/signing/sign", post(signing_sign))
                .layer(DefaultBodyLimit::max(MAX_SIGNING_BODY)),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::new(secret), guard))
        .with_state(agent)
}

/// The answer to `GET /v1/prove?nonce=<hex>`: `{"proof": hex(HMAC(secret, domain || nonce))}`.
fn prove(secret: &LocalSecret, query: &str) -> Response {
    let nonce = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("nonce="))
        .and_then(|h| hex::decode(h).ok())
        .and_then(|bytes| <[u8; NONCE_BYTES]>::try_from(bytes.as_slice()).ok());
    match nonce {
        Some(nonce) => Json(ProofAnswer {
            proof: hex::encode(secret.proof(&nonce)),
        })
        .into_response(),
        None => error_response(
            StatusCode::BAD_REQUEST,
            "nonce_invalid",
            "send a nonce of 32 random bytes as 64 hexadecimal digits: /v1/prove?nonce=…",
        ),
    }
}

/// The agent's proof that it holds the secret, for a client's nonce.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProofAnswer {
    /// HMAC-SHA256 under the secret, hex.
    pub proof: String,
}

fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
            },
        }),
    )
        .into_response()
}

/// Refuses callers without the secret, and `Host` headers that do not name loopback.
async fn guard(State(secret): State<Arc<LocalSecret>>, request: Request, next: Next) -> Response {
    if request.uri().path() == PROOF_PATH {
        // Answered here, before the secret check: the caller does not send the secret until
        // this answer has shown that the listener holds it.
        if let Some(host) = request.headers().get(header::HOST)
            && !is_loopback_host(host)
        {
            return error_response(
                StatusCode::FORBIDDEN,
                "host_not_loopback",
                "the agent answers only requests addressed to 127.0.0.1, [::1] or localhost",
            );
        }
        return prove(&secret, request.uri().query().unwrap_or(""));
    }
    match request.headers().get(SECRET_HEADER) {
        None => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "secret_missing",
                "send the agent secret (the content of agent.secret in the agent's home) in the X-Vsc-Agent-Secret header",
            );
        }
        Some(presented) if !secret.matches(presented.as_bytes()) => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "secret_wrong",
                "the X-Vsc-Agent-Secret header does not match this agent's secret; read it again from agent.secret in the agent's home",
            );
        }
        Some(_) => {}
    }
    if let Some(host) = request.headers().get(header::HOST)
        && !is_loopback_host(host)
    {
        return error_response(
            StatusCode::FORBIDDEN,
            "host_not_loopback",
            "the agent answers only requests addressed to 127.0.0.1, [::1] or localhost",
        );
    }
    next.run(request).await
}

/// Whether a `Host` header names a loopback address (with or without a port).
fn is_loopback_host(host: &HeaderValue) -> bool {
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((v6, _)) => v6,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A refusal of the local API.
enum LocalError {
    /// What the agent said.
    Agent(AgentError),
    /// A body that is not what the route expects.
    BadBody(String),
}

impl From<AgentError> for LocalError {
    fn from(e: AgentError) -> LocalError {
        LocalError::Agent(e)
    }
}

impl IntoResponse for LocalError {
    fn into_response(self) -> Response {
        let e = match self {
            LocalError::Agent(e) => e,
            LocalError::BadBody(reason) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("the request body is not what this endpoint expects: {reason}"),
                );
            }
        };
        let message = e.to_string();
        let (status, code) = match &e {
            AgentError::Locked => (StatusCode::LOCKED, "locked"),
            AgentError::TooManyParked { .. } => (StatusCode::CONFLICT, "too_many_locked_sessions"),
            AgentError::NotParked { .. } => (StatusCode::NOT_FOUND, "no_locked_session"),
            AgentError::NotSignedIn => (StatusCode::CONFLICT, "not_signed_in"),
            AgentError::NoUid => (StatusCode::CONFLICT, "no_uid"),
            AgentError::Declined => (StatusCode::FORBIDDEN, "declined"),
            AgentError::Reported => (StatusCode::FORBIDDEN, "reported"),
            AgentError::Failed => (StatusCode::FORBIDDEN, "failed"),
            AgentError::Expired => (StatusCode::GONE, "expired"),
            AgentError::Superseded => (StatusCode::CONFLICT, "superseded"),
            AgentError::Cancelled => (StatusCode::CONFLICT, "cancelled"),
            AgentError::SessionEnded(_) => (StatusCode::UNAUTHORIZED, "session_ended"),
            AgentError::SigningDeclined => (StatusCode::FORBIDDEN, "signing_declined"),
            AgentError::SigningExpired => (StatusCode::GONE, "signing_expired"),
            AgentError::Prescription { .. } => (StatusCode::BAD_REQUEST, "prescription_invalid"),
            AgentError::UnknownRole { .. } => (StatusCode::BAD_REQUEST, "unknown_role"),
            AgentError::AmbiguousRole { .. } => (StatusCode::BAD_REQUEST, "ambiguous_role"),
            AgentError::RoleNotRestored { .. } => (StatusCode::CONFLICT, "role_not_restored"),
            AgentError::LogoutUnconfirmed(_) => (StatusCode::BAD_GATEWAY, "logout_unconfirmed"),
            AgentError::Server(ClientError::Server {
                status,
                code,
                message,
            }) => {
                // The server's own refusal (card locked, blocked, too many requests): pass it on.
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                return error_response(status, code, message.clone());
            }
            AgentError::Server(_) => (StatusCode::BAD_GATEWAY, "server_unreachable"),
            AgentError::Refused {
                status,
                code,
                message,
            } => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                return error_response(status, code, message.clone());
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        error_response(status, code, message)
    }
}

type LocalResult<T> = std::result::Result<Json<T>, LocalError>;

fn body<T>(
    body: std::result::Result<Json<T>, JsonRejection>,
) -> std::result::Result<T, LocalError> {
    body.map(|Json(b)| b)
        .map_err(|rejection| LocalError::BadBody(rejection.body_text()))
}

fn algorithm_of(code: Option<&str>) -> std::result::Result<SignatureAlgorithm, LocalError> {
    match code.unwrap_or("RS256") {
        c @ ("RS1" | "RS256") => c
            .parse()
            .map_err(|_| LocalError::BadBody(format!("unknown algorithm {c}"))),
        other => Err(LocalError::BadBody(format!(
            "'{other}' is not a signing algorithm: use RS1 (rsa-sha1) or RS256"
        ))),
    }
}

/// `POST /v1/eps/sign` and `/v1/signing/prepare`.
#[derive(Debug, Deserialize)]
struct PrescriptionsBody {
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    stamp_author_time: bool,
    prescriptions: Vec<PrescriptionToSign>,
}

async fn eps_sign(
    State(agent): State<Agent>,
    request: std::result::Result<Json<PrescriptionsBody>, JsonRejection>,
) -> LocalResult<SignedBatch> {
    let request = body(request)?;
    let algorithm = algorithm_of(request.algorithm.as_deref())?;
    Ok(Json(
        agent
            .sign_prescriptions(algorithm, request.prescriptions, request.stamp_author_time)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
struct SignXmlQuery {
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    stamp_author_time: bool,
}

async fn eps_sign_xml(
    State(agent): State<Agent>,
    Query(query): Query<SignXmlQuery>,
    xml: String,
) -> std::result::Result<Response, LocalError> {
    let algorithm = algorithm_of(query.algorithm.as_deref())?;
    let batch = agent
        .sign_prescriptions(
            algorithm,
            vec![PrescriptionToSign {
                id: "prescription".into(),
                xml,
            }],
            query.stamp_author_time,
        )
        .await?;
    match (
        batch.signed.into_iter().next(),
        batch.failed_signatures.first(),
    ) {
        (Some(signed), _) => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            )],
            signed.xml,
        )
            .into_response()),
        (None, failure) => Ok(error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_signed",
            failure.map_or_else(|| "nothing was signed".to_owned(), |f| f.reason.clone()),
        )),
    }
}

#[derive(Debug, Serialize)]
struct PreparedAnswer {
    algorithm: String,
    payloads: Vec<PreparedPayload>,
}

async fn signing_prepare(
    request: std::result::Result<Json<PrescriptionsBody>, JsonRejection>,
) -> LocalResult<PreparedAnswer> {
    let request = body(request)?;
    let algorithm = algorithm_of(request.algorithm.as_deref())?;
    let mut prescriptions = request.prescriptions;
    if request.stamp_author_time {
        crate::eps::stamp_all(&mut prescriptions, OffsetDateTime::now_utc())?;
    }
    Ok(Json(PreparedAnswer {
        algorithm: algorithm.signing_service_code().to_owned(),
        payloads: prepare_prescriptions(algorithm, &prescriptions)?,
    }))
}

#[derive(Debug, Deserialize)]
struct SignPreparedBody {
    algorithm: String,
    payloads: Vec<SigningItem>,
}

async fn signing_sign(
    State(agent): State<Agent>,
    request: std::result::Result<Json<SignPreparedBody>, JsonRejection>,
) -> LocalResult<SigningOutcome> {
    let request = body(request)?;
    let algorithm = algorithm_of(Some(&request.algorithm))?;
    Ok(Json(
        agent.sign_prepared(algorithm, request.payloads).await?,
    ))
}

async fn get_ticket(State(agent): State<Agent>) -> LocalResult<TicketAnswer> {
    Ok(Json(agent.get_ticket().await?))
}

async fn ticket_no_auth(State(agent): State<Agent>) -> Json<TicketAnswer> {
    Json(agent.ticket_no_auth().await)
}

async fn status(State(agent): State<Agent>, Query(query): Query<StatusQuery>) -> Json<AgentStatus> {
    if query.check {
        Json(agent.check_session().await)
    } else {
        Json(agent.status())
    }
}

async fn login(
    State(agent): State<Agent>,
    request: std::result::Result<Json<LoginBody>, JsonRejection>,
) -> LocalResult<AgentStatus> {
    let request = body(request)?;
    let uid = request
        .uid
        .or_else(|| agent.status().default_uid)
        .ok_or(AgentError::NoUid)?;
    agent
        .login(&uid, request.purpose.as_deref(), |_| {})
        .await?;
    Ok(Json(agent.status()))
}

async fn cancel(State(agent): State<Agent>) -> Json<CancelAnswer> {
    Json(CancelAnswer {
        cancelled: agent.cancel_pending().await,
    })
}

async fn select_role(
    State(agent): State<Agent>,
    request: std::result::Result<Json<SelectRole>, JsonRejection>,
) -> LocalResult<AgentStatus> {
    let request = body(request)?;
    agent.select_role(&request.position_id).await?;
    Ok(Json(agent.status()))
}

async fn lock(State(agent): State<Agent>) -> LocalResult<AgentStatus> {
    agent.lock().await?;
    Ok(Json(agent.status()))
}

/// A missing body is an empty one (older clients send none).
fn optional_body<T: Default>(
    request: std::result::Result<Json<T>, JsonRejection>,
) -> std::result::Result<T, LocalError> {
    match request {
        Ok(Json(t)) => Ok(t),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(LocalError::BadBody(e.body_text())),
    }
}

async fn unlock(
    State(agent): State<Agent>,
    request: std::result::Result<Json<UnlockBody>, JsonRejection>,
) -> LocalResult<AgentStatus> {
    let request = optional_body(request)?;
    agent.unlock_as(request.uid.as_deref(), |_| {}).await?;
    Ok(Json(agent.status()))
}

async fn logout(
    State(agent): State<Agent>,
    request: std::result::Result<Json<LogoutBody>, JsonRejection>,
) -> LocalResult<AgentStatus> {
    let request = optional_body(request)?;
    if request.all {
        agent.logout_all().await?;
    } else {
        agent.logout().await?;
    }
    Ok(Json(agent.status()))
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such agent endpoint; see `vsc agent --help` for what the agent offers",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentConfig, Workstation};
    use crate::server::ServerTrust;

    /// An agent whose server is never contacted (nothing here needs it).
    fn offline_agent() -> Agent {
        let config = AgentConfig::new(
            url::Url::parse("https://127.0.0.1:9/").expect("url"),
            ServerTrust::Fingerprint("ab".repeat(32)),
            Workstation::new("ws-1", "TEST-PC"),
        );
        Agent::new(config).expect("agent")
    }

    async fn serve(
        agent: &Agent,
        secret: &LocalSecret,
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = bind_loopback("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let agent = agent.clone();
        let secret = secret.clone();
        tokio::spawn(async move {
            agent
                .serve(listener, secret, async move {
                    let _ = rx.await;
                })
                .await
        });
        (addr, tx)
    }

    fn plain_http() -> reqwest::Client {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .no_proxy()
            .build()
            .expect("client")
    }

    async fn error_of(response: reqwest::Response) -> (u16, String) {
        let status = response.status().as_u16();
        let body: ErrorBody = response.json().await.expect("a JSON error");
        (status, body.error.code)
    }

    #[tokio::test]
    async fn local_api_requires_the_secret() {
        let agent = offline_agent();
        let secret = LocalSecret::generate().expect("secret");
        let (addr, _stop) = serve(&agent, &secret).await;
        let http = plain_http();
        let url = format!("http://{addr}/v1/status");

        let missing = http.get(&url).send().await.expect("answer");
        assert_eq!(error_of(missing).await, (401, "secret_missing".into()));

        let other = LocalSecret::generate().expect("secret");
        let wrong = http
            .get(&url)
            .header(SECRET_HEADER, other.expose())
            .send()
            .await
            .expect("answer");
        assert_eq!(error_of(wrong).await, (401, "secret_wrong".into()));

        // The ticket routes are guarded the same way.
        for path in ["/v1/ticket", "/v1/ticket/no-auth"] {
            let r = http
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .expect("answer");
            assert_eq!(error_of(r).await, (401, "secret_missing".into()), "{path}");
        }
        let r = http
            .post(format!("http://{addr}/v1/logout"))
            .header(SECRET_HEADER, other.expose())
            .send()
            .await
            .expect("answer");
        assert_eq!(error_of(r).await, (401, "secret_wrong".into()));

        let right = http
            .get(&url)
            .header(SECRET_HEADER, secret.expose())
            .send()
            .await
            .expect("answer");
        assert_eq!(right.status().as_u16(), 200);
        let status: AgentStatus = right.json().await.expect("status");
        assert_eq!(status.state, SessionState::SignedOut);
        assert_eq!(status.workstation_name, "TEST-PC");

        let none = http
            .get(format!("http://{addr}/v1/ticket/no-auth"))
            .header(SECRET_HEADER, secret.expose())
            .send()
            .await
            .expect("answer");
        let answer: TicketAnswer = none.json().await.expect("answer");
        assert_eq!(answer.state, SessionState::SignedOut);
        assert_eq!(answer.ticket, None);

        // With the secret but nobody signed in: clear refusals, as JSON.
        let r = http
            .post(format!("http://{addr}/v1/lock"))
            .header(SECRET_HEADER, secret.expose())
            .send()
            .await
            .expect("answer");
        assert_eq!(error_of(r).await, (409, "not_signed_in".into()));
        let r = http
            .get(format!("http://{addr}/v1/ticket"))
            .header(SECRET_HEADER, secret.expose())
            .send()
            .await
            .expect("answer");
        assert_eq!(error_of(r).await, (409, "no_uid".into()));
        let r = http
            .get(format!("http://{addr}/v1/nothing"))
            .header(SECRET_HEADER, secret.expose())
            .send()
            .await
            .expect("answer");
        assert_eq!(error_of(r).await, (404, "not_found".into()));
        let r = http
            .post(format!("http://{addr}/v1/role"))
            .header(SECRET_HEADER, secret.expose())
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .expect("answer");
        assert_eq!(error_of(r).await, (400, "invalid_request".into()));
    }

    #[tokio::test]
    async fn foreign_host_headers_are_refused() {
        let agent = offline_agent();
        let secret = LocalSecret::generate().expect("secret");
        let (addr, _stop) = serve(&agent, &secret).await;
        let r = plain_http()
            .get(format!("http://{addr}/v1/status"))
            .header(SECRET_HEADER, secret.expose())
            .header("host", "evil.example:80")
            .send()
            .await
            .expect("answer");
        assert_eq!(error_of(r).await, (403, "host_not_loopback".into()));
        for ok in [
            "127.0.0.1:5",
            "localhost",
            "[::1]:80",
            "LOCALHOST:1",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "[::2]:80",
            "10.0.0.1:80",
            "[::1",
            "127.0.0.1.evil:80",
        ] {
            assert!(!is_loopback_host(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[tokio::test]
    async fn non_loopback_addresses_are_refused() {
        for addr in ["0.0.0.0:0", "192.0.2.10:8080", "[::]:0"] {
            let addr: SocketAddr = addr.parse().expect("addr");
            assert!(
                matches!(bind_loopback(addr).await, Err(AgentError::NotLoopback(a)) if a == addr),
                "{addr}"
            );
        }
        // A listener bound elsewhere by the caller is refused by serve as well.
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
            .await
            .expect("bind any");
        let err = offline_agent()
            .serve(
                listener,
                LocalSecret::generate().expect("secret"),
                std::future::pending(),
            )
            .await
            .expect_err("refused");
        assert!(matches!(err, AgentError::NotLoopback(_)), "{err}");
        assert!(err.to_string().contains("loopback"), "{err}");
        // IPv6 loopback is fine (where the host has it).
        if let Ok(l) = bind_loopback("[::1]:0".parse().expect("addr")).await {
            assert!(l.local_addr().expect("addr").ip().is_loopback());
        }
    }

    #[test]
    fn ticket_answers_hide_the_ticket() {
        let answer = TicketAnswer {
            state: SessionState::SignedIn,
            ticket: Some("secret-ticket".into()),
            session: None,
        };
        let shown = format!("{answer:?}");
        assert!(!shown.contains("secret-ticket"), "{shown}");
        let json = serde_json::to_value(&answer).expect("json");
        assert_eq!(json["state"], "signed-in");
    }
}
