//! The live event channel of each stream: chat, moderation, product focus, viewer counts and
//! state changes, fanned out to every connected client of that stream.
//!
//! Events are serialised once per send and shared (`Arc<str>`) by every receiver; a receiver that
//! falls `EVENT_BUFFER` events behind is told it lagged (the WebSocket drops it), so a slow client
//! never slows the others.
//!
//! [`chat::Chat`] posts and moderates messages and counts connections ([`rooms`]); the WebSocket
//! server in `http::live` carries the events to clients.
pub mod chat;
pub mod nodes;
pub mod rate;
pub mod rooms;
pub mod wire;
pub mod words;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::bus::Bus;
use crate::config::EVENT_BUFFER;
use crate::shop::promos::{Phase, PromoOffer};
pub use crate::store::{ChatBan, ChatMessage, ChatRole};
use crate::store::{FocusEvent, Mode, ProductId, Store, StreamId};
pub use crate::streams::events::StreamStatus;
use crate::streams::events::{EventKind, Listener, StreamEvent};
use crate::streams::sales::{AuctionView, SaleView};

/// One event of a stream's live channel, as clients receive it (`{"type":"…",…}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The host focused a product (or cleared the focus: `product_id` null).
    ProductFocused(Focus),
    /// A promo code became visible to viewers (created while active, or its stream went public).
    PromoStarted(PromoOffer),
    /// A chat message (also replayed on join, oldest first).
    ChatMessage(ChatMessage),
    /// A chat message was deleted by a moderator: remove it.
    MessageDeleted(MessageDeleted),
    /// A viewer was banned (or timed out) from the chat of this creator's streams.
    UserBanned(UserBanned),
    /// A viewer's ban was lifted.
    UserUnbanned(UserUnbanned),
    /// Audience counts, sent when they change.
    ViewerCount(ViewerCount),
    /// The stream's lifecycle and visibility (sent on join and on every change).
    StreamState(StreamStatus),
    /// A flash sale was created, opened, changed its remaining quantity, sold out or ended.
    FlashSale(SaleView),
    /// An auction was created, took a bid (`last_bid`), or ended (`winner`).
    Auction(AuctionView),
    /// A simulcast target of the stream changed state. Sent to the stream's owner only.
    DestinationState(crate::streams::simulcast::TargetStatus),
    /// Sent only to the client whose message was refused (or who sent something unreadable).
    Error(ErrorEvent),
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageDeleted {
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserBanned {
    /// The viewer's handle.
    pub user: String,
    /// When the ban ends by itself; null: until it is lifted.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserUnbanned {
    pub user: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ViewerCount {
    /// HLS players (sessions that fetched a playlist within the last 30 s).
    pub watching: usize,
    /// Open live-channel connections (this WebSocket), the host's included.
    pub connected: usize,
}

/// Why a client's message was refused: `code` is one of `unauthorized`, `forbidden`,
/// `bad_request`, `empty`, `too_long`, `rate_limited`, `banned`, `blocked_word`, `stream_ended`,
/// `internal`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ErrorEvent {
    pub code: String,
    pub message: String,
    /// `rate_limited`: when the next message will be accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// `banned`: when the ban ends (absent: until it is lifted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// What a client sends (`{"type":"chat_message","text":"…"}`).
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    ChatMessage {
        text: String,
    },
    /// A bid on an auction of the stream, like `POST …/auctions/{auction}/bids` (viewers only):
    /// accepted bids are announced as `auction` events, refused ones come back as `error`.
    Bid {
        auction_id: String,
        amount: Option<String>,
        max_amount: Option<String>,
    },
}

impl LiveEvent {
    /// The event as clients receive it.
    pub fn to_text(&self) -> Arc<str> {
        serde_json::to_string(self)
            .expect("live events serialise")
            .into()
    }
}

/// The id of a serialised `chat_message` event (`None` for other events), read without parsing
/// the whole event: [`ChatMessage`] serialises `id` first.
pub fn chat_message_id(event: &str) -> Option<i64> {
    let rest = event.strip_prefix(r#"{"type":"chat_message","id":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// The mode a serialised `stream_state` event announces (`None` for other events).
pub fn announced_mode(event: &str) -> Option<Mode> {
    if !event.starts_with(r#"{"type":"stream_state""#) {
        return None;
    }
    serde_json::from_str::<StreamStatus>(event)
        .ok()
        .map(|s| s.mode)
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

/// The live channel's share of stream events: `stream_state` on every change of state or mode,
/// `product_focused`, and `promo_started` for the codes that turn active when a public stream goes
/// live or a live stream turns public.
pub struct Channel {
    hub: LiveHub,
    store: Store,
    runtime: tokio::runtime::Handle,
}

impl Channel {
    /// Within a Tokio runtime (promo codes are read on it).
    pub fn new(hub: LiveHub, store: Store) -> Self {
        Channel {
            hub,
            store,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Listener for Channel {
    fn on(&self, e: &StreamEvent) {
        match &e.kind {
            EventKind::FocusChanged { focus } => {
                self.hub
                    .send(&e.stream, &LiveEvent::ProductFocused(Focus::from(focus)));
            }
            EventKind::FlashSale { sale } => {
                self.hub
                    .send(&e.stream, &LiveEvent::FlashSale(sale.clone()));
            }
            EventKind::Auction { auction } => {
                self.hub
                    .send(&e.stream, &LiveEvent::Auction(auction.clone()));
            }
            EventKind::DestinationChanged { destination } => {
                self.hub
                    .send(&e.stream, &LiveEvent::DestinationState(destination.clone()));
            }
            // Claims go to the shop (webhook); viewers hear the remaining quantity.
            EventKind::FlashSaleClaimed { .. }
            | EventKind::Created { .. }
            | EventKind::RecordingReady { .. }
            | EventKind::RecordingFailed { .. } => {}
            _ => self
                .hub
                .send(&e.stream, &LiveEvent::StreamState(e.status.clone())),
        }
        let public = e.status.mode == Mode::Public;
        let phase = match &e.kind {
            EventKind::WentLive { .. } if public => Phase::Live,
            EventKind::ModeChanged { from, running } if public && *from != Mode::Public => {
                Phase::of(e.status.state, running.then_some(false))
            }
            _ => return,
        };
        let (store, hub, id, mode) = (
            self.store.clone(),
            self.hub.clone(),
            e.stream.clone(),
            e.status.mode,
        );
        self.runtime.spawn(async move {
            let announced = match store.stream(&id).await {
                Ok(Some(mut s)) => {
                    s.mode = mode;
                    announce_promos(&store, &hub, &s, phase).await
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = announced {
                tracing::error!(stream = %id, error = %e, "could not announce the stream's promo codes");
            }
        });
    }
}

/// Sends `promo_started` for every code of the stream active now (`stream.mode` the effective
/// one): when a live stream turns public, or a public stream goes live.
pub async fn announce_promos(
    store: &crate::store::Store,
    hub: &LiveHub,
    stream: &crate::store::Stream,
    phase: crate::shop::promos::Phase,
) -> Result<(), crate::store::Error> {
    use crate::shop::promos::{PromoState, offer, promo_state};
    let now = Utc::now();
    for p in store.promos_of_stream(&stream.id).await? {
        if promo_state(&p, stream, phase, now) == PromoState::Active {
            hub.send(&stream.id, &LiveEvent::PromoStarted(offer(&p)));
        }
    }
    Ok(())
}

/// The channels of the streams that have listeners, and the bus to the other nodes (if any).
#[derive(Clone)]
pub struct LiveHub {
    channels: Arc<Mutex<HashMap<StreamId, broadcast::Sender<Arc<str>>>>>,
    /// Events a receiver may fall behind.
    buffer: usize,
    bus: Option<Arc<Bus>>,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub::with_buffer(EVENT_BUFFER)
    }
}

impl LiveHub {
    /// A hub whose receivers may fall `buffer` events behind (`chat.queue`).
    pub fn with_buffer(buffer: usize) -> Self {
        LiveHub {
            channels: Arc::default(),
            buffer: buffer.max(1),
            bus: None,
        }
    }

    /// The same hub, whose events also reach the other nodes' sockets over `bus`.
    pub fn with_bus(self, bus: Arc<Bus>) -> Self {
        LiveHub {
            bus: Some(bus),
            ..self
        }
    }

    pub fn bus(&self) -> Option<&Arc<Bus>> {
        self.bus.as_ref()
    }

    /// Sends an event to everyone listening to the stream, on this node and (those that cross,
    /// see [`wire::crosses_nodes`]) on the others (nobody listening is fine).
    pub fn send(&self, stream: &StreamId, event: &LiveEvent) {
        let text = event.to_text();
        if let Some(bus) = &self.bus
            && wire::crosses_nodes(&text)
        {
            let wire = wire::Wire::Event {
                stream: stream.to_string(),
                event: text.to_string(),
            };
            bus.publish(&wire.subject(), &wire);
        }
        self.deliver(stream, text);
    }

    /// Sends a serialised event to this node's listeners of the stream only.
    pub fn deliver(&self, stream: &StreamId, text: Arc<str>) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(stream) {
            let _ = tx.send(text);
        }
    }

    /// Tells the other nodes (if any).
    pub fn publish(&self, wire: &wire::Wire) {
        if let Some(bus) = &self.bus {
            bus.publish(&wire.subject(), wire);
        }
    }

    /// A receiver of the stream's events from now on.
    pub fn subscribe(&self, stream: &StreamId) -> broadcast::Receiver<Arc<str>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // Channels nobody listens to any more are forgotten.
        channels.retain(|_, tx| tx.receiver_count() > 0);
        channels
            .entry(stream.clone())
            .or_insert_with(|| broadcast::channel(self.buffer).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StreamState;

    fn message(id: i64) -> LiveEvent {
        LiveEvent::ChatMessage(ChatMessage {
            id,
            user: "fan".into(),
            role: ChatRole::Viewer,
            text: "hi \"there\"".into(),
            at: Utc::now(),
        })
    }

    #[test]
    fn chat_message_ids_are_read_from_the_serialised_event() {
        assert_eq!(chat_message_id(&message(4711).to_text()), Some(4711));
        let deleted = LiveEvent::MessageDeleted(MessageDeleted { id: 3 }).to_text();
        assert_eq!(chat_message_id(&deleted), None);
    }

    #[test]
    fn event_shapes() {
        let v: serde_json::Value = serde_json::from_str(&message(1).to_text()).unwrap();
        assert_eq!(v["type"], "chat_message");
        assert_eq!(v["role"], "viewer");
        let state = LiveEvent::StreamState(StreamStatus {
            state: StreamState::Live,
            mode: Mode::Practice,
            reconnecting: false,
        })
        .to_text();
        assert_eq!(
            &*state,
            r#"{"type":"stream_state","state":"live","mode":"practice","reconnecting":false}"#
        );
        assert_eq!(announced_mode(&state), Some(Mode::Practice));
        assert_eq!(announced_mode(&message(1).to_text()), None);
        let error = LiveEvent::Error(ErrorEvent {
            code: "rate_limited".into(),
            message: "slow down".into(),
            retry_after_ms: Some(1500),
            until: None,
        })
        .to_text();
        assert_eq!(
            &*error,
            r#"{"type":"error","code":"rate_limited","message":"slow down","retry_after_ms":1500}"#
        );
        let client: ClientMessage =
            serde_json::from_str(r#"{"type":"chat_message","text":"hello"}"#).unwrap();
        assert_eq!(
            client,
            ClientMessage::ChatMessage {
                text: "hello".into()
            }
        );
    }

    #[tokio::test]
    async fn a_receiver_that_falls_behind_the_buffer_is_told_it_lagged() {
        let hub = LiveHub::with_buffer(4);
        let id = StreamId("s".into());
        let mut slow = hub.subscribe(&id);
        for i in 0..10 {
            hub.send(&id, &message(i));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(6))
        ));
    }
}
