//! A flash sale and an auction in real Chromium (tests/web/sales_story.mjs through Playwright):
//! two viewers in their own browser contexts watch a live stream; one sees the countdown only once
//! the frame on screen reaches the moment the sale was announced, sees it open only once the frame
//! reaches the sale's start (checked against the player's PROGRAM-DATE-TIME at every sample, and
//! how far the picture is behind the server's clock is reported), claims the only unit and the
//! other sees "Sold out"; then both bid and both pages show the right winner, which the API
//! confirms.
mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// The whole story, media included, on a loaded CI machine.
const STORY_DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_claim_a_flash_sale_and_bid_in_the_browser() -> Result<()> {
    let mut server = Server::start_with(|c| {
        c.commerce.levels.benefits.insert("auctions".into(), 1);
    })
    .await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    api.set_mode(&token, &id, "public").await?;
    let product = api.create_product(&token, "DEAL").await?;
    api.set_carousel(&token, &id, &[&product]).await?;
    let _publisher = Publish::small(600.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &token, &id, 1).await?;
    let store = &server.app.as_ref().context("running")?.state.store;
    let (_, viewer_a) = store.create_viewer("alice_fan").await?;
    let (_, viewer_b) = store.create_viewer("bob_fan").await?;

    let mut story = BrowserStory::start(
        "sales_story.mjs",
        &[
            api.base.clone(),
            id.clone(),
            viewer_a.clone(),
            viewer_b.clone(),
        ],
    )?;
    let mut steps = Vec::new();
    let mut console = Vec::new();
    let mut auction = String::new();
    let run = async {
        while let Some(line) = story.lines.next_line().await? {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            eprintln!("story: {v}");
            match (v["kind"].as_str(), v["name"].as_str()) {
                (Some("step"), Some(name)) => {
                    steps.push(name.to_string());
                    match name {
                        "watching" => {
                            let (status, sale) = api
                                .request(
                                    Method::POST,
                                    &format!("/api/v1/streams/{id}/flash-sales"),
                                    Some(&token),
                                    Some(json!({"product_id": product, "price": "5.00", "quantity": 1,
                                                "duration_s": 120, "countdown_s": 4})),
                                )
                                .await?;
                            ensure!(status == 201, "{sale}");
                        }
                        "claimed_then_sold_out" => {
                            let (status, a) = api
                                .request(
                                    Method::POST,
                                    &format!("/api/v1/streams/{id}/auctions"),
                                    Some(&token),
                                    Some(json!({"product_id": product, "starting_price": "1.00",
                                                "increment": "0.50", "duration_s": 30})),
                                )
                                .await?;
                            ensure!(status == 201, "{a}");
                            auction = a["id"].as_str().context("auction id")?.to_string();
                        }
                        _ => {}
                    }
                }
                (Some("console"), _) => console.push(v),
                (Some("done"), _) => return Ok(()),
                _ => {}
            }
        }
        bail!("the story stopped before its end")
    };
    let outcome = tokio::time::timeout(STORY_DEADLINE, run).await;
    story.finish(outcome, STORY_DEADLINE, &steps).await?;
    assert_eq!(
        steps,
        [
            "watching",
            "countdown",
            "claimed_then_sold_out",
            "auction_won"
        ]
    );
    assert!(console.is_empty(), "console errors: {console:?}");
    let (_, over) = api
        .get(&format!("/api/v1/streams/{id}/auctions/{auction}"), None)
        .await?;
    assert_eq!(over["winner"]["handle"], "bob_fan", "{over}");
    assert_eq!(over["winner"]["amount"], "1.50", "{over}");
    server.stop().await;
    Ok(())
}
