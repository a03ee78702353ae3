//! The virtual smartcard: while a session is held (and the workstation is not locked), the
//! agent inserts a PIV card into vpcd, so PC/SC middleware (OpenSC, the PIV drivers built into
//! Windows and macOS) sees a card in a reader. Logout or lock removes it, as pulling a card
//! would, so the middleware forgets the login.
//!
//! The card application is `vsc-piv` (pure: APDUs in, APDUs out); the link is `vsc-vpcd`.
//! Nothing secret lives here: the PIN typed at the workstation is checked by the server (which
//! holds only its hash and counts wrong tries), and every private-key operation becomes a
//! request to the phone, which shows the workstation, the slot and a fingerprint of what it
//! signs, and signs with the key that never leaves it.

use std::time::Duration;
use vsc_proto::signing::state as signing_state;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::watch;
use vsc_piv::{Card, CardConfig, HostRequest, HostResult, KeyAlgorithm, Slot, Step};
use vsc_proto::card::CardOperation;

use crate::agent::{Agent, Ticket};

/// How often the presenter looks at the session.
const CHECK_EVERY: Duration = Duration::from_millis(300);
/// How long one poll for the phone's answer waits on the server.
const POLL_WAIT_SECONDS: u64 = 25;

/// How long a signature the phone declined is refused again without asking: OpenSC repeats a
/// refused GENERAL AUTHENTICATE several times by itself, and one "no" should not become four
/// questions.
const REMEMBER_DECLINE: Duration = Duration::from_secs(30);

/// The card as vpcd sees it: the PIV application, answering for the current session.
struct SessionCard {
    agent: Agent,
    ticket: Ticket,
    card: Card,
    /// Operations the phone declined lately: (slot, input, when).
    declined: Vec<(Slot, Vec<u8>, tokio::time::Instant)>,
}

impl vsc_vpcd::VirtualCard for SessionCard {
    fn atr(&self) -> Vec<u8> {
        vsc_piv::atr().to_vec()
    }

    fn power_off(&mut self) {
        self.card.reset();
    }

    fn power_on(&mut self) {
        self.card.reset();
    }

    fn reset(&mut self) {
        self.card.reset();
    }

    async fn transmit(&mut self, apdu: Vec<u8>) -> Vec<u8> {
        match self.card.process(&apdu) {
            Step::Reply(reply) => reply,
            Step::Host(HostRequest::Sign { slot, input, .. })
                if self.recently_declined(slot, &input) =>
            {
                self.card.resume(HostResult::Denied)
            }
            Step::Host(request) => {
                let operation = match &request {
                    HostRequest::Sign { slot, input, .. } => Some((*slot, input.clone())),
                    HostRequest::VerifyPin { .. } => None,
                };
                let result = host(&self.agent, &self.ticket, request).await;
                if let (HostResult::Denied, Some((slot, input))) = (&result, operation) {
                    self.declined
                        .push((slot, input, tokio::time::Instant::now()));
                }
                if let HostResult::PinWrong { tries_left } = &result {
                    self.card.set_pin_tries_left(*tries_left);
                }
                self.card.resume(result)
            }
        }
    }
}

impl SessionCard {
    fn recently_declined(&mut self, slot: Slot, input: &[u8]) -> bool {
        self.declined
            .retain(|(_, _, at)| at.elapsed() < REMEMBER_DECLINE);
        self.declined
            .iter()
            .any(|(s, i, _)| *s == slot && i.as_slice() == input)
    }
}

/// Carries out what the card asked of its host.
async fn host(agent: &Agent, ticket: &Ticket, request: HostRequest) -> HostResult {
    let link = agent.server();
    match request {
        HostRequest::VerifyPin { pin } => {
            let Ok(pin) = std::str::from_utf8(&pin) else {
                return HostResult::Failed;
            };
            let pin = zeroize::Zeroizing::new(pin.to_owned());
            match link.verify_card_pin(ticket, &pin).await {
                Ok(r) if r.correct => HostResult::PinCorrect,
                Ok(r) if r.blocked => {
                    // The server locked the card and ended its sessions: notice it now, so the
                    // card comes out of the reader.
                    agent.check_session().await;
                    HostResult::PinBlocked
                }
                Ok(r) => HostResult::PinWrong {
                    tries_left: r.tries_left,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "card PIN check failed");
                    HostResult::Failed
                }
            }
        }
        HostRequest::Sign { slot, input, .. } => {
            let operation = CardOperation {
                slot: match slot {
                    Slot::Authentication => "9a",
                    Slot::Signature => "9c",
                }
                .to_owned(),
                input: B64.encode(&input),
                purpose: None,
            };
            let created = match link.card_operation(ticket, &operation).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "the card operation was refused");
                    return HostResult::Denied;
                }
            };
            loop {
                match link
                    .signing_outcome(ticket, &created.request_id, POLL_WAIT_SECONDS)
                    .await
                {
                    Ok(o) if o.state == signing_state::PENDING => continue,
                    Ok(o) if o.state == signing_state::COMPLETED => {
                        return o
                            .signatures
                            .first()
                            .and_then(|s| B64.decode(&s.signature).ok())
                            .map_or(HostResult::Denied, HostResult::Signature);
                    }
                    Ok(o) => {
                        tracing::info!(state = %o.state, "the phone did not sign the card operation");
                        return HostResult::Denied;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the card operation");
                        return HostResult::Failed;
                    }
                }
            }
        }
    }
}

/// Builds the card for the session of `ticket`.
async fn session_card(agent: &Agent, ticket: &Ticket) -> Result<SessionCard, String> {
    let info = agent
        .server()
        .card_info(ticket)
        .await
        .map_err(|e| e.to_string())?;
    let decode = |b64: &str| {
        B64.decode(b64)
            .map_err(|_| "certificate not base64".to_owned())
    };
    let mut guid = [0u8; 16];
    let id_bytes = hex::decode(&info.card_id).unwrap_or_default();
    for (g, b) in guid
        .iter_mut()
        .zip(id_bytes.iter().chain(info.uid.as_bytes()))
    {
        *g = *b;
    }
    let serial = u32::from_be_bytes([guid[0], guid[1], guid[2], guid[3]]);
    let card = Card::new(CardConfig {
        guid,
        serial,
        auth_certificate: decode(&info.auth_certificate)?,
        auth_algorithm: KeyAlgorithm::EccP256,
        sign_certificate: decode(&info.signing_certificate)?,
        sign_algorithm: KeyAlgorithm::EccP256,
        holder_name: info.holder_name,
        organisation: info.organisation,
        pin_tries_left: info.pin_tries_left,
    });
    Ok(SessionCard {
        agent: agent.clone(),
        ticket: ticket.clone(),
        card,
        declined: Vec::new(),
    })
}

impl Agent {
    /// Presents the card through vpcd (`mode`) while a session is held and the workstation is
    /// unlocked, and removes it otherwise, until `stop` becomes true.
    pub async fn present_card(&self, mode: vsc_vpcd::Mode, mut stop: watch::Receiver<bool>) {
        let mut inserted: Option<(String, watch::Sender<bool>, tokio::task::JoinHandle<()>)> = None;
        let mut interval = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let ticket = self.ticket();
            let current = inserted.as_ref().map(|(t, _, _)| t.clone());
            let wanted = ticket.as_ref().map(|t| t.expose().to_owned());
            if current == wanted {
                continue;
            }
            if let Some((_, remove, task)) = inserted.take() {
                let _ = remove.send(true);
                let _ = task.await;
                tracing::info!("the virtual card was removed");
            }
            let Some(ticket) = ticket else {
                continue;
            };
            match session_card(self, &ticket).await {
                Ok(card) => {
                    let (remove, removed) = watch::channel(false);
                    let config = vsc_vpcd::LinkConfig::new(mode);
                    let task = tokio::spawn(async move {
                        if let Err(e) = vsc_vpcd::run(config, card, removed).await {
                            tracing::error!(error = %e, "the virtual card cannot be presented");
                        }
                    });
                    tracing::info!(vpcd = %mode.addr(), "the virtual card is inserted");
                    inserted = Some((ticket.expose().to_owned(), remove, task));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the virtual card cannot be built for this session");
                    // Try again at the next tick only if the session changes.
                    let (remove, _) = watch::channel(true);
                    inserted = Some((ticket.expose().to_owned(), remove, tokio::spawn(async {})));
                }
            }
        }
        if let Some((_, remove, task)) = inserted.take() {
            let _ = remove.send(true);
            let _ = task.await;
        }
    }
}
