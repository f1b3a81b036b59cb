//! The video codecs a publisher may send, and what their configuration records say, in one place
//! for every ingest: H.264 (`AVCDecoderConfigurationRecord`), H.265
//! (`HEVCDecoderConfigurationRecord`) and AV1 (`AV1CodecConfigurationRecord`).
use super::{av1, avc, hevc};
use crate::output::codecs;

/// A publisher's video codec. Its configuration record travels beside it
/// ([`MediaFrame::VideoConfig`](super::MediaFrame::VideoConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoCodec {
    #[default]
    H264,
    H265,
    /// AV1 (Enhanced RTMP `av01`): temporal units of low-overhead OBUs.
    Av1,
}

/// Size, rate, profile and level of a publisher's video, from its configuration record.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    /// Frames per second as a fraction, when the record says (H.264 VUI timing, AV1 timing info).
    pub fps: Option<(u32, u32)>,
    pub profile: &'static str,
    pub level: String,
}

impl VideoCodec {
    /// The name logs and messages use.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::H265 => "H.265",
            VideoCodec::Av1 => "AV1",
        }
    }

    /// What `record` (avcC, hvcC or av1C) says; `None` when it is malformed.
    pub fn format(self, record: &[u8]) -> Option<VideoFormat> {
        match self {
            VideoCodec::H264 => avc::parse_avcc(record).map(|s| VideoFormat {
                width: s.width,
                height: s.height,
                fps: s.fps,
                profile: s.profile_name(),
                level: s.level_name(),
            }),
            VideoCodec::H265 => hevc::parse_hvcc(record).map(|h| VideoFormat {
                width: h.width,
                height: h.height,
                fps: None,
                profile: h.profile_name(),
                level: h.level_name(),
            }),
            VideoCodec::Av1 => av1::parse_av1c(record).map(|a| VideoFormat {
                width: a.width,
                height: a.height,
                fps: a.fps,
                profile: a.profile_name(),
                level: a.level_name(),
            }),
        }
    }

    /// The RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.B0`, `av01.0.05M.08`).
    pub fn codec_string(self, record: &[u8]) -> Option<String> {
        match self {
            VideoCodec::H264 => codecs::avc1(record),
            VideoCodec::H265 => hevc::parse_hvcc(record).map(|h| h.codec_string()),
            VideoCodec::Av1 => av1::parse_av1c(record).map(|a| a.codec_string()),
        }
    }

    /// Whether every player can play it: the others get an H.264 rung beside them.
    pub fn is_universal(self) -> bool {
        self == VideoCodec::H264
    }

    /// Whether the MPEG-TS renditions carry it: not AV1 (HLS has AV1 in fMP4 only).
    pub fn fits_mpeg_ts(self) -> bool {
        self != VideoCodec::Av1
    }

    /// The GStreamer parser and decoder of this codec.
    pub fn parser(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264parse",
            VideoCodec::H265 => "h265parse",
            VideoCodec::Av1 => "av1parse",
        }
    }

    pub fn decoder(self) -> &'static str {
        match self {
            VideoCodec::H264 => "avdec_h264",
            VideoCodec::H265 => "avdec_h265",
            VideoCodec::Av1 => "av1dec",
        }
    }

    /// The codec whose parser is `factory` (a pipeline's `parse-video` says what it carries).
    pub fn of_parser(factory: &str) -> Option<VideoCodec> {
        [VideoCodec::H264, VideoCodec::H265, VideoCodec::Av1]
            .into_iter()
            .find(|c| c.parser() == factory)
    }
}
