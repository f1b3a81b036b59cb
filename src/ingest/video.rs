//! The video codecs a publisher may send, and what their configuration records say, in one place
//! for every ingest: H.264 (`AVCDecoderConfigurationRecord`) and H.265
//! (`HEVCDecoderConfigurationRecord`).
use super::{avc, hevc};
use crate::output::codecs;

/// A publisher's video codec. Its configuration record travels beside it
/// ([`MediaFrame::VideoConfig`](super::MediaFrame::VideoConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoCodec {
    #[default]
    H264,
    H265,
}

/// Size, rate, profile and level of a publisher's video, from its configuration record.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    /// Frames per second as a fraction, when the record says (H.264 VUI timing only).
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
        }
    }

    /// What `record` (avcC or hvcC) says; `None` when it is malformed.
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
        }
    }

    /// The RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.B0`).
    pub fn codec_string(self, record: &[u8]) -> Option<String> {
        match self {
            VideoCodec::H264 => codecs::avc1(record),
            VideoCodec::H265 => hevc::parse_hvcc(record).map(|h| h.codec_string()),
        }
    }
}
