//! What happens to streams, as typed events: the stream owner emits them, everything that reacts
//! (the live channel, promo codes, webhooks, follower notifications, metrics) listens.
//!
//! Order is part of the contract: one stream's events reach every listener in the order they
//! happened. Listeners are called in turn, synchronously, where the owner emits (so they must not
//! block: [`queued`] hands events to an ordered async worker); then the event goes on a bounded
//! broadcast for subscribers ([`Events::subscribe`]). Events carry plain data only (ids, states,
//! numbers) and serialise, so that they can later travel between nodes.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::sales::view::{AuctionView, ClaimView, SaleView};
use crate::store::{CreatorId, FocusEvent, Mode, StreamId, StreamState};

/// Events a subscriber may fall behind before it is told it lagged.
const BROADCAST_BUFFER: usize = 4096;
/// Events a [`queued`] listener's worker may fall behind before new ones are dropped (and counted).
const QUEUE_BUFFER: usize = 4096;

/// A stream's state as viewers are told it (`stream_state` on the live channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamStatus {
    /// The stored lifecycle: `ready` (not live yet, or scheduled), `live` or `ended`.
    #[schema(value_type = String)]
    pub state: StreamState,
    pub mode: Mode,
    /// Live, but the publisher dropped and the stream waits for it (`ingest.reconnect_grace`).
    pub reconnecting: bool,
}

/// Something that happened to one stream, with the stream's status right after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    pub stream: StreamId,
    pub creator: CreatorId,
    pub status: StreamStatus,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The creator made the stream (to go live now or at `scheduled_at`).
    Created {
        scheduled_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The first media arrived and the pipeline runs: the stream is live.
    WentLive { protocol: String },
    /// Practice ↔ public. `running`: the stream has a running pipeline (it is live now).
    ModeChanged { from: Mode, running: bool },
    /// The host focused a product, or cleared the focus (`focus.product` is `None`).
    FocusChanged { focus: FocusEvent },
    /// The publisher dropped; the stream waits `ingest.reconnect_grace` for it.
    PublisherDropped,
    /// A publisher came back within the grace and the stream goes on.
    PublisherResumed { protocol: String },
    /// A publisher left before sending any media: the stream stays ready.
    PublisherLeft,
    /// An admin took the stream down (it turned practice for good; a live one ends next).
    TakenDown,
    /// The stream ended. `was_live`: it had been live (a pipeline ran).
    Ended { was_live: bool, reason: String },
    /// The recording is finalised and can be downloaded.
    RecordingReady { bytes: u64, duration_s: f64 },
    /// The recording could not be made.
    RecordingFailed { error: String },
    /// A flash sale was created, opened, sold out, got units back, or ended.
    FlashSale { sale: SaleView },
    /// A viewer claimed a unit of a flash sale: a reservation for the shop to confirm.
    FlashSaleClaimed { claim: ClaimView },
    /// An auction was created, took a bid, or ended (with its winner, if any).
    Auction { auction: AuctionView },
    /// A simulcast target changed state (connecting, live, retrying, failed, stopped).
    DestinationChanged {
        destination: super::simulcast::TargetStatus,
    },
}

impl EventKind {
    /// The event's name (its serialised `type`), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "created",
            EventKind::WentLive { .. } => "went_live",
            EventKind::ModeChanged { .. } => "mode_changed",
            EventKind::FocusChanged { .. } => "focus_changed",
            EventKind::PublisherDropped => "publisher_dropped",
            EventKind::PublisherResumed { .. } => "publisher_resumed",
            EventKind::PublisherLeft => "publisher_left",
            EventKind::TakenDown => "taken_down",
            EventKind::Ended { .. } => "ended",
            EventKind::RecordingReady { .. } => "recording_ready",
            EventKind::RecordingFailed { .. } => "recording_failed",
            EventKind::FlashSale { .. } => "flash_sale",
            EventKind::FlashSaleClaimed { .. } => "flash_sale_claimed",
            EventKind::Auction { .. } => "auction",
            EventKind::DestinationChanged { .. } => "destination_changed",
        }
    }
}

/// Reacts to stream events; called where they are emitted, so it must return at once.
pub trait Listener: Send + Sync {
    fn on(&self, event: &StreamEvent);
}

/// Where the stream owner emits its events.
pub struct Events {
    listeners: Vec<Arc<dyn Listener>>,
    broadcast: broadcast::Sender<StreamEvent>,
}

impl Events {
    pub fn new(listeners: Vec<Arc<dyn Listener>>) -> Self {
        Events {
            listeners,
            broadcast: broadcast::channel(BROADCAST_BUFFER).0,
        }
    }

    /// Tells every listener, in turn, then the subscribers. The caller emits one stream's events
    /// in the order they happen.
    pub fn emit(&self, event: StreamEvent) {
        tracing::debug!(stream = %event.stream, event = event.kind.name(), "stream event");
        for listener in &self.listeners {
            listener.on(&event);
        }
        // No subscriber is fine.
        let _ = self.broadcast.send(event);
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StreamEvent> {
        self.broadcast.subscribe()
    }
}

/// A listener that hands events, in order, to `handle` on one task of its own: for reactions that
/// wait (the store, the network). Events beyond the queue's bound are dropped, logged and counted
/// in `dropped` rather than stall the stream owner.
pub fn queued<F, Fut>(name: &'static str, dropped: Arc<AtomicU64>, handle: F) -> Arc<dyn Listener>
where
    F: Fn(StreamEvent) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::channel::<StreamEvent>(QUEUE_BUFFER);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            handle(event).await;
        }
    });
    Arc::new(Queued { name, tx, dropped })
}

struct Queued {
    name: &'static str,
    tx: mpsc::Sender<StreamEvent>,
    dropped: Arc<AtomicU64>,
}

impl Listener for Queued {
    fn on(&self, event: &StreamEvent) {
        if self.tx.try_send(event.clone()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(listener = self.name, stream = %event.stream, event = event.kind.name(), "stream event dropped: the listener is too far behind");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Record(Mutex<Vec<&'static str>>);

    impl Listener for Record {
        fn on(&self, event: &StreamEvent) {
            self.0.lock().unwrap().push(event.kind.name());
        }
    }

    fn event(kind: EventKind) -> StreamEvent {
        StreamEvent {
            stream: StreamId::parse("aaaaaaaaaaaaaaaa").unwrap(),
            creator: CreatorId("c".into()),
            status: StreamStatus {
                state: StreamState::Live,
                mode: Mode::Public,
                reconnecting: false,
            },
            kind,
        }
    }

    #[tokio::test]
    async fn listeners_then_subscribers_get_events_in_order() {
        let record = Arc::new(Record(Mutex::new(Vec::new())));
        let events = Events::new(vec![record.clone()]);
        let mut rx = events.subscribe();
        events.emit(event(EventKind::PublisherDropped));
        events.emit(event(EventKind::PublisherResumed {
            protocol: "rtmp".into(),
        }));
        assert_eq!(
            *record.0.lock().unwrap(),
            ["publisher_dropped", "publisher_resumed"]
        );
        assert_eq!(rx.recv().await.unwrap().kind, EventKind::PublisherDropped);
        assert_eq!(rx.recv().await.unwrap().kind.name(), "publisher_resumed");
    }

    #[tokio::test]
    async fn a_queued_listener_handles_events_in_order_and_counts_what_it_drops() {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let listener = queued("test", dropped.clone(), move |e: StreamEvent| {
            let done_tx = done_tx.clone();
            async move {
                let _ = done_tx.send(e.kind.name());
            }
        });
        listener.on(&event(EventKind::PublisherLeft));
        listener.on(&event(EventKind::TakenDown));
        assert_eq!(done_rx.recv().await, Some("publisher_left"));
        assert_eq!(done_rx.recv().await, Some("taken_down"));
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn events_serialise_as_plain_data() {
        let v = serde_json::to_value(event(EventKind::Ended {
            was_live: true,
            reason: "publisher_stopped".into(),
        }))
        .unwrap();
        assert_eq!(v["kind"]["type"], "ended");
        assert_eq!(v["status"]["mode"], "public");
        let back: StreamEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back.kind.name(), "ended");
    }
}
