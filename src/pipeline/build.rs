//! Builds a stream's pipeline from its spec: a gst-launch description (golden-tested, printable by
//! `examples/pipeline_description.rs`), then the caps that only the publisher's headers can give.
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::Error;
use super::spec::{PipelineSpec, SOURCE_RENDITION};
use crate::output::codecs;

/// Queues after a tee hold up to this much media, so one slow branch never stalls the other.
const BRANCH_QUEUE_NS: u64 = 5_000_000_000;
/// Fragment length of the crash-safe recording (ms): a `kill -9` loses at most this much.
const RECORDING_FRAGMENT_MS: u32 = 2000;

/// The gst-launch description of a live stream's pipeline.
///
/// Source rendition (no re-encode) into MPEG-TS segments cut on keyframes, and the recording
/// into fragmented MP4. Every branch after a tee has its own queue and parser (MEDIA-NOTES 2, 3).
pub fn describe(spec: &PipelineSpec) -> String {
    let seg_ns = spec.segment.as_nanos();
    let hls_dir = spec.paths.rendition_dir(SOURCE_RENDITION);
    let queue = |name: &str| {
        format!(
            "queue name={name} max-size-time={BRANCH_QUEUE_NS} max-size-buffers=0 max-size-bytes=0"
        )
    };
    let mut parts = Vec::new();
    if spec.tracks.has_video() {
        parts.push(
            "appsrc name=src-video format=time ! h264parse name=parse-video ! tee name=tee-video"
                .to_string(),
        );
    }
    if spec.tracks.has_audio() {
        parts.push(
            "appsrc name=src-audio format=time ! aacparse name=parse-audio ! tee name=tee-audio"
                .to_string(),
        );
    }
    parts.push(format!(
        "splitmuxsink name=hls-{SOURCE_RENDITION} muxer-factory=mpegtsmux location={loc} \
         start-index={start} max-size-time={seg_ns} send-keyframe-requests=false",
        loc = quote(&hls_dir.join("seg%05d.ts").to_string_lossy()),
        start = spec.first_segment,
    ));
    if spec.tracks.has_video() {
        parts.push(format!(
            "tee-video. ! {} ! h264parse name=parse-hls-video config-interval=-1 ! hls-{SOURCE_RENDITION}.video",
            queue("queue-hls-video")
        ));
    }
    if spec.tracks.has_audio() {
        parts.push(format!(
            "tee-audio. ! {} ! aacparse name=parse-hls-audio ! hls-{SOURCE_RENDITION}.audio_%u",
            queue("queue-hls-audio")
        ));
    }
    parts.push(format!(
        "mp4mux name=rec-mux fragment-duration={RECORDING_FRAGMENT_MS} streamable=true ! filesink name=rec-sink location={}",
        quote(&spec.paths.recording_fragmented().to_string_lossy())
    ));
    if spec.tracks.has_video() {
        parts.push(format!(
            "tee-video. ! {} ! h264parse name=parse-rec-video ! rec-mux.video_%u",
            queue("queue-rec-video")
        ));
    }
    if spec.tracks.has_audio() {
        parts.push(format!(
            "tee-audio. ! {} ! aacparse name=parse-rec-audio ! rec-mux.audio_%u",
            queue("queue-rec-audio")
        ));
    }
    parts.join("\n")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The built pipeline and its inputs.
pub struct Built {
    pub pipeline: gst::Pipeline,
    pub video: Option<gst_app::AppSrc>,
    pub audio: Option<gst_app::AppSrc>,
}

/// Caps for the video appsrc from the publisher's avcC.
pub fn video_caps(avcc: &[u8]) -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field("stream-format", "avc")
        .field("alignment", "au")
        .field("codec_data", gst::Buffer::from_slice(avcc.to_vec()))
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

pub fn build(spec: &PipelineSpec) -> Result<Built, Error> {
    std::fs::create_dir_all(spec.paths.rendition_dir(SOURCE_RENDITION))
        .map_err(|e| Error::Gst(format!("creating {}: {e}", spec.paths.dir.display())))?;
    let pipeline = gst::parse::launch(&describe(spec))?
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
        .map(|c| appsrc("src-video", video_caps(c)))
        .transpose()?;
    let audio = spec
        .tracks
        .audio
        .as_ref()
        .map(|c| appsrc("src-audio", audio_caps(c)))
        .transpose()?;
    Ok(Built {
        pipeline,
        video,
        audio,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::pipeline::spec::{StreamPaths, Tracks};

    fn spec(video: bool, audio: bool) -> PipelineSpec {
        PipelineSpec {
            tracks: Tracks {
                video: video.then(|| Bytes::from_static(&[1, 0x64, 0, 0x1f])),
                audio: audio.then(|| Bytes::from_static(&[0x11, 0x90])),
            },
            paths: StreamPaths::new(Path::new("/data"), "abc"),
            segment: Duration::from_secs(2),
            first_segment: 0,
        }
    }

    #[test]
    fn passthrough_description_is_pinned() {
        let golden = include_str!("../../tests/golden/passthrough-av.txt");
        assert_eq!(describe(&spec(true, true)), golden.trim_end());
    }

    #[test]
    fn single_track_descriptions_leave_out_the_other_track() {
        let audio_only = describe(&spec(false, true));
        assert!(!audio_only.contains("video"), "{audio_only}");
        let video_only = describe(&spec(true, false));
        assert!(!video_only.contains("audio"), "{video_only}");
    }

    #[test]
    fn every_description_parses_into_a_pipeline() {
        gst::init().unwrap();
        for (v, a) in [(true, true), (true, false), (false, true)] {
            let desc = describe(&spec(v, a));
            gst::parse::launch(&desc).unwrap_or_else(|e| panic!("{desc}: {e}"));
        }
    }
}
