//! RTSP pull: livefront connects to IP cameras (retina) and feeds their H.264/AAC into the same
//! pipeline as an RTMP publisher, through [`Publishers::authorize_pull`] (by the stream's id: the
//! server pulls for itself and needs no key, so rotating the key leaves the pull alone) and a
//! [`MediaSink`].
//!
//! [`Pulls`] owns one task per pulled stream. A task connects to the camera, authorizes, and
//! pushes frames while they arrive (the stream is `live`). When the camera is lost it reports
//! [`EndReason::PublisherLost`] and tries again with a growing backoff for as long as the stream
//! accepts a publisher (a stream that has ended refuses, which stops the task). Ending the stream
//! through the API, or stopping the server, stops the task.
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

use crate::ingest::{EndReason, Error, MediaSink, Publishers};
use crate::store::{PullSource, SourceError, StreamId};

/// First wait after a failed or lost connection; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that delivered media for this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);

struct Pull {
    source: PullSource,
    stop: CancellationToken,
    /// Tells a replaced pull's task apart from its successor's.
    generation: u64,
}

/// The pulled streams of this server.
pub struct Pulls<P: Publishers> {
    publishers: Arc<P>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    pulls: Mutex<HashMap<StreamId, Pull>>,
    generations: std::sync::atomic::AtomicU64,
    /// `rtsp.allow_private_sources`: pull from loopback, private and link-local addresses too.
    allow_private: bool,
}

impl<P: Publishers> Pulls<P> {
    pub fn new(publishers: Arc<P>, allow_private: bool, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Pulls {
            publishers,
            shutdown,
            tasks: TaskTracker::new(),
            pulls: Mutex::new(HashMap::new()),
            generations: std::sync::atomic::AtomicU64::new(0),
            allow_private,
        })
    }

    /// Whether pulling from `source` is allowed here (see `rtsp.allow_private_sources`).
    pub async fn check(&self, source: &PullSource) -> Result<(), SourceError> {
        source.check_address(self.allow_private).await
    }

    fn map(&self) -> MutexGuard<'_, HashMap<StreamId, Pull>> {
        self.pulls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts pulling `source` into the stream `id` (replacing a pull already running).
    pub fn start(self: &Arc<Self>, id: StreamId, source: PullSource) {
        let stop = self.shutdown.child_token();
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let previous = self.map().insert(
            id.clone(),
            Pull {
                source: source.clone(),
                stop: stop.clone(),
                generation,
            },
        );
        if let Some(previous) = previous {
            previous.stop.cancel();
        }
        // Its own root span: the task outlives the request that started it.
        let span = tracing::info_span!(parent: None, "pull", stream = %id, source = %source);
        let this = self.clone();
        self.tasks.spawn(
            async move {
                this.run(&id, &source, &stop).await;
                let mut map = this.map();
                if map.get(&id).is_some_and(|p| p.generation == generation) {
                    map.remove(&id);
                }
            }
            .instrument(span),
        );
    }

    /// Stops pulling a stream (the stream itself is ended by the registry).
    pub fn stop(&self, id: &StreamId) {
        if let Some(pull) = self.map().remove(id) {
            pull.stop.cancel();
        }
    }

    /// The source of a stream being pulled.
    pub fn source(&self, id: &StreamId) -> Option<PullSource> {
        self.map().get(id).map(|p| p.source.clone())
    }

    /// Waits until every pull task has ended (after the shutdown token was cancelled).
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    async fn run(&self, id: &StreamId, source: &PullSource, stop: &CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = tokio::time::Instant::now();
            match self.pull_once(id, source, stop).await {
                Next::Stop => return,
                Next::Retry(why) => {
                    if started.elapsed() >= STABLE_AFTER {
                        backoff = FIRST_BACKOFF;
                    }
                    info!(reason = %why, retry_in = ?backoff, "camera not available");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One camera connection: connect, authorize, push frames until something ends it.
    async fn pull_once(
        &self,
        id: &StreamId,
        source: &PullSource,
        stop: &CancellationToken,
    ) -> Next {
        // Again before every connection: a name may resolve elsewhere now (or the store holds a
        // source from before the check existed).
        let checked = tokio::select! {
            () = stop.cancelled() => return Next::Stop,
            c = self.check(source) => c,
        };
        match checked {
            Ok(()) => {}
            Err(e @ SourceError::Private { .. }) => {
                warn!(reason = %e, "source refused; pulling stops");
                return Next::Stop;
            }
            Err(e) => return Next::Retry(e.to_string()),
        }
        let connected = tokio::select! {
            () = stop.cancelled() => return Next::Stop,
            c = session::connect(source) => c,
        };
        let (mut camera, first) = match connected {
            Ok(c) => c,
            Err(e) => return Next::Retry(e),
        };
        let mut sink = tokio::select! {
            () = stop.cancelled() => return Next::Stop,
            a = self.publishers.authorize_pull(id) => match a {
                Ok(sink) => sink,
                Err(e @ (Error::StreamEnded(_) | Error::BadStreamKey(_) | Error::Ended(_))) => {
                    info!(reason = %e, "stream no longer takes media; pulling stops");
                    return Next::Stop;
                }
                Err(e) => return Next::Retry(e.to_string()),
            },
        };
        info!("pulling");
        let ended = sink.ended();
        tokio::pin!(ended);
        let mut frames: u64 = 0;
        let mut batch = first;
        let end = loop {
            for frame in batch.drain(..) {
                if let Err(e) = sink.push(frame) {
                    debug!(error = %e, "the stream refused a frame");
                    break;
                }
                frames += 1;
            }
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => break Exit::Stopped,
                () = &mut ended => break Exit::Stopped,
                n = camera.next() => n,
            };
            match next {
                Ok(more) => batch = more,
                Err(e) => break Exit::Lost(e),
            }
        };
        info!(frames, "pull session over");
        match end {
            Exit::Stopped => {
                sink.finish(EndReason::ServerEnded);
                Next::Stop
            }
            Exit::Lost(why) => {
                warn!(reason = %why, "camera lost");
                sink.finish(EndReason::PublisherLost(why.clone()));
                Next::Retry(why)
            }
        }
    }
}

enum Exit {
    Stopped,
    Lost(String),
}

enum Next {
    Stop,
    Retry(String),
}
