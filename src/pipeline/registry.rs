//! The registry: the one owner of live streams. It alone starts, flips mode, ends and looks up
//! streams; ingest servers, HTTP and shutdown ask it. Its lock is never held across an `.await`.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::json;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::branch::Branch;
use super::bus::{self, TrackConfig};
use super::clips;
use super::ladder::LadderSpec;
use super::overload::{self, Watched};
use super::spec::{LOW_LATENCY_DIR, PipelineSpec, SOURCE_RENDITION, StreamPaths};
use super::stream::{self, LiveStream, Running, Start, Starter};
use crate::config::Config;
use crate::ingest::{self, EndReason, MediaFrame, MediaSink, Proto, Publishers, stream_key};
use crate::live::{LiveEvent, LiveHub, StreamStatus};
use crate::notifications::Notifier;
use crate::output::cmaf;
use crate::output::hls::{self, HlsOutput, LowLatency};
use crate::output::recording;
use crate::output::rtsp::RtspOut;
use crate::shop::promos::Phase;
use crate::store::{Announcement, Mode, Recording, RecordingState, Store, StreamId, StreamState};
use crate::webhooks::Webhooks;

/// How long a graceful shutdown may take to end and finalise every live stream.
const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(120);
/// What the store refused at a stream's end is tried again after this, then twice as long each
/// time up to `STORE_RETRY_MAX`.
const STORE_RETRY_INITIAL: std::time::Duration = std::time::Duration::from_secs(1);
const STORE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub publishes_accepted: AtomicU64,
    pub publishes_refused: AtomicU64,
    pub streams_finalized: AtomicU64,
    pub pipeline_failures: AtomicU64,
    /// Branches (recording, poster, RTSP out, rungs) that failed and were dropped, by kind.
    pub branch_failures: BranchFailures,
    /// How long after their last frame low-latency parts are listed.
    pub part_latency: Arc<cmaf::PartLatency>,
}

/// Failed branches by kind (`Branch::kind`).
#[derive(Debug, Default)]
pub struct BranchFailures {
    pub recording: AtomicU64,
    pub poster: AtomicU64,
    pub rtsp: AtomicU64,
    pub rung: AtomicU64,
}

impl BranchFailures {
    fn counter(&self, branch: &Branch) -> Option<&AtomicU64> {
        match branch {
            Branch::Recording => Some(&self.recording),
            Branch::Poster => Some(&self.poster),
            Branch::RtspOut => Some(&self.rtsp),
            Branch::Rung(_) => Some(&self.rung),
            Branch::Ingest => None,
        }
    }

    /// (kind, count) of every kind.
    pub fn by_kind(&self) -> [(&'static str, u64); 4] {
        [
            ("recording", self.recording.load(Ordering::Relaxed)),
            ("poster", self.poster.load(Ordering::Relaxed)),
            ("rtsp", self.rtsp.load(Ordering::Relaxed)),
            ("rung", self.rung.load(Ordering::Relaxed)),
        ]
    }
}

/// What the store refused at a stream's end, to be stored later.
#[derive(Debug)]
enum Refused {
    State(StreamState),
    Recording(Recording),
}

struct Inner {
    store: Store,
    config: Arc<Config>,
    webhooks: Webhooks,
    notifier: Notifier,
    /// Each stream's live channel: lifecycle and mode changes are announced there.
    events: LiveHub,
    live: Mutex<HashMap<StreamId, Arc<LiveStream>>>,
    tasks: TaskTracker,
    counters: Counters,
    /// Serves every running pipeline over RTSP once attached.
    rtsp: OnceLock<Arc<RtspOut>>,
}

#[derive(Clone)]
pub struct StreamRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] crate::store::Error),
}

impl StreamRegistry {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        webhooks: Webhooks,
        notifier: Notifier,
        events: LiveHub,
    ) -> Self {
        StreamRegistry {
            inner: Arc::new(Inner {
                store,
                config,
                webhooks,
                notifier,
                events,
                live: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                counters: Counters::default(),
                rtsp: OnceLock::new(),
            }),
        }
    }

    /// Serves the pipelines started from now on over RTSP too.
    pub fn attach_rtsp(&self, rtsp: Arc<RtspOut>) {
        let _ = self.inner.rtsp.set(rtsp);
    }

    fn live_map(&self) -> MutexGuard<'_, HashMap<StreamId, Arc<LiveStream>>> {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub fn paths(&self, id: &StreamId) -> StreamPaths {
        StreamPaths::new(&self.inner.config.data_dir, id.as_str())
    }

    /// The live (publishing or finalising) stream with this id.
    pub fn live(&self, id: &StreamId) -> Option<Arc<LiveStream>> {
        self.live_map().get(id).cloned()
    }

    /// Every live stream (publishing or finalising).
    pub fn live_streams(&self) -> Vec<Arc<LiveStream>> {
        self.live_map().values().cloned().collect()
    }

    pub fn live_count(&self) -> usize {
        self.live_map().len()
    }

    /// Tells the stream's live channel its state now.
    fn announce_state(&self, id: &StreamId, state: StreamState, mode: Mode, reconnecting: bool) {
        let status = StreamStatus {
            state,
            mode,
            reconnecting,
        };
        self.inner.events.send(id, &LiveEvent::StreamState(status));
    }

    /// Flips a stream between practice and public; takes effect at once for a live stream.
    pub async fn set_mode(&self, id: &StreamId, mode: Mode) -> Result<(), Error> {
        let before = self.inner.store.stream(id).await?;
        self.inner.store.set_mode(id, mode).await?;
        let live = self.live(id);
        if let Some(s) = &live {
            s.set_mode(mode);
            if s.mode() == Mode::Practice
                && let Some(rtsp) = self.inner.rtsp.get()
            {
                rtsp.hide(id);
            }
        }
        tracing::info!(stream = %id, mode = mode.as_str(), "mode changed");
        if let Some(before) = &before {
            let reconnecting = live.is_some_and(|s| s.health().reconnecting);
            self.announce_state(id, before.state, mode, reconnecting);
        }
        if let Some(before) = before
            && before.mode != Mode::Public
            && mode == Mode::Public
        {
            let data = json!({"stream_id": id, "state": before.state});
            self.inner
                .webhooks
                .emit(&before.creator_id, "stream.public", data)
                .await;
            // Followers hear of a public stream once it is live (once per stream), or of an
            // upcoming one once it is scheduled.
            if self.live(id).is_some_and(|s| s.has_pipeline()) {
                self.inner.notifier.announce(id, Announcement::Live).await;
            } else if before.scheduled_at.is_some_and(|t| t > chrono::Utc::now())
                && before.state == StreamState::Ready
            {
                self.inner
                    .notifier
                    .announce(id, Announcement::Upcoming)
                    .await;
            }
        }
        Ok(())
    }

    /// Ends a stream: a live one disconnects its publisher and finalises; an idle one just ends
    /// (its key stops working).
    pub async fn end(&self, id: &StreamId) -> Result<(), Error> {
        match self.live(id) {
            Some(s) => s.end_by_creator(),
            None => {
                self.inner.store.mark_ended(id).await?;
                if let Some(stream) = self.inner.store.stream(id).await? {
                    self.announce_state(id, StreamState::Ended, stream.mode, false);
                }
            }
        }
        Ok(())
    }

    /// Takes a stream down (the store has recorded it): a live one turns practice at once and
    /// ends as with [`end`](Self::end); an idle one just ends.
    pub async fn take_down(&self, id: &StreamId) -> Result<(), Error> {
        match self.live(id) {
            Some(s) => {
                s.take_down();
                if let Some(rtsp) = self.inner.rtsp.get() {
                    rtsp.hide(id);
                }
            }
            None => self.inner.store.mark_ended(id).await?,
        }
        tracing::info!(stream = %id, "taken down");
        Ok(())
    }

    /// Ends every live stream and waits until their files are finalised.
    ///
    /// Bounded by `DEFAULT_SHUTDOWN_GRACE`: what is not finalised by then is left as after a crash,
    /// and the next start recovers it.
    pub async fn shutdown(&self) {
        let live = self.live_streams();
        for s in &live {
            s.request_end();
        }
        self.inner.tasks.close();
        let all_done = async {
            for s in &live {
                s.finished.cancelled().await;
            }
            self.inner.tasks.wait().await;
        };
        if tokio::time::timeout(DEFAULT_SHUTDOWN_GRACE, all_done)
            .await
            .is_err()
        {
            tracing::error!(
                grace = ?DEFAULT_SHUTDOWN_GRACE,
                "streams not finalised in time; they will be recovered at the next start"
            );
            self.abort_pipelines();
        }
    }

    /// Stops every pipeline at once, without finalising (an abandoned registry, a hung shutdown).
    pub fn abort_pipelines(&self) {
        for s in self.live_streams() {
            if let Some(pipeline) = s.pipeline() {
                let _ =
                    gstreamer::prelude::ElementExt::set_state(&pipeline, gstreamer::State::Null);
            }
        }
    }

    /// After a crash: streams left live are ended, their recordings finalised (everything up to
    /// the last complete fragment), their playlists closed.
    pub async fn recover(&self) -> Result<(), Error> {
        let store = &self.inner.store;
        let mut ids: Vec<StreamId> = store
            .streams_in_state(StreamState::Live)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        for id in store.unfinished_recordings().await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        for id in ids {
            tracing::warn!(stream = %id, "recovering a stream left live by an unclean stop");
            let paths = self.paths(&id);
            let (window, target) = (self.inner.config.hls.window, self.inner.config.hls.segment);
            for dir in [paths.hls_dir(), paths.low_latency_dir()] {
                if let Err(e) = hls::close_persisted(&dir, window, target) {
                    tracing::error!(stream = %id, error = %e, "could not close the playlists");
                }
            }
            self.finalize_recording(&id, &paths, None).await;
            if store.source(&id).await?.is_some() {
                // A pulled stream outlives the server: it is pulled again after this start.
                store.mark_ready(&id).await?;
            } else {
                store.mark_ended(&id).await?;
            }
        }
        Ok(())
    }

    /// Finalises the recording; once it is ready, its public replay and the clips of its product
    /// chapters are cut in the background.
    async fn finalize_recording(
        &self,
        id: &StreamId,
        paths: &StreamPaths,
        session: Option<&Arc<LiveStream>>,
    ) {
        let store = &self.inner.store;
        let mark = |state, bytes, duration_ms, error| Recording {
            stream_id: id.clone(),
            state,
            bytes,
            duration_ms,
            error,
        };
        if let Err(e) = store
            .set_recording(mark(RecordingState::Finalizing, 0, 0, None))
            .await
        {
            tracing::error!(stream = %id, error = %e, "could not mark the recording finalizing");
        }
        let (src, dst) = (paths.recording_fragmented(), paths.recording());
        let result = tokio::task::spawn_blocking(move || recording::finalize(&src, &dst))
            .await
            .unwrap_or_else(|e| Err(recording::Error::Remux(e.to_string())));
        let rec = match result {
            Ok(done) => {
                tracing::info!(stream = %id, bytes = done.bytes, duration_s = done.duration.as_secs_f64(), "recording ready");
                if let Ok(Some(stream)) = store.stream(id).await {
                    let data = json!({
                        "stream_id": id,
                        "bytes": done.bytes,
                        "duration_s": done.duration.as_secs_f64(),
                    });
                    self.inner
                        .webhooks
                        .emit(&stream.creator_id, "recording.ready", data)
                        .await;
                }
                let _ = std::fs::remove_file(paths.recording_fragmented());
                // What was public of it: the replay anyone may watch, and the clips.
                let public = hls::read_public_media(&paths.hls_dir()).unwrap_or_default();
                let (store, paths, id) = (store.clone(), paths.clone(), id.clone());
                self.inner.tasks.spawn(
                    async move { clips::cut_public(&store, &paths, &id, public).await }
                        .in_current_span(),
                );
                mark(
                    RecordingState::Ready,
                    done.bytes,
                    done.duration.as_millis() as u64,
                    None,
                )
            }
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "recording failed");
                mark(RecordingState::Failed, 0, 0, Some(e.to_string()))
            }
        };
        if let Err(e) = store.set_recording(rec.clone()).await {
            tracing::error!(stream = %id, error = %e, "could not store the recording state; retrying");
            self.store_later(id.clone(), Refused::Recording(rec), session);
        }
    }

    /// What happens when a branch of `stream`'s pipeline fails (it is already out of the
    /// pipeline): counted, warned about in health, and a failed recording is marked failed with
    /// the reason at once; a failed rung leaves the master playlist; RTSP viewers are let go.
    fn on_branch_failure(
        &self,
        stream: Arc<LiveStream>,
        span: tracing::Span,
    ) -> bus::OnBranchFailure {
        let registry = self.clone();
        Box::new(move |branch: &Branch, reason: &str| {
            let _enter = span.enter();
            if let Some(counter) = registry.inner.counters.branch_failures.counter(branch) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            stream.branch_failed(branch, reason);
            match branch {
                Branch::Recording => {
                    let store = registry.inner.store.clone();
                    let rec = recording_failed(&stream.id, reason);
                    registry.inner.tasks.spawn(
                        async move {
                            if let Err(e) = store.set_recording(rec).await {
                                tracing::error!(error = %e, "could not mark the recording failed");
                            }
                        }
                        .in_current_span(),
                    );
                }
                Branch::Rung(rung) => {
                    for out in stream.outputs() {
                        out.drop_rendition(rung);
                    }
                }
                Branch::RtspOut => {
                    if let Some(rtsp) = registry.inner.rtsp.get() {
                        rtsp.unpublish(&stream.id);
                    }
                }
                Branch::Poster | Branch::Ingest => {}
            }
        })
    }

    /// Stops the pipeline, closes the playlists, finalises the recording, marks the stream ended.
    /// A publisher that leaves before sending any media ends nothing: the stream stays ready for
    /// the next attempt (OBS connection tests, a misconfigured encoder), unless the creator ended it.
    async fn finish(&self, stream: Arc<LiveStream>, reason: EndReason) {
        stream.publisher_gone();
        let store = &self.inner.store;
        let (state, stored) = match stream.take_running() {
            Some(running) => {
                tracing::info!(?reason, "publisher gone; finalising");
                if let Err(e) = running.stop().await {
                    tracing::warn!(error = %e, "pipeline did not stop cleanly");
                }
                if let Some(rtsp) = self.inner.rtsp.get() {
                    rtsp.unpublish(&stream.id);
                }
                for out in stream.outputs() {
                    if let Err(e) = out.end() {
                        tracing::error!(error = %e, "could not write the VOD playlists");
                    }
                }
                match stream.branch_failure(&Branch::Recording) {
                    // Failed while live: nothing to finalise; it stays failed.
                    Some(why) => {
                        tracing::warn!(reason = %why, "the recording failed during the stream");
                        let rec = recording_failed(&stream.id, &why);
                        if let Err(e) = store.set_recording(rec.clone()).await {
                            tracing::error!(error = %e, "could not mark the recording failed; retrying");
                            self.store_later(
                                stream.id.clone(),
                                Refused::Recording(rec),
                                Some(&stream),
                            );
                        }
                    }
                    None => {
                        self.finalize_recording(&stream.id, &stream.paths, Some(&stream))
                            .await
                    }
                }
                self.inner
                    .counters
                    .streams_finalized
                    .fetch_add(1, Ordering::Relaxed);
                if pulled_again_after_restart(&stream, &reason) {
                    tracing::info!(
                        "pulled stream stopped with the server; pulled again at the next start"
                    );
                    (StreamState::Ready, store.mark_ready(&stream.id).await)
                } else {
                    let ended = store.mark_ended(&stream.id).await;
                    self.announce_state(&stream.id, StreamState::Ended, stream.mode(), false);
                    let data = json!({"stream_id": stream.id, "reason": format!("{reason:?}")});
                    self.inner
                        .webhooks
                        .emit(&stream.creator_id, "stream.ended", data)
                        .await;
                    (StreamState::Ended, ended)
                }
            }
            None if stream.ended_by_creator() => {
                let ended = store.mark_ended(&stream.id).await;
                self.announce_state(&stream.id, StreamState::Ended, stream.mode(), false);
                (StreamState::Ended, ended)
            }
            None => {
                tracing::info!(
                    ?reason,
                    "publisher left before sending media; the stream stays ready"
                );
                let ready = store.mark_ready(&stream.id).await;
                self.announce_state(&stream.id, StreamState::Ready, stream.mode(), false);
                (StreamState::Ready, ready)
            }
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, ?state, "could not store the stream's state; retrying");
            self.store_later(stream.id.clone(), Refused::State(state), Some(&stream));
        }
        self.live_map().remove(&stream.id);
        stream.finished.cancel();
        tracing::info!("publish over");
    }

    /// Keeps trying to store what the store refused at a stream's end (disk full, locked):
    /// otherwise the stream would read `live` and its recording `recording` until the next start.
    /// Gives up when the stream is published again (that session stores its own end) or the
    /// server stops (the next start ends what was left live).
    fn store_later(&self, id: StreamId, what: Refused, session: Option<&Arc<LiveStream>>) {
        let registry = self.clone();
        let session = session.map(Arc::downgrade);
        // Another session of the stream than the one that ended (or any, after a crash).
        let replaced = move |live: &Arc<LiveStream>| {
            session
                .as_ref()
                .is_none_or(|s| !std::ptr::eq(s.as_ptr(), Arc::as_ptr(live)))
        };
        self.inner.tasks.spawn(
            async move {
                let mut wait = STORE_RETRY_INITIAL;
                loop {
                    tokio::time::sleep(wait).await;
                    if registry.inner.tasks.is_closed()
                        || registry.live(&id).is_some_and(|l| replaced(&l))
                    {
                        return;
                    }
                    let store = &registry.inner.store;
                    let stored = match &what {
                        Refused::State(StreamState::Ready) => store.mark_ready(&id).await,
                        Refused::State(_) => store.mark_ended(&id).await,
                        Refused::Recording(rec) => store.set_recording(rec.clone()).await,
                    };
                    match stored {
                        Ok(()) => {
                            tracing::info!(stream = %id, ?what, "stored at last");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(stream = %id, error = %e, ?what, "still cannot store")
                        }
                    }
                    wait = (wait * 2).min(STORE_RETRY_MAX);
                }
            }
            .in_current_span(),
        );
    }

    fn start_pipeline(&self, stream: &Arc<LiveStream>, start: Start) -> Result<(), ingest::Error> {
        let Start::Go {
            tracks,
            frames,
            base_ms,
            epoch,
        } = start
        else {
            return Ok(());
        };
        let mut spec = PipelineSpec::new(
            &stream.ladder,
            tracks.clone(),
            stream.paths.clone(),
            self.inner.config.hls.segment,
            stream.hls.next_segment_index(SOURCE_RENDITION),
        );
        spec.part = stream
            .ll
            .as_ref()
            .and(self.inner.config.hls.low_latency_part());
        for out in stream.outputs() {
            out.add_renditions(&spec.renditions());
            out.set_epoch(epoch);
        }
        let (eos_tx, eos_rx) = oneshot::channel();
        let (running, bus, overruns, low_latency) =
            Running::start(&spec, &stream.visibility, base_ms, eos_rx).map_err(|e| {
                self.inner
                    .counters
                    .pipeline_failures
                    .fetch_add(1, Ordering::Relaxed);
                ingest::Error::Pipeline(e.to_string())
            })?;
        if let Some(ll) = &stream.ll {
            for (rendition, sink, comeback) in low_latency {
                cmaf::attach(
                    &sink,
                    rendition,
                    ll.clone(),
                    comeback,
                    stream.resumed_at.clone(),
                    cmaf::Timing {
                        arrivals: stream.arrivals.clone(),
                        latency: self.inner.counters.part_latency.clone(),
                    },
                );
            }
        }
        let pipeline = running.pipeline_handle();
        stream.set_running(running);
        if let Some(rtsp) = self.inner.rtsp.get()
            && let Err(e) = rtsp.publish(&stream.id, &pipeline)
        {
            tracing::warn!(error = %e, "stream not served over rtsp");
        }
        let config = TrackConfig {
            avcc: tracks.video.clone(),
            asc: tracks.audio.clone(),
        };
        let span = tracing::info_span!("stream", id = %stream.id, proto = stream.proto().as_str());
        let rungs = spec.rungs.iter().map(|r| r.name.clone()).collect();
        let on_branch_failure = self.on_branch_failure(stream.clone(), span.clone());
        self.inner.tasks.spawn(
            bus::watch(
                bus,
                pipeline,
                stream.clone(),
                config,
                rungs,
                on_branch_failure,
                eos_tx,
            )
            .instrument(span),
        );
        let watched: Vec<Watched> = overruns
            .into_iter()
            .map(|(name, overruns)| Watched {
                priority: spec
                    .rungs
                    .iter()
                    .find(|r| r.name == name)
                    .map(|r| r.priority),
                name,
                overruns,
            })
            .collect();
        if !watched.is_empty() {
            let span =
                tracing::info_span!("stream", id = %stream.id, proto = stream.proto().as_str());
            let pipeline = stream.pipeline().expect("just started");
            self.inner
                .tasks
                .spawn(overload::watch(stream.clone(), pipeline, watched).instrument(span));
        }
        tracing::info!(
            video = tracks.has_video(),
            audio = tracks.has_audio(),
            renditions = ?spec.renditions(),
            "pipeline started"
        );
        self.announce_state(&stream.id, StreamState::Live, stream.mode(), false);
        if stream.mode() == Mode::Public {
            // A public stream going live starts its live-only promo codes.
            let (store, hub) = (self.inner.store.clone(), self.inner.events.clone());
            let (id, mode) = (stream.id.clone(), stream.mode());
            self.inner.tasks.spawn(
                async move {
                    let announced = match store.stream(&id).await {
                        Ok(Some(mut s)) => {
                            s.mode = mode;
                            crate::live::announce_promos(&store, &hub, &s, Phase::Live).await
                        }
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = announced {
                        tracing::error!(error = %e, "could not announce the stream's promo codes");
                    }
                }
                .in_current_span(),
            );
        }
        let (webhooks, creator) = (self.inner.webhooks.clone(), stream.creator_id.clone());
        let (notifier, id, public) = (
            self.inner.notifier.clone(),
            stream.id.clone(),
            stream.mode() == Mode::Public,
        );
        let data = json!({
            "stream_id": stream.id,
            "mode": stream.mode(),
            "protocol": stream.proto().as_str(),
        });
        self.inner.tasks.spawn(async move {
            webhooks.emit(&creator, "stream.started", data).await;
            if public {
                notifier.announce(&id, Announcement::Live).await;
            }
        });
        let store = self.inner.store.clone();
        let id = stream.id.clone();
        self.inner.tasks.spawn(async move {
            let rec = Recording {
                stream_id: id,
                state: RecordingState::Recording,
                bytes: 0,
                duration_ms: 0,
                error: None,
            };
            if let Err(e) = store.set_recording(rec).await {
                tracing::error!(error = %e, "could not mark the recording started");
            }
        });
        for frame in frames {
            stream::push_running(stream, frame)?;
        }
        Ok(())
    }
}

/// The recording of a stream whose recording branch failed while it was live.
fn recording_failed(id: &StreamId, reason: &str) -> Recording {
    Recording {
        stream_id: id.clone(),
        state: RecordingState::Failed,
        bytes: 0,
        duration_ms: 0,
        error: Some(format!("recording stopped during the stream: {reason}")),
    }
}

/// A pulled stream (RTSP) that the server stopped — not its creator, not a failure — is not over:
/// the server pulls it again when it starts next.
fn pulled_again_after_restart(stream: &LiveStream, reason: &EndReason) -> bool {
    stream.proto() == Proto::Rtsp
        && *reason == EndReason::ServerEnded
        && !stream.ended_by_creator()
        && stream.failure().is_none()
}

impl Publishers for StreamRegistry {
    type Sink = PublishSink;

    async fn authorize(&self, key: &str, proto: Proto) -> Result<PublishSink, ingest::Error> {
        let refuse = |e: ingest::Error| {
            self.inner
                .counters
                .publishes_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(key = %stream_key::redact(key), proto = proto.as_str(), reason = %e, "publish refused");
            e
        };
        let stream = self
            .inner
            .store
            .stream_by_key(key)
            .await
            .map_err(|e| ingest::Error::Store(e.to_string()))?
            .ok_or_else(|| refuse(ingest::Error::BadStreamKey(stream_key::redact(key))))?;
        if stream.state == StreamState::Ended {
            return Err(refuse(ingest::Error::StreamEnded(stream_key::redact(key))));
        }
        let config = &self.inner.config;
        let paths = self.paths(&stream.id);
        let ladder_name = stream.ladder.as_deref().unwrap_or(&config.hls.ladder);
        let ladder = LadderSpec::resolve(ladder_name)
            .map_err(|e| refuse(ingest::Error::Pipeline(e.to_string())))?;
        let span = tracing::info_span!("stream", id = %stream.id, proto = proto.as_str());
        // The outputs are made (and a previous session's files read back) before the registry
        // is locked: one stream's slow disk never holds up another's publish.
        let mut fresh = None;
        let live = loop {
            if fresh.is_none() && self.live(&stream.id).is_none() {
                let (config, paths, started) =
                    (config.clone(), paths.clone(), stream.started_at.is_some());
                let outputs =
                    tokio::task::spawn_blocking(move || new_outputs(&config, &paths, started))
                        .await
                        .map_err(|e| ingest::Error::Pipeline(e.to_string()))?;
                fresh = Some(outputs);
            }
            let mut map = self.live_map();
            // Another publisher with this key may have been let in meanwhile (or the stream it
            // had ended: then outputs are made after all).
            match (map.get(&stream.id).cloned(), fresh.take()) {
                (Some(live), _) => {
                    drop(map);
                    return self.continue_with(live, proto, key, span, &refuse);
                }
                (None, Some((hls, ll))) => {
                    let live = Arc::new(LiveStream::new(
                        &stream,
                        proto,
                        paths.clone(),
                        hls,
                        ll,
                        ladder.clone(),
                        config.hls.segment,
                    ));
                    map.insert(stream.id.clone(), live.clone());
                    break live;
                }
                (None, None) => {}
            }
        };
        if let Err(e) = self.inner.store.mark_live(&stream.id).await {
            self.live_map().remove(&stream.id);
            return Err(ingest::Error::Store(e.to_string()));
        }
        self.inner
            .counters
            .publishes_accepted
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(stream = %stream.id, key = %stream.stream_key, proto = proto.as_str(), "publish accepted");
        Ok(PublishSink {
            registry: self.clone(),
            stream: live,
            starter: Some(Starter::default()),
            refused_comeback: false,
            span,
        })
    }
}

impl StreamRegistry {
    /// A publisher with the key of a live stream: it continues the stream when the stream waits
    /// for its publisher to come back, and is refused when another one is publishing.
    fn continue_with(
        &self,
        live: Arc<LiveStream>,
        proto: Proto,
        key: &str,
        span: tracing::Span,
        refuse: &impl Fn(ingest::Error) -> ingest::Error,
    ) -> Result<PublishSink, ingest::Error> {
        if !live.comeback(proto) {
            return Err(refuse(ingest::Error::AlreadyLive(stream_key::redact(key))));
        }
        self.inner
            .counters
            .publishes_accepted
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(stream = %live.id, proto = proto.as_str(), "publisher came back; continuing the stream");
        self.announce_state(&live.id, StreamState::Live, live.mode(), false);
        Ok(PublishSink {
            registry: self.clone(),
            stream: live,
            starter: Some(Starter::default()),
            refused_comeback: false,
            span,
        })
    }
}

/// The HLS outputs of a stream about to go live; one that was live before (`started`: a pulled
/// camera after a restart) continues its previous session's playlists. Blocking (disk).
fn new_outputs(
    config: &Config,
    paths: &StreamPaths,
    started: bool,
) -> (HlsOutput, Option<HlsOutput>) {
    let hls = HlsOutput::new(paths.hls_dir(), config.hls.window, config.hls.segment);
    let ll = config.hls.low_latency_part().map(|part| {
        HlsOutput::low_latency(
            paths.low_latency_dir(),
            config.hls.window,
            config.hls.segment,
            LowLatency {
                part,
                master_prefix: format!("{LOW_LATENCY_DIR}/"),
            },
        )
    });
    if started {
        keep_previous_session(&hls, paths);
        if let Some(ll) = &ll {
            restore_playlists(ll);
        }
    }
    (hls, ll)
}

/// A new session of a stream that had one (a pulled camera resumed after a server restart) must
/// not overwrite it: the playlists continue (numbering goes on, a discontinuity marks the new
/// session) and the finished recording is kept as `recording-partN.mp4` beside the new one.
fn restore_playlists(hls: &HlsOutput) {
    match hls.restore() {
        Ok(n) if n > 0 => tracing::info!(
            renditions = n,
            "continuing the playlists of the previous session"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not read the previous session's playlists"),
    }
}

fn keep_previous_session(hls: &HlsOutput, paths: &StreamPaths) {
    restore_playlists(hls);
    let recording = paths.recording();
    if recording.exists() {
        let part = (1..)
            .map(|n| recording.with_file_name(format!("recording-part{n}.mp4")))
            .find(|p| !p.exists())
            .expect("a free part name");
        match std::fs::rename(&recording, &part) {
            Ok(()) => tracing::info!(part = %part.display(), "previous session's recording kept"),
            Err(e) => {
                tracing::error!(error = %e, "could not keep the previous session's recording")
            }
        }
    }
}

/// Where one publisher's frames go.
pub struct PublishSink {
    registry: StreamRegistry,
    stream: Arc<LiveStream>,
    /// `Some` until the pipeline has started (or, for a publisher that came back, resumed).
    starter: Option<Starter>,
    /// This publisher came back with media the stream cannot continue with (other tracks): the
    /// stream goes on waiting for one that can.
    refused_comeback: bool,
    span: tracing::Span,
}

impl MediaSink for PublishSink {
    fn push(&mut self, frame: MediaFrame) -> Result<(), ingest::Error> {
        let _enter = self.span.enter();
        if let Some(reason) = self.stream.failure() {
            return Err(ingest::Error::Pipeline(reason));
        }
        stream::observe(&self.stream, &frame);
        match &mut self.starter {
            Some(starter) => {
                let start = starter.push(frame)?;
                match start {
                    Start::Wait => Ok(()),
                    // A publisher that came back: a refusal (other tracks) drops only it.
                    Start::Go {
                        tracks,
                        frames,
                        base_ms,
                        ..
                    } if self.stream.has_pipeline() => {
                        self.starter = None;
                        stream::resume_running(&self.stream, &tracks, frames, base_ms).inspect_err(
                            |e| {
                                tracing::warn!(error = %e, "refusing the publisher that came back");
                                self.refused_comeback = true;
                            },
                        )
                    }
                    go => {
                        self.starter = None;
                        self.registry
                            .start_pipeline(&self.stream, go)
                            .inspect_err(|e| {
                                self.stream.fail(e.to_string());
                            })
                    }
                }
            }
            None => stream::push_running(&self.stream, frame).map(|_| ()),
        }
    }

    /// A publisher that dropped (not one that stopped streaming) leaves a running stream live for
    /// `ingest.reconnect_grace`: the same key, over any protocol, continues it; after that, or on
    /// an API end or a shutdown, it ends as usual.
    fn finish(self, reason: EndReason) {
        let tasks = self.registry.inner.tasks.clone();
        let span = self.span.clone();
        let grace = self.registry.inner.config.ingest.reconnect_grace;
        let dropped = matches!(reason, EndReason::PublisherLost(_)) || self.refused_comeback;
        let (registry, stream) = (self.registry, self.stream);
        let waiting = (dropped
            && !grace.is_zero()
            && stream.has_pipeline()
            && stream.failure().is_none()
            && !stream.is_ending())
        .then(|| stream.publisher_away())
        .flatten();
        let Some(publisher) = waiting else {
            tasks.spawn(async move { registry.finish(stream, reason).await }.instrument(span));
            return;
        };
        tracing::warn!(parent: &span, ?reason, ?grace, "publisher dropped; waiting for it to come back");
        registry.announce_state(&stream.id, StreamState::Live, stream.mode(), true);
        tasks.spawn(
            async move {
                tokio::select! {
                    _ = tokio::time::sleep(grace) => {}
                    _ = stream.end_requested() => {}
                    _ = stream.no_longer_away(publisher) => {}
                }
                if stream.stop_waiting(publisher) {
                    tracing::info!("no publisher came back; ending the stream");
                    registry.finish(stream, reason).await;
                }
            }
            .instrument(span),
        );
    }

    fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.stream.end_requested()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tasks.close();
    }
}
