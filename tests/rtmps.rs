//! RTMPS ingest (`rtmp.tls_addr`): RTMP over TLS on its own port, with a certificate the test
//! makes the way an operator would (openssl). Real publishers: ffmpeg and GStreamer's
//! `rtmp2sink` over `rtmps://`; the media plays as from plain RTMP.
mod common;

use anyhow::{Context, Result};
use common::*;
use serde_json::Value;

async fn start_with_rtmps(certs: &std::path::Path) -> Result<Server> {
    let (cert, key) = self_signed_certificate(certs).await?;
    Server::start_with(|c| {
        c.rtmp.tls_addr = Some("127.0.0.1:0".parse().unwrap());
        c.rtmp.tls_cert = Some(cert);
        c.rtmp.tls_key = Some(key);
    })
    .await
}

fn rtmps_url(stream: &Value) -> Result<String> {
    Ok(stream["ingest"]["rtmps"]
        .as_str()
        .context("the owner sees ingest.rtmps")?
        .replace("localhost", "127.0.0.1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmps_and_the_stream_plays_and_records() -> Result<()> {
    let certs = tempfile::tempdir()?;
    let mut server = start_with_rtmps(certs.path()).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().context("id")?.to_string();
    api.set_mode(&token, &id, "public").await?;
    let stream = api.stream(&token, &id).await?;
    let url = rtmps_url(&stream)?;
    assert!(url.starts_with("rtmps://127.0.0.1:"), "{url}");
    assert_eq!(
        stream["ingest"]["rtmps_server"]
            .as_str()
            .map(|s| s.replace("localhost", "127.0.0.1")),
        Some(url.rsplit_once('/').context("key")?.0.to_string()),
        "{stream}"
    );

    let publisher = Publish::small(5.0).spawn(&url)?;
    let playlist = api
        .playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    assert!(playlist.contains("#EXTINF"), "{playlist}");
    let (status, err) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "ffmpeg over rtmps: {err}");
    api.end_stream_after_publish(&token, &id).await?;
    let rec = api.recording_ready(&token, &id).await?;
    let duration = rec["duration_s"].as_f64().context("duration")?;
    assert!(duration > 3.5, "{rec}");
    let file = server
        .data_dir()
        .join(format!("streams/{id}/recording.mp4"));
    let (codecs, _) = probe(file.to_str().context("path")?).await?;
    assert_eq!(codecs, ["h264", "aac"]);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_publishes_over_rtmps() -> Result<()> {
    let certs = tempfile::tempdir()?;
    let mut server = start_with_rtmps(certs.path()).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().context("id")?.to_string();
    api.set_mode(&token, &id, "public").await?;
    let url = rtmps_url(&api.stream(&token, &id).await?)?;
    // The test's certificate is self-signed: the sink is told not to validate it.
    let pipeline = format!(
        "videotestsrc num-buffers=90 is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=30 ! h264parse ! flvmux name=m streamable=true \
         ! rtmp2sink location={url} tls-validation-flags=0 \
         audiotestsrc num-buffers=140 is-live=true ! audioconvert ! avenc_aac ! aacparse ! m."
    );
    let args: Vec<&str> = pipeline.split_whitespace().collect();
    let mut command = vec!["-q", "-e"];
    command.extend(args);
    let out = run("gst-launch-1.0", &command, DEADLINE).await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let playlist = api
        .playlist_with_segments(&format!("/hls/{id}/source/event.m3u8"), 1)
        .await?;
    assert!(playlist.contains("#EXTINF"), "{playlist}");
    server.stop().await;
    Ok(())
}

/// What a stranger can do with the RTMPS port: plain RTMP, a wrong key, or a socket that never
/// starts TLS get a clear end, and a real publisher still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_refuses_plain_rtmp_wrong_keys_and_silent_sockets() -> Result<()> {
    let certs = tempfile::tempdir()?;
    let mut server = start_with_rtmps(certs.path()).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().context("id")?.to_string();
    api.set_mode(&token, &id, "public").await?;
    let url = rtmps_url(&api.stream(&token, &id).await?)?;
    let port: u16 = url
        .trim_start_matches("rtmps://127.0.0.1:")
        .split('/')
        .next()
        .context("port")?
        .parse()?;

    // Sockets that connect and never start TLS hold nothing for good.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await?);
    }
    // Plain RTMP on the TLS port: ffmpeg fails instead of hanging.
    let plain = url.replacen("rtmps://", "rtmp://", 1);
    let (status, _) = finish(Publish::small(2.0).spawn(&plain)?, DEADLINE).await?;
    assert!(
        !status.success(),
        "plain RTMP on the RTMPS port is not let in"
    );
    // A wrong key over TLS is refused like over RTMP.
    let wrong = format!(
        "{}/lf_not_a_key_at_all_000000",
        url.rsplit_once('/').unwrap().0
    );
    let (status, _) = finish(Publish::small(2.0).spawn(&wrong)?, DEADLINE).await?;
    assert!(!status.success(), "a wrong key is refused");
    let v = api.stream(&token, &id).await?;
    assert_ne!(v["state"], "live", "{v}");

    // The real publisher gets in while the silent sockets are still open.
    let publisher = Publish::small(3.0).spawn(&url)?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    let (status, err) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "{err}");
    drop(silent);
    server.stop().await;
    Ok(())
}
