//! A small S3 client: requests signed by `rusty-s3` (presigned URLs, no SDK), sent with
//! `reqwest`. Only what livefront needs: check the bucket, put (in parts from
//! [`MULTIPART_PART`]), head, get (with a `Range`), list, delete.
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::io::AsyncReadExt;

use super::Error;
use crate::config::storage::StorageUrl;

/// How long a signed request stays valid: enough for one part on a slow link.
const SIGNED_FOR: Duration = Duration::from_secs(3600);
/// Files up to this size go up in one `PUT`; larger ones in parts of this size (S3's smallest
/// part is 5 MiB; 10 000 parts of 16 MiB hold 156 GiB, more than a day of 1080p).
pub const MULTIPART_PART: u64 = 16 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A request (or a read of a streamed body) that moves nothing for this long fails.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest error body kept for a message.
const ERROR_BODY: usize = 512;

pub struct S3 {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    part_size: u64,
}

impl S3 {
    pub fn new(url: &StorageUrl, access_key: &str, secret_key: &str) -> Result<S3, Error> {
        let bucket = Bucket::new(
            url.endpoint.clone(),
            UrlStyle::Path,
            url.bucket.clone(),
            url.region.clone(),
        )
        .map_err(|e| Error::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(S3 {
            bucket,
            credentials: Credentials::new(access_key, secret_key),
            http,
            part_size: MULTIPART_PART,
        })
    }

    /// The same client with another part size (tests of the multipart path).
    pub fn with_part_size(mut self, bytes: u64) -> S3 {
        self.part_size = bytes.max(5 * 1024 * 1024);
        self
    }

    pub fn describe(&self) -> String {
        format!(
            "bucket {} at {}",
            self.bucket.name(),
            self.bucket.base_url()
        )
    }

    fn creds(&self) -> Option<&Credentials> {
        Some(&self.credentials)
    }

    /// Whether the bucket answers to our keys.
    pub async fn check(&self) -> Result<(), Error> {
        let url = self.bucket.head_bucket(self.creds()).sign(SIGNED_FOR);
        let response = self
            .send(self.http.head(url), "checking the bucket")
            .await?;
        expect_ok(response, "checking the bucket").await.map(|_| ())
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, Error> {
        request.send().await.map_err(|e| Error::Unreachable {
            what: what.to_string(),
            message: error_chain(&e),
        })
    }

    /// The size of the object, `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, Error> {
        let url = self.bucket.head_object(self.creds(), key).sign(SIGNED_FOR);
        let response = self.send(self.http.head(url), key).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = expect_ok(response, key).await?;
        Ok(response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok()))
    }

    /// `GET` of the object, with the client's `Range` passed on; `None` when there is none.
    pub async fn get(
        &self,
        key: &str,
        range: Option<&str>,
    ) -> Result<Option<reqwest::Response>, Error> {
        let url = self.bucket.get_object(self.creds(), key).sign(SIGNED_FOR);
        let mut request = self.http.get(url);
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        let response = self.send(request, key).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            // The range is answered by the store as asked (416 included).
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Some(response)),
            _ => expect_ok(response, key).await.map(Some),
        }
    }

    /// Puts `body` as the object `key` in one `PUT` (replacing one that is there).
    pub async fn put(&self, key: &str, body: impl Into<reqwest::Body>) -> Result<(), Error> {
        let url = self.bucket.put_object(self.creds(), key).sign(SIGNED_FOR);
        let response = self.send(self.http.put(url).body(body), key).await?;
        expect_ok(response, key).await.map(|_| ())
    }

    /// Uploads the file at `path` as `key`: in one `PUT` up to the part size, else in parts.
    pub async fn put_file(&self, path: &Path, key: &str) -> Result<u64, Error> {
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        if len <= self.part_size {
            let mut body = Vec::with_capacity(len as usize);
            file.read_to_end(&mut body).await.map_err(io)?;
            self.put(key, body).await?;
            return Ok(len);
        }
        let url = self
            .bucket
            .create_multipart_upload(self.creds(), key)
            .sign(SIGNED_FOR);
        let empty = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let response = self.send(empty, key).await?;
        let text = expect_ok(response, key)
            .await?
            .text()
            .await
            .unwrap_or_default();
        let created = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .map_err(|e| Error::Protocol(format!("starting the upload of {key}: {e}")))?;
        let upload_id = created.upload_id().to_string();
        let parts = self.put_parts(&mut file, len, key, &upload_id).await;
        let result = match parts {
            Ok(etags) => {
                let complete = self.bucket.complete_multipart_upload(
                    self.creds(),
                    key,
                    &upload_id,
                    etags.iter().map(String::as_str),
                );
                let url = complete.sign(SIGNED_FOR);
                let response = self
                    .send(self.http.post(url).body(complete.body()), key)
                    .await;
                match response {
                    Ok(r) => expect_ok(r, key).await.map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            // A half upload is invisible but costs space in the bucket until aborted.
            let url = self
                .bucket
                .abort_multipart_upload(self.creds(), key, &upload_id)
                .sign(SIGNED_FOR);
            let _ = self.http.delete(url).send().await;
        }
        result.map(|()| len)
    }

    async fn put_parts(
        &self,
        file: &mut tokio::fs::File,
        len: u64,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<String>, Error> {
        let mut etags = Vec::new();
        let mut sent = 0u64;
        let mut number: u16 = 1;
        while sent < len {
            let size = self.part_size.min(len - sent) as usize;
            let mut part = vec![0; size];
            file.read_exact(&mut part)
                .await
                .map_err(|source| Error::Io {
                    path: key.to_string(),
                    source,
                })?;
            let url = self
                .bucket
                .upload_part(self.creds(), key, number, upload_id)
                .sign(SIGNED_FOR);
            let response = self.send(self.http.put(url).body(part), key).await?;
            let response = expect_ok(response, key).await?;
            let etag = response
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::Protocol(format!("part {number} of {key}: no ETag")))?;
            etags.push(etag.to_string());
            sent += size as u64;
            number = number
                .checked_add(1)
                .ok_or_else(|| Error::Protocol(format!("{key}: more than 65535 parts")))?;
        }
        Ok(etags)
    }

    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let url = self
            .bucket
            .delete_object(self.creds(), key)
            .sign(SIGNED_FOR);
        let response = self.send(self.http.delete(url), key).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect_ok(response, key).await.map(|_| ())
    }

    /// Keys and sizes under `prefix` (at most `limit`).
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(String, u64)>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(self.creds());
            action.with_prefix(prefix);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let response = self.send(self.http.get(url), prefix).await?;
            let text = expect_ok(response, prefix)
                .await?
                .text()
                .await
                .unwrap_or_default();
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|e| Error::Protocol(format!("listing {prefix}: {e}")))?;
            out.extend(
                page.contents
                    .into_iter()
                    .map(|c| (c.key, c.size.unwrap_or(0))),
            );
            token = page.next_continuation_token;
            if token.is_none() || out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
    }
}

/// The response when it is a success, else an error with the status and the store's message.
async fn expect_ok(response: reqwest::Response, what: &str) -> Result<reqwest::Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let mut message = body.trim().to_string();
    if message.len() > ERROR_BODY {
        let mut end = ERROR_BODY;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Err(Error::Status {
        what: what.to_string(),
        status: status.as_u16(),
        message,
    })
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
