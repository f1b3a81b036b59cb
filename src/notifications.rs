//! Followers are told when a creator goes live in public (once per stream, whatever flaps) and when
//! a public stream is scheduled: a stored feed per viewer, and a live push to viewers connected to
//! `GET /api/v1/me/events`. Practice streams never notify. Viewers who asked to be reminded of
//! an upcoming stream are told when its scheduled time comes (stored, so once, across restarts).
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::store::{Announcement, Mode, Notification, Store, StreamId, StreamState, ViewerId};
use crate::streams::events::{EventKind, StreamEvent};

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
            _ => {}
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
