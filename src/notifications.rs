//! Followers are told when a creator goes live in public (once per stream, whatever flaps) and when
//! a public stream is scheduled: a stored feed per viewer, and a live push to viewers connected to
//! `GET /api/v1/me/events`. Practice streams never notify.
use tokio::sync::broadcast;

use crate::store::{Announcement, Mode, Notification, Store, StreamId, StreamState, ViewerId};
use crate::streams::events::{EventKind, StreamEvent};

/// Pushes waiting for slow event-stream readers; beyond this a reader skips ahead (the feed keeps
/// everything).
const PUSH_BUFFER: usize = 1024;

#[derive(Clone)]
pub struct Notifier {
    store: Store,
    push: broadcast::Sender<(ViewerId, Notification)>,
}

impl Notifier {
    pub fn new(store: Store) -> Self {
        Notifier {
            store,
            push: broadcast::channel(PUSH_BUFFER).0,
        }
    }

    /// Followers hear of a public stream once it is live (once per stream), or of an upcoming one
    /// once it is made public while scheduled.
    pub async fn on_stream_event(&self, e: &StreamEvent) {
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

    /// Every notification as it is made, for every viewer (filter by viewer).
    pub fn subscribe(&self) -> broadcast::Receiver<(ViewerId, Notification)> {
        self.push.subscribe()
    }
}
