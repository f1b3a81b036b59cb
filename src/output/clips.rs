//! Clips: one MP4 per product-focus interval, cut from a finished (progressive) recording
//! without re-encoding.
//!
//! The cut is the recording's copy pipeline without parsers (`recording::copy_description`:
//! `filesrc ! qtdemux`, `queue`s, `mp4mux faststart=true ! filesink`; every packet of a clip is
//! a packet of the recording, byte for byte) driven by two
//! flushing seeks on the demuxer and gated by pad probes. See [`cut_within`].
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::recording::{self, Ended};

/// How long one cut may take before it is called failed. A cut copies bytes: a minute of 720p
/// takes well under a second; this is for a stuck pipeline, not a slow one.
pub const DEFAULT_CUT_TIMEOUT: Duration = Duration::from_secs(120);

/// Role prefix of the cut pipeline's element names (`clip-demux`, `clip-mux`, ...).
const ROLE: &str = "clip";
/// Application message posted once the demuxer has all its pads.
const PADS_READY: &str = "clip-demux-pads-ready";
/// Application message with the `position` of the keyframe the probe seek landed on.
const KEYFRAME: &str = "clip-keyframe";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("recording {path} does not exist")]
    Missing { path: String },
    #[error("clip i/o on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not a finished mp4 recording")]
    NotARecording { path: String },
    #[error("empty interval {start:?}..{end:?}")]
    EmptyInterval { start: Duration, end: Duration },
    #[error("interval {start:?}..{end:?} lies after the recording's end at {duration:?}")]
    AfterEnd {
        start: Duration,
        end: Duration,
        duration: Duration,
    },
    #[error("no media in {start:?}..{end:?}")]
    NoMedia { start: Duration, end: Duration },
    /// A GStreamer failure: the element path, its message and debug text.
    #[error("cut failed: {0}")]
    Gst(String),
    #[error("cut timed out after {0:?}")]
    Timeout(Duration),
}

/// What a clip actually covers, in the recording's timeline (the clip itself starts at 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Recording time of the clip's first video frame: the keyframe at or before the asked
    /// start (of its first audio frame when the recording has no video).
    pub start: Duration,
    /// `start` plus the clip's duration read back from the written file (`mvhd`: its longer
    /// track, edit lists applied, as players show it).
    pub end: Duration,
    /// Size of the written file.
    pub bytes: u64,
}

/// Cuts `[start, end)` of the progressive MP4 `recording` into the MP4 `out` without
/// re-encoding, with [`DEFAULT_CUT_TIMEOUT`]. See [`cut_within`].
pub fn cut(recording: &Path, out: &Path, start: Duration, end: Duration) -> Result<Cut, Error> {
    cut_within(recording, out, start, end, DEFAULT_CUT_TIMEOUT)
}

/// Cuts `[start, end)` of the progressive MP4 `recording` (H.264 and/or AAC, as
/// [`recording::finalize`] writes it) into the MP4 `out`, copying the coded frames and their
/// codec configuration (`avcC`, AudioSpecificConfig) as they are. `start` and `end` are
/// recording time, as players show it (edit lists applied). Blocking: run it on a blocking
/// thread.
///
/// # How far a cut moves
/// - **Start: back to the last keyframe at or before `start`**, by less than one GOP (the
///   recording's keyframe interval: 2 s from our ladder, up to ~8 s from an OBS publisher left
///   on "auto"), because a clip without re-encoding can only begin on a keyframe. A `start` on
///   a keyframe does not move.
/// - **End: not earlier than `end`.** The clip keeps the video frames decoded before `end`, so
///   it holds every frame shown before `end`. Without B-frames it ends on the first frame
///   boundary at or after `end` (at most one frame later). With B-frames it also keeps the few
///   frames decoded before `end` but shown after it (a B-frame shown before `end` may need
///   them), so the picture may run on by the stream's reordering delay (2–3 frames for x264
///   with 2 B-frames). An `end` past the recording's end is clamped to it.
/// - **Audio** starts on the first AAC frame at or after the keyframe (at most one AAC frame,
///   21 ms at 48 kHz, after the picture: mp4mux drops the frame that straddles the start) and
///   ends with the AAC frame holding `end` (at most 21 ms after it). AAC frames are not split.
///
/// [`Cut`] reports the keyframe's time and the clip's duration as written.
///
/// # How
/// Two plain flushing seeks with `end` as stop. The first, to `start`, only finds the keyframe:
/// qtdemux starts the video on the keyframe at or before the position (from the `stss` table,
/// no scanning). The second seeks to exactly that keyframe, so that video and audio start there
/// together and the new segment starts there; mp4mux writes running time, so the clip starts at
/// 0. Not one `KEY_UNIT | SNAP_BEFORE` seek: qtdemux snaps it to the earliest sample of *any*
/// track at the position, and the AAC frame around a keyframe starts before it, so a start
/// exactly on a keyframe moved back a whole GOP. Not an accurate seek: without decoding, the
/// frames from the keyframe are needed anyway, and mp4mux would drop those before the
/// segment's start. `splitmuxsrc` is for a recording split over several files, which ours is
/// not.
///
/// Until the second seek's segment, a blocking probe on each demuxer pad holds the demuxer so
/// that no frame reaches the muxer. After it, a probe drops what does not belong in the clip
/// (audio pre-roll before the keyframe; video decoded at or after `end`: qtdemux runs on to the
/// next keyframe after its stop), and the muxer gets the segment without its stop, because
/// mp4mux drops any frame shown after the stop, even one that an earlier-shown B-frame needs.
///
/// The clip is written as `out` + `.part` and renamed once complete, so a half-written clip is
/// never seen; on failure the `.part` file is removed.
///
/// # Errors
/// [`Error::Missing`] when `recording` does not exist, [`Error::Io`] when it cannot be read or
/// the clip cannot be written or renamed, [`Error::NotARecording`] when it has no readable
/// `moov`, [`Error::EmptyInterval`] when `end <= start`, [`Error::AfterEnd`] when `start` is at
/// or after the recording's end, [`Error::NoMedia`] when the cut holds no frame,
/// [`Error::Gst`] with the failing element's path, message and debug text, [`Error::Timeout`]
/// after `timeout`.
pub fn cut_within(
    recording: &Path,
    out: &Path,
    start: Duration,
    end: Duration,
    timeout: Duration,
) -> Result<Cut, Error> {
    let deadline = Instant::now() + timeout;
    if end <= start {
        return Err(Error::EmptyInterval { start, end });
    }
    let not_a_recording = || Error::NotARecording {
        path: recording.display().to_string(),
    };
    std::fs::metadata(recording).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::Missing {
            path: recording.display().to_string(),
        },
        _ => io_err(recording)(e),
    })?;
    let duration = recording::mp4_duration(recording)
        .map_err(read_err(recording))?
        .filter(|d| !d.is_zero())
        .ok_or_else(not_a_recording)?;
    if start >= duration {
        return Err(Error::AfterEnd {
            start,
            end,
            duration,
        });
    }
    let end = end.min(duration);
    let (video, audio) = recording::tracks_in(recording).map_err(read_err(recording))?;
    if !video && !audio {
        return Err(not_a_recording());
    }

    let part = part_path(out);
    let clip_start = run(
        recording,
        &part,
        (video, audio),
        start,
        end,
        deadline,
        timeout,
    )
    .and_then(|clip_start| {
        // What players show: the longer track, edit lists applied.
        let duration = recording::mp4_duration(&part)
            .map_err(io_err(&part))?
            .ok_or_else(|| Error::Gst(format!("{} has no duration", part.display())))?;
        Ok((clip_start, duration))
    });
    let (clip_start, duration) = match clip_start {
        Ok(written) => written,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, out).map_err(|e| {
        let _ = std::fs::remove_file(&part);
        io_err(out)(e)
    })?;
    let bytes = std::fs::metadata(out).map_err(io_err(out))?.len();
    Ok(Cut {
        start: clip_start,
        end: clip_start + duration,
        bytes,
    })
}

/// `out` with `.part` appended to its file name.
fn part_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reading the recording's boxes: a file too short for the boxes it announces is not a
/// recording; other failures are i/o.
fn read_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| match source.kind() {
        io::ErrorKind::UnexpectedEof => Error::NotARecording {
            path: path.display().to_string(),
        },
        _ => io_err(path)(source),
    }
}

fn gst_err(e: impl std::fmt::Display) -> Error {
    Error::Gst(e.to_string())
}

/// What the demuxer's pads and the thread driving the cut share.
#[derive(Debug, Default)]
struct Shared {
    /// The seek that finds the keyframe at or before the asked start.
    probe_seek: Option<gst::Seqnum>,
    /// The seek from that keyframe: its data is the clip.
    cut_seek: Option<gst::Seqnum>,
    /// Recording time of the first video and audio frame that went into the clip.
    video_start: Option<Duration>,
    audio_start: Option<Duration>,
}

type TimeSegment = gst::FormattedSegment<gst::ClockTime>;

/// Where a demuxer pad is: no buffer passes before the cut seek's segment.
#[derive(Debug)]
enum Gate {
    /// Holding the demuxer.
    Closed,
    /// Video after the probe seek: its first buffer is the keyframe.
    Probing(TimeSegment),
    /// Sending the clip.
    Open(TimeSegment),
}

/// `position` (a buffer time) in the recording's timeline. qtdemux maps an edit list into
/// the segment (start = media time of the first shown frame, time = 0), so this is what players
/// show. Rate 1 only, which is all the cut uses.
fn stream_time(segment: &TimeSegment, position: gst::ClockTime) -> Duration {
    let ns = |t: Option<gst::ClockTime>| t.map_or(0, |t| t.nseconds() as i128);
    let t = position.nseconds() as i128 - ns(segment.start()) + ns(segment.time());
    Duration::from_nanos(t.clamp(0, u64::MAX as i128) as u64)
}

/// Whether a buffer of the cut belongs in the clip.
///
/// The segment starts at the keyframe: audio before it (qtdemux sends two AAC frames early as
/// decoder pre-roll) is dropped, as mp4mux would drop it. The end: audio stops at the segment's
/// stop (qtdemux already does that); video is cut in decode order, keeping every frame decoded
/// before the stop, because qtdemux runs on to the next keyframe after the stop and because
/// cutting by presentation time could drop a frame that an earlier-shown B-frame needs.
fn keep(buffer: &gst::BufferRef, segment: &TimeSegment, is_video: bool) -> bool {
    let Some(pts) = buffer.pts() else {
        return false;
    };
    if segment.start().is_some_and(|start| pts < start) {
        return false;
    }
    let order = if is_video {
        buffer.dts().unwrap_or(pts)
    } else {
        pts
    };
    segment.stop().is_none_or(|stop| order < stop)
}

/// Posts the keyframe found by the probe seek (stream time), or none, on the bus.
fn report_keyframe(pad: &gst::Pad, position: Option<Duration>) {
    let Some(demux) = pad.parent_element() else {
        return;
    };
    let mut s = gst::Structure::builder(KEYFRAME);
    if let Some(position) = position {
        s = s.field("position", position.as_nanos() as u64);
    }
    let _ = demux.post_message(
        gst::message::Application::builder(s.build())
            .src(&demux)
            .build(),
    );
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gates one demuxer pad with two probes.
///
/// A blocking probe holds every buffer (and an EOS) the demuxer sends before the cut seek, so
/// that nothing but stream-start, caps and segments reaches the muxer; the seeks' flushes
/// release what it holds. It reports the keyframe the probe seek lands on (video) and removes
/// itself at the cut seek's segment. Holding rather than dropping: with GStreamer 1.22 an
/// event dropped by a gstreamer-rs probe is unreffed twice (a CRITICAL per event).
///
/// A second probe drops the buffers of the cut that do not belong in the clip ([`keep`]) and
/// records when the clip starts.
fn gate_pad(pad: &gst::Pad, shared: Arc<Mutex<Shared>>) {
    let is_video = pad.name() == "video_0";
    let gate = Arc::new(Mutex::new(Gate::Closed));
    let hold_gate = gate.clone();
    let hold_shared = shared.clone();
    pad.add_probe(
        gst::PadProbeType::BLOCK | gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            let mut gate = lock(&hold_gate);
            let mut replace = None;
            let ret = match &info.data {
                Some(gst::PadProbeData::Event(event)) => match event.view() {
                    gst::EventView::Segment(s) => {
                        let shared = lock(&hold_shared);
                        let seqnum = Some(event.seqnum());
                        let segment = s.segment().clone().downcast::<gst::ClockTime>().ok();
                        match segment {
                            Some(segment) if seqnum == shared.cut_seek => {
                                // The muxer drops buffers shown after the segment's stop, even
                                // one that an earlier-shown B-frame refers to: the stop is ours.
                                let mut downstream = segment.clone();
                                downstream.set_stop(gst::ClockTime::NONE);
                                replace = Some(
                                    gst::event::Segment::builder(&downstream)
                                        .seqnum(event.seqnum())
                                        .build(),
                                );
                                *gate = Gate::Open(segment);
                                gst::PadProbeReturn::Remove
                            }
                            Some(segment) if seqnum == shared.probe_seek && is_video => {
                                *gate = Gate::Probing(segment);
                                gst::PadProbeReturn::Pass
                            }
                            _ => gst::PadProbeReturn::Pass,
                        }
                    }
                    gst::EventView::Eos(_) => {
                        if matches!(*gate, Gate::Probing(_)) {
                            report_keyframe(pad, None);
                            *gate = Gate::Closed;
                        }
                        gst::PadProbeReturn::Ok
                    }
                    _ => gst::PadProbeReturn::Pass,
                },
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    if let Gate::Probing(segment) = &*gate {
                        report_keyframe(pad, buffer.pts().map(|pts| stream_time(segment, pts)));
                        *gate = Gate::Closed;
                    }
                    gst::PadProbeReturn::Ok
                }
                _ => gst::PadProbeReturn::Pass,
            };
            if let Some(event) = replace {
                info.data = Some(gst::PadProbeData::Event(event));
            }
            ret
        },
    );
    pad.add_probe(gst::PadProbeType::BUFFER, move |_pad, info| {
        let gate = lock(&gate);
        let (Gate::Open(segment), Some(gst::PadProbeData::Buffer(buffer))) = (&*gate, &info.data)
        else {
            return gst::PadProbeReturn::Ok;
        };
        if !keep(buffer, segment, is_video) {
            return super::drop_buffer(info);
        }
        if let Some(pts) = buffer.pts() {
            let time = stream_time(segment, pts);
            let mut shared = lock(&shared);
            let first = if is_video {
                &mut shared.video_start
            } else {
                &mut shared.audio_start
            };
            *first = Some(first.map_or(time, |t| t.min(time)));
        }
        gst::PadProbeReturn::Ok
    });
}

/// Runs the cut pipeline into `part`; returns the recording time of the clip's first frame.
fn run(
    recording: &Path,
    part: &Path,
    (video, audio): (bool, bool),
    start: Duration,
    end: Duration,
    deadline: Instant,
    timeout: Duration,
) -> Result<Duration, Error> {
    gst::init().map_err(gst_err)?;
    let description =
        recording::copy_description(ROLE, recording, part, video, audio, recording::Parse::No);
    let pipeline = gst::parse::launch(&description)
        .map_err(gst_err)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| Error::Gst("the cut description is not a pipeline".into()))?;
    let result = drive(&pipeline, video, start, end, deadline, timeout);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn clock_time(d: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(d.as_nanos().min(u64::MAX as u128) as u64)
}

/// Plays the cut pipeline: waits for the demuxer's pads, seeks to `start` to find the keyframe
/// at or before it, seeks to that keyframe with `end` as stop, and copies until EOS.
///
/// Two plain (non key-unit) seeks, because qtdemux snaps a `KEY_UNIT | SNAP_BEFORE` seek to
/// the earliest sample of any track: the AAC frame holding a keyframe's time starts before it,
/// so a start exactly on a keyframe moved back a whole GOP. A plain seek starts the video on the
/// keyframe at or before the position and keeps the segment at the position; the second seek
/// makes that position the keyframe, so audio and video start there together.
fn drive(
    pipeline: &gst::Pipeline,
    video: bool,
    start: Duration,
    end: Duration,
    deadline: Instant,
    timeout: Duration,
) -> Result<Duration, Error> {
    let element = |name: String| {
        pipeline
            .by_name(&name)
            .ok_or_else(|| Error::Gst(format!("no element {name} in the cut pipeline")))
    };
    let demux = element(format!("{ROLE}-demux"))?;
    // The muxer writes nothing before EOS (faststart), so the sink must not wait to preroll.
    element(format!("{ROLE}-sink"))?.set_property("async", false);
    let bus = pipeline
        .bus()
        .ok_or_else(|| Error::Gst("pipeline without bus".into()))?;

    let shared = Arc::new(Mutex::new(Shared::default()));
    let pad_shared = shared.clone();
    // The pads the copy pipeline links; any other track is left unlinked.
    demux.connect_pad_added(move |_demux, pad| {
        if matches!(pad.name().as_str(), "video_0" | "audio_0") {
            gate_pad(pad, pad_shared.clone());
        }
    });
    demux.connect_no_more_pads(|demux| {
        let ready = gst::message::Application::builder(gst::Structure::new_empty(PADS_READY))
            .src(demux)
            .build();
        let _ = demux.post_message(ready);
    });
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The element that failed has posted why (`timed_pop_filtered` with a zero timeout
        // pops nothing in gstreamer-rs 0.24, hence `pop`).
        let text = std::iter::from_fn(|| bus.pop())
            .find_map(|msg| match msg.view() {
                gst::MessageView::Error(err) => Some(recording::bus_error_text(err)),
                _ => None,
            })
            .unwrap_or_else(|| format!("{}: {e}", pipeline.name()));
        return Err(Error::Gst(text));
    }

    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(Error::Timeout(timeout))
    };
    // Waits for the application message `name`, failing on an error, EOS or the deadline.
    let wait_for = |name: &str| -> Result<gst::Structure, Error> {
        loop {
            let msg = bus
                .timed_pop_filtered(
                    clock_time(remaining()?),
                    &[
                        gst::MessageType::Application,
                        gst::MessageType::Error,
                        gst::MessageType::Eos,
                    ],
                )
                .ok_or(Error::Timeout(timeout))?;
            match msg.view() {
                gst::MessageView::Application(app) => match app.structure() {
                    Some(s) if s.name() == name => return Ok(s.to_owned()),
                    _ => {}
                },
                gst::MessageView::Error(err) => {
                    return Err(Error::Gst(recording::bus_error_text(err)));
                }
                _ => return Err(Error::Gst("the pipeline ended before the cut".into())),
            }
        }
    };
    let seek = |position: Duration, cut: bool| -> Result<(), Error> {
        let event = gst::event::Seek::new(
            1.0,
            gst::SeekFlags::FLUSH,
            gst::SeekType::Set,
            clock_time(position),
            gst::SeekType::Set,
            clock_time(end),
        );
        {
            let mut shared = lock(&shared);
            let slot = if cut {
                &mut shared.cut_seek
            } else {
                &mut shared.probe_seek
            };
            *slot = Some(event.seqnum());
        }
        if demux.send_event(event) {
            Ok(())
        } else {
            Err(Error::Gst(format!(
                "{}: refused the seek to {position:?}..{end:?}",
                demux.path_string()
            )))
        }
    };

    wait_for(PADS_READY)?;
    let keyframe = if video {
        seek(start, false)?;
        let found = wait_for(KEYFRAME)?;
        found
            .get::<u64>("position")
            .map_or(start, Duration::from_nanos)
    } else {
        start
    };
    seek(keyframe, true)?;
    match recording::wait_for_eos(&bus, remaining()?) {
        Ended::Eos => {}
        Ended::Error(text) => return Err(Error::Gst(text)),
        Ended::TimedOut => return Err(Error::Timeout(timeout)),
    }
    let shared = lock(&shared);
    shared
        .video_start
        .or(shared.audio_start)
        .ok_or(Error::NoMedia { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const FPS: u64 = 30;
    /// Keyframe interval of the test recordings, in frames (1 s).
    const GOP_FRAMES: u64 = 30;
    const SECONDS: u64 = 8;
    const AUDIO_RATE: u64 = 48_000;
    const AAC_FRAME_SAMPLES: u64 = 1024;

    fn frame() -> Duration {
        Duration::from_nanos(1_000_000_000 / FPS)
    }

    fn gop() -> Duration {
        frame() * GOP_FRAMES as u32
    }

    fn aac_frame() -> Duration {
        Duration::from_nanos(AAC_FRAME_SAMPLES * 1_000_000_000 / AUDIO_RATE)
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn require(factory: &str, package: &str) {
        assert!(
            gst::ElementFactory::find(factory).is_some(),
            "gstreamer element {factory} is missing: install the Debian package {package}"
        );
    }

    fn run_to_eos(pipeline: &gst::Element) {
        let bus = pipeline.bus().expect("pipeline bus");
        pipeline.set_state(gst::State::Playing).expect("playing");
        let ended = recording::wait_for_eos(&bus, Duration::from_secs(120));
        pipeline.set_state(gst::State::Null).expect("null");
        assert_eq!(ended, Ended::Eos);
    }

    /// A replay's piece whose interval starts mid-GOP (where two joined sessions meet) starts on
    /// the first keyframe inside the interval, never on the one before it.
    #[test]
    fn a_replay_piece_starts_on_a_keyframe_inside_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let recording = record(dir.path(), false);
        let piece = dir.path().join("piece.mp4");
        let s = Duration::from_secs_f64;
        let cut =
            super::super::replay::cut_from_keyframe_in(&recording, &piece, s(2.5), s(2.55), s(6.0))
                .unwrap()
                .expect("a keyframe inside");
        assert_eq!(cut.start, s(3.0), "the next keyframe, not the one at 2 s");
        assert!(piece.exists());
        let none =
            super::super::replay::cut_from_keyframe_in(&recording, &piece, s(2.5), s(2.55), s(2.9))
                .unwrap();
        assert_eq!(
            none.unwrap_err(),
            s(2.0),
            "no keyframe inside: the one before is told"
        );
        assert!(!piece.exists(), "and nothing is kept");
    }

    /// Encodes an 8 s recording like a finalised one: 320x240 at 30 fps H.264 with a keyframe
    /// every second (with or without B-frames), stereo 48 kHz AAC, `mp4mux faststart=true`.
    fn record(dir: &Path, b_frames: bool) -> PathBuf {
        gst::init().expect("gstreamer init");
        for (factory, package) in [
            ("videotestsrc", "gstreamer1.0-plugins-base"),
            ("audiotestsrc", "gstreamer1.0-plugins-base"),
            ("x264enc", "gstreamer1.0-plugins-ugly"),
            ("avenc_aac", "gstreamer1.0-libav"),
            ("h264parse", "gstreamer1.0-plugins-bad"),
            ("aacparse", "gstreamer1.0-plugins-good"),
            ("mp4mux", "gstreamer1.0-plugins-good"),
        ] {
            require(factory, package);
        }
        let path = dir.join(if b_frames { "rec-b.mp4" } else { "rec.mp4" });
        let encoder = if b_frames {
            "speed-preset=veryfast bframes=2"
        } else {
            "tune=zerolatency speed-preset=ultrafast"
        };
        let description = format!(
            "videotestsrc is-live=false pattern=ball num-buffers={video_frames} \
             ! video/x-raw,format=I420,width=320,height=240,framerate={FPS}/1 \
             ! x264enc key-int-max={GOP_FRAMES} option-string=scenecut=0 {encoder} \
             ! h264parse ! queue ! mp4mux name=m faststart=true ! filesink location=\"{location}\" \
             audiotestsrc is-live=false num-buffers={audio_frames} samplesperbuffer={AAC_FRAME_SAMPLES} \
             ! audio/x-raw,rate={AUDIO_RATE},channels=2 ! avenc_aac ! aacparse ! queue ! m.",
            video_frames = SECONDS * FPS,
            audio_frames = SECONDS * AUDIO_RATE / AAC_FRAME_SAMPLES,
            location = path.display(),
        );
        run_to_eos(&gst::parse::launch(&description).expect("recording pipeline"));
        path
    }

    /// A frame's times in the file's timeline (after its edit list), as players show them.
    #[derive(Debug, Clone, Copy)]
    struct Frame {
        pts: Duration,
        end: Duration,
        /// Decode time; before `pts` (even negative) when frames are reordered.
        dts_ns: i128,
        keyframe: bool,
    }

    /// One track as qtdemux reads it: caps, and the frames in decode order.
    #[derive(Debug, Clone)]
    struct Track {
        caps: gst::Caps,
        frames: Vec<Frame>,
    }

    impl Track {
        fn start(&self) -> Duration {
            self.frames.iter().map(|f| f.pts).min().expect("frames")
        }

        fn end(&self) -> Duration {
            self.frames.iter().map(|f| f.end).max().expect("frames")
        }

        /// The caps field `name`, serialised; panics when it is missing so that a comparison
        /// cannot pass on two absent fields.
        fn field(&self, name: &str) -> String {
            let s = self.caps.structure(0).expect("caps structure");
            let value = s
                .value(name)
                .unwrap_or_else(|_| panic!("no {name} in {}", self.caps));
            value.serialize().expect("serialisable").to_string()
        }
    }

    #[derive(Debug, Default)]
    struct Media {
        video: Option<Track>,
        audio: Option<Track>,
    }

    /// Reads every frame of an MP4 through qtdemux, without decoding.
    fn inspect(path: &Path) -> Media {
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("filesrc")
            .property("location", path.to_str().expect("utf-8 path"))
            .build()
            .expect("filesrc");
        let demux = gst::ElementFactory::make("qtdemux")
            .build()
            .expect("qtdemux");
        pipeline.add_many([&src, &demux]).expect("add");
        src.link(&demux).expect("link");
        let media = Arc::new(Mutex::new(Media::default()));
        let pads_media = media.clone();
        let bin = pipeline.clone();
        demux.connect_pad_added(move |_, pad| {
            // Not async: one streaming thread feeds every sink, so none may wait to preroll.
            let sink = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                .expect("fakesink");
            bin.add(&sink).expect("add sink");
            sink.sync_state_with_parent().expect("sink state");
            pad.link(&sink.static_pad("sink").expect("sink pad"))
                .expect("link sink");
            let is_video = pad.name().starts_with("video");
            let media = pads_media.clone();
            let segment = Mutex::new(None::<TimeSegment>);
            let probe = gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM;
            pad.add_probe(probe, move |pad, info| {
                match &info.data {
                    Some(gst::PadProbeData::Event(event)) => {
                        if let gst::EventView::Segment(s) = event.view() {
                            *segment.lock().unwrap() = s.segment().clone().downcast().ok();
                        }
                    }
                    Some(gst::PadProbeData::Buffer(buffer)) => {
                        let segment = segment.lock().unwrap().clone().expect("segment");
                        let pts = buffer.pts().expect("pts");
                        let dts = buffer.dts().unwrap_or(pts);
                        let shift = segment.time().unwrap().nseconds() as i128
                            - segment.start().unwrap().nseconds() as i128;
                        let frame = Frame {
                            pts: stream_time(&segment, pts),
                            end: stream_time(&segment, pts + buffer.duration().expect("duration")),
                            dts_ns: dts.nseconds() as i128 + shift,
                            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                        };
                        let mut media = media.lock().unwrap();
                        let slot = if is_video {
                            &mut media.video
                        } else {
                            &mut media.audio
                        };
                        slot.get_or_insert_with(|| Track {
                            caps: pad.current_caps().expect("caps"),
                            frames: Vec::new(),
                        })
                        .frames
                        .push(frame);
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            });
        });
        run_to_eos(pipeline.upcast_ref());
        std::mem::take(&mut *media.lock().unwrap())
    }

    /// Decodes every frame of every track with ffprobe (another demuxer and other decoders
    /// than GStreamer's); fails on any decoding error. Returns (video, audio) frames decoded.
    fn decode_all(path: &Path) -> (u64, u64) {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-of", "json"])
            .args(["-show_entries", "stream=codec_type,nb_read_frames"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("ffprobe: {e} (install the Debian package ffmpeg)"));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "ffprobe could not decode {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
        let count = |kind: &str| {
            json["streams"]
                .as_array()
                .expect("streams")
                .iter()
                .find(|s| s["codec_type"] == kind)
                .and_then(|s| s["nb_read_frames"].as_str())
                .map_or(0, |n| n.parse().expect("frame count"))
        };
        (count("video"), count("audio"))
    }

    /// The pictures of the first video track as ffmpeg decodes them: time and MD5 of the
    /// pixels, in presentation order.
    fn pictures(path: &Path) -> Vec<(Duration, String)> {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args([
                "-map",
                "0:v:0",
                "-fps_mode",
                "passthrough",
                "-f",
                "framemd5",
                "-",
            ])
            .output()
            .unwrap_or_else(|e| panic!("ffmpeg: {e} (install the Debian package ffmpeg)"));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "ffmpeg could not decode {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let (num, den) = text
            .lines()
            .find_map(|l| l.strip_prefix("#tb 0: "))
            .and_then(|tb| tb.split_once('/'))
            .map(|(n, d)| (n.parse::<u64>().unwrap(), d.parse::<u64>().unwrap()))
            .expect("time base");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let fields: Vec<&str> = l.split(',').map(str::trim).collect();
                let pts: u64 = fields[2].parse().expect("pts");
                (
                    Duration::from_nanos(pts * num * 1_000_000_000 / den),
                    fields[5].to_string(),
                )
            })
            .collect()
    }

    fn within(value: Duration, target: Duration, tolerance: Duration) -> bool {
        value.abs_diff(target) <= tolerance
    }

    /// Everything a clip of `[start, end)` must be, against the recording it was cut from.
    ///
    /// The start moved back to the recording's last keyframe at or before `start`, by less
    /// than a GOP. The clip holds every frame shown in `[keyframe, end)`, each at its recording
    /// time minus the keyframe's, and no frame decoded at or after `end`; so it ends within
    /// one frame of `end`, plus the stream's reordering delay when it has B-frames. The clip
    /// starts at 0 on a keyframe and keeps the recording's codec parameters; its audio spans
    /// the video within one AAC frame at each end (the video's B-frame tail aside); ffprobe
    /// decodes all of it without an error, and every picture shown before `end` decodes to the
    /// same pixels as in the recording.
    fn check_clip(
        recording_path: &Path,
        recording: &Media,
        clip_path: &Path,
        cut: Cut,
        start: Duration,
        end: Duration,
    ) {
        let rec_video = recording.video.as_ref().expect("recording video");
        let rec_audio = recording.audio.as_ref().expect("recording audio");
        let first = rec_video
            .frames
            .iter()
            .rposition(|f| f.keyframe && f.pts <= start)
            .expect("a keyframe before start");
        let keyframe = rec_video.frames[first].pts;
        assert_eq!(cut.start, keyframe, "{cut:?}");
        assert!(start - cut.start < gop(), "{cut:?}");

        let end = end.min(rec_video.end());
        let reordering = rec_video
            .frames
            .iter()
            .map(|f| Duration::from_nanos((f.pts.as_nanos() as i128 - f.dts_ns) as u64))
            .max()
            .unwrap();
        assert!(
            cut.end >= end && cut.end - end <= frame() + reordering,
            "{cut:?} should end within a frame (+{reordering:?} reordering) after {end:?}"
        );
        assert_eq!(cut.bytes, std::fs::metadata(clip_path).unwrap().len());
        assert!(!part_path(clip_path).exists());

        let clip = inspect(clip_path);
        let video = clip.video.as_ref().expect("clip video");
        assert!(
            video.frames[0].keyframe,
            "first frame {:?}",
            video.frames[0]
        );
        assert_eq!(video.start(), Duration::ZERO);
        assert!(
            within(
                video.end(),
                cut.end - cut.start,
                frame() + reordering + ms(1)
            ),
            "clip video ends at {:?}, cut {cut:?}",
            video.end()
        );
        let mut shown: Vec<Duration> = video.frames.iter().map(|f| f.pts + keyframe).collect();
        shown.sort();
        let must_show: Vec<Duration> = rec_video.frames[first..]
            .iter()
            .filter(|f| f.pts < end)
            .map(|f| f.pts)
            .collect();
        let decoded_before_end = rec_video.frames[first..]
            .iter()
            .take_while(|f| f.dts_ns < end.as_nanos() as i128)
            .count();
        for pts in &must_show {
            assert!(
                shown.iter().any(|s| within(*s, *pts, ms(1))),
                "the frame at {pts:?} is missing from the clip"
            );
        }
        assert!(
            shown.len() <= decoded_before_end,
            "{} frames in the clip, {decoded_before_end} decoded before {end:?}",
            shown.len()
        );
        for field in ["codec_data", "width", "height", "profile", "level"] {
            assert_eq!(video.field(field), rec_video.field(field), "video {field}");
        }

        let audio = clip.audio.as_ref().expect("clip audio");
        for field in ["codec_data", "rate", "channels"] {
            assert_eq!(audio.field(field), rec_audio.field(field), "audio {field}");
        }
        assert!(
            within(audio.start(), video.start(), aac_frame())
                && within(audio.end(), video.end(), aac_frame() + reordering),
            "audio {:?}..{:?} should span video {:?}..{:?} within one AAC frame \
             (+{reordering:?} reordering at the end)",
            audio.start(),
            audio.end(),
            video.start(),
            video.end()
        );

        let (video_decoded, audio_decoded) = decode_all(clip_path);
        assert!(video_decoded >= must_show.len() as u64);
        assert_eq!(audio_decoded, audio.frames.len() as u64);

        // Every picture shown before `end` decodes exactly as in the recording: no frame lost
        // a reference.
        let clip_pictures = pictures(clip_path);
        let rec_pictures = pictures(recording_path);
        for pts in &must_show {
            let picture = |pictures: &[(Duration, String)], at: Duration| {
                pictures
                    .iter()
                    .find(|(t, _)| within(*t, at, ms(1)))
                    .map(|(_, md5)| md5.clone())
            };
            let expected = picture(&rec_pictures, *pts).expect("recording picture");
            assert_eq!(
                picture(&clip_pictures, *pts - keyframe),
                Some(expected),
                "picture at {pts:?}"
            );
        }
    }

    #[test]
    fn a_cut_starts_on_the_keyframe_before_start_keeps_the_codecs_and_plays() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(dir.path(), false);
        let out = dir.path().join("clip.mp4");
        let (start, end) = (ms(2_500), ms(5_200));
        let cut = cut(&rec, &out, start, end).unwrap();
        assert_eq!(cut.start, ms(2_000));
        check_clip(&rec, &inspect(&rec), &out, cut, start, end);
    }

    #[test]
    fn a_cut_of_a_recording_with_b_frames_starts_on_a_keyframe_at_zero_and_plays() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(dir.path(), true);
        let recording = inspect(&rec);
        let reordered = recording
            .video
            .as_ref()
            .unwrap()
            .frames
            .windows(2)
            .any(|w| w[1].pts < w[0].pts);
        assert!(reordered, "the recording should have B-frames");
        // Ends on a frame boundary and between two frames: between, the last B-frame shown
        // before the end refers to a frame shown after it.
        for (i, end) in [ms(5_200), ms(5_250)].into_iter().enumerate() {
            let out = dir.path().join(format!("clip-{i}.mp4"));
            let start = ms(2_500);
            let cut = cut(&rec, &out, start, end).unwrap();
            check_clip(&rec, &recording, &out, cut, start, end);
        }
    }

    #[test]
    fn a_cut_starting_on_a_keyframe_does_not_move() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(dir.path(), false);
        let out = dir.path().join("clip.mp4");
        let (start, end) = (ms(3_000), ms(4_000));
        let cut = cut(&rec, &out, start, end).unwrap();
        assert_eq!(cut.start, start);
        check_clip(&rec, &inspect(&rec), &out, cut, start, end);
    }

    #[test]
    fn an_interval_running_past_the_end_is_clamped_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(dir.path(), false);
        let out = dir.path().join("clip.mp4");
        let (start, end) = (ms(7_500), ms(20_000));
        let cut = cut(&rec, &out, start, end).unwrap();
        let duration = recording::mp4_duration(&rec).unwrap().unwrap();
        assert!(
            within(cut.end, duration, ms(1)),
            "{cut:?} should end at {duration:?}"
        );
        check_clip(&rec, &inspect(&rec), &out, cut, start, end);
    }

    #[test]
    fn a_recording_without_video_is_cut_on_audio_frames() {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("audio.mp4");
        let description = format!(
            "audiotestsrc is-live=false num-buffers={frames} samplesperbuffer={AAC_FRAME_SAMPLES} \
             ! audio/x-raw,rate={AUDIO_RATE},channels=2 ! avenc_aac ! aacparse \
             ! mp4mux faststart=true ! filesink location=\"{location}\"",
            frames = 4 * AUDIO_RATE / AAC_FRAME_SAMPLES,
            location = rec.display(),
        );
        gst::init().unwrap();
        run_to_eos(&gst::parse::launch(&description).expect("recording pipeline"));
        let out = dir.path().join("clip.mp4");
        let (start, end) = (ms(1_000), ms(2_000));
        let cut = cut(&rec, &out, start, end).unwrap();
        assert!(
            cut.start >= start && cut.start - start < aac_frame(),
            "{cut:?}"
        );
        assert!(cut.end >= end && cut.end - end < aac_frame(), "{cut:?}");
        let clip = inspect(&out);
        assert!(clip.video.is_none());
        let audio = clip.audio.as_ref().expect("clip audio");
        assert_eq!(audio.start(), Duration::ZERO);
        let (_, decoded) = decode_all(&out);
        assert_eq!(decoded, audio.frames.len() as u64);
    }

    #[test]
    fn an_interval_after_the_end_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(dir.path(), false);
        let out = dir.path().join("clip.mp4");
        let result = cut(&rec, &out, ms(9_000), ms(10_000));
        assert!(
            matches!(result, Err(Error::AfterEnd { duration, .. }) if duration >= ms(8_000)),
            "{result:?}"
        );
        assert!(!out.exists() && !part_path(&out).exists());
    }

    #[test]
    fn an_empty_interval_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("never-read.mp4");
        let out = dir.path().join("clip.mp4");
        for (start, end) in [(ms(3_000), ms(3_000)), (ms(4_000), ms(3_000))] {
            let result = cut(&rec, &out, start, end);
            assert!(
                matches!(result, Err(Error::EmptyInterval { .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn a_missing_recording_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("clip.mp4");
        let result = cut(&dir.path().join("none.mp4"), &out, ms(0), ms(1_000));
        assert!(matches!(result, Err(Error::Missing { .. })), "{result:?}");
        assert!(!out.exists() && !part_path(&out).exists());
    }

    #[test]
    fn a_file_that_is_not_an_mp4_is_not_a_recording() {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("notes.mp4");
        std::fs::write(&rec, "product notes, not a video\n".repeat(100)).unwrap();
        let out = dir.path().join("clip.mp4");
        let result = cut(&rec, &out, ms(0), ms(1_000));
        assert!(
            matches!(result, Err(Error::NotARecording { .. })),
            "{result:?}"
        );
        assert!(!out.exists() && !part_path(&out).exists());
    }

    #[test]
    fn a_gstreamer_failure_names_the_element() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(dir.path(), false);
        let out = dir.path().join("no-such-folder").join("clip.mp4");
        let result = cut(&rec, &out, ms(2_500), ms(5_200));
        assert!(
            matches!(&result, Err(Error::Gst(text)) if text.contains("clip-sink")),
            "{result:?}"
        );
    }

    #[test]
    fn a_cut_past_its_timeout_fails_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(dir.path(), false);
        let out = dir.path().join("clip.mp4");
        let result = cut_within(&rec, &out, ms(2_500), ms(5_200), Duration::ZERO);
        assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
        assert!(!out.exists() && !part_path(&out).exists());
    }
}
