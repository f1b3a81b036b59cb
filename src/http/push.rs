//! Web Push for viewers: the server's VAPID public key, and the viewer's push subscriptions
//! (what a browser's `PushSubscription.toJSON()` gives). Sending is [`crate::push`]'s.
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::extract::{Auth, Json};
use super::viewers::viewer;
use crate::push::{MAX_SUBSCRIPTIONS, WebPush, endpoint};
use crate::store::{PushAdded, PushSubscription};

/// The push sender, or 503 when the operator turned Web Push off (`push.enabled = false`).
fn enabled(state: &AppState) -> Result<&WebPush, ApiError> {
    state
        .push
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("web push is off on this server".into()))
}

#[utoipa::path(get, path = "/api/v1/push/key", tag = "followers", responses((status = 200, description = "`{public_key}`: the server's VAPID public key (P-256, uncompressed, base64url) for `pushManager.subscribe({applicationServerKey})`"), (status = 503, description = "web push is off (`push.enabled`)")))]
pub async fn key(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let push = enabled(&state)?;
    Ok(axum::Json(json!({ "public_key": push.public_key() })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key (base64url, 65 bytes uncompressed).
    p256dh: String,
    /// The browser's authentication secret (base64url, 16 bytes).
    auth: String,
}

/// `PushSubscription.toJSON()`; other fields browsers add (`expirationTime`) are ignored.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewSubscription {
    endpoint: String,
    keys: SubscriptionKeys,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    endpoint: String,
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::BadRequest { code, message }
}

/// Base64url, with or without padding (browsers send it without).
fn decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

#[utoipa::path(post, path = "/api/v1/me/push-subscriptions", tag = "followers", request_body = NewSubscription, responses((status = 201, description = "stored: every new notification is also pushed to this browser"), (status = 400, description = "`bad_endpoint` (not https, a private address, unresolvable), `bad_keys`, `too_many_subscriptions` (10 per viewer)"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a viewer"), (status = 503, description = "web push is off")), security(("bearer" = [])))]
pub async fn subscribe(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<NewSubscription>,
) -> Result<impl IntoResponse, ApiError> {
    let me = viewer(who)?;
    let push = enabled(&state)?;
    endpoint::check(&body.endpoint, push.allow_private())
        .await
        .map_err(|e| bad("bad_endpoint", e.to_string()))?;
    let p256dh = decode(&body.keys.p256dh)
        .filter(|k| k.len() == 65 && k[0] == 4)
        .ok_or_else(|| {
            bad(
                "bad_keys",
                "keys.p256dh must be an uncompressed P-256 point (65 bytes, base64url)".into(),
            )
        })?;
    let auth = decode(&body.keys.auth)
        .filter(|a| a.len() == 16)
        .ok_or_else(|| bad("bad_keys", "keys.auth must be 16 bytes, base64url".into()))?;
    // A point off the curve is refused now rather than at every push.
    if ece::encrypt(&p256dh, &auth, b"check").is_err() {
        return Err(bad(
            "bad_keys",
            "keys.p256dh is not a point on P-256".into(),
        ));
    }
    let sub = PushSubscription {
        endpoint: body.endpoint,
        p256dh,
        auth,
    };
    match state
        .store
        .add_push_subscription(&me, sub, MAX_SUBSCRIPTIONS)
        .await?
    {
        PushAdded::Stored => Ok((StatusCode::CREATED, axum::Json(json!({"subscribed": true})))),
        PushAdded::TooMany => Err(bad(
            "too_many_subscriptions",
            format!(
                "at most {MAX_SUBSCRIPTIONS} push subscriptions per viewer; unsubscribe one first"
            ),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/me/push-subscriptions", tag = "followers", responses((status = 200, description = "`{subscriptions: [{endpoint}]}`: the viewer's push subscriptions, oldest first"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a viewer")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let me = viewer(who)?;
    let subs = state.store.push_subscriptions(&me).await?;
    let list: Vec<_> = subs
        .iter()
        .map(|s| json!({"endpoint": s.endpoint}))
        .collect();
    Ok(axum::Json(json!({ "subscriptions": list })))
}

#[utoipa::path(delete, path = "/api/v1/me/push-subscriptions", tag = "followers", request_body = Unsubscribe, responses((status = 204, description = "removed"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a viewer"), (status = 404, description = "not one of the viewer's subscriptions")), security(("bearer" = [])))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<Unsubscribe>,
) -> Result<impl IntoResponse, ApiError> {
    let me = viewer(who)?;
    if state
        .store
        .remove_push_subscription(&me, &body.endpoint)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
