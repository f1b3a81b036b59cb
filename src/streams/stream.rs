//! One live stream: its immutable spec, the outputs readers look at, and `Option<Running>` — the
//! GStreamer pipeline that exists only between the first usable frame and the stop.
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::ladder::LadderSpec;
use crate::ingest::{Error as IngestError, MediaFrame, Proto, StreamMetadata};
use crate::output::cmaf::{self, Arrivals};
use crate::output::cmaf_parts::Comeback;
use crate::output::codecs;
use crate::output::hls::{HlsOutput, Resumed, ResumedAt};
use crate::output::visibility::Visibility;
use crate::pipeline::branch::Branch;
use crate::pipeline::build;
use crate::pipeline::health::{HealthReport, IngestHealth};
use crate::pipeline::spec::{PipelineSpec, SOURCE_RENDITION, StreamPaths, Tracks};
use crate::pipeline::timeline::{Adjustment, Stamp, TrackTimeline};
use crate::storage::live::LiveUpload;
use crate::store::{CreatorId, FocusEvent, Lease, Mode, Stream, StreamId};

/// How long a stopping pipeline may take to drain after EOS before it is torn down anyway.
const DEFAULT_EOS_TIMEOUT: Duration = Duration::from_secs(20);
/// Without the other track's header after this much media, start with the tracks we have.
const DEFAULT_TRACK_WAIT_MS: u64 = 1_500;
/// The same wait for a track the publisher announced (RTMP metadata, a WHIP offer's `m=`
/// line): a WebRTC publisher's first keyframe comes only when asked (PLI), which can take a few
/// seconds on a loaded machine, and starting without it would leave the stream audio-only.
const ANNOUNCED_TRACK_WAIT_MS: u64 = 10_000;
/// Frames held while waiting for codec headers before the publisher is called broken.
const MAX_PENDING_FRAMES: usize = 2_000;
/// Media time between the last frame of a publisher that dropped and the first of the one that
/// came back: about a frame, so the gap is closed rather than filled with the time it was away.
const RESUME_GAP: gst::ClockTime = gst::ClockTime::from_mseconds(40);
/// Media time beyond this is refused (the publisher is disconnected): a publisher stepping its
/// timestamps by 2^31-1 ms once overflowed the clock arithmetic and panicked outside the RTMP
/// panic guard, leaving the stream live for ever.
const MAX_MEDIA_TIME: gst::ClockTime = gst::ClockTime::from_seconds(366 * 24 * 3600);

/// Where a frame stamped `t_ms` (publisher milliseconds) lands on the stream's clock, which
/// continues at `at` from the publisher's `origin_ms`; `None` beyond [`MAX_MEDIA_TIME`].
fn media_time(at: gst::ClockTime, origin_ms: u64, t_ms: u64) -> Option<gst::ClockTime> {
    let offset = t_ms.saturating_sub(origin_ms).checked_mul(1_000_000)?;
    let ns = at.nseconds().checked_add(offset)?;
    (ns <= MAX_MEDIA_TIME.nseconds()).then(|| gst::ClockTime::from_nseconds(ns))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What changes about a live stream besides its media and its publisher, under one lock.
struct State {
    /// The protocol of the current (or last) publisher.
    proto: Proto,
    /// The mode the creator set (a stream that was taken down is practice whatever it says).
    mode: Mode,
    /// Set when the creator ended the stream (not just a publisher leaving or a shutdown).
    ended_by_creator: bool,
    /// Set when an admin took the stream down: it is practice from then on, whatever sets a mode.
    taken_down: bool,
    /// Why the pipeline failed, if it did.
    failure: Option<String>,
    /// Branches that failed and were dropped while the stream went on, with why.
    failed_branches: Vec<(Branch, String)>,
    /// Another node holds the stream's lease now: this session stops and writes nothing.
    lease_lost: bool,
    /// How many times the mode was set here (to apply a mode read from the store only if none
    /// was set meanwhile).
    mode_changes: u64,
}

/// A stream between publish and the end of its finalisation: what never changes (ids, paths,
/// outputs, ladder), its [`State`] under one lock, its publisher, and the pipeline while it runs.
pub struct LiveStream {
    pub id: StreamId,
    pub creator_id: CreatorId,
    state: Mutex<State>,
    publisher: tokio::sync::watch::Sender<Publisher>,
    pub paths: StreamPaths,
    /// MPEG-TS renditions.
    pub hls: HlsOutput,
    /// Low-latency (CMAF) renditions, when on.
    pub ll: Option<Arc<HlsOutput>>,
    pub ladder: LadderSpec,
    /// Which of its media was public: what the outputs show to anyone but the owner.
    pub visibility: Visibility,
    health: Mutex<IngestHealth>,
    /// Cancelled when the server wants the publisher gone (API end, pipeline error, shutdown).
    end: CancellationToken,
    /// Cancelled when the stream is fully finalised.
    pub finished: CancellationToken,
    running: Mutex<Option<Running>>,
    /// The latest focus change (held while one is being made, so that changes apply in order).
    pub focus: tokio::sync::Mutex<Option<FocusEvent>>,
    /// When the latest publisher came back.
    pub resumed_at: ResumedAt,
    /// When its frames reached the pipeline (for the low-latency part latency).
    pub arrivals: Arrivals,
    /// Its simulcast targets (public media sent on to the creator's destinations).
    pub simulcast: super::simulcast::status::Simulcast,
    /// With object storage: its closed segments and playlists going to the bucket while live.
    pub uploads: Option<Arc<LiveUpload>>,
    /// This node's hold on the stream (renewed while it is live here).
    pub lease: Lease,
}

/// Who feeds a live stream. The number counts publishers, so that a grace period that ran out can
/// tell whether the publisher it waited for came back in the meantime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publisher {
    Connected(u32),
    /// Dropped; the stream waits for the same key (`ingest.reconnect_grace`).
    Away(u32),
    /// Gone for good: the stream is being finalised.
    Gone,
}

/// The appsinks of the low-latency renditions (see `build::Built`).
pub type LowLatencySinks = Vec<(String, cmaf::Sinks, Comeback)>;

/// The pipeline of a stream while it runs.
pub struct Running {
    pipeline: gst::Pipeline,
    video: Option<gst_app::AppSrc>,
    audio: Option<gst_app::AppSrc>,
    tracks: Tracks,
    /// Publisher timestamp (ms) that becomes media time `at`.
    origin_ms: u64,
    at: gst::ClockTime,
    /// The latest media time pushed.
    end: gst::ClockTime,
    /// Media time of the newest frame of the stream's picture (of its sound without video).
    newest_frame: gst::ClockTime,
    /// Media time of the last picture (sound without video) pushed, taken by `push_running`.
    pushed: Option<gst::ClockTime>,
    /// Each track's buffer timestamps: strictly increasing decoding times (see `timeline`).
    video_time: TrackTimeline,
    audio_time: TrackTimeline,
    resumes: build::Resumes,
    eos: oneshot::Receiver<Result<(), String>>,
}

impl LiveStream {
    pub fn new(
        stream: &Stream,
        proto: Proto,
        paths: StreamPaths,
        (hls, ll): (HlsOutput, Option<HlsOutput>),
        (uploads, lease): (Option<Arc<LiveUpload>>, Lease),
        ladder: LadderSpec,
        segment: Duration,
    ) -> Self {
        let visibility = Visibility::new(stream.mode == Mode::Public);
        hls.set_visibility(visibility.clone());
        if let Some(ll) = &ll {
            ll.set_visibility(visibility.clone());
        }
        LiveStream {
            id: stream.id.clone(),
            creator_id: stream.creator_id.clone(),
            state: Mutex::new(State {
                proto,
                mode: stream.mode,
                ended_by_creator: false,
                taken_down: false,
                failure: None,
                failed_branches: Vec::new(),
                lease_lost: false,
                mode_changes: 0,
            }),
            publisher: tokio::sync::watch::Sender::new(Publisher::Connected(0)),
            paths,
            hls,
            ll: ll.map(Arc::new),
            ladder,
            visibility,
            health: Mutex::new(IngestHealth::new(segment)),
            end: CancellationToken::new(),
            finished: CancellationToken::new(),
            running: Mutex::new(None),
            focus: tokio::sync::Mutex::new(None),
            resumed_at: ResumedAt::default(),
            arrivals: Arrivals::default(),
            simulcast: Default::default(),
            uploads,
            lease,
        }
    }

    /// When the latest publisher came back (now, if none did).
    pub fn resumed_at(&self) -> Resumed {
        lock(&self.resumed_at).unwrap_or_else(|| Resumed {
            at: chrono::Utc::now(),
            media: None,
        })
    }

    /// Its HLS outputs: MPEG-TS, then low-latency CMAF when on. What happens to the stream
    /// (renditions, markers, the end) happens to both.
    pub fn outputs(&self) -> impl Iterator<Item = &HlsOutput> {
        std::iter::once(&self.hls).chain(self.ll.as_deref())
    }

    /// The mode viewers get; a stream that was taken down is practice.
    pub fn mode(&self) -> Mode {
        let state = lock(&self.state);
        if state.taken_down {
            Mode::Practice
        } else {
            state.mode
        }
    }

    pub fn proto(&self) -> Proto {
        lock(&self.state).proto
    }

    /// The publisher dropped: wait for it. Returns the publisher number to pass to
    /// `stop_waiting`, or `None` when there is nothing to wait for.
    pub(crate) fn publisher_away(&self) -> Option<u32> {
        let mut away = None;
        self.publisher.send_if_modified(|p| match *p {
            Publisher::Connected(n) => {
                *p = Publisher::Away(n);
                away = Some(n);
                true
            }
            _ => false,
        });
        if away.is_some() {
            self.with_health(|h| h.publisher_away());
        }
        away
    }

    /// Resolves once the stream no longer waits for publisher `n` (it came back, or the stream is
    /// being finalised).
    pub(crate) fn no_longer_away(&self, n: u32) -> impl Future<Output = ()> + Send + 'static {
        let mut publisher = self.publisher.subscribe();
        async move {
            let _ = publisher.wait_for(|p| *p != Publisher::Away(n)).await;
        }
    }

    /// The grace for publisher `n` is over: true when it did not come back (the stream ends).
    pub(crate) fn stop_waiting(&self, n: u32) -> bool {
        self.publisher.send_if_modified(|p| {
            let gone = *p == Publisher::Away(n);
            if gone {
                *p = Publisher::Gone;
            }
            gone
        })
    }

    /// A publisher with this stream's key while it waits for one: it continues the session.
    pub(crate) fn comeback(&self, proto: Proto) -> bool {
        let back = self.publisher.send_if_modified(|p| match *p {
            Publisher::Away(n) => {
                *p = Publisher::Connected(n + 1);
                true
            }
            _ => false,
        });
        if back {
            lock(&self.state).proto = proto;
            self.with_health(|h| h.publisher_back());
        }
        back
    }

    /// The stream is being finalised: no publisher can come back any more.
    pub(crate) fn publisher_gone(&self) {
        self.publisher.send_replace(Publisher::Gone);
        self.with_health(|h| h.publisher_gone());
    }

    /// The server asked for the end (API end, pipeline failure, shutdown).
    pub fn is_ending(&self) -> bool {
        self.end.is_cancelled()
    }

    /// Flips the mode viewers get, at once. Media from the newest frame ingested on has the new
    /// mode: what was rehearsed before a switch to public stays the owner's, and what comes after
    /// a switch to practice is never shown to the public.
    pub fn set_mode(&self, mode: Mode) {
        self.apply_mode(mode, None);
    }

    pub fn mode_changes(&self) -> u64 {
        lock(&self.state).mode_changes
    }

    /// [`set_mode`](Self::set_mode) with a mode read from the store (set through another node)
    /// when it differs and no mode was set here since `mode_changes` was `since`: a stale read
    /// never undoes a newer switch (a switch to practice above all). Whether it was applied.
    pub fn set_mode_unless_changed(&self, mode: Mode, since: u64) -> bool {
        self.apply_mode(mode, Some(since))
    }

    fn apply_mode(&self, mode: Mode, since: Option<u64>) -> bool {
        let public = {
            let mut state = lock(&self.state);
            if let Some(since) = since
                && (state.mode_changes != since || state.mode == mode)
            {
                return false;
            }
            state.mode = mode;
            state.mode_changes += 1;
            !state.taken_down && mode == Mode::Public
        };
        self.visibility
            .set(self.media_time().unwrap_or_default(), public);
        self.simulcast.wake();
        true
    }

    /// Remembers a warning about something that happened (not a measured condition).
    pub fn add_warning(&self, warning: String) {
        lock(&self.health).add_warning(warning);
    }

    pub fn health(&self) -> HealthReport {
        let size = self
            .outputs()
            .find_map(|out| out.info(SOURCE_RENDITION).and_then(|i| i.resolution));
        lock(&self.health).report(size)
    }

    /// Asks the publisher's connection to close; finalisation follows from its `finish`.
    /// The creator ends the stream for good (API `end`).
    pub fn end_by_creator(&self) {
        lock(&self.state).ended_by_creator = true;
        self.end.cancel();
        self.simulcast.wake();
    }

    /// An admin took the stream down: hidden from viewers at once (practice), then ended as by
    /// its creator (the publisher is disconnected, the outputs finalised).
    pub fn take_down(&self) {
        {
            let mut state = lock(&self.state);
            state.taken_down = true;
            state.mode = Mode::Practice;
        }
        self.visibility
            .set(self.media_time().unwrap_or_default(), false);
        self.simulcast.wake();
        self.end_by_creator();
    }

    pub fn is_taken_down(&self) -> bool {
        lock(&self.state).taken_down
    }

    pub fn ended_by_creator(&self) -> bool {
        lock(&self.state).ended_by_creator
    }

    /// Another node took the stream (this one's lease ran out unrenewed): the publisher is let
    /// go and the session ends here without writing anything about the stream.
    pub fn lose_lease(&self) {
        lock(&self.state).lease_lost = true;
        self.request_end();
    }

    pub fn lease_lost(&self) -> bool {
        lock(&self.state).lease_lost
    }

    pub fn request_end(&self) {
        self.end.cancel();
        self.simulcast.wake();
    }

    pub fn end_requested(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.end.clone().cancelled_owned()
    }

    /// The pipeline failed: remember why and end the stream.
    pub fn fail(&self, reason: String) {
        lock(&self.state).failure.get_or_insert(reason);
        self.end.cancel();
    }

    pub fn failure(&self) -> Option<String> {
        lock(&self.state).failure.clone()
    }

    /// A branch failed and was dropped; the stream goes on. Reported in health until the end.
    pub fn branch_failed(&self, branch: &Branch, reason: &str) {
        lock(&self.health).add_warning(format!(
            "{} failed and was stopped; the stream goes on without it ({reason})",
            branch.label()
        ));
        lock(&self.state)
            .failed_branches
            .push((branch.clone(), reason.to_string()));
    }

    /// Why `branch` failed, if it did.
    pub fn branch_failure(&self, branch: &Branch) -> Option<String> {
        lock(&self.state)
            .failed_branches
            .iter()
            .find(|(b, _)| b == branch)
            .map(|(_, why)| why.clone())
    }

    pub fn has_pipeline(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Media time of the newest frame ingested (what the host's camera showed last), while the
    /// pipeline runs.
    pub fn media_time(&self) -> Option<Duration> {
        lock(&self.running)
            .as_ref()
            .map(|r| Duration::from_nanos(r.newest_frame.nseconds()))
    }

    pub fn pipeline(&self) -> Option<gst::Pipeline> {
        lock(&self.running).as_ref().map(|r| r.pipeline.clone())
    }

    pub(crate) fn take_running(&self) -> Option<Running> {
        lock(&self.running).take()
    }

    pub(crate) fn set_running(&self, running: Running) {
        *lock(&self.running) = Some(running);
    }

    fn with_health(&self, f: impl FnOnce(&mut IngestHealth)) {
        f(&mut lock(&self.health));
    }
}

impl Running {
    /// Builds and plays the pipeline; returns it with its bus and the overrun counters of its
    /// leaky queues (see `overload`).
    pub fn start(
        spec: &PipelineSpec,
        visibility: &Visibility,
        origin_ms: u64,
        eos: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(Running, gst::Bus, build::Overruns, LowLatencySinks), crate::pipeline::Error> {
        let built = build::build(spec, visibility)?;
        let bus = built
            .pipeline
            .bus()
            .ok_or_else(|| crate::pipeline::Error::Gst("pipeline without bus".into()))?;
        built.pipeline.set_state(gst::State::Playing)?;
        let running = Running {
            pipeline: built.pipeline,
            video: built.video,
            audio: built.audio,
            tracks: spec.tracks.clone(),
            origin_ms,
            at: gst::ClockTime::ZERO,
            end: gst::ClockTime::ZERO,
            newest_frame: gst::ClockTime::ZERO,
            pushed: None,
            video_time: TrackTimeline::default(),
            audio_time: TrackTimeline::default(),
            resumes: built.resumes,
            eos,
        };
        Ok((running, bus, built.overruns, built.low_latency))
    }

    pub fn pipeline_handle(&self) -> gst::Pipeline {
        self.pipeline.clone()
    }

    /// A publisher came back: its media continues right after the last frame of the one before
    /// (the time it was away is not in the media), every rendition is cut at its first keyframe,
    /// and a changed H.264/AAC configuration (another size, say) is taken as is. It must bring the
    /// same tracks: the muxers wait for every track they were built with.
    fn resume(&mut self, tracks: &Tracks, origin_ms: u64) -> Result<(), IngestError> {
        let have = |t: &Tracks| match (t.has_video(), t.has_audio()) {
            (true, true) => "video and audio",
            (true, false) => "video only",
            (false, true) => "audio only",
            (false, false) => "nothing",
        };
        if (tracks.has_video(), tracks.has_audio())
            != (self.tracks.has_video(), self.tracks.has_audio())
        {
            return Err(IngestError::Pipeline(format!(
                "the publisher came back with {} but the stream has {}: publish the same tracks",
                have(tracks),
                have(&self.tracks)
            )));
        }
        let same_audio = match (&tracks.audio, &self.tracks.audio) {
            (Some(new), Some(old)) => codecs::same_aac_format(new, old),
            _ => true,
        };
        if tracks.has_video() && tracks.video_codec != self.tracks.video_codec {
            // The parsers, muxers and decoder were built for one codec.
            return Err(IngestError::Pipeline(format!(
                "the publisher came back with {} video but the stream has {}: publish the same \
                 codec to continue this stream",
                tracks.video_codec.name(),
                self.tracks.video_codec.name()
            )));
        }
        if !same_audio {
            // The recording's audio track cannot change its sample rate or channels.
            return Err(IngestError::Pipeline(
                "the publisher came back with other audio settings (sample rate, channels): \
                 publish with the same audio settings to continue this stream"
                    .into(),
            ));
        }
        self.origin_ms = origin_ms;
        self.at = self.end + RESUME_GAP;
        self.video_time.restart();
        self.audio_time.restart();
        self.resumes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        if let Some(record) = &tracks.video {
            self.push(MediaFrame::VideoConfig {
                codec: tracks.video_codec,
                record: record.clone(),
            })?;
        }
        Ok(())
    }

    fn push(&mut self, frame: MediaFrame) -> Result<(), IngestError> {
        let (origin, at) = (self.origin_ms, self.at);
        let ms = |t: u64| {
            media_time(at, origin, t).ok_or_else(|| {
                IngestError::Pipeline(format!(
                    "publisher timestamp {t} ms is out of range (more than a year of media)"
                ))
            })
        };
        let (src, buffer) = match frame {
            MediaFrame::Video {
                dts_ms,
                cts_ms,
                keyframe,
                data,
            } => {
                let Some(src) = &self.video else {
                    return Ok(());
                };
                let stamp = self
                    .video_time
                    .stamp(ms(dts_ms)?.nseconds(), i64::from(cts_ms) * 1_000_000);
                note_adjustment("video", stamp, &self.video_time);
                let pts = gst::ClockTime::from_nseconds(stamp.pts);
                let mut buffer = gst::Buffer::from_slice(data);
                let b = buffer.get_mut().expect("a new buffer is writable");
                b.set_dts(gst::ClockTime::from_nseconds(stamp.dts));
                b.set_pts(pts);
                self.end = self.end.max(pts);
                // Frames arrive in decoding order: the newest picture is the latest to show.
                self.newest_frame = self.newest_frame.max(pts);
                self.pushed = Some(pts);
                if !keyframe {
                    b.set_flags(gst::BufferFlags::DELTA_UNIT);
                }
                (src, buffer)
            }
            MediaFrame::Audio { dts_ms, data } => {
                let Some(src) = &self.audio else {
                    return Ok(());
                };
                let stamp = self.audio_time.stamp(ms(dts_ms)?.nseconds(), 0);
                note_adjustment("audio", stamp, &self.audio_time);
                let pts = gst::ClockTime::from_nseconds(stamp.pts);
                let mut buffer = gst::Buffer::from_slice(data);
                let b = buffer.get_mut().expect("a new buffer is writable");
                b.set_dts(pts);
                b.set_pts(pts);
                self.end = self.end.max(pts);
                if self.video.is_none() {
                    self.newest_frame = self.newest_frame.max(pts);
                    self.pushed = Some(pts);
                }
                (src, buffer)
            }
            MediaFrame::VideoConfig { codec, record } => {
                if self.video.is_some() && codec != self.tracks.video_codec {
                    return Err(IngestError::Pipeline(format!(
                        "the publisher switched from {} to {} video mid-stream",
                        self.tracks.video_codec.name(),
                        codec.name()
                    )));
                }
                if let Some(src) = &self.video
                    && self.tracks.video.as_deref() != Some(&record[..])
                {
                    tracing::warn!(
                        codec = codec.name(),
                        "publisher changed its video configuration mid-stream"
                    );
                    src.set_caps(Some(&build::video_caps(codec, &record)));
                    self.tracks.video = Some(record);
                }
                return Ok(());
            }
            MediaFrame::AudioConfig { asc } => {
                // The same format in other bytes changes nothing (and new caps would break the
                // recording's audio track).
                if let Some(src) = &self.audio
                    && !self
                        .tracks
                        .audio
                        .as_deref()
                        .is_some_and(|old| codecs::same_aac_format(old, &asc))
                {
                    tracing::warn!("publisher changed its AAC configuration mid-stream");
                    src.set_caps(Some(&build::audio_caps(&asc)));
                    self.tracks.audio = Some(asc);
                }
                return Ok(());
            }
            MediaFrame::Metadata(_) | MediaFrame::SrtStats(_) | MediaFrame::WebRtcStats(_) => {
                return Ok(());
            }
        };
        src.push_buffer(buffer).map(|_| ()).map_err(|flow| {
            IngestError::Pipeline(format!("{} refused a buffer: {flow:?}", src.name()))
        })
    }

    /// Sends EOS so the muxers finish their files, waits for it to reach the sinks, tears down.
    pub async fn stop(self) -> Result<(), String> {
        for src in self.video.iter().chain(self.audio.iter()) {
            let _ = src.end_of_stream();
        }
        let result = match tokio::time::timeout(DEFAULT_EOS_TIMEOUT, self.eos).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("pipeline bus closed before EOS".into()),
            Err(_) => Err(format!("no EOS within {DEFAULT_EOS_TIMEOUT:?}")),
        };
        let pipeline = self.pipeline;
        tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        result
    }
}

/// Logs the first frames of a track whose timestamps had to be changed, and each restart of the
/// publisher's clock.
fn note_adjustment(track: &'static str, stamp: Stamp, timeline: &TrackTimeline) {
    match stamp.adjustment {
        Adjustment::Kept => {}
        Adjustment::Nudged if timeline.adjusted <= 3 => tracing::debug!(
            track,
            dts_ns = stamp.dts,
            "publisher timestamp not after the previous frame's; moved 1 ms on"
        ),
        Adjustment::Nudged => {}
        Adjustment::Rebased => tracing::warn!(
            track,
            dts_ns = stamp.dts,
            "publisher clock went back; the track continues after its previous frame"
        ),
    }
}

/// Holds frames until the publisher's codec headers say which tracks there are.
#[derive(Default)]
pub struct Starter {
    tracks: Tracks,
    metadata: StreamMetadata,
    pending: Vec<MediaFrame>,
    first_frame_at: Option<DateTime<Utc>>,
}

/// What the starter decided.
pub enum Start {
    Wait,
    Go {
        tracks: Tracks,
        frames: Vec<MediaFrame>,
        base_ms: u64,
        epoch: DateTime<Utc>,
    },
}

fn dts(frame: &MediaFrame) -> Option<u64> {
    match frame {
        MediaFrame::Video { dts_ms, .. } | MediaFrame::Audio { dts_ms, .. } => Some(*dts_ms),
        _ => None,
    }
}

impl Starter {
    pub fn push(&mut self, frame: MediaFrame) -> Result<Start, IngestError> {
        match &frame {
            MediaFrame::VideoConfig { codec, record } => {
                self.tracks.video = Some(record.clone());
                self.tracks.video_codec = *codec;
            }
            MediaFrame::AudioConfig { asc } => self.tracks.audio = Some(asc.clone()),
            MediaFrame::Metadata(m) => self.metadata = m.clone(),
            MediaFrame::SrtStats(_) | MediaFrame::WebRtcStats(_) => return Ok(Start::Wait),
            // A decoder can only start at a keyframe that follows the configuration.
            MediaFrame::Video { keyframe, .. } => {
                let have_key = self
                    .pending
                    .iter()
                    .any(|f| matches!(f, MediaFrame::Video { .. }));
                if self.tracks.video.is_some() && (*keyframe || have_key) {
                    self.first_frame_at.get_or_insert_with(Utc::now);
                    self.pending.push(frame);
                }
            }
            MediaFrame::Audio { .. } => {
                if self.tracks.audio.is_some() {
                    self.first_frame_at.get_or_insert_with(Utc::now);
                    self.pending.push(frame);
                }
            }
        }
        if self.pending.len() > MAX_PENDING_FRAMES {
            return Err(IngestError::Pipeline(
                "no usable H.264/H.265/AAC configuration from the publisher".into(),
            ));
        }
        let span = |video: bool| {
            let ts: Vec<u64> = self
                .pending
                .iter()
                .filter(|f| matches!(f, MediaFrame::Video { .. }) == video)
                .filter_map(dts)
                .collect();
            ts.last()
                .zip(ts.first())
                .map_or(0, |(l, f)| l.saturating_sub(*f))
        };
        let (has_video_frames, has_audio_frames) = (self.has_frames(true), self.has_frames(false));
        // How much of one track's media to hold while the other's header is missing.
        let wait = |announced: Option<bool>| match announced {
            Some(false) => 0,
            Some(true) => ANNOUNCED_TRACK_WAIT_MS,
            None => DEFAULT_TRACK_WAIT_MS,
        };
        let ready = match (&self.tracks.video, &self.tracks.audio) {
            (Some(_), Some(_)) => has_video_frames && has_audio_frames,
            (Some(_), None) => has_video_frames && span(true) >= wait(self.metadata.has_audio),
            (None, Some(_)) => has_audio_frames && span(false) >= wait(self.metadata.has_video),
            (None, None) => false,
        };
        if !ready || !(has_video_frames || has_audio_frames) {
            return Ok(Start::Wait);
        }
        Ok(self.go())
    }

    /// The publisher left while its tracks were still waited for (an announced one never came):
    /// the stream starts with the tracks that have frames, so that what came is kept (a
    /// recording, the segments), or `Wait` when nothing usable came.
    pub fn flush(&mut self) -> Start {
        if self.has_frames(true) || self.has_frames(false) {
            self.go()
        } else {
            Start::Wait
        }
    }

    /// Whether video (`true`) or audio frames are pending.
    fn has_frames(&self, video: bool) -> bool {
        self.pending.iter().any(|f| match f {
            MediaFrame::Video { .. } => video,
            MediaFrame::Audio { .. } => !video,
            _ => false,
        })
    }

    /// Starts with the pending frames and the tracks that have some.
    fn go(&mut self) -> Start {
        let mut tracks = self.tracks.clone();
        if !self.has_frames(true) {
            tracks.video = None;
        }
        if !self.has_frames(false) {
            tracks.audio = None;
        }
        let frames = std::mem::take(&mut self.pending);
        let base_ms = frames.iter().filter_map(dts).min().unwrap_or(0);
        Start::Go {
            tracks,
            frames,
            base_ms,
            epoch: self.first_frame_at.unwrap_or_else(Utc::now),
        }
    }
}

/// Feeds one stream from its publisher: health bookkeeping, then the starter or the pipeline.
pub(crate) fn observe(stream: &LiveStream, frame: &MediaFrame) {
    stream.with_health(|h| match frame {
        MediaFrame::VideoConfig { codec, record } => h.set_video_config(*codec, record),
        MediaFrame::AudioConfig { asc } => h.set_audio_config(asc),
        MediaFrame::Metadata(m) => h.set_metadata(m.clone()),
        MediaFrame::Video {
            dts_ms,
            keyframe,
            data,
            ..
        } => h.on_video(*dts_ms, data.len(), *keyframe),
        MediaFrame::Audio { dts_ms, data } => h.on_audio(*dts_ms, data.len()),
        MediaFrame::SrtStats(stats) => h.set_srt_stats(stats.clone()),
        MediaFrame::WebRtcStats(stats) => h.set_webrtc_stats(stats.clone()),
    });
}

/// Continues a running pipeline with a publisher that came back (see `Running::resume`).
pub(crate) fn resume_running(
    stream: &LiveStream,
    tracks: &Tracks,
    frames: Vec<MediaFrame>,
    origin_ms: u64,
) -> Result<(), IngestError> {
    let mut guard = lock(&stream.running);
    let running = guard
        .as_mut()
        .ok_or_else(|| IngestError::Ended(stream.id.to_string()))?;
    running.resume(tracks, origin_ms)?;
    *lock(&stream.resumed_at) = Some(Resumed {
        at: chrono::Utc::now(),
        media: Some(Duration::from_nanos(running.at.nseconds())),
    });
    frames.into_iter().try_for_each(|f| running.push(f))
}

/// Pushes a frame into a running pipeline.
pub(crate) fn push_running(stream: &LiveStream, frame: MediaFrame) -> Result<bool, IngestError> {
    let mut guard = lock(&stream.running);
    match guard.as_mut() {
        Some(running) => {
            running.push(frame)?;
            if let Some(pts) = running.pushed.take() {
                stream.arrivals.note(Duration::from_nanos(pts.nseconds()));
            }
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::ingest::VideoCodec;

    use super::*;

    fn video(dts_ms: u64, keyframe: bool) -> MediaFrame {
        MediaFrame::Video {
            dts_ms,
            cts_ms: 66,
            keyframe,
            data: Bytes::from_static(b"x"),
        }
    }
    fn audio(dts_ms: u64) -> MediaFrame {
        MediaFrame::Audio {
            dts_ms,
            data: Bytes::from_static(b"a"),
        }
    }

    #[test]
    fn publisher_timestamps_stepping_by_2_pow_31_ms_are_refused_without_panicking() {
        let at = gst::ClockTime::from_seconds(5);
        assert_eq!(
            media_time(at, 1_000, 1_040),
            Some(gst::ClockTime::from_mseconds(5_040))
        );
        assert_eq!(
            media_time(at, 1_000, 500),
            Some(at),
            "before the origin: clamped"
        );
        // A hostile publisher: every frame 2^31-1 ms after the previous one (what the RTMP
        // timestamp unwrapper makes of it).
        let mut refused = false;
        for i in 0..20_000u64 {
            match media_time(at, 0, i * 0x7fff_ffff) {
                Some(ms) => assert!(ms <= MAX_MEDIA_TIME),
                None => refused = true,
            }
        }
        assert!(refused, "more than a year of media is refused");
        assert_eq!(media_time(at, 0, u64::MAX), None);
        assert_eq!(media_time(gst::ClockTime::MAX, 0, 1), None);
    }

    #[test]
    fn starts_once_both_tracks_have_headers_and_frames() {
        let mut s = Starter::default();
        assert!(matches!(
            s.push(MediaFrame::VideoConfig {
                codec: VideoCodec::H264,
                record: Bytes::from_static(b"v")
            })
            .unwrap(),
            Start::Wait
        ));
        assert!(
            matches!(s.push(video(1000, false)).unwrap(), Start::Wait),
            "delta before keyframe is dropped"
        );
        assert!(matches!(
            s.push(MediaFrame::AudioConfig {
                asc: Bytes::from_static(b"a")
            })
            .unwrap(),
            Start::Wait
        ));
        assert!(matches!(s.push(video(1033, true)).unwrap(), Start::Wait));
        match s.push(audio(1020)).unwrap() {
            Start::Go {
                tracks,
                frames,
                base_ms,
                ..
            } => {
                assert!(tracks.has_video() && tracks.has_audio());
                assert_eq!(frames.len(), 2);
                assert_eq!(base_ms, 1020);
            }
            Start::Wait => panic!("should start"),
        }
    }

    #[test]
    fn video_only_starts_after_waiting_for_audio() {
        let mut s = Starter::default();
        s.push(MediaFrame::VideoConfig {
            codec: VideoCodec::H264,
            record: Bytes::from_static(b"v"),
        })
        .unwrap();
        let mut started = None;
        for i in 0..100u64 {
            if let Start::Go { tracks, .. } = s.push(video(i * 33, i == 0)).unwrap() {
                started = Some((i, tracks));
                break;
            }
        }
        let (i, tracks) = started.expect("starts without audio");
        assert!(i * 33 >= DEFAULT_TRACK_WAIT_MS);
        assert!(tracks.has_video() && !tracks.has_audio());
    }

    #[test]
    fn an_announced_video_track_is_waited_for_longer() {
        let mut s = awaiting_announced_video();
        // Five seconds of audio (AAC frames are ~21 ms) before the keyframe asked for arrives.
        for i in 0..240u64 {
            assert!(matches!(s.push(audio(i * 21)).unwrap(), Start::Wait), "{i}");
        }
        s.push(MediaFrame::VideoConfig {
            codec: VideoCodec::H264,
            record: Bytes::from_static(b"v"),
        })
        .unwrap();
        match s.push(video(5_000, true)).unwrap() {
            Start::Go { tracks, .. } => assert!(tracks.has_video() && tracks.has_audio()),
            Start::Wait => panic!("should start with both tracks"),
        }
    }

    /// A starter told of a video track, with the audio's header in and no video yet.
    fn awaiting_announced_video() -> Starter {
        let mut s = Starter::default();
        s.push(MediaFrame::Metadata(StreamMetadata {
            has_video: Some(true),
            ..Default::default()
        }))
        .unwrap();
        s.push(MediaFrame::AudioConfig {
            asc: Bytes::from_static(b"a"),
        })
        .unwrap();
        s
    }

    #[test]
    fn an_announced_track_that_never_comes_is_given_up_on() {
        let mut s = awaiting_announced_video();
        let mut started = None;
        for i in 0..1000u64 {
            if let Start::Go { tracks, .. } = s.push(audio(i * 21)).unwrap() {
                started = Some((i, tracks));
                break;
            }
        }
        let (i, tracks) = started.expect("starts audio-only in the end");
        assert!(i * 21 >= ANNOUNCED_TRACK_WAIT_MS);
        assert!(tracks.has_audio() && !tracks.has_video());
    }

    #[test]
    fn what_came_before_the_publisher_left_is_started_with() {
        let mut s = awaiting_announced_video();
        assert!(matches!(s.flush(), Start::Wait), "no frames came");
        for i in 0..100u64 {
            assert!(matches!(s.push(audio(i * 21)).unwrap(), Start::Wait));
        }
        match s.flush() {
            Start::Go { tracks, frames, .. } => {
                assert!(tracks.has_audio() && !tracks.has_video());
                assert_eq!(frames.len(), 100);
            }
            Start::Wait => panic!("two seconds of audio are kept"),
        }
    }

    #[test]
    fn metadata_without_audio_starts_at_once() {
        let mut s = Starter::default();
        s.push(MediaFrame::Metadata(StreamMetadata {
            has_audio: Some(false),
            ..Default::default()
        }))
        .unwrap();
        s.push(MediaFrame::VideoConfig {
            codec: VideoCodec::H264,
            record: Bytes::from_static(b"v"),
        })
        .unwrap();
        assert!(matches!(s.push(video(0, true)).unwrap(), Start::Go { .. }));
    }
}
