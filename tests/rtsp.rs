//! RTSP out (gst-rtsp-server at `rtsp://HOST:PORT/live/{id}`) read by ffprobe/ffmpeg, and RTSP
//! pull from a real RTSP server (GStreamer's, started by the test through python3-gi).
mod common;

use std::process::Stdio;

use anyhow::{Context, Result};
use common::*;
use serde_json::{Value, json};
use tokio::process::Command;

/// ffprobe's streams of an RTSP URL over TCP: (codec, width, height).
async fn probe_rtsp(url: &str) -> Result<Vec<(String, Option<u64>, Option<u64>)>> {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
            url,
        ],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["streams"]
        .as_array()
        .context("streams")?
        .iter()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or_default().to_string(),
                s["width"].as_u64(),
                s["height"].as_u64(),
            )
        })
        .collect())
}

/// ffprobe's failure text for a URL it must not be able to open.
async fn probe_rtsp_refused(url: &str) -> Result<String> {
    let out = run(
        "ffprobe",
        &["-v", "error", "-rtsp_transport", "tcp", url],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(!out.status.success(), "ffprobe opened {url}");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

fn rtsp_url(stream: &Value) -> String {
    stream["playback"]["rtsp"]
        .as_str()
        .expect("playback.rtsp")
        .replace("localhost", "127.0.0.1")
}

async fn create(api: &Api, token: &str, body: Value) -> Result<Value> {
    let (status, v) = api
        .request(
            reqwest::Method::POST,
            "/api/v1/streams",
            Some(token),
            Some(body),
        )
        .await?;
    anyhow::ensure!(status == 201, "create stream: {status} {v}");
    Ok(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_stream_is_served_over_rtsp_and_its_viewers_are_ended_with_it() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let token = server.demo_token.clone();
    let stream = create(&api, &token, json!({"title": "rtsp out", "mode": "public"})).await?;
    let id = stream["id"].as_str().unwrap().to_string();
    let url = rtsp_url(&stream);
    assert_eq!(
        url,
        format!(
            "rtsp://127.0.0.1:{}/live/{id}",
            server.app.as_ref().unwrap().rtsp_addr.port()
        )
    );
    assert!(
        probe_rtsp_refused(&url).await?.contains("404"),
        "not live yet: 404"
    );

    let publisher = Publish::small(10.0).spawn(&server.publish_url(&stream))?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    let streams = probe_rtsp(&url).await?;
    assert!(
        streams.contains(&("h264".into(), Some(320), Some(240))),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|(codec, _, _)| codec == "aac"),
        "{streams:?}"
    );

    // A viewer that stays until the stream ends gets its media and is disconnected with it.
    // (MP4: ffmpeg's MPEG-TS and Matroska writers refuse the first B-frame stream packet read
    // over RTP, which carries no DTS.)
    let copy = server.data_dir().join("viewer.mp4");
    let viewer = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-rtsp_transport", "tcp", "-i", &url, "-c", "copy"])
        .args(["-movflags", "frag_keyframe+empty_moov", "-f", "mp4"])
        .arg(&copy)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("ffmpeg")?;
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "publisher: {stderr}");
    let (_, viewer_err) = finish(viewer, DEADLINE)
        .await
        .context("the RTSP viewer was not ended with the stream")?;
    tracing::info!(%viewer_err, "viewer ended");
    let (codecs, duration) = probe(copy.to_str().unwrap()).await?;
    assert_eq!(codecs, ["h264", "aac"], "{viewer_err}");
    assert!(
        duration.is_some_and(|d| d > 3.0),
        "the viewer got {duration:?} s: {viewer_err}"
    );
    api.recording_ready(&token, &id).await?;
    assert!(
        probe_rtsp_refused(&url).await?.contains("404"),
        "ended: 404"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_stream_over_rtsp_needs_the_signed_token() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    assert_eq!(stream["mode"], "practice");
    let signed = rtsp_url(&stream);
    assert!(signed.contains("?token="), "{signed}");
    let plain = signed.split('?').next().unwrap().to_string();

    let publisher = Publish::small(8.0).spawn(&server.publish_url(&stream))?;
    api.playlist_with_segments(
        &format!(
            "/hls/{id}/source/index.m3u8?{}",
            signed.split('?').nth(1).unwrap()
        ),
        1,
    )
    .await?;
    let refused = probe_rtsp_refused(&plain).await?;
    assert!(refused.contains("404"), "{refused}");
    let forged = format!("{plain}?token=9999999999.00");
    assert!(probe_rtsp_refused(&forged).await?.contains("404"));
    let other_stream = create(&api, &token, json!({"title": "other"})).await?;
    let other_token = rtsp_url(&other_stream);
    let borrowed = format!("{plain}?{}", other_token.split('?').nth(1).unwrap());
    assert!(
        probe_rtsp_refused(&borrowed).await?.contains("404"),
        "another stream's token does not open this one"
    );
    let streams = probe_rtsp(&signed).await?;
    assert!(
        streams.contains(&("h264".into(), Some(320), Some(240))),
        "{streams:?}"
    );
    // Public from now on: the plain URL opens too.
    api.set_mode(&token, &id, "public").await?;
    assert!(!probe_rtsp(&plain).await?.is_empty());
    drop(publisher);
    server.stop().await;
    Ok(())
}
