//! OpenID Connect client registration: the relying parties (clinical web applications) that may
//! sign people in through vsc's provider.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `POST /api/v1/ra/clients` | RA Manager at the national organisation; Service Manager | register a client (at the caller's organisation); its secret is answered once and only its SHA-256 is kept |
//! | `GET /api/v1/ra/clients` | the same | the clients the caller manages (a national caller: all; a Service Manager of a trust: its organisation's) |
//! | `GET /api/v1/ra/clients/{id}` | the same, for a client it manages | one client (never its secret) |
//! | `POST /api/v1/ra/clients/{id}/disable` | the same | disable: no new sign-ins, its tokens are refused; final |
//! | `POST /api/v1/ra/clients/{id}/rotate-secret` | the same, for an enabled secret client | a new secret (answered once); the old one stops working at once |
//!
//! An RA Manager of a trust manages no clients (`ra_outside_organisation`): which services may
//! sign NHS staff in is a national decision, or that of the trust's own Service Manager for the
//! trust's services. Every change is written with its audit event in one transaction, and every
//! refusal is audited. The sandbox registers its test client in-process
//! ([`register_sandbox_client`]); that client is not reachable through these routes' input rules
//! (it accepts any loopback redirect URI).

use std::net::{IpAddr, Ipv4Addr};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use vsc_core::{RaAction, RaRole};
use vsc_oidc::jose::{Alg, Jwk};
use vsc_oidc::redirect::validate_registration;
use vsc_proto::errors as code;
use vsc_proto::oidc::{ClientCreated, ClientInfo, CreateClient, auth_method};
use vsc_proto::routes;
use vsc_store::Tx;
use vsc_store::oidc_clients::{self as db, ClientRow};

use super::ApiJson;
use super::ra::RaCaller;
use super::signin::sha256;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// Longest client name, in characters.
const MAX_NAME: usize = 100;
/// Most redirect URIs (and most post-logout redirect URIs) one client registers.
const MAX_URIS: usize = 20;
/// Most keys in a registered JWK set, and the longest one as JSON.
const MAX_KEYS: usize = 10;
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// RSA client keys: at least 2048 bits (and at most 8192, which aws-lc-rs verifies).
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
/// JWK members that only a private key has: registering one would mean the private key left
/// the client.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// The suffix of every client id (as CIS2's `….apps.nhs…` ids).
pub const CLIENT_ID_SUFFIX: &str = ".apps.vsc";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::RA_CLIENTS, get(list).post(create))
        .route(routes::RA_CLIENT, get(show))
        .route(routes::RA_CLIENT_DISABLE, post(disable))
        .route(routes::RA_CLIENT_ROTATE_SECRET, post(rotate_secret))
}

/// The provider's issuer (the server's public origin, as discovery names it).
pub fn issuer(state: &AppState) -> String {
    state.issuer()
}

fn ts(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// What administrators see of a client.
pub fn info(c: &ClientRow) -> ClientInfo {
    ClientInfo {
        client_id: c.client_id.clone(),
        name: c.name.clone(),
        redirect_uris: c.redirect_uris.clone(),
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        public: c.public_client,
        auth_method: c.auth_method.clone(),
        has_jwks: c.jwks.is_some(),
        jwks_uri: c.jwks_uri.clone(),
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        id_token_alg: c.id_token_alg.clone(),
        organisation: c.ods_code.clone(),
        created_by: c.created_by.clone(),
        created_at: ts(c.created_at),
        disabled_at: c.disabled_at.map(ts),
    }
}

// ---------------------------------------------------------------------------------------------
// Who manages which clients

/// The clients a caller manages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientScope {
    /// Every client (an RA Manager or Service Manager at the national organisation); new clients
    /// are registered at the national organisation.
    All { national: String },
    /// The clients of these organisations (a Service Manager's); new clients are registered at
    /// the first.
    Organisations(Vec<String>),
}

impl ClientScope {
    fn covers(&self, ods: &str) -> bool {
        match self {
            ClientScope::All { .. } => true,
            ClientScope::Organisations(orgs) => orgs.iter().any(|o| o == ods),
        }
    }

    /// Where a client this caller registers belongs.
    fn home(&self) -> &str {
        match self {
            ClientScope::All { national } => national,
            ClientScope::Organisations(orgs) => orgs.first().map_or("", String::as_str),
        }
    }
}

/// Which clients `caller` may manage: RA Managers through a grant at the national organisation
/// only; Service Managers through a grant anywhere (their own organisation's clients, or all
/// of them when the grant is national).
fn client_scope(state: &AppState, caller: &RaCaller) -> ApiResult<ClientScope> {
    let national = state.national_ods();
    let capable: Vec<_> = caller
        .grants
        .iter()
        .filter(|g| g.role.permits(RaAction::ManageClients))
        .collect();
    if capable.iter().any(|g| g.organisation.as_str() == national) {
        return Ok(ClientScope::All {
            national: national.to_owned(),
        });
    }
    let orgs: Vec<String> = capable
        .iter()
        .filter(|g| g.role == RaRole::ServiceManager)
        .map(|g| g.organisation.to_string())
        .collect();
    if !orgs.is_empty() {
        return Ok(ClientScope::Organisations(orgs));
    }
    if capable.is_empty() {
        Err(ApiError::forbidden(
            code::RA_ROLE_NOT_PERMITTED,
            "your RA roles do not allow you to manage OpenID Connect clients: that takes an RA Manager at the national organisation or a Service Manager",
        ))
    } else {
        Err(ApiError::forbidden(
            code::RA_OUTSIDE_ORGANISATION,
            format!(
                "an RA Manager manages OpenID Connect clients only with a grant at the national organisation ({national}); ask for the service-manager role at your organisation"
            ),
        ))
    }
}

/// A client `scope` covers, read inside `conn`'s transaction or connection.
async fn managed_client(
    conn: &mut vsc_store::Conn,
    scope: &ClientScope,
    client_id: &str,
) -> ApiResult<ClientRow> {
    let c = db::client(conn, client_id)
        .await?
        .ok_or_else(|| ApiError::not_found(code::UNKNOWN_CLIENT, "no client has this id"))?;
    if !scope.covers(&c.ods_code) {
        return Err(ApiError::forbidden(
            code::RA_OUTSIDE_ORGANISATION,
            format!(
                "client {client_id} is registered at {}, which is not an organisation where you manage clients",
                c.ods_code
            ),
        ));
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// Input rules

/// A client name: 1 to 100 printable characters, trimmed.
fn checked_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME
        || !vsc_core::text::displays_as_written(name)
    {
        return Err(ApiError::bad_request(
            code::INVALID_CLIENT_NAME,
            format!(
                "a client name is 1 to {MAX_NAME} printable characters (people see it when they sign in)"
            ),
        ));
    }
    Ok(name.to_owned())
}

/// Redirect URIs as registered: each one checked, none twice, kept exactly as written (matching
/// is exact).
fn checked_redirect_uris(field: &str, uris: &[String]) -> ApiResult<Vec<String>> {
    if uris.len() > MAX_URIS {
        return Err(ApiError::bad_request(
            code::INVALID_REDIRECT_URI,
            format!("at most {MAX_URIS} {field}s per client"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(uris.len());
    for uri in uris {
        validate_registration(uri).map_err(|e| {
            ApiError::bad_request(code::INVALID_REDIRECT_URI, format!("{field} {uri:?}: {e}"))
        })?;
        if out.contains(uri) {
            return Err(ApiError::bad_request(
                code::INVALID_REDIRECT_URI,
                format!("{field} {uri:?} is listed twice"),
            ));
        }
        out.push(uri.clone());
    }
    Ok(out)
}

/// A URL the server itself calls (`jwks_uri`, `backchannel_logout_uri`): the redirect URI rules
/// (https, or http on loopback; no fragment or userinfo).
fn checked_server_url(
    field: &str,
    error: &'static str,
    uri: Option<&str>,
) -> ApiResult<Option<String>> {
    let Some(uri) = uri else {
        return Ok(None);
    };
    validate_registration(uri).map_err(|e| {
        // The shared rules speak of "the redirect URI"; this is another kind of URL.
        let why = e
            .to_string()
            .replace("the redirect URI", &format!("the {field}"));
        ApiError::bad_request(error, format!("{field} {uri:?}: {why}"))
    })?;
    Ok(Some(uri.to_owned()))
}

fn jwks_error(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code::INVALID_JWKS, message)
}

fn b64url(field: &str, value: Option<&str>, kid: &str) -> ApiResult<Vec<u8>> {
    let value = value.ok_or_else(|| jwks_error(format!("key {kid} has no {field}")))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| jwks_error(format!("key {kid}: {field} is not base64url")))
}

/// Checks one public key: RSA of 2048 to 8192 bits, or EC on P-256 with a point on the curve;
/// `alg` and `use`, when present, must fit.
fn check_jwk(index: usize, raw: &serde_json::Value) -> ApiResult<()> {
    let obj = raw
        .as_object()
        .ok_or_else(|| jwks_error(format!("key {index} is not a JSON object")))?;
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(jwks_error(format!(
            "key {index} carries the private member {member:?}: register public keys only, and treat that private key as disclosed"
        )));
    }
    let jwk: Jwk = serde_json::from_value(raw.clone())
        .map_err(|e| jwks_error(format!("key {index} is not a JWK: {e}")))?;
    let name = jwk
        .kid
        .as_deref()
        .map_or_else(|| index.to_string(), |k| format!("{index} ({k:?})"));
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(jwks_error(format!(
            "key {name} is not for signatures (\"use\" must be \"sig\" or absent)"
        )));
    }
    let alg = jwk
        .alg
        .as_deref()
        .map(|a| {
            a.parse::<Alg>().map_err(|_| {
                jwks_error(format!(
                    "key {name}: alg {a:?} is not RS256, RS512 or ES256"
                ))
            })
        })
        .transpose()?;
    match jwk.kty.as_str() {
        "RSA" => {
            if alg.is_some_and(|a| a == Alg::ES256) {
                return Err(jwks_error(format!("key {name} is an RSA key marked ES256")));
            }
            let n = b64url("n", jwk.n.as_deref(), &name)?;
            let e = b64url("e", jwk.e.as_deref(), &name)?;
            let n = strip_zeros(&n);
            let e = strip_zeros(&e);
            let bits = bit_len(n);
            if bits < MIN_RSA_BITS {
                return Err(ApiError::bad_request(
                    code::WEAK_CLIENT_KEY,
                    format!(
                        "key {name} is a {bits}-bit RSA key; RSA keys must have at least {MIN_RSA_BITS} bits"
                    ),
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(jwks_error(format!(
                    "key {name} is a {bits}-bit RSA key; at most {MAX_RSA_BITS} bits are supported"
                )));
            }
            if e.is_empty() || e.len() > 8 || e.last().is_some_and(|b| b & 1 == 0) || e == [1] {
                return Err(jwks_error(format!(
                    "key {name} has an invalid RSA exponent"
                )));
            }
            Ok(())
        }
        "EC" => {
            if alg.is_some_and(|a| a != Alg::ES256) {
                return Err(jwks_error(format!(
                    "key {name} is an EC key not marked ES256"
                )));
            }
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(jwks_error(format!(
                    "key {name}: only the curve P-256 is supported (ES256)"
                )));
            }
            let x = b64url("x", jwk.x.as_deref(), &name)?;
            let y = b64url("y", jwk.y.as_deref(), &name)?;
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if x.len() != 32
                || y.len() != 32
                || ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).is_err()
            {
                return Err(jwks_error(format!(
                    "key {name} is not a point on the curve P-256"
                )));
            }
            Ok(())
        }
        other => Err(jwks_error(format!(
            "key {name} has key type {other:?}; use RSA (2048 bits or more) or EC P-256"
        ))),
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn bit_len(b: &[u8]) -> usize {
    match b.first() {
        None => 0,
        Some(&top) => (b.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// A registered JWK set: `{"keys": [...]}` of 1 to 10 public keys; stored as compact JSON.
fn checked_jwks(jwks: &serde_json::Value) -> ApiResult<String> {
    let text = serde_json::to_string(jwks).map_err(ApiError::internal)?;
    if text.len() > MAX_JWKS_BYTES {
        return Err(jwks_error(format!(
            "the JWK set is larger than {MAX_JWKS_BYTES} bytes"
        )));
    }
    let keys = jwks
        .as_object()
        .and_then(|o| o.get("keys"))
        .and_then(|k| k.as_array())
        .ok_or_else(|| jwks_error("jwks must be a JWK set: a JSON object with a \"keys\" array"))?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(jwks_error(format!(
            "a JWK set holds 1 to {MAX_KEYS} keys, not {}",
            keys.len()
        )));
    }
    for (i, k) in keys.iter().enumerate() {
        check_jwk(i, k)?;
    }
    Ok(text)
}

/// A registration request, checked.
struct NewClient {
    name: String,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    public: bool,
    auth_method: &'static str,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    backchannel_logout_uri: Option<String>,
    id_token_alg: &'static str,
}

fn checked_request(req: &CreateClient) -> ApiResult<NewClient> {
    let name = checked_name(&req.name)?;
    if req.redirect_uris.is_empty() {
        return Err(ApiError::bad_request(
            code::REDIRECT_URI_REQUIRED,
            "a client needs at least one redirect URI (where the browser returns after sign-in)",
        ));
    }
    let redirect_uris = checked_redirect_uris("redirect URI", &req.redirect_uris)?;
    let post_logout_redirect_uris =
        checked_redirect_uris("post-logout redirect URI", &req.post_logout_redirect_uris)?;
    let requested = req.auth_method.as_deref();
    let method: &'static str = match requested {
        None if req.public => auth_method::NONE,
        None => auth_method::CLIENT_SECRET_BASIC,
        Some(m) => auth_method::ALL
            .iter()
            .copied()
            .find(|known| *known == m)
            .ok_or_else(|| {
                ApiError::bad_request(
                    code::INVALID_AUTH_METHOD,
                    format!(
                        "{m:?} is not a token endpoint authentication method; use one of {}",
                        auth_method::ALL.join(", ")
                    ),
                )
            })?,
    };
    if req.public && method != auth_method::NONE {
        return Err(ApiError::bad_request(
            code::INVALID_AUTH_METHOD,
            format!(
                "a public client has no secret and no keys, so it cannot use {method}: leave the method out (it is none) or register a confidential client"
            ),
        ));
    }
    if !req.public && method == auth_method::NONE {
        return Err(ApiError::bad_request(
            code::INVALID_AUTH_METHOD,
            "only a public client uses the method none: register it as public (it then needs PKCE), or choose client_secret_basic, client_secret_post or private_key_jwt",
        ));
    }
    let (jwks, jwks_uri) = if method == auth_method::PRIVATE_KEY_JWT {
        match (&req.jwks, &req.jwks_uri) {
            (Some(set), None) => (Some(checked_jwks(set)?), None),
            (None, Some(uri)) => (
                None,
                checked_server_url("jwks_uri", code::INVALID_JWKS_URI, Some(uri))?,
            ),
            (None, None) => {
                return Err(jwks_error(
                    "private_key_jwt needs the client's public keys: give jwks (a JWK set) or jwks_uri",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(jwks_error("give either jwks or jwks_uri, not both"));
            }
        }
    } else {
        if req.jwks.is_some() || req.jwks_uri.is_some() {
            return Err(jwks_error(format!(
                "only private_key_jwt clients register keys; a {method} client has none"
            )));
        }
        (None, None)
    };
    let backchannel_logout_uri = checked_server_url(
        "backchannel_logout_uri",
        code::INVALID_BACKCHANNEL_LOGOUT_URI,
        req.backchannel_logout_uri.as_deref(),
    )?;
    let id_token_alg = match req.id_token_alg.as_deref() {
        None => Alg::RS256,
        Some(a) => a.parse::<Alg>().map_err(|_| {
            ApiError::bad_request(
                code::INVALID_ID_TOKEN_ALG,
                format!("{a:?} is not an ID token algorithm; use RS256 (default), RS512 or ES256"),
            )
        })?,
    }
    .as_str();
    Ok(NewClient {
        name,
        redirect_uris,
        post_logout_redirect_uris,
        public: req.public,
        auth_method: method,
        jwks,
        jwks_uri,
        backchannel_logout_uri,
        id_token_alg,
    })
}

// ---------------------------------------------------------------------------------------------
// Identifiers and secrets

/// `NNNNNNNNNNNN.apps.vsc`: 12 uniformly random digits, the first not zero.
fn new_client_id(state: &AppState) -> ApiResult<String> {
    let mut id = String::with_capacity(12 + CLIENT_ID_SUFFIX.len());
    while id.len() < 12 {
        let [b] = state.random::<1>()?;
        // Rejection sampling keeps each digit uniform: 252 = 28 × 9, 250 = 25 × 10.
        if id.is_empty() {
            if b < 252 {
                id.push(char::from(b'1' + b % 9));
            }
        } else if b < 250 {
            id.push(char::from(b'0' + b % 10));
        }
    }
    id.push_str(CLIENT_ID_SUFFIX);
    Ok(id)
}

/// A new client secret (256 random bits, base64url) and its SHA-256.
fn new_secret(state: &AppState) -> ApiResult<(String, Vec<u8>)> {
    let bytes = zeroize::Zeroizing::new(state.random::<32>()?);
    let secret = URL_SAFE_NO_PAD.encode(*bytes);
    let hash = sha256(secret.as_bytes());
    Ok((secret, hash))
}

/// A client id no client has yet (inside the writer's transaction, so it stays free).
async fn free_client_id(state: &AppState, tx: &mut Tx) -> ApiResult<String> {
    for _ in 0..8 {
        let id = new_client_id(state)?;
        if db::client(tx, &id).await?.is_none() {
            return Ok(id);
        }
    }
    Err(ApiError::internal("no free client id after 8 tries"))
}

/// Inserts `row` (its id and secret hash filled in here) with its audit event, in `tx`.
async fn insert_with_audit(
    state: &AppState,
    tx: &mut Tx,
    ctx: &AuditContext,
    row: &mut ClientRow,
    secret: bool,
) -> ApiResult<Option<String>> {
    row.client_id = free_client_id(state, tx).await?;
    let secret = if secret {
        let (secret, hash) = new_secret(state)?;
        row.secret_hash = Some(hash);
        Some(secret)
    } else {
        None
    };
    db::insert_client(tx, row).await?;
    state
        .append_audit(
            tx,
            &ctx.event(
                "oidc_client.registered",
                &row.client_id,
                &row.ods_code,
                serde_json::json!({
                    "name": row.name,
                    "redirect_uris": row.redirect_uris,
                    "post_logout_redirect_uris": row.post_logout_redirect_uris,
                    "public": row.public_client,
                    "auth_method": row.auth_method,
                    "has_jwks": row.jwks.is_some(),
                    "jwks_uri": row.jwks_uri,
                    "backchannel_logout_uri": row.backchannel_logout_uri,
                    "id_token_alg": row.id_token_alg,
                    "any_loopback_redirect": row.any_loopback_redirect,
                }),
            ),
            state.now_ms(),
        )
        .await?;
    Ok(secret)
}

// ---------------------------------------------------------------------------------------------
// Routes

async fn create(
    State(state): State<AppState>,
    caller: RaCaller,
    ApiJson(req): ApiJson<CreateClient>,
) -> ApiResult<(StatusCode, Json<ClientCreated>)> {
    state
        .audited(&caller.ctx, "oidc_client.register", "", async {
            let scope = client_scope(&state, &caller)?;
            let new = checked_request(&req)?;
            let secret_client = matches!(
                new.auth_method,
                auth_method::CLIENT_SECRET_BASIC | auth_method::CLIENT_SECRET_POST
            );
            let mut row = ClientRow {
                client_id: String::new(),
                name: new.name,
                redirect_uris: new.redirect_uris,
                post_logout_redirect_uris: new.post_logout_redirect_uris,
                public_client: new.public,
                auth_method: new.auth_method.to_owned(),
                secret_hash: None,
                jwks: new.jwks,
                jwks_uri: new.jwks_uri,
                backchannel_logout_uri: new.backchannel_logout_uri,
                id_token_alg: new.id_token_alg.to_owned(),
                any_loopback_redirect: false,
                ods_code: scope.home().to_owned(),
                created_by: caller.uid.clone(),
                created_at: state.now_unix(),
                disabled_at: None,
            };
            let mut tx = state.write().await?;
            let client_secret =
                insert_with_audit(&state, &mut tx, &caller.ctx, &mut row, secret_client).await?;
            tx.commit().await?;
            Ok((
                StatusCode::CREATED,
                Json(ClientCreated {
                    client: info(&row),
                    client_secret,
                    issuer: issuer(&state),
                }),
            ))
        })
        .await
}

async fn list(State(state): State<AppState>, caller: RaCaller) -> ApiResult<Json<Vec<ClientInfo>>> {
    state
        .audited(&caller.ctx, "oidc_client.list", "", async {
            let scope = client_scope(&state, &caller)?;
            let mut conn = state.store().pool().acquire().await?;
            let rows = match &scope {
                ClientScope::All { .. } => db::clients(&mut conn, None).await?,
                ClientScope::Organisations(orgs) => {
                    let mut rows = Vec::new();
                    for ods in orgs {
                        rows.extend(db::clients(&mut conn, Some(ods)).await?);
                    }
                    rows.sort_by(|a, b| {
                        (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id))
                    });
                    rows.dedup_by(|a, b| a.client_id == b.client_id);
                    rows
                }
            };
            Ok(Json(rows.iter().map(info).collect()))
        })
        .await
}

async fn show(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientInfo>> {
    state
        .audited(&caller.ctx, "oidc_client.show", &id, async {
            let scope = client_scope(&state, &caller)?;
            let mut conn = state.store().pool().acquire().await?;
            let c = managed_client(&mut conn, &scope, &id).await?;
            Ok(Json(info(&c)))
        })
        .await
}

async fn disable(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientInfo>> {
    state
        .audited(&caller.ctx, "oidc_client.disable", &id, async {
            let scope = client_scope(&state, &caller)?;
            let now = state.now_unix();
            let mut tx = state.write().await?;
            let mut c = managed_client(&mut tx, &scope, &id).await?;
            if !db::disable_client(&mut tx, &id, now).await? {
                return Err(ApiError::conflict(
                    code::CLIENT_DISABLED,
                    format!("client {id} is already disabled"),
                ));
            }
            state
                .append_audit(
                    &mut tx,
                    &caller.ctx.event(
                        "oidc_client.disabled",
                        &id,
                        &c.ods_code,
                        serde_json::json!({"name": c.name}),
                    ),
                    state.now_ms(),
                )
                .await?;
            tx.commit().await?;
            c.disabled_at = Some(now);
            Ok(Json(info(&c)))
        })
        .await
}

async fn rotate_secret(
    State(state): State<AppState>,
    caller: RaCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientCreated>> {
    state
        .audited(&caller.ctx, "oidc_client.rotate_secret", &id, async {
            let scope = client_scope(&state, &caller)?;
            let mut tx = state.write().await?;
            let c = managed_client(&mut tx, &scope, &id).await?;
            if c.disabled_at.is_some() {
                return Err(ApiError::conflict(
                    code::CLIENT_DISABLED,
                    format!("client {id} is disabled; a disabled client gets no new secret (register a new client instead)"),
                ));
            }
            if c.secret_hash.is_none() {
                let why = if c.public_client {
                    "is a public client: it has no secret (it proves itself with PKCE)"
                } else {
                    "authenticates with its own key (private_key_jwt): it has no secret; register its new key instead"
                };
                return Err(ApiError::conflict(
                    code::CLIENT_HAS_NO_SECRET,
                    format!("client {id} {why}"),
                ));
            }
            let (secret, hash) = new_secret(&state)?;
            if !db::set_secret_hash(&mut tx, &id, &hash).await? {
                return Err(ApiError::conflict(
                    code::CLIENT_DISABLED,
                    format!("client {id} is disabled"),
                ));
            }
            state
                .append_audit(
                    &mut tx,
                    &caller.ctx.event(
                        "oidc_client.secret_rotated",
                        &id,
                        &c.ods_code,
                        serde_json::json!({"name": c.name}),
                    ),
                    state.now_ms(),
                )
                .await?;
            tx.commit().await?;
            Ok(Json(ClientCreated {
                client: info(&c),
                client_secret: Some(secret),
                issuer: issuer(&state),
            }))
        })
        .await
}

/// Registers the sandbox's test client: confidential (`client_secret_basic`), accepting any
/// loopback redirect URI (`http://127.0.0.1/callback` is shown as its redirect URI), registered
/// at the national organisation by `sandbox`, with its audit event. Answers the client id and
/// the secret. Only `vsc sandbox` calls it, in-process: no route reaches it.
pub async fn register_sandbox_client(
    state: &AppState,
    name: &str,
) -> Result<(String, String), ApiError> {
    let name = checked_name(name)?;
    let mut row = ClientRow {
        client_id: String::new(),
        name,
        redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
        post_logout_redirect_uris: Vec::new(),
        public_client: false,
        auth_method: auth_method::CLIENT_SECRET_BASIC.to_owned(),
        secret_hash: None,
        jwks: None,
        jwks_uri: None,
        backchannel_logout_uri: None,
        id_token_alg: Alg::RS256.as_str().to_owned(),
        any_loopback_redirect: true,
        ods_code: state.national_ods().to_owned(),
        created_by: "sandbox".to_owned(),
        created_at: state.now_unix(),
        disabled_at: None,
    };
    let ctx = AuditContext {
        actor: "sandbox".to_owned(),
        source: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let mut tx = state.write().await?;
    let secret = insert_with_audit(state, &mut tx, &ctx, &mut row, true)
        .await?
        .ok_or_else(|| ApiError::internal("the sandbox client got no secret"))?;
    tx.commit().await?;
    Ok((row.client_id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(strip_zeros(&[0, 0, 0x7f])), 7);
    }

    #[test]
    fn requests_are_checked() {
        let ok = CreateClient {
            name: "Ward Round".into(),
            redirect_uris: vec!["https://rp.example/cb".into()],
            ..CreateClient::default()
        };
        let new = checked_request(&ok).map_err(|e| e.code).expect("valid");
        assert_eq!(new.auth_method, auth_method::CLIENT_SECRET_BASIC);
        assert_eq!(new.id_token_alg, "RS256");
        let code_of = |req: CreateClient| checked_request(&req).err().map(|e| e.code);
        assert_eq!(
            code_of(CreateClient {
                public: true,
                ..ok.clone()
            }),
            None
        );
        assert_eq!(
            code_of(CreateClient {
                name: "a\u{7}b".into(),
                ..ok.clone()
            }),
            Some(code::INVALID_CLIENT_NAME)
        );
        assert_eq!(
            code_of(CreateClient {
                redirect_uris: vec![],
                ..ok.clone()
            }),
            Some(code::REDIRECT_URI_REQUIRED)
        );
        assert_eq!(
            code_of(CreateClient {
                redirect_uris: vec![
                    "https://rp.example/cb".into(),
                    "https://rp.example/cb".into()
                ],
                ..ok.clone()
            }),
            Some(code::INVALID_REDIRECT_URI)
        );
        assert_eq!(
            code_of(CreateClient {
                auth_method: Some("private_key_jwt".into()),
                jwks: Some(serde_json::json!({"keys": [{"kty": "oct", "k": "AAAA"}]})),
                ..ok.clone()
            }),
            Some(code::INVALID_JWKS)
        );
        assert_eq!(
            code_of(CreateClient {
                auth_method: Some("private_key_jwt".into()),
                jwks_uri: Some("http://keys.example/jwks".into()),
                ..ok.clone()
            }),
            Some(code::INVALID_JWKS_URI)
        );
        assert_eq!(
            code_of(CreateClient {
                backchannel_logout_uri: Some("https://rp.example/logout#x".into()),
                ..ok.clone()
            }),
            Some(code::INVALID_BACKCHANNEL_LOGOUT_URI)
        );
        assert_eq!(
            code_of(CreateClient {
                id_token_alg: Some("none".into()),
                ..ok
            }),
            Some(code::INVALID_ID_TOKEN_ALG)
        );
    }

    #[test]
    fn p256_keys_must_be_on_the_curve() {
        let kp = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .expect("key");
        use aws_lc_rs::signature::KeyPair;
        let public = kp.public_key().as_ref().to_vec();
        let (x, y) = public[1..].split_at(32);
        let key = |x: &[u8], y: &[u8]| serde_json::json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)});
        assert!(check_jwk(0, &key(x, y)).is_ok());
        let mut bad = y.to_vec();
        bad[31] ^= 1;
        assert_eq!(
            check_jwk(0, &key(x, &bad)).err().map(|e| e.code),
            Some(code::INVALID_JWKS)
        );
    }
}
