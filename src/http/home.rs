//! The home page's rows: live now, featured (creators with the `home_featured_row` benefit of
//! `commerce.levels.benefits`),
//! live streams by category, and upcoming (scheduled) streams. Public live streams only, most watched first in every row.
use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use super::commerce::creator_standing;
use super::error::ApiError;
use super::listings::{listed, public_streams};
use crate::shop::levels::{Benefit, has_benefit};
use crate::store::StreamState;

/// Streams per row.
const ROW_LIMIT: usize = 24;

#[utoipa::path(get, path = "/api/v1/home", tag = "listings", responses((status = 200, description = "`{live, featured, categories: [{category, streams}], upcoming}`: public live streams, most watched first; `featured` only has creators from the featured level up; `upcoming`: public scheduled streams, soonest first")))]
pub async fn home(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let levels_config = &state.config.commerce.levels;
    let mut levels = HashMap::new();
    let mut rows: Vec<(Value, bool)> = Vec::new();
    for (stream, handle) in public_streams(&state, None, Some(StreamState::Live)).await? {
        let level = match levels.get(&stream.creator_id) {
            Some(&l) => l,
            None => {
                let l = creator_standing(&state, &stream.creator_id).await?.0.level;
                levels.insert(stream.creator_id.clone(), l);
                l
            }
        };
        let featured = has_benefit(levels_config, level, Benefit::HomeFeaturedRow);
        rows.push((listed(&state, &stream, &handle), featured));
    }
    rows.sort_by_key(|(v, _)| std::cmp::Reverse(v["viewers"].as_u64().unwrap_or(0)));
    let live: Vec<Value> = rows
        .iter()
        .take(ROW_LIMIT)
        .map(|(v, _)| v.clone())
        .collect();
    let featured: Vec<Value> = rows
        .iter()
        .filter(|(_, f)| *f)
        .take(ROW_LIMIT)
        .map(|(v, _)| v.clone())
        .collect();
    let mut by_category: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (v, _) in &rows {
        if let Some(c) = v["category"].as_str() {
            let row = by_category.entry(c.to_string()).or_default();
            if row.len() < ROW_LIMIT {
                row.push(v.clone());
            }
        }
    }
    let categories: Vec<Value> = by_category
        .into_iter()
        .map(|(category, streams)| json!({"category": category, "streams": streams}))
        .collect();
    let mut upcoming: Vec<(Option<chrono::DateTime<chrono::Utc>>, Value)> = Vec::new();
    for (stream, handle) in public_streams(&state, None, Some(StreamState::Ready)).await? {
        if super::streams::display_state(&stream) == "scheduled" {
            upcoming.push((stream.scheduled_at, listed(&state, &stream, &handle)));
        }
    }
    upcoming.sort_by_key(|(at, _)| *at);
    let upcoming: Vec<Value> = upcoming
        .into_iter()
        .take(ROW_LIMIT)
        .map(|(_, v)| v)
        .collect();
    Ok(axum::Json(json!({
        "live": live,
        "featured": featured,
        "categories": categories,
        "upcoming": upcoming,
    })))
}
