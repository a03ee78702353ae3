//! [`LocalClient`]: talks to a running agent's loopback API with the agent secret; what the
//! `vsc agent ticket|status|role|lock|unlock|logout` subcommands use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vsc_proto::ErrorBody;
use vsc_proto::signin::SelectRole;

use crate::home::AgentHome;
use crate::local::{AgentStatus, CancelAnswer, LoginBody, TicketAnswer};
use crate::secret::{LocalSecret, SECRET_HEADER};
use crate::{AgentError, Result};

/// For answers that come at once.
const SHORT: Duration = Duration::from_secs(30);
/// For answers that wait for the phone (a request lives at most 10 minutes).
const LONG: Duration = Duration::from_secs(11 * 60);

/// A client of one running agent.
#[derive(Debug, Clone)]
pub struct LocalClient {
    http: reqwest::Client,
    addr: SocketAddr,
    secret: LocalSecret,
}

impl LocalClient {
    /// A client for the agent at `addr` (loopback only) with `secret`.
    pub fn new(addr: SocketAddr, secret: LocalSecret) -> Result<LocalClient> {
        if !addr.ip().is_loopback() {
            return Err(AgentError::NotLoopback(addr));
        }
        // Plain HTTP on loopback; TLS is set up only because the HTTP library insists, and
        // trusts nothing. No proxy may see the secret.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Internal(format!("TLS set-up: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("vsc-agent-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AgentError::Internal(format!("HTTP client set-up: {e}")))?;
        Ok(LocalClient { http, addr, secret })
    }

    /// A client for the agent running with `home`: its address from `agent.port`, its secret
    /// from `agent.secret`. [`AgentError::NoAgent`] when none has started there.
    pub fn for_home(home: &AgentHome) -> Result<LocalClient> {
        let no_agent = || AgentError::NoAgent {
            home: home.dir().to_owned(),
        };
        let addr = home.read_address()?.ok_or_else(no_agent)?;
        if !home.secret_path().exists() {
            return Err(no_agent());
        }
        let secret = LocalSecret::load(&home.secret_path())?;
        LocalClient::new(addr, secret)
    }

    /// The agent's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// get-ticket: waits while the agent signs the person in, if nobody is.
    pub async fn ticket(&self) -> Result<TicketAnswer> {
        self.call(Method::GET, "/v1/ticket", None::<&()>, LONG)
            .await
    }

    /// get-ticket-no-auth: the ticket or none, at once.
    pub async fn ticket_no_auth(&self) -> Result<TicketAnswer> {
        self.call(Method::GET, "/v1/ticket/no-auth", None::<&()>, SHORT)
            .await
    }

    /// The agent's state, from its memory.
    pub async fn status(&self) -> Result<AgentStatus> {
        self.call(Method::GET, "/v1/status", None::<&()>, SHORT)
            .await
    }

    /// The agent's state after it asked the server about the session.
    pub async fn check(&self) -> Result<AgentStatus> {
        self.call(Method::GET, "/v1/status?check=true", None::<&()>, SHORT)
            .await
    }

    /// Signs in through the agent (it waits for the phone); `uid` defaults to the agent's.
    pub async fn login(&self, uid: Option<&str>, purpose: Option<&str>) -> Result<AgentStatus> {
        let body = LoginBody {
            uid: uid.map(str::to_owned),
            purpose: purpose.map(str::to_owned),
        };
        self.call(Method::POST, "/v1/login", Some(&body), LONG)
            .await
    }

    /// Withdraws the request waiting for the phone; whether there was one.
    pub async fn cancel(&self) -> Result<bool> {
        let answer: CancelAnswer = self
            .call(Method::POST, "/v1/cancel", None::<&()>, SHORT)
            .await?;
        Ok(answer.cancelled)
    }

    /// Selects a role by position id or role code.
    pub async fn select_role(&self, selector: &str) -> Result<AgentStatus> {
        let body = SelectRole {
            position_id: selector.to_owned(),
        };
        self.call(Method::POST, "/v1/role", Some(&body), SHORT)
            .await
    }

    /// Locks the workstation.
    pub async fn lock(&self) -> Result<AgentStatus> {
        self.call(Method::POST, "/v1/lock", None::<&()>, SHORT)
            .await
    }

    /// Unlocks with a fresh phone approval (waits for the phone).
    pub async fn unlock(&self) -> Result<AgentStatus> {
        self.call(Method::POST, "/v1/unlock", None::<&()>, LONG)
            .await
    }

    /// Logs out: the session ends at once.
    pub async fn logout(&self) -> Result<AgentStatus> {
        self.call(Method::POST, "/v1/logout", None::<&()>, SHORT)
            .await
    }

    /// Signs prescriptions with the phone (`POST /v1/eps/sign`): one approval for the batch.
    pub async fn sign_prescriptions(
        &self,
        algorithm: &str,
        stamp_author_time: bool,
        prescriptions: &[crate::eps::PrescriptionToSign],
    ) -> Result<crate::eps::SignedBatch> {
        let body = serde_json::json!({
            "algorithm": algorithm,
            "stamp_author_time": stamp_author_time,
            "prescriptions": prescriptions,
        });
        self.call(Method::POST, "/v1/eps/sign", Some(&body), LONG)
            .await
    }

    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<R> {
        let url = format!("http://{}{path}", self.addr);
        let mut request = self
            .http
            .request(method, url)
            .header(SECRET_HEADER, self.secret.expose())
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| AgentError::AgentUnreachable {
            addr: self.addr,
            detail: e.to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => AgentError::Refused {
                    status: status.as_u16(),
                    code: e.error.code,
                    message: e.error.message,
                },
                Err(_) => AgentError::AgentUnreachable {
                    addr: self.addr,
                    detail: format!("HTTP {status} without an agent error; is this a vsc agent?"),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| AgentError::AgentUnreachable {
            addr: self.addr,
            detail: format!("its answer to {path} could not be read ({e}); is this a vsc agent of the same version?"),
        })
    }
}
