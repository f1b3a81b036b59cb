//! A live stream taken over from a node that died (several nodes on one database and one bucket):
//! the event lists of its earlier session are in the bucket (the live upload puts them there every
//! few seconds), not on this node's disk. They are copied down before the new session's outputs
//! are made, so that the new session continues them like a session after a restart does: the
//! numbering goes on (segment names never repeat), a discontinuity marks the new session, and the
//! earlier segments, listed still, are served from the bucket (`FileCache` reads what the disk
//! lacks from there).
//!
//! Where this disk has its own copy (it owned the stream before, or it restarted), the
//! newer of the two is kept (`is_newer_list`: the one that names the later segment).
//!
//! The earlier owner uploads each segment as it closes but its event lists only every few seconds,
//! so the bucket may hold a segment or two past the last one listed. Those are listed too (at the
//! nominal segment duration, their real one being unknown here), so that the new session's names
//! start after them and never replace an object a viewer may have fetched. They go into the
//! owner's list only: whether they were public is not known, and practice media stays private.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::output::hls::{EVENT_PLAYLIST, PUBLIC_PLAYLIST, write_atomic_bytes};
use crate::output::playlist::{is_newer_list, segment_number};
use crate::pipeline::spec::{SOURCE_RENDITION, StreamPaths};
use crate::storage::Storage;

/// Copies the earlier session's event lists of `renditions` (in both the MPEG-TS and the
/// low-latency folders) from the bucket where they are newer than this disk's. Returns how many
/// files were copied; a bucket that does not answer is logged and leaves the disk as it is.
pub async fn fetch_event_lists(
    storage: &Storage,
    paths: &StreamPaths,
    renditions: impl IntoIterator<Item = String>,
    segment: Duration,
) -> usize {
    let names: Vec<String> = std::iter::once(SOURCE_RENDITION.to_string())
        .chain(renditions)
        .collect();
    let mut copied = 0;
    for dir in [paths.hls_dir(), paths.low_latency_dir()] {
        for name in &names {
            for file in [EVENT_PLAYLIST, PUBLIC_PLAYLIST] {
                match fetch_if_newer(storage, &dir.join(name).join(file)).await {
                    Ok(true) => copied += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(
                        rendition = %name,
                        file,
                        error = %e,
                        "could not read the earlier session's playlist from the bucket"
                    ),
                }
            }
            match list_unlisted(storage, &dir.join(name), segment).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    rendition = %name,
                    segments = n,
                    "listed the earlier session's segments uploaded after its last playlist"
                ),
                Err(e) => tracing::warn!(
                    rendition = %name,
                    error = %e,
                    "could not list the earlier session's segments in the bucket"
                ),
            }
        }
    }
    copied
}

/// Objects listed at most per rendition folder (a day of 2 s segments with their init sections).
const LISTED_AT_MOST: usize = 100_000;

/// Appends to the owner's event list in `dir` the segments the bucket holds right after its last
/// one (consecutive numbers only). Returns how many.
async fn list_unlisted(storage: &Storage, dir: &Path, segment: Duration) -> Result<usize, String> {
    let path = dir.join(EVENT_PLAYLIST);
    let Ok(text) = tokio::fs::read_to_string(&path).await else {
        return Ok(0);
    };
    let Some((number, extension)) = text.lines().rev().find_map(segment_number) else {
        return Ok(0);
    };
    let stored: HashSet<String> = storage
        .list(dir, LISTED_AT_MOST)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|(key, _)| Some(key.rsplit_once('/')?.1.to_string()))
        .collect();
    let added = unlisted(number, extension, &stored, segment);
    if added.is_empty() {
        return Ok(0);
    }
    let mut text = text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    for line in &added {
        text.push_str(line);
    }
    replace(path, text.into_bytes()).await?;
    Ok(added.len())
}

/// The entries for the stored segments numbered right after `last`, in order.
fn unlisted(
    last: u64,
    extension: &str,
    stored: &HashSet<String>,
    segment: Duration,
) -> Vec<String> {
    (last + 1..)
        .map(|n| format!("seg{n:05}.{extension}"))
        .take_while(|name| stored.contains(name))
        .map(|name| format!("#EXTINF:{:.3},\n{name}\n", segment.as_secs_f64()))
        .collect()
}

/// Writes the bucket's object for `path` over the local file when it is newer; true if it did.
async fn fetch_if_newer(storage: &Storage, path: &Path) -> Result<bool, String> {
    let Some(object) = storage.get(path, None).await.map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let bytes = object.bytes().await.map_err(|e| e.to_string())?;
    let local = tokio::fs::read(path).await.unwrap_or_default();
    if !is_newer_list(&bytes, &local) {
        return Ok(false);
    }
    replace(path.to_path_buf(), bytes.to_vec()).await?;
    Ok(true)
}

/// Replaces the file at `path` (its folder made if need be) the way the outputs write theirs.
async fn replace(path: PathBuf, bytes: Vec<u8>) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_atomic_bytes(&path, &bytes)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_consecutive_stored_segments_after_the_last_listed_are_added() {
        let stored: HashSet<String> =
            ["seg00003.ts", "seg00004.ts", "seg00006.ts", "init00004.mp4"]
                .into_iter()
                .map(String::from)
                .collect();
        let added = unlisted(2, "ts", &stored, Duration::from_secs(2));
        assert_eq!(
            added,
            [
                "#EXTINF:2.000,\nseg00003.ts\n",
                "#EXTINF:2.000,\nseg00004.ts\n"
            ]
        );
        assert!(unlisted(4, "ts", &stored, Duration::from_secs(2)).is_empty());
        assert!(unlisted(2, "m4s", &stored, Duration::from_secs(2)).is_empty());
    }
}
