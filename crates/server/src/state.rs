//! What every request handler shares: the store, the CA, the master key, the configuration,
//! the clock, the throttle and the metrics.

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;
use vsc_pki::{CertificateAuthority, MasterKey};
use vsc_proto::errors as code;
use vsc_store::{NewEvent, Outcome, Store, StoreError, Tx};

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::throttle::{RefusalAggregator, RefusalKey, Throttle};

/// Shared server state.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    ca: CertificateAuthority,
    master_key: MasterKey,
    config: ServerConfig,
    public_url: url::Url,
    national_ods: String,
    clock: Arc<dyn Clock>,
    throttle: Throttle,
    challenge_throttle: Throttle,
    device_challenge_throttle: Throttle<String>,
    refusals: RefusalAggregator,
    rng: SystemRandom,
    hub: Hub,
    metrics: Metrics,
    oidc_keys: crate::routes::oidc::keys::KeyCache,
    push: crate::push::Push,
}

impl AppState {
    /// Assembles the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        ca: CertificateAuthority,
        master_key: MasterKey,
        config: ServerConfig,
        public_url: url::Url,
        national_ods: String,
        clock: Arc<dyn Clock>,
        push: crate::push::Push,
    ) -> AppState {
        // Nodes sharing a PostgreSQL store share their throttles' counts too.
        let shared =
            (store.backend() == vsc_store::Backend::Postgres).then(|| store.pool().clone());
        AppState {
            inner: Arc::new(Inner {
                store,
                ca,
                master_key,
                config,
                public_url,
                national_ods,
                clock,
                // Ten wrong codes per address per 15 minutes.
                throttle: Throttle::new("wrong_guess", 10, 15 * 60, shared.clone()),
                // Unauthenticated endpoints that write a row: 60 a minute per address.
                challenge_throttle: Throttle::new("challenge", 60, 60, shared.clone()),
                // Challenges for an enrolled device: 30 a minute per device, whatever the
                // address. Phones on one hospital network share an address, so enrolled devices
                // are not counted against it.
                device_challenge_throttle: Throttle::new("device_challenge", 30, 60, shared),
                // Refusals of unauthenticated callers: the first ten of a source and reason in a
                // minute are written one by one, the rest counted into one event.
                refusals: RefusalAggregator::new(60_000, 10),
                rng: SystemRandom::new(),
                hub: Hub::default(),
                metrics: Metrics::new(),
                oidc_keys: Default::default(),
                push,
            }),
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    /// Begins a write transaction ([`Store::write`]), timing the wait for the store's single
    /// writer into `vsc_store_write_wait_seconds`.
    pub async fn write(&self) -> Result<Tx, StoreError> {
        let started = std::time::Instant::now();
        let tx = self.inner.store.write().await;
        self.inner.metrics.write_waited(started.elapsed());
        tx
    }
    /// Appends `event` to the audit log inside `conn`'s transaction
    /// ([`vsc_store::audit::append`], which answers the event's sequence number), counting it
    /// in `vsc_audit_events_total`.
    pub async fn append_audit(
        &self,
        tx: &mut Tx,
        event: &NewEvent,
        at_ms: i64,
    ) -> Result<i64, StoreError> {
        let result = vsc_store::audit::append_in(tx, event, at_ms).await;
        self.inner
            .metrics
            .audit_appended(result.is_ok().then_some(event.outcome));
        result
    }
    /// Web Push: the VAPID key and the client that sends to push services.
    pub fn push(&self) -> &crate::push::Push {
        &self.inner.push
    }
    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    /// The CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.inner.ca
    }
    /// The master key.
    pub fn master_key(&self) -> &MasterKey {
        &self.inner.master_key
    }
    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }
    /// The public base URL.
    pub fn public_url(&self) -> &url::Url {
        &self.inner.public_url
    }
    /// `https://host:port`, as bound into signed statements.
    pub fn origin(&self) -> String {
        self.inner.public_url.origin().ascii_serialization()
    }
    /// The OpenID Connect provider's signing keys as last loaded.
    pub(crate) fn oidc_keys(&self) -> &crate::routes::oidc::keys::KeyCache {
        &self.inner.oidc_keys
    }
    /// The OpenID Connect issuer: the public URL's origin (no trailing slash), so that
    /// discovery is at `{issuer}/.well-known/openid-configuration`.
    pub fn issuer(&self) -> String {
        self.origin()
    }
    /// The national organisation's ODS code.
    pub fn national_ods(&self) -> &str {
        &self.inner.national_ods
    }
    /// Limits unauthenticated calls that create records (challenges), per address: checks
    /// and counts one call, refusing it once the address is over its allowance.
    pub async fn admit_unauthenticated(&self, source: IpAddr) -> Result<(), ApiError> {
        let now = self.now_unix();
        if !self.inner.challenge_throttle.allowed(&source, now).await {
            return Err(ApiError::too_many(
                code::TOO_MANY_REQUESTS,
                "too many requests from this address; wait a minute and try again",
            ));
        }
        self.inner
            .challenge_throttle
            .record_failure(&source, now)
            .await;
        Ok(())
    }
    /// Limits challenges for an enrolled device, per device (not per address: the phones of a
    /// whole trust may reach the server from one address).
    pub async fn admit_device_challenge(&self, device_id: &str) -> Result<(), ApiError> {
        let now = self.now_unix();
        let key = device_id.to_owned();
        if !self
            .inner
            .device_challenge_throttle
            .allowed(&key, now)
            .await
        {
            return Err(ApiError::too_many(
                code::TOO_MANY_REQUESTS,
                "too many challenges for this device; wait a minute and try again",
            ));
        }
        self.inner
            .device_challenge_throttle
            .record_failure(&key, now)
            .await;
        Ok(())
    }
    /// Notifications between requests.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }
    /// The wrong-guess throttle.
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    /// Forgets shared throttle counts whose window is long over (they no longer limit
    /// anyone); run now and then. Nothing to do when the counts are per node.
    pub async fn prune_throttles(&self) {
        if !self.inner.throttle.is_shared() {
            return;
        }
        // The longest window is 15 minutes; an hour leaves a wide margin for clock skew.
        let result = sqlx::query("DELETE FROM throttle_counts WHERE window_start < $1")
            .bind(self.now_unix() - 3600)
            .execute(self.inner.store.pool())
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not prune old throttle counts");
        }
    }
    /// Now.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }
    /// Now, Unix seconds.
    pub fn now_unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// `N` random bytes from the operating system's generator.
    pub fn random<const N: usize>(&self) -> Result<[u8; N], ApiError> {
        let mut out = [0u8; N];
        self.inner
            .rng
            .fill(&mut out)
            .map_err(|_| ApiError::internal("the system random generator failed"))?;
        Ok(out)
    }

    /// A random identifier: 16 bytes, lowercase hex.
    pub fn new_id(&self) -> Result<String, ApiError> {
        Ok(hex::encode(self.random::<16>()?))
    }

    /// The CRL distribution point written into certificates.
    pub fn crl_url(&self) -> String {
        format!("{}/ca/issuing.crl", self.origin())
    }
    /// The OCSP responder's URL, written into issued certificates' Authority Information Access.
    pub fn ocsp_url(&self) -> String {
        format!("{}{}", self.origin(), vsc_proto::routes::CA_OCSP)
    }

    /// Runs a handler's body `fut` and, when it refuses, appends the refusal to the audit log
    /// as `action` on `subject` (in its own transaction: the body's was rolled back). The one
    /// wrapper every route uses instead of a hand-written `match` on its body's result.
    pub async fn audited<T>(
        &self,
        ctx: &AuditContext,
        action: &str,
        subject: &str,
        fut: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        match fut.await {
            Ok(value) => Ok(value),
            Err(err) => {
                self.audit_failure(ctx, action, subject, "", &err).await;
                Err(err)
            }
        }
    }

    /// Records a refused request in its own transaction (the request's own transaction, if any,
    /// was rolled back). Failing to audit is logged, never hidden from the operator.
    ///
    /// Refusals of callers not yet authenticated (`anonymous`) are aggregated: the first few of a
    /// source address, action and error code in an interval are written as events of their own,
    /// the rest only counted and written as one `refusals.aggregated` event by
    /// [`AppState::flush_refusals`], so a flood of bad requests cannot fill the log or queue
    /// fsync'd writes in front of approvals.
    pub async fn audit_failure(
        &self,
        ctx: &AuditContext,
        action: &str,
        subject: &str,
        organisation: &str,
        err: &ApiError,
    ) {
        if err.audited {
            return;
        }
        if ctx.actor == "anonymous" {
            let key = RefusalKey {
                source: ctx.source,
                action: action.to_owned(),
                code: err.code.to_owned(),
            };
            if !self.inner.refusals.note(key, self.now_ms()) {
                self.inner.metrics.refusal_aggregated();
                return;
            }
        }
        let event = NewEvent {
            actor: ctx.actor.clone(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            organisation: organisation.to_owned(),
            source: ctx.source.to_string(),
            outcome: Outcome::Failure,
            detail: serde_json::json!({"error": err.code, "message": err.message}),
        };
        if let Err(e) = self.append_event(&event).await {
            tracing::error!(error = %e, action, "could not write a failure to the audit log");
        }
    }

    /// Writes one `refusals.aggregated` event for each source, action and error code whose
    /// interval has ended (all of them when `all`, as at shutdown) and had refusals that were
    /// counted but not written. The detail's `count` is every refusal of the interval, the ones
    /// written individually (`written_individually`) included. One transaction for all.
    pub async fn flush_refusals(&self, all: bool) {
        let due = self.inner.refusals.take_due(self.now_ms(), all);
        if due.is_empty() {
            return;
        }
        let result: Result<(), ApiError> = async {
            let mut tx = self.write().await?;
            let at = self.now_ms();
            for (key, c) in &due {
                let event = NewEvent {
                    actor: "anonymous".into(),
                    action: "refusals.aggregated".into(),
                    subject: key.action.clone(),
                    organisation: String::new(),
                    source: key.source.to_string(),
                    outcome: Outcome::Failure,
                    detail: serde_json::json!({
                        "action": key.action,
                        "error": key.code,
                        "count": c.count,
                        "written_individually": c.written,
                        "first_at_ms": c.first_ms,
                        "last_at_ms": c.last_ms,
                    }),
                };
                self.append_audit(&mut tx, &event, at).await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, keys = due.len(), "could not write aggregated refusals to the audit log");
        }
    }

    /// How often [`AppState::flush_refusals`] should run.
    pub fn refusal_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            u64::try_from(self.inner.refusals.interval_ms()).unwrap_or(60_000),
        )
    }

    /// Appends one event in a transaction of its own.
    pub async fn append_event(&self, event: &NewEvent) -> Result<(), ApiError> {
        let mut tx = self.write().await?;
        self.append_audit(&mut tx, event, self.now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Now, Unix milliseconds (audit timestamps).
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// Who is acting and from where, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditContext {
    /// UID, `system` or `anonymous`.
    pub actor: String,
    /// Client address.
    pub source: IpAddr,
}

impl AuditContext {
    /// An event of this actor.
    pub fn event(
        &self,
        action: &str,
        subject: &str,
        organisation: &str,
        detail: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            actor: self.actor.clone(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            organisation: organisation.to_owned(),
            source: self.source.to_string(),
            outcome: Outcome::Success,
            detail,
        }
    }
}
