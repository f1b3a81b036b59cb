//! Branches of a stream's pipeline: what hangs off the ingest's tees (the recording, the poster,
//! RTSP out, each transcoded rung). An error in a branch drops that branch and the stream goes on;
//! only an error in the ingest itself (appsrc, the first parsers, the tees, the decoder, the source
//! rendition's HLS) ends the stream.
//!
//! Which branch an element belongs to follows from its name (`{role}-{rung}`, see
//! `build::describe`). How a failed branch is kept from stopping the rest:
//! - every branch starts with a queue after a tee ([`guard`]): a probe on the queue's sink pad drops
//!   what the tee pushes once the queue's own push downstream failed, so the tee never sees the
//!   branch's error (checked before each buffer, in the tee's thread: no race with the bus). The
//!   RTSP-out appsinks hang off the tees without one: they drop instead of blocking, and their
//!   callbacks never fail;
//! - the bus task then takes the branch out of the pipeline ([`remove`]), so that the pipeline's
//!   EOS no longer waits for the branch's sinks when the stream stops.
use std::collections::HashSet;

use gstreamer as gst;
use gstreamer::prelude::*;

/// A part of the pipeline that can fail on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Branch {
    /// appsrc, parsers, tees, decoder, the source rendition: its failure ends the stream.
    Ingest,
    Recording,
    Poster,
    RtspOut,
    /// A transcoded rendition of the ladder.
    Rung(String),
    /// A simulcast target, `{destination}-{attempt}` (see `target`): the stream owner takes it
    /// out and retries it, not the bus.
    Target(String),
}

impl Branch {
    /// Lower-case name for logs, warnings and metric labels.
    pub fn label(&self) -> String {
        match self {
            Branch::Ingest => "ingest".into(),
            Branch::Recording => "recording".into(),
            Branch::Poster => "poster".into(),
            Branch::RtspOut => "rtsp".into(),
            Branch::Rung(r) => format!("rung {r}"),
            Branch::Target(t) => format!("simulcast target {t}"),
        }
    }

    /// The metric label (`rung` for every rung, so the label set stays small).
    pub fn kind(&self) -> &'static str {
        match self {
            Branch::Ingest => "ingest",
            Branch::Recording => "recording",
            Branch::Poster => "poster",
            Branch::RtspOut => "rtsp",
            Branch::Rung(_) => "rung",
            Branch::Target(_) => "target",
        }
    }
}

/// Roles of a rung's elements (`{role}-{rung}` or `{role}-{rung}-audio`).
const RUNG_ROLES: &[&str] = &[
    "queue", "rate", "scale", "caps", "valve", "enc", "profile", "parse", "tee", "hls", "cmaf",
    "ll", "parse-ll",
];

/// The branch an element belongs to, from its name; `None` for names livefront did not give
/// (GStreamer's `capsfilter3`): look at the element upstream instead.
pub fn of_name(name: &str, rungs: &[&str]) -> Option<Branch> {
    if let Some(rest) = name.strip_prefix("target-") {
        let mut parts = rest.splitn(3, '-');
        if let (Some(id), Some(attempt)) = (parts.next(), parts.next()) {
            return Some(Branch::Target(format!("{id}-{attempt}")));
        }
    }
    if name.starts_with("rec-") || name.starts_with("queue-rec-") || name.starts_with("parse-rec-")
    {
        return Some(Branch::Recording);
    }
    if name.ends_with("-thumb") || name == "thumb-sink" {
        return Some(Branch::Poster);
    }
    if name.starts_with("rtsp-") {
        return Some(Branch::RtspOut);
    }
    for rung in rungs {
        let base = name.strip_suffix("-audio").unwrap_or(name);
        if let Some(role) = base.strip_suffix(rung).and_then(|r| r.strip_suffix('-'))
            && RUNG_ROLES.contains(&role)
        {
            return Some(Branch::Rung(rung.to_string()));
        }
    }
    let ours = [
        "src-", "parse-", "tee-", "hls-", "cmaf-", "ll-", "queue-", "dec",
    ];
    ours.iter()
        .any(|p| name.starts_with(p))
        .then_some(Branch::Ingest)
}

/// The branch of `element`: its own name, else the nearest named element upstream of it.
pub fn of_element(element: &gst::Element, rungs: &[&str]) -> Branch {
    let mut current = element.clone();
    for _ in 0..16 {
        if let Some(branch) = of_name(&current.name(), rungs) {
            return branch;
        }
        let upstream = current
            .sink_pads()
            .first()
            .and_then(|p| p.peer())
            .and_then(|p| p.parent_element());
        match upstream {
            Some(up) => current = up,
            None => break,
        }
    }
    Branch::Ingest
}

/// The elements of `branch`: those named for it and everything downstream of them.
fn members(pipeline: &gst::Pipeline, branch: &Branch, rungs: &[&str]) -> Vec<gst::Element> {
    let mut found: Vec<gst::Element> = pipeline
        .iterate_elements()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| of_name(&e.name(), rungs).as_ref() == Some(branch))
        .collect();
    let mut seen: HashSet<String> = found.iter().map(|e| e.name().to_string()).collect();
    let mut i = 0;
    while let Some(element) = found.get(i).cloned() {
        i += 1;
        for pad in element.src_pads() {
            if let Some(next) = pad.peer().and_then(|p| p.parent_element())
                && seen.insert(next.name().to_string())
            {
                found.push(next);
            }
        }
    }
    found
}

/// Keeps an error of any branch from reaching the tees it hangs off. Call once the pipeline is
/// built: every queue that starts a branch gets the probe.
pub fn guard(pipeline: &gst::Pipeline, rungs: &[&str]) {
    for element in pipeline
        .iterate_elements()
        .into_iter()
        .filter_map(Result::ok)
    {
        let Some(branch) = of_name(&element.name(), rungs) else {
            continue;
        };
        if branch == Branch::Ingest {
            continue;
        }
        let (Some(sink), Some(_)) = (element.static_pad("sink"), element.static_pad("src")) else {
            continue;
        };
        // Only the entry of a branch: fed by an element of another branch (a tee).
        let upstream = sink.peer().and_then(|p| p.parent_element());
        if upstream.is_none_or(|u| of_element(&u, rungs) == branch) {
            continue;
        }
        guard_entry(&element);
    }
}

/// The guard of one branch's entry queue: once its own push downstream failed, what the tee
/// pushes into it is dropped, so the tee never sees the branch's error.
pub fn guard_entry(queue: &gst::Element) {
    let (Some(sink), Some(src)) = (queue.static_pad("sink"), queue.static_pad("src")) else {
        return;
    };
    sink.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            if src.last_flow_result().is_err() {
                // Taken and handled (flow OK) rather than `Drop`, which made GStreamer unref
                // what the bindings had already let go (criticals in the log).
                info.data.take();
                gst::PadProbeReturn::Handled
            } else {
                gst::PadProbeReturn::Ok
            }
        },
    );
}

/// Takes a failed branch out of the pipeline: unlinked from its tees (their request pads given
/// back), stopped, removed. Blocking (state changes): run it off the async threads.
pub fn remove(pipeline: &gst::Pipeline, branch: &Branch, rungs: &[&str]) -> Vec<String> {
    let elements = members(pipeline, branch, rungs);
    let names: HashSet<String> = elements.iter().map(|e| e.name().to_string()).collect();
    for element in &elements {
        for sink in element.sink_pads() {
            let Some(peer) = sink.peer() else { continue };
            let Some(feeder) = peer.parent_element() else {
                continue;
            };
            if names.contains(feeder.name().as_str()) {
                continue;
            }
            let _ = peer.unlink(&sink);
            if peer
                .pad_template()
                .is_some_and(|t| t.presence() == gst::PadPresence::Request)
            {
                feeder.release_request_pad(&peer);
            }
        }
    }
    for element in &elements {
        let _ = element.set_state(gst::State::Null);
    }
    for element in &elements {
        let _ = pipeline.remove(element);
    }
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    /// A tee feeding a "source rendition" and a "recording" whose file sink writes to a full disk.
    #[test]
    fn a_failed_branch_is_cut_off_and_the_rest_flows_on_to_eos() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc name=src-video is-live=true ! video/x-raw,width=64,height=48,framerate=100/1 \
             ! tee name=tee-video ! queue name=queue-hls-video ! fakesink name=hls-source sync=false \
             tee-video. ! queue name=queue-rec-video ! capsfilter ! filesink name=rec-sink location=/dev/full async=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        guard(&pipeline, &[]);
        let shown = Arc::new(AtomicU64::new(0));
        let counter = shown.clone();
        let sink = pipeline.by_name("hls-source").unwrap();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        let bus = pipeline.bus().unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let error = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
            .expect("the recording fails");
        let source = error.src().unwrap().downcast_ref::<gst::Element>().unwrap();
        assert_eq!(source.name(), "rec-sink");
        assert_eq!(of_element(source, &[]), Branch::Recording);
        // The guard alone: the source rendition goes on, no error reaches the ingest (without it,
        // `src-video` stops with "streaming stopped, reason error").
        let before = shown.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(20);
        while shown.load(Ordering::Relaxed) < before + 50 {
            assert!(Instant::now() < deadline, "the source rendition stopped");
            if let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(100),
                &[gst::MessageType::Error],
            ) {
                let name = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                assert!(
                    of_name(&name, &[]) == Some(Branch::Recording),
                    "an error outside the recording: {msg:?}"
                );
            }
        }
        // Then the branch leaves the pipeline.
        let removed = remove(&pipeline, &Branch::Recording, &[]);
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(
            removed
                .iter()
                .all(|n| n.starts_with("capsfilter") || of_name(n, &[]) == Some(Branch::Recording))
        );
        assert!(pipeline.by_name("rec-sink").is_none());
        // EOS no longer waits for the recording's sink.
        pipeline.send_event(gst::event::Eos::new());
        loop {
            let msg = bus
                .timed_pop_filtered(
                    gst::ClockTime::from_seconds(10),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                )
                .expect("EOS");
            if msg.type_() == gst::MessageType::Eos {
                break;
            }
            let name = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
            assert_eq!(of_name(&name, &[]), Some(Branch::Recording), "{msg:?}");
        }
        pipeline.set_state(gst::State::Null).unwrap();
    }

    const RUNGS: &[&str] = &["720p", "240p"];

    fn of(name: &str) -> Option<Branch> {
        of_name(name, RUNGS)
    }

    #[test]
    fn recording_poster_and_rtsp_elements_are_their_own_branches() {
        for name in ["rec-mux", "rec-sink", "queue-rec-video", "parse-rec-audio"] {
            assert_eq!(of(name), Some(Branch::Recording), "{name}");
        }
        for name in [
            "queue-thumb",
            "scale-thumb",
            "enc-thumb",
            "keyframes-thumb",
            "thumb-sink",
        ] {
            assert_eq!(of(name), Some(Branch::Poster), "{name}");
        }
        for name in ["rtsp-video", "rtsp-audio"] {
            assert_eq!(of(name), Some(Branch::RtspOut), "{name}");
        }
    }

    #[test]
    fn every_element_of_a_rung_belongs_to_that_rung() {
        for name in [
            "queue-720p",
            "scale-720p",
            "enc-720p",
            "parse-720p",
            "hls-720p",
            "hls-720p-audio",
            "cmaf-720p",
            "ll-720p",
            "parse-ll-720p",
            "queue-720p-audio",
            "valve-720p-audio",
            "parse-ll-720p-audio",
        ] {
            assert_eq!(of(name), Some(Branch::Rung("720p".into())), "{name}");
        }
        assert_eq!(of("enc-240p"), Some(Branch::Rung("240p".into())));
    }

    #[test]
    fn a_simulcast_target_is_its_own_branch_per_attempt() {
        for name in [
            "target-abc123-2",
            "target-abc123-2-queue-video",
            "target-abc123-2-mux",
            "target-abc123-2-sink",
        ] {
            assert_eq!(of(name), Some(Branch::Target("abc123-2".into())), "{name}");
        }
        assert_ne!(of("target-abc123-3-sink"), of("target-abc123-2-sink"));
    }

    #[test]
    fn the_ingest_and_the_source_rendition_end_the_stream() {
        for name in [
            "src-video",
            "parse-video",
            "tee-audio",
            "parse-hls-video",
            "hls-source",
            "hls-source-audio",
            "cmaf-source",
            "parse-ll-audio",
            "queue-dec",
            "dec",
            "tee-raw",
            // A larger rung's scaling stage that smaller rungs scale from (see
            // `build::scaling_feeds`): the 720p rung's failure must not take the 240p one along.
            "queue-size-720p",
            "tee-size-720p",
        ] {
            assert_eq!(of(name), Some(Branch::Ingest), "{name}");
        }
        // Not named by livefront, or by role: the caller looks upstream (`queue-size-…`).
        assert_eq!(of("size-720p"), None);
        assert_eq!(of("sized-720p"), None);
        assert_eq!(of("capsfilter3"), None);
        assert_eq!(of("pipeline0"), None);
    }
}
