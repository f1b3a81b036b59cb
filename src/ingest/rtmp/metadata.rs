//! `onMetaData` as rml_rtmp parses it → our [`StreamMetadata`].
use rml_rtmp::sessions::StreamMetadata as RtmpMetadata;

use crate::ingest::StreamMetadata;

/// Keeps what the pipeline and ingest health use. `videocodecid` may be a legacy FLV codec id (7)
/// or an Enhanced RTMP FourCC as a number (`hvc1`, `av01`); either says there is video. `has_video`/`has_audio` are only claimed when
/// the publisher listed at least one codec id: then a missing one means that track is absent
/// (an audio-only encoder lists only `audiocodecid`); with neither listed we know nothing.
pub fn from_rtmp(m: &RtmpMetadata) -> StreamMetadata {
    let lists_codecs = m.video_codec_id.is_some() || m.audio_codec_id.is_some();
    StreamMetadata {
        has_video: lists_codecs.then_some(m.video_codec_id.is_some()),
        has_audio: lists_codecs.then_some(m.audio_codec_id.is_some()),
        width: m.video_width.filter(|&w| w > 0),
        height: m.video_height.filter(|&h| h > 0),
        frame_rate: m
            .video_frame_rate
            .map(f64::from)
            .filter(|f| f.is_finite() && *f > 0.0),
        video_bitrate_kbps: m.video_bitrate_kbps.filter(|&b| b > 0).map(f64::from),
        audio_bitrate_kbps: m.audio_bitrate_kbps.filter(|&b| b > 0).map(f64::from),
        encoder: m.encoder.clone().filter(|e| !e.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_style_metadata_is_kept() {
        let mut m = RtmpMetadata::new();
        m.video_width = Some(320);
        m.video_height = Some(240);
        m.video_codec_id = Some(7);
        m.video_frame_rate = Some(30.0);
        m.video_bitrate_kbps = Some(0); // ffmpeg writes 0 for "unknown"
        m.audio_codec_id = Some(10);
        m.audio_bitrate_kbps = Some(128);
        m.encoder = Some("Lavf59.27.100".into());
        assert_eq!(
            from_rtmp(&m),
            StreamMetadata {
                has_video: Some(true),
                has_audio: Some(true),
                width: Some(320),
                height: Some(240),
                frame_rate: Some(30.0),
                video_bitrate_kbps: None,
                audio_bitrate_kbps: Some(128.0),
                encoder: Some("Lavf59.27.100".into()),
            }
        );
    }

    #[test]
    fn an_enhanced_rtmp_fourcc_codec_id_counts_as_video() {
        // OBS 31 writes `videocodecid` as the FourCC `hvc1` read as a big-endian number.
        let mut m = RtmpMetadata::new();
        m.video_codec_id = Some(u32::from_be_bytes(*b"hvc1"));
        m.audio_codec_id = Some(10);
        let s = from_rtmp(&m);
        assert_eq!((s.has_video, s.has_audio), (Some(true), Some(true)));
        // ... and `av01` for AV1.
        m.video_codec_id = Some(u32::from_be_bytes(*b"av01"));
        assert_eq!(from_rtmp(&m).has_video, Some(true));
    }

    #[test]
    fn audio_only_publisher_has_no_video() {
        let mut m = RtmpMetadata::new();
        m.audio_codec_id = Some(10);
        let s = from_rtmp(&m);
        assert_eq!(s.has_video, Some(false));
        assert_eq!(s.has_audio, Some(true));
    }

    #[test]
    fn without_codec_ids_tracks_are_unknown() {
        let mut m = RtmpMetadata::new();
        m.video_width = Some(1280);
        let s = from_rtmp(&m);
        assert_eq!(s.has_video, None);
        assert_eq!(s.has_audio, None);
        assert_eq!(s.width, Some(1280));
    }
}
