//! The CMAF side of a low-latency rendition: each part, muxed from the rendition's tracks by
//! [`cmaf_parts`](super::cmaf_parts), becomes a part of the rendition's [`HlsOutput`]; and how
//! long after its last frame arrived each part was listed.
//!
//! An AV1 rendition's parts come from GStreamer's `isofmp4mux` instead (`cmaf_mux` writes no
//! `av01` entry): each chunk comes as one buffer list, `DISCONT|HEADER` marking an init section
//! (ftyp + moov, at the start and when codec parameters change), then a moof flagged `HEADER` (a
//! fragment, i.e. a segment, starts here with a keyframe) or `HEADER|DELTA_UNIT` (a chunk within
//! it), carrying the chunk's duration, then its samples.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer_app as gst_app;

use super::cmaf_parts::{Comeback, Grid};
use super::hls::{Chunk, HlsOutput, ResumedAt};

/// Frames kept in [`Arrivals`]: ten seconds at 50 fps.
const ARRIVALS_KEPT: usize = 500;
/// Parts kept in [`PartLatency`].
const LATENCIES_KEPT: usize = 1000;

/// When a stream's frames reached the pipeline (media time, instant), newest last.
#[derive(Debug, Clone, Default)]
pub struct Arrivals(Arc<Mutex<VecDeque<(Duration, Instant)>>>);

impl Arrivals {
    pub fn note(&self, media_time: Duration) {
        let mut frames = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if frames.len() == ARRIVALS_KEPT {
            frames.pop_front();
        }
        frames.push_back((media_time, Instant::now()));
    }

    /// When the last of the frames before media time `end` arrived: the moment a part ending
    /// there could be complete.
    fn complete_at(&self, end: Duration) -> Option<Instant> {
        let frames = self.0.lock().unwrap_or_else(|p| p.into_inner());
        frames
            .iter()
            .filter(|(at, _)| *at < end)
            .map(|(_, instant)| *instant)
            .max()
    }
}

/// How long after its last frame reached the pipeline each recent part was listed (every
/// low-latency rendition of every stream): the server's share of the latency.
#[derive(Debug, Default)]
pub struct PartLatency(Mutex<VecDeque<Duration>>);

impl PartLatency {
    fn record(&self, latency: Duration) {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == LATENCIES_KEPT {
            recent.pop_front();
        }
        recent.push_back(latency);
    }

    /// The `q` quantile (0..=1) of the recent parts, if any.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted: Vec<Duration> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        sorted.sort();
        let last = sorted.len().checked_sub(1)?;
        Some(sorted[((last as f64) * q.clamp(0.0, 1.0)).round() as usize])
    }
}

/// How a rendition's chunks are measured.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub arrivals: Arrivals,
    pub latency: Arc<PartLatency>,
}

/// A rendition's low-latency outputs: its tracks' appsinks for [`cmaf_parts`](super::cmaf_parts),
/// or, for AV1 (which `cmaf_mux` does not write), the appsink of an `isofmp4mux`.
pub enum Sinks {
    Tracks {
        video: Option<gst_app::AppSink>,
        audio: Option<gst_app::AppSink>,
        grid: Grid,
    },
    Muxer(gst_app::AppSink),
}

/// Feeds `rendition` of `output` from its low-latency appsinks.
pub fn attach(
    sinks: Sinks,
    rendition: String,
    output: Arc<HlsOutput>,
    comeback: Comeback,
    resumed_at: ResumedAt,
    timing: Timing,
) {
    let deliver = {
        let comeback = comeback.clone();
        move |chunk: Chunk| deliver(&rendition, &output, &comeback, &resumed_at, &timing, chunk)
    };
    match sinks {
        Sinks::Tracks { video, audio, grid } => {
            super::cmaf_parts::attach(video, audio, grid, comeback, deliver)
        }
        Sinks::Muxer(sink) => attach_muxer(&sink, deliver),
    }
}

/// Hands a part to the rendition's output: a discontinuity first if it starts a comeback; notes
/// how long after its last frame's arrival it was listed.
fn deliver(
    rendition: &str,
    output: &HlsOutput,
    comeback: &Comeback,
    resumed_at: &ResumedAt,
    timing: &Timing,
    chunk: Chunk,
) {
    if chunk.independent && came_back(comeback, &chunk) {
        let at = *resumed_at.lock().unwrap_or_else(|p| p.into_inner());
        match at {
            Some(at) => output.discontinuity_at(rendition, at),
            None => output.discontinuity(rendition),
        }
    }
    let end = chunk.running_time + chunk.duration;
    tracing::trace!(%rendition, start = ?chunk.running_time, duration = ?chunk.duration, independent = chunk.independent, "part");
    if let Err(e) = output.part_ready(rendition, chunk) {
        tracing::error!(%rendition, error = %e, "writing a low-latency part");
    } else if let Some(complete) = timing.arrivals.complete_at(end) {
        timing.latency.record(complete.elapsed());
    }
}

/// Reads the chunks of an `isofmp4mux` from its appsink.
fn attach_muxer(sink: &gst_app::AppSink, mut deliver: impl FnMut(Chunk) + Send + 'static) {
    // An init section may come alone (a caps change): it goes with the next chunk.
    let mut init = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(mut chunk) = chunk(&sample, &mut init) {
                    chunk.init = chunk.init.or_else(|| init.take());
                    deliver(chunk);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Whether this chunk starts a comeback (it is the first at or after one).
fn came_back(comeback: &Comeback, chunk: &Chunk) -> bool {
    let mut pending = comeback.lock().unwrap_or_else(|p| p.into_inner());
    let Some(at) = *pending else {
        return false;
    };
    // The chunk's start is its earliest sample, which may be audio a frame before the keyframe.
    let slack = Duration::from_millis(50);
    let starts = chunk.running_time + slack >= Duration::from_nanos(at.nseconds());
    if starts {
        *pending = None;
    }
    starts
}

/// The chunk in a sample of the muxer's appsink (`buffer-list=true`); an init section that
/// comes without one is kept in `alone`.
fn chunk(sample: &gst::Sample, alone: &mut Option<Bytes>) -> Option<Chunk> {
    let bytes = |b: &gst::BufferRef| b.map_readable().ok().map(|m| Bytes::copy_from_slice(&m));
    let is_init = |b: &gst::BufferRef| {
        b.flags()
            .contains(gst::BufferFlags::DISCONT | gst::BufferFlags::HEADER)
    };
    let buffers: Vec<&gst::BufferRef> = match (sample.buffer_list(), sample.buffer()) {
        (Some(list), _) => list.iter().collect(),
        (None, Some(b)) => vec![b],
        (None, None) => return None,
    };
    let mut buffers = buffers.into_iter().peekable();
    let init = buffers.next_if(|b| is_init(b)).and_then(bytes);
    let Some(moof) = buffers.peek() else {
        *alone = init.or(alone.take());
        return None;
    };
    if !moof.flags().contains(gst::BufferFlags::HEADER) {
        tracing::warn!("CMAF muxer gave a sample that is not a chunk");
        return None;
    }
    let independent = !moof.flags().contains(gst::BufferFlags::DELTA_UNIT);
    let duration = Duration::from_nanos(moof.duration()?.nseconds());
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let running_time = segment.to_running_time(moof.pts()?)?;
    let mut data = Vec::new();
    for b in buffers {
        data.extend_from_slice(&b.map_readable().ok()?);
    }
    Some(Chunk {
        init,
        data: Bytes::from(data),
        duration,
        independent,
        running_time: Duration::from_nanos(running_time.nseconds()),
    })
}
