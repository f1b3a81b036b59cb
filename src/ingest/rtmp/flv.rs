//! FLV audio/video tag bodies as RTMP carries them (one tag body per RTMP message).
//!
//! Only what legacy FLV defines for H.264 (codec id 7) and AAC (sound format 10) is understood;
//! everything else is reported as unsupported so the caller can log it and drop it. Enhanced RTMP
//! (FourCC codecs, `IsExHeader` bit) comes later. No input can make these functions panic.
use bytes::Bytes;

/// FLV `CodecID` for AVC (H.264).
const VIDEO_CODEC_AVC: u8 = 7;
/// FLV `SoundFormat` for AAC.
const SOUND_FORMAT_AAC: u8 = 10;
/// FLV `FrameType` for a keyframe.
const FRAME_TYPE_KEY: u8 = 1;
/// FLV `FrameType` for a "video info / command frame": a one-byte command, no picture.
const FRAME_TYPE_COMMAND: u8 = 5;
/// Enhanced RTMP sets this bit of the first byte (`IsExHeader`); legacy frame types never do.
const EX_HEADER_BIT: u8 = 0x80;

/// Frame type (4 bits), codec id (4 bits), AVCPacketType, 24-bit composition time.
const AVC_HEADER_LEN: usize = 5;
/// Sound format/rate/size/type (1 byte), AACPacketType.
const AAC_HEADER_LEN: usize = 2;

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// AVCPacketType 0: the `AVCDecoderConfigurationRecord`.
    AvcSequenceHeader(Bytes),
    /// AVCPacketType 1: one access unit of length-prefixed NAL units.
    AvcNalus {
        keyframe: bool,
        /// Composition time offset in ms (signed 24 bits on the wire).
        cts_ms: i32,
        data: Bytes,
    },
    /// AVCPacketType 2, or a command frame: nothing to pass on.
    Ignored,
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag {
    /// AACPacketType 0: the `AudioSpecificConfig`.
    AacSequenceHeader(Bytes),
    /// AACPacketType 1: one raw AAC frame.
    AacRaw(Bytes),
}

/// Why a tag body could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("empty tag")]
    Empty,
    #[error("truncated tag ({len} bytes)")]
    Truncated { len: usize },
    #[error("unsupported video codec id {0}")]
    UnsupportedVideoCodec(u8),
    #[error("unsupported sound format {0}")]
    UnsupportedSoundFormat(u8),
    #[error("enhanced rtmp video tag")]
    EnhancedVideo,
    #[error("unknown packet type {0}")]
    UnknownPacketType(u8),
}

impl TagError {
    /// A codec we do not handle (yet), as opposed to a broken tag.
    pub fn is_unsupported_codec(self) -> bool {
        matches!(
            self,
            TagError::UnsupportedVideoCodec(_)
                | TagError::UnsupportedSoundFormat(_)
                | TagError::EnhancedVideo
        )
    }
}

/// Parses the body of an FLV video tag (an RTMP video message).
pub fn parse_video(body: &Bytes) -> Result<VideoTag, TagError> {
    let Some(&first) = body.first() else {
        return Err(TagError::Empty);
    };
    if first & EX_HEADER_BIT != 0 {
        return Err(TagError::EnhancedVideo);
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0f;
    if codec_id != VIDEO_CODEC_AVC {
        return Err(TagError::UnsupportedVideoCodec(codec_id));
    }
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(VideoTag::Ignored);
    }
    let Some(&[_, packet_type, c0, c1, c2]) = body.get(..AVC_HEADER_LEN) else {
        return Err(TagError::Truncated { len: body.len() });
    };
    let payload = body.slice(AVC_HEADER_LEN..);
    match packet_type {
        0 if payload.is_empty() => Err(TagError::Truncated { len: body.len() }),
        0 => Ok(VideoTag::AvcSequenceHeader(payload)),
        1 if payload.is_empty() => Err(TagError::Truncated { len: body.len() }),
        1 => Ok(VideoTag::AvcNalus {
            keyframe: frame_type == FRAME_TYPE_KEY,
            cts_ms: si24(c0, c1, c2),
            data: payload,
        }),
        2 => Ok(VideoTag::Ignored),
        other => Err(TagError::UnknownPacketType(other)),
    }
}

/// Parses the body of an FLV audio tag (an RTMP audio message).
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, TagError> {
    let Some(&first) = body.first() else {
        return Err(TagError::Empty);
    };
    let sound_format = first >> 4;
    if sound_format != SOUND_FORMAT_AAC {
        return Err(TagError::UnsupportedSoundFormat(sound_format));
    }
    let Some(&[_, packet_type]) = body.get(..AAC_HEADER_LEN) else {
        return Err(TagError::Truncated { len: body.len() });
    };
    let payload = body.slice(AAC_HEADER_LEN..);
    if payload.is_empty() {
        return Err(TagError::Truncated { len: body.len() });
    }
    match packet_type {
        0 => Ok(AudioTag::AacSequenceHeader(payload)),
        1 => Ok(AudioTag::AacRaw(payload)),
        other => Err(TagError::UnknownPacketType(other)),
    }
}

/// A big-endian signed 24-bit integer.
fn si24(b0: u8, b1: u8, b2: u8) -> i32 {
    // Put the 24 bits at the top of an i32, then shift back with sign extension.
    i32::from_be_bytes([b0, b1, b2, 0]) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(first: u8, packet_type: u8, cts: [u8; 3], payload: &[u8]) -> Bytes {
        let mut v = vec![first, packet_type, cts[0], cts[1], cts[2]];
        v.extend_from_slice(payload);
        Bytes::from(v)
    }

    #[test]
    fn avc_sequence_header_yields_the_avcc_record() {
        let avcc = [0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1];
        let tag = video(0x17, 0, [0, 0, 0], &avcc);
        assert_eq!(
            parse_video(&tag),
            Ok(VideoTag::AvcSequenceHeader(Bytes::copy_from_slice(&avcc)))
        );
    }

    #[test]
    fn avc_keyframe_with_positive_cts() {
        let nalus = [0, 0, 0, 2, 0x65, 0x88];
        let tag = video(0x17, 1, [0x00, 0x00, 0x43], &nalus);
        assert_eq!(
            parse_video(&tag),
            Ok(VideoTag::AvcNalus {
                keyframe: true,
                cts_ms: 67,
                data: Bytes::copy_from_slice(&nalus),
            })
        );
    }

    #[test]
    fn avc_inter_frame_with_negative_cts() {
        let nalus = [0, 0, 0, 2, 0x41, 0x9a];
        // -33 as a 24-bit two's complement number.
        let tag = video(0x27, 1, [0xff, 0xff, 0xdf], &nalus);
        assert_eq!(
            parse_video(&tag),
            Ok(VideoTag::AvcNalus {
                keyframe: false,
                cts_ms: -33,
                data: Bytes::copy_from_slice(&nalus),
            })
        );
    }

    #[test]
    fn cts_covers_the_whole_signed_24_bit_range() {
        assert_eq!(si24(0x7f, 0xff, 0xff), 8_388_607);
        assert_eq!(si24(0x80, 0x00, 0x00), -8_388_608);
        assert_eq!(si24(0xff, 0xff, 0xff), -1);
        assert_eq!(si24(0x00, 0x00, 0x00), 0);
        assert_eq!(si24(0x01, 0x02, 0x03), 0x010203);
    }

    #[test]
    fn avc_end_of_sequence_and_command_frames_are_ignored() {
        assert_eq!(
            parse_video(&video(0x17, 2, [0, 0, 0], &[])),
            Ok(VideoTag::Ignored)
        );
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x57, 0x00])),
            Ok(VideoTag::Ignored)
        );
    }

    #[test]
    fn aac_sequence_header_and_raw_frame() {
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 0x00, 0x11, 0x90])),
            Ok(AudioTag::AacSequenceHeader(Bytes::from_static(&[
                0x11, 0x90
            ])))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 0x01, 0x21, 0x10, 0x04])),
            Ok(AudioTag::AacRaw(Bytes::from_static(&[0x21, 0x10, 0x04])))
        );
    }

    #[test]
    fn truncated_and_empty_tags_are_errors() {
        assert_eq!(parse_video(&Bytes::new()), Err(TagError::Empty));
        assert_eq!(parse_audio(&Bytes::new()), Err(TagError::Empty));
        for len in 1..AVC_HEADER_LEN {
            let tag = Bytes::copy_from_slice(&[0x17, 1, 0, 0, 0][..len]);
            assert_eq!(parse_video(&tag), Err(TagError::Truncated { len }));
        }
        // A header with nothing after it carries no picture and no config.
        assert_eq!(
            parse_video(&video(0x17, 1, [0, 0, 0], &[])),
            Err(TagError::Truncated { len: 5 })
        );
        assert_eq!(
            parse_video(&video(0x17, 0, [0, 0, 0], &[])),
            Err(TagError::Truncated { len: 5 })
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf])),
            Err(TagError::Truncated { len: 1 })
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 0x01])),
            Err(TagError::Truncated { len: 2 })
        );
    }

    #[test]
    fn unknown_codecs_are_reported_as_unsupported() {
        // VP6 video, MP3 audio, an Enhanced RTMP HEVC coded-frames tag.
        let vp6 = parse_video(&Bytes::from_static(&[0x14, 0x00, 0x00])).unwrap_err();
        assert_eq!(vp6, TagError::UnsupportedVideoCodec(4));
        assert!(vp6.is_unsupported_codec());
        let mp3 = parse_audio(&Bytes::from_static(&[0x2f, 0xff, 0xfb])).unwrap_err();
        assert_eq!(mp3, TagError::UnsupportedSoundFormat(2));
        assert!(mp3.is_unsupported_codec());
        let hevc = parse_video(&Bytes::from_static(b"\x91hvc1\x00\x00\x00")).unwrap_err();
        assert_eq!(hevc, TagError::EnhancedVideo);
        assert!(hevc.is_unsupported_codec());
        assert!(!TagError::Empty.is_unsupported_codec());
    }

    #[test]
    fn unknown_packet_types_are_errors() {
        assert_eq!(
            parse_video(&video(0x17, 9, [0, 0, 0], &[1])),
            Err(TagError::UnknownPacketType(9))
        );
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 0x07, 0x01])),
            Err(TagError::UnknownPacketType(7))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every 1..=6 byte prefix of a few patterns.
        let patterns: [&[u8]; 4] = [
            &[0xff; 8],
            &[0x00; 8],
            &[0x17, 0x01, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01],
            &[0xaf, 0x00, 0x12, 0x10, 0x56, 0xe5, 0x00, 0x01],
        ];
        for pattern in patterns {
            for first in 0..=u8::MAX {
                for len in 0..pattern.len() {
                    let mut v = pattern[..len].to_vec();
                    if let Some(b) = v.first_mut() {
                        *b = first;
                    }
                    let b = Bytes::from(v);
                    let _ = parse_video(&b);
                    let _ = parse_audio(&b);
                }
            }
        }
    }
}
