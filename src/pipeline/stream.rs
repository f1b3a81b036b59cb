//! One live stream: its immutable spec, the outputs readers look at, and `Option<Running>` — the
//! GStreamer pipeline that exists only between the first usable frame and the stop.
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::build;
use super::health::{HealthReport, IngestHealth};
use super::ladder::LadderSpec;
use super::spec::{PipelineSpec, SOURCE_RENDITION, StreamPaths, Tracks};
use crate::ingest::{Error as IngestError, MediaFrame, Proto, StreamMetadata};
use crate::output::hls::HlsOutput;
use crate::store::{CreatorId, Mode, Stream, StreamId};

/// How long a stopping pipeline may take to drain after EOS before it is torn down anyway.
const DEFAULT_EOS_TIMEOUT: Duration = Duration::from_secs(20);
/// Without the other track's header after this much media, start with the tracks we have.
const DEFAULT_TRACK_WAIT_MS: u64 = 1_500;
/// Frames held while waiting for codec headers before the publisher is called broken.
const MAX_PENDING_FRAMES: usize = 2_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A stream between publish and the end of its finalisation.
pub struct LiveStream {
    pub id: StreamId,
    pub creator_id: CreatorId,
    pub proto: Proto,
    pub paths: StreamPaths,
    pub hls: HlsOutput,
    pub ladder: LadderSpec,
    mode: Mutex<Mode>,
    health: Mutex<IngestHealth>,
    /// Cancelled when the server wants the publisher gone (API end, pipeline error, shutdown).
    end: CancellationToken,
    /// Cancelled when the stream is fully finalised.
    pub finished: CancellationToken,
    running: Mutex<Option<Running>>,
    failure: Mutex<Option<String>>,
    /// Set when the creator ended the stream (not just a publisher leaving or a shutdown).
    ended_by_creator: std::sync::atomic::AtomicBool,
}

/// The pipeline of a stream while it runs.
pub struct Running {
    pipeline: gst::Pipeline,
    video: Option<gst_app::AppSrc>,
    audio: Option<gst_app::AppSrc>,
    tracks: Tracks,
    /// Publisher timestamp (ms) that becomes media time zero.
    base_ms: u64,
    eos: oneshot::Receiver<Result<(), String>>,
}

impl LiveStream {
    pub fn new(
        stream: &Stream,
        proto: Proto,
        paths: StreamPaths,
        hls: HlsOutput,
        ladder: LadderSpec,
        segment: Duration,
    ) -> Self {
        LiveStream {
            id: stream.id.clone(),
            creator_id: stream.creator_id.clone(),
            proto,
            paths,
            hls,
            ladder,
            mode: Mutex::new(stream.mode),
            health: Mutex::new(IngestHealth::new(segment)),
            end: CancellationToken::new(),
            finished: CancellationToken::new(),
            running: Mutex::new(None),
            failure: Mutex::new(None),
            ended_by_creator: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    /// Remembers a warning about something that happened (not a measured condition).
    pub fn add_warning(&self, warning: String) {
        lock(&self.health).add_warning(warning);
    }

    pub fn health(&self) -> HealthReport {
        let size = self.hls.info(SOURCE_RENDITION).and_then(|i| i.resolution);
        lock(&self.health).report(size)
    }

    /// Asks the publisher's connection to close; finalisation follows from its `finish`.
    /// The creator ends the stream for good (API `end`).
    pub fn end_by_creator(&self) {
        self.ended_by_creator
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.end.cancel();
    }

    pub fn ended_by_creator(&self) -> bool {
        self.ended_by_creator
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn request_end(&self) {
        self.end.cancel();
    }

    pub fn end_requested(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.end.clone().cancelled_owned()
    }

    /// The pipeline failed: remember why and end the stream.
    pub fn fail(&self, reason: String) {
        lock(&self.failure).get_or_insert(reason);
        self.end.cancel();
    }

    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    pub fn has_pipeline(&self) -> bool {
        lock(&self.running).is_some()
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
        base_ms: u64,
        eos: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(Running, gst::Bus, build::Overruns), super::Error> {
        let built = build::build(spec)?;
        let bus = built
            .pipeline
            .bus()
            .ok_or_else(|| super::Error::Gst("pipeline without bus".into()))?;
        built.pipeline.set_state(gst::State::Playing)?;
        let running = Running {
            pipeline: built.pipeline,
            video: built.video,
            audio: built.audio,
            tracks: spec.tracks.clone(),
            base_ms,
            eos,
        };
        Ok((running, bus, built.overruns))
    }

    pub fn pipeline_handle(&self) -> gst::Pipeline {
        self.pipeline.clone()
    }

    fn push(&mut self, frame: MediaFrame) -> Result<(), IngestError> {
        let ms = |t: u64| gst::ClockTime::from_mseconds(t.saturating_sub(self.base_ms));
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
                let mut buffer = gst::Buffer::from_slice(data);
                let b = buffer.get_mut().expect("a new buffer is writable");
                b.set_dts(ms(dts_ms));
                b.set_pts(ms(dts_ms.saturating_add_signed(cts_ms as i64)));
                if !keyframe {
                    b.set_flags(gst::BufferFlags::DELTA_UNIT);
                }
                (src, buffer)
            }
            MediaFrame::Audio { dts_ms, data } => {
                let Some(src) = &self.audio else {
                    return Ok(());
                };
                let mut buffer = gst::Buffer::from_slice(data);
                let b = buffer.get_mut().expect("a new buffer is writable");
                b.set_dts(ms(dts_ms));
                b.set_pts(ms(dts_ms));
                (src, buffer)
            }
            MediaFrame::VideoConfig { avcc } => {
                if let Some(src) = &self.video
                    && self.tracks.video.as_deref() != Some(&avcc[..])
                {
                    tracing::warn!("publisher changed its H.264 configuration mid-stream");
                    src.set_caps(Some(&build::video_caps(&avcc)));
                    self.tracks.video = Some(avcc);
                }
                return Ok(());
            }
            MediaFrame::AudioConfig { asc } => {
                if let Some(src) = &self.audio
                    && self.tracks.audio.as_deref() != Some(&asc[..])
                {
                    tracing::warn!("publisher changed its AAC configuration mid-stream");
                    src.set_caps(Some(&build::audio_caps(&asc)));
                    self.tracks.audio = Some(asc);
                }
                return Ok(());
            }
            MediaFrame::Metadata(_) | MediaFrame::SrtStats(_) => return Ok(()),
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
            MediaFrame::VideoConfig { avcc } => self.tracks.video = Some(avcc.clone()),
            MediaFrame::AudioConfig { asc } => self.tracks.audio = Some(asc.clone()),
            MediaFrame::Metadata(m) => self.metadata = m.clone(),
            MediaFrame::SrtStats(_) => return Ok(Start::Wait),
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
                "no usable H.264/AAC configuration from the publisher".into(),
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
        let has_video_frames = self
            .pending
            .iter()
            .any(|f| matches!(f, MediaFrame::Video { .. }));
        let has_audio_frames = self
            .pending
            .iter()
            .any(|f| matches!(f, MediaFrame::Audio { .. }));
        let ready = match (&self.tracks.video, &self.tracks.audio) {
            (Some(_), Some(_)) => has_video_frames && has_audio_frames,
            (Some(_), None) => {
                self.metadata.has_audio == Some(false)
                    || (has_video_frames && span(true) >= DEFAULT_TRACK_WAIT_MS)
            }
            (None, Some(_)) => {
                self.metadata.has_video == Some(false)
                    || (has_audio_frames && span(false) >= DEFAULT_TRACK_WAIT_MS)
            }
            (None, None) => false,
        };
        if !ready || !(has_video_frames || has_audio_frames) {
            return Ok(Start::Wait);
        }
        let mut tracks = self.tracks.clone();
        if !has_video_frames {
            tracks.video = None;
        }
        if !has_audio_frames {
            tracks.audio = None;
        }
        let frames = std::mem::take(&mut self.pending);
        let base_ms = frames.iter().filter_map(dts).min().unwrap_or(0);
        Ok(Start::Go {
            tracks,
            frames,
            base_ms,
            epoch: self.first_frame_at.unwrap_or_else(Utc::now),
        })
    }
}

/// Feeds one stream from its publisher: health bookkeeping, then the starter or the pipeline.
pub(crate) fn observe(stream: &LiveStream, frame: &MediaFrame) {
    stream.with_health(|h| match frame {
        MediaFrame::VideoConfig { avcc } => h.set_video_config(avcc),
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
    });
}

/// Pushes a frame into a running pipeline.
pub(crate) fn push_running(stream: &LiveStream, frame: MediaFrame) -> Result<bool, IngestError> {
    let mut guard = lock(&stream.running);
    match guard.as_mut() {
        Some(running) => running.push(frame).map(|_| true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

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
    fn starts_once_both_tracks_have_headers_and_frames() {
        let mut s = Starter::default();
        assert!(matches!(
            s.push(MediaFrame::VideoConfig {
                avcc: Bytes::from_static(b"v")
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
            avcc: Bytes::from_static(b"v"),
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
    fn metadata_without_audio_starts_at_once() {
        let mut s = Starter::default();
        s.push(MediaFrame::Metadata(StreamMetadata {
            has_audio: Some(false),
            ..Default::default()
        }))
        .unwrap();
        s.push(MediaFrame::VideoConfig {
            avcc: Bytes::from_static(b"v"),
        })
        .unwrap();
        assert!(matches!(s.push(video(0, true)).unwrap(), Start::Go { .. }));
    }
}
