//! The provider's signing keys: one current key per algorithm (RS256 for ID tokens by default,
//! RS512 and ES256 for clients that ask for them, and for logout tokens), kept in the database
//! sealed under the master key so that every node of an instance signs with the same keys.
//!
//! A key signs for `key_lifetime` (90 days by default); then the next node that needs it makes a
//! new one and retires the old, which stays in the JWK set for `key_grace` (7 days) so tokens it
//! signed still verify and relying parties that cached the set meet the new key before the old
//! one leaves. Keys are cached for a minute; a rotation on another node is seen within that.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use vsc_oidc::jose::{Alg, Jwk, SigningKey};
use vsc_store::oidc::{self as db, KeyRow};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, AuditContext};

/// Every algorithm the provider signs with.
pub const ALGS: [Alg; 3] = [Alg::RS256, Alg::RS512, Alg::ES256];

/// How long loaded keys are trusted before the database is read again.
const CACHE_SECONDS: i64 = 60;

/// The keys as last loaded.
#[derive(Default)]
pub struct KeyCache {
    loaded: Mutex<Option<Loaded>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache")
    }
}

#[derive(Clone)]
struct Loaded {
    at: i64,
    signing: HashMap<&'static str, Arc<SigningKey>>,
    published: Vec<Jwk>,
}

fn aad(kid: &str) -> Vec<u8> {
    format!("vsc-oidc-signing-key/v1:{kid}").into_bytes()
}

/// The current signing key for `alg`.
pub async fn signing_key(state: &AppState, alg: Alg) -> ApiResult<Arc<SigningKey>> {
    let loaded = load(state).await?;
    loaded
        .signing
        .get(alg.as_str())
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("no {} signing key", alg.as_str())))
}

/// Every key a relying party should accept: the current ones and those retired within the grace
/// period.
pub async fn published(state: &AppState) -> ApiResult<Vec<Jwk>> {
    Ok(load(state).await?.published)
}

/// Forgets the cached keys (after a rotation, and in tests that move the clock).
pub async fn forget(state: &AppState) {
    *state.oidc_keys().loaded.lock().await = None;
}

async fn load(state: &AppState) -> ApiResult<Loaded> {
    let now = state.now_unix();
    let mut guard = state.oidc_keys().loaded.lock().await;
    if let Some(l) = guard
        .as_ref()
        .filter(|l| now - l.at < CACHE_SECONDS && now >= l.at)
    {
        return Ok(l.clone());
    }
    let lifetime = state.config().oidc.key_lifetime.whole_seconds();
    let grace = state.config().oidc.key_grace.whole_seconds();
    let mut conn = state.store().pool().acquire().await?;
    let mut rows = db::keys(&mut conn, now - grace).await?;
    drop(conn);
    for alg in ALGS {
        let current = rows
            .iter()
            .find(|k| k.alg == alg.as_str() && k.retired_at.is_none());
        if current.is_none_or(|k| k.created_at + lifetime <= now) {
            rotate(state, alg).await?;
            let mut conn = state.store().pool().acquire().await?;
            rows = db::keys(&mut conn, now - grace).await?;
        }
    }
    let mut signing = HashMap::new();
    let mut published = Vec::new();
    for row in &rows {
        let jwk: Jwk = serde_json::from_str(&row.public_jwk).map_err(ApiError::internal)?;
        published.push(jwk);
        let alg: Alg = row.alg.parse().map_err(ApiError::internal)?;
        if row.retired_at.is_none() && !signing.contains_key(alg.as_str()) {
            let pkcs8 = state
                .master_key()
                .open(&aad(&row.kid), &row.sealed_key)
                .map_err(ApiError::internal)?;
            let key = SigningKey::from_pkcs8(alg, &pkcs8).map_err(ApiError::internal)?;
            signing.insert(alg.as_str(), Arc::new(key));
        }
    }
    let loaded = Loaded {
        at: now,
        signing,
        published,
    };
    *guard = Some(loaded.clone());
    Ok(loaded)
}

/// Makes a new key for `alg` and retires the others of that algorithm, in one audited
/// transaction.
pub async fn rotate(state: &AppState, alg: Alg) -> ApiResult<String> {
    // RSA key generation takes a while: off the async workers.
    let key = tokio::task::spawn_blocking(move || SigningKey::generate(alg))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let kid = key.kid().to_owned();
    let now = state.now_unix();
    let row = KeyRow {
        kid: kid.clone(),
        alg: alg.as_str().to_owned(),
        sealed_key: state
            .master_key()
            .seal(&aad(&kid), &key.pkcs8())
            .map_err(ApiError::internal)?,
        public_jwk: serde_json::to_string(&key.public_jwk()).map_err(ApiError::internal)?,
        created_at: now,
        retired_at: None,
    };
    let mut tx = state.write().await?;
    db::insert_key(&mut tx, &row).await?;
    let retired = db::retire_keys(&mut tx, alg.as_str(), &kid, now).await?;
    let system = AuditContext {
        actor: "system".into(),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    state
        .append_audit(
            &mut tx,
            &system.event(
                "oidc.key.created",
                &kid,
                "",
                serde_json::json!({"alg": alg.as_str(), "retired": retired}),
            ),
            state.now_ms(),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(
        kid,
        alg = alg.as_str(),
        retired,
        "OpenID Connect signing key created"
    );
    Ok(kid)
}
