//! Issue 23's shop hooks in real Chromium (tests/web/shop.mjs through Playwright): the bell of a
//! signed-in viewer counts live, a promo code is redeemed with one tap, follow and "remind me"
//! from the watch page, add to cart fires `livefront:add-to-cart`, the reminder comes at the
//! scheduled time as a bell entry and a browser notification; the embeddable player in an iframe
//! of another origin posts `livefront:add-to-cart` to it while other pages refuse framing.
mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// The whole story on a loaded machine (it waits for a reminder ~25 s ahead).
const STORY_DEADLINE: Duration = Duration::from_secs(180);
/// How far ahead the stream is scheduled: time for the browser to start and set the reminder.
const AHEAD_S: i64 = 25;

/// A shop's own page on its own origin (no CSP of ours).
async fn serve_page(listener: tokio::net::TcpListener, html: String) {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let _ = axum::serve(listener, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_redeems_follows_is_reminded_and_the_embedded_player_tells_the_shop() -> Result<()> {
    // Two shop sites on other loopback ports: the first may frame the player, the second not.
    let shop_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let other_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let shop_origin = format!("http://{}", shop_listener.local_addr()?);
    let other_origin = format!("http://{}", other_listener.local_addr()?);
    let allowed = shop_origin.clone();
    let mut server = Server::start_with(move |c| {
        c.shop.embed_frame_ancestors = vec![allowed];
    })
    .await?;
    let api = server.api.clone();
    let alice = api.create_creator("alice").await?;
    api.ok(
        Method::PATCH,
        "/api/v1/me",
        &alice,
        Some(json!({"associate_tag": "alice-20"})),
    )
    .await?;
    let product = api.ok(Method::POST,
        "/api/v1/products",
        &alice,
        Some(json!({"sku": "LIP-1", "title": "Velvet lipstick", "price": "19.99", "currency": "EUR"})),
    )
    .await?;
    let product = product["id"].as_str().context("product")?.to_string();
    let at = chrono::Utc::now() + chrono::TimeDelta::seconds(AHEAD_S);
    let stream = api.ok(Method::POST,
        "/api/v1/streams",
        &alice,
        Some(json!({"title": "Spring launch", "mode": "public", "scheduled_at": at.to_rfc3339()})),
    )
    .await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    api.ok(
        Method::PUT,
        &format!("/api/v1/streams/{id}/products"),
        &alice,
        Some(json!({"product_ids": [product]})),
    )
    .await?;
    api.ok(Method::POST,
        &format!("/api/v1/streams/{id}/promos"),
        &alice,
        Some(json!({"code": "SPRING10", "description": "Spring sale", "discount": "10%", "live_only": false})),
    )
    .await?;
    let (_, v) = api
        .request(
            Method::POST,
            "/api/v1/viewers",
            None,
            Some(json!({"handle": "vera"})),
        )
        .await?;
    let vera = v["token"].as_str().context("viewer token")?.to_string();

    let base = &api.base;
    let shop_page = format!(
        r#"<!doctype html><title>shop</title>
<script>window.__messages = []; addEventListener("message", (e) => window.__messages.push({{ origin: e.origin, data: e.data }}));</script>
<iframe id="player" src="{base}/embed/{id}" width="600" height="500"></iframe>
<iframe id="watch" src="{base}/watch/{id}" width="300" height="200"></iframe>"#
    );
    let other_page = format!(r#"<!doctype html><iframe src="{base}/embed/{id}"></iframe>"#);
    let shop_site = tokio::spawn(serve_page(shop_listener, shop_page));
    let other_site = tokio::spawn(serve_page(other_listener, other_page));

    let mut story = BrowserStory::start(
        "shop.mjs",
        &[
            api.base.to_string(),
            alice.to_string(),
            vera.to_string(),
            id.to_string(),
            product.to_string(),
            format!("{shop_origin}/"),
            format!("{other_origin}/"),
        ],
    )?;
    let mut steps = Vec::new();
    let mut console = Vec::new();
    let run = async {
        while let Some(line) = story.lines.next_line().await? {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            eprintln!("shop story: {v}");
            match v["kind"].as_str() {
                Some("step") => steps.push(v["name"].as_str().unwrap_or_default().to_string()),
                Some("console") => console.push(v),
                Some("done") => return Ok(()),
                _ => {}
            }
        }
        bail!("the story stopped before its end")
    };
    let outcome = tokio::time::timeout(STORY_DEADLINE, run).await;
    shop_site.abort();
    other_site.abort();
    story.finish(outcome, STORY_DEADLINE, &steps).await?;
    assert_eq!(
        steps,
        [
            "bell_shown",
            "promo_redeemed",
            "followed",
            "reminder_set",
            "cart_event",
            "bell_live",
            "reminder_notified",
            "marked_read",
            "embed_posts",
            "watch_refuses_framing",
            "embed_refuses_other_origins",
        ]
    );
    assert!(console.is_empty(), "console errors: {console:?}");

    // The API agrees with what the pages did.
    let following = api
        .ok(Method::GET, "/api/v1/me/following", &vera, None)
        .await?;
    assert_eq!(following["following"][0]["handle"], "alice", "{following}");
    let feed = api
        .ok(Method::GET, "/api/v1/me/notifications", &vera, None)
        .await?;
    let reminders: Vec<&Value> = feed["notifications"]
        .as_array()
        .context("feed")?
        .iter()
        .filter(|n| n["kind"] == "reminder")
        .collect();
    assert_eq!(reminders.len(), 1, "exactly once: {feed}");
    assert_eq!(feed["unread"].as_u64(), Some(0), "{feed}");
    let report = api
        .ok(
            Method::GET,
            &format!("/api/v1/streams/{id}/analytics"),
            &alice,
            None,
        )
        .await?;
    assert_eq!(
        report["summary"]["cart_adds"].as_u64(),
        Some(2),
        "watch page and embed: {report}"
    );
    server.stop().await;
    Ok(())
}
