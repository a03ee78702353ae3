//! The Registration Authority API. RA staff sign in with their own virtual smartcard (a
//! challenge signed by the authentication key on their phone); there are no passwords.
//!
//! | route | permission (CIM) |
//! |---|---|
//! | `POST /api/v1/ra/auth/challenge`, `POST /api/v1/ra/auth/login` | any RA role |
//! | `GET /api/v1/ra/me` | any RA role |
//! | `GET /api/v1/ra/organisations` | any RA role |
//! | `POST /api/v1/ra/organisations` | RA Manager at the national organisation |
//! | `POST /api/v1/ra/organisations/{ods}/session-limits` | RA Manager at that organisation |
//! | `POST /api/v1/ra/people` | create profile: RAM, RAA, IDC |
//! | `GET /api/v1/ra/people/{uid}` | any RA role in one of the person's organisations |
//! | `POST /api/v1/ra/people/{uid}/identity-checks` | RAM, RAA, IDC |
//! | `POST /api/v1/ra/people/{uid}/positions` | RAM, RAA; Sponsor for the roles and activities it sponsors |
//! | `POST /api/v1/ra/positions/{id}/end` | whoever may assign that position (RAM, RAA; Sponsor for the roles and activities it sponsors); ends the sessions acting in it |
//! | `POST /api/v1/ra/people/{uid}/ra-roles` | RAM |
//! | `POST /api/v1/ra/people/{uid}/ra-roles/remove` | RAM at the role's organisation (or national) |
//! | `POST /api/v1/ra/people/{uid}/cards` | issue card: RAM, RAA |
//! | `GET /api/v1/ra/cards/{id}` | any RA role |
//! | `POST /api/v1/ra/cards/{id}/activation` | issue card: RAM, RAA (a new code for a pending card) |
//! | `POST /api/v1/ra/cards/{id}/cancel` | RAM, RAA |
//! | `POST /api/v1/ra/cards/{id}/replace` | issue card: RAM, RAA (an active or locked card moves to a new phone; see `device::replacement`) |
//! | `POST /api/v1/ra/cards/{id}/unlock` | RAM, RAA, Sponsor, LSA |
//! | `POST /api/v1/ra/position-requests` | assign position at the requested organisation |
//! | `GET /api/v1/ra/position-requests` | any RA role (pending requests it may decide or made) |
//! | `POST /api/v1/ra/position-requests/{id}/approve` | RAM, RAA of the person's registering organisation |
//! | `POST /api/v1/ra/position-requests/{id}/decline` | the same, or the RA who asked |
//!
//! Scope: an RA acts only on people who belong (by registration or position) to an organisation
//! where it holds the role *before the call*; roles held at the national organisation apply
//! everywhere. A position at an organisation where the person is neither registered nor holds
//! a position would bring them into that organisation's scope, so it needs the consent of the
//! person's registering organisation too: either the caller is an RA Manager or RA Agent there
//! as well (or national), or an RA of the new organisation files a *position request* that an
//! RA Manager or RA Agent of the registering organisation approves. Nobody acts on their own
//! record (`own_record`), and a Sponsor grants only the roles and activities it sponsors, never
//! a prescribing activity.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use time::format_description::well_known::Rfc3339;
use vsc_core::ra::{authorize, authorize_position, not_own_record};
use vsc_core::{
    ActivityCode, CardState, EvidenceType, IdentityLevel, KeyCustody, OdsCode,
    PositionRequestState, RaAction, RaGrant, RaRole, RaScopeError, RoleCode, Uid,
};
use vsc_pki::RevocationReason;
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_proto::{
    AssignPosition, CancelCard, Card, CardWithCode, ChallengeRequest, ChallengeResponse,
    CreateOrganisation, CreatePerson, DecidePositionRequest, LoginRequest, LoginResponse,
    Organisation, Person, PositionRequest, RaRoleGrant, RecordIdentityCheck, RemoveRaRole,
    RequestPosition,
};
use vsc_store::Conn;
use vsc_store::Tx;
use vsc_store::repo::{
    self, CardRow, IdentityCheckRow, OrganisationRow, PersonRow, PositionRequestRow, PositionRow,
    RaRoleRow,
};

use super::{ApiJson, Client, challenge, views};
use crate::codes::{self, CodeKind};
use crate::crl::{self, CrlIssuer};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

const LOGIN_PURPOSE: &str = "ra-login";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::RA_AUTH_CHALLENGE, post(challenge))
        .route(routes::RA_AUTH_LOGIN, post(login))
        .route(routes::RA_ME, get(me))
        .route(
            routes::RA_ORGANISATIONS,
            get(list_organisations).post(create_organisation),
        )
        .route(
            routes::RA_ORGANISATION_SESSION_LIMITS,
            post(set_session_limits),
        )
        .route(routes::RA_PEOPLE, post(create_person))
        .route(routes::RA_PERSON, get(get_person))
        .route(
            routes::RA_PERSON_IDENTITY_CHECKS,
            post(record_identity_check),
        )
        .route(routes::RA_PERSON_POSITIONS, post(assign_position))
        .route(routes::RA_PERSON_RA_ROLES, post(assign_ra_role))
        .route(routes::RA_PERSON_RA_ROLES_REMOVE, post(remove_ra_role))
        .route(routes::RA_POSITION_END, post(end_position))
        .route(routes::RA_PERSON_CARDS, post(issue_card))
        .route(routes::RA_CARD, get(get_card))
        .route(routes::RA_CARD_ACTIVATION, post(reissue_activation))
        .route(routes::RA_CARD_CANCEL, post(cancel_card))
        .route(routes::RA_CARD_REPLACE, post(replace_card))
        .route(routes::RA_CARD_UNLOCK, post(unlock_card))
        .route(routes::RA_CARD_RENEW_NOW, post(renew_now_card))
        .route(
            routes::RA_POSITION_REQUESTS,
            get(list_position_requests).post(request_position),
        )
        .route(
            routes::RA_POSITION_REQUEST_APPROVE,
            post(approve_position_request),
        )
        .route(
            routes::RA_POSITION_REQUEST_DECLINE,
            post(decline_position_request),
        )
}

/// How long a position request waits for the registering organisation's decision.
const POSITION_REQUEST_TTL_SECONDS: i64 = 14 * 24 * 3600;

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn parse_uid(s: &str) -> ApiResult<Uid> {
    s.parse()
        .map_err(|e: vsc_core::IdError| ApiError::bad_request(code::INVALID_UID, e.to_string()))
}

fn parse_ods(s: &str) -> ApiResult<OdsCode> {
    s.parse().map_err(|e: vsc_core::IdError| {
        ApiError::bad_request(code::INVALID_ODS_CODE, e.to_string())
    })
}

/// The error code for a refusal of the permission matrix (the bulk preview names it per row).
pub(crate) fn scope_code(e: &RaScopeError) -> &'static str {
    match e {
        RaScopeError::RoleNotPermitted { .. } => code::RA_ROLE_NOT_PERMITTED,
        RaScopeError::OutsideOrganisation { .. } => code::RA_OUTSIDE_ORGANISATION,
        RaScopeError::SponsorMayNotAssign { .. } => code::SPONSOR_MAY_NOT_ASSIGN,
        RaScopeError::SponsorMayNotAssignActivity { .. } => code::SPONSOR_MAY_NOT_ASSIGN_ACTIVITY,
        RaScopeError::PrescribingActivityNotPermitted { .. } => {
            code::PRESCRIBING_ACTIVITY_NOT_PERMITTED
        }
        RaScopeError::OwnRecord { .. } => code::OWN_RECORD,
    }
}

fn scope_error(e: RaScopeError) -> ApiError {
    ApiError::forbidden(scope_code(&e), e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Signing in

async fn challenge(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    state.admit_unauthenticated(ctx.source).await?;
    let uid = parse_uid(&req.uid)?;
    // A challenge is issued whether or not the UID exists, so the endpoint cannot be used to
    // find out who has a card; the login then fails for an unknown person.
    let mut tx = state.write().await?;
    let issued = challenge::issue(
        &state,
        &mut tx,
        &ctx,
        LOGIN_PURPOSE,
        uid.as_str(),
        "ra.challenge.issued",
    )
    .await?;
    tx.commit().await?;
    Ok(Json(issued))
}

async fn login(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    state
        .audited(&ctx, "ra.login", &req.uid, login_inner(&state, &ctx, &req))
        .await
        .map(Json)
}

async fn login_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &LoginRequest,
) -> ApiResult<LoginResponse> {
    let uid = parse_uid(&req.uid)?;
    let signature = B64.decode(req.signature.trim()).map_err(|_| {
        ApiError::bad_request(code::SIGNATURE_MALFORMED, "the signature is not base64")
    })?;
    let now = state.now_unix();
    let mut tx = state.write().await?;
    let nonce =
        challenge::consume(&mut tx, &req.challenge_id, LOGIN_PURPOSE, uid.as_str(), now).await?;
    // The consumed challenge must stay consumed even if the signature is wrong.
    tx.commit().await?;

    let mut conn = state.store().pool().acquire().await?;
    let spki = active_auth_key(&mut conn, uid.as_str(), now).await?;
    let statement =
        vsc_proto::ra_login_statement(&req.challenge_id, &nonce, uid.as_str(), &state.origin());
    if !super::p256_signature_valid(&spki, &statement, &signature) {
        return Err(ApiError::unauthorized(
            code::SIGNATURE_INVALID,
            "the signature does not verify with this person's authentication certificate",
        ));
    }
    let grants = grants_of(&mut conn, uid.as_str()).await?;
    if grants.is_empty() {
        return Err(ApiError::forbidden(
            code::NOT_AN_RA,
            "you hold no RA role; ask your RA Manager",
        ));
    }
    let token_bytes = zeroize::Zeroizing::new(state.random::<32>()?);
    let token = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(*token_bytes));
    let expires_at = state.now() + state.config().ra_session_ttl;
    let mut tx = state.write().await?;
    repo::insert_ra_session(
        &mut tx,
        &sha256(token.as_bytes()),
        uid.as_str(),
        now,
        expires_at.unix_timestamp(),
    )
    .await?;
    let actor = AuditContext {
        actor: uid.to_string(),
        source: ctx.source,
    };
    let roles: Vec<String> = grants
        .iter()
        .map(|g| format!("{}@{}", g.role.as_str(), g.organisation))
        .collect();
    state
        .append_audit(
            &mut tx,
            &actor.event(
                "ra.login",
                uid.as_str(),
                "",
                serde_json::json!({"roles": roles}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    let person = views::person(&mut conn, uid.as_str()).await?;
    Ok(LoginResponse {
        token: token.to_string(),
        expires_at,
        person,
    })
}

/// The SPKI of the person's valid, unrevoked authentication certificate on an active card.
async fn active_auth_key(conn: &mut Conn, uid: &str, now: i64) -> ApiResult<Vec<u8>> {
    let refuse = || {
        ApiError::unauthorized(
            code::NO_ACTIVE_CARD,
            "this UID has no active virtual smartcard with a valid authentication certificate",
        )
    };
    for card in repo::live_cards_of(conn, uid).await? {
        if card.state != CardState::Active {
            continue;
        }
        for cert in repo::certificates_of(conn, &card.id).await? {
            if cert.usage == "authentication"
                && cert.revoked_at.is_none()
                && cert.not_before <= now
                && now < cert.not_after
            {
                let info = vsc_pki::certificate_info(&cert.der)?;
                return Ok(info.spki_der);
            }
        }
    }
    Err(refuse())
}

/// A person's RA roles as the permission matrix reads them.
pub(crate) async fn grants_of(conn: &mut Conn, uid: &str) -> ApiResult<Vec<RaGrant>> {
    repo::ra_roles(conn, uid)
        .await?
        .into_iter()
        .map(|r| {
            Ok(RaGrant {
                role: r.role.parse().map_err(ApiError::internal)?,
                organisation: r
                    .ods_code
                    .parse()
                    .map_err(|e: vsc_core::IdError| ApiError::internal(e))?,
                assignable_roles: r
                    .assignable_roles
                    .iter()
                    .map(|c| c.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e: vsc_core::IdError| ApiError::internal(e))?,
                assignable_activities: r
                    .assignable_activities
                    .iter()
                    .map(|c| c.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e: vsc_core::IdError| ApiError::internal(e))?,
            })
        })
        .collect()
}

/// An authenticated RA: the bearer of a live RA session token.
#[derive(Debug, Clone)]
pub struct RaCaller {
    /// The RA's UID.
    pub uid: String,
    /// Its RA roles.
    pub grants: Vec<RaGrant>,
    /// For the audit log.
    pub ctx: AuditContext,
}

impl FromRequestParts<AppState> for RaCaller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Client(client) = Client::from_request_parts(parts, state).await?;
        match ra_caller(parts, state, &client).await {
            Ok(caller) => Ok(caller),
            Err(err) => {
                let path = parts.uri.path().to_owned();
                state
                    .audit_failure(&client, "ra.session", &path, "", &err)
                    .await;
                Err(err)
            }
        }
    }
}

/// Checks the bearer token: a live RA session of a person who still holds an RA role *and* an
/// active card with a valid authentication certificate (cancelling an RA's card ends their
/// console access at once, not when the session runs out).
async fn ra_caller(parts: &Parts, state: &AppState, client: &AuditContext) -> ApiResult<RaCaller> {
    let token = super::bearer_token(&parts.headers).ok_or_else(|| {
        ApiError::unauthorized(code::UNAUTHENTICATED, "sign in first: `vsc ra login`")
    })?;
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let uid = repo::ra_session(&mut conn, &sha256(token.trim().as_bytes()), now)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized(
                code::SESSION_EXPIRED,
                "your RA session has ended; sign in again with `vsc ra login`",
            )
        })?;
    drop(conn);
    caller_for_uid(state, &uid, client).await
}

/// The RA behind a session that proved `uid` (an RA API token, or the web console's session):
/// refused unless they still hold an RA role and an active card with a valid authentication
/// certificate. The console builds its callers here, so both check the same things.
pub(crate) async fn caller_for_uid(
    state: &AppState,
    uid: &str,
    client: &AuditContext,
) -> ApiResult<RaCaller> {
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    active_auth_key(&mut conn, uid, now).await?;
    let grants = grants_of(&mut conn, uid).await?;
    if grants.is_empty() {
        return Err(ApiError::forbidden(
            code::NOT_AN_RA,
            "you no longer hold an RA role",
        ));
    }
    Ok(RaCaller {
        ctx: AuditContext {
            actor: uid.to_owned(),
            source: client.source,
        },
        uid: uid.to_owned(),
        grants,
    })
}

impl RaCaller {
    fn allow(
        &self,
        state: &AppState,
        action: RaAction,
        org: &OdsCode,
        role: Option<&RoleCode>,
    ) -> ApiResult<()> {
        let national: OdsCode = parse_ods(state.national_ods())?;
        authorize(&self.grants, action, org, &national, role)
            .map(|_| ())
            .map_err(scope_error)
    }

    /// Refuses `action` when its subject is the caller.
    fn not_own(&self, action: RaAction, subject_uid: &str) -> ApiResult<()> {
        not_own_record(&self.uid, subject_uid, action).map_err(scope_error)
    }

    /// Checks the caller may assign `role` with `activities` at `org` (Sponsor limits and
    /// prescribing activities included).
    fn allow_position(
        &self,
        state: &AppState,
        org: &OdsCode,
        role: &RoleCode,
        activities: &[ActivityCode],
    ) -> ApiResult<()> {
        let national: OdsCode = parse_ods(state.national_ods())?;
        let prescribing = prescribing_activities(state)?;
        authorize_position(&self.grants, org, &national, role, activities, &prescribing)
            .map(|_| ())
            .map_err(scope_error)
    }

    /// Allowed for `action` on a person if allowed in any organisation the person belongs to
    /// *now*: where registered or holding a position. Nothing the caller does in the same call
    /// can widen this, since positions at new organisations need the registering
    /// organisation's consent (see [`assign_position`]).
    async fn allow_for_person(
        &self,
        state: &AppState,
        conn: &mut Conn,
        action: RaAction,
        uid: &str,
        role: Option<&RoleCode>,
    ) -> ApiResult<()> {
        let orgs = repo::person_organisations(conn, uid).await?;
        if orgs.is_empty() {
            return Err(ApiError::not_found(
                code::UNKNOWN_PERSON,
                format!("no person has UID {uid}"),
            ));
        }
        let mut first_err = None;
        for org in orgs {
            match self.allow(state, action, &parse_ods(&org)?, role) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| ApiError::internal("no organisation checked")))
    }

    async fn audit(
        &self,
        state: &AppState,
        tx: &mut Tx,
        action: &str,
        subject: &str,
        org: &str,
        detail: serde_json::Value,
    ) -> ApiResult<()> {
        state
            .append_audit(
                tx,
                &self.ctx.event(action, subject, org, detail),
                state.now_ms(),
            )
            .await?;
        Ok(())
    }
}

/// Runs a mutation and writes its failure (if any) to the audit log.
async fn audited<T>(
    state: &AppState,
    caller: &RaCaller,
    action: &str,
    subject: &str,
    fut: impl std::future::Future<Output = ApiResult<T>>,
) -> ApiResult<Json<T>> {
    state
        .audited(&caller.ctx, action, subject, fut)
        .await
        .map(Json)
}

pub(crate) async fn me(State(state): State<AppState>, caller: RaCaller) -> ApiResult<Json<Person>> {
    let mut conn = state.store().pool().acquire().await?;
    Ok(Json(views::person(&mut conn, &caller.uid).await?))
}

// ---------------------------------------------------------------------------------------------
// Organisations

pub(crate) async fn list_organisations(
    State(state): State<AppState>,
    _caller: RaCaller,
) -> ApiResult<Json<Vec<Organisation>>> {
    let mut conn = state.store().pool().acquire().await?;
    Ok(Json(
        repo::organisations(&mut conn)
            .await?
            .into_iter()
            .map(|o| Organisation {
                ods_code: o.ods_code,
                name: o.name,
                national: o.national,
            })
            .collect(),
    ))
}

pub(crate) async fn create_organisation(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<CreateOrganisation>,
) -> ApiResult<Json<Organisation>> {
    let subject = req.ods_code.clone();
    audited(&state, &caller, "organisation.create", &subject, async {
        let ods = parse_ods(&req.ods_code)?;
        let name = req.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(ApiError::bad_request(
                code::INVALID_NAME,
                "an organisation name is 1 to 200 characters",
            ));
        }
        caller.allow(
            &state,
            RaAction::CreateOrganisation,
            &parse_ods(state.national_ods())?,
            None,
        )?;
        let mut tx = state.write().await?;
        if repo::organisation(&mut tx, ods.as_str()).await?.is_some() {
            return Err(ApiError::conflict(
                code::ORGANISATION_EXISTS,
                format!("{ods} is already registered"),
            ));
        }
        let org = OrganisationRow {
            ods_code: ods.to_string(),
            name: name.to_owned(),
            national: false,
        };
        repo::insert_organisation(&mut tx, &org, state.now_unix()).await?;
        caller
            .audit(
                &state,
                &mut tx,
                "organisation.created",
                ods.as_str(),
                ods.as_str(),
                serde_json::json!({"name": name}),
            )
            .await?;
        tx.commit().await?;
        Ok(Organisation {
            ods_code: org.ods_code,
            name: org.name,
            national: false,
        })
    })
    .await
}

/// Whether `caller` may set `ods`'s session limits (the console shows the form only then).
/// Session policy is the organisation's RA Manager's call, like assigning RA roles.
pub(crate) fn may_set_session_limits(
    state: &AppState,
    caller: &RaCaller,
    ods: &OdsCode,
) -> ApiResult<()> {
    caller.allow(state, RaAction::AssignRaRole, ods, None)
}

pub(crate) async fn set_session_limits(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(ods): Path<String>,
    ApiJson(req): ApiJson<vsc_proto::SessionLimits>,
) -> ApiResult<Json<vsc_proto::SessionLimits>> {
    let subject = ods.clone();
    audited(&state, &caller, "organisation.session_limits", &subject, async {
        let ods = parse_ods(&ods)?;
        if !(60..=86_400).contains(&req.idle_seconds)
            || !(300..=86_400).contains(&req.max_seconds)
            || req.max_seconds < req.idle_seconds
        {
            return Err(ApiError::bad_request(
                code::INVALID_SESSION_LIMITS,
                "the idle timeout is 1 minute to 24 hours, the absolute timeout 5 minutes to 24 hours and not shorter than the idle timeout",
            ));
        }
        let mut tx = state.write().await?;
        known_organisation(&mut tx, &ods).await?;
        may_set_session_limits(&state, &caller, &ods)?;
        vsc_store::signin::set_session_limits(&mut tx, ods.as_str(), req.idle_seconds, req.max_seconds).await?;
        caller
            .audit(&state, &mut tx, "organisation.session_limits_set", ods.as_str(), ods.as_str(), serde_json::json!({"idle_seconds": req.idle_seconds, "max_seconds": req.max_seconds}))
            .await?;
        tx.commit().await?;
        Ok(req.clone())
    })
    .await
}

/// The activity codes that let a role sign prescriptions (`vsc serve --prescribing-activity`).
fn prescribing_activities(state: &AppState) -> ApiResult<Vec<ActivityCode>> {
    state
        .config()
        .signing
        .prescribing_activities
        .iter()
        .map(|a| a.parse::<ActivityCode>().map_err(ApiError::internal))
        .collect()
}

async fn known_person(conn: &mut Conn, uid: &Uid) -> ApiResult<()> {
    repo::person(conn, uid.as_str())
        .await?
        .map(|_| ())
        .ok_or_else(|| {
            ApiError::not_found(code::UNKNOWN_PERSON, format!("no person has UID {uid}"))
        })
}

async fn known_organisation(conn: &mut Conn, ods: &OdsCode) -> ApiResult<()> {
    repo::organisation(conn, ods.as_str())
        .await?
        .map(|_| ())
        .ok_or_else(|| {
            ApiError::not_found(
                code::UNKNOWN_ORGANISATION,
                format!("no organisation has ODS code {ods}"),
            )
        })
}

// ---------------------------------------------------------------------------------------------
// People

fn clean_name(field: &str, value: &str) -> ApiResult<String> {
    let v = value.trim();
    // Names are shown to other people (the console, the phone): nothing that hides or
    // reorders text.
    if v.is_empty() || v.chars().count() > 100 || !vsc_core::text::displays_as_written(v) {
        return Err(ApiError::bad_request(
            code::INVALID_NAME,
            format!("{field} must be 1 to 100 printable characters"),
        ));
    }
    Ok(v.to_owned())
}

pub(crate) async fn create_person(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<CreatePerson>,
) -> ApiResult<Json<Person>> {
    audited(&state, &caller, "person.create", "", async {
        let ods = parse_ods(&req.organisation)?;
        let given = clean_name("given name", &req.given_name)?;
        let family = clean_name("family name", &req.family_name)?;
        let email = match req
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(e)
                if e.len() <= 254
                    && e.split_once('@')
                        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.')) =>
            {
                Some(e.to_owned())
            }
            Some(e) => {
                return Err(ApiError::bad_request(
                    code::INVALID_EMAIL,
                    format!("'{e}' is not an email address"),
                ));
            }
            None => None,
        };
        let mut tx = state.write().await?;
        known_organisation(&mut tx, &ods).await?;
        caller.allow(&state, RaAction::CreateProfile, &ods, None)?;
        let now = state.now_unix();
        let uid = loop {
            let uid = Uid::from_random(state.random::<12>()?);
            let row = PersonRow {
                uid: uid.to_string(),
                given_name: given.clone(),
                family_name: family.clone(),
                email: email.clone(),
                registered_by: ods.to_string(),
            };
            if repo::insert_person(&mut tx, &row, now).await? {
                break uid;
            }
        };
        caller
            .audit(
                &state,
                &mut tx,
                "person.created",
                uid.as_str(),
                ods.as_str(),
                serde_json::json!({"given_name": given, "family_name": family}),
            )
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        views::person(&mut conn, uid.as_str()).await
    })
    .await
}

pub(crate) async fn get_person(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(uid): Path<String>,
) -> ApiResult<Json<Person>> {
    let subject = uid.clone();
    audited(&state, &caller, "person.view", &subject, async {
        let uid = parse_uid(&uid)?;
        let mut conn = state.store().pool().acquire().await?;
        caller
            .allow_for_person(&state, &mut conn, RaAction::View, uid.as_str(), None)
            .await?;
        views::person(&mut conn, uid.as_str()).await
    })
    .await
}

pub(crate) async fn record_identity_check(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<RecordIdentityCheck>,
) -> ApiResult<Json<Person>> {
    record_identity_check_by(&state, &caller, &uid, &req, None).await
}

/// Records an identity check. With `checker`, someone other than the caller saw the evidence
/// (a bulk file names them): the check is recorded in the checker's name with the caller as its
/// recorder, and the checker must themselves be allowed to check identity at the organisation
/// and not be the person checked, tested here in the same transaction as the write.
pub(crate) async fn record_identity_check_by(
    state: &AppState,
    caller: &RaCaller,
    uid: &str,
    req: &RecordIdentityCheck,
    checker: Option<&Uid>,
) -> ApiResult<Json<Person>> {
    let state = state.clone();
    audited(&state, caller, "identity.check", uid, async {
        let uid = parse_uid(uid)?;
        let ods = parse_ods(&req.organisation)?;
        let evidence = req
            .evidence
            .iter()
            .map(|e| e.parse::<EvidenceType>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request(code::INVALID_EVIDENCE, e))?;
        let level = IdentityLevel::try_from(req.level)
            .map_err(|e| ApiError::bad_request(code::INVALID_LEVEL, e))?;
        level
            .supported_by(&evidence)
            .map_err(|e| ApiError::bad_request(code::INSUFFICIENT_EVIDENCE, e))?;
        let mut tx = state.write().await?;
        known_organisation(&mut tx, &ods).await?;
        caller.not_own(RaAction::RecordIdentityCheck, uid.as_str())?;
        caller
            .allow_for_person(
                &state,
                &mut tx,
                RaAction::RecordIdentityCheck,
                uid.as_str(),
                None,
            )
            .await?;
        caller.allow(&state, RaAction::RecordIdentityCheck, &ods, None)?;
        in_organisation(&mut tx, &uid, &ods, "record an identity check in its name").await?;
        let checker = checker.filter(|c| c.as_str() != caller.uid);
        if let Some(checker) = checker {
            let national = parse_ods(state.national_ods())?;
            let grants = grants_of(&mut tx, checker.as_str()).await?;
            not_own_record(checker.as_str(), uid.as_str(), RaAction::RecordIdentityCheck)
                .and_then(|()| authorize(&grants, RaAction::RecordIdentityCheck, &ods, &national, None).map(|_| ()))
                .map_err(|e| ApiError::forbidden(code::BULK_CHECKER_NOT_PERMITTED, format!("the checker {checker} may not record this check: {e}")))?;
        }
        let names: Vec<String> = evidence.iter().map(|e| e.as_str().to_owned()).collect();
        repo::insert_identity_check(
            &mut tx,
            &IdentityCheckRow {
                uid: uid.to_string(),
                checked_by: checker.map_or_else(|| caller.uid.clone(), ToString::to_string),
                recorded_by: checker.map(|_| caller.uid.clone()),
                ods_code: ods.to_string(),
                evidence: names.clone(),
                level: level.get(),
                checked_at: state.now_unix(),
            },
        )
        .await?;
        caller
            .audit(
                &state,
                &mut tx,
                "identity.checked",
                uid.as_str(),
                ods.as_str(),
                serde_json::json!({"evidence": names, "level": level.get(), "checked_by": checker.map(ToString::to_string)}),
            )
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        views::person(&mut conn, uid.as_str()).await
    })
    .await
}

pub(crate) async fn assign_position(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<AssignPosition>,
) -> ApiResult<Json<Person>> {
    audited(&state, &caller, "position.assign", &uid, async {
        let uid = parse_uid(&uid)?;
        let ods = parse_ods(&req.organisation)?;
        let role: RoleCode = req
            .role_code
            .parse()
            .map_err(|e: vsc_core::IdError| ApiError::bad_request(code::INVALID_ROLE_CODE, e.to_string()))?;
        let role_name = clean_name("role name", &req.role_name)?;
        let activities = req
            .activities
            .iter()
            .map(|a| a.parse::<ActivityCode>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request(code::INVALID_ACTIVITY_CODE, e.to_string()))?;
        let mut tx = state.write().await?;
        known_organisation(&mut tx, &ods).await?;
        let person = repo::person(&mut tx, uid.as_str())
            .await?
            .ok_or_else(|| ApiError::not_found(code::UNKNOWN_PERSON, format!("no person has UID {uid}")))?;
        caller.not_own(RaAction::AssignPosition, uid.as_str())?;
        // The position is at `ods`: that is where the RA must hold the right, for this role
        // and these activities.
        caller.allow_position(&state, &ods, &role, &activities)?;
        let orgs = repo::person_organisations(&mut tx, uid.as_str()).await?;
        if !orgs.iter().any(|o| o == ods.as_str()) {
            // A first position at `ods` brings the person into `ods`'s scope (view, cards,
            // identity checks): the registering organisation must consent.
            let home = parse_ods(&person.registered_by)?;
            if caller.allow(&state, RaAction::ReleaseToOrganisation, &home, None).is_err() {
                return Err(ApiError::forbidden(
                    code::POSITION_REQUEST_NEEDED,
                    format!(
                        "{uid} is registered at {home} and holds no position at {ods}; a first position at {ods} needs the consent of an RA Manager or RA Agent of {home}: request it with `vsc ra position-request create {uid} --org {ods} …` and ask them to approve it"
                    ),
                ));
            }
        }
        let row = PositionRow {
            id: state.new_id()?,
            uid: uid.to_string(),
            ods_code: ods.to_string(),
            role_code: role.to_string(),
            role_name: role_name.clone(),
            activities: activities.iter().map(ToString::to_string).collect(),
        };
        let Some(position_id) = repo::insert_position(&mut tx, &row, state.now_unix()).await? else {
            return Err(ApiError::conflict(code::POSITION_EXISTS, format!("{uid} already holds {role} at {ods}")));
        };
        caller
            .audit(&state, &mut tx, "position.assigned", uid.as_str(), ods.as_str(), serde_json::json!({"position_id": position_id, "role_code": role, "role_name": role_name, "activities": row.activities}))
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        views::person(&mut conn, uid.as_str()).await
    })
    .await
}

pub(crate) async fn assign_ra_role(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<RaRoleGrant>,
) -> ApiResult<Json<Person>> {
    audited(&state, &caller, "ra_role.assign", &uid, async {
        let uid = parse_uid(&uid)?;
        let ods = parse_ods(&req.organisation)?;
        let role: RaRole = req
            .role
            .parse()
            .map_err(|e: String| ApiError::bad_request(code::INVALID_RA_ROLE, e))?;
        let assignable = req
            .assignable_roles
            .iter()
            .map(|r| r.parse::<RoleCode>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request(code::INVALID_ROLE_CODE, e.to_string()))?;
        let assignable_activities = req
            .assignable_activities
            .iter()
            .map(|a| a.parse::<ActivityCode>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request(code::INVALID_ACTIVITY_CODE, e.to_string()))?;
        if role != RaRole::Sponsor && (!assignable.is_empty() || !assignable_activities.is_empty()) {
            return Err(ApiError::bad_request(
                code::INVALID_REQUEST,
                "only a Sponsor has assignable roles and activities",
            ));
        }
        let prescribing = prescribing_activities(&state)?;
        if let Some(a) = assignable_activities.iter().find(|a| prescribing.contains(a)) {
            return Err(ApiError::bad_request(
                code::SPONSOR_PRESCRIBING_ACTIVITY,
                format!("{a} lets its holder sign prescriptions; only RA Managers and RA Agents grant it, a Sponsor cannot sponsor it"),
            ));
        }
        let mut tx = state.write().await?;
        known_organisation(&mut tx, &ods).await?;
        known_person(&mut tx, &uid).await?;
        caller.not_own(RaAction::AssignRaRole, uid.as_str())?;
        caller.allow(&state, RaAction::AssignRaRole, &ods, None)?;
        // An RA role at `ods` is for someone who belongs there already; this is also what puts
        // the person in the caller's scope before the call.
        in_organisation(&mut tx, &uid, &ods, "give them an RA role there").await?;
        let row = RaRoleRow {
            uid: uid.to_string(),
            ods_code: ods.to_string(),
            role: role.as_str().to_owned(),
            assignable_roles: assignable.iter().map(ToString::to_string).collect(),
            assignable_activities: assignable_activities.iter().map(ToString::to_string).collect(),
        };
        repo::upsert_ra_role(&mut tx, &row, state.now_unix()).await?;
        caller
            .audit(
                &state,
                &mut tx,
                "ra_role.assigned",
                uid.as_str(),
                ods.as_str(),
                serde_json::json!({"role": row.role, "assignable_roles": row.assignable_roles, "assignable_activities": row.assignable_activities}),
            )
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        views::person(&mut conn, uid.as_str()).await
    })
    .await
}

/// Ends a position. Whoever may assign it may end it (so a Sponsor ends only the positions it
/// could have given). Sessions acting in the position end with it, and their OpenID Connect
/// grants follow (the sign-in sweeper revokes them and tells the relying parties), because
/// what they assert about the person is no longer true.
pub(crate) async fn end_position(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Person>> {
    audited(&state, &caller, "position.end", &id, async {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ApiError::bad_request(code::UNKNOWN_POSITION, "a position id is letters, digits and '-'"));
        }
        let mut tx = state.write().await?;
        let position = repo::live_position(&mut tx, &id)
            .await?
            .ok_or_else(|| ApiError::not_found(code::UNKNOWN_POSITION, format!("no position held now has id {id}")))?;
        let uid = position.uid.clone();
        let ods = parse_ods(&position.ods_code)?;
        // Scope before anything else: an RA outside the person's organisations learns nothing
        // about the position beyond "not permitted".
        caller.allow_for_person(&state, &mut tx, RaAction::View, &uid, None).await?;
        caller.not_own(RaAction::AssignPosition, &uid)?;
        let role: RoleCode = position.role_code.parse().map_err(|e: vsc_core::IdError| ApiError::internal(e))?;
        let activities = position
            .activities
            .iter()
            .map(|a| a.parse::<ActivityCode>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::internal)?;
        caller.allow_position(&state, &ods, &role, &activities)?;
        let now = state.now_unix();
        if repo::end_position(&mut tx, &uid, &id, &caller.uid, now).await?.is_none() {
            return Err(ApiError::conflict(code::UNKNOWN_POSITION, format!("position {id} ended meanwhile")));
        }
        let sessions_ended = vsc_store::signin::end_live_sessions_of_position(&mut tx, &id, now, "position-ended").await?;
        caller
            .audit(
                &state,
                &mut tx,
                "position.ended",
                &uid,
                ods.as_str(),
                serde_json::json!({"position_id": id, "role_code": position.role_code, "role_name": position.role_name, "activities": position.activities, "sessions_ended": sessions_ended}),
            )
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        views::person(&mut conn, &uid).await
    })
    .await
}

/// Takes an RA role away: RA Managers at the role's organisation (or national), never on their
/// own record. The person's RA sessions stay, with what their remaining roles allow (every RA
/// call reads the roles afresh); with none left, they are refused at the next call.
pub(crate) async fn remove_ra_role(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<RemoveRaRole>,
) -> ApiResult<Json<Person>> {
    audited(&state, &caller, "ra_role.remove", &uid, async {
        let uid = parse_uid(&uid)?;
        let ods = parse_ods(&req.organisation)?;
        let role: RaRole = req
            .role
            .parse()
            .map_err(|e: String| ApiError::bad_request(code::INVALID_RA_ROLE, e))?;
        let mut tx = state.write().await?;
        known_organisation(&mut tx, &ods).await?;
        known_person(&mut tx, &uid).await?;
        caller.not_own(RaAction::AssignRaRole, uid.as_str())?;
        caller.allow(&state, RaAction::AssignRaRole, &ods, None)?;
        let removed = repo::remove_ra_role(&mut tx, uid.as_str(), ods.as_str(), role.as_str())
            .await?
            .ok_or_else(|| ApiError::not_found(code::RA_ROLE_NOT_HELD, format!("{uid} does not hold {} at {ods}", role.as_str())))?;
        caller
            .audit(
                &state,
                &mut tx,
                "ra_role.removed",
                uid.as_str(),
                ods.as_str(),
                serde_json::json!({"role": removed.role, "assignable_roles": removed.assignable_roles, "assignable_activities": removed.assignable_activities}),
            )
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        views::person(&mut conn, uid.as_str()).await
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Cards

pub(crate) async fn issue_card(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(uid): Path<String>,
    ApiJson(req): ApiJson<vsc_proto::IssueCard>,
) -> ApiResult<Json<CardWithCode>> {
    audited(&state, &caller, "card.issue", &uid, async {
        let uid = parse_uid(&uid)?;
        let ods = parse_ods(&req.organisation)?;
        let mut tx = state.write().await?;
        known_organisation(&mut tx, &ods).await?;
        known_person(&mut tx, &uid).await?;
        caller.not_own(RaAction::IssueCard, uid.as_str())?;
        caller.allow(&state, RaAction::IssueCard, &ods, None)?;
        in_organisation(&mut tx, &uid, &ods, "issue a card in its name").await?;
        let verified = repo::identity_checks(&mut tx, uid.as_str())
            .await?
            .iter()
            .any(|c| c.level >= IdentityLevel::SMARTCARD.get());
        if !verified {
            return Err(ApiError::conflict(
                code::IDENTITY_NOT_VERIFIED,
                format!("{uid} has no identity check at level 3; record one (`vsc ra person id-check`) before issuing a card"),
            ));
        }
        if let Some(live) = repo::live_cards_of(&mut tx, uid.as_str()).await?.first() {
            return Err(ApiError::conflict(
                code::CARD_EXISTS,
                format!("{uid} already has card {} ({}); cancel it before issuing another", live.id, live.state),
            ));
        }
        let card = CardRow {
            id: state.new_id()?,
            uid: uid.to_string(),
            state: CardState::Pending,
            custody: KeyCustody::DeviceHeld.as_str().into(),
            issued_by: ods.to_string(),
            device_id: None,
        };
        repo::insert_card(&mut tx, &card, state.now_unix()).await?;
        // Licences (issue 14): the card takes one here, when a pool exists.
        super::ra_licences::take_for_card(&mut tx, &card.id, ods.as_str(), state.now_unix()).await?;
        let issued = codes::issue(&state, &mut tx, CodeKind::Activation, &card.id, &caller.uid, state.config().activation_ttl).await?;
        caller
            .audit(&state, &mut tx, "card.issued", &card.id, ods.as_str(), serde_json::json!({"uid": uid, "code_id": issued.code.id(), "expires_at": issued.expires_at.unix_timestamp()}))
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        Ok(CardWithCode {
            card: views::card(&mut conn, card).await?,
            code: issued.to_proto(&state, CodeKind::Activation),
        })
    })
    .await
}

/// Loads a card and checks the caller may act on its holder.
async fn card_for(
    state: &AppState,
    caller: &RaCaller,
    conn: &mut Conn,
    id: &str,
    action: RaAction,
) -> ApiResult<CardRow> {
    let card = views::card_by_id(conn, id).await?;
    if action != RaAction::View {
        caller.not_own(action, &card.uid)?;
    }
    caller
        .allow_for_person(state, conn, action, &card.uid, None)
        .await?;
    Ok(card)
}

pub(crate) async fn get_card(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Card>> {
    let subject = id.clone();
    audited(&state, &caller, "card.view", &subject, async {
        let mut conn = state.store().pool().acquire().await?;
        let card = card_for(&state, &caller, &mut conn, &id, RaAction::View).await?;
        // Renewal (issue 14): the window, for an active card.
        let renewal = match card.state {
            CardState::Active => {
                super::device::renewal_window(&state, &mut conn, &card, state.now_unix()).await?
            }
            _ => None,
        };
        let mut card = views::card(&mut conn, card).await?;
        card.renewal = renewal;
        Ok(card)
    })
    .await
}

/// Issues a one-time code (activation or unlock) for `card` inside `tx`, audits it as `action`,
/// commits, and answers with the card and the code.
async fn issue_code(
    state: &AppState,
    caller: &RaCaller,
    mut tx: Tx,
    card: CardRow,
    kind: CodeKind,
    action: &str,
) -> ApiResult<CardWithCode> {
    let ttl = match kind {
        CodeKind::Activation => state.config().activation_ttl,
        CodeKind::Unlock => state.config().unlock_ttl,
    };
    let issued = codes::issue(state, &mut tx, kind, &card.id, &caller.uid, ttl).await?;
    caller
        .audit(
            state,
            &mut tx,
            action,
            &card.id,
            &card.issued_by,
            serde_json::json!({"uid": card.uid, "code_id": issued.code.id()}),
        )
        .await?;
    tx.commit().await?;
    let mut conn = state.store().pool().acquire().await?;
    Ok(CardWithCode {
        card: views::card(&mut conn, card).await?,
        code: issued.to_proto(state, kind),
    })
}

pub(crate) async fn reissue_activation(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<CardWithCode>> {
    audited(&state, &caller, "activation.reissue", &id, async {
        let mut tx = state.write().await?;
        let card = card_for(&state, &caller, &mut tx, &id, RaAction::IssueCard).await?;
        if card.state != CardState::Pending {
            let hint = if repo::open_replacement(&mut tx, &id).await?.is_some() {
                " (it is waiting for its replacement phone: `vsc ra card replace` again gives a new code)"
            } else {
                ""
            };
            return Err(ApiError::conflict(
                code::CARD_NOT_PENDING,
                format!(
                    "card {id} is {}; only a pending card gets a new activation{hint}",
                    card.state
                ),
            ));
        }
        issue_code(
            &state,
            &caller,
            tx,
            card,
            CodeKind::Activation,
            "activation.issued",
        )
        .await
    })
    .await
}

pub(crate) async fn cancel_card(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CancelCard>,
) -> ApiResult<Json<Card>> {
    audited(&state, &caller, "card.cancel", &id, async {
        let reason = audit_reason(&req.reason, true, "give a reason of ")?;
        let reason_code = parse_reason_code(req.reason_code.as_deref())?;
        let invalidity = parse_invalidity_date(req.invalidity_date.as_deref(), reason_code, state.now())?;
        let mut tx = state.write().await?;
        let card = card_for(&state, &caller, &mut tx, &id, RaAction::CancelCard).await?;
        let from_state: CardState = card.state;
        if !from_state.can_cancel() {
            return Err(ApiError::conflict(code::CARD_NOT_CANCELLABLE, format!("card {id} is already {}", card.state)));
        }
        if let Some(at) = invalidity {
            // The key cannot have been compromised before its certificate existed; a date
            // before that is a typo that would put old, honest signatures in doubt.
            for cert in repo::certificates_of(&mut tx, &id).await? {
                if cert.revoked_at.is_none() && at.unix_timestamp() < cert.not_before {
                    return Err(ApiError::bad_request(
                        code::INVALIDITY_DATE_BEFORE_ISSUE,
                        format!(
                            "the invalidity date is before the card's {} certificate was issued ({}); give a date after that",
                            cert.usage,
                            time::OffsetDateTime::from_unix_timestamp(cert.not_before).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        let now = state.now_unix();
        if !repo::transition_card(&mut tx, &id, &[card.state], CardState::Revoked, now).await? {
            return Err(ApiError::conflict(code::CARD_CHANGED, "the card changed meanwhile; look at it again"));
        }
        repo::set_revocation_reason(&mut tx, &id, reason).await?;
        // Licences (issue 14): a cancelled card gives its licence back.
        super::ra_licences::release_for_card(&mut tx, &id, now).await?;
        let invalidity_unix = invalidity.map(|t| t.unix_timestamp());
        let revoked = repo::revoke_certificates_of(&mut tx, &id, now, reason_code.code(), invalidity_unix).await?;
        let sessions_ended = vsc_store::signin::end_sessions_of_card(&mut tx, &id, now, "card-cancelled").await?;
        repo::end_ra_sessions_of(&mut tx, &card.uid).await?;
        // The card's history keeps its phone, with when it stopped holding the card; a
        // replacement still waiting for a new phone ends with the card.
        repo::record_card_unbound(&mut tx, &id, now, repo::UNBOUND_CANCELLED).await?;
        repo::end_open_replacements(&mut tx, &id, now).await?;
        repo::void_codes(&mut tx, &id, "activation", now).await?;
        repo::void_codes(&mut tx, &id, "unlock", now).await?;
        let crl_number = crl::publish(&state, &mut tx, CrlIssuer::Issuing).await?;
        caller
            .audit(&state, &mut tx, "card.cancelled", &id, &card.issued_by, serde_json::json!({"uid": card.uid, "reason_code": reason_code_name(reason_code), "reason": reason, "invalidity_date": invalidity_unix, "certificates_revoked": revoked, "sessions_ended": sessions_ended, "crl_number": crl_number}))
            .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        let card = views::card_by_id(&mut conn, &id).await?;
        views::card(&mut conn, card).await
    })
    .await
}

/// The reason given for a replacement, trimmed: 1 to 500 characters that display as written
/// (the console checks it before asking the RA's phone to approve the replacement).
pub(crate) fn replacement_reason(reason: &str) -> ApiResult<&str> {
    audit_reason(
        reason,
        true,
        "say why the card is replaced (for example \"new phone\" or \"phone lost on the bus\"): ",
    )
}

/// A reason an RA gives for the audit log (cancel, replace, renew now), trimmed: at most 500
/// characters that display as written (no control or invisible formatting characters such as
/// bidirectional overrides), and not empty when `required`. `lead` opens the refusal.
fn audit_reason<'a>(reason: &'a str, required: bool, lead: &str) -> ApiResult<&'a str> {
    let reason = reason.trim();
    if (required && reason.is_empty())
        || reason.chars().count() > 500
        || !vsc_core::text::displays_as_written(reason)
    {
        let size = if required { "1 to 500" } else { "at most 500" };
        return Err(ApiError::bad_request(
            code::INVALID_REASON,
            format!(
                "{lead}{size} characters, without control or invisible formatting characters (such as bidirectional overrides)"
            ),
        ));
    }
    Ok(reason)
}

/// Moves a card to a new phone (the person changed or lost theirs): the same card record with a
/// new activation. Who may issue cards to the person may replace them, never their own. Only a
/// card that is on a phone (active or locked) is replaced: a pending one just gets a new
/// activation, a cancelled one needs a new card.
///
/// Lost: everything the old phone could do ends now, in this transaction (certificates revoked
/// `key-compromise` and published in the CRL, sessions, open sign-in requests, device tokens,
/// unlock codes, the holder's RA sessions), and the card waits, pending, for the new phone. Not
/// lost: nothing changes for the old phone until the new one enrols (see
/// `device::replacement`), so the person is not locked out meanwhile. Asking again replaces the
/// earlier request and its code (and turns a not-lost replacement into a lost one).
pub(crate) async fn replace_card(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<vsc_proto::replacement::ReplaceCard>,
) -> ApiResult<Json<CardWithCode>> {
    audited(&state, &caller, "card.replace", &id, async {
        let reason = replacement_reason(&req.reason)?;
        let mut tx = state.write().await?;
        let card = card_for(&state, &caller, &mut tx, &id, RaAction::IssueCard).await?;
        match card.state {
            CardState::Active | CardState::Locked => {}
            CardState::Pending => {
                return Err(ApiError::conflict(
                    code::CARD_NOT_REPLACEABLE,
                    format!("card {id} is pending: it is on no phone yet (or already waits for its replacement phone); give a new activation with `vsc ra card reactivate {id}`"),
                ));
            }
            other => {
                return Err(ApiError::conflict(
                    code::CARD_NOT_REPLACEABLE,
                    format!("card {id} is {other}; only a card in use (active or locked) moves to a new phone: issue a new card with `vsc ra card issue`"),
                ));
            }
        }
        let old_device = card
            .device_id
            .clone()
            .ok_or_else(|| ApiError::internal("a card in use without a phone"))?;
        let now = state.now_unix();
        let earlier = repo::end_open_replacements(&mut tx, &id, now).await?;
        let replacement = repo::ReplacementRow {
            id: state.new_id()?,
            card_id: id.clone(),
            lost: req.lost,
            reason: reason.to_owned(),
            requested_by: caller.uid.clone(),
            requested_at: now,
            old_device_id: Some(old_device.clone()),
            new_device_id: None,
            completed_at: None,
            ended_at: None,
        };
        repo::insert_replacement(&mut tx, &replacement).await?;
        let mut detail = serde_json::json!({
            "uid": card.uid, "replacement_id": replacement.id, "lost": req.lost, "reason": reason,
            "old_device_id": old_device, "earlier_replacements_ended": earlier,
        });
        let mut failed_requests = Vec::new();
        if req.lost {
            if !repo::transition_card(&mut tx, &id, &[card.state], CardState::Pending, now).await? {
                return Err(ApiError::conflict(code::CARD_CHANGED, "the card changed meanwhile; look at it again"));
            }
            // The invalidity date is left out: verifiers then treat the key as compromised
            // since issue, the safe reading when nobody knows when the phone went.
            let revoked = repo::revoke_certificates_of(&mut tx, &id, now, RevocationReason::KeyCompromise.code(), None).await?;
            let sessions = vsc_store::signin::end_live_sessions_of_card(&mut tx, &id, now, "card-replaced-lost").await?;
            failed_requests = repo::fail_open_requests_of_card(&mut tx, &id, now).await?;
            let ra_sessions = repo::end_ra_sessions_of(&mut tx, &card.uid).await?;
            repo::void_codes(&mut tx, &id, "unlock", now).await?;
            repo::record_card_unbound(&mut tx, &id, now, repo::UNBOUND_LOST).await?;
            repo::clear_card_device(&mut tx, &id).await?;
            let tokens = repo::delete_device_tokens(&mut tx, &old_device).await?;
            // Nothing more is pushed to the lost phone: its subscription goes with its tokens.
            detail["push_subscription_removed"] =
                vsc_store::push::delete(&mut tx, &old_device).await?.into();
            let crl_number = crl::publish(&state, &mut tx, CrlIssuer::Issuing).await?;
            detail["reason_code"] = reason_code_name(RevocationReason::KeyCompromise).into();
            detail["certificates_revoked"] = revoked.into();
            detail["sessions_ended"] = sessions.into();
            detail["requests_failed"] = serde_json::json!(failed_requests);
            detail["ra_sessions_ended"] = ra_sessions.into();
            detail["device_tokens_deleted"] = tokens.into();
            detail["crl_number"] = serde_json::json!(crl_number);
        }
        let issued = codes::issue(&state, &mut tx, CodeKind::Activation, &id, &caller.uid, state.config().activation_ttl).await?;
        detail["code_id"] = issued.code.id().into();
        detail["expires_at"] = issued.expires_at.unix_timestamp().into();
        caller.audit(&state, &mut tx, "card.replacement.requested", &id, &card.issued_by, detail).await?;
        tx.commit().await?;
        for request_id in failed_requests {
            state.hub().publish(crate::hub::Event::Decided {
                card_id: id.clone(),
                request_id,
                state: vsc_proto::signin::state::FAILED.into(),
            });
        }
        let mut conn = state.store().pool().acquire().await?;
        let card = views::card_by_id(&mut conn, &id).await?;
        Ok(CardWithCode {
            card: views::card(&mut conn, card).await?,
            code: issued.to_proto(&state, CodeKind::Activation),
        })
    })
    .await
}

pub(crate) async fn unlock_card(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<CardWithCode>> {
    audited(&state, &caller, "card.unlock", &id, async {
        let mut tx = state.write().await?;
        let card = card_for(&state, &caller, &mut tx, &id, RaAction::UnlockCard).await?;
        let current: CardState = card.state;
        if !current.can_unlock() {
            return Err(ApiError::conflict(
                code::CARD_NOT_UNLOCKABLE,
                format!(
                    "card {id} is {}; only an active or locked card can be unlocked",
                    card.state
                ),
            ));
        }
        issue_code(
            &state,
            &caller,
            tx,
            card,
            CodeKind::Unlock,
            "card.unlock.issued",
        )
        .await
    })
    .await
}

/// `vsc ra card renew-now`: makes an active card's renewal due now, whatever its window says
/// (the issue-card permission: RAM, or RAA in the holder's organisations; never one's own card).
/// The phone renews at its next `renew` and the order is cleared when that renewal is confirmed.
pub(crate) async fn renew_now_card(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<vsc_proto::renewal::RenewNow>,
) -> ApiResult<Json<vsc_proto::renewal::RenewalWindow>> {
    audited(&state, &caller, "card.renew-now", &id, async {
        let reason = audit_reason(&req.reason, false, "the reason is ")?;
        let mut tx = state.write().await?;
        let card = card_for(&state, &caller, &mut tx, &id, RaAction::IssueCard).await?;
        if card.state != CardState::Active {
            return Err(ApiError::conflict(
                code::CARD_NOT_ACTIVE,
                format!("card {id} is {}; only an active card renews", card.state),
            ));
        }
        let now = state.now_unix();
        vsc_store::renewal::set_order(&mut tx, &id, &caller.uid, reason, now).await?;
        let window = super::device::renewal_window(&state, &mut tx, &card, now)
            .await?
            .ok_or_else(|| ApiError::conflict(code::CARD_NOT_ACTIVE, "the card has no certificates to renew"))?;
        let detail = serde_json::json!({"uid": card.uid, "reason": reason, "not_after": window.not_after.unix_timestamp()});
        caller.audit(&state, &mut tx, "card.renewal.ordered", &id, &card.issued_by, detail).await?;
        tx.commit().await?;
        Ok(window)
    })
    .await
}

/// Where a card stands with renewal, for the console's person page (read after `get_person`
/// admitted the RA): the window (active cards only), an RA's order to renew now, and a renewal
/// the phone has not confirmed yet (issued and still within its hour).
#[derive(Debug, Clone, Default)]
pub(crate) struct CardRenewalFacts {
    pub window: Option<vsc_proto::renewal::RenewalWindow>,
    pub order: Option<vsc_store::renewal::OrderRow>,
    pub unfinished: Option<vsc_store::renewal::RenewalRow>,
}

pub(crate) async fn card_renewal_facts(
    state: &AppState,
    conn: &mut Conn,
    card: &vsc_proto::Card,
) -> ApiResult<CardRenewalFacts> {
    if card.state != CardState::Active.as_str() {
        return Ok(CardRenewalFacts::default());
    }
    let row = views::card_by_id(conn, &card.id).await?;
    let now = state.now_unix();
    let window = super::device::renewal_window(state, conn, &row, now).await?;
    let order = vsc_store::renewal::order(conn, &card.id).await?;
    let unfinished = vsc_store::renewal::renewals_of(conn, &card.id)
        .await?
        .into_iter()
        .find(|r| r.state == vsc_store::renewal::ISSUED && r.expires_at > now);
    Ok(CardRenewalFacts {
        window,
        order,
        unfinished,
    })
}

// ---------------------------------------------------------------------------------------------
// Revocation reasons

/// The reasons an RA may give when cancelling a card, with their RFC 5280 meaning.
const REASON_CODES: [(&str, RevocationReason); 4] = [
    ("key-compromise", RevocationReason::KeyCompromise),
    ("affiliation-changed", RevocationReason::AffiliationChanged),
    ("superseded", RevocationReason::Superseded),
    (
        "cessation-of-operation",
        RevocationReason::CessationOfOperation,
    ),
];

const REASON_HELP: &str = "key-compromise (lost or stolen phone, a passcode or key others may know; give --invalidity-date if known), affiliation-changed (moved organisation, changed name), superseded (replaced by a new card while the old phone is still in hand), cessation-of-operation (left, no longer needs a card)";

fn reason_code_name(reason: RevocationReason) -> &'static str {
    REASON_CODES
        .iter()
        .find(|(_, r)| *r == reason)
        .map_or("unspecified", |(n, _)| n)
}

/// The reason code of a cancellation: required, one of [`REASON_CODES`].
fn parse_reason_code(code: Option<&str>) -> ApiResult<RevocationReason> {
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(ApiError::bad_request(
            code::REASON_CODE_REQUIRED,
            format!("say why the card is cancelled with a reason code: {REASON_HELP}"),
        ));
    };
    let wanted = code.to_ascii_lowercase().replace('_', "-");
    REASON_CODES
        .iter()
        .find(|(n, _)| *n == wanted)
        .map(|(_, r)| *r)
        .ok_or_else(|| {
            ApiError::bad_request(
                code::INVALID_REASON_CODE,
                format!(
                    "'{}' is not a reason code; use one of {REASON_HELP}",
                    code.chars().take(64).collect::<String>()
                ),
            )
        })
}

/// The invalidity date of a cancellation: RFC 3339, only with `key-compromise`, not in the
/// future. (Not before the certificates' notBefore is checked against the card.)
fn parse_invalidity_date(
    date: Option<&str>,
    reason: RevocationReason,
    now: time::OffsetDateTime,
) -> ApiResult<Option<time::OffsetDateTime>> {
    let Some(date) = date.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if reason != RevocationReason::KeyCompromise {
        return Err(ApiError::bad_request(
            code::INVALIDITY_DATE_NEEDS_KEY_COMPROMISE,
            "an invalidity date says since when a key may have been in other hands; give it only with reason code key-compromise",
        ));
    }
    let at = time::OffsetDateTime::parse(date, &Rfc3339).map_err(|_| {
        ApiError::bad_request(
            code::INVALID_INVALIDITY_DATE,
            "the invalidity date is an RFC 3339 time, for example 2026-03-01T14:30:00Z",
        )
    })?;
    if at > now {
        return Err(ApiError::bad_request(
            code::INVALIDITY_DATE_IN_FUTURE,
            "the invalidity date is in the future; give the time since when the phone or key may have been in other hands",
        ));
    }
    // CRLs carry whole seconds.
    Ok(Some(at.replace_nanosecond(0).unwrap_or(at)))
}

// ---------------------------------------------------------------------------------------------
// Position requests: a first position at another organisation, with the registering
// organisation's consent

/// Checks `uid` is registered at or holds a position at `ods`.
async fn in_organisation(conn: &mut Conn, uid: &Uid, ods: &OdsCode, what: &str) -> ApiResult<()> {
    if repo::person_organisations(conn, uid.as_str())
        .await?
        .iter()
        .any(|o| o == ods.as_str())
    {
        return Ok(());
    }
    Err(ApiError::conflict(
        code::PERSON_NOT_IN_ORGANISATION,
        format!(
            "{uid} is neither registered at nor holds a position at {ods}, so you cannot {what}; they need a position there first"
        ),
    ))
}

fn position_request_view(r: PositionRequestRow, now: i64) -> PositionRequest {
    let ts = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    let state = if r.state == PositionRequestState::Pending && r.expires_at <= now {
        "expired".to_owned()
    } else {
        r.state.as_str().to_owned()
    };
    PositionRequest {
        id: r.id,
        uid: r.uid,
        organisation: r.ods_code,
        home_organisation: r.home_ods,
        role_code: r.role_code,
        role_name: r.role_name,
        activities: r.activities,
        requested_by: r.requested_by,
        created_at: ts(r.created_at),
        expires_at: ts(r.expires_at),
        state,
        decided_by: r.decided_by,
    }
}

fn decision_note(note: Option<&str>) -> ApiResult<Option<String>> {
    match note.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(n) if n.chars().count() <= 500 && !n.chars().any(char::is_control) => {
            Ok(Some(n.to_owned()))
        }
        Some(_) => Err(ApiError::bad_request(
            code::INVALID_NOTE,
            "a note is at most 500 printable characters",
        )),
    }
}

pub(crate) async fn request_position(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<RequestPosition>,
) -> ApiResult<Json<PositionRequest>> {
    let subject = req.uid.clone();
    audited(&state, &caller, "position_request.create", &subject, async {
        let uid = parse_uid(&req.uid)?;
        let ods = parse_ods(&req.position.organisation)?;
        let role: RoleCode = req.position.role_code.parse().map_err(|e: vsc_core::IdError| {
            ApiError::bad_request(code::INVALID_ROLE_CODE, e.to_string())
        })?;
        let role_name = clean_name("role name", &req.position.role_name)?;
        let activities = req
            .position
            .activities
            .iter()
            .map(|a| a.parse::<ActivityCode>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::bad_request(code::INVALID_ACTIVITY_CODE, e.to_string()))?;
        let now = state.now_unix();
        let mut tx = state.write().await?;
        known_organisation(&mut tx, &ods).await?;
        let person = repo::person(&mut tx, uid.as_str()).await?.ok_or_else(|| {
            ApiError::not_found(code::UNKNOWN_PERSON, format!("no person has UID {uid}"))
        })?;
        caller.not_own(RaAction::AssignPosition, uid.as_str())?;
        // The requester answers for the position at `ods`, exactly as for a direct assignment.
        caller.allow_position(&state, &ods, &role, &activities)?;
        if repo::person_organisations(&mut tx, uid.as_str())
            .await?
            .iter()
            .any(|o| o == ods.as_str())
        {
            return Err(ApiError::conflict(
                code::PERSON_ALREADY_IN_ORGANISATION,
                format!("{uid} already belongs to {ods}; assign the position directly with `vsc ra person position`"),
            ));
        }
        if let Some(open) =
            repo::position_request_open(&mut tx, uid.as_str(), ods.as_str(), role.as_str(), now)
                .await?
        {
            return Err(ApiError::conflict(
                code::POSITION_REQUEST_EXISTS,
                format!("request {open} for this position is already waiting for {}", person.registered_by),
            ));
        }
        let row = PositionRequestRow {
            id: state.new_id()?,
            uid: uid.to_string(),
            ods_code: ods.to_string(),
            home_ods: person.registered_by.clone(),
            role_code: role.to_string(),
            role_name,
            activities: activities.iter().map(ToString::to_string).collect(),
            requested_by: caller.uid.clone(),
            created_at: now,
            expires_at: now + POSITION_REQUEST_TTL_SECONDS,
            state: PositionRequestState::Pending,
            decided_by: None,
            decided_at: None,
            note: None,
        };
        repo::insert_position_request(&mut tx, &row).await?;
        caller
            .audit(
                &state,
                &mut tx,
                "position.requested",
                uid.as_str(),
                ods.as_str(),
                serde_json::json!({"request_id": row.id, "home_organisation": row.home_ods, "role_code": row.role_code, "role_name": row.role_name, "activities": row.activities}),
            )
            .await?;
        tx.commit().await?;
        Ok(position_request_view(row, now))
    })
    .await
}

pub(crate) async fn list_position_requests(
    State(state): State<AppState>,
    caller: RaCaller,
) -> ApiResult<Json<Vec<PositionRequest>>> {
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let mut out = Vec::new();
    for r in repo::pending_position_requests(&mut conn, now).await? {
        let home = parse_ods(&r.home_ods)?;
        let may_decide = caller
            .allow(&state, RaAction::ReleaseToOrganisation, &home, None)
            .is_ok();
        if may_decide || r.requested_by == caller.uid {
            out.push(position_request_view(r, now));
        }
    }
    Ok(Json(out))
}

/// Loads a request that is still pending and unexpired.
async fn pending_request(conn: &mut Conn, id: &str, now: i64) -> ApiResult<PositionRequestRow> {
    let r = repo::position_request(conn, id).await?.ok_or_else(|| {
        ApiError::not_found(
            code::UNKNOWN_POSITION_REQUEST,
            format!("no position request has id {id}"),
        )
    })?;
    if r.state != PositionRequestState::Pending {
        return Err(ApiError::conflict(
            code::POSITION_REQUEST_DECIDED,
            format!("request {id} is already {}", r.state),
        ));
    }
    if r.expires_at <= now {
        return Err(ApiError::conflict(
            code::POSITION_REQUEST_EXPIRED,
            format!("request {id} has expired; the requesting organisation asks again"),
        ));
    }
    Ok(r)
}

/// The first steps of deciding position request `id`: the checked note, the time, the write
/// transaction, and the request (pending and unexpired, or a clear refusal).
async fn open_decision(
    state: &AppState,
    id: &str,
    note: Option<&str>,
) -> ApiResult<(Option<String>, i64, Tx, PositionRequestRow)> {
    let note = decision_note(note)?;
    let now = state.now_unix();
    let mut tx = state.write().await?;
    let request = pending_request(&mut tx, id, now).await?;
    Ok((note, now, tx, request))
}

/// Marks pending request `id` as `decision` by `caller`, inside the caller's transaction; a
/// request decided by somebody else since it was read is a conflict, not a second decision.
async fn record_decision(
    tx: &mut Conn,
    id: &str,
    decision: PositionRequestState,
    caller: &RaCaller,
    note: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    if repo::decide_position_request(tx, id, decision, &caller.uid, note, now).await? {
        Ok(())
    } else {
        Err(ApiError::conflict(
            code::POSITION_REQUEST_DECIDED,
            format!("request {id} was decided meanwhile"),
        ))
    }
}

/// The position request `id` as it stands after a committed decision.
async fn decided_request(state: &AppState, id: &str, now: i64) -> ApiResult<PositionRequest> {
    let mut conn = state.store().pool().acquire().await?;
    let done = repo::position_request(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::internal("a decided position request vanished"))?;
    Ok(position_request_view(done, now))
}

pub(crate) async fn approve_position_request(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecidePositionRequest>,
) -> ApiResult<Json<PositionRequest>> {
    let subject = id.clone();
    audited(&state, &caller, "position_request.approve", &subject, async {
        let (note, now, mut tx, r) = open_decision(&state, &id, body.note.as_deref()).await?;
        let person = repo::person(&mut tx, &r.uid)
            .await?
            .ok_or_else(|| ApiError::internal("a position request for an unknown person"))?;
        caller.not_own(RaAction::ReleaseToOrganisation, &r.uid)?;
        // The consent comes from the registering organisation as it is now.
        let home = parse_ods(&person.registered_by)?;
        caller.allow(&state, RaAction::ReleaseToOrganisation, &home, None)?;
        if r.requested_by == caller.uid {
            return Err(ApiError::forbidden(
                code::POSITION_REQUEST_OWN,
                "you asked for this position; another RA Manager or RA Agent of the registering organisation approves it",
            ));
        }
        // The requester must still be allowed to assign this position there.
        let ods = parse_ods(&r.ods_code)?;
        let role: RoleCode = r.role_code.parse().map_err(|e: vsc_core::IdError| ApiError::internal(e))?;
        let activities = r
            .activities
            .iter()
            .map(|a| a.parse::<ActivityCode>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::internal)?;
        let requester = grants_of(&mut tx, &r.requested_by).await?;
        let national = parse_ods(state.national_ods())?;
        let prescribing = prescribing_activities(&state)?;
        if authorize_position(&requester, &ods, &national, &role, &activities, &prescribing).is_err() {
            return Err(ApiError::conflict(
                code::REQUESTER_NO_LONGER_AUTHORISED,
                format!("{} may no longer assign this position at {ods}; decline the request", r.requested_by),
            ));
        }
        record_decision(&mut tx, &id, PositionRequestState::Approved, &caller, note.as_deref(), now).await?;
        let row = PositionRow {
            id: state.new_id()?,
            uid: r.uid.clone(),
            ods_code: r.ods_code.clone(),
            role_code: r.role_code.clone(),
            role_name: r.role_name.clone(),
            activities: r.activities.clone(),
        };
        let Some(position_id) = repo::insert_position(&mut tx, &row, now).await? else {
            return Err(ApiError::conflict(code::POSITION_EXISTS, format!("{} already holds {} at {}", r.uid, r.role_code, r.ods_code)));
        };
        caller
            .audit(&state, &mut tx, "position.request_approved", &r.uid, home.as_str(), serde_json::json!({"request_id": id, "organisation": r.ods_code, "requested_by": r.requested_by, "note": note}))
            .await?;
        caller
            .audit(&state, &mut tx, "position.assigned", &r.uid, &r.ods_code, serde_json::json!({"position_id": position_id, "role_code": r.role_code, "role_name": r.role_name, "activities": r.activities, "request_id": id, "requested_by": r.requested_by}))
            .await?;
        tx.commit().await?;
        decided_request(&state, &id, now).await
    })
    .await
}

pub(crate) async fn decline_position_request(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecidePositionRequest>,
) -> ApiResult<Json<PositionRequest>> {
    let subject = id.clone();
    audited(&state, &caller, "position_request.decline", &subject, async {
        let (note, now, mut tx, r) = open_decision(&state, &id, body.note.as_deref()).await?;
        // The registering organisation declines; the RA who asked may withdraw.
        if r.requested_by != caller.uid {
            caller.allow(&state, RaAction::ReleaseToOrganisation, &parse_ods(&r.home_ods)?, None)?;
        }
        record_decision(&mut tx, &id, PositionRequestState::Declined, &caller, note.as_deref(), now).await?;
        caller
            .audit(&state, &mut tx, "position.request_declined", &r.uid, &r.home_ods, serde_json::json!({"request_id": id, "organisation": r.ods_code, "requested_by": r.requested_by, "note": note}))
            .await?;
        tx.commit().await?;
        decided_request(&state, &id, now).await
    })
    .await
}
