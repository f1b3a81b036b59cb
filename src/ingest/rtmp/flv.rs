//! FLV audio/video tag bodies as RTMP carries them (one tag body per RTMP message).
//!
//! Video: legacy FLV H.264 (codec id 7) and Enhanced RTMP (veovera, v1): the `IsExHeader` bit, a
//! FourCC and a PacketType (SequenceStart, CodedFrames, CodedFramesX, SequenceEnd) for `hvc1`
//! (H.265), `av01` (AV1) and `avc1` (H.264). Audio: AAC (sound format 10). Everything else is
//! reported as unsupported so the caller can log it and drop it; an H.265 or AV1 SequenceStart
//! whose record does not parse is malformed (a decoder could not start from it). No input can
//! make these functions panic.
use bytes::Bytes;

use crate::ingest::{VideoCodec, av1, hevc};

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
/// Enhanced RTMP `PacketType`s (the low 4 bits of the first byte).
const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_SEQUENCE_END: u8 = 2;
const PACKET_CODED_FRAMES_X: u8 = 3;
const PACKET_METADATA: u8 = 4;

/// Frame type (4 bits), codec id (4 bits), AVCPacketType, 24-bit composition time.
const AVC_HEADER_LEN: usize = 5;
/// IsExHeader + frame type (4 bits), packet type (4 bits), FourCC.
const EX_HEADER_LEN: usize = 5;
/// Sound format/rate/size/type (1 byte), AACPacketType.
const AAC_HEADER_LEN: usize = 2;

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag {
    /// The decoder configuration record (AVCPacketType 0, or Enhanced RTMP SequenceStart): avcC
    /// for H.264, hvcC for H.265, av1C for AV1.
    SequenceHeader { codec: VideoCodec, record: Bytes },
    /// One access unit of length-prefixed NAL units (AVCPacketType 1, CodedFrames, CodedFramesX),
    /// or one AV1 temporal unit (OBUs).
    Frame {
        keyframe: bool,
        /// Composition time offset in ms (signed 24 bits on the wire; 0 for CodedFramesX and
        /// AV1, which has none).
        cts_ms: i32,
        data: Bytes,
    },
    /// End of sequence, metadata or a command frame: nothing to pass on.
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
    #[error("unsupported enhanced rtmp video codec {fourcc:?} (hvc1, av01 and avc1 only)", fourcc = String::from_utf8_lossy(.0))]
    UnsupportedFourCc([u8; 4]),
    #[error("unknown packet type {0}")]
    UnknownPacketType(u8),
    #[error("malformed {} sequence header ({})", .0.name(), needs(.0))]
    MalformedSequenceHeader(VideoCodec),
}

impl TagError {
    /// A codec we do not handle (yet), as opposed to a broken tag.
    pub fn is_unsupported_codec(self) -> bool {
        matches!(
            self,
            TagError::UnsupportedVideoCodec(_)
                | TagError::UnsupportedSoundFormat(_)
                | TagError::UnsupportedFourCc(_)
        )
    }

    /// A tag after which the publisher's video cannot be decoded: the publisher is dropped.
    pub fn is_fatal(self) -> bool {
        matches!(self, TagError::MalformedSequenceHeader(_))
    }
}

/// What a sequence header of `codec` must hold for a decoder to start from it.
fn needs(codec: &VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H265 => "no VPS, SPS and PPS with a picture size",
        VideoCodec::Av1 => "not an av1C with a sequence header OBU that agrees with it",
        VideoCodec::H264 => "empty",
    }
}

/// Parses the body of an FLV video tag (an RTMP video message).
pub fn parse_video(body: &Bytes) -> Result<VideoTag, TagError> {
    let Some(&first) = body.first() else {
        return Err(TagError::Empty);
    };
    if first & EX_HEADER_BIT != 0 {
        return parse_enhanced_video(body);
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
        0 => Ok(VideoTag::SequenceHeader {
            codec: VideoCodec::H264,
            record: payload,
        }),
        1 if payload.is_empty() => Err(TagError::Truncated { len: body.len() }),
        1 => Ok(VideoTag::Frame {
            keyframe: frame_type == FRAME_TYPE_KEY,
            cts_ms: si24(c0, c1, c2),
            data: payload,
        }),
        2 => Ok(VideoTag::Ignored),
        other => Err(TagError::UnknownPacketType(other)),
    }
}

/// An Enhanced RTMP video tag: `[1 bit IsExHeader][3 bits FrameType][4 bits PacketType][FourCC]`
/// then the packet.
fn parse_enhanced_video(body: &Bytes) -> Result<VideoTag, TagError> {
    let Some(&[first, f0, f1, f2, f3]) = body.get(..EX_HEADER_LEN) else {
        return Err(TagError::Truncated { len: body.len() });
    };
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0f;
    let codec = match &[f0, f1, f2, f3] {
        b"hvc1" => VideoCodec::H265,
        b"av01" => VideoCodec::Av1,
        b"avc1" => VideoCodec::H264,
        other => return Err(TagError::UnsupportedFourCc(*other)),
    };
    // A command frame carries no picture, whatever its packet type.
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(VideoTag::Ignored);
    }
    let payload = body.slice(EX_HEADER_LEN..);
    match packet_type {
        PACKET_SEQUENCE_START => {
            let valid = match codec {
                VideoCodec::H265 => hevc::parse_hvcc(&payload).is_some(),
                VideoCodec::Av1 => av1::parse_av1c(&payload).is_some(),
                VideoCodec::H264 => !payload.is_empty(),
            };
            if !valid {
                return Err(TagError::MalformedSequenceHeader(codec));
            }
            Ok(VideoTag::SequenceHeader {
                codec,
                record: payload,
            })
        }
        // AV1 CodedFrames carry no composition time: the OBUs follow the FourCC.
        PACKET_CODED_FRAMES | PACKET_CODED_FRAMES_X if codec == VideoCodec::Av1 => {
            if payload.is_empty() {
                return Err(TagError::Truncated { len: body.len() });
            }
            Ok(VideoTag::Frame {
                keyframe: frame_type == FRAME_TYPE_KEY,
                cts_ms: 0,
                data: payload,
            })
        }
        PACKET_CODED_FRAMES => {
            let Some(&[c0, c1, c2]) = payload.get(..3) else {
                return Err(TagError::Truncated { len: body.len() });
            };
            let data = payload.slice(3..);
            if data.is_empty() {
                return Err(TagError::Truncated { len: body.len() });
            }
            Ok(VideoTag::Frame {
                keyframe: frame_type == FRAME_TYPE_KEY,
                cts_ms: si24(c0, c1, c2),
                data,
            })
        }
        PACKET_CODED_FRAMES_X if payload.is_empty() => Err(TagError::Truncated { len: body.len() }),
        PACKET_CODED_FRAMES_X => Ok(VideoTag::Frame {
            keyframe: frame_type == FRAME_TYPE_KEY,
            cts_ms: 0,
            data: payload,
        }),
        PACKET_SEQUENCE_END | PACKET_METADATA => Ok(VideoTag::Ignored),
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
            Ok(VideoTag::SequenceHeader {
                codec: VideoCodec::H264,
                record: Bytes::copy_from_slice(&avcc)
            })
        );
    }

    #[test]
    fn avc_keyframe_with_positive_cts() {
        let nalus = [0, 0, 0, 2, 0x65, 0x88];
        let tag = video(0x17, 1, [0x00, 0x00, 0x43], &nalus);
        assert_eq!(
            parse_video(&tag),
            Ok(VideoTag::Frame {
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
            Ok(VideoTag::Frame {
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
        // VP6 video, MP3 audio, an Enhanced RTMP VP9 coded-frames tag.
        let vp6 = parse_video(&Bytes::from_static(&[0x14, 0x00, 0x00])).unwrap_err();
        assert_eq!(vp6, TagError::UnsupportedVideoCodec(4));
        assert!(vp6.is_unsupported_codec());
        let mp3 = parse_audio(&Bytes::from_static(&[0x2f, 0xff, 0xfb])).unwrap_err();
        assert_eq!(mp3, TagError::UnsupportedSoundFormat(2));
        assert!(mp3.is_unsupported_codec());
        let vp9 = parse_video(&Bytes::from_static(b"\x91vp09\x00\x00\x00\x01")).unwrap_err();
        assert_eq!(vp9, TagError::UnsupportedFourCc(*b"vp09"));
        assert!(vp9.is_unsupported_codec() && !vp9.is_fatal());
        assert_eq!(
            vp9.to_string(),
            "unsupported enhanced rtmp video codec \"vp09\" (hvc1, av01 and avc1 only)"
        );
        assert!(!TagError::Empty.is_unsupported_codec());
    }

    /// An Enhanced RTMP video tag: IsExHeader, `frame_type`, `packet_type`, FourCC, payload.
    fn ex_video(frame_type: u8, packet_type: u8, fourcc: &[u8; 4], payload: &[u8]) -> Bytes {
        let mut v = vec![0x80 | frame_type << 4 | packet_type];
        v.extend_from_slice(fourcc);
        v.extend_from_slice(payload);
        Bytes::from(v)
    }

    #[test]
    fn enhanced_hevc_sequence_start_and_frames() {
        let hvcc = hex::decode("0101600000009000000000003ff000fcfdf8f800000f03200001001840010c01ffff01600000030090000003000003003fba0240210001002f42010101600000030090000003000003003fa00a080f165ba4a4c2fff000100016a0c0c0c080000003008000000c8422000100064401c0718312").unwrap();
        assert_eq!(
            parse_video(&ex_video(1, 0, b"hvc1", &hvcc)),
            Ok(VideoTag::SequenceHeader {
                codec: VideoCodec::H265,
                record: Bytes::from(hvcc.clone())
            })
        );
        let nalus = [0, 0, 0, 3, 0x26, 0x01, 0xaf];
        let mut coded = vec![0x00, 0x00, 0x28];
        coded.extend_from_slice(&nalus);
        assert_eq!(
            parse_video(&ex_video(1, 1, b"hvc1", &coded)),
            Ok(VideoTag::Frame {
                keyframe: true,
                cts_ms: 40,
                data: Bytes::copy_from_slice(&nalus)
            })
        );
        // CodedFramesX: no composition time.
        assert_eq!(
            parse_video(&ex_video(2, 3, b"hvc1", &nalus)),
            Ok(VideoTag::Frame {
                keyframe: false,
                cts_ms: 0,
                data: Bytes::copy_from_slice(&nalus)
            })
        );
        for packet_type in [2, 4] {
            assert_eq!(
                parse_video(&ex_video(1, packet_type, b"hvc1", &[])),
                Ok(VideoTag::Ignored)
            );
        }
        // Enhanced avc1 carries the same records and frames as legacy H.264.
        assert_eq!(
            parse_video(&ex_video(1, 0, b"avc1", &[1, 0x64, 0, 0x1f])),
            Ok(VideoTag::SequenceHeader {
                codec: VideoCodec::H264,
                record: Bytes::from_static(&[1, 0x64, 0, 0x1f])
            })
        );
    }

    #[test]
    fn a_malformed_hevc_sequence_start_is_fatal() {
        for record in [&b""[..], b"\x01", &[0xff; 40]] {
            let e = parse_video(&ex_video(1, 0, b"hvc1", record)).unwrap_err();
            assert_eq!(e, TagError::MalformedSequenceHeader(VideoCodec::H265));
            assert!(e.is_fatal() && !e.is_unsupported_codec());
        }
        assert_eq!(
            parse_video(&ex_video(1, 1, b"hvc1", &[0, 0])),
            Err(TagError::Truncated { len: 7 })
        );
        assert_eq!(
            parse_video(&Bytes::from_static(b"\x90hvc")),
            Err(TagError::Truncated { len: 4 })
        );
        assert_eq!(
            parse_video(&ex_video(1, 7, b"hvc1", &[1])),
            Err(TagError::UnknownPacketType(7))
        );
    }

    /// av1C of GStreamer av1enc (libaom) 320x180 Main 8 bit, with its sequence header OBU.
    const AV1C_180P: &str = "81000c000a0c000000043cfecf81b5f20080";

    #[test]
    fn enhanced_av1_sequence_start_and_frames_without_composition_time() {
        let av1c = hex::decode(AV1C_180P).unwrap();
        assert_eq!(
            parse_video(&ex_video(1, 0, b"av01", &av1c)),
            Ok(VideoTag::SequenceHeader {
                codec: VideoCodec::Av1,
                record: Bytes::from(av1c)
            })
        );
        // A temporal unit: sequence header OBU, frame OBU; no SI24 before it.
        let tu = hex::decode("0a0c000000043cfecf81b5f200803203aabbcc").unwrap();
        for packet_type in [1, 3] {
            assert_eq!(
                parse_video(&ex_video(1, packet_type, b"av01", &tu)),
                Ok(VideoTag::Frame {
                    keyframe: true,
                    cts_ms: 0,
                    data: Bytes::copy_from_slice(&tu)
                })
            );
        }
        assert_eq!(
            parse_video(&ex_video(2, 1, b"av01", &[0x32, 0x01, 0x00])),
            Ok(VideoTag::Frame {
                keyframe: false,
                cts_ms: 0,
                data: Bytes::from_static(&[0x32, 0x01, 0x00])
            })
        );
        assert_eq!(
            parse_video(&ex_video(1, 1, b"av01", &[])),
            Err(TagError::Truncated { len: 5 })
        );
        assert_eq!(
            parse_video(&ex_video(1, 2, b"av01", &[])),
            Ok(VideoTag::Ignored)
        );
    }

    #[test]
    fn a_malformed_av1_sequence_start_is_fatal() {
        let mut contradicting = hex::decode(AV1C_180P).unwrap();
        contradicting[1] = 0x05; // level 3.1; the sequence header says 2.0
        for record in [&b""[..], b"\x81\x00\x0c\x00", &[0xff; 40], &contradicting] {
            let e = parse_video(&ex_video(1, 0, b"av01", record)).unwrap_err();
            assert_eq!(e, TagError::MalformedSequenceHeader(VideoCodec::Av1));
            assert!(e.is_fatal() && !e.is_unsupported_codec());
            assert!(
                e.to_string().starts_with("malformed AV1 sequence header"),
                "{e}"
            );
        }
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
