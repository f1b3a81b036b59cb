//! HLS output of one live stream: the segments its pipeline closes, our playlists over them, and the
//! files that keep them after the stream (VOD) or a crash (recovery).
use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::daterange::Marker;
use super::file_cache::FileCache;
use super::playlist::{self, LiveEdge, MediaPlaylist, Part, RenditionReport, Segment, Variant};
use super::visibility::{PublicIntervals, Visibility};

pub const MASTER_FILE: &str = "master.m3u8";
/// The live window while live, the complete VOD list after.
pub const LIVE_PLAYLIST: &str = "index.m3u8";
/// Every segment since the start (EVENT while live, VOD after); also what is kept on disk.
pub const EVENT_PLAYLIST: &str = "event.m3u8";
/// On disk: the public segments of a rendition (what anyone but the owner is shown).
pub const PUBLIC_PLAYLIST: &str = "public.m3u8";
/// On disk: the master playlist of the public renditions.
pub const PUBLIC_MASTER_FILE: &str = "master-public.m3u8";
/// On disk: the public media of the first rendition (the source), as [`PublicIntervals`]. Its
/// presence also says that the public files above are kept (streams from before they were have
/// none, and are served as they always were).
pub const PUBLIC_MEDIA_FILE: &str = "public-media.json";

/// Who a view of the playlists and media is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The creator (and the admin): everything, the rehearsal included.
    Owner,
    /// Everyone else: only media that was public throughout, numbered on its own.
    Public,
}
/// Segments before the open one whose parts are still served (they are listed for three target
/// durations; one more for players that are a little behind), as byte ranges of their files.
const KEPT_PART_SEGMENTS: u64 = 4;

/// What the master playlist says about a rendition besides bandwidth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenditionInfo {
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    pub codecs: Option<String>,
}

struct Rendition {
    name: String,
    playlist: MediaPlaylist,
    /// Its public segments only, numbered on their own: a cut-out practice interval becomes a
    /// discontinuity, and the numbering starts at the first public segment's number.
    public: MediaPlaylist,
    /// The last segment closed was public.
    last_public: bool,
    /// Where its public media is on the media timeline.
    public_media: PublicIntervals,
    opened_at: Option<Duration>,
    info: RenditionInfo,
    /// Left out of the master playlist.
    dropped: bool,
    /// Segments to close before the one that starts a discontinuity (see `discontinuity`).
    closes_before_discontinuity: Option<u8>,
    /// When the publisher came back (wall clock), for the discontinuity's PROGRAM-DATE-TIME.
    resumed_at: Option<Resumed>,
    /// Added to `epoch + running time` for PROGRAM-DATE-TIME: the time publishers were away
    /// (media time closes those gaps, the wall clock does not).
    away: chrono::Duration,
    /// Marker starts and ends stamped with a media time this rendition has not closed a segment
    /// over yet (its encoder may lag the source); placed when that segment closes.
    pending: Vec<Pending>,
    /// Low-latency parts (CMAF renditions only).
    parts: Parts,
}

/// The parts of a low-latency rendition: those of the segment being written, served from memory,
/// and where the parts of recent closed segments are in their files, served from there.
///
/// A segment's file is its parts one after the other, so once it is written its parts need no
/// memory of their own: about 1.5 MB per 2 s of a 6 Mb/s stream, of which only the open
/// segment's is kept.
#[derive(Default)]
struct Parts {
    open: Vec<Part>,
    /// The bytes of the open segment's parts, by part index.
    open_bytes: Vec<Bytes>,
    /// Where the parts of the last [`KEPT_PART_SEGMENTS`] closed segments are, oldest first.
    closed: VecDeque<ClosedParts>,
    /// Init sections by file name.
    maps: Vec<(String, Bytes)>,
    /// The init section of the segment being written.
    map: Option<String>,
    /// The longest part so far. A publisher's B-frames make the muxer cut a part up to two
    /// frames past the part duration (it cuts in decode order).
    longest: Duration,
}

/// The parts of a closed segment, as byte ranges of its file.
struct ClosedParts {
    msn: u64,
    /// The segment's file name (`segNNNNN.m4s`).
    uri: String,
    /// Each part's range in the file, by part index.
    ranges: Vec<Range<u64>>,
}

/// One chunk of a CMAF muxer: a part, and the init section that comes before it when the
/// stream starts or its codec parameters change.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub init: Option<Bytes>,
    pub data: Bytes,
    pub duration: Duration,
    /// Starts with a keyframe: the first part of a segment.
    pub independent: bool,
    /// Running time of its start.
    pub running_time: Duration,
}

/// Where a low-latency rendition's live edge is: its newest part, and its newest whole segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgePosition {
    pub last_msn: u64,
    pub last_part: u64,
    /// Media sequence number of the newest closed segment.
    pub last_segment: Option<u64>,
    pub ended: bool,
}

/// What became of a part asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum PartLookup {
    /// In memory (a part of the segment being written).
    Ready(Bytes),
    /// Bytes `range` of the closed segment's file at `path`.
    InSegment { path: PathBuf, range: Range<u64> },
    /// Not written yet, but the next one or so: worth waiting for.
    Soon,
    /// Never will be, or no longer kept.
    Missing,
}

/// When the latest publisher came back, and its first frame's media time: the dates after the
/// discontinuity, in every output alike.
pub type ResumedAt = std::sync::Arc<std::sync::Mutex<Option<Resumed>>>;

/// When (wall clock) and at which media time a publisher came back; the media time is that of
/// its first frame when known, else the start of the first segment after the discontinuity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resumed {
    pub at: DateTime<Utc>,
    pub media: Option<Duration>,
}

/// What a marker is, before its dates are known.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkerSpec {
    pub id: String,
    pub class: String,
    /// `X-` attributes, see [`Marker::attributes`].
    pub attributes: Vec<(String, String)>,
}

/// A marker edge at a media time, waiting for the segment that covers it.
struct Pending {
    at: Duration,
    edge: Edge,
}

enum Edge {
    Start(MarkerSpec),
    End(String),
}

impl Rendition {
    fn new(name: String, playlist: MediaPlaylist, public: MediaPlaylist) -> Self {
        Rendition {
            name,
            playlist,
            public,
            last_public: false,
            public_media: PublicIntervals::default(),
            opened_at: None,
            info: RenditionInfo::default(),
            dropped: false,
            closes_before_discontinuity: None,
            resumed_at: None,
            away: chrono::Duration::zero(),
            pending: Vec::new(),
            parts: Parts::default(),
        }
    }

    /// Media sequence number of the segment being written.
    fn open_msn(&self) -> u64 {
        self.playlist.next_sequence()
    }

    /// Writes what changed to both event lists (see [`MediaPlaylist::flush`]); both are tried.
    fn flush(&mut self) -> io::Result<()> {
        let owner = self.playlist.flush();
        let public = self.public.flush();
        owner.and(public)
    }

    /// Whether the segment being written holds public media only (so far).
    fn open_public(&self, visibility: &Visibility) -> bool {
        let start = self.opened_at.unwrap_or_default();
        let end = start + self.parts.open.iter().map(|p| p.duration).sum::<Duration>();
        !self.parts.open.is_empty() && visibility.public_throughout(start, end)
    }

    /// What `audience` is shown: the playlist, the number the open segment has in it, and the
    /// open segment's parts (none when they are not for this audience).
    fn view(&self, audience: Audience, visibility: &Visibility) -> View<'_> {
        match audience {
            Audience::Owner => View {
                playlist: &self.playlist,
                open_msn: self.open_msn(),
                open: &self.parts.open,
                cut: false,
            },
            Audience::Public => {
                let list = &self.public;
                let open = if self.open_public(visibility) {
                    &self.parts.open[..]
                } else {
                    &[]
                };
                View {
                    playlist: list,
                    open_msn: match list.is_empty() {
                        true => self.open_msn(),
                        false => list.next_sequence(),
                    },
                    open,
                    cut: !self.last_public && !list.is_empty(),
                }
            }
        }
    }

    fn edge_position(&self, audience: Audience, visibility: &Visibility) -> Option<EdgePosition> {
        let view = self.view(audience, visibility);
        let list = view.playlist;
        let last_segment = (!list.is_empty()).then(|| list.next_sequence() - 1);
        let (last_msn, last_part) = match view.open.len() {
            0 => {
                let msn = last_segment?;
                let parts = list.last_segment().map_or(0, |s| s.parts.len());
                (msn, parts.saturating_sub(1) as u64)
            }
            n => (view.open_msn, n as u64 - 1),
        };
        Some(EdgePosition {
            last_msn,
            last_part,
            last_segment,
            ended: list.is_ended(),
        })
    }

    /// Whether the public may have part `msn`.`index` (`msn` as in its name).
    fn part_public(&self, msn: u64, visibility: &Visibility) -> bool {
        if msn == self.open_msn() {
            return self.open_public(visibility);
        }
        self.public.lists(&format!("seg{msn:05}.m4s"))
    }

    /// Whether the public may fetch the file `name` of this rendition (segment or init section).
    fn file_public(&self, name: &str, visibility: &Visibility) -> bool {
        self.public.lists(name)
            || (self.parts.map.as_deref() == Some(name) && self.open_public(visibility))
    }

    /// Where the segment being written starts (running time), the `PROGRAM-DATE-TIME` it gets,
    /// and the time away that date includes: after a comeback, the first segment's date is moved
    /// to the wall clock.
    fn open_date(&self, epoch: DateTime<Utc>) -> (Duration, DateTime<Utc>, chrono::Duration) {
        let start = self.opened_at.unwrap_or_default();
        let start_offset = chrono::Duration::from_std(start).unwrap_or_default();
        let mut away = self.away;
        if self.closes_before_discontinuity == Some(0)
            && let Some(resumed) = self.resumed_at
        {
            // Every output and rendition dates the comeback alike: by the publisher's first
            // frame, whatever frame their segment starts with.
            let media = resumed
                .media
                .and_then(|m| chrono::Duration::from_std(m).ok())
                .unwrap_or(start_offset);
            let media_clock = epoch + media + away;
            away += (resumed.at - media_clock).max(chrono::Duration::zero());
        }
        (start, epoch + start_offset + away, away)
    }

    /// Lists a closed segment (of `bytes` on disk, ending at `running_time`), dates it, places
    /// the markers it covers.
    fn close_segment(
        &mut self,
        epoch: DateTime<Utc>,
        visibility: &Visibility,
        uri: String,
        bytes: u64,
        running_time: Duration,
        parts: Vec<Part>,
    ) {
        let (start, date, away) = self.open_date(epoch);
        let discontinuity = self.closes_before_discontinuity == Some(0);
        if discontinuity {
            self.resumed_at = None;
            self.away = away;
        }
        // The next segment starts where this one ends.
        self.opened_at = Some(running_time);
        let duration = running_time.saturating_sub(start);
        self.closes_before_discontinuity = match self.closes_before_discontinuity {
            Some(n) if n > 0 => Some(n - 1),
            _ => None,
        };
        let mut segment = Segment::new(uri, duration, date);
        segment.discontinuity = discontinuity;
        segment.bytes = bytes;
        segment.map = self.parts.map.as_deref().map(Arc::from);
        segment.parts = parts;
        // The first segment holds everything from the stream's start (audio a little before the
        // first picture).
        let media_start = if self.playlist.is_empty() {
            Duration::ZERO
        } else {
            start
        };
        let public = visibility.public_throughout(media_start, running_time);
        if public {
            let mut copy = segment.clone();
            copy.discontinuity |= !self.last_public && !self.public.is_empty();
            self.public_media.add(media_start, running_time);
            self.public
                .push_numbered(self.playlist.next_sequence(), copy);
        }
        self.last_public = public;
        self.playlist.push(segment);
        self.place_markers(start, date, running_time);
    }

    /// Closes the segment being written from its parts: the file is their concatenation. Returns
    /// its path, if there was one to close.
    fn close_open_parts(
        &mut self,
        epoch: DateTime<Utc>,
        visibility: &Visibility,
        dir: &Path,
    ) -> io::Result<Option<PathBuf>> {
        if self.parts.open.is_empty() {
            return Ok(None);
        }
        let msn = self.open_msn();
        let uri = format!("seg{msn:05}.m4s");
        let mut file = Vec::new();
        let mut ranges = Vec::with_capacity(self.parts.open_bytes.len());
        for part in &self.parts.open_bytes {
            let start = file.len() as u64;
            file.extend_from_slice(part);
            ranges.push(start..file.len() as u64);
        }
        let path = dir.join(&self.name).join(&uri);
        write_atomic_bytes(&path, &file)?;
        // The file is there (renamed into place): its parts are served from it from now on.
        self.parts.open_bytes.clear();
        if self.parts.closed.len() as u64 == KEPT_PART_SEGMENTS {
            self.parts.closed.pop_front();
        }
        self.parts.closed.push_back(ClosedParts {
            msn,
            uri: uri.clone(),
            ranges,
        });
        let parts = std::mem::take(&mut self.parts.open);
        let end =
            self.opened_at.unwrap_or_default() + parts.iter().map(|p| p.duration).sum::<Duration>();
        self.close_segment(epoch, visibility, uri, file.len() as u64, end, parts);
        Ok(Some(path))
    }

    /// The live edge of this rendition's low-latency playlist as `view` shows it, for segments
    /// of `segment`.
    fn live_edge(
        &self,
        view: &View<'_>,
        segment: Duration,
        ll: &LowLatency,
        skip: bool,
    ) -> LiveEdge {
        let part_target = ll.part;
        // Part names carry the segment's own number, whatever number a view gives it.
        let msn = self.open_msn();
        // Once the open segment is within half a part of the segment duration, the next part
        // starts the next segment (at the keyframe the muxer waits for). When the open segment
        // is not for this view, the next segment's first part is what may be.
        let elapsed: Duration = self.parts.open.iter().map(|p| p.duration).sum();
        let hint =
            if elapsed + part_target / 2 >= segment || view.open.len() < self.parts.open.len() {
                format!("part{:05}.0.m4s", msn + 1)
            } else {
                format!("part{msn:05}.{}.m4s", self.parts.open.len())
            };
        // Every part must fit in PART-TARGET (RFC 8216bis §4.4.3.7): the configured part, or
        // the longest so far in whole milliseconds, rounded up.
        let longest =
            Duration::from_millis(self.parts.longest.as_nanos().div_ceil(1_000_000) as u64);
        LiveEdge {
            part_target: part_target.max(longest),
            hold_back_parts: ll.hold_back_parts,
            open: view.open.to_vec(),
            open_discontinuity: self.closes_before_discontinuity == Some(0) || view.cut,
            open_map: self.parts.map.clone(),
            hint: (!view.playlist.is_ended()).then_some(hint),
            reports: Vec::new(),
            skip,
        }
    }

    /// Gives the pending edges before `until` their dates, from the segment just pushed (which
    /// starts at media time `start` and date `date`).
    fn place_markers(&mut self, start: Duration, date: DateTime<Utc>, until: Duration) {
        let (due, later): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| p.at < until);
        self.pending = later;
        for p in due {
            // Exact to the nanosecond: the date is `epoch + at + away` whichever segment (and
            // rendition, and output) carries it.
            let offset = signed_nanos(p.at) - signed_nanos(start);
            self.place(p.edge, date + chrono::Duration::nanoseconds(offset));
        }
    }

    fn place(&mut self, edge: Edge, date: DateTime<Utc>) {
        let marker = match edge {
            Edge::Start(spec) => Marker {
                id: spec.id,
                class: spec.class,
                start: date,
                end: None,
                attributes: spec.attributes,
            },
            Edge::End(id) => {
                let Some(mut marker) = self.playlist.markers().find(|m| m.id == id).cloned() else {
                    return;
                };
                marker.end = Some(date.max(marker.start));
                marker
            }
        };
        // The public list carries them too, dated alike; where it shows no media they are
        // dropped when rendered.
        self.public.set_marker(marker.clone());
        self.playlist.set_marker(marker);
    }

    /// The stream ended: what is still pending or open ends with the last segment.
    fn close_markers(&mut self) {
        let Some(last) = self.playlist.last_segment() else {
            self.pending.clear();
            return;
        };
        let end =
            last.program_date_time + chrono::Duration::from_std(last.duration).unwrap_or_default();
        for p in std::mem::take(&mut self.pending) {
            self.place(p.edge, end);
        }
        let open: Vec<String> = self
            .playlist
            .markers()
            .filter(|m| m.end.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in open {
            self.place(Edge::End(id), end);
        }
    }
}

/// A rendition as one audience sees it (see `Rendition::view`).
struct View<'a> {
    playlist: &'a MediaPlaylist,
    /// The number the segment being written has in `playlist`.
    open_msn: u64,
    /// Its parts shown.
    open: &'a [Part],
    /// The open segment comes after media this view left out: it starts a discontinuity.
    cut: bool,
}

fn signed_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

struct Inner {
    /// Wall-clock time of media time zero (the first frame of the first publish).
    epoch: DateTime<Utc>,
    window: usize,
    target: Duration,
    renditions: Vec<Rendition>,
    low_latency: Option<LowLatency>,
    /// When the stream's media was public.
    visibility: Visibility,
    /// Playlists as served, until the next change (see [`HlsOutput::served_playlist`]).
    rendered: Rendered,
}

/// Which playlist of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// `index.m3u8` of the MPEG-TS output: the live window, VOD once ended.
    Live,
    /// `event.m3u8`: every segment.
    Event,
    /// `index.m3u8` of a low-latency output, with parts; `skip`: a delta update.
    LowLatency { skip: bool },
}

/// Rendered playlists, by rendition, kind and audience. Valid while the output does not change
/// (every writer empties it, see [`HlsOutput::change`]) and the visibility has made `visibility`
/// switches (a switch can hide the open segment's parts from the public).
#[derive(Default)]
struct Rendered {
    visibility: u64,
    playlists: Vec<(String, PlaylistKind, Audience, Bytes)>,
}

impl Inner {
    /// The owner's and the public playlists of a new rendition, their event lists in `dir`.
    fn playlists(&self, dir: &Path) -> (MediaPlaylist, MediaPlaylist) {
        let list = |file: &str| MediaPlaylist::on_disk(dir.join(file), self.window, self.target);
        (list(EVENT_PLAYLIST), list(PUBLIC_PLAYLIST))
    }

    fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.name == name)
    }

    /// See [`HlsOutput::low_latency_playlist`].
    fn low_latency_playlist(
        &self,
        rendition: &str,
        audience: Audience,
        skip: bool,
        query: Option<&str>,
    ) -> Option<String> {
        let ll = self.low_latency.as_ref()?;
        let r = self.rendition(rendition)?;
        r.edge_position(audience, &self.visibility)?;
        let view = r.view(audience, &self.visibility);
        let mut edge = r.live_edge(&view, self.target, ll, skip);
        edge.reports = self
            .renditions
            .iter()
            .filter(|o| o.name != r.name && !o.dropped)
            .filter_map(|o| {
                let p = o.edge_position(audience, &self.visibility)?;
                Some(RenditionReport {
                    uri: format!("../{}/{LIVE_PLAYLIST}", o.name),
                    last_msn: p.last_msn,
                    last_part: p.last_part,
                })
            })
            .collect();
        if view.playlist.is_ended() {
            return read_event(view.playlist, query);
        }
        Some(view.playlist.render_low_latency(&edge, query))
    }

    /// See [`HlsOutput::media_playlist`].
    fn media_playlist(
        &self,
        rendition: &str,
        file: &str,
        audience: Audience,
        query: Option<&str>,
    ) -> Option<String> {
        let r = self.rendition(rendition)?;
        let list = r.view(audience, &self.visibility).playlist;
        if list.is_empty() {
            return None;
        }
        match file {
            LIVE_PLAYLIST if !list.is_ended() => Some(list.render_live(query)),
            LIVE_PLAYLIST | EVENT_PLAYLIST => read_event(list, query),
            _ => None,
        }
    }

    fn render(
        &self,
        rendition: &str,
        kind: PlaylistKind,
        audience: Audience,
        query: Option<&str>,
    ) -> Option<String> {
        match kind {
            PlaylistKind::Live => self.media_playlist(rendition, LIVE_PLAYLIST, audience, query),
            PlaylistKind::Event => self.media_playlist(rendition, EVENT_PLAYLIST, audience, query),
            PlaylistKind::LowLatency { skip } => {
                self.low_latency_playlist(rendition, audience, skip, query)
            }
        }
    }
}

/// How a low-latency (CMAF) output differs.
#[derive(Debug, Clone)]
pub struct LowLatency {
    /// Part duration (`EXT-X-PART-INF:PART-TARGET`).
    pub part: Duration,
    /// `PART-HOLD-BACK` in parts.
    pub hold_back_parts: u32,
    /// Put before the media playlist URIs in the master playlist (its directory, seen from where
    /// the master is served), e.g. `ll/`.
    pub master_prefix: String,
}

/// A file an output finished writing, for whoever copies its files elsewhere (object storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written<'a> {
    /// A segment or an init section: complete, never written again (names are not reused).
    Media(&'a Path),
    /// A playlist or the public-media notes: rewritten as the stream goes on.
    Playlist(&'a Path),
}

/// Told of each file an output finished writing; must not wait (it runs on the media path).
pub type OnWritten = Box<dyn Fn(Written<'_>) + Send + Sync>;

/// The HLS state of one stream, shared by its pipeline's bus task (writer) and HTTP (readers).
pub struct HlsOutput {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Bumped whenever a part or segment is listed, for blocking playlist reloads.
    changed: tokio::sync::watch::Sender<u64>,
    on_written: std::sync::OnceLock<OnWritten>,
}

impl HlsOutput {
    pub fn new(dir: PathBuf, window: usize, target: Duration) -> Self {
        HlsOutput {
            dir,
            inner: Mutex::new(Inner {
                epoch: Utc::now(),
                window,
                target,
                renditions: Vec::new(),
                low_latency: None,
                // Nothing is public until the stream says so.
                visibility: Visibility::new(false),
                rendered: Rendered::default(),
            }),
            changed: tokio::sync::watch::Sender::new(0),
            on_written: std::sync::OnceLock::new(),
        }
    }

    /// Tells `f` of every segment, init section and playlist written from now on (set once).
    pub fn on_written(&self, f: OnWritten) {
        if self.on_written.set(f).is_err() {
            tracing::warn!(dir = %self.dir.display(), "HLS output already reports its files");
        }
    }

    fn written(&self, file: Written<'_>) {
        if let Some(f) = self.on_written.get() {
            f(file);
        }
    }

    /// A low-latency output: CMAF segments made of parts (see [`HlsOutput::part_ready`]).
    pub fn low_latency(dir: PathBuf, window: usize, target: Duration, ll: LowLatency) -> Self {
        let out = Self::new(dir, window, target);
        out.change().low_latency = Some(ll);
        out
    }

    /// Decides from now on which media is public (the stream's own timeline).
    pub fn set_visibility(&self, visibility: Visibility) {
        self.change().visibility = visibility;
    }

    /// Told whenever a part or segment is listed or the stream ends.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Adds renditions (once the pipeline knows which it writes); known names are kept as they are.
    pub fn add_renditions(&self, names: &[String]) {
        let mut inner = self.change();
        for name in names {
            if inner.rendition(name).is_none() {
                let (playlist, public) = inner.playlists(&self.dir.join(name));
                inner
                    .renditions
                    .push(Rendition::new(name.clone(), playlist, public));
            }
        }
    }

    /// Picks up the playlists a previous session of this stream left on disk (a pulled stream
    /// resumed after a server restart): their segments stay listed, new ones continue the
    /// numbering (nothing is overwritten), and the first new segment starts a discontinuity.
    pub fn restore(&self) -> io::Result<usize> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        let mut inner = self.change();
        let (window, target) = (inner.window, inner.target);
        let mut restored = 0;
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(text) = std::fs::read_to_string(dir.join(EVENT_PLAYLIST)) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            // Continued where they stopped: open again (no EXT-X-ENDLIST), appended to.
            let read = |file: &str, text: Option<&str>| {
                let path = dir.join(file);
                let mut playlist = match text {
                    Some(text) => MediaPlaylist::restore_event(&path, text, window, target)?,
                    None => MediaPlaylist::on_disk(path, window, target),
                };
                playlist.reopen();
                playlist.flush()?;
                Ok::<_, io::Error>(playlist)
            };
            let playlist = read(EVENT_PLAYLIST, Some(&text))?;
            let public_text = std::fs::read_to_string(dir.join(PUBLIC_PLAYLIST)).ok();
            let public = read(PUBLIC_PLAYLIST, public_text.as_deref())?;
            inner.renditions.retain(|r| r.name != name);
            let mut rendition = Rendition::new(name, playlist, public);
            rendition.closes_before_discontinuity = Some(0);
            inner.renditions.push(rendition);
            restored += 1;
        }
        Ok(restored)
    }

    /// Takes a rendition out of the master playlist (its encoder was stopped under overload).
    pub fn drop_rendition(&self, name: &str) {
        if let Some(r) = self.change().renditions.iter_mut().find(|r| r.name == name) {
            r.dropped = true;
        }
    }

    /// The state, to read. Whatever changes it takes it through [`HlsOutput::change`].
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The state, to change: the playlists rendered so far no longer hold.
    fn change(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        inner.rendered.playlists.clear();
        inner
    }

    pub fn set_epoch(&self, epoch: DateTime<Utc>) {
        self.change().epoch = epoch;
    }

    pub fn set_info(&self, rendition: &str, info: RenditionInfo) {
        if let Some(r) = self
            .change()
            .renditions
            .iter_mut()
            .find(|r| r.name == rendition)
        {
            r.info = info;
        }
    }

    pub fn info(&self, rendition: &str) -> Option<RenditionInfo> {
        self.lock().rendition(rendition).map(|r| r.info.clone())
    }

    /// The rendition was just cut for a publisher that came back: the segment being closed ends
    /// the old publish, and the one after it, the first of the new publish, starts a
    /// discontinuity (EXT-X-DISCONTINUITY; RFC 8216 4.3.2.3).
    pub fn discontinuity(&self, rendition: &str) {
        self.discontinuity_at(
            rendition,
            Resumed {
                at: Utc::now(),
                media: None,
            },
        );
    }

    /// [`HlsOutput::discontinuity`], saying when the publisher came back.
    pub fn discontinuity_at(&self, rendition: &str, resumed_at: Resumed) {
        if let Some(r) = self
            .change()
            .renditions
            .iter_mut()
            .find(|r| r.name == rendition)
        {
            r.closes_before_discontinuity = Some(1);
            r.resumed_at = Some(resumed_at);
        }
    }

    pub fn fragment_opened(&self, rendition: &str, running_time: Duration) {
        if let Some(r) = self
            .change()
            .renditions
            .iter_mut()
            .find(|r| r.name == rendition)
        {
            r.opened_at = Some(running_time);
        }
    }

    /// A segment file is complete: list it and persist the playlists.
    pub fn fragment_closed(
        &self,
        rendition: &str,
        location: &Path,
        running_time: Duration,
    ) -> io::Result<()> {
        let bytes = std::fs::metadata(location)?.len();
        let uri = location
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| io::Error::other("segment path has no file name"))?;
        let persisted = {
            let mut inner = self.change();
            let (epoch, visibility) = (inner.epoch, inner.visibility.clone());
            let Some(r) = inner.renditions.iter_mut().find(|r| r.name == rendition) else {
                return Ok(());
            };
            r.close_segment(epoch, &visibility, uri, bytes, running_time, Vec::new());
            let flushed = r.flush();
            (Persisted::of(&inner, rendition), flushed)
        };
        self.notify();
        self.written(Written::Media(location));
        let (persisted, flushed) = persisted;
        flushed?;
        self.persist(&persisted)
    }

    /// A low-latency rendition's muxer gave a chunk: list it as a part of the segment being
    /// written; a chunk that starts with a keyframe closes that segment (written to disk, listed)
    /// and opens the next. An init section before it is kept for `EXT-X-MAP`, on disk too.
    pub fn part_ready(&self, rendition: &str, chunk: Chunk) -> io::Result<()> {
        let mut media = Vec::new();
        let persisted = {
            let mut inner = self.change();
            let (epoch, visibility) = (inner.epoch, inner.visibility.clone());
            let Some(r) = inner.renditions.iter_mut().find(|r| r.name == rendition) else {
                return Ok(());
            };
            if r.opened_at.is_none() {
                r.opened_at = Some(chunk.running_time);
            }
            let closing = chunk.independent && !r.parts.open.is_empty();
            let mut flushed = Ok(());
            if closing {
                media.extend(r.close_open_parts(epoch, &visibility, &self.dir)?);
            }
            if let Some(init) = chunk.init {
                // Named after the segment it starts with: never the name of an earlier session's.
                let name = format!("init{:05}.mp4", r.open_msn());
                let path = self.dir.join(&r.name).join(&name);
                write_atomic_bytes(&path, &init)?;
                media.push(path);
                r.parts.maps.push((name.clone(), init));
                r.parts.map = Some(name);
            }
            let msn = r.open_msn();
            let index = r.parts.open.len();
            // The stream's very first part starts with its earliest sample (audio a frame or so
            // before the first picture) and is that much longer; it is not held against
            // PART-TARGET for the rest of the stream (it leaves the playlist within 6 s).
            let first = r.parts.open.is_empty() && r.playlist.is_empty();
            if !first {
                r.parts.longest = r.parts.longest.max(chunk.duration);
            }
            r.parts.open.push(Part {
                uri: format!("part{msn:05}.{index}.m4s"),
                duration: chunk.duration,
                independent: chunk.independent,
            });
            r.parts.open_bytes.push(chunk.data);
            // Markers go out with the part that covers them, not a segment later.
            let (start, date, _) = r.open_date(epoch);
            let end = start + r.parts.open.iter().map(|p| p.duration).sum::<Duration>();
            r.place_markers(start, date, end);
            if closing {
                flushed = r.flush();
            }
            (closing.then(|| Persisted::of(&inner, rendition)), flushed)
        };
        self.notify();
        for path in &media {
            self.written(Written::Media(path));
        }
        let (persisted, flushed) = persisted;
        flushed?;
        match persisted {
            Some(persisted) => self.persist(&persisted),
            None => Ok(()),
        }
    }

    /// Where a low-latency rendition's live edge is for `audience` (`None` before its first
    /// part that `audience` may see).
    pub fn edge_position(&self, rendition: &str, audience: Audience) -> Option<EdgePosition> {
        let inner = self.lock();
        inner
            .rendition(rendition)?
            .edge_position(audience, &inner.visibility)
    }

    /// A low-latency rendition's live playlist (`index.m3u8`) for `audience`, with the parts and
    /// the other renditions' reports; `skip` makes it a delta update. `None` before its first
    /// part that `audience` may see.
    pub fn low_latency_playlist(
        &self,
        rendition: &str,
        audience: Audience,
        skip: bool,
        query: Option<&str>,
    ) -> Option<String> {
        self.lock()
            .low_latency_playlist(rendition, audience, skip, query)
    }

    /// A rendition's playlist as served. Every request of an audience gets the same bytes, so
    /// they are rendered once per change and shared; with a `query` (a signed token carried into
    /// the URIs) they are rendered for the request. `None` as for the playlist's own method.
    pub fn served_playlist(
        &self,
        rendition: &str,
        kind: PlaylistKind,
        audience: Audience,
        query: Option<&str>,
    ) -> Option<Bytes> {
        let mut inner = self.lock();
        // The event list (and the VOD list) is read from its file, not kept.
        let on_disk = kind == PlaylistKind::Event
            || inner
                .rendition(rendition)
                .is_some_and(|r| r.playlist.is_ended());
        if query.is_some() || on_disk {
            return inner
                .render(rendition, kind, audience, query)
                .map(Bytes::from);
        }
        let switches = inner.visibility.changes();
        if inner.rendered.visibility != switches {
            inner.rendered = Rendered {
                visibility: switches,
                playlists: Vec::new(),
            };
        }
        let kept = inner
            .rendered
            .playlists
            .iter()
            .find(|(r, k, a, _)| r == rendition && *k == kind && *a == audience);
        if let Some((.., bytes)) = kept {
            return Some(bytes.clone());
        }
        let bytes = Bytes::from(inner.render(rendition, kind, audience, None)?);
        inner
            .rendered
            .playlists
            .push((rendition.to_string(), kind, audience, bytes.clone()));
        Some(bytes)
    }

    /// How many parts segment `msn` (as `audience` numbers it) has, once it is closed.
    pub fn parts_in_segment(&self, rendition: &str, msn: u64, audience: Audience) -> Option<u64> {
        let inner = self.lock();
        let r = inner.rendition(rendition)?;
        let list = r.view(audience, &inner.visibility).playlist;
        // Segments no longer in memory are far from the edge: they kept no parts.
        if (list.first_sequence()..list.first_recent_sequence()).contains(&msn) {
            return Some(0);
        }
        let index = usize::try_from(msn.checked_sub(list.first_recent_sequence())?).ok()?;
        list.recent_segments()
            .get(index)
            .map(|s| s.parts.len() as u64)
    }

    /// Part `index` of segment `msn` (as in its name), if `audience` may have it: from memory
    /// while its segment is being written, then from the segment's file.
    pub fn part(&self, rendition: &str, msn: u64, index: usize, audience: Audience) -> PartLookup {
        let inner = self.lock();
        let Some(r) = inner.rendition(rendition) else {
            return PartLookup::Missing;
        };
        let open = r.open_msn();
        let found = if msn == open {
            r.parts
                .open_bytes
                .get(index)
                .map(|b| PartLookup::Ready(b.clone()))
        } else {
            r.parts.closed.iter().find(|c| c.msn == msn).and_then(|c| {
                let range = c.ranges.get(index)?.clone();
                let path = self.dir.join(&r.name).join(&c.uri);
                Some(PartLookup::InSegment { path, range })
            })
        };
        if let Some(found) = found {
            if audience == Audience::Public && !r.part_public(msn, &inner.visibility) {
                return PartLookup::Missing;
            }
            return found;
        }
        let next = r.parts.open.len();
        let soon = !r.playlist.is_ended()
            && ((msn == open && index <= next + 1) || (msn == open + 1 && index == 0));
        if soon {
            PartLookup::Soon
        } else {
            PartLookup::Missing
        }
    }

    /// An init section (`initN.mp4`) kept in memory, if `audience` may have it.
    pub fn init_section(&self, rendition: &str, name: &str, audience: Audience) -> Option<Bytes> {
        let inner = self.lock();
        let r = inner.rendition(rendition)?;
        if audience == Audience::Public && !r.file_public(name, &inner.visibility) {
            return None;
        }
        r.parts
            .maps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }

    /// Whether `audience` may fetch the segment or init section `name` of a rendition by name.
    pub fn serves(&self, rendition: &str, name: &str, audience: Audience) -> bool {
        let inner = self.lock();
        match audience {
            Audience::Owner => true,
            Audience::Public => inner
                .rendition(rendition)
                .is_some_and(|r| r.file_public(name, &inner.visibility)),
        }
    }

    /// The stream is over: every playlist becomes a complete VOD list, on disk too.
    pub fn end(&self) -> io::Result<()> {
        let mut media = Vec::new();
        let mut flushed = None;
        let persisted: Vec<Persisted> = {
            let mut inner = self.change();
            let (epoch, visibility) = (inner.epoch, inner.visibility.clone());
            for r in &mut inner.renditions {
                match r.close_open_parts(epoch, &visibility, &self.dir) {
                    Ok(closed) => media.extend(closed),
                    Err(e) => {
                        tracing::warn!(rendition = %r.name, error = %e, "writing the last segment")
                    }
                }
                r.close_markers();
                r.playlist.end();
                r.public.end();
                if let Err(e) = r.flush() {
                    flushed.get_or_insert(e);
                }
            }
            let names: Vec<String> = inner.renditions.iter().map(|r| r.name.clone()).collect();
            names.iter().map(|n| Persisted::of(&inner, n)).collect()
        };
        self.notify();
        for path in &media {
            self.written(Written::Media(path));
        }
        if let Some(e) = flushed {
            return Err(e);
        }
        for p in &persisted {
            self.persist(p)?;
        }
        Ok(())
    }

    fn persist(&self, p: &Persisted) -> io::Result<()> {
        let dir = self.dir.join(&p.rendition);
        let write = |path: PathBuf, text: &str| {
            write_atomic(&path, text)?;
            self.written(Written::Playlist(&path));
            Ok::<_, io::Error>(())
        };
        // The event lists are written by their playlists (flushed): told here, in the same order.
        self.written(Written::Playlist(&dir.join(EVENT_PLAYLIST)));
        self.written(Written::Playlist(&dir.join(PUBLIC_PLAYLIST)));
        if let Some(master) = &p.master {
            write(self.dir.join(MASTER_FILE), master)?;
        }
        match &p.public_master {
            Some(master) => write(self.dir.join(PUBLIC_MASTER_FILE), master)?,
            None => remove_if_there(&self.dir.join(PUBLIC_MASTER_FILE))?,
        }
        if let Some(media) = &p.public_media {
            write(self.dir.join(PUBLIC_MEDIA_FILE), media)?;
        }
        Ok(())
    }

    /// Where the public media of the first rendition (the source) is on the media timeline.
    pub fn public_media(&self) -> PublicIntervals {
        self.lock()
            .renditions
            .first()
            .map(|r| r.public_media.clone())
            .unwrap_or_default()
    }

    /// Starts a marker at media time `at` in every rendition: it is listed once the segment that
    /// covers `at` is, with the date that `at` has in that segment.
    pub fn start_marker(&self, spec: MarkerSpec, at: Duration) {
        for r in &mut self.change().renditions {
            r.pending.push(Pending {
                at,
                edge: Edge::Start(spec.clone()),
            });
        }
    }

    /// Ends the marker `id` at media time `at` (see [`HlsOutput::start_marker`]), instead of an
    /// end given before that is still pending (a flash sale that sold out before its end).
    pub fn end_marker(&self, id: &str, at: Duration) {
        for r in &mut self.change().renditions {
            r.pending
                .retain(|p| !matches!(&p.edge, Edge::End(pending) if pending == id));
            r.pending.push(Pending {
                at,
                edge: Edge::End(id.to_string()),
            });
        }
    }

    /// The `PROGRAM-DATE-TIME` that media time `at` gets in the first rendition as things stand
    /// (the time away of a reconnect still under way is added when its segment closes).
    pub fn date_at(&self, at: Duration) -> DateTime<Utc> {
        let inner = self.lock();
        let away = inner
            .renditions
            .first()
            .map_or(chrono::Duration::zero(), |r| r.away);
        inner.epoch + chrono::Duration::from_std(at).unwrap_or_default() + away
    }

    /// The master playlist for `audience`, once some rendition has a segment it may see.
    pub fn master_playlist(&self, audience: Audience, query: Option<&str>) -> Option<String> {
        render_master_locked(&self.lock(), audience).map(|m| with_query(&m, query))
    }

    /// `index.m3u8` (live window) or `event.m3u8` (everything) of a rendition for `audience`,
    /// once it has a segment `audience` may see.
    pub fn media_playlist(
        &self,
        rendition: &str,
        file: &str,
        audience: Audience,
        query: Option<&str>,
    ) -> Option<String> {
        self.lock().media_playlist(rendition, file, audience, query)
    }

    /// Number of the next segment file of every rendition, so that a new session never overwrites
    /// an earlier one's segments: past the longest list (after a takeover the renditions' lists
    /// may end at different segments).
    pub fn next_segment_index(&self) -> u32 {
        self.lock()
            .renditions
            .iter()
            .map(|r| r.playlist.segment_count())
            .max()
            .unwrap_or(0) as u32
    }
}

/// What is written to disk after a rendition changed.
struct Persisted {
    rendition: String,
    master: Option<String>,
    public_master: Option<String>,
    /// The public media of the first rendition, when `rendition` is that one.
    public_media: Option<String>,
}

impl Persisted {
    fn of(inner: &Inner, rendition: &str) -> Persisted {
        let r = inner.rendition(rendition);
        let first = inner
            .renditions
            .first()
            .is_some_and(|f| f.name == rendition);
        Persisted {
            rendition: rendition.to_string(),
            master: render_master_locked(inner, Audience::Owner),
            public_master: render_master_locked(inner, Audience::Public),
            public_media: r
                .filter(|_| first)
                .map(|r| serde_json::to_string(&r.public_media).expect("intervals serialise")),
        }
    }
}

/// A list's event list as served (`None`, logged, if it cannot be read).
fn read_event(list: &MediaPlaylist, query: Option<&str>) -> Option<String> {
    list.render_event(query)
        .inspect_err(
            |e| tracing::error!(path = ?list.event_path(), error = %e, "reading the event list"),
        )
        .ok()
}

fn render_master_locked(inner: &Inner, audience: Audience) -> Option<String> {
    let variants: Vec<Variant> = inner
        .renditions
        .iter()
        .filter(|r| !r.dropped)
        .filter_map(|r| {
            let list = r.view(audience, &inner.visibility).playlist;
            // Announced once it has a whole segment: players without low-latency HLS (ffprobe)
            // give up on a playlist of parts only.
            let bandwidth = list.peak_bandwidth()?;
            let average_bandwidth = list.average_bandwidth();
            let prefix = inner
                .low_latency
                .as_ref()
                .map_or("", |ll| ll.master_prefix.as_str());
            Some(Variant {
                uri: format!("{prefix}{}/{LIVE_PLAYLIST}", r.name),
                bandwidth,
                average_bandwidth,
                resolution: r.info.resolution,
                codecs: r.info.codecs.clone(),
                frame_rate: r.info.frame_rate,
            })
        })
        .collect();
    (!variants.is_empty()).then(|| playlist::render_master(&variants, None))
}

/// Appends `?query` to every URI of a playlist, URI lines and `URI="…"` attributes (`EXT-X-MAP`):
/// a signed token travels into child requests.
pub fn with_query(playlist: &str, query: Option<&str>) -> String {
    let Some(query) = query else {
        return playlist.to_string();
    };
    let with = |uri: &str| playlist::with_query(uri, Some(query));
    let mut out = String::with_capacity(playlist.len() + 64);
    for line in playlist.lines() {
        if !line.is_empty() && !line.starts_with('#') {
            out.push_str(&with(line));
        } else if let Some((head, rest)) = line.split_once("URI=\"")
            && let Some((uri, tail)) = rest.split_once('"')
        {
            out.push_str(&format!("{head}URI=\"{}\"{tail}", with(uri)));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Closes the playlists a crashed run left open: the event and public lists get EXT-X-ENDLIST.
pub fn close_persisted(hls_dir: &Path, window: usize, target: Duration) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(hls_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        for file in [EVENT_PLAYLIST, PUBLIC_PLAYLIST] {
            let path = entry.path().join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let mut list = MediaPlaylist::restore_event(&path, &text, window, target)?;
            if !list.is_ended() {
                list.end();
                list.flush()?;
            }
        }
    }
    Ok(())
}

/// Whether the stream kept its public files apart: every stream since they were introduced.
/// Only one from before, whose files are on this disk without the note, did not. A stream whose
/// files are not on this disk (they are in the bucket: another node made them, or this one
/// before a new disk) is taken to have kept them, so that the public is shown what its public
/// lists name and nothing else: never the whole stream because a note was not found here.
pub fn keeps_public_files(hls_dir: &Path) -> bool {
    hls_dir.join(PUBLIC_MEDIA_FILE).exists() || !hls_dir.exists()
}

/// A persisted playlist of an ended stream for `audience` (`master.m3u8`, or a rendition's VOD
/// list under either name), as served: with `query` in its URIs.
pub async fn read_persisted(
    files: &FileCache,
    hls_dir: &Path,
    rendition: Option<&str>,
    file: &str,
    audience: Audience,
    query: Option<&str>,
) -> Option<Bytes> {
    let public = audience == Audience::Public && keeps_public_files(hls_dir);
    let path = match rendition {
        None if file == MASTER_FILE && public => hls_dir.join(PUBLIC_MASTER_FILE),
        None if file == MASTER_FILE => hls_dir.join(MASTER_FILE),
        Some(r) if file == LIVE_PLAYLIST || file == EVENT_PLAYLIST => {
            hls_dir.join(r).join(if public {
                PUBLIC_PLAYLIST
            } else {
                EVENT_PLAYLIST
            })
        }
        _ => return None,
    };
    let bytes = files.read_newest(&path).await.ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    // A public list without segments (the stream was never public long enough) is not served.
    if public && rendition.is_some() && !text.contains("#EXTINF") {
        return None;
    }
    match query {
        None => Some(bytes),
        Some(_) => Some(with_query(text, query).into()),
    }
}

/// Whether `audience` may fetch the file `name` (segment or init section) of a rendition of an
/// ended stream: the public only what its list names.
pub async fn persisted_serves(
    files: &FileCache,
    hls_dir: &Path,
    rendition: &str,
    name: &str,
    audience: Audience,
) -> bool {
    if audience == Audience::Owner || !keeps_public_files(hls_dir) {
        return true;
    }
    let Ok(list) = files
        .read_newest(&hls_dir.join(rendition).join(PUBLIC_PLAYLIST))
        .await
    else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&list) else {
        return false;
    };
    let quoted = format!("URI=\"{name}\"");
    text.lines().any(|l| l == name || l.contains(&quoted))
}

/// The public media of an ended stream's first rendition, as persisted (from the bucket when
/// it is not on this disk); `None` when it kept none: never public, or from before public media
/// was kept.
pub async fn read_public_media(files: &FileCache, hls_dir: &Path) -> Option<PublicIntervals> {
    let text = files.read(&hls_dir.join(PUBLIC_MEDIA_FILE)).await.ok()?;
    serde_json::from_slice(&text).ok()
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    write_atomic_bytes(path, text.as_bytes())
}

/// Writes to a temporary name and renames, so a reader (or a crash) never sees half a file.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    if let Err(e) = std::fs::write(&tmp, bytes) {
        // Half a file (a full disk) must not keep taking space.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_added_to_uri_lines_only() {
        let text = "#EXTM3U\n#EXTINF:2.000,\nseg00000.ts\n\n#EXT-X-ENDLIST\n";
        let out = with_query(text, Some("token=abc"));
        assert_eq!(
            out,
            "#EXTM3U\n#EXTINF:2.000,\nseg00000.ts?token=abc\n\n#EXT-X-ENDLIST\n"
        );
        assert_eq!(with_query(text, None), text);
        let fmp4 = "#EXT-X-MAP:URI=\"init00000.mp4\"\n#EXTINF:2.000,\nseg00000.m4s\n";
        assert_eq!(
            with_query(fmp4, Some("token=abc")),
            "#EXT-X-MAP:URI=\"init00000.mp4?token=abc\"\n#EXTINF:2.000,\nseg00000.m4s?token=abc\n"
        );
    }

    /// The cut for a comeback closes the old publish's last segment; the next one is the first
    /// of the new publish and carries the discontinuity, its date moved to the wall clock.
    #[test]
    fn the_segment_after_a_comeback_cut_starts_a_discontinuity() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("source")).unwrap();
        let hls = HlsOutput::new(dir.path().to_path_buf(), 6, Duration::from_secs(2));
        let epoch = Utc::now() - chrono::Duration::seconds(60);
        hls.set_epoch(epoch);
        hls.add_renditions(&["source".to_string()]);
        hls.fragment_opened("source", Duration::ZERO);
        let close = |n: u32, at: u64| {
            let path = dir.path().join(format!("source/seg{n:05}.ts"));
            std::fs::write(&path, [0u8; 188]).unwrap();
            hls.fragment_closed("source", &path, Duration::from_secs(at))
                .unwrap();
        };
        close(0, 2);
        hls.discontinuity("source");
        close(1, 3); // the old publish's last segment, cut short by the comeback
        close(2, 5);
        close(3, 7);
        let text = hls
            .media_playlist("source", EVENT_PLAYLIST, Audience::Owner, None)
            .unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        let flags: Vec<bool> = parsed.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(flags, [false, false, true, false], "{text}");
        let date = |i: usize| parsed.segments[i].program_date_time.unwrap();
        assert_eq!(date(1) - date(0), chrono::Duration::seconds(2));
        assert!(
            date(2) - date(1) > chrono::Duration::seconds(50),
            "the time away shows in the dates: {text}"
        );
        assert_eq!(date(3) - date(2), chrono::Duration::seconds(2));
    }

    /// Every segment and init section is reported once, when it is complete and before the
    /// playlists that list it, in both formats (what live upload to object storage relies on).
    #[test]
    fn closed_files_are_reported_before_the_playlists_that_list_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("source")).unwrap();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let report = |hls: &HlsOutput| {
            let seen = seen.clone();
            let root = dir.path().to_path_buf();
            hls.on_written(Box::new(move |w| {
                let (kind, path) = match w {
                    Written::Media(p) => ("media", p),
                    Written::Playlist(p) => ("playlist", p),
                };
                let name = path.strip_prefix(&root).unwrap().display().to_string();
                seen.lock().unwrap().push(format!("{kind} {name}"));
            }));
        };
        let ts = HlsOutput::new(dir.path().to_path_buf(), 6, Duration::from_secs(2));
        report(&ts);
        ts.add_renditions(&["source".to_string()]);
        ts.fragment_opened("source", Duration::ZERO);
        let path = dir.path().join("source/seg00000.ts");
        std::fs::write(&path, [0u8; 188]).unwrap();
        ts.fragment_closed("source", &path, Duration::from_secs(2))
            .unwrap();
        let events = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(
            events,
            [
                "media source/seg00000.ts",
                "playlist source/event.m3u8",
                "playlist source/public.m3u8",
                "playlist master.m3u8",
                "playlist public-media.json",
            ]
        );

        let ll = LowLatency {
            part: Duration::from_millis(500),
            hold_back_parts: 3,
            master_prefix: String::new(),
        };
        let cmaf = HlsOutput::low_latency(dir.path().to_path_buf(), 6, Duration::from_secs(1), ll);
        report(&cmaf);
        cmaf.add_renditions(&["source".to_string()]);
        for i in 0..5u64 {
            let chunk = Chunk {
                init: (i == 0).then(|| Bytes::from_static(b"init")),
                data: Bytes::from(vec![i as u8; 10]),
                duration: Duration::from_millis(500),
                independent: i % 2 == 0,
                running_time: Duration::from_millis(500 * i),
            };
            cmaf.part_ready("source", chunk).unwrap();
        }
        cmaf.end().unwrap();
        let media: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with("media"))
            .cloned()
            .collect();
        assert_eq!(
            media,
            [
                "media source/init00000.mp4",
                "media source/seg00000.m4s",
                "media source/seg00001.m4s",
                "media source/seg00002.m4s",
            ]
        );
        let events = seen.lock().unwrap().clone();
        let first_listing = |seg: &str| {
            let at = events.iter().position(|e| e.ends_with(seg)).unwrap();
            let next = events[at..].iter().position(|e| e.ends_with("event.m3u8"));
            assert!(
                next.is_some(),
                "{seg} is followed by a playlist: {events:?}"
            );
        };
        for seg in ["seg00000.m4s", "seg00001.m4s", "seg00002.m4s"] {
            first_listing(seg);
        }
    }

    /// Only segments that were public throughout are shown to the public: the rehearsal before
    /// going public and a practice interval in the middle are left out (the latter as a
    /// discontinuity), numbered on their own from the first public segment, and nothing of them
    /// can be fetched by name; the owner keeps everything.
    #[tokio::test]
    async fn the_public_is_shown_public_media_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("source")).unwrap();
        let hls = HlsOutput::new(dir.path().to_path_buf(), 6, Duration::from_secs(2));
        let visibility = Visibility::new(false);
        hls.set_visibility(visibility.clone());
        hls.add_renditions(&["source".to_string()]);
        hls.fragment_opened("source", Duration::ZERO);
        let close = |n: u32| {
            let path = dir.path().join(format!("source/seg{n:05}.ts"));
            std::fs::write(&path, [0u8; 188]).unwrap();
            hls.fragment_closed("source", &path, Duration::from_secs(2 * (u64::from(n) + 1)))
                .unwrap();
        };
        close(0);
        visibility.set(Duration::from_millis(3_000), true); // mid-segment 1
        close(1);
        assert!(hls.master_playlist(Audience::Public, None).is_none());
        assert!(
            hls.media_playlist("source", LIVE_PLAYLIST, Audience::Public, None)
                .is_none()
        );
        close(2);
        close(3);
        visibility.set(Duration::from_millis(8_500), false);
        visibility.set(Duration::from_millis(9_000), true);
        close(4); // 8..10 s held practice media
        close(5);
        let parse = |audience| {
            let text = hls
                .media_playlist("source", EVENT_PLAYLIST, audience, None)
                .unwrap();
            m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap()
        };
        let public = parse(Audience::Public);
        let uris: Vec<&str> = public.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["seg00002.ts", "seg00003.ts", "seg00005.ts"]);
        assert_eq!(
            public.media_sequence, 2,
            "numbered from the first public segment"
        );
        let cuts: Vec<bool> = public.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(cuts, [false, false, true]);
        assert_eq!(parse(Audience::Owner).segments.len(), 6);
        for (file, public) in [
            ("seg00000.ts", false),
            ("seg00001.ts", false),
            ("seg00002.ts", true),
            ("seg00004.ts", false),
            ("seg00005.ts", true),
        ] {
            assert_eq!(
                hls.serves("source", file, Audience::Public),
                public,
                "{file}"
            );
            assert!(hls.serves("source", file, Audience::Owner));
        }
        assert_eq!(
            hls.public_media().intervals_ms,
            vec![(4_000, 8_000), (10_000, 12_000)]
        );
        hls.end().unwrap();
        let hls_dir = dir.path();
        let files = FileCache::default();
        let read = async |rendition, file| {
            let bytes = read_persisted(&files, hls_dir, rendition, file, Audience::Public, None);
            String::from_utf8(bytes.await.unwrap().to_vec()).unwrap()
        };
        let vod = read(Some("source"), LIVE_PLAYLIST).await;
        assert!(
            !vod.contains("seg00000") && !vod.contains("seg00004"),
            "{vod}"
        );
        assert!(vod.contains("#EXT-X-ENDLIST"));
        let serves = async |file, audience| {
            persisted_serves(&files, hls_dir, "source", file, audience).await
        };
        assert!(serves("seg00003.ts", Audience::Public).await);
        assert!(!serves("seg00001.ts", Audience::Public).await);
        assert!(serves("seg00001.ts", Audience::Owner).await);
        assert_eq!(
            read_public_media(&files, hls_dir).await.unwrap(),
            hls.public_media()
        );
        let master = read(None, MASTER_FILE).await;
        assert!(master.contains("source/index.m3u8"));
    }

    /// A long stream keeps the live window in memory and every segment in its event lists on
    /// disk; what the public may fetch is still answered for segments long out of the window, and
    /// a restart continues both lists (a discontinuity, the numbering going on).
    #[test]
    fn a_long_stream_keeps_its_lists_on_disk_and_continues_them_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("source")).unwrap();
        let visibility = Visibility::new(true);
        let start = |restore: bool| {
            let hls = HlsOutput::new(dir.path().to_path_buf(), 6, Duration::from_secs(2));
            hls.set_visibility(visibility.clone());
            if restore {
                assert_eq!(hls.restore().unwrap(), 1);
            }
            hls.add_renditions(&["source".to_string()]);
            hls
        };
        let close = |hls: &HlsOutput, n: u32, to: u32| {
            let path = dir.path().join(format!("source/seg{n:05}.ts"));
            std::fs::write(&path, [0u8; 188]).unwrap();
            hls.fragment_closed("source", &path, Duration::from_secs(2 * u64::from(to)))
                .unwrap();
        };
        let hls = start(false);
        hls.fragment_opened("source", Duration::ZERO);
        for n in 0..100 {
            if n == 30 {
                visibility.set(Duration::from_secs(60), false);
            }
            if n == 40 {
                visibility.set(Duration::from_secs(80), true);
            }
            close(&hls, n, n + 1);
        }
        {
            let inner = hls.lock();
            let r = inner.rendition("source").unwrap();
            assert_eq!(r.playlist.recent_segments().len(), 6);
            assert_eq!(r.public.recent_segments().len(), 6);
            assert_eq!(r.playlist.segment_count(), 100);
            assert_eq!(r.public.segment_count(), 90);
        }
        for (n, public) in [
            (0, true),
            (3, true),
            (29, true),
            (30, false),
            (39, false),
            (40, true),
            (99, true),
        ] {
            let file = format!("seg{n:05}.ts");
            assert_eq!(
                hls.serves("source", &file, Audience::Public),
                public,
                "{file}"
            );
        }
        let event = |audience| {
            let text = hls
                .media_playlist("source", EVENT_PLAYLIST, audience, None)
                .unwrap();
            m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap()
        };
        assert_eq!(event(Audience::Owner).segments.len(), 100);
        let public = event(Audience::Public);
        assert_eq!(public.segments.len(), 90);
        let cuts: Vec<usize> = (0..90)
            .filter(|&i| public.segments[i].discontinuity)
            .collect();
        assert_eq!(cuts, [30], "the practice interval cut out");
        drop(hls);

        // A restart: both lists go on from their files.
        let hls = start(true);
        hls.fragment_opened("source", Duration::ZERO);
        for n in 100..105 {
            close(&hls, n, n - 99);
        }
        for (file, count, first_new) in [(EVENT_PLAYLIST, 105, 100), (PUBLIC_PLAYLIST, 95, 90)] {
            let text = std::fs::read_to_string(dir.path().join("source").join(file)).unwrap();
            let list = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
            assert_eq!(list.segments.len(), count, "{file}");
            assert!(list.segments[first_new].discontinuity, "{file}");
            assert_eq!(list.segments[first_new].uri, "seg00100.ts", "{file}");
            assert!(!list.end_list, "{file}");
        }
        assert!(hls.serves("source", "seg00003.ts", Audience::Public));
        assert!(!hls.serves("source", "seg00035.ts", Audience::Public));
        assert_eq!(hls.next_segment_index(), 105);
    }

    /// A low-latency output of 2 s segments and 200 ms parts in `dir`, ready for a `source`
    /// rendition.
    fn source_at_low_latency(dir: &Path) -> HlsOutput {
        std::fs::create_dir_all(dir.join("source")).unwrap();
        let ll = LowLatency {
            part: Duration::from_millis(200),
            hold_back_parts: 3,
            master_prefix: String::new(),
        };
        HlsOutput::low_latency(dir.to_path_buf(), 6, Duration::from_secs(2), ll)
    }

    /// At low latency the public's playlist numbers its segments on its own (blocking requests
    /// and rendition reports use those numbers) while part names keep the segment's own number;
    /// parts of practice media are neither listed nor served to the public.
    #[test]
    fn low_latency_public_view_has_its_own_numbering_and_only_public_parts() {
        let dir = tempfile::tempdir().unwrap();
        let hls = source_at_low_latency(dir.path());
        let visibility = Visibility::new(false);
        hls.set_visibility(visibility.clone());
        hls.add_renditions(&["source".to_string()]);
        let feed = |from_part: u64, to_part: u64| {
            for i in from_part..to_part {
                let chunk = Chunk {
                    init: (i == 0).then(|| Bytes::from_static(b"init")),
                    data: Bytes::from(vec![i as u8; 100]),
                    duration: Duration::from_millis(200),
                    independent: i % 10 == 0,
                    running_time: Duration::from_millis(200 * i),
                };
                hls.part_ready("source", chunk).unwrap();
            }
        };
        feed(0, 10); // segment 0: rehearsal
        visibility.set(Duration::from_millis(2_100), true);
        feed(10, 40); // 1 straddles the switch; 2 and 3 public
        visibility.set(Duration::from_millis(8_500), false);
        visibility.set(Duration::from_millis(9_000), true);
        feed(40, 63); // 4 straddles practice; 5 public; 6 open, public
        let text = hls
            .low_latency_playlist("source", Audience::Public, false, None)
            .unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        let uris: Vec<&str> = parsed.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(
            uris,
            ["seg00002.m4s", "seg00003.m4s", "seg00005.m4s"],
            "{text}"
        );
        assert_eq!(parsed.media_sequence, 2);
        assert!(parsed.segments[2].discontinuity, "{text}");
        assert!(
            !text.contains("part00004") && !text.contains("part00001"),
            "{text}"
        );
        assert!(
            text.contains("part00006.2.m4s"),
            "the open segment's parts: {text}"
        );
        let edge = hls.edge_position("source", Audience::Public).unwrap();
        assert_eq!(
            (edge.last_msn, edge.last_part, edge.last_segment),
            (5, 2, Some(4))
        );
        let owner = hls.edge_position("source", Audience::Owner).unwrap();
        assert_eq!((owner.last_msn, owner.last_part), (6, 2));
        assert!(matches!(
            hls.part("source", 4, 0, Audience::Public),
            PartLookup::Missing
        ));
        assert!(matches!(
            hls.part("source", 4, 0, Audience::Owner),
            PartLookup::InSegment { .. }
        ));
        assert!(matches!(
            hls.part("source", 6, 1, Audience::Public),
            PartLookup::Ready(_)
        ));
        assert!(hls.serves("source", "init00000.mp4", Audience::Public));
        assert!(!hls.serves("source", "seg00001.m4s", Audience::Public));
        // A switch to practice: the open segment is no longer shown to the public.
        visibility.set(Duration::from_millis(12_700), false);
        feed(63, 64);
        assert!(matches!(
            hls.part("source", 6, 0, Audience::Public),
            PartLookup::Missing
        ));
    }

    /// A part is served from memory while its segment is open, then from the segment's file:
    /// the same bytes. Parts of segments no longer listed are gone.
    #[test]
    fn a_closed_segments_parts_are_read_from_its_file_as_they_were_served_live() {
        let dir = tempfile::tempdir().unwrap();
        let hls = source_at_low_latency(dir.path());
        hls.set_visibility(Visibility::new(true));
        hls.add_renditions(&["source".to_string()]);
        let mut live = Vec::new();
        for i in 0..70u64 {
            let chunk = Chunk {
                init: (i == 0).then(|| Bytes::from_static(b"init")),
                // Parts of different lengths and contents.
                data: Bytes::from(
                    (0..100 + i * 7)
                        .map(|b| (b * 31 + i) as u8)
                        .collect::<Vec<_>>(),
                ),
                duration: Duration::from_millis(200),
                independent: i % 10 == 0,
                running_time: Duration::from_millis(200 * i),
            };
            hls.part_ready("source", chunk).unwrap();
            let (msn, index) = (i / 10, (i % 10) as usize);
            let PartLookup::Ready(bytes) = hls.part("source", msn, index, Audience::Public) else {
                panic!("part {msn}.{index} of the open segment is served from memory");
            };
            live.push(((msn, index), bytes));
        }
        // Segments 0..=5 are closed, 6 is open with ten parts.
        let from_file =
            |msn: u64, index: usize| match hls.part("source", msn, index, Audience::Public) {
                PartLookup::InSegment { path, range } => {
                    assert_eq!(
                        path,
                        dir.path().join("source").join(format!("seg{msn:05}.m4s"))
                    );
                    let file = std::fs::read(&path).unwrap();
                    Some(file[range.start as usize..range.end as usize].to_vec())
                }
                PartLookup::Missing => None,
                other => panic!("part {msn}.{index}: {other:?}"),
            };
        for ((msn, index), bytes) in &live {
            match msn {
                0 | 1 => assert_eq!(from_file(*msn, *index), None, "no longer listed"),
                2..=5 => assert_eq!(
                    from_file(*msn, *index).as_deref(),
                    Some(&bytes[..]),
                    "part {msn}.{index}"
                ),
                _ => assert_eq!(
                    hls.part("source", *msn, *index, Audience::Public),
                    PartLookup::Ready(bytes.clone())
                ),
            }
        }
        assert_eq!(from_file(5, 10), None, "segment 5 has ten parts");
        // The stream ends: the open segment is written, its parts are in it too.
        hls.end().unwrap();
        for ((msn, index), bytes) in live.iter().filter(|((msn, _), _)| *msn == 6) {
            assert_eq!(from_file(*msn, *index).as_deref(), Some(&bytes[..]));
        }
    }

    /// The bytes served for a playlist are rendered once and shared, and never outlive a change:
    /// a new part, or a switch to practice that takes the open segment's parts from the public.
    #[test]
    fn served_playlists_are_shared_until_something_changes() {
        let dir = tempfile::tempdir().unwrap();
        let hls = source_at_low_latency(dir.path());
        let visibility = Visibility::new(true);
        hls.set_visibility(visibility.clone());
        hls.add_renditions(&["source".to_string()]);
        let feed = |from_part: u64, to_part: u64| {
            for i in from_part..to_part {
                let chunk = Chunk {
                    init: (i == 0).then(|| Bytes::from_static(b"init")),
                    data: Bytes::from(vec![i as u8; 100]),
                    duration: Duration::from_millis(200),
                    independent: i % 10 == 0,
                    running_time: Duration::from_millis(200 * i),
                };
                hls.part_ready("source", chunk).unwrap();
            }
        };
        let kind = PlaylistKind::LowLatency { skip: false };
        let served = || {
            hls.served_playlist("source", kind, Audience::Public, None)
                .unwrap()
        };
        let rendered = || {
            hls.low_latency_playlist("source", Audience::Public, false, None)
                .unwrap()
        };
        feed(0, 12); // segment 0 closed, 1 open with two parts
        let first = served();
        assert_eq!(first.as_ptr(), served().as_ptr(), "rendered once, shared");
        assert_eq!(&first[..], rendered().as_bytes());
        feed(12, 13);
        let text = served();
        assert_eq!(&text[..], rendered().as_bytes());
        assert!(String::from_utf8_lossy(&text).contains("part00001.2.m4s"));
        // Practice from inside the open segment: its parts are no longer the public's.
        visibility.set(Duration::from_millis(2_500), false);
        let text = served();
        assert_eq!(&text[..], rendered().as_bytes());
        assert!(!String::from_utf8_lossy(&text).contains("part00001."));
        // The owner sees them, from a playlist of its own.
        let owner = hls
            .served_playlist("source", kind, Audience::Owner, None)
            .unwrap();
        assert!(String::from_utf8_lossy(&owner).contains("part00001.2.m4s"));
    }

    fn spec(id: &str) -> MarkerSpec {
        MarkerSpec {
            id: id.into(),
            class: "com.livefront.product".into(),
            attributes: vec![("X-PRODUCT-ID".into(), id.into())],
        }
    }

    /// A marker is listed when the segment covering its media time is, in every rendition, at the
    /// date that media time has there, also right after a comeback (where the time away moves the
    /// dates) and in a rendition that lags; the stream's end closes what is open.
    #[test]
    fn an_earlier_end_replaces_the_pending_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("source")).unwrap();
        let hls = HlsOutput::new(dir.path().to_path_buf(), 6, Duration::from_secs(2));
        let epoch =
            chrono::SubsecRound::trunc_subsecs(Utc::now(), 3) - chrono::Duration::seconds(60);
        hls.set_epoch(epoch);
        hls.add_renditions(&["source".to_string()]);
        hls.fragment_opened("source", Duration::ZERO);
        // A sale marked from 1 s to its scheduled end at 60 s sells out at 3 s.
        hls.start_marker(spec("sale"), Duration::from_secs(1));
        hls.end_marker("sale", Duration::from_secs(60));
        hls.end_marker("sale", Duration::from_secs(3));
        for (n, at) in [(0u32, 2_000u64), (1, 4_000)] {
            let path = dir.path().join(format!("source/seg{n:05}.ts"));
            std::fs::write(&path, [0u8; 188]).unwrap();
            hls.fragment_closed("source", &path, Duration::from_millis(at))
                .unwrap();
        }
        hls.end().unwrap();
        let text = hls
            .media_playlist("source", EVENT_PLAYLIST, Audience::Owner, None)
            .unwrap();
        let m: Vec<Marker> = text.lines().filter_map(Marker::parse_line).collect();
        assert_eq!(m.len(), 1, "{text}");
        assert_eq!(
            m[0].end,
            Some(epoch + chrono::Duration::seconds(3)),
            "{text}"
        );
    }

    #[test]
    fn markers_are_placed_in_the_segment_that_covers_their_media_time() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["source".to_string(), "360p".to_string()];
        for n in &names {
            std::fs::create_dir_all(dir.path().join(n)).unwrap();
        }
        let hls = HlsOutput::new(dir.path().to_path_buf(), 6, Duration::from_secs(2));
        // Whole milliseconds, as the playlists write dates.
        let epoch =
            chrono::SubsecRound::trunc_subsecs(Utc::now(), 3) - chrono::Duration::seconds(60);
        hls.set_epoch(epoch);
        hls.add_renditions(&names);
        let close = |r: &str, n: u32, at_ms: u64| {
            let path = dir.path().join(format!("{r}/seg{n:05}.ts"));
            std::fs::write(&path, [0u8; 188]).unwrap();
            hls.fragment_closed(r, &path, Duration::from_millis(at_ms))
                .unwrap();
        };
        let markers = |r: &str| {
            let text = hls
                .media_playlist(r, EVENT_PLAYLIST, Audience::Owner, None)
                .unwrap();
            text.lines()
                .filter_map(Marker::parse_line)
                .collect::<Vec<_>>()
        };
        for r in &names {
            hls.fragment_opened(r, Duration::ZERO);
        }
        close("source", 0, 2_000);
        close("360p", 0, 2_000);
        hls.start_marker(spec("a"), Duration::from_millis(2_500));
        assert!(
            markers("source").is_empty(),
            "not listed before its segment"
        );
        close("source", 1, 4_000);
        assert_eq!(
            markers("source")[0].start,
            epoch + chrono::Duration::milliseconds(2_500)
        );
        assert!(
            markers("360p").is_empty(),
            "the lagging rung has not got there"
        );

        // The publisher drops and comes back; a focus change in the first new segment.
        hls.discontinuity("source");
        hls.discontinuity("360p");
        let back = Utc::now();
        close("source", 2, 4_500); // the old publish's last segment
        hls.end_marker("a", Duration::from_millis(5_000));
        hls.start_marker(spec("b"), Duration::from_millis(5_000));
        close("source", 3, 6_500);
        // The rung catches up.
        close("360p", 1, 4_000);
        close("360p", 2, 4_500);
        close("360p", 3, 6_500);
        for r in ["source", "360p"] {
            let text = hls
                .media_playlist(r, EVENT_PLAYLIST, Audience::Owner, None)
                .unwrap();
            let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
            let new_publish = parsed.segments[3].program_date_time.unwrap();
            let expected = new_publish.with_timezone(&Utc) + chrono::Duration::milliseconds(500);
            let m = markers(r);
            assert_eq!(m.len(), 2, "{text}");
            assert_eq!(
                m[0].start,
                epoch + chrono::Duration::milliseconds(2_500),
                "{r}"
            );
            assert_eq!(m[1].start, expected, "{r}: {text}");
            assert_eq!(m[0].end, Some(expected), "{r}");
            assert!(
                m[1].start >= back - chrono::Duration::milliseconds(1_500),
                "{text}"
            );
            assert_eq!(m[1].end, None);
        }
        hls.end().unwrap();
        let ended = markers("source");
        let last = hls
            .media_playlist("source", EVENT_PLAYLIST, Audience::Owner, None)
            .unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(last.as_bytes()).unwrap();
        let seg = parsed.segments.last().unwrap();
        let end = seg.program_date_time.unwrap().with_timezone(&Utc)
            + chrono::Duration::milliseconds((seg.duration * 1000.0).round() as i64);
        assert_eq!(ended[1].end, Some(end), "{last}");
        // And what is on disk reads back with them.
        let disk = std::fs::read_to_string(dir.path().join("source").join(EVENT_PLAYLIST)).unwrap();
        assert_eq!(
            disk.lines().filter_map(Marker::parse_line).count(),
            2,
            "{disk}"
        );
    }
}
