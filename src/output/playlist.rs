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

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

use super::daterange::Marker;

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
#[derive(Debug, Clone)]
pub struct MediaPlaylist {
    /// Every segment since the start, oldest first.
    segments: Vec<Segment>,
    /// Media sequence number of `segments[0]`.
    first_sequence: u64,
    /// Discontinuity sequence number of `segments[0]` (discontinuity tags removed before it).
    first_discontinuity_sequence: u64,
    /// Index in `segments` of the first segment of the live window; only moves forward, so
    /// `EXT-X-MEDIA-SEQUENCE` of the live view never decreases.
    live_start: usize,
    ended: bool,
    /// Segments in the live window (at least 1).
    window: usize,
    /// `EXT-X-TARGETDURATION` in seconds: the configured target rounded up, raised by every segment ever
    /// pushed and never lowered.
    target_duration: u64,
    /// `EXT-X-DATERANGE` markers, in the order they were set; each is written before the segment
    /// its start falls in.
    markers: Vec<Marker>,
}

/// Which view of the segments to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Live,
    Event,
}

impl MediaPlaylist {
    /// An empty playlist with a live window of `window` segments (at least 1) and the configured segment
    /// target (e.g. 2 s), which is the floor of `EXT-X-TARGETDURATION`.
    pub fn new(window: usize, target: Duration) -> Self {
        Self {
            segments: Vec::new(),
            first_sequence: 0,
            first_discontinuity_sequence: 0,
            live_start: 0,
            ended: false,
            window: window.max(1),
            target_duration: configured_target_secs(target),
            markers: Vec::new(),
        }
    }

    /// Adds a marker, or replaces the one with the same id (its end became known). Also after the
    /// end: a VOD list gets the end of the marker that was open when the stream stopped.
    pub fn set_marker(&mut self, marker: Marker) {
        match self.markers.iter_mut().find(|m| m.id == marker.id) {
            Some(m) => *m = marker,
            None => self.markers.push(marker),
        }
    }

    pub fn markers(&self) -> &[Marker] {
        &self.markers
    }

    /// Appends a closed segment as media sequence number `sequence` when the playlist is still empty (a
    /// view that starts later than the stream, e.g. its public part), as the next one otherwise.
    pub fn push_numbered(&mut self, sequence: u64, seg: Segment) {
        if self.segments.is_empty() {
            self.first_sequence = sequence;
        }
        self.push(seg);
    }

    /// Appends a closed segment. Ignored (with a warning) once the playlist has ended: an ended playlist is
    /// a finished VOD and must not change.
    pub fn push(&mut self, seg: Segment) {
        if self.ended {
            tracing::warn!(uri = %seg.uri, "segment pushed after the playlist ended; ignored");
            return;
        }
        self.target_duration = self.target_duration.max(rounded_secs(seg.duration));
        let mut seg = seg;
        self.share_map(&mut seg);
        self.segments.push(seg);
        self.advance_live_start();
        self.forget_old_parts();
    }

    /// Points `seg`'s init section name at the previous segment's when they are the same: one copy
    /// per init section instead of one per segment (a stream keeps every segment while live).
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

    /// The stream is over: from now on both views render the complete list as VOD with `EXT-X-ENDLIST`.
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

    /// Sizes of segments that were read back from disk, for their bandwidth.
    pub fn restat(&mut self, dir: &std::path::Path) {
        for s in self.segments.iter_mut().filter(|s| s.bytes == 0) {
            s.bytes = std::fs::metadata(dir.join(&s.uri)).map_or(0, |m| m.len());
        }
    }

    /// Every segment since the start, oldest first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether `name` is the file name of one of its segments or init sections. Searched from the
    /// newest segment, which is what live players ask for.
    pub fn lists(&self, name: &str) -> bool {
        self.segments
            .iter()
            .rev()
            .any(|s| s.uri == name || s.map.as_deref() == Some(name))
    }

    /// Total duration of all segments since the start.
    pub fn media_duration(&self) -> Duration {
        self.segments
            .iter()
            .fold(Duration::ZERO, |sum, s| sum.saturating_add(s.duration))
    }

    /// The current `EXT-X-TARGETDURATION` in seconds.
    pub fn target_duration_secs(&self) -> u64 {
        self.target_duration
    }

    /// Media sequence number the next pushed segment will get.
    pub fn next_sequence(&self) -> u64 {
        self.first_sequence
            .saturating_add(self.segments.len() as u64)
    }

    /// Live playlist: the last `window` segments while live (`EXT-X-MEDIA-SEQUENCE` counting the segments
    /// that slid out, `EXT-X-DISCONTINUITY-SEQUENCE` the discontinuities that slid out), the complete list
    /// with `EXT-X-PLAYLIST-TYPE:VOD` + `EXT-X-ENDLIST` once ended.
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
        self.render(View::Live, query)
    }

    /// Every segment since the start: `EXT-X-PLAYLIST-TYPE:EVENT` while live, VOD + `EXT-X-ENDLIST` once
    /// ended. `query` as in [`MediaPlaylist::render_live`]; write it to disk without one.
    pub fn render_event(&self, query: Option<&str>) -> String {
        self.render(View::Event, query)
    }

    /// Re-reads a playlist written by [`MediaPlaylist::render_event`] (crash recovery after `kill -9`):
    /// segments, durations (to the millisecond written), program date times, discontinuities, media and
    /// discontinuity sequence numbers, target duration and the ended flag. Byte sizes are 0 (restat the files).
    ///
    /// A last line without its newline (a write cut short) is ignored; write the file to a temporary name
    /// and rename it to avoid that case altogether. A segment without `EXT-X-PROGRAM-DATE-TIME` gets the
    /// previous segment's date time plus its duration.
    pub fn parse_event(text: &str, window: usize, target: Duration) -> Result<Self, Error> {
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
        playlist.first_sequence = parsed.media_sequence;
        playlist.first_discontinuity_sequence = parsed.discontinuity_sequence;
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
            playlist.target_duration = playlist.target_duration.max(rounded_secs(duration));
            playlist.share_map(&mut segment);
            playlist.segments.push(segment);
        }
        playlist.advance_live_start();
        playlist.ended = parsed.end_list;
        for marker in complete.lines().filter_map(Marker::parse_line) {
            playlist.set_marker(marker);
        }
        Ok(playlist)
    }

    /// Peak segment bit rate in bits per second (for `BANDWIDTH`), rounded up. Segments of unknown size
    /// (0 bytes) or zero duration are left out; `None` when no segment is left.
    pub fn peak_bandwidth(&self) -> Option<u64> {
        self.measured()
            .map(|s| bits_per_second(u128::from(s.bytes), s.duration.as_nanos()))
            .max()
    }

    /// Average bit rate over all segments in bits per second (for `AVERAGE-BANDWIDTH`), rounded up.
    /// Same segments as [`MediaPlaylist::peak_bandwidth`].
    pub fn average_bandwidth(&self) -> Option<u64> {
        let (bytes, nanos, count) = self.measured().fold((0u128, 0u128, 0usize), |acc, s| {
            (
                acc.0 + u128::from(s.bytes),
                acc.1 + s.duration.as_nanos(),
                acc.2 + 1,
            )
        });
        (count > 0).then(|| bits_per_second(bytes, nanos))
    }

    /// Segments whose bit rate is known.
    fn measured(&self) -> impl Iterator<Item = &Segment> {
        self.segments
            .iter()
            .filter(|s| s.bytes > 0 && !s.duration.is_zero())
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
            return self.render(View::Live, query);
        }
        self.render_with(View::Live, query, Some(edge))
    }

    /// `CAN-SKIP-UNTIL` of a low-latency playlist: the least RFC 8216bis allows, six target durations.
    pub fn skip_until(&self) -> Duration {
        Duration::from_secs(self.target_duration.saturating_mul(6))
    }

    /// The one place that produces media playlist text.
    fn render(&self, view: View, query: Option<&str>) -> String {
        self.render_with(view, query, None)
    }

    fn render_with(&self, view: View, query: Option<&str>, edge: Option<&LiveEdge>) -> String {
        let first = match view {
            View::Live if !self.ended => self.live_start,
            _ => 0,
        };
        let skipped = match edge {
            Some(e) if e.skip => self.skippable(first),
            _ => 0,
        };
        // The segments written; the skipped ones still count in the sequence numbers.
        let start = first + skipped;
        let previous_map = start
            .checked_sub(1)
            .and_then(|i| self.segments[i].map.clone());
        let playlist_type = match (view, self.ended) {
            (_, true) => Some(m3u8_rs::MediaPlaylistType::Vod),
            (View::Event, false) => Some(m3u8_rs::MediaPlaylistType::Event),
            (View::Live, false) => None,
        };
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
        let closed_end = self.segments.last().map(Segment::end);
        let (edge_markers, listed_markers): (Vec<&Marker>, Vec<&Marker>) = self
            .markers
            .iter()
            .partition(|m| !self.ended && closed_end.is_some_and(|end| m.start >= end));
        // Without skipping, the first segment shown always carries its map; with skipping, the
        // client has it from the full playlist it loaded before.
        let mut map = if skipped > 0 { previous_map } else { None };
        let mut playlist = m3u8_rs::MediaPlaylist {
            version: Some(Self::version(shown, skipped > 0)),
            independent_segments: true,
            target_duration: self.target_duration,
            media_sequence: self.first_sequence.saturating_add(first as u64),
            discontinuity_sequence: self
                .first_discontinuity_sequence
                .saturating_add(removed_discontinuities),
            playlist_type,
            ..Default::default()
        };
        // m3u8-rs keeps the EXTINF precision in a process-wide setting. Every writer in this crate goes
        // through this module and wants milliseconds, so setting it before each write is idempotent; without
        // it f32 durations print as e.g. `2.0020001`.
        m3u8_rs::WRITE_OPT_FLOAT_PRECISION.store(EXTINF_DECIMALS, Ordering::Relaxed);
        let write = |playlist: &m3u8_rs::MediaPlaylist, out: &mut Vec<u8>| {
            playlist
                .write_to(out)
                .expect("writing a playlist into a Vec cannot fail")
        };
        // The header, then the segments a batch at a time (each batch written after the same
        // header, which is cut off): besides the text, a render holds a batch of m3u8-rs segments,
        // however long the list (the event list is rendered whenever a segment closes).
        let mut out = Vec::with_capacity(256 + shown.len() * SEGMENT_TEXT_BYTES);
        write(&playlist, &mut out);
        let header = out.len();
        let mut batch_text = Vec::new();
        let mut markers = self.marker_tags(shown, &listed_markers).into_iter();
        for (b, batch) in shown.chunks(RENDER_BATCH).enumerate() {
            playlist.segments.clear();
            for (j, (s, markers)) in batch.iter().zip(markers.by_ref()).enumerate() {
                let mut segment = Self::media_segment(s, query);
                if s.map != map {
                    map.clone_from(&s.map);
                    segment.map = s.map.as_ref().map(|uri| m3u8_rs::Map {
                        uri: with_query(uri, query),
                        ..Default::default()
                    });
                }
                segment.unknown_tags = markers;
                if b * RENDER_BATCH + j >= listed_from {
                    segment
                        .unknown_tags
                        .extend(s.parts.iter().map(|p| part_tag(p, query)));
                }
                playlist.segments.push(segment);
            }
            batch_text.clear();
            write(&playlist, &mut batch_text);
            out.extend_from_slice(&batch_text[header..]);
        }
        if self.ended {
            out.extend_from_slice(b"#EXT-X-ENDLIST\n");
        }
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

    /// The DATERANGE tags to write before each of `view`'s segments: a marker goes before the
    /// segment its start falls in (by `PROGRAM-DATE-TIME`), or before the first one when it began
    /// earlier and still overlaps the view; markers that ended without covering any segment of
    /// the view (before it, or in a gap it leaves out) are left out.
    fn marker_tags(&self, view: &[Segment], markers: &[&Marker]) -> Vec<Vec<m3u8_rs::ExtTag>> {
        let mut tags = vec![Vec::new(); view.len()];
        if view.is_empty() {
            return tags;
        }
        for marker in markers {
            // A marker that ended covers some shown segment, or it is not shown (it ended before
            // the view, or lay in media the view leaves out).
            let covers = |s: &Segment| {
                marker.start < s.end() && marker.end.is_some_and(|e| e > s.program_date_time)
            };
            if marker.end.is_some() && !view.iter().any(covers) {
                continue;
            }
            let at = view
                .iter()
                .take_while(|s| s.program_date_time <= marker.start)
                .count()
                .saturating_sub(1);
            tags[at].push(m3u8_rs::ExtTag {
                tag: "X-DATERANGE".into(),
                rest: Some(marker.attribute_list()),
            });
        }
        tags
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const TARGET: Duration = Duration::from_secs(2);

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
        assert_eq!(pl.segments().len(), 8);
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
            for text in [pl.render_live(None), pl.render_event(None)] {
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
            pl.render_event(Some("token=abc")),
        ] {
            let parsed = parse_media(&text);
            assert!(!parsed.segments.is_empty());
            for s in &parsed.segments {
                assert!(s.uri.ends_with(".ts?token=abc"), "{}", s.uri);
            }
        }
        pl.end();
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
            let parsed = parse_media(&pl.render_event(query));
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
    fn markers_go_before_the_segment_their_start_falls_in() {
        let mut pl = playlist_of(3, &two_seconds(10));
        pl.set_marker(product_marker("a", 1_000, Some(5_500)));
        pl.set_marker(product_marker("b", 5_500, Some(15_000)));
        pl.set_marker(product_marker("c", 15_000, None));
        let event = pl.render_event(None);
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
        assert_eq!(pl.markers().len(), 1);
    }

    #[test]
    fn markers_survive_the_event_playlist_on_disk_and_the_end() {
        let mut pl = playlist_of(DEFAULT_WINDOW, &two_seconds(4));
        pl.set_marker(product_marker("a", 500, Some(2_000)));
        pl.set_marker(product_marker("b", 2_000, Some(2_400)));
        pl.set_marker(product_marker("c", 2_400, None));
        let back =
            MediaPlaylist::parse_event(&pl.render_event(None), DEFAULT_WINDOW, TARGET).unwrap();
        assert_eq!(back.markers(), pl.markers());
        let mut back = back;
        back.end();
        let vod = parse_media(&back.render_live(None));
        assert!(vod.end_list);
        let written: Vec<Marker> = back
            .render_live(None)
            .lines()
            .filter_map(Marker::parse_line)
            .collect();
        assert_eq!(
            written,
            pl.markers(),
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
        let pl = playlist_of(3, &two_seconds(10));
        let text = pl.render_event(None);
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
        assert!(pl.is_ended());
        let live = pl.render_live(None);
        let event = pl.render_event(None);
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
        let before = pl.render_live(None);
        pl.push(seg(4, TARGET, TARGET * 4));
        assert_eq!(pl.segments().len(), 4);
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
        let event = pl.render_event(None);
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
            }
            let text = pl.render_event(None);
            let back = MediaPlaylist::parse_event(&text, 3, TARGET).unwrap();
            assert_eq!(back.is_ended(), ended);
            assert_eq!(back.segments().len(), pl.segments().len());
            for (a, b) in pl.segments().iter().zip(back.segments()) {
                assert_eq!(a.uri, b.uri);
                assert_eq!(a.duration, b.duration);
                assert_eq!(a.program_date_time, b.program_date_time);
                assert_eq!(a.discontinuity, b.discontinuity);
                assert_eq!(b.bytes, 0);
            }
            // Every view renders the same as before the crash (byte sizes do not show in playlists).
            assert_eq!(back.render_event(None), text);
            assert_eq!(back.render_live(None), pl.render_live(None));
            assert_eq!(back.target_duration_secs(), 10);
            assert_eq!(back.next_sequence(), pl.next_sequence());
        }
    }

    #[test]
    fn recovered_playlist_continues_where_it_stopped() {
        let mut pl = playlist_of(3, &two_seconds(7));
        let mut recovered = MediaPlaylist::parse_event(&pl.render_event(None), 3, TARGET).unwrap();
        let mut next = seg(7, TARGET, TARGET * 7);
        next.discontinuity = true;
        pl.push(next.clone());
        recovered.push(next);
        assert_eq!(recovered.render_live(None), pl.render_live(None));
        assert_eq!(recovered.render_event(None), pl.render_event(None));
    }

    #[test]
    fn parse_event_keeps_sequence_numbers_of_a_trimmed_playlist() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n\
                    #EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n\
                    #EXT-X-PLAYLIST-TYPE:EVENT\n\
                    #EXT-X-PROGRAM-DATE-TIME:2025-03-14T18:00:00.000+01:00\n#EXTINF:2.000,\nseg00040.ts\n\
                    #EXTINF:2.500,\nseg00041.ts\n";
        let pl = MediaPlaylist::parse_event(text, 6, TARGET).unwrap();
        assert_eq!(pl.next_sequence(), 42);
        assert_eq!(pl.target_duration_secs(), 4);
        // An offset date time comes back in UTC; a missing one follows from the previous segment.
        let first = Utc.with_ymd_and_hms(2025, 3, 14, 17, 0, 0).unwrap();
        assert_eq!(pl.segments()[0].program_date_time, first);
        assert_eq!(
            pl.segments()[1].program_date_time,
            first + chrono::TimeDelta::seconds(2)
        );
        let out = pl.render_event(None);
        assert_eq!(tag_value(&out, "#EXT-X-MEDIA-SEQUENCE"), Some("40"));
        assert_eq!(tag_value(&out, "#EXT-X-DISCONTINUITY-SEQUENCE"), Some("3"));
        assert_eq!(tag_value(&out, "#EXT-X-TARGETDURATION"), Some("4"));
    }

    #[test]
    fn parse_event_ignores_a_torn_last_line() {
        let pl = playlist_of(3, &two_seconds(4));
        let text = pl.render_event(None);
        // Cut in the middle of the last URI line: that segment is lost, the rest is kept.
        let torn = &text[..text.len() - 4];
        let back = MediaPlaylist::parse_event(torn, 3, TARGET).unwrap();
        assert_eq!(back.segments().len(), 3);
        assert_eq!(back.segments()[2].uri, "seg00002.ts");
        // Cut after an EXTINF line: the dangling tags are dropped.
        let cut = text.find("seg00003.ts").unwrap();
        let back = MediaPlaylist::parse_event(&text[..cut], 3, TARGET).unwrap();
        assert_eq!(back.segments().len(), 3);
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
                .segments()
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
        let list = MediaPlaylist::parse_event(&fine, 3, TARGET).unwrap();
        let _ = list.render_event(None);
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
        let _ = pl.render_event(None);
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
                for text in [pl.render_live(query), pl.render_event(query)] {
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
        for query in [None, Some("token=abc")] {
            for text in [pl.render_live(query), pl.render_event(query)] {
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
            .filter(|&i| !pl.segments()[i].parts.is_empty())
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
        let event = pl.render_event(None);
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
        let text = pl.render_event(None);
        let maps = lines_with(&text, "#EXT-X-MAP");
        assert_eq!(maps.len(), 2, "{text}");
        assert!(text.find("init00001.mp4").unwrap() > text.find("seg00000.m4s").unwrap());
        // And it reads back from disk.
        let read = MediaPlaylist::parse_event(&text, 6, TARGET).unwrap();
        let maps: Vec<_> = read
            .segments()
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
            }
            let text = pl.render_event(Some("token=abc"));
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
            let read = MediaPlaylist::parse_event(&pl.render_event(None), 6, TARGET).unwrap();
            assert_eq!(read.segments().len(), n as usize);
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
            .segments()
            .iter()
            .map(|s| s.map.as_ref().unwrap())
            .collect();
        assert!(maps[..5].iter().all(|m| Arc::ptr_eq(m, maps[0])));
        assert!(maps[5..].iter().all(|m| Arc::ptr_eq(m, maps[5])));
        assert!(!Arc::ptr_eq(maps[0], maps[5]));
        assert_eq!(&**maps[9], "init00005.mp4");
        // Read back from disk alike.
        let read = MediaPlaylist::parse_event(&pl.render_event(None), 6, TARGET).unwrap();
        let first = read.segments()[0].map.as_ref().unwrap();
        assert!(
            read.segments()[..5]
                .iter()
                .all(|s| Arc::ptr_eq(s.map.as_ref().unwrap(), first))
        );
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
