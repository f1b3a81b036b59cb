//! The product in focus while live, and the chapters it leaves in the recording.
//!
//! A focus change is a command of the stream's owner (`StreamRegistry::focus`): stamped with the
//! media time of the newest frame ingested when it is made, written into every rendition's media
//! playlist as an `EXT-X-DATERANGE` (`CLASS="com.livefront.product"`), stored (the stream's focus
//! timeline), and announced as a stream event (the live channel sends `product_focused`).
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::access::{owned_stream, visible_stream};
use super::error::ApiError;
use super::extract::{Auth, Json, MaybeAuth};
use super::products::chosen_carousel_product;
use crate::live::Focus;
use crate::output::hls;
use crate::output::visibility::PublicIntervals;
use crate::store::{Chapter, FocusedProduct, ProductId, StreamId, chapters};
use crate::streams::clips;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FocusRequest {
    /// A product of the stream's carousel, or null to clear the focus.
    product_id: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/streams/{id}/focus", tag = "products", params(("id" = String, Path)), request_body = FocusRequest, responses((status = 200, description = "the focus, stamped with the stream's media time", body = Focus), (status = 400, description = "not a product of the stream's carousel"), (status = 403, description = "not the stream's creator"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "the stream is not live")), security(("bearer" = [])))]
pub async fn set_focus(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<FocusRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let product = match &body.product_id {
        None => None,
        Some(raw) => Some(FocusedProduct::from(
            &chosen_carousel_product(&state, &stream, raw).await?,
        )),
    };
    let event = state.registry.focus(&stream.id, product).await?;
    Ok(axum::Json(Focus::from(&event)))
}

/// One product's span of the recording.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChapterView {
    #[schema(value_type = String)]
    pub product_id: ProductId,
    pub title: String,
    /// Seconds from the start of the recording.
    pub start_s: f64,
    /// `null` while the product is still in focus on a live stream.
    pub end_s: Option<f64>,
}

impl From<&Chapter> for ChapterView {
    fn from(c: &Chapter) -> Self {
        ChapterView {
            product_id: c.product.id.clone(),
            title: c.product.title.clone(),
            start_s: seconds(c.start_ms),
            end_s: c.end_ms.map(seconds),
        }
    }
}

pub fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/chapters", tag = "products", params(("id" = String, Path)), responses((status = 200, description = "one chapter per product focus: for the owner in recording seconds; for anyone else in seconds of the public replay, clipped to public media"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn list_chapters(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, owner) = visible_stream(&state, &id, &who).await?;
    let timeline = state.store.focus_timeline(&stream.id).await?;
    // While live the last chapter is open; after the end it closes with the recording.
    let end_ms = match state.registry.live(&stream.id) {
        Some(_) => None,
        None => state
            .store
            .recording(&stream.id)
            .await?
            .map(|r| r.duration_ms)
            .filter(|&d| d > 0),
    };
    let chapters = match public_media(&state, &stream.id).await? {
        Some(public) if !owner => clips::public_chapters(&timeline, end_ms, &public),
        _ => chapters(&timeline, end_ms),
    };
    let chapters: Vec<ChapterView> = chapters.iter().map(ChapterView::from).collect();
    Ok(axum::Json(json!({ "chapters": chapters })))
}

/// Where a stream's public media is on its recording's timeline: from the live stream while it
/// runs, from its public replay (or the persisted intervals) after. `None` for a stream from
/// before public media was kept apart, whose recording is shown as it is.
pub async fn public_media(
    state: &AppState,
    id: &StreamId,
) -> Result<Option<PublicIntervals>, ApiError> {
    if let Some(live) = state.registry.live(id) {
        return Ok(Some(live.hls.public_media()));
    }
    if let Some(replay) = state.store.public_replay(id).await? {
        return Ok(Some(PublicIntervals {
            intervals_ms: replay.intervals_ms,
        }));
    }
    let dir = state.registry.paths(id).hls_dir();
    if !hls::keeps_public_files(&dir) {
        return Ok(None);
    }
    Ok(Some(
        hls::read_public_media(&state.files, &dir)
            .await
            .unwrap_or_default(),
    ))
}
