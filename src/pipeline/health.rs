//! Ingest health: what the publisher is actually sending, measured on its own timestamps, and
//! warnings in words a creator can act on.
use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::ingest::video::VideoFormat;
use crate::ingest::{SrtStats, StreamMetadata, VideoCodec, WebRtcStats};
use crate::output::codecs;

/// Frames are kept for this much media time: bitrate over 10 s, and over the last 1 s.
const WINDOW_MS: u64 = 10_000;
const SHORT_WINDOW_MS: u64 = 1_000;
/// A "bitrate dropped" warning: the last `DROP_WINDOW_MS` below `DROP_RATIO` of the usual rate.
const DROP_WINDOW_MS: u64 = 5_000;
const DROP_RATIO: f64 = 0.5;
/// The usual rate is an average that forgets over about this long.
const USUAL_RATE_SPAN_MS: f64 = 60_000.0;
/// Audio and video clocks further apart than this are reported.
const DRIFT_WARN_MS: i64 = 500;

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

    fn last_dts(&self) -> Option<u64> {
        self.frames.back().map(|f| f.0)
    }

    /// Frames of the last `ms` of media (all of the window when it is shorter).
    fn recent(&self, ms: u64) -> impl Iterator<Item = &(u64, usize)> {
        let end = self.last_dts().unwrap_or(0);
        self.frames
            .iter()
            .filter(move |f| end.saturating_sub(f.0) <= ms)
    }

    fn span_ms(&self, ms: u64) -> u64 {
        let mut it = self.recent(ms);
        match (it.next(), self.frames.back()) {
            (Some(a), Some(b)) => b.0.saturating_sub(a.0),
            _ => 0,
        }
    }

    fn bitrate_kbps(&self, ms: u64) -> Option<f64> {
        let span = self.span_ms(ms);
        (span > 0).then(|| {
            let bytes: usize = self.recent(ms).skip(1).map(|f| f.1).sum();
            bytes as f64 * 8.0 / span as f64
        })
    }

    fn rate(&self) -> Option<f64> {
        let span = self.span_ms(WINDOW_MS);
        (span > 0).then(|| (self.frames.len() - 1) as f64 * 1000.0 / span as f64)
    }
}

#[derive(Debug, Default)]
pub struct IngestHealth {
    video: TrackStats,
    audio: TrackStats,
    format: Option<VideoFormat>,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    audio_format: Option<(u32, u8)>,
    metadata: StreamMetadata,
    segment_target: Duration,
    /// Slowly moving average of the video bitrate, and when the rate fell below half of it.
    usual_kbps: Option<f64>,
    low_since_ms: Option<u64>,
    last_usual_update_ms: Option<u64>,
    /// Things that happened (a rung dropped), reported until the stream ends.
    events: Vec<String>,
    /// The publisher dropped and the stream waits for it to come back.
    reconnecting: bool,
    /// The latest SRT connection statistics (SRT publishers only).
    srt: Option<SrtStats>,
    /// The latest WebRTC statistics (WHIP publishers only).
    whip: Option<WebRtcStats>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VideoHealth {
    pub codec: Option<String>,
    pub profile: Option<&'static str>,
    pub level: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub orientation: Option<&'static str>,
    /// Measured from the publisher's timestamps.
    pub fps: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    pub bitrate_1s_kbps: Option<f64>,
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
    /// Latest audio timestamp minus latest video timestamp (ms); large values mean the
    /// publisher's clocks disagree or one track stalls.
    pub av_drift_ms: Option<i64>,
    /// The publisher dropped; the stream stays live for `ingest.reconnect_grace` waiting for it.
    pub reconnecting: bool,
    pub warnings: Vec<String>,
    /// SRT connection statistics; absent for other protocols.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srt: Option<SrtStats>,
    /// WebRTC statistics of a WHIP publish; absent for other protocols.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whip: Option<WebRtcStats>,
}

/// WebRTC loss from which health warns: retransmissions no longer hide it from viewers.
const WEBRTC_LOSS_WARNING_PCT: f64 = 5.0;

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

    /// The publisher dropped: what it measured stays visible, flagged as waiting.
    pub fn publisher_away(&mut self) {
        self.reconnecting = true;
    }

    pub fn publisher_gone(&mut self) {
        self.reconnecting = false;
    }

    /// A publisher came back: its timestamps start anew, so do the measurements. What happened
    /// to the stream (`events`) is kept.
    pub fn publisher_back(&mut self) {
        *self = IngestHealth {
            segment_target: self.segment_target,
            events: std::mem::take(&mut self.events),
            ..Default::default()
        };
    }

    pub fn set_video_config(&mut self, codec: VideoCodec, record: &[u8]) {
        self.video_codec = codec.codec_string(record);
        self.format = codec.format(record);
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
        self.track_bitrate_drop(dts_ms);
    }

    /// Once a second of media: update the usual rate and note when the recent rate fell under half.
    fn track_bitrate_drop(&mut self, now_ms: u64) {
        if self
            .last_usual_update_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < SHORT_WINDOW_MS)
        {
            return;
        }
        let (Some(recent), true) = (
            self.video.bitrate_kbps(SHORT_WINDOW_MS),
            self.video.span_ms(WINDOW_MS) >= 2_000,
        ) else {
            return;
        };
        let elapsed = self
            .last_usual_update_ms
            .map_or(SHORT_WINDOW_MS, |t| now_ms.saturating_sub(t)) as f64;
        self.last_usual_update_ms = Some(now_ms);
        let usual = self.usual_kbps.get_or_insert(recent);
        if recent < *usual * DROP_RATIO {
            self.low_since_ms.get_or_insert(now_ms);
        } else {
            self.low_since_ms = None;
            // Only normal seconds teach the usual rate, so a long drop keeps being reported.
            let weight = (elapsed / USUAL_RATE_SPAN_MS).min(1.0);
            *usual += (recent - *usual) * weight;
        }
    }

    pub fn add_warning(&mut self, warning: String) {
        if !self.events.contains(&warning) {
            self.events.push(warning);
        }
    }

    pub fn set_srt_stats(&mut self, stats: SrtStats) {
        self.srt = Some(stats);
    }

    pub fn set_webrtc_stats(&mut self, stats: WebRtcStats) {
        self.whip = Some(stats);
    }

    pub fn on_audio(&mut self, dts_ms: u64, bytes: usize) {
        self.audio.add(dts_ms, bytes);
    }

    /// `size` is what the pipeline negotiated (exact), preferred over the SPS and the metadata.
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
                     keyframe interval (OBS: Keyframe Interval) to {target:.0} s"
                ));
            }
        }
        if !has_audio && has_video {
            warnings.push("no audio: the publisher sends video only".into());
        }
        if !has_video && has_audio {
            warnings.push("no video: the publisher sends audio only".into());
        }
        let now = self.video.last_dts().unwrap_or(0);
        if let (Some(since), Some(usual)) = (self.low_since_ms, self.usual_kbps)
            && now.saturating_sub(since) >= DROP_WINDOW_MS
        {
            warnings.push(format!(
                "video bitrate dropped below {:.0} % of its usual {usual:.0} kb/s for {} s: check the \
                 upload speed of the connection, or lower the encoder's bitrate",
                DROP_RATIO * 100.0,
                now.saturating_sub(since) / 1000
            ));
        }
        let av_drift_ms = match (self.audio.last_dts(), self.video.last_dts()) {
            (Some(a), Some(v)) => Some(a as i64 - v as i64),
            _ => None,
        };
        if let Some(d) = av_drift_ms.filter(|d| d.abs() > DRIFT_WARN_MS) {
            warnings.push(format!(
                "audio and video are {} ms apart ({} ahead): check the encoder's audio sync settings",
                d.abs(),
                if d > 0 { "audio" } else { "video" }
            ));
        }
        if self.reconnecting {
            warnings.push(
                "reconnecting: the publisher dropped; publish again with the same stream key \
                 (RTMP or SRT) to continue this stream"
                    .into(),
            );
        }
        if let Some(srt) = self.srt.as_ref().filter(|s| s.dropped_pkts > 0) {
            warnings.push(format!(
                "{} SRT packets arrived too late to be recovered and were dropped (latency {} ms, \
                 round trip {:.0} ms): raise the SRT latency on the encoder (ffmpeg: latency= in \
                 microseconds) or lower its bitrate",
                srt.dropped_pkts, srt.latency_ms, srt.rtt_ms
            ));
        }
        if let Some(whip) = self
            .whip
            .as_ref()
            .filter(|w| w.loss_pct >= WEBRTC_LOSS_WARNING_PCT)
        {
            warnings.push(format!(
                "{:.1} % of the WebRTC packets were lost over the last seconds (jitter {:.0} ms): \
                 the publisher's uplink is struggling; move closer to the Wi-Fi or lower the \
                 quality",
                whip.loss_pct, whip.jitter_ms
            ));
        }
        warnings.extend(self.events.iter().cloned());
        let (width, height) = size
            .or(self.format.as_ref().map(|f| (f.width, f.height)))
            .map_or((self.metadata.width, self.metadata.height), |(w, h)| {
                (Some(w), Some(h))
            });
        let video = has_video.then(|| VideoHealth {
            codec: self.video_codec.clone(),
            profile: self.format.as_ref().map(|f| f.profile),
            level: self.format.as_ref().map(|f| f.level.clone()),
            width,
            height,
            orientation: width
                .zip(height)
                .map(|(w, h)| if h > w { "portrait" } else { "landscape" }),
            fps: self.video.rate().map(round1),
            bitrate_kbps: self.video.bitrate_kbps(WINDOW_MS).map(round1),
            bitrate_1s_kbps: self.video.bitrate_kbps(SHORT_WINDOW_MS).map(round1),
            keyframe_interval_s,
        });
        let audio = has_audio.then(|| AudioHealth {
            codec: self.audio_codec.clone(),
            sample_rate: self.audio_format.map(|f| f.0),
            channels: self.audio_format.map(|f| f.1),
            bitrate_kbps: self.audio.bitrate_kbps(WINDOW_MS).map(round1),
        });
        HealthReport {
            video,
            audio,
            av_drift_ms,
            reconnecting: self.reconnecting,
            warnings,
            srt: self.srt.clone(),
            whip: self.whip.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVCC_720P30: &str =
        "01640028ffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000468ebe3cb";

    #[test]
    fn measures_rate_bitrate_profile_and_warns_about_long_gops() {
        let mut h = IngestHealth::new(Duration::from_secs(2));
        h.set_video_config(VideoCodec::H264, &hex::decode(AVCC_720P30).unwrap());
        for i in 0..=300u64 {
            // 30 fps, 10 s keyframe interval, 12500 bytes a frame = 3000 kb/s
            h.on_video(i * 1000 / 30, 12_500, i % 300 == 0);
        }
        let r = h.report(None);
        let v = r.video.unwrap();
        assert_eq!(v.keyframe_interval_s, Some(10.0));
        assert!((v.fps.unwrap() - 30.0).abs() < 0.5, "{v:?}");
        assert!((v.bitrate_kbps.unwrap() - 3000.0).abs() < 50.0, "{v:?}");
        assert!((v.bitrate_1s_kbps.unwrap() - 3000.0).abs() < 150.0, "{v:?}");
        assert_eq!(
            (v.width, v.height, v.orientation),
            (Some(1280), Some(720), Some("landscape"))
        );
        assert_eq!((v.profile, v.level.as_deref()), (Some("high"), Some("3.1")));
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("keyframe interval is 10.0 s")),
            "{:?}",
            r.warnings
        );
        assert!(r.warnings.iter().any(|w| w.contains("no audio")));
    }

    #[test]
    fn a_sustained_bitrate_drop_and_av_drift_are_reported() {
        let mut h = IngestHealth::new(Duration::from_secs(2));
        h.set_video_config(VideoCodec::H264, &hex::decode(AVCC_720P30).unwrap());
        h.set_audio_config(&[0x11, 0x90]);
        let mut t = 0;
        for i in 0..660u64 {
            t = i * 1000 / 30;
            h.on_video(t, if i < 450 { 12_500 } else { 2_000 }, i % 60 == 0);
            h.on_audio(t, 400);
        }
        let r = h.report(None);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("video bitrate dropped below 50 %")),
            "{:?}",
            r.warnings
        );
        assert_eq!(r.av_drift_ms, Some(0));
        h.on_audio(t + 2_000, 400);
        let r = h.report(None);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("2000 ms apart (audio ahead)")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn srt_stats_are_reported_and_dropped_packets_warned_about() {
        let mut h = IngestHealth::new(Duration::from_secs(2));
        assert_eq!(h.report(None).srt, None);
        let mut stats = SrtStats {
            rtt_ms: 40.0,
            latency_ms: 120,
            recv_rate_kbps: 2500.0,
            ..Default::default()
        };
        h.set_srt_stats(stats.clone());
        let r = h.report(None);
        assert_eq!(r.srt.as_ref().map(|s| s.recv_rate_kbps), Some(2500.0));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        stats.dropped_pkts = 7;
        h.set_srt_stats(stats);
        let r = h.report(None);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("7 SRT packets arrived too late")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn webrtc_stats_are_reported_and_heavy_loss_warned_about() {
        let mut h = IngestHealth::new(Duration::from_secs(2));
        assert_eq!(h.report(None).whip, None);
        let mut stats = WebRtcStats {
            bitrate_kbps: 1800.0,
            loss_pct: 0.5,
            jitter_ms: 4.0,
            ..Default::default()
        };
        h.set_webrtc_stats(stats.clone());
        let r = h.report(None);
        assert_eq!(r.whip.as_ref().map(|s| s.bitrate_kbps), Some(1800.0));
        assert_eq!(r.srt, None);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        stats.loss_pct = 12.5;
        h.set_webrtc_stats(stats);
        let r = h.report(None);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with("12.5 % of the WebRTC packets were lost")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn a_steady_stream_has_no_warnings() {
        let mut h = IngestHealth::new(Duration::from_secs(2));
        h.set_video_config(VideoCodec::H264, &hex::decode(AVCC_720P30).unwrap());
        h.set_audio_config(&[0x11, 0x90]);
        for i in 0..900u64 {
            h.on_video(i * 1000 / 30, 10_000 + (i % 7) as usize * 500, i % 60 == 0);
            h.on_audio(i * 1000 / 30, 400);
        }
        assert_eq!(h.report(None).warnings, Vec::<String>::new());
    }
}
