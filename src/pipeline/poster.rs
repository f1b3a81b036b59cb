//! Posters of streams that are not transcoded (and of AV1 streams, see
//! `PipelineSpec::poster_from_keyframes`): one keyframe every few seconds, decoded into a JPEG by
//! one decoder for the whole server instead of a decoder per stream.
//!
//! Why: a live H.264 decoder holds its frame pool. For a 1080p stream that was ~30 MiB of the ~42
//! MiB each passthrough stream cost (bench/README.md, "Per-stream memory"), kept for one picture
//! every five seconds. Here a stream's pipeline only hands a keyframe over; a worker thread
//! decodes it in a short-lived pipeline and passes the JPEG on. The work queue is bounded: when
//! the worker is behind, a stream's poster waits for its next turn (a poster is best effort).
use std::sync::OnceLock;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::ingest::VideoCodec;

/// Keyframes waiting for the decoder, over all streams.
const QUEUED: usize = 64;
const QUALITY: u32 = 85;

/// What is done with a poster's JPEG, on the worker's thread.
pub type Done = Box<dyn FnOnce(&[u8]) + Send>;

/// A keyframe to turn into a poster.
pub struct Job {
    /// The keyframe's caps (`video/x-h264`, avc, with its `codec_data`).
    pub caps: gst::Caps,
    pub keyframe: gst::Buffer,
    /// The poster's size.
    pub size: (u32, u32),
    /// Called with the JPEG.
    pub done: Done,
}

/// Queues `job` for the decoder; `false` if the queue is full (the job is dropped).
pub fn decode(job: Job) -> bool {
    static WORKER: OnceLock<SyncSender<Job>> = OnceLock::new();
    let worker = WORKER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUED);
        std::thread::Builder::new()
            .name("posters".into())
            .spawn(move || {
                for job in rx {
                    match jpeg(&job) {
                        Ok(bytes) => (job.done)(&bytes),
                        Err(e) => tracing::warn!(error = %e, "could not decode a poster"),
                    }
                }
            })
            .expect("spawning the poster thread");
        tx
    });
    match worker.try_send(job) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            tracing::debug!("the poster decoder is behind: a poster is skipped");
            false
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

/// Decodes `job`'s keyframe into a JPEG of its size.
fn jpeg(job: &Job) -> Result<Vec<u8>, String> {
    let (w, h) = job.size;
    let codec = match job.caps.structure(0).map(|s| s.name().as_str()) {
        Some("video/x-h265") => VideoCodec::H265,
        Some("video/x-av1") => VideoCodec::Av1,
        _ => VideoCodec::H264,
    };
    let (parse, decoder) = (codec.parser(), codec.decoder());
    // libav's decoders take one thread here (a single picture); av1dec has no such setting.
    let threads = if decoder.starts_with("avdec_") {
        " max-threads=1"
    } else {
        ""
    };
    let description = format!(
        "appsrc name=src format=time ! {parse} ! {decoder}{threads} ! videoconvertscale ! \
         video/x-raw,width={w},height={h},pixel-aspect-ratio=1/1 ! jpegenc quality={QUALITY} ! \
         appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let result = run(&pipeline, job);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run(pipeline: &gst::Pipeline, job: &Job) -> Result<Vec<u8>, String> {
    let by_name = |name: &str| pipeline.by_name(name).ok_or(format!("no {name}"));
    let src = by_name("src")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| "src is no appsrc")?;
    let sink = by_name("sink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "sink is no appsink")?;
    src.set_caps(Some(&job.caps));
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let mut keyframe = job.keyframe.copy();
    {
        let b = keyframe.get_mut().expect("a copy is writable");
        b.set_pts(gst::ClockTime::ZERO);
        b.set_dts(gst::ClockTime::ZERO);
    }
    src.push_buffer(keyframe)
        .map_err(|e| format!("pushing the keyframe: {e:?}"))?;
    src.end_of_stream().map_err(|e| format!("{e:?}"))?;
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(3))
        .ok_or("the decoder gave no picture")?;
    let buffer = sample.buffer().ok_or("a sample without buffer")?;
    let map = buffer.map_readable().map_err(|e| e.to_string())?;
    Ok(map.as_slice().to_vec())
}
