//! Creator analytics: a stream's series and summary (`GET /api/v1/streams/{id}/analytics`, JSON
//! or CSV) and a creator's streams over a date range (`GET /api/v1/me/analytics`). A stream's
//! analytics are its owner's and the admin's: anyone else gets the 404 of a stream that does not
//! exist, public or not.
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};

use super::AppState;
use super::access::visible_stream;
use super::error::ApiError;
use super::extract::{Auth, MaybeAuth};
use crate::analytics::report::{self, CreatorReport, StreamReport};
use crate::store::analytics::{Grid, StreamFacts};
use crate::store::{FocusEvent, Principal, Stream};

/// The default range of `GET /me/analytics`: the last 30 days.
const DEFAULT_RANGE_DAYS: i64 = 30;
/// The longest range it takes.
const MAX_RANGE_DAYS: i64 = 366;
/// Streams it lists at most.
const MAX_STREAMS: usize = 500;

/// A stream's facts and focus timeline; `per_step`: with the events of every step.
async fn facts(
    state: &AppState,
    stream: &Stream,
    per_step: bool,
) -> Result<(StreamFacts, Vec<FocusEvent>), ApiError> {
    // A stream sampled before has its grid; one that never was gets the configured step.
    let fallback = stream.started_at.map(|started_at| Grid {
        started_at,
        step_ms: i64::try_from(state.config.analytics.step.as_millis()).unwrap_or(i64::MAX),
    });
    let facts = state.store.stream_facts(stream, fallback, per_step).await?;
    let timeline = state.store.focus_timeline(&stream.id).await?;
    Ok((facts, timeline))
}

/// `GET /api/v1/streams/{id}/analytics`
#[utoipa::path(get, path = "/api/v1/streams/{id}/analytics", tag = "analytics",
    params(("id" = String, Path, description = "stream id"),
           ("format" = Option<String>, Query, description = "`json` (default) or `csv`: the series, one line per step")),
    responses((status = 200, description = "the series (one point per step while live) and the summary; `text/csv` with `format=csv`", body = StreamReport),
              (status = 400, description = "unknown format"),
              (status = 404, description = "not found (or not yours: analytics are the creator's and the admin's)")),
    security(("bearer" = [])))]
pub async fn stream_analytics(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::bad_request("format must be json or csv")),
    };
    let (stream, owner) = visible_stream(&state, &id, &who).await?;
    if !owner {
        return Err(ApiError::NotFound);
    }
    let (f, timeline) = facts(&state, &stream, true).await?;
    let r = report::stream_report(&stream, &f, &timeline, Utc::now());
    if !csv {
        return Ok(axum::Json(r).into_response());
    }
    let disposition = format!("attachment; filename=\"analytics-{}.csv\"", stream.id);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(|_| ApiError::NotFound)?,
            ),
        ],
        report::series_csv(&r),
    )
        .into_response())
}

/// `GET /api/v1/me/analytics`
#[utoipa::path(get, path = "/api/v1/me/analytics", tag = "analytics",
    params(("from" = Option<String>, Query, description = "RFC 3339, inclusive (by the time a stream went live); default 30 days before `to`"),
           ("to" = Option<String>, Query, description = "RFC 3339, exclusive; default now. At most 366 days after `from`")),
    responses((status = 200, description = "the creator's streams that went live in the range (at most 500, newest first) with their summaries, and the totals", body = CreatorReport),
              (status = 400, description = "bad time, or a range that is empty or longer than 366 days"),
              (status = 401, description = "missing or unknown token"),
              (status = 403, description = "not a creator")),
    security(("bearer" = [])))]
pub async fn creator_analytics(
    State(state): State<AppState>,
    Auth(who): Auth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let Principal::Creator(creator) = who else {
        return Err(ApiError::Forbidden(
            "this belongs to creators; use a creator token".into(),
        ));
    };
    let from = super::dates::parse_query("from", q.get("from").map(String::as_str))?;
    let to = super::dates::parse_query("to", q.get("to").map(String::as_str))?;
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - TimeDelta::days(DEFAULT_RANGE_DAYS));
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
        return Err(ApiError::bad_request(format!(
            "the range may be at most {MAX_RANGE_DAYS} days"
        )));
    }
    let mut streams = state
        .store
        .streams_started(&creator, from, to, MAX_STREAMS + 1)
        .await?;
    let truncated = streams.len() > MAX_STREAMS;
    streams.truncate(MAX_STREAMS);
    let mut listed = Vec::with_capacity(streams.len());
    let now = Utc::now();
    for s in &streams {
        let (f, timeline) = facts(&state, s, false).await?;
        listed.push(report::stream_summary(s, &f, &timeline, now));
    }
    let totals = report::totals(listed.iter().map(|s| &s.summary));
    Ok(axum::Json(CreatorReport {
        from,
        to,
        streams: listed,
        truncated,
        totals,
    }))
}
