//! The files the outputs wrote, as read back for viewers (segments, init sections, the playlists an
//! ended stream left), kept in memory: the newest segments are fetched by every viewer, and reading
//! 1.5 MB from disk per request cost about as much as sending it.
//!
//! An entry holds while the file is the one it was read from: the same inode, length and
//! modification time, checked on every request (a file still being written, or replaced by a
//! rename, is read again). The oldest entries go first once [`BUDGET_BYTES`] is used.
//!
//! A file no longer on the disk is read from object storage, when there is one (an ended stream's
//! media once archived, see `crate::storage`). Media objects never change, so they are kept as
//! read; playlists and notes do while their stream is live (its node puts them every few
//! seconds), so they are kept for [`LISTS_KEPT`] only.
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::output::playlist::is_newer_list;

/// Bytes of files kept, over all streams: about forty 2 s segments of 6 Mb/s.
pub const BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Files larger than this are read for each request and not kept.
const LARGEST_KEPT: usize = BUDGET_BYTES / 8;
/// How long a playlist or note read from the bucket is kept (the live upload puts a live
/// stream's every 3 s).
const LISTS_KEPT: Duration = Duration::from_secs(2);

/// What identifies the contents of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl Version {
    fn of(m: &std::fs::Metadata) -> Self {
        Version {
            inode: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        }
    }
}

/// Where a kept file was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Disk(Version),
    /// The bucket: kept for good (`None`) or until then.
    Bucket(Option<Instant>),
}

#[derive(Default)]
struct Entries {
    /// By path and whether from the bucket (a list may be kept from both: see
    /// [`FileCache::read_newest`]).
    files: HashMap<(PathBuf, bool), (Origin, Bytes)>,
    /// The paths in `files`, oldest first.
    order: VecDeque<(PathBuf, bool)>,
    bytes: usize,
}

/// See the module documentation. One per server.
#[derive(Default)]
pub struct FileCache {
    entries: Mutex<Entries>,
    /// Where files no longer on the disk are (`None`: nowhere).
    storage: Option<crate::storage::Storage>,
}

impl FileCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A cache that reads files gone from the disk from `storage` (when that is a bucket).
    pub fn with_storage(storage: crate::storage::Storage) -> Self {
        FileCache {
            entries: Mutex::default(),
            storage: storage.is_remote().then_some(storage),
        }
    }

    /// The contents of the file at `path` (from the bucket when it is no longer on the disk).
    pub async fn read(&self, path: &Path) -> io::Result<Bytes> {
        let version = match tokio::fs::metadata(path).await {
            Ok(m) => Version::of(&m),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.storage.is_some() => {
                return self.read_stored(path, e).await;
            }
            Err(e) => return Err(e),
        };
        if let Some((Origin::Disk(v), bytes)) = self.lock().files.get(&(path.to_path_buf(), false))
            && *v == version
        {
            return Ok(bytes.clone());
        }
        let bytes = Bytes::from(tokio::fs::read(path).await?);
        // Kept only when nothing changed while reading it.
        let after = Version::of(&tokio::fs::metadata(path).await?);
        if after == version && after.len == bytes.len() as u64 && bytes.len() <= LARGEST_KEPT {
            self.keep(path, Origin::Disk(version), bytes.clone());
        }
        Ok(bytes)
    }

    /// A playlist of an ended stream: this disk's copy or the bucket's, whichever is newer
    /// ([`is_newer_list`]): a node whose session went on elsewhere (it died, or lost its lease)
    /// keeps its copy as it was then, and the bucket has the stream as it ended. A bucket that
    /// does not answer leaves the disk's.
    pub async fn read_newest(&self, path: &Path) -> io::Result<Bytes> {
        let here = self.read(path).await?;
        if self.storage.is_none() || !tokio::fs::try_exists(path).await.unwrap_or(false) {
            // No bucket, or it came from there already.
            return Ok(here);
        }
        match self.read_stored(path, io::ErrorKind::NotFound.into()).await {
            Ok(stored) if is_newer_list(&stored, &here) => Ok(stored),
            _ => Ok(here),
        }
    }

    async fn read_stored(&self, path: &Path, not_found: io::Error) -> io::Result<Bytes> {
        if let Some((Origin::Bucket(until), bytes)) =
            self.lock().files.get(&(path.to_path_buf(), true))
            && until.is_none_or(|until| Instant::now() < until)
        {
            return Ok(bytes.clone());
        }
        let Some(storage) = &self.storage else {
            return Err(not_found);
        };
        let object = match storage.get_stored(path, None).await {
            Ok(Some(object)) => object.bytes().await.map(Some).map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        match object {
            Ok(Some(bytes)) => {
                if bytes.len() <= LARGEST_KEPT {
                    let until = changes(path).then(|| Instant::now() + LISTS_KEPT);
                    self.keep(path, Origin::Bucket(until), bytes.clone());
                }
                Ok(bytes)
            }
            Ok(None) => Err(not_found),
            Err(e) => Err(io::Error::other(e)),
        }
    }

    fn keep(&self, path: &Path, origin: Origin, bytes: Bytes) {
        let mut e = self.lock();
        let added = bytes.len();
        let key = (path.to_path_buf(), matches!(origin, Origin::Bucket(_)));
        if let Some((_, old)) = e.files.insert(key.clone(), (origin, bytes)) {
            e.bytes -= old.len();
        } else {
            e.order.push_back(key);
        }
        e.bytes += added;
        while e.bytes > BUDGET_BYTES {
            let Some(oldest) = e.order.pop_front() else {
                break;
            };
            if let Some((_, old)) = e.files.remove(&oldest) {
                e.bytes -= old.len();
            }
        }
    }
}

/// Whether the object at `path` may change: a playlist or a note (a live stream's node puts them
/// again as they grow), not media.
fn changes(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "m3u8" || e == "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_and_notes_change_media_does_not() {
        for name in ["event.m3u8", "public.m3u8", "public-media.json"] {
            assert!(changes(Path::new(name)), "{name}");
        }
        for name in ["seg00001.ts", "seg00001.m4s", "init.mp4", "thumbnail.jpg"] {
            assert!(!changes(Path::new(name)), "{name}");
        }
    }

    #[tokio::test]
    async fn a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg00000.ts");
        let cache = FileCache::default();
        std::fs::write(&path, b"first").unwrap();
        assert_eq!(&cache.read(&path).await.unwrap()[..], b"first");
        // Still being written: longer now.
        std::fs::write(&path, b"first and more").unwrap();
        assert_eq!(&cache.read(&path).await.unwrap()[..], b"first and more");
        // Replaced by a rename with contents of the same length.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, b"second and mor").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(&cache.read(&path).await.unwrap()[..], b"second and mor");
        std::fs::remove_file(&path).unwrap();
        assert!(cache.read(&path).await.is_err(), "a removed file is gone");
    }

    #[tokio::test]
    async fn the_oldest_files_go_first_beyond_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::default();
        let size = LARGEST_KEPT;
        let files = BUDGET_BYTES / size + 1;
        for i in 0..files {
            let path = dir.path().join(format!("seg{i:05}.ts"));
            std::fs::write(&path, vec![i as u8; size]).unwrap();
            cache.read(&path).await.unwrap();
        }
        let e = cache.lock();
        assert!(e.bytes <= BUDGET_BYTES);
        assert_eq!(e.files.len(), files - 1);
        assert!(
            !e.files
                .contains_key(&(dir.path().join("seg00000.ts"), false))
        );
    }
}
