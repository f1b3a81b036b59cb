//! The live event channel of each stream: chat, moderation, product focus, viewer counts and
//! state changes, fanned out to every connected client of that stream.
//!
//! Events are serialised once per send and shared (`Arc<str>`) by every receiver; a receiver that
//! falls `EVENT_BUFFER` events behind is told it lagged (the WebSocket drops it), so a slow client
//! never slows the others.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::store::{FocusEvent, ProductId, StreamId};

/// Events a receiver may fall behind before it is dropped.
pub const EVENT_BUFFER: usize = 256;

/// One event of a stream's live channel, as clients receive it (`{"type":"…",…}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The host focused a product (or cleared the focus: `product_id` null).
    ProductFocused(Focus),
    /// A promo code became visible to viewers (created while active, or its stream went public).
    PromoStarted(PromoOffer),
}

/// A focus change, stamped with the media time of the newest frame ingested when it was made.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Focus {
    /// The `EXT-X-DATERANGE` id of this focus in the media playlists (`focus-N`).
    pub id: String,
    #[schema(value_type = Option<String>)]
    pub product_id: Option<ProductId>,
    pub title: Option<String>,
    pub price: Option<String>,
    pub currency: Option<String>,
    /// Media time of the stream (ms since its first frame; the recording's timeline).
    pub media_time_ms: u64,
    /// The same instant on the segments' `EXT-X-PROGRAM-DATE-TIME` clock (the DATERANGE's START-DATE).
    pub program_date_time: DateTime<Utc>,
}

impl From<&FocusEvent> for Focus {
    fn from(e: &FocusEvent) -> Self {
        let p = e.product.as_ref();
        Focus {
            id: e.marker_id(),
            product_id: p.map(|p| p.id.clone()),
            title: p.map(|p| p.title.clone()),
            price: p.map(|p| p.price.clone()),
            currency: p.map(|p| p.currency.clone()),
            media_time_ms: e.media_ms,
            program_date_time: e.program_date_time,
        }
    }
}

/// The channels of the streams that have listeners.
#[derive(Clone, Default)]
pub struct LiveHub {
    channels: Arc<Mutex<HashMap<StreamId, broadcast::Sender<Arc<str>>>>>,
}

impl LiveHub {
    /// Sends an event to everyone listening to the stream (nobody listening is fine).
    pub fn send(&self, stream: &StreamId, event: &LiveEvent) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(stream) {
            let text: Arc<str> = serde_json::to_string(event)
                .expect("live events serialise")
                .into();
            let _ = tx.send(text);
        }
    }

    /// A receiver of the stream's events from now on.
    pub fn subscribe(&self, stream: &StreamId) -> broadcast::Receiver<Arc<str>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // Channels nobody listens to any more are forgotten.
        channels.retain(|_, tx| tx.receiver_count() > 0);
        channels
            .entry(stream.clone())
            .or_insert_with(|| broadcast::channel(EVENT_BUFFER).0)
            .subscribe()
    }
}

/// A promo code as viewers see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PromoOffer {
    pub code: String,
    pub description: String,
    /// "10%" or "5.00 EUR".
    pub discount: String,
    /// Valid only while the stream is live (and public).
    pub live_only: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}
