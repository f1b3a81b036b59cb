//! Builds a stream's pipeline from its spec: a gst-launch description (golden-tested, printable by
//! `examples/pipeline_description.rs`), then the caps that only the publisher's headers can give.
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::Error;
use super::spec::{PipelineSpec, SOURCE_RENDITION, StreamPaths};
use crate::config::ladder::{PlannedRung, keyframe_interval_frames};
use crate::ingest::VideoCodec;
use crate::output::cmaf_parts::{self, Comeback, Grid};
use crate::output::codecs;
use crate::output::ts_mux::VideoStream;
use crate::output::ts_segments;
use crate::output::visibility::Visibility;
use crate::output::{self, cmaf};

/// Queues after a tee hold up to this much media, so one slow branch never stalls the other.
const BRANCH_QUEUE_NS: u64 = 5_000_000_000;
/// Fragment length of the crash-safe recording (ms): a `kill -9` loses at most this much.
const RECORDING_FRAGMENT_MS: u32 = 2000;
/// Compressed video waiting for the decoder; beyond this the decoder is overloaded and the oldest
/// frames are dropped so the source rendition and the recording never wait for it.
const DECODE_QUEUE_NS: u64 = 2_000_000_000;
/// Raw frames waiting for one rung's scaler and encoder before that rung drops frames (leaky),
/// which is also how overload is detected.
const RUNG_QUEUE_FRAMES: u32 = 15;
/// How late the CMAF muxer of an AV1 rendition lets a track be before it gives up waiting and
/// cuts a chunk with what it has (the aggregator's live timeout). Ingest over the network
/// arrives in bursts; cutting at every late burst made parts of uneven length. Data on time is
/// muxed at once, whatever this is.
const CMAF_LATENCY_NS: u64 = 1_000_000_000;
/// A poster every this many seconds.
const THUMBNAIL_EVERY_S: u32 = 5;
const THUMBNAIL_QUALITY: u32 = 85;

fn leaky_queue(name: &str) -> String {
    format!(
        "queue name={name} leaky=downstream max-size-time={BRANCH_QUEUE_NS} max-size-buffers=0 max-size-bytes=0"
    )
}

/// Raw frames waiting for a rung's scaler or encoder (see `RUNG_QUEUE_FRAMES`).
fn rung_queue(name: &str) -> String {
    format!(
        "queue name={name} leaky=downstream max-size-buffers={RUNG_QUEUE_FRAMES} max-size-time=0 max-size-bytes=0"
    )
}

/// The end of a rendition's track into the application: the caps its writer takes into an appsink
/// named `name`. MPEG-TS (`hls-{rendition}`, with `-audio` for the audio of a rendition with
/// video): Annex B access units and ADTS frames for `output::ts_segments`, which muxes and cuts
/// the segments where `cut_segments`' force-key-unit events pass. Low-latency parts
/// (`ll-{rendition}`, likewise): see `ll_video` and `LL_AUDIO`.
fn track_sink(caps: &str, name: &str) -> String {
    format!(
        "{caps} ! appsink name={name} sync=false async=false enable-last-sample=false max-buffers=0 drop=false"
    )
}

/// A rendition's video in MPEG-TS: the caps its appsink takes and the stream type written.
/// AV1 never goes into MPEG-TS (`PipelineSpec::source_in_ts`); the rungs are H.264.
fn ts_video(codec: VideoCodec) -> (&'static str, VideoStream) {
    match codec {
        VideoCodec::H265 => (
            "video/x-h265,stream-format=byte-stream,alignment=au",
            VideoStream::H265,
        ),
        VideoCodec::H264 | VideoCodec::Av1 => (
            "video/x-h264,stream-format=byte-stream,alignment=au",
            VideoStream::H264,
        ),
    }
}

/// The appsink of a rendition's MPEG-TS audio: `hls-{rendition}-audio` beside its video, the
/// rendition's own `hls-{rendition}` when it has no video (the name the segment messages come
/// from).
pub fn ts_audio_sink(rendition: &str, video: bool) -> String {
    audio_sink("hls", rendition, video)
}

/// The name of a rendition's low-latency audio appsink (`output::cmaf_parts`): `ll-{rendition}-audio`,
/// or `ll-{rendition}` when the rendition has no video.
pub fn ll_audio_sink(rendition: &str, video: bool) -> String {
    audio_sink("ll", rendition, video)
}

fn audio_sink(kind: &str, rendition: &str, video: bool) -> String {
    match video {
        true => format!("{kind}-{rendition}-audio"),
        false => format!("{kind}-{rendition}"),
    }
}

/// Caps of a rendition's audio in MPEG-TS.
const TS_AUDIO: &str = "audio/mpeg,mpegversion=4,stream-format=adts";

/// Caps of a rendition's video into its low-latency parts (`output::cmaf_parts`): length-prefixed
/// access units, the parameter sets in the caps. `None` for AV1, which goes through `cmaf_muxer`.
fn ll_video(codec: VideoCodec) -> Option<&'static str> {
    match codec {
        VideoCodec::H264 => Some(LL_H264),
        VideoCodec::H265 => Some("video/x-h265,stream-format=hvc1,alignment=au"),
        VideoCodec::Av1 => None,
    }
}

const LL_H264: &str = "video/x-h264,stream-format=avc,alignment=au";
/// Caps of a rendition's audio into its low-latency parts: raw AAC frames.
const LL_AUDIO: &str = "audio/mpeg,mpegversion=4,stream-format=raw";

/// An AV1 source's CMAF muxer for low-latency HLS (`cmaf_mux` writes no `av01` entry):
/// fragments of a segment, chunks of a part, each chunk handed to the application by an appsink
/// (`output::cmaf`), on the grid of `output::cmaf_parts`. Keyframes come from the publisher: the
/// muxer never asks for any. A publisher that comes back at another size gets a new init section
/// (`header-update-mode=caps`).
fn cmaf_muxer(spec: &PipelineSpec, rendition: &str, part: Duration) -> String {
    format!(
        "isofmp4mux name=cmaf-{rendition} fragment-duration={seg} chunk-duration={part} send-force-keyunit=false \
         latency={CMAF_LATENCY_NS} header-update-mode=caps ! \
         appsink name=ll-{rendition} sync=false async=false buffer-list=true enable-last-sample=false",
        seg = spec.segment.as_nanos() * cmaf_parts::SEGMENT_SHARE / 100,
        part = part
            .as_nanos()
            .saturating_sub(cmaf_parts::PART_SLACK_NS as u128),
    )
}

/// The gst-launch description of a live stream's pipeline.
///
/// - `source` rendition: the publisher's H.264 and AAC, no re-encode, into MPEG-TS segments cut on
///   keyframes (`track_sink`); the recording into fragmented MP4. Every branch after a tee has its
///   own parser (MEDIA-NOTES 2). The branches into the muxers and segment writers have no queue:
///   a queue is a thread and a hand-off per buffer, and each muxer already holds what it waits
///   for (the recording's up to `BRANCH_QUEUE_NS`, its latency, so that a slow disk under the
///   recording does not hold up the live outputs); the ingest's threads (one per track) do the
///   muxing.
/// - Rungs: one decode, then per rung a leaky queue, frame-rate cap, scaler and x264 into its own
///   segments; audio copied into every rung. Keyframes are forced on the segment grid (see
///   `build`), so segment N of every rendition covers the same media time.
/// - Low latency (`spec.part`): every rendition's tracks also go, after their own parsers, into
///   appsinks whose writer cuts and muxes the parts (`output::cmaf_parts`); an AV1 source into a
///   CMAF muxer (`cmaf_muxer`).
/// - Poster: a JPEG every few seconds from the decoded frames; without rungs (no decoder), a keyframe
///   every few seconds handed to the shared poster decoder (`poster`).
/// - RTSP out: the publisher's H.264/AAC into an appsink per track (dropping, never blocking), which
///   `output::rtsp` forwards to the RTSP media of the stream's viewers (dropped when there are none).
///
/// Every sink is `async=false`: the pipeline goes to PLAYING at once instead of waiting for each
/// sink to preroll, which a branch that needs several frames before its first output (videorate,
/// an encoder) would otherwise turn into a deadlock with the queues of the other branches.
pub fn describe(spec: &PipelineSpec) -> String {
    let (video, audio) = (spec.tracks.has_video(), spec.tracks.has_audio());
    let codec = spec.tracks.video_codec;
    let (parse, decoder) = (codec.parser(), codec.decoder());
    // Parsers of the NAL-unit codecs repeat the parameter sets at keyframes; AV1 keyframes carry
    // their sequence header, and av1parse has no such setting.
    let repeat_headers = match codec {
        VideoCodec::Av1 => "",
        VideoCodec::H264 | VideoCodec::H265 => " config-interval=-1",
    };
    let mut parts = Vec::new();
    if video {
        parts.push(
            format!("appsrc name=src-video format=time is-live=true min-latency=0 ! {parse} name=parse-video ! tee name=tee-video"),
        );
    }
    if audio {
        parts.push(
            "appsrc name=src-audio format=time is-live=true min-latency=0 ! aacparse name=parse-audio ! tee name=tee-audio"
                .to_string(),
        );
    }
    if spec.source_in_ts() {
        if video {
            parts.push(format!(
                "tee-video. ! {parse} name=parse-hls-video config-interval=-1 ! {}",
                track_sink(ts_video(codec).0, &format!("hls-{SOURCE_RENDITION}"))
            ));
        }
        if audio {
            parts.push(format!(
                "tee-audio. ! aacparse name=parse-hls-audio ! {}",
                track_sink(TS_AUDIO, &ts_audio_sink(SOURCE_RENDITION, video))
            ));
        }
    }
    if let (true, Some(part)) = (spec.source, spec.part) {
        match ll_video(codec).filter(|_| video) {
            None if video => {
                parts.push(cmaf_muxer(spec, SOURCE_RENDITION, part));
                parts.push(format!(
                    "tee-video. ! {parse} name=parse-ll-video ! {}cmaf-{SOURCE_RENDITION}.sink_%u",
                    av1_level(spec),
                ));
                if audio {
                    parts.push(format!(
                        "tee-audio. ! aacparse name=parse-ll-audio ! cmaf-{SOURCE_RENDITION}.sink_%u"
                    ));
                }
            }
            caps => {
                if let Some(caps) = caps {
                    parts.push(format!(
                        "tee-video. ! {parse} name=parse-ll-video ! {}",
                        track_sink(caps, &format!("ll-{SOURCE_RENDITION}"))
                    ));
                }
                if audio {
                    parts.push(format!(
                        "tee-audio. ! aacparse name=parse-ll-audio ! {}",
                        track_sink(LL_AUDIO, &ll_audio_sink(SOURCE_RENDITION, video))
                    ));
                }
            }
        }
    }
    parts.push(format!(
        "mp4mux name=rec-mux fragment-duration={RECORDING_FRAGMENT_MS} streamable=true latency={BRANCH_QUEUE_NS} ! filesink name=rec-sink async=false location={}",
        quote(&spec.paths.recording_fragmented().to_string_lossy())
    ));
    if video {
        parts.push(format!(
            "tee-video. ! {parse} name=parse-rec-video{repeat_headers} ! rec-mux.video_%u"
        ));
    }
    if audio {
        parts.push("tee-audio. ! aacparse name=parse-rec-audio ! rec-mux.audio_%u".to_string());
    }
    // RTSP out: GStreamer 1.22 has no AV1 RTP payloader, so an AV1 stream is served as audio.
    let rtsp_video = video && codec != VideoCodec::Av1;
    for (track, on) in [("video", rtsp_video), ("audio", audio)] {
        if on {
            // No queue (a thread and a hand-off per buffer): the appsink drops instead of blocking
            // and its callback only passes the buffer to the RTSP media's leaky appsrcs.
            parts.push(format!(
                "tee-{track}. ! appsink name=rtsp-{track} sync=false async=false \
                 enable-last-sample=false max-buffers=8 drop=true"
            ));
        }
    }
    if spec.decodes() {
        parts.push(format!(
            "tee-video. ! queue name=queue-dec leaky=downstream max-size-time={DECODE_QUEUE_NS} max-size-buffers=0 \
             max-size-bytes=0 ! {decoder} name=dec ! tee name=tee-raw"
        ));
    }
    let feeds = scaling_feeds(&spec.rungs);
    for (i, rung) in spec.rungs.iter().enumerate().filter(|_| video) {
        let r = &rung.name;
        // The rate cap goes before the scaler when it drops frames (none are scaled in vain),
        // after it otherwise: there it works on small frames and still caps a publisher that
        // speeds up (measured: ~4 % of the ladder's CPU on a 30 fps source).
        let rate = format!(
            "videorate name=rate-{r} max-rate={} skip-to-first=true ! ",
            rung.max_rate()
        );
        let (rate_before, rate_after) = if rung.thins {
            (rate.as_str(), "")
        } else {
            ("", rate.as_str())
        };
        let feed = match feeds[i] {
            Some(parent) => format!("tee-size-{}", spec.rungs[parent].name),
            None => "tee-raw".to_string(),
        };
        let size = format!(
            "caps=\"video/x-raw,format=I420,width={w},height={h},pixel-aspect-ratio=1/1\"",
            w = rung.width,
            h = rung.height,
        );
        // A rung that smaller rungs scale from: its scaling stage is shared (part of the ingest,
        // so that the rung's own failure leaves the smaller rungs running), and the rung's branch
        // starts after it.
        let scaled = if feeds.contains(&Some(i)) {
            parts.push(format!(
                "{feed}. ! {} ! videoconvertscale name=size-{r} ! capsfilter name=sized-{r} {size} ! tee name=tee-size-{r}",
                rung_queue(&format!("queue-size-{r}"))
            ));
            format!("tee-size-{r}. ! {} ! ", rung_queue(&format!("queue-{r}")))
        } else {
            format!(
                "{feed}. ! {} ! {rate_before}videoconvertscale name=scale-{r} ! capsfilter name=caps-{r} {size} ! ",
                rung_queue(&format!("queue-{r}"))
            )
        };
        parts.push(format!(
            "{scaled}{rate_after}valve name=valve-{r} drop-mode=forward-sticky-events ! \
             x264enc name=enc-{r} {x264} bitrate={kbps} key-int-max={gop} option-string=scenecut=0 ! \
             capsfilter name=profile-{r} caps=\"video/x-h264,profile={profile}\" ! \
             h264parse name=parse-{r} config-interval=-1 ! {to_mux}",
            x264 = rung.x264.encoder_properties(),
            kbps = rung.video_bitrate_kbps,
            gop = 2 * keyframe_interval_frames(rung.fps, spec.segment),
            profile = rung.x264.profile.caps_value(),
            to_mux = match spec.part {
                None => track_sink(ts_video(VideoCodec::H264).0, &format!("hls-{r}")),
                Some(_) => format!("tee name=tee-{r}"),
            },
        ));
        if spec.part.is_some() {
            parts.push(format!(
                "tee-{r}. ! {}",
                track_sink(ts_video(VideoCodec::H264).0, &format!("hls-{r}"))
            ));
            parts.push(format!(
                "tee-{r}. ! h264parse name=parse-ll-{r} ! {}",
                track_sink(LL_H264, &format!("ll-{r}"))
            ));
        }
        if audio {
            // Leaky: a rung whose video lags holds its audio in the muxer; a full queue here must
            // drop that rung's audio, not block the tee feeding the source rendition and the
            // recording.
            let valve = format!(
                "tee-audio. ! {} ! valve name=valve-{r}-audio drop-mode=forward-sticky-events",
                leaky_queue(&format!("queue-{r}-audio"))
            );
            match spec.part {
                None => parts.push(format!(
                    "{valve} ! aacparse name=parse-{r}-audio ! {}",
                    track_sink(TS_AUDIO, &ts_audio_sink(r, true))
                )),
                Some(_) => {
                    parts.push(format!("{valve} ! tee name=tee-{r}-audio"));
                    parts.push(format!(
                        "tee-{r}-audio. ! aacparse name=parse-{r}-audio ! {}",
                        track_sink(TS_AUDIO, &ts_audio_sink(r, true))
                    ));
                    parts.push(format!(
                        "tee-{r}-audio. ! aacparse name=parse-ll-{r}-audio ! {}",
                        track_sink(LL_AUDIO, &ll_audio_sink(r, true))
                    ));
                }
            }
        }
    }
    if let (true, Some(_)) = (video, spec.thumbnail)
        && spec.poster_from_keyframes()
    {
        // Not transcoded (or AV1): the poster is a keyframe decoded apart (`poster`). No
        // queue either: the sink drops instead of blocking, and its callback only queues a
        // keyframe every few seconds for the poster decoder (without waiting).
        parts.push(
            "tee-video. ! identity name=keyframes-thumb drop-buffer-flags=delta-unit ! \
             appsink name=thumb-sink sync=false async=false max-buffers=1 drop=true enable-last-sample=false"
                .into(),
        );
    } else if let (true, Some((w, h))) = (video, spec.thumbnail) {
        parts.push(format!(
            "tee-raw. ! queue name=queue-thumb leaky=downstream max-size-buffers=1 max-size-time=0 max-size-bytes=0 ! \
             videoconvertscale name=scale-thumb ! video/x-raw,width={w},height={h},pixel-aspect-ratio=1/1 ! \
             jpegenc name=enc-thumb quality={THUMBNAIL_QUALITY} ! appsink name=thumb-sink sync=false async=false max-buffers=1 drop=true"
        ));
    }
    parts.join("\n")
}

/// Where each rung's scaler takes its frames: from the nearest larger rung that scales every frame
/// (`Some(index)`: a cascade, 1080p → 720p → 480p → 360p), else from the decoded source (`None`).
/// A scaler reading a smaller picture does less work: the default ladder's three scalers cost
/// about a third less this way (measured with gst-launch on 1080p30: 1.75 against 2.8 CPU-s per
/// 10 s of media, bilinear as before). A rung that thins the frame rate feeds no other rung, so
/// every rung keeps its own rate. Rungs come largest first (the preset's order).
fn scaling_feeds(rungs: &[PlannedRung]) -> Vec<Option<usize>> {
    rungs
        .iter()
        .enumerate()
        .map(|(i, rung)| {
            (0..i).rev().find(|&j| {
                let parent = &rungs[j];
                !parent.thins
                    && parent.width >= rung.width
                    && parent.height >= rung.height
                    && (parent.width, parent.height) != (rung.width, rung.height)
            })
        })
        .collect()
}

/// The capsfilter that fixes each rung's picture size: its own (`caps-`) or, for a rung that
/// smaller rungs scale from, its shared scaling stage's (`sized-`).
fn size_filters(rungs: &[PlannedRung]) -> Vec<String> {
    let feeds = scaling_feeds(rungs);
    rungs
        .iter()
        .enumerate()
        .map(|(i, rung)| {
            if feeds.contains(&Some(i)) {
                format!("sized-{}", rung.name)
            } else {
                format!("caps-{}", rung.name)
            }
        })
        .collect()
}

/// For an AV1 source: a caps filter naming the level and tier its sequence header gives, which
/// isofmp4mux writes into the `av1C` (av1parse leaves them out of its caps; the muxer adds the
/// sequence header itself). Empty for the other codecs.
fn av1_level(spec: &PipelineSpec) -> String {
    let info = match (spec.tracks.video_codec, spec.tracks.video.as_deref()) {
        (VideoCodec::Av1, Some(record)) => crate::ingest::av1::parse_av1c(record),
        _ => return String::new(),
    };
    match info {
        Some(i) => format!(
            "capsfilter name=level-ll-video caps=\"video/x-av1,level=(string){},tier=(string){}\" ! ",
            i.level_name(),
            i.tier_name()
        ),
        None => String::new(),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// (queue owner: a rung name or `dec`, times its leaky queue was full) — how overload shows.
pub type Overruns = Vec<(String, Arc<AtomicU64>)>;

/// Counts the publishers that came back (see `Running::resume`). Each change makes every
/// rendition cut a segment at the next keyframe (every encoder is asked for one at once), and that
/// segment starts a discontinuity.
pub type Resumes = Arc<AtomicU32>;

/// The built pipeline, its inputs, and the overrun counters of its leaky transcode queues.
pub struct Built {
    pub pipeline: gst::Pipeline,
    pub video: Option<gst_app::AppSrc>,
    pub audio: Option<gst_app::AppSrc>,
    pub overruns: Overruns,
    pub resumes: Resumes,
    /// Low-latency renditions: name, its appsinks, and where its comebacks show.
    pub low_latency: Vec<(String, cmaf::Sinks, Comeback)>,
}

/// Posted by `cut_segments` at a rendition's first buffer.
pub const SEGMENT_OPENED: &str = "livefront-segment-opened";
/// Posted where a rendition is cut for a publisher that came back: the segment that starts there
/// begins a discontinuity.
pub const DISCONTINUITY: &str = "livefront-discontinuity";

/// Caps for the video appsrc from the publisher's configuration record (avcC, hvcC or av1C).
pub fn video_caps(codec: VideoCodec, record: &[u8]) -> gst::Caps {
    let (media, format, alignment) = match codec {
        VideoCodec::H264 => ("video/x-h264", "avc", "au"),
        VideoCodec::H265 => ("video/x-h265", "hvc1", "au"),
        VideoCodec::Av1 => ("video/x-av1", "obu-stream", "tu"),
    };
    gst::Caps::builder(media)
        .field("stream-format", format)
        .field("alignment", alignment)
        .field("codec_data", gst::Buffer::from_slice(record.to_vec()))
        .build()
}

/// Caps for the audio appsrc from the publisher's AudioSpecificConfig.
pub fn audio_caps(asc: &[u8]) -> gst::Caps {
    let mut caps = gst::Caps::builder("audio/mpeg")
        .field("mpegversion", 4i32)
        .field("stream-format", "raw")
        .field("codec_data", gst::Buffer::from_slice(asc.to_vec()));
    if let Some((rate, channels)) = codecs::aac_sample_rate_channels(asc) {
        caps = caps
            .field("rate", rate as i32)
            .field("channels", channels as i32);
    }
    caps.build()
}

pub fn build(spec: &PipelineSpec, visibility: &Visibility) -> Result<Built, Error> {
    let ts = spec.ts_renditions();
    for rendition in spec.renditions() {
        let mut dirs = Vec::new();
        if ts.contains(&rendition) {
            dirs.push(spec.paths.rendition_dir(&rendition));
        }
        if spec.part.is_some() {
            dirs.push(spec.paths.low_latency_dir().join(&rendition));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::Gst(format!("creating {}: {e}", dir.display())))?;
        }
    }
    let description = describe(spec);
    tracing::debug!(%description, "building a pipeline");
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| Error::Gst("description did not make a pipeline".into()))?;
    let appsrc = |name: &str, caps: gst::Caps| -> Result<gst_app::AppSrc, Error> {
        let src = pipeline
            .by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| Error::Gst(format!("no appsrc {name}")))?;
        src.set_caps(Some(&caps));
        src.set_format(gst::Format::Time);
        Ok(src)
    };
    let video = spec
        .tracks
        .video
        .as_ref()
        .map(|c| appsrc("src-video", video_caps(spec.tracks.video_codec, c)))
        .transpose()?;
    let audio = spec
        .tracks
        .audio
        .as_ref()
        .map(|c| appsrc("src-audio", audio_caps(c)))
        .transpose()?;
    let resumes = Resumes::default();
    if spec.decodes() && !spec.rungs.is_empty() {
        force_keyframes_on_grid(&pipeline, spec.segment, resumes.clone())?;
        keep_source_colorimetry(&pipeline, &size_filters(&spec.rungs))?;
    }
    if spec.source_in_ts() {
        let parser = if spec.tracks.has_video() {
            "parse-hls-video"
        } else {
            "parse-hls-audio"
        };
        cut_segments(
            &pipeline,
            parser,
            SOURCE_RENDITION,
            spec.segment,
            resumes.clone(),
        )?;
    }
    for rung in spec.rungs.iter().filter(|_| spec.tracks.has_video()) {
        cut_segments(
            &pipeline,
            &format!("parse-{}", rung.name),
            &rung.name,
            spec.segment,
            resumes.clone(),
        )?;
        drop_encoder_cuts(&pipeline, &format!("enc-{}", rung.name))?;
    }
    write_segments(&pipeline, spec)?;
    let mut low_latency = Vec::new();
    let sink = |name: String| {
        pipeline
            .by_name(&name)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| Error::Gst(format!("no appsink {name}")))
    };
    if let Some(part) = spec.part {
        let mut parsers = Vec::new();
        if spec.source {
            let track = if spec.tracks.has_video() {
                "video"
            } else {
                "audio"
            };
            parsers.push((SOURCE_RENDITION.to_string(), format!("parse-ll-{track}")));
        }
        for rung in spec.rungs.iter().filter(|_| spec.tracks.has_video()) {
            parsers.push((rung.name.clone(), format!("parse-ll-{}", rung.name)));
        }
        for (rendition, parser) in parsers {
            let comeback = Comeback::default();
            split_on_comeback(
                &pipeline,
                &parser,
                &rendition,
                resumes.clone(),
                comeback.clone(),
            )?;
            let sinks = match pipeline.by_name(&format!("cmaf-{rendition}")) {
                Some(_) => cmaf::Sinks::Muxer(sink(format!("ll-{rendition}"))?),
                None => {
                    // The rungs are made only for streams with video.
                    let video = rendition != SOURCE_RENDITION || spec.tracks.has_video();
                    cmaf::Sinks::Tracks {
                        video: video.then(|| sink(format!("ll-{rendition}"))).transpose()?,
                        audio: spec
                            .tracks
                            .has_audio()
                            .then(|| sink(ll_audio_sink(&rendition, video)))
                            .transpose()?,
                        grid: Grid {
                            segment: spec.segment,
                            part,
                        },
                    }
                }
            };
            low_latency.push((rendition, sinks, comeback));
        }
    }
    if spec.tracks.has_video() {
        keep_recording_caps(&pipeline)?;
    }
    let rungs: Vec<&str> = spec.rungs.iter().map(|r| r.name.as_str()).collect();
    super::branch::guard(&pipeline, &rungs);
    if let (true, Some(size)) = (spec.tracks.has_video(), spec.thumbnail) {
        let keyframes = spec.poster_from_keyframes().then_some(size);
        write_thumbnails(&pipeline, &spec.paths, visibility.clone(), keyframes)?;
    }
    let mut overruns = Vec::new();
    // Each rung's queue (its scaler and encoder, or its encoder after a shared scaling stage),
    // the shared scaling stages' and the decoder's: the last two are signals, not rungs to drop.
    let decoder = spec.decodes().then(|| "dec".to_string());
    let feeds = scaling_feeds(&spec.rungs);
    let stages = spec
        .rungs
        .iter()
        .enumerate()
        .filter(|(i, _)| feeds.contains(&Some(*i)))
        .map(|(_, r)| format!("size-{}", r.name));
    for name in spec
        .rungs
        .iter()
        .map(|r| r.name.clone())
        .chain(stages)
        .chain(decoder)
    {
        let name = format!("queue-{name}");
        let queue = pipeline
            .by_name(&name)
            .ok_or_else(|| Error::Gst(format!("no {name}")))?;
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        queue.connect("overrun", false, move |_| {
            c.fetch_add(1, Ordering::Relaxed);
            None
        });
        overruns.push((name.trim_start_matches("queue-").to_string(), count));
    }
    Ok(Built {
        pipeline,
        video,
        audio,
        overruns,
        resumes,
        low_latency,
    })
}

/// Connects each MPEG-TS rendition's appsinks to its segment writer (`output::ts_segments`).
fn write_segments(pipeline: &gst::Pipeline, spec: &PipelineSpec) -> Result<(), Error> {
    let sink = |name: String| {
        pipeline
            .by_name(&name)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| Error::Gst(format!("no appsink {name}")))
    };
    let (video, audio) = (spec.tracks.has_video(), spec.tracks.has_audio());
    for rendition in spec.ts_renditions() {
        // Rungs are made only for streams with video.
        if !video && rendition != SOURCE_RENDITION {
            continue;
        }
        let codec = match rendition.as_str() {
            SOURCE_RENDITION => spec.tracks.video_codec,
            _ => VideoCodec::H264,
        };
        ts_segments::attach(
            video
                .then(|| sink(format!("hls-{rendition}")))
                .transpose()?,
            audio
                .then(|| sink(ts_audio_sink(&rendition, video)))
                .transpose()?,
            &spec.paths.rendition_dir(&rendition),
            spec.first_segment,
            ts_segments::Tracks {
                video: video.then_some(ts_video(codec).1),
                audio,
            },
        );
    }
    Ok(())
}

/// Gives every rung the colorimetry of the decoded source, so its scaler only scales. Left open,
/// an untagged HD source (read as BT.709) scaled to an SD size would be converted to BT.601, the
/// default for SD sizes: a colour-matrix conversion per pixel of every SD rung (~15 % of the
/// ladder's CPU) for no visible gain. x264 writes the colorimetry into the rung's VUI, so players
/// show the colours as the source's.
fn keep_source_colorimetry(pipeline: &gst::Pipeline, names: &[String]) -> Result<(), Error> {
    let filters = names
        .iter()
        .map(|name| {
            pipeline
                .by_name(name)
                .ok_or_else(|| Error::Gst(format!("no {name}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pad = pipeline
        .by_name("dec")
        .and_then(|d| d.static_pad("src"))
        .ok_or_else(|| Error::Gst("no decoder src pad".into()))?;
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view()) else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(decoded) = gst_video::VideoInfo::from_caps(caps.caps()) else {
            return gst::PadProbeReturn::Ok;
        };
        let colorimetry = decoded.colorimetry().to_string();
        for filter in &filters {
            let mut caps = filter.property::<gst::Caps>("caps");
            if let Some(s) = caps.make_mut().structure_mut(0) {
                s.set("colorimetry", &colorimetry);
            }
            filter.set_property("caps", &caps);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// mp4mux cannot take new caps once its track has started (it rewrites the header and breaks the
/// file), yet a publisher that comes back may send another size. The recording keeps the first
/// caps, and the new parameter sets travel in the samples (the parser repeats SPS/PPS at every
/// keyframe), which VLC, ffmpeg and browsers follow; the header keeps the first size.
fn keep_recording_caps(pipeline: &gst::Pipeline) -> Result<(), Error> {
    let pad = pipeline
        .by_name("parse-rec-video")
        .and_then(|p| p.static_pad("src"))
        .ok_or_else(|| Error::Gst("no parse-rec-video src pad".into()))?;
    // Whether media has reached the muxer (a one-shot probe: nothing per frame after that), and the
    // caps it started with.
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = started.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        s.store(true, Ordering::Release);
        gst::PadProbeReturn::Remove
    });
    let first: Mutex<Option<gst::Caps>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view()) else {
            return gst::PadProbeReturn::Ok;
        };
        let mut first = first.lock().unwrap_or_else(|p| p.into_inner());
        if !started.load(Ordering::Acquire) {
            *first = Some(caps.caps_owned());
        } else if let Some(kept) = first.as_ref().filter(|k| *k != caps.caps()) {
            tracing::info!("the recording keeps its first H.264 caps; new parameters go in-band");
            // Replaced rather than dropped: a dropped sticky event is offered again with every
            // buffer.
            info.data = Some(gst::PadProbeData::Event(gst::event::Caps::new(kept)));
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Forces a keyframe in every encoder at each multiple of the segment duration after the first
/// decoded frame, by sending a force-key-unit event just before the frame that crosses it. After a
/// publisher comes back, its first frame is forced too and the grid restarts there.
fn force_keyframes_on_grid(
    pipeline: &gst::Pipeline,
    segment: Duration,
    resumes: Resumes,
) -> Result<(), Error> {
    let pad = pipeline
        .by_name("dec")
        .and_then(|d| d.static_pad("src"))
        .ok_or_else(|| Error::Gst("no decoder src pad".into()))?;
    let step = gst::ClockTime::from_nseconds(segment.as_nanos() as u64);
    let next: Mutex<Option<gst::ClockTime>> = Mutex::new(None);
    let seen = AtomicU32::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some((pts, rt)) = info
            .buffer()
            .and_then(|b| b.pts())
            .and_then(|pts| Some((pts, running_time(pad, pts)?)))
        else {
            return gst::PadProbeReturn::Ok;
        };
        let mut next = next.lock().unwrap_or_else(|p| p.into_inner());
        let resumed = resumes.load(Ordering::Acquire);
        if seen.swap(resumed, Ordering::Relaxed) != resumed {
            *next = Some(rt);
        }
        match *next {
            None => *next = Some(rt + step),
            Some(boundary) if rt >= boundary => {
                let mut n = boundary;
                while n <= rt {
                    n += step;
                }
                *next = Some(n);
                drop(next);
                let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                    .timestamp(pts)
                    .running_time(rt)
                    .all_headers(true)
                    .build();
                pad.push_event(event);
            }
            Some(_) => {}
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Ends a segment before the first keyframe at least a segment target after its start, by sending
/// the force-key-unit event the segment writer cuts on. The source can only be cut at the
/// publisher's keyframes; the rungs' keyframes are forced on the segment grid, so all renditions
/// are cut at the same instants.
fn cut_segments(
    pipeline: &gst::Pipeline,
    parser: &str,
    rendition: &str,
    segment: Duration,
    resumes: Resumes,
) -> Result<(), Error> {
    let pad = pipeline
        .by_name(parser)
        .and_then(|p| p.static_pad("src"))
        .ok_or_else(|| Error::Gst(format!("no {parser} src pad")))?;
    // Publisher timestamps jitter by a millisecond or so; do not miss a keyframe by that.
    let target = gst::ClockTime::from_nseconds(
        (segment.as_nanos() * cmaf_parts::SEGMENT_SHARE / 100) as u64,
    );
    let start: Mutex<Option<gst::ClockTime>> = Mutex::new(None);
    let count = AtomicU32::new(0);
    let seen = AtomicU32::new(0);
    let rendition = rendition.to_string();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        // Encoders shift their timestamps (x264enc by 1000 h) and say so in the segment: compare
        // running times, which are what the muxer and the segment writer go by.
        let Some((pts, rt)) = buffer
            .pts()
            .and_then(|pts| Some((pts, running_time(pad, pts)?)))
        else {
            return gst::PadProbeReturn::Ok;
        };
        // A keyframe from a publisher that came back (or forced for it): cut there, whatever
        // the segment's length so far.
        let resumed = resumes.load(Ordering::Acquire);
        let comeback = keyframe && seen.load(Ordering::Relaxed) != resumed;
        let mut start = start.lock().unwrap_or_else(|p| p.into_inner());
        match *start {
            None => {
                *start = Some(rt);
                seen.store(resumed, Ordering::Relaxed);
                post(pad, SEGMENT_OPENED, &rendition, rt);
            }
            Some(s) if keyframe && (rt >= s + target || comeback) => {
                *start = Some(rt);
                drop(start);
                if comeback {
                    seen.store(resumed, Ordering::Relaxed);
                    post(pad, DISCONTINUITY, &rendition, rt);
                }
                let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                    .timestamp(pts)
                    .running_time(rt)
                    .all_headers(true)
                    .count(count.fetch_add(1, Ordering::Relaxed) + 1)
                    .build();
                pad.push_event(event);
            }
            Some(_) => {}
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Notes where a comeback's first keyframe reaches a rendition's low-latency branch, where its
/// parts start a segment (the force-key-unit events of `cut_segments` do not reach it); an AV1
/// rendition's CMAF muxer is told to start a fragment there.
fn split_on_comeback(
    pipeline: &gst::Pipeline,
    parser: &str,
    rendition: &str,
    resumes: Resumes,
    comeback: Comeback,
) -> Result<(), Error> {
    let pad = pipeline
        .by_name(parser)
        .and_then(|p| p.static_pad("src"))
        .ok_or_else(|| Error::Gst(format!("no {parser} src pad")))?;
    // An AV1 rendition's muxer (the other renditions' writer reads `comeback` itself).
    let muxer = pipeline.by_name(&format!("cmaf-{rendition}"));
    let seen = AtomicU32::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let resumed = resumes.load(Ordering::Acquire);
        if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
            || seen.load(Ordering::Relaxed) == resumed
        {
            return gst::PadProbeReturn::Ok;
        }
        seen.store(resumed, Ordering::Relaxed);
        if let Some(rt) = buffer.pts().and_then(|pts| running_time(pad, pts)) {
            *comeback.lock().unwrap_or_else(|p| p.into_inner()) = Some(rt);
            if let Some(muxer) = &muxer {
                muxer.emit_by_name::<()>("split-at-running-time", &[&rt.nseconds()]);
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Tells the bus task about a rendition's segment boundary (an element message from `pad`'s element).
fn post(pad: &gst::Pad, name: &str, rendition: &str, running_time: gst::ClockTime) {
    let structure = gst::Structure::builder(name)
        .field("rendition", rendition)
        .field("running-time", running_time.nseconds())
        .build();
    if let Some(element) = pad.parent_element() {
        let _ = element.post_message(
            gst::message::Element::builder(structure)
                .src(&element)
                .build(),
        );
    }
}

/// The running time of `pts` in the segment that `pad` carries.
fn running_time(pad: &gst::Pad, pts: gst::ClockTime) -> Option<gst::ClockTime> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    event
        .segment()
        .downcast_ref::<gst::ClockTime>()?
        .to_running_time(pts)
}

/// An encoder announces each keyframe it was asked for with its own force-key-unit event; the
/// segments are cut by `cut_segments` alone, so those are dropped.
fn drop_encoder_cuts(pipeline: &gst::Pipeline, encoder: &str) -> Result<(), Error> {
    let pad = pipeline
        .by_name(encoder)
        .and_then(|e| e.static_pad("src"))
        .ok_or_else(|| Error::Gst(format!("no {encoder} src pad")))?;
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
        if !info
            .event()
            .is_some_and(|e| gst_video::ForceKeyUnitEvent::is(e))
        {
            return gst::PadProbeReturn::Ok;
        }
        // Take the event (it is dropped here) and tell the pad it was handled.
        info.data.take();
        gst::PadProbeReturn::Handled
    });
    Ok(())
}

/// Writes each poster JPEG (atomically, so readers never see half a file): every one for the
/// owner, and those of media that was public (`visibility`) as the public's poster too.
///
/// `keyframes`: the sink gives keyframes (see `PipelineSpec::poster_from_keyframes`), one every
/// `THUMBNAIL_EVERY_S` of which the shared poster decoder turns into a JPEG of this size.
/// Otherwise it gives JPEGs.
fn write_thumbnails(
    pipeline: &gst::Pipeline,
    paths: &StreamPaths,
    visibility: Visibility,
    keyframes: Option<(u32, u32)>,
) -> Result<(), Error> {
    let sink = pipeline
        .by_name("thumb-sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| Error::Gst("no thumb-sink".into()))?;
    if keyframes.is_none() {
        // Decoded frames: only a due one enters the branch (scaled and encoded). Chosen by the
        // frame's time, not by `videorate`, which cannot negotiate 1/5 fps from a source whose
        // rate is unknown (an SPS without timing, as some phone encoders send; av1dec's output).
        let queue = pipeline
            .by_name("queue-thumb")
            .and_then(|q| q.static_pad("sink"))
            .ok_or_else(|| Error::Gst("no queue-thumb".into()))?;
        let last: Mutex<Option<gst::ClockTime>> = Mutex::new(None);
        queue.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let pts = info.buffer().and_then(|b| b.pts());
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if poster_due(*last, pts) {
                *last = pts;
                gst::PadProbeReturn::Ok
            } else {
                output::drop_buffer(info)
            }
        });
    }
    let (owner, public) = (paths.thumbnail(), paths.public_thumbnail());
    let mut last: Option<gst::ClockTime> = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                // The frame's media time (running time: the pipeline's segment starts at 0).
                let pts = buffer.pts();
                let at = pts.map(|t| Duration::from_nanos(t.nseconds()));
                let is_public = at.is_some_and(|at| visibility.public_throughout(at, at));
                let (owner, public) = (owner.clone(), public.clone());
                let write = move |jpeg: &[u8]| {
                    write_poster(&owner, jpeg);
                    if is_public {
                        write_poster(&public, jpeg);
                    }
                };
                let Some(size) = keyframes else {
                    if let Ok(map) = buffer.map_readable() {
                        write(map.as_slice());
                    }
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Some(caps) = sample.caps_owned().filter(|_| poster_due(last, pts)) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let job = super::poster::Job {
                    caps,
                    keyframe: buffer,
                    size,
                    done: Box::new(write),
                };
                if super::poster::decode(job) {
                    last = pts;
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// Whether a frame at `pts` makes the next poster: the first one, one `THUMBNAIL_EVERY_S` of
/// media time after the last, or any after the time went back (a publisher that came back).
fn poster_due(last: Option<gst::ClockTime>, pts: Option<gst::ClockTime>) -> bool {
    match (last, pts) {
        (Some(last), Some(pts)) => {
            pts >= last + gst::ClockTime::from_seconds(THUMBNAIL_EVERY_S.into()) || pts < last
        }
        _ => true,
    }
}

fn write_poster(path: &PathBuf, jpeg: &[u8]) {
    let tmp = path.with_extension("jpg.tmp");
    if let Err(e) = std::fs::write(&tmp, jpeg).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::warn!(error = %e, path = %path.display(), "could not write the poster");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ladder::LadderSpec;

    fn spec_1080p30(preset: &str, video: bool, audio: bool) -> PipelineSpec {
        let ladder = LadderSpec::builtin(preset).expect("shipped preset");
        PipelineSpec::example(&ladder, video, audio, Path::new("/data"))
    }

    #[test]
    fn shipped_presets_generate_the_pinned_descriptions() {
        for preset in LadderSpec::builtin_names() {
            let golden = std::fs::read_to_string(format!("{}/tests/golden/{preset}-1080p30.txt", env!("CARGO_MANIFEST_DIR")))
                .unwrap_or_else(|e| panic!("tests/golden/{preset}-1080p30.txt: {e} (cargo run --example pipeline_description -- {preset} > it)"));
            assert_eq!(
                describe(&spec_1080p30(preset, true, true)),
                golden.trim_end(),
                "preset {preset}"
            );
        }
    }

    #[test]
    fn single_track_descriptions_leave_out_the_other_track() {
        let audio_only = describe(&spec_1080p30("default", false, true));
        assert!(
            !audio_only.contains("video") && !audio_only.contains("x264enc"),
            "{audio_only}"
        );
        let video_only = describe(&spec_1080p30("default", true, false));
        assert!(!video_only.contains("audio"), "{video_only}");
    }

    #[test]
    fn each_rung_scales_from_the_nearest_larger_rung_that_keeps_every_frame() {
        let rung = |name: &str, width, height, thins| PlannedRung {
            name: name.into(),
            width,
            height,
            fps: (30, 1),
            thins,
            video_bitrate_kbps: 1000,
            x264: crate::config::ladder::DEFAULT_SOURCE_RUNG_X264,
            priority: 0,
        };
        let default = spec_1080p30("default", true, true);
        assert_eq!(scaling_feeds(&default.rungs), [None, Some(0), Some(1)]);
        assert_eq!(
            size_filters(&default.rungs),
            ["sized-720p", "sized-480p", "caps-360p"]
        );
        // A rung that drops frames feeds nobody: the one below it scales from the rung above.
        let thinned = [
            rung("720p", 1280, 720, false),
            rung("480p", 854, 480, true),
            rung("360p", 640, 360, false),
            rung("144p", 256, 144, true),
        ];
        assert_eq!(scaling_feeds(&thinned), [None, Some(0), Some(0), Some(2)]);
        // Only from a larger picture.
        let same = [rung("a", 640, 360, false), rung("b", 640, 360, false)];
        assert_eq!(scaling_feeds(&same), [None, None]);
        assert_eq!(scaling_feeds(&[]), Vec::<Option<usize>>::new());
    }

    #[test]
    fn an_av1_description_parses_into_a_pipeline() {
        gst::init().unwrap();
        super::super::register_plugins().unwrap();
        let tracks = super::super::spec::Tracks {
            // libaom 320x180 Main 8 bit (ingest/av1.rs has its sequence header).
            video: Some(
                hex::decode("81000c000a0c000000043cfecf81b5f20080")
                    .unwrap()
                    .into(),
            ),
            video_codec: VideoCodec::Av1,
            audio: Some(bytes::Bytes::from_static(&[0x11, 0x90])),
        };
        let mut spec = PipelineSpec::new(
            &LadderSpec::builtin("passthrough").unwrap(),
            tracks,
            StreamPaths::new(Path::new("/data"), "abc"),
            Duration::from_secs(2),
            0,
        );
        spec.part = crate::config::HlsConfig::default().low_latency_part();
        let desc = describe(&spec);
        gst::parse::launch(&desc).unwrap_or_else(|e| panic!("{desc}: {e}"));
    }

    /// A source whose frame rate is unknown (an SPS without timing, as some phone encoders send)
    /// still gets posters from the decoded frames.
    #[test]
    fn decoded_posters_come_from_a_source_of_unknown_frame_rate() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = StreamPaths::new(dir.path(), "abc");
        std::fs::create_dir_all(paths.thumbnail().parent().unwrap()).unwrap();
        let description = describe(&spec_1080p30("default", true, false));
        let poster = description
            .lines()
            .find(|l| l.starts_with("tee-raw. ! queue name=queue-thumb"))
            .expect("a poster branch off the decoded frames");
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true num-buffers=60 ! video/x-raw,width=320,height=180,framerate=10/1 ! \
             capssetter caps=\"video/x-raw,framerate=0/1\" ! tee name=tee-raw\n{poster}"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        write_thumbnails(&pipeline, &paths, Visibility::new(true), None).unwrap();
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let end = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(60),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("the source ends");
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(end.type_(), gst::MessageType::Eos, "{end:?}");
        let jpeg = std::fs::read(paths.thumbnail()).expect("a poster");
        assert!(jpeg.starts_with(&[0xff, 0xd8]), "a JPEG");
        assert!(
            std::fs::read(paths.public_thumbnail()).is_ok(),
            "public media"
        );
    }

    #[test]
    fn every_description_parses_into_a_pipeline() {
        gst::init().unwrap();
        super::super::register_plugins().unwrap();
        for preset in LadderSpec::builtin_names() {
            for (v, a) in [(true, true), (true, false), (false, true)] {
                let desc = describe(&spec_1080p30(preset, v, a));
                gst::parse::launch(&desc).unwrap_or_else(|e| panic!("{desc}: {e}"));
            }
        }
    }
}
