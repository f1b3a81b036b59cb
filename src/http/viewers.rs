//! Viewers: open registration (limited per client address), token revocation, following creators,
//! the notification feed and its live push (Server-Sent Events).
use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::error::ApiError;
use super::extract::{Auth, ClientIp, Json};
use super::streams::valid_handle;
use crate::live::rate::SharedRateLimiter;
use crate::store::{CreatorId, Principal, Store, ViewerId};

/// Registrations per client address per window.
const REGISTRATIONS_PER_WINDOW: u32 = 10;
const REGISTRATION_WINDOW: Duration = Duration::from_secs(60);
/// Notifications per page of the feed.
const FEED_PAGE: u32 = 50;
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// The rate limit of registrations: per client address, each IPv6 /64 as one address (one
/// client cannot step through its own addresses); across nodes on a shared store. Behind a
/// reverse proxy, set `http.trusted_proxies` so that the client's address is counted.
pub fn registration_limit(store: &Store) -> SharedRateLimiter {
    SharedRateLimiter::new(
        store,
        "registration",
        REGISTRATIONS_PER_WINDOW,
        REGISTRATION_WINDOW,
    )
}

fn registration_key(ip: IpAddr) -> String {
    crate::address::client_group(ip).to_string()
}

pub(super) fn viewer(who: Principal) -> Result<ViewerId, ApiError> {
    match who {
        Principal::Viewer(id) => Ok(id),
        _ => Err(ApiError::Forbidden(
            "this is for viewers; register with POST /api/v1/viewers".into(),
        )),
    }
}

async fn creator_id(state: &AppState, handle: &str) -> Result<CreatorId, ApiError> {
    state
        .store
        .creator_by_handle(handle)
        .await?
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewViewer {
    handle: String,
}

#[utoipa::path(post, path = "/api/v1/viewers", tag = "accounts", request_body = NewViewer, responses((status = 201, description = "created"), (status = 400, description = "bad input"), (status = 409, description = "conflict with the stream's state"), (status = 429, description = "too many requests")))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(body): Json<NewViewer>,
) -> Result<impl IntoResponse, ApiError> {
    if state
        .registrations
        .check(registration_key(client))
        .await
        .is_err()
    {
        return Err(ApiError::TooManyRequests(format!(
            "at most {REGISTRATIONS_PER_WINDOW} registrations a minute from one address"
        )));
    }
    if !valid_handle(&body.handle) {
        return Err(ApiError::bad_request(
            "handle must be 2-32 characters of a-z, 0-9 and _",
        ));
    }
    let (viewer, token) = state.store.create_viewer(&body.handle).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": viewer.id, "handle": viewer.handle, "token": token})),
    ))
}

/// Revokes the bearer token of the request (any role): it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/current", tag = "accounts", responses((status = 204, description = "done"), (status = 401, description = "missing or unknown token")), security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Auth(_): Auth,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, t)| t.trim())
        .ok_or(ApiError::Unauthorized)?;
    state.store.revoke_token(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A creator's public card.
#[utoipa::path(get, path = "/api/v1/creators/{handle}", tag = "followers", params(("handle" = String, Path, description = "creator handle")), responses((status = 200, description = "OK"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn creator_card(
    State(state): State<AppState>,
    Path(handle): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = creator_id(&state, &handle).await?;
    let followers = state.store.follower_count(&id).await?;
    Ok(axum::Json(
        json!({"handle": handle, "followers": followers}),
    ))
}

#[utoipa::path(put, path = "/api/v1/creators/{handle}/follow", tag = "followers", params(("handle" = String, Path, description = "creator handle")), responses((status = 204, description = "done"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn follow(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(handle): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let viewer = viewer(who)?;
    let creator = creator_id(&state, &handle).await?;
    if state.store.follow(&viewer, &creator).await? {
        state
            .webhooks
            .emit(&creator, "follower.added", json!({"viewer_id": viewer}))
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/creators/{handle}/follow", tag = "followers", params(("handle" = String, Path, description = "creator handle")), responses((status = 204, description = "done"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn unfollow(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(handle): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let viewer = viewer(who)?;
    let creator = creator_id(&state, &handle).await?;
    state.store.unfollow(&viewer, &creator).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me/following", tag = "followers", responses((status = 200, description = "OK"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed")), security(("bearer" = [])))]
pub async fn following(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let list = state.store.following(&viewer(who)?).await?;
    let list: Vec<_> = list
        .into_iter()
        .map(|(handle, since)| json!({"handle": handle, "since": since}))
        .collect();
    Ok(axum::Json(json!({ "following": list })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Older than this notification id (from `next_before`).
    before: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "followers", params(("before" = Option<i64>, Query), ("limit" = Option<u32>, Query)), responses((status = 200, description = "`{notifications, next_before, unread}`: a page of the feed, newest first, and how many are unread in all"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed")), security(("bearer" = [])))]
pub async fn notifications(
    State(state): State<AppState>,
    Auth(who): Auth,
    Query(q): Query<FeedQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = q.limit.unwrap_or(FEED_PAGE).clamp(1, FEED_PAGE);
    let me = viewer(who)?;
    let page = state.store.notifications(&me, q.before, limit).await?;
    let unread = state.store.unread_count(&me).await?;
    let next_before = (page.len() as u32 == limit)
        .then(|| page.last().map(|n| n.id))
        .flatten();
    Ok(axum::Json(
        json!({"notifications": page, "next_before": next_before, "unread": unread}),
    ))
}

/// Ids one `POST /api/v1/me/notifications/read` may name.
pub const MAX_READ_IDS: usize = 500;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// These notifications (at most 500); absent: all of them.
    ids: Option<Vec<i64>>,
}

#[utoipa::path(post, path = "/api/v1/me/notifications/read", tag = "followers", request_body = MarkRead, responses((status = 200, description = "OK"), (status = 400, description = "more than 500 ids"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not allowed")), security(("bearer" = [])))]
pub async fn mark_read(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<MarkRead>,
) -> Result<impl IntoResponse, ApiError> {
    if body
        .ids
        .as_ref()
        .is_some_and(|ids| ids.len() > MAX_READ_IDS)
    {
        return Err(ApiError::bad_request(format!(
            "ids: at most {MAX_READ_IDS} at a time; leave it out to mark every notification"
        )));
    }
    let marked = state.store.mark_read(&viewer(who)?, body.ids).await?;
    Ok(axum::Json(json!({ "marked": marked })))
}

/// `event: notification` with the feed entry as data, as notifications are made; a reader that
/// falls behind gets `event: lagged` and should reload the feed.
#[utoipa::path(get, path = "/api/v1/me/events", tag = "followers", responses((status = 200, description = "text/event-stream of notifications"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a viewer")), security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let me = viewer(who)?;
    let rx = state.notifier.subscribe();
    let stop = state.shutdown.clone();
    let stream = futures_util::stream::unfold((rx, me), move |(mut rx, me)| {
        let stop = stop.clone();
        async move {
            loop {
                let received = tokio::select! {
                    _ = stop.cancelled() => return None,
                    r = rx.recv() => r,
                };
                match received {
                    Ok((to, n)) if to == me => {
                        let event = Event::default()
                            .event("notification")
                            .id(n.id.to_string())
                            .json_data(&n)
                            .unwrap_or_else(|_| Event::default().event("error"));
                        return Some((Ok(event), (rx, me)));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        return Some((Ok(Event::default().event("lagged").data("")), (rx, me)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEPALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registrations_from_one_ipv6_64_share_one_limit() {
        let (_dir, store) = crate::store::testing::temp_store().await;
        let limit = registration_limit(&store);
        let allow = |ip: &str| limit.check(registration_key(ip.parse().unwrap()));
        for i in 0..REGISTRATIONS_PER_WINDOW {
            let ip = format!("2001:db8::{:x}", i + 1);
            assert!(allow(&ip).await.is_ok(), "{ip}");
        }
        assert!(allow("2001:db8::ffff").await.is_err(), "same /64");
        assert!(allow("2001:db8:0:1::1").await.is_ok(), "another /64");
    }
}
