//! Rate limits kept in the database, so that they hold across the nodes sharing it (issue 19):
//! the sliding log that `live::rate::RateLimiter` keeps in memory for one node, one row per
//! counted attempt.
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::db::params;
use super::{Error, Store, parse_ts, ts};

/// Rows one scope may hold within its window: past it, every attempt in the scope is refused
/// until old ones age out (a flood from many keys cannot grow the table without bound).
pub const MAX_ROWS_PER_SCOPE: i64 = 100_000;

impl Store {
    /// Counts an attempt of `key` in `scope` at `now` when fewer than `limit` were counted within
    /// the `window` before it; otherwise says how long until one is allowed. Rows of the scope
    /// that left the window are deleted on the way.
    pub async fn take_rate(
        &self,
        scope: &'static str,
        key: String,
        limit: u32,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, Error> {
        let span = TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX);
        self.call(move |c| {
            let since = now.checked_sub_signed(span).unwrap_or(DateTime::<Utc>::MIN_UTC);
            c.execute(
                "DELETE FROM rate_events WHERE scope = ?1 AND at <= ?2",
                params![scope, ts(since)],
            )?;
            let (count, oldest): (i64, Option<String>) = c.query_row(
                "SELECT COUNT(*), MIN(at) FROM rate_events WHERE scope = ?1 AND key = ?2",
                params![scope, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if count >= i64::from(limit.max(1)) {
                let oldest = parse_ts(oldest)?.unwrap_or(now);
                let wait = (oldest + span - now).to_std().unwrap_or_default();
                return Ok(Err(wait));
            }
            let held: i64 = c.query_row(
                "SELECT COUNT(*) FROM (SELECT 1 FROM rate_events WHERE scope = ?1 LIMIT ?2) AS recent",
                params![scope, MAX_ROWS_PER_SCOPE],
                |r| r.get(0),
            )?;
            if held >= MAX_ROWS_PER_SCOPE {
                return Ok(Err(window));
            }
            c.execute(
                "INSERT INTO rate_events (scope, key, at) VALUES (?1, ?2, ?3)",
                params![scope, key, ts(now)],
            )?;
            Ok(Ok(()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;
    use crate::store::testing::temp_store;

    on_both_backends! {
        async fn allows_the_limit_per_window_per_key_and_says_when_to_retry() {
            let (_dir, store) = temp_store().await;
            let window = Duration::from_secs(10);
            let t0 = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z").unwrap().to_utc();
            let at = |s: i64| t0 + TimeDelta::seconds(s);
            let take = |key: &str, t| store.take_rate("chat", key.to_string(), 3, window, t);
            for i in 0..3 {
                assert_eq!(take("a", at(i)).await.unwrap(), Ok(()));
            }
            assert_eq!(take("a", at(4)).await.unwrap(), Err(Duration::from_secs(6)));
            assert_eq!(take("b", at(4)).await.unwrap(), Ok(()), "per key");
            assert_eq!(
                store
                    .take_rate("registration", "a".into(), 3, window, at(4))
                    .await
                    .unwrap(),
                Ok(()),
                "per scope"
            );
            // The first attempt leaves the window at t0 + 10 s: one more is allowed, not three.
            assert_eq!(take("a", at(10)).await.unwrap(), Ok(()));
            assert!(take("a", at(10)).await.unwrap().is_err());
            // Old rows of every key of the scope go with the next attempt.
            assert_eq!(take("c", at(60)).await.unwrap(), Ok(()));
            let rows = store
                .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM rate_events WHERE scope = 'chat'", (), |r| r.get::<_, i64>(0))?))
                .await
                .unwrap();
            assert_eq!(rows, 1, "only c's attempt is left in the scope");
        }
    }
}
