//! Issue 8's story in real Chromium (tests/web/story.mjs through Playwright): the creator signs
//! in to the studio, creates a livestream with two products and reads the RTMP server and key
//! from the page; ffmpeg publishes; the practice preview plays and shows ingest health while a
//! viewer (phone-sized, own cookies) gets "not found"; the creator goes public and the viewer's
//! page plays; a focused product is highlighted in the viewer's carousel; chat goes both ways and
//! a `<script>` message stays text; the viewer reports the stream and
//! the admin finds it in the queue; the creator ends the stream and the viewer's page turns into a
//! replay with chapters, and the studio shows the stream's report (a uPlot chart of viewers with
//! the focus bands, the per-product table). Screenshots land in target/web-artifacts/.
mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::*;
use serde_json::Value;

/// The whole story, media included, on a loaded CI machine.
const STORY_DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creator_and_viewer_live_through_a_stream_in_the_browser() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("target/web-artifacts");
    let mut story = BrowserStory::start(
        "story.mjs",
        &[
            api.base.clone(),
            token.clone(),
            "demo".into(),
            ADMIN_TOKEN.into(),
            artifacts.display().to_string(),
        ],
    )?;

    let mut publisher = None;
    let mut steps = Vec::new();
    let mut console = Vec::new();
    let mut stream_id = String::new();
    let run = async {
        while let Some(line) = story.lines.next_line().await? {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            eprintln!("story: {v}");
            match v["kind"].as_str() {
                Some("ingest") => {
                    let server_url = v["server"].as_str().context("server")?;
                    let key = v["key"].as_str().context("key")?;
                    ensure!(server_url.starts_with("rtmp://"), "{v}");
                    ensure!(key.starts_with("lf_"), "{v}");
                    stream_id = v["stream_id"].as_str().context("stream id")?.to_string();
                    let url = format!("{server_url}/{key}").replace("localhost", "127.0.0.1");
                    publisher = Some(Publish::small(240.0).spawn(&url)?);
                }
                Some("step") => steps.push(v["name"].as_str().unwrap_or_default().to_string()),
                Some("console") => console.push(v),
                Some("done") => return Ok(()),
                _ => {}
            }
        }
        bail!("the story stopped before its end")
    };
    let outcome = tokio::time::timeout(STORY_DEADLINE, run).await;
    if let Some(mut p) = publisher.take() {
        let _ = p.start_kill();
        let _ = p.wait().await;
    }
    story.finish(outcome, STORY_DEADLINE, &steps).await?;
    assert_eq!(
        steps,
        [
            "signed_in",
            "preview_plays",
            "viewer_not_found",
            "viewer_plays",
            "carousel_follows",
            "chat_both_ways",
            "message_deleted",
            "promo_banner",
            "reported_to_admin",
            "screenshots",
            "replay_with_chapters",
            "recording_ready",
            "report_chart",
            "token_never_in_urls",
        ]
    );
    assert!(console.is_empty(), "console errors: {console:?}");
    // The API agrees with what the pages showed.
    let stream = api.stream(&token, &stream_id).await?;
    assert_eq!(stream["state"], "ended", "{stream}");
    assert_eq!(stream["mode"], "public", "{stream}");
    let (_, chapters) = api
        .get(&format!("/api/v1/streams/{stream_id}/chapters"), None)
        .await?;
    assert_eq!(
        chapters["chapters"].as_array().map(Vec::len),
        Some(1),
        "{chapters}"
    );
    for shot in [
        "watch-phone.png",
        "storefront-phone.png",
        "studio-phone.png",
        "studio-report.png",
    ] {
        let meta = std::fs::metadata(artifacts.join(shot)).with_context(|| shot.to_string())?;
        assert!(meta.len() > 1000, "{shot} is a picture");
    }
    server.stop().await;
    Ok(())
}
