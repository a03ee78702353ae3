//! Operations: the figures a monitoring system scrapes (`GET /metrics`, Prometheus/OpenMetrics
//! text) and the readiness probe a load balancer calls (`GET /readyz`).
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /healthz` | anyone | `ok` while the process serves HTTP (liveness) |
//! | `GET /readyz` | anyone (load balancers) | `200 {"status":"ready"}` when the database answers a `SELECT 1` within two seconds; `503` with code `not_ready` otherwise, and `shutting_down` once the server is stopping |
//! | `GET /metrics` | see [`MetricsAccess`]: loopback callers by default, a bearer token when one is configured | the metrics below, OpenMetrics text |
//!
//! What is measured (all names start with `vsc_`):
//!
//! * `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}`:
//!   `route` is the route *template* the request matched (`/api/v1/auth/requests/{id}`), never the
//!   path itself, so ids (some of which are secrets) never become labels and the number of series
//!   stays bounded; requests that match no route are `unmatched`. The duration runs until the
//!   response head is ready (for the event stream, until the stream starts; a long poll counts its
//!   wait).
//! * `signin_requests_opened_total` and `signin_outcomes_total{outcome}`: see [`SigninOutcome`].
//! * `device_streams_open`: phones connected to `GET /api/v1/device/events` now.
//! * `store_write_wait_seconds`: how long a request waited to begin the store's write
//!   transaction (SQLite has one writer: this is the queue in front of it).
//! * `store_read_pool_connections{state="open"|"idle"}` and `store_read_pool_max_connections`:
//!   the readers' connection pool, sampled at each scrape.
//! * `store_write_transactions_total` and `store_commits_total`: write transactions committed
//!   and the durable `COMMIT`s they took (group commit; their ratio is the average group).
//! * `process_cpu_seconds_total`: the process's CPU time (all threads, user and system), read at
//!   each scrape; `vsc bench login --server` divides its increase by the sign-ins it made.
//! * `audit_events_total{outcome="success"|"failure"}`: events appended to the audit log by this
//!   process (counted when appended inside their transaction: the rare transaction that then
//!   fails to commit is counted though its event is not in the log; it also answers 500);
//!   `audit_write_errors_total`: appends that failed; `audit_refusals_aggregated_total`:
//!   refusals of unauthenticated callers that were only counted into a `refusals.aggregated`
//!   event instead of written one by one (a flood of bad requests shows here).
//! * `build_info{version}`.
//!
//! Each [`AppState`] has its own registry (tests run several servers in one process); nothing here
//! opens a listener: the text is rendered in the axum handler, on the server's own TLS port.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use subtle::ConstantTimeEq;
use vsc_proto::errors as code;

use crate::error::{ApiError, ApiResult};
use crate::routes::{Client, bearer_token};
use crate::state::AppState;

/// Request latencies: 1 ms to 10 s (longer, such as a 30-second long poll, land in `+Inf`).
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Waits for the writer: an uncontended `BEGIN IMMEDIATE` takes tens of microseconds.
const WAIT_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];
/// How long `/readyz` waits for the database before calling the node not ready.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// `Content-Type` of the OpenMetrics text format (Prometheus negotiates and accepts it).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Shortest metrics token accepted: it guards operational figures, but must not be guessable.
const MIN_TOKEN_LEN: usize = 16;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(vsc_proto::routes::READYZ, get(readyz))
        .route(vsc_proto::routes::METRICS, get(metrics))
}

// ---------------------------------------------------------------------------------------------
// Who may read /metrics

/// Who may call `GET /metrics`. Two independent checks, both applied:
///
/// * the caller's address: loopback only, unless `from_anywhere` (`--metrics-from-anywhere`);
/// * a bearer token, when one is configured (`--metrics-token-file`), compared in constant time.
///
/// Behind a reverse proxy on the same machine every caller looks like loopback: configure a
/// token there. Only the token's SHA-256 is kept, so the configuration can be printed safely.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MetricsAccess {
    /// Serve callers from any address, not only loopback.
    pub from_anywhere: bool,
    token_sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("from_anywhere", &self.from_anywhere)
            .field("token", &self.token_sha256.map(|_| "<set>"))
            .finish()
    }
}

/// Why a metrics token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetricsTokenError {
    /// The file could not be read.
    #[error("cannot read the metrics token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Too short to resist guessing.
    #[error(
        "the metrics token in {path} is shorter than {MIN_TOKEN_LEN} characters: make a long random one, e.g. `openssl rand -hex 32 > {path}`"
    )]
    TooShort {
        /// The file.
        path: String,
    },
    /// Other users on the machine could read the token (as with `master.key`, refused).
    #[error("the metrics token file {path} is readable by other users; run `chmod 600 {path}`")]
    Insecure {
        /// The file.
        path: String,
    },
    /// Not something an HTTP client can send in `Authorization: Bearer …`.
    #[error(
        "the metrics token in {path} must be one line of visible ASCII characters without spaces (what goes after `Authorization: Bearer `)"
    )]
    NotAToken {
        /// The file.
        path: String,
    },
}

impl MetricsAccess {
    /// Loopback callers only, no token: the default.
    pub fn loopback() -> MetricsAccess {
        MetricsAccess::default()
    }

    /// Also requires `token` as the bearer token.
    pub fn with_token(mut self, token: &str) -> MetricsAccess {
        self.token_sha256 = Some(sha256(token.as_bytes()));
        self
    }

    /// Whether a token is required.
    pub fn has_token(&self) -> bool {
        self.token_sha256.is_some()
    }

    /// Reads a token from a file: its first line, surrounding white space removed.
    pub fn token_from_file(self, path: &Path) -> Result<MetricsAccess, MetricsTokenError> {
        let shown = path.display().to_string();
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            MetricsTokenError::Read {
                path: shown.clone(),
                source,
            }
        })?);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|source| MetricsTokenError::Read {
                    path: shown.clone(),
                    source,
                })?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(MetricsTokenError::Insecure { path: shown });
            }
        }
        let token = text.lines().next().unwrap_or("").trim();
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(MetricsTokenError::NotAToken { path: shown });
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(MetricsTokenError::TooShort { path: shown });
        }
        Ok(self.with_token(token))
    }

    /// Decides a call from `peer` carrying `bearer` (the `Authorization: Bearer` value, if any).
    pub fn check(&self, peer: IpAddr, bearer: Option<&str>) -> Result<(), ApiError> {
        // An IPv4 client of a dual-stack socket appears as ::ffff:127.0.0.1.
        if !self.from_anywhere && !peer.to_canonical().is_loopback() {
            return Err(ApiError::forbidden(
                code::METRICS_FORBIDDEN,
                "metrics are served to callers on this machine only; the operator can open them with --metrics-from-anywhere (and protect them with --metrics-token-file)",
            ));
        }
        if let Some(expected) = &self.token_sha256 {
            let Some(given) = bearer.filter(|t| !t.is_empty()) else {
                return Err(ApiError::unauthorized(
                    code::METRICS_TOKEN_MISSING,
                    "send the metrics token as Authorization: Bearer <token>",
                ));
            };
            // Hashing first makes the comparison constant-time whatever the given length.
            if !bool::from(sha256(given.as_bytes()).ct_eq(expected)) {
                return Err(ApiError::unauthorized(
                    code::METRICS_TOKEN_INVALID,
                    "the metrics token is not the one this server was started with",
                ));
            }
        }
        Ok(())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref());
    out
}

// ---------------------------------------------------------------------------------------------
// The metrics

/// How a sign-in request ended, as the server decided it (`vsc_signin_outcomes_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigninOutcome {
    /// The phone approved with the right number and a valid signature.
    Approved,
    /// The agent collected the approval: a session was created.
    Collected,
    /// An approval could no longer be collected (the card was cancelled or locked in between).
    CollectRefused,
    /// The person declined on the phone.
    Declined,
    /// "I didn't do this": declined and reported.
    NotMe,
    /// The phone sent a number other than the one the workstation shows.
    WrongNumber,
    /// The approval's signature did not verify.
    SignatureInvalid,
    /// Any other failed approval.
    Failed,
    /// The workstation withdrew it.
    Cancelled,
    /// The same workstation opened a new request for the card, replacing this one.
    Superseded,
    /// Nobody decided in time (or an approval was not collected in time), as reported to the
    /// workstation polling it.
    Expired,
}

impl SigninOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SigninOutcome::Approved => "approved",
            SigninOutcome::Collected => "collected",
            SigninOutcome::CollectRefused => "collect_refused",
            SigninOutcome::Declined => "declined",
            SigninOutcome::NotMe => "not_me",
            SigninOutcome::WrongNumber => "wrong_number",
            SigninOutcome::SignatureInvalid => "signature_invalid",
            SigninOutcome::Failed => "failed",
            SigninOutcome::Cancelled => "cancelled",
            SigninOutcome::Superseded => "superseded",
            SigninOutcome::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The registry and every metric in it; one per [`AppState`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    signin_opened: Counter,
    signin_outcomes: Family<OutcomeLabels, Counter>,
    device_streams: Gauge,
    write_wait: Histogram,
    read_pool: Family<PoolLabels, Gauge>,
    read_pool_max: Gauge,
    audit_events: Family<OutcomeLabels, Counter>,
    audit_errors: Counter,
    refusals_aggregated: Counter,
    process_cpu: Counter<f64, AtomicU64>,
    store_transactions: Counter,
    store_commits: Counter,
    push_notices: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vsc");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route template and status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a request to its response head, by method and matched route template",
            Unit::Seconds,
            request_duration.clone(),
        );
        let signin_opened = Counter::default();
        registry.register(
            "signin_requests_opened",
            "Sign-in requests opened by workstations",
            signin_opened.clone(),
        );
        let signin_outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "signin_outcomes",
            "Sign-in requests decided, by outcome",
            signin_outcomes.clone(),
        );
        let device_streams = Gauge::default();
        registry.register(
            "device_streams_open",
            "Phones connected to the device event stream",
            device_streams.clone(),
        );
        let write_wait = Histogram::new(WAIT_BUCKETS);
        registry.register_with_unit(
            "store_write_wait",
            "Time a request waited to begin the store's write transaction",
            Unit::Seconds,
            write_wait.clone(),
        );
        let read_pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "store_read_pool_connections",
            "Connections of the store's read pool, open and idle, at the time of the scrape",
            read_pool.clone(),
        );
        let read_pool_max = Gauge::default();
        registry.register(
            "store_read_pool_max_connections",
            "Most connections the store's read pool opens",
            read_pool_max.clone(),
        );
        let audit_events = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "audit_events",
            "Events appended to the audit log by this process, by outcome",
            audit_events.clone(),
        );
        let audit_errors = Counter::default();
        registry.register(
            "audit_write_errors",
            "Audit log appends that failed",
            audit_errors.clone(),
        );
        let refusals_aggregated = Counter::default();
        registry.register(
            "audit_refusals_aggregated",
            "Refusals of unauthenticated callers counted into an aggregated audit event instead of written one by one",
            refusals_aggregated.clone(),
        );
        let store_transactions = Counter::default();
        registry.register(
            "store_write_transactions",
            "Write transactions committed by this process",
            store_transactions.clone(),
        );
        let store_commits = Counter::default();
        registry.register(
            "store_commits",
            "Durable COMMITs that made them (group commit: concurrent transactions share one)",
            store_commits.clone(),
        );
        let process_cpu = Counter::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "process_cpu",
            "CPU time this server process has used (user and system, all threads), read at the scrape; `vsc bench login --server` divides its increase by the sign-ins it made",
            Unit::Seconds,
            process_cpu.clone(),
        );
        let push_notices = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "push_notices",
            "Web Push notices to phones by outcome: delivered, gone (the subscription was deleted) or failed",
            push_notices.clone(),
        );
        registry.register(
            "build",
            "The running server",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            signin_opened,
            signin_outcomes,
            device_streams,
            write_wait,
            read_pool,
            read_pool_max,
            audit_events,
            audit_errors,
            refusals_aggregated,
            process_cpu,
            store_transactions,
            store_commits,
            push_notices,
        }
    }

    /// A Web Push notice ended with `outcome`.
    pub fn push_sent(&self, outcome: crate::push::PushOutcome) {
        self.push_notices
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// One answered request.
    fn observe_request(&self, method: &'static str, route: String, status: u16, took: Duration) {
        self.request_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// A workstation opened a sign-in request.
    pub fn signin_opened(&self) {
        self.signin_opened.inc();
    }

    /// A sign-in request ended with `outcome`.
    pub fn signin_outcome(&self, outcome: SigninOutcome) {
        self.signin_outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// A phone connected to the event stream; it counts as connected until the guard drops
    /// (the stream ends or the phone goes away).
    pub fn device_stream_opened(&self) -> StreamGuard {
        self.device_streams.inc();
        StreamGuard(self.device_streams.clone())
    }

    /// A wait for the store's writer.
    pub fn write_waited(&self, took: Duration) {
        self.write_wait.observe(took.as_secs_f64());
    }

    /// An audit append: its outcome when it was written, or a write error.
    pub fn audit_appended(&self, outcome: Option<vsc_store::Outcome>) {
        match outcome {
            Some(o) => {
                let outcome = match o {
                    vsc_store::Outcome::Success => "success",
                    vsc_store::Outcome::Failure => "failure",
                };
                self.audit_events
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc();
            }
            None => {
                self.audit_errors.inc();
            }
        }
    }

    /// A refusal only counted into an aggregated event.
    pub fn refusal_aggregated(&self) {
        self.refusals_aggregated.inc();
    }

    /// The OpenMetrics text, with the store's pool sampled now.
    pub fn render(&self, store: &vsc_store::Store) -> Result<String, std::fmt::Error> {
        let pool = store.pool();
        let open = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        self.read_pool
            .get_or_create(&PoolLabels { state: "open" })
            .set(open);
        self.read_pool
            .get_or_create(&PoolLabels { state: "idle" })
            .set(idle);
        self.read_pool_max
            .set(i64::from(pool.options().get_max_connections()));
        // Counters only go up: add what happened since the last scrape.
        let writes = store.writer_stats();
        for (counter, total) in [
            (&self.store_transactions, writes.transactions),
            (&self.store_commits, writes.commits),
        ] {
            let counted = counter.get();
            if total > counted {
                counter.inc_by(total - counted);
            }
        }
        let used = process_cpu_seconds();
        let counted = self.process_cpu.get();
        if used > counted {
            self.process_cpu.inc_by(used - counted);
        }
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// CPU seconds used by this process so far (CLOCK_PROCESS_CPUTIME_ID: every thread, user and
/// system time, in nanoseconds rather than clock ticks).
fn process_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Keeps one phone counted in `vsc_device_streams_open` while it lives.
#[derive(Debug)]
pub struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

// ---------------------------------------------------------------------------------------------
// Middleware and handlers

/// Counts and times every request under its route template (see the module docs).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    state
        .metrics()
        .observe_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

/// The method as a label from a closed set: a client may send any token as a method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

async fn metrics(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    if let Err(err) = state
        .config()
        .metrics
        .check(ctx.source, bearer_token(&headers))
    {
        state
            .audit_failure(&ctx, "metrics.read", vsc_proto::routes::METRICS, "", &err)
            .await;
        return Err(err);
    }
    let body = state
        .metrics()
        .render(state.store())
        .map_err(ApiError::internal)?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
        body,
    )
        .into_response())
}

/// `/readyz`'s answer.
#[derive(Debug, serde::Serialize)]
struct Ready {
    status: &'static str,
}

async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Ready>> {
    if state.hub().is_stopped() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::SHUTTING_DOWN,
            "this server is shutting down; send new requests to another one",
        ));
    }
    let probe = sqlx::query("SELECT 1").execute(state.store().pool());
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(_)) => Ok(Json(Ready { status: "ready" })),
        // The cause goes to the log, not to whoever probes.
        Ok(Err(e)) => Err(not_ready(&e)),
        Err(_) => Err(not_ready(&"no answer within two seconds")),
    }
}

fn not_ready(cause: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %cause, "readiness check failed: the database does not answer");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        code::NOT_READY,
        "the server cannot reach its database; the operator can find the cause in the server log",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const V4_LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const V6_LOOPBACK: IpAddr = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);

    fn remote() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    #[test]
    fn by_default_only_loopback_callers_read_metrics() {
        let access = MetricsAccess::loopback();
        assert!(access.check(V4_LOOPBACK, None).is_ok());
        assert!(access.check(V6_LOOPBACK, None).is_ok());
        assert!(access.check("127.8.9.10".parse().unwrap(), None).is_ok());
        // An IPv4 loopback client seen through a dual-stack socket.
        assert!(
            access
                .check("::ffff:127.0.0.1".parse().unwrap(), None)
                .is_ok()
        );
        let err = access.check(remote(), None).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::FORBIDDEN, code::METRICS_FORBIDDEN)
        );
        // A token does not open the address check.
        assert!(access.check(remote(), Some("anything")).is_err());
        assert!(
            access
                .check("::ffff:192.0.2.7".parse().unwrap(), None)
                .is_err()
        );
        assert!(access.check("10.0.0.1".parse().unwrap(), None).is_err());
    }

    #[test]
    fn from_anywhere_opens_the_address_check_only() {
        let open = MetricsAccess {
            from_anywhere: true,
            ..MetricsAccess::default()
        };
        assert!(open.check(remote(), None).is_ok());
        let guarded = open.with_token("a-long-enough-metrics-token");
        assert!(
            guarded
                .check(remote(), Some("a-long-enough-metrics-token"))
                .is_ok()
        );
        let err = guarded.check(remote(), None).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::UNAUTHORIZED, code::METRICS_TOKEN_MISSING)
        );
    }

    #[test]
    fn a_token_is_required_from_loopback_too_and_compared_exactly() {
        let access = MetricsAccess::loopback().with_token("0123456789abcdef0123");
        assert!(
            access
                .check(V4_LOOPBACK, Some("0123456789abcdef0123"))
                .is_ok()
        );
        for wrong in [
            "0123456789abcdef012",
            "0123456789abcdef01234",
            "0123456789ABCDEF0123",
            "x",
        ] {
            let err = access.check(V4_LOOPBACK, Some(wrong)).unwrap_err();
            assert_eq!(err.code, code::METRICS_TOKEN_INVALID, "{wrong}");
        }
        assert_eq!(
            access.check(V4_LOOPBACK, Some("")).unwrap_err().code,
            code::METRICS_TOKEN_MISSING
        );
        assert_eq!(
            access.check(V4_LOOPBACK, None).unwrap_err().code,
            code::METRICS_TOKEN_MISSING
        );
    }

    #[test]
    fn token_files_are_checked_and_never_printed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cr3t-metrics-token-0001 \n").unwrap();
        // Readable by others: refused, like master.key.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MetricsAccess::loopback().token_from_file(&path),
            Err(MetricsTokenError::Insecure { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let access = MetricsAccess::loopback().token_from_file(&path).unwrap();
        assert!(
            access
                .check(V4_LOOPBACK, Some("s3cr3t-metrics-token-0001"))
                .is_ok()
        );
        assert!(!format!("{access:?}").contains("s3cr3t"));

        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            MetricsAccess::loopback().token_from_file(&path),
            Err(MetricsTokenError::TooShort { .. })
        ));
        std::fs::write(&path, "has a space in the middle of it\n").unwrap();
        assert!(matches!(
            MetricsAccess::loopback().token_from_file(&path),
            Err(MetricsTokenError::NotAToken { .. })
        ));
        assert!(matches!(
            MetricsAccess::loopback().token_from_file(&dir.path().join("absent")),
            Err(MetricsTokenError::Read { .. })
        ));
    }

    #[test]
    fn methods_are_a_closed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"SECRET-123").unwrap()),
            "other"
        );
    }

    #[test]
    fn every_outcome_has_its_own_label() {
        let all = [
            SigninOutcome::Approved,
            SigninOutcome::Collected,
            SigninOutcome::CollectRefused,
            SigninOutcome::Declined,
            SigninOutcome::NotMe,
            SigninOutcome::WrongNumber,
            SigninOutcome::SignatureInvalid,
            SigninOutcome::Failed,
            SigninOutcome::Cancelled,
            SigninOutcome::Superseded,
            SigninOutcome::Expired,
        ];
        let labels: std::collections::BTreeSet<_> = all.iter().map(|o| o.as_str()).collect();
        assert_eq!(labels.len(), all.len());
    }
}
