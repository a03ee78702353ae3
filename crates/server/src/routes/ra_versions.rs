//! Approved client versions at runtime: which versions of the phone's authenticator app and of
//! the workstation's identity agent may be used, kept in the database (`version_rules`) and
//! changed by national RA Managers while the instance runs.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/v1/ra/versions` | any RA | the rules, what they approve, and the versions in use (phones: devices with a live card and those cards; agents: workstations and the cards last signed in there) |
//! | `POST /api/v1/ra/versions/allow` | RA Manager at the national organisation | allow a requirement for `authenticator` or `agent` (optionally one platform or product) |
//! | `POST /api/v1/ra/versions/deny` | the same | deny (withdraw) one: a deny wins over every allow |
//! | `POST /api/v1/ra/versions/rules/{id}/remove` | the same | remove a rule (never the last allow rule of a kind) |
//!
//! **Rules.** See [`vsc_core::VersionPolicy`]: approved = some allow rule matches and no deny
//! rule does. A bare version in a rule is exactly that version, a bare `1.4` the series.
//!
//! **Seeding.** On an instance's first start with this table (a new instance, or the first
//! start after upgrading), each client kind without rules gets allow rules from the start-up
//! configuration: `--approved-app-version` for the authenticator, `--approved-agent-version` for
//! the agent (each defaulting to this release's series), recorded by `system` with a
//! `versions.seeded` audit event. From then on the database is the policy and the flags are not
//! read again (a node started later with other flags says so in its log): the flags seed, they
//! are not a floor, so a national RA Manager can withdraw a version the flags named.
//!
//! **Enforcement.** Phones: at enrolment (the reported device facts), and for a device token's
//! holder before it may open its device channel (events, long-poll list), approve a sign-in
//! request, fetch or complete a signing request, or set its card PIN — with the version the phone
//! last reported: with each device token (header [`vsc_proto::routes::headers::APP_VERSION`]),
//! or, from an app too old to send it, the one it reported at enrolment. Declining (and "I
//! didn't do this") stays open to an unapproved phone. Agents: when one opens a sign-in request
//! (its `agent_version`, `PRODUCT/VERSION`, which every vsc agent has always sent; a value that
//! is not a semantic version is refused like an unapproved one). Refusals are `403`
//! `app_version_not_approved` / `agent_version_not_approved` with a message naming the approved
//! versions and what to update, change nothing (a refused approval leaves the request pending and
//! counts no failure against the card) and are audited.
//!
//! **Caching.** The policy is read on every enforcement point, so each node keeps it for
//! [`CACHE_SECONDS`] seconds. A change drops the changing node's copy at once; other nodes sharing
//! the PostgreSQL database follow within [`CACHE_SECONDS`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use vsc_core::policy::Version;
use vsc_core::{
    ClientFacts, ClientKind, Decision, PolicyError, RaAction, RaRole, Verdict, VersionPolicy,
};
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_proto::signin::AuthContext;
use vsc_proto::versions::{
    SetVersionRule, VersionInUse, VersionRuleChanged, VersionRuleInfo, VersionsReport,
};
use vsc_store::versions::{self as db, AgentVersionRow, VersionRuleRow};
use vsc_store::{Conn, StoreError};

use super::ApiJson;
use super::ra::RaCaller;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// How long a node decides with the policy it read (seconds): the most a change waits to take
/// effect on the other nodes.
pub const CACHE_SECONDS: u64 = 5;
/// Longest reason on a rule, in characters.
const MAX_REASON: usize = 200;
/// Most card ids listed per version in use (`cards_total` counts all).
const MAX_CARDS_LISTED: usize = 200;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::RA_VERSIONS, get(list))
        .route(routes::RA_VERSIONS_ALLOW, post(allow))
        .route(routes::RA_VERSIONS_DENY, post(deny))
        .route(routes::RA_VERSION_RULE_REMOVE, post(remove))
}

// ---------------------------------------------------------------------------------------------
// The policy, cached

/// One server's copy of the policy, for [`CACHE_SECONDS`]. It lives in the server's
/// configuration; cloning gives an empty cache, so two servers built from one configuration
/// (nodes in one test process) never share a copy.
#[derive(Default)]
pub struct PolicyCache {
    slot: Mutex<Option<(Instant, Arc<VersionPolicy>)>>,
}

impl Clone for PolicyCache {
    fn clone(&self) -> PolicyCache {
        PolicyCache::default()
    }
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyCache")
    }
}

impl PolicyCache {
    fn get(&self) -> Option<Arc<VersionPolicy>> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|(at, _)| at.elapsed() < Duration::from_secs(CACHE_SECONDS))
            .map(|(_, p)| p.clone())
    }

    fn put(&self, policy: Arc<VersionPolicy>) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), policy));
    }

    fn clear(&self) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The policy: this node's copy if younger than [`CACHE_SECONDS`], else read now.
pub async fn policy(state: &AppState) -> ApiResult<Arc<VersionPolicy>> {
    let cache = &state.config().version_cache;
    if let Some(p) = cache.get() {
        return Ok(p);
    }
    let mut conn = state.store().pool().acquire().await?;
    let fresh = Arc::new(db::policy(&mut conn).await?);
    cache.put(fresh.clone());
    Ok(fresh)
}

/// The allow rules the start-up configuration gives `kind`.
fn configured(state: &AppState, kind: ClientKind) -> Vec<(Option<String>, String)> {
    let approvals = match kind {
        ClientKind::Authenticator => &state.config().approved_app_versions,
        ClientKind::Agent => &state.config().approved_agent_versions,
    };
    approvals
        .approvals()
        .iter()
        .map(|a| (a.platform.clone(), a.versions.to_string()))
        .collect()
}

/// Seeds each client kind that has no rules yet from the start-up configuration, under the
/// write lock (two nodes starting at once seed once), with a `versions.seeded` event. Called
/// once at start-up.
pub async fn seed_policy(state: &AppState) -> Result<(), StoreError> {
    let now = state.now_unix();
    for kind in ClientKind::ALL {
        let mut tx = state.write().await?;
        if db::count_rules(&mut tx, kind).await? > 0 {
            drop(tx);
            let stored = {
                let mut conn = state.store().pool().acquire().await?;
                db::rules(&mut conn).await?
            };
            let missing: Vec<String> = configured(state, kind)
                .into_iter()
                .filter(|(platform, req)| {
                    !stored.iter().any(|r| {
                        r.client_kind == kind
                            && r.verdict == Verdict::Allow
                            && r.requirement == *req
                            && r.platform == platform.clone().unwrap_or_default()
                    })
                })
                .map(|(p, r)| p.map_or(r.clone(), |p| format!("{p}={r}")))
                .collect();
            if !missing.is_empty() {
                tracing::info!(
                    client = kind.as_str(),
                    configured = ?missing,
                    "the approved {} versions are kept in the database and changed with `vsc ra versions`; the start-up flags only seed a new instance and are not applied",
                    kind.as_str()
                );
            }
            continue;
        }
        let mut seeded = Vec::new();
        for (platform, requirement) in configured(state, kind) {
            let (row, _) = db::set_rule(
                &mut tx,
                &VersionRuleRow {
                    id: 0,
                    client_kind: kind,
                    verdict: Verdict::Allow,
                    platform: platform.unwrap_or_default(),
                    requirement,
                    reason: Some("seeded from the start-up configuration".into()),
                    set_by: "system".into(),
                    set_at: now,
                },
            )
            .await?;
            seeded.push(serde_json::json!({"id": row.id, "platform": row.platform, "versions": row.requirement}));
        }
        let event = vsc_store::NewEvent {
            actor: "system".into(),
            action: "versions.seeded".into(),
            subject: kind.as_str().into(),
            organisation: state.national_ods().to_owned(),
            source: "server".into(),
            outcome: vsc_store::Outcome::Success,
            detail: serde_json::json!({"client": kind.as_str(), "allowed": seeded}),
        };
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
        tx.commit().await?;
    }
    state.config().version_cache.clear();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Enforcement

fn refusal(kind: ClientKind, err: PolicyError) -> ApiError {
    match (kind, err) {
        (ClientKind::Authenticator, e @ PolicyError::BadVersion(_)) => {
            ApiError::bad_request(code::APP_VERSION_MALFORMED, e.to_string())
        }
        (ClientKind::Authenticator, e) => {
            ApiError::forbidden(code::APP_VERSION_NOT_APPROVED, e.to_string())
        }
        (ClientKind::Agent, e) => {
            ApiError::forbidden(code::AGENT_VERSION_NOT_APPROVED, e.to_string())
        }
    }
}

/// Refuses an authenticator app version the policy does not approve (enrolment).
pub async fn check_app_version(state: &AppState, facts: &ClientFacts) -> ApiResult<()> {
    policy(state)
        .await?
        .check(
            ClientKind::Authenticator,
            &facts.platform,
            &facts.app_version,
        )
        .map_err(|e| refusal(ClientKind::Authenticator, e))
}

/// Refuses a phone whose app version (as it last reported it) the policy does not approve,
/// auditing the refusal as `action` on the device. Every route of an enrolled phone that uses
/// its card or receives its requests calls this first.
pub async fn require_device_version(
    state: &AppState,
    ctx: &AuditContext,
    device_id: &str,
    action: &str,
) -> ApiResult<()> {
    let result = async {
        let (platform, version) = {
            let mut conn = state.store().pool().acquire().await?;
            db::device_version(&mut conn, device_id)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found(code::UNKNOWN_DEVICE, "this device is not enrolled")
                })?
        };
        check_app_version(
            state,
            &ClientFacts {
                platform,
                app_version: version,
            },
        )
        .await
    }
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(err) => {
            state.audit_failure(ctx, action, device_id, "", &err).await;
            Err(err.audited())
        }
    }
}

/// Reads the version header of a device-token request: `None` when absent (an older app),
/// refused when it is not a semantic version.
pub fn reported_app_version(headers: &axum::http::HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(routes::headers::APP_VERSION) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text.len() > 64 || Version::parse(text).is_err() {
        return Err(ApiError::bad_request(
            code::APP_VERSION_MALFORMED,
            format!(
                "the {} header must be the app's semantic version (for example 1.4.2)",
                routes::headers::APP_VERSION
            ),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// Records the version a phone reported with its device token, inside the token's transaction.
pub async fn record_device_version(
    conn: &mut Conn,
    device_id: &str,
    version: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    if let Some(v) = version {
        db::set_device_version(conn, device_id, v, now).await?;
    }
    Ok(())
}

/// Refuses an identity agent whose reported version the policy does not approve (or that does
/// not report `PRODUCT/VERSION` or `VERSION`); answers the product and version.
pub async fn check_agent_version(
    state: &AppState,
    context: &AuthContext,
) -> ApiResult<(String, Version)> {
    let policy = policy(state).await?;
    let Some((product, version)) = vsc_core::policy::parse_agent_version(&context.agent_version)
    else {
        return Err(ApiError::forbidden(
            code::AGENT_VERSION_NOT_APPROVED,
            format!(
                "this identity agent reports its version as {:?}, which is not PRODUCT/VERSION (for example vsc-agent/1.4.2); only approved agents may open sign-in requests (approved: {}): ask your IT service desk to update the identity agent on this workstation",
                context.agent_version.chars().take(64).collect::<String>(),
                policy.describe(ClientKind::Agent, None)
            ),
        ));
    };
    policy
        .check(ClientKind::Agent, &product, &version.to_string())
        .map_err(|e| refusal(ClientKind::Agent, e))?;
    Ok((product, version))
}

/// Records what a workstation's agent reported with a sign-in request it opened (in the
/// opening transaction, for `vsc ra versions list`).
pub async fn record_agent_version(
    conn: &mut Conn,
    shown: &AuthContext,
    card_id: &str,
    now: i64,
) -> ApiResult<()> {
    let Some((product, version)) = vsc_core::policy::parse_agent_version(&shown.agent_version)
    else {
        return Ok(());
    };
    db::record_agent(
        conn,
        &AgentVersionRow {
            workstation_id: shown.workstation_id.clone(),
            workstation_name: shown.workstation_name.clone(),
            registered: shown.registered,
            ods_code: shown.organisation.clone(),
            product,
            version: version.to_string(),
            card_id: card_id.to_owned(),
            first_seen: now,
            last_seen: now,
        },
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The RA routes

fn ts(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn info(r: &VersionRuleRow) -> VersionRuleInfo {
    VersionRuleInfo {
        id: r.id,
        client: r.client_kind.as_str().to_owned(),
        verdict: r.verdict.as_str().to_owned(),
        versions: r.requirement.clone(),
        platform: (!r.platform.is_empty()).then(|| r.platform.clone()),
        reason: r.reason.clone(),
        set_by: r.set_by.clone(),
        set_at: ts(r.set_at),
    }
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Approved => "approved",
        Decision::NotApproved => "not-approved",
        Decision::Withdrawn => "withdrawn",
    }
}

/// The versions in use, judged by `policy`.
async fn in_use(conn: &mut Conn, policy: &VersionPolicy) -> ApiResult<Vec<VersionInUse>> {
    // (kind, platform, version) → (clients, cards, last seen)
    type Key = (ClientKind, String, String);
    #[derive(Default)]
    struct Tally {
        clients: std::collections::BTreeSet<String>,
        cards: std::collections::BTreeSet<String>,
        last_seen: i64,
    }
    let mut tally: BTreeMap<Key, Tally> = BTreeMap::new();
    for d in db::device_versions(conn).await? {
        let t = tally
            .entry((ClientKind::Authenticator, d.platform, d.app_version))
            .or_default();
        t.clients.insert(d.device_id);
        t.cards.insert(d.card_id);
        t.last_seen = t.last_seen.max(d.last_seen);
    }
    for a in db::agent_versions(conn).await? {
        let t = tally
            .entry((ClientKind::Agent, a.product, a.version))
            .or_default();
        t.clients.insert(a.workstation_id);
        t.cards.insert(a.card_id);
        t.last_seen = t.last_seen.max(a.last_seen);
    }
    let mut out: Vec<(Key, Option<Version>, VersionInUse)> = tally
        .into_iter()
        .map(|((kind, platform, version), t)| {
            let parsed = Version::parse(&version).ok();
            let decision = parsed
                .as_ref()
                .map_or(Decision::NotApproved, |v| policy.decide(kind, &platform, v));
            let item = VersionInUse {
                client: kind.as_str().to_owned(),
                platform: platform.clone(),
                version: version.clone(),
                decision: decision_name(decision).to_owned(),
                clients: t.clients.len() as u64,
                cards_total: t.cards.len() as u64,
                cards: t.cards.into_iter().take(MAX_CARDS_LISTED).collect(),
                last_seen: (t.last_seen > 0).then(|| ts(t.last_seen)),
            };
            ((kind, platform, version), parsed, item)
        })
        .collect();
    // Authenticator first, then by platform, highest version first.
    out.sort_by(|(ka, va, _), (kb, vb, _)| {
        ka.0.cmp(&kb.0)
            .then_with(|| ka.1.cmp(&kb.1))
            .then_with(|| vb.cmp(va))
    });
    Ok(out.into_iter().map(|(_, _, item)| item).collect())
}

async fn list(State(state): State<AppState>, caller: RaCaller) -> ApiResult<Json<VersionsReport>> {
    state
        .audited(&caller.ctx, "versions.list", "", async {
            // Every RA role may view; the listing is instance-wide (versions, not people), and
            // shows card ids, which every RA sees on a card anyway.
            if !caller.grants.iter().any(|g| g.role.permits(RaAction::View)) {
                return Err(ApiError::forbidden(
                    code::RA_ROLE_NOT_PERMITTED,
                    "your RA roles do not allow you to view RA records",
                ));
            }
            let mut conn = state.store().pool().acquire().await?;
            let rows = db::rules(&mut conn).await?;
            let policy = db::policy(&mut conn).await?;
            let in_use = in_use(&mut conn, &policy).await?;
            Ok(Json(VersionsReport {
                rules: rows.iter().map(info).collect(),
                approved_authenticator: policy.describe(ClientKind::Authenticator, None),
                approved_agent: policy.describe(ClientKind::Agent, None),
                in_use,
                cache_seconds: CACHE_SECONDS,
            }))
        })
        .await
}

/// Only an RA Manager with a grant at the national organisation changes the policy: it is
/// instance-wide, like the national assurance of client versions it stands for.
fn may_change(state: &AppState, caller: &RaCaller) -> ApiResult<()> {
    let national = state.national_ods();
    let capable: Vec<_> = caller
        .grants
        .iter()
        .filter(|g| g.role.permits(RaAction::ManageVersions))
        .collect();
    if capable
        .iter()
        .any(|g| g.role == RaRole::RaManager && g.organisation.as_str() == national)
    {
        return Ok(());
    }
    if capable.is_empty() {
        Err(ApiError::forbidden(
            code::RA_ROLE_NOT_PERMITTED,
            "your RA roles do not allow you to change the approved client versions: that takes an RA Manager at the national organisation",
        ))
    } else {
        Err(ApiError::forbidden(
            code::RA_OUTSIDE_ORGANISATION,
            format!(
                "the approved client versions apply to the whole instance: only an RA Manager at the national organisation ({national}) may change them"
            ),
        ))
    }
}

fn parse_kind(text: &str) -> ApiResult<ClientKind> {
    text.trim().parse::<ClientKind>().map_err(|_| {
        ApiError::bad_request(
            code::UNKNOWN_CLIENT_KIND,
            format!(
                "'{}' is not a client kind: use authenticator (the phone's app) or agent (the workstation's identity agent)",
                text.chars().take(40).collect::<String>()
            ),
        )
    })
}

/// A request checked into the row it sets.
fn checked_rule(
    caller: &RaCaller,
    req: &SetVersionRule,
    verdict: Verdict,
    now: i64,
) -> ApiResult<VersionRuleRow> {
    let kind = parse_kind(&req.client)?;
    let bad =
        |e: vsc_core::RuleError| ApiError::bad_request(code::INVALID_VERSION_RULE, e.to_string());
    let requirement = vsc_core::policy::parse_requirement(&req.versions).map_err(bad)?;
    let platform = req
        .platform
        .as_deref()
        .map(vsc_core::policy::parse_platform)
        .transpose()
        .map_err(bad)?
        .unwrap_or_default();
    let reason = match req.reason.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) => {
            if r.chars().count() > MAX_REASON || !vsc_core::text::displays_as_written(r) {
                return Err(ApiError::bad_request(
                    code::INVALID_VERSION_RULE,
                    format!("a reason is at most {MAX_REASON} printable characters"),
                ));
            }
            Some(r.to_owned())
        }
    };
    Ok(VersionRuleRow {
        id: 0,
        client_kind: kind,
        verdict,
        platform,
        requirement: requirement.to_string(),
        reason,
        set_by: caller.uid.clone(),
        set_at: now,
    })
}

/// Refuses a change that leaves `kind` without any allow rule: every client of that kind
/// would be refused at once, which is never one RA's slip to make.
async fn keep_an_allow_rule(conn: &mut Conn, kind: ClientKind) -> ApiResult<()> {
    if db::count_allow_rules(conn, kind).await? == 0 {
        return Err(ApiError::conflict(
            code::LAST_ALLOW_RULE,
            format!(
                "this would leave no allow rule for the {}, refusing every one of them; allow the versions that should stay approved first",
                kind.title()
            ),
        ));
    }
    Ok(())
}

/// After a committed change: drop this node's copy and tell which versions in use are refused
/// now.
async fn changed(
    state: &AppState,
    rule: &VersionRuleRow,
    replaced: Option<&VersionRuleRow>,
) -> ApiResult<VersionRuleChanged> {
    state.config().version_cache.clear();
    let policy = policy(state).await?;
    let mut conn = state.store().pool().acquire().await?;
    let now_refused = in_use(&mut conn, &policy)
        .await?
        .into_iter()
        .filter(|v| v.decision != decision_name(Decision::Approved))
        .collect();
    Ok(VersionRuleChanged {
        rule: info(rule),
        replaced: replaced.map(info),
        now_refused,
        cache_seconds: CACHE_SECONDS,
    })
}

async fn set(
    state: &AppState,
    caller: &RaCaller,
    req: &SetVersionRule,
    verdict: Verdict,
) -> ApiResult<VersionRuleChanged> {
    may_change(state, caller)?;
    let row = checked_rule(caller, req, verdict, state.now_unix())?;
    let mut tx = state.write().await?;
    let (stored, previous) = db::set_rule(&mut tx, &row).await?;
    keep_an_allow_rule(&mut tx, stored.client_kind).await?;
    let action = match verdict {
        Verdict::Allow => "versions.allowed",
        Verdict::Deny => "versions.denied",
    };
    state
        .append_audit(
            &mut tx,
            &caller.ctx.event(
                action,
                stored.client_kind.as_str(),
                state.national_ods(),
                serde_json::json!({
                    "rule_id": stored.id,
                    "client": stored.client_kind.as_str(),
                    "verdict": stored.verdict.as_str(),
                    "versions": stored.requirement,
                    "platform": stored.platform,
                    "reason": stored.reason,
                    "replaced": previous.as_ref().map(|p| serde_json::json!({"verdict": p.verdict.as_str(), "set_by": p.set_by, "set_at": p.set_at, "reason": p.reason})),
                }),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    changed(state, &stored, previous.as_ref()).await
}

async fn allow(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<SetVersionRule>,
) -> ApiResult<Json<VersionRuleChanged>> {
    state
        .audited(&caller.ctx, "versions.allow", "", async {
            set(&state, &caller, &req, Verdict::Allow).await.map(Json)
        })
        .await
}

async fn deny(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<SetVersionRule>,
) -> ApiResult<Json<VersionRuleChanged>> {
    state
        .audited(&caller.ctx, "versions.deny", "", async {
            set(&state, &caller, &req, Verdict::Deny).await.map(Json)
        })
        .await
}

async fn remove(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<VersionRuleChanged>> {
    state
        .audited(&caller.ctx, "versions.remove", &id, async {
            may_change(&state, &caller)?;
            let unknown = || {
                ApiError::not_found(
                    code::UNKNOWN_VERSION_RULE,
                    "no rule has this id: `vsc ra versions list` shows them",
                )
            };
            let id: i64 = id
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(unknown)?;
            let mut tx = state.write().await?;
            let rule = db::rule(&mut tx, id).await?.ok_or_else(unknown)?;
            db::delete_rule(&mut tx, id).await?;
            keep_an_allow_rule(&mut tx, rule.client_kind).await?;
            state
                .append_audit(
                    &mut tx,
                    &caller.ctx.event(
                        "versions.rule_removed",
                        rule.client_kind.as_str(),
                        state.national_ods(),
                        serde_json::json!({
                            "rule_id": rule.id,
                            "client": rule.client_kind.as_str(),
                            "verdict": rule.verdict.as_str(),
                            "versions": rule.requirement,
                            "platform": rule.platform,
                            "reason": rule.reason,
                            "set_by": rule.set_by,
                            "set_at": rule.set_at,
                        }),
                    ),
                    state.now_ms(),
                )
                .await?;
            tx.commit().await?;
            changed(&state, &rule, None).await.map(Json)
        })
        .await
}
