//! In-process notifications: a new authentication or signing request for a card (pushed to that
//! card's phone), and a request's decision (waking the agent that polls for it).
//!
//! The database stays the source of truth; a notification only tells a waiter to look again, so
//! a missed one costs latency, never correctness. With several server nodes, a phone connected
//! to another node still receives requests through its long-poll or reconnection, which read
//! the database.

use tokio::sync::broadcast;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// The broadcast hub.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Event>,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Hub {
        // Slow receivers that fall behind get `Lagged` and re-read the database.
        let (tx, _) = broadcast::channel(4096);
        let (stopping, _) = tokio::sync::watch::channel(false);
        Hub { tx, stopping }
    }
}

impl Hub {
    /// Announces an event (nobody listening is fine).
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
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
