//! Typed queries for the OpenID Connect provider's state: its signing keys, the authorization
//! requests waiting in a browser for the person (flows), the grants an authorization code opens
//! (and the access and refresh tokens they carry), and the spent client-assertion ids.
//!
//! Single use is enforced by conditional updates: a code is redeemed by one `UPDATE … WHERE
//! code_used_at IS NULL`, a refresh token rotated by one `UPDATE … WHERE used_at IS NULL`, a
//! client assertion's `jti` spent by one insert into a primary key. Tokens and codes are stored
//! only as their SHA-256.

use crate::Conn;
use crate::StoreError;
use crate::row::from_row;

/// One of the provider's signing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// Key id (the JWK thumbprint).
    pub kid: String,
    /// `RS256`, `RS512` or `ES256`.
    pub alg: String,
    /// The PKCS#8 private key sealed under the master key.
    pub sealed_key: Vec<u8>,
    /// The public JWK (JSON text).
    pub public_jwk: String,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// When a newer key replaced it: it no longer signs, and leaves the JWK set after the grace
    /// period.
    pub retired_at: Option<i64>,
}

from_row!(KeyRow in "oidc_keys" { kid, alg, sealed_key, public_jwk, created_at, retired_at });

/// Stores a new signing key.
pub async fn insert_key(conn: &mut Conn, k: &KeyRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_keys (kid, alg, sealed_key, public_jwk, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&k.kid)
    .bind(&k.alg)
    .bind(&k.sealed_key)
    .bind(&k.public_jwk)
    .bind(k.created_at)
    .bind(k.retired_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every key not retired before `retired_after`, newest first.
pub async fn keys(conn: &mut Conn, retired_after: i64) -> Result<Vec<KeyRow>, StoreError> {
    Ok(sqlx::query_as::<_, KeyRow>(
        "SELECT kid, alg, sealed_key, public_jwk, created_at, retired_at FROM oidc_keys
         WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid",
    )
    .bind(retired_after)
    .fetch_all(conn)
    .await?)
}

/// Retires every current key of `alg` but `keep`.
pub async fn retire_keys(
    conn: &mut Conn,
    alg: &str,
    keep: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_keys SET retired_at = $3 WHERE alg = $1 AND kid <> $2 AND retired_at IS NULL",
    )
    .bind(alg)
    .bind(keep)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// An authorization request waiting in a browser for its person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    /// Id (in the sign-in page's URL).
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The validated authorization request (JSON text, the server's type).
    pub params: String,
    /// SHA-256 of the secret in the browser's flow cookie: only that browser continues it.
    pub browser_hash: Vec<u8>,
    /// The phone sign-in request, once opened.
    pub auth_request_id: Option<String>,
    /// The sign-in session, once the person signed in (or the one they already had).
    pub session_id: Option<String>,
    /// The role chosen on the role-selection page.
    pub position_id: Option<String>,
    /// Started (Unix seconds).
    pub created_at: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// When it ended with a redirect to the client.
    pub finished_at: Option<i64>,
}

from_row!(FlowRow in "oidc_flows" {
    id, client_id, params, browser_hash, auth_request_id, session_id, position_id, created_at,
    expires_at, finished_at,
});

/// Stores a new flow.
pub async fn insert_flow(conn: &mut Conn, f: &FlowRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_flows (id, client_id, params, browser_hash, auth_request_id, session_id, position_id, created_at, expires_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
    )
    .bind(&f.id)
    .bind(&f.client_id)
    .bind(&f.params)
    .bind(&f.browser_hash)
    .bind(&f.auth_request_id)
    .bind(&f.session_id)
    .bind(&f.position_id)
    .bind(f.created_at)
    .bind(f.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A flow by id.
pub async fn flow(conn: &mut Conn, id: &str) -> Result<Option<FlowRow>, StoreError> {
    Ok(sqlx::query_as::<_, FlowRow>(
        "SELECT id, client_id, params, browser_hash, auth_request_id, session_id, position_id, created_at, expires_at, finished_at
         FROM oidc_flows WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Records the phone request a flow waits for (only while the flow is open).
pub async fn set_flow_request(
    conn: &mut Conn,
    id: &str,
    request_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_flows SET auth_request_id = $2 WHERE id = $1 AND finished_at IS NULL AND session_id IS NULL",
    )
    .bind(id)
    .bind(request_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the session a flow signed in with (only once).
pub async fn set_flow_session(
    conn: &mut Conn,
    id: &str,
    session_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_flows SET session_id = $2 WHERE id = $1 AND finished_at IS NULL AND session_id IS NULL",
    )
    .bind(id)
    .bind(session_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a flow (once): true for the caller that ended it.
pub async fn finish_flow(
    conn: &mut Conn,
    id: &str,
    position_id: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_flows SET finished_at = $2, position_id = $3 WHERE id = $1 AND finished_at IS NULL AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .bind(position_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes flows that expired before `before` (they hold no secret worth keeping).
pub async fn prune_flows(conn: &mut Conn, before: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM oidc_flows WHERE expires_at < $1")
        .bind(before)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// What one authorization code opens: the tokens issued for it are revoked together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// Id.
    pub id: String,
    /// SHA-256 of the authorization code.
    pub code_hash: Vec<u8>,
    /// The client.
    pub client_id: String,
    /// The sign-in session (its id is the tokens' `sid`).
    pub session_id: String,
    /// The redirect URI the code was sent to (the token request must repeat it).
    pub redirect_uri: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The client's nonce.
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// The selected role (`selected_roleid`).
    pub position_id: Option<String>,
    /// The `acr` this sign-in earned.
    pub acr: String,
    /// Issued (Unix seconds).
    pub created_at: i64,
    /// The code's expiry.
    pub code_expires_at: i64,
    /// When the code was redeemed.
    pub code_used_at: Option<i64>,
    /// When the grant (and every token of it) was revoked.
    pub revoked_at: Option<i64>,
}

from_row!(GrantRow in "oidc_grants" {
    id, code_hash, client_id, session_id, redirect_uri, scope, nonce, code_challenge, position_id,
    acr, created_at, code_expires_at, code_used_at, revoked_at,
});

const GRANT_COLUMNS: &str = "id, code_hash, client_id, session_id, redirect_uri, scope, nonce, code_challenge, \
     position_id, acr, created_at, code_expires_at, code_used_at, revoked_at";

/// Stores a new grant with its (unredeemed) code.
pub async fn insert_grant(conn: &mut Conn, g: &GrantRow) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO oidc_grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL)"
    )))
    .bind(&g.id)
    .bind(&g.code_hash)
    .bind(&g.client_id)
    .bind(&g.session_id)
    .bind(&g.redirect_uri)
    .bind(&g.scope)
    .bind(&g.nonce)
    .bind(&g.code_challenge)
    .bind(&g.position_id)
    .bind(&g.acr)
    .bind(g.created_at)
    .bind(g.code_expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A grant by its code's hash, whatever its state.
pub async fn grant_by_code(
    conn: &mut Conn,
    code_hash: &[u8],
) -> Result<Option<GrantRow>, StoreError> {
    Ok(sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {GRANT_COLUMNS} FROM oidc_grants WHERE code_hash = $1"
    )))
    .bind(code_hash)
    .fetch_optional(conn)
    .await?)
}

/// A grant by id.
pub async fn grant(conn: &mut Conn, id: &str) -> Result<Option<GrantRow>, StoreError> {
    Ok(sqlx::query_as::<_, GrantRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {GRANT_COLUMNS} FROM oidc_grants WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Redeems a code: true for the one caller that redeems an unexpired, unrevoked, unused code.
pub async fn redeem_code(conn: &mut Conn, grant_id: &str, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_grants SET code_used_at = $2
         WHERE id = $1 AND code_used_at IS NULL AND revoked_at IS NULL AND code_expires_at > $2",
    )
    .bind(grant_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes a grant and so every token it issued; false when it already was.
pub async fn revoke_grant(conn: &mut Conn, grant_id: &str, now: i64) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE oidc_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .bind(now)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every grant of a session; returns the distinct clients whose redeemed grants this
/// call revoked (for back-channel logout: a session already logged out tells no one again).
pub async fn revoke_session_grants(
    conn: &mut Conn,
    session_id: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let clients: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT client_id FROM oidc_grants
         WHERE session_id = $1 AND code_used_at IS NOT NULL AND revoked_at IS NULL ORDER BY client_id",
    )
    .bind(session_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE oidc_grants SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(clients.into_iter().map(|(c,)| c).collect())
}

/// An access or refresh token with its grant and its session's liveness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    /// `access` or `refresh`.
    pub kind: String,
    /// The token's expiry.
    pub expires_at: i64,
    /// When a refresh token was rotated.
    pub used_at: Option<i64>,
    /// Its grant.
    pub grant_id: String,
    /// The grant's client.
    pub client_id: String,
    /// The grant's scopes.
    pub scope: String,
    /// The grant's selected role.
    pub position_id: Option<String>,
    /// When the grant was revoked.
    pub revoked_at: Option<i64>,
    /// The session.
    pub session_id: String,
    /// The session's person.
    pub uid: String,
    /// The session's end.
    pub session_ended_at: Option<i64>,
    /// The session's absolute expiry.
    pub session_expires_at: i64,
    /// The session's last use.
    pub session_last_used: i64,
    /// The session's idle timeout.
    pub session_idle_seconds: i64,
}

from_row!(TokenView in "oidc_tokens" {
    kind, expires_at, used_at, grant_id, client_id, scope, position_id, revoked_at, session_id,
    uid, session_ended_at, session_expires_at, session_last_used, session_idle_seconds,
});

/// Stores a token (`access` or `refresh`) of a grant.
pub async fn insert_token(
    conn: &mut Conn,
    token_hash: &[u8],
    grant_id: &str,
    kind: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_tokens (token_hash, grant_id, kind, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(token_hash)
    .bind(grant_id)
    .bind(kind)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A token by its hash, with its grant and session.
pub async fn token(conn: &mut Conn, token_hash: &[u8]) -> Result<Option<TokenView>, StoreError> {
    Ok(sqlx::query_as::<_, TokenView>(
        "SELECT t.kind, t.expires_at, t.used_at, t.grant_id, g.client_id, g.scope, g.position_id, g.revoked_at,
                g.session_id, s.uid, s.ended_at AS session_ended_at, s.expires_at AS session_expires_at,
                s.last_used AS session_last_used, s.idle_seconds AS session_idle_seconds
         FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id JOIN sessions s ON s.id = g.session_id
         WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

/// Rotates a refresh token: true for the one caller that uses it.
pub async fn use_refresh_token(
    conn: &mut Conn,
    token_hash: &[u8],
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_tokens SET used_at = $2 WHERE token_hash = $1 AND kind = 'refresh' AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Spends a client assertion's `jti`: true the first time, false on a replay. Expired ids are
/// pruned on the way (an assertion lives at most five minutes).
pub async fn spend_assertion_id(
    conn: &mut Conn,
    client_id: &str,
    jti: &str,
    expires_at: i64,
    now: i64,
) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM oidc_assertion_ids WHERE expires_at < $1")
        .bind(now - 60)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query(
        "INSERT INTO oidc_assertion_ids (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(client_id)
    .bind(jti)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A sign-in session by id (the tokens' `sid`).
pub async fn session(
    conn: &mut Conn,
    id: &str,
) -> Result<Option<crate::signin::SessionRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, crate::signin::SessionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM sessions WHERE id = $1",
            crate::signin::SESSION_COLUMNS
        )))
        .bind(id)
        .fetch_optional(conn)
        .await?,
    )
}

/// Sessions that have ended (logged out, card cancelled or locked, "not me", past their
/// maximum or idle limit) while grants made under them are still unrevoked: `(session id, uid)`.
/// Runs every few seconds: the partial index `oidc_grants_live` keeps it to the unrevoked
/// grants, which are those of live sessions, however many grants history holds.
pub async fn ended_sessions_with_live_grants(
    conn: &mut Conn,
    now: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT s.id, s.uid FROM oidc_grants g JOIN sessions s ON s.id = g.session_id
         WHERE g.revoked_at IS NULL
           AND (s.ended_at IS NOT NULL OR s.expires_at <= $1 OR s.last_used + s.idle_seconds <= $1)
         ORDER BY s.id LIMIT 500",
    )
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Revokes the unrevoked grants of a session and returns the clients whose redeemed grants this
/// call revoked (each once): of several nodes sweeping at once, only one gets them.
pub async fn revoke_live_grants_of_session(
    conn: &mut Conn,
    session_id: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "UPDATE oidc_grants SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL
         RETURNING client_id, code_used_at",
    )
    .bind(session_id)
    .bind(now)
    .fetch_all(conn)
    .await?;
    let mut clients: Vec<String> = rows
        .into_iter()
        .filter(|(_, used)| used.is_some())
        .map(|(c, _)| c)
        .collect();
    clients.sort();
    clients.dedup();
    Ok(clients)
}
