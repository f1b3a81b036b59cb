//! SRT connection statistics as ingest health reports them.
use std::time::Duration;

use srt_tokio::SocketStatistics;

use crate::ingest::SrtStats;

/// Receiver statistics for ingest health; the rate is over the time since `prev` was taken.
///
/// srt-protocol 0.4.4 counts received, retransmitted and dropped data packets and bytes, but
/// leaves its RTT, loss and elapsed-time statistics at zero on listener connections. So the
/// RTT is the handshake's, the rate uses our own clock, and a lost packet is one that came
/// again as a retransmission or never came in time (dropped).
pub(super) fn srt_stats(
    s: &SocketStatistics,
    prev: Option<(&SocketStatistics, Duration)>,
    rtt: Duration,
    latency_ms: u64,
) -> SrtStats {
    let recv_rate_kbps = prev
        .map(|(p, interval)| {
            let ms = interval.as_secs_f64() * 1000.0;
            let bytes = s.rx_bytes.saturating_sub(p.rx_bytes) as f64;
            if ms > 0.0 { bytes * 8.0 / ms } else { 0.0 }
        })
        .unwrap_or(0.0);
    SrtStats {
        rtt_ms: (rtt.as_secs_f64() * 10_000.0).round() / 10.0,
        loss_pkts: s.rx_retransmit_data + s.rx_dropped_data,
        retransmitted_pkts: s.rx_retransmit_data,
        dropped_pkts: s.rx_dropped_data,
        recv_rate_kbps: (recv_rate_kbps * 10.0).round() / 10.0,
        latency_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_rate_comes_from_the_byte_counter() {
        let mut prev = SocketStatistics::default();
        prev.rx_bytes = 1_000;
        let mut now = SocketStatistics::default();
        now.rx_bytes = 126_000;
        now.rx_dropped_data = 1;
        now.rx_retransmit_data = 2;
        let s = srt_stats(
            &now,
            Some((&prev, Duration::from_secs(1))),
            Duration::from_micros(1_250),
            120,
        );
        assert_eq!(s.recv_rate_kbps, 1000.0);
        assert_eq!(s.rtt_ms, 1.3);
        assert_eq!(
            (s.loss_pkts, s.retransmitted_pkts, s.dropped_pkts),
            (3, 2, 1)
        );
    }
}
