//! Overload: when the machine cannot keep real time, transcoded rungs are dropped from the bottom
//! of the preset's priority list, so the source rendition and the recording never fall behind.
//!
//! Each rung's raw-video queue is leaky; a full queue means its scaler and encoder lag. Sustained
//! overruns (on any rung, or before the decoder) stop the encoder of the least important rung
//! still running (its valves close) and take it out of the master playlist.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::stream::LiveStream;
use crate::pipeline::build::ts_audio_sink;

const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Frames dropped by one queue within one check that count as a strike.
const OVERRUNS_PER_STRIKE: u64 = 5;
/// Consecutive strikes before a rung is dropped.
const STRIKES_TO_DROP: u32 = 3;
/// After dropping a rung, give the machine this long to recover before dropping another.
const COOLDOWN: Duration = Duration::from_secs(10);

/// A leaky queue to watch: a rung's (droppable) or the decoder's (a signal only).
pub struct Watched {
    pub name: String,
    /// Position in the preset's priority list; `None` for queues that are not rungs.
    pub priority: Option<usize>,
    pub overruns: Arc<AtomicU64>,
}

/// Runs while the stream's pipeline runs.
pub async fn watch(stream: Arc<LiveStream>, pipeline: gst::Pipeline, watched: Vec<Watched>) {
    let mut last: Vec<u64> = vec![0; watched.len()];
    let mut active: Vec<(usize, &str)> = watched
        .iter()
        .filter_map(|w| Some((w.priority?, w.name.as_str())))
        .collect();
    active.sort();
    let mut strikes = 0;
    let mut last_drop: Option<Instant> = None;
    let mut ticker = tokio::time::interval(CHECK_EVERY);
    loop {
        ticker.tick().await;
        if !stream.has_pipeline() {
            break;
        }
        let mut lagging = Vec::new();
        for (i, w) in watched.iter().enumerate() {
            let now = w.overruns.load(Ordering::Relaxed);
            if now - last[i] >= OVERRUNS_PER_STRIKE {
                lagging.push(w.name.as_str());
            }
            last[i] = now;
        }
        strikes = if lagging.is_empty() { 0 } else { strikes + 1 };
        let cooled = last_drop.is_none_or(|t| t.elapsed() >= COOLDOWN);
        if strikes < STRIKES_TO_DROP || !cooled {
            continue;
        }
        let Some((_, victim)) = active.pop() else {
            continue;
        };
        stop_rung(&pipeline, victim);
        for out in stream.outputs() {
            out.drop_rendition(victim);
        }
        let warning = format!(
            "rung {victim} dropped: CPU overloaded ({} lagging)",
            lagging.join(", ")
        );
        tracing::warn!(rung = victim, lagging = ?lagging, "dropping a rung: the machine cannot keep real time");
        stream.add_warning(warning);
        strikes = 0;
        last_drop = Some(Instant::now());
    }
}

/// Stops a rung's encoder and closes its last segment: once the valves are closed no more media
/// comes, and an EOS on each input of the rung's segment writer writes the audio it held and
/// closes the file.
fn stop_rung(pipeline: &gst::Pipeline, rung: &str) {
    for valve in [format!("valve-{rung}"), format!("valve-{rung}-audio")] {
        if let Some(v) = pipeline.by_name(&valve) {
            v.set_property("drop", true);
        }
    }
    for name in [format!("hls-{rung}"), ts_audio_sink(rung, true)] {
        if let Some(pad) = pipeline.by_name(&name).and_then(|s| s.static_pad("sink")) {
            pad.send_event(gst::event::Eos::new());
        }
    }
}
