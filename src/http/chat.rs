//! Chat over REST: a stream's stored chat (paged, also after the end), and moderation by the
//! creator: deleting messages, banning viewers from all of the creator's streams, blocked words.
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::{owned_stream, visible_stream};
use super::error::ApiError;
use super::extract::{Auth, Json, MaybeAuth};
use super::streams::valid_handle;
use crate::store::{CreatorId, Principal};

/// Messages per page of `GET …/chat` (default and maximum).
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
/// Longest timeout a ban may have (longer: ban without `duration_s`).
const MAX_BAN_SECONDS: u64 = 366 * 24 * 3600;

fn creator(who: Principal) -> Result<CreatorId, ApiError> {
    match who {
        Principal::Creator(id) => Ok(id),
        _ => Err(ApiError::Forbidden(
            "chat moderation settings belong to creators; use a creator token".into(),
        )),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatPageQuery {
    /// Older than this message id (from `next_before`).
    before: Option<i64>,
    limit: Option<u32>,
}

/// A stream's chat, newest first, without deleted messages; visible like the stream, also after
/// it ended.
#[utoipa::path(get, path = "/api/v1/streams/{id}/chat", tag = "chat",
    params(("id" = String, Path, description = "stream id"), ("before" = Option<i64>, Query), ("limit" = Option<u32>, Query, description = "1-200, default 50")),
    responses((status = 200, description = "{messages: [ChatMessage], next_before}"), (status = 400, description = "bad input"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn page(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
    Query(q): Query<ChatPageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, owner) = visible_stream(&state, &id, &who).await?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let messages = state
        .store
        .chat_page(&stream.id, q.before, limit, owner)
        .await?;
    let next_before = (messages.len() as u32 == limit)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(axum::Json(
        json!({"messages": messages, "next_before": next_before}),
    ))
}

/// Deletes a message: it leaves the replay and the pages, and clients get `message_deleted`.
#[utoipa::path(delete, path = "/api/v1/streams/{id}/chat/{message_id}", tag = "chat",
    params(("id" = String, Path, description = "stream id"), ("message_id" = i64, Path, description = "chat message id")),
    responses((status = 204, description = "done"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)")),
    security(("bearer" = [])))]
pub async fn delete_message(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let message_id: i64 = message_id.parse().map_err(|_| ApiError::NotFound)?;
    if !state.chat.delete(&stream.id, message_id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBan {
    /// The viewer's handle.
    user: String,
    /// A timeout: the ban ends by itself after this many seconds. Absent: until it is lifted.
    duration_s: Option<u64>,
}

/// Bans (or times out) a viewer from the chat of all of the caller's streams; replaces an earlier
/// ban of the same viewer. Streams with listeners get `user_banned`.
#[utoipa::path(post, path = "/api/v1/me/chat/bans", tag = "chat", request_body = NewBan,
    responses((status = 201, description = "the ban: {user, until, created_at}", body = crate::store::ChatBan), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "no viewer with that handle")),
    security(("bearer" = [])))]
pub async fn ban(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<NewBan>,
) -> Result<impl IntoResponse, ApiError> {
    let creator = creator(who)?;
    if body
        .duration_s
        .is_some_and(|d| !(1..=MAX_BAN_SECONDS).contains(&d))
    {
        return Err(ApiError::bad_request(format!(
            "duration_s must be 1-{MAX_BAN_SECONDS}; leave it out to ban until lifted"
        )));
    }
    if !valid_handle(&body.user) {
        return Err(ApiError::NotFound);
    }
    let ban = state
        .chat
        .ban(
            &creator,
            &body.user,
            body.duration_s.map(Duration::from_secs),
        )
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, axum::Json(ban)))
}

/// The bans in force in the caller's chats, newest first.
#[utoipa::path(get, path = "/api/v1/me/chat/bans", tag = "chat",
    responses((status = 200, description = "{bans: [{user, until, created_at}]}"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed")),
    security(("bearer" = [])))]
pub async fn bans(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let bans = state.store.bans(&creator(who)?).await?;
    Ok(axum::Json(json!({ "bans": bans })))
}

/// Lifts a ban (404 when that viewer is not banned).
#[utoipa::path(delete, path = "/api/v1/me/chat/bans/{handle}", tag = "chat",
    params(("handle" = String, Path, description = "viewer handle")),
    responses((status = 204, description = "done"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not banned")),
    security(("bearer" = [])))]
pub async fn unban(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(handle): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let creator = creator(who)?;
    if !valid_handle(&handle) || !state.chat.unban(&creator, &handle).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedWords {
    /// Words or phrases (at most 1000, each at most 64 characters).
    words: Vec<String>,
}

/// Replaces the words and phrases the caller's chats refuse (case-insensitive, whole words).
/// Answers the list as stored: lowercase, single spaces, sorted, without duplicates.
#[utoipa::path(put, path = "/api/v1/me/chat/blocked_words", tag = "chat", request_body = BlockedWords,
    responses((status = 200, description = "{words: [...]}"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed")),
    security(("bearer" = [])))]
pub async fn set_blocked_words(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<BlockedWords>,
) -> Result<impl IntoResponse, ApiError> {
    let creator = creator(who)?;
    let words = state
        .chat
        .set_blocked_words(&creator, &body.words)
        .await?
        .map_err(ApiError::bad_request)?;
    Ok(axum::Json(json!({ "words": words })))
}

#[utoipa::path(get, path = "/api/v1/me/chat/blocked_words", tag = "chat",
    responses((status = 200, description = "{words: [...]}"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed")),
    security(("bearer" = [])))]
pub async fn blocked_words(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let rules = state.store.chat_rules(&creator(who)?).await?;
    Ok(axum::Json(json!({ "words": rules.blocked_words })))
}
