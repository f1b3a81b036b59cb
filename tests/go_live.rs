//! Going live from a phone's browser (issue 20): real Chromium with a fake camera and microphone
//! on a phone viewport (tests/web/golive.mjs through Playwright) opens the go-live page from the
//! studio, publishes over WHIP, goes public; a second browser context plays the stream with
//! hls.js on the watch page, vertical and upright, and follows the host's focus and chat; Stop
//! ends the publish. Screenshots land in target/web-artifacts/.
mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::*;
use serde_json::Value;

/// The whole story, media included, on a loaded CI machine.
const STORY_DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_goes_live_from_a_phone_browser_and_a_viewer_watches() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().context("id")?.to_string();
    let a = api.create_product(&token, "LIP-1").await?;
    let b = api.create_product(&token, "PAL-2").await?;
    api.set_carousel(&token, &id, &[&a, &b]).await?;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("target/web-artifacts");
    let mut story = BrowserStory::start(
        "golive.mjs",
        &[
            api.base.clone(),
            token.clone(),
            id.clone(),
            artifacts.display().to_string(),
        ],
    )?;
    let mut steps = Vec::new();
    let mut console = Vec::new();
    let mut health = Value::Null;
    let mut camera = Value::Null;
    let run = async {
        while let Some(line) = story.lines.next_line().await? {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            eprintln!("go-live: {v}");
            match v["kind"].as_str() {
                Some("step") => {
                    if v["name"] == "live" {
                        health = v["health"].clone();
                    }
                    if v["name"] == "camera_and_microphone" {
                        camera = v["camera"].clone();
                    }
                    steps.push(v["name"].as_str().unwrap_or_default().to_string());
                }
                Some("console") => console.push(v),
                Some("done") => return Ok(()),
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
            "signed_in",
            "camera_and_microphone",
            "camera_flipped",
            "live",
            "studio_health",
            "viewer_plays",
            "carousel_follows",
            "chat",
            "screenshots",
            "stopped",
        ]
    );
    assert!(console.is_empty(), "console errors: {console:?}");

    // The browser sent H.264 (the page prefers it; passed through, no transcode) and Opus (made
    // AAC), in a vertical picture.
    let video = &health["video"];
    let codec = video["codec"].as_str().unwrap_or_default();
    ensure!(
        codec.starts_with("avc1"),
        "H.264 from the browser: {health}"
    );
    let (w, h) = (video["width"].as_u64(), video["height"].as_u64());
    ensure!(w.zip(h).is_some_and(|(w, h)| w < h), "vertical: {health}");
    ensure!(video["orientation"] == "portrait", "{health}");
    // The page keeps the picture size under a weak uplink (maintain-resolution): the server gets
    // the camera's size, not a scaled-down picture that changes as the bandwidth estimate grows.
    ensure!(
        video["width"] == camera["width"] && video["height"] == camera["height"],
        "camera {camera}, health {health}"
    );
    ensure!(health["audio"]["codec"].is_string(), "audio: {health}");

    // Stop ended the publish, and the stream ended after the reconnect grace.
    let stream = api.stream(&token, &id).await?;
    assert_eq!(stream["state"], "ended", "{stream}");
    assert_eq!(stream["mode"], "public", "{stream}");
    for shot in ["go-live-phone.png", "watch-vertical.png"] {
        let meta = std::fs::metadata(artifacts.join(shot)).with_context(|| shot.to_string())?;
        assert!(meta.len() > 1000, "{shot} is a picture");
    }
    server.stop().await;
    Ok(())
}
