//! How far a product marker lands from the frame it was meant for (bench/markers.sh runs it).
//!
//! Starts livefront in this process (127.0.0.1, port 0, a temp data dir, passthrough ladder), has
//! ffmpeg publish a real-time test picture over RTMP (`-re`, 30 fps), and changes the focused
//! product `CHANGES` times at uneven intervals. For each change it compares:
//! - the wall-clock instant of the request (midpoint of send and answer), which is when the host
//!   meant it, on the publisher's real-time clock;
//! - the marker's `START-DATE` as written in the VOD playlist, which is the stamped frame's date on
//!   the segments' `PROGRAM-DATE-TIME` clock (first frame's arrival + media time).
//!
//! `START-DATE − request` is then how far (ms) the marker is from the frame the publisher was
//! sending at that instant: negative when it lands on an earlier frame. It includes the frame
//! interval (a marker lands on a frame, 33 ms apart), the publisher's send buffering and the
//! ingest path; not the camera and encoder latency of a real host, which livefront cannot see.
//!
//! `cargo run --release --example focus_offset -- [CHANGES] [SIZE]` (defaults 30, 1280x720).
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use livefront::app::App;
use livefront::config::Config;
use serde_json::{Value, json};

const ADMIN: &str = "bench-admin-token-0123456789";

struct Api {
    base: String,
    client: reqwest::Client,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            bail!("{path}: {status} {text}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let changes: usize = args.next().map_or(Ok(30), |a| a.parse())?;
    let size = args.next().unwrap_or_else(|| "1280x720".into());
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(ADMIN.into()),
        ..Config::default()
    };
    config.http.addr = "127.0.0.1:0".parse()?;
    config.rtmp.addr = "127.0.0.1:0".parse()?;
    config.srt.addr = "127.0.0.1:0".parse()?;
    config.rtsp.addr = "127.0.0.1:0".parse()?;
    config.hls.ladder = "passthrough".into();
    let app = App::start(config).await?;
    let first = app.first_start.clone().context("first start")?;
    let api = Api {
        base: format!("http://{}", app.http_addr),
        client: reqwest::Client::new(),
        token: first.demo_token.clone(),
    };
    let id = first.demo_stream.id.to_string();
    let stream = api
        .call(reqwest::Method::GET, &format!("/api/v1/streams/{id}"), None)
        .await?;
    let url = stream["ingest"]["rtmp"]
        .as_str()
        .context("ingest url")?
        .replace("localhost", "127.0.0.1");
    let mut products = Vec::new();
    for sku in ["A", "B"] {
        let p = api
            .call(
                reqwest::Method::POST,
                "/api/v1/products",
                Some(json!({"sku": sku, "title": sku, "price": "1.00", "currency": "EUR"})),
            )
            .await?;
        products.push(p["id"].as_str().unwrap().to_string());
    }
    api.call(
        reqwest::Method::PUT,
        &format!("/api/v1/streams/{id}/products"),
        Some(json!({ "product_ids": products })),
    )
    .await?;

    let seconds = 8 + changes * 2;
    let mut publisher = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
        ])
        .arg(seconds.to_string())
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ])
        .arg(&url)
        .kill_on_drop(true)
        .spawn()
        .context("ffmpeg is required")?;

    // Wait for the pipeline, then change the focus at uneven intervals (1.3–2.7 s).
    let started = Instant::now();
    loop {
        let s = api
            .call(reqwest::Method::GET, &format!("/api/v1/streams/{id}"), None)
            .await?;
        if s["state"] == "live" && s["health"]["video"].is_object() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the stream did not go live");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut requests: Vec<(String, DateTime<Utc>)> = Vec::new();
    for i in 0..changes {
        let sent = Utc::now();
        let focus = api
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/streams/{id}/focus"),
                Some(json!({ "product_id": products[i % 2] })),
            )
            .await?;
        let answered = Utc::now();
        let meant = sent + (answered - sent) / 2;
        requests.push((focus["id"].as_str().unwrap().to_string(), meant));
        tokio::time::sleep(Duration::from_millis(1_300 + (i as u64 * 377) % 1_400)).await;
    }
    publisher.wait().await?;
    // The stream ends when the publisher stops; wait for the VOD list.
    let vod_path = dir
        .path()
        .join(format!("streams/{id}/hls/source/event.m3u8"));
    let vod = loop {
        let text = std::fs::read_to_string(&vod_path).unwrap_or_default();
        if text.contains("#EXT-X-ENDLIST") {
            break text;
        }
        if started.elapsed() > Duration::from_secs(seconds as u64 + 90) {
            bail!("no VOD playlist");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let markers: Vec<(String, DateTime<Utc>)> = vod
        .lines()
        .filter_map(livefront::output::daterange::Marker::parse_line)
        .map(|m| (m.id, m.start))
        .collect();
    let mut offsets: Vec<i64> = requests
        .iter()
        .map(|(id, meant)| {
            let (_, start) = markers
                .iter()
                .find(|(m, _)| m == id)
                .with_context(|| format!("marker {id} in the VOD list"))?;
            Ok((*start - *meant).num_milliseconds())
        })
        .collect::<Result<_>>()?;
    app.stop().await;
    offsets.sort_unstable();
    let abs_max = offsets.iter().map(|o| o.abs()).max().unwrap_or(0);
    println!(
        "marker offset (START-DATE - request), {} changes, {size} 30 fps RTMP -re: \
         median {} ms, p10 {} ms, p90 {} ms, min {} ms, max {} ms, |max| {abs_max} ms",
        offsets.len(),
        percentile(&offsets, 0.5),
        percentile(&offsets, 0.1),
        percentile(&offsets, 0.9),
        offsets[0],
        offsets[offsets.len() - 1],
    );
    Ok(())
}
