//! HLS playlists as plain data over m3u8-rs: the segments a rendition's pipeline has closed go in, playlist
//! text comes out. No GStreamer here, so every rule of RFC 8216 that matters to players is unit-tested.
//!
//! One [`MediaPlaylist`] per rendition holds every segment since the stream started and renders two views:
//! - [`MediaPlaylist::render_live`]: the sliding window served as `index.m3u8` while live;
//! - [`MediaPlaylist::render_event`]: everything since the start (`EXT-X-PLAYLIST-TYPE:EVENT`), also written to
//!   disk so that [`MediaPlaylist::parse_event`] can rebuild the state after a crash.
//!
//! Once [`MediaPlaylist::end`] is called both views render the complete list as VOD with `EXT-X-ENDLIST`.
//!
//! Low-latency HLS (RFC 8216bis): a segment may carry its init section (`EXT-X-MAP`, fMP4) and its parts
//! (`EXT-X-PART`, written through `m3u8_rs::MediaSegment::unknown_tags`, which m3u8-rs writes before the
//! segment's `EXTINF`). [`MediaPlaylist::render_low_latency`] adds what m3u8-rs does not model: the
//! playlist-level tags (`EXT-X-SERVER-CONTROL`, `EXT-X-PART-INF`, `EXT-X-SKIP` of a delta update) spliced into
//! the header, and the live edge after the last closed segment (the open segment's parts,
//! `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`), described by a [`LiveEdge`].

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

use super::daterange::Marker;
use super::event_list::EventList;
use super::listed_names::ListedNames;

/// Segments in the live window while a stream is live (DESIGN.md, "Media defaults").
pub const DEFAULT_WINDOW: usize = 6;

/// `EXT-X-VERSION` written today: 3 is the lowest version that allows decimal `EXTINF` durations
/// (RFC 8216 §7). Nothing else we write needs more: `EXT-X-PROGRAM-DATE-TIME`, `EXT-X-INDEPENDENT-SEGMENTS`,
/// `EXT-X-DISCONTINUITY-SEQUENCE` and `EXT-X-PLAYLIST-TYPE` carry no version requirement.
const VERSION_DECIMAL_EXTINF: usize = 3;
/// `EXT-X-MAP` outside I-frame playlists needs 6 (RFC 8216 §7).
const VERSION_MAP: usize = 6;
/// `EXT-X-SKIP` (a delta update) needs 9 (RFC 8216bis §7).
const VERSION_SKIP: usize = 9;
/// Decimal places of `EXT-X-PART` durations: fine enough that parts add up to their segment's `EXTINF`.
const PART_DECIMALS: usize = 5;
/// Parts are listed for segments that end within this many target durations of the live edge
/// (RFC 8216bis §6.2.2 asks to remove older ones).
const PART_LISTING_TARGETS: u32 = 3;
/// Segments further than this many target durations from the live edge forget their parts: no
/// playlist lists them again, and a long stream would otherwise keep every part it ever had (twice
/// the listing horizon, so that a target duration raised later still finds the parts it lists).
const PART_KEEPING_TARGETS: u32 = 2 * PART_LISTING_TARGETS;
/// Playlist-level tags m3u8-rs writes before the first segment.
const HEADER_TAGS: [&str; 9] = [
    "#EXTM3U",
    "#EXT-X-VERSION:",
    "#EXT-X-TARGETDURATION:",
    "#EXT-X-MEDIA-SEQUENCE:",
    "#EXT-X-DISCONTINUITY-SEQUENCE:",
    "#EXT-X-PLAYLIST-TYPE:",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    "#EXT-X-START:",
    "#EXT-X-I-FRAMES-ONLY",
];

/// Decimal places of `EXTINF` (milliseconds).
const EXTINF_DECIMALS: usize = 3;
/// Segments rendered at a time (see `render_with`).
const RENDER_BATCH: usize = 64;
/// About what one segment takes in a rendered playlist (`EXTINF`, `PROGRAM-DATE-TIME`, URI).
const SEGMENT_TEXT_BYTES: usize = 80;

/// Errors of [`MediaPlaylist::parse_event`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an m3u8 playlist: no #EXTM3U header")]
    NotAPlaylist,
    #[error("expected a media playlist, found a master playlist")]
    NotAMediaPlaylist,
    #[error("playlist cannot be read from line {line} on")]
    Unparsed { line: usize },
    #[error("segment {uri} has an invalid duration {extinf}")]
    InvalidDuration { uri: String, extinf: f32 },
    #[error("segment {uri} has no program date time")]
    MissingProgramDateTime { uri: String },
    #[error("{uri:?} is not a file name this server writes")]
    InvalidUri { uri: String },
    #[error("segment {uri} is dated outside the years 1970-9999")]
    DateOutOfRange { uri: String },
}

/// Whether `uri` is a plain file name as the server writes them (`seg00001.ts`, `init00000.mp4`):
/// anything else in a playlist on disk was not written by it, and would not read back the same.
fn is_file_name(uri: &str) -> bool {
    !uri.is_empty()
        && uri.len() <= 128
        && !uri.starts_with('.')
        && uri
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A closed media segment.
///
/// Build it with [`Segment::new`] and set the other fields, rather than with a struct literal.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// File name relative to the playlist, e.g. `seg00012.ts`.
    pub uri: String,
    pub duration: Duration,
    /// Wall-clock time of the segment's first sample.
    pub program_date_time: DateTime<Utc>,
    /// First segment after a publisher reconnect (timestamps and possibly codec parameters start over).
    pub discontinuity: bool,
    /// Size on disk; 0 when unknown (e.g. after [`MediaPlaylist::parse_event`]).
    pub bytes: u64,
    /// Its init section (fMP4): `EXT-X-MAP` is written wherever it changes. Segments with the same
    /// init section share one copy of its name (see [`MediaPlaylist::push`]).
    pub map: Option<Arc<str>>,
    /// Its parts (low-latency HLS), listed while the segment is near the live edge.
    pub parts: Vec<Part>,
}

/// A partial segment (`EXT-X-PART`, RFC 8216bis §4.4.4.9).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub duration: Duration,
    /// Starts with a keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
}

/// Another rendition's live edge (`EXT-X-RENDITION-REPORT`).
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    /// Relative to the playlist that carries the report, e.g. `../720p/index.m3u8`.
    pub uri: String,
    pub last_msn: u64,
    pub last_part: u64,
}

/// What a low-latency live playlist shows besides its closed segments.
#[derive(Debug, Clone)]
pub struct LiveEdge {
    pub part_target: Duration,
    /// `PART-HOLD-BACK` in parts.
    pub hold_back_parts: u32,
    /// Parts of the segment being written, after the last closed segment.
    pub open: Vec<Part>,
    /// The open segment is the first of a new publish.
    pub open_discontinuity: bool,
    /// The open segment's init section.
    pub open_map: Option<String>,
    /// The part expected next (`EXT-X-PRELOAD-HINT`).
    pub hint: Option<String>,
    pub reports: Vec<RenditionReport>,
    /// `_HLS_skip=YES`: replace the segments older than `CAN-SKIP-UNTIL` with `EXT-X-SKIP`.
    pub skip: bool,
}

impl Segment {
    /// When the segment ends (its date plus its duration; the latest date there is if that
    /// cannot be added).
    pub fn end(&self) -> DateTime<Utc> {
        chrono::TimeDelta::from_std(self.duration)
            .ok()
            .and_then(|d| self.program_date_time.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Where the segment ends as written: its written date plus its written `EXTINF`, in
    /// milliseconds since the epoch (see [`written_ms`]).
    fn written_end_ms(&self) -> i64 {
        written_ms(self.program_date_time)
            .saturating_add(i64::try_from(extinf_millis(self.duration)).unwrap_or(i64::MAX))
    }

    /// A segment that continues the previous one, of unknown size.
    pub fn new(
        uri: impl Into<String>,
        duration: Duration,
        program_date_time: DateTime<Utc>,
    ) -> Self {
        Self {
            uri: uri.into(),
            duration,
            program_date_time,
            discontinuity: false,
            bytes: 0,
            map: None,
            parts: Vec::new(),
        }
    }
}

/// The segments of one rendition and the playlist state that must survive between renders.
///
/// Memory holds what is bounded: the live window (and any segment not yet on the event list), the
/// markers still open or near the window, running totals, and the runs of file names listed
/// (see [`ListedNames`]). The event list (every segment since the start) is an [`EventList`],
/// a file for a stream's playlists ([`MediaPlaylist::on_disk`]): [`MediaPlaylist::flush`] appends
/// the segments closed since the last flush, in the text a render of the whole list writes.
#[derive(Debug)]
pub struct MediaPlaylist {
    /// The segments of the live window and those not written to the event list yet, oldest first.
    segments: Vec<Segment>,
    /// Media sequence number of `segments[0]`.
    recent_sequence: u64,
    /// Media sequence number of the first segment ever (the event list's `EXT-X-MEDIA-SEQUENCE`).
    event_sequence: u64,
    /// Discontinuity sequence number of the first segment ever (discontinuity tags removed before it).
    event_discontinuity_sequence: u64,
    /// Discontinuities among the segments before `segments[0]` (no longer in memory).
    dropped_discontinuities: u64,
    /// Index in `segments` of the first segment of the live window; only moves forward, so
    /// `EXT-X-MEDIA-SEQUENCE` of the live view never decreases.
    live_start: usize,
    /// How many of `segments` (the first ones) the event list has.
    written: usize,
    ended: bool,
    /// Segments in the live window (at least 1).
    window: usize,
    /// `EXT-X-TARGETDURATION` in seconds: the configured target rounded up, raised by every segment ever
    /// pushed and never lowered.
    target_duration: u64,
    /// `EXT-X-DATERANGE` markers, in the order they were set; each is written before the segment
    /// its start falls in. Those that ended before the live window are forgotten once written.
    markers: Vec<Listed>,
    totals: Totals,
    /// File names of every segment and init section since the start.
    names: ListedNames,
    event: EventList,
    /// The init section of the last segment on the event list.
    event_map: Option<Arc<str>>,
    /// The event list ends with `EXT-X-ENDLIST`.
    event_closed: bool,
}

/// A marker, and where the event list has it.
#[derive(Debug, Clone)]
struct Listed {
    marker: Marker,
    on_list: OnList,
    /// Changed since it was written (its end became known): its line is rewritten.
    changed: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum OnList {
    /// Not yet: it starts after the last segment written (it belongs to the open one).
    No,
    /// Its line (with the newline), at these bytes of the event list's body.
    At(Range<u64>),
    /// Left out: it ended without covering a segment of the list (media the list leaves out).
    LeftOut,
}

/// What every segment since the start adds up to.
#[derive(Debug, Clone, Default)]
struct Totals {
    count: u64,
    duration: Duration,
    /// Of the segments whose bit rate is known (size and duration not 0).
    peak_bandwidth: Option<u64>,
    measured_bytes: u128,
    measured_nanos: u128,
    measured: u64,
    /// Some segment has an init section (`EXT-X-MAP`).
    has_map: bool,
}

impl Totals {
    fn add(&mut self, s: &Segment) {
        self.count += 1;
        self.duration = self.duration.saturating_add(s.duration);
        self.has_map |= s.map.is_some();
        if s.bytes > 0 && !s.duration.is_zero() {
            let rate = bits_per_second(u128::from(s.bytes), s.duration.as_nanos());
            self.peak_bandwidth = self.peak_bandwidth.max(Some(rate));
            self.measured_bytes += u128::from(s.bytes);
            self.measured_nanos += s.duration.as_nanos();
            self.measured += 1;
        }
    }
}

impl MediaPlaylist {
    /// An empty playlist with a live window of `window` segments (at least 1) and the configured segment
    /// target (e.g. 2 s), which is the floor of `EXT-X-TARGETDURATION`. Its event list is kept in
    /// memory: for lists that stay short (tests); a stream's go to disk ([`MediaPlaylist::on_disk`]).
    pub fn new(window: usize, target: Duration) -> Self {
        Self::with_event_list(window, target, EventList::memory())
    }

    /// [`MediaPlaylist::new`] with the event list kept in the file `path` (written by
    /// [`MediaPlaylist::flush`]).
    pub fn on_disk(path: PathBuf, window: usize, target: Duration) -> Self {
        Self::with_event_list(window, target, EventList::file(path))
    }

    fn with_event_list(window: usize, target: Duration, event: EventList) -> Self {
        Self {
            segments: Vec::new(),
            recent_sequence: 0,
            event_sequence: 0,
            event_discontinuity_sequence: 0,
            dropped_discontinuities: 0,
            live_start: 0,
            written: 0,
            ended: false,
            window: window.max(1),
            target_duration: configured_target_secs(target),
            markers: Vec::new(),
            totals: Totals::default(),
            names: ListedNames::default(),
            event,
            event_map: None,
            event_closed: false,
        }
    }

    /// Where the event list is kept, if in a file.
    pub fn event_path(&self) -> Option<&Path> {
        self.event.path()
    }

    /// Adds a marker, or replaces the one with the same id (its end became known). Also after the
    /// end: a VOD list gets the end of the marker that was open when the stream stopped.
    pub fn set_marker(&mut self, marker: Marker) {
        match self.markers.iter_mut().find(|l| l.marker.id == marker.id) {
            Some(l) if l.marker != marker => {
                l.marker = marker;
                l.changed = true;
            }
            Some(_) => {}
            None => self.markers.push(Listed {
                marker,
                on_list: OnList::No,
                changed: false,
            }),
        }
    }

    /// The markers kept: those still open, not yet written, or not ended before the live window.
    pub fn markers(&self) -> impl Iterator<Item = &Marker> {
        self.markers.iter().map(|l| &l.marker)
    }

    /// Appends a closed segment as media sequence number `sequence` when the playlist is still empty (a
    /// view that starts later than the stream, e.g. its public part), as the next one otherwise.
    pub fn push_numbered(&mut self, sequence: u64, seg: Segment) {
        if self.is_empty() {
            self.recent_sequence = sequence;
            self.event_sequence = sequence;
        }
        self.push(seg);
    }

    /// Appends a closed segment (to the event list at the next [`MediaPlaylist::flush`]). Ignored
    /// (with a warning) once the playlist has ended: an ended playlist is a finished VOD and must
    /// not change.
    pub fn push(&mut self, seg: Segment) {
        if self.ended {
            tracing::warn!(uri = %seg.uri, "segment pushed after the playlist ended; ignored");
            return;
        }
        self.add(seg);
        self.forget_old_parts();
    }

    /// Lists a segment: the totals, the names, the live window.
    fn add(&mut self, seg: Segment) {
        self.target_duration = self.target_duration.max(rounded_secs(seg.duration));
        let mut seg = seg;
        self.share_map(&mut seg);
        self.totals.add(&seg);
        self.names.insert(&seg.uri);
        if let Some(map) = &seg.map {
            self.names.insert(map);
        }
        self.segments.push(seg);
        self.advance_live_start();
    }

    /// Points `seg`'s init section name at the previous segment's when they are the same: one copy
    /// per init section instead of one per segment.
    fn share_map(&self, seg: &mut Segment) {
        if let Some(previous) = self.segments.last()
            && previous.map == seg.map
        {
            seg.map.clone_from(&previous.map);
        }
    }

    /// Drops the parts of the segments beyond [`PART_KEEPING_TARGETS`] of the edge. Each push drops
    /// those of the segment that just crossed it, so the walk stops at the first one without parts.
    fn forget_old_parts(&mut self) {
        let keep = Duration::from_secs(self.target_duration).saturating_mul(PART_KEEPING_TARGETS);
        let mut tail = Duration::ZERO;
        for s in self.segments.iter_mut().rev() {
            if tail < keep {
                tail = tail.saturating_add(s.duration);
            } else if s.parts.is_empty() {
                break;
            } else {
                s.parts = Vec::new();
            }
        }
    }

    /// Forgets the segments that slid out of the live window once the event list has them, and
    /// the markers written that ended before the window.
    fn forget_written(&mut self) {
        let gone = self.live_start.min(self.written);
        if gone > 0 {
            self.dropped_discontinuities += self.segments[..gone]
                .iter()
                .filter(|s| s.discontinuity)
                .count() as u64;
            self.segments.drain(..gone);
            self.recent_sequence += gone as u64;
            self.live_start -= gone;
            self.written -= gone;
        }
        // A marker that ended before every segment of the window covers none of them: no live
        // render lists it again.
        let Some(window_start) = self.segments[self.live_start..]
            .iter()
            .map(|s| s.program_date_time)
            .min()
        else {
            return;
        };
        self.markers.retain(|l| {
            l.on_list == OnList::No
                || l.changed
                || l.marker.end.is_none_or(|end| end > window_start)
        });
    }

    /// Writes what changed to the event list: the segments pushed since the last flush (with the
    /// markers that start in them), the new line of a marker that changed, the header when it
    /// changed (a raised target duration, the switch to VOD), `EXT-X-ENDLIST` at the end. The text
    /// is the same as a render of the whole list at once. After a failure nothing is lost: the
    /// next flush writes it.
    pub fn flush(&mut self) -> io::Result<()> {
        let header = self.event_header();
        let new = &self.segments[self.written..];
        // Markers that start after the last closed segment belong to the open one: written with
        // the segment they start in.
        let closed_end = self.segments.last().map(Segment::written_end_ms);
        let mut tags = vec![Vec::new(); new.len()];
        let mut placed = Vec::new();
        let mut left_out = Vec::new();
        if !new.is_empty() {
            for (i, l) in self.markers.iter().enumerate() {
                let open_segment =
                    !self.ended && closed_end.is_some_and(|end| written_ms(l.marker.start) >= end);
                if l.on_list != OnList::No || open_segment {
                    continue;
                }
                match Self::marker_position(new, &l.marker) {
                    Some(at) => {
                        tags[at].push(daterange_tag(&l.marker));
                        placed.push(i);
                    }
                    None => left_out.push(i),
                }
            }
        }
        let mut text = Vec::new();
        let mut map = self.event_map.clone();
        if !new.is_empty() {
            let mut playlist = m3u8_rs::MediaPlaylist::default();
            write_segments(
                &mut playlist,
                new,
                tags,
                &mut map,
                new.len(),
                None,
                &mut text,
            );
        }
        if self.ended {
            text.extend_from_slice(ENDLIST.as_bytes());
        }
        let mut patches: Vec<(Range<u64>, String)> = self
            .markers
            .iter()
            .filter(|l| l.changed)
            .filter_map(|l| match &l.on_list {
                OnList::At(range) => Some((range.clone(), format!("{}\n", l.marker.line()))),
                _ => None,
            })
            .collect();
        patches.sort_by_key(|(range, _)| range.start);
        // The body kept: all of it, but the `EXT-X-ENDLIST` written before (ended or reopened,
        // it is written again at the end or not at all).
        let body = self.event.body_len();
        let keep = match self.event_closed {
            true => body.saturating_sub(ENDLIST.len() as u64),
            false => body,
        };
        if header != self.event.header() || !patches.is_empty() || keep != body {
            self.event.rewrite(&header, keep, &patches, &text)?;
        } else {
            self.event.append(&text)?;
        }
        // Written: where each marker's line is now.
        let shift = |at: u64| -> i64 {
            patches
                .iter()
                .filter(|(range, _)| range.start < at)
                .map(|(range, line)| line.len() as i64 - (range.end - range.start) as i64)
                .sum()
        };
        let base = self.event.body_len() - text.len() as u64;
        for l in &mut self.markers {
            if let OnList::At(range) = &l.on_list {
                let start = range.start.saturating_add_signed(shift(range.start));
                let len = match l.changed {
                    true => l.marker.line().len() as u64 + 1,
                    false => range.end - range.start,
                };
                l.on_list = OnList::At(start..start + len);
                l.changed = false;
            }
        }
        for i in placed {
            let l = &mut self.markers[i];
            let line = format!("{}\n", l.marker.line());
            let at = find(&text, line.as_bytes()).unwrap_or(0) as u64 + base;
            l.on_list = OnList::At(at..at + line.len() as u64);
            l.changed = false;
        }
        for i in left_out {
            self.markers[i].on_list = OnList::LeftOut;
        }
        for l in &mut self.markers {
            l.changed = false;
        }
        self.event_map = map;
        self.event_closed = self.ended;
        self.written = self.segments.len();
        self.forget_written();
        Ok(())
    }

    /// The event list's header: the playlist-level tags of a render of the whole list.
    fn event_header(&self) -> String {
        let playlist = m3u8_rs::MediaPlaylist {
            version: Some(match self.totals.has_map {
                true => VERSION_MAP,
                false => VERSION_DECIMAL_EXTINF,
            }),
            independent_segments: true,
            target_duration: self.target_duration,
            media_sequence: self.event_sequence,
            discontinuity_sequence: self.event_discontinuity_sequence,
            playlist_type: Some(match self.ended {
                true => m3u8_rs::MediaPlaylistType::Vod,
                false => m3u8_rs::MediaPlaylistType::Event,
            }),
            ..Default::default()
        };
        let mut out = Vec::new();
        write_playlist(&playlist, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The stream is over: from now on both views render the complete list as VOD with `EXT-X-ENDLIST`
    /// (on the event list at the next flush).
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// A stream that ended with a server restart goes on (a pulled camera): new segments are
    /// appended again, after a discontinuity.
    pub fn reopen(&mut self) {
        self.ended = false;
    }

    /// The segments in memory, oldest first: the live window, and any not on the event list yet.
    pub fn recent_segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The newest segment.
    pub fn last_segment(&self) -> Option<&Segment> {
        self.segments.last()
    }

    /// No segment was ever pushed.
    pub fn is_empty(&self) -> bool {
        self.totals.count == 0
    }

    /// How many segments were pushed since the start.
    pub fn segment_count(&self) -> u64 {
        self.totals.count
    }

    /// Media sequence number of the first segment.
    pub fn first_sequence(&self) -> u64 {
        self.event_sequence
    }

    /// Media sequence number of the first segment in memory ([`MediaPlaylist::recent_segments`]).
    pub fn first_recent_sequence(&self) -> u64 {
        self.recent_sequence
    }

    /// Whether `name` is the file name of one of its segments or init sections.
    pub fn lists(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Total duration of all segments since the start.
    pub fn media_duration(&self) -> Duration {
        self.totals.duration
    }

    /// The current `EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration_secs(&self) -> u64 {
        self.target_duration
    }

    /// Media sequence number the next pushed segment will get.
    pub fn next_sequence(&self) -> u64 {
        self.event_sequence.saturating_add(self.totals.count)
    }

    /// Live playlist: the last `window` segments while live (`EXT-X-MEDIA-SEQUENCE` counting the segments
    /// that slid out, `EXT-X-DISCONTINUITY-SEQUENCE` the discontinuities that slid out), the complete list
    /// with `EXT-X-PLAYLIST-TYPE:VOD` + `EXT-X-ENDLIST` once ended (the event list, as flushed; empty if
    /// it cannot be read, which is logged).
    ///
    /// The window holds more than `window` segments when that is needed to keep the playlist at least three
    /// target durations long (RFC 8216 §6.2.2), e.g. right after one long segment raised the target.
    ///
    /// Note on the switch to VOD: `EXT-X-MEDIA-SEQUENCE` drops back to the first segment's number, because the
    /// segments that slid out come back. Every segment keeps its media sequence and discontinuity sequence
    /// number, so players that reload (hls.js, AVPlayer, ffmpeg) stay aligned.
    ///
    /// `query`, when `Some("token=abc")`, is appended to every segment URI (`seg00001.ts?token=abc`).
    pub fn render_live(&self, query: Option<&str>) -> String {
        if self.ended {
            return self.render_vod(query);
        }
        self.render_with(query, None)
    }

    /// Every segment since the start, as flushed: `EXT-X-PLAYLIST-TYPE:EVENT` while live, VOD +
    /// `EXT-X-ENDLIST` once ended. `query` as in [`MediaPlaylist::render_live`].
    pub fn render_event(&self, query: Option<&str>) -> io::Result<String> {
        let bytes = self.event.read()?;
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(match query {
            Some(_) => event_with_query(&text, query),
            None => text,
        })
    }

    /// The complete list once ended (see [`MediaPlaylist::render_live`]).
    fn render_vod(&self, query: Option<&str>) -> String {
        self.render_event(query).unwrap_or_else(|e| {
            tracing::error!(path = ?self.event.path(), error = %e, "reading the event list");
            String::new()
        })
    }

    /// Re-reads a playlist written by [`MediaPlaylist::render_event`] (crash recovery after `kill -9`):
    /// segments, durations (to the millisecond written), program date times, discontinuities, media and
    /// discontinuity sequence numbers, target duration and the ended flag. Byte sizes are 0 (restat the files).
    ///
    /// A last line without its newline (a write cut short) is ignored. A segment without
    /// `EXT-X-PROGRAM-DATE-TIME` gets the previous segment's date time plus its duration. The list read
    /// is kept in memory (see [`MediaPlaylist::restore_event`] to continue a file).
    pub fn parse_event(text: &str, window: usize, target: Duration) -> Result<Self, Error> {
        Self::read_event(text, window, target, None)
    }

    /// Continues the event list in the file `path`, read as `text` (a stream resumed after a crash
    /// or a restart): [`MediaPlaylist::parse_event`] of it, with the sizes of its segments (files
    /// beside it); the next [`MediaPlaylist::flush`] appends to it (after cutting off a torn last
    /// line).
    pub fn restore_event(
        path: &Path,
        text: &str,
        window: usize,
        target: Duration,
    ) -> io::Result<Self> {
        Self::read_event(text, window, target, Some(path))
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
    }

    fn read_event(
        text: &str,
        window: usize,
        target: Duration,
        file: Option<&Path>,
    ) -> Result<Self, Error> {
        // Keep whole lines only: a torn last line would otherwise read as a segment URI.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        let bytes = complete.as_bytes();
        if m3u8_rs::is_master_playlist(bytes) {
            return Err(Error::NotAMediaPlaylist);
        }
        let (rest, parsed) =
            m3u8_rs::parse_media_playlist(bytes).map_err(|_| Error::NotAPlaylist)?;
        if !rest.iter().all(u8::is_ascii_whitespace) {
            let consumed = &bytes[..bytes.len() - rest.len()];
            let line = consumed.iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(Error::Unparsed { line });
        }

        let mut playlist = Self::new(window, target);
        playlist.recent_sequence = parsed.media_sequence;
        playlist.event_sequence = parsed.media_sequence;
        playlist.event_discontinuity_sequence = parsed.discontinuity_sequence;
        let dir = file.and_then(Path::parent);
        playlist.target_duration = playlist.target_duration.max(parsed.target_duration);

        let mut previous: Option<(DateTime<Utc>, Duration)> = None;
        for s in parsed.segments {
            if let Some(uri) = std::iter::once(&s.uri)
                .chain(s.map.as_ref().map(|m| &m.uri))
                .find(|u| !is_file_name(u))
            {
                return Err(Error::InvalidUri { uri: uri.clone() });
            }
            if !s.duration.is_finite() || s.duration < 0.0 {
                return Err(Error::InvalidDuration {
                    uri: s.uri,
                    extinf: s.duration,
                });
            }
            // Whole milliseconds, as written; `as` saturates on absurdly large values.
            let duration = Duration::from_millis((f64::from(s.duration) * 1000.0).round() as u64);
            let program_date_time = match (s.program_date_time, previous) {
                (Some(pdt), _) => pdt.with_timezone(&Utc),
                (None, Some((pdt, duration))) => chrono::TimeDelta::from_std(duration)
                    .ok()
                    .and_then(|d| pdt.checked_add_signed(d))
                    .ok_or_else(|| Error::MissingProgramDateTime { uri: s.uri.clone() })?,
                (None, None) => return Err(Error::MissingProgramDateTime { uri: s.uri }),
            };
            // What the server writes is dated now; a date (or an end) outside what chrono can
            // add to would panic later, when the list is rendered.
            let end = chrono::TimeDelta::from_std(duration)
                .ok()
                .and_then(|d| program_date_time.checked_add_signed(d));
            let year = |t: DateTime<Utc>| (1970..=9999).contains(&t.year());
            if !year(program_date_time) || !end.is_some_and(year) {
                return Err(Error::DateOutOfRange { uri: s.uri });
            }
            previous = Some((program_date_time, duration));
            let mut segment = Segment::new(s.uri, duration, program_date_time);
            segment.discontinuity = s.discontinuity;
            segment.map = s.map.map(|m| Arc::from(m.uri)).or_else(|| {
                playlist
                    .segments
                    .last()
                    .and_then(|previous: &Segment| previous.map.clone())
            });
            if let Some(dir) = dir {
                segment.bytes = std::fs::metadata(dir.join(&segment.uri)).map_or(0, |m| m.len());
            }
            // Listed, and already on the event list: memory keeps the live window only.
            playlist.add(segment);
            playlist.written = playlist.segments.len();
            playlist.forget_written();
        }
        playlist.ended = parsed.end_list;
        // The header is the lines before the first segment's; markers are where they are.
        let header_len: usize = complete
            .split_inclusive('\n')
            .take_while(|l| HEADER_TAGS.iter().any(|t| l.starts_with(t)))
            .map(str::len)
            .sum();
        let (header, body) = complete.split_at(header_len);
        let mut at = 0u64;
        for line in body.split_inclusive('\n') {
            if let Some(marker) = Marker::parse_line(line.trim_end_matches('\n')) {
                let id = marker.id.clone();
                playlist.set_marker(marker);
                if let Some(l) = playlist.markers.iter_mut().find(|l| l.marker.id == id) {
                    l.on_list = OnList::At(at..at + line.len() as u64);
                    l.changed = false;
                }
            }
            at += line.len() as u64;
        }
        playlist.event_closed = body.ends_with(ENDLIST);
        playlist.event_map = playlist.segments.last().and_then(|s| s.map.clone());
        playlist.event = EventList::existing(file.map(Path::to_path_buf), header, body);
        playlist.forget_written();
        Ok(playlist)
    }

    /// Peak segment bit rate in bits per second (for `BANDWIDTH`), rounded up. Segments of unknown size
    /// (0 bytes) or zero duration are left out; `None` when no segment is left.
    pub fn peak_bandwidth(&self) -> Option<u64> {
        self.totals.peak_bandwidth
    }

    /// Average bit rate over all segments in bits per second (for `AVERAGE-BANDWIDTH`), rounded up.
    /// Same segments as [`MediaPlaylist::peak_bandwidth`].
    pub fn average_bandwidth(&self) -> Option<u64> {
        let t = &self.totals;
        (t.measured > 0).then(|| bits_per_second(t.measured_bytes, t.measured_nanos))
    }

    /// Slides the live window forward: at most `window` segments, but never below three target durations
    /// (RFC 8216 §6.2.2: a segment must not be removed if that leaves less than that).
    fn advance_live_start(&mut self) {
        let min_ms = self.target_duration.saturating_mul(3_000);
        let mut window_ms: u64 = self.segments[self.live_start..]
            .iter()
            .map(|s| extinf_millis(s.duration))
            .fold(0, u64::saturating_add);
        while self.segments.len() - self.live_start > self.window {
            let oldest = extinf_millis(self.segments[self.live_start].duration);
            let remaining = window_ms.saturating_sub(oldest);
            if remaining < min_ms {
                break;
            }
            window_ms = remaining;
            self.live_start += 1;
        }
    }

    /// `EXT-X-VERSION` needed by what `view` contains (RFC 8216 §7, RFC 8216bis §7).
    fn version(view: &[Segment], skip: bool) -> usize {
        if skip {
            VERSION_SKIP
        } else if view.iter().any(|s| s.map.is_some()) {
            VERSION_MAP
        } else {
            VERSION_DECIMAL_EXTINF
        }
    }

    /// A low-latency live playlist (RFC 8216bis): the live window with the parts of its last segments,
    /// `EXT-X-SERVER-CONTROL` and `EXT-X-PART-INF`, then `edge` (the open segment's parts, the preload hint,
    /// the other renditions' reports). Once ended, the plain VOD list. `query` goes into every URI,
    /// including those in attributes.
    pub fn render_low_latency(&self, edge: &LiveEdge, query: Option<&str>) -> String {
        if self.ended {
            return self.render_vod(query);
        }
        self.render_with(query, Some(edge))
    }

    /// `CAN-SKIP-UNTIL` of a low-latency playlist: the least RFC 8216bis allows, six target durations.
    pub fn skip_until(&self) -> Duration {
        Duration::from_secs(self.target_duration.saturating_mul(6))
    }

    /// The one place that produces live playlist text (the event list is written by `flush`).
    fn render_with(&self, query: Option<&str>, edge: Option<&LiveEdge>) -> String {
        let first = self.live_start;
        let skipped = match edge {
            Some(e) if e.skip => self.skippable(first),
            _ => 0,
        };
        // The segments written; the skipped ones still count in the sequence numbers.
        let start = first + skipped;
        let previous_map = start
            .checked_sub(1)
            .and_then(|i| self.segments[i].map.clone());
        let removed_discontinuities = self.segments[..first]
            .iter()
            .filter(|s| s.discontinuity)
            .count() as u64;
        let shown = &self.segments[start..];
        // Parts are listed for the segments that end within a few target durations of the edge.
        let listed_from = match edge {
            Some(_) => {
                let horizon =
                    Duration::from_secs(self.target_duration).saturating_mul(PART_LISTING_TARGETS);
                let mut tail = Duration::ZERO;
                let recent = shown
                    .iter()
                    .rev()
                    .take_while(|s| {
                        let inside = tail < horizon;
                        tail = tail.saturating_add(s.duration);
                        inside
                    })
                    .count();
                shown.len() - recent
            }
            None => shown.len(),
        };
        // Markers that start after the last closed segment belong to the open one: written before
        // its parts at the live edge, left out elsewhere until it closes.
        let closed_end = self.segments.last().map(Segment::written_end_ms);
        let (edge_markers, listed_markers): (Vec<&Marker>, Vec<&Marker>) = self
            .markers()
            .partition(|m| closed_end.is_some_and(|end| written_ms(m.start) >= end));
        // Without skipping, the first segment shown always carries its map; with skipping, the
        // client has it from the full playlist it loaded before.
        let mut map = if skipped > 0 { previous_map } else { None };
        let mut playlist = m3u8_rs::MediaPlaylist {
            version: Some(Self::version(shown, skipped > 0)),
            independent_segments: true,
            target_duration: self.target_duration,
            media_sequence: self.recent_sequence.saturating_add(first as u64),
            discontinuity_sequence: self
                .event_discontinuity_sequence
                .saturating_add(self.dropped_discontinuities)
                .saturating_add(removed_discontinuities),
            ..Default::default()
        };
        let mut out = Vec::with_capacity(256 + shown.len() * SEGMENT_TEXT_BYTES);
        write_playlist(&playlist, &mut out);
        let tags = self.marker_tags(shown, &listed_markers);
        write_segments(
            &mut playlist,
            shown,
            tags,
            &mut map,
            listed_from,
            query,
            &mut out,
        );
        let text = String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        match edge {
            Some(edge) => {
                self.splice_live_edge(&text, edge, &edge_markers, skipped, map.as_deref(), query)
            }
            None => text,
        }
    }

    /// Segments from `start` that a delta update may skip: those that end more than `CAN-SKIP-UNTIL`
    /// before the end of the playlist.
    fn skippable(&self, start: usize) -> usize {
        let shown = &self.segments[start..];
        let total = shown
            .iter()
            .fold(Duration::ZERO, |sum, s| sum.saturating_add(s.duration));
        let mut elapsed = Duration::ZERO;
        shown
            .iter()
            .take_while(|s| {
                elapsed = elapsed.saturating_add(s.duration);
                total.saturating_sub(elapsed) > self.skip_until()
            })
            .count()
    }

    /// Adds the low-latency lines m3u8-rs does not model to a rendered live playlist: the server
    /// control and part information after the header (and the skip of a delta update), and the
    /// live edge after the last segment. `map` is the init section in effect after the last segment.
    fn splice_live_edge(
        &self,
        text: &str,
        edge: &LiveEdge,
        markers: &[&Marker],
        skipped: usize,
        map: Option<&str>,
        query: Option<&str>,
    ) -> String {
        let part_target = edge.part_target.as_secs_f64();
        let target = self.target_duration as f64;
        let mut header = vec![
            format!(
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={:.3},HOLD-BACK={:.1}",
                self.skip_until().as_secs_f64(),
                f64::from(edge.hold_back_parts) * part_target,
                3.0 * target,
            ),
            format!("#EXT-X-PART-INF:PART-TARGET={part_target:.3}"),
        ];
        if skipped > 0 {
            header.push(format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}"));
        }
        let mut out = String::with_capacity(text.len() + 512);
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next_if(|l| HEADER_TAGS.iter().any(|t| l.starts_with(t))) {
            out.push_str(line);
            out.push('\n');
        }
        for line in header.iter().map(String::as_str).chain(lines) {
            out.push_str(line);
            out.push('\n');
        }
        if !edge.open.is_empty() {
            if edge.open_discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(open_map) = edge.open_map.as_deref().filter(|m| Some(*m) != map) {
                out.push_str(&format!(
                    "#EXT-X-MAP:URI=\"{}\"\n",
                    with_query(open_map, query)
                ));
            }
            for marker in markers {
                out.push_str(&format!("#EXT-X-DATERANGE:{}\n", marker.attribute_list()));
            }
            for part in &edge.open {
                let tag = part_tag(part, query);
                out.push_str(&format!(
                    "#EXT-{}:{}\n",
                    tag.tag,
                    tag.rest.unwrap_or_default()
                ));
            }
        }
        if let Some(hint) = &edge.hint {
            out.push_str(&format!(
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"\n",
                with_query(hint, query)
            ));
        }
        for r in &edge.reports {
            out.push_str(&format!(
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}\n",
                r.uri, r.last_msn, r.last_part
            ));
        }
        out
    }

    /// The DATERANGE tags to write before each of `view`'s segments (see `marker_position`).
    fn marker_tags(&self, view: &[Segment], markers: &[&Marker]) -> Vec<Vec<m3u8_rs::ExtTag>> {
        let mut tags = vec![Vec::new(); view.len()];
        for marker in markers {
            if let Some(at) = Self::marker_position(view, marker) {
                tags[at].push(daterange_tag(marker));
            }
        }
        tags
    }

    /// Which of `view`'s segments a marker is written before: the segment its start falls in (by
    /// `PROGRAM-DATE-TIME`), or the first one when it began earlier and still overlaps the view;
    /// `None` for a marker that ended without covering any segment of the view (before it, or in a
    /// gap it leaves out), and in an empty view.
    fn marker_position(view: &[Segment], marker: &Marker) -> Option<usize> {
        if view.is_empty() {
            return None;
        }
        // By the dates as written, so that a player (or a reader of the list) finds the marker's
        // START-DATE within the written range of the segment it precedes.
        let start = written_ms(marker.start);
        let covers = |s: &Segment| {
            start < s.written_end_ms()
                && marker
                    .end
                    .is_some_and(|e| written_ms(e) > written_ms(s.program_date_time))
        };
        if marker.end.is_some() && !view.iter().any(covers) {
            return None;
        }
        Some(
            view.iter()
                .take_while(|s| written_ms(s.program_date_time) <= start)
                .count()
                .saturating_sub(1),
        )
    }

    /// One segment's lines, without its map and parts (see `render_with`).
    fn media_segment(seg: &Segment, query: Option<&str>) -> m3u8_rs::MediaSegment {
        m3u8_rs::MediaSegment {
            uri: with_query(&seg.uri, query),
            // Rounded to the millisecond first so that the written value is exact to 3 decimals.
            duration: extinf_millis(seg.duration) as f32 / 1000.0,
            discontinuity: seg.discontinuity,
            program_date_time: Some(seg.program_date_time.fixed_offset()),
            ..Default::default()
        }
    }
}

/// A variant stream of the master playlist (one rendition of the ladder).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Media playlist URI relative to the master, e.g. `source/index.m3u8`.
    pub uri: String,
    /// Peak bits per second.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    /// Width × height in pixels; `None` for audio-only.
    pub resolution: Option<(u32, u32)>,
    /// RFC 6381 codecs, see [`crate::output::codecs`].
    pub codecs: Option<String>,
    pub frame_rate: Option<f64>,
}

/// Master playlist, variants sorted by bandwidth ascending; `query` appended to each variant URI.
pub fn render_master(variants: &[Variant], query: Option<&str>) -> String {
    let mut sorted: Vec<&Variant> = variants.iter().collect();
    sorted.sort_by_key(|v| v.bandwidth);
    let playlist = m3u8_rs::MasterPlaylist {
        version: Some(VERSION_DECIMAL_EXTINF),
        independent_segments: true,
        variants: sorted
            .into_iter()
            .map(|v| m3u8_rs::VariantStream {
                uri: with_query(&v.uri, query),
                bandwidth: v.bandwidth,
                average_bandwidth: v.average_bandwidth,
                codecs: v.codecs.clone().filter(|c| !c.is_empty()),
                resolution: v.resolution.map(|(w, h)| m3u8_rs::Resolution {
                    width: u64::from(w),
                    height: u64::from(h),
                }),
                // RFC 8216 §4.3.4.2: FRAME-RATE rounded to three decimal places (29.97002997 → 29.97).
                frame_rate: v
                    .frame_rate
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .map(|f| (f * 1000.0).round() / 1000.0),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut out = Vec::new();
    playlist
        .write_to(&mut out)
        .expect("writing a playlist into a Vec cannot fail");
    String::from_utf8_lossy(&out).into_owned()
}

/// The configured target in whole seconds, rounded up so the target is never below it (at least 1).
fn configured_target_secs(target: Duration) -> u64 {
    let secs = target
        .as_secs()
        .saturating_add(u64::from(target.subsec_nanos() > 0));
    secs.max(1)
}

/// A date as the lists write it (`PROGRAM-DATE-TIME`, and `START-DATE` through
/// `daterange::whole_millis`: whole milliseconds, the rest dropped), in milliseconds since the
/// epoch.
fn written_ms(date: DateTime<Utc>) -> i64 {
    date.timestamp_millis()
}

/// Duration in whole milliseconds, rounded to nearest: the value `EXTINF` shows.
fn extinf_millis(d: Duration) -> u64 {
    let ms = (d.as_nanos() + 500_000) / 1_000_000;
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The written `EXTINF` rounded to the nearest second (half up), as RFC 8216 §4.3.3.1 compares it with
/// `EXT-X-TARGETDURATION`.
fn rounded_secs(d: Duration) -> u64 {
    extinf_millis(d).saturating_add(500) / 1000
}

/// `bytes` over `nanos` in bits per second, rounded up; `nanos` must not be 0.
fn bits_per_second(bytes: u128, nanos: u128) -> u64 {
    let bits_ns = bytes.saturating_mul(8).saturating_mul(1_000_000_000);
    u64::try_from(bits_ns.div_ceil(nanos.max(1))).unwrap_or(u64::MAX)
}

/// `uri` with `query` appended (`?` or `&` as needed). A leading `?` on `query` is accepted; characters
/// that could end the URI line or quoted attribute (controls, spaces, `"`) or start a fragment (`#`) are
/// percent-encoded, so a query can never inject playlist lines.
pub(super) fn with_query(uri: &str, query: Option<&str>) -> String {
    let query = query
        .map(|q| q.trim_start_matches(['?', '&']))
        .unwrap_or("");
    if query.is_empty() {
        return uri.to_owned();
    }
    let separator = if uri.contains('?') { '&' } else { '?' };
    let mut out = String::with_capacity(uri.len() + 1 + query.len());
    out.push_str(uri);
    out.push(separator);
    for c in query.chars() {
        if c.is_ascii_graphic() && c != '"' && c != '#' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// `EXT-X-PART` of `part`, as an m3u8-rs tag.
fn part_tag(part: &Part, query: Option<&str>) -> m3u8_rs::ExtTag {
    let independent = if part.independent {
        ",INDEPENDENT=YES"
    } else {
        ""
    };
    m3u8_rs::ExtTag {
        tag: "X-PART".into(),
        rest: Some(format!(
            "DURATION={:.*},URI=\"{}\"{independent}",
            PART_DECIMALS,
            part.duration.as_secs_f64(),
            with_query(&part.uri, query)
        )),
    }
}

/// The last line of a complete list.
const ENDLIST: &str = "#EXT-X-ENDLIST\n";

/// Writes `playlist`'s text (m3u8-rs) into `out`.
fn write_playlist(playlist: &m3u8_rs::MediaPlaylist, out: &mut Vec<u8>) {
    // m3u8-rs keeps the EXTINF precision in a process-wide setting. Every writer in this crate goes
    // through this module and wants milliseconds, so setting it before each write is idempotent; without
    // it f32 durations print as e.g. `2.0020001`.
    m3u8_rs::WRITE_OPT_FLOAT_PRECISION.store(EXTINF_DECIMALS, Ordering::Relaxed);
    playlist
        .write_to(out)
        .expect("writing a playlist into a Vec cannot fail");
}

/// Appends the lines of `shown` to `out`: each segment's markers (`tags`), its map where it differs
/// from `map` (the one in effect before; updated), its parts from index `parts_from` on, its
/// date, duration and URI, with `query` in every URI. The segments are written a batch at a time
/// after `playlist`'s header, which is cut off: besides the text, this holds a batch of m3u8-rs
/// segments, however many there are.
fn write_segments(
    playlist: &mut m3u8_rs::MediaPlaylist,
    shown: &[Segment],
    tags: Vec<Vec<m3u8_rs::ExtTag>>,
    map: &mut Option<Arc<str>>,
    parts_from: usize,
    query: Option<&str>,
    out: &mut Vec<u8>,
) {
    playlist.segments.clear();
    let mut batch_text = Vec::new();
    write_playlist(playlist, &mut batch_text);
    let header = batch_text.len();
    let mut tags = tags.into_iter();
    for (b, batch) in shown.chunks(RENDER_BATCH).enumerate() {
        playlist.segments.clear();
        for (j, (s, markers)) in batch.iter().zip(tags.by_ref()).enumerate() {
            let mut segment = MediaPlaylist::media_segment(s, query);
            if s.map != *map {
                map.clone_from(&s.map);
                segment.map = s.map.as_ref().map(|uri| m3u8_rs::Map {
                    uri: with_query(uri, query),
                    ..Default::default()
                });
            }
            segment.unknown_tags = markers;
            if b * RENDER_BATCH + j >= parts_from {
                segment
                    .unknown_tags
                    .extend(s.parts.iter().map(|p| part_tag(p, query)));
            }
            playlist.segments.push(segment);
        }
        batch_text.clear();
        write_playlist(playlist, &mut batch_text);
        out.extend_from_slice(&batch_text[header..]);
    }
}

/// `EXT-X-DATERANGE` of `marker`, as an m3u8-rs tag.
fn daterange_tag(marker: &Marker) -> m3u8_rs::ExtTag {
    m3u8_rs::ExtTag {
        tag: "X-DATERANGE".into(),
        rest: Some(marker.attribute_list()),
    }
}

/// Where `needle` first is in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An event list's text with `query` in its URIs, as a render with `query` writes them: segment
/// URIs and `EXT-X-MAP` (an event list has no parts).
fn event_with_query(text: &str, query: Option<&str>) -> String {
    const MAP: &str = "#EXT-X-MAP:URI=\"";
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.split_inclusive('\n') {
        let (content, newline) = match line.strip_suffix('\n') {
            Some(content) => (content, "\n"),
            None => (line, ""),
        };
        if !content.is_empty() && !content.starts_with('#') {
            out.push_str(&with_query(content, query));
        } else if let Some(rest) = content.strip_prefix(MAP)
            && let Some((uri, tail)) = rest.split_once('"')
        {
            out.push_str(MAP);
            out.push_str(&with_query(uri, query));
            out.push('"');
            out.push_str(tail);
        } else {
            out.push_str(content);
        }
        out.push_str(newline);
    }
    out
}

/// `seg00042.ts` → (42, "ts"): the number and extension of a segment URI line.
pub fn segment_number(line: &str) -> Option<(u64, &str)> {
    let (stem, extension) = line.trim().strip_prefix("seg")?.split_once('.')?;
    Some((stem.parse().ok()?, extension))
}

/// Whether the event or public list `candidate` is newer than `current`, two copies of one
/// rendition's list (this disk's and the bucket's, or a dead owner's and a restarted one's). A list
/// only grows and segment names never repeat across sessions, so the newer names the later last
/// segment; at the same one, an ended list is newer, then the longer (more parts listed). Bytes
/// alone do not decide: a session that died may have listed a tag (a product's date range) that
/// the session that went on elsewhere never saw.
pub fn is_newer_list(candidate: &[u8], current: &[u8]) -> bool {
    fn progress(list: &[u8]) -> (Option<u64>, bool, usize) {
        let text = String::from_utf8_lossy(list);
        let last = text.lines().rev().find_map(segment_number).map(|(n, _)| n);
        (last, text.contains("#EXT-X-ENDLIST"), list.len())
    }
    progress(candidate) > progress(current)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const TARGET: Duration = Duration::from_secs(2);

    #[test]
    fn the_newer_list_names_the_later_segment_not_the_longer_text() {
        let died = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.000,\nseg00003.ts\n\
                    #EXT-X-DATERANGE:ID=\"focus-1\",START-DATE=\"2026-12-05T07:18:28.296Z\",\
                    X-TITLE=\"a product title long enough to outweigh two segments of another list\"\n\
                    #EXTINF:2.000,\nseg00005.ts\n";
        let went_on = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.000,\nseg00003.ts\n\
                       #EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nseg00006.ts\n";
        assert!(died.len() > went_on.len());
        assert!(is_newer_list(went_on.as_bytes(), died.as_bytes()));
        assert!(!is_newer_list(died.as_bytes(), went_on.as_bytes()));
        // At the same last segment the ended list is newer, then the one with more parts.
        let ended = format!("{went_on}#EXT-X-ENDLIST\n");
        assert!(is_newer_list(ended.as_bytes(), went_on.as_bytes()));
        let more_parts = format!("{went_on}#EXT-X-PART:DURATION=0.2,URI=\"p.m4s\"\n");
        assert!(is_newer_list(more_parts.as_bytes(), went_on.as_bytes()));
        assert!(!is_newer_list(went_on.as_bytes(), went_on.as_bytes()));
        // Any list is newer than nothing.
        assert!(is_newer_list(went_on.as_bytes(), b""));
        assert_eq!(segment_number("seg00042.m4s"), Some((42, "m4s")));
        assert_eq!(segment_number("#EXTINF:2.000,"), None);
        assert_eq!(segment_number("init00000.mp4"), None);
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 14, 18, 0, 0).unwrap()
    }

    /// Segment `n` with the given duration, starting at `start` after t0.
    fn seg(n: u64, duration: Duration, start: Duration) -> Segment {
        let mut s = Segment::new(
            format!("seg{n:05}.ts"),
            duration,
            t0() + chrono::TimeDelta::from_std(start).unwrap(),
        );
        s.bytes = 500_000;
        s
    }

    /// A playlist with `durations` pushed back to back.
    fn playlist_of(window: usize, durations: &[Duration]) -> MediaPlaylist {
        let mut pl = MediaPlaylist::new(window, TARGET);
        let mut start = Duration::ZERO;
        for (n, d) in durations.iter().enumerate() {
            pl.push(seg(n as u64, *d, start));
            start += *d;
        }
        pl
    }

    /// The event list after a flush of what was pushed.
    fn flushed_event(pl: &mut MediaPlaylist, query: Option<&str>) -> String {
        pl.flush().unwrap();
        pl.render_event(query).unwrap()
    }

    fn two_seconds(n: usize) -> Vec<Duration> {
        vec![TARGET; n]
    }

    /// Parses with m3u8-rs, failing the test unless it is a media playlist.
    fn parse_media(text: &str) -> m3u8_rs::MediaPlaylist {
        match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(pl)) => pl,
            Ok(m3u8_rs::Playlist::MasterPlaylist(_)) => panic!("parsed as master:\n{text}"),
            Err(e) => panic!("does not parse ({e:?}):\n{text}"),
        }
    }

    fn parse_master(text: &str) -> m3u8_rs::MasterPlaylist {
        match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MasterPlaylist(pl)) => pl,
            Ok(m3u8_rs::Playlist::MediaPlaylist(_)) => panic!("parsed as media:\n{text}"),
            Err(e) => panic!("does not parse ({e:?}):\n{text}"),
        }
    }

    fn uris(pl: &m3u8_rs::MediaPlaylist) -> Vec<&str> {
        pl.segments.iter().map(|s| s.uri.as_str()).collect()
    }

    /// The value of a `#TAG:value` line, if present.
    fn tag_value<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(tag).and_then(|r| r.strip_prefix(':')))
    }

    #[test]
    fn empty_live_playlist_renders_header_only() {
        let pl = MediaPlaylist::new(DEFAULT_WINDOW, TARGET);
        let text = pl.render_live(None);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n"
        );
        let parsed = parse_media(&text);
        assert!(parsed.segments.is_empty());
        assert_eq!(parsed.target_duration, 2);
    }

    #[test]
    fn live_playlist_has_exact_shape() {
        let mut pl = playlist_of(DEFAULT_WINDOW, &[Duration::from_millis(2002)]);
        pl.push(seg(
            1,
            Duration::from_millis(1998),
            Duration::from_millis(2002),
        ));
        assert_eq!(
            pl.render_live(None),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-03-14T18:00:00.000Z\n\
             #EXTINF:2.002,\n\
             seg00000.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-03-14T18:00:02.002Z\n\
             #EXTINF:1.998,\n\
             seg00001.ts\n"
        );
    }

    #[test]
    fn extinf_has_three_decimals_and_pdt_milliseconds() {
        let mut pl = MediaPlaylist::new(DEFAULT_WINDOW, TARGET);
        let mut s = seg(0, Duration::from_nanos(2_000_400_000), Duration::ZERO);
        s.program_date_time = t0() + chrono::TimeDelta::microseconds(123_456);
        pl.push(s);
        pl.push(seg(1, Duration::from_secs(2), Duration::from_secs(2)));
        let text = pl.render_live(None);
        assert!(text.contains("#EXTINF:2.000,\nseg00000.ts"), "{text}");
        assert!(text.contains("#EXTINF:2.000,\nseg00001.ts"), "{text}");
        assert!(
            text.contains("#EXT-X-PROGRAM-DATE-TIME:2025-03-14T18:00:00.123Z\n"),
            "{text}"
        );
        let extinf_lines = text.lines().filter(|l| l.starts_with("#EXTINF:")).count();
        let pdt_lines = text
            .lines()
            .filter(|l| l.starts_with("#EXT-X-PROGRAM-DATE-TIME:"))
            .count();
        assert_eq!((extinf_lines, pdt_lines), (2, 2));
    }

    #[test]
    fn live_window_slides_and_counts_media_sequence() {
        let mut pl = MediaPlaylist::new(3, TARGET);
        let mut sequences = Vec::new();
        for n in 0..8u64 {
            pl.push(seg(n, TARGET, TARGET * n as u32));
            let parsed = parse_media(&pl.render_live(None));
            sequences.push(parsed.media_sequence);
            let expected_len = (n as usize + 1).min(3);
            assert_eq!(parsed.segments.len(), expected_len, "after segment {n}");
            // The window is always the newest segments.
            assert_eq!(parsed.segments.last().unwrap().uri, format!("seg{n:05}.ts"));
        }
        assert_eq!(sequences, [0, 0, 0, 1, 2, 3, 4, 5]);
        let text = pl.render_live(None);
        assert_eq!(tag_value(&text, "#EXT-X-MEDIA-SEQUENCE"), Some("5"));
        assert_eq!(
            uris(&parse_media(&text)),
            ["seg00005.ts", "seg00006.ts", "seg00007.ts"]
        );
        assert!(!text.contains("#EXT-X-PLAYLIST-TYPE"));
        assert!(!text.contains("#EXT-X-ENDLIST"));
        // All segments are still kept for the event view.
        assert_eq!(pl.recent_segments().len(), 8);
        assert_eq!(pl.next_sequence(), 8);
    }

    #[test]
    fn default_window_holds_six_segments() {
        let pl = playlist_of(DEFAULT_WINDOW, &two_seconds(20));
        let parsed = parse_media(&pl.render_live(None));
        assert_eq!(parsed.segments.len(), 6);
        assert_eq!(parsed.media_sequence, 14);
        assert_eq!(parsed.segments[0].uri, "seg00014.ts");
    }

    #[test]
    fn window_of_zero_is_treated_as_one() {
        let pl = playlist_of(0, &two_seconds(5));
        let parsed = parse_media(&pl.render_live(None));
        // One segment would be 2 s < 3 × 2 s: the window keeps three.
        assert_eq!(uris(&parsed), ["seg00002.ts", "seg00003.ts", "seg00004.ts"]);
    }

    #[test]
    fn target_duration_is_never_below_configured_target() {
        let pl = playlist_of(DEFAULT_WINDOW, &[Duration::from_millis(800); 4]);
        assert_eq!(pl.target_duration_secs(), 2);
        let text = pl.render_live(None);
        assert_eq!(tag_value(&text, "#EXT-X-TARGETDURATION"), Some("2"));

        // A fractional configured target rounds up.
        let pl = MediaPlaylist::new(DEFAULT_WINDOW, Duration::from_millis(2500));
        assert_eq!(pl.target_duration_secs(), 3);
        // A zero target still gives a valid tag.
        let pl = MediaPlaylist::new(DEFAULT_WINDOW, Duration::ZERO);
        assert_eq!(pl.target_duration_secs(), 1);
    }

    #[test]
    fn target_duration_rounds_extinf_to_nearest_second() {
        // 2.499 s rounds to 2: target stays at 2.
        let pl = playlist_of(DEFAULT_WINDOW, &[Duration::from_millis(2499)]);
        assert_eq!(pl.target_duration_secs(), 2);
        // 2.5 s rounds to 3.
        let pl = playlist_of(DEFAULT_WINDOW, &[Duration::from_millis(2500)]);
        assert_eq!(pl.target_duration_secs(), 3);
        // 2.4996 s is written as 2.500, which rounds to 3: the rule applies to the written value.
        let pl = playlist_of(DEFAULT_WINDOW, &[Duration::from_micros(2_499_600)]);
        assert!(pl.render_live(None).contains("#EXTINF:2.500,"));
        assert_eq!(pl.target_duration_secs(), 3);
    }

    #[test]
    fn long_segment_raises_target_duration_for_good() {
        let mut durations = two_seconds(3);
        durations.push(Duration::from_millis(10_400));
        durations.extend(two_seconds(30));
        let mut pl = MediaPlaylist::new(3, TARGET);
        let mut start = Duration::ZERO;
        let mut targets = Vec::new();
        let mut sequences = Vec::new();
        for (n, d) in durations.iter().enumerate() {
            pl.push(seg(n as u64, *d, start));
            start += *d;
            for text in [pl.render_live(None), flushed_event(&mut pl, None)] {
                let parsed = parse_media(&text);
                // RFC 8216 §4.3.3.1: every EXTINF rounded to the nearest integer ≤ target.
                for s in &parsed.segments {
                    assert!(
                        (s.duration.round() as u64) <= parsed.target_duration,
                        "{text}"
                    );
                }
            }
            let live = parse_media(&pl.render_live(None));
            targets.push(live.target_duration);
            sequences.push(live.media_sequence);
        }
        // 10.4 s rounds to 10; the target jumps when that segment arrives and never comes down, even
        // after the long segment left the live window.
        assert_eq!(&targets[..3], &[2, 2, 2]);
        assert!(targets[3..].iter().all(|&t| t == 10), "{targets:?}");
        let last = pl.render_live(None);
        assert!(!last.contains("seg00003.ts"), "{last}");
        assert_eq!(tag_value(&last, "#EXT-X-TARGETDURATION"), Some("10"));
        // MEDIA-SEQUENCE never decreases.
        assert!(sequences.windows(2).all(|w| w[0] <= w[1]), "{sequences:?}");
    }

    #[test]
    fn window_keeps_three_target_durations_after_target_rises() {
        // Window of 3 after a 10.4 s segment: target 10, so the live playlist must stay ≥ 30 s long
        // (RFC 8216 §6.2.2) and holds more than three 2 s segments.
        let mut durations = two_seconds(3);
        durations.push(Duration::from_millis(10_400));
        durations.extend(two_seconds(20));
        let pl = playlist_of(3, &durations);
        let parsed = parse_media(&pl.render_live(None));
        let total: f32 = parsed.segments.iter().map(|s| s.duration).sum();
        assert!(total >= 30.0, "window is {total} s");
        assert_eq!(parsed.segments.len(), 15);
        assert_eq!(parsed.media_sequence, 24 - 15);
    }

    #[test]
    fn query_is_appended_to_every_segment_uri() {
        let mut pl = playlist_of(DEFAULT_WINDOW, &two_seconds(8));
        for text in [
            pl.render_live(Some("token=abc")),
            flushed_event(&mut pl, Some("token=abc")),
        ] {
            let parsed = parse_media(&text);
            assert!(!parsed.segments.is_empty());
            for s in &parsed.segments {
                assert!(s.uri.ends_with(".ts?token=abc"), "{}", s.uri);
            }
        }
        pl.end();
        pl.flush().unwrap();
        let parsed = parse_media(&pl.render_live(Some("?token=abc")));
        assert_eq!(parsed.segments.len(), 8);
        assert!(
            parsed
                .segments
                .iter()
                .all(|s| s.uri.ends_with("?token=abc"))
        );
        // Without a query (or an empty one) URIs are untouched.
        for query in [None, Some(""), Some("?")] {
            let parsed = parse_media(&flushed_event(&mut pl, query));
            assert!(parsed.segments.iter().all(|s| s.uri.ends_with(".ts")));
        }
    }

    fn product_marker(id: &str, start_ms: i64, end_ms: Option<i64>) -> Marker {
        let at = |ms: i64| t0() + chrono::TimeDelta::milliseconds(ms);
        Marker {
            id: id.into(),
            class: "com.livefront.product".into(),
            start: at(start_ms),
            end: end_ms.map(at),
            attributes: vec![("X-PRODUCT-ID".into(), format!("product-{id}"))],
        }
    }

    /// The segment (index in `parsed`) whose PROGRAM-DATE-TIME range covers `date`.
    fn covering(parsed: &m3u8_rs::MediaPlaylist, date: DateTime<Utc>) -> Option<usize> {
        parsed.segments.iter().position(|s| {
            let start = s.program_date_time.unwrap().with_timezone(&Utc);
            let end = start + chrono::TimeDelta::milliseconds((s.duration * 1000.0).round() as i64);
            start <= date && date < end
        })
    }

    #[test]
    fn a_marker_goes_before_the_segment_whose_written_range_holds_its_written_start() {
        // The second segment starts 0.4 ms past a millisecond; the marker 0.2 ms past the same
        // one, before that segment's exact start but at its written date.
        let mut pl = playlist_of(3, &[Duration::from_micros(2_000_400), TARGET, TARGET]);
        let mut marker = product_marker("a", 2_000, Some(5_000));
        marker.start += chrono::TimeDelta::microseconds(200);
        pl.set_marker(marker);
        let event = flushed_event(&mut pl, None);
        let tag = event
            .lines()
            .position(|l| l.starts_with("#EXT-X-DATERANGE"))
            .unwrap();
        let uri = event
            .lines()
            .skip(tag)
            .find(|l| !l.starts_with('#'))
            .unwrap();
        assert_eq!(uri, "seg00001.ts", "{event}");
        let parsed = parse_media(&event);
        let start = Marker::parse_line(event.lines().nth(tag).unwrap())
            .unwrap()
            .start;
        assert_eq!(covering(&parsed, start), Some(1), "{event}");
    }

    #[test]
    fn markers_go_before_the_segment_their_start_falls_in() {
        let mut pl = playlist_of(3, &two_seconds(10));
        pl.set_marker(product_marker("a", 1_000, Some(5_500)));
        pl.set_marker(product_marker("b", 5_500, Some(15_000)));
        pl.set_marker(product_marker("c", 15_000, None));
        let event = flushed_event(&mut pl, None);
        let lines: Vec<&str> = event.lines().collect();
        let mut found = 0;
        for (i, line) in lines.iter().enumerate() {
            let Some(marker) = Marker::parse_line(line) else {
                continue;
            };
            found += 1;
            // The segment written after the tag is the one that covers its start.
            let uri = lines[i..].iter().find(|l| !l.starts_with('#')).unwrap();
            let parsed = parse_media(&event);
            let covering = covering(&parsed, marker.start).unwrap();
            assert_eq!(*uri, parsed.segments[covering].uri, "{event}");
        }
        assert_eq!(found, 3, "{event}");

        // The live window (segments 7..10, from 14 s) leaves out what ended before it and puts the
        // markers that began earlier before its first segment.
        let live = pl.render_live(None);
        let ids: Vec<String> = live
            .lines()
            .filter_map(Marker::parse_line)
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, ["b", "c"], "{live}");
        let first_uri = live.lines().position(|l| l == "seg00007.ts").unwrap();
        let tags_before_first = live
            .lines()
            .take(first_uri)
            .filter(|l| l.starts_with("#EXT-X-DATERANGE"))
            .count();
        assert_eq!(tags_before_first, 2, "{live}");
    }

    #[test]
    fn a_marker_ended_later_is_written_again_with_the_same_start_and_its_end() {
        let mut pl = playlist_of(DEFAULT_WINDOW, &two_seconds(3));
        pl.set_marker(product_marker("a", 2_100, None));
        let open = pl.render_live(None);
        let parsed = parse_media(&open);
        let range = parsed.segments[1].daterange.as_ref().unwrap();
        assert_eq!((range.end_date, range.duration), (None, None), "{open}");
        pl.set_marker(product_marker("a", 2_100, Some(4_350)));
        let ended = pl.render_live(None);
        let parsed = parse_media(&ended);
        let range = parsed.segments[1].daterange.as_ref().unwrap();
        assert_eq!(range.duration, Some(2.25));
        assert_eq!(
            range.start_date.with_timezone(&Utc),
            t0() + chrono::TimeDelta::milliseconds(2_100)
        );
        assert_eq!(pl.markers().count(), 1);
    }

    #[test]
    fn markers_survive_the_event_playlist_on_disk_and_the_end() {
        let mut pl = playlist_of(DEFAULT_WINDOW, &two_seconds(4));
        pl.set_marker(product_marker("a", 500, Some(2_000)));
        pl.set_marker(product_marker("b", 2_000, Some(2_400)));
        pl.set_marker(product_marker("c", 2_400, None));
        let back =
            MediaPlaylist::parse_event(&flushed_event(&mut pl, None), DEFAULT_WINDOW, TARGET)
                .unwrap();
        assert_eq!(
            back.markers().collect::<Vec<_>>(),
            pl.markers().collect::<Vec<_>>()
        );
        let mut back = back;
        back.end();
        back.flush().unwrap();
        let vod = parse_media(&back.render_live(None));
        assert!(vod.end_list);
        let written: Vec<Marker> = back
            .render_live(None)
            .lines()
            .filter_map(Marker::parse_line)
            .collect();
        assert_eq!(
            written,
            pl.markers().cloned().collect::<Vec<_>>(),
            "two markers in one segment are both kept"
        );
    }

    #[test]
    fn query_cannot_inject_lines() {
        assert_eq!(
            with_query("seg00001.ts", Some("token=a\n#EXT-X-ENDLIST")),
            "seg00001.ts?token=a%0A%23EXT-X-ENDLIST"
        );
        assert_eq!(
            with_query("index.m3u8", Some("t=\"x y\"")),
            "index.m3u8?t=%22x%20y%22"
        );
        assert_eq!(
            with_query("a.ts?x=1", Some("token=abc")),
            "a.ts?x=1&token=abc"
        );
        let pl = playlist_of(DEFAULT_WINDOW, &two_seconds(2));
        let text = pl.render_live(Some("token=a\r\n#EXT-X-ENDLIST"));
        assert!(!text.contains("\n#EXT-X-ENDLIST"), "{text}");
        assert_eq!(parse_media(&text).segments.len(), 2);
    }

    #[test]
    fn event_playlist_lists_everything_as_event_while_live() {
        let mut pl = playlist_of(3, &two_seconds(10));
        let text = flushed_event(&mut pl, None);
        assert_eq!(tag_value(&text, "#EXT-X-PLAYLIST-TYPE"), Some("EVENT"));
        assert!(!text.contains("#EXT-X-ENDLIST"));
        assert!(!text.contains("#EXT-X-MEDIA-SEQUENCE"));
        let parsed = parse_media(&text);
        assert_eq!(parsed.segments.len(), 10);
        assert_eq!(parsed.media_sequence, 0);
        assert_eq!(
            parsed.playlist_type,
            Some(m3u8_rs::MediaPlaylistType::Event)
        );
    }

    #[test]
    fn ended_playlist_renders_complete_vod_in_both_views() {
        let mut pl = playlist_of(3, &two_seconds(10));
        assert!(!pl.is_ended());
        pl.end();
        pl.flush().unwrap();
        assert!(pl.is_ended());
        let live = pl.render_live(None);
        let event = flushed_event(&mut pl, None);
        assert_eq!(live, event);
        assert_eq!(tag_value(&live, "#EXT-X-PLAYLIST-TYPE"), Some("VOD"));
        assert!(live.ends_with("seg00009.ts\n#EXT-X-ENDLIST\n"), "{live}");
        let parsed = parse_media(&live);
        assert!(parsed.end_list);
        assert_eq!(parsed.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert_eq!(parsed.segments.len(), 10);
        assert_eq!(parsed.media_sequence, 0);
        assert_eq!(pl.media_duration(), Duration::from_secs(20));
    }

    #[test]
    fn segments_keep_their_media_sequence_number_when_the_playlist_ends() {
        let mut pl = playlist_of(3, &two_seconds(10));
        let before = parse_media(&pl.render_live(None));
        pl.end();
        pl.flush().unwrap();
        let after = parse_media(&pl.render_live(None));
        for (i, s) in before.segments.iter().enumerate() {
            let msn = before.media_sequence + i as u64;
            let j = usize::try_from(msn - after.media_sequence).unwrap();
            assert_eq!(after.segments[j].uri, s.uri);
        }
    }

    #[test]
    fn push_after_end_is_ignored() {
        let mut pl = playlist_of(3, &two_seconds(4));
        pl.end();
        pl.flush().unwrap();
        let before = pl.render_live(None);
        pl.push(seg(4, TARGET, TARGET * 4));
        assert_eq!(pl.segment_count(), 4);
        assert_eq!(pl.render_live(None), before);
    }

    #[test]
    fn discontinuity_is_tagged_and_counted_when_it_slides_out() {
        let mut pl = MediaPlaylist::new(3, TARGET);
        let mut discontinuity_sequences = Vec::new();
        for n in 0..9u64 {
            let mut s = seg(n, TARGET, TARGET * n as u32);
            // Publisher reconnects before segments 2 and 4.
            s.discontinuity = n == 2 || n == 4;
            pl.push(s);
            let text = pl.render_live(None);
            let parsed = parse_media(&text);
            discontinuity_sequences.push(parsed.discontinuity_sequence);
            let tags = text.matches("#EXT-X-DISCONTINUITY\n").count();
            let flagged = parsed.segments.iter().filter(|s| s.discontinuity).count();
            assert_eq!(tags, flagged);
        }
        // Window after segment n: [n-2, n]. Segment 2's tag leaves with n = 5, segment 4's with n = 7.
        assert_eq!(discontinuity_sequences, [0, 0, 0, 0, 0, 1, 1, 2, 2]);

        let text = pl.render_live(None);
        assert_eq!(tag_value(&text, "#EXT-X-DISCONTINUITY-SEQUENCE"), Some("2"));
        // The tag goes right before its segment, with the segment's date.
        let event = flushed_event(&mut pl, None);
        assert!(event.contains(
            "seg00001.ts\n#EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-03-14T18:00:04.000Z\n#EXTINF:2.000,\nseg00002.ts\n"
        ));
        // The event view starts at the beginning: nothing removed, no discontinuity sequence.
        assert!(!event.contains("#EXT-X-DISCONTINUITY-SEQUENCE"));
        assert_eq!(event.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
    }

    #[test]
    fn event_playlist_round_trips_through_parse_event() {
        let mut pl = MediaPlaylist::new(3, TARGET);
        let durations = [2002u64, 1998, 2000, 10_400, 2000, 2000, 2001, 1999];
        let mut start = Duration::ZERO;
        for (n, ms) in durations.into_iter().enumerate() {
            let d = Duration::from_millis(ms);
            let mut s = seg(n as u64, d, start);
            s.discontinuity = n == 5;
            pl.push(s);
            start += d;
        }
        for ended in [false, true] {
            if ended {
                pl.end();
                pl.flush().unwrap();
            }
            let text = flushed_event(&mut pl, None);
            let mut back = MediaPlaylist::parse_event(&text, 3, TARGET).unwrap();
            assert_eq!(back.is_ended(), ended);
            assert_eq!(back.recent_segments().len(), pl.recent_segments().len());
            for (a, b) in pl.recent_segments().iter().zip(back.recent_segments()) {
                assert_eq!(a.uri, b.uri);
                assert_eq!(a.duration, b.duration);
                assert_eq!(a.program_date_time, b.program_date_time);
                assert_eq!(a.discontinuity, b.discontinuity);
                assert_eq!(b.bytes, 0);
            }
            // Every view renders the same as before the crash (byte sizes do not show in playlists).
            assert_eq!(flushed_event(&mut back, None), text);
            assert_eq!(back.render_live(None), pl.render_live(None));
            assert_eq!(back.target_duration_secs(), 10);
            assert_eq!(back.next_sequence(), pl.next_sequence());
        }
    }

    #[test]
    fn recovered_playlist_continues_where_it_stopped() {
        let mut pl = playlist_of(3, &two_seconds(7));
        let mut recovered =
            MediaPlaylist::parse_event(&flushed_event(&mut pl, None), 3, TARGET).unwrap();
        let mut next = seg(7, TARGET, TARGET * 7);
        next.discontinuity = true;
        pl.push(next.clone());
        recovered.push(next);
        assert_eq!(recovered.render_live(None), pl.render_live(None));
        assert_eq!(
            flushed_event(&mut recovered, None),
            flushed_event(&mut pl, None)
        );
    }

    #[test]
    fn parse_event_keeps_sequence_numbers_of_a_trimmed_playlist() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n\
                    #EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n\
                    #EXT-X-PLAYLIST-TYPE:EVENT\n\
                    #EXT-X-PROGRAM-DATE-TIME:2025-03-14T18:00:00.000+01:00\n#EXTINF:2.000,\nseg00040.ts\n\
                    #EXTINF:2.500,\nseg00041.ts\n";
        let mut pl = MediaPlaylist::parse_event(text, 6, TARGET).unwrap();
        assert_eq!(pl.next_sequence(), 42);
        assert_eq!(pl.target_duration_secs(), 4);
        // An offset date time comes back in UTC; a missing one follows from the previous segment.
        let first = Utc.with_ymd_and_hms(2025, 3, 14, 17, 0, 0).unwrap();
        assert_eq!(pl.recent_segments()[0].program_date_time, first);
        assert_eq!(
            pl.recent_segments()[1].program_date_time,
            first + chrono::TimeDelta::seconds(2)
        );
        let out = flushed_event(&mut pl, None);
        assert_eq!(tag_value(&out, "#EXT-X-MEDIA-SEQUENCE"), Some("40"));
        assert_eq!(tag_value(&out, "#EXT-X-DISCONTINUITY-SEQUENCE"), Some("3"));
        assert_eq!(tag_value(&out, "#EXT-X-TARGETDURATION"), Some("4"));
    }

    #[test]
    fn parse_event_ignores_a_torn_last_line() {
        let mut pl = playlist_of(3, &two_seconds(4));
        let text = flushed_event(&mut pl, None);
        // Cut in the middle of the last URI line: that segment is lost, the rest is kept.
        let torn = &text[..text.len() - 4];
        let back = MediaPlaylist::parse_event(torn, 3, TARGET).unwrap();
        assert_eq!(back.recent_segments().len(), 3);
        assert_eq!(back.recent_segments()[2].uri, "seg00002.ts");
        // Cut after an EXTINF line: the dangling tags are dropped.
        let cut = text.find("seg00003.ts").unwrap();
        let back = MediaPlaylist::parse_event(&text[..cut], 3, TARGET).unwrap();
        assert_eq!(back.recent_segments().len(), 3);
    }

    #[test]
    fn parse_event_rejects_what_it_cannot_read() {
        assert!(matches!(
            MediaPlaylist::parse_event("", 3, TARGET),
            Err(Error::NotAPlaylist)
        ));
        assert!(matches!(
            MediaPlaylist::parse_event("hello\nworld\n", 3, TARGET),
            Err(Error::NotAPlaylist)
        ));
        let master = render_master(&[variant("source/index.m3u8", 5_000_000)], None);
        assert!(matches!(
            MediaPlaylist::parse_event(&master, 3, TARGET),
            Err(Error::NotAMediaPlaylist)
        ));
        let no_pdt = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nseg00000.ts\n";
        let err = MediaPlaylist::parse_event(no_pdt, 3, TARGET).unwrap_err();
        assert!(matches!(err, Error::MissingProgramDateTime { ref uri } if uri == "seg00000.ts"));
        assert_eq!(
            err.to_string(),
            "segment seg00000.ts has no program date time"
        );
        let huge = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:2025-03-14T18:00:00.000Z\n\
             #EXTINF:{},\nseg00000.ts\n",
            "9".repeat(60)
        );
        assert!(matches!(
            MediaPlaylist::parse_event(&huge, 3, TARGET),
            Err(Error::InvalidDuration { .. })
        ));
    }

    #[test]
    fn parse_event_refuses_uris_the_server_never_writes() {
        // Found by tests/fuzz.rs (playlist_restore): read back as a segment named ",", rendered
        // to disk, then lost on the next read (a second crash would renumber what follows).
        let comma = "#EXTM3U#EXT-X-PROGRAM-DATE-TIME:2026-12-03T12:00:00.0Z\n,\n";
        assert!(matches!(
            MediaPlaylist::parse_event(comma, 3, TARGET),
            Err(Error::InvalidUri { ref uri }) if uri == ","
        ));
        let pdt =
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:2026-12-03T12:00:00.000Z\n";
        for uri in [
            "../seg00000.ts",
            "https://cdn.example/seg.ts",
            ".hidden",
            "seg 1.ts",
        ] {
            let text = format!("{pdt}#EXTINF:2.000,\n{uri}\n");
            assert!(
                matches!(
                    MediaPlaylist::parse_event(&text, 3, TARGET),
                    Err(Error::InvalidUri { .. })
                ),
                "{uri}"
            );
        }
        let map = format!("{pdt}#EXT-X-MAP:URI=\"../init.mp4\"\n#EXTINF:2.000,\nseg00000.m4s\n");
        assert!(matches!(
            MediaPlaylist::parse_event(&map, 3, TARGET),
            Err(Error::InvalidUri { ref uri }) if uri == "../init.mp4"
        ));
        let good = format!("{pdt}#EXT-X-MAP:URI=\"init00000.mp4\"\n#EXTINF:2.000,\nseg00000.m4s\n");
        assert_eq!(
            MediaPlaylist::parse_event(&good, 3, TARGET)
                .unwrap()
                .recent_segments()
                .len(),
            1
        );
    }

    #[test]
    fn parse_event_refuses_dates_it_could_not_add_to() {
        // Found by fuzz/afl (playlist_restore, minimised by afl-tmin): read back, then rendering
        // panicked with "`DateTime + TimeDelta` overflowed".
        let found =
            "#EXTM3U#EXT-X-PROGRAM-DATE-TIME:0000-02-03T00:00:00Z\n#EXTINF:20000000000000\n0\n";
        assert!(matches!(
            MediaPlaylist::parse_event(found, 3, TARGET),
            Err(Error::DateOutOfRange { ref uri }) if uri == "0"
        ));
        let head = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n";
        for (pdt, extinf) in [
            ("2026-12-03T12:00:00.000Z", "20000000000000"),
            ("+10000-01-01T00:00:00.000Z", "2.000"),
            ("1969-12-31T23:59:59.000Z", "2.000"),
            ("9999-12-31T23:59:59.000Z", "2.000"),
        ] {
            let text =
                format!("{head}#EXT-X-PROGRAM-DATE-TIME:{pdt}\n#EXTINF:{extinf},\nseg00000.ts\n");
            assert!(
                MediaPlaylist::parse_event(&text, 3, TARGET).is_err(),
                "{pdt} + {extinf}"
            );
        }
        let fine = format!(
            "{head}#EXT-X-PROGRAM-DATE-TIME:9999-12-31T23:59:50.000Z\n#EXTINF:2.000,\nseg00000.ts\n"
        );
        let mut list = MediaPlaylist::parse_event(&fine, 3, TARGET).unwrap();
        let _ = flushed_event(&mut list, None);
        let _ = list.render_live(None);
    }

    #[test]
    fn absurd_durations_do_not_panic() {
        let mut pl = MediaPlaylist::new(2, Duration::MAX);
        for n in 0..4 {
            let mut s = seg(n, Duration::MAX, Duration::ZERO);
            s.bytes = u64::MAX;
            pl.push(s);
        }
        pl.push(seg(4, Duration::ZERO, Duration::ZERO));
        let _ = pl.render_live(None);
        let _ = flushed_event(&mut pl, None);
        assert_eq!(pl.media_duration(), Duration::MAX);
        assert!(pl.peak_bandwidth().is_some());
        assert!(pl.average_bandwidth().is_some());
    }

    #[test]
    fn bandwidth_from_segment_sizes() {
        let mut pl = MediaPlaylist::new(DEFAULT_WINDOW, TARGET);
        assert_eq!(pl.peak_bandwidth(), None);
        assert_eq!(pl.average_bandwidth(), None);
        // 500 kB in 2 s = 2 Mbit/s; 1.5 MB in 2 s = 6 Mbit/s; 250 kB in 1 s = 2 Mbit/s.
        for (n, (bytes, ms)) in [(500_000u64, 2000u64), (1_500_000, 2000), (250_000, 1000)]
            .into_iter()
            .enumerate()
        {
            let mut s = seg(n as u64, Duration::from_millis(ms), Duration::ZERO);
            s.bytes = bytes;
            pl.push(s);
        }
        assert_eq!(pl.peak_bandwidth(), Some(6_000_000));
        // 2.25 MB over 5 s = 3.6 Mbit/s.
        assert_eq!(pl.average_bandwidth(), Some(3_600_000));
        // Segments of unknown size do not count.
        let mut s = seg(3, TARGET, Duration::ZERO);
        s.bytes = 0;
        pl.push(s);
        assert_eq!(pl.average_bandwidth(), Some(3_600_000));
        // Rounded up: 1 byte in 3 s is 2.67 bit/s.
        let mut pl = MediaPlaylist::new(DEFAULT_WINDOW, TARGET);
        let mut s = seg(0, Duration::from_secs(3), Duration::ZERO);
        s.bytes = 1;
        pl.push(s);
        assert_eq!(pl.peak_bandwidth(), Some(3));
        assert_eq!(pl.average_bandwidth(), Some(3));
    }

    fn variant(uri: &str, bandwidth: u64) -> Variant {
        Variant {
            uri: uri.into(),
            bandwidth,
            average_bandwidth: None,
            resolution: None,
            codecs: None,
            frame_rate: None,
        }
    }

    #[test]
    fn master_playlist_has_exact_shape() {
        let source = Variant {
            uri: "source/index.m3u8".into(),
            bandwidth: 6_000_000,
            average_bandwidth: Some(4_500_000),
            resolution: Some((1920, 1080)),
            codecs: Some("avc1.64002a,mp4a.40.2".into()),
            frame_rate: Some(30.0),
        };
        let low = Variant {
            uri: "360p/index.m3u8".into(),
            bandwidth: 900_000,
            average_bandwidth: Some(800_000),
            resolution: Some((640, 360)),
            codecs: Some("avc1.4d401e,mp4a.40.2".into()),
            frame_rate: Some(30_000.0 / 1001.0),
        };
        assert_eq!(
            render_master(&[source, low], None),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=800000,\
             CODECS=\"avc1.4d401e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=29.97\n\
             360p/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=6000000,AVERAGE-BANDWIDTH=4500000,\
             CODECS=\"avc1.64002a,mp4a.40.2\",RESOLUTION=1920x1080,FRAME-RATE=30\n\
             source/index.m3u8\n"
        );
    }

    #[test]
    fn master_playlist_sorts_by_bandwidth_and_carries_query() {
        let variants = [
            variant("source/index.m3u8", 6_000_000),
            variant("480p/index.m3u8", 1_500_000),
            variant("720p/index.m3u8", 3_000_000),
            variant("360p/index.m3u8", 800_000),
        ];
        let text = render_master(&variants, Some("token=abc"));
        let parsed = parse_master(&text);
        assert!(parsed.independent_segments);
        let got: Vec<(&str, u64)> = parsed
            .variants
            .iter()
            .map(|v| (v.uri.as_str(), v.bandwidth))
            .collect();
        assert_eq!(
            got,
            [
                ("360p/index.m3u8?token=abc", 800_000),
                ("480p/index.m3u8?token=abc", 1_500_000),
                ("720p/index.m3u8?token=abc", 3_000_000),
                ("source/index.m3u8?token=abc", 6_000_000),
            ]
        );
    }

    #[test]
    fn master_playlist_of_audio_only_variant_parses() {
        let mut audio = variant("source/index.m3u8", 130_000);
        audio.codecs = Some("mp4a.40.2".into());
        audio.frame_rate = Some(f64::NAN);
        let text = render_master(&[audio], None);
        assert!(!text.contains("RESOLUTION"));
        assert!(!text.contains("FRAME-RATE"));
        let parsed = parse_master(&text);
        assert_eq!(parsed.variants[0].codecs.as_deref(), Some("mp4a.40.2"));
        assert_eq!(parsed.variants[0].resolution, None);
    }

    #[test]
    fn every_rendered_playlist_parses_back() {
        let mut pl = MediaPlaylist::new(DEFAULT_WINDOW, TARGET);
        let mut start = Duration::ZERO;
        for n in 0..15u64 {
            let d = if n == 6 {
                Duration::from_millis(10_400)
            } else {
                Duration::from_millis(1990 + n * 3)
            };
            let mut s = seg(n, d, start);
            s.discontinuity = n == 4 || n == 9;
            pl.push(s);
            start += d;
            for query in [None, Some("token=abc")] {
                for text in [pl.render_live(query), flushed_event(&mut pl, query)] {
                    let parsed = parse_media(&text);
                    assert!(parsed.independent_segments);
                    assert_eq!(parsed.version, Some(3));
                    assert!(
                        parsed
                            .segments
                            .iter()
                            .all(|s| s.program_date_time.is_some())
                    );
                }
            }
        }
        pl.end();
        pl.flush().unwrap();
        for query in [None, Some("token=abc")] {
            for text in [pl.render_live(query), flushed_event(&mut pl, query)] {
                let parsed = parse_media(&text);
                assert!(parsed.end_list);
                assert_eq!(parsed.segments.len(), 15);
            }
        }
        parse_master(&render_master(
            &[variant("a/index.m3u8", 1), variant("b/index.m3u8", 2)],
            Some("token=abc"),
        ));
    }

    /// CMAF segment `n` of ten 200 ms parts, starting at `2n` s, with init section `map`.
    fn cmaf(n: u64, map: &str) -> Segment {
        let mut s = seg(n, TARGET, TARGET * n as u32);
        s.uri = format!("seg{n:05}.m4s");
        s.map = Some(map.into());
        s.parts = (0..10)
            .map(|i| Part {
                uri: format!("part{n:05}.{i}.m4s"),
                duration: Duration::from_millis(200),
                independent: i == 0,
            })
            .collect();
        s
    }

    fn edge(open: usize, skip: bool) -> LiveEdge {
        LiveEdge {
            part_target: Duration::from_millis(200),
            hold_back_parts: 3,
            open: (0..open)
                .map(|i| Part {
                    uri: format!("part00005.{i}.m4s"),
                    duration: Duration::from_millis(200),
                    independent: i == 0,
                })
                .collect(),
            open_discontinuity: false,
            open_map: Some("init00000.mp4".into()),
            hint: Some(format!("part00005.{open}.m4s")),
            reports: vec![RenditionReport {
                uri: "../360p/index.m3u8".into(),
                last_msn: 5,
                last_part: 1,
            }],
            skip,
        }
    }

    fn lines_with<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(tag)).collect()
    }

    #[test]
    fn segments_far_from_the_edge_forget_their_parts_and_the_edge_keeps_them() {
        let mut pl = MediaPlaylist::new(6, TARGET);
        for n in 0..100 {
            pl.push(cmaf(n, "init00000.mp4"));
        }
        // 2 s segments, a 2 s target: the last six target durations (12 s) keep their parts.
        let with_parts: Vec<usize> = (0..100)
            .filter(|&i| !pl.recent_segments()[i].parts.is_empty())
            .collect();
        assert_eq!(with_parts, (94..100).collect::<Vec<_>>());
        // What a low-latency playlist lists is unchanged: the last three target durations.
        let text = pl.render_low_latency(&edge(2, false), None);
        assert_eq!(
            lines_with(&text, "#EXT-X-PART:").len(),
            3 * 10 + 2,
            "{text}"
        );
    }

    #[test]
    fn low_latency_playlist_has_parts_near_the_edge_then_the_open_segment_hint_and_reports() {
        let mut pl = MediaPlaylist::new(6, TARGET);
        for n in 0..5 {
            pl.push(cmaf(n, "init00000.mp4"));
        }
        let text = pl.render_low_latency(&edge(3, false), Some("token=t"));
        let lines: Vec<&str> = text.lines().collect();
        let at = |tag: &str| lines.iter().position(|l| l.starts_with(tag)).unwrap();
        // Server control and part information right after the header, before any segment.
        assert!(at("#EXT-X-TARGETDURATION") < at("#EXT-X-SERVER-CONTROL"));
        assert!(at("#EXT-X-PART-INF") < at("#EXT-X-MAP"));
        assert_eq!(
            tag_value(&text, "#EXT-X-SERVER-CONTROL"),
            Some("CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=0.600,HOLD-BACK=6.0")
        );
        assert_eq!(tag_value(&text, "#EXT-X-VERSION"), Some("6"));
        // One map (unchanged), with the token.
        assert_eq!(
            lines_with(&text, "#EXT-X-MAP"),
            ["#EXT-X-MAP:URI=\"init00000.mp4?token=t\""]
        );
        // Parts of the last three target durations (segments 2..=4) and of the open one.
        let parts = lines_with(&text, "#EXT-X-PART:");
        assert_eq!(parts.len(), 3 * 10 + 3, "{text}");
        assert!(!text.contains("part00001."), "{text}");
        assert_eq!(
            parts[0],
            "#EXT-X-PART:DURATION=0.20000,URI=\"part00002.0.m4s?token=t\",INDEPENDENT=YES"
        );
        // The open segment's parts follow the last segment; then the hint and the reports.
        let last_segment = lines
            .iter()
            .rposition(|l| *l == "seg00004.m4s?token=t")
            .unwrap();
        assert!(
            lines[last_segment + 1]
                .starts_with("#EXT-X-PART:DURATION=0.20000,URI=\"part00005.0.m4s")
        );
        assert_eq!(
            lines[lines.len() - 2],
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part00005.3.m4s?token=t\""
        );
        assert_eq!(
            lines[lines.len() - 1],
            "#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=5,LAST-PART=1"
        );
        // The parsed segments add up; m3u8-rs reads it as a media playlist.
        let parsed = parse_media(&text);
        assert_eq!(parsed.segments.len(), 5);
        // The event view (on disk) has the map but no parts.
        let event = flushed_event(&mut pl, None);
        assert!(
            event.contains("#EXT-X-MAP") && !event.contains("#EXT-X-PART"),
            "{event}"
        );
    }

    #[test]
    fn a_delta_update_skips_what_is_older_than_can_skip_until() {
        let mut pl = MediaPlaylist::new(20, TARGET);
        for n in 0..20 {
            pl.push(cmaf(n, "init00000.mp4"));
        }
        let text = pl.render_low_latency(&edge(1, true), None);
        // 40 s listed, skip until 12 s: the 13 segments that end more than 12 s before the end.
        assert_eq!(
            tag_value(&text, "#EXT-X-SKIP"),
            Some("SKIPPED-SEGMENTS=13"),
            "{text}"
        );
        assert_eq!(tag_value(&text, "#EXT-X-VERSION"), Some("9"));
        // The first segment is still number 0 (m3u8-rs leaves out a sequence of 0).
        assert_eq!(
            tag_value(&text, "#EXT-X-MEDIA-SEQUENCE").unwrap_or("0"),
            "0"
        );
        assert_eq!(lines_with(&text, "#EXTINF").len(), 7);
        assert!(text.find("#EXT-X-SKIP").unwrap() < text.find("#EXTINF").unwrap());
        // The client has the map from the full playlist; not repeated.
        assert!(!text.contains("#EXT-X-MAP"), "{text}");
        // Without the directive: everything.
        let full = pl.render_low_latency(&edge(1, false), None);
        assert_eq!(lines_with(&full, "#EXTINF").len(), 20);
    }

    #[test]
    fn a_new_init_section_is_written_where_it_starts() {
        let mut pl = MediaPlaylist::new(6, TARGET);
        pl.push(cmaf(0, "init00000.mp4"));
        let mut back = cmaf(1, "init00001.mp4");
        back.discontinuity = true;
        pl.push(back);
        let text = flushed_event(&mut pl, None);
        let maps = lines_with(&text, "#EXT-X-MAP");
        assert_eq!(maps.len(), 2, "{text}");
        assert!(text.find("init00001.mp4").unwrap() > text.find("seg00000.m4s").unwrap());
        // And it reads back from disk.
        let read = MediaPlaylist::parse_event(&text, 6, TARGET).unwrap();
        let maps: Vec<_> = read
            .recent_segments()
            .iter()
            .map(|s| s.map.as_deref().unwrap())
            .collect();
        assert_eq!(maps, ["init00000.mp4", "init00001.mp4"]);
    }

    #[test]
    fn a_list_longer_than_a_render_batch_is_written_once_with_every_segment_in_order() {
        // Init sections change at a batch boundary and inside a batch; parts at the edge.
        let n = 3 * RENDER_BATCH as u64 + 5;
        let mut pl = MediaPlaylist::new(6, TARGET);
        for i in 0..n {
            let map = match i {
                i if i < RENDER_BATCH as u64 => "init00000.mp4",
                i if i < 100 => "init00064.mp4",
                _ => "init00100.mp4",
            };
            pl.push(cmaf(i, map));
        }
        for ended in [false, true] {
            if ended {
                pl.end();
                pl.flush().unwrap();
            }
            let text = flushed_event(&mut pl, Some("token=abc"));
            for tag in ["#EXTM3U", "#EXT-X-TARGETDURATION", "#EXT-X-PLAYLIST-TYPE"] {
                assert_eq!(lines_with(&text, tag).len(), 1, "{tag} in {text}");
            }
            assert_eq!(lines_with(&text, "#EXT-X-MAP").len(), 3, "{text}");
            assert_eq!(
                lines_with(&text, "#EXT-X-ENDLIST").len(),
                usize::from(ended)
            );
            let parsed = parse_media(&text);
            let uris: Vec<String> = parsed.segments.iter().map(|s| s.uri.clone()).collect();
            let expected: Vec<String> =
                (0..n).map(|i| format!("seg{i:05}.m4s?token=abc")).collect();
            assert_eq!(uris, expected);
            assert_eq!(parsed.end_list, ended);
            let read =
                MediaPlaylist::parse_event(&flushed_event(&mut pl, None), 6, TARGET).unwrap();
            assert_eq!(read.segment_count(), n);
            assert_eq!(read.is_ended(), ended);
        }
    }

    #[test]
    fn segments_with_the_same_init_section_share_its_name() {
        let mut pl = MediaPlaylist::new(6, TARGET);
        for i in 0..10 {
            pl.push(cmaf(
                i,
                if i < 5 {
                    "init00000.mp4"
                } else {
                    "init00005.mp4"
                },
            ));
        }
        let maps: Vec<&Arc<str>> = pl
            .recent_segments()
            .iter()
            .map(|s| s.map.as_ref().unwrap())
            .collect();
        assert!(maps[..5].iter().all(|m| Arc::ptr_eq(m, maps[0])));
        assert!(maps[5..].iter().all(|m| Arc::ptr_eq(m, maps[5])));
        assert!(!Arc::ptr_eq(maps[0], maps[5]));
        assert_eq!(&**maps[9], "init00005.mp4");
        // Read back from disk alike (memory keeps the window: segments 4 to 9).
        let read = MediaPlaylist::parse_event(&flushed_event(&mut pl, None), 6, TARGET).unwrap();
        let maps: Vec<&Arc<str>> = read
            .recent_segments()
            .iter()
            .map(|s| s.map.as_ref().unwrap())
            .collect();
        assert_eq!(maps.len(), 6);
        assert!(maps[1..].iter().all(|m| Arc::ptr_eq(m, maps[1])));
        assert_eq!(&**maps[0], "init00000.mp4");
    }

    /// CMAF segment `n` as a stream's output lists it: 2 s (give or take a millisecond), 10 parts, an
    /// init section per publish, a discontinuity where `restart_at` resumed it, a marker every
    /// 500 segments that ends 100 segments later.
    fn stream_segment(n: u64, restart_at: u64) -> (Segment, Option<Marker>) {
        let ms = [2000, 2002, 1998][(n % 3) as usize];
        let start = Duration::from_millis(2000 * n);
        let mut s = seg(n, Duration::from_millis(ms), start);
        s.uri = format!("seg{n:05}.m4s");
        s.bytes = 500_000 + n;
        let publish = if n < restart_at { 0 } else { restart_at };
        s.map = Some(format!("init{publish:05}.mp4").into());
        s.discontinuity = n == restart_at;
        s.parts = cmaf(n, "x").parts;
        let start_ms = 2000 * n as i64;
        let marker = match n % 500 {
            0 => Some(product_marker(&format!("m{n}"), start_ms + 10, None)),
            100 if n > 100 => {
                let id = n - 100;
                Some(product_marker(
                    &format!("m{id}"),
                    2000 * id as i64 + 10,
                    Some(start_ms),
                ))
            }
            _ => None,
        };
        (s, marker)
    }

    #[test]
    fn ten_thousand_segments_keep_the_window_in_memory_and_every_segment_on_disk() {
        const N: u64 = 10_000;
        const RESTART: u64 = 5_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.m3u8");
        // The reference: every segment listed at once, its event list rendered in one go.
        let mut reference = MediaPlaylist::new(DEFAULT_WINDOW, TARGET);
        let mut pl = MediaPlaylist::on_disk(path.clone(), DEFAULT_WINDOW, TARGET);
        let mut most_in_memory = 0;
        for n in 0..N {
            if n == RESTART {
                // A crash: the playlist is read back from its file and continued.
                drop(pl);
                let text = std::fs::read_to_string(&path).unwrap();
                pl = MediaPlaylist::restore_event(&path, &text, DEFAULT_WINDOW, TARGET).unwrap();
                assert_eq!(pl.next_sequence(), RESTART);
                assert_eq!(pl.segment_count(), RESTART);
                assert!(pl.lists("seg00000.m4s") && pl.lists("seg04999.m4s"));
            }
            let (s, marker) = stream_segment(n, RESTART);
            // Its file, for the sizes read back (sparse: a size without the bytes).
            let file = std::fs::File::create(dir.path().join(&s.uri)).unwrap();
            file.set_len(s.bytes).unwrap();
            reference.push(s.clone());
            pl.push(s);
            if let Some(m) = marker {
                reference.set_marker(m.clone());
                pl.set_marker(m);
            }
            pl.flush().unwrap();
            most_in_memory = most_in_memory.max(pl.recent_segments().len());
        }
        assert_eq!(most_in_memory, DEFAULT_WINDOW);
        // Markers: the one still open, and those ended in or after the window.
        assert!(
            pl.markers().count() <= 2,
            "{:?}",
            pl.markers().collect::<Vec<_>>()
        );
        assert_eq!(pl.segment_count(), N);
        assert_eq!(pl.next_sequence(), N);
        assert!(pl.lists("seg00000.m4s") && pl.lists("seg09999.m4s") && pl.lists("init05000.mp4"));
        assert!(!pl.lists("seg10000.m4s") && !pl.lists("init00001.mp4"));
        assert_eq!(pl.media_duration(), reference.media_duration());
        assert_eq!(pl.peak_bandwidth(), reference.peak_bandwidth());
        assert_eq!(pl.average_bandwidth(), reference.average_bandwidth());
        assert_eq!(pl.render_live(None), reference.render_live(None));

        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk, flushed_event(&mut reference, None));
        assert_eq!(
            pl.render_event(Some("token=t")).unwrap(),
            reference.render_event(Some("token=t")).unwrap()
        );
        let parsed = parse_media(&on_disk);
        assert_eq!(parsed.segments.len(), N as usize);
        assert!(
            parsed
                .segments
                .iter()
                .enumerate()
                .all(|(i, s)| s.uri == format!("seg{i:05}.m4s"))
        );
        assert_eq!(
            parsed.segments.iter().filter(|s| s.discontinuity).count(),
            1
        );
        assert!(parsed.segments[RESTART as usize].discontinuity);
        // Each marker once, with its end once it has one.
        let markers: Vec<Marker> = on_disk.lines().filter_map(Marker::parse_line).collect();
        assert_eq!(markers.len(), 20, "{markers:?}");
        assert_eq!(markers.iter().filter(|m| m.end.is_none()).count(), 1);

        pl.end();
        pl.flush().unwrap();
        let vod = std::fs::read_to_string(&path).unwrap();
        assert!(vod.ends_with("seg09999.m4s\n#EXT-X-ENDLIST\n"));
        assert_eq!(vod.matches("#EXT-X-PLAYLIST-TYPE:VOD\n").count(), 1);
        assert_eq!(pl.render_live(None), vod);
    }

    #[test]
    fn lists_names_its_segments_and_init_sections_only() {
        let mut pl = MediaPlaylist::new(6, TARGET);
        for i in 0..3 {
            pl.push(cmaf(i, "init00000.mp4"));
        }
        for name in ["seg00000.m4s", "seg00002.m4s", "init00000.mp4"] {
            assert!(pl.lists(name), "{name}");
        }
        for name in ["seg00003.m4s", "part00002.0.m4s", "init00001.mp4", ""] {
            assert!(!pl.lists(name), "{name}");
        }
    }
}

#[cfg(test)]
mod golden {
    use super::*;
    use chrono::TimeZone;

    /// Every view after a scenario of 300 CMAF segments (a discontinuity with a new init section,
    /// a target duration raised by a 5 s segment, markers ended later, one at the open segment, the
    /// end), flushed after each change as a stream's output does, against what the renders wrote
    /// before the event list moved to disk (`tests/golden/playlist-views.txt`, made by the code of
    /// e4259da from the same calls, without flushes).
    #[test]
    fn every_view_renders_as_before_the_event_list_moved_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc.with_ymd_and_hms(2025, 3, 14, 18, 0, 0).unwrap();
        let at = |ms: i64| t0 + chrono::TimeDelta::milliseconds(ms);
        let marker = |id: &str, s: i64, e: Option<i64>| Marker {
            id: id.into(),
            class: "com.livefront.product".into(),
            start: at(s),
            end: e.map(at),
            attributes: vec![("X-PRODUCT-ID".into(), format!("product-{id}"))],
        };
        let edge = |skip: bool| LiveEdge {
            part_target: Duration::from_millis(200),
            hold_back_parts: 3,
            open: (0..3)
                .map(|i| Part {
                    uri: format!("part99999.{i}.m4s"),
                    duration: Duration::from_millis(200),
                    independent: i == 0,
                })
                .collect(),
            open_discontinuity: false,
            open_map: Some("init00150.mp4".into()),
            hint: Some("part99999.3.m4s".into()),
            reports: vec![RenditionReport {
                uri: "../360p/index.m3u8".into(),
                last_msn: 5,
                last_part: 1,
            }],
            skip,
        };
        let mut out = String::new();
        let mut pl =
            MediaPlaylist::on_disk(dir.path().join("event.m3u8"), 6, Duration::from_secs(2));
        let mut start_ms: i64 = 0;
        let (mut a_start, mut c_start) = (0, 0);
        let snap = |pl: &MediaPlaylist, name: &str, out: &mut String| {
            for (kind, text) in [
                ("live", pl.render_live(None)),
                ("live-q", pl.render_live(Some("token=x"))),
                ("ll", pl.render_low_latency(&edge(false), None)),
                (
                    "ll-skip-q",
                    pl.render_low_latency(&edge(true), Some("token=x")),
                ),
                ("event", pl.render_event(None).unwrap()),
                ("event-q", pl.render_event(Some("token=x")).unwrap()),
            ] {
                out.push_str(&format!("=== {name} {kind} ===\n{text}"));
            }
        };
        for n in 0u64..300 {
            let ms = match n {
                200 => 5000,
                _ => [2000, 2002, 1998][(n % 3) as usize],
            };
            let mut s = Segment::new(
                format!("seg{n:05}.m4s"),
                Duration::from_millis(ms),
                at(start_ms),
            );
            s.bytes = 400_000 + n * 1000;
            s.discontinuity = n == 150;
            s.map = Some(
                if n < 150 {
                    "init00000.mp4"
                } else {
                    "init00150.mp4"
                }
                .into(),
            );
            s.parts = (0..10)
                .map(|i| Part {
                    uri: format!("part{n:05}.{i}.m4s"),
                    duration: Duration::from_millis(ms / 10),
                    independent: i == 0,
                })
                .collect();
            let seg_start = start_ms;
            start_ms += ms as i64;
            // As a stream's output does: the segment, the markers it placed, then a flush.
            pl.push(s);
            match n {
                10 => {
                    a_start = seg_start + 100;
                    pl.set_marker(marker("a", a_start, None))
                }
                20 => pl.set_marker(marker("a", a_start, Some(seg_start + 50))),
                100 => pl.set_marker(marker("b", seg_start + 10, Some(seg_start + 900))),
                250 => {
                    c_start = seg_start + 500;
                    pl.set_marker(marker("c", c_start, None))
                }
                260 => pl.set_marker(marker("d", start_ms + 300, None)),
                _ => {}
            }
            pl.flush().unwrap();
            if [5, 150, 261, 299].contains(&n) {
                snap(&pl, &format!("after {n}"), &mut out);
            }
        }
        pl.set_marker(marker("c", c_start, Some(start_ms)));
        pl.end();
        pl.flush().unwrap();
        snap(&pl, "ended", &mut out);
        let golden = include_str!("../../tests/golden/playlist-views.txt");
        if out != golden {
            std::fs::write(dir.path().join("got.txt"), &out).unwrap();
            let first = out
                .lines()
                .zip(golden.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "differs from line {}: {:?} (golden {:?})",
                first + 1,
                out.lines().nth(first),
                golden.lines().nth(first)
            );
        }
        // Memory kept the live window only: 6 segments, or the 3 target durations (15 s) that
        // the 5 s segment asked for (8 segments).
        assert_eq!(pl.recent_segments().len(), 8);
    }
}
