//! The recording: fragmented MP4 while live (written by the stream's pipeline), finalised into a
//! progressive MP4 with `moov` before `mdat` by a remux without re-encoding.
//!
//! Finalising is the same after a clean stop and after a crash: cut the fragmented file after its
//! last complete fragment, remux it with `mp4mux faststart=true`, read the duration back.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

/// How long a remux may take before it is called failed: it copies bytes (an hour of 6 Mb/s
/// video takes seconds), so a base plus a time per byte far slower than any disk. A recording a
/// publisher mangled can stall the remux for good (a track in `moov` that qtdemux never exposes):
/// a one-second recording must not hold its stream's end for ten minutes.
const REMUX_TIMEOUT_BASE: Duration = Duration::from_secs(10);
const REMUX_TIMEOUT_BYTES_PER_SECOND: u64 = 10 << 20;
const MAX_REMUX_TIMEOUT: Duration = Duration::from_secs(600);

fn remux_timeout(input_bytes: u64) -> Duration {
    (REMUX_TIMEOUT_BASE + Duration::from_secs(input_bytes / REMUX_TIMEOUT_BYTES_PER_SECOND))
        .min(MAX_REMUX_TIMEOUT)
}
/// Per-track queue in the remux: ~85 s of 6 Mb/s video, far more than one fragment.
const REMUX_QUEUE_BYTES: u32 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no media was recorded")]
    Empty,
    #[error("recording i/o on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("remux failed: {0}")]
    Remux(String),
}

/// A finalised recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Finalized {
    pub bytes: u64,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct BoxHeader {
    kind: [u8; 4],
    offset: u64,
    size: u64,
}

/// Top-level boxes of an MP4 file; stops at the first box that does not fit (a truncated tail).
fn top_level_boxes(file: &mut File) -> io::Result<(Vec<BoxHeader>, u64)> {
    let len = file.metadata()?.len();
    let mut boxes = Vec::new();
    let mut offset = 0u64;
    while offset + 8 <= len {
        file.seek(SeekFrom::Start(offset))?;
        let mut head = [0u8; 16];
        let n = file.read(&mut head)?;
        if n < 8 {
            break;
        }
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let kind = [head[4], head[5], head[6], head[7]];
        let size = match size32 {
            0 => len - offset,
            1 if n >= 16 => u64::from_be_bytes(head[8..16].try_into().expect("8 bytes")),
            1 => break,
            s => s,
        };
        if size < 8 || offset + size > len {
            break;
        }
        boxes.push(BoxHeader { kind, offset, size });
        offset += size;
    }
    Ok((boxes, len))
}

/// The length of the fragmented file up to its last complete `moof`+`mdat` pair, or `None`
/// when not even the header (`moov`) and one fragment are complete.
fn complete_length(boxes: &[BoxHeader]) -> Option<u64> {
    boxes.iter().position(|b| &b.kind == b"moov")?;
    let last_mdat = boxes.iter().rposition(|b| &b.kind == b"mdat")?;
    let has_moof_before = boxes[..last_mdat].iter().any(|b| &b.kind == b"moof");
    has_moof_before.then(|| boxes[last_mdat].offset + boxes[last_mdat].size)
}

/// How much of the fragmented recording at `path` is whole: the length up to the end of its last
/// complete fragment (0 before the first one). What a reader may copy of a file still being
/// written.
pub fn complete_len(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let (boxes, _) = top_level_boxes(&mut file)?;
    Ok(complete_length(&boxes).unwrap_or(0))
}

/// How much of the fragmented recording at `path` holds every track equally far: its length up
/// to the last fragment after which each track has had as many fragments as the others (the
/// recording writes one fragment per track in turn, of the same duration). A file cut off while
/// written (its node died) holds one track a fragment further than the other; remuxed as it is,
/// the next session joined after it would start under that track's end.
pub fn balanced_len(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let (boxes, _) = top_level_boxes(&mut file)?;
    let Some(moov) = read_moov(&mut file, &boxes)? else {
        return Ok(0);
    };
    let tracks = moov.windows(4).filter(|w| w == b"trak").count();
    let mut fragments: std::collections::HashMap<u32, u32> = Default::default();
    let mut balanced = 0;
    let mut track = None;
    for b in &boxes {
        match &b.kind {
            b"moof" => {
                let mut buf = vec![0u8; b.size.min(1 << 20) as usize];
                file.seek(SeekFrom::Start(b.offset))?;
                file.read_exact(&mut buf)?;
                track = buf
                    .windows(4)
                    .position(|w| w == b"tfhd")
                    .and_then(|i| buf.get(i + 8..i + 12))
                    .map(|id| u32::from_be_bytes(id.try_into().expect("4 bytes")));
            }
            b"mdat" => {
                if let Some(id) = track.take() {
                    *fragments.entry(id).or_default() += 1;
                    let mut counts = fragments.values();
                    let first = counts.next().copied().unwrap_or(0);
                    if fragments.len() >= tracks && counts.all(|&n| n == first) {
                        balanced = b.offset + b.size;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(balanced)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The `moov` box of an MP4 (its first 16 MiB), if it has one.
fn read_moov(file: &mut File, boxes: &[BoxHeader]) -> io::Result<Option<Vec<u8>>> {
    let Some(moov) = boxes.iter().find(|b| &b.kind == b"moov") else {
        return Ok(None);
    };
    let mut buf = vec![0u8; moov.size.min(16 << 20) as usize];
    file.seek(SeekFrom::Start(moov.offset))?;
    file.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Which tracks a (fragmented) MP4 has, from the handler types in its `moov`.
fn tracks(file: &mut File, boxes: &[BoxHeader]) -> io::Result<(bool, bool)> {
    let Some(buf) = read_moov(file, boxes)? else {
        return Ok((false, false));
    };
    let handler_at = |i: usize| buf.get(i + 12..i + 16);
    let mut video = false;
    let mut audio = false;
    for i in 0..buf.len().saturating_sub(16) {
        if &buf[i..i + 4] == b"hdlr" {
            match handler_at(i) {
                Some(b"vide") => video = true,
                Some(b"soun") => audio = true,
                _ => {}
            }
        }
    }
    Ok((video, audio))
}

/// When the first picture of the progressive MP4 at `path` is shown: its video track's leading
/// empty edits (the B-frame delay that mp4mux writes as an edit list), zero without video or
/// without them.
pub fn first_picture(path: &Path) -> io::Result<Duration> {
    let mut file = File::open(path)?;
    let (boxes, _) = top_level_boxes(&mut file)?;
    let Some(buf) = read_moov(&mut file, &boxes)? else {
        return Ok(Duration::ZERO);
    };
    let be32 = |b: &[u8]| u32::from_be_bytes(b.try_into().expect("4 bytes")) as u64;
    let find = |from: usize, to: usize, kind: &[u8]| {
        buf.get(from..to)?
            .windows(4)
            .position(|w| w == kind)
            .map(|i| from + i)
    };
    let Some(mvhd) = find(0, buf.len(), b"mvhd").filter(|&i| i + 24 <= buf.len()) else {
        return Ok(Duration::ZERO);
    };
    let timescale = match buf[mvhd + 4] {
        1 => be32(&buf[mvhd + 24..mvhd + 28]),
        _ => be32(&buf[mvhd + 16..mvhd + 20]),
    };
    let mut at = 0;
    while let Some(trak) = find(at, buf.len(), b"trak") {
        let end = (trak - 4 + be32(&buf[trak - 4..trak]) as usize).min(buf.len());
        at = trak + 4;
        let video =
            find(trak, end, b"hdlr").is_some_and(|h| buf.get(h + 12..h + 16) == Some(b"vide"));
        let Some(elst) = find(trak, end, b"elst").filter(|_| video) else {
            continue;
        };
        let version = buf[elst + 4];
        let entries = buf.get(elst + 8..elst + 12).map_or(0, be32);
        let size = if version == 1 { 20 } else { 12 };
        let mut empty = 0u64;
        for n in 0..entries as usize {
            let e = elst + 12 + n * size;
            let Some(entry) = buf.get(e..e + size) else {
                break;
            };
            let (duration, media_time) = match version {
                1 => (
                    u64::from_be_bytes(entry[0..8].try_into().expect("8 bytes")),
                    i64::from_be_bytes(entry[8..16].try_into().expect("8 bytes")),
                ),
                _ => (
                    be32(&entry[0..4]),
                    i32::from_be_bytes(entry[4..8].try_into().expect("4 bytes")) as i64,
                ),
            };
            if media_time != -1 {
                break;
            }
            empty += duration;
        }
        if timescale == 0 {
            return Ok(Duration::ZERO);
        }
        return Ok(Duration::from_nanos(
            (empty as u128 * 1_000_000_000 / timescale as u128) as u64,
        ));
    }
    Ok(Duration::ZERO)
}

/// The parser of the MP4's video, from the sample entry in its `moov`: `h265parse` for
/// `hvc1`/`hev1`, `av1parse` for `av01`, else `h264parse`.
fn video_parser(file: &mut File, boxes: &[BoxHeader]) -> io::Result<&'static str> {
    let Some(buf) = read_moov(file, boxes)? else {
        return Ok("h264parse");
    };
    let has = |entry: &[u8]| buf.windows(4).any(|w| w == entry);
    Ok(if has(b"hvc1") || has(b"hev1") {
        "h265parse"
    } else if has(b"av01") {
        "av1parse"
    } else {
        "h264parse"
    })
}

/// Which tracks (video, audio) the MP4 at `path` has, fragmented or progressive.
pub(crate) fn tracks_in(path: &Path) -> io::Result<(bool, bool)> {
    let mut file = File::open(path)?;
    let (boxes, _) = top_level_boxes(&mut file)?;
    tracks(&mut file, &boxes)
}

/// Duration from `moov/mvhd` of a progressive MP4.
pub fn mp4_duration(path: &Path) -> io::Result<Option<Duration>> {
    let mut file = File::open(path)?;
    let (boxes, _) = top_level_boxes(&mut file)?;
    let Some(moov) = boxes.iter().find(|b| &b.kind == b"moov") else {
        return Ok(None);
    };
    file.seek(SeekFrom::Start(moov.offset + 8))?;
    let mut head = [0u8; 8 + 4 + 28];
    file.read_exact(&mut head)?;
    if &head[4..8] != b"mvhd" {
        return Ok(None);
    }
    let body = &head[8..];
    let (timescale, duration) = if body[0] == 1 {
        let ts = u32::from_be_bytes(body[20..24].try_into().expect("4 bytes")) as u64;
        let d = u64::from_be_bytes(body[24..32].try_into().expect("8 bytes"));
        (ts, d)
    } else {
        let ts = u32::from_be_bytes(body[12..16].try_into().expect("4 bytes")) as u64;
        let d = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as u64;
        (ts, d)
    };
    if timescale == 0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_nanos(
        (duration as u128 * 1_000_000_000 / timescale as u128) as u64,
    )))
}

/// Whether `moov` comes before `mdat` (players can start before the download ends).
pub fn moov_before_mdat(path: &Path) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let (boxes, _) = top_level_boxes(&mut file)?;
    let pos = |k: &[u8; 4]| boxes.iter().position(|b| &b.kind == k);
    Ok(matches!((pos(b"moov"), pos(b"mdat")), (Some(m), Some(d)) if m < d))
}

/// Turns the fragmented recording at `fragmented` into the progressive MP4 at `out`.
/// Blocking: run it on a blocking thread.
pub fn finalize(fragmented: &Path, out: &Path) -> Result<Finalized, Error> {
    let mut file = File::open(fragmented).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::Empty,
        _ => io_err(fragmented)(e),
    })?;
    let (boxes, len) = top_level_boxes(&mut file).map_err(io_err(fragmented))?;
    let complete = complete_length(&boxes).ok_or(Error::Empty)?;
    if boxes.last().map_or(0, |b| b.offset + b.size) < len {
        // A crash cut the last fragment short.
        tracing::warn!(path = %fragmented.display(), kept = complete, dropped = len - complete,
            "recording had an incomplete last fragment; keeping everything before it");
    }
    if complete < len {
        // Also drops a trailing index (mfra) that the remux does not need.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(fragmented)
            .map_err(io_err(fragmented))?;
        f.set_len(complete).map_err(io_err(fragmented))?;
    }
    let (video, audio) = tracks(&mut file, &boxes).map_err(io_err(fragmented))?;
    let video_parser = match video {
        true => video_parser(&mut file, &boxes).map_err(io_err(fragmented))?,
        false => "h264parse",
    };
    drop(file);
    if !video && !audio {
        return Err(Error::Empty);
    }
    let part = out.with_extension("mp4.part");
    if let Err(e) = remux(fragmented, &part, video, audio, video_parser) {
        // A half-written output (a full disk) must not keep taking space.
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, out).map_err(io_err(out))?;
    let bytes = std::fs::metadata(out).map_err(io_err(out))?.len();
    let duration = mp4_duration(out).map_err(io_err(out))?.unwrap_or_default();
    Ok(Finalized { bytes, duration })
}

/// The remux pipeline's description (no re-encode).
///
/// qtdemux reads the file in order, one 2 s track fragment at a time, so the muxer sees one
/// track run ahead of the other by a whole fragment: the queues must hold more than a fragment
/// (the default 1 s deadlocked on a recording cut short by a crash). They are bounded in bytes,
/// not time, because a fragment of a long-GOP publisher can last as long as its GOP.
pub fn remux_description(
    input: &Path,
    output: &Path,
    video: bool,
    audio: bool,
    video_parser: &'static str,
) -> String {
    copy_description(
        "remux",
        input,
        output,
        video,
        audio,
        Parse::Yes {
            video: video_parser,
        },
    )
}

/// Whether the copy pipeline parses what the demuxer gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parse {
    /// `h264parse` (or `h265parse`, as `video` says) / `aacparse` between demuxer and muxer: the
    /// fragmented recording written live is read back through them. The parser puts the
    /// parameter sets in band into the first keyframe it passes.
    Yes { video: &'static str },
    /// The samples go into the muxer byte for byte (clips of a finalised recording: every packet
    /// of a clip is a packet of the recording).
    No,
}

/// `filesrc ! qtdemux`, then per track `queue` (`! h264parse|aacparse` with [`Parse::Yes`]),
/// into `mp4mux faststart=true ! filesink`: a copy of an MP4's H.264 and AAC without
/// re-encoding. Elements are named `{role}-src`, `{role}-demux`, `{role}-queue-video`,
/// `{role}-parse-video`, `{role}-mux`, `{role}-sink` (and `-audio`).
pub(crate) fn copy_description(
    role: &str,
    input: &Path,
    output: &Path,
    video: bool,
    audio: bool,
    parse: Parse,
) -> String {
    let q = |p: &Path| {
        format!(
            "\"{}\"",
            p.to_string_lossy()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        )
    };
    let mut parts = vec![
        format!(
            "filesrc name={role}-src location={} ! qtdemux name={role}-demux",
            q(input)
        ),
        format!(
            "mp4mux name={role}-mux faststart=true ! filesink name={role}-sink location={}",
            q(output)
        ),
    ];
    // Without a parser the muxer's pad must be named (a template name fails delayed linking).
    let parser = |kind: &str, element: &str| match parse {
        Parse::Yes { .. } => format!("{element} name={role}-parse-{kind} ! {role}-mux.{kind}_%u"),
        Parse::No => format!("{role}-mux.{kind}_0"),
    };
    if video {
        parts.push(format!(
            "{role}-demux.video_0 ! queue name={role}-queue-video max-size-time=0 max-size-buffers=0 \
             max-size-bytes={REMUX_QUEUE_BYTES} ! {}",
            parser(
                "video",
                match parse {
                    Parse::Yes { video } => video,
                    Parse::No => "",
                }
            )
        ));
    }
    if audio {
        parts.push(format!(
            "{role}-demux.audio_0 ! queue name={role}-queue-audio max-size-time=0 max-size-buffers=0 \
             max-size-bytes={REMUX_QUEUE_BYTES} ! {}",
            parser("audio", "aacparse")
        ));
    }
    parts.join("\n")
}

fn remux(
    input: &Path,
    output: &Path,
    video: bool,
    audio: bool,
    video_parser: &'static str,
) -> Result<(), Error> {
    let description = remux_description(input, output, video, audio, video_parser);
    let timeout = remux_timeout(std::fs::metadata(input).map_or(0, |m| m.len()));
    run_to_eos(&description, timeout)
}

/// Runs the pipeline of `description` until end-of-stream, at most `timeout`.
fn run_to_eos(description: &str, timeout: Duration) -> Result<(), Error> {
    let failed = |e: &dyn std::fmt::Display| Error::Remux(e.to_string());
    let pipeline = gst::parse::launch(description).map_err(|e| failed(&e))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| Error::Remux("pipeline without bus".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| failed(&e))?;
    let result = match wait_for_eos(&bus, timeout) {
        Ended::Eos => Ok(()),
        Ended::Error(text) => Err(Error::Remux(text)),
        Ended::TimedOut => Err(Error::Remux(format!("timed out after {timeout:?}"))),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// How a copy pipeline ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ended {
    Eos,
    /// The first error on the bus, as [`bus_error_text`] writes it.
    Error(String),
    TimedOut,
}

/// Joins `dir/piece*.mp4` (progressive MP4s with the tracks of the first, in name order) into the
/// MP4 `out` on one timeline, packets copied (`splitmuxsrc` plays the pieces one after the
/// other). Blocking.
pub fn join(dir: &Path, out: &Path, timeout: Duration) -> Result<(), Error> {
    let first = dir.join("piece00000.mp4");
    let (video, audio) = tracks_in(&first).map_err(io_err(&first))?;
    let q = |p: &Path| format!("\"{}\"", p.to_string_lossy().replace('"', "\\\""));
    let mut description = vec![
        format!(
            "splitmuxsrc name=join-src location={}",
            q(&dir.join("piece*.mp4"))
        ),
        format!(
            "mp4mux name=join-mux faststart=true ! filesink name=join-sink location={}",
            q(out)
        ),
    ];
    for (kind, present) in [("video", video), ("audio", audio)] {
        if present {
            description.push(format!(
                "join-src.{kind}_0 ! queue name=join-queue-{kind} max-size-time=0 max-size-buffers=0 \
                 max-size-bytes={REMUX_QUEUE_BYTES} ! join-mux.{kind}_0"
            ));
        }
    }
    run_to_eos(&description.join("\n"), timeout)
}

/// Waits for end-of-stream or the first error on `bus`, at most `timeout`.
pub(crate) fn wait_for_eos(bus: &gst::Bus, timeout: Duration) -> Ended {
    let timeout = gst::ClockTime::from_nseconds(timeout.as_nanos().min(u64::MAX as u128) as u64);
    match bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error]) {
        Some(msg) => match msg.view() {
            gst::MessageView::Eos(_) => Ended::Eos,
            gst::MessageView::Error(err) => Ended::Error(bus_error_text(err)),
            _ => Ended::Error("unexpected message".into()),
        },
        None => Ended::TimedOut,
    }
}

/// A bus error as `element path: message (debug text)`.
pub(crate) fn bus_error_text(err: &gst::message::Error) -> String {
    format!(
        "{}: {} ({})",
        err.src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_default(),
        err.error(),
        err.debug().map(|d| d.to_string()).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body_len: usize) -> Vec<u8> {
        let mut v = ((body_len + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend(std::iter::repeat_n(0u8, body_len));
        v
    }

    #[test]
    fn truncated_tail_is_cut_after_the_last_complete_fragment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.fmp4");
        let mut bytes = [
            boxed(b"ftyp", 8),
            boxed(b"moov", 32),
            boxed(b"moof", 16),
            boxed(b"mdat", 100),
        ]
        .concat();
        let complete = bytes.len() as u64;
        bytes.extend(boxed(b"moof", 16));
        let mut partial = boxed(b"mdat", 100);
        partial.truncate(50);
        bytes.extend(partial);
        std::fs::write(&path, &bytes).unwrap();
        let mut f = File::open(&path).unwrap();
        let (boxes, len) = top_level_boxes(&mut f).unwrap();
        assert_eq!(len, bytes.len() as u64);
        assert_eq!(complete_length(&boxes), Some(complete));
    }

    /// A fragment of one track, `len` bytes of media.
    fn fragment(track: u32, len: usize) -> Vec<u8> {
        let mut tfhd = 16u32.to_be_bytes().to_vec();
        tfhd.extend_from_slice(b"tfhd");
        tfhd.extend_from_slice(&[0; 4]);
        tfhd.extend_from_slice(&track.to_be_bytes());
        let mut moof = ((tfhd.len() + 8) as u32).to_be_bytes().to_vec();
        moof.extend_from_slice(b"moof");
        moof.extend(tfhd);
        [moof, boxed(b"mdat", len)].concat()
    }

    /// A recording cut off while written holds one track a fragment further than the other: it
    /// is taken up to where both have come as far.
    #[test]
    fn a_recording_is_balanced_where_every_track_has_as_many_fragments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.fmp4");
        let mut moov = 24u32.to_be_bytes().to_vec();
        moov.extend_from_slice(b"moov");
        for _ in 0..2 {
            moov.extend_from_slice(&8u32.to_be_bytes());
            moov.extend_from_slice(b"trak");
        }
        let head = [boxed(b"ftyp", 8), moov].concat();
        let pair = [fragment(1, 100), fragment(2, 30)].concat();
        let balanced = (head.len() + pair.len()) as u64;
        let file = [head.clone(), pair.clone(), fragment(1, 100)].concat();
        std::fs::write(&path, &file).unwrap();
        assert_eq!(balanced_len(&path).unwrap(), balanced);
        std::fs::write(&path, [file, fragment(2, 30)].concat()).unwrap();
        assert_eq!(balanced_len(&path).unwrap(), balanced + pair.len() as u64);
        std::fs::write(&path, [head, fragment(1, 100)].concat()).unwrap();
        assert_eq!(balanced_len(&path).unwrap(), 0, "one track only so far");
    }

    /// A box of `kind` around `body`.
    fn wrap(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        [&((body.len() + 8) as u32).to_be_bytes()[..], kind, body].concat()
    }

    /// A progressive MP4's `moov` (timescale 3000) with a video track whose edit list is
    /// `edits` (duration, media time) and a sound track that starts at once.
    fn with_edits(dir: &Path, edits: &[(u32, i32)]) -> std::path::PathBuf {
        let mvhd = wrap(
            b"mvhd",
            &[&[0u8; 12][..], &3000u32.to_be_bytes(), &[0u8; 84]].concat(),
        );
        let track = |handler: &[u8; 4], edits: &[(u32, i32)]| {
            let hdlr = wrap(b"hdlr", &[&[0u8; 8][..], handler, &[0u8; 12]].concat());
            let mut elst = vec![0u8; 4];
            elst.extend((edits.len() as u32).to_be_bytes());
            for (duration, media_time) in edits {
                elst.extend(duration.to_be_bytes());
                elst.extend(media_time.to_be_bytes());
                elst.extend(0x0001_0000u32.to_be_bytes());
            }
            let edts = wrap(b"edts", &wrap(b"elst", &elst));
            wrap(b"trak", &[edts, wrap(b"mdia", &hdlr)].concat())
        };
        let moov = wrap(
            b"moov",
            &[mvhd, track(b"soun", &[(12_000, 0)]), track(b"vide", edits)].concat(),
        );
        let path = dir.join("r.mp4");
        std::fs::write(
            &path,
            [boxed(b"ftyp", 8), moov, boxed(b"mdat", 16)].concat(),
        )
        .unwrap();
        path
    }

    /// Where two joined sessions meet is placed by when the later one shows its first picture:
    /// mp4mux writes a video track that starts after its sound (B-frames) as an empty edit.
    #[test]
    fn the_first_picture_is_after_the_empty_edits_of_the_video() {
        let dir = tempfile::tempdir().unwrap();
        let delayed = with_edits(dir.path(), &[(201, -1), (12_100, 201)]);
        assert_eq!(first_picture(&delayed).unwrap(), Duration::from_millis(67));
        let at_once = with_edits(dir.path(), &[(12_000, 200)]);
        assert_eq!(first_picture(&at_once).unwrap(), Duration::ZERO);
    }

    #[test]
    fn a_file_without_any_fragment_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.fmp4");
        std::fs::write(&path, [boxed(b"ftyp", 8), boxed(b"moov", 32)].concat()).unwrap();
        assert!(matches!(
            finalize(&path, &dir.path().join("r.mp4")),
            Err(Error::Empty)
        ));
        assert!(matches!(
            finalize(&dir.path().join("none"), &dir.path().join("r.mp4")),
            Err(Error::Empty)
        ));
    }
}
