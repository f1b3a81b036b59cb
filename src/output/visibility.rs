//! When a stream's media was public: the practice/public switches on its media timeline.
//!
//! A mode switch takes effect at the media time of the newest frame ingested at that instant
//! (the same clock as product markers). Media before it keeps the mode it had; media after it
//! gets the new one. The outputs ask one question of it: was `[start, end)` public throughout?
//! A segment (part, poster frame) is shown to the public only then, so nothing the creator
//! rehearsed is ever listed, served or cut for anyone else.
//!
//! Plain data, no GStreamer; shared by a stream's outputs (cheap to clone).
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Switches kept per stream; a creator flipping mode thousands of times keeps the first ones and
/// the latest (the newest switch always wins, see [`Visibility::set`]).
const MAX_SWITCHES: usize = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Switch {
    at: Duration,
    public: bool,
}

/// The mode of a stream's media over its media time. Clones share one timeline.
#[derive(Debug, Clone)]
pub struct Visibility(Arc<Mutex<Timeline>>);

#[derive(Debug)]
struct Timeline {
    switches: Vec<Switch>,
    /// Switches made so far (anything derived from the timeline is stale once it moves on).
    changes: u64,
}

impl Visibility {
    /// A timeline that starts public or practice at media time 0.
    pub fn new(public: bool) -> Self {
        Visibility(Arc::new(Mutex::new(Timeline {
            switches: vec![Switch {
                at: Duration::ZERO,
                public,
            }],
            changes: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Timeline> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Grows with every switch: what was derived from the timeline at one count holds until it
    /// changes.
    pub fn changes(&self) -> u64 {
        self.lock().changes
    }

    /// From media time `at` on, the media is public (or not). A switch earlier than the latest
    /// one (media time never runs back; a clock quirk) takes effect at the latest one's time.
    pub fn set(&self, at: Duration, public: bool) {
        let mut timeline = self.lock();
        let Timeline { switches, changes } = &mut *timeline;
        let last = *switches.last().expect("a timeline has its first switch");
        if last.public == public {
            return;
        }
        let at = at.max(last.at);
        if switches.len() >= MAX_SWITCHES {
            // Keep the bound: the dropped switch's interval merges into its neighbour on the
            // practice side (a public interval is never widened).
            if let Some(i) = switches.iter().rposition(|s| !s.public).filter(|&i| i > 0) {
                switches.remove(i);
                switches.remove(i - 1);
            }
        }
        switches.push(Switch { at, public });
        *changes += 1;
    }

    /// The mode now (of the newest media).
    pub fn is_public(&self) -> bool {
        self.lock().switches.last().is_some_and(|s| s.public)
    }

    /// Whether all of `[start, end)` was public: public at `start` and no switch to practice
    /// before `end`. An empty or inverted interval asks about `start` alone.
    pub fn public_throughout(&self, start: Duration, end: Duration) -> bool {
        let timeline = self.lock();
        let switches = &timeline.switches;
        let at_start = switches
            .iter()
            .rev()
            .find(|s| s.at <= start)
            .is_some_and(|s| s.public);
        at_start
            && switches
                .iter()
                .filter(|s| s.at > start && s.at < end)
                .all(|s| s.public)
    }
}

/// Public intervals `[start, end)` of a media timeline, merged where they touch, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicIntervals {
    /// Milliseconds of media time.
    pub intervals_ms: Vec<(u64, u64)>,
}

impl PublicIntervals {
    /// Adds public media `[start, end)`; one that starts where the last ends extends it.
    pub fn add(&mut self, start: Duration, end: Duration) {
        let (start, end) = (millis(start), millis(end));
        if end <= start {
            return;
        }
        match self.intervals_ms.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => self.intervals_ms.push((start, end)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.intervals_ms.is_empty()
    }

    /// Total public media.
    pub fn total_ms(&self) -> u64 {
        self.intervals_ms.iter().map(|(s, e)| e - s).sum()
    }

    /// Where media time `at_ms` falls in the public replay (the intervals back to back): `None`
    /// when it is not public media. The end of an interval maps to the end of its piece.
    pub fn to_replay_ms(&self, at_ms: u64) -> Option<u64> {
        let mut before = 0;
        for &(s, e) in &self.intervals_ms {
            if (s..=e).contains(&at_ms) {
                return Some(before + at_ms - s);
            }
            before += e - s;
        }
        None
    }

    /// The public pieces of media `[start_ms, end_ms)`, in replay time (each a range of the
    /// public replay); empty when none of it was public.
    pub fn clip_to_replay(&self, start_ms: u64, end_ms: u64) -> Vec<(u64, u64)> {
        let mut before = 0;
        let mut pieces = Vec::new();
        for &(s, e) in &self.intervals_ms {
            let (from, to) = (start_ms.max(s), end_ms.min(e));
            if from < to {
                pieces.push((before + from - s, before + to - s));
            }
            before += e - s;
        }
        pieces
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn only_media_public_throughout_is_public() {
        let v = Visibility::new(false);
        assert!(!v.public_throughout(s(0.0), s(2.0)));
        v.set(s(10.0), true);
        assert!(!v.public_throughout(s(8.0), s(10.0)), "ends on it");
        assert!(
            !v.public_throughout(s(9.0), s(11.0)),
            "straddles the switch"
        );
        assert!(v.public_throughout(s(10.0), s(12.0)), "starts on it");
        assert!(v.public_throughout(s(12.0), s(14.0)));
        v.set(s(15.0), false);
        assert!(
            v.public_throughout(s(12.0), s(14.0)),
            "before it stays public"
        );
        assert!(!v.public_throughout(s(14.0), s(16.0)));
        assert!(!v.public_throughout(s(16.0), s(18.0)));
        v.set(s(20.0), true);
        assert!(!v.public_throughout(s(18.0), s(20.5)));
        assert!(v.public_throughout(s(20.0), s(22.0)));
        assert!(v.is_public());
    }

    #[test]
    fn a_short_practice_interval_hides_the_segment_around_it() {
        let v = Visibility::new(true);
        v.set(s(3.0), false);
        v.set(s(3.5), true);
        assert!(!v.public_throughout(s(2.0), s(4.0)));
        assert!(v.public_throughout(s(4.0), s(6.0)));
    }

    #[test]
    fn repeated_and_backward_switches_keep_the_timeline_ordered() {
        let v = Visibility::new(false);
        v.set(s(5.0), false);
        v.set(s(6.0), true);
        v.set(s(6.5), true);
        v.set(s(4.0), false); // before the latest switch: takes effect at 6 s
        assert!(!v.public_throughout(s(6.0), s(7.0)));
        assert!(!v.is_public());
    }

    #[test]
    fn the_timeline_stays_bounded_and_never_widens_public_media() {
        let v = Visibility::new(false);
        for i in 0..(MAX_SWITCHES as u64 * 2) {
            v.set(Duration::from_millis(i * 10), i % 2 == 0);
        }
        assert!(v.lock().switches.len() <= MAX_SWITCHES);
        assert!(!v.is_public(), "the newest switch (to practice) holds");
        let last = Duration::from_millis((MAX_SWITCHES as u64 * 2 - 2) * 10);
        assert!(v.public_throughout(last, last + Duration::from_millis(5)));
    }

    #[test]
    fn replay_time_puts_the_public_intervals_back_to_back() {
        let mut p = PublicIntervals::default();
        p.add(s(10.0), s(12.0));
        p.add(s(12.0), s(20.0));
        p.add(s(30.0), s(40.0));
        assert_eq!(p.intervals_ms, vec![(10_000, 20_000), (30_000, 40_000)]);
        assert_eq!(p.total_ms(), 20_000);
        assert_eq!(p.to_replay_ms(10_000), Some(0));
        assert_eq!(p.to_replay_ms(35_000), Some(15_000));
        assert_eq!(p.to_replay_ms(25_000), None);
        assert_eq!(
            p.clip_to_replay(15_000, 35_000),
            vec![(5_000, 10_000), (10_000, 15_000)],
            "a chapter across the practice middle keeps its two public pieces"
        );
        assert!(p.clip_to_replay(21_000, 29_000).is_empty());
        assert_eq!(p.clip_to_replay(0, 11_000), vec![(0, 1_000)]);
    }
}
