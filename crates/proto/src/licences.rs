//! Wire types of virtual smartcard licences (`/api/v1/ra/licences…`, `vsc ra licences`).
//!
//! A national pool (held by the national organisation) is allocated to organisations in blocks,
//! one per approved application, each with a term. Dates travel as `YYYY-MM-DD` (UTC); a term
//! runs from the start of its start day to the end of its end day.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/ra/licences/pool`: creates the pool or changes it (national RA Managers). Every
/// field is optional; absent fields keep their value (or the default when the pool is created).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetPool {
    /// Licences to add to the pool (a top-up); never negative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_licences: Option<i64>,
    /// Licence-days of extension funding to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_funding: Option<i64>,
    /// Days a card still signs in after its licence's term ended (0 to 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_days: Option<i64>,
    /// Days before a term ends from which it counts as expiring (1 to 365).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_days: Option<i64>,
    /// Default term of a block, in days, when the approver gives no end date (1 to 3650).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_days: Option<i64>,
}

/// The pool as it stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pool {
    /// Whether a pool exists: without one, licences are not enforced.
    pub exists: bool,
    /// Licences the pool holds in all.
    pub total: i64,
    /// Licences allocated to organisations (in blocks).
    pub allocated: i64,
    /// Licences not allocated.
    pub available: i64,
    /// Extension funding left, in licence-days.
    pub funding: i64,
    /// Grace period after a term ends, in days.
    pub grace_days: i64,
    /// Warning period before a term ends, in days.
    pub warn_days: i64,
    /// Default term of a block, in days.
    pub term_days: i64,
    /// Applications waiting, in order.
    pub waiting: Vec<Application>,
}

/// `POST /api/v1/ra/licences/applications`: an organisation applies for licences.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Apply {
    /// The applying organisation's ODS code.
    pub organisation: String,
    /// How many licences (1 to 100000).
    pub count: i64,
    /// Who to contact (name, email or phone), 1 to 200 characters.
    pub contact: String,
    /// For which systems (for example "EPS, SCR"), 1 to 200 characters.
    pub systems: String,
}

/// `POST /api/v1/ra/licences/approve`: approves waiting applications in order while the pool
/// lasts. With `application`, that application, which must be the first waiting.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Approve {
    /// The application to approve (it must be first in the waiting list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<i64>,
    /// The term's start (`YYYY-MM-DD`, default today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The term's last day (`YYYY-MM-DD`, default start plus the pool's term).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `POST /api/v1/ra/licences/return`: an organisation gives unused licences back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Return {
    /// The organisation's ODS code.
    pub organisation: String,
    /// How many (at least 1, at most its free licences).
    pub count: i64,
}

/// `POST /api/v1/ra/licences/extensions`: asks for a block's term to be extended (an RA Manager
/// of the block's organisation, or a national one). The request joins the extension queue;
/// national RA Managers approve the queue first come, first served while the pool's funding
/// lasts. A national RA Manager's own request is approved at once when it is first and funded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Extend {
    /// The block (its application id).
    pub application: i64,
    /// The new last day (`YYYY-MM-DD`), after the current one, at most 3650 days later.
    pub end: String,
}

/// `POST /api/v1/ra/licences/extensions/approve`: approves waiting extension requests in order
/// while the pool's funding lasts (national RA Managers). With `request`, only that one, which
/// must be first in the queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApproveExtensions {
    /// The request to approve (it must be first in the queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<i64>,
}

/// `POST /api/v1/ra/licences/extensions/withdraw`: withdraws a waiting extension request (an RA
/// Manager of its organisation, or a national one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WithdrawExtension {
    /// The request's id.
    pub request: i64,
}

/// One extension request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Extension {
    /// Its id.
    pub id: i64,
    /// The block (application id).
    pub application: i64,
    /// The block's organisation.
    pub organisation: String,
    /// The new last day asked for (`YYYY-MM-DD`).
    pub end: String,
    /// The block's last day now (`YYYY-MM-DD`; once approved, the day it was extended to).
    pub current_end: String,
    /// Licences in the block now.
    pub licences: i64,
    /// What it costs (licence-days): what it would cost now while waiting, what it cost once
    /// approved, 0 otherwise.
    pub cost: i64,
    /// `waiting`, `approved`, `withdrawn` or `lapsed` (the block's grace period ended before it
    /// was approved).
    pub state: String,
    /// The requesting RA's UID.
    pub requested_by: String,
    /// When (RFC 3339).
    pub requested_at: String,
    /// Position in the extension queue (1 = next), when waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// Who approved or withdrew it (`system` when a funding top-up served the queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

/// `GET /api/v1/ra/licences/extensions`: the extension requests the caller may see (RAs at the
/// national organisation: all; others: their organisations'), waiting ones first in queue
/// order, then the decided ones, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Extensions {
    /// The pool's extension funding left (licence-days).
    pub funding: i64,
    /// Requests waiting in the whole queue (including those the caller cannot see).
    pub waiting: i64,
    /// The requests.
    pub requests: Vec<Extension>,
}

/// What an extension request, approval or withdrawal did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExtensionsChanged {
    /// The request this change made or changed, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Extension>,
    /// Requests approved by this change, in order.
    pub approved: Vec<Extension>,
    /// Requests that lapsed meanwhile (their block's grace period was over), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lapsed: Vec<Extension>,
    /// The pool's funding left afterwards (licence-days).
    pub funding: i64,
    /// Requests still waiting in the queue.
    pub waiting: i64,
}

/// One application: waiting, or approved (then a block with a term).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Application {
    /// Its id.
    pub id: i64,
    /// The organisation.
    pub organisation: String,
    /// How many licences it asked for.
    pub requested: i64,
    /// Contact.
    pub contact: String,
    /// Systems.
    pub systems: String,
    /// `waiting` or `approved`.
    pub state: String,
    /// When it was made (RFC 3339).
    pub applied_at: String,
    /// Position in the waiting list (1 = next), when waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// Licences allocated now (after returns), when approved.
    pub allocated: i64,
    /// Licences held by cards, when approved.
    pub used: i64,
    /// The term's first day, when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The term's last day, when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// The new last day a waiting extension request asks for, if one waits for this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_requested_to: Option<String>,
    /// That request's position in the extension queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_position: Option<i64>,
}

/// What a change did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LicencesChanged {
    /// Applications approved by this change (in order), including those a return let through.
    pub approved: Vec<Application>,
    /// The application this change made or changed, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<Application>,
    /// The pool afterwards.
    pub pool: Pool,
    /// Extension requests approved by this change (a funding top-up serves the queue).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions_approved: Vec<Extension>,
}

/// One organisation's line of the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReportRow {
    /// ODS code.
    pub organisation: String,
    /// Licences allocated in blocks whose term has not ended (grace included).
    pub allocated: i64,
    /// Licences held by cards.
    pub used: i64,
    /// Allocated but not used (in blocks still in term).
    pub free: i64,
    /// Licences asked for in waiting applications.
    pub waiting: i64,
    /// Position of its first waiting application in the waiting list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_position: Option<i64>,
    /// Licences in blocks whose term ends within the warning period (or ended, in grace).
    pub expiring: i64,
    /// The earliest end among those blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiring_on: Option<String>,
    /// Extension requests of the organisation waiting in the extension queue.
    #[serde(default)]
    pub extensions_waiting: i64,
    /// Position of its first waiting extension request in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_position: Option<i64>,
    /// The new last day that first waiting request asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_requested_to: Option<String>,
}

/// `GET /api/v1/ra/licences/report`: per organisation the caller may see.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    /// Whether licences are enforced (a pool exists).
    pub enforced: bool,
    /// One row per organisation.
    pub organisations: Vec<ReportRow>,
    /// Their applications and blocks.
    pub applications: Vec<Application>,
    /// Warnings for RAs (terms ending, ended terms in grace).
    pub warnings: Vec<String>,
    /// The waiting extension requests the caller may see, in queue order.
    #[serde(default)]
    pub extensions: Vec<Extension>,
}

impl Report {
    /// The header of the CSV report.
    pub const CSV_HEADER: &'static str = "organisation,allocated,used,free,waiting,waiting_position,expiring,expiring_on,\
         extensions_waiting,extension_position,extension_requested_to";

    /// The report as CSV (one line per organisation).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(Self::CSV_HEADER);
        out.push('\n');
        for r in &self.organisations {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                csv_field(&r.organisation),
                r.allocated,
                r.used,
                r.free,
                r.waiting,
                r.waiting_position
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                r.expiring,
                r.expiring_on.as_deref().map(csv_field).unwrap_or_default(),
                r.extensions_waiting,
                r.extension_position
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                r.extension_requested_to
                    .as_deref()
                    .map(csv_field)
                    .unwrap_or_default()
            ));
        }
        out
    }
}

/// A CSV field, quoted when needed (and never starting a formula).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// What a card's holder is told when the term of the licence their card holds is ending (from
/// the pool's warning period before the term's end) or has ended (inside the grace period): in
/// the sign-in session (`SessionInfo::licence_warning`, the agent prints it) and in each request
/// the phone shows (`PendingAuthRequest::licence_warning`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LicenceWarning {
    /// The organisation whose licence block the card holds.
    pub organisation: String,
    /// The last day of the block's term (`YYYY-MM-DD`, UTC).
    pub term_end: String,
    /// The last day the card still signs in (`YYYY-MM-DD`, UTC): the term's end plus the pool's
    /// grace period.
    pub last_sign_in_day: String,
    /// The term has ended (the card signs in only for the grace period).
    pub ended: bool,
    /// One sentence for the holder: what happens when, and whom to ask (their RA).
    pub message: String,
}
