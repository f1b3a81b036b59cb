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
use crate::pipeline::build::Comeback;

/// Feeds `rendition` of `output` from the appsink of its CMAF muxer.
pub fn attach(
    sink: &gst_app::AppSink,
    rendition: String,
    output: Arc<HlsOutput>,
    comeback: Comeback,
) {
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(chunk) = chunk(&sample) else {
                    tracing::warn!(%rendition, "CMAF muxer gave a sample that is not a chunk");
                    return Ok(gst::FlowSuccess::Ok);
                };
                if chunk.independent
                    && let Some(wall) = came_back(&comeback, &chunk)
                {
                    output.discontinuity_at(&rendition, wall);
                }
                if let Err(e) = output.part_ready(&rendition, chunk) {
                    tracing::error!(%rendition, error = %e, "writing a low-latency part");
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// The comeback this chunk starts, if it is the first at or after one.
fn came_back(comeback: &Comeback, chunk: &Chunk) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut pending = comeback.lock().unwrap_or_else(|p| p.into_inner());
    let (at, wall) = (*pending)?;
    // The chunk's start is its earliest sample, which may be audio a frame before the keyframe.
    let slack = Duration::from_millis(50);
    (chunk.running_time + slack >= Duration::from_nanos(at.nseconds())).then(|| {
        *pending = None;
        wall
    })
}

/// The chunk in a sample of the muxer's appsink (`buffer-list=true`).
fn chunk(sample: &gst::Sample) -> Option<Chunk> {
    let list = sample.buffer_list()?;
    let mut buffers = list.iter().peekable();
    let init = buffers
        .next_if(|b| {
            b.flags()
                .contains(gst::BufferFlags::DISCONT | gst::BufferFlags::HEADER)
        })
        .and_then(|b| b.map_readable().ok().map(|m| Bytes::copy_from_slice(&m)));
    let moof = buffers.peek()?;
    if !moof.flags().contains(gst::BufferFlags::HEADER) {
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
