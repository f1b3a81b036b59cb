//! A rendition's low-latency parts, muxed from its appsinks by [`cmaf_mux`](super::cmaf_mux).
//!
//! GStreamer's `isofmp4mux` did this before. It takes a buffer only while every track has one
//! waiting, so a part was cut when the audio stamped after the video frame that follows the part
//! arrived, about two frames (66 ms at 30 fps) after the part's last frame; and it cost about a
//! third of a passthrough stream's CPU (`perf`, 20 streams). Here a part is cut as soon as the
//! first video frame after it arrives, with the audio that has arrived for its time (publishers
//! interleave by timestamp, so that is all of it, give or take a frame, which then goes into the
//! next part: the audio track stays continuous).
//!
//! The pipeline hands over the video as length-prefixed access units (`stream-format=avc` or
//! `hvc1`, parameter sets in the caps) and the audio as raw AAC frames, each track from its own
//! streaming thread. The grid:
//! - a segment starts at a keyframe once [`SEGMENT_SHARE`] of the segment duration has passed
//!   since the last one (publisher timestamps jitter by a millisecond or so: do not miss a
//!   keyframe by that, as `cut_segments` does), at a publisher's comeback (the keyframe noted in
//!   [`Comeback`]), and where the codec parameters change (a new init section);
//! - a part takes the frames decoded within the part duration of its first one, less
//!   [`PART_SLACK_NS`]: publisher timestamps are whole milliseconds around the frame grid, and at
//!   exactly the part duration a frame stamped a fraction of a millisecond early joined the part
//!   (7 frames, 233 ms, at 30 fps).
//!
//! Without video, parts and segments are cut on the audio's time the same way.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::cmaf_mux::{self, Run, Sample, SampleEntry};
use super::hls::Chunk;
use super::track_frames::{self, Frame, TIMESTAMP_OFFSET_NS, Track, TrackWriter, ns};

/// A segment starts at the first keyframe this share (in percent) of the segment duration in (the
/// MPEG-TS segments are cut by the same rule, in `pipeline::build`).
pub const SEGMENT_SHARE: u128 = 95;
/// How much shorter than the part duration the span of a part's frames may be.
pub const PART_SLACK_NS: i64 = 1_000_000;
/// Audio held waiting for the video (a publisher that stopped sending video keeps at most this
/// many frames, about 2 s at 48 kHz, before a part is cut without it).
const AUDIO_HELD: usize = 96;
/// A comeback's keyframe may be stamped this much before the time noted for it.
const COMEBACK_SLACK_NS: i64 = 50_000_000;
/// A frame this long after the one before (or twice the step before, if longer) comes after a
/// gap.
const MAX_FRAME_GAP_NS: i64 = 1_000_000_000;
/// The audio's decoding time follows its sample count; a jump of more than this from the
/// timestamps (a publisher's gap) restarts it from them.
const AUDIO_RESYNC_NS: i64 = 100_000_000;

/// The running time of a publisher's comeback, set when its first keyframe reaches a rendition's
/// low-latency branch: a segment starts there, and its first part begins a discontinuity.
pub type Comeback = Arc<Mutex<Option<gst::ClockTime>>>;

/// The rendition's segment and part durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub segment: Duration,
    pub part: Duration,
}

/// Connects a rendition's low-latency appsinks (video `ll-{rendition}`, audio
/// `ll-{rendition}-audio`; an audio-only rendition's is `ll-{rendition}`) to a writer that hands
/// each part to `deliver`.
pub fn attach(
    video: Option<gst_app::AppSink>,
    audio: Option<gst_app::AppSink>,
    grid: Grid,
    comeback: Comeback,
    deliver: impl FnMut(Chunk) + Send + 'static,
) {
    let writer = Arc::new(Mutex::new(Writer::new(
        video.as_ref(),
        audio.as_ref(),
        grid,
        comeback,
        Box::new(deliver),
    )));
    track_frames::connect(video, audio, &writer);
}

type Deliver = Box<dyn FnMut(Chunk) + Send>;

struct Writer {
    grid: Grid,
    comeback: Comeback,
    deliver: Deliver,
    has_video: bool,
    has_audio: bool,
    /// The sinks' pads, for a track's caps before its first sample. Weak: the sinks hold the
    /// writer (their callbacks).
    pads: [Option<gst::glib::WeakRef<gst::Pad>>; 2],
    video_entry: Option<SampleEntry>,
    audio_entry: Option<SampleEntry>,
    /// The caps each track's entry was read from (video, audio): read again only when they
    /// change, not for every frame.
    caps: [Option<gst::Caps>; 2],
    /// The tracks of the last init section (video first), `None` before the first.
    written: Option<Vec<SampleEntry>>,
    /// The open part's video frames, in decoding order.
    video: Vec<Frame>,
    /// Audio frames not yet in a part, in order.
    audio: VecDeque<Frame>,
    /// Decoding time of the open part's first frame (audio's without video).
    part_start: Option<i64>,
    /// Presentation time of the open segment's first frame.
    segment_start: Option<i64>,
    /// Presentation minus decoding time of the open segment's keyframe: where a part's decoding
    /// span is in presentation time.
    shift: i64,
    /// The open part starts a segment.
    independent: bool,
    /// The comeback a segment was last started for.
    split_for: Option<gst::ClockTime>,
    /// Where the last part ended (presentation time).
    last_end: Option<i64>,
    /// Decoding time of the next audio sample, in the audio's timescale.
    audio_next: Option<u64>,
    sequence: u32,
    ended: Vec<Track>,
}

impl Writer {
    fn new(
        video: Option<&gst_app::AppSink>,
        audio: Option<&gst_app::AppSink>,
        grid: Grid,
        comeback: Comeback,
        deliver: Deliver,
    ) -> Self {
        let pad = |sink: Option<&gst_app::AppSink>| {
            sink.and_then(|s| s.static_pad("sink"))
                .map(|p| p.downgrade())
        };
        Writer {
            grid,
            comeback,
            deliver,
            has_video: video.is_some(),
            has_audio: audio.is_some(),
            pads: [pad(video), pad(audio)],
            video_entry: None,
            audio_entry: None,
            caps: [None, None],
            written: None,
            video: Vec::new(),
            audio: VecDeque::new(),
            part_start: None,
            segment_start: None,
            shift: 0,
            independent: false,
            split_for: None,
            last_end: None,
            audio_next: None,
            sequence: 0,
            ended: Vec::new(),
        }
    }

    /// Takes a track's caps into its sample description when they changed.
    fn caps(&mut self, track: Track, sample: &gst::Sample) {
        let (slot, entry) = match track {
            Track::Video => (0, &mut self.video_entry),
            Track::Audio => (1, &mut self.audio_entry),
        };
        let Some(caps) = sample.caps() else {
            return;
        };
        if self.caps[slot].as_ref().is_some_and(|c| c.as_ref() == caps) {
            return;
        }
        self.caps[slot] = Some(caps.to_owned());
        if let Some(read) = entry_of(caps) {
            *entry = Some(read);
        }
    }

    /// The tracks an init section would describe now (video first).
    fn entries(&mut self) -> Vec<SampleEntry> {
        for (i, track) in [Track::Video, Track::Audio].into_iter().enumerate() {
            let unknown = match track {
                Track::Video => self.has_video && self.video_entry.is_none(),
                Track::Audio => self.has_audio && self.audio_entry.is_none(),
            };
            if !unknown {
                continue;
            }
            // Caps arrive before a track's first buffer: take them from the pad.
            let caps = self.pads[i]
                .as_ref()
                .and_then(|p| p.upgrade())
                .and_then(|p| p.current_caps());
            let entry = caps.as_ref().and_then(|c| entry_of(c));
            match track {
                Track::Video => self.video_entry = entry,
                Track::Audio => self.audio_entry = entry,
            }
        }
        self.video_entry
            .iter()
            .chain(self.audio_entry.iter())
            .cloned()
            .collect()
    }

    /// Whether the tracks differ from those of the init section written last.
    fn init_due(&mut self) -> bool {
        let now = self.entries();
        self.written.as_ref().is_some_and(|w| *w != now)
    }

    fn video_frame(&mut self, frame: Frame) {
        if self.segment_start.is_none() && !frame.keyframe {
            // Nothing before the first keyframe can be decoded.
            return;
        }
        let segment_due = frame.keyframe
            && (self.segment_elapsed(frame.pts) || self.comeback_at(frame.pts) || self.init_due());
        let part_due = !self.video.is_empty() && (segment_due || self.part_elapsed(frame.dts));
        if part_due {
            // A frame after a gap (a publisher that stalled, or came back) does not stretch the
            // part before it: that part ends a frame after its last one.
            let end = match self.video.last() {
                Some(last)
                    if frame.dts - last.dts > MAX_FRAME_GAP_NS.max(2 * step(&self.video)) =>
                {
                    last.dts + step(&self.video)
                }
                _ => frame.dts,
            };
            self.flush(Some(end.saturating_add(self.shift)));
        }
        if segment_due {
            if self.segment_start.is_none() {
                // The stream's first part: audio from well before its first picture is dropped.
                let from = frame.pts - nanos(self.grid.part);
                self.audio.retain(|a| a.pts >= from);
            }
            self.segment_start = Some(frame.pts);
            self.shift = frame.pts - frame.dts;
            self.independent = true;
            // A segment starting here serves the comeback noted, if any.
            self.split_for = *self.comeback.lock().unwrap_or_else(|p| p.into_inner());
        }
        if self.video.is_empty() {
            self.part_start = Some(frame.dts);
        }
        self.video.push(frame);
    }

    fn audio_frame(&mut self, frame: Frame) {
        if self.has_video {
            self.audio.push_back(frame);
            if self.audio.len() > AUDIO_HELD {
                match (self.segment_start, self.audio.front()) {
                    // No video for a while: a part's worth of the audio goes out without it.
                    (Some(_), Some(oldest)) => {
                        let end = oldest.pts.saturating_add(nanos(self.grid.part));
                        self.flush(Some(end));
                    }
                    // Nothing to go with yet: the oldest is dropped.
                    _ => {
                        self.audio.pop_front();
                    }
                }
            }
            return;
        }
        let segment_due = self.segment_elapsed(frame.pts) || self.init_due();
        let part_due = !self.audio.is_empty() && (segment_due || self.part_elapsed(frame.pts));
        if part_due {
            self.flush(Some(frame.pts));
        }
        if segment_due {
            self.segment_start = Some(frame.pts);
            self.independent = true;
        }
        if self.audio.is_empty() {
            self.part_start = Some(frame.pts);
        }
        self.audio.push_back(frame);
    }

    /// Whether a frame presented at `pts` is far enough into the open segment to start the next
    /// (or there is none yet).
    fn segment_elapsed(&self, pts: i64) -> bool {
        self.segment_start.is_none_or(|start| {
            i128::from(pts.saturating_sub(start)) * 100
                >= (self.grid.segment.as_nanos() * SEGMENT_SHARE) as i128
        })
    }

    /// Whether a frame decoded at `dts` is past the open part.
    fn part_elapsed(&self, dts: i64) -> bool {
        self.part_start.is_some_and(|start| {
            dts.saturating_sub(start) >= nanos(self.grid.part).saturating_sub(PART_SLACK_NS)
        })
    }

    /// Whether a keyframe at `pts` is a publisher's comeback not yet split for.
    fn comeback_at(&self, pts: i64) -> bool {
        let pending = *self.comeback.lock().unwrap_or_else(|p| p.into_inner());
        match pending {
            Some(at) if self.split_for != Some(at) => {
                pts.saturating_add(COMEBACK_SLACK_NS) >= ns(at)
            }
            _ => false,
        }
    }

    /// Hands over the open part, ending at presentation time `end` (at the end of the stream,
    /// `None`: its last frame's end): its video and the audio before `end`.
    fn flush(&mut self, end: Option<i64>) {
        let video = std::mem::take(&mut self.video);
        let boundary = end.unwrap_or(i64::MAX);
        let mut audio = Vec::new();
        while self.audio.front().is_some_and(|a| a.pts < boundary) {
            audio.extend(self.audio.pop_front());
        }
        if video.is_empty() && audio.is_empty() {
            return;
        }
        // A segment starts with an init section when the tracks changed (or at the first).
        let mut init = None;
        if self.independent {
            let entries = self.entries();
            if self.written.as_ref() != Some(&entries) {
                let mut bytes = Vec::new();
                cmaf_mux::init_segment(&mut bytes, &entries);
                init = Some(Bytes::from(bytes));
                self.written = Some(entries);
            }
        }
        // The tracks the decoder knows now; a track not in them has nothing to go in.
        let Some(tracks) = self.written.as_ref() else {
            return;
        };
        let video_track = tracks
            .iter()
            .position(|e| !matches!(e, SampleEntry::Aac { .. }));
        let audio_track = tracks
            .iter()
            .position(|e| matches!(e, SampleEntry::Aac { .. }))
            .map(|t| (t, tracks[t].timescale()));
        let video_end = match end {
            Some(end) => end - self.shift,
            None => video.last().map_or(0, |f| f.dts + step(&video)),
        };
        let mut runs = Vec::new();
        let (video_samples, video_data) = video_run(&video, video_end);
        if let (Some(track), Some(first)) = (video_track, video.first()) {
            runs.push((track, ticks(first.dts, 90_000), video_samples, video_data));
        }
        if let (Some((track, rate)), Some(first)) = (audio_track, audio.first()) {
            let (samples, data) = audio_run(&audio, rate);
            let from_time = ticks(first.pts, rate);
            let base = match self.audio_next {
                Some(next)
                    if (next as i128 - from_time as i128).unsigned_abs()
                        <= (AUDIO_RESYNC_NS as u128 * u128::from(rate) / 1_000_000_000) =>
                {
                    next
                }
                _ => from_time,
            };
            let length: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
            self.audio_next = Some(base + length);
            runs.push((track, base, samples, data));
        }
        if runs.is_empty() {
            return;
        }
        let runs: Vec<Run> = runs
            .iter()
            .map(|(track, base, samples, data)| Run {
                track: *track as u32 + 1,
                base_decode_time: *base,
                samples,
                data,
            })
            .collect();
        self.sequence += 1;
        let mut out = Vec::with_capacity(runs.iter().map(|r| r.data.len()).sum::<usize>() + 1024);
        cmaf_mux::fragment(&mut out, self.sequence, &runs);
        // Where the part is in presentation time: from the last part's end (its first audio
        // frame may start a little before that), or from its first sample after a gap.
        let first = video
            .first()
            .map(|f| f.dts + self.shift)
            .into_iter()
            .chain(audio.first().map(|a| a.pts))
            .min()
            .unwrap_or(0);
        let start = self.last_end.map_or(first, |last| last.max(first));
        let last = video
            .last()
            .map(|_| video_end + self.shift)
            .into_iter()
            .chain(audio.last().map(|a| a.pts + a.duration))
            .max()
            .unwrap_or(start);
        let end = end.unwrap_or(last).max(start + 1);
        self.last_end = Some(end);
        let chunk = Chunk {
            init,
            data: Bytes::from(out),
            duration: Duration::from_nanos((end - start) as u64),
            independent: std::mem::take(&mut self.independent),
            running_time: Duration::from_nanos(start.max(0) as u64),
        };
        (self.deliver)(chunk);
    }
}

impl TrackWriter for Writer {
    fn sample(
        &mut self,
        track: Track,
        sample: &gst::Sample,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(frame) = Frame::of(sample) else {
            return Ok(gst::FlowSuccess::Ok);
        };
        self.caps(track, sample);
        match track {
            Track::Video => self.video_frame(frame),
            Track::Audio => self.audio_frame(frame),
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// At the end of both tracks, the last part goes out.
    fn eos(&mut self, track: Track) {
        if !self.ended.contains(&track) {
            self.ended.push(track);
        }
        let tracks = usize::from(self.has_video) + usize::from(self.has_audio);
        if self.ended.len() == tracks {
            self.flush(None);
        }
    }
}

/// The samples of a part's video (decoding order) and their bytes; the last lasts until
/// `end` (decoding time).
fn video_run(frames: &[Frame], end: i64) -> (Vec<Sample>, Vec<u8>) {
    let mut samples = Vec::with_capacity(frames.len());
    let mut data = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let next = frames.get(i + 1).map_or(end, |f| f.dts);
        let Ok(map) = frame.buffer.map_readable() else {
            continue;
        };
        data.extend_from_slice(&map);
        samples.push(Sample {
            duration: (ticks(next, 90_000).saturating_sub(ticks(frame.dts, 90_000))).max(1) as u32,
            size: map.len() as u32,
            sync: frame.keyframe,
            composition_offset: (ticks(frame.pts, 90_000) as i64 - ticks(frame.dts, 90_000) as i64)
                .clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                as i32,
        });
    }
    (samples, data)
}

/// The samples of a part's audio and their bytes: each lasts its own duration (1024 samples for
/// AAC), so that the track is continuous whatever the publisher's millisecond timestamps say.
fn audio_run(frames: &[Frame], rate: u32) -> (Vec<Sample>, Vec<u8>) {
    let mut samples = Vec::with_capacity(frames.len());
    let mut data = Vec::new();
    for frame in frames {
        let Ok(map) = frame.buffer.map_readable() else {
            continue;
        };
        data.extend_from_slice(&map);
        let duration = match frame.duration {
            0 => 1024,
            d => (i128::from(d) * i128::from(rate) + 500_000_000) / 1_000_000_000,
        };
        samples.push(Sample {
            duration: duration.clamp(1, i128::from(u32::MAX)) as u32,
            size: map.len() as u32,
            sync: true,
            composition_offset: 0,
        });
    }
    (samples, data)
}

/// How long the last of `frames` lasts when nothing follows it: the step from the frame before,
/// else its buffer's duration, else a 30 fps frame.
fn step(frames: &[Frame]) -> i64 {
    match frames {
        [.., a, b] if b.dts > a.dts => b.dts - a.dts,
        [.., b] if b.duration > 0 => b.duration,
        _ => 33_333_333,
    }
}

/// The sample description of a track's caps, if it is one the muxer writes.
fn entry_of(caps: &gst::CapsRef) -> Option<SampleEntry> {
    let s = caps.structure(0)?;
    let config = s
        .get::<gst::Buffer>("codec_data")
        .ok()
        .and_then(|b| b.map_readable().ok().map(|m| m.to_vec()))?;
    let size = |field: &str| {
        s.get::<i32>(field)
            .ok()
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0)
    };
    match s.name().as_str() {
        "video/x-h264" => Some(SampleEntry::Avc {
            config,
            width: size("width"),
            height: size("height"),
        }),
        "video/x-h265" => Some(SampleEntry::Hevc {
            config,
            width: size("width"),
            height: size("height"),
        }),
        "audio/mpeg" => Some(SampleEntry::Aac {
            config,
            rate: s
                .get::<i32>("rate")
                .ok()
                .and_then(|r| u32::try_from(r).ok())?,
            channels: size("channels"),
        }),
        _ => None,
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A running time (ns) in a track's timescale, offset by [`TIMESTAMP_OFFSET_NS`].
fn ticks(running_time: i64, timescale: u32) -> u64 {
    let t = running_time.saturating_add(TIMESTAMP_OFFSET_NS).max(0) as u128;
    ((t * u128::from(timescale) + 500_000_000) / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const AVCC: [u8; 11] = [1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 0, 0x01, 0, 0];
    const ASC: [u8; 2] = [0x11, 0x90];

    fn video_caps(avcc: &[u8]) -> gst::Caps {
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .field("width", 320i32)
            .field("height", 240i32)
            .field("codec_data", gst::Buffer::from_slice(avcc.to_vec()))
            .build()
    }

    fn audio_caps() -> gst::Caps {
        gst::Caps::builder("audio/mpeg")
            .field("mpegversion", 4i32)
            .field("stream-format", "raw")
            .field("rate", 48_000i32)
            .field("channels", 2i32)
            .field("codec_data", gst::Buffer::from_slice(ASC.to_vec()))
            .build()
    }

    fn sample(caps: &gst::Caps, at_ms: i64, keyframe: bool, duration_ms: f64) -> gst::Sample {
        let mut buffer = gst::Buffer::from_slice(vec![0, 0, 0, 2, 0x65, 0x88]);
        {
            let buffer = buffer.get_mut().unwrap();
            let at = gst::ClockTime::from_nseconds((at_ms * MS) as u64);
            buffer.set_pts(at);
            buffer.set_dts(at);
            buffer.set_duration(gst::ClockTime::from_nseconds((duration_ms * 1e6) as u64));
            if !keyframe {
                buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        gst::Sample::builder()
            .buffer(&buffer)
            .caps(caps)
            .segment(&segment)
            .build()
    }

    /// The sample count of each `trun` in a fragment (video first when both are there).
    fn runs(chunk: &Chunk) -> Vec<u32> {
        let data = &chunk.data;
        (0..data.len().saturating_sub(12))
            .filter(|&i| &data[i..i + 4] == b"trun")
            .map(|i| u32::from_be_bytes(data[i + 8..i + 12].try_into().unwrap()))
            .collect()
    }

    type Delivered = Arc<Mutex<Vec<Chunk>>>;

    /// A writer of 2 s segments in 200 ms parts, of audio and (if `video`) video.
    fn writer(video: bool, comeback: Comeback) -> (Writer, Delivered) {
        gst::init().unwrap();
        let delivered = Delivered::default();
        let into = delivered.clone();
        let grid = Grid {
            segment: Duration::from_secs(2),
            part: Duration::from_millis(200),
        };
        let sink = gst_app::AppSink::builder().build();
        let writer = Writer::new(
            video.then_some(&sink),
            Some(&sink),
            grid,
            comeback,
            Box::new(move |chunk| into.lock().unwrap().push(chunk)),
        );
        (writer, delivered)
    }

    /// Feeds 30 fps video and 48 kHz AAC, interleaved by timestamp as publishers send them, from
    /// `from_ms` to `to_ms`, keyframes every 2 s.
    fn feed(writer: &mut Writer, caps: &gst::Caps, from_ms: i64, to_ms: i64) {
        let audio = audio_caps();
        let on = |t: &i64| (from_ms..to_ms).contains(t);
        let mut frames: Vec<(i64, Track)> = (0..)
            .map(|i| i * 1000 / 30)
            .take_while(|t| *t < to_ms)
            .filter(on)
            .map(|t| (t, Track::Video))
            .chain(
                (0..)
                    .map(|i| i * 1024 * 1000 / 48_000)
                    .take_while(|t| *t < to_ms)
                    .filter(on)
                    .map(|t| (t, Track::Audio)),
            )
            .collect();
        frames.sort_by_key(|(t, track)| (*t, *track == Track::Video));
        for (at, track) in frames {
            let sample = match track {
                Track::Video => sample(caps, at, at % 2000 == 0, 1000.0 / 30.0),
                Track::Audio => sample(&audio, at, true, 21.333),
            };
            writer.sample(track, &sample).unwrap();
        }
    }

    #[test]
    fn a_part_goes_out_when_the_next_frame_arrives_with_the_audio_of_its_time() {
        let (mut writer, delivered) = writer(true, Comeback::default());
        let caps = video_caps(&AVCC);
        feed(&mut writer, &caps, 0, 200);
        assert!(
            delivered.lock().unwrap().is_empty(),
            "the part is not complete before its next frame"
        );
        writer
            .sample(Track::Video, &sample(&caps, 200, false, 33.3))
            .unwrap();
        let parts = std::mem::take(&mut *delivered.lock().unwrap());
        assert_eq!(parts.len(), 1);
        let part = &parts[0];
        assert!(part.independent && part.init.is_some());
        // Six frames (0..=167 ms) and the AAC frames stamped before 200 ms (0, 21, …, 192).
        assert_eq!(runs(part), [6, 10]);
        assert_eq!(part.running_time, Duration::ZERO);
        assert_eq!(part.duration, Duration::from_millis(200));

        feed(&mut writer, &caps, 233, 2100);
        let parts = std::mem::take(&mut *delivered.lock().unwrap());
        // Parts of 6 frames from 200 ms to 2 s, contiguous.
        assert_eq!(parts.len(), 9);
        assert!(
            parts
                .iter()
                .all(|p| !p.independent && p.init.is_none() && runs(p)[0] == 6)
        );
        let total: Duration = parts.iter().map(|p| p.duration).sum();
        assert_eq!(total, Duration::from_millis(1800));
        assert_eq!(parts[8].running_time, Duration::from_millis(1800));

        writer.eos(Track::Video);
        assert_eq!(
            delivered.lock().unwrap().len(),
            0,
            "not before both tracks end"
        );
        writer.eos(Track::Audio);
        let last = std::mem::take(&mut *delivered.lock().unwrap());
        assert_eq!(last.len(), 1, "the last part goes out at the end");
        // The keyframe at 2 s started a segment (no new init section: the same tracks).
        assert!(last[0].independent && last[0].init.is_none());
        assert_eq!(last[0].running_time, Duration::from_secs(2));
        assert_eq!(runs(&last[0])[0], 3, "2000, 2033, 2066");
    }

    #[test]
    fn a_gap_does_not_stretch_the_part_before_it() {
        let (mut writer, delivered) = writer(true, Comeback::default());
        let caps = video_caps(&AVCC);
        feed(&mut writer, &caps, 0, 100);
        // The publisher stalls for 3 s.
        writer
            .sample(Track::Video, &sample(&caps, 3100, false, 33.3))
            .unwrap();
        let parts = std::mem::take(&mut *delivered.lock().unwrap());
        assert_eq!(parts.len(), 1);
        // Frames at 0, 33 and 66 ms: the part ends a frame step after the last.
        assert_eq!(parts[0].duration, Duration::from_millis(99));
    }

    #[test]
    fn a_comeback_or_new_codec_parameters_start_a_segment() {
        let comeback = Comeback::default();
        let (mut writer, delivered) = writer(true, comeback.clone());
        let caps = video_caps(&AVCC);
        feed(&mut writer, &caps, 0, 500);
        // The publisher came back: its first keyframe, 0.5 s into a segment, starts one.
        *comeback.lock().unwrap() = Some(gst::ClockTime::from_mseconds(500));
        writer
            .sample(Track::Video, &sample(&caps, 500, true, 33.3))
            .unwrap();
        writer
            .sample(Track::Video, &sample(&caps, 533, false, 33.3))
            .unwrap();
        let parts = std::mem::take(&mut *delivered.lock().unwrap());
        assert!(!parts.last().unwrap().independent);
        writer
            .sample(Track::Video, &sample(&caps, 567, true, 33.3))
            .unwrap();
        // ... once: the keyframe after it does not (the comeback stays noted until its part is
        // delivered).
        writer
            .sample(Track::Video, &sample(&caps, 767, false, 33.3))
            .unwrap();
        let parts = std::mem::take(&mut *delivered.lock().unwrap());
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.independent, runs(p)[0]))
                .collect::<Vec<_>>(),
            [(true, 3)],
            "500, 533 and 567 ms in one part, which starts a segment"
        );
        assert_eq!(parts[0].running_time, Duration::from_millis(500));
        // New codec parameters (a publisher at another size): the next keyframe starts a segment
        // with a new init section.
        let other = video_caps(&[1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 0, 0x01, 0, 0]);
        writer
            .sample(Track::Video, &sample(&other, 800, true, 33.3))
            .unwrap();
        writer
            .sample(Track::Video, &sample(&other, 833, false, 33.3))
            .unwrap();
        let parts = std::mem::take(&mut *delivered.lock().unwrap());
        let part = parts.last().unwrap();
        assert!(!part.independent);
        writer
            .sample(Track::Video, &sample(&other, 867, false, 33.3))
            .unwrap();
        writer
            .sample(Track::Video, &sample(&other, 1100, false, 33.3))
            .unwrap();
        let parts = std::mem::take(&mut *delivered.lock().unwrap());
        let first = &parts[0];
        assert!(first.independent && first.init.is_some(), "{parts:?}");
        assert_eq!(first.running_time, Duration::from_millis(800));
    }

    #[test]
    fn audio_alone_is_cut_on_its_own_time() {
        let (mut writer, delivered) = writer(false, Comeback::default());
        let caps = audio_caps();
        for i in 0..200 {
            writer
                .sample(
                    Track::Audio,
                    &sample(&caps, i * 1024 * 1000 / 48_000, true, 21.333),
                )
                .unwrap();
        }
        writer.eos(Track::Audio);
        let parts = std::mem::take(&mut *delivered.lock().unwrap());
        let frames: u32 = parts.iter().map(|p| runs(p)[0]).sum();
        assert_eq!(frames, 200, "every frame, once");
        assert!(parts[0].independent && parts[0].init.is_some());
        let shape: Vec<(bool, u32)> = parts.iter().map(|p| (p.independent, runs(p)[0])).collect();
        // Ten frames (213 ms) a part; a segment from the first frame 1.9 s in (1920 ms).
        assert_eq!(
            shape[..10],
            [
                (true, 10),
                (false, 10),
                (false, 10),
                (false, 10),
                (false, 10),
                (false, 10),
                (false, 10),
                (false, 10),
                (false, 10),
                (true, 10)
            ]
        );
    }

    #[test]
    fn the_writer_does_not_keep_its_pipeline_alive() {
        let grid = Grid {
            segment: Duration::from_secs(2),
            part: Duration::from_millis(200),
        };
        assert!(
            track_frames::sinks_freed_with_pipeline("ll", |video, audio| {
                attach(video, audio, grid, Comeback::default(), |_| {})
            }),
            "the appsink outlived its pipeline"
        );
    }
}
