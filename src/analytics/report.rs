//! A stream's report from what the store knows of it: the series on the stream's grid, the bands
//! its products were in focus, and the summary. Plain code, no I/O: the store reads the facts,
//! this shapes them.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::analytics::{BucketEvents, Grid, ProductSales, StreamFacts};
use crate::store::money::to_decimal;
use crate::store::{FocusEvent, Mode, Stream, StreamState};

/// Buckets a report lists at most (a 10 s step: 11.5 days of live); later ones are left out and
/// `truncated` says so.
pub const MAX_POINTS: usize = 100_000;

/// One step of the series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// Where the step starts.
    pub at: DateTime<Utc>,
    /// The mode sampled in this step; `null` when no sample was taken (the server was down).
    pub mode: Option<Mode>,
    /// Concurrent viewers: the larger of `players` and `sockets` (a watch page holds one of
    /// each); 0 while practice (its only viewer is the owner, who never counts).
    pub viewers: Option<u32>,
    /// HLS player sessions of the public.
    pub players: Option<u32>,
    /// Live-channel connections of others than the owner.
    pub sockets: Option<u32>,
    /// Viewers' chat messages while public.
    pub chat: u64,
    /// Product click-outs.
    pub clicks: u64,
    /// Attributed orders (distinct order ids in the commission ledger).
    pub orders: u64,
    pub redemptions: u64,
    /// Follows of the creator.
    pub follows: u64,
    /// "Add to cart" taps.
    pub cart_adds: u64,
    /// The product in focus in the middle of the step.
    pub focus_product_id: Option<String>,
}

/// A product in focus from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FocusBand {
    pub product_id: String,
    pub title: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Money in one currency, in minor units and as a decimal string (as `GET /me/earnings`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sales {
    pub currency: String,
    pub orders: u64,
    pub sales: String,
    pub sales_minor: i64,
    pub commission: String,
    pub commission_minor: i64,
}

impl From<&ProductSales> for Sales {
    fn from(s: &ProductSales) -> Self {
        Sales {
            currency: s.currency.clone(),
            orders: s.orders,
            sales: to_decimal(s.sales_minor, &s.currency),
            sales_minor: s.sales_minor,
            commission: to_decimal(s.commission_minor, &s.currency),
            commission_minor: s.commission_minor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProductReport {
    pub product_id: String,
    /// As it was shown when focused (`null`: never focused).
    pub title: Option<String>,
    pub minutes_in_focus: f64,
    pub clicks: u64,
    /// "Add to cart" taps (watch page and embedded player).
    pub cart_adds: u64,
    /// Per currency.
    pub sales: Vec<Sales>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PromoReport {
    pub code: String,
    pub redemptions: u64,
    /// Attributed order lines the shop reported with this code, per currency (each line has at
    /// most one code: the per-code sales add up to at most the stream's sales).
    pub sales: Vec<Sales>,
}

/// How a stream did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Seconds live (so far, while live).
    pub live_s: f64,
    /// Of those, public.
    pub public_s: f64,
    pub practice_s: f64,
    /// Most concurrent viewers in a public step, and where that step starts.
    pub peak_viewers: u32,
    pub peak_at: Option<DateTime<Utc>>,
    /// Distinct player sessions of the public that loaded the live media (a master playlist
    /// alone does not count, nor does a session id this server did not sign).
    pub unique_viewers: u64,
    /// Sum of those sessions' lifetimes (first to last media playlist, plus a segment).
    pub watch_time_s: f64,
    pub avg_watch_time_s: f64,
    /// The same, for the replay after the end.
    pub replay_views: u64,
    pub replay_watch_time_s: f64,
    pub chat_messages: u64,
    pub chatters: u64,
    /// Follows of the creator made while the stream was live (and still there).
    pub followers_gained: u64,
    pub clicks: u64,
    /// "Add to cart" taps.
    pub cart_adds: u64,
    /// Attributed orders per currency (the ledger `GET /me/earnings` sums).
    pub sales: Vec<Sales>,
    pub products: Vec<ProductReport>,
    pub promos: Vec<PromoReport>,
}

/// `GET /api/v1/streams/{id}/analytics`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StreamReport {
    pub stream_id: String,
    pub title: String,
    #[schema(value_type = String)]
    pub state: StreamState,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The series' step in seconds.
    pub step_s: f64,
    pub series: Vec<Point>,
    /// More steps than a report lists (`MAX_POINTS`); the summary still counts them all.
    pub truncated: bool,
    pub focus: Vec<FocusBand>,
    pub summary: Summary,
}

/// One stream in a creator's report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StreamSummary {
    pub stream_id: String,
    pub title: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub summary: Summary,
}

/// A creator's streams added up.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub streams: u64,
    pub live_s: f64,
    pub public_s: f64,
    /// The highest peak of any one stream.
    pub peak_viewers: u32,
    pub unique_viewers: u64,
    pub watch_time_s: f64,
    pub avg_watch_time_s: f64,
    pub replay_views: u64,
    pub replay_watch_time_s: f64,
    pub chat_messages: u64,
    pub followers_gained: u64,
    pub clicks: u64,
    pub cart_adds: u64,
    pub sales: Vec<Sales>,
}

/// `GET /api/v1/me/analytics`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CreatorReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The streams that went live within `[from, to)`, newest first.
    pub streams: Vec<StreamSummary>,
    /// More streams than a report lists; the totals are of those listed.
    pub truncated: bool,
    pub totals: Totals,
}

/// The totals of some streams' summaries.
pub fn totals<'a>(summaries: impl IntoIterator<Item = &'a Summary>) -> Totals {
    let mut t = Totals {
        streams: 0,
        live_s: 0.0,
        public_s: 0.0,
        peak_viewers: 0,
        unique_viewers: 0,
        watch_time_s: 0.0,
        avg_watch_time_s: 0.0,
        replay_views: 0,
        replay_watch_time_s: 0.0,
        chat_messages: 0,
        followers_gained: 0,
        clicks: 0,
        cart_adds: 0,
        sales: Vec::new(),
    };
    let mut sales: BTreeMap<String, ProductSales> = BTreeMap::new();
    for s in summaries {
        t.streams += 1;
        t.live_s += s.live_s;
        t.public_s += s.public_s;
        t.peak_viewers = t.peak_viewers.max(s.peak_viewers);
        t.unique_viewers += s.unique_viewers;
        t.watch_time_s += s.watch_time_s;
        t.replay_views += s.replay_views;
        t.replay_watch_time_s += s.replay_watch_time_s;
        t.chat_messages += s.chat_messages;
        t.followers_gained += s.followers_gained;
        t.clicks += s.clicks;
        t.cart_adds += s.cart_adds;
        for x in &s.sales {
            let e = sales
                .entry(x.currency.clone())
                .or_insert_with(|| ProductSales {
                    currency: x.currency.clone(),
                    orders: 0,
                    sales_minor: 0,
                    commission_minor: 0,
                });
            e.orders += x.orders;
            e.sales_minor += x.sales_minor;
            e.commission_minor += x.commission_minor;
        }
    }
    if t.unique_viewers > 0 {
        t.avg_watch_time_s = t.watch_time_s / t.unique_viewers as f64;
    }
    t.sales = sales.values().map(Sales::from).collect();
    t
}

fn secs(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// The bands of a focus timeline, each until the next change or `end`.
pub fn focus_bands(timeline: &[FocusEvent], end: DateTime<Utc>) -> Vec<FocusBand> {
    timeline
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let p = e.product.as_ref()?;
            let to = timeline
                .get(i + 1)
                .map_or(end, |n| n.created_at)
                .max(e.created_at);
            Some(FocusBand {
                product_id: p.id.0.clone(),
                title: p.title.clone(),
                from: e.created_at,
                to,
            })
        })
        .collect()
}

/// The report of `stream` from its facts and focus timeline, as of `now`.
pub fn stream_report(
    stream: &Stream,
    facts: &StreamFacts,
    timeline: &[FocusEvent],
    now: DateTime<Utc>,
) -> StreamReport {
    report(stream, facts, timeline, now, true)
}

/// The summary of `stream` alone (no series).
pub fn stream_summary(
    stream: &Stream,
    facts: &StreamFacts,
    timeline: &[FocusEvent],
    now: DateTime<Utc>,
) -> StreamSummary {
    let r = report(stream, facts, timeline, now, false);
    StreamSummary {
        stream_id: r.stream_id,
        title: r.title,
        started_at: r.started_at,
        ended_at: r.ended_at,
        summary: r.summary,
    }
}

fn report(
    stream: &Stream,
    facts: &StreamFacts,
    timeline: &[FocusEvent],
    now: DateTime<Utc>,
    with_series: bool,
) -> StreamReport {
    let end = stream.ended_at.unwrap_or(now);
    let bands = focus_bands(timeline, end);
    let (series, truncated) = match (facts.grid, stream.started_at) {
        (Some(grid), Some(_)) if with_series => series(&grid, facts, &bands, end),
        _ => (Vec::new(), false),
    };
    let live_ms = stream
        .started_at
        .map_or(0, |s| (end - s).num_milliseconds().max(0));
    let public_ms = facts.public_ms.min(live_ms);
    let peak = facts
        .samples
        .iter()
        .filter(|s| s.mode == Mode::Public)
        .map(|s| (s.players.max(s.sockets), s.bucket))
        .filter(|(v, _)| *v > 0)
        // The first step that had the most.
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut focus_ms: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
    for b in &bands {
        let e = focus_ms.entry(&b.product_id).or_insert((0, &b.title));
        e.0 += (b.to - b.from).num_milliseconds().max(0);
    }
    let mut ids: Vec<&str> = focus_ms.keys().copied().collect();
    ids.extend(facts.clicks.keys().map(String::as_str));
    ids.extend(facts.sales.keys().map(String::as_str));
    ids.extend(facts.cart_adds.keys().map(String::as_str));
    ids.sort_unstable();
    ids.dedup();
    let products = ids
        .into_iter()
        .map(|id| ProductReport {
            product_id: id.to_string(),
            title: focus_ms.get(id).map(|(_, t)| t.to_string()),
            minutes_in_focus: focus_ms
                .get(id)
                .map_or(0.0, |(ms, _)| *ms as f64 / 60_000.0),
            clicks: facts.clicks.get(id).copied().unwrap_or(0),
            cart_adds: facts.cart_adds.get(id).copied().unwrap_or(0),
            sales: facts
                .sales
                .get(id)
                .map_or_else(Vec::new, |v| v.iter().map(Sales::from).collect()),
        })
        .collect();
    let live = facts.live;
    let summary = Summary {
        live_s: secs(live_ms),
        public_s: secs(public_ms),
        practice_s: secs(live_ms - public_ms),
        peak_viewers: peak.map_or(0, |p| p.0),
        peak_at: match (peak, facts.grid) {
            (Some((_, bucket)), Some(grid)) => Some(grid.start_of(bucket)),
            _ => None,
        },
        unique_viewers: live.count,
        watch_time_s: secs(live.watch_ms),
        avg_watch_time_s: if live.count == 0 {
            0.0
        } else {
            secs(live.watch_ms) / live.count as f64
        },
        replay_views: facts.replay.count,
        replay_watch_time_s: secs(facts.replay.watch_ms),
        chat_messages: facts.chat_messages,
        chatters: facts.chatters,
        followers_gained: facts.followers_gained,
        clicks: facts.clicks.values().sum(),
        cart_adds: facts.cart_adds.values().sum(),
        sales: facts.orders.values().map(Sales::from).collect(),
        products,
        promos: facts
            .promos
            .iter()
            .map(|(code, redemptions)| PromoReport {
                code: code.clone(),
                redemptions: *redemptions,
                sales: facts
                    .promo_sales
                    .get(code)
                    .map_or_else(Vec::new, |v| v.iter().map(Sales::from).collect()),
            })
            .collect(),
    };
    StreamReport {
        stream_id: stream.id.0.clone(),
        title: stream.title.clone(),
        state: stream.state,
        started_at: stream.started_at,
        ended_at: stream.ended_at,
        step_s: facts.grid.map_or(0.0, |g| secs(g.step_ms)),
        series,
        truncated,
        focus: bands,
        summary,
    }
}

/// Every step from the grid's start to `end`, with its sample (if any), events and focus.
fn series(
    grid: &Grid,
    facts: &StreamFacts,
    bands: &[FocusBand],
    end: DateTime<Utc>,
) -> (Vec<Point>, bool) {
    let last = grid.bucket(end).unwrap_or(0);
    let last_sampled = facts.samples.last().map_or(0, |s| s.bucket);
    let steps = usize::try_from(last.max(last_sampled) + 1).unwrap_or(0);
    let listed = steps.min(MAX_POINTS);
    let mut samples = facts.samples.iter().peekable();
    let mut points = Vec::with_capacity(listed);
    for k in 0..listed as i64 {
        while samples.next_if(|s| s.bucket < k).is_some() {}
        let sample = samples.next_if(|s| s.bucket == k);
        let at = grid.start_of(k);
        let middle = at + chrono::TimeDelta::milliseconds(grid.step_ms / 2);
        let e = facts
            .buckets
            .get(&k)
            .copied()
            .unwrap_or(BucketEvents::default());
        points.push(Point {
            at,
            mode: sample.map(|s| s.mode),
            viewers: sample.map(|s| s.players.max(s.sockets)),
            players: sample.map(|s| s.players),
            sockets: sample.map(|s| s.sockets),
            chat: e.chat,
            clicks: e.clicks,
            orders: e.orders,
            redemptions: e.redemptions,
            follows: e.follows,
            cart_adds: e.cart_adds,
            focus_product_id: bands
                .iter()
                .rev()
                .find(|b| b.from <= middle && middle < b.to)
                .map(|b| b.product_id.clone()),
        });
    }
    (points, steps > listed)
}

/// The series as CSV, one line per step (empty cells where no sample was taken).
pub fn series_csv(report: &StreamReport) -> String {
    let mut out = String::from(
        "at,mode,viewers,players,sockets,chat,clicks,orders,redemptions,follows,focus_product_id,cart_adds\n",
    );
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    for p in &report.series {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            p.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            p.mode.map_or("", Mode::as_str),
            opt(p.viewers),
            opt(p.players),
            opt(p.sockets),
            p.chat,
            p.clicks,
            p.orders,
            p.redemptions,
            p.follows,
            // Product ids are [A-Za-z0-9_-]; nothing to quote.
            p.focus_product_id.as_deref().unwrap_or(""),
            p.cart_adds,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::analytics::{Sample, Sessions};
    use crate::store::{CreatorId, FocusedProduct, ProductId, StreamId, StreamKey};

    fn at(s: i64) -> DateTime<Utc> {
        "2026-12-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::TimeDelta::seconds(s)
    }

    fn stream(ended: Option<i64>) -> Stream {
        Stream {
            id: StreamId("s".into()),
            creator_id: CreatorId("c".into()),
            title: "Show".into(),
            category: None,
            scheduled_at: None,
            mode: Mode::Public,
            state: StreamState::Ended,
            stream_key: StreamKey::from_string("k".into()),
            created_at: at(-60),
            started_at: Some(at(0)),
            ended_at: ended.map(at),
            ladder: None,
        }
    }

    fn focus(seq: u32, product: Option<&str>, s: i64) -> FocusEvent {
        FocusEvent {
            seq,
            product: product.map(|p| FocusedProduct {
                id: ProductId(p.into()),
                title: format!("title {p}"),
                price: "1.00".into(),
                currency: "EUR".into(),
            }),
            media_ms: 0,
            program_date_time: at(s),
            created_at: at(s),
        }
    }

    fn sample(bucket: i64, mode: Mode, players: u32, sockets: u32) -> Sample {
        Sample {
            bucket,
            at: at(bucket * 10 + 1),
            mode,
            players,
            sockets,
        }
    }

    #[test]
    fn the_series_has_every_step_with_its_sample_events_and_focus() {
        let mut facts = StreamFacts {
            grid: Some(Grid {
                started_at: at(0),
                step_ms: 10_000,
            }),
            samples: vec![
                sample(0, Mode::Practice, 0, 0),
                sample(1, Mode::Public, 2, 3),
                sample(3, Mode::Public, 3, 1),
            ],
            live: Sessions {
                count: 4,
                watch_ms: 100_000,
            },
            public_ms: 30_000,
            ..StreamFacts::default()
        };
        facts.buckets.insert(
            1,
            BucketEvents {
                chat: 2,
                clicks: 1,
                ..BucketEvents::default()
            },
        );
        facts.clicks.insert("p1".into(), 1);
        let timeline = [
            focus(1, Some("p1"), 12),
            focus(2, None, 24),
            focus(3, Some("p2"), 30),
        ];
        let r = stream_report(&stream(Some(40)), &facts, &timeline, at(100));
        assert_eq!(r.series.len(), 5, "steps 0..=4 (the end falls in step 4)");
        let viewers: Vec<_> = r.series.iter().map(|p| p.viewers).collect();
        assert_eq!(viewers, [Some(0), Some(3), None, Some(3), None]);
        assert_eq!(r.series[1].chat, 2);
        assert_eq!(r.series[1].focus_product_id.as_deref(), Some("p1"));
        assert_eq!(r.series[2].focus_product_id, None, "cleared at 24 s");
        assert_eq!(r.series[3].focus_product_id.as_deref(), Some("p2"));
        assert_eq!(r.summary.peak_viewers, 3);
        assert_eq!(
            r.summary.peak_at,
            Some(at(10)),
            "the first step with the most"
        );
        assert_eq!(r.summary.unique_viewers, 4);
        assert_eq!(r.summary.avg_watch_time_s, 25.0);
        assert_eq!((r.summary.live_s, r.summary.public_s), (40.0, 30.0));
        assert_eq!(r.summary.practice_s, 10.0);
        let p: Vec<_> = r
            .summary
            .products
            .iter()
            .map(|p| (p.product_id.as_str(), p.minutes_in_focus * 60.0, p.clicks))
            .collect();
        assert_eq!(p, [("p1", 12.0, 1), ("p2", 10.0, 0)]);
        assert_eq!(r.focus.len(), 2);
        let csv = series_csv(&r);
        assert_eq!(csv.lines().count(), 6);
        assert!(
            csv.lines()
                .nth(2)
                .unwrap()
                .ends_with(",public,3,2,3,2,1,0,0,0,p1,0")
        );
        assert!(
            csv.lines().nth(3).unwrap().contains(",,,,,0,0"),
            "no sample"
        );
    }

    #[test]
    fn practice_steps_never_make_the_peak_and_a_stream_never_live_has_no_series() {
        let facts = StreamFacts {
            grid: Some(Grid {
                started_at: at(0),
                step_ms: 10_000,
            }),
            samples: vec![sample(0, Mode::Practice, 5, 5)],
            ..StreamFacts::default()
        };
        let r = stream_report(&stream(Some(5)), &facts, &[], at(100));
        assert_eq!((r.summary.peak_viewers, r.summary.peak_at), (0, None));
        let mut never = stream(None);
        never.started_at = None;
        let r = stream_report(&never, &StreamFacts::default(), &[], at(100));
        assert!(r.series.is_empty());
        assert_eq!(r.summary.live_s, 0.0);
    }

    #[test]
    fn totals_add_up_streams_and_money_per_currency() {
        let mut facts = StreamFacts {
            live: Sessions {
                count: 2,
                watch_ms: 60_000,
            },
            ..StreamFacts::default()
        };
        facts.orders.insert(
            "EUR".into(),
            ProductSales {
                currency: "EUR".into(),
                orders: 1,
                sales_minor: 1999,
                commission_minor: 60,
            },
        );
        let a = stream_report(&stream(Some(60)), &facts, &[], at(100)).summary;
        assert_eq!(
            stream_summary(&stream(Some(60)), &facts, &[], at(100)).summary,
            a
        );
        let t = totals([&a, &a]);
        assert_eq!((t.streams, t.unique_viewers, t.live_s), (2, 4, 120.0));
        assert_eq!(t.avg_watch_time_s, 30.0);
        assert_eq!(t.sales.len(), 1);
        assert_eq!((t.sales[0].orders, t.sales[0].sales.as_str()), (2, "39.98"));
    }
}
