//! Reconnect grace: a publisher that drops leaves its stream live; publishing again with the same
//! key continues the same session (one playlist with a discontinuity, one recording); one that
//! does not come back ends the stream when the grace is over.
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_comes_back_over_srt_continues_the_same_session() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = Duration::from_secs(20)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let url = server.publish_url(&stream);

    // The first publisher crashes (SIGKILL: no unpublish) after a few segments.
    let started = Instant::now();
    let first = Publish::small(60.0).spawn(&url)?;
    source_segments(&api, &token, &id, 2).await?;
    let away = crash(&api, &token, &id, first).await?;
    let first_seconds = started.elapsed().as_secs_f64();
    assert_eq!(away["state"], "live", "{away}");
    assert!(
        away["health"]["warnings"]
            .to_string()
            .contains("publish again with the same stream key"),
        "{away}"
    );
    let (status, _) = api
        .get_text(&format!("/hls/{id}/master.m3u8"), Some(&token))
        .await?;
    assert_eq!(status, 200, "playlists are served while waiting");

    // It comes back over SRT at another size, publishes 4 s and stops streaming (SRT shutdown;
    // linger so that ffmpeg sends its last packets first).
    let second = Publish {
        size: "640x360",
        ..Publish::small(4.0)
    };
    let srt = format!("{}&linger=1", server.srt_publish_url(&stream));
    let (status, stderr) = finish(second.spawn_to("mpegts", &srt)?, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    let recording = api.recording_ready(&token, &id).await?;
    let ended = api.stream(&token, &id).await?;
    assert_eq!(ended["state"], "ended", "{ended}");

    let (_, vod) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), Some(&token))
        .await?;
    assert_eq!(
        vod.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "one discontinuity where the publisher came back:\n{vod}"
    );
    let uris: Vec<&str> = vod.lines().filter(|l| l.ends_with(".ts")).collect();
    let unique: HashSet<&str> = uris.iter().copied().collect();
    assert_eq!(unique.len(), uris.len(), "no segment URI reused:\n{vod}");
    let numbers: Vec<u32> = uris
        .iter()
        .map(|u| u.trim_start_matches("seg").trim_end_matches(".ts").parse())
        .collect::<Result<_, _>>()?;
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "segment numbers continue: {numbers:?}"
    );
    // The segments after the discontinuity carry the new size.
    let after = vod
        .split("#EXT-X-DISCONTINUITY\n")
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| l.ends_with(".ts")))
        .context("a segment after the discontinuity")?;
    let seg = server
        .data_dir()
        .join(format!("streams/{id}/hls/source/{after}"));
    assert_eq!(video_size(&seg).await?, (640, 360), "{}", seg.display());

    // One recording: both publishes, the time away left out.
    let expected = first_seconds + 4.0;
    let duration = recording["duration_s"].as_f64().context("duration_s")?;
    assert!(
        (duration - expected).abs() < 1.5,
        "recording {duration} s, published {expected:.1} s: {recording}"
    );
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (codecs, probed) = probe(file.to_str().unwrap()).await?;
    assert_eq!(codecs, ["h264", "aac"]);
    assert!(
        probed.is_some_and(|d| (d - expected).abs() < 1.5),
        "{probed:?}"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_does_not_come_back_ends_the_stream_after_the_grace() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = Duration::from_secs(3)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let publisher = Publish::small(60.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &token, &id, 1).await?;
    let away = crash(&api, &token, &id, publisher).await?;
    assert_eq!(away["state"], "live", "{away}");
    // A comeback without the audio track cannot continue this stream: that publisher is
    // disconnected and the stream keeps waiting.
    let video_only = Publish {
        audio: false,
        ..Publish::small(5.0)
    };
    let (status, _) = finish(video_only.spawn(&server.publish_url(&stream))?, DEADLINE).await?;
    assert!(!status.success(), "a comeback with other tracks is refused");
    let v = api.stream(&token, &id).await?;
    assert_eq!(
        (&v["state"], &v["health"]["reconnecting"]),
        (&"live".into(), &true.into()),
        "{v}"
    );
    let recording = api.recording_ready(&token, &id).await?;
    assert!(
        recording["duration_s"].as_f64().unwrap() > 1.0,
        "{recording}"
    );
    let ended = api.stream(&token, &id).await?;
    assert_eq!(ended["state"], "ended", "{ended}");
    // The key no longer publishes.
    let (status, stderr) = finish(
        Publish::small(1.0).spawn(&server.publish_url(&stream))?,
        DEADLINE,
    )
    .await?;
    assert!(
        !status.success(),
        "publishing to an ended stream fails: {stderr}"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_stream_that_waits_for_its_publisher_ends_it_at_once() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = Duration::from_secs(600)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let publisher = Publish::small(60.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &token, &id, 1).await?;
    crash(&api, &token, &id, publisher).await?;
    api.end_stream(&token, &id).await?;
    api.recording_ready(&token, &id).await?;
    assert_eq!(api.stream(&token, &id).await?["state"], "ended");
    server.stop().await;
    Ok(())
}
