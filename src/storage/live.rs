//! Live upload: while a stream is live, each segment and init section it closes goes to the
//! bucket at once, so that a server that dies mid-stream leaves everything up to its last closed
//! segment there (never one long upload at the end that a dead server leaves half done). Its
//! playlists follow at most every [`PLAYLISTS_EVERY`], after the segments they list.
//!
//! One [`LiveUpload`] per live stream owns a bounded queue and the one task that empties it, in
//! order. The media path only queues and never waits: when the queue is full (the bucket has not
//! answered for minutes), the file is left to the archive step at the stream's end, which uploads
//! whatever the bucket does not hold yet. A failed upload is logged, counted ([`UploadStats`])
//! and tried again after a growing wait, the files behind it waiting their turn; the local files
//! stay (and are served) whatever happens here. At the end ([`LiveUpload::close`]) what is queued
//! goes up with one try each; the rest is the archive step's.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Error, Storage};

/// Files a stream's queue holds: with 2 s segments in four renditions of both formats, about
/// four minutes of a bucket that does not answer.
pub const QUEUE: usize = 2048;
/// The stream's playlists go to the bucket at most this often (when they changed).
pub const PLAYLISTS_EVERY: Duration = Duration::from_secs(3);
/// The end of a stream waits this long at most for its queue to empty.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(20);
const RETRY_INITIAL: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Changed playlists remembered between two uploads (a stream has five files per rendition and
/// format at most).
const PLAYLISTS_KEPT: usize = 256;
/// Longest error message kept for health.
const ERROR_KEPT: usize = 300;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Live upload counters, of one stream or of the whole server.
#[derive(Debug, Default)]
pub struct UploadStats {
    waiting: AtomicU64,
    uploaded: AtomicU64,
    failures: AtomicU64,
    left: AtomicU64,
    /// The error of the latest attempt, `None` once one succeeded.
    failing: Mutex<Option<String>>,
}

/// What [`UploadStats`] say, for health and metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UploadReport {
    /// Segments and init sections queued or being uploaded.
    pub waiting: u64,
    /// Segments and init sections uploaded while live.
    pub uploaded: u64,
    /// Failed attempts (each retry counts; playlists too).
    pub failures: u64,
    /// Segments left to the archive step at the stream's end (the queue was full, or the bucket
    /// did not answer when the stream ended).
    pub left_to_the_end: u64,
    /// Why the latest attempt failed; `None` when it succeeded.
    pub failing: Option<String>,
}

impl UploadStats {
    pub fn report(&self) -> UploadReport {
        UploadReport {
            waiting: self.waiting.load(Ordering::Relaxed),
            uploaded: self.uploaded.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            left_to_the_end: self.left.load(Ordering::Relaxed),
            failing: lock(&self.failing).clone(),
        }
    }
}

/// The counters of one stream and of the server, changed together.
#[derive(Clone)]
struct Tally {
    stream: Arc<UploadStats>,
    server: Arc<UploadStats>,
}

impl Tally {
    fn each(&self, f: impl Fn(&UploadStats)) {
        f(&self.stream);
        f(&self.server);
    }

    fn queued(&self) {
        self.each(|s| {
            s.waiting.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// A queued file is done with: uploaded or left to the end.
    fn done(&self, uploaded: bool) {
        self.each(|s| {
            s.waiting.fetch_sub(1, Ordering::Relaxed);
            let counter = if uploaded { &s.uploaded } else { &s.left };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }

    fn succeeded(&self) {
        self.each(|s| *lock(&s.failing) = None);
    }

    fn failed(&self, e: &Error) {
        let mut message = e.to_string();
        if message.len() > ERROR_KEPT {
            let mut end = ERROR_KEPT;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        self.each(|s| {
            s.failures.fetch_add(1, Ordering::Relaxed);
            *lock(&s.failing) = Some(message.clone());
        });
    }
}

/// The live upload of one stream; see the module documentation.
pub struct LiveUpload {
    queue: mpsc::Sender<PathBuf>,
    /// Playlists written since they last went up.
    playlists: Arc<Mutex<BTreeSet<PathBuf>>>,
    tally: Tally,
    closing: CancellationToken,
    /// Warned that the queue was full (once per stream).
    overflowed: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LiveUpload {
    /// Starts the upload task of stream `id` (counted in `server` too).
    pub fn start(storage: Storage, server: Arc<UploadStats>, id: &str) -> LiveUpload {
        let (queue, files) = mpsc::channel(QUEUE);
        let tally = Tally {
            stream: Arc::default(),
            server,
        };
        let playlists = Arc::new(Mutex::new(BTreeSet::new()));
        let closing = CancellationToken::new();
        let uploader = Uploader {
            storage,
            tally: tally.clone(),
            closing: closing.clone(),
        };
        let task = tokio::spawn(
            uploader
                .run(files, playlists.clone())
                .instrument(tracing::info_span!("live_upload", stream = %id)),
        );
        LiveUpload {
            queue,
            playlists,
            tally,
            closing,
            overflowed: AtomicBool::new(false),
            task: Mutex::new(Some(task)),
        }
    }

    /// A segment or init section was closed (complete, never written again): queued for upload.
    /// Never waits.
    pub fn media_closed(&self, path: &Path) {
        if self.closing.is_cancelled() {
            // The stream is over: the archive step takes it.
            return;
        }
        self.tally.queued();
        if self.queue.try_send(path.to_path_buf()).is_err() {
            self.tally.done(false);
            if !self.overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(file = %path.display(), "live upload queue full (object storage does not keep up); the rest goes up when the stream ends");
            }
        }
    }

    /// A playlist was written: it goes up with the next batch of playlists.
    pub fn playlist_written(&self, path: &Path) {
        let mut changed = lock(&self.playlists);
        if changed.len() < PLAYLISTS_KEPT || changed.contains(path) {
            changed.insert(path.to_path_buf());
        }
    }

    /// This stream's counters.
    pub fn report(&self) -> UploadReport {
        self.tally.stream.report()
    }

    /// The stream ended: nothing more is queued; what is, goes up with one try each (the
    /// playlists are the archive step's). Returns at once; see [`LiveUpload::drained`].
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Waits until the task has finished after [`LiveUpload::close`] (at most [`DRAIN_LIMIT`];
    /// then it is stopped and the archive step uploads what it did not).
    pub async fn drained(&self) {
        self.close();
        let Some(mut task) = lock(&self.task).take() else {
            return;
        };
        if tokio::time::timeout(DRAIN_LIMIT, &mut task).await.is_err() {
            tracing::warn!("live upload did not finish in time; the rest goes up with the archive");
            task.abort();
        }
    }
}

impl Drop for LiveUpload {
    fn drop(&mut self) {
        self.closing.cancel();
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// The task that empties a stream's queue.
struct Uploader {
    storage: Storage,
    tally: Tally,
    closing: CancellationToken,
}

impl Uploader {
    async fn run(
        self,
        mut files: mpsc::Receiver<PathBuf>,
        playlists: Arc<Mutex<BTreeSet<PathBuf>>>,
    ) {
        let mut tick = tokio::time::interval(PLAYLISTS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether the bucket took the latest file (false only once the stream ended).
        let mut up = true;
        while up {
            up = tokio::select! {
                _ = self.closing.cancelled() => break,
                Some(file) = files.recv() => self.media(&file).await,
                _ = tick.tick() => self.playlists(&mut files, &playlists).await,
            };
        }
        // The end: one try each, and none after the first failure.
        while let Ok(file) = files.try_recv() {
            if up {
                up = self.media(&file).await;
            } else {
                self.tally.done(false);
            }
        }
    }

    /// Uploads a closed file, trying again after a growing wait until it is up or the stream
    /// ends (then it is left to the end). Returns whether it went up.
    async fn media(&self, file: &Path) -> bool {
        let mut wait = RETRY_INITIAL;
        loop {
            match self.storage.copy(file).await {
                Ok(()) => {
                    self.tally.succeeded();
                    self.tally.done(true);
                    return true;
                }
                Err(e) => {
                    self.tally.failed(&e);
                    if self.closing.is_cancelled() {
                        tracing::warn!(file = %file.display(), error = %e, "live upload failed at the stream's end; the archive step uploads the rest");
                        self.tally.done(false);
                        return false;
                    }
                    tracing::warn!(file = %file.display(), error = %e, retry_in = ?wait, "live upload failed; the file stays on disk and is tried again");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.closing.cancelled() => {}
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// Puts the playlists written since the last time, as they are now, after the segments they
    /// list (those were queued before the playlists were written): a reader of the bucket finds
    /// every segment that a playlist there lists (unless the queue was full). Returns false as
    /// [`Uploader::media`] does.
    async fn playlists(
        &self,
        files: &mut mpsc::Receiver<PathBuf>,
        playlists: &Mutex<BTreeSet<PathBuf>>,
    ) -> bool {
        let changed = std::mem::take(&mut *lock(playlists));
        if changed.is_empty() {
            return true;
        }
        let mut read: Vec<(PathBuf, Bytes)> = Vec::new();
        for path in changed {
            match tokio::fs::read(&path).await {
                Ok(bytes) => read.push((path, bytes.into())),
                Err(e) => tracing::debug!(file = %path.display(), error = %e, "playlist gone"),
            }
        }
        while let Ok(file) = files.try_recv() {
            if !self.media(&file).await {
                return false;
            }
        }
        for (i, (path, bytes)) in read.iter().enumerate() {
            if let Err(e) = self.storage.put(path, bytes.clone()).await {
                self.tally.failed(&e);
                tracing::warn!(file = %path.display(), error = %e, "putting a live playlist failed; tried again later");
                let mut again = lock(playlists);
                again.extend(read[i..].iter().map(|(p, _)| p.clone()));
                return true;
            }
            self.tally.succeeded();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::storage::StorageUrl;

    /// A store where nothing listens: every upload fails at once (connection refused).
    fn unreachable_store(dir: &Path) -> Storage {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url =
            StorageUrl::parse(&format!("s3://media?endpoint=http://127.0.0.1:{closed}")).unwrap();
        Storage::with_bucket(dir, super::super::s3::S3::new(&url, "k", "s").unwrap())
    }

    /// The media path never waits: past a full queue, files are left to the end; a failing store
    /// shows in the counters; at the end what waited is given one try and left to the archive.
    #[tokio::test]
    async fn a_full_queue_leaves_files_to_the_end_and_never_waits() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("streams/x/hls/source/seg00000.ts");
        std::fs::create_dir_all(segment.parent().unwrap()).unwrap();
        std::fs::write(&segment, [0u8; 188]).unwrap();
        let server = Arc::new(UploadStats::default());
        let uploads = LiveUpload::start(unreachable_store(dir.path()), server.clone(), "x");
        // The upload task has not run yet (this runtime has one thread): the queue fills up.
        let extra = 52;
        for _ in 0..QUEUE + extra {
            uploads.media_closed(&segment);
        }
        let report = uploads.report();
        assert_eq!(report.waiting, QUEUE as u64);
        assert_eq!(report.left_to_the_end, extra as u64);
        while uploads.report().failing.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let failing = server.report();
        assert!(failing.failures >= 1, "{failing:?}");
        assert!(failing.failing.unwrap().contains("unreachable"));

        uploads.drained().await;
        let end = uploads.report();
        assert_eq!(end.waiting, 0, "{end:?}");
        assert_eq!(end.uploaded, 0, "{end:?}");
        assert_eq!(end.left_to_the_end, (QUEUE + extra) as u64, "{end:?}");
        assert_eq!(server.report(), end, "the server counts the same");
        // After the end nothing is queued any more.
        uploads.media_closed(&segment);
        assert_eq!(uploads.report(), end);
    }
}
