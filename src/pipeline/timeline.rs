//! One track's buffer timestamps, made from the publisher's: decoding times that strictly
//! increase, and presentation times never before them.
//!
//! Why: GStreamer's parsers (`h264parse`, `aacparse`, every `GstBaseParse`) take a buffer whose
//! timestamps equal the previous buffer's as carrying *no* timestamp; h264parse then leaves its PTS
//! unset (it does not interpolate PTS, B-frames make that impossible), and `mp4mux` stops with
//! "Buffer has no PTS" (`isofmp4mux`: "Require timestamped buffers"). Publishers do send such
//! frames: GStreamer's own `flvmux` (OBS-like `rtmp2sink` pipelines with x264 B-frames) stamps video
//! on the audio frame grid, so that every few frames two in a row share one DTS and one PTS.
//!
//! The rules (plain code, no GStreamer; all times in nanoseconds of media time):
//! - A DTS after the previous one is kept.
//! - A DTS equal to the previous one, or a little before it (at most [`MAX_STEP_BACK_NS`]), is
//!   moved to [`MIN_STEP_NS`] after it; only that frame moves, so the track keeps its clock.
//! - A DTS further back means the publisher's clock restarted (without a reconnect): from that
//!   frame on the track continues [`MIN_STEP_NS`] after its previous frame.
//! - PTS is the (moved) DTS plus the frame's composition offset, and never before the DTS: a
//!   negative offset that would put it there is clamped (no container can hold PTS < DTS).
//! - A PTS equal to the previous frame's (with another DTS: a clamped offset, a broken encoder)
//!   moves [`MIN_STEP_NS`] later, for the same reason as equal DTS: the parser would drop it.
//! - Forward jumps are kept: an encoder that paused leaves a gap in the media.

/// The smallest step between two decoding times: a millisecond, the resolution of RTMP.
pub const MIN_STEP_NS: u64 = 1_000_000;
/// A step back up to this long is jitter (or a publisher bug) on a running clock; further back, the
/// clock restarted.
pub const MAX_STEP_BACK_NS: u64 = 1_000_000_000;

/// What happened to a frame's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    /// Kept as the publisher sent them.
    Kept,
    /// Moved just after the previous frame (same or slightly earlier DTS).
    Nudged,
    /// The publisher's clock went back: the track continues after its previous frame.
    Rebased,
}

/// A frame's buffer timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub dts: u64,
    pub pts: u64,
    pub adjustment: Adjustment,
}

/// One track's timeline.
#[derive(Debug, Default, Clone)]
pub struct TrackTimeline {
    last_dts: Option<u64>,
    last_pts: Option<u64>,
    /// Added to every DTS after a clock restart.
    offset: u64,
    /// Frames whose timestamps were changed.
    pub adjusted: u64,
}

impl TrackTimeline {
    /// The timestamps of the next frame in decoding order: `dts` in media time and its composition
    /// offset `cts` (PTS − DTS as the publisher sent it).
    pub fn stamp(&mut self, dts: u64, cts_ns: i64) -> Stamp {
        let wanted = dts.saturating_add(self.offset);
        let (dts, adjustment) = match self.last_dts {
            None => (wanted, Adjustment::Kept),
            Some(last) if wanted > last => (wanted, Adjustment::Kept),
            Some(last) if last - wanted <= MAX_STEP_BACK_NS => {
                (last.saturating_add(MIN_STEP_NS), Adjustment::Nudged)
            }
            Some(last) => {
                let next = last.saturating_add(MIN_STEP_NS);
                self.offset = self.offset.saturating_add(next - wanted);
                (next, Adjustment::Rebased)
            }
        };
        if adjustment != Adjustment::Kept {
            self.adjusted += 1;
        }
        let mut pts = dts.saturating_add_signed(cts_ns).max(dts);
        let mut adjustment = adjustment;
        if self.last_pts == Some(pts) {
            pts = pts.saturating_add(MIN_STEP_NS);
            if adjustment == Adjustment::Kept {
                adjustment = Adjustment::Nudged;
                self.adjusted += 1;
            }
        }
        self.last_dts = Some(dts);
        self.last_pts = Some(pts);
        Stamp {
            dts,
            pts,
            adjustment,
        }
    }

    /// Starts over at a new base (a publisher that came back): nothing before is compared with.
    pub fn restart(&mut self) {
        self.last_dts = None;
        self.last_pts = None;
        self.offset = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ms(stamp: Stamp) -> (u64, u64) {
        (stamp.dts / MS, stamp.pts / MS)
    }

    #[test]
    fn increasing_timestamps_pass_through_with_their_composition_offset() {
        let mut t = TrackTimeline::default();
        assert_eq!(ms(t.stamp(0, 67 * MS as i64)), (0, 67));
        assert_eq!(ms(t.stamp(33 * MS, 133 * MS as i64)), (33, 166));
        assert_eq!(ms(t.stamp(67 * MS, 0)), (67, 67));
        assert_eq!(t.adjusted, 0);
    }

    #[test]
    fn a_repeated_dts_moves_one_millisecond_on_and_the_clock_keeps_time() {
        // gst flvmux with x264 B-frames at 60 fps: two frames on one audio-grid slot.
        let mut t = TrackTimeline::default();
        let frames = [(398, 0), (398, 0), (421, 0), (445, 0), (445, 0), (468, 0)];
        let out: Vec<(u64, u64)> = frames
            .iter()
            .map(|&(dts, cts)| ms(t.stamp(dts * MS, cts * MS as i64)))
            .collect();
        assert_eq!(
            out,
            [
                (398, 398),
                (399, 399),
                (421, 421),
                (445, 445),
                (446, 446),
                (468, 468)
            ]
        );
        assert_eq!(t.adjusted, 2);
        // A B-frame pair sharing a DTS keeps its own presentation times.
        let mut t = TrackTimeline::default();
        assert_eq!(ms(t.stamp(27 * MS, 29 * MS as i64)), (27, 56));
        let second = t.stamp(27 * MS, 0);
        assert_eq!(
            (ms(second), second.adjustment),
            ((28, 28), Adjustment::Nudged)
        );
    }

    #[test]
    fn nudges_never_let_decoding_time_stand_still() {
        let mut t = TrackTimeline::default();
        let mut last = None;
        for dts in [10, 10, 10, 10, 11, 11, 9, 12] {
            let s = t.stamp(dts * MS, 0);
            assert!(last < Some(s.dts), "{last:?} then {}", s.dts);
            last = Some(s.dts);
        }
    }

    #[test]
    fn a_small_step_back_moves_only_that_frame() {
        let mut t = TrackTimeline::default();
        t.stamp(1000 * MS, 0);
        assert_eq!(ms(t.stamp(990 * MS, 20 * MS as i64)), (1001, 1021));
        assert_eq!(ms(t.stamp(1033 * MS, 0)), (1033, 1033));
    }

    #[test]
    fn a_clock_restart_continues_after_the_previous_frame() {
        let mut t = TrackTimeline::default();
        t.stamp(60_000 * MS, 0);
        let s = t.stamp(0, 40 * MS as i64);
        assert_eq!(
            (ms(s), s.adjustment),
            ((60_001, 60_041), Adjustment::Rebased)
        );
        // The following frames keep their spacing on the new base.
        assert_eq!(ms(t.stamp(33 * MS, 0)), (60_034, 60_034));
        t.restart();
        assert_eq!(ms(t.stamp(5 * MS, 0)), (5, 5));
    }

    #[test]
    fn forward_jumps_are_kept() {
        let mut t = TrackTimeline::default();
        t.stamp(0, 0);
        assert_eq!(ms(t.stamp(3_600_000 * MS, 0)), (3_600_000, 3_600_000));
        assert_eq!(t.adjusted, 0);
    }

    #[test]
    fn a_presentation_time_equal_to_the_previous_one_moves_on() {
        // A P-frame whose negative offset is clamped lands on the B-frame before it.
        let mut t = TrackTimeline::default();
        assert_eq!(ms(t.stamp(0, 33 * MS as i64)), (0, 33));
        let s = t.stamp(33 * MS, -40 * MS as i64);
        assert_eq!((ms(s), s.adjustment), ((33, 34), Adjustment::Nudged));
        assert_eq!(ms(t.stamp(67 * MS, 0)), (67, 67));
    }

    #[test]
    fn presentation_never_precedes_decoding() {
        let mut t = TrackTimeline::default();
        assert_eq!(ms(t.stamp(100 * MS, -33 * MS as i64)), (100, 100));
        assert_eq!(ms(t.stamp(0, i64::MIN)), (101, 101));
        assert_eq!(t.stamp(u64::MAX, i64::MAX).pts, u64::MAX);
    }
}
