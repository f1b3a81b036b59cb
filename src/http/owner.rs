//! Viewers may ask any node (issue 19): a request under `/hls/` (or for the poster) of a stream
//! live on another node is relayed to that node (its `node.url`, stored with its lease), which
//! answers it under the usual rules (the store is shared, so tokens and signatures hold there
//! too), and the answer comes back as it is, streamed: playlists, blocking low-latency reloads,
//! segments and parts. Only with a shared store (`database.url`); a node relays a request once
//! (a relayed request is never relayed again).
//!
//! Closed segments and init sections come from the bucket instead, with object storage: the
//! owner puts each there as it closes, and its public lists every few seconds. A node serves one
//! from there when the bucket has it and the caller may see it under the rules of an ended
//! stream (the owner anything; anyone else what the bucket's public list names), and asks the
//! owner otherwise: a segment not up yet, or not yet listed as public (the owner decides). Parts
//! and playlists always come from the owner: they change with the live edge.
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::store::StreamId;

/// Marks a relayed request.
const RELAYED: HeaderName = HeaderName::from_static("x-livefront-relayed");
/// How long a node remembers who owns a stream, alone (a new owner is found this soon)...
const REMEMBERED: Duration = Duration::from_secs(1);
/// ... and with a bus, which tells of every change of a stream's state (a new owner's included):
/// then what is remembered is forgotten at once ([`Owners::forget`]), and this bounds only an
/// owner that died without a word (its lease runs out first anyway).
const REMEMBERED_WITH_BUS: Duration = Duration::from_secs(5);
/// Streams remembered at most (a stranger naming made-up streams cannot grow it further).
const MAX_REMEMBERED: usize = 4096;
/// A blocking low-latency reload waits up to a few part durations; a segment is a few MB.
const RELAY_TIMEOUT: Duration = Duration::from_secs(30);
/// Request headers passed on: who asks and for which bytes.
const PASSED_ON: [HeaderName; 3] = [header::AUTHORIZATION, header::RANGE, header::COOKIE];
/// Answer headers passed back.
const PASSED_BACK: [HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::CACHE_CONTROL,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// The owners of streams live on other nodes, as last read, and the client that relays (made
/// on the first relay: a TLS-capable client costs memory that a node alone never needs).
pub struct Owners {
    client: OnceLock<reqwest::Client>,
    known: Mutex<HashMap<StreamId, (Instant, Option<String>)>>,
    remembered: Duration,
}

impl Owners {
    /// `bus`: whether the nodes share a bus, whose stream events make this forget an owner.
    pub fn new(bus: bool) -> Self {
        Owners {
            client: OnceLock::new(),
            known: Mutex::new(HashMap::new()),
            remembered: if bus { REMEMBERED_WITH_BUS } else { REMEMBERED },
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(RELAY_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        })
    }

    /// Forgets the owner of `id` (its state changed: it went live somewhere, or ended).
    pub fn forget(&self, id: &StreamId) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(id);
        }
    }

    /// The URL of the node `id` is live on, when it is another node.
    async fn elsewhere(&self, state: &AppState, id: &StreamId) -> Option<String> {
        let now = Instant::now();
        if let Some((at, url)) = self.known.lock().ok()?.get(id)
            && now.duration_since(*at) < self.remembered
        {
            return url.clone();
        }
        let owner = match state.store.live_owner(id, chrono::Utc::now()).await {
            Ok(owner) => owner,
            Err(e) => {
                tracing::warn!(stream = %id, error = %e, "could not look up the stream's node");
                None
            }
        };
        let (me, _) = state.registry.me();
        let url = owner.filter(|o| o.node != me).and_then(|o| o.url);
        let mut known = self.known.lock().ok()?;
        if known.len() >= MAX_REMEMBERED {
            known.retain(|_, (at, _)| now.duration_since(*at) < self.remembered);
            if known.len() >= MAX_REMEMBERED {
                known.clear();
            }
        }
        known.insert(id.clone(), (now, url.clone()));
        url
    }
}

/// The middleware: relays `/hls/{id}/…` and posters to the stream's node when it is live
/// elsewhere.
pub async fn relay(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // One node (a store of its own) or an already relayed request: nothing to look up.
    if !state.store.is_shared() || request.headers().contains_key(RELAYED) {
        return next.run(request).await;
    }
    let Some(id) = stream_of(&request) else {
        return next.run(request).await;
    };
    if state.registry.live(&id).is_some() {
        return next.run(request).await;
    }
    let Some(owner) = state.owners.elsewhere(&state, &id).await else {
        return next.run(request).await;
    };
    if state.storage.is_remote() && closed_media(request.uri().path()) {
        let mut here = Request::new(Body::empty());
        *here.method_mut() = request.method().clone();
        *here.uri_mut() = request.uri().clone();
        *here.headers_mut() = request.headers().clone();
        *here.extensions_mut() = request.extensions().clone();
        let mut answer = next.run(here).await;
        if answer.status().is_success() {
            // Kept by shared caches as live media is (who may see it can still change).
            let public = answer
                .headers()
                .get(header::CACHE_CONTROL)
                .is_some_and(|v| v.as_bytes().starts_with(b"public"));
            if public {
                answer.headers_mut().insert(
                    header::CACHE_CONTROL,
                    super::hls::live_media_cache(state.config.hls.segment),
                );
            }
            return answer;
        }
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut to = state
        .owners
        .client()
        .request(
            request.method().clone(),
            format!("{}{path}", owner.trim_end_matches('/')),
        )
        .header(RELAYED, "1");
    for name in PASSED_ON {
        if let Some(value) = request.headers().get(&name) {
            to = to.header(name, value);
        }
    }
    match to.send().await {
        Ok(answer) => {
            let (status, mut headers) = (answer.status(), axum::http::HeaderMap::new());
            for name in PASSED_BACK {
                if let Some(value) = answer.headers().get(&name) {
                    headers.insert(name, value.clone());
                }
            }
            let body = futures_util::stream::unfold(answer, |mut answer| async move {
                match answer.chunk().await {
                    Ok(Some(bytes)) => Some((Ok(bytes), answer)),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), answer)),
                }
            });
            (status, headers, Body::from_stream(body)).into_response()
        }
        Err(e) => {
            tracing::warn!(stream = %id, node = %owner, error = %e, "could not relay to the stream's node");
            (
                StatusCode::BAD_GATEWAY,
                [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
                "the stream's node did not answer",
            )
                .into_response()
        }
    }
}

/// Whether `path` names a closed segment or an init section (`/hls/{id}/[ll/]{rendition}/…`).
fn closed_media(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or_default();
    let numbered = |prefix: &str, suffix: &str| {
        file.strip_prefix(prefix)
            .and_then(|f| f.strip_suffix(suffix))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    numbered("seg", ".ts") || numbered("seg", ".m4s") || numbered("init", ".mp4")
}

/// The stream of a `/hls/{id}/…` request, or of its poster (`/api/v1/streams/{id}/thumbnail.jpg`:
/// a live stream's is on its node's disk, written every few seconds).
fn stream_of(request: &Request) -> Option<StreamId> {
    let path = request.uri().path();
    let id = match path.strip_prefix("/hls/") {
        Some(rest) => rest.split('/').next()?,
        None => path
            .strip_prefix("/api/v1/streams/")?
            .strip_suffix("/thumbnail.jpg")?,
    };
    super::hls::valid_name(id).then(|| StreamId(id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_and_posters_name_their_stream() {
        let of = |path: &str| stream_of(&Request::get(path).body(Body::empty()).unwrap());
        assert_eq!(
            of("/hls/abc/source/index.m3u8"),
            Some(StreamId("abc".into()))
        );
        assert_eq!(
            of("/api/v1/streams/abc/thumbnail.jpg"),
            Some(StreamId("abc".into()))
        );
        for other in [
            "/api/v1/streams/abc",
            "/api/v1/streams/abc/chat",
            "/api/v1/streams/a/b/thumbnail.jpg",
            "/hls/../x",
            "/replays/abc.mp4",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
    }

    #[test]
    fn closed_segments_and_init_sections_not_parts_or_playlists() {
        for path in [
            "/hls/abc/source/seg00012.ts",
            "/hls/abc/ll/source/seg00012.m4s",
            "/hls/abc/ll/720p/init00000.mp4",
        ] {
            assert!(closed_media(path), "{path}");
        }
        for path in [
            "/hls/abc/ll/source/part00012.3.m4s",
            "/hls/abc/source/index.m3u8",
            "/hls/abc/master.m3u8",
            "/hls/abc/source/seg.ts",
            "/hls/abc/source/seg0001x.ts",
        ] {
            assert!(!closed_media(path), "{path}");
        }
    }
}
