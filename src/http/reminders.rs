//! "Remind me" on upcoming streams, and what the watch page shows a signed-in viewer about a
//! stream (its creator to follow, whether they follow, their reminder, their redeemed code).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde_json::json;

use super::AppState;
use super::access::visible_stream;
use super::error::ApiError;
use super::extract::{Auth, MaybeAuth};
use super::viewers::viewer;
use crate::store::{Principal, ReminderAdded, Stream, StreamState, ViewerId};

/// Reminders a viewer may have waiting at once.
pub const MAX_PENDING_REMINDERS: u32 = 100;

/// The calling viewer and a stream they may see.
async fn viewer_and_stream(
    state: &AppState,
    who: Principal,
    id: &str,
) -> Result<(ViewerId, Stream), ApiError> {
    let me = viewer(who.clone())?;
    let (stream, _) = visible_stream(state, id, &Some(who)).await?;
    Ok((me, stream))
}

#[utoipa::path(put, path = "/api/v1/streams/{id}/reminder", tag = "followers", params(("id" = String, Path, description = "stream id")), responses((status = 201, description = "set: a `reminder` notification comes at the stream's scheduled time"), (status = 200, description = "set before"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a viewer"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "the stream is not scheduled ahead"), (status = 429, description = "100 reminders are waiting already")), security(("bearer" = [])))]
pub async fn set(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (me, stream) = viewer_and_stream(&state, who, &id).await?;
    if stream.state != StreamState::Ready || stream.scheduled_at.is_none_or(|t| t <= Utc::now()) {
        return Err(ApiError::Conflict(
            "reminders are for streams scheduled ahead that have not started".into(),
        ));
    }
    let status = match state
        .store
        .add_reminder(&me, &stream.id, MAX_PENDING_REMINDERS)
        .await?
    {
        ReminderAdded::New => StatusCode::CREATED,
        ReminderAdded::Existing => StatusCode::OK,
        ReminderAdded::TooMany => {
            return Err(ApiError::TooManyRequests(format!(
                "at most {MAX_PENDING_REMINDERS} reminders may wait at once"
            )));
        }
    };
    state.notifier.reminders_changed();
    Ok((
        status,
        axum::Json(json!({"stream_id": stream.id, "at": stream.scheduled_at})),
    ))
}

#[utoipa::path(delete, path = "/api/v1/streams/{id}/reminder", tag = "followers", params(("id" = String, Path, description = "stream id")), responses((status = 204, description = "removed (or there was none waiting)"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a viewer"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (me, stream) = viewer_and_stream(&state, who, &id).await?;
    state.store.remove_reminder(&me, &stream.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The stream from the calling viewer's side, for the watch page.
#[utoipa::path(get, path = "/api/v1/streams/{id}/viewer", tag = "followers", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "`{creator, viewer: null | {following, reminder: null | {fired}, redemption}}`: the creator's handle, and for a signed-in viewer whether they follow them, their reminder, their redeemed promo code on the stream"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn viewer_state(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &who).await?;
    let creator = state
        .store
        .creator(&stream.creator_id)
        .await?
        .map(|c| c.handle);
    let me = match &who {
        Some(Principal::Viewer(v)) => {
            let following = state.store.follows(v, &stream.creator_id).await?;
            let reminder = state
                .store
                .reminder(v, &stream.id)
                .await?
                .map(|fired| json!({"fired": fired.is_some()}));
            let redemption = state.store.redemption_on_stream(&stream.id, v).await?;
            json!({"following": following, "reminder": reminder, "redemption": redemption})
        }
        _ => serde_json::Value::Null,
    };
    Ok(axum::Json(json!({"creator": creator, "viewer": me})))
}
