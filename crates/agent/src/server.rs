//! The calls the agent makes to the vsc server, over HTTPS that trusts only the instance's CA.
//!
//! | call | route |
//! |---|---|
//! | [`ServerLink::enrol_workstation`] | `POST /api/v1/workstations/enrol` (one-time code) |
//! | [`ServerLink::workstation_challenge`] | `POST /api/v1/workstations/challenge` |
//! | [`ServerLink::create_request`] | `POST /api/v1/auth/requests` (signed by a registered workstation) |
//! | [`ServerLink::poll`] | `GET /api/v1/auth/requests/{id}?wait=S` (`X-Vsc-Request-Secret`; `X-Vsc-Workstation-Signature` to collect) |
//! | [`ServerLink::cancel`] | `POST /api/v1/auth/requests/{id}/cancel` (`X-Vsc-Request-Secret`) |
//! | [`ServerLink::session`] | `GET /api/v1/session` (ticket) |
//! | [`ServerLink::select_role`] | `POST /api/v1/session/role` (ticket + agent key) |
//! | [`ServerLink::logout`] | `POST /api/v1/session/logout` (ticket + agent key) |
//! | [`ServerLink::validate`] | `POST /api/v1/tickets/validate` (what a relying system asks) |
//!
//! Every call goes through the pinned [`Client`] of `vsc-https`, which trusts only the root CA
//! (or fingerprint) the agent was configured with.

use crate::AgentError;
use crate::agent::Ticket;
use crate::workstation::RegisteredWorkstation;
use url::Url;
use vsc_https::{Client, ClientError};
use vsc_proto::ChallengeResponse;
use vsc_proto::routes;
use vsc_proto::signin::{
    AuthContext, AuthRequestCreated, AuthRequestOutcome, CreateAuthRequest, SelectRole,
    SessionInfo, TicketValidation, ValidateTicket, WORKSTATION_SIGNATURE_HEADER,
    WorkstationChallengeRequest,
};
use vsc_proto::workstation::{EnrolWorkstation, WorkstationEnrolled};

/// The header carrying a request's poll secret.
const REQUEST_SECRET_HEADER: &str = routes::headers::REQUEST_SECRET;

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
}

impl ServerLink {
    /// A link to `server`, trusting only what `trust` names. Checks the URL and the trust
    /// anchor; makes no connection.
    pub fn new(server: &Url, trust: &ServerTrust) -> Result<ServerLink, ClientError> {
        let api = match trust {
            ServerTrust::Fingerprint(fp) => Client::with_fingerprint(server.clone(), fp)?,
            ServerTrust::RootPem(pem) => Client::with_root_pem(server.clone(), pem)?,
        };
        Ok(ServerLink { api })
    }

    /// The server's base URL (ends with `/`).
    pub fn base_url(&self) -> &Url {
        self.api.base_url()
    }

    /// The server's origin, for example `https://127.0.0.1:8443`.
    pub fn origin(&self) -> String {
        self.api.origin()
    }

    /// Registers a workstation with a one-time code (see [`crate::workstation::enrol`]).
    pub async fn enrol_workstation(
        &self,
        request: &EnrolWorkstation,
    ) -> Result<WorkstationEnrolled, ClientError> {
        self.api
            .post_json(routes::WORKSTATION_ENROL, request, None)
            .await
    }

    /// A single-use challenge for the registered workstation `workstation_id` to sign.
    pub async fn workstation_challenge(
        &self,
        workstation_id: &str,
    ) -> Result<ChallengeResponse, ClientError> {
        self.api
            .post_json(
                routes::WORKSTATION_CHALLENGE,
                &WorkstationChallengeRequest {
                    workstation_id: workstation_id.to_owned(),
                },
                None,
            )
            .await
    }

    /// Opens an authentication request for `uid`, bound to `context`: signed over a fresh
    /// challenge by `workstation` when it is registered, unsigned (an unregistered workstation,
    /// refused unless the card's organisation allows them) when `None`.
    pub async fn create_request(
        &self,
        uid: &str,
        context: &AuthContext,
        workstation: Option<&RegisteredWorkstation>,
    ) -> Result<AuthRequestCreated, AgentError> {
        let proof = match workstation {
            Some(ws) => {
                let challenge = self.workstation_challenge(ws.id()).await?;
                Some(ws.open_proof(&challenge, uid, context, &self.origin())?)
            }
            None => None,
        };
        Ok(self
            .api
            .post_json(
                routes::AUTH_REQUESTS,
                &CreateAuthRequest {
                    uid: uid.to_owned(),
                    context: context.clone(),
                    workstation: proof,
                },
                None,
            )
            .await?)
    }

    /// The request's outcome, waiting up to `wait_seconds` while it is pending. An approved
    /// request is collected by this call: the answer then carries the ticket, once.
    /// `collect_signature` is a registered workstation's signature over the collection
    /// ([`RegisteredWorkstation::collect_signature`]); without it only requests of unregistered
    /// workstations are collected.
    pub async fn poll(
        &self,
        request_id: &str,
        poll_secret: &str,
        wait_seconds: u64,
        collect_signature: Option<&str>,
    ) -> Result<AuthRequestOutcome, ClientError> {
        let path = format!(
            "{}?wait={wait_seconds}",
            routes::fill(routes::AUTH_REQUEST, checked_id(request_id)?)
        );
        let mut headers = vec![(REQUEST_SECRET_HEADER, poll_secret)];
        if let Some(sig) = collect_signature {
            headers.push((WORKSTATION_SIGNATURE_HEADER, sig));
        }
        self.api.get_json_with_headers(&path, &headers).await
    }

    /// Withdraws a pending request. A request that is no longer pending answers
    /// `request_already_decided`.
    pub async fn cancel(&self, request_id: &str, poll_secret: &str) -> Result<(), ClientError> {
        let path = routes::fill(routes::AUTH_REQUEST_CANCEL, checked_id(request_id)?);
        let _: serde_json::Value = self
            .api
            .post_json_with_headers(
                &path,
                &serde_json::json!({}),
                &[(REQUEST_SECRET_HEADER, poll_secret)],
            )
            .await?;
        Ok(())
    }

    /// The session of `ticket` (this counts as use of the session).
    pub async fn session(&self, ticket: &str) -> Result<SessionInfo, ClientError> {
        // Looking must not count as use: only the person's own activity keeps a session alive.
        self.api
            .get_json(&format!("{}?touch=false", routes::SESSION), Some(ticket))
            .await
    }

    /// Selects one of the session's roles (the agent key goes with the ticket: a relying
    /// system holding only the ticket cannot change the role).
    pub async fn select_role(
        &self,
        ticket: &Ticket,
        position_id: &str,
    ) -> Result<SessionInfo, ClientError> {
        self.agent_post(
            ticket,
            routes::SESSION_ROLE,
            &SelectRole {
                position_id: position_id.to_owned(),
            },
        )
        .await
    }

    /// Ends the session of `ticket` at once (with the agent key: a relying system holding only
    /// the ticket cannot log the person out).
    pub async fn logout(&self, ticket: &Ticket) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .agent_post(ticket, routes::SESSION_LOGOUT, &serde_json::json!({}))
            .await?;
        Ok(())
    }

    /// Records on the server that the workstation locked the session of `ticket` (idempotent):
    /// the server then refuses card operations, signing and role changes in it until a resume.
    pub async fn lock_session(&self, ticket: &Ticket) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .agent_post(ticket, routes::SESSION_LOCK, &serde_json::json!({}))
            .await?;
        Ok(())
    }

    /// Re-opens the locked session of `ticket` without a phone approval; the server allows it
    /// only within the grace period of the session's organisation (`unlock_grace_over`
    /// otherwise, `session_not_locked` when it is not locked).
    pub async fn resume_session(
        &self,
        ticket: &Ticket,
    ) -> Result<vsc_proto::workstation::SessionResumed, ClientError> {
        self.agent_post(ticket, routes::SESSION_RESUME, &serde_json::json!({}))
            .await
    }

    /// The headers that prove the agent: the ticket and the session's agent key.
    fn agent_headers(ticket: &Ticket) -> Vec<(&'static str, String)> {
        let mut headers = vec![("authorization", format!("Bearer {}", ticket.expose()))];
        if let Some(key) = ticket.agent_key() {
            headers.push((vsc_proto::signin::AGENT_KEY_HEADER, key.to_owned()));
        }
        headers
    }

    async fn agent_get<R: serde::de::DeserializeOwned>(
        &self,
        ticket: &Ticket,
        path: &str,
    ) -> Result<R, ClientError> {
        let headers = Self::agent_headers(ticket);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.api.get_json_with_headers(path, &headers).await
    }

    async fn agent_post<B: serde::Serialize + ?Sized, R: serde::de::DeserializeOwned>(
        &self,
        ticket: &Ticket,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let headers = Self::agent_headers(ticket);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.api.post_json_with_headers(path, body, &headers).await
    }

    /// Opens a signing request in the session of `ticket`.
    pub async fn create_signing(
        &self,
        ticket: &Ticket,
        request: &vsc_proto::signing::CreateSigningRequest,
    ) -> Result<vsc_proto::signing::SigningRequestCreated, ClientError> {
        self.agent_post(ticket, routes::SIGNING_REQUESTS, request)
            .await
    }

    /// A signing request's outcome, waiting up to `wait_seconds` while it is pending.
    pub async fn signing_outcome(
        &self,
        ticket: &Ticket,
        request_id: &str,
        wait_seconds: u64,
    ) -> Result<vsc_proto::signing::SigningOutcome, ClientError> {
        let path = format!(
            "{}?wait={wait_seconds}",
            routes::fill(routes::SIGNING_REQUEST, checked_id(request_id)?)
        );
        self.agent_get(ticket, &path).await
    }

    /// The session's card: certificates, holder, PIN state.
    pub async fn card_info(
        &self,
        ticket: &Ticket,
    ) -> Result<vsc_proto::card::CardInfo, ClientError> {
        self.agent_get(ticket, routes::CARD).await
    }

    /// Checks a card PIN typed at this workstation (a wrong one uses up a try).
    pub async fn verify_card_pin(
        &self,
        ticket: &Ticket,
        pin: &str,
    ) -> Result<vsc_proto::card::CardPinResult, ClientError> {
        self.agent_post(
            ticket,
            routes::CARD_PIN_VERIFY,
            &vsc_proto::card::VerifyCardPin {
                pin: pin.to_owned(),
            },
        )
        .await
    }

    /// Sends a card private-key operation to the phone; collect it with
    /// [`ServerLink::signing_outcome`].
    pub async fn card_operation(
        &self,
        ticket: &Ticket,
        operation: &vsc_proto::card::CardOperation,
    ) -> Result<vsc_proto::signing::SigningRequestCreated, ClientError> {
        self.agent_post(ticket, routes::CARD_OPERATIONS, operation)
            .await
    }

    /// What a relying system learns from `ticket`.
    pub async fn validate(&self, ticket: &str) -> Result<TicketValidation, ClientError> {
        self.api
            .post_json(
                routes::TICKETS_VALIDATE,
                &ValidateTicket {
                    ticket: ticket.to_owned(),
                },
                None,
            )
            .await
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
            path: routes::AUTH_REQUESTS.into(),
            reason: "the request id has characters a request id cannot have".into(),
        })
    }
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
