//! Webhooks: events of a creator's streams posted to the creator's own URLs, signed (see
//! `signature`), from a durable outbox in the store so that a restart loses no pending delivery,
//! retried with exponential backoff, each attempt logged on the delivery.
pub mod signature;
pub mod target;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WebhooksConfig;
use crate::store::{CreatorId, Delivery, DeliveryState, Mode, Store, WebhookId};
use crate::streams::events::{EventKind, StreamEvent};
use crate::streams::sales::AuctionPhase;

/// What a webhook can subscribe to.
pub const EVENTS: &[&str] = &[
    "stream.started",
    "stream.public",
    "stream.ended",
    "recording.ready",
    "follower.added",
    "flash_sale.claimed",
    "auction.won",
    "destination.live",
    "destination.failed",
];
/// One attempt may take this long (connect, send, status line).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed delivery whose outcome was never recorded (its node died mid-attempt) is due
/// again after this: at least once, and in the normal case once.
const CLAIM: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Deliveries in flight at once.
const PARALLEL: usize = 8;
/// Deliveries of one creator's webhooks in flight at once (one per webhook in any case).
const PER_CREATOR: usize = 2;
/// After the outbox could not be read, try again after this.
const RETRY_READ: Duration = Duration::from_secs(1);
/// Without news, look at the outbox this often anyway.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// Backoff never grows beyond this.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The sender: queue events with `emit`; `run` delivers them.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    config: WebhooksConfig,
    wake: Arc<Notify>,
    pub counters: Arc<Counters>,
}

/// For `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    /// Attempts that failed (each is retried until `max_attempts`).
    pub failed_attempts: AtomicU64,
    /// Deliveries given up after `max_attempts`.
    pub given_up: AtomicU64,
}

impl Webhooks {
    pub fn new(store: Store, config: WebhooksConfig) -> Self {
        Webhooks {
            store,
            config,
            wake: Arc::default(),
            counters: Arc::default(),
        }
    }

    pub fn allow_private_targets(&self) -> bool {
        self.config.allow_private_targets
    }

    /// Queues `event` for every webhook of `creator` that subscribed to it. Errors are logged:
    /// an event that cannot be queued must not fail what caused it.
    /// The webhook a stream event makes, if any: `stream.started`, `stream.public` (practice →
    /// public), `stream.ended` (of a stream that was live) and `recording.ready`.
    pub async fn on_stream_event(&self, e: &StreamEvent) {
        let id = &e.stream;
        let (name, data) = match &e.kind {
            EventKind::WentLive { protocol } => (
                "stream.started",
                json!({"stream_id": id, "mode": e.status.mode, "protocol": protocol}),
            ),
            EventKind::ModeChanged { from, .. }
                if *from != Mode::Public && e.status.mode == Mode::Public =>
            {
                (
                    "stream.public",
                    json!({"stream_id": id, "state": e.status.state}),
                )
            }
            EventKind::Ended {
                was_live: true,
                reason,
            } => ("stream.ended", json!({"stream_id": id, "reason": reason})),
            EventKind::RecordingReady { bytes, duration_s } => (
                "recording.ready",
                json!({"stream_id": id, "bytes": bytes, "duration_s": duration_s}),
            ),
            // The shop turns it into a checkout and confirms the reservation (signed) before
            // `expires_at`, or the unit goes back to the sale.
            EventKind::FlashSaleClaimed { claim } => (
                "flash_sale.claimed",
                json!({
                    "stream_id": id,
                    "sale_id": claim.sale_id,
                    "reservation_id": claim.reservation_id,
                    "product_id": claim.product_id,
                    "viewer": claim.viewer,
                    "price": claim.price,
                    "currency": claim.currency,
                    "expires_at": claim.expires_at,
                    "confirm_path": format!("/api/v1/flash-sales/reservations/{}/confirm", claim.reservation_id),
                }),
            ),
            EventKind::Auction { auction } => match &auction.winner {
                Some(w) if auction.phase == AuctionPhase::Ended => (
                    "auction.won",
                    json!({
                        "stream_id": id,
                        "auction_id": auction.id,
                        "product_id": auction.product_id,
                        "winner": w.handle,
                        "amount": w.amount,
                        "currency": auction.currency,
                        "bids": auction.bids,
                    }),
                ),
                _ => return,
            },
            EventKind::DestinationChanged { destination: d } => {
                use crate::streams::simulcast::TargetState;
                let name = match d.state {
                    TargetState::Live => "destination.live",
                    TargetState::Retrying | TargetState::Failed => "destination.failed",
                    TargetState::Connecting | TargetState::Stopped => return,
                };
                (
                    name,
                    json!({"stream_id": id, "destination_id": d.id, "name": d.name,
                           "state": d.state, "error": d.error, "retry_at": d.retry_at}),
                )
            }
            _ => return,
        };
        self.emit(&e.creator, name, data).await;
    }

    pub async fn emit(&self, creator: &CreatorId, event: &str, data: Value) {
        debug_assert!(EVENTS.contains(&event), "{event}");
        let body = json!({
            "event": event,
            "created_at": Utc::now(),
            "data": data,
        })
        .to_string();
        match self.store.enqueue_event(creator, event, body).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(event, deliveries = n, "webhook event queued");
                self.wake.notify_one();
            }
            Err(e) => tracing::error!(event, error = %e, "could not queue a webhook event"),
        }
    }

    /// Delivers due deliveries until `shutdown`: up to `PARALLEL` at once, one per webhook and
    /// `PER_CREATOR` per creator, so that one creator's slow endpoints cannot hold every slot; a
    /// slot is refilled as soon as its attempt ends.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut attempts = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, (WebhookId, CreatorId)> = HashMap::new();
        loop {
            // Due deliveries that must wait for a slot (their webhook or creator is busy, or
            // all slots are): wake on a finished attempt rather than on the clock.
            let mut waiting = false;
            let mut failed = false;
            if in_flight.len() < PARALLEL {
                match self
                    .store
                    .due_deliveries(Utc::now(), PARALLEL as u32 * 4)
                    .await
                {
                    Ok(due) => {
                        for (creator, delivery) in due {
                            let creator_busy =
                                in_flight.values().filter(|(_, c)| *c == creator).count();
                            if in_flight.len() >= PARALLEL
                                || creator_busy >= PER_CREATOR
                                || in_flight.values().any(|(h, _)| *h == delivery.webhook_id)
                            {
                                waiting = true;
                                continue;
                            }
                            // Nodes that share the database share the outbox: one sends it.
                            let now = Utc::now();
                            match self
                                .store
                                .claim_delivery(delivery.id, now, now + CLAIM)
                                .await
                            {
                                Ok(true) => {}
                                Ok(false) => continue,
                                Err(e) => {
                                    tracing::error!(error = %e, "could not claim a webhook delivery");
                                    failed = true;
                                    continue;
                                }
                            }
                            let hook = delivery.webhook_id.clone();
                            let this = self.clone();
                            let task = attempts.spawn(async move { this.attempt(delivery).await });
                            in_flight.insert(task.id(), (hook, creator));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not read the webhook outbox");
                        failed = true;
                    }
                }
            } else {
                waiting = true;
            }
            let wait = if failed {
                RETRY_READ
            } else if waiting {
                IDLE_POLL
            } else {
                match self.store.next_delivery_at().await {
                    Ok(Some(next)) => (next - Utc::now()).to_std().unwrap_or(Duration::ZERO),
                    _ => IDLE_POLL,
                }
                .min(IDLE_POLL)
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(done) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "a webhook attempt failed to run");
                            e.id()
                        }
                    };
                    in_flight.remove(&id);
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // Attempts cut short stay pending and are sent again after the restart.
        attempts.shutdown().await;
    }

    fn backoff(&self, attempts: u32) -> Duration {
        self.config
            .retry_initial
            .saturating_mul(1 << attempts.min(20))
            .min(MAX_BACKOFF)
    }

    async fn attempt(&self, delivery: Delivery) {
        let outcome = self.send(&delivery).await;
        let attempts = delivery.attempts + 1;
        let (state, status, error) = match outcome {
            Ok(status) if (200..300).contains(&status) => {
                (DeliveryState::Delivered, Some(status), None)
            }
            Ok(status) => (
                DeliveryState::Pending,
                Some(status),
                Some(format!("HTTP {status}")),
            ),
            Err(e) => (DeliveryState::Pending, None, Some(e)),
        };
        let state = if state == DeliveryState::Pending && attempts >= self.config.max_attempts {
            DeliveryState::Failed
        } else {
            state
        };
        let counter = match state {
            DeliveryState::Delivered => &self.counters.delivered,
            DeliveryState::Pending => &self.counters.failed_attempts,
            DeliveryState::Failed => &self.counters.given_up,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let retry_at = Utc::now()
            + chrono::Duration::from_std(self.backoff(delivery.attempts)).unwrap_or_default();
        match (&state, &error) {
            (DeliveryState::Delivered, _) => {
                tracing::debug!(delivery = delivery.id, event = %delivery.event, "webhook delivered")
            }
            (_, Some(e)) => tracing::warn!(
                delivery = delivery.id, event = %delivery.event, attempts, state = state.as_str(),
                error = %e, "webhook delivery failed"
            ),
            _ => {}
        }
        if let Err(e) = self
            .store
            .record_attempt(delivery.id, state, status, error, retry_at)
            .await
        {
            tracing::error!(delivery = delivery.id, error = %e, "could not record a webhook attempt");
        }
    }

    /// One POST; the HTTP status, or why there was none.
    async fn send(&self, delivery: &Delivery) -> Result<u16, String> {
        let hook = self
            .store
            .webhook(&delivery.webhook_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("webhook deleted")?;
        // Resolved again at every attempt, and connected to exactly what was checked.
        let target = target::check(&hook.url, self.config.allow_private_targets)
            .await
            .map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .resolve_to_addrs(&target.host, &target.addrs)
            .user_agent(concat!("livefront/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let t = Utc::now().timestamp();
        let response = client
            .post(target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                signature::HEADER,
                signature::sign(hook.secret.as_bytes(), t, delivery.body.as_bytes()),
            )
            .header("X-Livefront-Event", &delivery.event)
            .header("X-Livefront-Delivery", delivery.id.to_string())
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        Ok(response.status().as_u16())
    }
}
