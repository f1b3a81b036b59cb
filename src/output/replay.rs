//! The public replay: the public intervals of a finished recording back to back, cut without
//! re-encoding. What a stream's public may download and watch after the end; the recording
//! itself (rehearsal included) stays its owner's.
//!
//! Each interval is cut like a clip (`clips::cut`) and the pieces are joined with `splitmuxsrc`
//! (which plays files one after the other on one timeline) into `mp4mux faststart=true`. Every
//! packet of the replay is a packet of the recording.
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::clips;
use super::recording;
use super::visibility::PublicIntervals;

/// Asked start of a piece past its interval's start: the cut goes back to the keyframe at or
/// before what it is asked, and the interval starts on a keyframe that the recording may date
/// a rounding error later.
const START_GUARD: Duration = Duration::from_millis(50);
/// Asked end of a piece before its interval's end: a cut keeps frames decoded before its end,
/// and with B-frames the keyframe that starts the practice media after the interval is decoded
/// a few frames before it is shown (up to ~100 ms at 30 fps). The replay loses this much public
/// media at each interval's end instead.
const END_GUARD: Duration = Duration::from_millis(200);
/// How much later a piece is asked to start when the keyframe before its interval is in the
/// media before it (see [`cut_from_keyframe_in`]).
const LATER_STARTS: [Duration; 5] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// Asked start of a piece from the recording's start (see `cut_pieces`).
const FIRST_PIECE_START: Duration = Duration::from_millis(300);
/// How far before its interval a piece may start before it is refused: it would show practice.
const START_TOLERANCE: Duration = Duration::from_millis(100);
/// How far before the recording's end a single public interval from its start may end and still
/// be the whole recording: the last segment ends with the last frame pushed.
const WHOLE_TOLERANCE: Duration = Duration::from_millis(250);
/// How long joining the pieces may take.
const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the stream has no public media")]
    NothingPublic,
    #[error("cutting {start:?}..{end:?}: {source}")]
    Cut {
        start: Duration,
        end: Duration,
        source: clips::Error,
    },
    #[error("the cut of {start:?}.. would start at {keyframe:?}, in practice media")]
    StartsEarly { start: Duration, keyframe: Duration },
    #[error("replay i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("joining the pieces: {0}")]
    Join(String),
}

/// The written replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    pub bytes: u64,
    pub duration: Duration,
}

/// Writes the public intervals of the progressive MP4 `recording` to `out`. Blocking: run it on
/// a blocking thread. Intervals too short to hold media after the guards are left out.
pub fn build(recording: &Path, intervals: &PublicIntervals, out: &Path) -> Result<Built, Error> {
    let pieces_dir = out.with_extension("pieces");
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    let part = out.with_extension("mp4.part");
    if is_whole(recording, intervals) {
        // Public from start to end: the replay is the recording.
        let _ = std::fs::remove_file(&part);
        std::fs::hard_link(recording, &part)
            .or_else(|_| std::fs::copy(recording, &part).map(|_| ()))
            .map_err(io(&part))?;
        std::fs::rename(&part, out).map_err(io(out))?;
        return written(out);
    }
    let _ = std::fs::remove_dir_all(&pieces_dir);
    std::fs::create_dir_all(&pieces_dir).map_err(io(&pieces_dir))?;
    let result = cut_pieces(recording, intervals, &pieces_dir).and_then(|pieces| {
        match pieces.as_slice() {
            [] => return Err(Error::NothingPublic),
            [one] => std::fs::rename(one, &part).map_err(io(&part))?,
            _ => recording::join(&pieces_dir, &part, DEFAULT_JOIN_TIMEOUT)
                .map_err(|e| Error::Join(e.to_string()))?,
        }
        std::fs::rename(&part, out).map_err(io(out))?;
        written(out)
    });
    let _ = std::fs::remove_dir_all(&pieces_dir);
    result
}

fn written(out: &Path) -> Result<Built, Error> {
    let io = |source| Error::Io {
        path: out.display().to_string(),
        source,
    };
    let bytes = std::fs::metadata(out).map_err(io)?.len();
    let duration = recording::mp4_duration(out)
        .map_err(io)?
        .unwrap_or_default();
    Ok(Built { bytes, duration })
}

/// One interval from the recording's start to (within a few frames of) its end.
fn is_whole(recording: &Path, intervals: &PublicIntervals) -> bool {
    let Ok(Some(duration)) = recording::mp4_duration(recording) else {
        return false;
    };
    matches!(intervals.intervals_ms.as_slice(),
        [(0, end)] if Duration::from_millis(*end) + WHOLE_TOLERANCE >= duration)
}

/// Cuts `[from, to)` of `recording` into `piece` so that it starts on a keyframe inside the
/// interval that starts at `start`. A public interval starts on a keyframe (its first segment
/// does), but where two sessions of a stream were joined (`streams::sessions`) the later one's
/// first keyframe may lie a few frames after the start placed for it, and a cut goes back to the
/// keyframe before: into the session before, which may be practice. Then the piece is asked to
/// start a little later, up to a GOP, and starts on the later session's first keyframe.
/// `Ok(Err(keyframe))` when no keyframe inside the interval was found (the first cut's
/// keyframe): nothing is kept of it.
pub(super) fn cut_from_keyframe_in(
    recording: &Path,
    piece: &Path,
    start: Duration,
    from: Duration,
    to: Duration,
) -> Result<Result<clips::Cut, Duration>, clips::Error> {
    let mut first = None;
    let asks = std::iter::once(from).chain(LATER_STARTS.iter().map(|later| from + *later));
    for ask in asks.take_while(|ask| *ask < to) {
        let cut = clips::cut(recording, piece, ask, to)?;
        if cut.start + START_TOLERANCE >= start {
            return Ok(Ok(cut));
        }
        first.get_or_insert(cut.start);
    }
    let _ = std::fs::remove_file(piece);
    Ok(Err(first.unwrap_or_default()))
}

fn cut_pieces(
    recording: &Path,
    intervals: &PublicIntervals,
    dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let mut pieces = Vec::new();
    for &(start_ms, end_ms) in &intervals.intervals_ms {
        let (start, end) = (
            Duration::from_millis(start_ms),
            Duration::from_millis(end_ms),
        );
        // From the recording's start, anywhere in its first GOP: nothing is before it, and a cut
        // must not start before the first picture (whose time is the B-frame delay after 0).
        let from = if start.is_zero() {
            FIRST_PIECE_START
        } else {
            start + START_GUARD
        };
        let to = end.saturating_sub(END_GUARD);
        if to <= from {
            continue;
        }
        let piece = dir.join(format!("piece{:05}.mp4", pieces.len()));
        match cut_from_keyframe_in(recording, &piece, start, from, to) {
            Ok(Ok(_)) => pieces.push(piece),
            Ok(Err(keyframe)) => return Err(Error::StartsEarly { start, keyframe }),
            // The recording ends before this interval (its last segment outlived the file).
            Err(clips::Error::AfterEnd { .. } | clips::Error::NoMedia { .. }) => {}
            Err(source) => return Err(Error::Cut { start, end, source }),
        }
    }
    Ok(pieces)
}
