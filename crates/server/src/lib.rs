//! The vsc server: RA issuance, phone enrolment, the instance CA's publication points and the
//! audit log, served over HTTPS (rustls) by axum.
//!
//! [`instance::prepare`] opens or creates an instance from its data directory;
//! [`serve`] runs it until the shutdown future completes, then drains connections and closes
//! the database. The routes are documented in [`routes`].

pub mod clock;
pub mod cluster;
pub mod codes;
pub mod config;
pub mod crl;
pub mod error;
pub mod hub;
pub mod instance;
pub mod metrics;
pub mod push;
pub mod renewal_sweep;
pub mod routes;
pub mod state;
pub mod throttle;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub use config::ServerConfig;
pub use instance::{BootstrapActivation, Instance, InstanceError};

/// Serves `instance` on `listener` until `shutdown` completes; in-flight requests get up to ten
/// seconds to finish.
pub async fn serve(
    instance: Instance,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = instance.state.clone();
    let app = routes::router(state.clone());
    // On a shared PostgreSQL store, events travel to and from the other nodes; the guard stops
    // those tasks however this function ends (returning, or its future being dropped).
    let _cluster = cluster::start(&state).await;
    let refresher = tokio::spawn(crl::refresher(state.clone()));
    // Background tasks end with this function, also when its future is dropped mid-flight.
    let _refresher = AbortOnDrop(refresher.abort_handle());
    // Aggregated refusals are written once their interval is over, and the rest at shutdown.
    let flusher_state = state.clone();
    let flusher = tokio::spawn(async move {
        let period = flusher_state.refusal_interval() / 6;
        loop {
            tokio::time::sleep(period).await;
            flusher_state.flush_refusals(false).await;
            flusher_state.prune_throttles().await;
        }
    });
    let _flusher = AbortOnDrop(flusher.abort_handle());
    // OpenID Connect clients hear of sessions that ended other than by `/oauth2/logout`.
    let sweeper = tokio::spawn(routes::oidc::logout::sweeper(state.clone()));
    let _sweeper = AbortOnDrop(sweeper.abort_handle());
    // Renewals never confirmed lapse and their certificates are revoked (`renewal_sweep`).
    let renewal_sweep =
        AbortOnDrop(tokio::spawn(renewal_sweep::sweeper(state.clone())).abort_handle());
    let handle = axum_server::Handle::<SocketAddr>::new();
    let shutdown_handle = handle.clone();
    let hub_state = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        hub_state.hub().stop();
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown_handle.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    listener.set_nonblocking(true)?;
    let config = axum_server::tls_rustls::RustlsConfig::from_config(instance.tls.clone());
    let result = axum_server::from_tcp_rustls(listener, config)?
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await;
    refresher.abort();
    flusher.abort();
    sweeper.abort();
    drop(renewal_sweep);
    state.flush_refusals(true).await;
    state.store().close().await;
    tracing::info!("stopped");
    result
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
