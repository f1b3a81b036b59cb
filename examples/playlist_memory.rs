//! Bytes one rendition's playlist holds in memory after N segments (issue 17, bench/README.md
//! "Soak memory"): a counting allocator around a playlist that lists CMAF segments as a stream's
//! output does (2 s, ten parts each, one init section, its size known), flushed to its event list on
//! disk after each segment, and a marker every 500 segments that ends 100 segments later.
//!
//! `cargo run --release --example playlist_memory` prints, for each N, the bytes held and the
//! bytes per segment past the first N.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use livefront::output::daterange::Marker;
use livefront::output::playlist::{MediaPlaylist, Part, Segment};

/// Bytes allocated and not freed, process-wide.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SEGMENT: Duration = Duration::from_secs(2);

fn segment(n: u64, map: &Arc<str>) -> Segment {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 4, 18, 0, 0).unwrap();
    let start = t0 + chrono::TimeDelta::milliseconds(2000 * n as i64);
    let mut s = Segment::new(format!("seg{n:05}.m4s"), SEGMENT, start);
    s.bytes = 60_000 + n % 1000;
    s.map = Some(map.clone());
    s.parts = (0..10)
        .map(|i| Part {
            uri: format!("part{n:05}.{i}.m4s"),
            duration: SEGMENT / 10,
            independent: i == 0,
        })
        .collect();
    s
}

fn marker(n: u64, ended: bool) -> Marker {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 4, 18, 0, 0).unwrap();
    let at = |n: u64| t0 + chrono::TimeDelta::milliseconds(2000 * n as i64 + 10);
    let id = if ended { n - 100 } else { n };
    Marker {
        id: format!("focus-{id}"),
        class: "com.livefront.product".into(),
        start: at(id),
        end: ended.then(|| at(n)),
        attributes: vec![("X-PRODUCT-ID".into(), format!("product-{id}"))],
    }
}

/// Bytes held by a playlist of `n` segments.
fn held_after(n: u64, dir: &std::path::Path) -> isize {
    let map: Arc<str> = Arc::from("init00000.mp4");
    let before = LIVE.load(Ordering::Relaxed);
    let mut pl = MediaPlaylist::on_disk(dir.join(format!("event-{n}.m3u8")), 6, SEGMENT);
    for i in 0..n {
        pl.push(segment(i, &map));
        match i % 500 {
            0 => pl.set_marker(marker(i, false)),
            100 if i > 100 => pl.set_marker(marker(i, true)),
            _ => {}
        }
        pl.flush().expect("event list written");
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    assert_eq!(pl.segment_count(), n);
    drop(pl);
    held
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counts = [1_800u64, 7_200, 43_200];
    let held: Vec<isize> = counts.iter().map(|&n| held_after(n, dir.path())).collect();
    for (n, bytes) in counts.iter().zip(&held) {
        let hours = *n as f64 * SEGMENT.as_secs_f64() / 3600.0;
        println!("{n:>6} segments ({hours:>4.1} h of stream): {bytes:>8} bytes held");
    }
    let per_segment = (held[2] - held[0]) as f64 / (counts[2] - counts[0]) as f64;
    println!(
        "growth from {} to {} segments: {per_segment:.2} bytes per segment, {:.0} bytes per stream-hour",
        counts[0],
        counts[2],
        per_segment * 1800.0
    );
}
