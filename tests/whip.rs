//! WHIP ingest (RFC 9725) with a real WebRTC publisher: GStreamer's webrtcbin in
//! `tests/whip/publish.py` sends H.264 or VP8 with Opus; the stream plays as HLS (ffprobe) and
//! its recording has both tracks. Refusals happen before any WebRTC work.
mod common;

use anyhow::{Context, Result, ensure};
use common::*;
use reqwest::Method;
use serde_json::Value;
use std::process::Stdio;
use tokio::process::{Child, Command};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/whip/publish.py");

/// A stream of the demo creator, public or practice.
async fn create(server: &Server, title: &str, mode: &str) -> Result<Value> {
    let stream = server.api.create_stream(&server.demo_token, title).await?;
    let id = stream["id"].as_str().context("id")?;
    server.api.set_mode(&server.demo_token, id, mode).await?;
    server.api.stream(&server.demo_token, id).await
}

fn whip_url(stream: &Value) -> String {
    stream["ingest"]["whip"]
        .as_str()
        .expect("owner sees ingest")
        .replace("localhost", "127.0.0.1")
}

fn publisher(url: &str, key: &str, seconds: f64, codec: &str, delete: bool) -> Result<Child> {
    let seconds = seconds.to_string();
    let mut args = vec![CLIENT, url, key, "--seconds", &seconds, "--codec", codec];
    if delete {
        args.push("--delete");
    }
    Command::new(SYSTEM_PYTHON)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context(
            "/usr/bin/python3 is required (apt-get install python3-gi gir1.2-gst-plugins-bad-1.0)",
        )
}

async fn finished(child: Child) -> Result<String> {
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .context("the WHIP publisher did not finish")??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "WHIP publisher failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

async fn assert_plays_as_h264_and_aac(server: &Server, stream: &Value) -> Result<()> {
    let id = stream["id"].as_str().context("id")?;
    let token = &server.demo_token;
    let live = wait_for("the WHIP stream live with a playlist", DEADLINE, || async {
        let v = server.api.stream(token, id).await.ok()?;
        (v["state"] == "live" && v["playback"]["ready"] == true).then_some(v)
    })
    .await?;
    let media = media_url(live["playback"]["hls"].as_str().context("hls")?);
    server.api.playlist_with_segments(&media, 1).await?;
    // On a loaded machine the first segment may close before the video branch has its first
    // keyframe (audio only): the live edge that a player joins later has both.
    let seen = std::sync::Mutex::new(Vec::new());
    let both = wait_for("H.264 and AAC in the live HLS", DEADLINE, || async {
        let (codecs, _) = probe(&media).await.ok()?;
        let both = codecs.contains(&"h264".into()) && codecs.contains(&"aac".into());
        seen.lock().unwrap().push(codecs);
        both.then_some(())
    })
    .await;
    ensure!(
        both.is_ok(),
        "HLS of a WHIP publish: {:?}",
        seen.lock().unwrap()
    );
    Ok(())
}

/// While publishing, the owner's health has a `whip` block with webrtcbin's figures.
async fn assert_webrtc_health(server: &Server, id: &str) -> Result<()> {
    let whip = wait_for("WebRTC figures in health", DEADLINE, || async {
        let v = server.api.stream(&server.demo_token, id).await.ok()?;
        let w = v["health"]["whip"].clone();
        (w["bitrate_kbps"].as_f64()? > 0.0).then_some(w)
    })
    .await?;
    eprintln!("health.whip while publishing: {whip}");
    let number = |k: &str| whip[k].as_f64().with_context(|| format!("{k} in {whip}"));
    // A test publisher on loopback: a few hundred kb/s, no loss to speak of, little jitter.
    ensure!(number("bitrate_kbps")? < 50_000.0, "{whip}");
    ensure!(whip["packets_received"].as_u64() > Some(100), "{whip}");
    ensure!((0.0..=100.0).contains(&number("loss_pct")?), "{whip}");
    ensure!((0.0..1000.0).contains(&number("jitter_ms")?), "{whip}");
    ensure!(
        whip["rtt_ms"].is_null() || (0.0..1000.0).contains(&number("rtt_ms")?),
        "{whip}"
    );
    // Other protocols' blocks stay away.
    let v = server.api.stream(&server.demo_token, id).await?;
    ensure!(v["health"].get("srt").is_none(), "{v}");
    Ok(())
}

async fn assert_recording_has_both_tracks(server: &Server, id: &str) -> Result<()> {
    let rec = server.api.recording_ready(&server.demo_token, id).await?;
    let url = rec["download_url"]
        .as_str()
        .context("download_url")?
        .replace("localhost", "127.0.0.1");
    let (codecs, duration) = probe(&url).await?;
    ensure!(
        codecs.contains(&"h264".into()) && codecs.contains(&"aac".into()),
        "recording of a WHIP publish: {codecs:?}"
    );
    ensure!(
        duration.unwrap_or(0.0) > 2.0,
        "recording duration {duration:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_opus_over_whip_play_as_hls_and_delete_ends_the_publish() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = create(&server, "Phone", "public").await?;
    let (id, key) = (
        stream["id"].as_str().context("id")?,
        stream["stream_key"].as_str().context("key")?,
    );
    let child = publisher(&whip_url(&stream), key, 8.0, "h264", true)?;
    assert_plays_as_h264_and_aac(&server, &stream).await?;
    assert_webrtc_health(&server, id).await?;
    let out = finished(child).await?;
    ensure!(out.contains("status=201"), "{out}");
    ensure!(out.contains("deleted=200"), "DELETE of the session: {out}");
    // The DELETE ended the publish like an unpublish: the stream waits out its reconnect grace
    // (2 s in tests), then ends, and the recording holds both tracks.
    wait_for("the stream ended", DEADLINE, || async {
        let v = server.api.stream(&server.demo_token, id).await.ok()?;
        (v["state"] == "ended").then_some(())
    })
    .await?;
    assert_recording_has_both_tracks(&server, id).await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_from_a_browser_like_publisher_is_transcoded_to_h264() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = create(&server, "Browser", "public").await?;
    let key = stream["stream_key"].as_str().context("key")?;
    let child = publisher(&whip_url(&stream), key, 8.0, "vp8", true)?;
    assert_plays_as_h264_and_aac(&server, &stream).await?;
    finished(child).await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_before_any_webrtc_work() -> Result<()> {
    let mut server = Server::start().await?;
    let a = create(&server, "A", "public").await?;
    let b = create(&server, "B", "public").await?;
    let (url_a, key_a, key_b) = (
        whip_url(&a),
        a["stream_key"].as_str().context("key")?.to_string(),
        b["stream_key"].as_str().context("key")?.to_string(),
    );
    let http = reqwest::Client::new();
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
                 m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n";
    let post = |url: String, key: Option<String>, ctype: &'static str, body: String| {
        let mut req = http.post(url).header("content-type", ctype).body(body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        async move {
            let resp = req.send().await?;
            let cors = resp
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap_or("").to_string());
            anyhow::Ok((resp.status().as_u16(), cors, resp.text().await?))
        }
    };
    // No key, another stream's key, a made-up key: 401, with CORS so a page sees why.
    for key in [None, Some(key_b.clone()), Some("lf_madeup".to_string())] {
        let (status, cors, body) =
            post(url_a.clone(), key.clone(), "application/sdp", offer.into()).await?;
        ensure!(status == 401, "key {key:?}: {status} {body}");
        ensure!(cors.as_deref() == Some("*"), "CORS on a refusal: {cors:?}");
    }
    // An unknown stream answers like a wrong key: nobody learns which streams exist.
    let unknown = url_a.replace(a["id"].as_str().unwrap(), "nosuchstream");
    let (status, _, _) = post(
        unknown,
        Some(key_a.clone()),
        "application/sdp",
        offer.into(),
    )
    .await?;
    ensure!(status == 401, "unknown stream: {status}");
    // Not SDP, too large, not an offer, no codec we take.
    let (status, _, _) = post(
        url_a.clone(),
        Some(key_a.clone()),
        "application/json",
        "{}".into(),
    )
    .await?;
    ensure!(status == 415, "JSON body: {status}");
    let huge = format!("{offer}{}", "a=x\r\n".repeat(20_000));
    let (status, _, _) = post(url_a.clone(), Some(key_a.clone()), "application/sdp", huge).await?;
    ensure!(status == 413, "a 100 KB offer: {status}");
    let (status, _, body) = post(
        url_a.clone(),
        Some(key_a.clone()),
        "application/sdp",
        "garbage".into(),
    )
    .await?;
    ensure!(status == 400, "garbage: {status} {body}");
    let av1 = offer.replace("VP8", "AV1");
    let (status, _, body) =
        post(url_a.clone(), Some(key_a.clone()), "application/sdp", av1).await?;
    ensure!(
        status == 400 && body.contains("H.264"),
        "AV1 only: {status} {body}"
    );
    // None of it made the stream live or reserved it.
    let v = server
        .api
        .stream(&server.demo_token, a["id"].as_str().unwrap())
        .await?;
    ensure!(v["state"] != "live", "{v}");
    // The preflight a browser sends first.
    let resp = http
        .request(Method::OPTIONS, &url_a)
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    ensure!(resp.status() == 204, "preflight: {}", resp.status());
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()?
        .to_lowercase();
    ensure!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    // PATCH (trickle ICE) is not supported; a DELETE of a session that does not exist is 404.
    let session = format!("{url_a}/nosuchsession");
    let resp = http.patch(&session).bearer_auth(&key_a).send().await?;
    ensure!(resp.status() == 405, "PATCH: {}", resp.status());
    let resp = http.delete(&session).bearer_auth(&key_a).send().await?;
    ensure!(resp.status() == 404, "DELETE of nothing: {}", resp.status());
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_whip_publisher_is_refused_and_only_the_key_ends_a_session() -> Result<()> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut server = Server::start().await?;
    let stream = create(&server, "Once", "practice").await?;
    let other = create(&server, "Other", "practice").await?;
    let (id, key, other_key) = (
        stream["id"].as_str().context("id")?,
        stream["stream_key"].as_str().context("key")?,
        other["stream_key"].as_str().context("key")?,
    );
    let url = whip_url(&stream);
    let mut first = publisher(&url, key, 20.0, "h264", false)?;
    let mut lines = BufReader::new(first.stdout.take().context("stdout")?).lines();
    let location = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(l) = line.strip_prefix("location=") {
                return anyhow::Ok(l.to_string());
            }
        }
        anyhow::bail!("the publisher printed no location")
    })
    .await??;
    ensure!(location.contains(&format!("/whip/{id}/")), "{location}");
    wait_for("the first publisher live", DEADLINE, || async {
        let v = server.api.stream(&server.demo_token, id).await.ok()?;
        (v["state"] == "live" && !v["health"].is_null()).then_some(())
    })
    .await?;
    let second = finished_refused(publisher(&url, key, 2.0, "h264", false)?).await?;
    ensure!(
        second.contains("status=409"),
        "a second publisher: {second}"
    );
    // The session's URL alone, or with another stream's key, ends nothing.
    let http = reqwest::Client::new();
    let resp = http.delete(&location).send().await?;
    ensure!(
        resp.status() == 401,
        "DELETE without a key: {}",
        resp.status()
    );
    let resp = http.delete(&location).bearer_auth(other_key).send().await?;
    ensure!(
        resp.status() == 404,
        "DELETE with another key: {}",
        resp.status()
    );
    let v = server.api.stream(&server.demo_token, id).await?;
    ensure!(!v["health"].is_null(), "still publishing: {v}");
    // Its own key ends it at once, while the publisher still sends.
    let resp = http.delete(&location).bearer_auth(key).send().await?;
    ensure!(
        resp.status() == 200,
        "DELETE with the key: {}",
        resp.status()
    );
    wait_for("the publish over", DEADLINE, || async {
        let v = server.api.stream(&server.demo_token, id).await.ok()?;
        v["health"].is_null().then_some(())
    })
    .await?;
    first.kill().await?;
    server.stop().await;
    Ok(())
}

async fn finished_refused(child: Child) -> Result<String> {
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .context("the WHIP publisher did not finish")??;
    ensure!(
        out.status.code() == Some(3),
        "expected a refusal: {}",
        out.status
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
