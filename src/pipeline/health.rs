//! Ingest health: what the publisher is actually sending, measured over a short window, and
//! warnings in words a creator can act on.
use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::ingest::StreamMetadata;
use crate::output::codecs;

/// Bitrate and frame rate are measured over this much media time.
const WINDOW_MS: u64 = 5_000;

#[derive(Debug, Default)]
struct TrackStats {
    /// (dts ms, bytes) of the frames in the window.
    frames: VecDeque<(u64, usize)>,
    last_keyframe_ms: Option<u64>,
    keyframe_interval_ms: Option<u64>,
}

impl TrackStats {
    fn add(&mut self, dts_ms: u64, bytes: usize) {
        self.frames.push_back((dts_ms, bytes));
        while let Some(&(first, _)) = self.frames.front() {
            if dts_ms.saturating_sub(first) > WINDOW_MS {
                self.frames.pop_front();
            } else {
                break;
            }
        }
    }

    fn span_ms(&self) -> u64 {
        match (self.frames.front(), self.frames.back()) {
            (Some(a), Some(b)) => b.0.saturating_sub(a.0),
            _ => 0,
        }
    }

    fn bitrate_kbps(&self) -> Option<f64> {
        let span = self.span_ms();
        (span > 0).then(|| {
            let bytes: usize = self.frames.iter().skip(1).map(|f| f.1).sum();
            bytes as f64 * 8.0 / span as f64
        })
    }

    fn rate(&self) -> Option<f64> {
        let span = self.span_ms();
        (span > 0).then(|| (self.frames.len() - 1) as f64 * 1000.0 / span as f64)
    }
}

#[derive(Debug, Default)]
pub struct IngestHealth {
    video: TrackStats,
    audio: TrackStats,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    audio_format: Option<(u32, u8)>,
    metadata: StreamMetadata,
    segment_target: Duration,
    /// Things that happened (a rung dropped), reported until the stream ends.
    events: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VideoHealth {
    pub codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    pub keyframe_interval_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AudioHealth {
    pub codec: Option<String>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    pub bitrate_kbps: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthReport {
    pub video: Option<VideoHealth>,
    pub audio: Option<AudioHealth>,
    pub warnings: Vec<String>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl IngestHealth {
    pub fn new(segment_target: Duration) -> Self {
        IngestHealth {
            segment_target,
            ..Default::default()
        }
    }

    pub fn set_video_config(&mut self, avcc: &[u8]) {
        self.video_codec = codecs::avc1(avcc);
    }

    pub fn set_audio_config(&mut self, asc: &[u8]) {
        self.audio_codec = codecs::mp4a(asc);
        self.audio_format = codecs::aac_sample_rate_channels(asc);
    }

    pub fn set_metadata(&mut self, metadata: StreamMetadata) {
        self.metadata = metadata;
    }

    pub fn on_video(&mut self, dts_ms: u64, bytes: usize, keyframe: bool) {
        self.video.add(dts_ms, bytes);
        if keyframe {
            if let Some(last) = self.video.last_keyframe_ms {
                self.video.keyframe_interval_ms = Some(dts_ms.saturating_sub(last));
            }
            self.video.last_keyframe_ms = Some(dts_ms);
        }
    }

    pub fn add_warning(&mut self, warning: String) {
        if !self.events.contains(&warning) {
            self.events.push(warning);
        }
    }

    pub fn on_audio(&mut self, dts_ms: u64, bytes: usize) {
        self.audio.add(dts_ms, bytes);
    }

    /// `size` is what the pipeline negotiated (exact), preferred over the publisher's metadata.
    pub fn report(&self, size: Option<(u32, u32)>) -> HealthReport {
        let has_video = self.video_codec.is_some();
        let has_audio = self.audio_codec.is_some();
        let keyframe_interval_s = self.video.keyframe_interval_ms.map(|ms| ms as f64 / 1000.0);
        let mut warnings = Vec::new();
        if let Some(k) = keyframe_interval_s {
            let target = self.segment_target.as_secs_f64();
            if k > target * 1.5 {
                warnings.push(format!(
                    "keyframe interval is {k:.1} s, longer than the {target:.0} s segment target: \
                     segments will be {k:.1} s long and viewers further behind; set the encoder's \
                     keyframe interval to {target:.0} s"
                ));
            }
        }
        if !has_audio && has_video {
            warnings.push("no audio: the publisher sends video only".into());
        }
        if !has_video && has_audio {
            warnings.push("no video: the publisher sends audio only".into());
        }
        warnings.extend(self.events.iter().cloned());
        let video = has_video.then(|| VideoHealth {
            codec: self.video_codec.clone(),
            width: size.map(|s| s.0).or(self.metadata.width),
            height: size.map(|s| s.1).or(self.metadata.height),
            fps: self.video.rate().map(round1),
            bitrate_kbps: self.video.bitrate_kbps().map(round1),
            keyframe_interval_s,
        });
        let audio = has_audio.then(|| AudioHealth {
            codec: self.audio_codec.clone(),
            sample_rate: self.audio_format.map(|f| f.0),
            channels: self.audio_format.map(|f| f.1),
            bitrate_kbps: self.audio.bitrate_kbps().map(round1),
        });
        HealthReport {
            video,
            audio,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_rate_bitrate_and_warns_about_long_gops() {
        let mut h = IngestHealth::new(Duration::from_secs(2));
        h.set_video_config(&[1, 0x64, 0, 0x1f, 0xff]);
        for i in 0..=300u64 {
            // 30 fps, 10 s keyframe interval, 12500 bytes a frame = 3000 kb/s
            h.on_video(i * 1000 / 30, 12_500, i % 300 == 0);
        }
        let r = h.report(Some((1280, 720)));
        let v = r.video.unwrap();
        assert_eq!(v.keyframe_interval_s, Some(10.0));
        assert!((v.fps.unwrap() - 30.0).abs() < 0.5, "{v:?}");
        assert!((v.bitrate_kbps.unwrap() - 3000.0).abs() < 50.0, "{v:?}");
        assert_eq!((v.width, v.height), (Some(1280), Some(720)));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("keyframe interval is 10.0 s")),
            "{:?}",
            r.warnings
        );
        assert!(r.warnings.iter().any(|w| w.contains("no audio")));
    }
}
