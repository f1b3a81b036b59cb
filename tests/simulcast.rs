//! Simulcast (issue 21) with real receivers on loopback: nginx-rtmp (RTMP), nginx's `stream` TLS
//! in front of it (RTMPS) and srt-live-transmit (SRT). Only public media leaves; targets start
//! and stop one by one; a dead target is retried and comes back; HLS and the recording lose
//! nothing; destination keys appear in no response and no log line.
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use common::receivers::{Nginx, SrtListener};
use common::{DEADLINE, Publish, Server, probe, source_segments, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

const RTMP_KEY: &str = "rtmpkey_7f3a9c0e5b1d2468";
const RTMPS_KEY: &str = "tlskey_0c1d2e3f4a5b6789";
const SRT_KEY: &str = "srtkey_99887766554433aa";
const NEW_KEY: &str = "newkey_5a5b5c5d5e5f6061";
const KEYS: &[&str] = &[RTMP_KEY, RTMPS_KEY, SRT_KEY, NEW_KEY];

/// Every log line of the servers in this test binary, to grep for keys.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "livefront=debug,tower_http=debug,info,srt_protocol=error",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        captured
    })
}

fn assert_no_key(what: &str, text: &str) {
    for key in KEYS {
        assert!(!text.contains(key), "a destination key in {what}");
        assert!(
            !text.contains(&key[key.len() - 10..]),
            "part of a key in {what}"
        );
    }
}

async fn create_destination(server: &Server, token: &str, body: Value) -> Result<(u16, Value)> {
    let (status, v) = server
        .api
        .request(
            Method::POST,
            "/api/v1/me/destinations",
            Some(token),
            Some(body),
        )
        .await?;
    assert_no_key("a create response", &v.to_string());
    Ok((status, v))
}

async fn targets(server: &Server, token: &str, id: &str) -> Result<Vec<Value>> {
    let (status, v) = server
        .api
        .get(&format!("/api/v1/streams/{id}/destinations"), Some(token))
        .await?;
    anyhow::ensure!(status == 200, "{v}");
    assert_no_key("the stream's destinations", &v.to_string());
    Ok(v["destinations"].as_array().cloned().unwrap_or_default())
}

fn state_of<'a>(targets: &'a [Value], id: &str) -> Option<&'a str> {
    targets.iter().find(|t| t["id"] == id)?["state"].as_str()
}

async fn wait_state(
    server: &Server,
    token: &str,
    stream: &str,
    ids: &[&str],
    state: &str,
) -> Result<Vec<Value>> {
    wait_for(&format!("{ids:?} {state}"), DEADLINE, || async {
        let t = targets(server, token, stream).await.ok()?;
        ids.iter()
            .all(|id| state_of(&t, id) == Some(state))
            .then_some(t)
    })
    .await
}

fn bytes_of(targets: &[Value], id: &str) -> u64 {
    targets
        .iter()
        .find(|t| t["id"] == id)
        .and_then(|t| t["bytes"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn destinations_are_private_checked_and_bounded() -> Result<()> {
    logs();
    let mut server = Server::start().await?;
    let alice = server.demo_token.clone();
    let bob = server.api.create_creator("bob").await?;
    let public_ip = "rtmp://93.184.216.34/live2";
    // Created: the key comes back as its last four characters only.
    let (status, d) = create_destination(
        &server,
        &alice,
        json!({"name": "YouTube", "url": public_ip, "key": RTMP_KEY}),
    )
    .await?;
    assert_eq!(status, 201, "{d}");
    assert_eq!(d["key_last4"], &RTMP_KEY[RTMP_KEY.len() - 4..]);
    assert_eq!(d["has_key"], true);
    assert!(d.get("key").is_none() && d.get("key_sealed").is_none());
    let id = d["id"].as_str().unwrap().to_string();
    // Bad URLs and addresses the server must not push to (private addresses by default).
    for (url, why) in [
        ("http://93.184.216.34/live", "rtmp://"),
        ("file:///etc/passwd", "rtmp://"),
        ("rtmp://127.0.0.1:1935/live", "private"),
        ("rtmp://localhost/live", "private"),
        ("rtmps://10.0.0.8/live", "private"),
        ("srt://[::1]:9000", "private"),
        ("srt://93.184.216.34", "port"),
        ("rtmp://user:pw@93.184.216.34/live", "key"),
        ("not a url", "valid"),
    ] {
        let (status, v) =
            create_destination(&server, &alice, json!({"name": "x", "url": url})).await?;
        assert_eq!(status, 400, "{url}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(why),
            "{url}: {v}"
        );
    }
    for bad in [
        json!({"name": "", "url": public_ip}),
        json!({"name": "x", "url": public_ip, "key": "has space"}),
        json!({"name": "x", "url": public_ip, "rendition": "../x"}),
        json!({"name": "x", "url": public_ip, "extra": 1}),
    ] {
        let (status, _) = create_destination(&server, &alice, bad.clone()).await?;
        assert_eq!(status, 400, "{bad}");
    }
    // Not another creator's to read, change, delete or use.
    let path = format!("/api/v1/me/destinations/{id}");
    assert_eq!(server.api.status(&path, Some(&bob)).await?, 404);
    let (status, _) = server
        .api
        .request(
            Method::PATCH,
            &path,
            Some(&bob),
            Some(json!({"enabled": false})),
        )
        .await?;
    assert_eq!(status, 404);
    let (status, _) = server
        .api
        .request(Method::DELETE, &path, Some(&bob), None)
        .await?;
    assert_eq!(status, 404);
    let (_, listed) = server
        .api
        .get("/api/v1/me/destinations", Some(&bob))
        .await?;
    assert_eq!(listed["destinations"].as_array().unwrap().len(), 0);
    let bobs = server.api.create_stream(&bob, "bob's show").await?;
    let bobs_id = bobs["id"].as_str().unwrap();
    let (status, v) = server
        .api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{bobs_id}/destinations"),
            Some(&bob),
            Some(json!({"ids": [id]})),
        )
        .await?;
    assert_eq!(status, 400, "{v}");
    let alices = server.demo_stream["id"].as_str().unwrap();
    let (status, _) = server
        .api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{alices}/destinations"),
            Some(&bob),
            Some(json!({"ids": []})),
        )
        .await?;
    assert_eq!(status, 404, "bob does not see alice's practice stream");
    // The admin is not a creator.
    let (status, _) = server
        .api
        .request(
            Method::GET,
            "/api/v1/me/destinations",
            Some(common::ADMIN_TOKEN),
            None,
        )
        .await?;
    assert_eq!(status, 403);
    // Bounds: destinations per creator, targets per stream.
    let mut ids = vec![id.clone()];
    for i in 1..20 {
        let (status, d) = create_destination(
            &server,
            &alice,
            json!({"name": format!("d{i}"), "url": public_ip}),
        )
        .await?;
        assert_eq!(status, 201, "{d}");
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    let (status, _) = create_destination(
        &server,
        &alice,
        json!({"name": "one too many", "url": public_ip}),
    )
    .await?;
    assert_eq!(status, 409);
    let put = |ids: Vec<String>| {
        let api = server.api.clone();
        let alice = alice.clone();
        async move {
            api.request(
                Method::PUT,
                &format!("/api/v1/streams/{alices}/destinations"),
                Some(&alice),
                Some(json!({ "ids": ids })),
            )
            .await
        }
    };
    let (status, v) = put(ids[..6].to_vec()).await?;
    assert_eq!(status, 400, "six targets, five allowed: {v}");
    let (status, v) = put(ids[..5].to_vec()).await?;
    assert_eq!(status, 200, "{v}");
    let chosen = v["destinations"].as_array().unwrap();
    assert_eq!(chosen.len(), 5);
    assert!(chosen.iter().all(|t| t["state"] == "stopped"), "{v}");
    // The stream object shows them; no key anywhere.
    let s = server.api.stream(&alice, alices).await?;
    assert_eq!(s["destinations"].as_array().unwrap().len(), 5);
    assert_no_key("the stream object", &s.to_string());
    // A changed key shows its new last four; a deleted destination leaves the stream.
    let (status, v) = server
        .api
        .request(
            Method::PATCH,
            &format!("/api/v1/me/destinations/{id}"),
            Some(&alice),
            Some(json!({"key": RTMPS_KEY, "name": "YouTube 2"})),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["key_last4"], &RTMPS_KEY[RTMPS_KEY.len() - 4..]);
    assert_no_key("a patch response", &v.to_string());
    let (status, _) = server
        .api
        .request(
            Method::DELETE,
            &format!("/api/v1/me/destinations/{id}"),
            Some(&alice),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    let s = server.api.stream(&alice, alices).await?;
    assert_eq!(s["destinations"].as_array().unwrap().len(), 4);
    server.stop().await;
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    assert_no_key("the server log", &text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_public_media_reaches_rtmp_rtmps_and_srt_targets_which_recover() -> Result<()> {
    logs();
    let dir = tempfile::tempdir()?;
    let mut nginx = Nginx::start(&dir.path().join("nginx")).await?;
    let mut srt = SrtListener::start(&dir.path().join("srt.ts")).await?;
    let retry_max = Duration::from_secs(2);
    let mut server = Server::start_with(|c| {
        // The receivers are on loopback; the certificate of the RTMPS one is the test's own.
        c.simulcast.allow_private_destinations = true;
        c.simulcast.tls_validation = false;
        c.simulcast.retry_initial = Duration::from_millis(500);
        c.simulcast.retry_max = retry_max;
        c.webhooks.allow_private_targets = true;
    })
    .await?;
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let mut made = Vec::new();
    for (name, url, key) in [
        (
            "nginx",
            format!("rtmp://127.0.0.1:{}/live", nginx.rtmp_port),
            RTMP_KEY,
        ),
        (
            "nginx tls",
            format!("rtmps://127.0.0.1:{}/live", nginx.rtmps_port),
            RTMPS_KEY,
        ),
        (
            "srt",
            format!("srt://127.0.0.1:{}?latency=200", srt.port),
            SRT_KEY,
        ),
    ] {
        let (status, d) = create_destination(
            &server,
            &token,
            json!({"name": name, "url": url, "key": key}),
        )
        .await?;
        assert_eq!(status, 201, "{d}");
        made.push(d["id"].as_str().unwrap().to_string());
    }
    let (rtmp, rtmps, srt_id) = (made[0].as_str(), made[1].as_str(), made[2].as_str());
    // Destination changes are webhooks too (queued in the delivery log; nobody listens there).
    let closed = common::receivers::free_port(false)?;
    let (status, hook) = server
        .api
        .request(
            Method::POST,
            "/api/v1/webhooks",
            Some(&token),
            Some(json!({"url": format!("http://127.0.0.1:{closed}/hook"),
                        "events": ["destination.live", "destination.failed"]})),
        )
        .await?;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let (status, v) = server
        .api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{id}/destinations"),
            Some(&token),
            Some(json!({ "ids": made })),
        )
        .await?;
    assert_eq!(status, 200, "{v}");

    // Practice: the stream runs, nothing goes out.
    let publisher = Publish::small(60.0).spawn(&server.publish_url(&stream))?;
    let published = Instant::now();
    source_segments(&server.api, &token, &id, 2).await?;
    let t = targets(&server, &token, &id).await?;
    assert!(
        t.iter().all(|t| t["state"] == "stopped" && t["bytes"] == 0),
        "{t:?}"
    );
    assert!(
        nginx.recordings("").is_empty(),
        "nginx got a publish in practice"
    );
    assert_eq!(srt.bytes(), 0, "the SRT listener got media in practice");

    // Public: all three go live.
    server.api.set_mode(&token, &id, "public").await?;
    let public_at = Instant::now();
    wait_state(&server, &token, &id, &[rtmp, rtmps, srt_id], "live").await?;
    let (_, metrics) = server.api.get_text("/metrics", None).await?;
    assert!(
        metrics.contains(&format!(
            "livefront_simulcast_bytes_total{{stream=\"{id}\",destination=\"{rtmp}\"}}"
        )),
        "{metrics}"
    );
    wait_for("SRT media", DEADLINE, || async {
        (srt.bytes() > 100_000).then_some(())
    })
    .await?;
    let (status, dot) = server
        .api
        .get_text(
            &format!("/api/v1/streams/{id}/pipeline.dot"),
            Some(common::ADMIN_TOKEN),
        )
        .await?;
    assert_eq!(status, 200);
    assert!(dot.contains("target-"), "the targets are in the graph");
    assert_no_key("the pipeline graph", &dot);

    // Stop one target while live: the others go on.
    let (status, v) = server
        .api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{id}/destinations"),
            Some(&token),
            Some(json!({ "ids": [rtmp, rtmps] })),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    let srt_public = public_at.elapsed().as_secs_f64();
    let before = bytes_of(&targets(&server, &token, &id).await?, rtmp);
    wait_for("RTMP goes on", DEADLINE, || async {
        let t = targets(&server, &token, &id).await.ok()?;
        (t.len() == 2
            && state_of(&t, rtmp) == Some("live")
            && state_of(&t, rtmps) == Some("live")
            && bytes_of(&t, rtmp) > before + 50_000)
            .then_some(())
    })
    .await?;
    srt.stop().await?;
    let (codecs, duration) = probe(srt.file.to_str().unwrap()).await?;
    assert!(
        codecs.contains(&"h264".into()) && codecs.contains(&"aac".into()),
        "{codecs:?}"
    );
    let duration = duration.unwrap_or(0.0);
    assert!(
        duration > srt_public * 0.4 && duration < srt_public + 1.0,
        "SRT got {duration:.1} s of {srt_public:.1} s public"
    );

    // A receiver that accepts and never answers (stuck, or a blackhole) holds up nothing: its
    // target gives up connecting and retries while the others go on.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent.local_addr()?.port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let (status, d) = create_destination(
        &server,
        &token,
        json!({"name": "stuck", "url": format!("rtmp://127.0.0.1:{silent_port}/live"), "key": RTMP_KEY}),
    )
    .await?;
    assert_eq!(status, 201, "{d}");
    let stuck = d["id"].as_str().unwrap().to_string();
    let choose = |ids: Vec<&str>| {
        let api = server.api.clone();
        let (token, path) = (token.clone(), format!("/api/v1/streams/{id}/destinations"));
        let ids: Vec<String> = ids.into_iter().map(String::from).collect();
        async move {
            let (status, v) = api
                .request(
                    Method::PUT,
                    &path,
                    Some(&token),
                    Some(json!({ "ids": ids })),
                )
                .await?;
            anyhow::ensure!(status == 200, "{v}");
            Ok::<_, anyhow::Error>(())
        }
    };
    choose(vec![rtmp, rtmps, stuck.as_str()]).await?;
    let before = bytes_of(&targets(&server, &token, &id).await?, rtmp);
    let t = wait_state(&server, &token, &id, &[stuck.as_str()], "retrying").await?;
    assert_eq!(state_of(&t, rtmp), Some("live"), "{t:?}");
    assert!(bytes_of(&t, rtmp) > before, "RTMP went on meanwhile");
    choose(vec![rtmp, rtmps]).await?;
    holder.abort();

    // Kill the receiver: both its targets retry, HLS goes on.
    let playlist = format!("/hls/{id}/source/index.m3u8");
    nginx.kill().await?;
    let retrying = wait_state(&server, &token, &id, &[rtmp, rtmps], "retrying").await?;
    for t in &retrying {
        let since: chrono::DateTime<chrono::Utc> = t["since"].as_str().unwrap().parse()?;
        let retry_at: chrono::DateTime<chrono::Utc> = t["retry_at"].as_str().unwrap().parse()?;
        assert!(
            retry_at - since <= chrono::Duration::from_std(retry_max)?,
            "{t}"
        );
        assert!(t["error"].as_str().is_some_and(|e| !e.is_empty()), "{t}");
    }
    let (_, before) = server.api.get_text(&playlist, None).await?;
    let last = before
        .lines()
        .rev()
        .find(|l| l.ends_with(".ts"))
        .unwrap_or("")
        .to_string();
    wait_for("HLS goes on", DEADLINE, || async {
        let (_, now) = server.api.get_text(&playlist, None).await.ok()?;
        (now.lines().rev().find(|l| l.ends_with(".ts")) != Some(last.as_str())).then_some(())
    })
    .await?;
    // Back: live again (retries every retry_max at most).
    nginx.restart().await?;
    wait_state(&server, &token, &id, &[rtmp, rtmps], "live").await?;
    let t = targets(&server, &token, &id).await?;
    assert!(t.iter().all(|t| t["failures"].as_u64() >= Some(1)), "{t:?}");

    // A new key while live: that target reconnects with it, the other goes on.
    let (status, v) = server
        .api
        .request(
            Method::PATCH,
            &format!("/api/v1/me/destinations/{rtmps}"),
            Some(&token),
            Some(json!({ "key": NEW_KEY })),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    wait_for("the new key in use", DEADLINE, || async {
        let t = targets(&server, &token, &id).await.ok()?;
        (!nginx.recordings(NEW_KEY).is_empty() && state_of(&t, rtmps) == Some("live")).then_some(())
    })
    .await?;

    // Practice again: targets stop at once.
    server.api.set_mode(&token, &id, "practice").await?;
    wait_state(&server, &token, &id, &[rtmp, rtmps], "stopped").await?;
    let ran = published.elapsed().as_secs_f64();
    server.api.end_stream(&token, &id).await?;
    let rec = server.api.recording_ready(&token, &id).await?;
    let rec_s = rec["duration_s"].as_f64().unwrap_or(0.0);
    assert!(
        rec_s > ran - 4.0,
        "the recording has {rec_s:.1} s of {ran:.1} s published"
    );
    let (_, vod) = server.api.get_text(&playlist, Some(&token)).await?;
    let hls_s = common::playlist_duration(&vod);
    assert!(
        hls_s > ran - 4.0,
        "HLS has {hls_s:.1} s of {ran:.1} s published"
    );
    let _ = common::finish(publisher, DEADLINE).await;

    // What nginx recorded (a file per publish) decodes.
    nginx.kill().await?;
    for key in [RTMP_KEY, RTMPS_KEY] {
        let files = nginx.recordings(key);
        assert!(
            files.len() >= 2,
            "a publish before and after the restart: {files:?}"
        );
        for f in files {
            let (codecs, _) = probe(f.to_str().unwrap()).await?;
            assert!(
                codecs.contains(&"h264".into()) && codecs.contains(&"aac".into()),
                "{f:?}: {codecs:?}"
            );
        }
    }
    let s = server.api.stream(&token, &id).await?;
    assert_no_key("the ended stream", &s.to_string());
    let (_, log) = server
        .api
        .get(
            &format!("/api/v1/webhooks/{hook_id}/deliveries"),
            Some(&token),
        )
        .await?;
    let events: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["event"].as_str())
        .collect();
    for event in ["destination.live", "destination.failed"] {
        assert!(events.contains(&event), "{event} in {events:?}");
    }
    server.stop().await;
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    assert!(
        text.contains("simulcast target"),
        "the log tells of targets"
    );
    assert_no_key("the server log", &text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_can_take_a_rung_of_the_ladder_instead_of_the_source() -> Result<()> {
    logs();
    let dir = tempfile::tempdir()?;
    let mut nginx = Nginx::start(&dir.path().join("nginx")).await?;
    let preset = dir.path().join("small.toml");
    std::fs::write(&preset, common::SMALL_LADDER)?;
    let mut server = Server::start_with(|c| {
        c.hls.ladder = preset.to_string_lossy().into_owned();
        c.simulcast.allow_private_destinations = true;
    })
    .await?;
    let token = server.demo_token.clone();
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let (status, d) = create_destination(
        &server,
        &token,
        json!({"name": "tiktok-ish", "url": format!("rtmp://127.0.0.1:{}/live", nginx.rtmp_port),
               "key": RTMP_KEY, "rendition": "240p"}),
    )
    .await?;
    assert_eq!(status, 201, "{d}");
    let dest = d["id"].as_str().unwrap().to_string();
    let (status, v) = server
        .api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{id}/destinations"),
            Some(&token),
            Some(json!({ "ids": [dest] })),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    server.api.set_mode(&token, &id, "public").await?;
    let publisher = Publish {
        size: "640x360",
        ..Publish::small(60.0)
    }
    .spawn(&server.publish_url(&stream))?;
    let live = wait_state(&server, &token, &id, &[dest.as_str()], "live").await?;
    assert_eq!(live[0]["rendition"], "240p", "{live:?}");
    let at = bytes_of(&live, &dest);
    wait_for("the rung goes out", DEADLINE, || async {
        let t = targets(&server, &token, &id).await.ok()?;
        (bytes_of(&t, &dest) > at + 100_000).then_some(())
    })
    .await?;
    server.api.end_stream(&token, &id).await?;
    server.api.recording_ready(&token, &id).await?;
    let _ = common::finish(publisher, DEADLINE).await;
    nginx.kill().await?;
    let files = nginx.recordings(RTMP_KEY);
    assert_eq!(files.len(), 1, "{files:?}");
    let out = common::run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,height",
            "-of",
            "csv=p=0",
            files[0].to_str().unwrap(),
        ],
        DEADLINE,
    )
    .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        "h264,240",
        "the 240p rung, not the 360p source"
    );
    server.stop().await;
    Ok(())
}

/// More targets at once is a level benefit (`commerce.levels.benefits.more_simulcast_targets`):
/// without it a stream takes `simulcast.max_targets`, with it `max_targets_with_benefit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_level_benefit_raises_the_targets_a_stream_may_take() -> Result<()> {
    for (benefit_from_level, expected) in [(4, 400), (1, 200)] {
        let mut server = Server::start_with(|c| {
            c.simulcast.max_targets = 1;
            c.simulcast.max_targets_with_benefit = 2;
            c.commerce
                .levels
                .benefits
                .insert("more_simulcast_targets".into(), benefit_from_level);
        })
        .await?;
        let token = server.demo_token.clone();
        let mut ids = Vec::new();
        for name in ["one", "two"] {
            let (status, d) = create_destination(
                &server,
                &token,
                json!({"name": name, "url": "rtmp://93.184.216.34/live2", "key": RTMP_KEY}),
            )
            .await?;
            assert_eq!(status, 201, "{d}");
            ids.push(d["id"].as_str().unwrap().to_string());
        }
        let id = server.demo_stream["id"].as_str().unwrap().to_string();
        let (status, v) = server
            .api
            .request(
                Method::PUT,
                &format!("/api/v1/streams/{id}/destinations"),
                Some(&token),
                Some(json!({"ids": ids})),
            )
            .await?;
        assert_eq!(
            status, expected,
            "benefit from level {benefit_from_level} (a new creator is level 1): {v}"
        );
        server.stop().await;
    }
    Ok(())
}
