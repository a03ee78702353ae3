//! The agent: one workstation's session, held in memory.
//!
//! An [`Agent`] signs a person in with their phone ([`Agent::login`]), keeps the ticket, hands it
//! out ([`Agent::get_ticket`] signs in first when there is none; [`Agent::ticket_no_auth`] never
//! does), selects a role ([`Agent::select_role`]), locks and unlocks the workstation
//! ([`Agent::lock`], [`Agent::unlock`]: a fresh phone approval that keeps the role), and logs out
//! ([`Agent::logout`]: the server session ends at once, like removing a smartcard).
//!
//! Locking (issue 14): the lock is recorded on the server, which then refuses the session's card
//! operations, signing and role changes, and its ticket at relying systems, until an unlock.
//! Unlocking first asks the server to resume the session without the phone (allowed only within
//! the grace period of the session's organisation), then falls back to a phone approval. Where
//! the organisation allows fast user switching, a second person signing in on a locked
//! workstation "parks" the first person's session, locked and alive, instead of logging it out
//! (at most [`MAX_PARKED`]); that person comes back with [`Agent::unlock_as`], which in turn
//! parks the session that was active. Parked sessions are watched like the active one and
//! dropped when they end on the server; nothing here keeps them alive.
//!
//! It notices a session that ended on the server (logout elsewhere, timeout, card cancelled or
//! locked): before handing out a ticket it asks the server about the session unless it did so
//! within [`AgentConfig::recheck_after`], and while it serves ([`Agent::serve`]) it asks again
//! when the session's idle or absolute deadline passes. Asking counts as use of the session on
//! the server, so the agent asks only at those moments.
//!
//! `Agent` is a cheap handle (`Clone`); all clones share one session. Sign-ins are serialised:
//! a second caller waits for the first sign-in and then uses its session.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use vsc_proto::signin::state;

use time::OffsetDateTime;
use tokio::sync::watch;
use url::Url;
use vsc_https::ClientError;
use vsc_proto::errors;
use vsc_proto::signin::{AuthContext, SessionInfo, SessionRole};
use zeroize::Zeroizing;

use crate::local::{AgentStatus, PendingPrompt, SessionState, TicketAnswer};
use crate::server::{ServerLink, ServerTrust};
use crate::workstation::RegisteredWorkstation;
use crate::{AgentError, Result};

/// The purpose of an ordinary sign-in, shown on the phone.
pub const PURPOSE_SIGN_IN: &str = "Sign in to clinical systems";
/// The purpose of an unlock, shown on the phone.
pub const PURPOSE_UNLOCK: &str = "Unlock workstation";
/// What the agent reports as its version in the sign-in context.
pub const AGENT_VERSION: &str = concat!("vsc-agent/", env!("CARGO_PKG_VERSION"));

/// How long one long-poll for the phone's answer waits on the server.
const POLL_WAIT_SECONDS: u64 = 25;
/// Pause before asking again after the server could not be reached.
const RETRY_PAUSE: Duration = Duration::from_secs(2);
/// How often the watcher looks at the session when nothing is due.
const WATCH_TICK: Duration = Duration::from_secs(30);
/// Slack after a deadline before the watcher asks the server (clocks differ a little).
const DEADLINE_SLACK: Duration = Duration::from_secs(2);
/// How many locked sessions of other people a workstation keeps (fast user switching).
pub const MAX_PARKED: usize = 4;
/// Shortest wait before asking the server again about a locked session (its deadline is only
/// estimated with the local clock, which may disagree with the server's).
const LOCKED_RECHECK_FLOOR: Duration = Duration::from_secs(10);
/// Server codes that mean the ticket is dead.
const ENDED_CODES: &[&str] = &[
    errors::SESSION_ENDED,
    errors::SESSION_EXPIRED,
    errors::SESSION_IDLE_TIMEOUT,
    errors::TICKET_INVALID,
];

/// The workstation as the phone shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workstation {
    /// Stable id (generated once per agent home).
    pub id: String,
    /// Name a person recognises; the host name by default.
    pub name: String,
    /// The workstation's address; `None` finds the local address used to reach the server.
    pub address: Option<String>,
}

impl Workstation {
    /// A workstation whose address is found when needed.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Workstation {
        Workstation {
            id: id.into(),
            name: name.into(),
            address: None,
        }
    }
}

/// Something the person at the workstation should know; see [`AgentConfig::on_event`].
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// A sign-in (or unlock) request is waiting: show `number`; the person types it on the phone
    /// (only the workstation is told the number).
    Number {
        /// Whose phone was asked.
        uid: String,
        /// The two-digit number to show.
        number: u8,
        /// Why (sign-in or unlock).
        purpose: String,
        /// When the request expires.
        expires_at: OffsetDateTime,
    },
    /// A session started. `selected_role` is `None` when the person has several roles to
    /// choose from.
    SignedIn {
        /// The session.
        session: SessionInfo,
    },
    /// A role was selected.
    RoleSelected {
        /// The session.
        session: SessionInfo,
    },
    /// A sign-in or unlock did not complete.
    SignInFailed {
        /// Why, and what to do next.
        message: String,
    },
    /// The workstation was locked.
    Locked,
    /// The workstation was unlocked with a new session.
    Unlocked {
        /// The new session.
        session: SessionInfo,
    },
    /// The session ended (logout here, or an end noticed on the server); the ticket is gone.
    SignedOut {
        /// Why.
        reason: String,
    },
    /// Something went wrong that does not stop the agent (the server unreachable for a check,
    /// a preset role that could not be selected).
    Warning {
        /// What happened.
        message: String,
    },
}

/// Receives [`AgentEvent`]s. Called without any agent lock held; keep it quick.
pub type EventHandler = Arc<dyn Fn(&AgentEvent) + Send + Sync>;

/// How an [`Agent`] is set up.
#[derive(Clone)]
pub struct AgentConfig {
    /// The vsc server's base URL.
    pub server: Url,
    /// How to trust it.
    pub trust: ServerTrust,
    /// This workstation.
    pub workstation: Workstation,
    /// The workstation's registration (`vsc agent enrol`): its key signs every request and
    /// collection, and phones show its registered name and organisation. `None`: an
    /// unregistered workstation, which only organisations that allow those accept.
    pub registration: Option<Arc<RegisteredWorkstation>>,
    /// Whom `get-ticket` signs in when nobody is signed in (updated by each sign-in).
    pub default_uid: Option<String>,
    /// A role (position id or role code) to select after a sign-in that leaves the choice open.
    pub default_role: Option<String>,
    /// The purpose of a sign-in started by `get-ticket`.
    pub purpose: String,
    /// How long a check of the session with the server stays good before a ticket is handed
    /// out again without asking (zero: ask every time).
    pub recheck_after: Duration,
    /// Where events go (the agent's terminal, a tray icon, a test).
    pub on_event: Option<EventHandler>,
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server", &self.server.as_str())
            .field("trust", &self.trust)
            .field("workstation", &self.workstation)
            .field("registration", &self.registration)
            .field("default_uid", &self.default_uid)
            .field("default_role", &self.default_role)
            .field("purpose", &self.purpose)
            .field("recheck_after", &self.recheck_after)
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}

impl AgentConfig {
    /// Defaults: no preset UID or role, the ordinary purpose, a check at most every 10 seconds.
    pub fn new(server: Url, trust: ServerTrust, workstation: Workstation) -> AgentConfig {
        AgentConfig {
            server,
            trust,
            workstation,
            registration: None,
            default_uid: None,
            default_role: None,
            purpose: PURPOSE_SIGN_IN.to_owned(),
            recheck_after: Duration::from_secs(10),
            on_event: None,
        }
    }
}

/// A session ticket: a bearer secret, with the session's agent key, which never leaves the agent
/// (signing and the virtual card need both). Zeroized when dropped; its `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket(Zeroizing<String>, Option<Zeroizing<String>>);

impl Ticket {
    /// Wraps a ticket.
    pub fn new(ticket: String) -> Ticket {
        Ticket(Zeroizing::new(ticket), None)
    }

    /// Wraps a ticket and the session's agent key.
    pub fn with_agent_key(ticket: String, agent_key: Option<String>) -> Ticket {
        Ticket(Zeroizing::new(ticket), agent_key.map(Zeroizing::new))
    }

    /// The ticket itself, to send to a relying system. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The session's agent key, for the server only (never hand it to a relying system).
    pub fn agent_key(&self) -> Option<&str> {
        self.1.as_deref().map(String::as_str)
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticket(…)")
    }
}

/// The session the agent holds.
struct Held {
    ticket: Ticket,
    info: SessionInfo,
    /// When the server last confirmed the session.
    checked_at: Instant,
    /// The session's idle timeout as the server applies it, learnt when the session was made.
    idle_len: time::Duration,
    /// When the watcher should ask the server next (idle or absolute deadline, local time).
    deadline: Instant,
}

impl Held {
    fn new(ticket: Ticket, info: SessionInfo) -> Held {
        let now = Instant::now();
        // A new session's idle deadline is counted from its creation, moments after the
        // approval (`auth_time`); both times are the server's, so clock skew does not matter.
        let idle_len = (info.idle_expires_at - info.auth_time)
            .clamp(time::Duration::seconds(30), time::Duration::days(1));
        Held {
            deadline: deadline_after(&info, idle_len, now),
            ticket,
            info,
            checked_at: now,
            idle_len,
        }
    }

    fn confirmed(&mut self, info: SessionInfo) {
        let now = Instant::now();
        self.deadline = if info.locked {
            locked_deadline(&info, now)
        } else {
            deadline_after(&info, self.idle_len, now)
        };
        self.info = info;
        self.checked_at = now;
    }
}

/// When the session's idle or absolute deadline passes, in local time, for `info` received at
/// `now`: the server's answer renewed the idle deadline, so it lies `idle_len` ahead, and the
/// absolute one `expires_at - idle_expires_at` further than that. Only server times are
/// compared, so the workstation's clock need not agree with the server's.
fn deadline_after(info: &SessionInfo, idle_len: time::Duration, now: Instant) -> Instant {
    let to_absolute = info.expires_at - info.idle_expires_at + idle_len;
    let left = Duration::try_from(idle_len.min(to_absolute)).unwrap_or(Duration::ZERO);
    now + left + DEADLINE_SLACK
}

/// When a locked session's idle or absolute deadline passes: a locked session is not used, so
/// the server's idle deadline stays where it was and only the local clock can tell how far it is.
fn locked_deadline(info: &SessionInfo, now: Instant) -> Instant {
    let left = info.idle_expires_at.min(info.expires_at) - OffsetDateTime::now_utc();
    let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
    now + left.max(LOCKED_RECHECK_FLOOR) + DEADLINE_SLACK
}

/// What trying to resume a locked session within the grace period found.
enum Resume {
    /// Resumed; seconds since the lock.
    Resumed(u64),
    /// Not possible without the phone (grace period over or off, not locked on the server, or
    /// the server could not say).
    NeedsPhone(String),
    /// The session ended on the server.
    Ended(String),
}

/// A request waiting for the phone.
struct Pending {
    request_id: String,
    poll_secret: Zeroizing<String>,
    prompt: PendingPrompt,
    cancel: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    held: Option<Held>,
    locked: bool,
    /// Locked sessions of other people kept on this workstation (fast user switching), oldest
    /// first; each is locked on the server.
    parked: Vec<Held>,
    /// How the last unlock went (for the local API's answer).
    last_unlock: Option<crate::local::UnlockReport>,
    pending: Option<Pending>,
    /// Why the last session ended.
    last_end: Option<String>,
    /// Changes whenever `held` is replaced, so a slow server answer about an old session
    /// never touches a newer one.
    generation: u64,
    default_uid: Option<String>,
}

struct Inner {
    config: AgentConfig,
    link: ServerLink,
    state: Mutex<State>,
    /// Serialises sign-ins and unlocks.
    signing: tokio::sync::Mutex<()>,
    /// Set by [`Agent::close`]: no new sign-ins.
    closed: AtomicBool,
}

/// The identity agent. Cheap to clone; clones share one session.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("server", &self.inner.config.server.as_str())
            .field("state", &self.status().state)
            .finish()
    }
}

/// What a check of the session with the server found.
enum Check {
    Alive,
    Ended,
    Unknown,
}

impl Agent {
    /// An agent for `config`. Checks the server URL and trust anchor; makes no connection.
    pub fn new(config: AgentConfig) -> Result<Agent> {
        let link = ServerLink::new(&config.server, &config.trust)?;
        let state = State {
            default_uid: config.default_uid.clone(),
            ..State::default()
        };
        Ok(Agent {
            inner: Arc::new(Inner {
                config,
                link,
                state: Mutex::new(state),
                signing: tokio::sync::Mutex::new(()),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The connection to the vsc server.
    pub fn server(&self) -> &ServerLink {
        &self.inner.link
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.inner.config
    }

    /// Sets whom `get-ticket` signs in when nobody is signed in.
    pub fn set_default_uid(&self, uid: Option<String>) {
        self.state().default_uid = uid;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, event: AgentEvent) {
        if let Some(handler) = &self.inner.config.on_event {
            handler(&event);
        }
    }

    /// Signs `uid` in: opens a request with `purpose` (the configured one when `None`), calls
    /// `on_number` with the number to show, waits for the phone, and keeps the new session (a
    /// session held before is logged out). Selects the configured default role when the choice
    /// is open. Dropping the returned future withdraws the request.
    pub async fn login(
        &self,
        uid: &str,
        purpose: Option<&str>,
        on_number: impl FnOnce(u8),
    ) -> Result<SessionInfo> {
        let _serial = self.inner.signing.lock().await;
        let purpose = purpose.unwrap_or(&self.inner.config.purpose).to_owned();
        self.login_serialised(uid, &purpose, on_number).await
    }

    async fn login_serialised(
        &self,
        uid: &str,
        purpose: &str,
        on_number: impl FnOnce(u8),
    ) -> Result<SessionInfo> {
        let park = self.may_park_for(uid).await?;
        let (ticket, mut info) = match self.sign_in(uid, purpose, on_number).await {
            Ok(signed_in) => signed_in,
            Err(e) => {
                self.emit(AgentEvent::SignInFailed {
                    message: e.to_string(),
                });
                return Err(e);
            }
        };
        if info.selected_role.is_none()
            && let Some(preset) = &self.inner.config.default_role
        {
            let chosen = match resolve_role(&info.roles, preset) {
                Ok(position) => self
                    .inner
                    .link
                    .select_role(&ticket, &position)
                    .await
                    .map_err(AgentError::from),
                Err(e) => Err(e),
            };
            match chosen {
                Ok(updated) => info = updated,
                Err(e) => self.emit(AgentEvent::Warning {
                    message: format!("the preset role could not be selected: {e}"),
                }),
            }
        }
        let (ended, parked) = {
            let mut s = self.state();
            let old = s.held.replace(Held::new(ticket, info.clone()));
            s.locked = false;
            s.generation += 1;
            s.last_end = None;
            s.last_unlock = None;
            s.default_uid = Some(info.uid.clone());
            // A locked session of the person who just signed in again is replaced by the new one.
            let (mut ended, kept): (Vec<Held>, Vec<Held>) = std::mem::take(&mut s.parked)
                .into_iter()
                .partition(|h| h.info.uid == info.uid);
            s.parked = kept;
            let mut parked = None;
            match old {
                // Fast user switching: the locked session stays, locked, for its holder to come
                // back to (the server recorded its lock in `may_park_for`).
                Some(mut old)
                    if park.as_deref() == Some(old.ticket.expose())
                        && s.parked.len() < MAX_PARKED =>
                {
                    old.deadline = locked_deadline(&old.info, Instant::now());
                    parked = Some(old.info.uid.clone());
                    s.parked.push(old);
                }
                Some(old) => ended.push(old),
                None => {}
            }
            (ended, parked)
        };
        if let Some(parked) = parked {
            self.emit(AgentEvent::Warning {
                message: format!(
                    "the session of {parked} stays locked on this workstation; they unlock it with `vsc agent unlock --uid {parked}`"
                ),
            });
        }
        self.emit(AgentEvent::SignedIn {
            session: info.clone(),
        });
        for old in ended {
            // A new sign-in replaces the old session ("another card inserted").
            let _ = self.inner.link.logout(&old.ticket).await;
        }
        Ok(info)
    }

    /// Before `uid` signs in: whether the held session will be parked rather than ended (fast
    /// user switching: it is locked, its organisation allows switching, and it is somebody
    /// else's), as the ticket to park. The server must have recorded the lock, so it is reported
    /// again here (idempotent); if that fails the session is ended as without switching.
    /// Refuses when the workstation already keeps [`MAX_PARKED`] locked sessions.
    async fn may_park_for(&self, uid: &str) -> Result<Option<String>> {
        let candidate = {
            let s = self.state();
            match &s.held {
                Some(h) if s.locked && h.info.fast_user_switching && h.info.uid != uid => {
                    // A parked session of `uid` itself is about to be replaced, freeing its place.
                    let staying = s.parked.iter().filter(|p| p.info.uid != uid).count();
                    if staying >= MAX_PARKED {
                        return Err(AgentError::TooManyParked { max: MAX_PARKED });
                    }
                    Some(h.ticket.clone())
                }
                _ => None,
            }
        };
        let Some(ticket) = candidate else {
            return Ok(None);
        };
        match self.inner.link.lock_session(&ticket).await {
            Ok(()) => Ok(Some(ticket.expose().to_owned())),
            Err(e) => {
                self.emit(AgentEvent::Warning {
                    message: format!(
                        "the locked session could not be kept for its holder ({e}); it ends when the new person signs in"
                    ),
                });
                Ok(None)
            }
        }
    }

    /// One request to the phone, from opening to collecting. Does not touch the held session.
    async fn sign_in(
        &self,
        uid: &str,
        purpose: &str,
        on_number: impl FnOnce(u8),
    ) -> Result<(Ticket, SessionInfo)> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(AgentError::Cancelled);
        }
        let context = self.context(purpose).await;
        let registration = self.inner.config.registration.as_deref();
        let created = self
            .inner
            .link
            .create_request(uid, &context, registration)
            .await?;
        // A registered workstation signs the collection of its ticket (the request's nonce is
        // the challenge), so that nobody else who learns the request can collect it.
        let collect_signature = registration
            .map(|ws| ws.collect_signature(&created, &self.inner.link.origin()))
            .transpose()?;
        let request_id = created.request_id;
        let poll_secret = Zeroizing::new(created.poll_secret);
        let prompt = PendingPrompt {
            uid: uid.to_owned(),
            number: created.number,
            purpose: purpose.to_owned(),
            expires_at: created.expires_at,
        };
        let (cancel_tx, mut cancel_rx) = watch::channel(false);
        {
            let mut s = self.state();
            if let Some(previous) = s.pending.replace(Pending {
                request_id: request_id.clone(),
                poll_secret: poll_secret.clone(),
                prompt,
                cancel: cancel_tx,
            }) {
                // Cannot happen while sign-ins are serialised; if it did, stop the older one.
                let _ = previous.cancel.send(true);
            }
        }
        let mut guard = PendingGuard {
            agent: self.clone(),
            request_id: request_id.clone(),
            armed: true,
        };
        self.emit(AgentEvent::Number {
            uid: uid.to_owned(),
            number: created.number,
            purpose: purpose.to_owned(),
            expires_at: created.expires_at,
        });
        on_number(created.number);
        let left = Duration::try_from(created.expires_at - OffsetDateTime::now_utc())
            .unwrap_or(Duration::ZERO);
        // Past this (local) moment the server has surely expired the request.
        let give_up = Instant::now() + left + Duration::from_secs(30);
        let result = loop {
            let poll = self.inner.link.poll(
                &request_id,
                &poll_secret,
                POLL_WAIT_SECONDS,
                collect_signature.as_deref(),
            );
            let outcome = tokio::select! {
                outcome = poll => outcome,
                _ = cancel_rx.wait_for(|cancelled| *cancelled) => break Err(AgentError::Cancelled),
            };
            match outcome {
                Err(ClientError::Connect { .. }) if Instant::now() < give_up => {
                    // A network hiccup: the request is still waiting on the server.
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_PAUSE) => continue,
                        _ = cancel_rx.wait_for(|cancelled| *cancelled) => break Err(AgentError::Cancelled),
                    }
                }
                Err(e) => break Err(e.into()),
                Ok(o) => match o.state.as_str() {
                    state::PENDING | state::APPROVED => continue,
                    state::COLLECTED => match (o.ticket, o.session) {
                        (Some(ticket), Some(session)) => {
                            break Ok((Ticket::with_agent_key(ticket, o.agent_key), session));
                        }
                        _ => {
                            break Err(AgentError::UnexpectedState(
                                "collected, without a ticket".into(),
                            ));
                        }
                    },
                    state::DECLINED => break Err(AgentError::Declined),
                    state::REPORTED => break Err(AgentError::Reported),
                    state::FAILED => break Err(AgentError::Failed),
                    state::EXPIRED => break Err(AgentError::Expired),
                    state::SUPERSEDED => break Err(AgentError::Superseded),
                    state::CANCELLED => break Err(AgentError::Cancelled),
                    other => break Err(AgentError::UnexpectedState(other.to_owned())),
                },
            }
        };
        guard.armed = false;
        self.clear_pending(&request_id);
        result
    }

    fn clear_pending(&self, request_id: &str) -> Option<Pending> {
        let mut s = self.state();
        if s.pending.as_ref().map(|p| p.request_id.as_str()) == Some(request_id) {
            s.pending.take()
        } else {
            None
        }
    }

    /// The sign-in context of this workstation.
    async fn context(&self, purpose: &str) -> AuthContext {
        let mut ws = self.inner.config.workstation.clone();
        // A registered workstation is known by its registration (the server shows the
        // registry's name and the address it sees, whatever is claimed here).
        if let Some(reg) = &self.inner.config.registration {
            ws.id = reg.registration.workstation_id.clone();
            ws.name = reg.registration.name.clone();
        }
        let client_address = match &ws.address {
            Some(a) => a.clone(),
            None => local_address_towards(&self.inner.config.server)
                .await
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
        };
        AuthContext {
            workstation_id: ws.id.clone(),
            workstation_name: ws.name.clone(),
            client_address,
            agent_version: AGENT_VERSION.to_owned(),
            purpose: purpose.to_owned(),
            ..AuthContext::default()
        }
    }

    /// Withdraws the request waiting for the phone, if any; the sign-in waiting on it fails with
    /// [`AgentError::Cancelled`]. Returns whether there was one.
    pub async fn cancel_pending(&self) -> bool {
        let pending = self.state().pending.take();
        match pending {
            None => false,
            Some(p) => {
                let _ = p.cancel.send(true);
                // `request_already_decided` means the phone answered first; nothing to undo.
                let _ = self.inner.link.cancel(&p.request_id, &p.poll_secret).await;
                true
            }
        }
    }

    /// Stops new sign-ins and withdraws the pending one (when the agent stops).
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.cancel_pending().await;
    }

    /// get-ticket: the current ticket, signing the default UID in first when nobody is signed in
    /// (the number goes to [`AgentEvent::Number`]). Refused while the workstation is locked.
    pub async fn get_ticket(&self) -> Result<TicketAnswer> {
        if let Some(answer) = self.live_answer().await? {
            return Ok(answer);
        }
        let _serial = self.inner.signing.lock().await;
        // Somebody may have signed in while this caller waited.
        if let Some(answer) = self.live_answer().await? {
            return Ok(answer);
        }
        let uid = self.state().default_uid.clone().ok_or(AgentError::NoUid)?;
        let purpose = self.inner.config.purpose.clone();
        self.login_serialised(&uid, &purpose, |_| {}).await?;
        Ok(self.answer())
    }

    /// get-ticket-no-auth: the current ticket, or none (signed out, locked, or signing in);
    /// never starts a sign-in.
    pub async fn ticket_no_auth(&self) -> TicketAnswer {
        match self.live_answer().await {
            Ok(Some(answer)) => answer,
            Ok(None) | Err(_) => self.answer(),
        }
    }

    /// The current ticket as this agent knows it, without asking the server: `None` when
    /// nobody is signed in or the workstation is locked.
    pub fn ticket(&self) -> Option<Ticket> {
        let s = self.state();
        match (&s.held, s.locked) {
            (Some(h), false) => Some(h.ticket.clone()),
            _ => None,
        }
    }

    /// The held session's ticket when it is usable, after checking with the server if the last
    /// check is older than `recheck_after`. `Ok(None)`: nobody is signed in (any more).
    async fn live_answer(&self) -> Result<Option<TicketAnswer>> {
        let (ticket, generation, due) = {
            let s = self.state();
            let Some(held) = &s.held else {
                return Ok(None);
            };
            if s.locked {
                return Err(AgentError::Locked);
            }
            (
                held.ticket.clone(),
                s.generation,
                held.checked_at.elapsed() >= self.inner.config.recheck_after,
            )
        };
        if due {
            self.check(&ticket, generation).await;
        }
        let s = self.state();
        if s.locked && s.held.is_some() {
            return Err(AgentError::Locked);
        }
        Ok(s.held.as_ref().map(|h| TicketAnswer {
            state: SessionState::SignedIn,
            ticket: Some(h.ticket.expose().to_owned()),
            session: Some(h.info.clone()),
        }))
    }

    /// What get-ticket-no-auth says from the local state alone.
    fn answer(&self) -> TicketAnswer {
        let s = self.state();
        let state = session_state(&s);
        let (ticket, session) = match (&s.held, state) {
            (Some(h), SessionState::SignedIn) => {
                (Some(h.ticket.expose().to_owned()), Some(h.info.clone()))
            }
            _ => (None, None),
        };
        TicketAnswer {
            state,
            ticket,
            session,
        }
    }

    /// Asks the server about the session of `ticket` (this counts as use). Drops the session if
    /// the server says it ended.
    async fn check(&self, ticket: &Ticket, generation: u64) -> Check {
        match self.inner.link.session(ticket.expose()).await {
            Ok(info) => {
                let mut s = self.state();
                if s.generation == generation
                    && let Some(held) = s.held.as_mut()
                {
                    // The server is the authority on a lock: a session it reports locked is
                    // locked here too (never the other way round).
                    let locked = info.locked;
                    held.confirmed(info);
                    if locked {
                        s.locked = true;
                    }
                }
                Check::Alive
            }
            Err(ClientError::Server { code, message, .. })
                if ENDED_CODES.contains(&code.as_str()) =>
            {
                self.drop_session(generation, &format!("{message} ({code})"));
                Check::Ended
            }
            Err(e) => {
                {
                    let mut s = self.state();
                    if s.generation == generation
                        && let Some(held) = s.held.as_mut()
                    {
                        held.deadline = Instant::now() + WATCH_TICK;
                    }
                }
                self.emit(AgentEvent::Warning {
                    message: format!("could not check the session with the server: {e}"),
                });
                Check::Unknown
            }
        }
    }

    /// Forgets the session of `generation` (it ended on the server).
    fn drop_session(&self, generation: u64, reason: &str) {
        let dropped = {
            let mut s = self.state();
            if s.generation == generation && s.held.is_some() {
                s.held = None;
                s.locked = false;
                s.generation += 1;
                s.last_end = Some(reason.to_owned());
                true
            } else {
                false
            }
        };
        if dropped {
            self.emit(AgentEvent::SignedOut {
                reason: reason.to_owned(),
            });
        }
    }

    /// Asks the server about the held session now (it counts as use), and about the parked ones
    /// (which it does not), dropping those that ended. Returns the status afterwards.
    pub async fn check_session(&self) -> AgentStatus {
        let held = {
            let s = self.state();
            s.held.as_ref().map(|h| (h.ticket.clone(), s.generation))
        };
        if let Some((ticket, generation)) = held {
            self.check(&ticket, generation).await;
        }
        // The locked sessions kept here too (looking at them never counts as use).
        let parked: Vec<Ticket> = self
            .state()
            .parked
            .iter()
            .map(|p| p.ticket.clone())
            .collect();
        for ticket in parked {
            self.check_parked(&ticket).await;
        }
        self.status()
    }

    /// Selects one of the session's roles, by position id or by role code.
    pub async fn select_role(&self, selector: &str) -> Result<SessionInfo> {
        let (ticket, generation, roles) = {
            let s = self.state();
            let held = s.held.as_ref().ok_or(AgentError::NotSignedIn)?;
            if s.locked {
                return Err(AgentError::Locked);
            }
            (held.ticket.clone(), s.generation, held.info.roles.clone())
        };
        let position = match resolve_role(&roles, selector) {
            Ok(p) => p,
            Err(e) => {
                // The person may have been given a position since signing in: look again.
                match self.check(&ticket, generation).await {
                    Check::Alive => {}
                    Check::Ended => return Err(self.ended_error()),
                    Check::Unknown => return Err(e),
                }
                let roles = self
                    .state()
                    .held
                    .as_ref()
                    .map(|h| h.info.roles.clone())
                    .unwrap_or_default();
                resolve_role(&roles, selector)?
            }
        };
        match self.inner.link.select_role(&ticket, &position).await {
            Ok(info) => {
                {
                    let mut s = self.state();
                    if s.generation == generation
                        && let Some(held) = s.held.as_mut()
                    {
                        held.confirmed(info.clone());
                    }
                }
                self.emit(AgentEvent::RoleSelected {
                    session: info.clone(),
                });
                Ok(info)
            }
            Err(ClientError::Server { code, message, .. })
                if ENDED_CODES.contains(&code.as_str()) =>
            {
                self.drop_session(generation, &format!("{message} ({code})"));
                Err(self.ended_error())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn ended_error(&self) -> AgentError {
        AgentError::SessionEnded(
            self.state()
                .last_end
                .clone()
                .unwrap_or_else(|| "ended on the server".into()),
        )
    }

    /// Locks the workstation: the ticket is no longer handed out until an unlock, and the lock
    /// is recorded on the server (which then refuses the session's card operations, signing,
    /// role changes and ticket validations). The server session stays. If the server cannot be
    /// told, the workstation is still locked here and the unlock will ask the phone.
    pub async fn lock(&self) -> Result<()> {
        let (newly, ticket, generation) = {
            let mut s = self.state();
            let ticket = s
                .held
                .as_ref()
                .map(|h| h.ticket.clone())
                .ok_or(AgentError::NotSignedIn)?;
            (
                !std::mem::replace(&mut s.locked, true),
                ticket,
                s.generation,
            )
        };
        if newly {
            self.emit(AgentEvent::Locked);
        }
        match self.inner.link.lock_session(&ticket).await {
            Ok(()) => {}
            Err(ClientError::Server { code, message, .. })
                if ENDED_CODES.contains(&code.as_str()) =>
            {
                self.drop_session(generation, &format!("{message} ({code})"));
            }
            Err(e) => self.emit(AgentEvent::Warning {
                message: format!(
                    "the server could not record the lock ({e}); the workstation is locked here and unlocking will ask your phone"
                ),
            }),
        }
        Ok(())
    }

    /// Unlocks the workstation for the person who locked it: within the grace period of the
    /// session's organisation the server resumes the session without the phone; otherwise a
    /// fresh phone approval (purpose "Unlock workstation") gives a new session with the same
    /// role and the old session is logged out. If the phone does not approve, the workstation
    /// stays locked. Unlocking a workstation that is not locked changes nothing.
    pub async fn unlock(&self, on_number: impl FnOnce(u8)) -> Result<SessionInfo> {
        self.unlock_as(None, on_number).await
    }

    /// Unlocks for `uid` (the holder of the active session when `None`). When `uid` names a
    /// person whose session is parked here (fast user switching), that session comes back as in
    /// [`Agent::unlock`] and the session that was active is locked and parked in turn (or ended,
    /// where its organisation does not allow switching). How it went is in
    /// [`AgentStatus::last_unlock`].
    pub async fn unlock_as(
        &self,
        uid: Option<&str>,
        on_number: impl FnOnce(u8),
    ) -> Result<SessionInfo> {
        let _serial = self.inner.signing.lock().await;
        // Whom to unlock, and whether that switches person.
        let (target_uid, target_ticket, position, generation, switching, displaced) = {
            let mut s = self.state();
            s.last_unlock = None;
            let wanted = match uid {
                Some(u) => u.trim().to_owned(),
                None => s
                    .held
                    .as_ref()
                    .ok_or(AgentError::NotSignedIn)?
                    .info
                    .uid
                    .clone(),
            };
            let role = |h: &Held| h.info.selected_role.as_ref().map(|r| r.position_id.clone());
            if let Some(h) = s.held.as_ref().filter(|h| h.info.uid == wanted) {
                if !s.locked {
                    return Ok(h.info.clone());
                }
                (wanted, h.ticket.clone(), role(h), s.generation, false, None)
            } else if let Some(p) = s.parked.iter().find(|p| p.info.uid == wanted) {
                let found = (p.ticket.clone(), role(p));
                // The person at the workstation now is switched away from: lock it first.
                let displaced = s.held.as_ref().map(|h| (h.ticket.clone(), !s.locked));
                if displaced.is_some() && !s.locked {
                    s.locked = true;
                }
                (wanted, found.0, found.1, s.generation, true, displaced)
            } else {
                return Err(AgentError::NotParked { uid: wanted });
            }
        };
        // Only a session whose lock the server recorded may be kept (parked); otherwise it ends.
        let mut displaced_locked = false;
        if let Some((ticket, newly_locked)) = &displaced {
            if *newly_locked {
                self.emit(AgentEvent::Locked);
            }
            match self.inner.link.lock_session(ticket).await {
                Ok(()) => displaced_locked = true,
                Err(ClientError::Server { code, message, .. })
                    if ENDED_CODES.contains(&code.as_str()) =>
                {
                    self.drop_session(generation, &format!("{message} ({code})"));
                }
                Err(_) => {}
            }
        }
        // First without the phone, within the grace period; then with it. A parked session's
        // holder always approves on their phone: the person at the keyboard is somebody else's
        // (the server refuses a grace resume after another sign-in here anyway).
        let resumed_in_grace = if switching {
            Resume::NeedsPhone("another person's session is active here".into())
        } else {
            self.try_resume(&target_ticket).await
        };
        let (ticket, info, report) = match resumed_in_grace {
            Resume::Ended(reason) => {
                self.forget(&target_ticket, generation, &reason);
                let err = AgentError::SessionEnded(reason);
                self.emit(AgentEvent::SignInFailed {
                    message: err.to_string(),
                });
                return Err(err);
            }
            Resume::Resumed(seconds) => {
                let info = match self.inner.link.session(target_ticket.expose()).await {
                    Ok(info) => info,
                    Err(_) => {
                        let s = self.state();
                        let mut info = s
                            .held
                            .iter()
                            .chain(s.parked.iter())
                            .find(|h| h.ticket.expose() == target_ticket.expose())
                            .map(|h| h.info.clone())
                            .ok_or(AgentError::NotSignedIn)?;
                        info.locked = false;
                        info
                    }
                };
                let report = crate::local::UnlockReport {
                    uid: target_uid.clone(),
                    resumed_in_grace: true,
                    seconds_since_lock: Some(seconds),
                    parked: None,
                };
                (target_ticket.clone(), info, report)
            }
            Resume::NeedsPhone(why) => {
                tracing::debug!(reason = %why, "unlocking with the phone");
                let (ticket, info) = self.phone_unlock(&target_uid, position, on_number).await?;
                let report = crate::local::UnlockReport {
                    uid: target_uid.clone(),
                    resumed_in_grace: false,
                    seconds_since_lock: None,
                    parked: None,
                };
                (ticket, info, report)
            }
        };
        let resumed = report.resumed_in_grace;
        let mut to_end: Vec<Ticket> = Vec::new();
        let outcome = {
            let mut s = self.state();
            if !switching && s.generation != generation {
                // Logged out (or the session ended) while the phone was asked: do not revive it.
                // (A parked target is found by its ticket below, whatever happened meanwhile.)
                None
            } else {
                // Take the target out of where it was (the active seat or the parked list).
                let previous = if switching {
                    let i = s
                        .parked
                        .iter()
                        .position(|p| p.ticket.expose() == target_ticket.expose());
                    i.map(|i| s.parked.remove(i))
                } else {
                    s.held.take()
                };
                match previous {
                    None if resumed => None,
                    previous => {
                        let new = match previous {
                            Some(mut h) if resumed => {
                                h.confirmed(info.clone());
                                h
                            }
                            previous => {
                                if let Some(p) = previous {
                                    to_end.push(p.ticket);
                                }
                                Held::new(ticket.clone(), info.clone())
                            }
                        };
                        let displaced = if switching { s.held.take() } else { None };
                        s.held = Some(new);
                        s.locked = false;
                        s.generation += 1;
                        s.default_uid = Some(info.uid.clone());
                        let mut parked = None;
                        if let Some(mut d) = displaced {
                            if displaced_locked
                                && d.info.fast_user_switching
                                && s.parked.len() < MAX_PARKED
                            {
                                d.deadline = locked_deadline(&d.info, Instant::now());
                                parked = Some(d.info.uid.clone());
                                s.parked.push(d);
                            } else {
                                to_end.push(d.ticket);
                            }
                        }
                        let report = crate::local::UnlockReport { parked, ..report };
                        s.last_unlock = Some(report.clone());
                        Some(report)
                    }
                }
            }
        };
        let Some(_report) = outcome else {
            // Nothing here holds the session any more (logged out meanwhile): end it on the
            // server too, resumed or new, rather than leave it open with no agent.
            let _ = self.inner.link.logout(&ticket).await;
            return Err(self.ended_error());
        };
        self.emit(AgentEvent::Unlocked {
            session: info.clone(),
        });
        for t in to_end {
            let _ = self.inner.link.logout(&t).await;
        }
        Ok(info)
    }

    /// Asks the server to resume the locked session of `ticket` without the phone.
    async fn try_resume(&self, ticket: &Ticket) -> Resume {
        match self.inner.link.resume_session(ticket).await {
            Ok(r) => Resume::Resumed(r.seconds_since_lock),
            Err(ClientError::Server { code, message, .. })
                if ENDED_CODES.contains(&code.as_str()) =>
            {
                Resume::Ended(format!("{message} ({code})"))
            }
            // Grace period over or off, not locked on the server, or the server could not
            // say: the phone decides.
            Err(e) => Resume::NeedsPhone(e.to_string()),
        }
    }

    /// A fresh phone approval for `uid` (purpose "Unlock workstation") that restores `position`.
    async fn phone_unlock(
        &self,
        uid: &str,
        position: Option<String>,
        on_number: impl FnOnce(u8),
    ) -> Result<(Ticket, SessionInfo)> {
        let (ticket, mut info) = match self.sign_in(uid, PURPOSE_UNLOCK, on_number).await {
            Ok(signed_in) => signed_in,
            Err(e) => {
                self.emit(AgentEvent::SignInFailed {
                    message: e.to_string(),
                });
                return Err(e);
            }
        };
        if let Some(position_id) = position
            && info.selected_role.as_ref().map(|r| &r.position_id) != Some(&position_id)
        {
            match self.inner.link.select_role(&ticket, &position_id).await {
                Ok(updated) => info = updated,
                Err(e) => {
                    let _ = self.inner.link.logout(&ticket).await;
                    let err = AgentError::RoleNotRestored {
                        position_id,
                        reason: e.to_string(),
                    };
                    self.emit(AgentEvent::SignInFailed {
                        message: err.to_string(),
                    });
                    return Err(err);
                }
            }
        }
        Ok((ticket, info))
    }

    /// Forgets the session of `ticket`, active (of `generation`) or parked, that ended on the
    /// server.
    fn forget(&self, ticket: &Ticket, generation: u64, reason: &str) {
        let active = {
            let mut s = self.state();
            let before = s.parked.len();
            s.parked.retain(|p| p.ticket.expose() != ticket.expose());
            before == s.parked.len()
                && s.held
                    .as_ref()
                    .is_some_and(|h| h.ticket.expose() == ticket.expose())
        };
        if active {
            self.drop_session(generation, reason);
        }
    }

    /// Logs out: the ticket is dropped here at once and the server session ends ("card
    /// removal"); a sign-in waiting for the phone is withdrawn. Locked sessions of other people
    /// kept here (fast user switching) stay; [`Agent::logout_all`] ends them too. Logging out
    /// when nobody is signed in changes nothing.
    pub async fn logout(&self) -> Result<()> {
        self.logout_inner(false).await
    }

    /// Logs out the active session and every parked one.
    pub async fn logout_all(&self) -> Result<()> {
        self.logout_inner(true).await
    }

    async fn logout_inner(&self, all: bool) -> Result<()> {
        let (held, pending, parked) = {
            let mut s = self.state();
            let held = s.held.take();
            s.locked = false;
            s.last_unlock = None;
            if held.is_some() {
                s.generation += 1;
                s.last_end = Some("logged out".into());
            }
            let parked = if all {
                std::mem::take(&mut s.parked)
            } else {
                Vec::new()
            };
            (held, s.pending.take(), parked)
        };
        if let Some(p) = pending {
            let _ = p.cancel.send(true);
            let _ = self.inner.link.cancel(&p.request_id, &p.poll_secret).await;
        }
        let mut unconfirmed = None;
        for p in parked {
            match self.inner.link.logout(&p.ticket).await {
                Ok(()) => {}
                Err(ClientError::Server { code, .. }) if ENDED_CODES.contains(&code.as_str()) => {}
                Err(e) => unconfirmed = Some(e),
            }
        }
        let Some(held) = held else {
            return unconfirmed.map_or(Ok(()), |e| Err(AgentError::LogoutUnconfirmed(e)));
        };
        self.emit(AgentEvent::SignedOut {
            reason: "logged out".into(),
        });
        match self.inner.link.logout(&held.ticket).await {
            Ok(()) => {}
            Err(ClientError::Server { code, .. }) if ENDED_CODES.contains(&code.as_str()) => {}
            Err(e) => unconfirmed = Some(e),
        }
        unconfirmed.map_or(Ok(()), |e| Err(AgentError::LogoutUnconfirmed(e)))
    }

    /// What the agent holds, from its own state (no server call, no ticket).
    pub fn status(&self) -> AgentStatus {
        let s = self.state();
        let config = &self.inner.config;
        AgentStatus {
            state: session_state(&s),
            server: config.server.to_string(),
            workstation_id: config.workstation.id.clone(),
            workstation_name: config.workstation.name.clone(),
            agent_version: AGENT_VERSION.to_owned(),
            session: s.held.as_ref().map(|h| h.info.clone()),
            pending: s.pending.as_ref().map(|p| p.prompt.clone()),
            default_uid: s.default_uid.clone(),
            last_end: s.last_end.clone(),
            parked: s.parked.iter().map(|p| p.info.clone()).collect(),
            last_unlock: s.last_unlock.clone(),
        }
    }

    /// Asks the server about a parked session (without counting as use), dropping it here if
    /// it ended there.
    async fn check_parked(&self, ticket: &Ticket) {
        let outcome = self.inner.link.session(ticket.expose()).await;
        let mut ended = None;
        {
            let mut s = self.state();
            let Some(i) = s
                .parked
                .iter()
                .position(|p| p.ticket.expose() == ticket.expose())
            else {
                return;
            };
            match outcome {
                Ok(info) => s.parked[i].confirmed(info),
                Err(ClientError::Server { code, message, .. })
                    if ENDED_CODES.contains(&code.as_str()) =>
                {
                    let gone = s.parked.remove(i);
                    ended = Some((gone.info.uid, format!("{message} ({code})")));
                }
                Err(_) => s.parked[i].deadline = Instant::now() + WATCH_TICK,
            }
        }
        if let Some((uid, reason)) = ended {
            self.emit(AgentEvent::Warning {
                message: format!("the locked session of {uid} on this workstation ended: {reason}"),
            });
        }
    }

    /// Watches the deadlines of the held session and of the parked ones, and asks the server
    /// when one passes, so that a session that ended there (timeout, logout elsewhere, card
    /// cancelled) is dropped here. Runs until the returned future is dropped; [`Agent::serve`]
    /// runs it.
    pub async fn watch(self) {
        loop {
            let (due, parked_due) = {
                let s = self.state();
                (
                    s.held
                        .as_ref()
                        .map(|h| (h.deadline, h.ticket.clone(), s.generation)),
                    s.parked
                        .iter()
                        .min_by_key(|p| p.deadline)
                        .map(|p| (p.deadline, p.ticket.clone())),
                )
            };
            if let Some((deadline, ticket)) = &parked_due
                && Instant::now() >= *deadline
            {
                self.check_parked(ticket).await;
                continue;
            }
            let parked_wake = parked_due.map(|(d, _)| d);
            match due {
                Some((deadline, ticket, generation)) if Instant::now() >= deadline => {
                    if let Check::Ended = self.check(&ticket, generation).await {
                        continue;
                    }
                }
                Some((deadline, _, _)) => {
                    let wake = deadline
                        .min(parked_wake.unwrap_or(deadline))
                        .min(Instant::now() + WATCH_TICK);
                    tokio::time::sleep_until(wake.into()).await;
                }
                None => {
                    let wake = parked_wake
                        .unwrap_or_else(|| Instant::now() + WATCH_TICK)
                        .min(Instant::now() + WATCH_TICK);
                    tokio::time::sleep_until(wake.into()).await;
                }
            }
        }
    }
}

/// Withdraws a request when the sign-in waiting on it is dropped (Ctrl-C, a caller that went
/// away).
struct PendingGuard {
    agent: Agent,
    request_id: String,
    armed: bool,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(pending) = self.agent.clear_pending(&self.request_id) else {
            return;
        };
        let _ = pending.cancel.send(true);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let link = self.agent.inner.link.clone();
            runtime.spawn(async move {
                let _ = link.cancel(&pending.request_id, &pending.poll_secret).await;
            });
        }
    }
}

fn session_state(s: &State) -> SessionState {
    match (&s.held, s.locked, &s.pending) {
        (Some(_), true, _) => SessionState::Locked,
        (Some(_), false, _) => SessionState::SignedIn,
        (None, _, Some(_)) => SessionState::SigningIn,
        (None, _, None) => SessionState::SignedOut,
    }
}

/// The position `selector` names among `roles`: a position id, or a role code held once.
pub fn resolve_role(roles: &[SessionRole], selector: &str) -> Result<String> {
    let selector = selector.trim();
    if let Some(role) = roles.iter().find(|r| r.position_id == selector) {
        return Ok(role.position_id.clone());
    }
    let by_code: Vec<&SessionRole> = roles
        .iter()
        .filter(|r| r.role_code.eq_ignore_ascii_case(selector))
        .collect();
    match by_code.as_slice() {
        [one] => Ok(one.position_id.clone()),
        [] => Err(AgentError::UnknownRole {
            given: selector.to_owned(),
            choices: describe_roles(roles.iter()),
        }),
        many => Err(AgentError::AmbiguousRole {
            given: selector.to_owned(),
            choices: describe_roles(many.iter().copied()),
        }),
    }
}

/// "position id (role code role name at ODS organisation name)", joined with "; ".
pub fn describe_roles<'a>(roles: impl Iterator<Item = &'a SessionRole>) -> String {
    let list: Vec<String> = roles
        .map(|r| {
            format!(
                "{} ({} {} at {} {})",
                r.position_id, r.role_code, r.role_name, r.organisation, r.organisation_name
            )
        })
        .collect();
    if list.is_empty() {
        "none (you have no positions: ask your RA to assign one)".to_owned()
    } else {
        list.join("; ")
    }
}

/// The local address this computer uses to reach `server` (no packet is sent).
async fn local_address_towards(server: &Url) -> Option<IpAddr> {
    let host = server.host_str()?;
    let port = server.port_or_known_default()?;
    let target: SocketAddr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .ok()?
        .next()?;
    let unspecified = match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(unspecified, 0)).ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_of(uid: &str, switching: bool) -> SessionInfo {
        let now = OffsetDateTime::now_utc();
        SessionInfo {
            uid: uid.into(),
            given_name: "Test".into(),
            family_name: uid.into(),
            selected_role: None,
            roles: vec![],
            auth_time: now,
            idle_expires_at: now + time::Duration::minutes(15),
            expires_at: now + time::Duration::hours(12),
            card_renewal: None,
            licence_warning: None,
            locked: true,
            unlock_grace_minutes: 0,
            fast_user_switching: switching,
        }
    }

    #[tokio::test]
    async fn no_more_than_max_parked_sessions_are_kept() {
        // The server is unreachable: the refusal must come before any request to the phone.
        let agent = Agent::new(AgentConfig::new(
            Url::parse("https://127.0.0.1:9/").expect("url"),
            ServerTrust::Fingerprint("ab".repeat(32)),
            Workstation::new("ws-1", "TEST-PC"),
        ))
        .expect("agent");
        {
            let mut s = agent.state();
            s.held = Some(Held::new(
                Ticket::new("ticket-active".into()),
                session_of("100000000000", true),
            ));
            s.locked = true;
            s.parked = (1..=MAX_PARKED)
                .map(|i| {
                    Held::new(
                        Ticket::new(format!("ticket-{i}")),
                        session_of(&format!("20000000000{i}"), true),
                    )
                })
                .collect();
        }
        let refused = agent.login("300000000000", None, |_| {}).await;
        assert!(
            matches!(refused, Err(AgentError::TooManyParked { max: MAX_PARKED })),
            "{refused:?}"
        );
        assert!(agent.status().pending.is_none(), "no request was opened");
        assert_eq!(agent.status().parked.len(), MAX_PARKED);
        // Unlocking for somebody with no session here is refused the same way, at once.
        let unknown = agent.unlock_as(Some("300000000000"), |_| {}).await;
        assert!(
            matches!(unknown, Err(AgentError::NotParked { .. })),
            "{unknown:?}"
        );
    }

    fn role(position_id: &str, role_code: &str, org: &str) -> SessionRole {
        SessionRole {
            position_id: position_id.into(),
            role_code: role_code.into(),
            role_name: "Clinical Practitioner Access Role".into(),
            organisation: org.into(),
            organisation_name: format!("Trust {org}"),
            activities: vec![],
        }
    }

    #[test]
    fn roles_resolve_by_position_id_or_unique_role_code() {
        let roles = vec![
            role("p1", "S8000:G8000:R8000", "RX1"),
            role("p2", "S8000:G8000:R8000", "RX2"),
            role("p3", "S0080:G0450:R5080", "RX1"),
        ];
        assert_eq!(resolve_role(&roles, "p2").expect("by id"), "p2");
        assert_eq!(
            resolve_role(&roles, " s0080:g0450:r5080 ").expect("by code"),
            "p3"
        );
        let err = resolve_role(&roles, "S8000:G8000:R8000").expect_err("ambiguous");
        assert!(matches!(err, AgentError::AmbiguousRole { .. }), "{err}");
        assert!(
            err.to_string().contains("p1") && err.to_string().contains("p2"),
            "{err}"
        );
        let err = resolve_role(&roles, "nope").expect_err("unknown");
        assert!(matches!(err, AgentError::UnknownRole { .. }), "{err}");
        let err = resolve_role(&[], "p1").expect_err("none");
        assert!(err.to_string().contains("no positions"), "{err}");
    }

    #[test]
    fn tickets_do_not_show_in_debug_output() {
        let t = Ticket::new("very-secret-ticket".into());
        assert_eq!(format!("{t:?}"), "Ticket(…)");
        assert_eq!(t.expose(), "very-secret-ticket");
    }

    #[tokio::test]
    async fn local_address_is_found_for_a_loopback_server() {
        let url = Url::parse("https://127.0.0.1:8443/").expect("url");
        assert_eq!(
            local_address_towards(&url).await,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
    }
}
