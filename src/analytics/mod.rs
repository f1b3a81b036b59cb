//! Creator analytics: records, while a stream is live, one sample of its audience per step
//! (`analytics.step`) and the player sessions that watch it, live or as a replay, into the store.
//! Reports ([`report`]) are made from those and from the tables that hold chat, click-outs, the
//! commission ledger, redemptions, follows and focus, so that they agree with the endpoints
//! listing them.
//!
//! One task samples every live stream once a step; stream events add a sample where the audience
//! changes meaning (the stream went live, flipped mode, ended), so that the first and the last
//! step of a stream and a flip are never missed. Practice steps record no audience: the owner is
//! the only one who can watch then, and the owner is never the audience.
pub mod report;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::store::analytics::{Grid, SessionSpan};
use crate::store::{Mode, Store, StreamId};
use crate::streams::StreamRegistry;
use crate::streams::events::{EventKind, StreamEvent};

/// Where the audience is counted (the HLS sessions and the live channel, which know nothing of
/// analytics).
pub trait Watchers: Send + Sync {
    /// HLS player sessions of the public watching `stream` live now.
    fn players(&self, stream: &StreamId) -> usize;
    /// Live-channel connections to `stream` of others than its owner.
    fn sockets(&self, stream: &StreamId) -> usize;
    /// The public's player sessions seen since the last call, on every stream.
    fn take_sessions(&self) -> Vec<SessionSpan>;
}

#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    step: Duration,
    watchers: Arc<dyn Watchers>,
    /// When each live stream started (its grid's origin); only streams that are live.
    started: Mutex<HashMap<StreamId, chrono::DateTime<Utc>>>,
    /// Sessions the store could not take yet (it was locked), to try again; at most
    /// [`MAX_PENDING`].
    pending: Mutex<Vec<SessionSpan>>,
}

/// Sessions kept for a store that refuses writes (as many as the audience tracks in all).
const MAX_PENDING: usize = 200_000;

impl Recorder {
    pub fn new(store: Store, step: Duration, watchers: Arc<dyn Watchers>) -> Self {
        Recorder {
            inner: Arc::new(Inner {
                store,
                step,
                watchers,
                started: Mutex::default(),
                pending: Mutex::default(),
            }),
        }
    }

    fn step_ms(&self) -> i64 {
        i64::try_from(self.inner.step.as_millis()).unwrap_or(i64::MAX)
    }

    /// Samples every live stream once a step and stores the sessions seen, until `stop`.
    pub async fn run(self, registry: StreamRegistry, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let live = registry.live_streams();
            for s in &live {
                self.sample(&s.id, s.mode()).await;
            }
            self.inner
                .started
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|id, _| live.iter().any(|s| s.id == *id));
            self.store_sessions().await;
        }
        self.store_sessions().await;
    }

    /// A stream event: a sample where the audience changes meaning.
    pub async fn on_stream_event(&self, e: &StreamEvent) {
        match &e.kind {
            EventKind::WentLive { .. } | EventKind::ModeChanged { running: true, .. } => {
                self.sample(&e.stream, e.status.mode).await;
            }
            EventKind::Ended { was_live: true, .. } => {
                self.sample(&e.stream, e.status.mode).await;
                self.inner
                    .started
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&e.stream);
                self.store_sessions().await;
            }
            _ => {}
        }
    }

    async fn sample(&self, id: &StreamId, mode: Mode) {
        let known = self
            .inner
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied();
        let started_at = match known {
            Some(t) => t,
            None => match self.inner.store.stream(id).await {
                Ok(Some(s)) => match s.started_at {
                    Some(t) => {
                        self.inner
                            .started
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id.clone(), t);
                        t
                    }
                    None => return,
                },
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(stream = %id, error = %e, "analytics: reading the stream");
                    return;
                }
            },
        };
        let (players, sockets) = match mode {
            Mode::Public => (
                self.inner.watchers.players(id),
                self.inner.watchers.sockets(id),
            ),
            Mode::Practice => (0, 0),
        };
        let grid = Grid {
            started_at,
            step_ms: self.step_ms(),
        };
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        if let Err(e) = self
            .inner
            .store
            .record_sample(id, grid, Utc::now(), mode, count(players), count(sockets))
            .await
        {
            tracing::warn!(stream = %id, error = %e, "analytics: storing a sample");
        }
    }

    async fn store_sessions(&self) {
        let mut spans =
            std::mem::take(&mut *self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()));
        spans.extend(self.inner.watchers.take_sessions());
        if spans.is_empty() {
            return;
        }
        if let Err(e) = self.inner.store.record_sessions(spans.clone()).await {
            tracing::warn!(error = %e, sessions = spans.len(), "analytics: storing sessions (trying again next step)");
            let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            spans.truncate(MAX_PENDING);
            // What came in meanwhile is newer.
            spans.append(&mut pending);
            let excess = spans.len().saturating_sub(MAX_PENDING);
            spans.drain(..excess);
            *pending = spans;
        }
    }
}
