//! Request extractors: JSON bodies that fail in our error shape, and bearer-token principals.
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::cookie;
use super::error::ApiError;
use crate::store::Principal;

/// `axum::Json`, but a malformed body answers 400 `{"error":{"code":"invalid_json",…}}`.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(r)) => {
                Err(ApiError::UnsupportedMediaType(r.body_text()))
            }
            Err(r) if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(super::MAX_BODY_BYTES))
            }
            Err(rejection) => Err(ApiError::BadRequest {
                code: "invalid_json",
                message: rejection.body_text(),
            }),
        }
    }
}

/// The bearer token's principal, if a token was sent. A token that is sent but unknown is a 401.
/// Without an `Authorization` header the browser session cookie counts (see [`super::session`]):
/// an unknown session is anonymous, and a write (non-GET) needs the session's `X-CSRF-Token`.
pub struct MaybeAuth(pub Option<Principal>);

/// A principal is required (401 otherwise).
pub struct Auth(pub Principal);

pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.get(AUTHORIZATION).is_none() {
            let Some(token) = cookie::cookie_token(&parts.headers) else {
                return Ok(MaybeAuth(None));
            };
            let Some(who) = state.store.authenticate(&token).await? else {
                return Ok(MaybeAuth(None));
            };
            if cookie::is_write(&parts.method) {
                cookie::check_csrf(&state.secret, &token, &parts.headers)?;
            }
            return Ok(MaybeAuth(Some(who)));
        }
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        match state.store.authenticate(token).await? {
            Some(p) => Ok(MaybeAuth(Some(p))),
            None => Err(ApiError::Unauthorized),
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match MaybeAuth::from_request_parts(parts, state).await? {
            MaybeAuth(Some(p)) => Ok(Auth(p)),
            MaybeAuth(None) => Err(ApiError::Unauthorized),
        }
    }
}

/// The client's address for per-address limits: the peer's, or behind one of the operator's
/// `http.trusted_proxies` the client that proxy names in `X-Forwarded-For`
/// ([`crate::address::client_address`]).
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let axum::extract::ConnectInfo(peer) = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .copied()
            .ok_or_else(|| ApiError::Internal("no peer address on the request".into()))?;
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(ClientIp(crate::address::client_address(
            peer.ip(),
            forwarded,
            &state.config.http.trusted_proxies,
        )))
    }
}
