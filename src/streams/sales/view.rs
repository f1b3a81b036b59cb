//! What the API and the live channel show of flash sales and auctions (the stream's events carry
//! these, so they stand apart from the owner that makes them).
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::flash_sale::Phase;

/// A flash sale as the API and the live channel show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaleView {
    pub id: String,
    pub stream_id: String,
    pub product_id: String,
    pub title: String,
    pub currency: String,
    /// The sale price (decimal string).
    pub price: String,
    /// The product's price outside the sale.
    pub list_price: String,
    pub quantity: u32,
    pub per_viewer_limit: u32,
    /// Units not held by a claim (a reservation that expires gives its unit back).
    pub remaining: u32,
    pub phase: Phase,
    /// Server times: the sale takes claims from `starts_at` until `ends_at`.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Its `EXT-X-DATERANGE` id (`CLASS="com.livefront.flash-sale"`) and the dates it has on the
    /// segments' `PROGRAM-DATE-TIME` clock: what a player lines the countdown up with.
    pub marker_id: String,
    pub starts_program_date_time: DateTime<Utc>,
    pub ends_program_date_time: DateTime<Utc>,
    /// The date of the picture when the host announced the sale (`countdown_s` before it opens):
    /// a player shows the countdown from when its picture reaches this date.
    pub announced_program_date_time: DateTime<Utc>,
    /// When a claim took the last unit (server time) and the picture's date then, where its
    /// marker ends; set once (units given back later reopen claims, not the marker).
    pub sold_out_at: Option<DateTime<Utc>>,
    pub sold_out_program_date_time: Option<DateTime<Utc>>,
    /// The server's clock when this was sent (clients keep the offset, not their own clock).
    pub server_time: DateTime<Utc>,
}

/// A claim: one unit held for the shop to confirm (webhook `flash_sale.claimed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimView {
    pub reservation_id: String,
    pub sale_id: String,
    pub stream_id: String,
    pub product_id: String,
    pub viewer: String,
    pub price: String,
    pub currency: String,
    /// Unconfirmed by then, the unit goes back to the sale.
    pub expires_at: DateTime<Utc>,
    pub remaining: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuctionPhase {
    Running,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Winner {
    pub handle: String,
    pub amount: String,
}

/// An accepted bid as everyone sees it (proxy maximums stay secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BidView {
    pub seq: u32,
    /// Who bid.
    pub bidder: String,
    /// The price after it.
    pub price: String,
    pub at: DateTime<Utc>,
    /// Its `EXT-X-DATERANGE` (`CLASS="com.livefront.auction-bid"`) and that marker's date.
    pub marker_id: String,
    pub program_date_time: Option<DateTime<Utc>>,
    /// It moved the end (anti-sniping).
    pub extended: bool,
}

/// An auction as the API and the live channel show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuctionView {
    pub id: String,
    pub stream_id: String,
    pub product_id: String,
    pub title: String,
    pub currency: String,
    pub starting_price: String,
    /// The current price; null before the first bid.
    pub price: Option<String>,
    /// The least the next bid must be.
    pub minimum_bid: String,
    /// Handle of the highest bidder.
    pub leader: Option<String>,
    pub bids: u32,
    pub phase: AuctionPhase,
    pub starts_at: DateTime<Utc>,
    /// Server time; moves with anti-sniping.
    pub ends_at: DateTime<Utc>,
    pub sudden_death: bool,
    pub extend_on_bid_s: u32,
    /// Once over: who won, at what price (null without bids).
    pub winner: Option<Winner>,
    /// The bid this event is about.
    pub last_bid: Option<BidView>,
    pub marker_id: String,
    pub server_time: DateTime<Utc>,
}
