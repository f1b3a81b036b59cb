//! What the store keeps: creators, streams, recordings, and their identifiers.
use std::fmt;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::StreamKey;

const ID_LEN: usize = 16;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_id() -> String {
    let mut rng = rand::rng();
    (0..ID_LEN)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

macro_rules! id_type {
    ($name:ident) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn generate() -> Self {
                $name(random_id())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Ids are lowercase alphanumerics; anything else cannot name a record.
            pub fn parse(s: &str) -> Option<Self> {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                ok.then(|| $name(s.to_string()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(StreamId);
id_type!(CreatorId);
id_type!(WebhookId);
id_type!(DestinationId);
id_type!(ViewerId);
id_type!(ProductId);
id_type!(SaleId);
id_type!(AuctionId);
id_type!(ReservationId);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Practice,
    Public,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Practice => "practice",
            Mode::Public => "public",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "practice" => Some(Mode::Practice),
            "public" => Some(Mode::Public),
            _ => None,
        }
    }
}

/// The stored lifecycle; `scheduled` is derived from `ready` plus a future `scheduled_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Ready,
    Live,
    Ended,
}

impl StreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Ready => "ready",
            StreamState::Live => "live",
            StreamState::Ended => "ended",
        }
    }
    pub fn parse(s: &str) -> Option<StreamState> {
        match s {
            "ready" => Some(StreamState::Ready),
            "live" => Some(StreamState::Live),
            "ended" => Some(StreamState::Ended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Creator {
    pub id: CreatorId,
    pub handle: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Stream {
    pub id: StreamId,
    pub creator_id: CreatorId,
    pub title: String,
    pub category: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub mode: Mode,
    pub state: StreamState,
    pub stream_key: StreamKey,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Ladder preset picked for this stream; `None` = the server's default.
    pub ladder: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewStream {
    pub creator_id: CreatorId,
    pub title: String,
    pub category: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub mode: Mode,
    pub ladder: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    Recording,
    Finalizing,
    Ready,
    Failed,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Finalizing => "finalizing",
            RecordingState::Ready => "ready",
            RecordingState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<RecordingState> {
        match s {
            "recording" => Some(RecordingState::Recording),
            "finalizing" => Some(RecordingState::Finalizing),
            "ready" => Some(RecordingState::Ready),
            "failed" => Some(RecordingState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub stream_id: StreamId,
    pub state: RecordingState,
    pub bytes: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// Who made a request, from a bearer token.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Admin,
    Creator(CreatorId),
    Viewer(ViewerId),
}

impl Principal {
    /// Whether this principal may see and control `stream`.
    pub fn owns(&self, stream: &Stream) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Creator(id) => *id == stream.creator_id,
            Principal::Viewer(_) => false,
        }
    }
}

/// A creator's webhook (its secret is only shown when it is created).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub id: WebhookId,
    #[serde(skip)]
    pub creator_id: CreatorId,
    pub url: String,
    pub events: Vec<String>,
    #[serde(skip)]
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One event on its way to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: i64,
    #[serde(skip)]
    pub webhook_id: WebhookId,
    pub event: String,
    #[serde(skip)]
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Viewer {
    pub id: ViewerId,
    pub handle: String,
    pub created_at: DateTime<Utc>,
}

/// What followers are told about a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Announcement {
    /// The stream is live and public.
    Live,
    /// A public stream was scheduled.
    Upcoming,
    /// A stream the viewer asked to be reminded of reached its scheduled time.
    Reminder,
    /// The viewer won an auction of the stream (`detail`: auction, product, amount).
    AuctionWon,
    /// The viewer claimed a unit of a flash sale (`detail`: sale, reservation, product, price,
    /// until when the shop may confirm it).
    FlashSaleClaimed,
}

impl Announcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Announcement::Live => "live",
            Announcement::Upcoming => "upcoming",
            Announcement::Reminder => "reminder",
            Announcement::AuctionWon => "auction_won",
            Announcement::FlashSaleClaimed => "flash_sale_claimed",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        [
            Announcement::Live,
            Announcement::Upcoming,
            Announcement::Reminder,
            Announcement::AuctionWon,
            Announcement::FlashSaleClaimed,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
    }
}

/// One entry of a viewer's notification feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub id: i64,
    pub kind: Announcement,
    pub stream_id: StreamId,
    pub title: String,
    pub creator: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
    /// What a sale notification is about (absent for the stream announcements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// A product of a creator's catalog.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Product {
    #[schema(value_type = String)]
    pub id: ProductId,
    #[serde(skip)]
    #[schema(ignore)]
    pub creator_id: CreatorId,
    pub sku: String,
    pub title: String,
    /// Decimal string, e.g. "19.99" (never a float).
    pub price: String,
    /// ISO 4217 code, e.g. "EUR".
    pub currency: String,
    pub image_url: Option<String>,
    pub url: Option<String>,
    pub category: Option<String>,
    pub created_at: DateTime<Utc>,
}
