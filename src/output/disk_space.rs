//! Free space under `data_dir`, where segments, recordings and the store are written: measured
//! every few seconds, shown in `/metrics` and, when low or gone, as a warning in every live
//! stream's health. Each crossing below the threshold (and each time the disk fills up) is
//! logged once, and so is the way back.
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Below this the disk counts as full: no segment of a small stream fits any more.
const FULL_BELOW_BYTES: u64 = 64 * 1024;

/// Bytes an unprivileged process may still write on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Whether the file system holding `dir` is full (what a write error there most likely means).
pub fn is_full(dir: &Path) -> bool {
    free_bytes(dir).is_ok_and(|free| free < FULL_BELOW_BYTES)
}

/// How the free space compares with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Low,
    Full,
}

impl Level {
    fn of(free: u64, low_below: u64) -> Level {
        if free < FULL_BELOW_BYTES {
            Level::Full
        } else if free < low_below {
            Level::Low
        } else {
            Level::Ok
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Level {
        match code {
            1 => Level::Low,
            2 => Level::Full,
            _ => Level::Ok,
        }
    }
}

/// The latest measurement of free space under `data_dir`.
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    low_below: u64,
    free: AtomicU64,
    level: std::sync::atomic::AtomicU8,
    measured: AtomicBool,
}

impl DiskSpace {
    /// `low_free_mib` = 0: only a full disk is reported.
    pub fn new(dir: &Path, low_free_mib: u64) -> Self {
        DiskSpace {
            dir: dir.to_path_buf(),
            low_below: low_free_mib.saturating_mul(1024 * 1024),
            free: AtomicU64::new(0),
            level: std::sync::atomic::AtomicU8::new(Level::Ok.code()),
            measured: AtomicBool::new(false),
        }
    }

    /// Free bytes at the last measurement (`None` before the first, or when it failed).
    pub fn free(&self) -> Option<u64> {
        self.measured
            .load(Ordering::Relaxed)
            .then(|| self.free.load(Ordering::Relaxed))
    }

    pub fn level(&self) -> Level {
        Level::from_code(self.level.load(Ordering::Relaxed))
    }

    /// What a live stream's health says about the disk, if anything.
    pub fn warning(&self) -> Option<String> {
        let free = self.free()?;
        let mib = free as f64 / (1024.0 * 1024.0);
        match self.level() {
            Level::Ok => None,
            Level::Low => Some(format!(
                "disk space low: {mib:.1} MiB free under data_dir (warning below {} MiB); \
                 segments and the recording stop when it is full",
                self.low_below / (1024 * 1024)
            )),
            Level::Full => Some(format!(
                "disk full: {mib:.1} MiB free under data_dir; new segments and the recording \
                 cannot be written"
            )),
        }
    }

    /// Measures once; logs when the level changed. Returns the new level.
    pub fn check(&self) -> Level {
        let free = match free_bytes(&self.dir) {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot measure free disk space");
                self.measured.store(false, Ordering::Relaxed);
                return self.level();
            }
        };
        self.free.store(free, Ordering::Relaxed);
        self.measured.store(true, Ordering::Relaxed);
        let level = Level::of(free, self.low_below);
        let before = Level::from_code(self.level.swap(level.code(), Ordering::Relaxed));
        let mib = free / (1024 * 1024);
        let low_mib = self.low_below / (1024 * 1024);
        let dir = self.dir.display();
        match (before, level) {
            (a, b) if a == b => {}
            (_, Level::Full) => {
                tracing::error!(%dir, free_bytes = free, "disk full under data_dir: segments and recordings cannot be written")
            }
            (Level::Ok, Level::Low) => {
                tracing::warn!(%dir, free_mib = mib, threshold_mib = low_mib, "disk space low under data_dir")
            }
            (Level::Full, Level::Low) => {
                tracing::warn!(%dir, free_mib = mib, threshold_mib = low_mib, "disk no longer full under data_dir, but space is still low")
            }
            (_, Level::Ok) => {
                tracing::info!(%dir, free_mib = mib, "disk space under data_dir back above the warning threshold")
            }
            _ => {}
        }
        level
    }

    /// Measures every `interval` until `stop`.
    pub async fn watch(self: std::sync::Arc<Self>, interval: Duration, stop: CancellationToken) {
        loop {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.check()).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_threshold_and_the_full_mark() {
        let mib = 1024 * 1024;
        assert_eq!(Level::of(10 * mib, 8 * mib), Level::Ok);
        assert_eq!(Level::of(8 * mib - 1, 8 * mib), Level::Low);
        assert_eq!(Level::of(FULL_BELOW_BYTES - 1, 8 * mib), Level::Full);
        assert_eq!(Level::of(10 * mib, 0), Level::Ok);
        assert_eq!(Level::of(0, 0), Level::Full);
    }

    #[test]
    fn free_space_of_an_existing_directory_is_measured() {
        let disk = DiskSpace::new(Path::new("/"), 0);
        assert_eq!(disk.free(), None);
        disk.check();
        assert!(disk.free().is_some());
        assert_eq!(disk.warning(), None);
    }
}
