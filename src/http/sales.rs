//! Flash sales and auctions on a live stream (`streams::sales` runs them): the creator starts
//! them, viewers claim and bid, the shop confirms claimed units with a signed callback.
//!
//! Statuses: a claim is 201 (a unit is reserved), 409 `sold_out` / `over_limit`, 410 `sale_over`,
//! 425 `not_started` (before `starts_at`). A bid is 201 (accepted), 409 `bid_too_low` /
//! `already_leading`, 410 `auction_over`, 429 `rate_limited`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::{owned_stream, visible_stream};
use super::commerce::creator_standing;
use super::error::ApiError;
use super::extract::{Auth, Json, MaybeAuth};
use super::products::chosen_carousel_product;
use crate::live::rate::SharedRateLimiter;
use crate::shop::levels::{Benefit, has_benefit};
use crate::store::money;
use crate::store::{AuctionId, Claim, Confirm, Principal, ReservationId, SaleId, Stream, ViewerId};
use crate::streams::sales::auction::{Increments, Offer, Refusal, Tier};
use crate::streams::sales::flash_sale::{self, Terms};
use crate::streams::sales::{self, AuctionView, NewAuction, NewSale, SaleView};

const MAX_ORDER_ID_CHARS: usize = 128;
/// Per-viewer rates of claims and bids (`sales.claims_per_minute`, `sales.bids_per_second`), held
/// across nodes.
pub struct SalesLimits {
    claims: SharedRateLimiter,
    bids: SharedRateLimiter,
}

impl SalesLimits {
    pub fn new(store: &crate::store::Store, config: &crate::config::SalesConfig) -> Self {
        SalesLimits {
            claims: SharedRateLimiter::new(
                store,
                "claim",
                config.claims_per_minute,
                std::time::Duration::from_secs(60),
            ),
            bids: SharedRateLimiter::new(
                store,
                "bid",
                config.bids_per_second,
                std::time::Duration::from_secs(1),
            ),
        }
    }
}

fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Refused {
        status,
        code,
        message: message.into(),
    }
}

async fn rate_limited(limiter: &SharedRateLimiter, viewer: &ViewerId) -> Result<(), ApiError> {
    limiter.check(viewer.0.clone()).await.map_err(|wait| {
        refused(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too fast: try again in {} ms", wait.as_millis()),
        )
    })
}

impl From<sales::Error> for ApiError {
    fn from(e: sales::Error) -> Self {
        use sales::Error as E;
        match e {
            E::Store(e) => e.into(),
            E::NotLive => refused(StatusCode::CONFLICT, "not_live", e.to_string()),
            E::NotPublic => refused(StatusCode::CONFLICT, "not_public", e.to_string()),
            E::TooMany(_) => refused(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_open",
                e.to_string(),
            ),
            E::Invalid(m) => ApiError::bad_request(m),
            E::NotFound => ApiError::NotFound,
            E::BidLimit => refused(StatusCode::CONFLICT, "bid_limit", e.to_string()),
            E::Bid(r) => {
                let status = match r {
                    Refusal::Over => StatusCode::GONE,
                    Refusal::NotStarted => StatusCode::TOO_EARLY,
                    Refusal::TooLow { .. } | Refusal::AlreadyLeading => StatusCode::CONFLICT,
                };
                refused(status, r.code(), r.to_string())
            }
        }
    }
}

fn minor(field: &str, amount: &str, currency: &str) -> Result<i64, ApiError> {
    let m = money::to_minor(amount, currency)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))?;
    if m <= 0 {
        return Err(ApiError::bad_request(format!("{field} must be above 0")));
    }
    Ok(m)
}

/// The viewer behind a request, with their handle (403 for creators and the admin: viewers
/// claim and bid).
async fn viewer(state: &AppState, who: &Principal) -> Result<(ViewerId, String), ApiError> {
    let Principal::Viewer(id) = who else {
        return Err(ApiError::Forbidden(
            "viewers claim and bid: use a viewer token (POST /api/v1/viewers)".into(),
        ));
    };
    let handle = state
        .store
        .viewer_handle(id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok((id.clone(), handle))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSale {
    /// A product of the stream's carousel.
    product_id: String,
    /// The sale price (decimal string in the product's currency), below the product's price…
    price: Option<String>,
    /// …or a whole-percent discount off it (1-90).
    #[serde(alias = "discount")]
    discount_percent: Option<u32>,
    /// Units on sale (1-10000).
    quantity: u32,
    /// Units one viewer may hold (default 1).
    per_viewer_limit: Option<u32>,
    /// How long the sale takes claims (60-1200 s).
    duration_s: u32,
    /// Seconds from now until it opens (0-300, default 0).
    countdown_s: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/flash-sales", tag = "sales", params(("id" = String, Path)), request_body = CreateSale, responses((status = 201, description = "the sale", body = SaleView), (status = 400, description = "bad bounds or price, or not a carousel product"), (status = 403, description = "not the stream's creator"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "the stream is not live (`not_live`) or not public (`not_public`)"), (status = 429, description = "too many open sales on the stream (`sales.max_open_sales`)")), security(("bearer" = [])))]
pub async fn create_sale(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<CreateSale>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let terms = Terms::check(
        body.countdown_s.unwrap_or(0),
        body.duration_s,
        body.quantity,
        body.per_viewer_limit,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let product = chosen_carousel_product(&state, &stream, &body.product_id).await?;
    let list = money::to_minor(&product.price, &product.currency)
        .map_err(|e| ApiError::Conflict(format!("the product's price: {e}")))?;
    let price = match &body.price {
        Some(p) => Some(minor("price", p, &product.currency)?),
        None => None,
    };
    let price_minor = flash_sale::sale_price(list, price, body.discount_percent)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let view = state
        .sales
        .create_sale(
            &stream.id,
            NewSale {
                product,
                terms,
                price_minor,
                list_price_minor: list,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/sales", tag = "sales", params(("id" = String, Path)), responses((status = 200, description = "`{flash_sales: [SaleView], auctions: [AuctionView]}`: the stream's flash sales not over yet and its open auctions"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn open_sales(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &who).await?;
    let (sales, auctions) = state.sales.open(&stream.id).await?;
    Ok(axum::Json(json!({
        "flash_sales": sales,
        "auctions": auctions,
        "server_time": Utc::now(),
    })))
}

fn sale_id(raw: &str) -> Result<SaleId, ApiError> {
    SaleId::parse(raw).ok_or(ApiError::NotFound)
}

fn auction_id(raw: &str) -> Result<AuctionId, ApiError> {
    AuctionId::parse(raw).ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/flash-sales/{sale}", tag = "sales", params(("id" = String, Path), ("sale" = String, Path)), responses((status = 200, description = "its state", body = SaleView), (status = 404, description = "not found (or not yours to see)")))]
pub async fn get_sale(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path((id, sale)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &who).await?;
    Ok(axum::Json(
        state.sales.sale(&stream.id, &sale_id(&sale)?).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/flash-sales/{sale}/claim", tag = "sales", params(("id" = String, Path), ("sale" = String, Path)), responses((status = 201, description = "a unit is reserved: `{reservation_id, expires_at, sale}`; the shop gets `flash_sale.claimed`"), (status = 403, description = "not a viewer token"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "`sold_out`, or `over_limit` (the viewer holds per_viewer_limit units)"), (status = 410, description = "`sale_over`"), (status = 425, description = "`not_started`: before starts_at"), (status = 429, description = "`rate_limited` (sales.claims_per_minute)")), security(("bearer" = [])))]
pub async fn claim(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path((id, sale)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &Some(who.clone())).await?;
    let sale = sale_id(&sale)?;
    let (viewer, handle) = viewer(&state, &who).await?;
    rate_limited(&state.sales_limits.claims, &viewer).await?;
    let (claim, view) = state
        .sales
        .claim(&stream.id, &sale, &viewer, &handle)
        .await?;
    match claim {
        Claim::Reserved {
            reservation,
            expires_at,
            ..
        } => Ok((
            StatusCode::CREATED,
            axum::Json(json!({
                "reservation_id": reservation,
                "expires_at": expires_at,
                "sale": view,
            })),
        )),
        Claim::SoldOut => Err(refused(StatusCode::CONFLICT, "sold_out", "sold out")),
        Claim::OverLimit => Err(refused(
            StatusCode::CONFLICT,
            "over_limit",
            format!("at most {} per viewer", view.per_viewer_limit),
        )),
        Claim::Over => Err(refused(StatusCode::GONE, "sale_over", "the sale is over")),
        Claim::NotStarted => Err(refused(
            StatusCode::TOO_EARLY,
            "not_started",
            format!("the sale opens at {}", view.starts_at),
        )),
        Claim::Unknown => Err(ApiError::NotFound),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConfirmReservation {
    /// The shop's order for the reserved unit.
    order_id: String,
}

#[utoipa::path(post, path = "/api/v1/flash-sales/reservations/{reservation}/confirm", tag = "sales", params(("reservation" = String, Path)), request_body = ConfirmReservation, responses((status = 200, description = "confirmed: `{reservation_id, sale_id, order_id, state}` (again for the same call)"), (status = 400, description = "bad body"), (status = 401, description = "unsigned, badly signed, or stale"), (status = 404, description = "unknown reservation"), (status = 410, description = "`reservation_expired`: the unit went back to the sale"), (status = 503, description = "no shop secret configured")))]
pub async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(reservation): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.map_err(|r| ApiError::bad_request(r.body_text()))?;
    super::commerce::verify_signature(&state, &headers, &body)?;
    let req: ConfirmReservation =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
            code: "invalid_json",
            message: e.to_string(),
        })?;
    if req.order_id.is_empty()
        || req.order_id.chars().count() > MAX_ORDER_ID_CHARS
        || req.order_id.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "order_id must be 1-{MAX_ORDER_ID_CHARS} printable characters"
        )));
    }
    let id = ReservationId::parse(&reservation).ok_or(ApiError::NotFound)?;
    let answer = |sale: SaleId, order_id: String| {
        axum::Json(json!({
            "reservation_id": id,
            "sale_id": sale,
            "order_id": order_id,
            "state": "confirmed",
        }))
    };
    match state
        .store
        .confirm_reservation(&id, &req.order_id, Utc::now())
        .await?
    {
        Confirm::Confirmed { sale, order_id } => {
            tracing::info!(reservation = %id, sale = %sale, "reservation confirmed");
            Ok(answer(sale, order_id))
        }
        Confirm::Already { sale, order_id } if order_id == req.order_id => {
            Ok(answer(sale, order_id))
        }
        Confirm::Already { .. } => Err(ApiError::Conflict(
            "this reservation was confirmed with another order".into(),
        )),
        Confirm::Expired => Err(refused(
            StatusCode::GONE,
            "reservation_expired",
            "the reservation expired and its unit went back to the sale",
        )),
        Confirm::Unknown => Err(ApiError::NotFound),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementTier {
    /// From this price on (decimal string; the first tier from "0")…
    from: String,
    /// …bids rise by this much.
    step: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAuction {
    /// A product of the stream's carousel (its currency is the auction's).
    product_id: String,
    /// The least the first bid may be (decimal string).
    starting_price: String,
    /// A fixed increment…
    increment: Option<String>,
    /// …or a table of increments by price.
    increments: Option<Vec<IncrementTier>>,
    /// 10-3600 s.
    duration_s: u32,
    /// No extension at all (default false).
    sudden_death: Option<bool>,
    /// Anti-sniping: a bid in the last N seconds moves the end to N seconds after it (0-120;
    /// not with sudden death).
    extend_on_bid_s: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/auctions", tag = "sales", params(("id" = String, Path)), request_body = CreateAuction, responses((status = 201, description = "the auction", body = AuctionView), (status = 400, description = "bad amounts or bounds, or not a carousel product"), (status = 403, description = "not the stream's creator, or `level_too_low`: auctions are a level benefit (commerce.levels.benefits.auctions)"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "the stream is not live"), (status = 429, description = "too many open auctions (`sales.max_open_auctions`)")), security(("bearer" = [])))]
pub async fn create_auction(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<CreateAuction>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    // Auctions are a level benefit (`commerce.levels.benefits.auctions`).
    let level = creator_standing(&state, &stream.creator_id).await?.0.level;
    if !has_benefit(&state.config.commerce.levels, level, Benefit::Auctions) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "level_too_low",
            format!(
                "auctions come with a higher creator level (you are at {level}; see GET /api/v1/me/level)"
            ),
        ));
    }
    let product = chosen_carousel_product(&state, &stream, &body.product_id).await?;
    let currency = product.currency.clone();
    let starting_minor = minor("starting_price", &body.starting_price, &currency)?;
    let increments = match (&body.increment, &body.increments) {
        (Some(step), None) => Increments::fixed(minor("increment", step, &currency)?),
        (None, Some(table)) => {
            let mut tiers = Vec::with_capacity(table.len());
            for t in table
                .iter()
                .take(crate::streams::sales::auction::MAX_TIERS + 1)
            {
                let from_minor = money::to_minor(&t.from, &currency)
                    .map_err(|e| ApiError::bad_request(format!("increments.from: {e}")))?;
                tiers.push(Tier {
                    from_minor,
                    step_minor: minor("increments.step", &t.step, &currency)?,
                });
            }
            Increments::table(tiers)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either increment or increments (a table), not both or neither",
            ));
        }
    }
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let view = state
        .sales
        .create_auction(
            &stream.id,
            NewAuction {
                product,
                starting_minor,
                increments,
                duration_s: body.duration_s,
                sudden_death: body.sudden_death.unwrap_or(false),
                extend_on_bid_s: body.extend_on_bid_s.unwrap_or(0),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/auctions/{auction}", tag = "sales", params(("id" = String, Path), ("auction" = String, Path)), responses((status = 200, description = "its state; once over, `winner` {handle, amount}", body = AuctionView), (status = 404, description = "not found (or not yours to see)")))]
pub async fn get_auction(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path((id, auction)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &who).await?;
    Ok(axum::Json(
        state
            .sales
            .auction(&stream.id, &auction_id(&auction)?)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceBid {
    /// Bid exactly this (decimal string)…
    amount: Option<String>,
    /// …or bid as little as needed up to this (proxy bid).
    max_amount: Option<String>,
}

/// Places a bid for `who` (REST and live channel alike).
pub async fn place_bid(
    state: &AppState,
    stream: &Stream,
    auction: &str,
    who: &Principal,
    amount: Option<&str>,
    max_amount: Option<&str>,
) -> Result<AuctionView, ApiError> {
    let auction = auction_id(auction)?;
    let (viewer, handle) = viewer(state, who).await?;
    let current = state.sales.auction(&stream.id, &auction).await?;
    let offer = match (amount, max_amount) {
        (Some(a), None) => Offer::Amount(minor("amount", a, &current.currency)?),
        (None, Some(m)) => Offer::Max(minor("max_amount", m, &current.currency)?),
        _ => {
            return Err(ApiError::bad_request(
                "give either amount or max_amount, not both or neither",
            ));
        }
    };
    // Well-formed bids count against the rate.
    rate_limited(&state.sales_limits.bids, &viewer).await?;
    Ok(state
        .sales
        .bid(&stream.id, &auction, &viewer, &handle, offer)
        .await?)
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/auctions/{auction}/bids", tag = "sales", params(("id" = String, Path), ("auction" = String, Path)), request_body = PlaceBid, responses((status = 201, description = "accepted: the auction after it (`last_bid` is this bid)", body = AuctionView), (status = 400, description = "bad amount"), (status = 403, description = "not a viewer token"), (status = 404, description = "not found (or not yours to see; a practice stream's auction)"), (status = 409, description = "`bid_too_low`, `already_leading`, `bid_limit`"), (status = 410, description = "`auction_over`"), (status = 429, description = "`rate_limited` (sales.bids_per_second)")), security(("bearer" = [])))]
pub async fn bid(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path((id, auction)): Path<(String, String)>,
    Json(body): Json<PlaceBid>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &Some(who.clone())).await?;
    let view = place_bid(
        &state,
        &stream,
        &auction,
        &who,
        body.amount.as_deref(),
        body.max_amount.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/auctions/{auction}/bids", tag = "sales", params(("id" = String, Path), ("auction" = String, Path)), responses((status = 200, description = "`{rules, bids}`: the auction's rules and its stored bid log in arrival order (proxy maximums included), from which its result replays (`auction::replay`)"), (status = 403, description = "not the stream's creator"), (status = 404, description = "not found")), security(("bearer" = [])))]
pub async fn bid_log(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path((id, auction)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let auction = auction_id(&auction)?;
    let rules = state.sales.auction_rules(&stream.id, &auction).await?;
    let bids = state.sales.bid_log(&auction).await?;
    Ok(axum::Json(json!({"rules": rules, "bids": bids})))
}
