//! Browser sessions for the pages: an API token exchanged for an HttpOnly cookie, and the CSRF
//! token that cookie-authenticated writes must echo in `X-CSRF-Token`.
//!
//! The cookie `lf_session` holds the token itself (HttpOnly, SameSite=Strict, Secure on https), so
//! a session lives as long as its token and ends when the token is revoked. The CSRF token is an
//! HMAC of the session token under the server secret: pages read it from `GET /api/v1/session`
//! (same-origin only) and send it back on every non-GET request. Bearer-token API calls are not
//! affected.
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::cookie::{COOKIE, cookie_token, csrf_token};
use super::error::ApiError;
use super::extract::Json;
use crate::store::Principal;

/// How long the browser keeps the cookie (the token may be revoked earlier).
const MAX_AGE_S: u64 = 30 * 24 * 3600;

fn set_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("lf_session=; Max-Age=0; Path=/"))
}

async fn describe(
    state: &AppState,
    who: &Principal,
    token: &str,
) -> Result<serde_json::Value, ApiError> {
    let (role, handle) = match who {
        Principal::Admin => ("admin", None),
        Principal::Creator(id) => ("creator", state.store.creator(id).await?.map(|c| c.handle)),
        Principal::Viewer(_) => (
            "viewer",
            state.store.chat_author(who).await?.map(|a| a.handle),
        ),
    };
    Ok(json!({"role": role, "handle": handle, "csrf": csrf_token(&state.secret, token)}))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// An admin, creator or viewer API token.
    token: String,
}

/// Signs a browser in: the token goes in the body, never in a URL, and comes back as the
/// HttpOnly `lf_session` cookie.
#[utoipa::path(post, path = "/api/v1/session", tag = "pages", request_body = SignIn, responses((status = 201, description = "`{role: admin|creator|viewer, handle, csrf}` and the `lf_session` cookie (HttpOnly, SameSite=Strict)"), (status = 401, description = "unknown token"), (status = 415, description = "not JSON")))]
pub async fn sign_in(
    State(state): State<AppState>,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    let token = body.token.trim();
    let who = state
        .store
        .authenticate(token)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let info = describe(&state, &who, token).await?;
    let mut response = (StatusCode::CREATED, axum::Json(info)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, token, MAX_AGE_S));
    Ok(response)
}

/// Who the browser's session is, and its CSRF token; `{"role": null}` without a session (not an
/// error: pages ask on every load).
#[utoipa::path(get, path = "/api/v1/session", tag = "pages", responses((status = 200, description = "`{role, handle, csrf}`, or `{role: null}` without a (valid) session")))]
pub async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let Some(token) = cookie_token(&headers) else {
        return Ok(axum::Json(json!({"role": null})));
    };
    match state.store.authenticate(&token).await? {
        Some(who) => Ok(axum::Json(describe(&state, &who, &token).await?)),
        None => Ok(axum::Json(json!({"role": null}))),
    }
}

/// Signs the browser out (clears the cookie; the token itself stays valid).
#[utoipa::path(delete, path = "/api/v1/session", tag = "pages", responses((status = 204, description = "cookie cleared")))]
pub async fn sign_out(State(state): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, set_cookie(&state, "", 0))],
    )
}
