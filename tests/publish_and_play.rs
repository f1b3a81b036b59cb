//! A creator publishes with real encoders; viewers play with real players; the recording is
//! downloadable.
mod common;

use std::time::Duration;

use anyhow::Result;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_like_stream_is_private_in_practice_public_on_switch_and_recorded() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    assert_eq!(stream["mode"], "practice");
    let signed_master = stream["playback"]["hls"]
        .as_str()
        .unwrap()
        .replace("localhost", "127.0.0.1");
    assert!(
        signed_master.contains("?token="),
        "practice playback URL is signed for the creator"
    );
    let plain_master = format!("/hls/{id}/master.m3u8");
    let plain_media = format!("/hls/{id}/source/index.m3u8");

    let published = 12.0;
    let publisher = Publish::obs_like(published).spawn(&server.publish_url(&stream))?;

    // Practice: the creator sees it (signed URL, or bearer), nobody else does.
    let media = api
        .playlist_with_segments(&media_url(&signed_master), 2)
        .await?;
    assert!(media.contains("#EXT-X-PROGRAM-DATE-TIME"), "{media}");
    let first_segment = media
        .lines()
        .find(|l| l.starts_with("seg"))
        .unwrap()
        .to_string();
    assert!(
        first_segment.contains("?token="),
        "the token travels into segment URIs: {first_segment}"
    );
    let segment_path = format!(
        "/hls/{id}/source/{}",
        first_segment.split('?').next().unwrap()
    );
    assert_eq!(api.status(&plain_master, None).await?, 404);
    assert_eq!(api.status(&plain_media, None).await?, 404);
    assert_eq!(api.status(&segment_path, None).await?, 404);
    assert_eq!(
        api.status(&format!("/api/v1/streams/{id}"), None).await?,
        404
    );
    assert_eq!(api.status(&plain_master, Some(&token)).await?, 200);
    let other = api.create_creator("other").await?;
    assert_eq!(
        api.status(&plain_master, Some(&other)).await?,
        404,
        "another creator cannot see it"
    );
    let (_, master) = api.get_text(&signed_master, None).await?;
    assert!(master.contains("CODECS=\"avc1.64"), "{master}");
    assert!(master.contains("mp4a.40.2"), "{master}");
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
    assert!(master.contains("FRAME-RATE=30"), "{master}");
    let (codecs, _) = probe(&signed_master).await?;
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );

    // Health while live.
    let live = api.stream(&token, &id).await?;
    assert_eq!(live["state"], "live");
    assert_eq!(
        live["health"]["video"]["codec"]
            .as_str()
            .map(|c| c.starts_with("avc1.64")),
        Some(true),
        "{live}"
    );
    assert_eq!(live["health"]["audio"]["sample_rate"], 48000);
    assert_eq!(live["health"]["audio"]["channels"], 2);

    // Public without reconnecting: anyone can watch from the first segment that began after the
    // switch (the rehearsal stays the creator's, tests/rehearsal.rs); back to practice hides it
    // again.
    api.set_mode(&token, &id, "public").await?;
    api.playlist_with_segments(&plain_media, 1).await?;
    wait_for("the public master", DEADLINE, || async {
        (api.status(&plain_master, None).await.ok()? == 200).then_some(())
    })
    .await?;
    assert_eq!(api.status(&segment_path, None).await?, 404, "rehearsed");
    assert_eq!(api.status(&segment_path, Some(&token)).await?, 200);
    let (_, metrics) = api.get_text("/metrics", None).await?;
    assert!(
        metrics.contains(&format!("livefront_ingest_video_fps{{stream=\"{id}\"}}")),
        "{metrics}"
    );
    api.set_mode(&token, &id, "practice").await?;
    assert_eq!(api.status(&plain_master, None).await?, 404);
    let (_, metrics) = api.get_text("/metrics", None).await?;
    assert!(
        !metrics.contains(&id),
        "practice streams stay out of the metrics: {metrics}"
    );
    api.set_mode(&token, &id, "public").await?;

    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(
        status.success(),
        "the publisher was never disconnected by the mode flips: {stderr}"
    );

    // After the end: complete VOD playlists (the creator's everything, the public's its public
    // part), recording ready and downloadable.
    let rec = api.recording_ready(&token, &id).await?;
    let (_, vod) = api.get_text(&plain_media, Some(&token)).await?;
    assert!(
        vod.contains("#EXT-X-ENDLIST") && vod.contains("#EXT-X-PLAYLIST-TYPE:VOD"),
        "{vod}"
    );
    let listed = playlist_duration(&vod);
    assert!(
        (listed - published).abs() < 0.5,
        "VOD lists {listed} s of {published} s"
    );
    let (_, public_vod) = api.get_text(&plain_media, None).await?;
    let public_listed = playlist_duration(&public_vod);
    assert!(
        public_vod.contains("#EXT-X-ENDLIST") && public_listed > 0.0 && public_listed < listed,
        "{public_vod}"
    );
    // GStreamer's older hlsdemux reads MPEG-TS (master-ts.m3u8); playbin3 (hlsdemux2) the
    // low-latency master, as a plain HLS player.
    let ts_master = plain_master.replace("master.m3u8", "master-ts.m3u8");
    let hlsdemux = run(
        "gst-launch-1.0",
        &[
            "-q",
            "souphttpsrc",
            &format!("location={}{ts_master}", api.base),
            "!",
            "hlsdemux",
            "!",
            "tsdemux",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "fakesink",
            "sync=false",
        ],
        DEADLINE,
    )
    .await?;
    assert!(
        hlsdemux.status.success(),
        "GStreamer hlsdemux plays the VOD: {}",
        String::from_utf8_lossy(&hlsdemux.stderr)
    );
    let playbin3 = run(
        "gst-launch-1.0",
        &[
            "-q",
            "playbin3",
            &format!("uri={}{plain_master}", api.base),
            "video-sink=fakesink sync=false",
            "audio-sink=fakesink sync=false",
        ],
        DEADLINE,
    )
    .await?;
    assert!(
        playbin3.status.success(),
        "GStreamer playbin3 plays the low-latency master's VOD: {}",
        String::from_utf8_lossy(&playbin3.stderr)
    );

    let duration = rec["duration_s"].as_f64().unwrap();
    assert!(
        (duration - published).abs() < 0.5,
        "recording is {duration} s of {published} s"
    );
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    assert!(
        livefront::output::recording::moov_before_mdat(&file)?,
        "moov before mdat"
    );
    let (codecs, probed) = probe(file.to_str().unwrap()).await?;
    assert_eq!(codecs, ["h264", "aac"]);
    assert!(
        (probed.unwrap() - published).abs() < 0.5,
        "ffprobe says {probed:?}"
    );

    let download = rec["download_url"]
        .as_str()
        .unwrap()
        .replace("localhost", "127.0.0.1");
    let plain_download = download.split('?').next().unwrap().to_string();
    assert_eq!(
        api.status(&plain_download, None).await?,
        404,
        "no credentials, no file"
    );
    assert_eq!(api.status(&plain_download, Some(&other)).await?, 404);
    assert_eq!(
        api.status(&download.replace("sig=", "sig=1"), None).await?,
        404,
        "a forged signature is refused"
    );
    let resp = api
        .http
        .get(&download)
        .header("Range", "bytes=0-99")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 206);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()?
            .starts_with("attachment")
    );
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    assert_eq!(resp.bytes().await?.len(), 100);
    let full = api
        .http
        .get(&plain_download)
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(full.status().as_u16(), 200);
    assert_eq!(
        full.bytes().await?.len() as u64,
        rec["bytes"].as_u64().unwrap()
    );

    // The poster (keyframes only in passthrough) follows the stream's visibility.
    let thumb = format!("/api/v1/streams/{id}/thumbnail.jpg");
    let resp = api.http.get(api.url(&thumb)).send().await?;
    assert_eq!(resp.status().as_u16(), 200, "public stream: open poster");
    assert!(resp.bytes().await?.starts_with(&[0xff, 0xd8]));
    api.set_mode(&token, &id, "practice").await?;
    assert_eq!(api.status(&thumb, None).await?, 404);
    assert_eq!(api.status(&thumb, Some(&token)).await?, 200);

    let ended = api.stream(&token, &id).await?;
    assert_eq!(ended["state"], "ended");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_publisher_is_ingested_and_recorded() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let location = format!("location={}", server.publish_url(&stream));
    let publisher = tokio::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "is-live=true",
            "num-buffers=150",
            "!",
            "video/x-raw,width=320,height=240,framerate=30/1",
            "!",
            "x264enc",
            "tune=zerolatency",
            "key-int-max=60",
            "bframes=0",
            "!",
            "h264parse",
            "!",
            "flvmux",
            "name=m",
            "streamable=true",
            "!",
            "rtmp2sink",
            &location,
            "audiotestsrc",
            "is-live=true",
            "num-buffers=235",
            "!",
            "audio/x-raw,rate=48000,channels=2",
            "!",
            "avenc_aac",
            "!",
            "aacparse",
            "!",
            "m.",
        ])
        .kill_on_drop(true)
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "rtmp2sink publish: {stderr}");
    let rec = server.api.recording_ready(&server.demo_token, id).await?;
    let duration = rec["duration_s"].as_f64().unwrap();
    assert!(
        (duration - 5.0).abs() < 0.6,
        "recording is {duration} s of 5 s"
    );
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (codecs, _) = probe(file.to_str().unwrap()).await?;
    assert_eq!(codecs, ["h264", "aac"]);
    let master = stream["playback"]["hls"]
        .as_str()
        .unwrap()
        .replace("localhost", "127.0.0.1");
    let (codecs, _) = probe(&master).await?;
    assert_eq!(codecs, ["h264", "aac"]);
    server.stop().await;
    Ok(())
}

async fn single_track(video: bool, audio: bool, expect: &[&str]) -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let publish = Publish {
        video,
        audio,
        ..Publish::small(5.0)
    };
    let (status, stderr) = finish(publish.spawn(&server.publish_url(&stream))?, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    let rec = server.api.recording_ready(&server.demo_token, id).await?;
    let duration = rec["duration_s"].as_f64().unwrap();
    assert!(
        (duration - 5.0).abs() < 0.5,
        "recording is {duration} s of 5 s"
    );
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    assert_eq!(probe(file.to_str().unwrap()).await?.0, expect);
    let master = stream["playback"]["hls"]
        .as_str()
        .unwrap()
        .replace("localhost", "127.0.0.1");
    let (_, text) = server.api.get_text(&master, None).await?;
    let codec = if video { "avc1." } else { "mp4a.40.2" };
    assert!(text.contains(codec), "{text}");
    let (codecs, hls_duration) = probe(&master).await?;
    assert_eq!(codecs, expect);
    assert!(
        (hls_duration.unwrap_or(0.0) - 5.0).abs() < 0.6,
        "HLS is {hls_duration:?} s of 5 s"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_publisher_gets_hls_and_a_recording() -> Result<()> {
    single_track(false, true, &["aac"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_only_publisher_gets_hls_and_a_recording() -> Result<()> {
    single_track(true, false, &["h264"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_keyframe_interval_is_accepted_and_reported_in_health() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    // 6 s keyframes against the 2 s segment target (OBS users often leave it on "auto").
    let publish = Publish {
        gop: 180,
        ..Publish::small(13.0)
    };
    let publisher = publish.spawn(&server.publish_url(&stream))?;
    let api = server.api.clone();
    let token = server.demo_token.clone();
    let health = wait_for("keyframe interval in health", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        v["health"]["video"]["keyframe_interval_s"]
            .as_f64()
            .map(|_| v["health"].clone())
    })
    .await?;
    assert_eq!(health["video"]["keyframe_interval_s"], 6.0, "{health}");
    assert!(
        health["warnings"]
            .to_string()
            .contains("keyframe interval is 6.0 s"),
        "{health}"
    );
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    server.api.recording_ready(&token, &id).await?;
    let (_, vod) = server
        .api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), Some(&token))
        .await?;
    assert!(
        vod.contains("#EXT-X-TARGETDURATION:6"),
        "segments follow the publisher's keyframes: {vod}"
    );
    assert!((playlist_duration(&vod) - 13.0).abs() < 0.5, "{vod}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_end_disconnects_the_publisher_and_finalises() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let api = server.api.clone();
    let token = server.demo_token.clone();
    let publisher = Publish::small(60.0).spawn(&server.publish_url(&stream))?;
    api.playlist_with_segments(
        &media_url(stream["playback"]["hls"].as_str().unwrap()).replace("localhost", "127.0.0.1"),
        2,
    )
    .await?;
    api.end_stream(&token, &id).await?;
    let (_exit, _) = finish(publisher, Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("publisher still connected: {e}"))?;
    let rec = api.recording_ready(&token, &id).await?;
    assert!(rec["duration_s"].as_f64().unwrap() >= 3.5, "{rec}");
    let (_, vod) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), Some(&token))
        .await?;
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    // The key is single-use: publishing again is refused.
    let (status, _) = finish(
        Publish::small(2.0).spawn(&server.publish_url(&stream))?,
        DEADLINE,
    )
    .await?;
    assert!(!status.success(), "an ended stream's key is refused");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_that_sends_no_media_leaves_the_stream_ready_for_the_next_attempt() -> Result<()>
{
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let url = server.publish_url(&stream);
    // Headers and metadata, then a clean disconnect without a single frame (like a connection test).
    let (_, _) = finish(Publish::small(0.0).spawn(&url)?, DEADLINE).await?;
    let api = server.api.clone();
    let token = server.demo_token.clone();
    wait_for("stream back to ready", DEADLINE, || async {
        let v = api.stream(&token, &id).await.ok()?;
        let (_, metrics) = api.get_text("/metrics", None).await.ok()?;
        (v["state"] == "ready" && metrics.contains("livefront_live_streams 0")).then_some(())
    })
    .await?;
    let (status, stderr) = finish(Publish::small(3.0).spawn(&url)?, DEADLINE).await?;
    assert!(status.success(), "the key still works: {stderr}");
    let rec = api.recording_ready(&token, &id).await?;
    assert!(
        (rec["duration_s"].as_f64().unwrap() - 3.0).abs() < 0.5,
        "{rec}"
    );
    server.stop().await;
    Ok(())
}
