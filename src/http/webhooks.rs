//! Webhooks of the calling creator: create (the secret is shown once), list, delete, and the log
//! of deliveries. Another creator's webhook is 404, as if it did not exist.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::extract::{Auth, Json};
use crate::store::{CreatorId, Principal, Webhook, WebhookId, generate_token};
use crate::webhooks::{EVENTS, target};

const MAX_URL_CHARS: usize = 2048;
/// Webhooks per creator.
const MAX_WEBHOOKS: usize = 20;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    url: String,
    events: Vec<String>,
}

fn creator(who: Principal) -> Result<CreatorId, ApiError> {
    match who {
        Principal::Creator(id) => Ok(id),
        _ => Err(ApiError::Forbidden(
            "webhooks belong to creators; use a creator token".into(),
        )),
    }
}

/// The caller's webhook `id`, or 404.
async fn own(state: &AppState, who: &CreatorId, id: &str) -> Result<Webhook, ApiError> {
    let id = WebhookId::parse(id).ok_or(ApiError::NotFound)?;
    match state.store.webhook(&id).await? {
        Some(hook) if &hook.creator_id == who => Ok(hook),
        _ => Err(ApiError::NotFound),
    }
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook, responses((status = 201, description = "created"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 409, description = "conflict with the stream's state")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<NewWebhook>,
) -> Result<impl IntoResponse, ApiError> {
    let creator_id = creator(who)?;
    if body.url.len() > MAX_URL_CHARS {
        return Err(ApiError::bad_request(format!(
            "url must be at most {MAX_URL_CHARS} characters"
        )));
    }
    let mut events = body.events;
    events.sort();
    events.dedup();
    if events.is_empty() {
        return Err(ApiError::bad_request(format!(
            "events must name at least one of {}",
            EVENTS.join(", ")
        )));
    }
    if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown event {unknown:?}; known: {}",
            EVENTS.join(", ")
        )));
    }
    target::check(&body.url, state.webhooks.allow_private_targets())
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if state.store.webhooks_of(&creator_id).await?.len() >= MAX_WEBHOOKS {
        return Err(ApiError::Conflict(format!(
            "a creator has at most {MAX_WEBHOOKS} webhooks; delete one first"
        )));
    }
    let hook = Webhook {
        id: WebhookId::generate(),
        creator_id,
        url: body.url,
        events,
        secret: generate_token().replacen("lft_", "whsec_", 1),
        created_at: Utc::now(),
    };
    state.store.create_webhook(hook.clone()).await?;
    let mut v = serde_json::to_value(&hook).map_err(|e| ApiError::Internal(e.to_string()))?;
    v["secret"] = json!(hook.secret);
    Ok((StatusCode::CREATED, axum::Json(v)))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, description = "OK"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let hooks = state.store.webhooks_of(&creator(who)?).await?;
    Ok(axum::Json(json!({ "webhooks": hooks })))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "webhook id")), responses((status = 204, description = "done"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hook = own(&state, &creator(who)?, &id).await?;
    state.store.delete_webhook(&hook.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path, description = "webhook id")), responses((status = 200, description = "OK"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let hook = own(&state, &creator(who)?, &id).await?;
    let deliveries = state.store.deliveries(&hook.id).await?;
    Ok(axum::Json(
        json!({ "webhook": hook, "deliveries": deliveries }),
    ))
}
