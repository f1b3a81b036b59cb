//! A real browser player: hls.js in Debian's headless chromium (driven by `tests/web/watch.mjs`
//! through Playwright; `make test` installs both) watches a stream whose publisher crashes and
//! comes back within the reconnect grace, one whose host focuses a product (and plays the
//! master in low-latency mode), and an HEVC source, played on its H.264 rung.
mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// How long the player watches: the first publish, the time away, most of the second publish.
const WATCH_SECONDS: u64 = 22;
const AWAY: Duration = Duration::from_secs(3);

/// The player's report so far (see watch.mjs for the line format).
type Lines = Arc<Mutex<Vec<Value>>>;

fn samples(lines: &Lines) -> Vec<(u64, f64)> {
    lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "sample")
        .map(|l| {
            (
                l["t_ms"].as_u64().unwrap_or(0),
                l["position"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

fn position(lines: &Lines) -> f64 {
    samples(lines).last().map_or(0.0, |s| s.1)
}

/// The longest time the position stood still once playback had started (ms).
fn longest_stall(samples: &[(u64, f64)]) -> u64 {
    let mut longest = 0;
    let mut still_since: Option<u64> = None;
    let mut last = None;
    for &(t, pos) in samples {
        match last {
            Some(p) if pos <= p + 0.01 && pos > 0.0 => {
                let since = *still_since.get_or_insert(t);
                longest = longest.max(t - since);
            }
            _ => still_since = None,
        }
        last = Some(pos);
    }
    longest
}

/// hls.js watching a URL for `seconds`, its report collected as it comes.
struct Player {
    child: tokio::process::Child,
    lines: Lines,
    reader: tokio::task::JoinHandle<()>,
    seconds: u64,
}

impl Player {
    fn watch(url: &str, seconds: u64) -> Result<Player> {
        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web");
        ensure!(
            web.join("node_modules/playwright-core").exists(),
            "tests/web/node_modules is missing: run `make test` (it installs chromium, Playwright and hls.js)"
        );
        let mut child = Command::new("node")
            .arg(web.join("watch.mjs"))
            .arg(url)
            .arg(seconds.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("node is required (make test installs it)")?;
        let lines: Lines = Arc::default();
        let reader = {
            let lines = lines.clone();
            let stdout = child.stdout.take().context("player stdout")?;
            tokio::spawn(async move {
                let mut out = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = out.next_line().await {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        lines.lock().unwrap().push(v);
                    }
                }
            })
        };
        Ok(Player {
            child,
            lines,
            reader,
            seconds,
        })
    }

    /// Waits for the end of the watch; fails when the player failed or hls.js gave up.
    async fn finish(mut self) -> Result<Vec<Value>> {
        let status =
            tokio::time::timeout(Duration::from_secs(self.seconds + 30), self.child.wait())
                .await
                .context("player did not finish")??;
        self.reader.await?;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            e.read_to_string(&mut err).await?;
        }
        ensure!(status.success(), "player failed: {err}");
        let lines = self.lines.lock().unwrap().clone();
        let fatal: Vec<&Value> = lines.iter().filter(|l| l["fatal"] == true).collect();
        ensure!(fatal.is_empty(), "hls.js gave up: {fatal:?}");
        Ok(lines)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_keeps_playing_across_a_publisher_reconnect() -> Result<()> {
    let mut server =
        Server::start_with(|c| c.ingest.reconnect_grace = Duration::from_secs(20)).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let watch_url = stream["playback"]["hls"]
        .as_str()
        .context("playback.hls")?
        .to_string();
    let publish_url = server.publish_url(&stream);

    let mut first = Publish::small(60.0).spawn(&publish_url)?;
    api.playlist_with_segments(&media_url(&watch_url), 2)
        .await?;

    let player = Player::watch(&watch_url, WATCH_SECONDS)?;
    let lines = player.lines.clone();

    // Watch the first publisher for a while, then crash it.
    wait_for("3 s played", DEADLINE, || async {
        (position(&lines) >= 3.0).then_some(())
    })
    .await?;
    first.start_kill()?;
    first.wait().await?;
    let at_drop = position(&lines);
    tokio::time::sleep(AWAY).await;
    let second = Publish::small(12.0).spawn(&publish_url)?;

    player.finish().await?;
    let (publisher, stderr) = finish(second, DEADLINE).await?;
    ensure!(publisher.success(), "{stderr}");
    let (_, vod) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), Some(&token))
        .await?;
    let (before, _) = vod
        .split_once("#EXT-X-DISCONTINUITY\n")
        .with_context(|| format!("a discontinuity: {vod}"))?;
    // Media time is continuous across the reconnect (the gap is closed), so a position past the
    // first publish's media is the second publisher's.
    let first_publish = playlist_duration(before);
    let samples = samples(&lines);
    let end = samples.last().map_or(0.0, |s| s.1);
    ensure!(
        end > first_publish + 3.0,
        "playback went on into the second publish: the first lasted {first_publish:.1} s, \
         the player was at {at_drop:.1} s at the drop and {end:.1} s at the end"
    );
    let stall = longest_stall(&samples);
    eprintln!(
        "hls.js across a reconnect ({} s away): longest stall {stall} ms, played {end:.1} s in {WATCH_SECONDS} s",
        AWAY.as_secs()
    );
    server.stop().await;
    Ok(())
}

/// The host focuses a product while a browser watches: hls.js turns the playlist's DATERANGE into
/// a metadata cue that becomes active during playback, carrying the product id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_fires_a_metadata_cue_for_the_focused_product() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    api.set_mode(&token, &id, "public").await?;
    let product_id = api.create_product(&token, "LIP").await?;
    api.set_carousel(&token, &id, &[&product_id]).await?;
    let watch_url = stream["playback"]["hls"].as_str().context("playback.hls")?;
    let publisher = Publish::small(16.0).spawn(&server.publish_url(&stream))?;
    api.playlist_with_segments(&media_url(watch_url), 2).await?;
    let player = Player::watch(watch_url, 14)?;
    let lines = player.lines.clone();
    wait_for("1 s played", DEADLINE, || async {
        (position(&lines) >= 1.0).then_some(())
    })
    .await?;
    let (status, focus) = api.focus(&token, &id, Some(&product_id)).await?;
    ensure!(status == 200, "{focus}");
    let lines = player.finish().await?;
    finish(publisher, DEADLINE).await?;
    let cue = lines
        .iter()
        .find(|l| l["kind"] == "cue" && l["key"] == "X-PRODUCT-ID")
        .with_context(|| format!("no product cue became active: {lines:?}"))?;
    assert_eq!(cue["data"], product_id.as_str(), "{cue}");
    assert_eq!(cue["id"], focus["id"], "{cue}");
    eprintln!("hls.js product cue: {cue}");
    // The master is low-latency HLS and hls.js plays it as such: parts of 200 ms, and the
    // picture moves on.
    let ll: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "sample" && l["part_target"].as_f64() > Some(0.0))
        .collect();
    let last = ll
        .last()
        .with_context(|| format!("never saw parts: {lines:?}"))?;
    ensure!(last["low_latency"] == true, "{last}");
    ensure!(
        (0.2..=0.4).contains(&last["part_target"].as_f64().unwrap()),
        "{last}"
    );
    ensure!(
        position(&Arc::new(Mutex::new(lines.clone()))) > 5.0,
        "{last}"
    );
    eprintln!("hls.js in low-latency mode: {last}");
    server.stop().await;
    Ok(())
}

/// An HEVC publisher (ffmpeg's libx265 over SRT): a browser without HEVC in MSE plays the H.264
/// rung that every HEVC source gets, from the same master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_an_hevc_source_on_its_h264_rung() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();
    api.set_mode(&token, &id, "public").await?;
    let watch_url = stream["playback"]["hls"].as_str().context("playback.hls")?;
    let url = format!("{}&linger=1", server.srt_publish_url(&stream));
    let publisher = Publish::small(16.0).spawn_hevc_to("mpegts", &url)?;
    // The H.264 rung's playlist, from the master, once it has two segments.
    let master_path = format!("/hls/{id}/master.m3u8");
    let h264 = wait_for("an H.264 variant in the master", DEADLINE, || async {
        let (_, master) = api.get_text(&master_path, None).await.ok()?;
        let mut lines = master.lines();
        while let Some(line) = lines.next() {
            if line.starts_with("#EXT-X-STREAM-INF") && line.contains("avc1.") {
                return lines.next().map(str::to_string);
            }
        }
        None
    })
    .await?;
    let base = &watch_url[..=watch_url.rfind('/').context("a path")?];
    api.playlist_with_segments(&format!("{base}{h264}"), 2)
        .await?;
    let player = Player::watch(watch_url, 10)?;
    let lines = player.finish().await?;
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    ensure!(status.success(), "ffmpeg: {stderr}");
    let last = lines
        .iter()
        .rfind(|l| l["kind"] == "sample")
        .with_context(|| format!("no samples: {lines:?}"))?;
    ensure!(
        position(&Arc::new(Mutex::new(lines.clone()))) > 3.0,
        "the picture moved on: {last}"
    );
    let codec = last["video_codec"].as_str().unwrap_or_default();
    if last["hevc_mse"] == false {
        ensure!(codec.starts_with("avc1."), "the H.264 rung: {last}");
    } else {
        ensure!(
            codec.starts_with("avc1.") || codec.starts_with("hvc1."),
            "{last}"
        );
    }
    eprintln!("hls.js on an HEVC source: {last}");
    server.stop().await;
    Ok(())
}
