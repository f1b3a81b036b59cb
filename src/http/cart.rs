//! "Add to cart" from the watch page and the embeddable player: counted per product and stream
//! (limited per client address and per viewer), answered with what the page hands the shop: the
//! product, the attribution to pass on at checkout, the viewer's redeemed promo code, and the
//! `shop.cart_url` filled in (values URL-encoded; see [`crate::shop::cart`]).
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::access::visible_stream;
use super::commerce::{carousel_product, session_cookie};
use super::error::ApiError;
use super::extract::{ClientIp, Json, MaybeAuth};
use crate::live::rate::SharedRateLimiter;
use crate::shop as rules;
use crate::store::Principal;

const WINDOW: Duration = Duration::from_secs(60);

/// Add-to-cart taps per client address group and per viewer within a minute, held across nodes.
pub struct CartLimits {
    by_key: SharedRateLimiter,
}

impl CartLimits {
    pub fn new(store: &crate::store::Store, per_minute: u32) -> Self {
        CartLimits {
            by_key: SharedRateLimiter::new(store, "cart", per_minute, WINDOW),
        }
    }

    /// Counts one tap from `ip` (and `viewer`); false when either is over the limit.
    async fn allow(&self, ip: IpAddr, viewer: Option<&str>) -> bool {
        let group = format!("ip:{}", crate::address::client_group(ip));
        let ip_ok = self.by_key.check(group).await.is_ok();
        let viewer_ok = match viewer {
            Some(v) => self.by_key.check(format!("viewer:{v}")).await.is_ok(),
            None => true,
        };
        ip_ok && viewer_ok
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddToCart {
    /// A product of the stream's carousel.
    product_id: String,
    /// From the embeddable player (`/embed/{id}`).
    #[serde(default)]
    embedded: bool,
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/cart-adds", tag = "commerce", params(("id" = String, Path, description = "stream id")), request_body = AddToCart, responses((status = 201, description = "counted: `{product: {id, sku, title, price, currency}, stream_id, attribution, promo_code, cart_url}`; `attribution` is what to pass as the purchase's `attribution` (the share-link session or the creator's associate tag), `promo_code` the viewer's redeemed code on this stream, `cart_url` the filled-in `shop.cart_url` (null when unset)"), (status = 400, description = "bad input"), (status = 404, description = "not a product of the stream's carousel, or the stream is not yours to see"), (status = 429, description = "too many add-to-cart taps from this address or viewer")), security((), ("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    MaybeAuth(who): MaybeAuth,
    ClientIp(client): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<AddToCart>,
) -> Result<impl IntoResponse, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &who).await?;
    let viewer = match &who {
        Some(Principal::Viewer(v)) => Some(v.clone()),
        _ => None,
    };
    if !state
        .cart_limits
        .allow(client, viewer.as_ref().map(|v| v.as_str()))
        .await
    {
        return Err(ApiError::TooManyRequests(format!(
            "at most {} add-to-cart taps a minute",
            state.config.shop.cart_adds_per_minute
        )));
    }
    let product = carousel_product(&state, &stream.id, &body.product_id).await?;
    state
        .store
        .record_cart_add(&stream.id, &product.id, viewer.as_ref(), body.embedded)
        .await?;
    let tag = state.store.associate_tag(&stream.creator_id).await?;
    // The share-link session this browser came with (same stream), else the creator's tag.
    let session = match session_cookie(&headers) {
        Some(sid) => state
            .store
            .session(&sid)
            .await?
            .filter(|s| s.stream_id == stream.id)
            .map(|s| s.id),
        None => None,
    };
    let attribution = session.or_else(|| tag.clone());
    let promo_code = match &viewer {
        Some(v) => state
            .store
            .redemption_on_stream(&stream.id, v)
            .await?
            .map(|r| r.code),
        None => None,
    };
    let cart_url = state.config.shop.cart_url.as_deref().and_then(|t| {
        rules::cart::fill(
            t,
            &[
                ("product_id", product.id.as_str()),
                ("sku", &product.sku),
                ("stream_id", stream.id.as_str()),
                ("tag", tag.as_deref().unwrap_or("")),
                ("attribution", attribution.as_deref().unwrap_or("")),
                ("promo_code", promo_code.as_deref().unwrap_or("")),
            ],
        )
    });
    tracing::debug!(stream = %stream.id, product = %product.id, embedded = body.embedded, "added to cart");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "product": {
                "id": product.id,
                "sku": product.sku,
                "title": product.title,
                "price": product.price,
                "currency": product.currency,
            },
            "stream_id": stream.id,
            "attribution": attribution,
            "promo_code": promo_code,
            "cart_url": cart_url,
        })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn taps_are_limited_per_address_and_per_viewer() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let limits = CartLimits::new(&store, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.allow(a, None).await);
        assert!(limits.allow(a, Some("v1")).await);
        assert!(!limits.allow(a, None).await, "address over");
        assert!(limits.allow(b, Some("v1")).await);
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        assert!(
            !limits.allow(c, Some("v1")).await,
            "viewer over, from another address too"
        );
        assert!(limits.allow(c, Some("v2")).await);
    }
}
