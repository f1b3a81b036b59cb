//! A rendition's MPEG-TS segments, written from its appsinks by [`ts_mux`](super::ts_mux).
//!
//! GStreamer's `mpegtsmux ! multifilesink` did this before, at about a third of a passthrough
//! stream's CPU: the muxer makes a buffer per 188-byte packet and the sink gathers them again.
//! Here each access unit is muxed into one reused byte vector and written with one call.
//!
//! The pipeline hands over the video as Annex B access units (in-band parameter sets before each
//! keyframe) and the audio as ADTS frames, each track from its own streaming thread. Audio is held
//! until the video has reached its time, so that the two are interleaved by time and a segment
//! holds the audio of its own span. A segment ends where `cut_segments`' force-key-unit event
//! passes on the track that carries the cuts (the video, else the audio): the file is closed,
//! its end is posted on the bus as [`SEGMENT_CLOSED`] (what `multifilesink` posted), and the next
//! file starts with the program tables.
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::track_frames::{self, Frame, TIMESTAMP_OFFSET_NS, Track, TrackWriter, lock, ns};
use super::ts_mux::{TsMuxer, VideoStream};

/// Element message posted from the rendition's `hls-{rendition}` appsink when a segment file is
/// closed: `filename` (its path) and `running-time` (where it ended).
pub const SEGMENT_CLOSED: &str = "livefront-segment-closed";
/// Audio held waiting for the video (a publisher that stopped sending video keeps at most this
/// many frames, about 2 s at 48 kHz, before they are written without it).
const AUDIO_HELD: usize = 96;

/// The tracks of a rendition's segments.
#[derive(Debug, Clone, Copy)]
pub struct Tracks {
    pub video: Option<VideoStream>,
    pub audio: bool,
}

/// Connects a rendition's appsinks (video `hls-{rendition}` and audio `hls-{rendition}-audio`;
/// an audio-only rendition's is `hls-{rendition}`) to a writer of `dir/segNNNNN.ts`, numbered
/// from `first`.
pub fn attach(
    video: Option<gst_app::AppSink>,
    audio: Option<gst_app::AppSink>,
    dir: &Path,
    first: u32,
    tracks: Tracks,
) {
    // The element the cuts arrive on and the segment messages come from.
    let Some(cuts) = video.clone().or_else(|| audio.clone()) else {
        return;
    };
    let writer = Arc::new(Mutex::new(Writer::new(dir, first, tracks, cuts.clone())));
    let pad = cuts.static_pad("sink");
    if let Some(pad) = pad {
        let writer = writer.clone();
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let Some(event) = info.event() else {
                return gst::PadProbeReturn::Ok;
            };
            if let Ok(cut) = gst_video::DownstreamForceKeyUnitEvent::parse(event)
                && let Some(rt) = cut.running_time
            {
                lock(&writer).cut(rt, cut.count);
            }
            gst::PadProbeReturn::Ok
        });
    }
    track_frames::connect(video, audio, &writer);
}

/// An ADTS frame waiting for the video: its running time (ns, may be negative) and bytes.
struct HeldAudio {
    running_time: i64,
    frame: gst::Buffer,
}

struct Writer {
    dir: PathBuf,
    index: u32,
    tracks: Tracks,
    muxer: TsMuxer,
    /// The open segment file, opened at the first frame after a cut.
    file: Option<(PathBuf, File)>,
    /// Bytes muxed for one frame (reused).
    out: Vec<u8>,
    held: VecDeque<HeldAudio>,
    /// Running time up to which the video has been written.
    video_at: Option<i64>,
    /// Where the media written so far ends (running time, ns): the last segment's end at EOS.
    end: i64,
    /// The count of the last cut taken (a cut is announced once per count).
    last_cut: Option<u32>,
    ended: Vec<Track>,
    /// Posts messages and errors. Weak: the element holds the writer (its callbacks and probe),
    /// and a strong reference back would keep both alive after the pipeline is gone.
    element: gst::glib::WeakRef<gst_app::AppSink>,
    /// A write failed: the error was posted and nothing more is written.
    failed: bool,
}

impl Writer {
    fn new(dir: &Path, first: u32, tracks: Tracks, element: gst_app::AppSink) -> Self {
        Writer {
            dir: dir.to_path_buf(),
            index: first,
            tracks,
            muxer: TsMuxer::new(tracks.video, tracks.audio),
            file: None,
            out: Vec::with_capacity(256 * 1024),
            held: VecDeque::new(),
            video_at: None,
            end: 0,
            last_cut: None,
            ended: Vec::new(),
            element: element.downgrade(),
            failed: false,
        }
    }

    /// Writes the held audio frames timed up to `upto` (all of them with `None`).
    fn release_audio(&mut self, upto: Option<i64>) -> Result<(), gst::FlowError> {
        while let Some(held) = self.held.front() {
            if upto.is_some_and(|upto| held.running_time > upto) {
                break;
            }
            let Some(held) = self.held.pop_front() else {
                break;
            };
            let map = held
                .frame
                .map_readable()
                .map_err(|_| gst::FlowError::Error)?;
            self.out.clear();
            self.muxer
                .write_audio(&mut self.out, ticks(held.running_time), map.as_slice());
            drop(map);
            self.write()?;
        }
        Ok(())
    }

    /// Appends `out` to the open segment, opening the next one (tables first) if none is open.
    fn write(&mut self) -> Result<(), gst::FlowError> {
        if self.file.is_none() {
            let path = self.dir.join(format!("seg{:05}.ts", self.index));
            let mut tables = Vec::with_capacity(2 * 188);
            self.muxer.write_tables(&mut tables);
            let opened = File::create(&path).and_then(|mut f| f.write_all(&tables).map(|()| f));
            match opened {
                Ok(file) => self.file = Some((path, file)),
                Err(e) => return Err(self.fail(&path, &e)),
            }
        }
        let Some((path, file)) = self.file.as_mut() else {
            return Ok(());
        };
        if let Err(e) = file.write_all(&self.out) {
            let path = path.clone();
            return Err(self.fail(&path, &e));
        }
        Ok(())
    }

    /// A segment ends at running time `rt` (ns): what came before goes in it, the file is closed
    /// and its end posted. `count` numbers the cuts; one already taken is ignored.
    fn cut(&mut self, rt: gst::ClockTime, count: u32) {
        if self.failed || self.last_cut == Some(count) {
            return;
        }
        self.last_cut = Some(count);
        let rt = ns(rt);
        if self.release_audio(Some(rt - 1)).is_err() {
            return;
        }
        self.close(rt);
    }

    /// Closes the open segment file, if any, and posts where it ended.
    fn close(&mut self, end: i64) {
        let Some((path, file)) = self.file.take() else {
            return;
        };
        drop(file);
        self.index += 1;
        let structure = gst::Structure::builder(SEGMENT_CLOSED)
            .field("filename", path.to_string_lossy().to_string())
            .field("running-time", end.max(0) as u64)
            .build();
        if let Some(element) = self.element.upgrade() {
            let _ = element.post_message(
                gst::message::Element::builder(structure)
                    .src(&element)
                    .build(),
            );
        }
    }

    /// Posts a write error (the bus takes the branch out, or ends the stream for the source)
    /// and stops writing.
    fn fail(&mut self, path: &Path, error: &std::io::Error) -> gst::FlowError {
        self.failed = true;
        self.file = None;
        if let Some(element) = self.element.upgrade() {
            gst::element_error!(
                element,
                gst::ResourceError::Write,
                ("could not write segment {}: {error}", path.display())
            );
        }
        gst::FlowError::Error
    }
}

impl TrackWriter for Writer {
    fn sample(
        &mut self,
        track: Track,
        sample: &gst::Sample,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.failed {
            return Err(gst::FlowError::Error);
        }
        let Some(Frame {
            pts,
            dts,
            duration,
            keyframe,
            buffer,
        }) = Frame::of(sample)
        else {
            return Ok(gst::FlowSuccess::Ok);
        };
        self.end = self.end.max(pts.saturating_add(duration));
        match track {
            Track::Video => {
                self.release_audio(Some(dts))?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                self.out.clear();
                self.muxer.write_video(
                    &mut self.out,
                    ticks(pts),
                    ticks(dts),
                    keyframe,
                    map.as_slice(),
                );
                self.video_at = Some(dts);
                self.write()?;
            }
            Track::Audio => {
                self.held.push_back(HeldAudio {
                    running_time: pts,
                    frame: buffer,
                });
                let upto = if self.tracks.video.is_none() {
                    None
                } else if self.held.len() > AUDIO_HELD {
                    // No video for a while: write the oldest without it.
                    Some(self.held.front().map_or(pts, |h| h.running_time))
                } else {
                    Some(self.video_at.unwrap_or(i64::MIN))
                };
                self.release_audio(upto)?;
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// At the end of both tracks, the last segment is completed and closed.
    fn eos(&mut self, track: Track) {
        if !self.ended.contains(&track) {
            self.ended.push(track);
        }
        let tracks = usize::from(self.tracks.video.is_some()) + usize::from(self.tracks.audio);
        if self.ended.len() < tracks || self.failed {
            return;
        }
        if self.release_audio(None).is_ok() {
            // To the nearest whole millisecond, like the cut points of publishers' millisecond
            // timestamps: the playlists write times and durations in milliseconds, so a product
            // marker still open at the end ends exactly where the last segment's `EXTINF` says,
            // and a rung whose frames are on videorate's nanosecond grid (…999 ns) ends with the
            // source.
            self.close(round_to_millis(self.end));
        }
    }
}

/// `t` (ns) to the nearest whole millisecond (in ns).
fn round_to_millis(t: i64) -> i64 {
    t.saturating_add(500_000).div_euclid(1_000_000) * 1_000_000
}

/// A running time (ns) in the 90 kHz MPEG-TS clock, offset by [`TIMESTAMP_OFFSET_NS`].
fn ticks(running_time: i64) -> u64 {
    (running_time.saturating_add(TIMESTAMP_OFFSET_NS).max(0) as u128 * 90_000 / 1_000_000_000)
        as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::ts_mux::{AUDIO_PID, VIDEO_PID};

    const MS: u64 = 1_000_000;

    fn sample(at_ms: u64, keyframe: bool, bytes: &[u8]) -> gst::Sample {
        let mut buffer = gst::Buffer::from_slice(bytes.to_vec());
        {
            let buffer = buffer.get_mut().unwrap();
            buffer.set_pts(gst::ClockTime::from_nseconds(at_ms * MS));
            buffer.set_dts(gst::ClockTime::from_nseconds(at_ms * MS));
            buffer.set_duration(gst::ClockTime::from_nseconds(20 * MS));
            if !keyframe {
                buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        gst::Sample::builder()
            .buffer(&buffer)
            .segment(&segment)
            .build()
    }

    /// The PTS (ms since the start) of each PES of `pid` in the MPEG-TS file at `path`.
    fn pes_times(path: &Path, pid: u16) -> Vec<u64> {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(bytes.len() % 188, 0);
        let mut times = Vec::new();
        for packet in bytes.chunks(188) {
            let this = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
            if packet[1] & 0x40 == 0 || this != pid {
                continue;
            }
            let start = match packet[3] & 0x20 {
                0 => 4,
                _ => 5 + usize::from(packet[4]),
            };
            let p = &packet[start + 9..start + 14];
            let pts = (u64::from(p[0] & 0x0E) << 29)
                | (u64::from(p[1]) << 22)
                | (u64::from(p[2] & 0xFE) << 14)
                | (u64::from(p[3]) << 7)
                | (u64::from(p[4]) >> 1);
            times.push((pts - 3600 * 90_000) / 90);
        }
        times
    }

    #[test]
    fn audio_goes_into_the_segment_of_its_time_and_the_last_segment_closes_at_the_end() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sink = gst_app::AppSink::builder().build();
        let tracks = Tracks {
            video: Some(VideoStream::H264),
            audio: true,
        };
        let mut writer = Writer::new(dir.path(), 7, tracks, sink);
        let keyframe = [0, 0, 0, 1, 0x65, 0x88, 0x84];
        let delta = [0, 0, 0, 1, 0x41, 0x9A];
        let aac = [0xFF, 0xF1, 0x50, 0x80, 0x01, 0x1F, 0xFC, 0x21];
        writer
            .sample(Track::Video, &sample(0, true, &keyframe))
            .unwrap();
        writer
            .sample(Track::Audio, &sample(10, true, &aac))
            .unwrap();
        writer
            .sample(Track::Video, &sample(33, false, &delta))
            .unwrap();
        // Ahead of the video: held until the video or the cut reaches their time.
        for at in [40, 60, 70] {
            writer
                .sample(Track::Audio, &sample(at, true, &aac))
                .unwrap();
        }
        writer.cut(gst::ClockTime::from_nseconds(66 * MS), 1);
        // The same cut announced again (a second force-key-unit event) is not a second cut.
        writer.cut(gst::ClockTime::from_nseconds(66 * MS), 1);
        writer
            .sample(Track::Video, &sample(66, true, &keyframe))
            .unwrap();
        writer.eos(Track::Video);
        writer
            .sample(Track::Audio, &sample(90, true, &aac))
            .unwrap();
        writer.eos(Track::Audio);

        let first = dir.path().join("seg00007.ts");
        let second = dir.path().join("seg00008.ts");
        assert_eq!(pes_times(&first, VIDEO_PID), [0, 33]);
        assert_eq!(pes_times(&first, AUDIO_PID), [10, 40, 60]);
        assert_eq!(pes_times(&second, VIDEO_PID), [66]);
        assert_eq!(pes_times(&second, AUDIO_PID), [70, 90]);
        // Both files start with the program tables (PAT on PID 0).
        for path in [&first, &second] {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(&bytes[..3], &[0x47, 0x40, 0x00], "{}", path.display());
        }
        assert!(
            writer.file.is_none(),
            "the last segment is closed at the end"
        );
        assert_eq!(writer.index, 9);
        assert_eq!(writer.end, 110 * MS as i64, "the end of the last frame");
    }

    #[test]
    fn the_writer_does_not_keep_its_pipeline_alive() {
        let dir = tempfile::tempdir().unwrap();
        let tracks = Tracks {
            video: Some(VideoStream::H264),
            audio: true,
        };
        assert!(
            track_frames::sinks_freed_with_pipeline("hls", |video, audio| {
                attach(video, audio, dir.path(), 0, tracks)
            }),
            "the appsink outlived its pipeline"
        );
    }

    #[test]
    fn running_times_become_ticks_an_hour_in() {
        assert_eq!(ticks(0), 3600 * 90_000);
        assert_eq!(ticks(1_000_000_000), 3601 * 90_000);
        // A decoding time before the start (B-frames) stays positive.
        assert_eq!(ticks(-100_000_000), 3600 * 90_000 - 9000);
        assert_eq!(ticks(-TIMESTAMP_OFFSET_NS - 1), 0);
    }

    #[test]
    fn the_last_segment_ends_on_the_nearest_millisecond() {
        // Thirty frames of videorate's grid end a nanosecond short of a second.
        assert_eq!(round_to_millis(999_999_999), 1_000_000_000);
        assert_eq!(round_to_millis(2_133_500_000), 2_134_000_000);
        assert_eq!(round_to_millis(2_133_499_999), 2_133_000_000);
    }
}
