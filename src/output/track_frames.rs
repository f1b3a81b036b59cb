//! The frames of a rendition's tracks as its appsinks hand them to a writer in Rust
//! ([`ts_segments`](super::ts_segments), [`cmaf_parts`](super::cmaf_parts)): one appsink per
//! track, each calling the writer from its own streaming thread.
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer_app as gst_app;

/// Decoding times in the files start an hour in (as `mpegtsmux` did), so that the first frames'
/// decoding times, earlier than their presentation times with B-frames, stay positive; the same
/// for every rendition and kind of file, so that all are on one timeline.
pub const TIMESTAMP_OFFSET_NS: i64 = 3_600_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// A frame with its running times (ns, may be negative before the start).
#[derive(Debug, Clone)]
pub struct Frame {
    pub pts: i64,
    /// The presentation time when the buffer has no decoding time.
    pub dts: i64,
    /// 0 when the buffer has none.
    pub duration: i64,
    pub keyframe: bool,
    pub buffer: gst::Buffer,
}

impl Frame {
    /// The frame in an appsink's sample; `None` without a buffer, a time segment or a
    /// presentation time.
    pub fn of(sample: &gst::Sample) -> Option<Frame> {
        let buffer = sample.buffer()?;
        let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
        let running = |t: Option<gst::ClockTime>| match segment.to_running_time_full(t?)? {
            gst::Signed::Positive(t) => Some(ns(t)),
            gst::Signed::Negative(t) => Some(-ns(t)),
        };
        let pts = running(buffer.pts())?;
        Some(Frame {
            pts,
            dts: running(buffer.dts()).unwrap_or(pts),
            duration: buffer.duration().map_or(0, ns),
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            buffer: buffer.to_owned(),
        })
    }
}

/// What a rendition's appsinks feed.
pub trait TrackWriter: Send + 'static {
    /// A sample of `track`; an error stops that track's streaming thread.
    fn sample(
        &mut self,
        track: Track,
        sample: &gst::Sample,
    ) -> Result<gst::FlowSuccess, gst::FlowError>;
    /// The end of `track`.
    fn eos(&mut self, track: Track);
}

/// Has `video`'s and `audio`'s appsinks call `writer`. The sinks hold the writer (their
/// callbacks): a writer must hold them weakly, if at all.
pub fn connect<W: TrackWriter>(
    video: Option<gst_app::AppSink>,
    audio: Option<gst_app::AppSink>,
    writer: &Arc<Mutex<W>>,
) {
    for (sink, track) in [(video, Track::Video), (audio, Track::Audio)] {
        let Some(sink) = sink else { continue };
        let on_sample = writer.clone();
        let on_eos = writer.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    lock(&on_sample).sample(track, &sample)
                })
                .eos(move |_| lock(&on_eos).eos(track))
                .build(),
        );
    }
}

pub fn lock<W>(writer: &Mutex<W>) -> std::sync::MutexGuard<'_, W> {
    writer.lock().unwrap_or_else(|p| p.into_inner())
}

/// A clock time in nanoseconds, as the signed running times here (saturating: a time past
/// `i64::MAX` ns, 292 years, is not a publisher's).
pub fn ns(t: gst::ClockTime) -> i64 {
    i64::try_from(t.nseconds()).unwrap_or(i64::MAX)
}

/// Test support for a writer's "does not keep its pipeline alive" check: a pipeline of two
/// appsinks, `{prefix}-source` and `{prefix}-source-audio`, handed to `attach`; whether the video
/// sink is gone once the pipeline is dropped (a writer holding its sinks strongly keeps them,
/// their threads and their callbacks alive for good).
#[cfg(test)]
pub fn sinks_freed_with_pipeline(
    prefix: &str,
    attach: impl FnOnce(Option<gst_app::AppSink>, Option<gst_app::AppSink>),
) -> bool {
    use gstreamer::prelude::*;
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src ! appsink name={prefix}-source sync=false async=false \
         appsrc name=src-audio ! appsink name={prefix}-source-audio sync=false async=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = |name: &str| {
        pipeline
            .by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
    };
    let (video, audio) = (
        sink(&format!("{prefix}-source")),
        sink(&format!("{prefix}-source-audio")),
    );
    let weak = video.as_ref().expect("the video sink").downgrade();
    attach(video, audio);
    drop(pipeline);
    weak.upgrade().is_none()
}
