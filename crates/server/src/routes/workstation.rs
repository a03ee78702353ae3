//! Registered workstations: who may open sign-in requests, and the proof they give.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `POST /api/v1/ra/workstations/codes` | RA Manager, RA Agent or Local Smartcard Administrator of the organisation; a national RA Manager anywhere | a one-time registration code (24 h, single use, 5 wrong guesses) |
//! | `GET /api/v1/ra/workstations?organisation=ODS` | the same | the registry |
//! | `POST /api/v1/ra/workstations/{id}/revoke` | the same, for the workstation's organisation | revoke: it can no longer open or collect requests, and its live sessions end |
//! | `GET`/`POST /api/v1/ra/organisations/{ods}/workstation-policy` | any RA role / RA Manager of the organisation or a national RA Manager | whether unregistered workstations may open sign-in requests for the organisation's cards (default: no); the unlock grace period (0 = off, the default, to 15 minutes; else `invalid_workstation_policy`) and fast user switching (default: off) of its workstations' sessions |
//! | `POST /api/v1/workstations/enrol` | identity agent, with the code | CSR for a key made on the workstation → `workstation` certificate |
//! | `POST /api/v1/workstations/challenge` | registered identity agent | a single-use challenge to sign when opening a sign-in request |
//!
//! A registered workstation signs each sign-in request it opens (over a challenge, consumed by
//! one conditional update whatever the signature's fate) and the collection of its ticket (over
//! the request's own server nonce; a request is collected once). The phone is shown the
//! registry's name and organisation and the address the server saw, never what the caller
//! claims. Which organisation's policy admits an unregistered workstation: the card's issuing
//! organisation, as the workstation has none. A registered workstation may open requests for
//! people of any organisation (clinicians work across trusts); the phone shows the
//! workstation's organisation so the person sees where the request comes from.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use vsc_core::{ActivationCode, RaRole, WorkstationState};
use vsc_proto::ChallengeResponse;
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_proto::signin::{
    AuthContext, CreateAuthRequest, WORKSTATION_SIGNATURE_HEADER, WorkstationChallengeRequest,
    WorkstationProof,
};
use vsc_proto::workstation::{
    EnrolWorkstation, IssueWorkstationCode, WorkstationCode, WorkstationEnrolled, WorkstationInfo,
    WorkstationPolicy,
};
use vsc_store::Conn;
use vsc_store::signin::AuthRequestRow;
use vsc_store::workstation::{self as db, WorkstationCodeRow, WorkstationRow};
use vsc_store::{NewEvent, Outcome, Tx, repo};

use super::ra::RaCaller;
use super::{ApiJson, Client, challenge};
use crate::codes::MAX_WRONG_GUESSES;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// Challenge purpose for opening a sign-in request.
const OPEN_PURPOSE: &str = "workstation-open";
/// How long a registration code lives.
pub const CODE_TTL: time::Duration = time::Duration::hours(24);
/// Prefix of the workstation id of a request from an unregistered workstation, so that it can
/// never be taken for (or replace the requests of) a registered one.
pub const UNREGISTERED_PREFIX: &str = "unregistered:";
/// Longest workstation name (X.520's upper bound for a common name).
const MAX_NAME: usize = 64;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::RA_WORKSTATION_CODES, post(issue_code_route))
        .route(routes::RA_WORKSTATIONS, get(list))
        .route(routes::RA_WORKSTATION_REVOKE, post(revoke))
        .route(
            routes::RA_ORGANISATION_WORKSTATION_POLICY,
            get(get_policy).post(set_policy),
        )
        .route(routes::WORKSTATION_ENROL, post(enrol))
        .route(routes::WORKSTATION_CHALLENGE, post(open_challenge))
}

fn hash_secret(secret: &str) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"vsc-workstation-code/v1\n");
    ctx.update(secret.as_bytes());
    ctx.finish().as_ref().to_vec()
}

fn ts(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A workstation name: 1 to 64 printable characters, trimmed.
fn checked_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            code::INVALID_WORKSTATION_NAME,
            format!("a workstation name is 1 to {MAX_NAME} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Whether `caller` may manage the workstations of `ods`: RA Manager, RA Agent or Local
/// Smartcard Administrator there, or an RA Manager at the national organisation.
fn may_manage(state: &AppState, caller: &RaCaller, ods: &str) -> ApiResult<()> {
    let ok = caller.grants.iter().any(|g| {
        (g.organisation.as_str() == ods
            && matches!(
                g.role,
                RaRole::RaManager | RaRole::RaAgent | RaRole::LocalSmartcardAdministrator
            ))
            || (g.organisation.as_str() == state.national_ods() && g.role == RaRole::RaManager)
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            code::NOT_PERMITTED,
            format!(
                "registering and revoking workstations of {ods} needs an RA Manager, RA Agent or Local Smartcard Administrator role there (or RA Manager at the national organisation)"
            ),
        ))
    }
}

/// Whether `caller` may set the workstation policy of `ods` (also asked by the RA console,
/// to show its policy form only where this allows it).
pub(crate) fn may_set_policy(state: &AppState, caller: &RaCaller, ods: &str) -> ApiResult<()> {
    let ok = caller.grants.iter().any(|g| {
        g.role == RaRole::RaManager
            && (g.organisation.as_str() == ods || g.organisation.as_str() == state.national_ods())
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            code::NOT_PERMITTED,
            format!(
                "the workstation policy of {ods} is set by an RA Manager there (or at the national organisation)"
            ),
        ))
    }
}

/// Issues a registration code for a workstation of `ods` inside `tx`, with its audit event.
/// The RA route's body, usable in-process by tools that act as the RA (`vsc sandbox`).
pub async fn issue_code(
    state: &AppState,
    tx: &mut Tx,
    ctx: &AuditContext,
    ods: &str,
    name: Option<&str>,
) -> ApiResult<WorkstationCode> {
    let name = name.map(checked_name).transpose()?;
    if repo::organisation(tx, ods).await?.is_none() {
        return Err(ApiError::not_found(
            code::UNKNOWN_ORGANISATION,
            format!("no organisation has ODS code {ods}"),
        ));
    }
    let now = state.now();
    let code = ActivationCode::from_random(&state.random::<24>()?);
    let expires_at = now + CODE_TTL;
    let row = WorkstationCodeRow {
        id: code.id().to_owned(),
        secret_hash: hash_secret(code.secret()),
        ods_code: ods.to_owned(),
        name: name.clone(),
        created_by: ctx.actor.clone(),
        created_at: now.unix_timestamp(),
        expires_at: expires_at.unix_timestamp(),
        used_at: None,
        failed_attempts: 0,
    };
    db::insert_code(tx, &row).await?;
    state
        .append_audit(
            tx,
            &ctx.event(
                "workstation.code_issued",
                &row.id,
                ods,
                serde_json::json!({"code_id": row.id, "name": name, "expires_at": row.expires_at}),
            ),
            state.now_ms(),
        )
        .await?;
    Ok(WorkstationCode {
        code: code.display().to_string(),
        organisation: ods.to_owned(),
        name,
        server: state.public_url().to_string(),
        ca_fingerprint: state.ca().root_fingerprint().to_colon_hex(),
        expires_at,
    })
}

async fn issue_code_route(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<IssueWorkstationCode>,
) -> ApiResult<(StatusCode, Json<WorkstationCode>)> {
    let subject = req.organisation.clone();
    state
        .audited(&caller.ctx, "workstation.code", &subject, async {
            may_manage(&state, &caller, &req.organisation)?;
            let mut tx = state.write().await?;
            let code = issue_code(
                &state,
                &mut tx,
                &caller.ctx,
                &req.organisation,
                req.name.as_deref(),
            )
            .await?;
            tx.commit().await?;
            Ok((StatusCode::CREATED, Json(code)))
        })
        .await
}

fn info(w: &WorkstationRow) -> WorkstationInfo {
    WorkstationInfo {
        id: w.id.clone(),
        name: w.name.clone(),
        organisation: w.ods_code.clone(),
        state: w.state.as_str().to_owned(),
        certificate_serial: w.cert_serial.clone(),
        registered_by: w.registered_by.clone(),
        registered_at: ts(w.created_at),
        expires_at: ts(w.not_after),
        revoked_at: w.revoked_at.map(ts),
    }
}

/// `?organisation=ODS`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    organisation: String,
}

async fn list(
    State(state): State<AppState>,
    caller: RaCaller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<WorkstationInfo>>> {
    state
        .audited(&caller.ctx, "workstation.list", &q.organisation, async {
            may_manage(&state, &caller, &q.organisation)?;
            let mut conn = state.store().pool().acquire().await?;
            let rows = db::list(&mut conn, Some(&q.organisation)).await?;
            Ok(Json(rows.iter().map(info).collect()))
        })
        .await
}

async fn revoke(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkstationInfo>> {
    state.audited(&caller.ctx, "workstation.revoke", &id, async {
        let now = state.now_unix();
        let mut tx = state.write().await?;
        let w = db::workstation(&mut tx, &id).await?.ok_or_else(|| {
            ApiError::not_found(code::UNKNOWN_WORKSTATION, "no workstation has this id")
        })?;
        may_manage(&state, &caller, &w.ods_code)?;
        if !db::revoke(&mut tx, &id, &caller.uid, now).await? {
            return Err(ApiError::conflict(
                code::WORKSTATION_REVOKED,
                "this workstation is already revoked",
            ));
        }
        // Sessions opened from it end too: whoever made the workstation untrusted wants its
        // sign-ins gone, not only its future ones.
        let ended = db::end_sessions_of(&mut tx, &id, now, "workstation-revoked").await?;
        // Its certificate is the issuing CA's: relying parties that check the CRL (not only
        // OCSP) must see it revoked now, not at the next scheduled refresh.
        let crl_number = crate::crl::publish(&state, &mut tx, crate::crl::CrlIssuer::Issuing).await?;
        state.append_audit(
            &mut tx,
            &caller.ctx.event(
                "workstation.revoked",
                &id,
                &w.ods_code,
                serde_json::json!({"name": w.name, "certificate_serial": w.cert_serial, "sessions_ended": ended, "crl_number": crl_number}),
            ),
            state.now_ms(),
        )
        .await?;
        tx.commit().await?;
        let mut conn = state.store().pool().acquire().await?;
        let w = db::workstation(&mut conn, &id)
            .await?
            .ok_or_else(|| ApiError::internal("revoked workstation vanished"))?;
        Ok(Json(info(&w)))
    })
    .await
}

/// `GET` the workstation policy of `{ods}` (open to the crate, like [`set_policy`]).
pub(crate) async fn get_policy(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(ods): Path<String>,
) -> ApiResult<Json<WorkstationPolicy>> {
    state
        .audited(
            &caller.ctx,
            "organisation.workstation_policy",
            &ods,
            async {
                let mut conn = state.store().pool().acquire().await?;
                let policy = db::policy(&mut conn, &ods).await?.ok_or_else(|| {
                    ApiError::not_found(
                        code::UNKNOWN_ORGANISATION,
                        format!("no organisation has ODS code {ods}"),
                    )
                })?;
                Ok(Json(WorkstationPolicy {
                    allow_unregistered_workstations: policy.allow_unregistered,
                    unlock_grace_minutes: u32::try_from(policy.unlock_grace_minutes).unwrap_or(0),
                    fast_user_switching: policy.fast_user_switching,
                }))
            },
        )
        .await
}

/// `POST` the workstation policy of `{ods}` (also called in-process by the RA console, which
/// shows this handler's refusals).
pub(crate) async fn set_policy(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(ods): Path<String>,
    ApiJson(req): ApiJson<WorkstationPolicy>,
) -> ApiResult<Json<WorkstationPolicy>> {
    state.audited(&caller.ctx, "organisation.workstation_policy", &ods, async {
        may_set_policy(&state, &caller, &ods)?;
        if req.unlock_grace_minutes > vsc_proto::workstation::MAX_UNLOCK_GRACE_MINUTES {
            return Err(ApiError::bad_request(
                code::INVALID_WORKSTATION_POLICY,
                format!(
                    "the unlock grace period is 0 (off) to {} minutes, not {}: nothing was changed",
                    vsc_proto::workstation::MAX_UNLOCK_GRACE_MINUTES,
                    req.unlock_grace_minutes
                ),
            ));
        }
        let row = db::PolicyRow {
            allow_unregistered: req.allow_unregistered_workstations,
            unlock_grace_minutes: i64::from(req.unlock_grace_minutes),
            fast_user_switching: req.fast_user_switching,
        };
        let mut tx = state.write().await?;
        if !db::set_policy(&mut tx, &ods, &row).await? {
            return Err(ApiError::not_found(
                code::UNKNOWN_ORGANISATION,
                format!("no organisation has ODS code {ods}"),
            ));
        }
        state.append_audit(
            &mut tx,
            &caller.ctx.event(
                "organisation.workstation_policy_set",
                &ods,
                &ods,
                serde_json::json!({
                    "allow_unregistered_workstations": req.allow_unregistered_workstations,
                    "unlock_grace_minutes": req.unlock_grace_minutes,
                    "fast_user_switching": req.fast_user_switching,
                }),
            ),
            state.now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(req))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The identity agent

async fn enrol(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<EnrolWorkstation>,
) -> ApiResult<(StatusCode, Json<WorkstationEnrolled>)> {
    let mut subject = String::new();
    match enrol_inner(&state, &ctx, &req, &mut subject).await {
        Ok(done) => Ok((StatusCode::CREATED, Json(done))),
        Err(err) => {
            state
                .audit_failure(&ctx, "workstation.enrol", &subject, "", &err)
                .await;
            Err(err)
        }
    }
}

/// Redeems a registration code with every check an activation gets (unknown, used, expired,
/// too many wrong guesses; each wrong guess counted and committed before the refusal), then
/// certifies the CSR's key and records the workstation, all in one transaction.
async fn enrol_inner(
    state: &AppState,
    ctx: &AuditContext,
    req: &EnrolWorkstation,
    subject: &mut String,
) -> ApiResult<WorkstationEnrolled> {
    let code = ActivationCode::parse(&req.code)
        .map_err(|e| ApiError::bad_request(code::WORKSTATION_CODE_MALFORMED, e.to_string()))?;
    let name = checked_name(&req.name)?;
    let csr_der = B64
        .decode(req.csr.trim())
        .map_err(|_| ApiError::bad_request(code::INVALID_CSR, "the CSR is not base64"))?;
    let csr = vsc_pki::validate_csr(&csr_der, vsc_pki::KeyKind::EcdsaP256)
        .map_err(|e| ApiError::bad_request(code::INVALID_CSR, e.to_string()))?;
    let now = state.now_unix();
    if !state.throttle().allowed(&ctx.source, now).await {
        return Err(ApiError::too_many(
            code::TOO_MANY_ATTEMPTS,
            "too many wrong codes from this address; wait 15 minutes and try again",
        ));
    }
    let mut tx = state.write().await?;
    let Some(row) = db::code(&mut tx, code.id()).await? else {
        state.throttle().record_failure(&ctx.source, now).await;
        return Err(ApiError::not_found(
            code::WORKSTATION_CODE_UNKNOWN,
            "no workstation registration has this code: check it against what your RA gave you",
        ));
    };
    subject.clone_from(&row.id);
    if row.used_at.is_some() {
        return Err(ApiError::gone(
            code::WORKSTATION_CODE_USED,
            "this registration code has already been used; ask your RA for a new one",
        ));
    }
    if row.expires_at <= now {
        return Err(ApiError::gone(
            code::WORKSTATION_CODE_EXPIRED,
            "this registration code has expired; ask your RA for a new one",
        ));
    }
    if row.failed_attempts >= MAX_WRONG_GUESSES {
        return Err(ApiError::too_many(
            code::WORKSTATION_CODE_LOCKED,
            "this registration code was typed wrongly too many times and no longer works; ask your RA for a new one",
        ));
    }
    let matches: bool = hash_secret(code.secret()).ct_eq(&row.secret_hash).into();
    if !matches {
        // The wrong guess counts even though the request fails: commit it with its event.
        let failures = db::record_code_failure(&mut tx, &row.id).await?;
        let left = (MAX_WRONG_GUESSES - failures).max(0);
        let event = NewEvent {
            actor: ctx.actor.clone(),
            action: "workstation.enrol".into(),
            subject: row.id.clone(),
            organisation: row.ods_code.clone(),
            source: ctx.source.to_string(),
            outcome: Outcome::Failure,
            detail: serde_json::json!({"error": code::WORKSTATION_CODE_WRONG, "failed_attempts": failures}),
        };
        state.append_audit(&mut tx, &event, state.now_ms()).await?;
        tx.commit().await?;
        state.throttle().record_failure(&ctx.source, now).await;
        return Err(ApiError::unauthorized(
            code::WORKSTATION_CODE_WRONG,
            format!(
                "this registration code is not right: check it and type it again ({left} tries left)"
            ),
        )
        .audited());
    }
    if let Some(fixed) = &row.name
        && !fixed.eq_ignore_ascii_case(&name)
    {
        return Err(ApiError::bad_request(
            code::WORKSTATION_NAME_MISMATCH,
            format!(
                "this code registers a workstation named '{fixed}'; enrol with --name '{fixed}'"
            ),
        ));
    }
    if db::active_name_taken(&mut tx, &row.ods_code, &name).await? {
        return Err(ApiError::conflict(
            code::WORKSTATION_NAME_TAKEN,
            format!(
                "{} already has a registered workstation named '{name}'; revoke it first or choose another name",
                row.ods_code
            ),
        ));
    }
    let org = repo::organisation(&mut tx, &row.ods_code)
        .await?
        .ok_or_else(|| ApiError::internal("code for an unknown organisation"))?;
    let id = state.new_id()?;
    let cert = state
        .ca()
        .issue_workstation_certificate(
            &csr,
            &name,
            &row.ods_code,
            vsc_pki::ca::workstation::WORKSTATION_LIFETIME,
            &state.crl_url(),
            &state.ocsp_url(),
            state.now(),
        )
        .map_err(|e| ApiError::bad_request(code::INVALID_CSR, e.to_string()))?;
    let w = WorkstationRow {
        id: id.clone(),
        ods_code: row.ods_code.clone(),
        name: name.clone(),
        public_key: csr.spki_der.clone(),
        cert_serial: cert.serial_hex.clone(),
        cert_der: cert.der.clone(),
        not_before: cert.not_before.unix_timestamp(),
        not_after: cert.not_after.unix_timestamp(),
        registered_by: row.created_by.clone(),
        code_id: row.id.clone(),
        created_at: now,
        state: WorkstationState::Active,
        revoked_at: None,
        revoked_by: None,
    };
    match db::insert(&mut tx, &w).await {
        Ok(()) => {}
        // The key's SPKI is unique: one key registers one workstation.
        Err(vsc_store::StoreError::Database(sqlx::Error::Database(e)))
            if e.is_unique_violation() && e.message().contains("public_key") =>
        {
            return Err(ApiError::conflict(
                code::WORKSTATION_KEY_REUSED,
                "this key is already registered; every registration needs a new key",
            ));
        }
        // (Checked above in this transaction; the index is the backstop.)
        Err(vsc_store::StoreError::Database(sqlx::Error::Database(e)))
            if e.is_unique_violation() =>
        {
            return Err(ApiError::conflict(
                code::WORKSTATION_NAME_TAKEN,
                format!(
                    "{} already has a registered workstation named '{name}'",
                    row.ods_code
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    // The code is consumed in this transaction (after the row it points to exists): of two
    // enrolments with one code exactly one commits.
    if !db::consume_code(&mut tx, &row.id, &id, now, MAX_WRONG_GUESSES).await? {
        return Err(ApiError::gone(
            code::WORKSTATION_CODE_USED,
            "this registration code has already been used",
        ));
    }
    state.append_audit(
        &mut tx,
        &ctx.event(
            "workstation.registered",
            &id,
            &row.ods_code,
            serde_json::json!({"name": name, "code_id": row.id, "registered_by": row.created_by, "certificate_serial": cert.serial_hex}),
        ),
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(WorkstationEnrolled {
        workstation_id: id,
        name,
        organisation: org.ods_code,
        organisation_name: org.name,
        certificate_pem: cert.pem(),
        chain_pem: format!("{}{}", state.ca().issuing_pem(), state.ca().root_pem()),
    })
}

/// A registered workstation that may act now: active, certificate within its validity.
async fn usable_workstation(conn: &mut Conn, id: &str, now: i64) -> ApiResult<WorkstationRow> {
    let w = db::workstation(conn, id).await?.ok_or_else(|| {
        ApiError::unauthorized(
            code::UNKNOWN_WORKSTATION,
            "this workstation is not registered: enrol it with `vsc agent enrol`",
        )
    })?;
    if w.state != WorkstationState::Active {
        return Err(ApiError::forbidden(
            code::WORKSTATION_REVOKED,
            "this workstation's registration was revoked; ask your RA to register it again",
        ));
    }
    if now < w.not_before || w.not_after <= now {
        return Err(ApiError::forbidden(
            code::WORKSTATION_CERTIFICATE_EXPIRED,
            "this workstation's certificate is outside its validity; enrol it again",
        ));
    }
    Ok(w)
}

async fn open_challenge(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(req): ApiJson<WorkstationChallengeRequest>,
) -> ApiResult<Json<ChallengeResponse>> {
    state
        .audited(&ctx, "workstation.challenge", &req.workstation_id, async {
            let mut tx = state.write().await?;
            // A registered workstation asks once per sign-in (a bench signs in hundreds of
            // times a minute); only callers naming no usable workstation are rate-limited.
            if let Err(err) =
                usable_workstation(&mut tx, &req.workstation_id, state.now_unix()).await
            {
                state.admit_unauthenticated(ctx.source).await?;
                return Err(err);
            }
            let issued = challenge::issue(
                &state,
                &mut tx,
                &ctx,
                OPEN_PURPOSE,
                &req.workstation_id,
                "workstation.challenge.issued",
            )
            .await?;
            tx.commit().await?;
            Ok(Json(issued))
        })
        .await
}

fn verify(spki: &[u8], statement: &[u8], signature_b64: &str) -> ApiResult<()> {
    let signature = B64.decode(signature_b64.trim()).map_err(|_| {
        ApiError::bad_request(
            code::WORKSTATION_SIGNATURE_MALFORMED,
            "the workstation signature is not base64",
        )
    })?;
    if !super::p256_signature_valid(spki, statement, &signature) {
        return Err(ApiError::unauthorized(
            code::WORKSTATION_SIGNATURE_INVALID,
            "the workstation signature does not verify with the registered workstation key",
        ));
    }
    Ok(())
}

/// The context the phone will see for `req`, coming from `ctx.source`, and whether it comes
/// from a registered workstation.
///
/// With a proof: consumes its challenge in `tx`, the write transaction that opens the request
/// (the caller commits it on refusals too, so that a challenge stays spent whatever happens
/// next), checks the workstation is usable and the signature verifies; the
/// context then carries the registry's id, name and organisation. Without: an unregistered
/// context whose id cannot collide with a registered one. Either way the address is the one
/// the server saw.
pub(crate) async fn opening_context(
    state: &AppState,
    ctx: &AuditContext,
    req: &CreateAuthRequest,
    tx: &mut Conn,
) -> ApiResult<AuthContext> {
    let claimed = &req.context;
    let Some(proof) = &req.workstation else {
        return Ok(AuthContext {
            workstation_id: format!("{UNREGISTERED_PREFIX}{}", claimed.workstation_id),
            workstation_name: claimed.workstation_name.clone(),
            client_address: ctx.source.to_string(),
            agent_version: claimed.agent_version.clone(),
            purpose: claimed.purpose.clone(),
            registered: false,
            organisation: String::new(),
            organisation_name: String::new(),
            web_client: String::new(),
        });
    };
    let WorkstationProof {
        workstation_id,
        challenge_id,
        signature,
    } = proof;
    let now = state.now_unix();
    let nonce = challenge::consume(tx, challenge_id, OPEN_PURPOSE, workstation_id, now).await?;
    let w = usable_workstation(tx, workstation_id, now).await?;
    let statement = vsc_proto::signin::workstation_open_statement(
        challenge_id,
        &nonce,
        workstation_id,
        &req.uid,
        &claimed.purpose,
        &claimed.agent_version,
        &state.origin(),
    );
    verify(&w.public_key, &statement, signature)?;
    let org_name = repo::organisation(tx, &w.ods_code)
        .await?
        .map(|o| o.name)
        .unwrap_or_default();
    Ok(AuthContext {
        workstation_id: w.id,
        workstation_name: w.name,
        client_address: ctx.source.to_string(),
        agent_version: claimed.agent_version.clone(),
        purpose: claimed.purpose.clone(),
        registered: true,
        organisation: w.ods_code,
        organisation_name: org_name,
        web_client: String::new(),
    })
}

/// Refuses an unregistered workstation's request unless the card's issuing organisation
/// allows unregistered workstations.
pub(crate) async fn check_unregistered_allowed(
    conn: &mut Conn,
    shown: &AuthContext,
    card_org: &str,
) -> ApiResult<()> {
    if shown.registered || db::allows_unregistered(conn, card_org).await? == Some(true) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        code::WORKSTATION_NOT_REGISTERED,
        "this workstation is not registered, and the card's organisation accepts sign-ins only from registered workstations: register it with `vsc agent enrol` (ask your RA for a code)",
    ))
}

/// Before an approved request's ticket is handed out: a request opened by a registered
/// workstation is collected only by that workstation, still registered, signing
/// [`vsc_proto::signin::workstation_collect_statement`] (header
/// [`WORKSTATION_SIGNATURE_HEADER`]). Requests of unregistered workstations need nothing more
/// than their poll secret, as before.
pub(crate) async fn check_collect(
    state: &AppState,
    row: &AuthRequestRow,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if row.workstation_id.starts_with(UNREGISTERED_PREFIX) {
        return Ok(());
    }
    let mut conn = state.store().pool().acquire().await?;
    let w = usable_workstation(&mut conn, &row.workstation_id, state.now_unix()).await?;
    let signature = headers
        .get(WORKSTATION_SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized(
                code::WORKSTATION_SIGNATURE_MISSING,
                "this request was opened by a registered workstation: only that workstation collects it, signing the collection (X-Vsc-Workstation-Signature)",
            )
        })?;
    let statement = vsc_proto::signin::workstation_collect_statement(
        &row.id,
        &row.nonce,
        &w.id,
        &state.origin(),
    );
    verify(&w.public_key, &statement, signature)
}
