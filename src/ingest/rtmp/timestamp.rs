//! RTMP timestamps are 32-bit milliseconds that wrap after ~49.7 days; the pipeline wants a
//! 64-bit clock that keeps growing. Not rebased: the first value passes through unchanged.

/// Unwraps one track's 32-bit timestamps into 64 bits.
///
/// Each new value is placed at the signed 32-bit distance from the previous one (RTMP's rule:
/// timestamps within 2^31 ms of each other are adjacent), so a wrap past `u32::MAX` keeps
/// counting up and a small step back (a publisher bug) stays a small step back. The result never
/// goes below zero.
#[derive(Debug, Default, Clone)]
pub struct TimestampUnwrapper {
    last: Option<(u32, u64)>,
}

impl TimestampUnwrapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// The 64-bit value for the next raw timestamp of this track.
    pub fn unwrap_ms(&mut self, raw: u32) -> u64 {
        let extended = match self.last {
            None => u64::from(raw),
            Some((last_raw, last_extended)) => {
                // Reinterpreting the wrapped difference as i32 is the point: it is the distance.
                let delta = raw.wrapping_sub(last_raw) as i32;
                last_extended.saturating_add_signed(i64::from(delta))
            }
        };
        self.last = Some((raw, extended));
        extended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_pass_through_without_rebasing() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap_ms(1000), 1000);
        assert_eq!(u.unwrap_ms(1033), 1033);
        assert_eq!(u.unwrap_ms(1033), 1033);
        assert_eq!(u.unwrap_ms(1067), 1067);
    }

    #[test]
    fn wrap_around_keeps_counting_up() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap_ms(u32::MAX - 20), u64::from(u32::MAX) - 20);
        assert_eq!(u.unwrap_ms(u32::MAX), u64::from(u32::MAX));
        assert_eq!(u.unwrap_ms(12), (1u64 << 32) + 12);
        assert_eq!(u.unwrap_ms(45), (1u64 << 32) + 45);
        // And a second wrap.
        assert_eq!(u.unwrap_ms(1 << 30), (1u64 << 32) + (1 << 30));
        assert_eq!(u.unwrap_ms(2 << 30), (1u64 << 32) + (2 << 30));
        assert_eq!(u.unwrap_ms(3 << 30), (1u64 << 32) + (3 << 30));
        assert_eq!(u.unwrap_ms(u32::MAX), (2u64 << 32) - 1);
        assert_eq!(u.unwrap_ms(0), 2u64 << 32);
    }

    #[test]
    fn small_steps_back_stay_small_and_never_go_below_zero() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap_ms(100), 100);
        assert_eq!(u.unwrap_ms(90), 90);
        // 100 ms back from 90 is "u32::MAX - 9" on the wire: a step back (clamped at 0),
        // not a wrap.
        assert_eq!(u.unwrap_ms(u32::MAX - 9), 0);
        assert_eq!(u.unwrap_ms(u32::MAX), 9);
        assert_eq!(u.unwrap_ms(5), 15);
    }

    #[test]
    fn big_forward_jumps_are_kept() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap_ms(0), 0);
        assert_eq!(u.unwrap_ms(0x7fff_ffff), 0x7fff_ffff);
        assert_eq!(u.unwrap_ms(0xffff_fffe), 0xffff_fffe);
    }
}
