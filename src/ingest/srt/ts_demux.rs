//! MPEG-TS (H.264 or H.265, and AAC) from an SRT publisher into [`MediaFrame`]s: a small GStreamer
//! pipeline per connection, `appsrc ! tsdemux`, then `h264parse` / `h265parse` (to length-prefixed
//! access units with the avcC / hvcC in the caps) and `aacparse` (ADTS to raw AAC with the
//! AudioSpecificConfig in the caps) into appsinks.
//!
//! tsdemux copes with what lossy input does to a transport stream (continuity errors, broken
//! PES, PCR jumps, the 33-bit PTS wrap) and its timestamps only grow, so the frames carry them
//! as they are, in milliseconds. Other codecs in the multiplex, and a second video or audio track,
//! are dropped with a warning.
//!
//! Memory is bounded: the appsrc queue (`MAX_QUEUED_BYTES`, newest data dropped beyond it) and
//! the frame channel (`FRAME_CHANNEL`); a full channel holds the demuxer thread back, never the
//! connection task.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::ingest::{MediaFrame, VideoCodec};

/// Transport stream bytes waiting for the demuxer (about 10 s at 6 Mb/s).
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;
/// Demuxed frames waiting for the connection task.
const FRAME_CHANNEL: usize = 256;

/// What the demuxer produced.
#[derive(Debug)]
pub enum Demuxed {
    Frame(MediaFrame),
    /// One track reached its end after [`TsDemuxer::end`].
    TrackEnded,
    /// The demuxer failed (element name and GStreamer's message).
    Error(String),
}

/// One publisher's demuxing pipeline; stopped on [`TsDemuxer::close`] or drop.
pub struct TsDemuxer {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    frames: mpsc::Receiver<Demuxed>,
    bus: gst::bus::BusStream,
    /// Tracks linked to a parser; each ends with one `TrackEnded`.
    linked: Arc<AtomicUsize>,
    closed: bool,
}

fn make(factory: &str, name: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|e| format!("gstreamer element {factory}: {e}"))
}

pub(crate) fn app_sink(name: &str, caps: gst::Caps) -> Result<gst_app::AppSink, String> {
    let sink = gst_app::AppSink::builder()
        .name(name)
        .caps(&caps)
        .sync(false)
        .build();
    // Without this the pipeline would wait for every sink to preroll, and a track the publisher
    // does not send never does.
    sink.set_property("async", false);
    Ok(sink)
}

impl TsDemuxer {
    /// Builds and starts the pipeline; `name` goes into the element names' pipeline (logs, DOT).
    pub fn start(name: &str) -> Result<TsDemuxer, String> {
        let pipeline = gst::Pipeline::with_name(name);
        let src = gst_app::AppSrc::builder()
            .name("srt-src")
            .caps(
                &gst::Caps::builder("video/mpegts")
                    .field("systemstream", true)
                    .build(),
            )
            .format(gst::Format::Bytes)
            .is_live(true)
            .max_bytes(MAX_QUEUED_BYTES)
            .block(false)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let demux = make("tsdemux", "srt-demux")?;
        let h264parse = make("h264parse", "srt-h264parse")?;
        let h265parse = make("h265parse", "srt-h265parse")?;
        let aacparse = make("aacparse", "srt-aacparse")?;
        let video_sink = app_sink(
            "srt-video-sink",
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .build(),
        )?;
        let hevc_sink = app_sink(
            "srt-hevc-sink",
            gst::Caps::builder("video/x-h265")
                .field("stream-format", "hvc1")
                .field("alignment", "au")
                .build(),
        )?;
        let audio_sink = app_sink(
            "srt-audio-sink",
            gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 4i32)
                .field("stream-format", "raw")
                .build(),
        )?;
        pipeline
            .add_many([
                src.upcast_ref(),
                &demux,
                &h264parse,
                &h265parse,
                &aacparse,
                video_sink.upcast_ref(),
                hevc_sink.upcast_ref(),
                audio_sink.upcast_ref(),
            ])
            .map_err(|e| e.to_string())?;
        src.link(&demux).map_err(|e| e.to_string())?;
        h264parse
            .link(&video_sink)
            .map_err(|e| format!("h264parse ! appsink: {e}"))?;
        h265parse
            .link(&hevc_sink)
            .map_err(|e| format!("h265parse ! appsink: {e}"))?;
        aacparse
            .link(&audio_sink)
            .map_err(|e| format!("aacparse ! appsink: {e}"))?;

        let (tx, frames) = mpsc::channel(FRAME_CHANNEL);
        let stamps = Stamps::AsSent;
        video_sink.set_callbacks(callbacks(
            tx.clone(),
            Track::Video(VideoCodec::H264),
            stamps,
        ));
        hevc_sink.set_callbacks(callbacks(
            tx.clone(),
            Track::Video(VideoCodec::H265),
            stamps,
        ));
        audio_sink.set_callbacks(callbacks(tx, Track::Audio, stamps));

        let linked = Arc::new(AtomicUsize::new(0));
        let parsers = (
            h264parse.downgrade(),
            h265parse.downgrade(),
            aacparse.downgrade(),
        );
        let counter = Arc::clone(&linked);
        demux.connect_pad_added(move |_demux, pad| {
            let caps = pad.current_caps().or_else(|| pad.allowed_caps());
            let structure = caps.as_ref().and_then(|c| c.structure(0));
            let media = structure.map(|s| s.name().to_string()).unwrap_or_default();
            // audio/mpeg is AAC (mpegversion 2 or 4) or MP1/2/3 (mpegversion 1).
            let aac = structure.is_some_and(|s| s.get::<i32>("mpegversion").is_ok_and(|v| v != 1));
            let parser = match media.as_str() {
                "video/x-h264" => parsers.0.upgrade(),
                "video/x-h265" => parsers.1.upgrade(),
                "audio/mpeg" if aac => parsers.2.upgrade(),
                _ => None,
            };
            let Some(sink_pad) = parser.and_then(|p| p.static_pad("sink")) else {
                let caps = caps.map(|c| c.to_string()).unwrap_or_default();
                warn!(pad = %pad.name(), %caps, "dropping a track this server cannot ingest (H.264, H.265 and AAC only)");
                return;
            };
            let linked = |parser: &gst::glib::WeakRef<gst::Element>| {
                parser
                    .upgrade()
                    .and_then(|p| p.static_pad("sink"))
                    .is_some_and(|p| p.is_linked())
            };
            let video_linked = linked(&parsers.0) || linked(&parsers.1);
            if sink_pad.is_linked() || (media.starts_with("video/") && video_linked) {
                warn!(pad = %pad.name(), caps = %media, "dropping a second track of the same kind");
                return;
            }
            match pad.link(&sink_pad) {
                Ok(_) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    debug!(pad = %pad.name(), caps = %media, "srt track linked");
                }
                Err(e) => warn!(pad = %pad.name(), error = ?e, "could not link a track"),
            }
        });

        let bus = pipeline.bus().ok_or("pipeline without a bus")?.stream();
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("starting the demuxer: {e}"))?;
        Ok(TsDemuxer {
            pipeline,
            src,
            frames,
            bus,
            linked,
            closed: false,
        })
    }

    /// Queues transport stream bytes, one SRT message per buffer, as one list (one hand-over to
    /// the demuxer thread). Never blocks; beyond the queue limit new data is dropped.
    pub fn push(&self, messages: Vec<Bytes>) -> Result<(), String> {
        let result = if messages.len() == 1 {
            let data = messages.into_iter().next().unwrap_or_default();
            self.src.push_buffer(gst::Buffer::from_slice(data))
        } else {
            let mut list = gst::BufferList::new_sized(messages.len());
            let list_mut = list.get_mut().expect("a new list is writable");
            for data in messages {
                list_mut.add(gst::Buffer::from_slice(data));
            }
            self.src.push_buffer_list(list)
        };
        result
            .map(|_| ())
            .map_err(|flow| format!("demuxer refused data: {flow:?}"))
    }

    /// The publisher is done: let the demuxer flush what it holds (each track then ends).
    pub fn end(&self) {
        let _ = self.src.end_of_stream();
    }

    /// Tracks that were linked, i.e. how many `TrackEnded` follow [`TsDemuxer::end`].
    pub fn tracks(&self) -> usize {
        self.linked.load(Ordering::SeqCst)
    }

    /// The next frame, track end or error; never returns while nothing happens.
    pub async fn next(&mut self) -> Demuxed {
        next_output(&mut self.frames, &mut self.bus).await
    }

    /// Stops the pipeline off the async threads.
    pub async fn close(mut self) {
        self.closed = true;
        self.frames.close();
        let pipeline = self.pipeline.clone();
        let _ = tokio::task::spawn_blocking(move || pipeline.set_state(gst::State::Null)).await;
    }
}

impl Drop for TsDemuxer {
    fn drop(&mut self) {
        if !self.closed {
            // Unblocks a demuxer thread waiting for channel space, then stops (a few ms).
            self.frames.close();
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }
}

/// The next frame, track end or pipeline error of a pipeline feeding `frames` (the demuxer's,
/// a WHIP receiver's); never returns while nothing happens.
pub(crate) async fn next_output(
    frames: &mut mpsc::Receiver<Demuxed>,
    bus: &mut gst::bus::BusStream,
) -> Demuxed {
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(d) => return d,
                None => return Demuxed::Error("demuxer output closed".into()),
            },
            Some(msg) = bus.next() => {
                if let gst::MessageView::Error(err) = msg.view() {
                    let element = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                    return Demuxed::Error(format!(
                        "{element}: {} ({})",
                        err.error(),
                        err.debug().unwrap_or_default()
                    ));
                }
            }
        }
    }
}

/// Which timestamps frames carry.
#[derive(Clone, Copy)]
pub(crate) enum Stamps {
    /// The buffers' own (tsdemux: the transport stream's, which only grow).
    AsSent,
    /// Running time: an encoder in the chain (x264enc) shifts its output by 1000 hours.
    RunningTime,
}

#[derive(Clone, Copy)]
pub(crate) enum Track {
    Video(VideoCodec),
    Audio,
}

/// Turns each sample into frames: the codec configuration when the caps bring a new one, then
/// the access unit.
pub(crate) fn callbacks(
    tx: mpsc::Sender<Demuxed>,
    track: Track,
    stamps: Stamps,
) -> gst_app::AppSinkCallbacks {
    let eos_tx = tx.clone();
    let mut config: Option<Bytes> = None;
    gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
            let codec_data = sample
                .caps()
                .and_then(|c| c.structure(0))
                .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
                .and_then(|b| b.map_readable().ok().map(|m| Bytes::copy_from_slice(&m)));
            if let Some(data) = codec_data
                && config.as_ref() != Some(&data)
            {
                config = Some(data.clone());
                let frame = match track {
                    Track::Video(codec) => MediaFrame::VideoConfig {
                        codec,
                        record: data,
                    },
                    Track::Audio => MediaFrame::AudioConfig { asc: data },
                };
                send(&tx, frame)?;
            }
            let Some(buffer) = sample.buffer() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            let segment = match stamps {
                Stamps::AsSent => None,
                Stamps::RunningTime => sample
                    .segment()
                    .and_then(|s| s.downcast_ref::<gst::ClockTime>().cloned()),
            };
            let (Some(frame), true) = (to_frame(buffer, track, segment.as_ref()), config.is_some())
            else {
                return Ok(gst::FlowSuccess::Ok);
            };
            send(&tx, frame)?;
            Ok(gst::FlowSuccess::Ok)
        })
        .eos(move |_| {
            let _ = eos_tx.blocking_send(Demuxed::TrackEnded);
        })
        .build()
}

fn send(tx: &mpsc::Sender<Demuxed>, frame: MediaFrame) -> Result<(), gst::FlowError> {
    // Runs on the demuxer's streaming thread, so blocking here only holds back the demuxer.
    tx.blocking_send(Demuxed::Frame(frame))
        .map_err(|_| gst::FlowError::Flushing)
}

fn to_frame(
    buffer: &gst::BufferRef,
    track: Track,
    segment: Option<&gst::FormattedSegment<gst::ClockTime>>,
) -> Option<MediaFrame> {
    let running = |t: gst::ClockTime| match segment {
        Some(s) => s.to_running_time(t),
        None => Some(t),
    };
    let pts = running(buffer.pts().or(buffer.dts())?)?;
    let dts = buffer.dts().and_then(running).unwrap_or(pts);
    let data = buffer
        .map_readable()
        .ok()
        .map(|m| Bytes::copy_from_slice(&m))?;
    Some(match track {
        Track::Video(_) => MediaFrame::Video {
            dts_ms: dts.mseconds(),
            cts_ms: i32::try_from(pts.mseconds() as i64 - dts.mseconds() as i64).unwrap_or(0),
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            data,
        },
        Track::Audio => MediaFrame::Audio {
            dts_ms: pts.mseconds(),
            data,
        },
    })
}
