//! Simulcast destinations of the calling creator (`/api/v1/me/destinations`) and the ones each of
//! their streams sends to (`/api/v1/streams/{id}/destinations`). A destination's stream key is
//! taken once, sealed, and never shown again (only its last four characters). Another creator's
//! destination is 404, as if it did not exist.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::access::owned_stream;
use super::error::ApiError;
use super::extract::{Auth, Json};
use crate::shop::levels::{Benefit, has_benefit};
use crate::store::destinations::{DestinationId, last4};
use crate::store::{
    CreatorId, Destination, DestinationUrl, NewDestination, Principal, StreamState,
};

/// Destinations per creator.
const MAX_DESTINATIONS: usize = 20;
const MAX_NAME_CHARS: usize = 64;
const MAX_KEY_CHARS: usize = 512;
const MAX_RENDITION_CHARS: usize = 32;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDestinationBody {
    name: String,
    /// `rtmp://host[:port]/app`, `rtmps://host[:port]/app` or `srt://host:port[?options]`.
    url: String,
    /// The platform's stream key: appended to an RTMP(S) URL as the stream name, the `streamid`
    /// of an SRT URL. Shown once never: only its last four characters come back.
    key: Option<String>,
    /// Default true.
    enabled: Option<bool>,
    /// A ladder rung to send instead of the source (e.g. `720p`); the source when the stream's
    /// ladder has no such rung.
    rendition: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditDestination {
    name: Option<String>,
    url: Option<String>,
    /// A new key; `null` removes it.
    #[serde(default, deserialize_with = "super::streams::nullable")]
    #[schema(value_type = Option<String>)]
    key: Option<Option<String>>,
    enabled: Option<bool>,
    /// `null`: the source again.
    #[serde(default, deserialize_with = "super::streams::nullable")]
    #[schema(value_type = Option<String>)]
    rendition: Option<Option<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChooseDestinations {
    /// Ids of the caller's destinations, at most `simulcast.max_targets`.
    ids: Vec<String>,
}

fn creator(who: Principal) -> Result<CreatorId, ApiError> {
    match who {
        Principal::Creator(id) => Ok(id),
        _ => Err(ApiError::Forbidden(
            "destinations belong to creators; use a creator token".into(),
        )),
    }
}

/// The caller's destination `id`, or 404.
async fn own(state: &AppState, who: &CreatorId, id: &str) -> Result<Destination, ApiError> {
    let id = DestinationId::parse(id).ok_or(ApiError::NotFound)?;
    match state.store.destination(&id).await? {
        Some(d) if &d.creator_id == who => Ok(d),
        _ => Err(ApiError::NotFound),
    }
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "name must be 1-{MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

/// A stream key: printable, no spaces (what platforms hand out).
fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(format!(
            "key must be 1-{MAX_KEY_CHARS} printable characters without spaces"
        )));
    }
    Ok(())
}

fn check_rendition(r: &str) -> Result<(), ApiError> {
    let ok = !r.is_empty()
        && r.len() <= MAX_RENDITION_CHARS
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(ApiError::bad_request(
            "rendition must name a ladder rung (a-z, 0-9, _), e.g. 720p",
        ));
    }
    Ok(())
}

async fn check_url(state: &AppState, url: &str) -> Result<DestinationUrl, ApiError> {
    let url = DestinationUrl::parse(url).map_err(|e| ApiError::bad_request(e.to_string()))?;
    url.check_address(state.config.simulcast.allow_private_destinations)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(url)
}

#[utoipa::path(post, path = "/api/v1/me/destinations", tag = "simulcast", request_body = NewDestinationBody, responses((status = 201, description = "created: the destination without its key (`key_last4`)"), (status = 400, description = "bad input (URL scheme, private address, key)"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator"), (status = 409, description = "too many destinations")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<NewDestinationBody>,
) -> Result<impl IntoResponse, ApiError> {
    let creator_id = creator(who)?;
    let name = check_name(&body.name)?;
    if let Some(key) = &body.key {
        check_key(key)?;
    }
    if let Some(r) = &body.rendition {
        check_rendition(r)?;
    }
    let url = check_url(&state, &body.url).await?;
    if state.store.destinations_of(&creator_id).await?.len() >= MAX_DESTINATIONS {
        return Err(ApiError::Conflict(format!(
            "a creator has at most {MAX_DESTINATIONS} destinations; delete one first"
        )));
    }
    let new = NewDestination {
        name,
        url,
        key_sealed: body.key.as_deref().map(|k| state.secrets.seal(k)),
        key_last4: body.key.as_deref().and_then(last4),
        enabled: body.enabled.unwrap_or(true),
        rendition: body.rendition,
    };
    let d = state.store.create_destination(&creator_id, new).await?;
    tracing::info!(destination = %d.id, "destination created");
    Ok((StatusCode::CREATED, axum::Json(view(&d))))
}

/// The API view of a destination: never its key.
fn view(d: &Destination) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    v["has_key"] = json!(d.key_sealed.is_some());
    v
}

#[utoipa::path(get, path = "/api/v1/me/destinations", tag = "simulcast", responses((status = 200, description = "`{destinations: [...]}`"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let all = state.store.destinations_of(&creator(who)?).await?;
    let all: Vec<Value> = all.iter().map(view).collect();
    Ok(axum::Json(json!({ "destinations": all })))
}

#[utoipa::path(get, path = "/api/v1/me/destinations/{id}", tag = "simulcast", params(("id" = String, Path, description = "destination id")), responses((status = 200, description = "OK"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator"), (status = 404, description = "not found (or not yours)")), security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = own(&state, &creator(who)?, &id).await?;
    Ok(axum::Json(view(&d)))
}

#[utoipa::path(patch, path = "/api/v1/me/destinations/{id}", tag = "simulcast", params(("id" = String, Path, description = "destination id")), request_body = EditDestination, responses((status = 200, description = "OK; live streams sending to it pick the change up"), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator"), (status = 404, description = "not found (or not yours)")), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<EditDestination>,
) -> Result<impl IntoResponse, ApiError> {
    let creator_id = creator(who)?;
    let mut d = own(&state, &creator_id, &id).await?;
    if let Some(name) = &body.name {
        d.name = check_name(name)?;
    }
    if let Some(url) = &body.url {
        d.url = check_url(&state, url).await?.as_str().to_string();
    }
    match &body.key {
        Some(Some(key)) => {
            check_key(key)?;
            d.key_sealed = Some(state.secrets.seal(key));
            d.key_last4 = last4(key);
        }
        Some(None) => {
            d.key_sealed = None;
            d.key_last4 = None;
        }
        None => {}
    }
    if let Some(enabled) = body.enabled {
        d.enabled = enabled;
    }
    match &body.rendition {
        Some(Some(r)) => {
            check_rendition(r)?;
            d.rendition = Some(r.clone());
        }
        Some(None) => d.rendition = None,
        None => {}
    }
    state.store.update_destination(d.clone()).await?;
    state.registry.destination_changed(&creator_id).await?;
    Ok(axum::Json(view(&d)))
}

#[utoipa::path(delete, path = "/api/v1/me/destinations/{id}", tag = "simulcast", params(("id" = String, Path, description = "destination id")), responses((status = 204, description = "deleted; live streams stop sending to it"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator"), (status = 404, description = "not found (or not yours)")), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let creator_id = creator(who)?;
    let d = own(&state, &creator_id, &id).await?;
    state.store.delete_destination(&d.id).await?;
    state.registry.destination_changed(&creator_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The destinations of a stream with their state: live targets while it is live, the chosen
/// ones as `stopped` otherwise.
pub async fn stream_targets(
    state: &AppState,
    stream: &crate::store::Stream,
) -> Result<Value, ApiError> {
    let report = match state.registry.live(&stream.id) {
        Some(live) => live.simulcast.report(),
        None => state
            .store
            .stream_destinations(&stream.id)
            .await?
            .iter()
            .map(crate::streams::simulcast::stopped)
            .collect(),
    };
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}

#[utoipa::path(put, path = "/api/v1/streams/{id}/destinations", tag = "simulcast", params(("id" = String, Path, description = "stream id")), request_body = ChooseDestinations, responses((status = 200, description = "`{destinations: [...]}` with their state; a live public stream starts and stops targets at once"), (status = 400, description = "unknown destination, or more than simulcast.max_targets"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "the stream has ended")), security(("bearer" = [])))]
pub async fn choose(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<ChooseDestinations>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    if stream.state == StreamState::Ended {
        return Err(ApiError::Conflict("the stream has ended".into()));
    }
    // More at once is a level benefit (`commerce.levels.benefits.more_simulcast_targets`).
    let level = super::commerce::creator_standing(&state, &stream.creator_id)
        .await?
        .0
        .level;
    let config = &state.config.simulcast;
    let max = match has_benefit(
        &state.config.commerce.levels,
        level,
        Benefit::MoreSimulcastTargets,
    ) {
        true => config.max_targets_with_benefit,
        false => config.max_targets,
    };
    if body.ids.len() > max.max(MAX_DESTINATIONS) {
        return Err(ApiError::bad_request(format!(
            "a stream sends to at most {max} destinations at once"
        )));
    }
    let ids = body
        .ids
        .iter()
        .map(|i| {
            DestinationId::parse(i).ok_or_else(|| {
                ApiError::bad_request(format!("destination {i:?} is not one of yours"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    state.registry.set_destinations(&stream, ids, max).await?;
    Ok(axum::Json(
        json!({ "destinations": stream_targets(&state, &stream).await? }),
    ))
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/destinations", tag = "simulcast", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "`{destinations: [...]}`: id, name, state, since, bytes, bitrate_kbps, error, failures, retry_at, rendition"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn chosen(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    Ok(axum::Json(
        json!({ "destinations": stream_targets(&state, &stream).await? }),
    ))
}
