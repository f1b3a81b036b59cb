//! Rate limits: at most `limit` attempts of one key within any `window` (a sliding log of each
//! key's last `limit` attempts), in this process's memory ([`RateLimiter`]) or, for the limits
//! that must hold across nodes sharing one database, in the store ([`SharedRateLimiter`]).
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::Store;

pub struct RateLimiter<K> {
    limit: usize,
    window: Duration,
    users: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter {
            limit: limit.max(1) as usize,
            window,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a message of `user` at `now`, or says how long until one is allowed again.
    pub fn check(&self, user: &K, now: Instant) -> Result<(), Duration> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let log = users.entry(user.clone()).or_default();
        while log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            log.pop_front();
        }
        if log.len() >= self.limit {
            let oldest = *log.front().expect("full log");
            return Err((oldest + self.window).saturating_duration_since(now));
        }
        log.push_back(now);
        Ok(())
    }

    /// Forgets users who sent nothing within the window (called now and then).
    pub fn prune(&self, now: Instant) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.retain(|_, log| {
            log.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < self.window)
        });
    }

    pub fn tracked(&self) -> usize {
        self.users.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Keys a [`SharedRateLimiter`] counts in memory before it forgets the quiet ones.
const MAX_TRACKED_KEYS: usize = 10_000;

/// A limit that holds across the nodes sharing the store ([`Store::is_shared`]): counted in the
/// database there, in memory on a store of its own (one node). If the database fails, this node's
/// own count decides meanwhile.
pub struct SharedRateLimiter {
    /// What the store's rows of this limit are filed under.
    scope: &'static str,
    limit: u32,
    window: Duration,
    store: Option<Store>,
    local: RateLimiter<String>,
}

impl SharedRateLimiter {
    pub fn new(store: &Store, scope: &'static str, limit: u32, window: Duration) -> Self {
        SharedRateLimiter {
            scope,
            limit,
            window,
            store: store.is_shared().then(|| store.clone()),
            local: RateLimiter::new(limit, window),
        }
    }

    /// Counts an attempt of `key` now, or says how long until one is allowed again.
    pub async fn check(&self, key: String) -> Result<(), Duration> {
        let now = Instant::now();
        // Keys quiet for a window are forgotten once many are counted here: memory stays bounded.
        if self.local.tracked() > MAX_TRACKED_KEYS {
            self.local.prune(now);
        }
        if let Some(store) = &self.store {
            let taken = store
                .take_rate(
                    self.scope,
                    key.clone(),
                    self.limit,
                    self.window,
                    chrono::Utc::now(),
                )
                .await;
            match taken {
                Ok(answer) => return answer,
                Err(e) => {
                    tracing::warn!(scope = self.scope, error = %e, "rate limit: the store failed; counting on this node");
                }
            }
        }
        self.local.check(&key, now)
    }

    /// Forgets keys that sent nothing within the window (the store's rows go by themselves).
    pub fn prune(&self, now: Instant) {
        self.local.prune(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_per_window_and_says_when_to_retry() {
        let r = RateLimiter::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(r.check(&"a", t0 + Duration::from_secs(i)), Ok(()));
        }
        assert_eq!(
            r.check(&"a", t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        assert_eq!(
            r.check(&"b", t0 + Duration::from_secs(4)),
            Ok(()),
            "per user"
        );
        // The first send leaves the window at t0 + 10 s: one more is allowed, not three.
        assert_eq!(r.check(&"a", t0 + Duration::from_secs(10)), Ok(()));
        assert!(r.check(&"a", t0 + Duration::from_secs(10)).is_err());
        r.prune(t0 + Duration::from_secs(30));
        assert_eq!(r.tracked(), 0);
    }
}
