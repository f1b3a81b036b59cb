//! WebRTC statistics of a WHIP publish as ingest health reports them, read from webrtcbin's
//! `get-stats`: the incoming RTP streams (`inbound-rtp`: packets, bytes, loss, jitter) and,
//! where webrtcbin has one, a round-trip time (`round-trip-time` of any entry, in seconds).
use std::time::Duration;

use gstreamer as gst;
use gstreamer_webrtc as gst_webrtc;

use crate::ingest::WebRtcStats;

/// Counters summed over the incoming streams (video and audio).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub packets_received: u64,
    pub packets_lost: u64,
    pub bytes_received: u64,
    /// The largest jitter of the streams, in seconds.
    pub jitter_s: f64,
    /// The smallest round-trip time reported, in seconds.
    pub rtt_s: Option<f64>,
}

/// A number field of any integer or float type webrtcbin uses.
fn number(s: &gst::StructureRef, field: &str) -> Option<f64> {
    let v = s.value(field).ok()?;
    v.get::<u64>()
        .map(|x| x as f64)
        .or_else(|_| v.get::<i64>().map(|x| x as f64))
        .or_else(|_| v.get::<u32>().map(f64::from))
        .or_else(|_| v.get::<i32>().map(f64::from))
        .or_else(|_| v.get::<f64>())
        .ok()
}

/// The totals of one `get-stats` reply (a structure of structures, one per stats entry).
pub fn totals(reply: &gst::StructureRef) -> Totals {
    let mut t = Totals::default();
    for (_, value) in reply.iter() {
        let Ok(entry) = value.get::<gst::Structure>() else {
            continue;
        };
        if let Some(rtt) = number(&entry, "round-trip-time").filter(|r| *r > 0.0) {
            t.rtt_s = Some(t.rtt_s.map_or(rtt, |old: f64| old.min(rtt)));
        }
        let inbound = entry
            .get::<gst_webrtc::WebRTCStatsType>("type")
            .is_ok_and(|k| k == gst_webrtc::WebRTCStatsType::InboundRtp);
        if !inbound {
            continue;
        }
        let count = |field| number(&entry, field).map_or(0, |x| x.max(0.0) as u64);
        t.packets_received += count("packets-received");
        t.packets_lost += count("packets-lost");
        t.bytes_received += count("bytes-received");
        t.jitter_s = t.jitter_s.max(number(&entry, "jitter").unwrap_or(0.0));
    }
    t
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The health figures from the totals now and, for the rates, those `interval` earlier.
pub fn webrtc_stats(now: &Totals, prev: Option<(&Totals, Duration)>) -> WebRtcStats {
    let (bitrate_kbps, loss_pct) = prev.map_or((0.0, 0.0), |(p, interval)| {
        let ms = interval.as_secs_f64() * 1000.0;
        let bytes = now.bytes_received.saturating_sub(p.bytes_received) as f64;
        let received = now.packets_received.saturating_sub(p.packets_received) as f64;
        let lost = now.packets_lost.saturating_sub(p.packets_lost) as f64;
        let expected = received + lost;
        (
            if ms > 0.0 { bytes * 8.0 / ms } else { 0.0 },
            if expected > 0.0 {
                lost * 100.0 / expected
            } else {
                0.0
            },
        )
    });
    WebRtcStats {
        rtt_ms: now.rtt_s.map(|s| round1(s * 1000.0)),
        packets_received: now.packets_received,
        packets_lost: now.packets_lost,
        loss_pct: round1(loss_pct),
        jitter_ms: round1(now.jitter_s * 1000.0),
        bitrate_kbps: round1(bitrate_kbps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: gst_webrtc::WebRTCStatsType) -> gst::structure::Builder {
        gst::Structure::builder("application/x-webrtc-stats").field("type", kind)
    }

    #[test]
    fn inbound_streams_are_summed_and_the_rest_ignored() {
        gst::init().unwrap();
        let video = entry(gst_webrtc::WebRTCStatsType::InboundRtp)
            .field("packets-received", 900u64)
            .field("packets-lost", 10i64)
            .field("bytes-received", 1_000_000u64)
            .field("jitter", 0.004f64)
            .build();
        let audio = entry(gst_webrtc::WebRTCStatsType::InboundRtp)
            .field("packets-received", 100u64)
            .field("packets-lost", -1i64)
            .field("bytes-received", 20_000u64)
            .field("jitter", 0.002f64)
            .build();
        let remote = entry(gst_webrtc::WebRTCStatsType::RemoteOutboundRtp)
            .field("packets-sent", 5000u64)
            .field("round-trip-time", 0.025f64)
            .build();
        let reply = gst::Structure::builder("application/x-webrtc-stats")
            .field("video", video)
            .field("audio", audio)
            .field("remote", remote)
            .build();
        let t = totals(&reply);
        assert_eq!(
            t,
            Totals {
                packets_received: 1000,
                packets_lost: 10,
                bytes_received: 1_020_000,
                jitter_s: 0.004,
                rtt_s: Some(0.025),
            }
        );
    }

    #[test]
    fn rates_come_from_the_counters_over_the_interval() {
        let before = Totals {
            packets_received: 1000,
            packets_lost: 10,
            bytes_received: 1_000_000,
            jitter_s: 0.0,
            rtt_s: None,
        };
        let now = Totals {
            packets_received: 1495,
            packets_lost: 15,
            bytes_received: 1_500_000,
            jitter_s: 0.0031,
            rtt_s: None,
        };
        let s = webrtc_stats(&now, Some((&before, Duration::from_secs(2))));
        assert_eq!(
            s,
            WebRtcStats {
                rtt_ms: None,
                packets_received: 1495,
                packets_lost: 15,
                loss_pct: 1.0,
                jitter_ms: 3.1,
                bitrate_kbps: 2000.0,
            }
        );
        // The first reading has no interval: no rates yet.
        let first = webrtc_stats(&now, None);
        assert_eq!((first.bitrate_kbps, first.loss_pct), (0.0, 0.0));
    }
}
