//! More than one node: several `vsc serve` processes on one PostgreSQL database serve the same
//! instance. This module carries the in-process notifications of [`crate::hub`] between them.
//!
//! Every event published on a node is sent to the others with `pg_notify` on the channel
//! [`CHANNEL`], right after the transaction that made the change has committed (the hub is only
//! told after commit, so a node never hears of a row it cannot read yet). Each node listens on
//! that channel with a dedicated connection and feeds what the other nodes sent into its own
//! hub, ignoring its own echoes by node id.
//!
//! A payload carries only the event's kind and ids (card, request, new state), never a secret,
//! and a waiter never trusts it for data: it re-reads the request from the tables. When the
//! listening connection drops, the node reconnects and then publishes [`Event::Resync`] so every
//! waiter re-reads state it may have missed meanwhile. On SQLite (one node) nothing runs here.

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vsc_store::Backend;

use crate::hub::Event;
use crate::state::AppState;

/// The NOTIFY channel the nodes of an instance share.
pub const CHANNEL: &str = "vsc_events";

/// How long to wait before connecting the listener again after a failure.
const RECONNECT_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Events waiting to be sent to the other nodes, at most (beyond it they are dropped: see
/// `Hub::publish`).
const OUTBOUND_QUEUE: usize = 10_000;

/// What goes over the wire: the sending node and the event (kinds and ids only).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Wire {
    node: String,
    #[serde(flatten)]
    event: Event,
}

/// The forwarding and listening tasks of a node on a shared store; they stop when this is
/// dropped (when `serve` returns, or is dropped mid-flight).
#[derive(Debug)]
pub struct Cluster {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts carrying events between the nodes when the store is PostgreSQL (`None` on SQLite).
///
/// The listener is connected before this returns when the database answers, so events other
/// nodes publish once this node serves are not missed; if it cannot connect, the task keeps
/// retrying and the node serves meanwhile (waiters then learn of other nodes' changes only at
/// their deadlines or reconnection, as on a missed notification).
pub async fn start(state: &AppState) -> Option<Cluster> {
    if state.store().backend() != Backend::Postgres {
        return None;
    }
    let url = state.config().database.clone()?;
    let node = match state.new_id() {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = e.message, "no node id; events stay on this node");
            return None;
        }
    };
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    if !state.hub().forward_to(tx) {
        // Already forwarding (the same state served twice): one forwarder is enough.
        return None;
    }
    let first = match connect(&url).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "could not listen for other nodes' events yet; retrying");
            None
        }
    };
    let forwarder = tokio::spawn(forward(state.clone(), node.clone(), rx));
    let listener = tokio::spawn(listen(state.clone(), node, url, first));
    Some(Cluster {
        tasks: vec![forwarder, listener],
    })
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Sends this node's events to the others, one NOTIFY each, in the order they were published.
async fn forward(state: AppState, node: String, mut rx: mpsc::Receiver<Event>) {
    while let Some(event) = rx.recv().await {
        if event == Event::Resync {
            continue;
        }
        let payload = match serde_json::to_string(&Wire {
            node: node.clone(),
            event,
        }) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "could not encode an event for the other nodes");
                continue;
            }
        };
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(state.store().pool())
            .await
        {
            // The change is committed; the other nodes' waiters see it when they next read.
            tracing::warn!(error = %e, "could not notify the other nodes of an event");
        }
    }
}

/// Feeds the other nodes' events into this node's hub, reconnecting when the connection drops.
async fn listen(state: AppState, node: String, url: String, mut first: Option<PgListener>) {
    loop {
        let mut listener = match first.take() {
            Some(listener) => listener,
            None => match connect(&url).await {
                Ok(listener) => {
                    tracing::info!("listening for other nodes' events again");
                    // Whatever was published while no connection listened is lost: every
                    // waiter looks at the tables again.
                    state.hub().publish_local(Event::Resync);
                    listener
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not listen for other nodes' events; retrying");
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            },
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<Wire>(notification.payload()) {
                        Ok(wire) if wire.node == node => {}
                        Ok(Wire {
                            event: Event::Resync,
                            ..
                        }) => {}
                        Ok(wire) => state.hub().publish_local(wire.event),
                        Err(e) => {
                            tracing::warn!(error = %e, "ignored an unreadable event from another node");
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("lost the connection that carries other nodes' events");
                    break;
                }
            }
        }
        // Reconnect with a fresh listener (and a resync) rather than the one that failed.
        drop(listener);
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_kinds_and_ids_only() {
        let wire = Wire {
            node: "n1".into(),
            event: Event::Decided {
                card_id: "c1".into(),
                request_id: "r1".into(),
                state: "approved".into(),
            },
        };
        let text = serde_json::to_string(&wire).expect("encode");
        assert_eq!(
            text,
            r#"{"node":"n1","kind":"decided","card_id":"c1","request_id":"r1","state":"approved"}"#
        );
        let back: Wire = serde_json::from_str(&text).expect("decode");
        assert_eq!(back.event, wire.event);
    }
}
