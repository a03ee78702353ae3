//! In-process notifications: a new authentication or signing request for a card (pushed to that
//! card's phone), and a request's decision (waking the agent that polls for it).
//!
//! The database stays the source of truth; a notification only tells a waiter to look again, so
//! a missed one costs latency, never correctness. With several server nodes on one PostgreSQL
//! database, [`crate::cluster`] forwards every published event to the other nodes (NOTIFY,
//! carrying only kinds and ids) and feeds theirs into this hub with [`Hub::publish_local`].

use std::sync::OnceLock;

use tokio::sync::{broadcast, mpsc};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A request was opened for `card_id`.
    Opened {
        /// The card.
        card_id: String,
        /// The request.
        request_id: String,
    },
    /// A request left `pending`.
    Decided {
        /// The card.
        card_id: String,
        /// The request.
        request_id: String,
        /// Its new state.
        state: String,
    },
    /// A signing request was opened for `card_id`.
    SigningOpened {
        /// The card.
        card_id: String,
        /// The request.
        request_id: String,
    },
    /// A signing request left `pending`.
    SigningDecided {
        /// The card.
        card_id: String,
        /// The request.
        request_id: String,
        /// Its new state.
        state: String,
    },
    /// Events from other nodes may have been missed (the connection that carries them was
    /// lost and is back): every waiter re-reads what it waits for from the database. Never
    /// sent to other nodes.
    Resync,
}

/// The broadcast hub.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Event>,
    stopping: tokio::sync::watch::Sender<bool>,
    /// Where events published on this node also go, for the other nodes (set once at start-up
    /// when the store is shared; unset on a single node).
    outbound: OnceLock<mpsc::Sender<Event>>,
}

impl Default for Hub {
    fn default() -> Hub {
        // Slow receivers that fall behind get `Lagged` and re-read the database.
        let (tx, _) = broadcast::channel(4096);
        let (stopping, _) = tokio::sync::watch::channel(false);
        Hub {
            tx,
            stopping,
            outbound: OnceLock::new(),
        }
    }
}

impl Hub {
    /// Announces an event here and, when nodes share the store, to the other nodes (nobody
    /// listening is fine). Called after the change it announces has committed.
    pub fn publish(&self, event: Event) {
        if let Some(outbound) = self.outbound.get() {
            // Bounded: while the database cannot take notifications (it is down), events beyond
            // the queue are dropped rather than held without limit. A dropped event, like one
            // sent by a stopped forwarder (shutdown), costs the other nodes latency only: their
            // waiters re-read the tables at their deadlines or on reconnection.
            if let Err(mpsc::error::TrySendError::Full(_)) = outbound.try_send(event.clone()) {
                tracing::warn!("the queue of events for other nodes is full; dropping one");
            }
        }
        self.publish_local(event);
    }

    /// Announces an event on this node only (one that came from another node).
    pub fn publish_local(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Sends every event published from now on to `outbound` too (see [`crate::cluster`]);
    /// `false` if an outbound channel was already set.
    pub fn forward_to(&self, outbound: mpsc::Sender<Event>) -> bool {
        self.outbound.set(outbound).is_ok()
    }

    /// Tells long-lived listeners (phones' event streams) that the server is stopping, so a
    /// graceful shutdown does not wait for connections that never end by themselves.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether [`Hub::stop`] has been called (readiness answers "shutting down" from then on).
    pub fn is_stopped(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once [`Hub::stop`] has been called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    /// Listens for events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
