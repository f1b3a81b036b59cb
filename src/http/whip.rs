//! WHIP (RFC 9725): `POST /whip/{stream}` with an SDP offer and the stream key as bearer token
//! answers `201` with the SDP answer and the session's `Location`; `DELETE` on that location
//! ends the publish. Trickle ICE and ICE restarts (`PATCH`) are not supported: the answer
//! carries every candidate, and `PATCH` gets the router's `405`. Any origin may publish (a studio page on
//! another site): the key is the credential, never a cookie.
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::ingest::Error as IngestError;
use crate::ingest::whip::{MAX_OFFER_BYTES, PublishError};
use crate::store::StreamId;

const METHODS: &str = "POST, DELETE, OPTIONS";

/// The headers every WHIP response carries, so a page on another origin can publish.
fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link"),
    );
    response
}

/// Preflight of a publish from another origin.
#[utoipa::path(options, path = "/whip/{stream}", tag = "ingest",
    params(("stream" = String, Path, description = "Stream id")),
    responses((status = 204, description = "CORS preflight; `Accept-Post: application/sdp`")))]
pub async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    cors(response)
}

/// Publish: the SDP offer in, the answer out. Refused before any WebRTC work when the key is
/// not this stream's, the stream has ended, or it already has a publisher.
#[utoipa::path(post, path = "/whip/{stream}", tag = "ingest",
    params(("stream" = String, Path, description = "Stream id")),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    responses(
        (status = 201, description = "SDP answer; `Location` names the session", content_type = "application/sdp"),
        (status = 400, description = "Not an offer this server can answer (codecs: H.264, VP8, VP9; Opus)"),
        (status = 401, description = "Missing key, or not this stream's key (also for a stream that does not exist: a practice stream's existence is not told)"),
        (status = 409, description = "The stream already has a publisher"),
        (status = 410, description = "The stream has ended"),
        (status = 413, description = "Offer too large"),
        (status = 415, description = "Not application/sdp"),
        (status = 503, description = "Session limit reached or the server is stopping")),
    security(("stream_key" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Response {
    cors(match answer(&state, &stream, &parts, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    })
}

async fn answer(
    state: &AppState,
    stream: &str,
    parts: &Parts,
    body: &[u8],
) -> Result<Response, ApiError> {
    let key = super::extract::bearer(parts).ok_or(ApiError::Unauthorized)?;
    // The key must be this stream's: one creator's key cannot publish into another's URL. An
    // unknown stream answers the same, so nobody learns which (practice) streams exist.
    let id = StreamId::parse(stream).ok_or(ApiError::Unauthorized)?;
    let stream = state.store.stream(&id).await?;
    if !stream.is_some_and(|s| s.stream_key.matches(key)) {
        return Err(ApiError::Unauthorized);
    }
    let sdp = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
        });
    if !sdp {
        return Err(ApiError::UnsupportedMediaType(
            "a WHIP offer is application/sdp".into(),
        ));
    }
    if body.len() > MAX_OFFER_BYTES {
        return Err(ApiError::TooLarge(MAX_OFFER_BYTES));
    }
    let offer =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the offer is not UTF-8"))?;
    let answer = state.whip.publish(key, offer).await.map_err(refusal)?;
    let location = format!("/whip/{}/{}", id.as_str(), answer.session);
    let mut response = (StatusCode::CREATED, answer.sdp).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Some(stun) = &state.config.whip.stun_server
        && let Ok(v) = HeaderValue::from_str(&format!(
            "<{}>; rel=\"ice-server\"",
            stun.replacen("stun://", "stun:", 1)
        ))
    {
        h.insert(header::LINK, v);
    }
    Ok(response)
}

fn refusal(e: PublishError) -> ApiError {
    match e {
        PublishError::Refused(IngestError::BadStreamKey(_)) => ApiError::Unauthorized,
        PublishError::Refused(e @ (IngestError::StreamEnded(_) | IngestError::Ended(_))) => {
            ApiError::Gone(e.to_string())
        }
        PublishError::Refused(
            e @ (IngestError::AlreadyLive(_) | IngestError::LiveOnAnotherNode(_)),
        ) => ApiError::Conflict(e.to_string()),
        PublishError::Refused(e) => ApiError::Internal(e.to_string()),
        PublishError::Offer(e) => ApiError::bad_request(e.to_string()),
        PublishError::Receiver(e) => ApiError::Internal(e),
        e @ (PublishError::Full(_) | PublishError::Stopping) => {
            ApiError::Unavailable(e.to_string())
        }
    }
}

/// End the publish (what OBS and the studio page do on "Stop").
#[utoipa::path(delete, path = "/whip/{stream}/{session}", tag = "ingest",
    params(("stream" = String, Path, description = "Stream id"), ("session" = String, Path, description = "From the publish's `Location`")),
    responses((status = 200, description = "Ended"), (status = 401, description = "Missing key"), (status = 404, description = "No such session for this key")),
    security(("stream_key" = [])))]
pub async fn end(
    State(state): State<AppState>,
    Path((_stream, session)): Path<(String, String)>,
    parts: Parts,
) -> Response {
    let Some(key) = super::extract::bearer(&parts) else {
        return cors(ApiError::Unauthorized.into_response());
    };
    cors(match state.whip.end(&session, key) {
        true => StatusCode::OK.into_response(),
        false => ApiError::NotFound.into_response(),
    })
}

/// Preflight of a `DELETE` from another origin.
#[utoipa::path(options, path = "/whip/{stream}/{session}", tag = "ingest",
    params(("stream" = String, Path, description = "Stream id"), ("session" = String, Path, description = "Session")),
    responses((status = 204, description = "CORS preflight")))]
pub async fn session_preflight() -> Response {
    preflight().await
}
