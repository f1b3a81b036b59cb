//! Ingest interop: the encoders people use, each publishing a few seconds of small video on its
//! own stream of a shared server. Every publish must go live, play as HLS (ffprobe) with the
//! tracks it sent, end cleanly (the publisher is not disconnected), and leave a ready recording of
//! about its length with those tracks.
//!
//! Already covered elsewhere, not repeated here: ffmpeg audio-only and video-only
//! (`publish_and_play.rs`), a 6 s GOP (`publish_and_play.rs`), ffmpeg over SRT and
//! `srt-live-transmit` (`srt_ingest.rs`).
mod common;

use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use common::*;
use serde_json::Value;
use tokio::process::{Child, Command};

/// Each publish lasts this long: long enough for a segment or two, short enough for CI.
const SECONDS: u32 = 3;

/// The tracks a publisher sends, as ffprobe names them.
const AV: &[&str] = &["h264", "aac"];

/// A GStreamer publisher pipeline (gst-launch syntax) with `{url}` or `{srt}` to fill in.
fn gst_publisher(description: &str) -> Result<Command> {
    let mut cmd = Command::new("gst-launch-1.0");
    // -e: on the end of the sources, EOS through the muxer so the sink ends the publish cleanly.
    cmd.args(["-q", "-e"]).args(description.split_whitespace());
    Ok(cmd)
}

/// An `rtmp2sink` pipeline as GStreamer users write it (the one of issue 24: x264 High, AAC),
/// small and short. `lag_us` holds each picture that long before the encoder, as an encoder that
/// cannot keep real time does (1080p60 on a small machine): the video falls behind the audio, and
/// flvmux then writes video frames on the audio's timestamps, two frames in a row on one.
fn gst_rtmp(
    url: &str,
    fps: u32,
    bframes: u32,
    rate: u32,
    channels: u32,
    lag_us: u32,
) -> Result<Command> {
    gst_publisher(&format!(
        "videotestsrc is-live=true num-buffers={frames} ! video/x-raw,width=320,height=240,framerate={fps}/1 \
         ! identity sleep-time={lag_us} ! x264enc speed-preset=ultrafast bframes={bframes} key-int-max={gop} bitrate=800 ! video/x-h264,profile=high \
         ! h264parse ! queue ! flvmux name=m streamable=true ! rtmp2sink location={url} \
         audiotestsrc is-live=true num-buffers={audio} ! audio/x-raw,rate={rate},channels={channels} \
         ! audioconvert ! avenc_aac ! aacparse ! queue ! m.",
        frames = fps * SECONDS,
        gop = 2 * fps,
        // audiotestsrc makes 1024-sample buffers.
        audio = rate * SECONDS / 1024,
    ))
}

/// Publishes with `publisher` (`seconds` long) on a new stream of `server` and checks the whole
/// life of it.
async fn publish_and_check(
    server: &Server,
    label: &str,
    seconds: u32,
    publisher: impl FnOnce(&Value) -> Result<Command>,
    tracks: &[&str],
) -> Result<()> {
    let token = &server.demo_token;
    let stream = server.api.create_stream(token, label).await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let mut cmd = publisher(&stream)?;
    let child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("{label}: cannot start the publisher"))?;
    // Live with HLS while it publishes (the bug ended the stream 0.3 s after the publish was
    // accepted); that it stayed live to the end shows in the durations below.
    let api = &server.api;
    wait_for(
        &format!("{label}: live with a segment"),
        DEADLINE,
        || async {
            let v = api.stream(token, &id).await.ok()?;
            let (status, text) = api
                .get_text(&media_url(&owner_master_url(&stream)), None)
                .await
                .ok()?;
            (v["state"] == "live" && status == 200 && text.contains("#EXTINF")).then_some(())
        },
    )
    .await?;
    let (status, stderr) = finish(child, DEADLINE).await?;
    ensure!(status.success(), "{label}: the publisher failed: {stderr}");
    let rec = api
        .recording_ready(token, &id)
        .await
        .with_context(|| label.to_string())?;
    let ended = api.stream(token, &id).await?;
    ensure!(ended["state"] == "ended", "{label}: {ended}");
    let duration = rec["duration_s"].as_f64().unwrap_or(0.0);
    ensure!(
        duration > f64::from(seconds) - 0.7,
        "{label}: recording is {duration} s of {seconds} s: {rec}"
    );
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (recorded, _) = probe(file.to_str().context("path")?).await?;
    ensure!(recorded == tracks, "{label}: recording has {recorded:?}");
    let (played, hls_duration) = probe(&owner_master_url(&stream)).await?;
    ensure!(played == tracks, "{label}: HLS has {played:?}");
    let hls_duration = hls_duration.unwrap_or(0.0);
    ensure!(
        hls_duration > f64::from(seconds) - 0.7,
        "{label}: HLS is {hls_duration} s of {seconds} s"
    );
    Ok(())
}

/// Every failure of several publishes, not just the first.
fn all(runs: Vec<(String, Result<()>)>) -> Result<()> {
    let failed: Vec<String> = runs
        .into_iter()
        .filter_map(|(label, r)| r.err().map(|e| format!("{label}: {e:#}")))
        .collect();
    ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_with_b_frames_at_60_fps_and_mono_44k_goes_live_plays_and_records()
-> Result<()> {
    // The publisher of issue 24, with an encoder that lags as at 1080p60: flvmux gives
    // consecutive video frames the same timestamps, the parser left the second without a PTS, and
    // the recording muxer failed ("Buffer has no PTS") and ended the stream 2 times in 3.
    let mut server = Server::start().await?;
    let url = |s: &Value| server.publish_url(s);
    let r = publish_and_check(
        &server,
        "rtmp2sink 60 fps bframes=2 44.1k mono, lagging encoder",
        SECONDS,
        |s| gst_rtmp(&url(s), 60, 2, 44_100, 1, 20_000),
        AV,
    )
    .await;
    server.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_publishers_at_30_and_60_fps_with_and_without_b_frames() -> Result<()> {
    let mut server = Server::start().await?;
    let mut runs = Vec::new();
    for (fps, bframes, rate, channels) in
        [(30, 0, 48_000, 2), (30, 2, 48_000, 2), (60, 0, 44_100, 2)]
    {
        let label = format!("rtmp2sink {fps} fps bframes={bframes} {rate} Hz x{channels}");
        let r = publish_and_check(
            &server,
            &label,
            SECONDS,
            |s| gst_rtmp(&server.publish_url(s), fps, bframes, rate, channels, 0),
            AV,
        )
        .await;
        runs.push((label, r));
    }
    let r = all(runs);
    server.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_srtsink_over_mpegtsmux_goes_live_plays_and_records() -> Result<()> {
    let mut server = Server::start().await?;
    let port = server.srt_port();
    let r = publish_and_check(
        &server,
        "srtsink mpegtsmux",
        SECONDS,
        |s| {
            let key = s["stream_key"].as_str().context("key")?;
            gst_publisher(&format!(
                "videotestsrc is-live=true num-buffers={frames} ! video/x-raw,width=320,height=240,framerate=30/1 \
                 ! x264enc speed-preset=ultrafast bframes=2 key-int-max=60 bitrate=800 ! video/x-h264,profile=high \
                 ! h264parse ! queue ! mpegtsmux name=m alignment=7 ! srtsink uri=srt://127.0.0.1:{port} \
                 streamid=publish:{key} latency=200 wait-for-connection=true \
                 audiotestsrc is-live=true num-buffers={audio} ! audio/x-raw,rate=48000,channels=2 \
                 ! audioconvert ! avenc_aac ! aacparse ! queue ! m.",
                frames = 30 * SECONDS,
                audio = 48_000 * SECONDS / 1024,
            ))
        },
        AV,
    )
    .await;
    server.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishers_with_and_without_b_frames_every_gop_and_aac_format() -> Result<()> {
    let mut server = Server::start().await?;
    let mut runs = Vec::new();
    // (B-frames, GOP seconds, AAC rate, channels): every value of each appears at least once.
    for (bframes, gop_s, rate, channels) in [
        (0, 1, 44_100, 1),
        (2, 1, 48_000, 1),
        (0, 2, 48_000, 2),
        (3, 4, 44_100, 2),
        // OBS's "auto" keyframe interval can be this long: one segment per GOP.
        (2, 10, 48_000, 2),
    ] {
        let label = format!("ffmpeg bf={bframes} gop={gop_s}s {rate} Hz x{channels}");
        // At least two GOPs.
        let seconds = SECONDS.max(gop_s + 1);
        let publish = Publish {
            bframes,
            gop: 30 * gop_s,
            sample_rate: rate,
            channels,
            ..Publish::small(f64::from(seconds))
        };
        let url = |s: &Value| server.publish_url(s);
        let r = publish_and_check(
            &server,
            &label,
            seconds,
            |s| {
                let mut cmd = Command::new("ffmpeg");
                cmd.args(publish.args(&url(s)));
                Ok(cmd)
            },
            AV,
        )
        .await;
        runs.push((label, r));
    }
    let r = all(runs);
    server.stop().await;
    r
}
