//! Finished media from object storage, passed through to the client: the client's `Range` goes
//! to the bucket and the answer (200, 206 with `Content-Range`, 416) comes back as it is, streamed.
//!
//! Proxied rather than redirected to a presigned URL: the rules of who may see what stay in one
//! place (a link stays revocable by a takedown or a switch to practice), the bucket needs no
//! public address, and players and edges see one origin with our cache headers.
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::storage::{Object, Storage};

/// Headers of the store's answer passed on.
const PASSED: [header::HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// Longest `Range` header passed on to the store.
const MAX_RANGE: usize = 128;

/// The object for `path` when the file is no longer on the disk (`None`: serve the disk).
pub async fn object(
    storage: &Storage,
    path: &std::path::Path,
    request_headers: &HeaderMap,
) -> Result<Option<Object>, ApiError> {
    // Passed on only when it is a plain byte range; anything else gets the whole file.
    let range = request_headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|r| r.len() <= MAX_RANGE && r.starts_with("bytes="))
        .filter(|r| {
            r[6..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b',')
        });
    storage.get(path, range).await.map_err(|e| {
        tracing::error!(error = %e, "reading from object storage");
        ApiError::Unavailable(
            "the file is in object storage, which does not answer; try again".into(),
        )
    })
}

/// The object as a response with `content_type`.
pub fn response(object: Object, content_type: &'static str) -> Response {
    let status = StatusCode::from_u16(object.status().as_u16()).unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    for name in PASSED {
        if let Some(v) = object
            .headers()
            .get(name.as_str())
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            headers.insert(name, v);
        }
    }
    headers
        .entry(header::ACCEPT_RANGES)
        .or_insert(HeaderValue::from_static("bytes"));
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        // The store's XML explanation is not ours to pass on.
        headers.remove(header::CONTENT_LENGTH);
        return (status, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let body = futures_util::stream::unfold(object, |mut object| async move {
        match object.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), object)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), object)),
        }
    });
    (status, headers, Body::from_stream(body)).into_response()
}
