//! [`LocalClient`]: talks to a running agent's loopback API with the agent secret; what the
//! `vsc agent ticket|status|role|lock|unlock|logout` subcommands use.
//!
//! Before every call that carries the secret, the client makes the listener prove that it holds
//! the secret (`GET /v1/prove` with a fresh nonce, see [`crate::secret`]); a program squatting on
//! the agent's port cannot, and is never sent the secret.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vsc_proto::ErrorBody;
use vsc_proto::signin::SelectRole;

use crate::home::AgentHome;
use crate::local::{AgentStatus, CancelAnswer, LoginBody, ProofAnswer, TicketAnswer};
use crate::secret::{LocalSecret, PROOF_PATH, SECRET_HEADER};
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

    /// Unlocks for the person who locked: within the grace period without the phone, else
    /// with a fresh phone approval (waits for the phone).
    pub async fn unlock(&self) -> Result<AgentStatus> {
        self.unlock_as(None).await
    }

    /// Unlocks for `uid`, whose session is locked here (fast user switching), or for the
    /// active session's holder when `None`.
    pub async fn unlock_as(&self, uid: Option<&str>) -> Result<AgentStatus> {
        let body = crate::local::UnlockBody {
            uid: uid.map(str::to_owned),
        };
        self.call(Method::POST, "/v1/unlock", Some(&body), LONG)
            .await
    }

    /// Logs out: the active session ends at once (locked sessions of other people stay).
    pub async fn logout(&self) -> Result<AgentStatus> {
        self.call(Method::POST, "/v1/logout", None::<&()>, SHORT)
            .await
    }

    /// Logs out the active session and every locked one kept on this workstation.
    pub async fn logout_all(&self) -> Result<AgentStatus> {
        let body = crate::local::LogoutBody { all: true };
        self.call(Method::POST, "/v1/logout", Some(&body), SHORT)
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

    /// Checks that the listener at the agent's address holds the secret, without sending it.
    pub async fn verify_agent(&self) -> Result<()> {
        let nonce = LocalSecret::new_nonce()?;
        let url = format!(
            "http://{}{PROOF_PATH}?nonce={}",
            self.addr,
            hex::encode(nonce)
        );
        let not_the_agent = |detail: String| AgentError::AgentUnreachable {
            addr: self.addr,
            detail: format!(
                "{detail}; it did not prove that it holds this agent's secret, so the secret was not sent (another program may be listening on the agent's port: stop it and start the agent again)"
            ),
        };
        let response = self
            .http
            .get(url)
            .timeout(SHORT)
            .send()
            .await
            .map_err(|e| AgentError::AgentUnreachable {
                addr: self.addr,
                detail: e.to_string(),
            })?;
        if !response.status().is_success() {
            return Err(not_the_agent(format!("HTTP {}", response.status())));
        }
        let answer: ProofAnswer = response
            .json()
            .await
            .map_err(|e| not_the_agent(format!("an unreadable proof ({e})")))?;
        if !self.secret.proof_matches(&nonce, &answer.proof) {
            return Err(not_the_agent("a wrong proof".into()));
        }
        Ok(())
    }

    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<R> {
        self.verify_agent().await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A program squatting on the agent's port: records every request it receives and answers
    /// each with a made-up proof (it cannot compute the real one).
    async fn squatter() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    log.lock().expect("log").extend_from_slice(&got);
                    let body = format!(r#"{{"proof":"{}"}}"#, "00".repeat(32));
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn a_squatter_on_the_port_never_receives_the_secret() {
        let (addr, seen) = squatter().await;
        let secret = LocalSecret::generate().expect("secret");
        let client = LocalClient::new(addr, secret.clone()).expect("client");
        let err = client
            .status()
            .await
            .expect_err("the squatter is not the agent");
        assert!(
            err.to_string().contains("did not prove"),
            "a clear refusal: {err}"
        );
        let _ = client.ticket_no_auth().await.expect_err("refused as well");
        let seen = String::from_utf8_lossy(&seen.lock().expect("log")).into_owned();
        assert!(
            seen.contains("/v1/prove?nonce="),
            "it was asked to prove: {seen}"
        );
        assert!(
            !seen.contains(secret.expose()),
            "the secret reached the squatter"
        );
        assert!(!seen.to_ascii_lowercase().contains(SECRET_HEADER));
    }

    #[tokio::test]
    async fn the_real_agent_proves_itself_and_is_used() {
        let config = crate::agent::AgentConfig::new(
            url::Url::parse("https://127.0.0.1:9/").expect("url"),
            crate::server::ServerTrust::Fingerprint("ab".repeat(32)),
            crate::agent::Workstation::new("ws-1", "TEST-PC"),
        );
        let agent = crate::agent::Agent::new(config).expect("agent");
        let secret = LocalSecret::generate().expect("secret");
        let listener = crate::local::bind_loopback("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = secret.clone();
        tokio::spawn(async move {
            agent
                .serve(listener, served, async move {
                    let _ = stopped.await;
                })
                .await
        });
        let client = LocalClient::new(addr, secret).expect("client");
        client
            .verify_agent()
            .await
            .expect("the agent proves itself");
        let status = client.status().await.expect("status from the real agent");
        assert_eq!(status.state, crate::local::SessionState::SignedOut);
        // A client with another secret cannot be convinced by this agent either.
        let other =
            LocalClient::new(addr, LocalSecret::generate().expect("secret")).expect("client");
        assert!(other.verify_agent().await.is_err());
        let _ = stop.send(());
    }
}
