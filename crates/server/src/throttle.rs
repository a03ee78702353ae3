//! Throttling of wrong guesses by client address, for guesses that cannot be counted against a
//! record (an activation id that does not exist). Wrong guesses at a real activation are counted
//! in the database against that activation.
//!
//! [`FailureThrottle`] counts in memory, per node: a restart forgets it, which is acceptable
//! because the per-record counters, which do survive, already bound what an attacker can try.
//! [`Throttle`] wraps one and, when nodes share a PostgreSQL store, also keeps the counts in the
//! `throttle_counts` table, so an address (or device) that spreads its calls over every node
//! still gets only one allowance.
//!
//! [`RefusalAggregator`] counts refusals of unauthenticated callers so that a flood of them is
//! audited as a count, not as one fsync'd row per request.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// At most `limit` failures (or calls) per key within `window_seconds`; the key is the client's
/// address unless another is named (a device id, for challenges of known devices).
#[derive(Debug)]
pub struct FailureThrottle<K = IpAddr> {
    limit: u32,
    window_seconds: i64,
    entries: Mutex<HashMap<K, (i64, u32)>>,
}

/// Addresses remembered at most; beyond this the oldest windows are dropped.
const MAX_ENTRIES: usize = 100_000;

impl<K: Hash + Eq + Clone> FailureThrottle<K> {
    /// A throttle.
    pub fn new(limit: u32, window_seconds: i64) -> FailureThrottle<K> {
        FailureThrottle {
            limit,
            window_seconds,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may try again at `now` (Unix seconds).
    pub fn allowed(&self, key: &K, now: i64) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((start, count)) if now - start < self.window_seconds => *count < self.limit,
            _ => true,
        }
    }

    /// Counts a failure from `key`.
    pub fn record_failure(&self, key: &K, now: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let window = self.window_seconds;
            entries.retain(|_, (start, _)| now - *start < window);
        }
        let entry = entries.entry(key.clone()).or_insert((now, 0));
        if now - entry.0 >= self.window_seconds {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// A [`FailureThrottle`] that holds across nodes: on a shared (PostgreSQL) store the counts also
/// live in the `throttle_counts` table under `scope`, counted with one atomic upsert each, and a
/// key is refused when either count is over the limit. The local count stays as a floor when the
/// database cannot be reached (a throttle must not turn a database hiccup into a refusal of
/// everyone, nor into no limit at all).
#[derive(Debug)]
pub struct Throttle<K = IpAddr> {
    local: FailureThrottle<K>,
    scope: &'static str,
    shared: Option<vsc_store::Pool>,
}

impl<K: Hash + Eq + Clone + std::fmt::Display> Throttle<K> {
    /// A throttle named `scope` (its rows in `throttle_counts`), shared through `shared` when
    /// given.
    pub fn new(
        scope: &'static str,
        limit: u32,
        window_seconds: i64,
        shared: Option<vsc_store::Pool>,
    ) -> Throttle<K> {
        Throttle {
            local: FailureThrottle::new(limit, window_seconds),
            scope,
            shared,
        }
    }

    /// Whether `key` may try again at `now` (Unix seconds), on this node and across nodes.
    pub async fn allowed(&self, key: &K, now: i64) -> bool {
        if !self.local.allowed(key, now) {
            return false;
        }
        let Some(pool) = &self.shared else {
            return true;
        };
        let row: Result<Option<(i64, i64)>, sqlx::Error> = sqlx::query_as(
            "SELECT window_start, failures FROM throttle_counts WHERE scope = $1 AND subject = $2",
        )
        .bind(self.scope)
        .bind(key.to_string())
        .fetch_optional(pool)
        .await;
        match row {
            Ok(Some((start, count))) if now - start < self.local.window_seconds => {
                count < i64::from(self.local.limit)
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, scope = self.scope, "shared throttle unreadable; counting on this node only");
                true
            }
        }
    }

    /// Counts a failure (or call) from `key`, on this node and across nodes.
    pub async fn record_failure(&self, key: &K, now: i64) {
        self.local.record_failure(key, now);
        let Some(pool) = &self.shared else {
            return;
        };
        // One statement, so two nodes counting the same key at once both count: the row lock
        // of the upsert orders them.
        let result = sqlx::query(
            "INSERT INTO throttle_counts (scope, subject, window_start, failures) VALUES ($1, $2, $3, 1)
             ON CONFLICT (scope, subject) DO UPDATE SET
               failures = CASE WHEN $3 - throttle_counts.window_start >= $4 THEN 1
                               ELSE throttle_counts.failures + 1 END,
               window_start = CASE WHEN $3 - throttle_counts.window_start >= $4 THEN $3
                                   ELSE throttle_counts.window_start END",
        )
        .bind(self.scope)
        .bind(key.to_string())
        .bind(now)
        .bind(self.local.window_seconds)
        .execute(pool)
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, scope = self.scope, "shared throttle not updated; counted on this node only");
        }
    }

    /// Whether the counts are shared between nodes.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit_until_window_passes() {
        let t = FailureThrottle::new(3, 60);
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(t.allowed(&ip, 100));
            t.record_failure(&ip, 100);
        }
        assert!(!t.allowed(&ip, 120));
        assert!(t.allowed(&[127, 0, 0, 2].into(), 120));
        assert!(t.allowed(&ip, 161));
    }
}

/// Refusals of unauthenticated callers, counted in memory so that a flood of bad requests costs
/// the audit log (and its fsync'd writes, which approvals wait behind) O(1) rows per source
/// address and reason per interval instead of one row each.
///
/// The first [`RefusalAggregator::individual`] refusals of a (source, action, error code) in an
/// interval are still written one by one, so a person's few mistakes read as before; the rest are
/// only counted, and [`RefusalAggregator::take_due`] hands back, once the interval is over (or at
/// shutdown), one summary per key with the total count, written as `refusals.aggregated`.
#[derive(Debug)]
pub struct RefusalAggregator {
    interval_ms: i64,
    individual: u64,
    entries: Mutex<HashMap<RefusalKey, RefusalCount>>,
}

/// What a refusal is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefusalKey {
    /// The caller's address.
    pub source: IpAddr,
    /// The refused action (`auth.poll`).
    pub action: String,
    /// The error code (`unknown_request`).
    pub code: String,
}

/// The refusals of one key in one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalCount {
    /// How many, all of them (the ones written individually included).
    pub count: u64,
    /// How many of them were written as events of their own.
    pub written: u64,
    /// The first one, Unix milliseconds.
    pub first_ms: i64,
    /// The last one, Unix milliseconds.
    pub last_ms: i64,
}

/// Keys remembered at most; past this a refusal is only counted under its source's overflow key,
/// so memory stays bounded however many addresses and reasons a flood uses.
const MAX_REFUSAL_KEYS: usize = 10_000;

impl RefusalAggregator {
    /// An aggregator over intervals of `interval_ms`, writing the first `individual` refusals of
    /// each key per interval one by one.
    pub fn new(interval_ms: i64, individual: u64) -> RefusalAggregator {
        RefusalAggregator {
            interval_ms,
            individual,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The interval, milliseconds.
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// Counts one refusal at `now_ms`; `true` when it should also be written as an event of its
    /// own (one of the first few of its key in the interval).
    pub fn note(&self, key: RefusalKey, now_ms: i64) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = if entries.len() >= MAX_REFUSAL_KEYS && !entries.contains_key(&key) {
            RefusalKey {
                source: key.source,
                action: "*".into(),
                code: vsc_proto::errors::TOO_MANY_DISTINCT_REFUSALS.into(),
            }
        } else {
            key
        };
        let entry = entries.entry(key).or_insert(RefusalCount {
            count: 0,
            written: 0,
            first_ms: now_ms,
            last_ms: now_ms,
        });
        entry.count += 1;
        entry.last_ms = now_ms;
        if entry.written < self.individual {
            entry.written += 1;
            true
        } else {
            false
        }
    }

    /// Removes and returns the keys whose interval has ended at `now_ms` (every key when `all`),
    /// keeping only those with refusals that were counted but not written, in a stable order.
    pub fn take_due(&self, now_ms: i64, all: bool) -> Vec<(RefusalKey, RefusalCount)> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let interval = self.interval_ms;
        let due: Vec<RefusalKey> = entries
            .iter()
            .filter(|(_, c)| all || now_ms - c.first_ms >= interval)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<(RefusalKey, RefusalCount)> = due
            .into_iter()
            .filter_map(|k| entries.remove(&k).map(|c| (k, c)))
            .filter(|(_, c)| c.count > c.written)
            .collect();
        out.sort_by_key(|(k, c)| (c.first_ms, k.source, k.action.clone(), k.code.clone()));
        out
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    fn key(ip: [u8; 4], code: &str) -> RefusalKey {
        RefusalKey {
            source: ip.into(),
            action: "auth.poll".into(),
            code: code.into(),
        }
    }

    #[test]
    fn a_flood_is_written_a_few_times_then_counted() {
        let a = RefusalAggregator::new(60_000, 2);
        let written = (0..1000)
            .filter(|i| a.note(key([127, 0, 0, 1], "unknown_request"), 1000 + i))
            .count();
        assert_eq!(written, 2);
        assert!(a.note(key([127, 0, 0, 2], "unknown_request"), 1500));
        assert!(a.note(key([127, 0, 0, 1], "other"), 1500));
        // Nothing is due before the interval ends; the keys without unwritten refusals vanish.
        assert!(a.take_due(2000, false).is_empty());
        let due = a.take_due(61_000, false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.count, 1000);
        assert_eq!(due[0].1.written, 2);
        assert_eq!((due[0].1.first_ms, due[0].1.last_ms), (1000, 1999));
        assert!(a.take_due(1_000_000, true).is_empty());
        // A new interval writes its first ones again.
        assert!(a.note(key([127, 0, 0, 1], "unknown_request"), 62_000));
    }

    #[test]
    fn memory_is_bounded_by_an_overflow_key() {
        let a = RefusalAggregator::new(60_000, 0);
        for i in 0..(MAX_REFUSAL_KEYS as u32 + 50) {
            a.note(key([127, 0, 0, 1], &i.to_string()), 1);
        }
        let due = a.take_due(0, true);
        assert_eq!(due.len(), MAX_REFUSAL_KEYS + 1);
        let total: u64 = due.iter().map(|(_, c)| c.count).sum();
        assert_eq!(total, MAX_REFUSAL_KEYS as u64 + 50);
    }
}
