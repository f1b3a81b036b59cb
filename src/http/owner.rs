//! Viewers may ask any node (issue 19): a request under `/hls/` for a stream that is live on
//! another node is relayed to that node (its `node.url`, stored with its lease), which answers it
//! under the usual rules (the store is shared, so tokens and signatures hold there too), and the
//! answer comes back as it is, streamed: playlists, blocking low-latency reloads, segments and
//! parts. Only with a shared store (`database.url`); a node relays a request once (a relayed
//! request is never relayed again).
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

/// The middleware: relays `/hls/{id}/…` to the stream's node when it is live elsewhere.
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

/// The stream of a `/hls/{id}/…` request.
fn stream_of(request: &Request) -> Option<StreamId> {
    let rest = request.uri().path().strip_prefix("/hls/")?;
    let id = rest.split('/').next()?;
    super::hls::valid_name(id).then(|| StreamId(id.to_string()))
}
