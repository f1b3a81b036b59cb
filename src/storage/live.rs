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
/// Largest chunk of a followed file put at once (more waits for the next turn).
const CHUNK_MAX: u64 = 64 << 20;

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

/// A file that grows while the stream is live (its fragmented recording), followed into a folder
/// of the bucket with the small files that describe it: every [`PLAYLISTS_EVERY`], the whole
/// part of it written since the last time goes up as one chunk named by its offset
/// (`000000000001048576.part`: the chunks in name order are the file), and each of `copies` that
/// changed since the follow started is put under its own name (one from before belongs to an
/// earlier session). A node that dies leaves its session's file in the bucket up
/// to a few seconds before its end.
pub struct Follow {
    /// The bucket's folder, as the path under the data dir that it mirrors (nothing is written
    /// there on the disk).
    pub dir: PathBuf,
    pub growing: PathBuf,
    /// How much of `growing` is whole (the rest is being written).
    pub complete_len: fn(&Path) -> std::io::Result<u64>,
    pub copies: Vec<PathBuf>,
}

/// The name of a followed file's chunk that starts at `offset`.
pub fn chunk_name(offset: u64) -> String {
    format!("{offset:018}.part")
}

/// The offset of a chunk named by [`chunk_name`].
pub fn chunk_offset(name: &str) -> Option<u64> {
    name.strip_suffix(".part")?.parse().ok()
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
    /// The folder of the [`Follow`], if any.
    followed: Option<PathBuf>,
}

impl LiveUpload {
    /// Starts the upload task of stream `id` (counted in `server` too), following `follow`.
    pub fn start(
        storage: Storage,
        server: Arc<UploadStats>,
        id: &str,
        follow: Option<Follow>,
    ) -> LiveUpload {
        let (queue, files) = mpsc::channel(QUEUE);
        let tally = Tally {
            stream: Arc::default(),
            server,
        };
        let playlists = Arc::new(Mutex::new(BTreeSet::new()));
        let closing = CancellationToken::new();
        let followed = follow.as_ref().map(|f| f.dir.clone());
        let uploader = Uploader {
            storage,
            tally: tally.clone(),
            closing: closing.clone(),
            follow: follow.map(|f| Followed {
                follow: f,
                sent: 0,
                copied: Default::default(),
                since: std::time::SystemTime::now(),
            }),
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
            followed,
        }
    }

    /// The bucket folder that the followed file goes to (see [`Follow`]).
    pub fn followed(&self) -> Option<&Path> {
        self.followed.as_deref()
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
    follow: Option<Followed>,
}

/// A [`Follow`] and how far it went.
struct Followed {
    follow: Follow,
    /// Bytes of the growing file in the bucket.
    sent: u64,
    /// What each copy held when it was last put.
    copied: std::collections::HashMap<PathBuf, Bytes>,
    /// When the follow started: copies not written since are not this session's.
    since: std::time::SystemTime,
}

impl Uploader {
    async fn run(
        mut self,
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
                _ = tick.tick() => {
                    let up = self.playlists(&mut files, &playlists).await;
                    self.follow().await;
                    up
                }
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

impl Uploader {
    /// Puts what the followed file gained since the last time, and the copies that changed. A
    /// failure is logged and counted; the next turn tries again from where it stopped.
    async fn follow(&mut self) {
        let Uploader {
            storage,
            tally,
            follow: Some(f),
            ..
        } = self
        else {
            return;
        };
        let result = async {
            let growing = f.follow.growing.clone();
            let complete_len = f.follow.complete_len;
            let complete = tokio::task::spawn_blocking(move || complete_len(&growing))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(0),
                    _ => Err(e),
                })
                .map_err(|source| Error::Io {
                    path: f.follow.growing.display().to_string(),
                    source,
                })?;
            if complete > f.sent {
                let len = (complete - f.sent).min(CHUNK_MAX);
                let chunk = read_range(&f.follow.growing, f.sent, len).await?;
                let name = f.follow.dir.join(chunk_name(f.sent));
                storage.put(&name, chunk).await?;
                f.sent += len;
            }
            for copy in &f.follow.copies {
                let written = tokio::fs::metadata(copy).await.and_then(|m| m.modified());
                if !written.is_ok_and(|t| t >= f.since) {
                    continue;
                }
                let Ok(bytes) = tokio::fs::read(copy).await.map(Bytes::from) else {
                    continue;
                };
                if f.copied.get(copy) == Some(&bytes) {
                    continue;
                }
                let name = copy.file_name().map(|n| f.follow.dir.join(n));
                if let Some(name) = name {
                    storage.put(&name, bytes.clone()).await?;
                    f.copied.insert(copy.clone(), bytes);
                }
            }
            Ok::<_, Error>(())
        }
        .await;
        match result {
            Ok(()) => tally.succeeded(),
            Err(e) => {
                tally.failed(&e);
                tracing::warn!(file = %f.follow.growing.display(), error = %e, "following the recording into the bucket failed; tried again later");
            }
        }
    }
}

/// `len` bytes of the file at `path` from `offset`.
async fn read_range(path: &Path, offset: u64, len: u64) -> Result<Bytes, Error> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io)?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact(&mut buf).await.map_err(io)?;
    Ok(buf.into())
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
        let uploads = LiveUpload::start(unreachable_store(dir.path()), server.clone(), "x", None);
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
