//! What viewers browse: a creator's storefront, the live row (by category) and the categories.
//! Public streams only; practice streams do not exist here.
use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::streams::display_state;
use crate::output::hls::Audience;
use crate::store::{Mode, Stream, StreamState};

/// Past streams on a storefront.
const PAST_LIMIT: usize = 50;

/// A stream as listings show it.
pub(super) fn listed(state: &AppState, stream: &Stream, creator: &str) -> Value {
    let base = &state.public_url;
    json!({
        "id": stream.id,
        "title": stream.title,
        "category": stream.category,
        "creator": creator,
        "state": display_state(stream),
        "scheduled_at": stream.scheduled_at,
        "started_at": stream.started_at,
        "ended_at": stream.ended_at,
        "playback": {"hls": format!("{base}/hls/{}/master.m3u8", stream.id)},
        // Only once the public has a poster (a stream that was public too briefly has none).
        "thumbnail": super::hls::poster(state, &stream.id, Audience::Public)
            .exists()
            .then(|| format!("{base}/api/v1/streams/{}/thumbnail.jpg", stream.id)),
        "viewers": state.audience.count(&stream.id),
    })
}

/// Public streams in `stored` state (all creators when `creator` is `None`), with creator handles.
pub(super) async fn public_streams(
    state: &AppState,
    creator: Option<&crate::store::CreatorId>,
    stored: Option<StreamState>,
) -> Result<Vec<(Stream, String)>, ApiError> {
    let mut handles = std::collections::HashMap::new();
    let mut out = Vec::new();
    for stream in state.store.streams_of(creator, stored).await? {
        let mode = state
            .registry
            .live(&stream.id)
            .map_or(stream.mode, |l| l.mode());
        if mode != Mode::Public {
            continue;
        }
        if !handles.contains_key(&stream.creator_id) {
            let handle = state
                .store
                .creator(&stream.creator_id)
                .await?
                .map(|c| c.handle)
                .unwrap_or_default();
            handles.insert(stream.creator_id.clone(), handle);
        }
        let handle = handles[&stream.creator_id].clone();
        out.push((stream, handle));
    }
    Ok(out)
}

/// `GET /api/v1/creators/{handle}/storefront`
#[utoipa::path(get, path = "/api/v1/creators/{handle}/storefront", tag = "listings", params(("handle" = String, Path, description = "creator handle")), responses((status = 200, description = "OK"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn storefront(
    State(state): State<AppState>,
    Path(handle): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let creator = state
        .store
        .creator_by_handle(&handle)
        .await?
        .ok_or(ApiError::NotFound)?;
    let followers = state.store.follower_count(&creator).await?;
    let (mut live, mut upcoming, mut past) = (Vec::new(), Vec::new(), Vec::new());
    for (stream, handle) in public_streams(&state, Some(&creator), None).await? {
        let entry = listed(&state, &stream, &handle);
        match display_state(&stream) {
            "live" => live.push(entry),
            "scheduled" => upcoming.push((stream.scheduled_at, entry)),
            "ended" if past.len() < PAST_LIMIT => past.push(entry),
            _ => {}
        }
    }
    upcoming.sort_by_key(|(at, _)| *at);
    let upcoming: Vec<Value> = upcoming.into_iter().map(|(_, e)| e).collect();
    Ok(axum::Json(json!({
        "creator": {"handle": handle, "followers": followers},
        "live": live,
        "upcoming": upcoming,
        "past": past,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    category: Option<String>,
}

/// `GET /api/v1/live?category=…`: public live streams, most watched first.
#[utoipa::path(get, path = "/api/v1/live", tag = "listings", params(("category" = Option<String>, Query)), responses((status = 200, description = "OK"), (status = 400, description = "bad input")))]
pub async fn live(
    State(state): State<AppState>,
    Query(q): Query<LiveQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let mut rows: Vec<Value> = public_streams(&state, None, Some(StreamState::Live))
        .await?
        .iter()
        .filter(|(s, _)| q.category.is_none() || s.category == q.category)
        .map(|(s, h)| listed(&state, s, h))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r["viewers"].as_u64().unwrap_or(0)));
    Ok(axum::Json(json!({ "streams": rows })))
}

/// `GET /api/v1/categories`: categories of public streams that are live or upcoming.
#[utoipa::path(get, path = "/api/v1/categories", tag = "listings", responses((status = 200, description = "OK")))]
pub async fn categories(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut counts: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for (stream, _) in public_streams(&state, None, None).await? {
        let Some(category) = stream.category.clone() else {
            continue;
        };
        match display_state(&stream) {
            "live" => counts.entry(category).or_default().0 += 1,
            "scheduled" => counts.entry(category).or_default().1 += 1,
            _ => {}
        }
    }
    let list: Vec<Value> = counts
        .into_iter()
        .map(|(category, (live, upcoming))| {
            json!({"category": category, "live": live, "upcoming": upcoming})
        })
        .collect();
    Ok(axum::Json(json!({ "categories": list })))
}
