//! Followers are told when a creator goes live in public (once per stream, whatever flaps) and when
//! a public stream is scheduled: a stored feed per viewer, and a live push to viewers connected to
//! `GET /api/v1/me/events`. Practice streams never notify. Viewers who asked to be reminded of
//! an upcoming stream are told when its scheduled time comes (stored, so once, across restarts).
//! The winner of an auction and a viewer who claimed a flash-sale unit get an entry of their own
//! (once per auction or reservation, also when a restart closes the auction).
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use serde_json::json;

use crate::store::{
    Announcement, AuctionId, Mode, Notification, ReservationId, Store, StreamId, StreamState,
    ViewerId,
};
use crate::streams::events::{EventKind, StreamEvent};
use crate::streams::sales::AuctionPhase;

/// Pushes waiting for slow event-stream readers; beyond this a reader skips ahead (the feed keeps
/// everything).
const PUSH_BUFFER: usize = 1024;
/// Reminders sent per store transaction (more due: another round at once).
const REMINDER_BATCH: u32 = 500;
/// The reminder task looks again at least this often (a stream made public or rescheduled).
const REMINDER_RECHECK: Duration = Duration::from_secs(30);
/// The shortest wait between rounds (no busy loop whatever the clock does).
const REMINDER_MIN_WAIT: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct Notifier {
    store: Store,
    push: broadcast::Sender<(ViewerId, Notification)>,
    /// Wakes the reminder task (a reminder was added, a stream changed).
    reminders: Arc<Notify>,
}

impl Notifier {
    pub fn new(store: Store) -> Self {
        Notifier {
            store,
            push: broadcast::channel(PUSH_BUFFER).0,
            reminders: Arc::new(Notify::new()),
        }
    }

    /// Followers hear of a public stream once it is live (once per stream), or of an upcoming one
    /// once it is made public while scheduled.
    pub async fn on_stream_event(&self, e: &StreamEvent) {
        // A stream going live, made public, ended or taken down changes which reminders fire.
        if matches!(
            e.kind,
            EventKind::WentLive { .. }
                | EventKind::ModeChanged { .. }
                | EventKind::Ended { .. }
                | EventKind::TakenDown
        ) {
            self.reminders_changed();
        }
        let public = e.status.mode == Mode::Public;
        match &e.kind {
            EventKind::Created {
                scheduled_at: Some(t),
            } if public && *t > chrono::Utc::now() => {
                self.announce(&e.stream, Announcement::Upcoming).await
            }
            EventKind::WentLive { .. } if public => {
                self.announce(&e.stream, Announcement::Live).await
            }
            EventKind::ModeChanged { from, running } if public && *from != Mode::Public => {
                if *running {
                    self.announce(&e.stream, Announcement::Live).await;
                } else if e.status.state == StreamState::Ready
                    && self.scheduled_ahead(&e.stream).await
                {
                    self.announce(&e.stream, Announcement::Upcoming).await;
                }
            }
            EventKind::Auction { auction }
                if auction.phase == AuctionPhase::Ended && auction.winner.is_some() =>
            {
                let id = AuctionId(auction.id.clone());
                // The winner as the store closed the auction (the event names a handle only).
                let winner = match self.store.auction(&e.stream, &id).await {
                    Ok(a) => a.and_then(|a| a.winner),
                    Err(err) => {
                        tracing::error!(auction = %id, error = %err, "could not read an auction's winner");
                        None
                    }
                };
                if let Some((_, viewer, _)) = winner {
                    let detail = json!({
                        "auction_id": auction.id,
                        "product_id": auction.product_id,
                        "product": auction.title,
                        "amount": auction.winner.as_ref().map(|w| &w.amount),
                        "currency": auction.currency,
                    });
                    self.tell(
                        &viewer,
                        &e.stream,
                        Announcement::AuctionWon,
                        &auction.id,
                        detail,
                    )
                    .await;
                }
            }
            EventKind::FlashSaleClaimed { claim } => {
                let Some(reservation) = ReservationId::parse(&claim.reservation_id) else {
                    return;
                };
                match self.store.claimer(&reservation).await {
                    Ok(Some(viewer)) => {
                        let detail = json!({
                            "sale_id": claim.sale_id,
                            "reservation_id": claim.reservation_id,
                            "product_id": claim.product_id,
                            "price": claim.price,
                            "currency": claim.currency,
                            "expires_at": claim.expires_at,
                        });
                        self.tell(
                            &viewer,
                            &e.stream,
                            Announcement::FlashSaleClaimed,
                            &claim.reservation_id,
                            detail,
                        )
                        .await;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(error = %err, "could not read who claimed a reservation")
                    }
                }
            }
            _ => {}
        }
    }

    /// One viewer's entry about `subject` (made once), pushed to their open pages.
    async fn tell(
        &self,
        viewer: &ViewerId,
        stream: &StreamId,
        kind: Announcement,
        subject: &str,
        detail: serde_json::Value,
    ) {
        match self
            .store
            .notify_viewer(viewer, stream, kind, subject, detail)
            .await
        {
            Ok(Some(n)) => {
                tracing::info!(%stream, kind = kind.as_str(), "viewer notified");
                let _ = self.push.send((viewer.clone(), n));
            }
            Ok(None) => {}
            Err(e) => tracing::error!(%stream, error = %e, "could not notify a viewer"),
        }
    }

    async fn scheduled_ahead(&self, stream: &StreamId) -> bool {
        match self.store.stream(stream).await {
            Ok(Some(s)) => s.scheduled_at.is_some_and(|t| t > chrono::Utc::now()),
            Ok(None) => false,
            Err(e) => {
                tracing::error!(%stream, error = %e, "could not read the stream to notify followers");
                false
            }
        }
    }

    /// Tells the followers of the stream's creator, unless they were told this already. Errors
    /// are logged: a notification must not fail what caused it.
    pub async fn announce(&self, stream: &StreamId, kind: Announcement) {
        match self.store.announce(stream, kind).await {
            Ok(told) => {
                if !told.is_empty() {
                    tracing::info!(%stream, kind = kind.as_str(), followers = told.len(), "followers notified");
                }
                for t in told {
                    // No receiver (nobody connected) is fine: the feed has it.
                    let _ = self.push.send(t);
                }
            }
            Err(e) => tracing::error!(%stream, error = %e, "could not notify followers"),
        }
    }

    /// A reminder was added or a stream changed: the reminder task looks again.
    pub fn reminders_changed(&self) {
        self.reminders.notify_one();
    }

    /// Sends reminders as their streams' scheduled times come, until `stop`: the store marks
    /// each sent in the transaction that makes its notification, so each fires once, also
    /// across restarts (those due while the server was down fire when it starts).
    pub async fn run_reminders(self, stop: CancellationToken) {
        loop {
            let wait = match self
                .store
                .fire_due_reminders(chrono::Utc::now(), REMINDER_BATCH)
                .await
            {
                Ok(told) => {
                    let more = told.len() as u32 >= REMINDER_BATCH;
                    if !told.is_empty() {
                        tracing::info!(viewers = told.len(), "reminders sent");
                    }
                    for t in told {
                        let _ = self.push.send(t);
                    }
                    if more {
                        Duration::ZERO
                    } else {
                        match self.store.next_reminder_at().await {
                            Ok(Some(at)) => (at - chrono::Utc::now())
                                .to_std()
                                .unwrap_or(Duration::ZERO)
                                .min(REMINDER_RECHECK),
                            Ok(None) => REMINDER_RECHECK,
                            Err(e) => {
                                tracing::error!(error = %e, "could not read the next reminder");
                                REMINDER_RECHECK
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not send reminders");
                    REMINDER_RECHECK
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait.max(REMINDER_MIN_WAIT)) => {}
                _ = self.reminders.notified() => {}
            }
        }
    }

    /// Every notification as it is made, for every viewer (filter by viewer).
    pub fn subscribe(&self) -> broadcast::Receiver<(ViewerId, Notification)> {
        self.push.subscribe()
    }
}
