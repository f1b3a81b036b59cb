//! Flash sales (their claims counted in one statement, so that exactly `quantity` succeed under
//! any concurrency) and auctions (their bid log, which their result is replayed from).
use super::db::{OptionalExtension, Row, params};
use chrono::{DateTime, SubsecRound, Utc};

use super::social::{NOTIFICATION_SELECT, notification_from_row};
use super::{Error, Store, corrupt, parse_ts, ts};
use crate::store::model::{
    Announcement, AuctionId, Notification, ProductId, ReservationId, SaleId, StreamId, ViewerId,
};

/// A flash sale as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FlashSale {
    pub id: SaleId,
    pub stream_id: StreamId,
    pub product_id: ProductId,
    pub title: String,
    pub currency: String,
    pub list_price_minor: i64,
    pub price_minor: i64,
    pub quantity: u32,
    pub per_viewer_limit: u32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// `starts_at` and `ends_at` on the stream's `PROGRAM-DATE-TIME` clock (its markers' dates).
    pub starts_pdt: DateTime<Utc>,
    pub ends_pdt: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When a claim first took the last unit (server time, and the picture's date then): its
    /// marker ends there.
    pub sold_out_at: Option<DateTime<Utc>>,
    pub sold_out_pdt: Option<DateTime<Utc>>,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// One unit is held for the viewer until `expires_at`; `remaining` after it.
    Reserved {
        reservation: ReservationId,
        expires_at: DateTime<Utc>,
        remaining: u32,
    },
    NotStarted,
    Over,
    SoldOut,
    /// The viewer holds `per_viewer_limit` units already.
    OverLimit,
    Unknown,
}

/// What the shop's confirmation of a reservation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    Confirmed {
        sale: SaleId,
        order_id: String,
    },
    /// Confirmed before with this order (the same call again is answered alike).
    Already {
        sale: SaleId,
        order_id: String,
    },
    /// Expired before the shop confirmed it: the unit went back to the sale.
    Expired,
    Unknown,
}

const SALE_COLUMNS: &str = "id, stream_id, product_id, title, currency, list_price_minor, \
    price_minor, quantity, per_viewer_limit, starts_at, ends_at, closed_at, created_at, starts_pdt, \
    ends_pdt, sold_out_at, sold_out_pdt";

/// Claims that hold a unit at `?now` (confirmed, or reserved and not expired).
const HOLDING: &str = "(state = 'confirmed' OR (state = 'reserved' AND expires_at > ?2))";

fn sale_from_row(r: &Row) -> super::db::Result<FlashSale> {
    let count = |i: usize| -> super::db::Result<u32> {
        u32::try_from(r.get::<_, i64>(i)?).map_err(|_| corrupt("count"))
    };
    Ok(FlashSale {
        id: SaleId(r.get(0)?),
        stream_id: StreamId(r.get(1)?),
        product_id: ProductId(r.get(2)?),
        title: r.get(3)?,
        currency: r.get(4)?,
        list_price_minor: r.get(5)?,
        price_minor: r.get(6)?,
        quantity: count(7)?,
        per_viewer_limit: count(8)?,
        starts_at: parse_ts(Some(r.get(9)?))?.ok_or_else(|| corrupt("starts_at"))?,
        ends_at: parse_ts(Some(r.get(10)?))?.ok_or_else(|| corrupt("ends_at"))?,
        closed_at: parse_ts(r.get(11)?)?,
        created_at: parse_ts(Some(r.get(12)?))?.ok_or_else(|| corrupt("created_at"))?,
        starts_pdt: parse_ts(Some(r.get(13)?))?.ok_or_else(|| corrupt("starts_pdt"))?,
        ends_pdt: parse_ts(Some(r.get(14)?))?.ok_or_else(|| corrupt("ends_pdt"))?,
        sold_out_at: parse_ts(r.get(15)?)?,
        sold_out_pdt: parse_ts(r.get(16)?)?,
    })
}

fn holding(c: &super::db::Conn, sale: &str, now: &str) -> super::db::Result<u32> {
    c.query_row(
        &format!("SELECT COUNT(*) FROM flash_sale_claims WHERE sale_id = ?1 AND {HOLDING}"),
        params![sale, now],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// An auction as stored; `rules` is the JSON of `auction::Rules`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAuction {
    pub id: AuctionId,
    pub stream_id: StreamId,
    pub product_id: ProductId,
    pub title: String,
    pub currency: String,
    pub rules: String,
    pub closed_at: Option<DateTime<Utc>>,
    /// Once closed with a winner: (handle, viewer id, amount).
    pub winner: Option<(String, ViewerId, i64)>,
    pub created_at: DateTime<Utc>,
}

const AUCTION_COLUMNS: &str = "id, stream_id, product_id, title, currency, rules, closed_at, \
    winner_handle, winner_viewer, amount_minor, created_at";

fn auction_from_row(r: &Row) -> super::db::Result<StoredAuction> {
    let winner = match (
        r.get::<_, Option<String>>(7)?,
        r.get::<_, Option<String>>(8)?,
        r.get::<_, Option<i64>>(9)?,
    ) {
        (Some(h), Some(v), Some(a)) => Some((h, ViewerId(v), a)),
        _ => None,
    };
    Ok(StoredAuction {
        id: AuctionId(r.get(0)?),
        stream_id: StreamId(r.get(1)?),
        product_id: ProductId(r.get(2)?),
        title: r.get(3)?,
        currency: r.get(4)?,
        rules: r.get(5)?,
        closed_at: parse_ts(r.get(6)?)?,
        winner,
        created_at: parse_ts(Some(r.get(10)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

impl Store {
    /// Stores a new sale unless its stream has `max_open` sales not yet over at `now`: false then.
    pub async fn create_flash_sale(
        &self,
        sale: FlashSale,
        max_open: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let open: i64 = tx.query_row(
                "SELECT COUNT(*) FROM flash_sales WHERE stream_id = ?1 AND closed_at IS NULL AND ends_at > ?2",
                params![sale.stream_id.0, ts(now)],
                |r| r.get(0),
            )?;
            if open >= i64::from(max_open) {
                return Ok(false);
            }
            tx.execute(
                &format!("INSERT INTO flash_sales ({SALE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
                params![
                    sale.id.0,
                    sale.stream_id.0,
                    sale.product_id.0,
                    sale.title,
                    sale.currency,
                    sale.list_price_minor,
                    sale.price_minor,
                    sale.quantity,
                    sale.per_viewer_limit,
                    ts(sale.starts_at),
                    ts(sale.ends_at),
                    sale.closed_at.map(ts),
                    ts(sale.created_at),
                    ts(sale.starts_pdt),
                    ts(sale.ends_pdt),
                    sale.sold_out_at.map(ts),
                    sale.sold_out_pdt.map(ts),
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// A sale of `stream` and the units held at `now`.
    pub async fn flash_sale(
        &self,
        stream: &StreamId,
        id: &SaleId,
        now: DateTime<Utc>,
    ) -> Result<Option<(FlashSale, u32)>, Error> {
        let (stream, id) = (stream.clone(), id.clone());
        self.read(move |c| {
            let sale = c
                .query_row(
                    &format!(
                        "SELECT {SALE_COLUMNS} FROM flash_sales WHERE id = ?1 AND stream_id = ?2"
                    ),
                    params![id.0, stream.0],
                    sale_from_row,
                )
                .optional()?;
            Ok(match sale {
                Some(s) => {
                    let held = holding(c, &s.id.0, &ts(now))?;
                    Some((s, held))
                }
                None => None,
            })
        })
        .await
    }

    /// Claims one unit for `viewer` at `now`, held until `now + ttl`: one transaction that
    /// checks the window, the stock and the viewer's limit and inserts, so that concurrent claims
    /// can never take more than the quantity.
    pub async fn claim_flash_sale(
        &self,
        id: &SaleId,
        viewer: &ViewerId,
        now: DateTime<Utc>,
        ttl: chrono::TimeDelta,
    ) -> Result<Claim, Error> {
        let (id, viewer) = (id.clone(), viewer.clone());
        self.call(move |c| {
            let tx = c.transaction_with_behavior(super::db::TransactionBehavior::Immediate)?;
            let now_s = ts(now);
            let reservation = ReservationId::generate();
            // Stored to the millisecond: the claimer is told the expiry the server applies (a
            // later one by a fraction of a millisecond was announced as passed before it was).
            let expires_at = (now + ttl).trunc_subsecs(3);
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO flash_sale_claims (id, sale_id, viewer_id, state, created_at, expires_at)
                     SELECT ?3, s.id, ?4, 'reserved', ?2, ?5 FROM flash_sales s
                     WHERE s.id = ?1 AND s.closed_at IS NULL AND s.starts_at <= ?2 AND s.ends_at > ?2
                       AND (SELECT COUNT(*) FROM flash_sale_claims WHERE sale_id = s.id AND {HOLDING}) < s.quantity
                       AND (SELECT COUNT(*) FROM flash_sale_claims WHERE sale_id = s.id AND viewer_id = ?4 AND {HOLDING}) < s.per_viewer_limit"
                ),
                params![id.0, now_s, reservation.0, viewer.0, ts(expires_at)],
            )?;
            let sale = tx
                .query_row(
                    &format!("SELECT {SALE_COLUMNS} FROM flash_sales WHERE id = ?1"),
                    [&id.0],
                    sale_from_row,
                )
                .optional()?;
            let Some(sale) = sale else {
                return Ok(Claim::Unknown);
            };
            let held = holding(&tx, &id.0, &now_s)?;
            let outcome = if inserted == 1 {
                Claim::Reserved {
                    reservation,
                    expires_at,
                    remaining: sale.quantity.saturating_sub(held),
                }
            } else if sale.closed_at.is_some() || now >= sale.ends_at {
                Claim::Over
            } else if now < sale.starts_at {
                Claim::NotStarted
            } else if held >= sale.quantity {
                Claim::SoldOut
            } else {
                Claim::OverLimit
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    /// The shop confirms a reservation with its order at `now`.
    pub async fn confirm_reservation(
        &self,
        id: &ReservationId,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Confirm, Error> {
        let (id, order_id) = (id.clone(), order_id.to_string());
        self.call(move |c| {
            let tx = c.transaction_with_behavior(super::db::TransactionBehavior::Immediate)?;
            let row: Option<(String, String, String, Option<String>)> = tx
                .query_row(
                    "SELECT sale_id, state, expires_at, order_id FROM flash_sale_claims WHERE id = ?1",
                    [&id.0],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((sale, state, expires_at, stored_order)) = row else {
                return Ok(Confirm::Unknown);
            };
            let sale = SaleId(sale);
            let outcome = match state.as_str() {
                "confirmed" => Confirm::Already {
                    sale,
                    order_id: stored_order.unwrap_or_default(),
                },
                "reserved" if expires_at > ts(now) => {
                    tx.execute(
                        "UPDATE flash_sale_claims SET state = 'confirmed', confirmed_at = ?2, order_id = ?3 WHERE id = ?1",
                        params![id.0, ts(now), order_id],
                    )?;
                    Confirm::Confirmed { sale, order_id }
                }
                _ => {
                    tx.execute(
                        "UPDATE flash_sale_claims SET state = 'expired' WHERE id = ?1",
                        [&id.0],
                    )?;
                    Confirm::Expired
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    /// Marks the sale's reservations that expired by `now` (they already count no more); how many.
    pub async fn expire_reservations(
        &self,
        sale: &SaleId,
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        let sale = sale.clone();
        self.call(move |c| {
            Ok(c.execute(
                "UPDATE flash_sale_claims SET state = 'expired' WHERE sale_id = ?1 AND state = 'reserved' AND expires_at <= ?2",
                params![sale.0, ts(now)],
            )?)
        })
        .await
    }

    /// When the sale's next reservation expires, if one is pending.
    pub async fn next_expiry(&self, sale: &SaleId) -> Result<Option<DateTime<Utc>>, Error> {
        let sale = sale.clone();
        self.read(move |c| {
            let next: Option<String> = c.query_row(
                "SELECT MIN(expires_at) FROM flash_sale_claims WHERE sale_id = ?1 AND state = 'reserved'",
                [&sale.0],
                |r| r.get(0),
            )?;
            Ok(parse_ts(next)?)
        })
        .await
    }

    /// Closes a sale before its end (its stream ended).
    pub async fn close_flash_sale(&self, sale: &SaleId, now: DateTime<Utc>) -> Result<(), Error> {
        let sale = sale.clone();
        self.call(move |c| {
            c.execute(
                "UPDATE flash_sales SET closed_at = ?2 WHERE id = ?1 AND closed_at IS NULL AND ends_at > ?2",
                params![sale.0, ts(now)],
            )?;
            Ok(())
        })
        .await
    }

    /// Records that the sale sold out at `at` (picture date `pdt`), the first time only: true then.
    pub async fn mark_sold_out(
        &self,
        sale: &SaleId,
        at: DateTime<Utc>,
        pdt: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let sale = sale.clone();
        self.call(move |c| {
            Ok(c.execute(
                "UPDATE flash_sales SET sold_out_at = ?2, sold_out_pdt = ?3 WHERE id = ?1 AND sold_out_at IS NULL",
                params![sale.0, ts(at), ts(pdt)],
            )? == 1)
        })
        .await
    }

    /// The viewer who holds a reservation.
    pub async fn claimer(&self, reservation: &ReservationId) -> Result<Option<ViewerId>, Error> {
        let reservation = reservation.clone();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT viewer_id FROM flash_sale_claims WHERE id = ?1",
                [&reservation.0],
                |r| r.get(0).map(ViewerId),
            )
            .optional()?)
        })
        .await
    }

    /// The stream's sales not over at `now`, oldest first.
    pub async fn open_flash_sales(
        &self,
        stream: &StreamId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SaleId>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id FROM flash_sales WHERE stream_id = ?1 AND closed_at IS NULL AND ends_at > ?2 ORDER BY created_at",
            )?;
            let rows = stmt.query_map(params![stream.0, ts(now)], |r| r.get(0).map(SaleId))?;
            Ok(rows.collect::<super::db::Result<Vec<_>>>()?)
        })
        .await
    }

    /// The stream's auctions not closed, oldest first.
    pub async fn open_auctions(&self, stream: &StreamId) -> Result<Vec<AuctionId>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id FROM auctions WHERE stream_id = ?1 AND closed_at IS NULL ORDER BY created_at",
            )?;
            let rows = stmt.query_map([&stream.0], |r| r.get(0).map(AuctionId))?;
            Ok(rows.collect::<super::db::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Every auction not closed, of any stream, oldest first (after a restart: those the server
    /// stopped without closing).
    pub async fn unclosed_auctions(&self) -> Result<Vec<StoredAuction>, Error> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {AUCTION_COLUMNS} FROM auctions WHERE closed_at IS NULL ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([], auction_from_row)?;
            Ok(rows.collect::<super::db::Result<Vec<_>>>()?)
        })
        .await
    }

    /// A notification for one viewer about one sale (`subject`: the auction or reservation id),
    /// made once whatever calls again (a restart): the notification when it is new.
    pub async fn notify_viewer(
        &self,
        viewer: &ViewerId,
        stream: &StreamId,
        kind: Announcement,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<Option<Notification>, Error> {
        let (viewer, stream, subject) = (viewer.clone(), stream.clone(), subject.to_string());
        self.call(move |c| {
            let made: Option<i64> = c
                .query_row(
                    "INSERT INTO notifications (viewer_id, kind, stream_id, created_at, subject, detail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING RETURNING id",
                    params![viewer.0, kind.as_str(), stream.0, ts(Utc::now()), subject, detail.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = made else {
                return Ok(None);
            };
            Ok(Some(c.query_row(
                &format!("{NOTIFICATION_SELECT} WHERE n.id = ?1"),
                [id],
                notification_from_row,
            )?))
        })
        .await
    }

    /// Stores a new auction unless its stream has `max_open` open ones: false then.
    pub async fn create_auction(&self, a: StoredAuction, max_open: u32) -> Result<bool, Error> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let open: i64 = tx.query_row(
                "SELECT COUNT(*) FROM auctions WHERE stream_id = ?1 AND closed_at IS NULL",
                [&a.stream_id.0],
                |r| r.get(0),
            )?;
            if open >= i64::from(max_open) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO auctions (id, stream_id, product_id, title, currency, rules, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![a.id.0, a.stream_id.0, a.product_id.0, a.title, a.currency, a.rules, ts(a.created_at)],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub async fn auction(
        &self,
        stream: &StreamId,
        id: &AuctionId,
    ) -> Result<Option<StoredAuction>, Error> {
        let (stream, id) = (stream.clone(), id.clone());
        self.read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = ?1 AND stream_id = ?2"),
                params![id.0, stream.0],
                auction_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Appends an accepted bid (JSON of `auction::Bid`) as number `seq`.
    pub async fn add_bid(&self, auction: &AuctionId, seq: u32, bid: String) -> Result<(), Error> {
        let auction = auction.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO auction_bids (auction_id, seq, bid) VALUES (?1, ?2, ?3)",
                params![auction.0, seq, bid],
            )?;
            Ok(())
        })
        .await
    }

    /// The auction's bids (JSON), in arrival order.
    pub async fn bids(&self, auction: &AuctionId) -> Result<Vec<String>, Error> {
        let auction = auction.clone();
        self.read(move |c| {
            let mut stmt =
                c.prepare("SELECT bid FROM auction_bids WHERE auction_id = ?1 ORDER BY seq")?;
            let rows = stmt.query_map([&auction.0], |r| r.get(0))?;
            Ok(rows.collect::<super::db::Result<Vec<String>>>()?)
        })
        .await
    }

    /// Closes an auction with its winner (none without bids). Only once: false when it was closed.
    pub async fn close_auction(
        &self,
        auction: &AuctionId,
        at: DateTime<Utc>,
        winner: Option<(String, ViewerId, i64)>,
    ) -> Result<bool, Error> {
        let auction = auction.clone();
        self.call(move |c| {
            let (handle, viewer, amount) = match winner {
                Some((h, v, a)) => (Some(h), Some(v.0), Some(a)),
                None => (None, None, None),
            };
            Ok(c.execute(
                "UPDATE auctions SET closed_at = ?2, winner_handle = ?3, winner_viewer = ?4, amount_minor = ?5 WHERE id = ?1 AND closed_at IS NULL",
                params![auction.0, ts(at), handle, viewer, amount],
            )? == 1)
        })
        .await
    }

    /// A viewer's handle.
    pub async fn viewer_handle(&self, id: &ViewerId) -> Result<Option<String>, Error> {
        let id = id.clone();
        self.read(move |c| {
            Ok(
                c.query_row("SELECT handle FROM viewers WHERE id = ?1", [&id.0], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;
    use chrono::SubsecRound;

    fn sale(stream: &StreamId, quantity: u32, limit: u32, now: DateTime<Utc>) -> FlashSale {
        FlashSale {
            id: SaleId::generate(),
            stream_id: stream.clone(),
            product_id: ProductId("p".into()),
            title: "t".into(),
            currency: "EUR".into(),
            list_price_minor: 2000,
            price_minor: 1000,
            quantity,
            per_viewer_limit: limit,
            starts_at: now,
            ends_at: now + chrono::TimeDelta::seconds(60),
            starts_pdt: now,
            ends_pdt: now + chrono::TimeDelta::seconds(60),
            closed_at: None,
            created_at: now,
            sold_out_at: None,
            sold_out_pdt: None,
        }
    }

    on_both_backends! {
        async fn claims_stop_at_the_quantity_and_the_viewer_limit_and_expired_ones_free_a_unit() {
            let (_dir, store, stream) = store_with_stream("alice").await;
            let now = Utc::now();
            let s = sale(&stream.id, 2, 1, now);
            assert!(store.create_flash_sale(s.clone(), 3, now).await.unwrap());
            let ttl = chrono::TimeDelta::seconds(10);
            let (a, b, c) = (
                ViewerId("a".into()),
                ViewerId("b".into()),
                ViewerId("c".into()),
            );
            let first = store.claim_flash_sale(&s.id, &a, now, ttl).await.unwrap();
            assert!(
                matches!(first, Claim::Reserved { remaining: 1, .. }),
                "{first:?}"
            );
            assert_eq!(
                store.claim_flash_sale(&s.id, &a, now, ttl).await.unwrap(),
                Claim::OverLimit
            );
            let second = store.claim_flash_sale(&s.id, &b, now, ttl).await.unwrap();
            assert!(matches!(second, Claim::Reserved { remaining: 0, .. }));
            assert_eq!(
                store.claim_flash_sale(&s.id, &c, now, ttl).await.unwrap(),
                Claim::SoldOut
            );
            // b's reservation is confirmed, a's expires: one unit again.
            let Claim::Reserved { reservation, .. } = second else {
                unreachable!()
            };
            assert_eq!(
                store
                    .confirm_reservation(&reservation, "o-1", now)
                    .await
                    .unwrap(),
                Confirm::Confirmed {
                    sale: s.id.clone(),
                    order_id: "o-1".into()
                }
            );
            let later = now + chrono::TimeDelta::seconds(11);
            let third = store.claim_flash_sale(&s.id, &c, later, ttl).await.unwrap();
            assert!(
                matches!(third, Claim::Reserved { remaining: 0, .. }),
                "{third:?}"
            );
            let Claim::Reserved {
                reservation: expired,
                ..
            } = first
            else {
                unreachable!()
            };
            assert_eq!(
                store
                    .confirm_reservation(&expired, "o-2", later)
                    .await
                    .unwrap(),
                Confirm::Expired
            );
            let over = now + chrono::TimeDelta::seconds(61);
            assert_eq!(
                store.claim_flash_sale(&s.id, &a, over, ttl).await.unwrap(),
                Claim::Over
            );
            assert_eq!(
                store
                    .claim_flash_sale(&SaleId("nope".into()), &a, now, ttl)
                    .await
                    .unwrap(),
                Claim::Unknown
            );
        }
    }

    on_both_backends! {
        async fn a_sale_sells_out_once_and_a_viewer_is_told_once_per_subject() {
            let (_dir, store, stream) = store_with_stream("alice").await;
            let now = Utc::now();
            let s = sale(&stream.id, 1, 1, now);
            assert!(store.create_flash_sale(s.clone(), 3, now).await.unwrap());
            assert!(store.mark_sold_out(&s.id, now, now).await.unwrap());
            let later = now + chrono::TimeDelta::seconds(5);
            assert!(!store.mark_sold_out(&s.id, later, later).await.unwrap());
            let (stored, _) = store
                .flash_sale(&stream.id, &s.id, now)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(stored.sold_out_pdt, Some(now.trunc_subsecs(3)));

            let (viewer, _) = store.create_viewer("vera").await.unwrap();
            let detail = serde_json::json!({"amount": "1.50"});
            let told = store
                .notify_viewer(
                    &viewer.id,
                    &stream.id,
                    Announcement::AuctionWon,
                    "a1",
                    detail.clone(),
                )
                .await
                .unwrap()
                .expect("new");
            assert_eq!(told.kind, Announcement::AuctionWon);
            assert_eq!(told.detail, Some(detail.clone()));
            assert!(
                store
                    .notify_viewer(
                        &viewer.id,
                        &stream.id,
                        Announcement::AuctionWon,
                        "a1",
                        detail.clone()
                    )
                    .await
                    .unwrap()
                    .is_none(),
                "once per auction"
            );
            assert!(
                store
                    .notify_viewer(
                        &viewer.id,
                        &stream.id,
                        Announcement::AuctionWon,
                        "a2",
                        detail
                    )
                    .await
                    .unwrap()
                    .is_some(),
                "another auction of the same stream"
            );
            assert_eq!(store.unread_count(&viewer.id).await.unwrap(), 2);
        }
    }

    on_both_backends! {
        async fn a_stream_has_at_most_max_open_sales() {
            let (_dir, store, stream) = store_with_stream("alice").await;
            let now = Utc::now();
            assert!(
                store
                    .create_flash_sale(sale(&stream.id, 1, 1, now), 1, now)
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .create_flash_sale(sale(&stream.id, 1, 1, now), 1, now)
                    .await
                    .unwrap()
            );
        }
    }
}
