//! The product catalog and a stream's carousel: validation, ownership, order, visibility.
mod common;

use anyhow::Result;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn call(
    api: &Api,
    m: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    api.request(m, path, token, body).await
}

fn product(sku: &str, price: &str) -> Value {
    json!({"sku": sku, "title": format!("Product {sku}"), "price": price, "currency": "EUR",
           "image_url": "https://shop.example/i.jpg", "url": "https://shop.example/p", "category": "beauty"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_is_validated_owned_and_ordered_into_carousels() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let t = Some(token.as_str());

    let (status, lipstick) = call(
        &api,
        Method::POST,
        "/api/v1/products",
        t,
        Some(product("LIP-1", "19.99")),
    )
    .await?;
    assert_eq!(status, 201, "{lipstick}");
    assert_eq!(lipstick["price"], "19.99", "prices stay decimal strings");
    let (_, mascara) = call(
        &api,
        Method::POST,
        "/api/v1/products",
        t,
        Some(product("MAS-1", "9")),
    )
    .await?;
    let (status, v) = call(
        &api,
        Method::POST,
        "/api/v1/products",
        t,
        Some(product("LIP-1", "5.00")),
    )
    .await?;
    assert_eq!(status, 409, "sku taken: {v}");
    for bad in [
        product("X", "19.999.1"),
        product("X", "1e3"),
        product("X", "-1"),
        product("", "1"),
    ] {
        let (status, v) = call(&api, Method::POST, "/api/v1/products", t, Some(bad)).await?;
        assert_eq!(status, 400, "{v}");
    }
    let (status, _) = call(
        &api,
        Method::POST,
        "/api/v1/products",
        t,
        Some(json!({"sku": "Y", "title": "Y", "price": "1.00", "currency": "euro"})),
    )
    .await?;
    assert_eq!(status, 400);

    let lip = lipstick["id"].as_str().unwrap().to_string();
    let mas = mascara["id"].as_str().unwrap().to_string();
    let (status, edited) = call(
        &api,
        Method::PATCH,
        &format!("/api/v1/products/{lip}"),
        t,
        Some(json!({"price": "17.50"})),
    )
    .await?;
    assert_eq!(
        (status, edited["price"].as_str()),
        (200, Some("17.50")),
        "{edited}"
    );
    let (_, list) = call(&api, Method::GET, "/api/v1/products", t, None).await?;
    assert_eq!(list["products"].as_array().map(Vec::len), Some(2), "{list}");

    // Another creator's catalog is separate, and their products are not usable here.
    let other = api.create_creator("other").await?;
    let o = Some(other.as_str());
    assert_eq!(
        call(
            &api,
            Method::GET,
            &format!("/api/v1/products/{lip}"),
            o,
            None
        )
        .await?
        .0,
        404
    );
    let (_, theirs) = call(
        &api,
        Method::POST,
        "/api/v1/products",
        o,
        Some(product("LIP-1", "1")),
    )
    .await?;
    let foreign = theirs["id"].as_str().unwrap().to_string();

    let stream = server.demo_stream["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/streams/{stream}/products");
    let (status, carousel) = call(
        &api,
        Method::PUT,
        &path,
        t,
        Some(json!({"product_ids": [mas, lip]})),
    )
    .await?;
    assert_eq!(status, 200, "{carousel}");
    let order: Vec<&str> = carousel["products"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["sku"].as_str())
        .collect();
    assert_eq!(order, ["MAS-1", "LIP-1"], "carousel order is the creator's");
    let (status, v) = call(
        &api,
        Method::PUT,
        &path,
        t,
        Some(json!({"product_ids": [foreign]})),
    )
    .await?;
    assert_eq!(status, 400, "{v}");
    let (status, _) = call(
        &api,
        Method::PUT,
        &path,
        t,
        Some(json!({"product_ids": [lip, lip]})),
    )
    .await?;
    assert_eq!(status, 400);
    let too_many: Vec<String> = (0..101).map(|_| lip.clone()).collect();
    let (status, _) = call(
        &api,
        Method::PUT,
        &path,
        t,
        Some(json!({"product_ids": too_many})),
    )
    .await?;
    assert_eq!(status, 400);

    // Visible like the stream: practice → only the creator; public → anyone.
    assert_eq!(call(&api, Method::GET, &path, None, None).await?.0, 404);
    api.set_mode(&token, &stream, "public").await?;
    let (status, seen) = call(&api, Method::GET, &path, None, None).await?;
    assert_eq!(
        (status, seen["products"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{seen}"
    );

    // Deleting a product takes it out of the carousel.
    assert_eq!(
        call(
            &api,
            Method::DELETE,
            &format!("/api/v1/products/{mas}"),
            t,
            None
        )
        .await?
        .0,
        204
    );
    let (_, seen) = call(&api, Method::GET, &path, None, None).await?;
    assert_eq!(seen["products"][0]["sku"], "LIP-1", "{seen}");
    assert_eq!(seen["products"].as_array().map(Vec::len), Some(1));
    server.stop().await;
    Ok(())
}
