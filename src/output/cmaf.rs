//! The CMAF side of a low-latency rendition: each chunk its muxer (`isofmp4mux`) hands to the
//! appsink becomes a part of the rendition's [`HlsOutput`].
//!
//! A chunk comes as one buffer list: `DISCONT|HEADER` marks an init section (ftyp + moov, at the
//! start and when codec parameters change), then a moof flagged `HEADER` (a fragment, i.e. a
//! segment, starts here with a keyframe) or `HEADER|DELTA_UNIT` (a chunk within it), carrying the
//! chunk's duration, then its samples.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer_app as gst_app;

use super::hls::{Chunk, HlsOutput};
use crate::pipeline::build::{Comeback, ResumedAt};

/// Feeds `rendition` of `output` from the appsink of its CMAF muxer.
pub fn attach(
    sink: &gst_app::AppSink,
    rendition: String,
    output: Arc<HlsOutput>,
    comeback: Comeback,
    resumed_at: ResumedAt,
) {
    // An init section may come alone (a caps change): it goes with the next chunk.
    let mut init = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(mut chunk) = chunk(&sample, &mut init) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                chunk.init = chunk.init.or_else(|| init.take());
                if chunk.independent && came_back(&comeback, &chunk) {
                    let at = *resumed_at.lock().unwrap_or_else(|p| p.into_inner());
                    match at {
                        Some(at) => output.discontinuity_at(&rendition, at),
                        None => output.discontinuity(&rendition),
                    }
                }
                if let Err(e) = output.part_ready(&rendition, chunk) {
                    tracing::error!(%rendition, error = %e, "writing a low-latency part");
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
