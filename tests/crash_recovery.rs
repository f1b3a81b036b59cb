//! Publishers and the server itself die; nothing is lost beyond the last fragment and nothing is
//! left stuck.
mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_killed_mid_stream_leaves_a_finalised_playable_recording() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let mut publisher = Publish::small(30.0).spawn(&server.publish_url(&stream))?;
    let media =
        media_url(stream["playback"]["hls"].as_str().unwrap()).replace("localhost", "127.0.0.1");
    let listed = playlist_duration(&server.api.playlist_with_segments(&media, 3).await?);
    publisher.start_kill()?;
    publisher.wait().await?;
    let rec = server.api.recording_ready(&server.demo_token, id).await?;
    let duration = rec["duration_s"].as_f64().unwrap();
    assert!(
        duration >= listed - 0.5,
        "recording {duration} s keeps at least the {listed} s listed in HLS"
    );
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (codecs, probed) = probe(file.to_str().unwrap()).await?;
    assert_eq!(codecs, ["h264", "aac"]);
    assert!(probed.is_some_and(|d| d >= listed - 0.5));
    let (_, vod) = server.api.get_text(&media, None).await?;
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_with_sigkill_recovers_the_recording_on_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Process::start(dir.path()).await?;
    let token = server.api.create_creator("alice").await?;
    let stream = server.api.create_stream(&token, "crash me").await?;
    let id = stream["id"].as_str().unwrap().to_string();
    let key = stream["stream_key"].as_str().unwrap();
    let started = Instant::now();
    let mut publisher = Publish::small(60.0).spawn(&format!("{}/{key}", server.rtmp_url))?;
    let media = format!("/hls/{id}/source/event.m3u8");
    let listed = wait_for("4 segments", DEADLINE, || async {
        let (status, text) = server.api.get_text(&media, Some(&token)).await.ok()?;
        (status == 200 && text.matches("#EXTINF").count() >= 4).then(|| playlist_duration(&text))
    })
    .await?;
    server.signal("KILL")?;
    let ingested = started.elapsed().as_secs_f64();
    let mut child = server.child;
    child.wait().await?;
    publisher.start_kill()?;
    publisher.wait().await?;

    let restarted = Process::start(dir.path()).await?;
    let v = restarted.api.stream(&token, &id).await?;
    assert_eq!(
        v["state"], "ended",
        "a stream left live is ended on restart: {v}"
    );
    let rec = restarted.api.recording_ready(&token, &id).await?;
    let duration = rec["duration_s"].as_f64().unwrap();
    // Everything up to the last complete 2 s fragment survives.
    assert!(
        duration >= listed - 2.5,
        "recovered {duration} s, HLS had listed {listed} s"
    );
    assert!(
        duration <= ingested + 0.5,
        "recovered {duration} s, only {ingested} s were sent"
    );
    let file = dir.path().join(format!("streams/{id}/recording.mp4"));
    assert!(livefront::output::recording::moov_before_mdat(&file)?);
    let (codecs, _) = probe(file.to_str().unwrap()).await?;
    assert_eq!(codecs, ["h264", "aac"]);
    let (status, vod) = restarted
        .api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), Some(&token))
        .await?;
    assert_eq!(status, 200);
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    assert!(playlist_duration(&vod) >= listed - 0.01, "{vod}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_live_streams_and_finalises_before_exit() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Process::start(dir.path()).await?;
    let token = server.api.create_creator("alice").await?;
    let stream = server.api.create_stream(&token, "graceful").await?;
    let id = stream["id"].as_str().unwrap().to_string();
    let key = stream["stream_key"].as_str().unwrap();
    let publisher = Publish::small(60.0).spawn(&format!("{}/{key}", server.rtmp_url))?;
    let media = format!("/hls/{id}/source/index.m3u8");
    wait_for("2 segments", DEADLINE, || async {
        let (status, text) = server.api.get_text(&media, Some(&token)).await.ok()?;
        (status == 200 && text.matches("#EXTINF").count() >= 2).then_some(())
    })
    .await?;
    server.signal("TERM")?;
    let status = tokio::time::timeout(DEADLINE, server.child.wait_with_output())
        .await??
        .status;
    assert!(status.success(), "clean exit: {status}");
    let (_, _) = finish(publisher, Duration::from_secs(30)).await?;
    let streams = dir.path().join(format!("streams/{id}"));
    assert!(
        streams.join("recording.mp4").exists(),
        "recording finalised before exit"
    );
    assert!(
        !streams.join("recording.fmp4").exists(),
        "fragmented file removed after finalising"
    );
    let event = std::fs::read_to_string(streams.join("hls/source/event.m3u8"))?;
    assert!(event.contains("#EXT-X-ENDLIST"), "{event}");
    let restarted = Process::start(dir.path()).await?;
    let rec = restarted.api.recording_ready(&token, &id).await?;
    assert!(rec["duration_s"].as_f64().unwrap() >= 3.5, "{rec}");
    Ok(())
}
