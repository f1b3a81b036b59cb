//! A crashed run's event playlist read back: whatever reads must render and read back the same.
use std::time::Duration;

use livefront::output::playlist::MediaPlaylist;

fn main() {
    let target = Duration::from_secs(2);
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        if let Ok(list) = MediaPlaylist::parse_event(&text, 6, target) {
            let again = list.render_event(None);
            let back = MediaPlaylist::parse_event(&again, 6, target)
                .unwrap_or_else(|e| panic!("re-reading a rendered restore: {e}\n{again}"));
            assert_eq!(back.segments().len(), list.segments().len(), "{again}");
        }
    });
}
