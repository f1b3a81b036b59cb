//! AV1 ingest end to end over Enhanced RTMP (`av01`), with examples/hevc_publisher.rs in its AV1
//! mode (GStreamer av1enc, libaom, + our RTMP client): the CMAF source rendition is AV1 with
//! `av01` in CODECS, an H.264 rung is always there and plays, the MPEG-TS playlists leave the AV1
//! source out (HLS carries AV1 in fMP4 only), RTSP out carries the audio only (no AV1
//! RTP payloader in 1.22), health says AV1, and the recording and the public replay are the AV1
//! as sent. Abuse: a garbage av1C drops the publisher and the key works again; a destination
//! asking for the AV1 source is told to pick an H.264 rung.
mod common;

#[allow(dead_code)]
#[path = "../examples/hevc_publisher.rs"]
mod hevc_publisher;

use std::path::Path;

use anyhow::{Context, Result, ensure};
use common::*;
use hevc_publisher::{Codec, Options};
use serde_json::{Value, json};

/// A stream with the `passthrough` ladder: nothing would be transcoded for an H.264 source.
async fn passthrough_stream(server: &Server, token: &str) -> Result<Value> {
    server
        .api
        .ok(
            reqwest::Method::POST,
            "/api/v1/streams",
            token,
            Some(json!({"title": "av1", "ladder": "passthrough"})),
        )
        .await
}

/// Checks what viewers get while live: the AV1 source as CMAF (ffprobe decodes it with its
/// dav1d), and an H.264 rung at the source's size; the MPEG-TS master lists only the rung.
async fn assert_av1_and_h264_play(server: &Server, stream: &Value) -> Result<()> {
    let url = owner_master_url(stream);
    let text = wait_for("an av01 and an avc1 variant", DEADLINE, || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (text.contains("av01.") && text.contains("avc1.")).then_some(text)
    })
    .await?;
    let av1 = variant(&url, &text, "CODECS=\"av01.0.")?;
    ensure!(
        av1.contains("/source/"),
        "the AV1 variant is the source: {av1}"
    );
    ensure!(
        text.contains("CODECS=\"av01.0.00M.08,mp4a.40.2\""),
        "libaom's 320x240 Main 8-bit level 2.0 in CODECS: {text}"
    );
    let h264 = variant(&url, &text, "avc1.")?;
    ensure!(
        h264.contains("/240p/") && text.contains("RESOLUTION=320x240"),
        "the H.264 rung is at the source's size: {text}"
    );
    for (playlist, codec) in [(&av1, "av1"), (&h264, "h264")] {
        server.api.playlist_with_segments(playlist, 1).await?;
        let (codecs, _) = probe(playlist).await?;
        ensure!(
            codecs.contains(&codec.to_string()) && codecs.contains(&"aac".to_string()),
            "ffprobe {playlist}: {codecs:?}"
        );
        let size = video_size(Path::new(playlist.as_str())).await?;
        ensure!(size == (320, 240), "{playlist} is {size:?}");
    }
    // The CMAF init section has an `av01` sample entry whose `av1C` is a real record: marker and
    // version, profile 0 and level 2.0 as in CODECS, 4:2:0, then the sequence header OBU.
    let playlist = reqwest::get(&av1).await?.text().await?;
    let map = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|rest| rest.split('"').next())
        .context("EXT-X-MAP")?;
    let base = &av1[..av1.rfind('/').context("base")? + 1];
    let init = reqwest::get(format!("{base}{map}")).await?.bytes().await?;
    let at = init
        .windows(4)
        .position(|w| w == b"av1C")
        .context("an av1C box")?;
    ensure!(
        init.windows(4).any(|w| w == b"av01")
            && init[at + 4..at + 8] == [0x81, 0x00, 0x0c, 0x00]
            && init[at + 8] == 0x0a,
        "av1C {:02x?}",
        &init[at..(at + 24).min(init.len())]
    );
    // The H.264 rung decodes (the AV1 was decoded by av1dec and re-encoded for it).
    let decoded = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            &h264,
            "-frames:v",
            "10",
            "-f",
            "null",
            "-",
        ],
        DEADLINE,
    )
    .await?;
    ensure!(
        decoded.status.success(),
        "ffmpeg could not decode the H.264 rung: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let ts = url.replace("master.m3u8", "master-ts.m3u8");
    let ts_text = reqwest::get(&ts).await?.text().await?;
    ensure!(
        ts_text.contains("240p/") && !ts_text.contains("source/") && !ts_text.contains("av01"),
        "the MPEG-TS master has the H.264 rung only: {ts_text}"
    );
    Ok(())
}

/// ffmpeg decodes every frame of `file` without a word on stderr.
async fn decodes_without_error(file: &Path, what: &str) -> Result<()> {
    let path = file.to_str().context("path")?;
    let decoded = run(
        "ffmpeg",
        &["-v", "error", "-i", path, "-f", "null", "-"],
        DEADLINE,
    )
    .await?;
    ensure!(
        decoded.status.success() && decoded.stderr.is_empty(),
        "ffmpeg decoding the {what}: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn av1_over_enhanced_rtmp_plays_as_cmaf_av1_with_an_h264_rung() -> Result<()> {
    let mut server = Server::start().await?;
    let token = server.demo_token.clone();
    let stream = passthrough_stream(&server, &token).await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    // Public throughout, so that the public replay (cut from the recording) is built too.
    server.api.set_mode(&token, &id, "public").await?;
    let options = Options::with_codec(Codec::Av1, &server.publish_url(&stream), 6);
    let publisher = tokio::task::spawn_blocking(move || hevc_publisher::publish(&options));
    let health = live_health(&server, &token, &id).await?;
    let video = &health["video"];
    ensure!(
        video["codec"] == "av01.0.00M.08"
            && video["profile"] == "main"
            && video["level"] == "2.0"
            && video["width"] == 320
            && video["height"] == 240,
        "{health}"
    );
    // Measured from the publisher's timestamps and keyframe flags: 25 fps, a keyframe every 2 s.
    let measured = wait_for("fps and keyframe interval in health", DEADLINE, || async {
        let v = server.api.stream(&token, &id).await.ok()?;
        let video = v["health"]["video"].clone();
        (video["fps"].is_number() && video["keyframe_interval_s"].is_number()).then_some(video)
    })
    .await?;
    let (fps, gop) = (
        measured["fps"].as_f64().unwrap_or(0.0),
        measured["keyframe_interval_s"].as_f64().unwrap_or(0.0),
    );
    ensure!(
        (fps - 25.0).abs() < 1.0 && (gop - 2.0).abs() < 0.2,
        "{measured}"
    );
    assert_av1_and_h264_play(&server, &stream).await?;
    // The poster comes from the decoded AV1.
    let poster = server
        .data_dir()
        .join(format!("streams/{id}/thumbnail.jpg"));
    wait_for("a poster", DEADLINE, || async {
        std::fs::read(&poster)
            .ok()
            .filter(|jpeg| jpeg.starts_with(&[0xff, 0xd8]))
    })
    .await?;
    // RTSP out: no AV1 payloader in GStreamer 1.22, so the stream's RTSP media is its audio.
    let rtsp = stream["playback"]["rtsp"]
        .as_str()
        .context("playback.rtsp")?
        .replace("localhost", "127.0.0.1");
    // Mounted once the pipeline runs (a moment after the stream is live).
    let codecs = wait_for("the stream over rtsp", DEADLINE, || async {
        let args = ["-v", "error", "-rtsp_transport", "tcp", "-show_entries"];
        let args = [&args[..], &["stream=codec_name", "-of", "csv=p=0", &rtsp]].concat();
        let out = run("ffprobe", &args, DEADLINE).await.ok()?;
        let codecs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!codecs.is_empty()).then_some(codecs)
    })
    .await?;
    ensure!(codecs == "aac", "rtsp out carries {codecs:?}");
    publisher.await??;
    // The recording is the AV1 as sent, and decodes.
    let rec = server.api.recording_ready(&token, &id).await?;
    ensure!(
        rec["duration_s"].as_f64().unwrap_or(0.0) > 3.0,
        "recording {rec}"
    );
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (codecs, _) = probe(file.to_str().context("path")?).await?;
    ensure!(codecs == ["av1", "aac"], "recording holds {codecs:?}");
    ensure!(video_size(&file).await? == (320, 240));
    decodes_without_error(&file, "recording").await?;
    // The public replay is copied from the recording without re-encoding: AV1 too.
    let replay = wait_for("the public replay", DEADLINE, || async {
        let (status, v) = server
            .api
            .get(&format!("/api/v1/streams/{id}/replay"), None)
            .await
            .ok()?;
        (status == 200 && v["state"] != "finalizing").then_some(v)
    })
    .await?;
    ensure!(replay["state"] == "ready", "public replay: {replay}");
    let file = server.data_dir().join(format!("streams/{id}/replay.mp4"));
    let (codecs, _) = probe(file.to_str().context("path")?).await?;
    ensure!(codecs == ["av1", "aac"], "replay holds {codecs:?}");
    decodes_without_error(&file, "replay").await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_av1_config_record_drops_the_publisher_and_the_key_still_works() -> Result<()> {
    let mut server = Server::start().await?;
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    let mut broken = Options::with_codec(Codec::Av1, &server.publish_url(&stream), 3);
    broken.broken_sequence_start = true;
    let refused = tokio::task::spawn_blocking(move || hevc_publisher::publish(&broken)).await?;
    ensure!(
        refused.is_err(),
        "the server kept a publisher with a garbage av1C"
    );
    let v = server.api.stream(&token, &id).await?;
    ensure!(v["state"] == "ready", "nothing went live: {v}");
    // The same key publishes fine right after.
    let good = Options::with_codec(Codec::Av1, &server.publish_url(&stream), 3);
    let publisher = tokio::task::spawn_blocking(move || hevc_publisher::publish(&good));
    let health = live_health(&server, &token, &id).await?;
    ensure!(
        health["video"]["codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("av01.")),
        "{health}"
    );
    publisher.await??;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_asking_for_the_av1_source_is_told_to_pick_an_h264_rung() -> Result<()> {
    let mut server = simulcast_server().await?;
    let path = public_with_one_destination(&server, "av1-target-key").await?;
    let options = Options::with_codec(Codec::Av1, &server.publish_url(&server.demo_stream), 5);
    let publisher = tokio::task::spawn_blocking(move || hevc_publisher::publish(&options));
    destination_refused(&server, &path, &["the source is AV1", "H.264 rung"]).await?;
    publisher.await??;
    server.stop().await;
    Ok(())
}
