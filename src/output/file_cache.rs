//! The files the outputs wrote, as read back for viewers (segments, init sections, the playlists an
//! ended stream left), kept in memory: the newest segments are fetched by every viewer, and reading
//! 1.5 MB from disk per request cost about as much as sending it.
//!
//! An entry holds while the file is the one it was read from: the same inode, length and
//! modification time, checked on every request (a file still being written, or replaced by a
//! rename, is read again). The oldest entries go first once [`BUDGET_BYTES`] is used.
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;

/// Bytes of files kept, over all streams: about forty 2 s segments of 6 Mb/s.
pub const BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Files larger than this are read for each request and not kept.
const LARGEST_KEPT: usize = BUDGET_BYTES / 8;

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

#[derive(Default)]
struct Entries {
    files: HashMap<PathBuf, (Version, Bytes)>,
    /// The paths in `files`, oldest first.
    order: VecDeque<PathBuf>,
    bytes: usize,
}

/// See the module documentation. One per server.
#[derive(Default)]
pub struct FileCache {
    entries: Mutex<Entries>,
}

impl FileCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The contents of the file at `path`.
    pub async fn read(&self, path: &Path) -> io::Result<Bytes> {
        let version = Version::of(&tokio::fs::metadata(path).await?);
        if let Some((v, bytes)) = self.lock().files.get(path)
            && *v == version
        {
            return Ok(bytes.clone());
        }
        let bytes = Bytes::from(tokio::fs::read(path).await?);
        // Kept only when nothing changed while reading it.
        let after = Version::of(&tokio::fs::metadata(path).await?);
        if after == version && after.len == bytes.len() as u64 && bytes.len() <= LARGEST_KEPT {
            self.keep(path, version, bytes.clone());
        }
        Ok(bytes)
    }

    fn keep(&self, path: &Path, version: Version, bytes: Bytes) {
        let mut e = self.lock();
        let added = bytes.len();
        if let Some((_, old)) = e.files.insert(path.to_path_buf(), (version, bytes)) {
            e.bytes -= old.len();
        } else {
            e.order.push_back(path.to_path_buf());
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!e.files.contains_key(&dir.path().join("seg00000.ts")));
    }
}
