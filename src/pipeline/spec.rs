//! What a stream's pipeline is built from: tracks, codec configuration, output paths.
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

pub use crate::config::ladder::PlannedRung;
use crate::config::ladder::{LadderSpec, SourceFormat};
use crate::ingest::VideoCodec;

/// The tracks a publisher sends, with their codec configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tracks {
    /// The video's configuration record: avcC, hvcC or av1C, as `video_codec` says.
    pub video: Option<Bytes>,
    pub video_codec: VideoCodec,
    /// AAC AudioSpecificConfig.
    pub audio: Option<Bytes>,
}

impl Tracks {
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }
}

/// Directory (and URL path) of the low-latency renditions under a stream's HLS directory.
pub const LOW_LATENCY_DIR: &str = "ll";

/// Where a stream's files live: `data/streams/{id}/…`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamPaths {
    pub dir: PathBuf,
}

pub const SOURCE_RENDITION: &str = "source";

impl StreamPaths {
    pub fn new(data_dir: &Path, id: &str) -> Self {
        StreamPaths {
            dir: data_dir.join("streams").join(id),
        }
    }
    pub fn hls_dir(&self) -> PathBuf {
        self.dir.join("hls")
    }
    /// Where the low-latency (CMAF) renditions are, beside the MPEG-TS ones.
    pub fn low_latency_dir(&self) -> PathBuf {
        self.hls_dir().join(LOW_LATENCY_DIR)
    }

    pub fn rendition_dir(&self, rendition: &str) -> PathBuf {
        self.hls_dir().join(rendition)
    }
    /// The fragmented MP4 written while live (crash-safe).
    pub fn recording_fragmented(&self) -> PathBuf {
        self.dir.join("recording.fmp4")
    }
    /// The finalised, progressive MP4 users download.
    pub fn recording(&self) -> PathBuf {
        self.dir.join("recording.mp4")
    }
    /// Clips cut from the public replay, one per product chapter.
    pub fn clips_dir(&self) -> PathBuf {
        self.dir.join("clips")
    }
    /// The clip of the chapter started by focus change `seq`.
    pub fn clip(&self, seq: u32) -> PathBuf {
        self.clips_dir().join(format!("{seq}.mp4"))
    }
    /// The latest poster frame.
    pub fn thumbnail(&self) -> PathBuf {
        self.dir.join("thumbnail.jpg")
    }
    /// The latest poster frame of public media (what anyone but the owner is shown).
    pub fn public_thumbnail(&self) -> PathBuf {
        self.dir.join("thumbnail-public.jpg")
    }
    /// The public replay: the recording's public intervals back to back.
    pub fn public_replay(&self) -> PathBuf {
        self.dir.join("replay.mp4")
    }
}

/// Everything needed to build one stream's pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    pub tracks: Tracks,
    pub paths: StreamPaths,
    pub segment: Duration,
    /// Number of the first segment file (continues across publishes of the same stream).
    pub first_segment: u32,
    /// Whether the source rendition (no re-encode) is served.
    pub source: bool,
    /// Transcoded renditions, already fitted to the source (no upscaling, even sizes, capped fps).
    pub rungs: Vec<PlannedRung>,
    /// Size of the JPEG poster, when there is video.
    pub thumbnail: Option<(u32, u32)>,
    /// Low-latency HLS part duration: every rendition is also muxed into CMAF chunks this long.
    pub part: Option<Duration>,
}

impl PipelineSpec {
    /// Fits `ladder` to what the publisher sends (its SPS or sequence header says the size and
    /// rate). H.265 and AV1 video always get at least one H.264 rung (at the source's size when
    /// the ladder has none below it, passthrough included), so that every player can play the
    /// stream.
    pub fn new(
        ladder: &LadderSpec,
        tracks: Tracks,
        paths: StreamPaths,
        segment: Duration,
        first_segment: u32,
    ) -> Self {
        let format = tracks
            .video
            .as_deref()
            .and_then(|record| tracks.video_codec.format(record));
        let source_format = format.as_ref().map(|f| SourceFormat {
            width: f.width,
            height: f.height,
            fps: f.fps.map(|(n, d)| (n as i32, d as i32)),
        });
        let mut rungs = source_format
            .as_ref()
            .map(|f| ladder.plan(f))
            .unwrap_or_default();
        if let (false, true, Some(f)) = (
            tracks.video_codec.is_universal(),
            rungs.is_empty(),
            &source_format,
        ) {
            rungs.push(ladder.plan_at_source(f));
        }
        PipelineSpec {
            // Without rungs (audio only, or nothing below the source) the source is what there is.
            source: ladder.source || rungs.is_empty(),
            thumbnail: format.map(|f| thumbnail_size(f.width, f.height)),
            part: None,
            rungs,
            tracks,
            paths,
            segment,
            first_segment,
        }
    }

    /// The spec a typical OBS publisher (x264 High 1920x1080 at 30 fps, AAC-LC 48 kHz stereo) gets
    /// with `ladder` and the default low-latency part: what `examples/pipeline_description.rs`
    /// prints and the golden tests pin.
    pub fn example(ladder: &LadderSpec, video: bool, audio: bool, data_dir: &Path) -> Self {
        const AVCC_1080P30: &str =
            "01640028ffe1001b67640028acd940780227e5c044000003000400000300f03c60c65801000468ebe3cb";
        let tracks = Tracks {
            video: video.then(|| Bytes::from(hex::decode(AVCC_1080P30).expect("valid hex"))),
            audio: audio.then(|| Bytes::from_static(&[0x11, 0x90])),
            ..Tracks::default()
        };
        let mut spec = PipelineSpec::new(
            ladder,
            tracks,
            StreamPaths::new(data_dir, "abc"),
            Duration::from_secs(2),
            0,
        );
        spec.part = crate::config::HlsConfig::default().low_latency_part();
        spec
    }

    /// Whether the source rendition is also written as MPEG-TS: not for AV1, which HLS carries in
    /// fMP4 only (the source is then CMAF only).
    pub fn source_in_ts(&self) -> bool {
        self.source && (!self.tracks.has_video() || self.tracks.video_codec.fits_mpeg_ts())
    }

    /// The renditions of the MPEG-TS playlists: [`Self::renditions`] without a source that
    /// MPEG-TS cannot carry.
    pub fn ts_renditions(&self) -> Vec<String> {
        let mut renditions = self.renditions();
        if self.source && !self.source_in_ts() {
            renditions.retain(|r| r != SOURCE_RENDITION);
        }
        renditions
    }

    /// The renditions this pipeline writes (the low-latency CMAF playlists have them all), in
    /// master-playlist order of preference.
    pub fn renditions(&self) -> Vec<String> {
        let source = self.source.then(|| SOURCE_RENDITION.to_string());
        source
            .into_iter()
            .chain(self.rungs.iter().map(|r| r.name.clone()))
            .collect()
    }

    /// Whether the pipeline decodes the video: for its rungs. (Without rungs, posters are decoded
    /// apart, see `pipeline::poster`.)
    pub fn decodes(&self) -> bool {
        self.tracks.has_video() && !self.rungs.is_empty()
    }
}

impl PipelineSpec {
    /// Whether the poster is a keyframe decoded apart (`pipeline::poster`) rather than a frame of
    /// the pipeline's decoder: without a decoder, and for AV1, whose decoded frames carry no frame
    /// rate (libaom writes no timing info), which the poster branch's one-frame-in-five-seconds
    /// rate filter cannot work from.
    pub fn poster_from_keyframes(&self) -> bool {
        !self.decodes() || self.tracks.video_codec == VideoCodec::Av1
    }
}

/// The poster's short side.
pub const THUMBNAIL_SHORT_SIDE: u32 = 360;

/// Poster size for a source: short side at most 360, even, orientation kept.
pub fn thumbnail_size(width: u32, height: u32) -> (u32, u32) {
    let short = width.min(height).max(2);
    let scale = (THUMBNAIL_SHORT_SIDE.min(short)) as f64 / short as f64;
    let even = |v: u32| ((((v as f64) * scale / 2.0).round() as u32) * 2).max(2);
    (even(width), even(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x265 Main 320x240 (ingest/hevc.rs has the same record).
    const HVCC_240P: &str = "0101600000009000000000003ff000fcfdf8f800000f03200001001840010c01ffff01600000030090000003000003003fba0240210001002f42010101600000030090000003000003003fa00a080f165ba4a4c2fff000100016a0c0c0c080000003008000000c8422000100064401c0718312";
    const AVCC_1080P30: &str =
        "01640028ffe1001b67640028acd940780227e5c044000003000400000300f03c60c65801000468ebe3cb";

    fn spec(preset: &str, codec: VideoCodec, record: &str) -> PipelineSpec {
        let tracks = Tracks {
            video: Some(Bytes::from(hex::decode(record).unwrap())),
            video_codec: codec,
            audio: None,
        };
        let ladder = LadderSpec::builtin(preset).unwrap();
        PipelineSpec::new(
            &ladder,
            tracks,
            StreamPaths::new(Path::new("/data"), "abc"),
            Duration::from_secs(2),
            0,
        )
    }

    #[test]
    fn an_hevc_source_always_gets_an_h264_rung_at_its_size_when_the_ladder_has_none() {
        for preset in ["passthrough", "default"] {
            let s = spec(preset, VideoCodec::H265, HVCC_240P);
            assert_eq!(s.renditions(), ["source", "240p"], "{preset}");
            let rung = &s.rungs[0];
            assert_eq!((rung.width, rung.height, rung.priority), (320, 240, 0));
            assert!(rung.video_bitrate_kbps >= 300, "{rung:?}");
        }
        // H.264 keeps the ladder as it is: passthrough is the source alone.
        let h264 = spec("passthrough", VideoCodec::H264, AVCC_1080P30);
        assert_eq!(h264.renditions(), ["source"]);
    }

    /// libaom (GStreamer av1enc) 320x180 Main 8 bit: av1C with its sequence header OBU.
    const AV1C_180P: &str = "81000c000a0c000000043cfecf81b5f20080";

    #[test]
    fn an_av1_source_gets_an_h264_rung_and_stays_out_of_mpeg_ts() {
        for preset in ["passthrough", "default"] {
            let mut s = spec(preset, VideoCodec::Av1, AV1C_180P);
            assert_eq!(s.renditions(), ["source", "180p"], "{preset}");
            assert_eq!(s.ts_renditions(), ["180p"], "{preset}");
            assert!(!s.source_in_ts());
            s.part = Some(Duration::from_millis(200));
            let description = crate::pipeline::build::describe(&s);
            assert!(
                description.contains("av1parse name=parse-video")
                    && description.contains("av1dec name=dec")
                    && description.contains("x264enc name=enc-180p")
                    && description.contains("av1parse name=parse-rec-video ! rec-mux"),
                "{description}"
            );
            // The CMAF source gets the level and tier for its av1C; no MPEG-TS source, no
            // RTSP video (no AV1 payloader in GStreamer 1.22).
            assert!(
                description.contains(
                    "av1parse name=parse-ll-video ! capsfilter name=level-ll-video \
                     caps=\"video/x-av1,level=(string)2.0,tier=(string)main\" ! cmaf-source"
                ),
                "{description}"
            );
            assert!(!description.contains("mux-source") && !description.contains("rtsp-video"));
            // The poster is a keyframe decoded apart: av1dec's frames have no frame rate.
            assert!(description.contains("identity name=keyframes-thumb"));
            assert!(!description.contains("queue-thumb"));
        }
        let h265 = spec("passthrough", VideoCodec::H265, HVCC_240P);
        assert_eq!(h265.ts_renditions(), h265.renditions());
    }

    #[test]
    fn an_hevc_source_decodes_with_the_h265_elements() {
        let s = spec("passthrough", VideoCodec::H265, HVCC_240P);
        let description = crate::pipeline::build::describe(&s);
        assert!(
            description.contains("h265parse name=parse-video"),
            "{description}"
        );
        assert!(description.contains("h265parse name=parse-rec-video"));
        assert!(description.contains("avdec_h265 name=dec"));
        assert!(description.contains("x264enc name=enc-240p"));
        assert!(!description.contains("h264parse name=parse-video"));
    }
}
