//! Browser sessions for the pages: an API token exchanged for an HttpOnly cookie, and the CSRF
//! token that cookie-authenticated writes must echo in `X-CSRF-Token`.
//!
//! The cookie `lf_session` holds the token itself (HttpOnly, SameSite=Strict, Secure on https), so
//! a session lives as long as its token and ends when the token is revoked. The CSRF token is an
//! HMAC of the session token under the server secret: pages read it from `GET /api/v1/session`
//! (same-origin only) and send it back on every non-GET request. Bearer-token API calls are not
//! affected.
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::AppState;
use super::error::ApiError;
use super::extract::Json;
use crate::store::Principal;

pub const COOKIE: &str = "lf_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long the browser keeps the cookie (the token may be revoked earlier).
const MAX_AGE_S: u64 = 30 * 24 * 3600;

/// The session token in the request's cookies.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The CSRF token belonging to a session token.
pub fn csrf_token(secret: &[u8], session_token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(b"csrf:");
    mac.update(session_token.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Whether a request with this method changes something (and so needs the CSRF token).
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A cookie-authenticated write must carry the session's CSRF token.
pub fn check_csrf(secret: &[u8], session_token: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = csrf_token(secret, session_token);
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    // Constant-time enough for a 32-character hex string compared once per request.
    match sent {
        Some(s)
            if s.len() == expected.len()
                && s.bytes().zip(expected.bytes()).all(|(a, b)| a == b) =>
        {
            Ok(())
        }
        _ => Err(ApiError::Forbidden(
            "a cookie-authenticated write needs the X-CSRF-Token header (from GET /api/v1/session)"
                .into(),
        )),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_token_is_bound_to_the_session_and_secret() {
        let a = csrf_token(b"k", "lft_one");
        assert_eq!(a.len(), 32);
        assert_eq!(a, csrf_token(b"k", "lft_one"));
        assert_ne!(a, csrf_token(b"k", "lft_two"));
        assert_ne!(a, csrf_token(b"other", "lft_one"));
        let mut headers = HeaderMap::new();
        assert!(check_csrf(b"k", "lft_one", &headers).is_err());
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&a).unwrap());
        assert!(check_csrf(b"k", "lft_one", &headers).is_ok());
        assert!(check_csrf(b"k", "lft_two", &headers).is_err());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("lf_attr=x; lf_session=lft_abc; z=1"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some("lft_abc"));
    }
}
