//! Creators and streams: create, read, flip mode, end.
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::access::{owned_stream, visible_stream};
use super::error::ApiError;
use super::extract::{Auth, Json, MaybeAuth};
use super::signing::{self, Purpose};
use crate::config::ladder::LadderSpec;
use crate::output::hls::Audience;
use crate::store::{Mode, NewStream, Principal, Recording, Stream, StreamId, StreamState};
use crate::store::{PullSource, Transport};

const MAX_TITLE_CHARS: usize = 200;
const MAX_CATEGORY_CHARS: usize = 64;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCreator {
    handle: String,
}

/// Handles of creators and viewers: 2-32 characters of a-z, 0-9 and _.
pub(crate) fn valid_handle(h: &str) -> bool {
    (2..=32).contains(&h.len())
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[utoipa::path(post, path = "/api/v1/creators", tag = "accounts", request_body = NewCreator, responses((status = 201, description = "created"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 409, description = "conflict with the stream's state")), security(("bearer" = [])))]
pub async fn create_creator(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<NewCreator>,
) -> Result<impl IntoResponse, ApiError> {
    if who != Principal::Admin {
        return Err(ApiError::Forbidden(
            "only the admin creates creators".into(),
        ));
    }
    if !valid_handle(&body.handle) {
        return Err(ApiError::bad_request(
            "handle must be 2-32 characters of a-z, 0-9 and _",
        ));
    }
    let (creator, token) = state.store.create_creator(&body.handle).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": creator.id, "handle": creator.handle, "token": token})),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    title: String,
    scheduled_at: Option<DateTime<Utc>>,
    category: Option<String>,
    mode: Option<Mode>,
    /// A built-in ladder preset name; absent = the server's default.
    ladder: Option<String>,
    /// Pull the stream from an RTSP source (an IP camera) instead of waiting for a publisher.
    source: Option<NewSource>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    /// `rtsp://[user:password@]host[:port]/path`
    url: String,
    /// `tcp` (default, interleaved) or `udp`.
    transport: Option<Transport>,
}

#[utoipa::path(post, path = "/api/v1/streams", tag = "streams", request_body = CreateStream, responses((status = 201, description = "created"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 409, description = "a public stream while the creator has policy.max_strikes strikes"), (status = 413, description = "body too large"), (status = 415, description = "not JSON")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<CreateStream>,
) -> Result<impl IntoResponse, ApiError> {
    let Principal::Creator(creator_id) = who else {
        return Err(ApiError::Forbidden(
            "streams belong to creators; use a creator token".into(),
        ));
    };
    let title = body.title.trim().to_string();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request(format!(
            "title must be 1-{MAX_TITLE_CHARS} characters"
        )));
    }
    if matches!(&body.category, Some(c) if c.chars().count() > MAX_CATEGORY_CHARS) {
        return Err(ApiError::bad_request(format!(
            "category must be at most {MAX_CATEGORY_CHARS} characters"
        )));
    }
    if let Some(ladder) = &body.ladder
        && LadderSpec::builtin(ladder).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "unknown ladder {ladder:?}; choose one of {}",
            LadderSpec::builtin_names().join(", ")
        )));
    }
    let scheduled_at = super::dates::check_opt("scheduled_at", body.scheduled_at)?;
    if body.mode == Some(Mode::Public) {
        super::access::ensure_may_go_public(&state, &creator_id).await?;
    }
    let source = body
        .source
        .map(|s| PullSource::parse(&s.url, s.transport.unwrap_or_default()))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(source) = &source {
        state
            .registry
            .check_source(source)
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let new = NewStream {
        creator_id,
        title,
        category: body.category,
        scheduled_at,
        mode: body.mode.unwrap_or(Mode::Practice),
        ladder: body.ladder,
    };
    let stream = state.registry.create(new, source.clone()).await?;
    let mut v = stream_json(&state, &stream, true, None);
    if let Some(source) = &source {
        v["source"] = source_json(source);
    }
    Ok((StatusCode::CREATED, axum::Json(v)))
}

pub fn playback_url(state: &AppState, stream: &Stream, owner: bool) -> String {
    signed_for_owner(
        state,
        stream,
        owner,
        format!("{}/hls/{}/master.m3u8", state.public_url, stream.id),
    )
}

/// `rtsp://host:port/live/{id}`, signed like the HLS URL for the owner of a practice stream.
pub fn rtsp_playback_url(state: &AppState, stream: &Stream, owner: bool) -> String {
    signed_for_owner(
        state,
        stream,
        owner,
        format!("{}/live/{}", state.rtsp_url, stream.id),
    )
}

fn signed_for_owner(state: &AppState, stream: &Stream, owner: bool, base: String) -> String {
    if owner && stream.mode == Mode::Practice {
        let expires =
            Utc::now().timestamp() + state.config.http.playback_token_ttl.as_secs() as i64;
        format!(
            "{base}?token={}",
            signing::sign(&state.secret, Purpose::Playback, &stream.id, expires)
        )
    } else {
        base
    }
}

pub(crate) fn display_state(stream: &Stream) -> &'static str {
    match stream.state {
        StreamState::Ready if stream.scheduled_at.is_some_and(|t| t > Utc::now()) => "scheduled",
        s => s.as_str(),
    }
}

/// Whether the master playlist answers yet: a stream that just went live has none until its first
/// segments are cut (pages wait for this instead of polling the playlist into 404s).
fn playback_ready(state: &AppState, stream: &Stream, owner: bool) -> bool {
    let audience = if owner {
        Audience::Owner
    } else {
        Audience::Public
    };
    match state.registry.live(&stream.id) {
        // The master URL serves the low-latency renditions when they are on.
        Some(live) if !live.finished.is_cancelled() => live
            .ll
            .as_deref()
            .unwrap_or(&live.hls)
            .master_playlist(audience, None)
            .is_some(),
        _ => stream.state == StreamState::Ended,
    }
}

/// The stream object of DESIGN.md. Owners see the key, ingest URLs, recording and health.
pub fn stream_json(
    state: &AppState,
    stream: &Stream,
    owner: bool,
    recording: Option<Recording>,
) -> Value {
    let mut v = json!({
        "id": stream.id,
        "title": stream.title,
        "category": stream.category,
        "scheduled_at": stream.scheduled_at,
        "mode": stream.mode,
        "state": display_state(stream),
        "ladder": stream.ladder.as_deref().unwrap_or(&state.default_ladder),
        "created_at": stream.created_at,
        "started_at": stream.started_at,
        "ended_at": stream.ended_at,
        "playback": {
            "hls": playback_url(state, stream, owner),
            "rtsp": rtsp_playback_url(state, stream, owner),
            "ready": playback_ready(state, stream, owner),
        },
    });
    if owner {
        let key = stream.stream_key.expose();
        v["stream_key"] = json!(key);
        v["ingest"] = json!({
            "rtmp": format!("{}/{key}", state.rtmp_url),
            "rtmp_server": state.rtmp_url.as_ref(),
            "srt": format!("{}?streamid=publish:{key}", state.srt_url),
            // WHIP (OBS 30+: Service "WHIP", Server this URL, Bearer Token the stream key).
            "whip": format!("{}/whip/{}", state.public_url, stream.id.as_str()),
        });
        if let Some(rtmps) = &state.rtmps_url {
            v["ingest"]["rtmps"] = json!(format!("{rtmps}/{key}"));
            v["ingest"]["rtmps_server"] = json!(rtmps.as_ref());
        }
        v["recording"] = match recording {
            Some(r) => {
                json!({"state": r.state, "bytes": r.bytes, "duration_s": r.duration_ms as f64 / 1000.0, "error": r.error})
            }
            None => Value::Null,
        };
        if let Some(live) = state.registry.live(&stream.id) {
            let mut health = live.health();
            health.warnings.extend(state.disk.warning());
            let uploads = live.uploads.as_ref().map(|u| u.report());
            if let Some(error) = uploads.as_ref().and_then(|u| u.failing.as_ref()) {
                health.warnings.push(format!(
                    "object storage does not take the stream's segments ({error}); they stay on \
                     this server's disk and go up when it answers again"
                ));
            }
            v["health"] = serde_json::to_value(health).unwrap_or(Value::Null);
            if let Some(uploads) = uploads {
                v["health"]["uploads"] = json!(uploads);
            }
        }
    }
    v
}

/// A pulled stream's source as its owner sees it: the URL without the password.
fn source_json(source: &PullSource) -> Value {
    json!({"url": source.for_owner(), "transport": source.transport})
}

/// Adds `source` to an owner's stream object when the stream is pulled.
async fn with_source(state: &AppState, id: &StreamId, mut v: Value) -> Result<Value, ApiError> {
    if let Some(source) = state.store.source(id).await? {
        v["source"] = source_json(&source);
    }
    Ok(v)
}

#[utoipa::path(get, path = "/api/v1/streams/{id}", tag = "streams", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "OK"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn get_one(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, owner) = visible_stream(&state, &id, &who).await?;
    let recording = if owner {
        state.store.recording(&stream.id).await?
    } else {
        None
    };
    let v = stream_json(&state, &stream, owner, recording);
    let v = if owner {
        let mut v = with_source(&state, &stream.id, v).await?;
        v["destinations"] = super::destinations::stream_targets(&state, &stream).await?;
        if let Some(t) = state.store.takedown(&stream.id).await? {
            v["takedown"] = serde_json::to_value(t).unwrap_or(Value::Null);
        }
        v
    } else {
        v
    };
    Ok(axum::Json(v))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMode {
    mode: Mode,
}

#[utoipa::path(put, path = "/api/v1/streams/{id}/mode", tag = "streams", params(("id" = String, Path, description = "stream id")), request_body = SetMode, responses((status = 200, description = "OK"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "public refused: the stream was taken down, or its creator has policy.max_strikes strikes")), security(("bearer" = [])))]
pub async fn set_mode(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<SetMode>,
) -> Result<impl IntoResponse, ApiError> {
    let mut stream = owned_stream(&state, &id, &who).await?;
    if body.mode == Mode::Public && stream.mode != Mode::Public {
        super::access::ensure_not_taken_down(&state, &stream.id).await?;
        super::access::ensure_may_go_public(&state, &stream.creator_id).await?;
    }
    if stream.state == StreamState::Ended {
        // The recording and VOD keep following the mode, so this is allowed after the end too.
        tracing::debug!(stream = %stream.id, "mode changed after the end");
    }
    state.registry.set_mode(&stream.id, body.mode).await?;
    stream.mode = body.mode;
    let recording = state.store.recording(&stream.id).await?;
    Ok(axum::Json(stream_json(&state, &stream, true, recording)))
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/end", tag = "streams", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "OK"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "conflict with the stream's state")), security(("bearer" = [])))]
pub async fn end(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    if stream.state == StreamState::Ended {
        return Err(ApiError::Conflict("the stream has already ended".into()));
    }
    state.registry.end(&stream.id).await?;
    Ok(axum::Json(owner_view(&state, &stream.id).await?))
}

/// The stream object as its owner sees it now (after a change).
async fn owner_view(state: &AppState, id: &StreamId) -> Result<Value, ApiError> {
    let mut stream = state.store.stream(id).await?.ok_or(ApiError::NotFound)?;
    if let Some(live) = state.registry.live(id) {
        stream.mode = live.mode();
    }
    let recording = state.store.recording(id).await?;
    let mut v = with_source(state, id, stream_json(state, &stream, true, recording)).await?;
    v["destinations"] = super::destinations::stream_targets(state, &stream).await?;
    Ok(v)
}

/// A live stream's pipeline as Graphviz DOT (admin only).
#[utoipa::path(get, path = "/api/v1/streams/{id}/pipeline.dot", tag = "operations", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "OK"), (status = 401, description = "missing or unknown token"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn pipeline_dot(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if who != Principal::Admin {
        return Err(ApiError::NotFound);
    }
    let id = StreamId::parse(&id).ok_or(ApiError::NotFound)?;
    let pipeline = state
        .registry
        .live(&id)
        .and_then(|s| s.pipeline())
        .ok_or(ApiError::NotFound)?;
    use gstreamer::prelude::*;
    let dot = pipeline.debug_to_dot_data(gstreamer::DebugGraphDetails::all());
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/vnd.graphviz"),
        )],
        // Simulcast targets' addresses hold their stream keys.
        crate::pipeline::target::hide_addresses(dot.as_str()),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
}

/// The caller's streams (the admin's: everyone's), newest first, optionally in one state
/// (`scheduled` is `ready` with a future `scheduled_at`).
#[utoipa::path(get, path = "/api/v1/streams", tag = "streams", params(("state" = Option<String>, Query, description = "scheduled, ready, live or ended")), responses((status = 200, description = "OK"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let creator = match &who {
        Principal::Creator(id) => Some(id),
        Principal::Admin => None,
        Principal::Viewer(_) => {
            return Err(ApiError::Forbidden(
                "streams are listed for their creators".into(),
            ));
        }
    };
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s @ ("scheduled" | "ready" | "live" | "ended")) => Some(s),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown state {other:?}; one of scheduled, ready, live, ended"
            )));
        }
    };
    let stored = match wanted {
        Some("scheduled" | "ready") => Some(StreamState::Ready),
        Some("live") => Some(StreamState::Live),
        Some("ended") => Some(StreamState::Ended),
        _ => None,
    };
    let mut out = Vec::new();
    for mut stream in state.store.streams_of(creator, stored).await? {
        if wanted.is_some_and(|w| w != display_state(&stream)) {
            continue;
        }
        if let Some(live) = state.registry.live(&stream.id) {
            stream.mode = live.mode();
        }
        let recording = state.store.recording(&stream.id).await?;
        out.push(stream_json(&state, &stream, true, recording));
    }
    Ok(axum::Json(json!({ "streams": out })))
}

/// Present-but-null and absent are different for nullable fields: `Some(None)` clears.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditStream {
    title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    category: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    scheduled_at: Option<Option<DateTime<Utc>>>,
}

/// Edits title, category and schedule while the stream has not ended (409 after).
#[utoipa::path(patch, path = "/api/v1/streams/{id}", tag = "streams", params(("id" = String, Path, description = "stream id")), request_body = EditStream, responses((status = 200, description = "OK"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "conflict with the stream's state")), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<EditStream>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let title = body.title.map(|t| t.trim().to_string());
    if title
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.chars().count() > MAX_TITLE_CHARS)
    {
        return Err(ApiError::bad_request(format!(
            "title must be 1-{MAX_TITLE_CHARS} characters"
        )));
    }
    if matches!(&body.category, Some(Some(c)) if c.chars().count() > MAX_CATEGORY_CHARS) {
        return Err(ApiError::bad_request(format!(
            "category must be at most {MAX_CATEGORY_CHARS} characters"
        )));
    }
    let scheduled_at = match body.scheduled_at {
        Some(at) => Some(super::dates::check_opt("scheduled_at", at)?),
        None => None,
    };
    let edit = crate::store::StreamEdit {
        title,
        category: body.category,
        scheduled_at,
    };
    if !state.store.edit_stream(&stream.id, edit).await? {
        return Err(ApiError::Conflict(
            "an ended stream cannot be edited".into(),
        ));
    }
    Ok(axum::Json(owner_view(&state, &stream.id).await?))
}

/// Deletes a stream that never went live (409 once it has).
#[utoipa::path(delete, path = "/api/v1/streams/{id}", tag = "streams", params(("id" = String, Path, description = "stream id")), responses((status = 204, description = "done"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "conflict with the stream's state")), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    if !state.registry.delete(&stream.id).await? {
        return Err(ApiError::Conflict(
            "only a stream that never went live can be deleted; end it instead".into(),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A new stream key; the old one stops working for new publishes (a running publish goes on).
#[utoipa::path(post, path = "/api/v1/streams/{id}/key", tag = "streams", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "OK"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "conflict with the stream's state")), security(("bearer" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    if state.registry.rotate_key(&stream.id).await?.is_none() {
        return Err(ApiError::Conflict(
            "an ended stream has no key to rotate".into(),
        ));
    }
    Ok(axum::Json(owner_view(&state, &stream.id).await?))
}
