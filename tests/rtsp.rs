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
    let unknown = format!(
        "{}/live/nosuchstream0000",
        url.split("/live/").next().unwrap()
    );
    assert!(probe_rtsp_refused(&unknown).await?.contains("404"));

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

/// An RTSP player that reads until the server closes the connection.
fn rtsp_viewer(url: &str) -> Result<tokio::process::Child> {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args([
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("ffmpeg")
}

/// Waits until an RTSP player is reading (the server counts it as a viewer of the stream).
async fn playing(viewer: &mut tokio::process::Child, url: &str) -> Result<()> {
    // ffprobe on the same URL answers once the mount serves media; the viewer started earlier.
    probe_rtsp(url).await?;
    anyhow::ensure!(viewer.try_wait()?.is_none(), "the viewer of {url} stopped");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_viewers_of_a_public_stream_are_disconnected_when_it_is_hidden() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let signed = rtsp_url(&stream);
    let plain = signed.split('?').next().unwrap().to_string();
    let _publisher = Publish::small(60.0).spawn(&server.publish_url(&stream))?;
    api.set_mode(&token, &id, "public").await?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;

    // A stranger and the owner (signed URL) watch; back to practice: the stranger is cut off at
    // once (the stream is still live), the owner goes on.
    let mut stranger = rtsp_viewer(&plain)?;
    let mut owner = rtsp_viewer(&signed)?;
    playing(&mut stranger, &plain).await?;
    playing(&mut owner, &signed).await?;
    let switched = std::time::Instant::now();
    api.set_mode(&token, &id, "practice").await?;
    finish(stranger, DEADLINE)
        .await
        .context("the stranger kept watching a practice stream")?;
    tracing::info!(after = ?switched.elapsed(), "stranger disconnected");
    assert!(owner.try_wait()?.is_none(), "the owner's viewer goes on");
    assert!(probe_rtsp_refused(&plain).await?.contains("404"));
    assert_eq!(
        stream_state(&api, &token, &id).await.as_deref(),
        Some("live")
    );

    // Public again, a stranger watches; a takedown cuts them off too.
    api.set_mode(&token, &id, "public").await?;
    let mut stranger = rtsp_viewer(&plain)?;
    playing(&mut stranger, &plain).await?;
    let (status, v) = api
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/admin/streams/{id}/takedown"),
            Some(ADMIN_TOKEN),
            Some(json!({"reason": "x", "policy": "spam"})),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    finish(stranger, DEADLINE)
        .await
        .context("the stranger kept watching a stream taken down")?;
    assert!(probe_rtsp_refused(&signed).await?.contains("404"));
    drop(owner);
    server.stop().await;
    Ok(())
}

const CAMERA_USER: &str = "camuser7";
const CAMERA_PASSWORD: &str = "pw-Kq93xZt1";
const WRONG_PASSWORD: &str = "pw-wrong-Zz81";
const CAMERA_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/rtsp_camera.py");

/// A stand-in IP camera: GStreamer's RTSP server with Basic auth, killed when dropped.
struct Camera {
    child: tokio::process::Child,
    port: u16,
}

impl Camera {
    /// Starts on `port` (0: any free port) with H.264 and AAC.
    async fn start(port: u16) -> Result<Camera> {
        Camera::start_with(port, &[]).await
    }

    /// Starts with extra options of the camera script (`--no-audio`).
    async fn start_with(port: u16, options: &[&str]) -> Result<Camera> {
        use tokio::io::AsyncBufReadExt;
        let mut child = Command::new(SYSTEM_PYTHON)
            .arg(CAMERA_SCRIPT)
            .args([&port.to_string(), CAMERA_USER, CAMERA_PASSWORD])
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("/usr/bin/python3 is required (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0)")?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .context("camera start")??
            .context("the camera exited (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0)")?;
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("camera said {line:?}"))?;
        Ok(Camera { child, port })
    }

    fn url(&self) -> String {
        format!(
            "rtsp://{CAMERA_USER}:{CAMERA_PASSWORD}@127.0.0.1:{}/cam",
            self.port
        )
    }

    async fn kill(mut self) -> Result<u16> {
        self.child.kill().await?;
        Ok(self.port)
    }
}

async fn stream_state(api: &Api, token: &str, id: &str) -> Option<String> {
    let (status, v) = api
        .get(&format!("/api/v1/streams/{id}"), Some(token))
        .await
        .ok()?;
    (status == 200).then(|| v["state"].as_str().unwrap_or_default().to_string())
}

async fn wait_state(api: &Api, token: &str, id: &str, want: &str) -> Result<()> {
    wait_for(&format!("stream {id} {want}"), DEADLINE, || async {
        (stream_state(api, token, id).await.as_deref() == Some(want)).then_some(())
    })
    .await
}

/// The livefront binary with its log (debug level) in `log`, for checks on what it logs.
async fn start_logged(
    data_dir: &std::path::Path,
    log: &std::path::Path,
) -> Result<(tokio::process::Child, Api)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_livefront"))
        .arg("serve")
        .env("LIVEFRONT_DATA_DIR", data_dir)
        .env("LIVEFRONT_HTTP_ADDR", "127.0.0.1:0")
        .env("LIVEFRONT_RTMP_ADDR", "127.0.0.1:0")
        .env("LIVEFRONT_RTSP_ADDR", "127.0.0.1:0")
        .env("LIVEFRONT_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("LIVEFRONT_CONFIG", "/dev/null")
        .env("LIVEFRONT_LADDER", "passthrough")
        .env("LIVEFRONT_RTSP_ALLOW_PRIVATE", "true")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let http = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await? {
            if let ["HTTP", "API", url, ..] = line.split_whitespace().collect::<Vec<_>>()[..] {
                return anyhow::Ok(url.replace("localhost", "127.0.0.1"));
            }
        }
        anyhow::bail!("no HTTP line in the banner")
    })
    .await
    .context("server banner")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, Api::new(&http)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_is_pulled_into_hls_without_its_password_showing_anywhere() -> Result<()> {
    let camera = Camera::start(0).await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");
    let (mut server, api) = start_logged(dir.path(), &log).await?;
    let token = api.create_creator("cam_owner").await?;
    let (status, created) = api
        .request(
            reqwest::Method::POST,
            "/api/v1/streams",
            Some(&token),
            Some(json!({"title": "shop camera", "mode": "public",
                        "source": {"url": camera.url(), "transport": "tcp"}})),
        )
        .await?;
    anyhow::ensure!(status == 201, "create: {status} {created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        created["source"],
        json!({"url": format!("rtsp://{CAMERA_USER}@127.0.0.1:{}/cam", camera.port), "transport": "tcp"})
    );

    wait_state(&api, &token, &id, "live").await?;
    // A wrong password: the camera refuses, the pull retries; neither shows in the logs.
    let wrong = camera.url().replace(CAMERA_PASSWORD, WRONG_PASSWORD);
    let refused = create(
        &api,
        &token,
        json!({"title": "wrong", "source": {"url": wrong}}),
    )
    .await?;
    let refused_id = refused["id"].as_str().unwrap().to_string();
    wait_for("a refused pull in the log", DEADLINE, || async {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("camera not available")
            .then_some(())
    })
    .await?;
    assert_eq!(
        stream_state(&api, &token, &refused_id).await.as_deref(),
        Some("ready")
    );
    let master = format!("/hls/{id}/master.m3u8");
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 2)
        .await?;
    let (codecs, _) = probe(&api.url(&master)).await?;
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );
    let live = api.stream(&token, &id).await?;
    assert_eq!(live["health"]["video"]["width"], 320, "{live}");
    // The pulled stream is served over RTSP like any other.
    let streams = probe_rtsp(&rtsp_url(&live).replace("localhost", "127.0.0.1")).await?;
    assert!(
        streams.contains(&("h264".into(), Some(320), Some(240))),
        "{streams:?}"
    );

    let ended = api.end_stream(&token, &id).await?;
    wait_state(&api, &token, &id, "ended").await?;
    api.recording_ready(&token, &id).await?;
    let (_, text) = api
        .get_text(&format!("/api/v1/streams/{id}"), Some(&token))
        .await?;
    for body in [created.to_string(), ended.to_string(), text] {
        assert!(!body.contains(CAMERA_PASSWORD), "{body}");
    }

    // The pull stopped with the end: the camera has no client left after a while, and the
    // server stops cleanly.
    signal(&server, "TERM")?;
    let status = tokio::time::timeout(DEADLINE, server.wait()).await??;
    assert!(status.success(), "{status}");
    let port = camera.kill().await?;
    let logged = std::fs::read_to_string(&log)?;
    assert!(
        logged.contains(&format!("rtsp://127.0.0.1:{port}/cam")),
        "the source is logged, without credentials"
    );
    assert!(!logged.contains(CAMERA_PASSWORD), "password in the log");
    assert!(
        !logged.contains(WRONG_PASSWORD),
        "wrong password in the log"
    );
    assert!(!logged.contains(CAMERA_USER), "user name in the log");
    Ok(())
}

fn signal(child: &tokio::process::Child, signal: &str) -> Result<()> {
    let pid = child.id().context("running")?;
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid}");
    Ok(())
}

async fn create_pulled(api: &Api, token: &str, url: &str) -> Result<String> {
    let v = create(
        api,
        token,
        json!({"title": "camera", "mode": "public", "source": {"url": url}}),
    )
    .await?;
    Ok(v["id"].as_str().context("id")?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_that_is_down_is_retried_until_it_comes_back_on_its_port() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let camera = Camera::start(0).await?;
    let url = camera.url();
    let port = camera.kill().await?;
    let id = create_pulled(&api, &token, &url).await?;
    assert_eq!(
        stream_state(&api, &token, &id).await.as_deref(),
        Some("ready")
    );
    let camera = Camera::start(port).await?;
    wait_state(&api, &token, &id, "live").await?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    server.stop().await;
    camera.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_lost_for_longer_than_the_grace_ends_the_stream() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let camera = Camera::start(0).await?;
    let id = create_pulled(&api, &token, &camera.url()).await?;
    wait_state(&api, &token, &id, "live").await?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    camera.kill().await?;
    // Lost (no more media, or the connection closed) and not back within the grace (2 s in tests):
    // the stream ends and is finalised; its ended key refuses the next authorize, so the pull stops.
    wait_state(&api, &token, &id, "ended").await?;
    api.recording_ready(&token, &id).await?;
    let (_, vod) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), None)
        .await?;
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    server.stop().await;
    Ok(())
}

/// Restarts the camera of live pulled stream `id` on its port and checks that the pull comes back
/// within the grace into the same session: the stream stays live, the playlist goes on after a
/// discontinuity. Returns the restarted camera.
async fn restart_into_the_same_session(
    api: &Api,
    token: &str,
    id: &str,
    camera: Camera,
) -> Result<Camera> {
    let media = format!("/hls/{id}/source/index.m3u8");
    let port = camera.kill().await?;
    let camera = Camera::start(port).await?;
    let before = api
        .get_text(&media, None)
        .await?
        .1
        .matches("#EXTINF")
        .count();
    let after = api.playlist_with_segments(&media, before + 2).await?;
    assert_eq!(stream_state(api, token, id).await.as_deref(), Some("live"));
    let (_, event) = api
        .get_text(&format!("/hls/{id}/source/event.m3u8"), None)
        .await?;
    assert!(
        event.contains("#EXT-X-DISCONTINUITY"),
        "the camera's comeback is a discontinuity in the same playlist: {event}\n{after}"
    );
    Ok(camera)
}

/// The pull reconnects within `ingest.reconnect_grace` and the same session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_that_comes_back_within_the_grace_continues_the_same_session() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = std::time::Duration::from_secs(30))
            .await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let camera = Camera::start(0).await?;
    let id = create_pulled(&api, &token, &camera.url()).await?;
    wait_state(&api, &token, &id, "live").await?;
    let media = format!("/hls/{id}/source/index.m3u8");
    api.playlist_with_segments(&media, 2).await?;
    let camera = restart_into_the_same_session(&api, &token, &id, camera).await?;
    server.stop().await;
    camera.kill().await?;
    Ok(())
}

/// Rotating the key of a pulled stream leaves the pull alone: the server pulls by the stream's id,
/// not its key, so a camera restarted after the rotation is pulled again into the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_of_a_pulled_stream_keeps_the_pull() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = std::time::Duration::from_secs(30))
            .await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let camera = Camera::start(0).await?;
    let id = create_pulled(&api, &token, &camera.url()).await?;
    wait_state(&api, &token, &id, "live").await?;
    let media = format!("/hls/{id}/source/index.m3u8");
    api.playlist_with_segments(&media, 1).await?;
    let (status, v) = api
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/streams/{id}/key"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    let camera = restart_into_the_same_session(&api, &token, &id, camera).await?;
    server.stop().await;
    camera.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_stream_is_pulled_again_after_a_server_restart() -> Result<()> {
    let camera = Camera::start(0).await?;
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = create_pulled(&api, &token, &camera.url()).await?;
    wait_state(&api, &token, &id, "live").await?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    server.stop().await;

    let event = format!("/hls/{id}/source/event.m3u8");
    let before = std::fs::read_to_string(
        server
            .data_dir()
            .join(format!("streams/{id}/hls/source/event.m3u8")),
    )?;
    let n1 = before.matches("#EXTINF").count();

    let app = livefront::app::App::start(test_config(&server.data_dir())).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    wait_state(&api, &token, &id, "live").await?;
    // The new session continues the playlist: the old segments stay, numbering goes on.
    let after = api.playlist_with_segments(&event, n1 + 1).await?;
    assert!(after.contains("#EXT-X-DISCONTINUITY"), "{after}");
    let uris: Vec<&str> = after.lines().filter(|l| l.ends_with(".ts")).collect();
    let unique: std::collections::HashSet<&str> = uris.iter().copied().collect();
    assert_eq!(
        unique.len(),
        uris.len(),
        "no segment overwritten or listed twice: {after}"
    );
    api.end_stream(&token, &id).await?;
    wait_state(&api, &token, &id, "ended").await?;
    api.recording_ready(&token, &id).await?;
    let dir = server.data_dir().join(format!("streams/{id}"));
    assert!(
        dir.join("recording-part1.mp4").exists() && dir.join("recording.mp4").exists(),
        "the first session's recording is kept beside the second's"
    );
    app.stop().await;

    // Ended streams are not pulled again.
    let app = livefront::app::App::start(test_config(&server.data_dir())).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    assert_eq!(
        stream_state(&api, &token, &id).await.as_deref(),
        Some("ended")
    );
    app.stop().await;
    camera.kill().await?;
    Ok(())
}

/// One stream's slow disk never holds up another's publish: the pulled stream's previous playlist
/// is replaced by a FIFO nobody writes (a read that hangs, as on a dying disk), so its restore
/// blocks when it is pulled again after a restart; meanwhile another stream publishes and goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_restore_hangs_does_not_hold_up_another_publish() -> Result<()> {
    let camera = Camera::start(0).await?;
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let demo = server.demo_stream.clone();
    let id = create_pulled(&api, &token, &camera.url()).await?;
    wait_state(&api, &token, &id, "live").await?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    server.stop().await;

    let playlist = server
        .data_dir()
        .join(format!("streams/{id}/hls/source/event.m3u8"));
    std::fs::remove_file(&playlist)?;
    let status = std::process::Command::new("mkfifo")
        .arg(&playlist)
        .status()?;
    anyhow::ensure!(status.success(), "mkfifo");

    let app = livefront::app::App::start(test_config(&server.data_dir())).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    let key = server.publish_url(&demo);
    let key = key.rsplit('/').next().context("key")?;
    let url = format!("rtmp://127.0.0.1:{}/live/{key}", app.rtmp_addr.port());
    let publisher = Publish::small(30.0).spawn(&url)?;
    let demo_id = demo["id"].as_str().context("id")?;
    wait_state(&api, &token, demo_id, "live").await?;
    assert_eq!(
        stream_state(&api, &token, &id).await.as_deref(),
        Some("ready"),
        "the pulled stream is still restoring"
    );
    // The disk answers at last (an empty playlist): the restore goes on and the pull with it.
    std::fs::OpenOptions::new().write(true).open(&playlist)?;
    wait_state(&api, &token, &id, "live").await?;
    app.stop().await;
    finish(publisher, DEADLINE).await.ok();
    camera.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_pulled_over_udp_goes_live() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let camera = Camera::start(0).await?;
    let v = create(
        &api,
        &token,
        json!({"title": "udp camera", "source": {"url": camera.url(), "transport": "udp"}}),
    )
    .await?;
    assert_eq!(v["source"]["transport"], "udp");
    let id = v["id"].as_str().unwrap().to_string();
    wait_state(&api, &token, &id, "live").await?;
    api.playlist_with_segments(
        &format!(
            "/hls/{id}/source/index.m3u8?{}",
            rtsp_url(&v).split('?').nth(1).unwrap()
        ),
        1,
    )
    .await?;
    server.stop().await;
    camera.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_are_not_rtsp_urls_are_refused() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    for source in [
        json!({"url": "http://camera/stream"}),
        json!({"url": "rtsp://"}),
        json!({"url": "rtsp://cam/x", "transport": "sctp"}),
    ] {
        let (status, v) = api
            .request(
                reqwest::Method::POST,
                "/api/v1/streams",
                Some(&token),
                Some(json!({"title": "bad", "source": source})),
            )
            .await?;
        assert_eq!(status, 400, "{source}: {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_without_audio_goes_live_with_video_only() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let camera = Camera::start_with(0, &["--no-audio"]).await?;
    let id = create_pulled(&api, &token, &camera.url()).await?;
    wait_state(&api, &token, &id, "live").await?;
    api.playlist_with_segments(&format!("/hls/{id}/ll/source/index.m3u8"), 1)
        .await?;
    let (codecs, _) = probe(&api.url(&format!("/hls/{id}/master.m3u8"))).await?;
    assert_eq!(codecs, ["h264"]);
    server.stop().await;
    camera.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_stream_is_pulled_again_after_a_crash() -> Result<()> {
    let camera = Camera::start(0).await?;
    let dir = tempfile::tempdir()?;
    let (mut server, api) = start_logged(dir.path(), &dir.path().join("first.log")).await?;
    let token = api.create_creator("crash_owner").await?;
    let id = create_pulled(&api, &token, &camera.url()).await?;
    wait_state(&api, &token, &id, "live").await?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    signal(&server, "KILL")?;
    server.wait().await?;

    let (mut server, api) = start_logged(dir.path(), &dir.path().join("second.log")).await?;
    // Recovery finalises the crashed session, then the pull starts a new one.
    wait_state(&api, &token, &id, "live").await?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    signal(&server, "TERM")?;
    let status = tokio::time::timeout(DEADLINE, server.wait()).await??;
    assert!(status.success(), "{status}");
    camera.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_that_stops_sending_media_is_lost_after_the_idle_timeout() -> Result<()> {
    // A camera whose media ends while its RTSP session (and RTCP) stays up: GStreamer's RTSP server
    // serving a short file. Without a reconnect grace the loss ends the stream (with one, the
    // camera would come back and play its file again).
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = std::time::Duration::ZERO).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let file = server.data_dir().join("short.mp4");
    let out = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            "0",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            file.to_str().unwrap(),
        ],
        DEADLINE,
    )
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let camera = Camera::start_with(0, &["--file", file.to_str().unwrap()]).await?;
    let id = create_pulled(&api, &token, &camera.url()).await?;
    wait_state(&api, &token, &id, "live").await?;
    wait_state(&api, &token, &id, "ended").await?;
    let rec = api.recording_ready(&token, &id).await?;
    assert!(
        rec["duration_s"].as_f64().unwrap_or_default() > 2.0,
        "{rec}"
    );
    server.stop().await;
    camera.kill().await?;
    Ok(())
}
