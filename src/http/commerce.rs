//! Commerce: associate tags, share links and their attribution sessions, product click-outs,
//! signed purchases from the shop backend, the commission ledger, and creator levels.
//!
//! Money is integer minor units throughout ([`crate::store::money`]); commissions are rounded half
//! up to the minor unit of the sale's currency.
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::access::{owned_stream, visible_stream};
use super::error::ApiError;
use super::extract::{Auth, Json, MaybeAuth};
use crate::shop::levels::{Standing, benefits_for, standing};
use crate::shop::promos::{MAX_CODE_CHARS, MIN_CODE_CHARS, valid_code};
use crate::shop::{self as rules, ATTRIBUTION_WINDOW, CLOCK_SKEW, SESSION_COOKIE};
use crate::store::money::{self, to_decimal};
use crate::store::{
    AttributionSession, Click, CreatorId, EarningsRow, LedgerLine, NewPurchase, Principal, Product,
    ProductId, Recorded, ShareLink, StreamId, code_key,
};
use crate::webhooks::signature;

const MAX_ORDER_ID_CHARS: usize = 128;
const MAX_ITEMS: usize = 100;
const MAX_PRODUCT_ID_CHARS: usize = 64;
/// Click-outs listed per stream.
const CLICKS_LISTED: usize = 100;

fn creator(who: &Principal) -> Result<CreatorId, ApiError> {
    match who {
        Principal::Creator(id) => Ok(id.clone()),
        _ => Err(ApiError::Forbidden(
            "this belongs to creators; use a creator token".into(),
        )),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMe {
    /// The creator's associate tag, added to product click-outs as `?tag=`: 3-32 characters of
    /// a-z, 0-9 and `-`, starting and ending with a letter or digit (`alice-20`); unique.
    associate_tag: String,
}

#[utoipa::path(patch, path = "/api/v1/me", tag = "commerce", request_body = EditMe, responses((status = 200, description = "`{id, handle, associate_tag}`"), (status = 400, description = "bad tag"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator"), (status = 409, description = "tag taken by another creator")), security(("bearer" = [])))]
pub async fn edit_me(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(body): Json<EditMe>,
) -> Result<impl IntoResponse, ApiError> {
    let id = creator(&who)?;
    if !rules::valid_tag(&body.associate_tag) {
        return Err(ApiError::bad_request(
            "associate_tag must be 3-32 characters of a-z, 0-9 and -, starting and ending with a letter or digit",
        ));
    }
    if !state
        .store
        .set_associate_tag(&id, &body.associate_tag)
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "associate tag {:?} is taken",
            body.associate_tag
        )));
    }
    let me = state.store.creator(&id).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(
        json!({"id": me.id, "handle": me.handle, "associate_tag": body.associate_tag}),
    ))
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/links", tag = "commerce", params(("id" = String, Path, description = "stream id")), responses((status = 201, description = "`{code, url, stream_id, tag, created_at}`"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not the stream's creator"), (status = 404, description = "not found (or not yours to see)"), (status = 409, description = "the creator has no associate tag yet")), security(("bearer" = [])))]
pub async fn create_link(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let tag = state
        .store
        .associate_tag(&stream.creator_id)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "set an associate tag first: PATCH /api/v1/me {\"associate_tag\": \"…\"}".into(),
            )
        })?;
    let link = ShareLink {
        code: rules::new_link_code(),
        creator_id: stream.creator_id.clone(),
        stream_id: stream.id.clone(),
        tag,
        created_at: Utc::now(),
    };
    state.store.create_share_link(link.clone()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "code": link.code,
            "url": format!("{}/s/{}", state.public_url, link.code),
            "stream_id": link.stream_id,
            "tag": link.tag,
            "created_at": link.created_at,
        })),
    ))
}

/// The stream's newest share link, for the watch page's share button: `{url}`, null until the
/// creator made one.
#[utoipa::path(get, path = "/api/v1/streams/{id}/links", tag = "commerce", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "`{url}`: the newest share link of the stream, or null"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn latest_link(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &who).await?;
    let url = state
        .store
        .latest_share_link(&stream.id)
        .await?
        .map(|code| format!("{}/s/{code}", state.public_url));
    Ok(axum::Json(json!({ "url": url })))
}

/// A product of the stream's carousel by its id (404 for anything else).
pub(super) async fn carousel_product(
    state: &AppState,
    stream: &StreamId,
    product_id: &str,
) -> Result<Product, ApiError> {
    let product_id = ProductId::parse(product_id).ok_or(ApiError::NotFound)?;
    state
        .store
        .carousel(stream)
        .await?
        .into_iter()
        .find(|p| p.id == product_id)
        .ok_or(ApiError::NotFound)
}

/// The attribution session id in the request's cookies, if it is well-formed.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    super::cookie::named(headers, SESSION_COOKIE).filter(|v| rules::valid_session_id(v))
}

/// Follows a share link: starts an attribution session (cookie) and redirects to the watch page.
#[utoipa::path(get, path = "/s/{code}", tag = "commerce", params(("code" = String, Path, description = "share link code")), responses((status = 302, description = "to `/watch/{stream_id}`, with the `lf_attr` attribution cookie (24 h, HttpOnly, SameSite=Lax)"), (status = 404, description = "unknown link, or the stream is not public")))]
pub async fn follow_link(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    if !rules::valid_link_code(&code) {
        return Err(ApiError::NotFound);
    }
    let link = state
        .store
        .share_link(&code)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (stream, _) = visible_stream(&state, link.stream_id.as_str(), &who).await?;
    let session = AttributionSession {
        id: rules::new_session_id(),
        creator_id: link.creator_id.clone(),
        stream_id: stream.id.clone(),
        link_code: link.code.clone(),
        created_at: Utc::now(),
    };
    state.store.start_session(session.clone()).await?;
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax{secure}",
        session.id,
        ATTRIBUTION_WINDOW.num_seconds()
    );
    let location = format!("/watch/{}", stream.id);
    tracing::debug!(stream = %stream.id, link = %link.code, "attribution session started");
    Ok(redirect(&location, Some(cookie)))
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// A product click-out: redirects to the product's URL with the creator's `tag`, and logs the click
/// with the attribution session (cookie) and the product in focus at that moment.
#[utoipa::path(get, path = "/go/{stream_id}/{product_id}", tag = "commerce", params(("stream_id" = String, Path), ("product_id" = String, Path)), responses((status = 302, description = "to the product URL with `tag=` added (other query parameters kept)"), (status = 404, description = "not a product of the stream's carousel, no product URL, or the stream is not yours to see")))]
pub async fn click_out(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path((stream_id, product_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (stream, _) = visible_stream(&state, &stream_id, &who).await?;
    let product = carousel_product(&state, &stream.id, &product_id).await?;
    // Only an http(s) URL with a host and no userinfo (stored before that was checked too).
    let url = product
        .url
        .as_deref()
        .and_then(rules::product_url)
        .ok_or(ApiError::NotFound)?;
    let location = match state.store.associate_tag(&stream.creator_id).await? {
        Some(tag) => rules::tagged_url(url.as_str(), &tag).ok_or(ApiError::NotFound)?,
        None => url.into(),
    };
    let session_id = match session_cookie(&headers) {
        Some(id) => state.store.session(&id).await?.map(|s| s.id),
        None => None,
    };
    let focus_product_id = match state.registry.live(&stream.id) {
        Some(live) => live
            .focus
            .lock()
            .await
            .as_ref()
            .and_then(|f| f.product.as_ref())
            .map(|p| p.id.to_string()),
        None => None,
    };
    state
        .store
        .log_click(
            &stream.id,
            Click {
                product_id: product.id.to_string(),
                session_id,
                focus_product_id,
                at: Utc::now(),
            },
        )
        .await?;
    Ok(redirect(&location, None))
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/clicks", tag = "commerce", params(("id" = String, Path, description = "stream id")), responses((status = 200, description = "the latest 100 click-outs, newest first: `{clicks: [{product_id, focus_product_id, attributed, at}]}`"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not the stream's creator"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn clicks(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    let clicks: Vec<Value> = state
        .store
        .clicks(&stream.id, CLICKS_LISTED)
        .await?
        .into_iter()
        .map(|c| {
            json!({
                "product_id": c.product_id,
                "focus_product_id": c.focus_product_id,
                "attributed": c.session_id.is_some(),
                "at": c.at,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "clicks": clicks })))
}

/// An order as the shop backend reports it.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Purchase {
    /// The shop's order id; reporting the same order again is answered with the stored result.
    order_id: String,
    items: Vec<PurchaseItem>,
    /// The attribution session id (the `lf_attr` cookie) or an associate tag.
    attribution: Option<String>,
    /// When the order was placed (RFC 3339).
    at: DateTime<Utc>,
    /// A promo code of the attributed stream the whole order was sold with (items may name
    /// their own instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promo_code: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseItem {
    product_id: String,
    /// Decimal string in `currency`, at most its minor-unit decimals ("19.99" EUR, "1500" JPY).
    amount: String,
    /// ISO 4217 code.
    currency: String,
    /// A promo code of the attributed stream this line was sold with (instead of the order's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promo_code: Option<String>,
}

/// Whom an order is attributed to, and why (or why not).
struct Attribution {
    to: Option<(CreatorId, StreamId)>,
    via: &'static str,
    session_id: Option<String>,
}

async fn attribute(
    state: &AppState,
    key: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Attribution, ApiError> {
    let none = |via| Attribution {
        to: None,
        via,
        session_id: None,
    };
    let Some(key) = key else {
        return Ok(none("none"));
    };
    if rules::valid_session_id(key)
        && let Some(s) = state.store.session(key).await?
    {
        let inside =
            s.created_at - CLOCK_SKEW <= at && at <= s.created_at + ATTRIBUTION_WINDOW + CLOCK_SKEW;
        return Ok(Attribution {
            to: inside.then(|| (s.creator_id.clone(), s.stream_id.clone())),
            via: if inside {
                "session"
            } else {
                "session_outside_window"
            },
            session_id: Some(s.id),
        });
    }
    if rules::valid_tag(key)
        && let Some(creator) = state.store.creator_by_tag(key).await?
    {
        let stream = state
            .store
            .latest_public_stream(
                &creator,
                at - ATTRIBUTION_WINDOW - CLOCK_SKEW,
                at + CLOCK_SKEW,
            )
            .await?;
        return Ok(match stream {
            Some(stream) => Attribution {
                to: Some((creator, stream)),
                via: "tag",
                session_id: None,
            },
            None => none("tag_without_public_stream_in_window"),
        });
    }
    Ok(none("unknown"))
}

/// Checks `X-Livefront-Signature` over the raw body with the shop secret.
fn verify_signature(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let secret = state.config.shop.secret.as_deref().ok_or_else(|| {
        ApiError::Unavailable(
            "purchases are not accepted: no shop secret is configured (shop.secret, LIVEFRONT_SHOP_SECRET)".into(),
        )
    })?;
    let header = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::BadSignature(format!("missing {} header", signature::HEADER)))?;
    signature::verify(secret.as_bytes(), header, body, Utc::now().timestamp())
        .map_err(|e| ApiError::BadSignature(e.to_string()))
}

#[utoipa::path(post, path = "/api/v1/purchases", tag = "commerce", request_body = Purchase, responses((status = 201, description = "recorded: `{order_id, attributed, attribution, creator, stream_id, lines, totals}`"), (status = 200, description = "the same order again: the stored result with `duplicate: true` (no second ledger entry)"), (status = 400, description = "bad order"), (status = 401, description = "unsigned, badly signed, or stale (older than 5 minutes)"), (status = 409, description = "order id already reported with different content"), (status = 503, description = "no shop secret configured")))]
pub async fn purchase(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(super::MAX_BODY_BYTES)
        } else {
            ApiError::bad_request(r.body_text())
        }
    })?;
    verify_signature(&state, &headers, &body)?;
    let order: Purchase = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        code: "invalid_json",
        message: e.to_string(),
    })?;
    let bad = |m: String| Err(ApiError::bad_request(m));
    if order.order_id.is_empty()
        || order.order_id.chars().count() > MAX_ORDER_ID_CHARS
        || order.order_id.chars().any(char::is_control)
    {
        return bad(format!(
            "order_id must be 1-{MAX_ORDER_ID_CHARS} printable characters"
        ));
    }
    if order.items.is_empty() || order.items.len() > MAX_ITEMS {
        return bad(format!("an order has 1-{MAX_ITEMS} items"));
    }
    super::dates::check("at", order.at)?;
    if order.at > Utc::now() + chrono::TimeDelta::seconds(signature::MAX_AGE_S) {
        return bad("at is in the future".into());
    }
    if order.promo_code.as_deref().is_some_and(|c| !valid_code(c)) {
        return bad(format!(
            "promo_code must be {MIN_CODE_CHARS}-{MAX_CODE_CHARS} characters of A-Z, a-z, 0-9, _ and -"
        ));
    }
    let mut amounts = Vec::with_capacity(order.items.len());
    for item in &order.items {
        if item.product_id.is_empty() || item.product_id.chars().count() > MAX_PRODUCT_ID_CHARS {
            return bad(format!(
                "product_id must be 1-{MAX_PRODUCT_ID_CHARS} characters"
            ));
        }
        if item.promo_code.as_deref().is_some_and(|c| !valid_code(c)) {
            return bad(format!(
                "item {}: promo_code must be {MIN_CODE_CHARS}-{MAX_CODE_CHARS} characters of A-Z, a-z, 0-9, _ and -",
                item.product_id
            ));
        }
        let minor = money::to_minor(&item.amount, &item.currency)
            .map_err(|e| ApiError::bad_request(format!("item {}: {e}", item.product_id)))?;
        amounts.push(minor);
    }
    let attribution = attribute(&state, order.attribution.as_deref(), order.at).await?;
    let mut lines = Vec::new();
    if let Some((_, stream)) = &attribution.to {
        // Codes count only as the attributed stream's own (matched without case).
        let codes = state.store.promos_of_stream(stream).await?;
        let known = |c: Option<&str>| {
            let key = code_key(c?);
            codes
                .iter()
                .find(|p| code_key(&p.code) == key)
                .map(|p| p.code.clone())
        };
        for (item, &amount_minor) in order.items.iter().zip(&amounts) {
            let category = match ProductId::parse(&item.product_id) {
                Some(id) => state.store.product(&id).await?.and_then(|p| p.category),
                None => None,
            };
            let rate = state.config.commerce.rate(category.as_deref());
            lines.push(LedgerLine {
                product_id: item.product_id.clone(),
                category,
                currency: item.currency.clone(),
                amount_minor,
                rate: rate.to_string(),
                commission_minor: rate.of(amount_minor),
                promo_code: known(item.promo_code.as_deref().or(order.promo_code.as_deref())),
            });
        }
    }
    let creator = match &attribution.to {
        Some((c, _)) => state.store.creator(c).await?.map(|c| c.handle),
        None => None,
    };
    let result = json!({
        "order_id": order.order_id,
        "at": order.at,
        "attributed": attribution.to.is_some(),
        "attribution": attribution.via,
        "creator": creator,
        "stream_id": attribution.to.as_ref().map(|(_, s)| s),
        "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
        "totals": totals(&lines),
    });
    let record = NewPurchase {
        order_id: order.order_id.clone(),
        request: serde_json::to_string(&order).map_err(|e| ApiError::Internal(e.to_string()))?,
        attributed: attribution.to.clone(),
        session_id: attribution.session_id,
        at: order.at,
        result: result.to_string(),
        lines,
    };
    match state.store.record_purchase(record).await? {
        Recorded::New => {
            tracing::info!(order = %order.order_id, attributed = attribution.to.is_some(), via = attribution.via, "purchase recorded");
            Ok((StatusCode::CREATED, axum::Json(result)).into_response())
        }
        Recorded::Duplicate(stored) => {
            let mut v: Value =
                serde_json::from_str(&stored).map_err(|e| ApiError::Internal(e.to_string()))?;
            v["duplicate"] = json!(true);
            Ok((StatusCode::OK, axum::Json(v)).into_response())
        }
        Recorded::Clash => Err(ApiError::Conflict(format!(
            "order {:?} was already reported with different content",
            order.order_id
        ))),
    }
}

fn line_json(l: &LedgerLine) -> Value {
    json!({
        "product_id": l.product_id,
        "category": l.category,
        "currency": l.currency,
        "amount": to_decimal(l.amount_minor, &l.currency),
        "amount_minor": l.amount_minor,
        "rate": l.rate,
        "commission": to_decimal(l.commission_minor, &l.currency),
        "commission_minor": l.commission_minor,
        "promo_code": l.promo_code,
    })
}

/// Commission per currency of some ledger lines.
fn totals(lines: &[LedgerLine]) -> Vec<Value> {
    let mut by: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
    for l in lines {
        let e = by.entry(&l.currency).or_default();
        e.0 += l.amount_minor;
        e.1 += l.commission_minor;
    }
    by.into_iter()
        .map(|(currency, (sales, commission))| {
            json!({
                "currency": currency,
                "sales": to_decimal(sales, currency),
                "sales_minor": sales,
                "commission": to_decimal(commission, currency),
                "commission_minor": commission,
            })
        })
        .collect()
}

fn earnings_json(r: &EarningsRow) -> Value {
    json!({
        "currency": r.currency,
        "sales": to_decimal(r.sales_minor, &r.currency),
        "sales_minor": r.sales_minor,
        "commission": to_decimal(r.commission_minor, &r.currency),
        "commission_minor": r.commission_minor,
        "orders": r.orders,
    })
}

#[utoipa::path(get, path = "/api/v1/me/earnings", tag = "commerce", params(("from" = Option<String>, Query, description = "RFC 3339, inclusive (by order time)"), ("to" = Option<String>, Query, description = "RFC 3339, exclusive")), responses((status = 200, description = "`{from, to, totals, by_stream, by_category, by_code}` (`by_code`: lines sold with a promo code, per code), each entry per currency in minor units and as a decimal string"), (status = 400, description = "bad time"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator")), security(("bearer" = [])))]
pub async fn earnings(
    State(state): State<AppState>,
    Auth(who): Auth,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let id = creator(&who)?;
    let from = super::dates::parse_query("from", q.get("from").map(String::as_str))?;
    let to = super::dates::parse_query("to", q.get("to").map(String::as_str))?;
    let ledger = state.store.earnings(&id, from, to).await?;
    let mut by_stream = Vec::new();
    for row in &ledger.by_stream {
        let title = match StreamId::parse(&row.key) {
            Some(sid) => state.store.stream(&sid).await?.map(|s| s.title),
            None => None,
        };
        let mut v = earnings_json(row);
        v["stream_id"] = json!(row.key);
        v["title"] = json!(title);
        by_stream.push(v);
    }
    let by_category: Vec<Value> = ledger
        .by_category
        .iter()
        .map(|row| {
            let mut v = earnings_json(row);
            v["category"] = if row.key.is_empty() {
                Value::Null
            } else {
                json!(row.key)
            };
            v
        })
        .collect();
    Ok(axum::Json(json!({
        "from": from,
        "to": to,
        "rounding": "half_up",
        "totals": ledger.totals.iter().map(earnings_json).collect::<Vec<_>>(),
        "by_stream": by_stream,
        "by_category": by_category,
        "by_code": ledger.by_code.iter().map(|row| {
            let mut v = earnings_json(row);
            v["promo_code"] = json!(row.key);
            v
        }).collect::<Vec<_>>(),
    })))
}

/// A creator's standing now: (level and next, public minutes, attributed orders) over the window.
pub(super) async fn creator_standing(
    state: &AppState,
    creator: &CreatorId,
) -> Result<(Standing, f64, u64), ApiError> {
    let levels = &state.config.commerce.levels;
    let since = Utc::now() - chrono::TimeDelta::days(i64::from(levels.window_days));
    let minutes = state.store.public_minutes(creator, since).await?;
    let sales = state.store.attributed_orders(creator, since).await?;
    Ok((standing(&levels.thresholds, minutes, sales), minutes, sales))
}

#[utoipa::path(get, path = "/api/v1/me/level", tag = "commerce", responses((status = 200, description = "`{level, public_minutes, sales, window_days, next: {level, public_minutes, sales, progress: {public_minutes, sales}} | null, benefits, next_benefits}`: `benefits` are what the level gives (`commerce.levels.benefits`), `next_benefits` what the next level would"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator")), security(("bearer" = [])))]
pub async fn level(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let id = creator(&who)?;
    let (standing, minutes, sales) = creator_standing(&state, &id).await?;
    let levels = &state.config.commerce.levels;
    Ok(axum::Json(json!({
        "level": standing.level,
        "public_minutes": (minutes * 100.0).floor() / 100.0,
        "sales": sales,
        "window_days": levels.window_days,
        "next": standing.next,
        "benefits": benefits_for(levels, standing.level),
        "next_benefits": standing.next.as_ref().map(|n| benefits_for(levels, n.level)),
    })))
}
