//! Typed queries for the OpenID Connect provider's registered clients (relying parties).
//!
//! A client's secret is 256 random bits, so its SHA-256 is a sufficient verifier (no slow hash
//! is needed against guessing); only that hash is stored. Redirect URIs and post-logout
//! redirect URIs are JSON arrays of exact strings.

use crate::Conn;
use crate::StoreError;
use crate::row::{flag, from_row, json};

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// `NNNNNNNNNNNN.apps.vsc`.
    pub client_id: String,
    /// The name people see on the sign-in page and on the phone.
    pub name: String,
    /// Registered redirect URIs (exact match; loopback ports may vary).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards.
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE S256 required).
    pub public_client: bool,
    /// `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub auth_method: String,
    /// SHA-256 of the client secret (secret clients).
    pub secret_hash: Option<Vec<u8>>,
    /// The client's JWK set (JSON text) for `private_key_jwt`.
    pub jwks: Option<String>,
    /// Where the client publishes its JWK set instead.
    pub jwks_uri: Option<String>,
    /// OpenID Back-Channel Logout endpoint.
    pub backchannel_logout_uri: Option<String>,
    /// ID token signing algorithm: `RS256` (default), `RS512` or `ES256`.
    pub id_token_alg: String,
    /// The sandbox's test client: any loopback redirect URI is accepted.
    pub any_loopback_redirect: bool,
    /// The organisation of the RA who registered it.
    pub ods_code: String,
    /// UID of the RA who registered it.
    pub created_by: String,
    /// Registered (Unix seconds).
    pub created_at: i64,
    /// Disabled (Unix seconds): no new sign-ins, tokens refused.
    pub disabled_at: Option<i64>,
}

from_row!(ClientRow in "oidc_clients" {
    client_id, name, redirect_uris: json, post_logout_redirect_uris: json,
    public_client: flag, auth_method, secret_hash, jwks, jwks_uri, backchannel_logout_uri,
    id_token_alg, any_loopback_redirect: flag, ods_code, created_by, created_at, disabled_at,
});

const CLIENT_COLUMNS: &str = "client_id, name, redirect_uris, post_logout_redirect_uris, public_client, auth_method, \
     secret_hash, jwks, jwks_uri, backchannel_logout_uri, id_token_alg, any_loopback_redirect, ods_code, \
     created_by, created_at, disabled_at";

fn json_text(v: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Registers a client.
pub async fn insert_client(conn: &mut Conn, c: &ClientRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_clients (client_id, name, redirect_uris, post_logout_redirect_uris, public_client, auth_method, \
         secret_hash, jwks, jwks_uri, backchannel_logout_uri, id_token_alg, any_loopback_redirect, ods_code, created_by, \
         created_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&c.client_id)
    .bind(&c.name)
    .bind(json_text(&c.redirect_uris)?)
    .bind(json_text(&c.post_logout_redirect_uris)?)
    .bind(i64::from(c.public_client))
    .bind(&c.auth_method)
    .bind(&c.secret_hash)
    .bind(&c.jwks)
    .bind(&c.jwks_uri)
    .bind(&c.backchannel_logout_uri)
    .bind(&c.id_token_alg)
    .bind(i64::from(c.any_loopback_redirect))
    .bind(&c.ods_code)
    .bind(&c.created_by)
    .bind(c.created_at)
    .bind(c.disabled_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A client by id.
pub async fn client(conn: &mut Conn, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
    Ok(sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE client_id = $1"
    )))
    .bind(client_id)
    .fetch_optional(conn)
    .await?)
}

/// Every client, or those registered at `ods_code`, oldest first.
pub async fn clients(
    conn: &mut Conn,
    ods_code: Option<&str>,
) -> Result<Vec<ClientRow>, StoreError> {
    // Two statements rather than `$1 IS NULL`: PostgreSQL cannot type an untyped NULL parameter.
    let rows = match ods_code {
        Some(ods) => {
            sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE ods_code = $1 ORDER BY created_at, client_id"
            )))
            .bind(ods)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {CLIENT_COLUMNS} FROM oidc_clients ORDER BY created_at, client_id"
            )))
            .fetch_all(conn)
            .await?
        }
    };
    Ok(rows)
}

/// Disables a client; false when it was already disabled or does not exist.
pub async fn disable_client(
    conn: &mut Conn,
    client_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_clients SET disabled_at = $2 WHERE client_id = $1 AND disabled_at IS NULL",
    )
    .bind(client_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a secret client's secret hash; false when the client does not exist or is disabled.
pub async fn set_secret_hash(
    conn: &mut Conn,
    client_id: &str,
    hash: &[u8],
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE oidc_clients SET secret_hash = $2 WHERE client_id = $1 AND disabled_at IS NULL AND secret_hash IS NOT NULL",
    )
    .bind(client_id)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Registers or updates one of the server's own clients (the RA console): its redirect URIs
/// follow the server's public URL, which may change between starts.
pub async fn upsert_internal_client(conn: &mut Conn, c: &ClientRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO oidc_clients (client_id, name, redirect_uris, post_logout_redirect_uris, public_client, auth_method, \
         secret_hash, jwks, jwks_uri, backchannel_logout_uri, id_token_alg, any_loopback_redirect, ods_code, created_by, \
         created_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL, NULL, $7, 0, $8, $9, $10, NULL)
         ON CONFLICT (client_id) DO UPDATE SET redirect_uris = excluded.redirect_uris,
             post_logout_redirect_uris = excluded.post_logout_redirect_uris, name = excluded.name",
    )
    .bind(&c.client_id)
    .bind(&c.name)
    .bind(json_text(&c.redirect_uris)?)
    .bind(json_text(&c.post_logout_redirect_uris)?)
    .bind(i64::from(c.public_client))
    .bind(&c.auth_method)
    .bind(&c.id_token_alg)
    .bind(&c.ods_code)
    .bind(&c.created_by)
    .bind(c.created_at)
    .execute(conn)
    .await?;
    Ok(())
}
