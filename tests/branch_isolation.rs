//! One failing branch never ends the stream: a branch of the pipeline (recording, a rung) that
//! fails for real — its file is on a full disk (`/dev/full`: every write fails with ENOSPC), or a
//! directory stands where its next segment goes — is reported and dropped while the stream stays
//! live and its HLS keeps growing.
mod common;

use std::path::Path;

use anyhow::{Context, Result, ensure};
use common::*;
use serde_json::Value;

/// Puts `path` on a "full disk": a symlink to `/dev/full`, which the muxer's file sink opens and
/// then fails to write.
fn on_full_disk(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path.parent().context("parent")?)?;
    std::os::unix::fs::symlink("/dev/full", path).context("symlink to /dev/full")?;
    Ok(())
}

/// The owner's media playlist URL of a rendition.
fn media(stream: &Value, rendition: &str) -> String {
    stream["playback"]["hls"]
        .as_str()
        .expect("owner sees playback")
        .replace("localhost", "127.0.0.1")
        .replacen("master.m3u8", &format!("{rendition}/index.m3u8"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_on_a_full_disk_fails_alone_and_the_stream_goes_on() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    on_full_disk(
        &server
            .data_dir()
            .join(format!("streams/{id}/recording.fmp4")),
    )?;
    let published = 8.0;
    let publisher = Publish::small(published).spawn(&server.publish_url(&stream))?;

    // The recording says it failed, and why, while the stream is live.
    let rec = wait_for("recording failed while live", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        (v["state"] == "live" && v["recording"]["state"] == "failed").then_some(v)
    })
    .await?;
    let reason = rec["recording"]["error"].as_str().unwrap_or_default();
    ensure!(
        reason.contains("rec-") && reason.to_lowercase().contains("space"),
        "the reason names the element and the error: {rec}"
    );
    ensure!(
        rec["health"]["warnings"]
            .to_string()
            .contains("recording failed"),
        "health warns: {}",
        rec["health"]
    );
    let (_, metrics) = api.get_text("/metrics", None).await?;
    ensure!(
        metrics.contains("livefront_branch_failures_total{branch=\"recording\"} 1"),
        "{metrics}"
    );

    // HLS keeps growing: segments after the failure, the stream still live.
    api.playlist_with_segments(&media(&stream, "source"), 3)
        .await?;
    let v = api.stream(&token, &id).await?;
    ensure!(v["state"] == "live", "{v}");

    // The publisher is not disconnected: it ends on its own, cleanly.
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    ensure!(status.success(), "publisher: {stderr}");
    let ended = wait_for("stream ended", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        (v["state"] == "ended").then_some(v)
    })
    .await?;
    ensure!(ended["recording"]["state"] == "failed", "{ended}");
    let vod = api.get_text(&media(&stream, "source"), None).await?.1;
    ensure!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    let (codecs, duration) = probe(&media(&stream, "source")).await?;
    ensure!(codecs == ["h264", "aac"], "{codecs:?}");
    let duration = duration.unwrap_or(0.0);
    ensure!(
        (duration - published).abs() < 0.7,
        "HLS is {duration} s of {published} s"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rung_that_cannot_write_its_segments_leaves_the_ladder_and_the_rest_goes_on() -> Result<()>
{
    let mut server = small_ladder_server().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    // The 240p rung's second segment cannot be written (a folder stands where its file would
    // go): its segment writer fails after the first segment.
    std::fs::create_dir_all(
        server
            .data_dir()
            .join(format!("streams/{id}/hls/240p/seg00001.ts")),
    )?;
    // Above 240p, so that the ladder has both rungs.
    let publish = Publish {
        size: "640x360",
        ..Publish::small(8.0)
    };
    let publisher = publish.spawn(&server.publish_url(&stream))?;

    let v = wait_for("the 240p rung reported failed", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        let warned = v["health"]["warnings"]
            .to_string()
            .contains("rung 240p failed");
        (v["state"] == "live" && warned).then_some(v)
    })
    .await?;
    ensure!(v["recording"]["state"] == "recording", "{v}");
    // The other renditions go on; the failed one leaves the master playlist.
    api.playlist_with_segments(&media(&stream, "source"), 3)
        .await?;
    api.playlist_with_segments(&media(&stream, "144p"), 3)
        .await?;
    let (_, master) = api
        .get_text(&format!("/hls/{id}/master-ts.m3u8"), Some(&token))
        .await?;
    ensure!(
        master.contains("144p/") && master.contains("source/") && !master.contains("240p/"),
        "{master}"
    );
    let (_, metrics) = api.get_text("/metrics", None).await?;
    ensure!(
        metrics.contains("livefront_branch_failures_total{branch=\"rung\"} 1"),
        "{metrics}"
    );
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    ensure!(status.success(), "publisher: {stderr}");
    let rec = api.recording_ready(&token, &id).await?;
    ensure!(rec["duration_s"].as_f64().unwrap_or(0.0) > 7.3, "{rec}");
    server.stop().await;
    Ok(())
}
