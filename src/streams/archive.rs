//! After a stream ended and its recording, public replay and clips are made: its finished media
//! goes to object storage (`crate::storage`), each file removed from the disk only once the
//! bucket holds it whole. Segments that went up while the stream was live
//! (`crate::storage::live`) are not uploaded again: the bucket is listed first, and a file it
//! holds with the same size is only removed from the disk. What stays on the disk, copied to the
//! bucket in their final form: the playlists and the small files that say which media is public
//! (read on every request of an ended stream's playlists), and the posters (the storefront asks
//! whether one exists for every listed stream).
//!
//! A failed upload is tried again with a growing wait until it succeeds or the server stops;
//! meanwhile everything is served from the disk. At the next start, ended streams whose
//! recording is still on the disk are archived again ([`pending`]).
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::output::hls::PUBLIC_MEDIA_FILE;
use crate::pipeline::spec::StreamPaths;
use crate::storage::Storage;
use crate::store::StreamId;

const RETRY_INITIAL: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Objects of one stream listed to see what is there already: a day of 2 s segments in four
/// renditions of both formats and their init sections is about 350 000.
const LISTED_MAX: usize = 1_000_000;

/// The files of an ended stream that go to the bucket, the large ones last: the recording, the
/// public replay, the clips, then the HLS media (segments and init sections of both formats).
/// The posters are copied and kept (see the module documentation).
pub fn files(paths: &StreamPaths) -> Vec<PathBuf> {
    let mut files = vec![paths.recording(), paths.public_replay()];
    files.extend(files_in(&paths.clips_dir(), |name| name.ends_with(".mp4")));
    for dir in [paths.hls_dir(), paths.low_latency_dir()] {
        for rendition in subdirs(&dir) {
            files.extend(files_in(&rendition, is_hls_media));
        }
    }
    files
}

/// The playlists and public-media notes of an ended stream (both formats): kept on the disk,
/// copied to the bucket.
pub fn playlists(paths: &StreamPaths) -> Vec<PathBuf> {
    let is_playlist = |name: &str| name.ends_with(".m3u8") || name == PUBLIC_MEDIA_FILE;
    let mut files = Vec::new();
    for dir in [paths.hls_dir(), paths.low_latency_dir()] {
        files.extend(files_in(&dir, is_playlist));
        for rendition in subdirs(&dir) {
            files.extend(files_in(&rendition, is_playlist));
        }
    }
    files
}

/// A segment or an init section (not a playlist, not the public-media notes).
fn is_hls_media(name: &str) -> bool {
    name.ends_with(".ts")
        || name.ends_with(".m4s")
        || name.starts_with("init") && name.ends_with(".mp4")
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

fn files_in(dir: &Path, wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name().to_str().is_some_and(&wanted))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Puts an ended stream's finished media into the bucket, retrying until it is all there or
/// `stopping()` says the server stops (the rest is archived at the next start). Nothing happens
/// on the local disk. Returns whether it is all there.
pub async fn archive(
    storage: &Storage,
    paths: &StreamPaths,
    id: &StreamId,
    stopping: impl Fn() -> bool,
) -> bool {
    if !storage.is_remote() {
        return false;
    }
    let mut wait = RETRY_INITIAL;
    loop {
        match archive_once(storage, paths).await {
            Ok((uploaded, skipped)) => {
                tracing::info!(stream = %id, uploaded, skipped, "media archived to object storage");
                return true;
            }
            Err(e) => {
                tracing::warn!(stream = %id, error = %e, retry_in = ?wait, "archiving to object storage failed; the files stay on disk");
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if stopping() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// One pass; returns how many media files were uploaded and how many were not (in the bucket
/// already, or gone).
async fn archive_once(
    storage: &Storage,
    paths: &StreamPaths,
) -> Result<(usize, usize), crate::storage::Error> {
    let stored: HashMap<String, u64> = storage
        .list(&paths.dir, LISTED_MAX)
        .await?
        .into_iter()
        .collect();
    let files = files(paths);
    let mut uploaded = 0;
    for file in &files {
        if storage.archive_unless_stored(file, &stored).await? {
            uploaded += 1;
        }
    }
    let mut kept = playlists(paths);
    kept.extend([paths.thumbnail(), paths.public_thumbnail()]);
    for file in &kept {
        storage.copy(file).await?;
    }
    Ok((uploaded, files.len() - uploaded))
}

/// Ended streams (of `ids`) whose recording is still on the disk: their archiving did not finish
/// before the server stopped.
pub fn pending(data_dir: &Path, ids: &[StreamId]) -> Vec<StreamId> {
    ids.iter()
        .filter(|id| StreamPaths::new(data_dir, id.as_str()).recording().exists())
        .cloned()
        .collect()
}
