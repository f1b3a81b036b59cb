//! Where finished media lives: the local disk under `data_dir` (the default), or an S3-compatible
//! bucket (`storage.url`). One interface for both; an object's key is its path under `data_dir`
//! (`streams/{id}/recording.mp4`), so the bucket mirrors the data folder and a file is found in
//! one place or the other by the same name.
//!
//! Writers keep writing local files; once a file is final, [`Storage::archive`] puts it into the
//! bucket, checks the object's size and only then removes the local copy. Readers look at the
//! local disk first and then at the bucket ([`Storage::get`], [`Storage::read`]), so a file whose
//! upload has not happened yet (the store was down) is served from the disk meanwhile.
//!
//! While a stream is live, its closed segments are copied to the bucket as they close
//! ([`live::LiveUpload`]); the archive step at its end then skips what the bucket already holds
//! ([`Storage::archive_unless_stored`]).
pub mod live;
pub mod s3;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::config::Config;
use crate::config::storage::StorageUrl;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage.url: {0}")]
    Config(String),
    #[error("object storage unreachable ({what}): {message}")]
    Unreachable { what: String, message: String },
    #[error("object storage answered {status} ({what}): {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    #[error("object storage: {0}")]
    Protocol(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not under data_dir")]
    Outside { path: String },
    #[error("uploaded {key} is {stored:?} bytes in the bucket, {local} on disk")]
    Mismatch {
        key: String,
        local: u64,
        stored: Option<u64>,
    },
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    data_dir: PathBuf,
    bucket: Option<std::sync::Arc<s3::S3>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.bucket {
            Some(b) => write!(f, "Storage({})", b.describe()),
            None => write!(f, "Storage(local {})", self.data_dir.display()),
        }
    }
}

/// An object as read from the bucket, to be passed on to a client.
pub type Object = reqwest::Response;

impl Storage {
    /// Files stay under `data_dir`.
    pub fn local(data_dir: &Path) -> Storage {
        Storage {
            data_dir: data_dir.to_path_buf(),
            bucket: None,
        }
    }

    /// The storage `config` names; with a bucket, checks that it answers to the keys (a clear
    /// error at start-up rather than lost uploads later).
    pub async fn open(config: &Config) -> Result<Storage, Error> {
        let (Some(text), Some(access), Some(secret)) = (
            &config.storage.url,
            &config.storage.access_key,
            &config.storage.secret_key,
        ) else {
            return Ok(Storage::local(&config.data_dir));
        };
        let url = StorageUrl::parse(text).map_err(Error::Config)?;
        let bucket = s3::S3::new(&url, access, secret)?;
        let storage = Storage::with_bucket(&config.data_dir, bucket);
        storage.check().await?;
        Ok(storage)
    }

    pub fn with_bucket(data_dir: &Path, bucket: s3::S3) -> Storage {
        Storage {
            data_dir: data_dir.to_path_buf(),
            bucket: Some(std::sync::Arc::new(bucket)),
        }
    }

    /// Whether the bucket answers (always, on the local disk).
    pub async fn check(&self) -> Result<(), Error> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        bucket.check().await.map_err(|e| match e {
            Error::Status {
                status: 404,
                what,
                message,
            } => Error::Status {
                what: format!("{what}: no such bucket, {}", bucket.describe()),
                status: 404,
                message,
            },
            Error::Unreachable { what, message } => Error::Unreachable {
                what: format!("{what}, {}", bucket.describe()),
                message,
            },
            other => other,
        })
    }

    /// Whether finished media goes to a bucket.
    pub fn is_remote(&self) -> bool {
        self.bucket.is_some()
    }

    /// The key of the file at `path`: its path under `data_dir`, `/`-separated.
    pub fn key(&self, path: &Path) -> Result<String, Error> {
        let outside = || Error::Outside {
            path: path.display().to_string(),
        };
        let relative = path.strip_prefix(&self.data_dir).map_err(|_| outside())?;
        let mut parts = Vec::new();
        for c in relative.components() {
            match c {
                std::path::Component::Normal(p) => parts.push(p.to_str().ok_or_else(outside)?),
                _ => return Err(outside()),
            }
        }
        if parts.is_empty() {
            return Err(outside());
        }
        Ok(parts.join("/"))
    }

    /// Puts the final file at `path` into the bucket, checks that the object has its size, then
    /// removes the local copy. A file already gone (archived before) is fine. On the local disk
    /// nothing happens: the file is where it is served from.
    pub async fn archive(&self, path: &Path) -> Result<(), Error> {
        if !self.upload(path).await? {
            return Ok(());
        }
        remove_local(path).await
    }

    /// [`Storage::archive`], but a file that `stored` (keys and sizes, from [`Storage::list`])
    /// says the bucket already holds with its size is not uploaded again: only its local copy
    /// is removed. Returns whether it was uploaded.
    pub async fn archive_unless_stored(
        &self,
        path: &Path,
        stored: &HashMap<String, u64>,
    ) -> Result<bool, Error> {
        if self.bucket.is_none() {
            return Ok(false);
        }
        let local = match tokio::fs::metadata(path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        if stored.get(&self.key(path)?) != Some(&local) {
            self.archive(path).await?;
            return Ok(true);
        }
        remove_local(path).await.map(|()| false)
    }

    /// Puts `bytes` into the bucket as the object of the file at `path` (what the file held when
    /// it was read: a playlist that is rewritten as the stream goes on). Nothing happens on the
    /// local disk.
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), Error> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        bucket.put(&self.key(path)?, bytes).await
    }

    /// Puts the file at `path` into the bucket and keeps it on the disk too.
    pub async fn copy(&self, path: &Path) -> Result<(), Error> {
        self.upload(path).await.map(|_| ())
    }

    /// Uploads and checks the size of the object; `false` when there is nothing to upload (no
    /// bucket, or no such file).
    async fn upload(&self, path: &Path) -> Result<bool, Error> {
        let Some(bucket) = &self.bucket else {
            return Ok(false);
        };
        let key = self.key(path)?;
        let local = match tokio::fs::metadata(path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        bucket.put_file(path, &key).await?;
        let stored = bucket.size(&key).await?;
        if stored != Some(local) {
            return Err(Error::Mismatch { key, local, stored });
        }
        Ok(true)
    }

    /// The object of a file that is no longer on the local disk (`None`: on the local disk, or
    /// in neither place), with the client's `Range` passed on.
    pub async fn get(&self, path: &Path, range: Option<&str>) -> Result<Option<Object>, Error> {
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Ok(None);
        }
        self.get_stored(path, range).await
    }

    /// The bucket's object of the file at `path`, whatever the disk holds (`None`: no bucket, or
    /// not in it).
    pub async fn get_stored(
        &self,
        path: &Path,
        range: Option<&str>,
    ) -> Result<Option<Object>, Error> {
        let Some(bucket) = &self.bucket else {
            return Ok(None);
        };
        bucket.get(&self.key(path)?, range).await
    }

    /// The whole contents of a file, from the local disk or else the bucket (`None`: in neither).
    pub async fn read(&self, path: &Path) -> Result<Option<Bytes>, Error> {
        match tokio::fs::read(path).await {
            Ok(bytes) => return Ok(Some(bytes.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
        match self.get(path, None).await? {
            Some(object) => object
                .bytes()
                .await
                .map(Some)
                .map_err(|e| Error::Unreachable {
                    what: format!("reading {}", path.display()),
                    message: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    /// Removes the object of the file at `path` from the bucket (one not there is fine); the
    /// disk is left as it is.
    pub async fn delete(&self, path: &Path) -> Result<(), Error> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        bucket.delete(&self.key(path)?).await
    }

    /// Keys and sizes of the objects under the folder `dir` (at most `limit`; none on the local
    /// disk).
    pub async fn list(&self, dir: &Path, limit: usize) -> Result<Vec<(String, u64)>, Error> {
        let Some(bucket) = &self.bucket else {
            return Ok(Vec::new());
        };
        bucket.list(&format!("{}/", self.key(dir)?), limit).await
    }
}

/// Removes the local copy of an archived file (one already gone is fine).
async fn remove_local(path: &Path) -> Result<(), Error> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_paths_under_the_data_dir() {
        let s = Storage::local(Path::new("/srv/data"));
        let key = s.key(Path::new("/srv/data/streams/abc/recording.mp4"));
        assert_eq!(key.unwrap(), "streams/abc/recording.mp4");
        for outside in ["/srv/other/x", "/srv/data", "/srv/data/../etc/passwd"] {
            assert!(s.key(Path::new(outside)).is_err(), "{outside}");
        }
    }
}
