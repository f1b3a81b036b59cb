//! A crashed run's event playlist read back: whatever reads must continue (one more segment after
//! its last) and read back the same.
use std::time::Duration;

use livefront::output::playlist::{MediaPlaylist, Segment};

fn main() {
    let target = Duration::from_secs(2);
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        if let Ok(mut list) = MediaPlaylist::parse_event(&text, 6, target) {
            if let Some(at) = list.last_segment().map(Segment::end) {
                list.reopen();
                list.push(Segment::new("seg99999.ts", target, at));
            }
            list.flush().expect("a list in memory is written");
            let again = list.render_event(None).expect("a list in memory is read");
            let back = MediaPlaylist::parse_event(&again, 6, target)
                .unwrap_or_else(|e| panic!("re-reading a continued restore: {e}\n{again}"));
            assert_eq!(back.segment_count(), list.segment_count(), "{again}");
        }
    });
}
