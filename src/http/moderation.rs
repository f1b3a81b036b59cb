//! Community policy: viewer reports and the admin's queue, takedowns, strikes.
//!
//! A takedown makes the stream practice for good (the store refuses to make it public again and
//! the live stream reports practice whatever sets its mode), so every URL that hides practice
//! streams hides it too; signed links stop working for it (see `signed_links_allowed`).
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::visible_stream;
use super::error::ApiError;
use super::extract::{Auth, Json};
use crate::store::{Principal, ReportTarget, StreamId};

const MAX_REASON_CHARS: usize = 1000;
const MAX_POLICY_CHARS: usize = 64;
const MAX_MESSAGE_ID_CHARS: usize = 128;
/// Reports per page of the admin queue.
const REPORTS_PAGE: u32 = 50;

fn text(value: &str, name: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{name} must be 1-{max} characters"
        )));
    }
    Ok(v.to_string())
}

fn require_admin(who: &Principal) -> Result<(), ApiError> {
    match who {
        Principal::Admin => Ok(()),
        _ => Err(ApiError::Forbidden("only the admin may do this".into())),
    }
}

/// What is reported: exactly one of the two.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    stream_id: Option<String>,
    /// A chat message's id (up to 128 characters of A-Z, a-z, 0-9, `_`, `-`).
    chat_message_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    target: TargetBody,
    reason: String,
}

/// One report per viewer and target: a second one answers 200 with the first (its reason kept).
#[utoipa::path(post, path = "/api/v1/reports", tag = "moderation", request_body = NewReport, responses((status = 201, description = "reported", body = crate::store::Report), (status = 200, description = "this viewer reported this target before: that report", body = crate::store::Report), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a viewer"), (status = 404, description = "stream not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn report(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<NewReport>,
) -> Result<impl IntoResponse, ApiError> {
    let Principal::Viewer(viewer) = &who else {
        return Err(ApiError::Forbidden(
            "reports are filed by viewers; register with POST /api/v1/viewers".into(),
        ));
    };
    let reason = text(&body.reason, "reason", MAX_REASON_CHARS)?;
    let target = match (body.target.stream_id, body.target.chat_message_id) {
        (Some(id), None) => {
            let (stream, _) = visible_stream(&state, &id, &Some(who.clone())).await?;
            ReportTarget::StreamId(stream.id)
        }
        (None, Some(m)) => {
            let ok = (1..=MAX_MESSAGE_ID_CHARS).contains(&m.len())
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "chat_message_id must be 1-{MAX_MESSAGE_ID_CHARS} characters of A-Z, a-z, 0-9, _ and -"
                )));
            }
            ReportTarget::ChatMessageId(m)
        }
        _ => {
            return Err(ApiError::bad_request(
                "target must have exactly one of stream_id and chat_message_id",
            ));
        }
    };
    let (report, new) = state.store.file_report(viewer, target, reason).await?;
    if new {
        tracing::info!(report = report.id, target = ?report.target, "report filed");
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(report)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportsQuery {
    /// Older than this report id (from `next_before`).
    before: Option<i64>,
    limit: Option<u32>,
}

/// The report queue, newest first; each report carries how many reports its target has.
#[utoipa::path(get, path = "/api/v1/admin/reports", tag = "moderation", params(("before" = Option<i64>, Query), ("limit" = Option<u32>, Query, description = "1-50, default 50")), responses((status = 200, description = "{reports: [...], next_before}"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not the admin")), security(("bearer" = [])))]
pub async fn reports(
    State(state): State<AppState>,
    Auth(who): Auth,
    Query(q): Query<ReportsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&who)?;
    let limit = q.limit.unwrap_or(REPORTS_PAGE).clamp(1, REPORTS_PAGE);
    let page = state.store.reports(q.before, limit).await?;
    let next_before = (page.len() as u32 == limit)
        .then(|| page.last().map(|r| r.id))
        .flatten();
    Ok(axum::Json(
        json!({"reports": page, "next_before": next_before}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakedownBody {
    /// Shown to the creator (`GET /api/v1/me/violations`).
    reason: String,
    /// The policy broken, a short name such as `counterfeit_goods`.
    policy: String,
}

/// Takes a stream down: the publisher is disconnected, the stream ends and is practice for good
/// (gone from every listing; its media, clips, chapters and recording only for its creator and
/// the admin), and its creator gets a strike.
#[utoipa::path(post, path = "/api/v1/admin/streams/{id}/takedown", tag = "moderation", params(("id" = String, Path, description = "stream id")), request_body = TakedownBody, responses((status = 200, description = "{takedown, strike, active_strikes}"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not the admin"), (status = 404, description = "no such stream"), (status = 409, description = "taken down before")), security(("bearer" = [])))]
pub async fn takedown(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<TakedownBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&who)?;
    let reason = text(&body.reason, "reason", MAX_REASON_CHARS)?;
    let policy = body.policy.trim().to_string();
    let ok = (1..=MAX_POLICY_CHARS).contains(&policy.len())
        && policy
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(ApiError::bad_request(format!(
            "policy must be 1-{MAX_POLICY_CHARS} characters of a-z, 0-9, _ and -"
        )));
    }
    let id = StreamId::parse(&id).ok_or(ApiError::NotFound)?;
    let stream = state.store.stream(&id).await?.ok_or(ApiError::NotFound)?;
    let Some((takedown, strike)) = state.registry.take_down(&stream, reason, policy).await? else {
        return Err(ApiError::Conflict(
            "this stream was taken down before".into(),
        ));
    };
    let active = state.store.active_strikes(&stream.creator_id).await?;
    tracing::info!(stream = %id, policy = %takedown.policy, active_strikes = active, "stream taken down");
    Ok(axum::Json(json!({
        "takedown": takedown,
        "strike": strike,
        "active_strikes": active,
    })))
}

/// The calling creator's strikes (cleared ones too), and whether they may go public.
#[utoipa::path(get, path = "/api/v1/me/violations", tag = "moderation", responses((status = 200, description = "{violations: [strikes, newest first], active_strikes, max_strikes, can_go_public}"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator")), security(("bearer" = [])))]
pub async fn violations(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let Principal::Creator(creator) = &who else {
        return Err(ApiError::Forbidden(
            "violations are a creator's; use a creator token".into(),
        ));
    };
    let strikes = state.store.strikes(creator).await?;
    let active = strikes.iter().filter(|s| s.cleared_at.is_none()).count() as u32;
    let max = state.config.policy.max_strikes;
    Ok(axum::Json(json!({
        "violations": strikes,
        "active_strikes": active,
        "max_strikes": max,
        "can_go_public": active < max,
    })))
}

/// Clears a creator's active strikes (they stay in the history with `cleared_at`); taken-down
/// streams stay down.
#[utoipa::path(delete, path = "/api/v1/admin/creators/{handle}/strikes", tag = "moderation", params(("handle" = String, Path, description = "creator handle")), responses((status = 200, description = "{cleared: number of strikes cleared}"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not the admin"), (status = 404, description = "no such creator")), security(("bearer" = [])))]
pub async fn clear_strikes(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(handle): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&who)?;
    let creator = state
        .store
        .creator_by_handle(&handle)
        .await?
        .ok_or(ApiError::NotFound)?;
    let cleared = state.store.clear_strikes(&creator).await?;
    tracing::info!(creator = %creator, cleared, "strikes cleared");
    Ok(axum::Json(json!({ "cleared": cleared })))
}
