//! Promo codes: a creator attaches them to a stream; viewers see and redeem a code only while it
//! is valid (the stream public, inside its time window, and for a live-only code while the stream
//! is live).
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::access::{ensure_not_taken_down, owned_stream, visible_stream};
use super::error::ApiError;
use super::extract::{Auth, Json, MaybeAuth};
use crate::live::LiveEvent;
use crate::shop::promos::PromoOffer;
use crate::shop::promos::{
    MAX_CODE_CHARS, MIN_CODE_CHARS, Phase, PromoState, offer, promo_state, valid_code,
};
use crate::store::money;
use crate::store::{
    NewPromo, Principal, Promo, PromoError, Redeemed, Stream, StreamId, StreamState,
};

const MAX_DESCRIPTION_CHARS: usize = 500;

impl From<PromoError> for ApiError {
    fn from(e: PromoError) -> Self {
        match e {
            PromoError::CodeTaken(_) => ApiError::Conflict(e.to_string()),
            PromoError::Store(e) => e.into(),
        }
    }
}

/// The value of a plain decimal string (see [`money::is_decimal`]), for range checks only.
fn decimal(s: &str, whole_digits: usize, decimals: usize) -> Option<f64> {
    money::is_decimal(s, whole_digits, decimals)
        .then(|| s.parse::<f64>().ok())
        .flatten()
}

/// `"10%"` (more than 0, at most 100, up to 2 decimals) or `"5.00 EUR"` (an amount above 0 with
/// up to 4 decimals, a space, an ISO 4217 code).
fn valid_discount(d: &str) -> bool {
    if let Some(pct) = d.strip_suffix('%') {
        return decimal(pct, 3, 2).is_some_and(|v| v > 0.0 && v <= 100.0);
    }
    match d.split_once(' ') {
        Some((amount, currency)) => {
            decimal(amount, 9, 4).is_some_and(|v| v > 0.0) && money::is_currency_code(currency)
        }
        None => false,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPromoBody {
    /// 3-32 characters of A-Z, a-z, 0-9, `_`, `-`; unique per stream without regard to case.
    code: String,
    description: String,
    /// `"10%"` or `"5.00 EUR"`.
    discount: String,
    /// Valid only while the stream is public and live (default true).
    live_only: Option<bool>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    /// At most this many viewers may redeem it (absent: no limit).
    max_redemptions: Option<u32>,
}

fn phase(state: &AppState, stream: &Stream) -> Phase {
    let live = state.registry.live(&stream.id);
    Phase::of(
        stream.state,
        live.map(|l| l.is_ending() || l.finished.is_cancelled()),
    )
}

/// A code as its creator sees it: the offer plus its state and counts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OwnerPromo {
    pub id: i64,
    #[serde(flatten)]
    pub offer: PromoOffer,
    pub state: PromoState,
    pub redemptions: u32,
    pub max_redemptions: Option<u32>,
    pub created_at: DateTime<Utc>,
}

fn owner_promo(p: &Promo, state: PromoState) -> OwnerPromo {
    OwnerPromo {
        id: p.id,
        offer: offer(p),
        state,
        redemptions: p.redemptions,
        max_redemptions: p.max_redemptions,
        created_at: p.created_at,
    }
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/promos", tag = "commerce", params(("id" = String, Path, description = "stream id")), request_body = NewPromoBody, responses((status = 201, description = "the code as its creator sees it", body = OwnerPromo), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not the stream's creator"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "code taken on this stream, the stream has ended or was taken down")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<NewPromoBody>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let bad = |m: String| Err(ApiError::bad_request(m));
    if !valid_code(&body.code) {
        return bad(format!(
            "code must be {MIN_CODE_CHARS}-{MAX_CODE_CHARS} characters of A-Z, a-z, 0-9, _ and -"
        ));
    }
    let description = body.description.trim().to_string();
    if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
        return bad(format!(
            "description must be 1-{MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    if !valid_discount(&body.discount) {
        return bad(
            "discount must be a percentage such as \"10%\" (above 0, at most 100) or an amount \
             such as \"5.00 EUR\" (ISO 4217 currency)"
                .into(),
        );
    }
    let starts_at = super::dates::check_opt("starts_at", body.starts_at)?;
    let ends_at = super::dates::check_opt("ends_at", body.ends_at)?;
    if let (Some(s), Some(e)) = (starts_at, ends_at)
        && e <= s
    {
        return bad("ends_at must be after starts_at".into());
    }
    if body.max_redemptions == Some(0) {
        return bad("max_redemptions must be at least 1".into());
    }
    ensure_not_taken_down(&state, &stream.id).await?;
    if stream.state == StreamState::Ended {
        return Err(ApiError::Conflict(
            "the stream has ended: promo codes are added before or during it".into(),
        ));
    }
    let promo = state
        .store
        .create_promo(NewPromo {
            stream_id: stream.id.clone(),
            code: body.code,
            description,
            discount: body.discount,
            live_only: body.live_only.unwrap_or(true),
            starts_at,
            ends_at,
            max_redemptions: body.max_redemptions,
        })
        .await?;
    let promo_state = promo_state(&promo, &stream, phase(&state, &stream), Utc::now());
    tracing::info!(stream = %stream.id, promo = promo.id, state = ?promo_state, "promo code created");
    if promo_state == PromoState::Active {
        state
            .live
            .send(&stream.id, &LiveEvent::PromoStarted(offer(&promo)));
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(owner_promo(&promo, promo_state)),
    ))
}

/// Viewers get the codes that are active now; the stream's creator (and the admin) get every
/// code of the stream with its state and redemption count.
#[utoipa::path(get, path = "/api/v1/streams/{id}/promos", tag = "commerce", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "{promos: [...]}: active offers, or for the owner every code with state and counts"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn list(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, owner) = visible_stream(&state, &id, &who).await?;
    let (phase, now) = (phase(&state, &stream), Utc::now());
    let promos = state.store.promos_of_stream(&stream.id).await?;
    if owner {
        let all: Vec<OwnerPromo> = promos
            .iter()
            .map(|p| owner_promo(p, promo_state(p, &stream, phase, now)))
            .collect();
        return Ok(axum::Json(json!({ "promos": all })));
    }
    let active: Vec<PromoOffer> = promos
        .iter()
        .filter(|p| promo_state(p, &stream, phase, now) == PromoState::Active)
        .map(offer)
        .collect();
    Ok(axum::Json(json!({ "promos": active })))
}

/// Redeems a code for the calling viewer: 201 with a new redemption, 200 with the same one when
/// the viewer redeemed it before; 404 when no stream the viewer may see has a valid code by that
/// name yet (unknown, practice, not started, a live-only code before the stream is live), 410 when
/// it has expired, its live-only stream has ended, or every redemption is taken. The same code on
/// several streams at once needs `?stream_id=` (409 otherwise).
#[utoipa::path(post, path = "/api/v1/promos/{code}/redeem", tag = "commerce", params(("code" = String, Path, description = "the promo code (any case)"), ("stream_id" = Option<String>, Query, description = "the stream, when several have this code")), responses((status = 201, description = "redeemed", body = crate::store::Redemption), (status = 200, description = "redeemed before by this viewer: the same redemption", body = crate::store::Redemption), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a viewer"), (status = 404, description = "unknown code, or not valid yet"), (status = 409, description = "several streams have this code: pass stream_id"), (status = 410, description = "expired, stream ended (live-only) or exhausted")), security(("bearer" = [])))]
pub async fn redeem(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let Principal::Viewer(viewer) = &who else {
        return Err(ApiError::Forbidden(
            "promo codes are redeemed by viewers; register with POST /api/v1/viewers".into(),
        ));
    };
    if !valid_code(&code) {
        return Err(ApiError::NotFound);
    }
    let only = match q.get("stream_id") {
        Some(s) => Some(StreamId::parse(s).ok_or(ApiError::NotFound)?),
        None => None,
    };
    let now = Utc::now();
    // The codes of streams this viewer may see, with their state; practice (and taken-down)
    // streams are skipped, exactly as if the code did not exist there.
    let mut candidates: Vec<(Promo, PromoState)> = Vec::new();
    for p in state.store.promos_with_code(&code).await? {
        if only.as_ref().is_some_and(|s| *s != p.stream_id) {
            continue;
        }
        let Ok((stream, _)) = visible_stream(&state, p.stream_id.as_str(), &None).await else {
            continue;
        };
        let s = promo_state(&p, &stream, phase(&state, &stream), now);
        if s != PromoState::Pending {
            candidates.push((p, s));
        }
    }
    let active: Vec<&(Promo, PromoState)> = candidates
        .iter()
        .filter(|(_, s)| *s == PromoState::Active || *s == PromoState::Exhausted)
        .collect();
    // One current code (active or exhausted) wins; else the newest that is over (410).
    let chosen = match active.as_slice() {
        [one] => *one,
        [] => candidates.first().ok_or(ApiError::NotFound)?,
        _ => {
            return Err(ApiError::Conflict(
                "several live streams have this code: pass ?stream_id=".into(),
            ));
        }
    };
    let (promo, promo_state) = chosen;
    let outcome = match promo_state {
        PromoState::Active | PromoState::Exhausted => state.store.redeem(promo.id, viewer).await?,
        _ => match state.store.redemption(promo.id, viewer).await? {
            Some(r) => Redeemed::Existing(r),
            None => {
                let why = match promo_state {
                    PromoState::Ended => "this code was valid only while the stream was live",
                    _ => "this code has expired",
                };
                return Err(ApiError::Gone(why.into()));
            }
        },
    };
    match outcome {
        Redeemed::New(r) => {
            tracing::info!(stream = %promo.stream_id, promo = promo.id, "promo code redeemed");
            Ok((StatusCode::CREATED, axum::Json(r)))
        }
        Redeemed::Existing(r) => Ok((StatusCode::OK, axum::Json(r))),
        Redeemed::Exhausted => Err(ApiError::Gone(
            "every redemption of this code is taken".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_discounts_are_validated() {
        for ok in ["ABC", "spring-10", "X_1", &"A".repeat(32)] {
            assert!(valid_code(ok), "{ok}");
        }
        for bad in ["AB", "with space", "ünï", "semi;colon", &"A".repeat(33)] {
            assert!(!valid_code(bad), "{bad}");
        }
        for ok in ["10%", "100%", "12.5%", "5.00 EUR", "5 USD", "0.5 GBP"] {
            assert!(valid_discount(ok), "{ok}");
        }
        for bad in [
            "0%",
            "101%",
            "10",
            "-5%",
            "5.00 eur",
            "5.00EUR",
            "0 EUR",
            "5.00 EURO",
            "1e3%",
            "",
            "%",
            ".5%",
        ] {
            assert!(!valid_discount(bad), "{bad}");
        }
    }
}
