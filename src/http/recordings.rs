//! Recordings: status with a signed download link, and the download itself (Range requests).
use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::AppState;
use super::access::{owned_stream, visible_stream};
use super::error::ApiError;
use super::extract::{Auth, MaybeAuth};
use super::signing::{self, Purpose, Verdict};
use crate::store::{PublicReplay, RecordingState, StreamId};

/// `GET /api/v1/streams/{id}/recording`
#[utoipa::path(get, path = "/api/v1/streams/{id}/recording", tag = "recordings", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "OK"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let rec = state
        .store
        .recording(&stream.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let download_url = (rec.state == RecordingState::Ready).then(|| {
        let expires = Utc::now().timestamp() + state.config.recording.link_ttl.as_secs() as i64;
        let sig = signing::sign(&state.secret, Purpose::Recording, &stream.id, expires);
        format!(
            "{}/recordings/{}.mp4?sig={sig}",
            state.public_url, stream.id
        )
    });
    let replay = state.store.public_replay(&stream.id).await?;
    Ok(axum::Json(json!({
        "state": rec.state,
        "bytes": rec.bytes,
        "duration_s": rec.duration_ms as f64 / 1000.0,
        "download_url": download_url,
        "error": rec.error,
        "public_replay": replay.as_ref().map(|r| replay_json(&state, r, true)),
    })))
}

/// The public replay as listed: `intervals` (recording seconds) only for the owner.
fn replay_json(state: &AppState, r: &PublicReplay, owner: bool) -> serde_json::Value {
    let mut v = json!({
        "state": r.state,
        "bytes": r.bytes,
        "duration_s": r.duration_ms as f64 / 1000.0,
        "download_url": (r.state == RecordingState::Ready)
            .then(|| format!("{}/replays/{}.mp4", state.public_url, r.stream_id)),
        "error": r.error,
    });
    if owner {
        v["intervals"] = json!(
            r.intervals_ms
                .iter()
                .map(|&(s, e)| [s as f64 / 1000.0, e as f64 / 1000.0])
                .collect::<Vec<_>>()
        );
    }
    v
}

/// `GET /api/v1/streams/{id}/replay`: the public replay, for whoever may see the stream.
#[utoipa::path(get, path = "/api/v1/streams/{id}/replay", tag = "recordings", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "the public replay: its public intervals back to back"), (status = 404, description = "not found (or not yours to see), or no public media")))]
pub async fn replay_status(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, owner) = visible_stream(&state, &id, &who).await?;
    let replay = state
        .store
        .public_replay(&stream.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(replay_json(&state, &replay, owner)))
}

/// `GET /replays/{id}.mp4`: the public replay, for whoever may see the stream (no link needed
/// for a public one; the owner's bearer token for a practice one).
#[utoipa::path(get, path = "/replays/{file}", tag = "recordings", params(("file" = String, Path, description = "{id}.mp4")), responses((status = 200, description = "OK"), (status = 206, description = "partial content"), (status = 503, description = "the file is in object storage, which does not answer"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn replay_download(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(file): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = file.strip_suffix(".mp4").ok_or(ApiError::NotFound)?;
    let (stream, _) = visible_stream(&state, id, &who).await?;
    let ready = state
        .store
        .public_replay(&stream.id)
        .await?
        .is_some_and(|r| r.state == RecordingState::Ready);
    if !ready {
        return Err(ApiError::NotFound);
    }
    let path = state.registry.paths(&stream.id).public_replay();
    attachment(
        &state,
        path,
        &format!("livefront-{}-replay.mp4", stream.id),
        request,
    )
    .await
}

/// `GET /recordings/{id}.mp4` with the creator's bearer token or a valid `sig`.
#[utoipa::path(get, path = "/recordings/{file}", tag = "recordings", params(("file" = String, Path, description = "{id}.mp4"), ("sig" = Option<String>, Query, description = "signed download link")), responses((status = 200, description = "OK"), (status = 206, description = "partial content"), (status = 401, description = "missing or unknown token"), (status = 503, description = "the file is in object storage, which does not answer"), (status = 404, description = "not found (or not yours to see)"), (status = 410, description = "link expired")))]
pub async fn download(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(file): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = file
        .strip_suffix(".mp4")
        .and_then(StreamId::parse)
        .ok_or(ApiError::NotFound)?;
    let signed = match params.get("sig") {
        Some(sig) => match signing::verify(&state.secret, Purpose::Recording, &id, sig) {
            Verdict::Valid => true,
            Verdict::Expired => {
                return Err(ApiError::Forbidden(
                    "this download link has expired; ask the API for a new one".into(),
                ));
            }
            Verdict::Invalid => false,
        },
        None => false,
    };
    let stream = state.store.stream(&id).await?.ok_or(ApiError::NotFound)?;
    let signed = signed && super::access::signed_links_allowed(&state, &id).await?;
    let owner = who.as_ref().is_some_and(|p| p.owns(&stream));
    if !(signed || owner) {
        return Err(ApiError::NotFound);
    }
    let ready = state
        .store
        .recording(&id)
        .await?
        .is_some_and(|r| r.state == RecordingState::Ready);
    if !ready {
        return Err(ApiError::NotFound);
    }
    let path = state.registry.paths(&id).recording();
    attachment(&state, path, &format!("livefront-{id}.mp4"), request).await
}

/// A file as a download (`Content-Disposition: attachment`, Range requests, not cached), from
/// the disk or, once archived, from object storage. `name` must be ASCII without quotes.
pub async fn attachment(
    state: &AppState,
    path: std::path::PathBuf,
    name: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let mut response = match super::stored::object(&state.storage, &path, request.headers()).await?
    {
        Some(object) => super::stored::response(object, "video/mp4"),
        None => ServeFile::new(path)
            .oneshot(request)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .into_response(),
    };
    let disposition = format!("attachment; filename=\"{name}\"");
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}
