//! One recording across the sessions of a stream on several nodes (object storage configured).
//!
//! Each session's fragmented recording follows it into the bucket while it is written
//! (`storage::live::Follow`), in `recording-sessions/<session>/`, with the note of that session's
//! public media. A session is named by the fence of the lease its node held and the time it
//! started, so names sort in the order the sessions ran. A node that dies mid-stream leaves its
//! session there up to the last few seconds.
//!
//! The node that ends the stream joins the earlier sessions it finds there before its own; a
//! stream whose node died is made of them alone, by the node that ends it or takes over its
//! recording job. One recording, without re-encoding, and the sessions' public media placed where
//! each session starts in it, so that the public replay and the clips are cut from the joined
//! recording without practice media: a session's public media is cut where the next one starts
//! (what its note calls public past the end of what was kept of it would fall into the next
//! session, which may be practice), a later session's starts no earlier than its first picture,
//! and an earlier session without its note counts as not public. The session folders are deleted
//! from the bucket once the joined recording is archived.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::output::hls::PUBLIC_MEDIA_FILE;
use crate::output::recording::{self, Finalized};
use crate::output::visibility::PublicIntervals;
use crate::pipeline::spec::StreamPaths;
use crate::storage::live::{Follow, chunk_name, chunk_offset};
use crate::storage::{self, Storage};
use crate::store::SessionStart;

/// The folder of a stream's sessions (in the bucket; on the disk only while joining).
const SESSIONS_DIR: &str = "recording-sessions";
/// Objects of one stream's sessions listed: a day of 3 s chunks is about 30 000.
const LISTED_MAX: usize = 200_000;
/// How long joining the sessions may take (a copy of every packet).
const JOIN_TIMEOUT: Duration = Duration::from_secs(1800);

/// The name of a session of a stream: the fence of its node's lease and when it started.
pub fn name(fence: i64, started: chrono::DateTime<chrono::Utc>) -> String {
    format!("{fence:012}-{:013}", started.timestamp_millis().max(0))
}

/// When the session of that name started (ms since the epoch).
fn started_ms(name: &str) -> Option<i64> {
    name.split_once('-')?.1.parse().ok()
}

/// What of a session goes to the bucket while it is live.
pub fn follow(paths: &StreamPaths, session: &str) -> Follow {
    Follow {
        dir: paths.dir.join(SESSIONS_DIR).join(session),
        growing: paths.recording_fragmented(),
        complete_len: recording::complete_len,
        copies: vec![paths.hls_dir().join(PUBLIC_MEDIA_FILE)],
    }
}

/// A session's recording to join: copied down from the bucket, or this disk's own.
#[derive(Debug)]
pub struct Session {
    pub name: String,
    pub fragmented: PathBuf,
    pub public: PublicIntervals,
}

/// Beside the fragmented recording: which session wrote it (see [`fetch`]).
fn marker(paths: &StreamPaths) -> PathBuf {
    paths.dir.join("recording.session")
}

/// Forgets which session wrote this disk's fragmented recording (it is finalised).
pub fn forget_local(paths: &StreamPaths) {
    let _ = std::fs::remove_file(marker(paths));
}

/// Notes that the fragmented recording on this disk is `session`'s.
pub fn mark_local(paths: &StreamPaths, session: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(&paths.dir)?;
    std::fs::write(marker(paths), session)
}

/// The sessions of the stream that the bucket holds, oldest first: those before `before` (a
/// session name), or all of them. Each is copied down into `recording-sessions/<session>.fmp4`
/// beside the recording, its chunks taken up to the first one missing; except that, for all of
/// them, a session whose fragmented recording this disk still has (its node restarted) is read
/// from the disk, which holds its last seconds too.
pub async fn fetch(
    storage: &Storage,
    paths: &StreamPaths,
    before: Option<&str>,
) -> Result<Vec<Session>, storage::Error> {
    let dir = paths.dir.join(SESSIONS_DIR);
    let prefix = format!("{}/", storage.key(&dir)?);
    // This disk's session, if its recording is still here.
    let local = match before {
        Some(_) => None,
        None => {
            let name = tokio::fs::read_to_string(marker(paths)).await.ok();
            let recorded = tokio::fs::metadata(paths.recording_fragmented())
                .await
                .is_ok_and(|m| m.len() > 0);
            name.map(|n| n.trim().to_string()).filter(|_| recorded)
        }
    };
    // Session name → its chunks (offset → size) and whether its note is there.
    let mut sessions: BTreeMap<String, (BTreeMap<u64, u64>, bool)> = BTreeMap::new();
    if let Some(name) = &local {
        sessions.entry(name.clone()).or_default();
    }
    for (key, size) in storage.list(&dir, LISTED_MAX).await? {
        let Some((session, file)) = key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        if before.is_some_and(|current| session >= current) {
            continue;
        }
        let entry = sessions.entry(session.to_string()).or_default();
        match chunk_offset(file) {
            Some(offset) => {
                entry.0.insert(offset, size);
            }
            None if file == PUBLIC_MEDIA_FILE => entry.1 = true,
            None => {}
        }
    }
    let mut earlier = Vec::new();
    for (session, (chunks, noted)) in sessions {
        let folder = dir.join(&session);
        let fragmented = match local.as_deref() == Some(session.as_str()) {
            true => paths.recording_fragmented(),
            false => {
                let copy = dir.join(format!("{session}.fmp4"));
                if copy_chunks(storage, &folder, &chunks, &copy).await? == 0 {
                    continue;
                }
                copy
            }
        };
        let public = match noted {
            true => read_note(storage, &folder.join(PUBLIC_MEDIA_FILE)).await?,
            false => PublicIntervals::default(),
        };
        earlier.push(Session {
            name: session,
            fragmented,
            public,
        });
    }
    Ok(earlier)
}

/// Whether the bucket holds any session of the stream (its recording can be made from them).
pub async fn any(storage: &Storage, paths: &StreamPaths) -> bool {
    storage
        .list(&paths.dir.join(SESSIONS_DIR), 1)
        .await
        .is_ok_and(|found| !found.is_empty())
}

/// Writes the session's chunks that follow each other from offset 0 into `out`; returns the
/// bytes written.
async fn copy_chunks(
    storage: &Storage,
    folder: &Path,
    chunks: &BTreeMap<u64, u64>,
    out: &Path,
) -> Result<u64, storage::Error> {
    use tokio::io::AsyncWriteExt;
    let io = |source| storage::Error::Io {
        path: out.display().to_string(),
        source,
    };
    if let Some(parent) = out.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
    }
    let mut file = tokio::fs::File::create(out).await.map_err(io)?;
    let mut at = 0;
    for (&offset, &size) in chunks {
        if offset != at {
            tracing::warn!(session = %folder.display(), missing_at = at, "a chunk of an earlier session's recording is missing; keeping what is before it");
            break;
        }
        let Some(bytes) = storage.read(&folder.join(chunk_name(offset))).await? else {
            break;
        };
        if bytes.len() as u64 != size {
            break;
        }
        file.write_all(&bytes).await.map_err(io)?;
        at += size;
    }
    file.flush().await.map_err(io)?;
    Ok(at)
}

async fn read_note(storage: &Storage, path: &Path) -> Result<PublicIntervals, storage::Error> {
    let bytes = storage.read(path).await?.unwrap_or_default();
    Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        tracing::warn!(note = %path.display(), error = %e, "an earlier session's public media is unreadable; none of it is public");
        PublicIntervals::default()
    }))
}

/// The recording made of the `earlier` sessions and then the current one (`recording`, already
/// finalised; `current` its name and public media; replaced by the joined file), written to
/// `recording`, the public media of the whole, and where each session starts in it. Without a
/// current session (`None`: a stream whose node died, finished by another) it is made of the
/// earlier ones alone. Sessions that cannot be finalised (nothing whole in them) are left out.
/// Blocking.
///
/// The sessions are joined one at a time, and where each one starts in the joined file is read
/// back from it (the joined length less the session's own): `splitmuxsrc` starts a file at the
/// last timestamp of the one before, a few frames before that one's end, and the public
/// intervals must fall on the media they describe.
pub fn join(
    earlier: Vec<Session>,
    recording: &Path,
    current: Option<(String, PublicIntervals)>,
) -> Result<(Finalized, PublicIntervals, Vec<SessionStart>), recording::Error> {
    let Some(dir) = recording.parent().map(|d| d.join(SESSIONS_DIR)) else {
        return Err(recording::Error::Empty);
    };
    let result = join_in(&dir, earlier, recording, current);
    let _ = std::fs::remove_dir_all(&dir);
    let (public, starts) = result?;
    Ok((written(recording)?, public, starts))
}

fn join_in(
    dir: &Path,
    earlier: Vec<Session>,
    recording: &Path,
    current: Option<(String, PublicIntervals)>,
) -> Result<(PublicIntervals, Vec<SessionStart>), recording::Error> {
    let pieces = dir.join("pieces");
    let _ = std::fs::remove_dir_all(&pieces);
    std::fs::create_dir_all(&pieces).map_err(io_err(&pieces))?;
    let (joined, next) = (pieces.join("piece00000.mp4"), pieces.join("piece00001.mp4"));
    let part = pieces.join("joined.mp4.part");
    let mut sessions: Vec<Placed> = Vec::new();
    let mut starts: Vec<SessionStart> = Vec::new();
    let sources = earlier
        .into_iter()
        .map(|s| (Source::Fragmented(s.fragmented), s.name, s.public))
        .chain(
            current
                .map(|(name, public)| (Source::Finalised(recording.to_path_buf()), name, public)),
        );
    for (source, name, public) in sources {
        let into = if sessions.is_empty() { &joined } else { &next };
        let added = match &source {
            Source::Fragmented(fragmented) => piece_of(fragmented, into).inspect_err(|e| {
                tracing::warn!(session = %name, error = %e, "an earlier session's recording is left out")
            }),
            // A link: the joined file replaces `path` by a rename in the end.
            Source::Finalised(path) => std::fs::hard_link(path, into)
                .or_else(|_| std::fs::copy(path, into).map(|_| ()))
                .map_err(io_err(into))
                .and_then(|()| length(into)),
        };
        let length_of_it = match (added, &source) {
            (Ok(length), _) => length,
            (Err(e), Source::Finalised(_)) => return Err(e),
            (Err(_), Source::Fragmented(..)) => continue,
        };
        let first_picture = recording::first_picture(into).map_err(io_err(into))?;
        let at = if sessions.is_empty() {
            Duration::ZERO
        } else {
            recording::join(&pieces, &part, JOIN_TIMEOUT)?;
            std::fs::rename(&part, &joined).map_err(io_err(&joined))?;
            std::fs::remove_file(&next).map_err(io_err(&next))?;
            length(&joined)?.saturating_sub(length_of_it)
        };
        if let Some(started_ms) = started_ms(&name) {
            starts.push(SessionStart {
                started_ms,
                at_ms: u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
            });
        }
        sessions.push(Placed {
            starts: at,
            first_picture,
            public,
        });
    }
    if sessions.is_empty() {
        return Err(recording::Error::Empty);
    }
    let total = length(&joined)?;
    std::fs::rename(&joined, recording).map_err(io_err(recording))?;
    Ok((one_timeline(&sessions, total), starts))
}

/// Where a session's recording comes from.
enum Source {
    /// An earlier session's fragmented recording.
    Fragmented(PathBuf),
    /// The current session's, finalised.
    Finalised(PathBuf),
}

/// Finalises an earlier session's recording into `piece`, cut where all its tracks have come as
/// far (see `recording::balanced_len`). Returns the piece's length.
fn piece_of(fragmented: &Path, piece: &Path) -> Result<Duration, recording::Error> {
    let balanced = recording::balanced_len(fragmented).map_err(io_err(fragmented))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(fragmented)
        .and_then(|f| f.set_len(balanced))
        .map_err(io_err(fragmented))?;
    recording::finalize(fragmented, piece)?;
    length(piece)
}

fn length(path: &Path) -> Result<Duration, recording::Error> {
    Ok(recording::mp4_duration(path)
        .map_err(io_err(path))?
        .unwrap_or_default())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> recording::Error + '_ {
    move |source| recording::Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn written(path: &Path) -> Result<Finalized, recording::Error> {
    Ok(Finalized {
        bytes: std::fs::metadata(path).map_err(io_err(path))?.len(),
        duration: length(path)?,
    })
}

/// A session in the joined recording.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Where it starts in the joined recording.
    pub starts: Duration,
    /// When its first picture is shown, from its start (its B-frame delay: until then the joined
    /// recording still shows the session before).
    pub first_picture: Duration,
    /// Its public media on its own timeline.
    pub public: PublicIntervals,
}

/// The public media of sessions joined one after the other (the joined recording is `total`
/// long): each session's intervals moved to where it starts and cut where the next one starts.
/// A later session's public media starts at its first picture at the earliest. Between a later
/// session's start and its first picture the joined recording shows the session before, and
/// plays the later one's first sound: public only when the session before is public up to its
/// end and the later one from its start.
pub fn one_timeline(sessions: &[Placed], total: Duration) -> PublicIntervals {
    let mut whole = PublicIntervals::default();
    for (i, s) in sessions.iter().enumerate() {
        let next = sessions.get(i + 1);
        let room = next.map_or(total, |n| n.starts).saturating_sub(s.starts);
        let public_from_its_start = |n: &Placed| {
            n.public
                .intervals_ms
                .first()
                .is_some_and(|&(start, _)| start == 0)
        };
        let seam = next
            .filter(|n| public_from_its_start(n))
            .map_or(Duration::ZERO, |n| n.first_picture);
        let first = if i == 0 {
            Duration::ZERO
        } else {
            s.first_picture
        };
        for &(start, end) in &s.public.intervals_ms {
            let start = Duration::from_millis(start).max(first).min(room);
            let end = match Duration::from_millis(end) {
                end if end >= room => room + seam,
                end => end,
            };
            whole.add(s.starts + start, s.starts + end);
        }
    }
    whole
}

/// Deletes the stream's session folders from the bucket (the joined recording replaces them).
pub async fn forget(storage: &Storage, paths: &StreamPaths) -> Result<usize, storage::Error> {
    let dir = paths.dir.join(SESSIONS_DIR);
    let prefix = format!("{}/", storage.key(&dir)?);
    let mut deleted = 0;
    for (key, _) in storage.list(&dir, LISTED_MAX).await? {
        if let Some(rest) = key.strip_prefix(&prefix) {
            storage.delete(&dir.join(rest)).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(intervals: &[(u64, u64)]) -> PublicIntervals {
        PublicIntervals {
            intervals_ms: intervals.to_vec(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn placed(starts: u64, first_picture: u64, intervals: &[(u64, u64)]) -> Placed {
        Placed {
            starts: ms(starts),
            first_picture: ms(first_picture),
            public: public(intervals),
        }
    }

    #[test]
    fn a_session_name_says_when_it_started() {
        let started = chrono::DateTime::from_timestamp_millis(1_800_000_123_456).unwrap();
        assert_eq!(started_ms(&name(42, started)), Some(1_800_000_123_456));
        assert_eq!(started_ms("garbage"), None);
    }

    #[test]
    fn sessions_follow_each_other_on_one_timeline() {
        let whole = one_timeline(
            &[
                placed(0, 67, &[(0, 10_000)]),
                placed(9_900, 67, &[(0, 6_000)]),
            ],
            ms(15_967),
        );
        assert_eq!(
            whole,
            public(&[(0, 15_900)]),
            "public throughout: one interval, across the seam"
        );
        let whole = one_timeline(
            &[
                placed(0, 67, &[(2_000, 4_000)]),
                placed(10_000, 67, &[(1_000, 3_000)]),
                placed(16_000, 67, &[]),
            ],
            ms(21_000),
        );
        assert_eq!(whole, public(&[(2_000, 4_000), (11_000, 13_000)]));
    }

    /// Before a later session's first picture the joined recording shows the session before: its
    /// public media starts at that picture; and a session public to its end reaches it only when
    /// the next one is public from its start.
    #[test]
    fn the_seam_is_public_only_when_both_sides_are() {
        let whole = one_timeline(
            &[placed(0, 67, &[]), placed(8_000, 67, &[(0, 6_000)])],
            ms(14_000),
        );
        assert_eq!(whole, public(&[(8_067, 14_000)]));
        let whole = one_timeline(
            &[
                placed(0, 67, &[(0, 8_000)]),
                placed(8_000, 100, &[(2_000, 6_000)]),
            ],
            ms(14_000),
        );
        assert_eq!(whole, public(&[(0, 8_000), (10_000, 14_000)]));
    }

    /// A session whose end was lost (its node died before its last chunk went up) is shorter
    /// than its note says: what the note calls public past where the next session starts is not
    /// the next session's.
    #[test]
    fn a_session_cut_short_shows_none_of_the_next_one() {
        let whole = one_timeline(
            &[
                placed(0, 67, &[(0, 11_000)]),
                placed(8_000, 67, &[(3_000, 6_000)]),
            ],
            ms(14_000),
        );
        assert_eq!(whole, public(&[(0, 8_000), (11_000, 14_000)]));
    }

    #[test]
    fn names_sort_in_the_order_sessions_ran() {
        let t = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        let mut names = [
            name(9, t(100)),
            name(10, t(50)),
            name(9, t(99)),
            name(100, t(1)),
        ];
        names.sort();
        assert_eq!(
            names,
            [
                name(9, t(99)),
                name(9, t(100)),
                name(10, t(50)),
                name(100, t(1))
            ]
        );
    }
}
