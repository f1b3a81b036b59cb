//! HEVC ingest end to end: H.265 over SRT (ffmpeg libx265, MPEG-TS) and over Enhanced RTMP
//! (examples/hevc_publisher.rs: x265enc + our RTMP client), each played back as HLS by ffprobe:
//! the CMAF source rendition is HEVC with `hvc1` in CODECS, an H.264 rung is always there, RTSP out
//! sends the HEVC, and the recording is the HEVC as sent. Abuse: a malformed SequenceStart drops the publisher; an unknown
//! FourCC is ignored with a warning while the rest of the stream goes on.
mod common;

#[allow(dead_code)]
#[path = "../examples/hevc_publisher.rs"]
mod hevc_publisher;

use anyhow::{Context, Result, ensure};
use common::*;
use serde_json::{Value, json};

/// Waits until the master playlist lists an HEVC variant and an H.264 one; returns it.
async fn master_with_hevc_and_h264(url: &str) -> Result<String> {
    wait_for("an hvc1 and an avc1 variant", DEADLINE, || async {
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        (text.contains("hvc1.") && text.contains("avc1.")).then_some(text)
    })
    .await
}

/// Checks what viewers get while live: the HEVC source as CMAF, and an H.264 rung.
async fn assert_hevc_and_h264_play(server: &Server, stream: &Value) -> Result<()> {
    let url = owner_master_url(stream);
    let text = master_with_hevc_and_h264(&url).await?;
    let hevc = variant(&url, &text, "hvc1.1.6.L")?;
    ensure!(
        hevc.contains("/source/"),
        "the HEVC variant is the source: {hevc}"
    );
    let h264 = variant(&url, &text, "avc1.")?;
    for (playlist, codec) in [(&hevc, "hevc"), (&h264, "h264")] {
        server.api.playlist_with_segments(playlist, 1).await?;
        let (codecs, _) = probe(playlist).await?;
        ensure!(
            codecs.contains(&codec.to_string()) && codecs.contains(&"aac".to_string()),
            "ffprobe {playlist}: {codecs:?}"
        );
    }
    Ok(())
}

/// After the end: the recording is the publisher's HEVC and AAC.
async fn assert_recording_is_hevc(server: &Server, token: &str, id: &str) -> Result<()> {
    let rec = server.api.recording_ready(token, id).await?;
    ensure!(rec["duration_s"].as_f64().unwrap_or(0.0) > 2.0, "{rec}");
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (codecs, _) = probe(file.to_str().context("path")?).await?;
    ensure!(codecs == ["hevc", "aac"], "recording holds {codecs:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_over_srt_from_ffmpeg_plays_as_cmaf_hevc_with_an_h264_rung() -> Result<()> {
    let mut server = Server::start().await?;
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    let url = format!("{}&linger=1", server.srt_publish_url(&stream));
    // ffmpeg's libx265 with B-frames and a 2 s GOP, AAC, as MPEG-TS (stream_type 0x24).
    let publisher = Publish::small(6.0).spawn_hevc_to("mpegts", &url)?;
    let health = live_health(&server, &token, &id).await?;
    let video = &health["video"];
    ensure!(
        video["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("hvc1.1.6.L"))
            && video["profile"] == "main"
            && video["width"] == 320
            && video["height"] == 240,
        "{health}"
    );
    // RTSP out passes the HEVC on (rtph265pay).
    let rtsp = stream["playback"]["rtsp"]
        .as_str()
        .context("playback.rtsp")?
        .replace("localhost", "127.0.0.1");
    // Mounted once the pipeline runs (a moment after the stream is live).
    wait_for("hevc and aac over rtsp", DEADLINE, || async {
        let args = ["-v", "error", "-rtsp_transport", "tcp", "-show_entries"];
        let args = [&args[..], &["stream=codec_name", "-of", "csv=p=0", &rtsp]].concat();
        let out = run("ffprobe", &args, DEADLINE).await.ok()?;
        let codecs = String::from_utf8_lossy(&out.stdout).to_string();
        (codecs.contains("hevc") && codecs.contains("aac")).then_some(())
    })
    .await?;
    assert_hevc_and_h264_play(&server, &stream).await?;
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    ensure!(status.success(), "ffmpeg: {stderr}");
    assert_recording_is_hevc(&server, &token, &id).await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_over_enhanced_rtmp_with_the_passthrough_ladder_still_gets_an_h264_rung() -> Result<()>
{
    let mut server = Server::start().await?;
    let token = server.demo_token.clone();
    let stream = server
        .api
        .ok(
            reqwest::Method::POST,
            "/api/v1/streams",
            &token,
            Some(json!({"title": "hevc", "ladder": "passthrough"})),
        )
        .await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let options = hevc_publisher::Options::new(&server.publish_url(&stream), 5);
    let publisher = tokio::task::spawn_blocking(move || hevc_publisher::publish(&options));
    let health = live_health(&server, &token, &id).await?;
    ensure!(
        health["video"]["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("hvc1.")),
        "{health}"
    );
    assert_hevc_and_h264_play(&server, &stream).await?;
    let text = reqwest::get(owner_master_url(&stream))
        .await?
        .text()
        .await?;
    ensure!(
        text.contains("RESOLUTION=320x240") && text.contains("240p/"),
        "the H.264 rung is at the source's size: {text}"
    );
    publisher.await??;
    assert_recording_is_hevc(&server, &token, &id).await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_hevc_sequence_start_drops_the_publisher_and_the_key_still_works() -> Result<()>
{
    let mut server = Server::start().await?;
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    let mut broken = hevc_publisher::Options::new(&server.publish_url(&stream), 3);
    broken.broken_sequence_start = true;
    let refused = tokio::task::spawn_blocking(move || hevc_publisher::publish(&broken)).await?;
    ensure!(
        refused.is_err(),
        "the server kept a publisher with a garbage hvcC"
    );
    let v = server.api.stream(&token, &id).await?;
    ensure!(v["state"] == "ready", "nothing went live: {v}");
    // The same key publishes fine right after.
    let good = hevc_publisher::Options::new(&server.publish_url(&stream), 3);
    let publisher = tokio::task::spawn_blocking(move || hevc_publisher::publish(&good));
    live_health(&server, &token, &id).await?;
    publisher.await??;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_fourcc_is_ignored_and_the_audio_goes_on() -> Result<()> {
    let mut server = Server::start().await?;
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    let mut options = hevc_publisher::Options::new(&server.publish_url(&stream), 4);
    options.fourcc = *b"xyz1";
    let publisher = tokio::task::spawn_blocking(move || hevc_publisher::publish(&options));
    let health = wait_for("the stream live with audio", DEADLINE, || async {
        let v = server.api.stream(&token, &id).await.ok()?;
        (v["state"] == "live" && v["health"]["audio"]["codec"].is_string())
            .then(|| v["health"].clone())
    })
    .await?;
    ensure!(health["video"].is_null(), "no video track: {health}");
    publisher.await??;
    let rec = server.api.recording_ready(&token, &id).await?;
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (codecs, _) = probe(file.to_str().context("path")?).await?;
    ensure!(codecs == ["aac"], "recording {rec} holds {codecs:?}");
    server.stop().await;
    Ok(())
}

/// The metadata announces video, and only audio comes: the stream waits for the video (a
/// WebRTC keyframe may take seconds), then the publisher leaves before the wait is over. What
/// came is not lost: the stream starts with it and its recording holds the audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_sent_while_announced_video_was_awaited_is_recorded() -> Result<()> {
    let mut server = Server::start().await?;
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    let mut options = hevc_publisher::Options::new(&server.publish_url(&stream), 3);
    options.video = false;
    tokio::task::spawn_blocking(move || hevc_publisher::publish(&options)).await??;
    let rec = server.api.recording_ready(&token, &id).await?;
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (codecs, duration) = probe(file.to_str().context("path")?).await?;
    ensure!(codecs == ["aac"], "recording {rec} holds {codecs:?}");
    ensure!(
        duration.unwrap_or(0.0) > 2.0,
        "recording {rec}: {duration:?}"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_asking_for_the_hevc_source_is_told_to_pick_an_h264_rung() -> Result<()> {
    let mut server = simulcast_server().await?;
    let stream = server.demo_stream.clone();
    let path = public_with_one_destination(&server, "hevc-target-key").await?;
    let options = hevc_publisher::Options::new(&server.publish_url(&stream), 5);
    let publisher = tokio::task::spawn_blocking(move || hevc_publisher::publish(&options));
    destination_refused(&server, &path, &["the source is H.265", "H.264 rung"]).await?;
    // The stream goes on for its viewers.
    assert_hevc_and_h264_play(&server, &stream).await?;
    publisher.await??;
    server.stop().await;
    Ok(())
}
