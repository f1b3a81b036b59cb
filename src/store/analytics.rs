//! Creator analytics: the samples taken while a stream is live and the player sessions that
//! watched it (this module's tables), and the facts of a stream read from the tables that hold
//! them for everyone else (chat, click-outs, the commission ledger, redemptions, follows), so
//! that a report agrees with the endpoints that list them: one source of truth.
use std::collections::BTreeMap;

use super::db::{Dialect, OptionalExtension, params};
use chrono::{DateTime, Utc};

use super::{BUSY_TIMEOUT, Error, STREAM_COLUMNS, Store, corrupt, parse_ts, stream_from_row, ts};
use crate::store::model::{CreatorId, Mode, Stream, StreamId};

/// Player sessions kept per stream (live and replay together); beyond it new ones are not
/// recorded (the counts saturate), so made-up traffic cannot grow the store without bound.
pub const MAX_SESSIONS_PER_STREAM: i64 = 100_000;

/// A stream's sampling grid: bucket `k` covers `[started_at + k·step, started_at + (k+1)·step)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub started_at: DateTime<Utc>,
    pub step_ms: i64,
}

impl Grid {
    /// The bucket `t` falls in (`None` before the start).
    pub fn bucket(&self, t: DateTime<Utc>) -> Option<i64> {
        let ms = (t - self.started_at).num_milliseconds();
        (ms >= 0).then(|| ms / self.step_ms.max(1))
    }

    /// Where bucket `k` starts.
    pub fn start_of(&self, k: i64) -> DateTime<Utc> {
        self.started_at + chrono::TimeDelta::milliseconds(k * self.step_ms)
    }
}

/// One sample: the mode and the audience of a stream in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub bucket: i64,
    pub at: DateTime<Utc>,
    pub mode: Mode,
    /// HLS player sessions (signed sids) of the public, not the owner.
    pub players: u32,
    /// Live-channel connections of others than the owner.
    pub sockets: u32,
}

/// A player session as seen so far (it may go on).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpan {
    pub stream: StreamId,
    pub sid: String,
    /// Watching the stream after it ended.
    pub replay: bool,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// `last_at - first_at` plus one segment (the last one fetched is watched too).
    pub watch_ms: i64,
}

/// Events of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BucketEvents {
    pub chat: u64,
    pub clicks: u64,
    pub orders: u64,
    pub redemptions: u64,
    pub follows: u64,
    pub cart_adds: u64,
}

/// Sessions and their watch time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sessions {
    pub count: u64,
    pub watch_ms: i64,
}

/// Sales of one product in one currency (from the commission ledger).
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSales {
    pub currency: String,
    pub orders: u64,
    pub sales_minor: i64,
    pub commission_minor: i64,
}

/// What the store knows of one stream for its report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamFacts {
    pub grid: Option<Grid>,
    pub samples: Vec<Sample>,
    /// Events per bucket (only buckets with some), by bucket.
    pub buckets: BTreeMap<i64, BucketEvents>,
    /// Viewers' chat messages while public (rehearsal messages are not the audience's).
    pub chat_messages: u64,
    /// Viewers who wrote them.
    pub chatters: u64,
    /// Follows of the creator made while the stream was live (still following).
    pub followers_gained: u64,
    pub live: Sessions,
    pub replay: Sessions,
    /// Click-outs per product (all of the stream's, as `GET …/clicks` lists them).
    pub clicks: BTreeMap<String, u64>,
    /// Ledger per product and currency (all of the stream's, as `GET /me/earnings` sums them).
    pub sales: BTreeMap<String, Vec<ProductSales>>,
    /// Orders per currency (distinct order ids), for the stream's totals.
    pub orders: BTreeMap<String, ProductSales>,
    /// Redemptions per promo code of the stream.
    pub promos: Vec<(String, u64)>,
    /// Ledger per promo code (as the stream's creator typed it) and currency: order lines sold
    /// with that code; an order line has at most one code, so nothing counts twice.
    pub promo_sales: BTreeMap<String, Vec<ProductSales>>,
    /// "Add to cart" taps per product.
    pub cart_adds: BTreeMap<String, u64>,
    /// Milliseconds the stream was public while live.
    pub public_ms: i64,
}

/// How long an analytics write waits for another writer: samples are best effort, and the one
/// connection must not be held for long by them while the store is locked (the stream owner's
/// writes and everyone's reads wait behind it).
const ANALYTICS_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs `f` with the short busy timeout, then restores the store's.
fn briefly<T>(
    c: &mut super::db::Conn,
    f: impl FnOnce(&mut super::db::Conn) -> Result<T, Error>,
) -> Result<T, Error> {
    c.busy_timeout(ANALYTICS_BUSY_TIMEOUT)?;
    let result = f(c);
    c.busy_timeout(BUSY_TIMEOUT)?;
    result
}

fn time(s: String) -> super::db::Result<DateTime<Utc>> {
    parse_ts(Some(s))?.ok_or_else(|| corrupt("time"))
}

/// A stream's ledger grouped by the commissions column `key` (lines without one left out), then
/// currency.
fn ledger_by(
    c: &super::db::Conn,
    key: &str,
    stream: &str,
) -> super::db::Result<BTreeMap<String, Vec<ProductSales>>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {key}, currency, COUNT(DISTINCT order_id), SUM(amount_minor), SUM(commission_minor)
         FROM commissions WHERE stream_id = ?1 AND {key} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
    ))?;
    let rows = stmt.query_map([stream], |r| {
        Ok((
            r.get::<_, String>(0)?,
            ProductSales {
                currency: r.get(1)?,
                orders: r.get::<_, i64>(2)?.max(0) as u64,
                sales_minor: r.get(3)?,
                commission_minor: r.get(4)?,
            },
        ))
    })?;
    let mut out: BTreeMap<String, Vec<ProductSales>> = BTreeMap::new();
    for row in rows {
        let (k, sales) = row?;
        out.entry(k).or_default().push(sales);
    }
    Ok(out)
}

/// SQL for the bucket of the time in column `col` (with `?2` the grid's start, `?3` its step).
fn bucket_sql(dialect: Dialect, col: &str) -> String {
    match dialect {
        Dialect::Sqlite => {
            format!("CAST((julianday({col}) - julianday(?2)) * 86400000.0 / ?3 AS INTEGER)")
        }
        Dialect::Postgres => format!(
            "CAST(TRUNC(EXTRACT(EPOCH FROM CAST({col} AS TIMESTAMPTZ) - CAST(?2 AS TIMESTAMPTZ)) \
             * 1000.0 / ?3) AS BIGINT)"
        ),
    }
}

fn bucket_count(r: &super::db::Row) -> super::db::Result<(i64, u64)> {
    Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
}

impl Store {
    /// Records a sample of a live stream: the grid is set by the first one (`grid`), later ones
    /// fall in its buckets. A second sample in one bucket keeps the larger audience and the
    /// latest mode.
    pub async fn record_sample(
        &self,
        stream: &StreamId,
        grid: Grid,
        at: DateTime<Utc>,
        mode: Mode,
        players: u32,
        sockets: u32,
    ) -> Result<(), Error> {
        let stream = stream.0.clone();
        self.call(move |c| briefly(c, |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO analytics_grids (stream_id, started_at, step_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
                params![stream, ts(grid.started_at), grid.step_ms],
            )?;
            let (started_at, step_ms): (String, i64) = tx.query_row(
                "SELECT started_at, step_ms FROM analytics_grids WHERE stream_id = ?1",
                [&stream],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let grid = Grid {
                started_at: time(started_at)?,
                step_ms,
            };
            let Some(bucket) = grid.bucket(at) else {
                return Ok(());
            };
            tx.execute(
                "INSERT INTO analytics_samples (stream_id, bucket, at, mode, players, sockets)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (stream_id, bucket) DO UPDATE SET at = excluded.at, mode = excluded.mode,
                   players = CASE WHEN excluded.players > analytics_samples.players
                     THEN excluded.players ELSE analytics_samples.players END,
                   sockets = CASE WHEN excluded.sockets > analytics_samples.sockets
                     THEN excluded.sockets ELSE analytics_samples.sockets END",
                params![stream, bucket, ts(at), mode.as_str(), players, sockets],
            )?;
            tx.commit()?;
            Ok(())
        }))
        .await
    }

    /// Records player sessions (new or longer than before), at most
    /// [`MAX_SESSIONS_PER_STREAM`] per stream.
    pub async fn record_sessions(&self, spans: Vec<SessionSpan>) -> Result<(), Error> {
        if spans.is_empty() {
            return Ok(());
        }
        self.call(move |c| briefly(c, |c| {
            let tx = c.transaction()?;
            for s in &spans {
                let updated = tx.execute(
                    "UPDATE analytics_sessions SET last_at = CASE WHEN ?3 > last_at THEN ?3 ELSE last_at END,
                       watch_ms = CASE WHEN ?4 > watch_ms THEN ?4 ELSE watch_ms END
                     WHERE stream_id = ?1 AND sid = ?2",
                    params![s.stream.0, s.sid, ts(s.last_at), s.watch_ms],
                )?;
                if updated > 0 {
                    continue;
                }
                tx.execute(
                    "INSERT INTO analytics_sessions (stream_id, sid, replay, first_at, last_at, watch_ms)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 FROM streams WHERE id = ?1
                       AND (SELECT COUNT(*) FROM analytics_sessions WHERE stream_id = ?1) < ?7",
                    params![
                        s.stream.0,
                        s.sid,
                        s.replay,
                        ts(s.first_at),
                        ts(s.last_at),
                        s.watch_ms,
                        MAX_SESSIONS_PER_STREAM
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        }))
        .await
    }

    /// A creator's streams that went live within `[from, to)`, newest first, at most `limit`.
    pub async fn streams_started(
        &self,
        creator: &CreatorId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Stream>, Error> {
        let creator = creator.0.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {STREAM_COLUMNS} FROM streams
                 WHERE creator_id = ?1 AND started_at >= ?2 AND started_at < ?3
                 ORDER BY started_at DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(
                params![creator, ts(from), ts(to), limit as i64],
                stream_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Everything a stream's report is made of. `fallback` is the grid when no sample was taken
    /// (a stream that never went live has none: then there are no buckets). Without `per_step`
    /// the events are not counted per bucket (a summary needs only the totals).
    pub async fn stream_facts(
        &self,
        stream: &Stream,
        fallback: Option<Grid>,
        per_step: bool,
    ) -> Result<StreamFacts, Error> {
        let id = stream.id.0.clone();
        let creator = stream.creator_id.0.clone();
        let live_from = stream.started_at.map(ts);
        let live_to = stream.ended_at.map(ts).unwrap_or_else(|| ts(Utc::now()));
        self.read(move |c| {
            let mut f = StreamFacts {
                grid: c
                    .query_row(
                        "SELECT started_at, step_ms FROM analytics_grids WHERE stream_id = ?1",
                        [&id],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
                    )
                    .optional()?
                    .map(|(s, step_ms)| time(s).map(|started_at| Grid { started_at, step_ms }))
                    .transpose()?
                    .or(fallback),
                ..StreamFacts::default()
            };
            let mut stmt = c.prepare(
                "SELECT bucket, at, mode, players, sockets FROM analytics_samples
                 WHERE stream_id = ?1 ORDER BY bucket",
            )?;
            f.samples = stmt
                .query_map([&id], |r| {
                    Ok(Sample {
                        bucket: r.get(0)?,
                        at: time(r.get(1)?)?,
                        mode: Mode::parse(&r.get::<_, String>(2)?).ok_or_else(|| corrupt("mode"))?,
                        players: r.get(3)?,
                        sockets: r.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;

            if let Some(grid) = f.grid.filter(|_| per_step) {
                let start = ts(grid.started_at);
                // Each: the SQL (?1 the stream or creator, ?2 the grid's start, ?3 its step, ?4
                // the end of the live window where it matters) and its parameters.
                let per_bucket: [(&str, String, Vec<String>); 6] = [
                    ("chat", format!(
                        "SELECT {}, COUNT(*) FROM chat_messages WHERE stream_id = ?1 AND practice = 0
                           AND role = 'viewer' AND created_at >= ?2 GROUP BY 1", bucket_sql(c.dialect(), "created_at")),
                        vec![id.clone()]),
                    ("clicks", format!(
                        "SELECT {}, COUNT(*) FROM clicks WHERE stream_id = ?1 AND at >= ?2 GROUP BY 1",
                        bucket_sql(c.dialect(), "at")),
                        vec![id.clone()]),
                    ("orders", format!(
                        "SELECT {}, COUNT(DISTINCT order_id) FROM commissions WHERE stream_id = ?1
                           AND at >= ?2 GROUP BY 1", bucket_sql(c.dialect(), "at")),
                        vec![id.clone()]),
                    ("redemptions", format!(
                        "SELECT {}, COUNT(*) FROM promo_redemptions r JOIN promos p ON p.id = r.promo_id
                           WHERE p.stream_id = ?1 AND r.created_at >= ?2 GROUP BY 1", bucket_sql(c.dialect(), "r.created_at")),
                        vec![id.clone()]),
                    ("follows", format!(
                        "SELECT {}, COUNT(*) FROM follows WHERE creator_id = ?1 AND created_at >= ?2
                           AND created_at < ?4 GROUP BY 1", bucket_sql(c.dialect(), "created_at")),
                        vec![creator.clone(), live_to.clone()]),
                    ("cart_adds", format!(
                        "SELECT {}, COUNT(*) FROM cart_adds WHERE stream_id = ?1 AND at >= ?2 GROUP BY 1",
                        bucket_sql(c.dialect(), "at")),
                        vec![id.clone()]),
                ];
                for (what, sql, args) in per_bucket {
                    let mut stmt = c.prepare(&sql)?;
                    let rows = match args.as_slice() {
                        [who, until] => stmt.query_map(
                            params![who, start, grid.step_ms, until],
                            bucket_count,
                        )?,
                        [who, ..] => stmt.query_map(params![who, start, grid.step_ms], bucket_count)?,
                        [] => continue,
                    };
                    for row in rows {
                        let (bucket, n) = row?;
                        let e = f.buckets.entry(bucket).or_default();
                        match what {
                            "chat" => e.chat += n,
                            "clicks" => e.clicks += n,
                            "orders" => e.orders += n,
                            "redemptions" => e.redemptions += n,
                            "cart_adds" => e.cart_adds += n,
                            _ => e.follows += n,
                        }
                    }
                }
            }

            (f.chat_messages, f.chatters) = c.query_row(
                "SELECT COUNT(*), COUNT(DISTINCT handle) FROM chat_messages
                 WHERE stream_id = ?1 AND practice = 0 AND role = 'viewer'",
                [&id],
                |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?.max(0) as u64)),
            )?;
            if let Some(from) = &live_from {
                f.followers_gained = c
                    .query_row(
                        "SELECT COUNT(*) FROM follows WHERE creator_id = ?1 AND created_at >= ?2 AND created_at < ?3",
                        params![creator, from, live_to],
                        |r| r.get::<_, i64>(0),
                    )?
                    .max(0) as u64;
            }
            let mut stmt = c.prepare(
                "SELECT replay, COUNT(*), COALESCE(SUM(watch_ms), 0) FROM analytics_sessions
                 WHERE stream_id = ?1 GROUP BY 1",
            )?;
            let rows = stmt.query_map([&id], |r| {
                Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (replay, count, watch_ms) = row?;
                let s = Sessions {
                    count: count.max(0) as u64,
                    watch_ms,
                };
                if replay {
                    f.replay = s;
                } else {
                    f.live = s;
                }
            }
            let mut stmt = c.prepare(
                "SELECT product_id, COUNT(*) FROM clicks WHERE stream_id = ?1 GROUP BY 1",
            )?;
            f.clicks = stmt
                .query_map([&id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
                .collect::<Result<_, _>>()?;
            f.sales = ledger_by(c, "product_id", &id)?;
            let mut stmt = c.prepare(
                "SELECT currency, COUNT(DISTINCT order_id), SUM(amount_minor), SUM(commission_minor)
                 FROM commissions WHERE stream_id = ?1 GROUP BY 1 ORDER BY 1",
            )?;
            f.orders = stmt
                .query_map([&id], |r| {
                    let currency: String = r.get(0)?;
                    Ok((
                        currency.clone(),
                        ProductSales {
                            currency,
                            orders: r.get::<_, i64>(1)?.max(0) as u64,
                            sales_minor: r.get(2)?,
                            commission_minor: r.get(3)?,
                        },
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt = c.prepare(
                "SELECT p.code, (SELECT COUNT(*) FROM promo_redemptions r WHERE r.promo_id = p.id)
                 FROM promos p WHERE p.stream_id = ?1 ORDER BY p.id",
            )?;
            f.promos = stmt
                .query_map([&id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
                .collect::<Result<_, _>>()?;
            f.promo_sales = ledger_by(c, "promo_code", &id)?;
            let mut stmt = c.prepare(
                "SELECT product_id, COUNT(*) FROM cart_adds WHERE stream_id = ?1 GROUP BY 1",
            )?;
            f.cart_adds = stmt
                .query_map([&id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
                .collect::<Result<_, _>>()?;
            let now = Utc::now();
            let mut stmt = c.prepare(
                "SELECT started_at, ended_at FROM public_intervals WHERE stream_id = ?1",
            )?;
            let rows = stmt.query_map([&id], |r| {
                Ok((time(r.get(0)?)?, parse_ts(r.get(1)?)?))
            })?;
            for row in rows {
                let (start, end) = row?;
                f.public_ms += (end.unwrap_or(now) - start).num_milliseconds().max(0);
            }
            Ok(f)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;

    #[test]
    fn times_fall_in_the_buckets_of_the_grid() {
        let start: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let grid = Grid {
            started_at: start,
            step_ms: 10_000,
        };
        let at = |s: i64| start + chrono::TimeDelta::milliseconds(s);
        assert_eq!(grid.bucket(at(-1)), None);
        assert_eq!(grid.bucket(at(0)), Some(0));
        assert_eq!(grid.bucket(at(9_999)), Some(0));
        assert_eq!(grid.bucket(at(10_000)), Some(1));
        assert_eq!(grid.start_of(3), at(30_000));
    }

    on_both_backends! {
        async fn samples_and_sessions_are_kept_and_counted_once() {
            let (_dir, store, s) = store_with_stream("alice").await;
            // The store keeps milliseconds.
            let start = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
            let grid = Grid {
                started_at: start,
                step_ms: 10_000,
            };
            let at = |ms: i64| start + chrono::TimeDelta::milliseconds(ms);
            store
                .record_sample(&s.id, grid, at(1_000), Mode::Practice, 0, 0)
                .await
                .unwrap();
            store
                .record_sample(&s.id, grid, at(11_000), Mode::Public, 3, 1)
                .await
                .unwrap();
            // A second sample in the same bucket keeps the larger audience.
            store
                .record_sample(&s.id, grid, at(12_000), Mode::Public, 2, 4)
                .await
                .unwrap();
            // Another step later does not move the grid.
            let other = Grid {
                started_at: at(5_000),
                step_ms: 1_000,
            };
            store
                .record_sample(&s.id, other, at(21_000), Mode::Public, 1, 1)
                .await
                .unwrap();
            let span = |sid: &str, replay, ms| SessionSpan {
                stream: s.id.clone(),
                sid: sid.into(),
                replay,
                first_at: at(0),
                last_at: at(ms),
                watch_ms: ms + 2_000,
            };
            store
                .record_sessions(vec![span("a", false, 4_000), span("b", false, 1_000)])
                .await
                .unwrap();
            store
                .record_sessions(vec![span("a", false, 8_000), span("r", true, 0)])
                .await
                .unwrap();
            let f = store.stream_facts(&s, None, true).await.unwrap();
            assert_eq!(f.grid, Some(grid));
            let got: Vec<_> = f
                .samples
                .iter()
                .map(|x| (x.bucket, x.mode, x.players, x.sockets))
                .collect();
            assert_eq!(
                got,
                [
                    (0, Mode::Practice, 0, 0),
                    (1, Mode::Public, 3, 4),
                    (2, Mode::Public, 1, 1)
                ]
            );
            assert_eq!(
                f.live,
                Sessions {
                    count: 2,
                    watch_ms: 10_000 + 3_000
                }
            );
            assert_eq!(
                f.replay,
                Sessions {
                    count: 1,
                    watch_ms: 2_000
                }
            );
        }
    }
}
