//! The registry: the one owner of live streams. It alone starts, flips mode, ends and looks up
//! streams; ingest servers, HTTP and shutdown ask it. Its lock is never held across an `.await`.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::bus::{self, TrackConfig};
use super::events::{EventKind, Events, Listener, StreamEvent, StreamStatus};
use super::overload::{self, Watched};
use super::simulcast;
use super::stream::{self, LiveStream, Running, Start, Starter};
use super::{archive, clips};
use super::{sessions, takeover};
use crate::config::Config;
use crate::config::ladder::LadderSpec;
use crate::ingest::rtsp::Pulls;
use crate::ingest::{self, EndReason, MediaFrame, MediaSink, Proto, Publishers};
use crate::output::cmaf;
use crate::output::hls::{self, HlsOutput, LowLatency, MarkerSpec};
use crate::output::rtsp::RtspOut;
use crate::output::visibility::PublicIntervals;
use crate::output::{disk_space, recording};
use crate::pipeline::branch::Branch;
use crate::pipeline::spec::{LOW_LATENCY_DIR, PipelineSpec, StreamPaths};
use crate::storage::Storage;
use crate::storage::live::{Follow, LiveUpload};
use crate::store::SessionStart;
use crate::store::destinations::DestinationId;
use crate::store::sealed::SecretBox;
use crate::store::{
    CreatorId, Destination, FocusEvent, FocusedProduct, Lease, Mode, PullSource, Recording,
    RecordingState, Renewal, SourceError, Store, StreamId, StreamKey, StreamState, Strike,
    Takedown, stream_key,
};

/// How long a graceful shutdown may take to end and finalise every live stream.
const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(120);
/// What the store refused at a stream's end is tried again after this, then twice as long each
/// time up to `STORE_RETRY_MAX`.
const STORE_RETRY_INITIAL: std::time::Duration = std::time::Duration::from_secs(1);
const STORE_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// Free space a recording waiting for disk space needs beyond its own size before it is finalised.
const FINALIZE_SPACE_MARGIN: u64 = 4 << 20;
/// How the error of a recording whose finalising waits for disk space begins (the creator sees
/// it; `recover` finds those recordings by it after a restart).
const WAITING_FOR_SPACE: &str = "finalising waits for disk space";
/// Streams whose node died looked at in one pass (the next pass takes the rest).
const ABANDONED_PER_PASS: usize = 20;

/// The free space finalising the stream's kept fragmented recording needs, when there is less.
fn space_needed(paths: &StreamPaths) -> Option<u64> {
    let len = std::fs::metadata(paths.recording_fragmented()).ok()?.len();
    let needed = len + FINALIZE_SPACE_MARGIN;
    let free = disk_space::free_bytes(&paths.dir).ok()?;
    (free < needed).then_some(needed)
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub publishes_accepted: AtomicU64,
    pub publishes_refused: AtomicU64,
    pub streams_finalized: AtomicU64,
    pub pipeline_failures: AtomicU64,
    /// Branches (recording, poster, RTSP out, rungs) that failed and were dropped, by kind.
    pub branch_failures: BranchFailures,
    /// Simulcast connections that failed (every retry counts).
    pub target_failures: AtomicU64,
    /// How long after their last frame low-latency parts are listed.
    pub part_latency: Arc<cmaf::PartLatency>,
    /// Stream events a queued listener was too far behind to take (`events::queued`).
    pub events_dropped: Arc<AtomicU64>,
    /// Live upload to object storage, over all streams.
    pub uploads: Arc<crate::storage::live::UploadStats>,
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
            // Counted by destination (`TargetStatus::failures`) and in `target_failures`.
            Branch::Ingest | Branch::Target(_) => None,
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
    /// This node's id (`node.id`), which its stream leases name.
    node: String,
    /// How the other nodes reach this one's HTTP port, once it is bound (`node.url`).
    node_url: OnceLock<String>,
    /// What happens to streams, for the live channel, webhooks, notifications and subscribers.
    events: Events,
    live: Mutex<HashMap<StreamId, Arc<LiveStream>>>,
    tasks: TaskTracker,
    counters: Counters,
    /// Serves every running pipeline over RTSP once attached.
    rtsp: OnceLock<Arc<RtspOut>>,
    /// Where ended streams' media goes (unset: stays on the disk).
    storage: OnceLock<crate::storage::Storage>,
    /// Seals and opens destination keys.
    secrets: SecretBox,
    /// The RTSP cameras pulled into streams, once attached (let go at shutdown: they hold the
    /// registry too).
    pulls: Mutex<Option<Arc<Pulls<StreamRegistry>>>>,
}

#[derive(Clone)]
pub struct StreamRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] crate::store::Error),
    #[error("the stream is not live: {0}")]
    NotLive(&'static str),
    #[error("a stream sends to at most {0} destinations at once")]
    TooManyTargets(usize),
    #[error("destination {0} is not one of yours")]
    UnknownDestination(String),
}

/// `CLASS` of the product markers.
pub const MARKER_CLASS: &str = "com.livefront.product";

impl StreamRegistry {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        listeners: Vec<Arc<dyn Listener>>,
        events_dropped: Arc<AtomicU64>,
        secrets: SecretBox,
    ) -> Self {
        StreamRegistry {
            inner: Arc::new(Inner {
                store,
                node: config.node.id_or_random(),
                node_url: OnceLock::new(),
                config,
                events: Events::new(listeners),
                live: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                counters: Counters {
                    events_dropped,
                    ..Counters::default()
                },
                rtsp: OnceLock::new(),
                storage: OnceLock::new(),
                secrets,
                pulls: Mutex::new(None),
            }),
        }
    }

    /// How the other nodes reach this one (`node.url`, or the bound HTTP address): stored with
    /// the leases it takes, so that they can relay viewers' requests to it.
    pub fn set_node_url(&self, url: String) {
        let _ = self.inner.node_url.set(url);
    }

    /// This node's id and URL.
    pub fn me(&self) -> (&str, Option<&str>) {
        (
            &self.inner.node,
            self.inner.node_url.get().map(String::as_str),
        )
    }

    /// Serves the pipelines started from now on over RTSP too.
    pub fn attach_rtsp(&self, rtsp: Arc<RtspOut>) {
        let _ = self.inner.rtsp.set(rtsp);
    }

    /// Archives ended streams' media to `storage` from now on, starting with those whose
    /// archiving the last run did not finish.
    pub async fn attach_storage(&self, storage: crate::storage::Storage) -> Result<(), Error> {
        let remote = storage.is_remote();
        let _ = self.inner.storage.set(storage);
        if !remote {
            return Ok(());
        }
        let ended: Vec<StreamId> = (self.inner.store)
            .streams_in_state(StreamState::Ended)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        for id in archive::pending(&self.inner.config.data_dir, &ended) {
            let (registry, paths) = (self.clone(), self.paths(&id));
            self.inner
                .tasks
                .spawn(async move { registry.archive(&id, &paths).await });
        }
        Ok(())
    }

    /// Puts the stream's finished media into object storage once its end is stored (a pulled
    /// stream that stops with the server is not ended: it goes on at the next start). Returns
    /// `None` when there is nothing to archive (no bucket, or the stream is not ended), else
    /// whether it is all in the bucket (`false`: the server stops first).
    async fn archive(&self, id: &StreamId, paths: &StreamPaths) -> Option<bool> {
        let storage = self.remote_storage()?;
        let stopping = || self.inner.tasks.is_closed();
        while self.live(id).is_some() {
            if stopping() {
                return Some(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        match self.inner.store.stream(id).await {
            Ok(Some(s)) if s.state == StreamState::Ended => {}
            _ => return None,
        }
        Some(archive::archive(storage, paths, id, stopping).await)
    }

    /// With object storage: claims the job of making `id`'s recording for this node and keeps
    /// the claim renewed until the returned claim is dropped. `None` without a bucket, or when
    /// another node has the job (logged; the work is done here all the same).
    async fn claim_recording_job(&self, id: &StreamId) -> Option<JobClaim> {
        self.remote_storage()?;
        let store = self.inner.store.clone();
        let (node, ttl) = (self.me().0.to_string(), self.inner.config.node.lease_ttl);
        match store
            .claim_recording_job(id, &node, ttl, chrono::Utc::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(stream = %id, "another node has the job of making this recording");
                return None;
            }
            Err(e) => {
                tracing::warn!(stream = %id, error = %e, "could not claim the job of making the recording");
                return None;
            }
        }
        let done = CancellationToken::new();
        let (until, id) = (done.clone(), id.clone());
        self.inner.tasks.spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = until.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let renewed = store
                    .claim_recording_job(&id, &node, ttl, chrono::Utc::now())
                    .await;
                if !matches!(renewed, Ok(true)) {
                    tracing::warn!(stream = %id, "could not renew the claim on the recording job");
                }
            }
        });
        Some(JobClaim { done })
    }

    /// The recording job of `id` is done here: its row goes.
    async fn finish_recording_job(&self, id: &StreamId) {
        if self.remote_storage().is_none() {
            return;
        }
        if let Err(e) = self.inner.store.finish_recording_job(id, self.me().0).await {
            tracing::warn!(stream = %id, error = %e, "could not mark the recording job done; another node will make the recording again");
        }
    }

    /// Recording jobs whose node died (their claim ran out) for streams that are no longer live
    /// anywhere are taken on by the first node to claim them: the recording, replay and clips
    /// are made again from the sessions in the bucket (see `sessions`) and archived; where this
    /// disk has the recording already (this node made it, then stopped before it was all in the
    /// bucket), it is archived as it is. A job with no session left in the bucket has nothing to
    /// make them from: it is dropped and the stream keeps what it has. (A stream still stored live is [`StreamRegistry::end_abandoned`]'s.)
    async fn take_over_recording_jobs(&self) {
        let Some(storage) = self.remote_storage() else {
            return;
        };
        let store = &self.inner.store;
        let ids = match store
            .unclaimed_recording_jobs(chrono::Utc::now(), ABANDONED_PER_PASS)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for recording jobs left by a dead node");
                return;
            }
        };
        for id in ids {
            match store.stream(&id).await {
                Ok(Some(s)) if s.state != StreamState::Live && self.live(&id).is_none() => {}
                _ => continue,
            }
            let Some(claim) = self.claim_recording_job(&id).await else {
                continue;
            };
            let paths = self.paths(&id);
            if paths.recording().exists() {
                // Made here before this node stopped, not yet all in the bucket: archived as it
                // is (it holds the last seconds, which the bucket's sessions may lack).
                let registry = self.clone();
                self.inner.tasks.spawn(
                    async move {
                        if registry.archive(&id, &paths).await == Some(true) {
                            registry.finish_recording_job(&id).await;
                            registry.forget_sessions(&id, &paths).await;
                        }
                        drop(claim);
                    }
                    .in_current_span(),
                );
                continue;
            }
            if !sessions::any(storage, &paths).await {
                tracing::warn!(stream = %id, "a recording job left by a dead node has no session in the bucket; dropped");
                self.finish_recording_job(&id).await;
                continue;
            }
            tracing::warn!(stream = %id, "making again the recording that a dead node did not finish");
            // Finalising claims the job again (this node has it) and renews it from there.
            drop(claim);
            let registry = self.clone();
            self.inner.tasks.spawn(
                async move {
                    registry.close_playlists_left(&id, &paths).await;
                    let event = registry.finalize_recording(&id, &paths, None).await;
                    if let Ok(Some(stream)) = registry.inner.store.stream(&id).await {
                        registry.emit_idle(&stream, stream.state, event);
                    }
                }
                .in_current_span(),
            );
        }
    }

    /// Pulls RTSP cameras with `pulls` from now on, starting with `resume` (the pulled streams
    /// that were not ended when the server stopped).
    pub fn attach_pulls(
        &self,
        pulls: Arc<Pulls<StreamRegistry>>,
        resume: Vec<(crate::store::Stream, PullSource)>,
    ) {
        for (stream, source) in resume {
            tracing::info!(stream = %stream.id, source = %source, "pulling again after the restart");
            pulls.start(stream.id, source);
        }
        *self.pulls_slot() = Some(pulls);
    }

    fn pulls_slot(&self) -> MutexGuard<'_, Option<Arc<Pulls<StreamRegistry>>>> {
        self.inner.pulls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pulls(&self) -> Option<Arc<Pulls<StreamRegistry>>> {
        self.pulls_slot().clone()
    }

    /// Whether the server may pull from `source` (see `rtsp.allow_private_sources`).
    pub async fn check_source(&self, source: &PullSource) -> Result<(), SourceError> {
        source
            .check_address(self.inner.config.rtsp.allow_private_sources)
            .await
    }

    /// Creates a stream; with a `source`, its camera is pulled from now on.
    pub async fn create(
        &self,
        new: crate::store::NewStream,
        source: Option<PullSource>,
    ) -> Result<crate::store::Stream, Error> {
        let stream = self.inner.store.create_stream(new).await?;
        let scheduled_at = stream.scheduled_at;
        self.emit_idle(&stream, stream.state, EventKind::Created { scheduled_at });
        if let Some(source) = source {
            self.pull(&stream.id, source).await?;
        }
        Ok(stream)
    }

    /// Deletes a stream that never went live; `false` for one that did (or is live now).
    pub async fn delete(&self, id: &StreamId) -> Result<bool, Error> {
        if self.live(id).is_some() {
            return Ok(false);
        }
        Ok(self.inner.store.delete_unused_stream(id).await?)
    }

    /// Makes `source` the stream's camera and starts pulling it (until the stream ends).
    async fn pull(&self, id: &StreamId, source: PullSource) -> Result<(), Error> {
        self.inner.store.set_source(id, &source).await?;
        tracing::info!(stream = %id, source = %source, "pulled stream created");
        if let Some(pulls) = self.pulls() {
            pulls.start(id.clone(), source);
        }
        Ok(())
    }

    /// A new stream key: the old one stops working for new publishes (a running publish and a
    /// pulled camera go on; pulls do not use the key). `None` for an ended stream.
    pub async fn rotate_key(&self, id: &StreamId) -> Result<Option<StreamKey>, Error> {
        Ok(self.inner.store.rotate_key(id).await?)
    }

    fn stop_pull(&self, id: &StreamId) {
        if let Some(pulls) = self.pulls() {
            pulls.stop(id);
        }
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

    /// Every stream event from now on (see [`events`](super::events)).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StreamEvent> {
        self.inner.events.subscribe()
    }

    /// Emits what happened to a stream, with its status now.
    fn emit(&self, stream: &StreamId, creator: &CreatorId, status: StreamStatus, kind: EventKind) {
        self.inner.events.emit(StreamEvent {
            stream: stream.clone(),
            creator: creator.clone(),
            status,
            kind,
        });
    }

    /// Emits what happened to a live stream, with its status now.
    fn emit_live(
        &self,
        stream: &LiveStream,
        state: StreamState,
        reconnecting: bool,
        kind: EventKind,
    ) {
        let status = StreamStatus {
            state,
            mode: stream.mode(),
            reconnecting,
        };
        self.emit(&stream.id, &stream.creator_id, status, kind);
    }

    /// Emits what happened to a stream that is not live (as the store has it), now in `state`.
    fn emit_idle(&self, stream: &crate::store::Stream, state: StreamState, kind: EventKind) {
        let status = StreamStatus {
            state,
            mode: stream.mode,
            reconnecting: false,
        };
        self.emit(&stream.id, &stream.creator_id, status, kind);
    }

    /// Emits what happened on a live stream besides its media and its life (a flash sale, an
    /// auction: `streams::sales`), with the stream's status now.
    pub fn announce(&self, stream: &LiveStream, kind: EventKind) {
        let reconnecting = stream.health().reconnecting;
        self.emit_live(stream, StreamState::Live, reconnecting, kind);
    }

    /// Emits what happened on a stream that is not live (an auction closed after a restart), with
    /// its stored status.
    pub fn announce_idle(&self, stream: &crate::store::Stream, kind: EventKind) {
        self.emit_idle(stream, stream.state, kind);
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
            let status = StreamStatus {
                state: before.state,
                mode: live.as_ref().map_or(mode, |s| s.mode()),
                reconnecting: live.as_ref().is_some_and(|s| s.health().reconnecting),
            };
            let running = live.is_some_and(|s| s.has_pipeline() && !s.is_ending());
            let kind = EventKind::ModeChanged {
                from: before.mode,
                running,
            };
            self.emit(id, &before.creator_id, status, kind);
        }
        Ok(())
    }

    /// Chooses the destinations a stream sends to while public (ids of its creator's
    /// destinations, at most `max`: `simulcast.max_targets`, or `max_targets_with_benefit` for
    /// a creator with the level benefit); a live stream starts and stops targets at once,
    /// leaving the others alone. Returns what was chosen.
    pub async fn set_destinations(
        &self,
        stream: &crate::store::Stream,
        ids: Vec<DestinationId>,
        max: usize,
    ) -> Result<Vec<Destination>, Error> {
        let mut ids = ids;
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        if ids.len() > max {
            return Err(Error::TooManyTargets(max));
        }
        let own = self.inner.store.destinations_of(&stream.creator_id).await?;
        if let Some(id) = ids.iter().find(|id| !own.iter().any(|d| &d.id == *id)) {
            return Err(Error::UnknownDestination(id.to_string()));
        }
        self.inner
            .store
            .set_stream_destinations(&stream.id, ids)
            .await?;
        let chosen = self.inner.store.stream_destinations(&stream.id).await?;
        if let Some(live) = self.live(&stream.id) {
            live.simulcast.set_selected(chosen.clone());
        }
        tracing::info!(stream = %stream.id, destinations = chosen.len(), "simulcast destinations chosen");
        Ok(chosen)
    }

    /// A destination changed or was deleted: the live streams that send to it pick the change up.
    pub async fn destination_changed(&self, creator: &CreatorId) -> Result<(), Error> {
        let streams: Vec<Arc<LiveStream>> = self
            .live_streams()
            .into_iter()
            .filter(|s| &s.creator_id == creator)
            .collect();
        for live in streams {
            let chosen = self.inner.store.stream_destinations(&live.id).await?;
            live.simulcast.set_selected(chosen);
        }
        Ok(())
    }

    /// Focuses a product of the carousel (checked by the caller), or clears the focus: stamped
    /// with the media time of the newest frame, marked in every output, stored, announced. The
    /// same product again changes nothing.
    pub async fn focus(
        &self,
        id: &StreamId,
        product: Option<FocusedProduct>,
    ) -> Result<FocusEvent, Error> {
        let not_live = || Error::NotLive("focus products while it is");
        let live = self.live(id).ok_or_else(not_live)?;
        let mut current = live.focus.lock().await;
        let same =
            |c: &FocusEvent| c.product.as_ref().map(|p| &p.id) == product.as_ref().map(|p| &p.id);
        if let Some(c) = current.as_ref().filter(|c| same(c)) {
            return Ok(c.clone());
        }
        let at = live.media_time().ok_or_else(not_live)?;
        let date = live.hls.date_at(at);
        let media_ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        let event = self
            .inner
            .store
            .add_focus(id, product, media_ms, date)
            .await?;
        if let Some(previous) = current.as_ref().filter(|c| c.product.is_some()) {
            for out in live.outputs() {
                out.end_marker(&previous.marker_id(), at);
            }
        }
        if let Some(p) = &event.product {
            for out in live.outputs() {
                out.start_marker(marker(&event, p), at);
            }
        }
        tracing::info!(stream = %id, product = ?event.product.as_ref().map(|p| &p.id), media_ms, "focus changed");
        let reconnecting = live.health().reconnecting;
        let kind = EventKind::FocusChanged {
            focus: event.clone(),
        };
        self.emit_live(&live, StreamState::Live, reconnecting, kind);
        *current = Some(event.clone());
        Ok(event)
    }

    /// Ends a stream: a live one disconnects its publisher and finalises; an idle one just ends
    /// (its key stops working).
    pub async fn end(&self, id: &StreamId) -> Result<(), Error> {
        // The stream first: a pull that stops sees that its creator ended the stream.
        self.end_stream(id).await?;
        self.stop_pull(id);
        Ok(())
    }

    async fn end_stream(&self, id: &StreamId) -> Result<(), Error> {
        match self.live(id) {
            Some(s) => s.end_by_creator(),
            None => {
                self.inner.store.mark_ended(id).await?;
                if let Some(stream) = self.inner.store.stream(id).await? {
                    let kind = EventKind::Ended {
                        was_live: false,
                        reason: "ended_by_creator".into(),
                    };
                    self.emit_idle(&stream, StreamState::Ended, kind);
                }
            }
        }
        Ok(())
    }

    /// Takes a stream down for breaking `policy` (a strike for its creator): a live one turns
    /// practice at once and ends as with [`end`](Self::end); an idle one just ends; a pull stops.
    /// `None` when it was taken down before.
    pub async fn take_down(
        &self,
        stream: &crate::store::Stream,
        reason: String,
        policy: String,
    ) -> Result<Option<(Takedown, Strike)>, Error> {
        let Some(done) = self.inner.store.take_down(stream, reason, policy).await? else {
            return Ok(None);
        };
        let id = &stream.id;
        match self.live(id) {
            Some(s) => {
                s.take_down();
                if let Some(rtsp) = self.inner.rtsp.get() {
                    rtsp.hide(id);
                }
                let reconnecting = s.health().reconnecting;
                self.emit_live(&s, StreamState::Live, reconnecting, EventKind::TakenDown);
            }
            None => {
                self.inner.store.mark_ended(id).await?;
                if let Some(stream) = self.inner.store.stream(id).await? {
                    self.emit_idle(&stream, StreamState::Ended, EventKind::TakenDown);
                }
            }
        }
        self.stop_pull(id);
        tracing::info!(stream = %id, "taken down");
        Ok(Some(done))
    }

    /// Ends every live stream and waits until their files are finalised.
    ///
    /// Bounded by `DEFAULT_SHUTDOWN_GRACE`: what is not finalised by then is left as after a crash,
    /// and the next start recovers it.
    pub async fn shutdown(&self) {
        // Pulls stop with the server's shutdown token; their streams are ended below.
        let pulls = self.pulls_slot().take();
        if let Some(pulls) = pulls {
            pulls.wait().await;
        }
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
    /// the last complete fragment), their playlists closed. With several nodes, only the streams
    /// whose lease this node can take: one live on another node is left to it.
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
            let ttl = self.inner.config.node.lease_ttl;
            let lease = match store
                .acquire_lease(&id, self.me(), ttl, chrono::Utc::now())
                .await?
            {
                Ok(lease) => lease,
                Err(holder) => {
                    tracing::info!(stream = %id, node = %holder.node, "live on another node: not recovered here");
                    continue;
                }
            };
            tracing::warn!(stream = %id, "recovering a stream left live by an unclean stop");
            self.end_left_live(&id, &lease).await?;
        }
        // Recordings that waited for disk space when the server stopped wait on (or are
        // finalised at once if space came back meanwhile).
        for id in store.failed_recordings(WAITING_FOR_SPACE).await? {
            self.finalize_when_space_returns(&id, &self.paths(&id));
        }
        Ok(())
    }

    /// Ends a stream left live without a session here, whose lease this node took: its
    /// playlists closed (continued from the bucket's where they are newer: its node may have
    /// been another), its recording finalised (from the sessions in the bucket, with object
    /// storage), the stream ended (a pulled one ready). The lease is let go.
    async fn end_left_live(&self, id: &StreamId, lease: &Lease) -> Result<(), Error> {
        let store = &self.inner.store;
        let paths = self.paths(id);
        self.close_playlists_left(id, &paths).await;
        let recording = self.finalize_recording(id, &paths, None).await;
        let state = if store.source(id).await?.is_some() {
            // A pulled stream outlives the server: it is pulled again after this start.
            store.mark_ready_by(lease).await?;
            StreamState::Ready
        } else {
            store.mark_ended_by(lease).await?;
            StreamState::Ended
        };
        if let Some(stream) = store.stream(id).await? {
            self.emit_idle(&stream, state, recording);
        }
        self.let_go(lease).await;
        Ok(())
    }

    /// Closes the playlists of a stream whose session is not here, continuing the bucket's
    /// copies where they are newer (its node may have been another).
    async fn close_playlists_left(&self, id: &StreamId, paths: &StreamPaths) {
        let config = &self.inner.config;
        if let (Some(storage), Ok(Some(stream))) =
            (self.remote_storage(), self.inner.store.stream(id).await)
        {
            let ladder = stream.ladder.as_deref().unwrap_or(&config.hls.ladder);
            let rungs: Vec<String> = LadderSpec::resolve(ladder)
                .map(|l| l.rungs.iter().map(|r| r.name.clone()).collect())
                .unwrap_or_default();
            takeover::fetch_event_lists(storage, paths, rungs, config.hls.segment).await;
        }
        let (window, target) = (config.hls.window, config.hls.segment);
        for dir in [paths.hls_dir(), paths.low_latency_dir()] {
            if let Err(e) = hls::close_persisted(&dir, window, target) {
                tracing::error!(stream = %id, error = %e, "could not close the playlists");
            }
        }
    }

    /// Streams whose node died mid-stream and that no node took on within
    /// `ingest.reconnect_grace` after their lease ran out (their publisher did not come back
    /// anywhere) are ended by whichever node takes their lease first, as after a crash
    /// ([`StreamRegistry::end_left_live`]); its lease is renewed while that runs. Their recording
    /// comes from the bucket (see `sessions`), and the replay and clips are cut from it.
    async fn end_abandoned(&self) {
        let grace = chrono::Duration::from_std(self.inner.config.ingest.reconnect_grace)
            .unwrap_or(chrono::Duration::MAX);
        let before = chrono::Utc::now() - grace;
        let ids = match self
            .inner
            .store
            .abandoned_streams(before, ABANDONED_PER_PASS)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for streams whose node died");
                return;
            }
        };
        let ttl = self.inner.config.node.lease_ttl;
        for id in ids {
            if self.live(&id).is_some() {
                continue;
            }
            let lease = match self
                .inner
                .store
                .acquire_lease(&id, self.me(), ttl, chrono::Utc::now())
                .await
            {
                Ok(Ok(lease)) => lease,
                // Another node was first (or the publisher came back there).
                Ok(Err(_)) => continue,
                Err(e) => {
                    tracing::warn!(stream = %id, error = %e, "could not take an abandoned stream");
                    continue;
                }
            };
            // Published here meanwhile: that session has it.
            if self.live(&id).is_some() {
                continue;
            }
            tracing::warn!(stream = %id, "ending a stream whose node died and whose publisher did not come back");
            let registry = self.clone();
            self.inner.tasks.spawn(
                async move {
                    let store = registry.inner.store.clone();
                    let renew = {
                        let lease = lease.clone();
                        async move {
                            let mut tick = tokio::time::interval(ttl / 3);
                            loop {
                                tick.tick().await;
                                let renewed = store
                                    .renew_leases(vec![lease.clone()], ttl, chrono::Utc::now())
                                    .await;
                                if let Err(e) = renewed {
                                    tracing::warn!(error = %e, "could not renew the lease of a stream being ended");
                                }
                            }
                        }
                    };
                    tokio::select! {
                        ended = registry.end_left_live(&id, &lease) => if let Err(e) = ended {
                            tracing::error!(stream = %id, error = %e, "could not end a stream whose node died");
                        },
                        () = renew => {}
                    }
                }
                .in_current_span(),
            );
        }
    }

    fn remote_storage(&self) -> Option<&Storage> {
        self.inner.storage.get().filter(|s| s.is_remote())
    }

    /// Finalises the recording; once it is ready, its public replay and the clips of its product
    /// chapters are cut in the background. Returns the event that tells how it went.
    async fn finalize_recording(
        &self,
        id: &StreamId,
        paths: &StreamPaths,
        session: Option<&Arc<LiveStream>>,
    ) -> EventKind {
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
        let job = self.claim_recording_job(id).await;
        let result = match (session, self.remote_storage()) {
            // Finished without its session (after a crash, or its node died): with object
            // storage, its sessions' recordings are in the bucket.
            (None, Some(storage)) => match self.recording_from_sessions(id, paths, storage).await {
                Some(result) => result,
                None => self.recording_here(id, paths, None).await,
            },
            _ => self.recording_here(id, paths, session).await,
        };
        let (rec, event) = match result {
            Ok(Made {
                done,
                public,
                sessions,
                joined,
            }) => {
                // Before the clips are cut: their chapters are placed by it.
                if let Err(e) = store.set_recording_sessions(id, &sessions).await {
                    tracing::error!(stream = %id, error = %e, "could not store where the recording's sessions start; its chapters are placed as stamped");
                }
                let _ = std::fs::remove_file(paths.recording_fragmented());
                sessions::forget_local(paths);
                tracing::info!(stream = %id, bytes = done.bytes, duration_s = done.duration.as_secs_f64(), "recording ready");
                let (store, paths, id) = (store.clone(), paths.clone(), id.clone());
                let registry = self.clone();
                self.inner.tasks.spawn(
                    async move {
                        clips::cut_public(&store, &paths, &id, public).await;
                        let archived = registry.archive(&id, &paths).await;
                        // Left to another node (or the next start) when the server stops first.
                        if archived != Some(false) {
                            registry.finish_recording_job(&id).await;
                        }
                        if archived == Some(true) && joined {
                            registry.forget_sessions(&id, &paths).await;
                        }
                        drop(job);
                    }
                    .in_current_span(),
                );
                let rec = mark(
                    RecordingState::Ready,
                    done.bytes,
                    done.duration.as_millis() as u64,
                    None,
                );
                let event = EventKind::RecordingReady {
                    bytes: done.bytes,
                    duration_s: done.duration.as_secs_f64(),
                };
                (rec, event)
            }
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "recording failed");
                // Kept for when there is room again (also after a restart, by this prefix).
                let error = match space_needed(paths) {
                    Some(_) => format!("{WAITING_FOR_SPACE}: {e}"),
                    None => e.to_string(),
                };
                self.finish_recording_job(id).await;
                drop(job);
                let rec = mark(RecordingState::Failed, 0, 0, Some(error.clone()));
                (rec, EventKind::RecordingFailed { error })
            }
        };
        if let Err(e) = store.set_recording(rec.clone()).await {
            tracing::error!(stream = %id, error = %e, "could not store the recording state; retrying");
            self.store_later(id.clone(), Refused::Recording(rec), session);
        }
        event
    }

    /// The recording finalised from this disk's fragmented file (joined after the earlier
    /// sessions in the bucket when `session` ended here), its public media, and whether the
    /// bucket's copies of the sessions are to be deleted once it is archived.
    async fn recording_here(
        &self,
        id: &StreamId,
        paths: &StreamPaths,
        session: Option<&Arc<LiveStream>>,
    ) -> Result<Made, recording::Error> {
        let (src, dst) = (paths.recording_fragmented(), paths.recording());
        let done = off_thread(move || recording::finalize(&src, &dst)).await?;
        // What was public of it: the replay anyone may watch, and the clips.
        let this_disk = crate::output::file_cache::FileCache::default();
        let public = hls::read_public_media(&this_disk, &paths.hls_dir())
            .await
            .unwrap_or_default();
        Ok(self.join_sessions(id, paths, session, done, public).await)
    }

    /// The recording of a stream finished without its session, made of the sessions in the
    /// bucket (this disk's own fragmented file standing for its session); `None` when the
    /// bucket has none (streams from before sessions were uploaded) or cannot be read.
    async fn recording_from_sessions(
        &self,
        id: &StreamId,
        paths: &StreamPaths,
        storage: &Storage,
    ) -> Option<Result<Made, recording::Error>> {
        let all = match sessions::fetch(storage, paths, None).await {
            Ok(all) if all.is_empty() => return None,
            Ok(all) => all,
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "could not read the sessions' recordings from the bucket; finalising what this disk has");
                return None;
            }
        };
        let count = all.len();
        let recording = paths.recording();
        let joined = off_thread(move || sessions::join(all, &recording, None)).await;
        Some(joined.map(|(done, public, sessions)| {
            tracing::info!(stream = %id, sessions = count, public = ?public.intervals_ms, "the recording is made of the sessions in the bucket");
            Made {
                done,
                public,
                sessions,
                joined: true,
            }
        }))
    }

    /// With object storage, the sessions of this stream that ran before `session` (on nodes that
    /// died, or on this one before a restart) are joined before it: one recording, and the
    /// public media of the whole (see `sessions`). Without earlier sessions, or when joining
    /// fails (logged), the recording is `done` and its public media `public`. Returns whether
    /// the bucket's copies of the sessions are to be deleted once the recording is archived.
    async fn join_sessions(
        &self,
        id: &StreamId,
        paths: &StreamPaths,
        session: Option<&Arc<LiveStream>>,
        done: recording::Finalized,
        public: PublicIntervals,
    ) -> Made {
        let alone = |done, public, joined| Made {
            done,
            public,
            sessions: Vec::new(),
            joined,
        };
        let (Some(storage), Some(current)) = (
            self.remote_storage(),
            session
                .and_then(|s| s.uploads.as_ref())
                .and_then(|u| u.followed())
                .and_then(|dir| dir.file_name())
                .and_then(|name| name.to_str()),
        ) else {
            return alone(done, public, false);
        };
        let earlier = match sessions::fetch(storage, paths, Some(current)).await {
            Ok(earlier) if earlier.is_empty() => return alone(done, public, true),
            Ok(earlier) => earlier,
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "could not read the earlier sessions' recordings from the bucket; the recording holds this session only");
                return alone(done, public, false);
            }
        };
        let count = earlier.len();
        let (recording, kept) = (paths.recording(), public.clone());
        let current = Some((current.to_string(), kept));
        let joined = off_thread(move || sessions::join(earlier, &recording, current)).await;
        match joined {
            Ok((joined, public, sessions)) => {
                tracing::info!(stream = %id, earlier = count, duration_s = joined.duration.as_secs_f64(), public = ?public.intervals_ms, "the recording joins the earlier sessions' recordings");
                Made {
                    done: joined,
                    public,
                    sessions,
                    joined: true,
                }
            }
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "joining the earlier sessions' recordings failed; the recording holds this session only");
                alone(done, public, false)
            }
        }
    }

    /// Deletes the bucket's copies of the stream's sessions once its recording is archived.
    async fn forget_sessions(&self, id: &StreamId, paths: &StreamPaths) {
        let Some(storage) = self.remote_storage() else {
            return;
        };
        match sessions::forget(storage, paths).await {
            Ok(n) => tracing::debug!(stream = %id, objects = n, "the sessions' copies are deleted"),
            Err(e) => {
                tracing::warn!(stream = %id, error = %e, "could not delete the sessions' copies from the bucket")
            }
        }
    }

    /// A recording whose finalising failed for want of disk space (the fragmented file is kept)
    /// is finalised once there is room for its copy again: the stream's recording turns `ready`
    /// without a restart, and after one (`recover`). Gives up when the stream is published again
    /// (that session keeps the file, see `keep_unfinished_recording`) or the server stops.
    fn finalize_when_space_returns(&self, id: &StreamId, paths: &StreamPaths) {
        let fragmented = paths.recording_fragmented();
        let Ok(len) = std::fs::metadata(&fragmented).map(|m| m.len()) else {
            return;
        };
        let needed = len + FINALIZE_SPACE_MARGIN;
        tracing::warn!(
            stream = %id,
            bytes = len,
            "the recording waits for disk space to be finalised"
        );
        let (registry, id, paths) = (self.clone(), id.clone(), paths.clone());
        self.inner.tasks.spawn(
            async move {
                let mut wait = STORE_RETRY_INITIAL;
                loop {
                    tokio::time::sleep(wait).await;
                    if registry.inner.tasks.is_closed()
                        || registry.live(&id).is_some()
                        || !fragmented.exists()
                    {
                        return;
                    }
                    if disk_space::free_bytes(&paths.dir).is_ok_and(|free| free >= needed) {
                        tracing::info!(
                            "disk space is back; closing the playlists and finalising the recording"
                        );
                        let config = &registry.inner.config.hls;
                        for dir in [paths.hls_dir(), paths.low_latency_dir()] {
                            if let Err(e) =
                                hls::close_persisted(&dir, config.window, config.segment)
                            {
                                tracing::error!(error = %e, "could not close the playlists");
                            }
                        }
                        let event = registry.finalize_recording(&id, &paths, None).await;
                        if let Ok(Some(stream)) = registry.inner.store.stream(&id).await {
                            registry.emit_idle(&stream, stream.state, event);
                        }
                        return;
                    }
                    wait = (wait * 2).min(STORE_RETRY_MAX);
                }
            }
            .in_current_span(),
        );
    }

    /// Finalises an earlier session's unfinished recording, moved aside as `kept`, into `mp4` in
    /// the background; the fragmented file stays when that fails too (disk still full).
    fn finalize_part(&self, kept: PathBuf, mp4: PathBuf) {
        self.inner.tasks.spawn(
            async move {
                let src = kept.clone();
                let result = off_thread(move || recording::finalize(&src, &mp4)).await;
                match result {
                    Ok(done) => {
                        tracing::info!(part = %kept.display(), bytes = done.bytes, "earlier session's recording finalised");
                        let _ = std::fs::remove_file(&kept);
                    }
                    Err(e) => {
                        tracing::error!(part = %kept.display(), error = %e, "could not finalise an earlier session's recording; the fragmented file is kept")
                    }
                }
            }
            .in_current_span(),
        );
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
            if let Branch::Target(name) = branch {
                // Retried by the stream's simulcast task, not dropped for good.
                registry
                    .inner
                    .counters
                    .target_failures
                    .fetch_add(1, Ordering::Relaxed);
                stream.simulcast.target_failed(name, reason);
                return;
            }
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
                Branch::Target(_) => unreachable!("handled above"),
                Branch::Poster | Branch::Ingest => {}
            }
        })
    }

    /// Stops the pipeline, closes the playlists, finalises the recording, marks the stream ended.
    /// A publisher that leaves before sending any media ends nothing: the stream stays ready for
    /// the next attempt (OBS connection tests, a misconfigured encoder), unless the creator ended it.
    async fn finish(&self, stream: Arc<LiveStream>, reason: EndReason) {
        stream.publisher_gone();
        if stream.lease_lost() {
            return self.let_taken_stream_go(stream).await;
        }
        let store = &self.inner.store;
        let (state, stored) = match stream.take_running() {
            Some(running) => {
                tracing::info!(?reason, "publisher gone; finalising");
                // Targets first: a dead one must not hold up the pipeline's EOS.
                stream.simulcast.stop().await;
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
                // The last segments go up while the recording is finalised.
                if let Some(uploads) = &stream.uploads {
                    uploads.close();
                }
                let recording = match stream.branch_failure(&Branch::Recording) {
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
                        EventKind::RecordingFailed { error: why }
                    }
                    None => {
                        let event = self
                            .finalize_recording(&stream.id, &stream.paths, Some(&stream))
                            .await;
                        if space_needed(&stream.paths).is_some() {
                            self.finalize_when_space_returns(&stream.id, &stream.paths);
                        }
                        event
                    }
                };
                self.inner
                    .counters
                    .streams_finalized
                    .fetch_add(1, Ordering::Relaxed);
                let (stored, state) = if pulled_again_after_restart(&stream, &reason) {
                    tracing::info!(
                        "pulled stream stopped with the server; pulled again at the next start"
                    );
                    (
                        self.close_as_owner(&stream, StreamState::Ready).await,
                        StreamState::Ready,
                    )
                } else {
                    let ended = self.close_as_owner(&stream, StreamState::Ended).await;
                    let kind = EventKind::Ended {
                        was_live: true,
                        reason: format!("{reason:?}"),
                    };
                    self.emit_live(&stream, StreamState::Ended, false, kind);
                    (ended, StreamState::Ended)
                };
                self.emit_live(&stream, state, false, recording);
                (state, stored)
            }
            None if stream.ended_by_creator() => {
                let ended = self.close_as_owner(&stream, StreamState::Ended).await;
                let kind = EventKind::Ended {
                    was_live: false,
                    reason: format!("{reason:?}"),
                };
                self.emit_live(&stream, StreamState::Ended, false, kind);
                (StreamState::Ended, ended)
            }
            None => {
                tracing::info!(
                    ?reason,
                    "publisher left before sending media; the stream stays ready"
                );
                let ready = self.close_as_owner(&stream, StreamState::Ready).await;
                self.emit_live(&stream, StreamState::Ready, false, EventKind::PublisherLeft);
                (StreamState::Ready, ready)
            }
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, ?state, "could not store the stream's state; retrying");
            self.store_later(stream.id.clone(), Refused::State(state), Some(&stream));
        }
        // The archive step (once the stream is no longer live) skips what went up while live.
        if let Some(uploads) = &stream.uploads {
            uploads.drained().await;
        }
        self.live_map().remove(&stream.id);
        self.let_go(&stream.lease).await;
        stream.finished.cancel();
        tracing::info!("publish over");
    }

    /// Stores the end of a session (`Ended` or `Ready`) if this node still holds the stream's
    /// lease; when another node holds it now, nothing is written (the stream lives on there).
    async fn close_as_owner(
        &self,
        stream: &LiveStream,
        state: StreamState,
    ) -> Result<(), crate::store::Error> {
        let store = &self.inner.store;
        let written = match state {
            StreamState::Ended => store.mark_ended_by(&stream.lease).await?,
            _ => store.mark_ready_by(&stream.lease).await?,
        };
        if !written {
            tracing::warn!(
                ?state,
                "another node holds the stream now; its state is left to it"
            );
        }
        Ok(())
    }

    /// The end of a session whose stream another node took (this node's lease ran out
    /// unrenewed): the pipeline stops and the publisher goes, and nothing about the stream is
    /// written or announced: it lives on at the new owner. The local files stay as they are.
    async fn let_taken_stream_go(&self, stream: Arc<LiveStream>) {
        tracing::warn!(stream = %stream.id, "another node took the stream: stopping here");
        if let Some(running) = stream.take_running() {
            stream.simulcast.stop().await;
            if let Err(e) = running.stop().await {
                tracing::warn!(error = %e, "pipeline did not stop cleanly");
            }
        }
        if let Some(rtsp) = self.inner.rtsp.get() {
            rtsp.unpublish(&stream.id);
        }
        if let Some(uploads) = &stream.uploads {
            uploads.close();
            uploads.drained().await;
        }
        self.live_map().remove(&stream.id);
        stream.finished.cancel();
    }

    /// What another node stored about a stream live here, applied: a lease it took stops the
    /// session here; an end (the creator's, or a takedown) ends it as if asked here; a mode set
    /// there takes effect here (unless the mode was set here since it was read).
    fn follow_store(&self, s: &Arc<LiveStream>, changes: u64, renewal: Renewal) {
        match renewal {
            Renewal::Lost => s.lose_lease(),
            Renewal::Held { ended: true, .. } if !s.is_ending() => {
                tracing::info!(stream = %s.id, "ended through another node");
                s.end_by_creator();
            }
            Renewal::Held { mode, .. } => {
                let from = s.mode();
                if s.set_mode_unless_changed(mode, changes) {
                    tracing::info!(stream = %s.id, mode = mode.as_str(), "mode set through another node");
                    if s.mode() == Mode::Practice
                        && let Some(rtsp) = self.inner.rtsp.get()
                    {
                        rtsp.hide(&s.id);
                    }
                    let status = StreamStatus {
                        state: StreamState::Live,
                        mode: s.mode(),
                        reconnecting: s.health().reconnecting,
                    };
                    let running = s.has_pipeline() && !s.is_ending();
                    self.emit(
                        &s.id,
                        &s.creator_id,
                        status,
                        EventKind::ModeChanged { from, running },
                    );
                }
            }
        }
    }

    /// Renews the leases of the streams live here every third of `node.lease_ttl`, until `stop`;
    /// a stream whose lease another node took meanwhile stops here ([`LiveStream::lose_lease`]).
    /// Then ends the streams that a dead node left ([`StreamRegistry::end_abandoned`]).
    /// A renewal that fails (the database unreachable) is retried: only a lease seen taken is
    /// lost, and another node can take one only through the database.
    pub async fn keep_leases(self, stop: CancellationToken) {
        let ttl = self.inner.config.node.lease_ttl;
        let mut tick = tokio::time::interval(ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let held: Vec<(Arc<LiveStream>, u64)> = self
                .live_streams()
                .into_iter()
                .filter(|s| !s.lease_lost())
                .map(|s| {
                    let changes = s.mode_changes();
                    (s, changes)
                })
                .collect();
            let leases = held.iter().map(|(s, _)| s.lease.clone()).collect();
            match self
                .inner
                .store
                .renew_leases(leases, ttl, chrono::Utc::now())
                .await
            {
                Ok(found) => {
                    for ((s, changes), (_, renewal)) in held.iter().zip(found) {
                        self.follow_store(s, *changes, renewal);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not renew the stream leases; retrying"),
            }
            self.end_abandoned().await;
            self.take_over_recording_jobs().await;
        }
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
                        // A recording finalised meanwhile (once disk space came back) stays
                        // ready: a late `failed` does not overwrite it.
                        Refused::Recording(rec) if rec.state == RecordingState::Failed => {
                            match store.recording(&id).await {
                                Ok(Some(now)) if now.state == RecordingState::Ready => Ok(()),
                                _ => store.set_recording(rec.clone()).await,
                            }
                        }
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
            stream.hls.next_segment_index(),
        );
        spec.part = stream
            .ll
            .as_ref()
            .and(self.inner.config.hls.low_latency_part());
        // The MPEG-TS playlists leave out a source that MPEG-TS cannot carry (AV1).
        stream.hls.add_renditions(&spec.ts_renditions());
        if let Some(ll) = &stream.ll {
            ll.add_renditions(&spec.renditions());
        }
        for out in stream.outputs() {
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
            for (rendition, sinks, comeback) in low_latency {
                cmaf::attach(
                    sinks,
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
            video: tracks
                .video
                .clone()
                .map(|record| (tracks.video_codec, record)),
            asc: tracks.audio.clone(),
        };
        let span = tracing::info_span!("stream", id = %stream.id, proto = stream.proto().as_str());
        let rungs = spec.rungs.iter().map(|r| r.name.clone()).collect();
        let on_branch_failure = self.on_branch_failure(stream.clone(), span.clone());
        self.inner.tasks.spawn(
            bus::watch(
                bus,
                pipeline.clone(),
                stream.clone(),
                config,
                rungs,
                on_branch_failure,
                eos_tx,
            )
            .instrument(span.clone()),
        );
        let emitter = self.clone();
        let target_stream = stream.clone();
        let context = simulcast::Context {
            config: self.inner.config.simulcast.clone(),
            secrets: self.inner.secrets.clone(),
            emit: Box::new(move |destination| {
                let reconnecting = target_stream.health().reconnecting;
                emitter.emit_live(
                    &target_stream,
                    StreamState::Live,
                    reconnecting,
                    EventKind::DestinationChanged { destination },
                );
            }),
        };
        self.inner.tasks.spawn(
            simulcast::run(stream.clone(), pipeline.clone(), context).instrument(span.clone()),
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
        let protocol = stream.proto().as_str().to_string();
        self.emit_live(
            stream,
            StreamState::Live,
            false,
            EventKind::WentLive { protocol },
        );
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
        let refuse = self.refusal(proto, stream_key::redact(key));
        let stream = self
            .inner
            .store
            .stream_by_key(key)
            .await
            .map_err(|e| ingest::Error::Store(e.to_string()))?
            .ok_or_else(|| refuse(ingest::Error::BadStreamKey(stream_key::redact(key))))?;
        self.admit(stream, proto, &refuse).await
    }

    async fn authorize_pull(&self, id: &StreamId) -> Result<PublishSink, ingest::Error> {
        let refuse = self.refusal(Proto::Rtsp, format!("pull of {id}"));
        let store = &self.inner.store;
        let gone = || ingest::Error::Ended(id.to_string());
        let stream = store
            .stream(id)
            .await
            .map_err(|e| ingest::Error::Store(e.to_string()))?
            .ok_or_else(|| refuse(gone()))?;
        let pulled = store
            .source(id)
            .await
            .map_err(|e| ingest::Error::Store(e.to_string()))?;
        if pulled.is_none() {
            return Err(refuse(gone()));
        }
        self.admit(stream, Proto::Rtsp, &refuse).await
    }
}

impl StreamRegistry {
    /// Counts and logs a refused publisher (`who`: its redacted key, or the pull).
    fn refusal(&self, proto: Proto, who: String) -> impl Fn(ingest::Error) -> ingest::Error + '_ {
        move |e: ingest::Error| {
            self.inner
                .counters
                .publishes_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(publisher = %who, proto = proto.as_str(), reason = %e, "publish refused");
            e
        }
    }

    /// Lets a publisher into `stream` (found by its key, or pulled): a stream that ended refuses;
    /// a live one is continued or refused (see `continue_with`); else its outputs are made and it
    /// is reserved.
    async fn admit(
        &self,
        stream: crate::store::Stream,
        proto: Proto,
        refuse: &impl Fn(ingest::Error) -> ingest::Error,
    ) -> Result<PublishSink, ingest::Error> {
        let key = stream.stream_key.redacted();
        if stream.state == StreamState::Ended {
            return Err(refuse(ingest::Error::StreamEnded(key)));
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
                // This node's hold on the stream first: another node may have it live.
                let lease = self.take_lease(&stream.id, refuse).await?;
                let started = stream.started_at.is_some();
                if let Some(storage) = self.remote_storage()
                    && started
                {
                    let rungs = ladder.rungs.iter().map(|r| r.name.clone());
                    let copied =
                        takeover::fetch_event_lists(storage, &paths, rungs, config.hls.segment)
                            .await;
                    if copied > 0 {
                        tracing::info!(stream = %stream.id, files = copied, "continuing an earlier session's playlists from the bucket");
                    }
                }
                let (config, paths) = (config.clone(), paths.clone());
                let outputs =
                    tokio::task::spawn_blocking(move || new_outputs(&config, &paths, started))
                        .await;
                match outputs {
                    Ok(outputs) => fresh = Some((outputs, lease)),
                    Err(e) => {
                        self.let_go(&lease).await;
                        return Err(ingest::Error::Pipeline(e.to_string()));
                    }
                }
            }
            let mut map = self.live_map();
            // Another publisher with this key may have been let in meanwhile (or the stream it
            // had ended: then outputs are made after all).
            match (map.get(&stream.id).cloned(), fresh.take()) {
                (Some(live), _) => {
                    drop(map);
                    return self.continue_with(live, proto, &key, span, refuse);
                }
                (None, Some(((hls, ll, unfinished), lease))) => {
                    if let Some((kept, mp4)) = unfinished {
                        self.finalize_part(kept, mp4);
                    }
                    let session = sessions::name(lease.fence, chrono::Utc::now());
                    let uploads = self.live_upload(
                        &stream.id,
                        [Some(&hls), ll.as_ref()],
                        sessions::follow(&paths, &session),
                    );
                    let live = Arc::new(LiveStream::new(
                        &stream,
                        proto,
                        paths.clone(),
                        (hls, ll),
                        (uploads, lease),
                        ladder.clone(),
                        config.hls.segment,
                    ));
                    map.insert(stream.id.clone(), live.clone());
                    break live;
                }
                (None, None) => {}
            }
        };
        let session = live
            .uploads
            .as_ref()
            .and_then(|u| u.followed()?.file_name());
        if let Some(session) = session.and_then(|s| s.to_str()) {
            let (paths, session) = (paths.clone(), session.to_string());
            let marked =
                tokio::task::spawn_blocking(move || sessions::mark_local(&paths, &session)).await;
            if !matches!(marked, Ok(Ok(()))) {
                tracing::warn!(stream = %stream.id, "could not note which session the recording on this disk is");
            }
        }
        if let Err(e) = self.inner.store.mark_live(&stream.id).await {
            self.live_map().remove(&stream.id);
            self.let_go(&live.lease).await;
            return Err(ingest::Error::Store(e.to_string()));
        }
        // A stream that was live before (taken over from a node that died, or resumed after a
        // restart) keeps its product in focus: the event lists continued carry its open marker.
        if stream.started_at.is_some() {
            match self.inner.store.current_focus(&stream.id).await {
                Ok(focus) => *live.focus.lock().await = focus.filter(|f| f.product.is_some()),
                Err(e) => {
                    tracing::warn!(stream = %stream.id, error = %e, "could not read the product in focus")
                }
            }
        }
        match self.inner.store.stream_destinations(&stream.id).await {
            Ok(chosen) => live.simulcast.set_selected(chosen),
            Err(e) => {
                tracing::error!(stream = %stream.id, error = %e, "could not read the stream's destinations; nothing is simulcast")
            }
        }
        tracing::info!(stream = %stream.id, key = %stream.stream_key, proto = proto.as_str(), "publish accepted");
        Ok(self.accepted(live, span))
    }

    /// Takes the stream's lease for this node; refused while another node holds it (it is live
    /// there, or its node died less than `node.lease_ttl` ago).
    async fn take_lease(
        &self,
        id: &StreamId,
        refuse: &impl Fn(ingest::Error) -> ingest::Error,
    ) -> Result<Lease, ingest::Error> {
        let ttl = self.inner.config.node.lease_ttl;
        match self
            .inner
            .store
            .acquire_lease(id, self.me(), ttl, chrono::Utc::now())
            .await
        {
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(holder)) => Err(refuse(ingest::Error::LiveOnAnotherNode(holder.node))),
            Err(e) => Err(ingest::Error::Store(e.to_string())),
        }
    }

    /// Lets the lease run out now, so that another node may take the stream at once.
    async fn let_go(&self, lease: &Lease) {
        if let Err(e) = self.inner.store.release_lease(lease).await {
            tracing::warn!(stream = %lease.stream, error = %e, "could not release the stream's lease; it runs out by itself");
        }
    }

    /// With object storage, the live upload of a stream's closed segments and playlists, told of
    /// every file its `outputs` write.
    fn live_upload(
        &self,
        id: &StreamId,
        outputs: [Option<&HlsOutput>; 2],
        recording: Follow,
    ) -> Option<Arc<LiveUpload>> {
        let storage = self.remote_storage()?;
        let uploads = Arc::new(LiveUpload::start(
            storage.clone(),
            self.inner.counters.uploads.clone(),
            id.as_str(),
            Some(recording),
        ));
        for out in outputs.into_iter().flatten() {
            let uploads = uploads.clone();
            out.on_written(Box::new(move |file| match file {
                hls::Written::Media(path) => uploads.media_closed(path),
                hls::Written::Playlist(path) => uploads.playlist_written(path),
            }));
        }
        Some(uploads)
    }

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
            return Err(refuse(ingest::Error::AlreadyLive(key.to_string())));
        }
        tracing::info!(stream = %live.id, proto = proto.as_str(), "publisher came back; continuing the stream");
        let protocol = proto.as_str().to_string();
        self.emit_live(
            &live,
            StreamState::Live,
            false,
            EventKind::PublisherResumed { protocol },
        );
        Ok(self.accepted(live, span))
    }

    /// The sink of a publisher let in (counted for `/metrics`).
    fn accepted(&self, stream: Arc<LiveStream>, span: tracing::Span) -> PublishSink {
        self.inner
            .counters
            .publishes_accepted
            .fetch_add(1, Ordering::Relaxed);
        PublishSink {
            registry: self.clone(),
            stream,
            starter: Some(Starter::default()),
            refused_comeback: false,
            span,
        }
    }
}

/// The HLS outputs of a stream about to go live; one that was live before (`started`: a pulled
/// camera after a restart) continues its previous session's playlists. Blocking (disk).
fn new_outputs(
    config: &Config,
    paths: &StreamPaths,
    started: bool,
) -> (HlsOutput, Option<HlsOutput>, Option<(PathBuf, PathBuf)>) {
    let hls = HlsOutput::new(paths.hls_dir(), config.hls.window, config.hls.segment);
    let ll = config.hls.low_latency_part().map(|part| {
        HlsOutput::low_latency(
            paths.low_latency_dir(),
            config.hls.window,
            config.hls.segment,
            LowLatency {
                part,
                hold_back_parts: config.hls.part_hold_back,
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
    let unfinished = keep_unfinished_recording(paths);
    (hls, ll, unfinished)
}

/// A free `recording-partN` number: neither its MP4 nor an unfinished fragmented file exists.
fn free_part(paths: &StreamPaths) -> u32 {
    let recording = paths.recording();
    (1..)
        .find(|n| {
            ["mp4", "fmp4"].iter().all(|ext| {
                !recording
                    .with_file_name(format!("recording-part{n}.{ext}"))
                    .exists()
            })
        })
        .expect("a free part number")
}

/// An earlier session's fragmented recording that was never finalised (finalising failed: a
/// full disk) would be truncated by the new session's recording: it is moved aside as
/// `recording-partN.fmp4`, to be finalised into `recording-partN.mp4` beside the new one.
/// Returns the moved file and the MP4 it is to become.
fn keep_unfinished_recording(paths: &StreamPaths) -> Option<(PathBuf, PathBuf)> {
    let fragmented = paths.recording_fragmented();
    // Only a file with media in it is a recording (not an empty one, nor a device).
    if !std::fs::metadata(&fragmented).is_ok_and(|m| m.is_file() && m.len() > 0) {
        return None;
    }
    let n = free_part(paths);
    let kept = fragmented.with_file_name(format!("recording-part{n}.fmp4"));
    match std::fs::rename(&fragmented, &kept) {
        Ok(()) => {
            tracing::warn!(part = %kept.display(), "an earlier session's recording was never finalised; kept beside the new one");
            Some((kept.clone(), kept.with_extension("mp4")))
        }
        Err(e) => {
            tracing::error!(error = %e, "could not keep an earlier session's unfinished recording");
            None
        }
    }
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
        let part = recording.with_file_name(format!("recording-part{}.mp4", free_part(paths)));
        match std::fs::rename(&recording, &part) {
            Ok(()) => tracing::info!(part = %part.display(), "previous session's recording kept"),
            Err(e) => {
                tracing::error!(error = %e, "could not keep the previous session's recording")
            }
        }
    }
}

/// A recording made: the file, its public media, where its sessions start in it (none when it
/// holds one session), and whether the bucket's copies of the sessions are to be deleted once it
/// is archived.
struct Made {
    done: recording::Finalized,
    public: PublicIntervals,
    sessions: Vec<SessionStart>,
    joined: bool,
}

/// `f` on a blocking thread (a remux, a join: minutes of disk I/O for a long recording).
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, recording::Error> + Send + 'static,
) -> Result<T, recording::Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(recording::Error::Remux(e.to_string())))
}

/// This node's claim on a recording job, renewed until dropped.
struct JobClaim {
    done: CancellationToken,
}

impl Drop for JobClaim {
    fn drop(&mut self) {
        self.done.cancel();
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
    fn finish(mut self, reason: EndReason) {
        // Media held while the starter waited for an announced track is not lost when the
        // publisher stopped cleanly: the stream starts with what came, then ends as usual. (One
        // dropped, or refused for what it sent, may come back: its media decides then.)
        if reason == EndReason::PublisherStopped
            && let Some(mut starter) = self.starter.take()
            && !self.stream.has_pipeline()
            && self.stream.failure().is_none()
        {
            let go = starter.flush();
            if let Err(e) = self.registry.start_pipeline(&self.stream, go) {
                self.stream.fail(e.to_string());
            }
        }
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
        registry.emit_live(
            &stream,
            StreamState::Live,
            true,
            EventKind::PublisherDropped,
        );
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

/// The playlist marker of a focused product.
fn marker(event: &FocusEvent, p: &FocusedProduct) -> MarkerSpec {
    MarkerSpec {
        id: event.marker_id(),
        class: MARKER_CLASS.into(),
        attributes: vec![
            ("X-PRODUCT-ID".into(), p.id.to_string()),
            ("X-TITLE".into(), p.title.clone()),
            ("X-PRICE".into(), p.price.clone()),
            ("X-CURRENCY".into(), p.currency.clone()),
        ],
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tasks.close();
    }
}
