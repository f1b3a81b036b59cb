//! What viewers browse: the storefront (live, upcoming, past), the live row by category, the
//! categories, and viewer counts per HLS session. Practice streams never show.
mod common;

use anyhow::{Context, Result};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn create(api: &Api, token: &str, body: Value) -> Result<Value> {
    let (status, v) = api
        .request(Method::POST, "/api/v1/streams", Some(token), Some(body))
        .await?;
    anyhow::ensure!(status == 201, "{status} {v}");
    Ok(v)
}

fn ids(rows: &Value) -> Vec<&str> {
    rows.as_array()
        .map(|a| a.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default()
}

/// The first media playlist URI of a master playlist.
fn first_variant(master: &str) -> Option<&str> {
    master
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storefront_live_row_and_categories_show_public_streams_with_viewer_counts() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let past = create(
        &api,
        &token,
        json!({"title": "Past", "mode": "public", "category": "beauty"}),
    )
    .await?;
    let (status, stderr) = finish(
        Publish::small(2.0).spawn(&server.publish_url(&past))?,
        DEADLINE,
    )
    .await?;
    assert!(status.success(), "{stderr}");
    api.recording_ready(&token, past["id"].as_str().unwrap())
        .await?;
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let upcoming = create(
        &api,
        &token,
        json!({"title": "Soon", "mode": "public", "category": "beauty", "scheduled_at": soon}),
    )
    .await?;
    let live = create(
        &api,
        &token,
        json!({"title": "Now", "mode": "public", "category": "home"}),
    )
    .await?;
    let practice = server.demo_stream.clone();
    let _live_publisher = Publish::small(30.0).spawn(&server.publish_url(&live))?;
    let _practice_publisher = Publish::small(30.0).spawn(&server.publish_url(&practice))?;
    let live_id = live["id"].as_str().unwrap();
    let master_url = format!("/hls/{live_id}/master.m3u8");
    wait_for("the live stream playing", DEADLINE, || async {
        let (status, _) = api.get_text(&master_url, None).await.ok()?;
        let practice_live = api
            .stream(&token, practice["id"].as_str().unwrap())
            .await
            .ok()?["health"]["video"]
            .is_object();
        (status == 200 && practice_live).then_some(())
    })
    .await?;

    let (_, front) = api.get("/api/v1/creators/demo/storefront", None).await?;
    assert_eq!(ids(&front["live"]), [live_id], "{front}");
    assert_eq!(
        ids(&front["upcoming"]),
        [upcoming["id"].as_str().unwrap()],
        "{front}"
    );
    assert_eq!(
        ids(&front["past"]),
        [past["id"].as_str().unwrap()],
        "{front}"
    );
    assert!(
        !front.to_string().contains(practice["id"].as_str().unwrap()),
        "practice streams are not on the storefront: {front}"
    );
    let (status, _) = api.get("/api/v1/creators/nobody/storefront", None).await?;
    assert_eq!(status, 404);

    let (_, row) = api.get("/api/v1/live", None).await?;
    assert_eq!(ids(&row["streams"]), [live_id], "{row}");
    let (_, beauty) = api.get("/api/v1/live?category=beauty", None).await?;
    assert!(ids(&beauty["streams"]).is_empty(), "{beauty}");
    let (_, categories) = api.get("/api/v1/categories", None).await?;
    assert_eq!(
        categories["categories"],
        json!([
            {"category": "beauty", "live": 0, "upcoming": 1},
            {"category": "home", "live": 1, "upcoming": 0}
        ]),
        "{categories}"
    );

    // Two players (two master requests), each reloading its media playlist: two viewers.
    for _ in 0..2 {
        let (_, master) = api.get_text(&master_url, None).await?;
        let media = first_variant(&master).context("a variant")?.to_string();
        assert!(media.contains("sid="), "{master}");
        for _ in 0..3 {
            let (status, text) = api
                .get_text(&format!("/hls/{live_id}/{media}"), None)
                .await?;
            assert_eq!(status, 200);
            assert!(
                !text.contains("sid="),
                "segment URIs stay cacheable: {text}"
            );
        }
    }
    let (_, row) = api.get("/api/v1/live", None).await?;
    assert_eq!(row["streams"][0]["viewers"], 2, "{row}");
    server.stop().await;
    Ok(())
}
