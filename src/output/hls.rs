//! HLS output of one live stream: the segments its pipeline closes, our playlists over them, and the
//! files that keep them after the stream (VOD) or a crash (recovery).
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::daterange::Marker;
use super::playlist::{self, LiveEdge, MediaPlaylist, Part, RenditionReport, Segment, Variant};

pub const MASTER_FILE: &str = "master.m3u8";
/// The live window while live, the complete VOD list after.
pub const LIVE_PLAYLIST: &str = "index.m3u8";
/// Every segment since the start (EVENT while live, VOD after); also what is kept on disk.
pub const EVENT_PLAYLIST: &str = "event.m3u8";
/// Segments before the open one whose parts stay in memory (they are listed for three target
/// durations; one more for players that are a little behind).
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

/// The parts of a low-latency rendition: those of the segment being written, and the bytes of
/// recent ones, served from memory.
#[derive(Default)]
struct Parts {
    open: Vec<Part>,
    /// By (media sequence number, part index).
    bytes: BTreeMap<(u64, usize), Bytes>,
    /// Init sections by file name.
    maps: Vec<(String, Bytes)>,
    /// The init section of the segment being written.
    map: Option<String>,
    /// The longest part so far. A publisher's B-frames make the muxer cut a part up to two
    /// frames past the part duration (it cuts in decode order).
    longest: Duration,
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
    Ready(Bytes),
    /// Not written yet, but the next one or so: worth waiting for.
    Soon,
    /// Never will be, or no longer kept.
    Missing,
}

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
    fn new(name: String, playlist: MediaPlaylist) -> Self {
        Rendition {
            name,
            playlist,
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

    fn edge_position(&self) -> Option<EdgePosition> {
        let last_segment = self.playlist.next_sequence().checked_sub(1);
        let (last_msn, last_part) = match self.parts.open.len() {
            0 => {
                let msn = last_segment?;
                let parts = self.playlist.segments().last().map_or(0, |s| s.parts.len());
                (msn, parts.saturating_sub(1) as u64)
            }
            n => (self.open_msn(), n as u64 - 1),
        };
        Some(EdgePosition {
            last_msn,
            last_part,
            last_segment,
            ended: self.playlist.is_ended(),
        })
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
        segment.map = self.parts.map.clone();
        segment.parts = parts;
        self.playlist.push(segment);
        self.place_markers(start, date, running_time);
    }

    /// Closes the segment being written from its parts: the file is their concatenation.
    fn close_open_parts(&mut self, epoch: DateTime<Utc>, dir: &Path) -> io::Result<()> {
        if self.parts.open.is_empty() {
            return Ok(());
        }
        let msn = self.open_msn();
        let uri = format!("seg{msn:05}.m4s");
        let mut file = Vec::new();
        for i in 0..self.parts.open.len() {
            if let Some(b) = self.parts.bytes.get(&(msn, i)) {
                file.extend_from_slice(b);
            }
        }
        write_atomic_bytes(&dir.join(&self.name).join(&uri), &file)?;
        let parts = std::mem::take(&mut self.parts.open);
        let end =
            self.opened_at.unwrap_or_default() + parts.iter().map(|p| p.duration).sum::<Duration>();
        self.close_segment(epoch, uri, file.len() as u64, end, parts);
        Ok(())
    }

    /// The live edge of this rendition's low-latency playlist, for segments of `segment`.
    fn live_edge(&self, segment: Duration, part_target: Duration, skip: bool) -> LiveEdge {
        let msn = self.open_msn();
        // Once the open segment is within half a part of the segment duration, the next part
        // starts the next segment (at the keyframe the muxer waits for).
        let elapsed: Duration = self.parts.open.iter().map(|p| p.duration).sum();
        let hint = if elapsed + part_target / 2 >= segment {
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
            open: self.parts.open.clone(),
            open_discontinuity: self.closes_before_discontinuity == Some(0),
            open_map: self.parts.map.clone(),
            hint: (!self.playlist.is_ended()).then_some(hint),
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
        match edge {
            Edge::Start(spec) => self.playlist.set_marker(Marker {
                id: spec.id,
                class: spec.class,
                start: date,
                end: None,
                attributes: spec.attributes,
            }),
            Edge::End(id) => {
                if let Some(mut marker) =
                    self.playlist.markers().iter().find(|m| m.id == id).cloned()
                {
                    marker.end = Some(date.max(marker.start));
                    self.playlist.set_marker(marker);
                }
            }
        }
    }

    /// The stream ended: what is still pending or open ends with the last segment.
    fn close_markers(&mut self) {
        let Some(last) = self.playlist.segments().last() else {
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
            .iter()
            .filter(|m| m.end.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in open {
            self.place(Edge::End(id), end);
        }
    }
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
}

/// How a low-latency (CMAF) output differs.
#[derive(Debug, Clone)]
pub struct LowLatency {
    /// Part duration (`EXT-X-PART-INF:PART-TARGET`).
    pub part: Duration,
    /// Put before the media playlist URIs in the master playlist (its directory, seen from where
    /// the master is served), e.g. `ll/`.
    pub master_prefix: String,
}

/// The HLS state of one stream, shared by its pipeline's bus task (writer) and HTTP (readers).
pub struct HlsOutput {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Bumped whenever a part or segment is listed, for blocking playlist reloads.
    changed: tokio::sync::watch::Sender<u64>,
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
            }),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A low-latency output: CMAF segments made of parts (see [`HlsOutput::part_ready`]).
    pub fn low_latency(dir: PathBuf, window: usize, target: Duration, ll: LowLatency) -> Self {
        let out = Self::new(dir, window, target);
        out.lock().low_latency = Some(ll);
        out
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
        let mut inner = self.lock();
        let (window, target) = (inner.window, inner.target);
        for name in names {
            if !inner.renditions.iter().any(|r| &r.name == name) {
                inner.renditions.push(Rendition::new(
                    name.clone(),
                    MediaPlaylist::new(window, target),
                ));
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
        let mut inner = self.lock();
        let (window, target) = (inner.window, inner.target);
        let mut restored = 0;
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(text) = std::fs::read_to_string(dir.join(EVENT_PLAYLIST)) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut playlist = MediaPlaylist::parse_event(&text, window, target)
                .map_err(|e| io::Error::other(format!("{}: {e}", dir.display())))?;
            playlist.reopen();
            playlist.restat(&dir);
            inner.renditions.retain(|r| r.name != name);
            let mut rendition = Rendition::new(name, playlist);
            rendition.closes_before_discontinuity = Some(0);
            inner.renditions.push(rendition);
            restored += 1;
        }
        Ok(restored)
    }

    /// Takes a rendition out of the master playlist (its encoder was stopped under overload).
    pub fn drop_rendition(&self, name: &str) {
        if let Some(r) = self.lock().renditions.iter_mut().find(|r| r.name == name) {
            r.dropped = true;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_epoch(&self, epoch: DateTime<Utc>) {
        self.lock().epoch = epoch;
    }

    pub fn set_info(&self, rendition: &str, info: RenditionInfo) {
        if let Some(r) = self
            .lock()
            .renditions
            .iter_mut()
            .find(|r| r.name == rendition)
        {
            r.info = info;
        }
    }

    pub fn info(&self, rendition: &str) -> Option<RenditionInfo> {
        self.lock()
            .renditions
            .iter()
            .find(|r| r.name == rendition)
            .map(|r| r.info.clone())
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
            .lock()
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
            .lock()
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
        let (event, master) = {
            let mut inner = self.lock();
            let epoch = inner.epoch;
            let Some(r) = inner.renditions.iter_mut().find(|r| r.name == rendition) else {
                return Ok(());
            };
            r.close_segment(epoch, uri, bytes, running_time, Vec::new());
            let event = r.playlist.render_event(None);
            (event, render_master_locked(&inner))
        };
        self.notify();
        self.persist(rendition, &event, master.as_deref())
    }

    /// A low-latency rendition's muxer gave a chunk: list it as a part of the segment being
    /// written; a chunk that starts with a keyframe closes that segment (written to disk, listed)
    /// and opens the next. An init section before it is kept for `EXT-X-MAP`, on disk too.
    pub fn part_ready(&self, rendition: &str, chunk: Chunk) -> io::Result<()> {
        let persist = {
            let mut inner = self.lock();
            let epoch = inner.epoch;
            let Some(r) = inner.renditions.iter_mut().find(|r| r.name == rendition) else {
                return Ok(());
            };
            if r.opened_at.is_none() {
                r.opened_at = Some(chunk.running_time);
            }
            let closing = chunk.independent && !r.parts.open.is_empty();
            if closing {
                r.close_open_parts(epoch, &self.dir)?;
            }
            if let Some(init) = chunk.init {
                // Named after the segment it starts with: never the name of an earlier session's.
                let name = format!("init{:05}.mp4", r.open_msn());
                write_atomic_bytes(&self.dir.join(&r.name).join(&name), &init)?;
                r.parts.maps.push((name.clone(), init));
                r.parts.map = Some(name);
            }
            let msn = r.open_msn();
            let index = r.parts.open.len();
            // The stream's very first part starts with its earliest sample (audio a frame or so
            // before the first picture) and is that much longer; it is not held against
            // PART-TARGET for the rest of the stream (it leaves the playlist within 6 s).
            let first = r.parts.open.is_empty() && r.playlist.segments().is_empty();
            if !first {
                r.parts.longest = r.parts.longest.max(chunk.duration);
            }
            r.parts.open.push(Part {
                uri: format!("part{msn:05}.{index}.m4s"),
                duration: chunk.duration,
                independent: chunk.independent,
            });
            r.parts.bytes.insert((msn, index), chunk.data);
            // Markers go out with the part that covers them, not a segment later.
            let (start, date, _) = r.open_date(epoch);
            let end = start + r.parts.open.iter().map(|p| p.duration).sum::<Duration>();
            r.place_markers(start, date, end);
            let oldest = msn.saturating_sub(KEPT_PART_SEGMENTS);
            r.parts.bytes = r.parts.bytes.split_off(&(oldest, 0));
            let event = closing.then(|| r.playlist.render_event(None));
            event.map(|e| (e, render_master_locked(&inner)))
        };
        self.notify();
        match persist {
            Some((event, master)) => self.persist(rendition, &event, master.as_deref()),
            None => Ok(()),
        }
    }

    /// Where a low-latency rendition's live edge is (`None` before its first part).
    pub fn edge_position(&self, rendition: &str) -> Option<EdgePosition> {
        let inner = self.lock();
        inner
            .renditions
            .iter()
            .find(|r| r.name == rendition)?
            .edge_position()
    }

    /// A low-latency rendition's live playlist (`index.m3u8`), with the parts and the other
    /// renditions' reports; `skip` makes it a delta update. `None` before its first part.
    pub fn low_latency_playlist(
        &self,
        rendition: &str,
        skip: bool,
        query: Option<&str>,
    ) -> Option<String> {
        let inner = self.lock();
        let ll = inner.low_latency.as_ref()?;
        let r = inner.renditions.iter().find(|r| r.name == rendition)?;
        r.edge_position()?;
        let mut edge = r.live_edge(inner.target, ll.part, skip);
        edge.reports = inner
            .renditions
            .iter()
            .filter(|o| o.name != r.name && !o.dropped)
            .filter_map(|o| {
                let p = o.edge_position()?;
                Some(RenditionReport {
                    uri: format!("../{}/{LIVE_PLAYLIST}", o.name),
                    last_msn: p.last_msn,
                    last_part: p.last_part,
                })
            })
            .collect();
        Some(r.playlist.render_low_latency(&edge, query))
    }

    /// Part `index` of segment `msn`, from memory.
    pub fn part(&self, rendition: &str, msn: u64, index: usize) -> PartLookup {
        let inner = self.lock();
        let Some(r) = inner.renditions.iter().find(|r| r.name == rendition) else {
            return PartLookup::Missing;
        };
        if let Some(bytes) = r.parts.bytes.get(&(msn, index)) {
            return PartLookup::Ready(bytes.clone());
        }
        let open = r.open_msn();
        let next = r.parts.open.len();
        let soon = !r.playlist.is_ended()
            && ((msn == open && index <= next + 1) || (msn == open + 1 && index == 0));
        if soon {
            PartLookup::Soon
        } else {
            PartLookup::Missing
        }
    }

    /// An init section (`initN.mp4`) kept in memory.
    pub fn init_section(&self, rendition: &str, name: &str) -> Option<Bytes> {
        let inner = self.lock();
        let r = inner.renditions.iter().find(|r| r.name == rendition)?;
        r.parts
            .maps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }

    /// The stream is over: every playlist becomes a complete VOD list, on disk too.
    pub fn end(&self) -> io::Result<()> {
        let rendered: Vec<(String, String)> = {
            let mut inner = self.lock();
            let epoch = inner.epoch;
            for r in &mut inner.renditions {
                if let Err(e) = r.close_open_parts(epoch, &self.dir) {
                    tracing::warn!(rendition = %r.name, error = %e, "writing the last segment");
                }
            }
            inner
                .renditions
                .iter_mut()
                .map(|r| {
                    r.close_markers();
                    r.playlist.end();
                    (r.name.clone(), r.playlist.render_event(None))
                })
                .collect()
        };
        let master = render_master_locked(&self.lock());
        self.notify();
        for (name, event) in rendered {
            self.persist(&name, &event, master.as_deref())?;
        }
        Ok(())
    }

    fn persist(&self, rendition: &str, event: &str, master: Option<&str>) -> io::Result<()> {
        write_atomic(&self.dir.join(rendition).join(EVENT_PLAYLIST), event)?;
        if let Some(master) = master {
            write_atomic(&self.dir.join(MASTER_FILE), master)?;
        }
        Ok(())
    }

    /// Starts a marker at media time `at` in every rendition: it is listed once the segment that
    /// covers `at` is, with the date that `at` has in that segment.
    pub fn start_marker(&self, spec: MarkerSpec, at: Duration) {
        for r in &mut self.lock().renditions {
            r.pending.push(Pending {
                at,
                edge: Edge::Start(spec.clone()),
            });
        }
    }

    /// Ends the marker `id` at media time `at` (see [`HlsOutput::start_marker`]).
    pub fn end_marker(&self, id: &str, at: Duration) {
        for r in &mut self.lock().renditions {
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

    /// The master playlist, once some rendition has a segment.
    pub fn master_playlist(&self, query: Option<&str>) -> Option<String> {
        render_master_locked(&self.lock()).map(|m| with_query(&m, query))
    }

    /// `index.m3u8` (live window) or `event.m3u8` (everything) of a rendition, once it has a segment.
    pub fn media_playlist(
        &self,
        rendition: &str,
        file: &str,
        query: Option<&str>,
    ) -> Option<String> {
        let inner = self.lock();
        let r = inner.renditions.iter().find(|r| r.name == rendition)?;
        if r.playlist.segments().is_empty() {
            return None;
        }
        match file {
            LIVE_PLAYLIST => Some(r.playlist.render_live(query)),
            EVENT_PLAYLIST => Some(r.playlist.render_event(query)),
            _ => None,
        }
    }

    pub fn segment_count(&self, rendition: &str) -> usize {
        self.lock()
            .renditions
            .iter()
            .find(|r| r.name == rendition)
            .map_or(0, |r| r.playlist.segments().len())
    }

    /// Next segment file number for a rendition (so a new publish never overwrites old segments).
    pub fn next_segment_index(&self, rendition: &str) -> u32 {
        self.segment_count(rendition) as u32
    }
}

fn render_master_locked(inner: &Inner) -> Option<String> {
    let variants: Vec<Variant> = inner
        .renditions
        .iter()
        .filter(|r| !r.dropped)
        .filter_map(|r| {
            // Announced once it has a whole segment: players without low-latency HLS (ffprobe)
            // give up on a playlist of parts only.
            let bandwidth = r.playlist.peak_bandwidth()?;
            let average_bandwidth = r.playlist.average_bandwidth();
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

/// Closes the playlists a crashed run left open: the event list gets EXT-X-ENDLIST.
pub fn close_persisted(hls_dir: &Path, window: usize, target: Duration) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(hls_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path().join(EVENT_PLAYLIST);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut list = MediaPlaylist::parse_event(&text, window, target)
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        if !list.is_ended() {
            list.end();
            write_atomic(&path, &list.render_event(None))?;
        }
    }
    Ok(())
}

/// A persisted playlist of an ended stream (`master.m3u8`, or a rendition's VOD list under either name).
pub fn read_persisted(hls_dir: &Path, rendition: Option<&str>, file: &str) -> Option<String> {
    let path = match rendition {
        None if file == MASTER_FILE => hls_dir.join(MASTER_FILE),
        Some(r) if file == LIVE_PLAYLIST || file == EVENT_PLAYLIST => {
            hls_dir.join(r).join(EVENT_PLAYLIST)
        }
        _ => return None,
    };
    std::fs::read_to_string(path).ok()
}

fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    write_atomic_bytes(path, text.as_bytes())
}

/// Writes to a temporary name and renames, so a reader (or a crash) never sees half a file.
fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
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
        let text = hls.media_playlist("source", EVENT_PLAYLIST, None).unwrap();
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
            let text = hls.media_playlist(r, EVENT_PLAYLIST, None).unwrap();
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
            let text = hls.media_playlist(r, EVENT_PLAYLIST, None).unwrap();
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
        let last = hls.media_playlist("source", EVENT_PLAYLIST, None).unwrap();
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
