//! Commerce: associate tags, share links, attribution sessions, click-outs, purchases with their
//! commission ledger, and the intervals a stream was public while live (creator levels).
use super::db::{Conn, OptionalExtension, params};
use chrono::{DateTime, Utc};

use super::{Error, Store, corrupt, parse_ts, ts};
use crate::store::model::{CreatorId, StreamId};

/// A share link `/s/{code}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareLink {
    pub code: String,
    pub creator_id: CreatorId,
    pub stream_id: StreamId,
    pub tag: String,
    pub created_at: DateTime<Utc>,
}

/// An attribution session, started by following a share link.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributionSession {
    pub id: String,
    pub creator_id: CreatorId,
    pub stream_id: StreamId,
    pub link_code: String,
    pub created_at: DateTime<Utc>,
}

/// One logged product click-out.
#[derive(Debug, Clone, PartialEq)]
pub struct Click {
    pub product_id: String,
    pub session_id: Option<String>,
    pub focus_product_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// One ledger entry (an attributed order line); money in minor units of `currency`.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerLine {
    pub product_id: String,
    pub category: Option<String>,
    pub currency: String,
    pub amount_minor: i64,
    pub rate: String,
    pub commission_minor: i64,
    /// The stream's promo code the line was sold with.
    pub promo_code: Option<String>,
}

/// A reported order, as it will be stored.
#[derive(Debug, Clone)]
pub struct NewPurchase {
    pub order_id: String,
    /// The order as parsed, re-serialised: the same order reported again must match it.
    pub request: String,
    /// `(creator, stream)` when attributed.
    pub attributed: Option<(CreatorId, StreamId)>,
    pub session_id: Option<String>,
    pub at: DateTime<Utc>,
    /// Answered now and to every replay.
    pub result: String,
    /// Ledger lines (only when attributed).
    pub lines: Vec<LedgerLine>,
}

/// What storing a purchase did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    New,
    /// The same order was reported before: its stored result.
    Duplicate(String),
    /// The order id was reported before with different content.
    Clash,
}

/// Sales and commissions of one group (a stream, a category, or all) in one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct EarningsRow {
    /// Stream id or category; empty for totals (and for products without a category).
    pub key: String,
    pub currency: String,
    pub sales_minor: i64,
    pub commission_minor: i64,
    pub orders: u64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Earnings {
    pub totals: Vec<EarningsRow>,
    pub by_stream: Vec<EarningsRow>,
    pub by_category: Vec<EarningsRow>,
    /// Lines sold with a promo code, per code (as its creator typed it); lines without one are
    /// not here.
    pub by_code: Vec<EarningsRow>,
}

/// Opens or closes `stream`'s public interval to match its stored state: open while it is live
/// and public, closed otherwise. Called after every change of state or mode. An interval closed
/// in the same millisecond it opens again is reopened (one continuous interval).
pub(super) fn sync_public_interval(c: &Conn, stream: &str) -> super::db::Result<()> {
    let now = ts(Utc::now());
    c.execute(
        "INSERT INTO public_intervals (stream_id, started_at)
         SELECT id, ?2 FROM streams WHERE id = ?1 AND state = 'live' AND mode = 'public'
           AND NOT EXISTS (SELECT 1 FROM public_intervals WHERE stream_id = ?1 AND ended_at IS NULL)
         ON CONFLICT (stream_id, started_at) DO UPDATE SET ended_at = NULL",
        params![stream, now],
    )?;
    c.execute(
        "UPDATE public_intervals SET ended_at = ?2 WHERE stream_id = ?1 AND ended_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM streams WHERE id = ?1 AND state = 'live' AND mode = 'public')",
        params![stream, now],
    )?;
    Ok(())
}

fn time(s: String) -> super::db::Result<DateTime<Utc>> {
    parse_ts(Some(s))?.ok_or_else(|| corrupt("time"))
}

impl Store {
    /// Sets a creator's associate tag; false when another creator has it.
    pub async fn set_associate_tag(&self, creator: &CreatorId, tag: &str) -> Result<bool, Error> {
        let (creator, tag) = (creator.0.clone(), tag.to_string());
        self.call(move |c| {
            let taken: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM associate_tags WHERE tag = ?1 AND creator_id != ?2)",
                params![tag, creator],
                |r| r.get(0),
            )?;
            if taken {
                return Ok(false);
            }
            c.execute(
                "INSERT INTO associate_tags (creator_id, tag, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(creator_id) DO UPDATE SET tag = excluded.tag, updated_at = excluded.updated_at",
                params![creator, tag, ts(Utc::now())],
            )?;
            Ok(true)
        })
        .await
    }

    pub async fn associate_tag(&self, creator: &CreatorId) -> Result<Option<String>, Error> {
        let creator = creator.0.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT tag FROM associate_tags WHERE creator_id = ?1",
                [creator],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    pub async fn creator_by_tag(&self, tag: &str) -> Result<Option<CreatorId>, Error> {
        let tag = tag.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT creator_id FROM associate_tags WHERE tag = ?1",
                [tag],
                |r| Ok(CreatorId(r.get(0)?)),
            )
            .optional()?)
        })
        .await
    }

    pub async fn create_share_link(&self, link: ShareLink) -> Result<(), Error> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO share_links (code, creator_id, stream_id, tag, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![link.code, link.creator_id.0, link.stream_id.0, link.tag, ts(link.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn share_link(&self, code: &str) -> Result<Option<ShareLink>, Error> {
        let code = code.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT code, creator_id, stream_id, tag, created_at FROM share_links WHERE code = ?1",
                [code],
                |r| {
                    Ok(ShareLink {
                        code: r.get(0)?,
                        creator_id: CreatorId(r.get(1)?),
                        stream_id: StreamId(r.get(2)?),
                        tag: r.get(3)?,
                        created_at: time(r.get(4)?)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    /// The newest share link of a stream (what its watch page's share button gives out).
    pub async fn latest_share_link(&self, stream: &StreamId) -> Result<Option<String>, Error> {
        let stream = stream.0.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT code FROM share_links WHERE stream_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [stream],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    pub async fn start_session(&self, s: AttributionSession) -> Result<(), Error> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO attribution_sessions (id, creator_id, stream_id, link_code, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.id, s.creator_id.0, s.stream_id.0, s.link_code, ts(s.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn session(&self, id: &str) -> Result<Option<AttributionSession>, Error> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, creator_id, stream_id, link_code, created_at FROM attribution_sessions WHERE id = ?1",
                [id],
                |r| {
                    Ok(AttributionSession {
                        id: r.get(0)?,
                        creator_id: CreatorId(r.get(1)?),
                        stream_id: StreamId(r.get(2)?),
                        link_code: r.get(3)?,
                        created_at: time(r.get(4)?)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    pub async fn log_click(&self, stream: &StreamId, click: Click) -> Result<(), Error> {
        let stream = stream.0.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO clicks (stream_id, product_id, session_id, focus_product_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![stream, click.product_id, click.session_id, click.focus_product_id, ts(click.at)],
            )?;
            Ok(())
        })
        .await
    }

    /// A stream's latest click-outs, newest first.
    pub async fn clicks(&self, stream: &StreamId, limit: usize) -> Result<Vec<Click>, Error> {
        let stream = stream.0.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT product_id, session_id, focus_product_id, at FROM clicks
                 WHERE stream_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![stream, limit as i64], |r| {
                Ok(Click {
                    product_id: r.get(0)?,
                    session_id: r.get(1)?,
                    focus_product_id: r.get(2)?,
                    at: time(r.get(3)?)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The creator's stream that was public (while live) most recently within `[from, to]`.
    pub async fn latest_public_stream(
        &self,
        creator: &CreatorId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<StreamId>, Error> {
        let creator = creator.0.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT pi.stream_id FROM public_intervals pi JOIN streams s ON s.id = pi.stream_id
                 WHERE s.creator_id = ?1 AND pi.started_at <= ?3
                   AND (pi.ended_at IS NULL OR pi.ended_at >= ?2)
                 ORDER BY COALESCE(pi.ended_at, ?3) DESC, pi.started_at DESC, pi.rowid DESC LIMIT 1",
                params![creator, ts(from), ts(to)],
                |r| Ok(StreamId(r.get(0)?)),
            )
            .optional()?)
        })
        .await
    }

    /// Stores a purchase and its ledger lines at once, unless its order id is known.
    pub async fn record_purchase(&self, p: NewPurchase) -> Result<Recorded, Error> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let known: Option<(String, String)> = tx
                .query_row(
                    "SELECT request, result FROM purchases WHERE order_id = ?1",
                    [&p.order_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((request, result)) = known {
                return Ok(if request == p.request {
                    Recorded::Duplicate(result)
                } else {
                    Recorded::Clash
                });
            }
            let (creator, stream) = match &p.attributed {
                Some((c, s)) => (Some(c.0.clone()), Some(s.0.clone())),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO purchases (order_id, request, creator_id, stream_id, session_id, at, received_at, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![p.order_id, p.request, creator, stream, p.session_id, ts(p.at), ts(Utc::now()), p.result],
            )?;
            if let (Some(creator), Some(stream)) = (&creator, &stream) {
                for (line, l) in p.lines.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO commissions (order_id, line, creator_id, stream_id, product_id, category,
                           currency, amount_minor, rate, commission_minor, at, promo_code)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                        params![
                            p.order_id, line as i64, creator, stream, l.product_id, l.category,
                            l.currency, l.amount_minor, l.rate, l.commission_minor, ts(p.at),
                            l.promo_code
                        ],
                    )?;
                }
            }
            tx.commit()?;
            Ok(Recorded::New)
        })
        .await
    }

    /// A creator's ledger over `[from, to)` (by the order's time), per currency.
    pub async fn earnings(
        &self,
        creator: &CreatorId,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Earnings, Error> {
        let creator = creator.0.clone();
        let from = from.map(ts).unwrap_or_else(|| "0000".into());
        let to = to.map(ts).unwrap_or_else(|| "9999".into());
        self.read(move |c| {
            let group = |key: &str| -> super::db::Result<Vec<EarningsRow>> {
                let mut stmt = c.prepare(&format!(
                    "SELECT {key}, currency, SUM(amount_minor), SUM(commission_minor), COUNT(DISTINCT order_id)
                     FROM commissions WHERE creator_id = ?1 AND at >= ?2 AND at < ?3 AND {key} IS NOT NULL
                     GROUP BY 1, 2 ORDER BY MAX(at) DESC, 1, 2"
                ))?;
                let rows = stmt.query_map(params![creator, from, to], |r| {
                    Ok(EarningsRow {
                        key: r.get(0)?,
                        currency: r.get(1)?,
                        sales_minor: r.get(2)?,
                        commission_minor: r.get(3)?,
                        orders: r.get::<_, i64>(4)?.max(0) as u64,
                    })
                })?;
                rows.collect()
            };
            Ok(Earnings {
                totals: group("''")?,
                by_stream: group("stream_id")?,
                by_category: group("COALESCE(category, '')")?,
                by_code: group("promo_code")?,
            })
        })
        .await
    }

    /// Minutes a creator's streams were public while live within `[since, now]`.
    pub async fn public_minutes(
        &self,
        creator: &CreatorId,
        since: DateTime<Utc>,
    ) -> Result<f64, Error> {
        let creator = creator.0.clone();
        let now = Utc::now();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT pi.started_at, pi.ended_at FROM public_intervals pi JOIN streams s ON s.id = pi.stream_id
                 WHERE s.creator_id = ?1 AND (pi.ended_at IS NULL OR pi.ended_at >= ?2)",
            )?;
            let rows = stmt.query_map(params![creator, ts(since)], |r| {
                Ok((time(r.get(0)?)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut ms = 0i64;
            for row in rows {
                let (start, end) = row?;
                let end = match end {
                    Some(e) => time(e)?,
                    None => now,
                };
                let (start, end) = (start.max(since), end.min(now));
                ms += (end - start).num_milliseconds().max(0);
            }
            Ok(ms as f64 / 60_000.0)
        })
        .await
    }

    /// Orders attributed to a creator placed since `since`.
    pub async fn attributed_orders(
        &self,
        creator: &CreatorId,
        since: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let creator = creator.0.clone();
        self.read(move |c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM purchases WHERE creator_id = ?1 AND at >= ?2",
                params![creator, ts(since)],
                |r| r.get(0),
            )?;
            Ok(n.max(0) as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;
    use crate::store::{Mode, testing};

    async fn stream(store: &Store, creator: &CreatorId, mode: Mode) -> StreamId {
        testing::stream(store, creator, mode).await.id
    }

    async fn open_intervals(store: &Store, id: &StreamId) -> i64 {
        let id = id.0.clone();
        store
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM public_intervals WHERE stream_id = ?1 AND ended_at IS NULL",
                    [id],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap()
    }

    on_both_backends! {
        async fn only_time_public_while_live_is_an_interval() {
            let (_dir, store) = testing::temp_store().await;
            let (alice, _) = store.create_creator("alice").await.unwrap();
            let practice = stream(&store, &alice.id, Mode::Practice).await;
            store.mark_live(&practice).await.unwrap();
            assert_eq!(open_intervals(&store, &practice).await, 0, "practice");
            store.set_mode(&practice, Mode::Public).await.unwrap();
            assert_eq!(
                open_intervals(&store, &practice).await,
                1,
                "flipped public while live"
            );
            store.set_mode(&practice, Mode::Public).await.unwrap();
            assert_eq!(
                open_intervals(&store, &practice).await,
                1,
                "no second interval"
            );
            store.set_mode(&practice, Mode::Practice).await.unwrap();
            assert_eq!(
                open_intervals(&store, &practice).await,
                0,
                "back to practice"
            );
            store.mark_ended(&practice).await.unwrap();

            let public = stream(&store, &alice.id, Mode::Public).await;
            assert_eq!(
                open_intervals(&store, &public).await,
                0,
                "public but not live"
            );
            store.mark_live(&public).await.unwrap();
            assert_eq!(open_intervals(&store, &public).await, 1);
            store.mark_ended(&public).await.unwrap();
            assert_eq!(
                open_intervals(&store, &public).await,
                0,
                "closed at the end"
            );
            store.set_mode(&public, Mode::Public).await.unwrap();
            assert_eq!(
                open_intervals(&store, &public).await,
                0,
                "not live any more"
            );
            let since = Utc::now() - chrono::TimeDelta::days(1);
            assert!(store.public_minutes(&alice.id, since).await.unwrap() >= 0.0);
            assert_eq!(
                store
                    .latest_public_stream(&alice.id, since, Utc::now())
                    .await
                    .unwrap(),
                Some(public)
            );
        }
    }

    on_both_backends! {
        async fn an_order_is_stored_once_and_a_clash_is_told_apart() {
            let (_dir, store) = testing::temp_store().await;
            let (alice, _) = store.create_creator("alice").await.unwrap();
            let s = stream(&store, &alice.id, Mode::Public).await;
            let purchase = |request: &str| NewPurchase {
                order_id: "o-1".into(),
                request: request.into(),
                attributed: Some((alice.id.clone(), s.clone())),
                session_id: None,
                at: Utc::now(),
                result: "{\"first\":true}".into(),
                lines: vec![LedgerLine {
                    product_id: "p".into(),
                    category: Some("beauty".into()),
                    currency: "EUR".into(),
                    amount_minor: 1999,
                    rate: "0.04".into(),
                    commission_minor: 80,
                    promo_code: Some("SPRING".into()),
                }],
            };
            assert_eq!(
                store.record_purchase(purchase("a")).await.unwrap(),
                Recorded::New
            );
            assert_eq!(
                store.record_purchase(purchase("a")).await.unwrap(),
                Recorded::Duplicate("{\"first\":true}".into())
            );
            assert_eq!(
                store.record_purchase(purchase("b")).await.unwrap(),
                Recorded::Clash
            );
            let e = store.earnings(&alice.id, None, None).await.unwrap();
            assert_eq!(e.totals.len(), 1);
            assert_eq!(
                (
                    e.totals[0].sales_minor,
                    e.totals[0].commission_minor,
                    e.totals[0].orders
                ),
                (1999, 80, 1)
            );
            assert_eq!(e.by_category[0].key, "beauty");
            assert_eq!(e.by_stream[0].key, s.0);
            assert_eq!(e.by_code[0].key, "SPRING");
            assert_eq!(
                store
                    .attributed_orders(&alice.id, Utc::now() - chrono::TimeDelta::days(1))
                    .await
                    .unwrap(),
                1
            );
        }
    }
}
