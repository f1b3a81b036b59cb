//! The one mapping from failures to HTTP: `{"error":{"code","message"}}` with a fitting status.
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A signed request (`X-Livefront-Signature`) that is unsigned, badly signed or stale.
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// No endpoint at this path (the router's fallback).
    #[error("no such endpoint")]
    NoRoute,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// A WebSocket endpoint reached without a WebSocket upgrade.
    #[error("{0}")]
    UpgradeRequired(String),
    /// A limit of the server is reached (e.g. live connections of a stream), or a feature is not
    /// configured on this server.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
    /// A request a rule refused, with its own status and code (a flash sale sold out, a bid too
    /// low).
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "bad_request",
            message: message.into(),
        }
    }

    /// The `code` of the error body.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound | ApiError::NoRoute => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UpgradeRequired(_) => (StatusCode::UPGRADE_REQUIRED, "upgrade_required"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Refused { status, code, .. } => (*status, code),
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        match e {
            crate::store::Error::HandleTaken(h) => {
                ApiError::Conflict(format!("handle {h:?} is taken"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::streams::registry::Error> for ApiError {
    fn from(e: crate::streams::registry::Error) -> Self {
        match e {
            crate::streams::registry::Error::NotLive(_) => ApiError::Conflict(e.to_string()),
            crate::streams::registry::Error::Store(_) => ApiError::Internal(e.to_string()),
            crate::streams::registry::Error::TooManyTargets(_)
            | crate::streams::registry::Error::UnknownDestination(_) => {
                ApiError::bad_request(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if status.is_server_error() {
            let detail = match &self {
                ApiError::Internal(d) => d.as_str(),
                _ => "",
            };
            tracing::error!(code, detail, "request failed");
        } else {
            tracing::debug!(code, message = %self, "request refused");
        }
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response();
        // Nothing refused is worth keeping: a CDN must ask again (a 404 of a part not written yet).
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        if status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(
                axum::http::header::UPGRADE,
                axum::http::HeaderValue::from_static("websocket"),
            );
        }
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
