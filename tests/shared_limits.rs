//! Rate limits that hold across nodes sharing one PostgreSQL database (issue 19): registrations
//! per client address, chat messages per author and add-to-cart taps per address are counted in
//! the database (as are flash-sale claims and auction bids per viewer), so a client that spreads
//! its attempts over two nodes gets no more than it would from one.
mod common;

use anyhow::{Context, Result};
use common::ws::{LiveClient, Token};
use common::*;
use reqwest::Method;
use serde_json::json;

/// Registrations from one address per minute (`src/http/viewers.rs`).
const REGISTRATIONS: usize = 10;
/// Chat messages per author per 10 s (`chat.rate_messages`' default).
const MESSAGES: usize = 5;
/// Add-to-cart taps per address per minute (`shop.cart_adds_per_minute`, set for the test).
const CART_ADDS: usize = 4;

async fn node(database: &str, id: &str, first: bool) -> Result<Server> {
    let adjust = |c: &mut livefront::config::Config| {
        c.database.url = Some(database.into());
        c.node.id = Some(id.into());
        c.shop.cart_adds_per_minute = CART_ADDS as u32;
    };
    if first {
        Server::start_with(adjust).await
    } else {
        Server::start_joining(adjust).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_chat_are_limited_across_nodes() -> Result<()> {
    let database = tokio::task::spawn_blocking(postgres_database).await??;
    let mut a = node(&database, "node-a", true).await?;
    let mut b = node(&database, "node-b", false).await?;
    let (api_a, api_b) = (a.api.clone(), b.api.clone());

    // Registrations from 127.0.0.1, taking turns between the nodes: the limit is the cluster's.
    let mut viewers = Vec::new();
    for i in 0..REGISTRATIONS {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let (status, v) = api.try_register_viewer(&format!("fan{i}")).await?;
        anyhow::ensure!(status == 201, "registration {i}: {status} {v}");
        viewers.push(v["token"].as_str().context("token")?.to_string());
    }
    for (name, api) in [("A", &api_a), ("B", &api_b)] {
        let (status, v) = api
            .try_register_viewer(&format!("late_on_{}", name.to_lowercase()))
            .await?;
        assert_eq!(status, 429, "node {name}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("registrations"),
            "{v}"
        );
    }

    // One author, one socket on each node: the messages of both count against one limit.
    let stream = api_a
        .ok(
            Method::POST,
            "/api/v1/streams",
            &a.demo_token,
            Some(json!({"title": "limits", "mode": "public"})),
        )
        .await?;
    let id = stream["id"].as_str().context("id")?;
    let fan = &viewers[0];
    let mut on_a = LiveClient::connect(&api_a, id, Token::Header(fan)).await?;
    let mut on_b = LiveClient::connect(&api_b, id, Token::Header(fan)).await?;
    for i in 0..MESSAGES {
        let socket = if i < 3 { &mut on_a } else { &mut on_b };
        socket.say(&format!("m{i}")).await?;
        assert_eq!(
            socket.expect("chat_message").await?["text"],
            format!("m{i}")
        );
    }
    for socket in [&mut on_a, &mut on_b] {
        socket.say("one too many").await?;
        let e = socket.expect("error").await?;
        assert_eq!(e["code"], "rate_limited", "{e}");
        let retry = e["retry_after_ms"].as_u64().context("retry_after_ms")?;
        assert!((1..=10_000).contains(&retry), "{e}");
    }
    // Another author is not held back by the first one's count.
    // (It joins after them: the replay from the database shows their five messages first.)
    let mut other = LiveClient::connect(&api_b, id, Token::Header(&viewers[1])).await?;
    other.say("mine").await?;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("mine") {
        anyhow::ensure!(seen.len() <= MESSAGES, "no \"mine\" after {seen:?}");
        let text = other.expect("chat_message").await?["text"].clone();
        seen.push(text.as_str().context("text")?.to_string());
    }
    assert_eq!(seen.len(), MESSAGES + 1, "{seen:?}");

    // Add-to-cart taps from one address, taking turns between the nodes.
    let mug = api_a.create_product(&a.demo_token, "mug").await?;
    api_a.set_carousel(&a.demo_token, id, &[&mug]).await?;
    let cart = format!("/api/v1/streams/{id}/cart-adds");
    let tap = json!({"product_id": mug});
    for i in 0..CART_ADDS {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let (status, v) = api
            .request(Method::POST, &cart, None, Some(tap.clone()))
            .await?;
        assert_eq!(status, 201, "tap {i}: {v}");
    }
    for (name, api) in [("A", &api_a), ("B", &api_b)] {
        let (status, v) = api
            .request(Method::POST, &cart, None, Some(tap.clone()))
            .await?;
        assert_eq!(status, 429, "node {name}: {v}");
    }

    b.stop().await;
    a.stop().await;
    Ok(())
}
