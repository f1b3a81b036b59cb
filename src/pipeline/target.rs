//! Simulcast targets: a branch of a running pipeline that sends one rendition (the source by
//! default, passthrough) to an RTMP(S) or SRT destination. Added and taken out while the pipeline
//! plays, each behind its own leaky queues, so a slow or dead target never holds up HLS, the
//! recording or the other targets.
//!
//! A target is one bin named `target-{id}-{attempt}` (see `branch::Branch::Target`):
//! `queue (leaky) ! h264parse ! flvmux ! rtmp2sink` for RTMP/RTMPS and
//! `queue (leaky) ! h264parse ! mpegtsmux ! srtsink` for SRT, audio likewise through `aacparse`.
//! The source of an H.265 or AV1 publisher is refused (a destination of such a stream picks an
//! H.264 rung as its rendition).
//! Its queues get the branch guard, so an error of its sink never reaches the tees. Its address
//! (which holds the destination's stream key) is set as a property, never put into the
//! description, and never logged.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::Error;
use super::branch;
use crate::ingest::VideoCodec;

/// Media a target's queues hold before they drop the oldest (leaky): a target that cannot keep
/// up loses media, nothing else does.
const TARGET_QUEUE_NS: u64 = 2_000_000_000;
/// How long taking a target out may wait for its tee pads to be idle.
const DETACH_WAIT: Duration = Duration::from_secs(2);
/// RTMP network timeout (connect, writes) in seconds.
const RTMP_TIMEOUT_S: u32 = 5;

/// Where a target sends, with the secret address.
pub enum Sink {
    /// `rtmp://` or `rtmps://` with the stream key as the last path segment.
    Rtmp {
        location: String,
        tls_validation: bool,
    },
    /// `srt://host:port?...&streamid=KEY` (caller).
    Srt { uri: String },
}

/// What to attach.
pub struct TargetSpec {
    /// `target-{id}-{attempt}`: the name of the bin and the prefix of its elements.
    pub name: String,
    pub sink: Sink,
    /// The tees to feed from: video, audio (either may be absent).
    pub video_tee: Option<String>,
    pub audio_tee: Option<String>,
}

/// A target in the pipeline.
pub struct Attached {
    pub name: String,
    bin: gst::Bin,
    sink: gst::Element,
    feeds: Vec<(gst::Element, gst::Pad)>,
    /// Bytes handed to an SRT sink (RTMP reads the sink's own counter).
    counted: Arc<AtomicU64>,
}

fn make(factory: &str, name: String) -> Result<gst::Element, Error> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| Error::Gst(format!("cannot make {factory}")))
}

fn leaky_queue(name: String) -> Result<gst::Element, Error> {
    let q = make("queue", name)?;
    q.set_property_from_str("leaky", "downstream");
    q.set_property("max-size-time", TARGET_QUEUE_NS);
    q.set_property("max-size-buffers", 0u32);
    q.set_property("max-size-bytes", 0u32);
    Ok(q)
}

/// Adds the target to `pipeline` and starts it. Blocking (state changes; an SRT caller connects
/// here): run it off the async threads.
pub fn attach(pipeline: &gst::Pipeline, spec: TargetSpec) -> Result<Attached, Error> {
    let name = spec.name.clone();
    // The source of an H.265 or AV1 publisher (its parser says so) is not sent: FLV has neither,
    // and platforms take H.264. The stream has an H.264 rung for destinations to pick.
    let source_codec = pipeline
        .by_name("parse-video")
        .and_then(|parser| parser.factory())
        .and_then(|factory| VideoCodec::of_parser(&factory.name()))
        .filter(|_| spec.video_tee.as_deref() == Some("tee-video"));
    if let Some(codec) = source_codec.filter(|c| !c.is_universal()) {
        return Err(Error::Gst(format!(
            "{name}: the source is {}, which destinations do not take: set the destination's \
             rendition to an H.264 rung",
            codec.name()
        )));
    }
    let bin = gst::Bin::builder().name(&name).build();
    let (mux, sink) = match &spec.sink {
        Sink::Rtmp {
            location,
            tls_validation,
        } => {
            let mux = make("flvmux", format!("{name}-mux"))?;
            mux.set_property("streamable", true);
            let sink = make("rtmp2sink", format!("{name}-sink"))?;
            sink.set_property("location", location);
            sink.set_property("timeout", RTMP_TIMEOUT_S);
            if !tls_validation {
                sink.set_property_from_str("tls-validation-flags", "no-flags");
            }
            (mux, sink)
        }
        Sink::Srt { uri } => {
            let mux = make("mpegtsmux", format!("{name}-mux"))?;
            mux.set_property("alignment", 7i32);
            let sink = make("srtsink", format!("{name}-sink"))?;
            sink.set_property("uri", uri);
            sink.set_property("wait-for-connection", false);
            (mux, sink)
        }
    };
    sink.set_property("sync", false);
    sink.set_property("async", false);
    bin.add_many([&mux, &sink])?;
    mux.link(&sink)?;
    let counted = Arc::new(AtomicU64::new(0));
    if matches!(spec.sink, Sink::Srt { .. }) {
        let c = counted.clone();
        if let Some(pad) = sink.static_pad("sink") {
            // mpegtsmux (alignment 7) pushes lists of packets.
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, info| {
                    let size = match &info.data {
                        Some(gst::PadProbeData::Buffer(b)) => b.size(),
                        Some(gst::PadProbeData::BufferList(l)) => l.calculate_size(),
                        _ => 0,
                    };
                    c.fetch_add(size as u64, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                },
            );
        }
    }
    let flv = matches!(spec.sink, Sink::Rtmp { .. });
    let mut entries = Vec::new();
    for (track, tee, parser) in [
        ("video", &spec.video_tee, "h264parse"),
        ("audio", &spec.audio_tee, "aacparse"),
    ] {
        let Some(tee) = tee else { continue };
        let tee = pipeline
            .by_name(tee)
            .ok_or_else(|| Error::Gst(format!("no {tee} to feed {name}")))?;
        let queue = leaky_queue(format!("{name}-queue-{track}"))?;
        let parse = make(parser, format!("{name}-parse-{track}"))?;
        if track == "video" {
            parse.set_property("config-interval", -1i32);
        }
        bin.add_many([&queue, &parse])?;
        queue.link(&parse)?;
        let mux_pad = if flv {
            mux.request_pad_simple(track)
        } else {
            mux.request_pad_simple("sink_%d")
        }
        .ok_or_else(|| Error::Gst(format!("{name}: no {track} pad on the muxer")))?;
        parse
            .static_pad("src")
            .ok_or_else(|| Error::Gst("parser without src".into()))?
            .link(&mux_pad)
            .map_err(|e| Error::Gst(format!("{name}: {e:?}")))?;
        let target = queue
            .static_pad("sink")
            .ok_or_else(|| Error::Gst("queue without sink".into()))?;
        let ghost = gst::GhostPad::builder_with_target(&target)?
            .name(track)
            .build();
        bin.add_pad(&ghost)?;
        if track == "video" {
            wait_for_keyframe(&ghost);
        }
        branch::guard_entry(&queue);
        entries.push((tee, ghost));
    }
    if entries.is_empty() {
        return Err(Error::Gst(format!("{name}: nothing to send")));
    }
    pipeline.add(&bin)?;
    let mut feeds = Vec::new();
    let attached = |feeds| Attached {
        name: name.clone(),
        bin: bin.clone(),
        sink: sink.clone(),
        feeds,
        counted: counted.clone(),
    };
    if let Err(e) = bin.sync_state_with_parent() {
        detach(pipeline, attached(feeds));
        return Err(Error::Gst(format!("{name} did not start: {e}")));
    }
    for (tee, ghost) in entries {
        let Some(pad) = tee.request_pad_simple("src_%u") else {
            detach(pipeline, attached(feeds));
            return Err(Error::Gst(format!("{name}: no tee pad")));
        };
        if let Err(e) = pad.link(&ghost) {
            tee.release_request_pad(&pad);
            detach(pipeline, attached(feeds));
            return Err(Error::Gst(format!("{name}: {e:?}")));
        }
        feeds.push((tee, pad));
    }
    Ok(attached(feeds))
}

/// Drops video until the first keyframe: a target joins mid-stream and its receiver can only
/// start decoding there.
fn wait_for_keyframe(pad: &gst::GhostPad) {
    let seen = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if seen.load(Ordering::Relaxed) {
            return gst::PadProbeReturn::Remove;
        }
        match info.buffer() {
            Some(b) if !b.flags().contains(gst::BufferFlags::DELTA_UNIT) => {
                seen.store(true, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            }
            _ => {
                // Taken and handled (flow OK): `Drop` here made GStreamer unref a buffer the
                // bindings had already let go ("gst_mini_object_unref: assertion" criticals).
                info.data.take();
                gst::PadProbeReturn::Handled
            }
        }
    });
}

/// Takes a target out: its tee pads unlinked once idle and given back, then the bin stopped and
/// removed. Blocking: run it off the async threads.
pub fn detach(pipeline: &gst::Pipeline, target: Attached) {
    for (tee, pad) in target.feeds {
        let (tx, rx) = std::sync::mpsc::channel();
        pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
            if let Some(peer) = pad.peer() {
                let _ = pad.unlink(&peer);
            }
            let _ = tx.send(());
            gst::PadProbeReturn::Remove
        });
        if rx.recv_timeout(DETACH_WAIT).is_err() {
            tracing::warn!(target = %target.name, "tee pad not idle in time; unlinking anyway");
            if let Some(peer) = pad.peer() {
                let _ = pad.unlink(&peer);
            }
        }
        tee.release_request_pad(&pad);
    }
    let _ = target.bin.set_state(gst::State::Null);
    let _ = pipeline.remove(&target.bin);
}

/// `text` (a DOT graph of the pipeline) with every target address hidden: they hold stream keys
/// (`location`/`uri`, and the `stream`, `streamid` and `passphrase` properties the sinks derive).
pub fn hide_addresses(text: &str) -> String {
    let mut out = text.to_string();
    for scheme in ["rtmp://", "rtmps://", "srt://"] {
        out = hide_after(&out, scheme, |c| c == '"' || c == '\\' || c.is_whitespace());
    }
    for property in ["stream=", "streamid=", "passphrase="] {
        for quote in ["\\\"", "\""] {
            out = hide_after(&out, &format!("{property}{quote}"), |c| {
                c == '"' || c == '\\'
            });
        }
    }
    out
}

/// Replaces what follows each `marker` (that starts a word) up to `end` with `(hidden)`.
fn hide_after(text: &str, marker: &str, end: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        // DOT labels separate properties with a literal `\n`.
        let starts_word = rest[..i].ends_with("\\n")
            || rest[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
        out.push_str(&rest[..i + marker.len()]);
        let tail = &rest[i + marker.len()..];
        if !starts_word {
            rest = tail;
            continue;
        }
        out.push_str("(hidden)");
        rest = &tail[tail.find(&end).unwrap_or(tail.len())..];
    }
    out.push_str(rest);
    out
}

impl Attached {
    /// Bytes sent so far: RTMP's own count of what went on the wire (0 until connected), what
    /// the SRT sink took otherwise.
    pub fn bytes(&self) -> u64 {
        if self.sink.find_property("stats").is_some()
            && self.sink.factory().is_some_and(|f| f.name() == "rtmp2sink")
        {
            let stats = self.sink.property::<Option<gst::Structure>>("stats");
            return stats
                .and_then(|s| s.get::<u64>("out-bytes-total").ok())
                .unwrap_or(0);
        }
        self.counted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_keys_are_hidden_from_pipeline_graphs() {
        let dot = r#"label="rtmp2sink\nlocation=\"rtmp://h:1935/live/KEY1\"\nstream=\"KEY4\"\nstreamid=\"KEY5\"" x uri="srt://h:9?streamid=KEY2" rtmps://a/b/KEY3 upstream=\"ok\""#;
        let out = hide_addresses(dot);
        assert!(!out.contains("KEY"), "{out}");
        assert!(
            out.contains("rtmp://(hidden)") && out.contains("srt://(hidden)"),
            "{out}"
        );
        assert!(out.contains(r#"upstream=\"ok"#), "{out}");
    }
}
