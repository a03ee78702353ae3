//! The OCSP responder (RFC 6960, with RFC 5019's HTTP conventions) at `/ca/ocsp`: relying
//! parties ask whether a certificate of the issuing CA is good, revoked (with the time, the RFC
//! 5280 reason and the invalidity date the RA gave) or unknown, and get an answer as fresh as
//! the database.
//!
//! | route | |
//! |---|---|
//! | `POST /ca/ocsp` | body `application/ocsp-request` (at most [`MAX_REQUEST`] bytes) |
//! | `GET /ca/ocsp/{base64}` | the request DER, base64 then URL-encoded (RFC 6960 Appendix A.1); cacheable |
//!
//! **Answers.** Status comes from the `certificates` table (people's certificates) and the
//! `workstations` table (workstation certificates, revoked with the workstation); a serial the
//! store does not hold (the server's own TLS certificate, a serial never issued) is `unknown`.
//! `thisUpdate` and `producedAt` are now and `nextUpdate` is [`RESPONSE_VALIDITY`] (one hour)
//! later: each response is made from the database at request time, so `nextUpdate` only bounds
//! how long a relying party may cache it. The request's nonce (RFC 8954, 1 to 32 octets) is
//! echoed; `responderID` is by key; the responder certificate travels in `certs`.
//!
//! **Refusals are OCSP responses** with HTTP 200, as OCSP clients expect (RFC 6960 §2.3, RFC
//! 5019 §5): `malformedRequest` for anything that is not a well-formed request (bad DER, bad
//! base64, no or too many `CertID`s, an oversized nonce, an unknown critical extension);
//! `unauthorized` when a `CertID` names any issuer but this instance's issuing CA (or uses a
//! hash other than SHA-1 and SHA-256, so that its issuer cannot be recognised);
//! `internalError` when the database or signing fails. Only requests that are not OCSP at all
//! get an HTTP error: a `POST` without the OCSP content type (415, `ocsp_content_type`) and a
//! body or path over the size limit (413, `ocsp_request_too_large`).
//!
//! **The signing key** is a delegated responder certificate (`id-kp-OCSPSigning`,
//! `id-pkix-ocsp-nocheck`), issued by the issuing CA for [`RESPONDER_LIFETIME`] (two days) so
//! that the CA key itself never signs responses and a leaked responder key is worthless within
//! days. It lives in `ocsp_responders`, its PKCS#8 key sealed under the master key (AAD names the
//! certificate's serial), so every node signs with the same one. It is rotated on demand: the
//! first request that finds less than half of its life left (or none) issues the next one, in a
//! write transaction with an `ocsp.responder.rotated` audit event; the new row takes the next
//! `generation`, which is unique, so when two nodes rotate at once one insert wins and the other
//! node uses the winner's certificate. Expired responders are deleted in the same transaction.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use time::{Duration, OffsetDateTime};
use vsc_pki::ocsp::{
    CertStatus, IssuerHashes, Responder, ResponseStatus, SingleResponse, error_response,
    parse_request,
};
use vsc_proto::errors as code;
use vsc_proto::routes;
use vsc_store::ocsp::{self as db, ResponderRow, StatusRow};
use x509_parser::prelude::FromDer;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// Largest OCSP request read (a request for [`vsc_pki::ocsp::MAX_REQUESTS`] certificates with a
/// nonce is well under 2 KiB).
pub const MAX_REQUEST: usize = 8 * 1024;
/// `nextUpdate - thisUpdate`: how long a relying party may rely on an answer.
pub const RESPONSE_VALIDITY: Duration = Duration::hours(1);
/// How long HTTP caches may keep a `GET` answer (at most `nextUpdate`, RFC 5019 §6.2; kept
/// shorter so that a revocation reaches relying parties behind a cache within minutes).
pub const GET_MAX_AGE: Duration = Duration::minutes(5);
/// How long a delegated responder certificate is valid.
pub const RESPONDER_LIFETIME: Duration = Duration::days(2);

const CONTENT_TYPE_REQUEST: &str = "application/ocsp-request";
const CONTENT_TYPE_RESPONSE: &str = "application/ocsp-response";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::CA_OCSP, post(post_request))
        .route(routes::CA_OCSP_GET, get(get_request))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        code::OCSP_REQUEST_TOO_LARGE,
        format!("an OCSP request may be at most {MAX_REQUEST} bytes"),
    )
}

async fn post_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if content_type.as_deref() != Some(CONTENT_TYPE_REQUEST) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::OCSP_CONTENT_TYPE,
            format!("an OCSP request is sent with Content-Type: {CONTENT_TYPE_REQUEST}"),
        ));
    }
    let der = axum::body::to_bytes(body, MAX_REQUEST)
        .await
        .map_err(|_| too_large())?;
    Ok(respond(&state, &der, false).await)
}

async fn get_request(
    State(state): State<AppState>,
    Path(encoded): Path<String>,
) -> ApiResult<Response> {
    // base64 of MAX_REQUEST bytes, with padding.
    if encoded.len() > MAX_REQUEST.div_ceil(3) * 4 {
        return Err(too_large());
    }
    // The path is already percent-decoded. Clients write standard base64 (RFC 6960); some
    // leave the padding off or use the URL-safe alphabet, which costs nothing to accept.
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let Some(der) = engines.iter().find_map(|e| e.decode(encoded.trim()).ok()) else {
        tracing::debug!("OCSP GET request is not base64");
        return Ok(refusal(ResponseStatus::MalformedRequest));
    };
    Ok(respond(&state, &der, true).await)
}

/// An unsigned refusal (`responseStatus` only), never cached.
fn refusal(status: ResponseStatus) -> Response {
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE_RESPONSE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        error_response(status),
    )
        .into_response()
}

async fn respond(state: &AppState, request: &[u8], get: bool) -> Response {
    let request = match parse_request(request) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "OCSP request refused");
            return refusal(ResponseStatus::MalformedRequest);
        }
    };
    let issuer = match IssuerHashes::of(state.ca().issuing_der()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the issuing CA certificate");
            return refusal(ResponseStatus::InternalError);
        }
    };
    if let Some(foreign) = request.cert_ids.iter().find(|id| !issuer.issued(id)) {
        tracing::debug!(
            issuer_name_hash = hex::encode(&foreign.issuer_name_hash),
            "OCSP request for a certificate of another issuer"
        );
        return refusal(ResponseStatus::Unauthorized);
    }
    let now = state.now();
    let next_update = now + RESPONSE_VALIDITY;
    let signed = async {
        let responder = responder(state).await?;
        let mut conn = state.store().pool().acquire().await?;
        let mut responses = Vec::with_capacity(request.cert_ids.len());
        for cert_id in request.cert_ids {
            let status = match cert_id.serial_hex() {
                Some(serial) => status(db::certificate_status(&mut conn, &serial).await?),
                None => CertStatus::Unknown,
            };
            responses.push(SingleResponse {
                cert_id,
                status,
                this_update: now,
                next_update: Some(next_update),
            });
        }
        drop(conn);
        responder
            .sign(&responses, request.nonce.as_deref(), now)
            .map_err(ApiError::internal)
    }
    .await;
    let der = match signed {
        Ok(der) => der,
        // Already logged by ApiError::internal.
        Err(_) => return refusal(ResponseStatus::InternalError),
    };
    let mut response = ([(header::CONTENT_TYPE, CONTENT_TYPE_RESPONSE)], der).into_response();
    let headers = response.headers_mut();
    // A GET without a nonce answers the same for everyone until nextUpdate: caches may keep it
    // for a while (RFC 5019 §6.2). With a nonce, or by POST, it is for one client only.
    let cache = if get && request.nonce.is_none() {
        let max_age = GET_MAX_AGE.min(next_update - now).whole_seconds();
        for (name, at) in [(header::LAST_MODIFIED, now), (header::EXPIRES, next_update)] {
            if let Ok(value) = HeaderValue::from_str(&http_date(at)) {
                headers.insert(name, value);
            }
        }
        format!("max-age={max_age}, public, no-transform, must-revalidate")
    } else {
        "no-store".to_owned()
    };
    if let Ok(value) = HeaderValue::from_str(&cache) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

fn status(row: Option<StatusRow>) -> CertStatus {
    let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).ok();
    match row {
        None => CertStatus::Unknown,
        Some(StatusRow {
            revoked_at: None, ..
        }) => CertStatus::Good,
        Some(StatusRow {
            revoked_at: Some(revoked_at),
            reason_code,
            invalidity_date,
        }) => CertStatus::Revoked {
            at: at(revoked_at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            // `unspecified` is written as no reason, as in the CRL (RFC 5280 §5.3.1).
            reason: reason_code.filter(|&c| c != 0),
            invalidity_date: invalidity_date.and_then(at),
        },
    }
}

/// An HTTP date (RFC 9110 IMF-fixdate).
fn http_date(t: OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(t.weekday().number_days_from_monday())],
        t.day(),
        MONTHS[usize::from(u8::from(t.month()) - 1)],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn aad(serial: &str) -> Vec<u8> {
    format!("vsc-ocsp-responder-key/v1:{serial}").into_bytes()
}

/// Whether `row` must be replaced at `now`: less than half its life left, or it was not issued
/// by this instance's issuing CA (e.g. a database restored next to another CA).
fn due(state: &AppState, row: &ResponderRow, now: i64) -> bool {
    let half_life = (row.not_after - row.not_before) / 2;
    if now >= row.not_before + half_life || now < row.not_before {
        return true;
    }
    let issued_here = (|| {
        let (_, issuing) =
            x509_parser::certificate::X509Certificate::from_der(state.ca().issuing_der()).ok()?;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&row.cert_der).ok()?;
        cert.verify_signature(Some(issuing.public_key())).ok()
    })();
    issued_here.is_none()
}

/// The current responder, rotated first when due.
pub async fn responder(state: &AppState) -> ApiResult<Responder> {
    let now = state.now_unix();
    let mut conn = state.store().pool().acquire().await?;
    let current = db::current_responder(&mut conn).await?;
    drop(conn);
    let row = match current {
        Some(row) if !due(state, &row, now) => row,
        other => rotate(state, other.map(|r| r.generation)).await?,
    };
    let pkcs8 = state
        .master_key()
        .open(&aad(&row.serial), &row.sealed_key)
        .map_err(ApiError::internal)?;
    Responder::new(row.cert_der, &pkcs8).map_err(ApiError::internal)
}

/// Issues the next responder certificate unless someone else already has since `seen` was
/// read, in one audited write transaction; returns the responder now current.
pub async fn rotate(state: &AppState, seen: Option<i64>) -> ApiResult<ResponderRow> {
    let now = state.now();
    let (cert, pkcs8) = state
        .ca()
        .issue_ocsp_responder_certificate(RESPONDER_LIFETIME, now)?;
    let sealed_key = state
        .master_key()
        .seal(&aad(&cert.serial_hex), &pkcs8)
        .map_err(ApiError::internal)?;
    let mut tx = state.write().await?;
    // Another request (on this node, or on another node sharing the database) may have
    // rotated while this one waited for the writer.
    let current = db::current_responder(&mut tx).await?;
    if let Some(row) = &current
        && Some(row.generation) != seen
        && !due(state, row, now.unix_timestamp())
    {
        return Ok(row.clone());
    }
    let row = ResponderRow {
        serial: cert.serial_hex.clone(),
        generation: current.as_ref().map_or(1, |r| r.generation + 1),
        cert_der: cert.der.clone(),
        sealed_key,
        not_before: cert.not_before.unix_timestamp(),
        not_after: cert.not_after.unix_timestamp(),
        created_at: now.unix_timestamp(),
    };
    if !db::insert_responder(&mut tx, &row).await? {
        // Another node took this generation first (its transaction committed while ours ran):
        // use its certificate; ours was never stored, so nothing is audited.
        drop(tx);
        let mut conn = state.store().pool().acquire().await?;
        return db::current_responder(&mut conn)
            .await?
            .ok_or_else(|| ApiError::internal("no OCSP responder after a lost rotation race"));
    }
    let deleted = db::delete_expired_responders(&mut tx, now.unix_timestamp()).await?;
    let system = AuditContext {
        actor: "system".into(),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    state
        .append_audit(
            &mut tx,
            &system.event(
                "ocsp.responder.rotated",
                &row.serial,
                "",
                serde_json::json!({
                    "generation": row.generation,
                    "not_before": row.not_before,
                    "not_after": row.not_after,
                    "replaces": current.as_ref().map(|r| r.serial.clone()),
                    "expired_deleted": deleted,
                }),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(
        serial = row.serial,
        generation = row.generation,
        "OCSP responder certificate issued"
    );
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = time::macros::datetime!(1994-11-06 08:49:37 UTC);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
