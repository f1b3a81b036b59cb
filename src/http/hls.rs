//! Viewer media: master and media playlists, segments. Practice streams answer 404 to anyone
//! without the creator's token (bearer, or the signed `?token=` that playlists carry into every
//! child URI), exactly as if they did not exist.
use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::error::ApiError;
use super::extract::MaybeAuth;
use super::signing::{self, Purpose, Verdict};
use crate::output::hls::{
    self as hls_out, Audience, EVENT_PLAYLIST, LIVE_PLAYLIST, MASTER_FILE, PlaylistKind,
};
use crate::store::{Mode, StreamId};
use crate::streams::{self, stream::LiveStream};

/// The MPEG-TS master playlist, for players without low-latency HLS or fMP4.
pub const TS_MASTER_FILE: &str = "master-ts.m3u8";

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// For `/metrics`: what viewers fetched.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
}

impl Counters {
    pub(super) fn served(&self, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
    }
}
const SEGMENT_TYPE: &str = "video/mp2t";

pub(super) struct Access {
    pub(super) id: StreamId,
    pub(super) live: Option<std::sync::Arc<LiveStream>>,
    /// The stream is public (responses may be cached by shared caches).
    pub(super) public: bool,
    /// What the caller is shown: the owner everything, anyone else the public media only.
    pub(super) audience: Audience,
    /// `token=…` to carry into child URIs.
    pub(super) query: Option<String>,
}

pub(super) async fn access(
    state: &AppState,
    id: &str,
    who: Option<crate::store::Principal>,
    params: &HashMap<String, String>,
) -> Result<Access, ApiError> {
    let id = StreamId::parse(id).ok_or(ApiError::NotFound)?;
    let live = state.registry.live(&id);
    let (mode, creator_id) = match &live {
        Some(s) => (s.mode(), s.creator_id.clone()),
        None => {
            let s = state.store.stream(&id).await?.ok_or(ApiError::NotFound)?;
            (s.mode, s.creator_id)
        }
    };
    let token = params
        .get("token")
        .filter(|t| signing::verify(&state.secret, Purpose::Playback, &id, t) == Verdict::Valid);
    let query = token.map(|t| format!("token={t}"));
    let owner = match who {
        Some(crate::store::Principal::Admin) => true,
        Some(crate::store::Principal::Creator(c)) => c == creator_id,
        Some(crate::store::Principal::Viewer(_)) | None => false,
    };
    // A public stream cannot have been taken down; else the store says (only asked when a
    // signed link is all the caller has).
    let taken_down = token.is_some()
        && !owner
        && mode != Mode::Public
        && !super::access::signed_links_allowed(state, &id).await?;
    let audience = streams::access::audience(mode, taken_down, owner, token.is_some())
        .ok_or(ApiError::NotFound)?;
    Ok(Access {
        id,
        live,
        public: mode == Mode::Public && audience == Audience::Public,
        audience,
        query,
    })
}

impl Access {
    /// Counts the player session (`sid`) a media playlist was served to: for viewer counts and
    /// the creator's analytics (the owner's and signed links' players are not the audience; a
    /// stream that is no longer live is watched as a replay).
    pub(super) fn count_session(&self, state: &AppState, params: &HashMap<String, String>) {
        if let Some(sid) = params.get("sid") {
            let replay = self.live.as_ref().is_none_or(|s| s.finished.is_cancelled());
            state
                .audience
                .seen(&self.id, sid, self.audience == Audience::Owner, replay);
        }
    }

    /// Whether the caller may fetch a segment (or init section) by name: the owner any, the
    /// public only those of public media. `low_latency` picks the output (CMAF or MPEG-TS);
    /// `dir` is where that output keeps its files.
    pub(super) async fn serves(
        &self,
        state: &AppState,
        dir: &std::path::Path,
        rendition: &str,
        file: &str,
        low_latency: bool,
    ) -> bool {
        match &self.live {
            Some(s) => match (low_latency, &s.ll) {
                (true, Some(ll)) => ll.serves(rendition, file, self.audience),
                _ => s.hls.serves(rendition, file, self.audience),
            },
            None => {
                hls_out::persisted_serves(&state.files, dir, rendition, file, self.audience).await
            }
        }
    }
}

pub(super) fn cache_control(public: bool, value: &str) -> HeaderValue {
    // The live playlist reload is most of all requests: its two values are not built each time.
    match (public, value) {
        (true, "max-age=1") => return HeaderValue::from_static("public, max-age=1"),
        (false, "max-age=1") => return HeaderValue::from_static("private, max-age=1"),
        _ => {}
    }
    let scope = if public { "public" } else { "private" };
    HeaderValue::from_str(&format!("{scope}, {value}")).expect("valid header")
}

pub(super) fn playlist_response(text: impl Into<Body>, public: bool, live: bool) -> Response {
    let cache = if live { "max-age=1" } else { "max-age=3600" };
    playlist_with_cache(text, public, cache)
}

pub(super) fn playlist_with_cache(text: impl Into<Body>, public: bool, cache: &str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(PLAYLIST_TYPE),
            ),
            (header::CACHE_CONTROL, cache_control(public, cache)),
        ],
        text.into(),
    )
        .into_response()
}

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `GET /hls/{id}/master.m3u8` (low-latency CMAF renditions when on, MPEG-TS otherwise) and
/// `GET /hls/{id}/master-ts.m3u8` (MPEG-TS, for old devices).
#[utoipa::path(get, path = "/hls/{id}/{file}", tag = "media", params(("id" = String, Path), ("file" = String, Path, description = "master.m3u8 (low-latency HLS when on) or master-ts.m3u8 (MPEG-TS)"), ("token" = Option<String>, Query, description = "signed playback token (practice)")), responses((status = 200, description = "OK"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn master(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path((id, file)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let low_latency = match file.as_str() {
        MASTER_FILE => true,
        TS_MASTER_FILE => false,
        _ => return Err(ApiError::NotFound),
    };
    let a = access(&state, &id, who, &params).await?;
    // Each player gets a session id in its media playlist URIs (not in segment URIs, which stay
    // cacheable), so that viewers are counted per session.
    let sid = format!("sid={}", state.audience.new_session(&a.id));
    let query = Some(match &a.query {
        Some(token) => format!("{token}&{sid}"),
        None => sid,
    });
    let query = query.as_deref();
    let (text, live) = match &a.live {
        Some(s) if !s.finished.is_cancelled() => {
            let out = s.ll.as_deref().filter(|_| low_latency).unwrap_or(&s.hls);
            (
                out.master_playlist(a.audience, query).map(Bytes::from),
                true,
            )
        }
        _ => {
            let paths = state.registry.paths(&a.id);
            let persisted = async |dir: &std::path::Path| {
                hls_out::read_persisted(&state.files, dir, None, MASTER_FILE, a.audience, query)
                    .await
            };
            let ll = match low_latency {
                true => persisted(&paths.low_latency_dir()).await,
                false => None,
            };
            let text = match ll {
                Some(text) => Some(text),
                None => persisted(&paths.hls_dir()).await,
            };
            (text, false)
        }
    };
    let text = text.ok_or(ApiError::NotFound)?;
    state.hls_counters.served(text.len());
    Ok(playlist_response(text, a.public, live))
}

/// `GET /hls/{id}/{rendition}/{index.m3u8|event.m3u8|segNNNNN.ts}`
#[utoipa::path(get, path = "/hls/{id}/{rendition}/{file}", tag = "media", params(("id" = String, Path), ("rendition" = String, Path), ("file" = String, Path, description = "index.m3u8, event.m3u8 or segNNNNN.ts"), ("token" = Option<String>, Query), ("sid" = Option<String>, Query, description = "player session (from the master playlist)")), responses((status = 200, description = "OK"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn rendition_file(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path((id, rendition, file)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if !valid_name(&rendition) {
        return Err(ApiError::NotFound);
    }
    let a = access(&state, &id, who, &params).await?;
    let query = a.query.as_deref();
    let hls_dir = || state.registry.paths(&a.id).hls_dir();
    if file == LIVE_PLAYLIST || file == EVENT_PLAYLIST {
        let kind = match file.as_str() {
            LIVE_PLAYLIST => PlaylistKind::Live,
            _ => PlaylistKind::Event,
        };
        // While finalising, the in-memory list is already complete (VOD), so keep serving it.
        let (text, live) = match &a.live {
            Some(s) => (
                s.hls.served_playlist(&rendition, kind, a.audience, query),
                !s.finished.is_cancelled(),
            ),
            None => (
                hls_out::read_persisted(
                    &state.files,
                    &hls_dir(),
                    Some(&rendition),
                    &file,
                    a.audience,
                    query,
                )
                .await,
                false,
            ),
        };
        let text = text.ok_or(ApiError::NotFound)?;
        a.count_session(&state, &params);
        state.hls_counters.served(text.len());
        return Ok(playlist_response(text, a.public, live));
    }
    let Some(stem) = file.strip_suffix(".ts") else {
        return Err(ApiError::NotFound);
    };
    if !stem.starts_with("seg") || !valid_name(stem) {
        return Err(ApiError::NotFound);
    }
    // Practice media of a public stream is the owner's: by name too.
    let hls_dir = hls_dir();
    if !a.serves(&state, &hls_dir, &rendition, &file, false).await {
        return Err(ApiError::NotFound);
    }
    let path = hls_dir.join(&rendition).join(&file);
    let bytes = state
        .files
        .read(&path)
        .await
        .map_err(|_| ApiError::NotFound)?;
    state.hls_counters.served(bytes.len());
    Ok(media_response(
        bytes,
        SEGMENT_TYPE,
        a.media_cache(state.config.hls.segment),
    ))
}

/// How long media stays in an edge's cache while its stream is live, in segment durations.
const LIVE_MEDIA_SEGMENTS: u32 = 2;

impl Access {
    /// `Cache-Control` of a segment, part or init section (README, "Caching"). The bytes never
    /// change, but who may see them does: while the stream is live (it may go back to practice
    /// or be taken down), shared caches keep public media for two segment durations only, so
    /// an edge stops serving it that soon without a purge. The public replay of a stream that
    /// has ended is kept for good (a takedown then needs a purge). The owner's is `private`.
    pub(super) fn media_cache(&self, segment: std::time::Duration) -> HeaderValue {
        if self.public && self.live.is_some() {
            live_media_cache(segment)
        } else {
            cache_control(self.public, "max-age=31536000, immutable")
        }
    }
}

/// `Cache-Control` of public media while its stream is live (on this node or another).
pub(super) fn live_media_cache(segment: std::time::Duration) -> HeaderValue {
    let secs = (segment * LIVE_MEDIA_SEGMENTS)
        .as_secs_f64()
        .ceil()
        .max(1.0) as u64;
    cache_control(true, &format!("max-age={secs}"))
}

/// A segment, part or init section, with its `Cache-Control` (`Access::media_cache`).
pub(super) fn media_response(
    bytes: impl Into<Body>,
    content_type: &'static str,
    cache: HeaderValue,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, cache),
        ],
        bytes.into(),
    )
        .into_response()
}

/// Where the poster `audience` sees is: the public's comes from public media (streams from before
/// it was kept: the one poster). It may not exist (yet).
pub(super) fn poster(state: &AppState, id: &StreamId, audience: Audience) -> std::path::PathBuf {
    let paths = state.registry.paths(id);
    match audience {
        Audience::Public if hls_out::keeps_public_files(&paths.hls_dir()) => {
            paths.public_thumbnail()
        }
        _ => paths.thumbnail(),
    }
}

/// `GET /api/v1/streams/{id}/thumbnail.jpg`: the latest poster, under the same rule as the video.
#[utoipa::path(get, path = "/api/v1/streams/{id}/thumbnail.jpg", tag = "media", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "OK"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn thumbnail(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let a = access(&state, &id, who, &params).await?;
    let bytes = state
        .storage
        .read(&poster(&state, &a.id, a.audience))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "reading a poster");
            ApiError::NotFound
        })?
        .ok_or(ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::CACHE_CONTROL, cache_control(a.public, "max-age=5")),
        ],
        Body::from(bytes),
    )
        .into_response())
}
