//! Who may see or change a stream through the API: its owner and the admin always, everyone else
//! only while it is public; a taken-down stream never goes public again and its signed links stop
//! working.
use super::AppState;
use super::error::ApiError;
use crate::store::{CreatorId, Principal, Stream, StreamId};
use crate::streams::access::audience;

/// Loads a stream the caller may see: its owner and the admin always; others only when public.
/// Anything else is a 404, exactly like a stream that does not exist.
pub async fn visible_stream(
    state: &AppState,
    id: &str,
    who: &Option<Principal>,
) -> Result<(Stream, bool), ApiError> {
    let id = StreamId::parse(id).ok_or(ApiError::NotFound)?;
    let mut stream = state.store.stream(&id).await?.ok_or(ApiError::NotFound)?;
    if let Some(live) = state.registry.live(&stream.id) {
        stream.mode = live.mode();
    }
    let owner = who.as_ref().is_some_and(|p| p.owns(&stream));
    // The API takes no signed links: the bearer (or session) is all there is.
    match audience(stream.mode, false, owner, false) {
        Some(_) => Ok((stream, owner)),
        None => Err(ApiError::NotFound),
    }
}

/// Like [`visible_stream`] but only for its owner (404 for everyone else, public or not, when
/// the stream is practice; 403 when it is public).
pub async fn owned_stream(state: &AppState, id: &str, who: &Principal) -> Result<Stream, ApiError> {
    match visible_stream(state, id, &Some(who.clone())).await? {
        (stream, true) => Ok(stream),
        (_, false) => Err(ApiError::Forbidden(
            "only the stream's creator may do this".into(),
        )),
    }
}

/// 409 when the stream was taken down.
pub async fn ensure_not_taken_down(state: &AppState, id: &StreamId) -> Result<(), ApiError> {
    match state.store.takedown(id).await? {
        Some(t) => Err(ApiError::Conflict(format!(
            "this stream was taken down for breaking the policy {:?}: {}",
            t.policy, t.reason
        ))),
        None => Ok(()),
    }
}

/// 409 when the creator has `policy.max_strikes` active strikes: they may not go public.
pub async fn ensure_may_go_public(state: &AppState, creator: &CreatorId) -> Result<(), ApiError> {
    let strikes = state.store.active_strikes(creator).await?;
    let max = state.config.policy.max_strikes;
    if strikes >= max {
        return Err(ApiError::Conflict(format!(
            "this creator has {strikes} policy strikes (limit {max}) and cannot go public until an \
             admin clears them; see GET /api/v1/me/violations"
        )));
    }
    Ok(())
}

/// Signed links (`?sig=` for recordings and clips) do not open a stream that was taken down:
/// only the creator's and the admin's bearer tokens do.
pub async fn signed_links_allowed(state: &AppState, id: &StreamId) -> Result<bool, ApiError> {
    Ok(state.store.takedown(id).await?.is_none())
}
