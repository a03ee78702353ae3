//! Stopping on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when [`stop_signals`] is
//! called, not when its future is first polled: a signal that arrives between "ready" being
//! printed and the serving task starting must still mean "stop cleanly", not kill the process.

use std::future::Future;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

/// Installs the handlers now; the returned future completes at the first SIGINT or SIGTERM.
pub fn stop_signals() -> Result<impl Future<Output = ()> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}
