//! Throttling of wrong guesses by client address, for guesses that cannot be counted against a
//! record (an activation id that does not exist). Wrong guesses at a real activation are counted
//! in the database against that activation.
//!
//! In memory and per node: a restart forgets it, which is acceptable because the per-record
//! counters, which do survive, already bound what an attacker can try.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// At most `limit` failures per address within `window_seconds`.
#[derive(Debug)]
pub struct FailureThrottle {
    limit: u32,
    window_seconds: i64,
    entries: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// Addresses remembered at most; beyond this the oldest windows are dropped.
const MAX_ENTRIES: usize = 100_000;

impl FailureThrottle {
    /// A throttle.
    pub fn new(limit: u32, window_seconds: i64) -> FailureThrottle {
        FailureThrottle {
            limit,
            window_seconds,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may try again at `now` (Unix seconds).
    pub fn allowed(&self, ip: IpAddr, now: i64) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&ip) {
            Some((start, count)) if now - start < self.window_seconds => *count < self.limit,
            _ => true,
        }
    }

    /// Counts a failure from `ip`.
    pub fn record_failure(&self, ip: IpAddr, now: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let window = self.window_seconds;
            entries.retain(|_, (start, _)| now - *start < window);
        }
        let entry = entries.entry(ip).or_insert((now, 0));
        if now - entry.0 >= self.window_seconds {
            *entry = (now, 0);
        }
        entry.1 += 1;
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
            assert!(t.allowed(ip, 100));
            t.record_failure(ip, 100);
        }
        assert!(!t.allowed(ip, 120));
        assert!(t.allowed([127, 0, 0, 2].into(), 120));
        assert!(t.allowed(ip, 161));
    }
}
