//! Flash sales and auctions on a live stream: created by its creator, run on the server clock by
//! one owner ([`Sales`]) that dates them into the stream's HLS timeline (`EXT-X-DATERANGE` in
//! their own classes), announces every change as a stream event, and ends each one with a timer
//! it owns. The rules themselves are plain code ([`flash_sale`], [`auction`]), unit-tested without
//! a server; claims are counted by the store in one transaction.
//!
//! Wall clock and media time: a sale created at server time `now`, when the newest frame ingested
//! has media time `m`, opens at `now + countdown` and is marked at media time `m + countdown`, so
//! its `START-DATE` is the `PROGRAM-DATE-TIME` of the picture the host showed `countdown` seconds
//! after announcing it. A player that lines its countdown up with that date shows it with the
//! picture, whatever its latency; the server's own times (`starts_at`, `ends_at`, `server_time`)
//! decide what is accepted.
pub mod auction;
pub mod flash_sale;
pub mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::StreamRegistry;
use super::events::EventKind;
use super::stream::LiveStream;
use crate::config::SalesConfig;
use crate::output::hls::MarkerSpec;
use crate::store::money::to_decimal;
use crate::store::{
    AuctionId, Claim, FlashSale, Mode, Product, ReservationId, SaleId, Store, StoredAuction,
    StreamId, ViewerId,
};
use auction::{Bid, Offer, Refusal, Rules};
use flash_sale::Terms;
pub use view::{AuctionPhase, AuctionView, BidView, ClaimView, SaleView, Winner};

/// `CLASS` of a flash sale's marker (from its opening to its end).
pub const SALE_CLASS: &str = "com.livefront.flash-sale";
/// `CLASS` of an auction's marker (from its start to its end).
pub const AUCTION_CLASS: &str = "com.livefront.auction";
/// `CLASS` of an accepted bid's marker (an instant: `DURATION=0`).
pub const BID_CLASS: &str = "com.livefront.auction-bid";
/// Longest and shortest auction.
pub const MIN_AUCTION_S: u32 = 10;
pub const MAX_AUCTION_S: u32 = 60 * 60;
/// Longest anti-sniping extension.
pub const MAX_EXTEND_S: u32 = 120;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] crate::store::Error),
    #[error("the stream is not live")]
    NotLive,
    #[error("flash sales run on public streams only")]
    NotPublic,
    #[error("this stream has {0} open already (sales.max_open_sales / sales.max_open_auctions)")]
    TooMany(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Bid(Refusal),
    #[error("this auction took sales.max_bids bids")]
    BidLimit,
}

/// What a creator asks for (checked by the caller's parse: money in minor units).
pub struct NewSale {
    pub product: Product,
    pub terms: Terms,
    pub price_minor: i64,
    pub list_price_minor: i64,
}

pub struct NewAuction {
    pub product: Product,
    pub starting_minor: i64,
    pub increments: auction::Increments,
    pub duration_s: u32,
    pub sudden_death: bool,
    pub extend_on_bid_s: u32,
}

/// One auction while it runs: its rules and state, under one lock that orders its bids.
struct Run {
    stored: StoredAuction,
    rules: Rules,
    state: auction::State,
    closed: bool,
    log: Vec<Bid>,
}

/// The one owner of the flash sales and auctions of live streams.
#[derive(Clone)]
pub struct Sales {
    inner: Arc<Inner>,
}

struct Inner {
    registry: StreamRegistry,
    store: Store,
    config: SalesConfig,
    /// Wakes a sale's timer when a claim makes a reservation that may expire.
    sale_timers: Mutex<HashMap<SaleId, Arc<Notify>>>,
    auctions: Mutex<HashMap<AuctionId, Arc<tokio::sync::Mutex<Run>>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn sale_marker_id(id: &SaleId) -> String {
    format!("sale-{id}")
}

fn auction_marker_id(id: &AuctionId) -> String {
    format!("auction-{id}")
}

/// Sleeps until server time `at` (at once if it passed).
async fn until(at: DateTime<Utc>) {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

pub fn sale_view(sale: &FlashSale, held: u32, now: DateTime<Utc>) -> SaleView {
    let remaining = sale.quantity.saturating_sub(held);
    SaleView {
        id: sale.id.to_string(),
        stream_id: sale.stream_id.to_string(),
        product_id: sale.product_id.to_string(),
        title: sale.title.clone(),
        currency: sale.currency.clone(),
        price: to_decimal(sale.price_minor, &sale.currency),
        list_price: to_decimal(sale.list_price_minor, &sale.currency),
        quantity: sale.quantity,
        per_viewer_limit: sale.per_viewer_limit,
        remaining,
        phase: flash_sale::phase(
            now,
            sale.starts_at,
            sale.ends_at,
            sale.closed_at.is_some(),
            remaining,
        ),
        starts_at: sale.starts_at,
        ends_at: sale.ends_at,
        marker_id: sale_marker_id(&sale.id),
        starts_program_date_time: sale.starts_pdt,
        ends_program_date_time: sale.ends_pdt,
        // Both clocks run alike: the countdown is as long on either.
        announced_program_date_time: sale.starts_pdt - (sale.starts_at - sale.created_at),
        sold_out_at: sale.sold_out_at,
        sold_out_program_date_time: sale.sold_out_pdt,
        server_time: now,
    }
}

fn auction_view(run: &Run, now: DateTime<Utc>, last_bid: Option<BidView>) -> AuctionView {
    let a = &run.stored;
    let money = |m: i64| to_decimal(m, &a.currency);
    let over = run.closed || run.state.is_over(now);
    let winner = if over {
        match (&run.state.leader, run.state.price_minor) {
            (Some(l), Some(p)) => Some(Winner {
                handle: l.handle.clone(),
                amount: money(p),
            }),
            _ => None,
        }
    } else {
        None
    };
    AuctionView {
        id: a.id.to_string(),
        stream_id: a.stream_id.to_string(),
        product_id: a.product_id.to_string(),
        title: a.title.clone(),
        currency: a.currency.clone(),
        starting_price: money(run.rules.starting_minor),
        price: run.state.price_minor.map(money),
        minimum_bid: money(run.state.minimum(&run.rules)),
        leader: run.state.leader.as_ref().map(|l| l.handle.clone()),
        bids: run.state.bids,
        phase: if over {
            AuctionPhase::Ended
        } else {
            AuctionPhase::Running
        },
        starts_at: run.rules.starts_at,
        ends_at: run.state.ends_at,
        sudden_death: run.rules.sudden_death,
        extend_on_bid_s: u32::try_from(run.rules.extend_ms / 1000).unwrap_or(0),
        winner,
        last_bid,
        marker_id: auction_marker_id(&a.id),
        server_time: now,
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Store(crate::store::Error::Corrupt(format!("{what}: {e}")))
}

impl Sales {
    pub fn new(registry: StreamRegistry, store: Store, config: SalesConfig) -> Self {
        Sales {
            inner: Arc::new(Inner {
                registry,
                store,
                config,
                sale_timers: Mutex::default(),
                auctions: Mutex::default(),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Stops every timer (the streams end first, which ends their sales and auctions).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    fn live(&self, id: &StreamId) -> Result<(Arc<LiveStream>, Duration), Error> {
        let live = self.inner.registry.live(id).ok_or(Error::NotLive)?;
        if live.is_ending() {
            return Err(Error::NotLive);
        }
        let media = live.media_time().ok_or(Error::NotLive)?;
        Ok((live, media))
    }

    /// Starts a flash sale on a live public stream (the caller checked that the product is in
    /// its carousel and that the caller is its creator).
    pub async fn create_sale(&self, stream: &StreamId, new: NewSale) -> Result<SaleView, Error> {
        let (live, media) = self.live(stream)?;
        if live.mode() != Mode::Public {
            return Err(Error::NotPublic);
        }
        let now = Utc::now();
        let (starts_at, ends_at) = new.terms.window(now);
        let start_media = media + Duration::from_secs(u64::from(new.terms.countdown_s));
        let end_media = start_media + Duration::from_secs(u64::from(new.terms.duration_s));
        let sale = FlashSale {
            id: SaleId::generate(),
            stream_id: stream.clone(),
            product_id: new.product.id.clone(),
            title: new.product.title.clone(),
            currency: new.product.currency.clone(),
            list_price_minor: new.list_price_minor,
            price_minor: new.price_minor,
            quantity: new.terms.quantity,
            per_viewer_limit: new.terms.per_viewer_limit,
            starts_at,
            ends_at,
            starts_pdt: live.hls.date_at(start_media),
            ends_pdt: live.hls.date_at(end_media),
            closed_at: None,
            created_at: now,
            sold_out_at: None,
            sold_out_pdt: None,
        };
        let max = self.inner.config.max_open_sales;
        if !self
            .inner
            .store
            .create_flash_sale(sale.clone(), max, now)
            .await?
        {
            return Err(Error::TooMany("flash sales"));
        }
        let marker = MarkerSpec {
            id: sale_marker_id(&sale.id),
            class: SALE_CLASS.into(),
            attributes: vec![
                ("X-SALE-ID".into(), sale.id.to_string()),
                ("X-PRODUCT-ID".into(), sale.product_id.to_string()),
                (
                    "X-PRICE".into(),
                    to_decimal(sale.price_minor, &sale.currency),
                ),
                ("X-CURRENCY".into(), sale.currency.clone()),
                ("X-QUANTITY".into(), sale.quantity.to_string()),
            ],
        };
        for out in live.outputs() {
            out.start_marker(marker.clone(), start_media);
            out.end_marker(&marker.id, end_media);
        }
        tracing::info!(stream = %stream, sale = %sale.id, media_ms = millis(start_media), quantity = sale.quantity, "flash sale created");
        let view = sale_view(&sale, 0, now);
        self.inner
            .registry
            .announce(&live, EventKind::FlashSale { sale: view.clone() });
        let wake = Arc::new(Notify::new());
        lock(&self.inner.sale_timers).insert(sale.id.clone(), wake.clone());
        let this = self.clone();
        self.inner
            .tasks
            .spawn(async move { this.run_sale(live, sale, wake).await });
        Ok(view)
    }

    /// A sale's timer: announces its opening, the units that expired reservations give back, and
    /// its end (at `ends_at`, or with its stream).
    async fn run_sale(self, live: Arc<LiveStream>, sale: FlashSale, wake: Arc<Notify>) {
        let store = &self.inner.store;
        let mut opened = Utc::now() >= sale.starts_at;
        loop {
            let next_expiry = store.next_expiry(&sale.id).await.ok().flatten();
            let mut next = sale.ends_at;
            if !opened {
                next = next.min(sale.starts_at);
            }
            if let Some(e) = next_expiry {
                next = next.min(e);
            }
            let stream_ended = tokio::select! {
                () = until(next) => false,
                () = wake.notified() => continue,
                () = live.end_requested() => true,
                () = self.inner.shutdown.cancelled() => true,
            };
            let now = Utc::now();
            if stream_ended && let Err(e) = store.close_flash_sale(&sale.id, now).await {
                tracing::error!(sale = %sale.id, error = %e, "could not close a flash sale");
            }
            let expired = store.expire_reservations(&sale.id, now).await.unwrap_or(0);
            let opening = !opened && now >= sale.starts_at;
            opened |= opening;
            let over = stream_ended || now >= sale.ends_at;
            if opening || expired > 0 || over {
                self.announce_sale(&live, &sale.id).await;
            }
            if over {
                break;
            }
        }
        lock(&self.inner.sale_timers).remove(&sale.id);
    }

    async fn announce_sale(&self, live: &LiveStream, id: &SaleId) {
        let now = Utc::now();
        match self.inner.store.flash_sale(&live.id, id, now).await {
            Ok(Some((sale, held))) => self.inner.registry.announce(
                live,
                EventKind::FlashSale {
                    sale: sale_view(&sale, held, now),
                },
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(sale = %id, error = %e, "could not read a flash sale"),
        }
    }

    /// A sale of the stream as it stands.
    pub async fn sale(&self, stream: &StreamId, id: &SaleId) -> Result<SaleView, Error> {
        let now = Utc::now();
        let (sale, held) = self
            .inner
            .store
            .flash_sale(stream, id, now)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(sale_view(&sale, held, now))
    }

    /// The stream's sales not over yet, and its open auctions.
    pub async fn open(
        &self,
        stream: &StreamId,
    ) -> Result<(Vec<SaleView>, Vec<AuctionView>), Error> {
        let now = Utc::now();
        let mut sales = Vec::new();
        for id in self.inner.store.open_flash_sales(stream, now).await? {
            sales.push(self.sale(stream, &id).await?);
        }
        let mut auctions = Vec::new();
        for id in self.inner.store.open_auctions(stream).await? {
            auctions.push(self.auction(stream, &id).await?);
        }
        Ok((sales, auctions))
    }

    /// A viewer claims a unit: `Claim::Reserved` announces the claim (the shop's webhook) and the
    /// remaining quantity.
    pub async fn claim(
        &self,
        stream: &StreamId,
        id: &SaleId,
        viewer: &ViewerId,
        handle: &str,
    ) -> Result<(Claim, SaleView), Error> {
        let store = &self.inner.store;
        let now = Utc::now();
        // Only a sale of this stream (an id of another stream's sale is unknown here).
        let (sale, _) = store
            .flash_sale(stream, id, now)
            .await?
            .ok_or(Error::NotFound)?;
        let ttl = TimeDelta::from_std(self.inner.config.reservation_ttl).unwrap_or(TimeDelta::MAX);
        let claim = store.claim_flash_sale(id, viewer, now, ttl).await?;
        if let Claim::Reserved { remaining: 0, .. } = &claim
            && let Some(live) = self.inner.registry.live(stream)
        {
            self.sold_out(&live, &sale, now).await;
        }
        let (sale, held) = store
            .flash_sale(stream, id, now)
            .await?
            .unwrap_or_else(|| (sale.clone(), sale.quantity));
        let view = sale_view(&sale, held, now);
        if let Claim::Reserved {
            reservation,
            expires_at,
            remaining,
        } = &claim
        {
            if let Some(w) = lock(&self.inner.sale_timers).get(id) {
                w.notify_one();
            }
            if let Some(live) = self.inner.registry.live(stream) {
                let claim = ClaimView {
                    reservation_id: reservation.to_string(),
                    sale_id: id.to_string(),
                    stream_id: stream.to_string(),
                    product_id: sale.product_id.to_string(),
                    viewer: handle.to_string(),
                    price: to_decimal(sale.price_minor, &sale.currency),
                    currency: sale.currency.clone(),
                    expires_at: *expires_at,
                    remaining: *remaining,
                };
                tracing::info!(stream = %stream, sale = %id, reservation = %reservation, remaining, "flash sale claimed");
                self.inner
                    .registry
                    .announce(&live, EventKind::FlashSaleClaimed { claim });
                self.inner
                    .registry
                    .announce(&live, EventKind::FlashSale { sale: view.clone() });
            }
        }
        Ok((claim, view))
    }

    /// The claim at `now` took the last unit: the first time, the sale's marker ends at the picture
    /// shown then (never before its start), and the store keeps when.
    async fn sold_out(&self, live: &LiveStream, sale: &FlashSale, now: DateTime<Utc>) {
        let Some(mut media) = live.media_time() else {
            return;
        };
        let mut pdt = live.hls.date_at(media);
        if pdt < sale.starts_pdt {
            media += (sale.starts_pdt - pdt).to_std().unwrap_or_default();
            pdt = sale.starts_pdt;
        }
        match self.inner.store.mark_sold_out(&sale.id, now, pdt).await {
            Ok(true) => {
                tracing::info!(sale = %sale.id, media_ms = millis(media), "flash sale sold out");
                for out in live.outputs() {
                    out.end_marker(&sale_marker_id(&sale.id), media);
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(sale = %sale.id, error = %e, "could not mark a flash sale sold out")
            }
        }
    }

    /// Starts an auction on a live stream (practice too: a rehearsal only its creator sees).
    pub async fn create_auction(
        &self,
        stream: &StreamId,
        new: NewAuction,
    ) -> Result<AuctionView, Error> {
        if !(MIN_AUCTION_S..=MAX_AUCTION_S).contains(&new.duration_s) {
            return Err(Error::Invalid(format!(
                "duration_s must be {MIN_AUCTION_S}-{MAX_AUCTION_S}"
            )));
        }
        if new.extend_on_bid_s > MAX_EXTEND_S {
            return Err(Error::Invalid(format!(
                "extend_on_bid_s must be 0-{MAX_EXTEND_S}"
            )));
        }
        if new.sudden_death && new.extend_on_bid_s > 0 {
            return Err(Error::Invalid(
                "a sudden-death auction never extends: leave extend_on_bid_s out".into(),
            ));
        }
        let (live, media) = self.live(stream)?;
        let now = Utc::now();
        let rules = Rules {
            starting_minor: new.starting_minor,
            increments: new.increments,
            starts_at: now,
            ends_at: now + TimeDelta::seconds(i64::from(new.duration_s)),
            sudden_death: new.sudden_death,
            extend_ms: i64::from(new.extend_on_bid_s) * 1000,
        };
        let stored = StoredAuction {
            id: AuctionId::generate(),
            stream_id: stream.clone(),
            product_id: new.product.id.clone(),
            title: new.product.title.clone(),
            currency: new.product.currency.clone(),
            rules: serde_json::to_string(&rules).map_err(|e| corrupt("rules", e))?,
            closed_at: None,
            winner: None,
            created_at: now,
        };
        let max = self.inner.config.max_open_auctions;
        if !self.inner.store.create_auction(stored.clone(), max).await? {
            return Err(Error::TooMany("auctions"));
        }
        let marker = MarkerSpec {
            id: auction_marker_id(&stored.id),
            class: AUCTION_CLASS.into(),
            attributes: vec![
                ("X-AUCTION-ID".into(), stored.id.to_string()),
                ("X-PRODUCT-ID".into(), stored.product_id.to_string()),
                (
                    "X-STARTING-PRICE".into(),
                    to_decimal(rules.starting_minor, &stored.currency),
                ),
                ("X-CURRENCY".into(), stored.currency.clone()),
            ],
        };
        for out in live.outputs() {
            out.start_marker(marker.clone(), media);
        }
        let id = stored.id.clone();
        let run = Run {
            state: auction::State::new(&rules),
            rules,
            stored,
            closed: false,
            log: Vec::new(),
        };
        let view = auction_view(&run, now, None);
        let run = Arc::new(tokio::sync::Mutex::new(run));
        lock(&self.inner.auctions).insert(id.clone(), run.clone());
        tracing::info!(stream = %stream, auction = %id, "auction created");
        self.inner.registry.announce(
            &live,
            EventKind::Auction {
                auction: view.clone(),
            },
        );
        let this = self.clone();
        self.inner
            .tasks
            .spawn(async move { this.run_auction(live, run).await });
        Ok(view)
    }

    /// An auction's timer: it ends at its (possibly extended) end, or with its stream.
    async fn run_auction(self, live: Arc<LiveStream>, run: Arc<tokio::sync::Mutex<Run>>) {
        loop {
            let ends_at = run.lock().await.state.ends_at;
            if Utc::now() >= ends_at {
                break;
            }
            tokio::select! {
                () = until(ends_at) => {}
                () = live.end_requested() => break,
                () = self.inner.shutdown.cancelled() => break,
            }
        }
        let mut run = run.lock().await;
        self.close_auction(&mut run, Some(&live)).await;
        lock(&self.inner.auctions).remove(&run.stored.id);
    }

    /// Closes an auction with the winner its bids give, once: the store keeps the winner, its
    /// marker ends (on a live stream) and the event tells the page, the shop (`auction.won`) and
    /// the winner (their notifications). An auction closed before is left as it is.
    async fn close_auction(&self, run: &mut Run, live: Option<&LiveStream>) {
        run.closed = true;
        let now = Utc::now();
        let winner = match (&run.state.leader, run.state.price_minor) {
            (Some(l), Some(p)) => Some((l.handle.clone(), ViewerId(l.bidder.clone()), p)),
            _ => None,
        };
        let at = run.state.ends_at.min(now);
        match self
            .inner
            .store
            .close_auction(&run.stored.id, at, winner)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(auction = %run.stored.id, error = %e, "could not close an auction")
            }
        }
        let view = auction_view(run, now, None);
        tracing::info!(auction = %run.stored.id, winner = ?view.winner, "auction ended");
        let kind = EventKind::Auction { auction: view };
        match live {
            Some(live) => {
                if let Some(media) = live.media_time() {
                    for out in live.outputs() {
                        out.end_marker(&auction_marker_id(&run.stored.id), media);
                    }
                }
                self.inner.registry.announce(live, kind);
            }
            None => match self.inner.store.stream(&run.stored.stream_id).await {
                Ok(Some(stream)) => self.inner.registry.announce_idle(&stream, kind),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(auction = %run.stored.id, error = %e, "could not announce an auction's end")
                }
            },
        }
    }

    /// At start-up, before anything is live: the auctions the server stopped without closing (it
    /// was killed, or lost power) are closed now. Their streams ended with the server, and an
    /// auction closes with its stream: its winner is the one its stored bid log gives (no bid can
    /// have come after it), at its scheduled end if that passed, else now; stored, announced and
    /// sent to the shop once, as a normal close does. Returns how many.
    pub async fn recover(&self) -> Result<usize, Error> {
        let left = self.inner.store.unclosed_auctions().await?;
        for stored in &left {
            let mut run = self.rebuild(stored.clone()).await?;
            tracing::warn!(auction = %stored.id, stream = %stored.stream_id, bids = run.state.bids, "closing an auction left open by an unclean stop");
            self.close_auction(&mut run, None).await;
        }
        Ok(left.len())
    }

    /// A stored auction's run: its rules and the state its bid log replays to (not closed).
    async fn rebuild(&self, stored: StoredAuction) -> Result<Run, Error> {
        let rules: Rules = serde_json::from_str(&stored.rules).map_err(|e| corrupt("rules", e))?;
        let log = self.bid_log(&stored.id).await?;
        let state = auction::replay(&rules, &log)
            .map_err(|(seq, r)| corrupt(&format!("bid {seq} of auction {}", stored.id), r))?;
        Ok(Run {
            closed: false,
            stored,
            rules,
            state,
            log,
        })
    }

    /// The auction's run: in memory while its timer runs, else rebuilt from the store (rules and
    /// bid log replayed).
    async fn run_of(
        &self,
        stream: &StreamId,
        id: &AuctionId,
    ) -> Result<Arc<tokio::sync::Mutex<Run>>, Error> {
        let running = lock(&self.inner.auctions).get(id).cloned();
        if let Some(run) = running {
            if run.lock().await.stored.stream_id == *stream {
                return Ok(run);
            }
            return Err(Error::NotFound);
        }
        let stored = self
            .inner
            .store
            .auction(stream, id)
            .await?
            .ok_or(Error::NotFound)?;
        let mut run = self.rebuild(stored).await?;
        // Not running: closed with its stream, or at start-up (`recover`).
        run.closed = true;
        Ok(Arc::new(tokio::sync::Mutex::new(run)))
    }

    /// The stored bid log of an auction, in arrival order.
    pub async fn bid_log(&self, id: &AuctionId) -> Result<Vec<Bid>, Error> {
        self.inner
            .store
            .bids(id)
            .await?
            .iter()
            .map(|b| serde_json::from_str(b).map_err(|e| corrupt("bid", e)))
            .collect()
    }

    /// An auction with its rules, for replays (`GET …/bids` for its creator).
    pub async fn auction_rules(&self, stream: &StreamId, id: &AuctionId) -> Result<Rules, Error> {
        Ok(self.run_of(stream, id).await?.lock().await.rules.clone())
    }

    pub async fn auction(&self, stream: &StreamId, id: &AuctionId) -> Result<AuctionView, Error> {
        let run = self.run_of(stream, id).await?;
        let run = run.lock().await;
        Ok(auction_view(&run, Utc::now(), None))
    }

    /// A viewer's bid, stamped with the server's clock when its turn comes: bids of one auction
    /// are taken one at a time, in arrival order.
    pub async fn bid(
        &self,
        stream: &StreamId,
        id: &AuctionId,
        viewer: &ViewerId,
        handle: &str,
        offer: Offer,
    ) -> Result<AuctionView, Error> {
        let run = self.run_of(stream, id).await?;
        let mut run = run.lock().await;
        let now = Utc::now();
        if run.closed {
            return Err(Error::Bid(Refusal::Over));
        }
        if run.state.bids >= self.inner.config.max_bids {
            return Err(Error::BidLimit);
        }
        // Never before the previous bid, whatever the wall clock does.
        let at = run.log.last().map_or(now, |b| b.at.max(now));
        let bid = Bid {
            seq: run.state.bids + 1,
            bidder: viewer.to_string(),
            handle: handle.to_string(),
            offer,
            at,
        };
        let mut state = run.state.clone();
        let accepted = state.apply(&run.rules, &bid).map_err(Error::Bid)?;
        let json = serde_json::to_string(&bid).map_err(|e| corrupt("bid", e))?;
        self.inner.store.add_bid(id, bid.seq, json).await?;
        run.state = state;
        run.log.push(bid.clone());
        let marker_id = format!("bid-{id}-{}", bid.seq);
        let mut program_date_time = None;
        let live = self.inner.registry.live(stream);
        if let Some(live) = &live
            && let Some(media) = live.media_time()
        {
            program_date_time = Some(live.hls.date_at(media));
            let marker = MarkerSpec {
                id: marker_id.clone(),
                class: BID_CLASS.into(),
                attributes: vec![
                    ("X-AUCTION-ID".into(), id.to_string()),
                    ("X-BIDDER".into(), handle.to_string()),
                    (
                        "X-PRICE".into(),
                        to_decimal(accepted.price_minor, &run.stored.currency),
                    ),
                    ("X-CURRENCY".into(), run.stored.currency.clone()),
                ],
            };
            for out in live.outputs() {
                out.start_marker(marker.clone(), media);
                out.end_marker(&marker_id, media);
            }
        }
        let view = auction_view(
            &run,
            now,
            Some(BidView {
                seq: bid.seq,
                bidder: handle.to_string(),
                price: to_decimal(accepted.price_minor, &run.stored.currency),
                at,
                marker_id,
                program_date_time,
                extended: accepted.extended,
            }),
        );
        tracing::debug!(auction = %id, seq = bid.seq, leads = accepted.leads, "bid accepted");
        if let Some(live) = &live {
            self.inner.registry.announce(
                live,
                EventKind::Auction {
                    auction: view.clone(),
                },
            );
        }
        Ok(view)
    }
}

/// Parses a reservation id from a path.
pub fn reservation_id(raw: &str) -> Option<ReservationId> {
    ReservationId::parse(raw)
}
