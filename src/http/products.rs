//! A creator's product catalog, and the carousel of products a stream shows.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::{owned_stream, visible_stream};
use super::error::ApiError;
use super::extract::{Auth, Json, MaybeAuth};
use crate::store::money;
use crate::store::{CatalogError, CreatorId, Principal, Product, ProductId};

const MAX_SKU_CHARS: usize = 64;
const MAX_TITLE_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2048;
const MAX_CATEGORY_CHARS: usize = 64;
/// Products in one stream's carousel.
pub const MAX_CAROUSEL: usize = 100;

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::SkuTaken(_) => ApiError::Conflict(e.to_string()),
            CatalogError::NotYours(_) => ApiError::bad_request(e.to_string()),
            CatalogError::Store(e) => e.into(),
        }
    }
}

/// A product as sent by its creator (all fields for a new one; any for a change).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductFields {
    sku: Option<String>,
    title: Option<String>,
    /// Decimal string with up to 4 decimals, e.g. "19.99".
    price: Option<String>,
    /// ISO 4217 code, e.g. "EUR".
    currency: Option<String>,
    image_url: Option<String>,
    url: Option<String>,
    category: Option<String>,
}

fn valid_price(p: &str) -> bool {
    money::is_decimal(p, 9, 4)
}

fn valid_url(u: &str) -> bool {
    u.len() <= MAX_URL_CHARS && crate::shop::product_url(u).is_some()
}

/// Applies `fields` to `p` and checks the result.
fn apply(p: &mut Product, fields: ProductFields) -> Result<(), ApiError> {
    if let Some(v) = fields.sku {
        p.sku = v.trim().to_string();
    }
    if let Some(v) = fields.title {
        p.title = v.trim().to_string();
    }
    if let Some(v) = fields.price {
        p.price = v;
    }
    if let Some(v) = fields.currency {
        p.currency = v;
    }
    if fields.image_url.is_some() {
        p.image_url = fields.image_url;
    }
    if fields.url.is_some() {
        p.url = fields.url;
    }
    if fields.category.is_some() {
        p.category = fields.category;
    }
    let bad = |m: String| Err(ApiError::bad_request(m));
    if p.sku.is_empty() || p.sku.chars().count() > MAX_SKU_CHARS {
        return bad(format!("sku must be 1-{MAX_SKU_CHARS} characters"));
    }
    if p.title.is_empty() || p.title.chars().count() > MAX_TITLE_CHARS {
        return bad(format!("title must be 1-{MAX_TITLE_CHARS} characters"));
    }
    if !valid_price(&p.price) {
        return bad("price must be a decimal string such as \"19.99\" (up to 4 decimals)".into());
    }
    if !money::is_currency_code(&p.currency) {
        return bad("currency must be an ISO 4217 code such as \"EUR\"".into());
    }
    for (name, u) in [("image_url", &p.image_url), ("url", &p.url)] {
        if u.as_deref().is_some_and(|u| !valid_url(u)) {
            return bad(format!(
                "{name} must be an http(s) URL of at most {MAX_URL_CHARS} characters"
            ));
        }
    }
    if p.category
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_CATEGORY_CHARS)
    {
        return bad(format!(
            "category must be at most {MAX_CATEGORY_CHARS} characters"
        ));
    }
    Ok(())
}

fn creator(who: Principal) -> Result<CreatorId, ApiError> {
    match who {
        Principal::Creator(id) => Ok(id),
        _ => Err(ApiError::Forbidden(
            "products belong to creators; use a creator token".into(),
        )),
    }
}

/// The caller's product `id`, or 404.
async fn own(state: &AppState, who: &CreatorId, id: &str) -> Result<Product, ApiError> {
    let id = ProductId::parse(id).ok_or(ApiError::NotFound)?;
    match state.store.product(&id).await? {
        Some(p) if &p.creator_id == who => Ok(p),
        _ => Err(ApiError::NotFound),
    }
}

#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = ProductFields, responses((status = 201, description = "the product", body = Product), (status = 400, description = "bad input"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator"), (status = 409, description = "sku taken")), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(fields): Json<ProductFields>,
) -> Result<impl IntoResponse, ApiError> {
    let mut p = Product {
        id: ProductId::generate(),
        creator_id: creator(who)?,
        sku: String::new(),
        title: String::new(),
        price: String::new(),
        currency: String::new(),
        image_url: None,
        url: None,
        category: None,
        created_at: Utc::now(),
    };
    apply(&mut p, fields)?;
    state.store.save_product(p.clone()).await?;
    Ok((StatusCode::CREATED, axum::Json(p)))
}

#[utoipa::path(get, path = "/api/v1/products", tag = "products", responses((status = 200, description = "the caller's catalog"), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator")), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let products = state.store.products_of(&creator(who)?).await?;
    Ok(axum::Json(json!({ "products": products })))
}

#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products", params(("id" = String, Path)), responses((status = 200, description = "the product", body = Product), (status = 401, description = "missing or unknown token"), (status = 403, description = "not a creator"), (status = 404, description = "not found (or not yours)")), security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(own(&state, &creator(who)?, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "products", params(("id" = String, Path)), request_body = ProductFields, responses((status = 200, description = "the product", body = Product), (status = 400, description = "bad input"), (status = 404, description = "not found (or not yours)"), (status = 409, description = "sku taken")), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(fields): Json<ProductFields>,
) -> Result<impl IntoResponse, ApiError> {
    let mut p = own(&state, &creator(who)?, &id).await?;
    apply(&mut p, fields)?;
    state.store.save_product(p.clone()).await?;
    Ok(axum::Json(p))
}

#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "products", params(("id" = String, Path)), responses((status = 204, description = "deleted, and taken out of every carousel"), (status = 404, description = "not found (or not yours)")), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let p = own(&state, &creator(who)?, &id).await?;
    state.store.delete_product(&p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Carousel {
    /// The stream's products in carousel order (at most 100, from the creator's catalog).
    product_ids: Vec<String>,
}

#[utoipa::path(put, path = "/api/v1/streams/{id}/products", tag = "products", params(("id" = String, Path)), request_body = Carousel, responses((status = 200, description = "the carousel"), (status = 400, description = "unknown, foreign or too many products"), (status = 403, description = "not the stream's creator"), (status = 404, description = "not found (or not yours to see)")), security(("bearer" = [])))]
pub async fn set_carousel(
    State(state): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Json(body): Json<Carousel>,
) -> Result<impl IntoResponse, ApiError> {
    let stream = owned_stream(&state, &id, &who).await?;
    if body.product_ids.len() > MAX_CAROUSEL {
        return Err(ApiError::bad_request(format!(
            "a carousel holds at most {MAX_CAROUSEL} products"
        )));
    }
    let mut ids = Vec::new();
    for raw in &body.product_ids {
        let id = ProductId::parse(raw).ok_or_else(|| {
            ApiError::bad_request(format!("product {raw} is not in your catalog"))
        })?;
        if ids.contains(&id) {
            return Err(ApiError::bad_request(format!(
                "product {raw} is listed twice"
            )));
        }
        ids.push(id);
    }
    state
        .store
        .set_carousel(&stream.id, &stream.creator_id, ids)
        .await?;
    let products = state.store.carousel(&stream.id).await?;
    Ok(axum::Json(json!({ "products": products })))
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/products", tag = "products", params(("id" = String, Path)), responses((status = 200, description = "the carousel, in order"), (status = 404, description = "not found (or not yours to see)")))]
pub async fn carousel(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &who).await?;
    let products = state.store.carousel(&stream.id).await?;
    Ok(axum::Json(json!({ "products": products })))
}

/// A product of the stream's carousel (400 otherwise, naming the product): what focus, flash
/// sales and auctions take.
pub(super) async fn chosen_carousel_product(
    state: &AppState,
    stream: &crate::store::Stream,
    raw: &str,
) -> Result<Product, ApiError> {
    super::commerce::carousel_product(state, &stream.id, raw)
        .await
        .map_err(|e| match e {
            ApiError::NotFound => ApiError::bad_request(format!(
                "product {raw} is not in this stream's carousel (PUT /api/v1/streams/{}/products)",
                stream.id
            )),
            other => other,
        })
}
