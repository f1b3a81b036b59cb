//! Clips: one MP4 per product chapter, cut from the recording after the stream ended. They follow
//! the stream's visibility: listed (with signed download links) to whoever may see the stream.
use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::access::visible_stream;
use super::error::ApiError;
use super::extract::MaybeAuth;
use super::focus::{ChapterView, seconds};
use super::recordings::attachment;
use super::signing::{self, Purpose, Verdict};
use crate::store::{ClipState, StreamId};

/// A clip as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClipView {
    /// The product chapter it shows (`start_s`/`end_s`: the focus interval).
    #[serde(flatten)]
    pub chapter: ChapterView,
    /// `cutting`, `ready` or `failed`.
    pub state: &'static str,
    /// What the file covers in recording seconds: it starts on the keyframe at or before the
    /// chapter's start (at most one keyframe interval earlier).
    pub clip_start_s: Option<f64>,
    pub clip_end_s: Option<f64>,
    pub bytes: Option<u64>,
    /// Signed, expiring (`recording.link_ttl`).
    pub download_url: Option<String>,
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/clips", tag = "products", params(("id" = String, Path)), responses((status = 200, description = "one clip per product chapter, with signed download links once cut"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn list(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &who).await?;
    let expires = Utc::now().timestamp() + state.config.recording.link_ttl.as_secs() as i64;
    let clips: Vec<ClipView> = state
        .store
        .clips(&stream.id)
        .await?
        .iter()
        .map(|clip| {
            let chapter = ChapterView::from(&clip.chapter);
            let seq = clip.chapter.seq;
            match &clip.state {
                ClipState::Cutting => ClipView {
                    chapter,
                    state: "cutting",
                    clip_start_s: None,
                    clip_end_s: None,
                    bytes: None,
                    download_url: None,
                    error: None,
                },
                ClipState::Ready {
                    start_ms,
                    end_ms,
                    bytes,
                } => {
                    let sig = signing::sign(&state.secret, Purpose::Clip(seq), &stream.id, expires);
                    ClipView {
                        chapter,
                        state: "ready",
                        clip_start_s: Some(seconds(*start_ms)),
                        clip_end_s: Some(seconds(*end_ms)),
                        bytes: Some(*bytes),
                        download_url: Some(format!(
                            "{}/clips/{}/{seq}.mp4?sig={sig}",
                            state.public_url, stream.id
                        )),
                        error: None,
                    }
                }
                ClipState::Failed(e) => ClipView {
                    chapter,
                    state: "failed",
                    clip_start_s: None,
                    clip_end_s: None,
                    bytes: None,
                    download_url: None,
                    error: Some(e.clone()),
                },
            }
        })
        .collect();
    Ok(axum::Json(json!({ "clips": clips })))
}

/// `GET /clips/{id}/{n}.mp4` for whoever may see the stream; an expired `sig` gets 403.
#[utoipa::path(get, path = "/clips/{id}/{file}", tag = "products", params(("id" = String, Path, description = "stream id"), ("file" = String, Path, description = "{n}.mp4"), ("sig" = Option<String>, Query, description = "signed download link")), responses((status = 200, description = "the clip"), (status = 206, description = "partial content"), (status = 403, description = "link expired"), (status = 503, description = "the file is in object storage, which does not answer"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn download(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path((id, file)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let stream_id = StreamId::parse(&id).ok_or(ApiError::NotFound)?;
    let seq: u32 = file
        .strip_suffix(".mp4")
        .and_then(|n| n.parse().ok())
        .ok_or(ApiError::NotFound)?;
    if let Some(sig) = params.get("sig")
        && signing::verify(&state.secret, Purpose::Clip(seq), &stream_id, sig) == Verdict::Expired
    {
        return Err(ApiError::Forbidden(
            "this download link has expired; list the clips again for a new one".into(),
        ));
    }
    // A link never opens more than the stream shows: a clip is public media, so anyone while the
    // stream is public, only its owner once it is back in practice or taken down (404 for
    // everyone else, as for an unknown id).
    visible_stream(&state, &id, &who).await?;
    let ready = state
        .store
        .clips(&stream_id)
        .await?
        .iter()
        .any(|c| c.chapter.seq == seq && matches!(c.state, ClipState::Ready { .. }));
    if !ready {
        return Err(ApiError::NotFound);
    }
    let path = state.registry.paths(&stream_id).clip(seq);
    attachment(
        &state,
        path,
        &format!("livefront-{stream_id}-clip{seq}.mp4"),
        request,
    )
    .await
}
