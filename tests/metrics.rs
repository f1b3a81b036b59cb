//! `/metrics` is valid Prometheus text with the documented families, and API bodies are bounded.
mod common;

use anyhow::Result;
use common::*;
use reqwest::Method;
use serde_json::json;

/// Every sample line is `name{labels} value` with a number; returns the sample names.
fn parse(text: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow::anyhow!("no value: {line}"))?;
        value
            .parse::<f64>()
            .map_err(|e| anyhow::anyhow!("{line}: {e}"))?;
        let name = series.split('{').next().unwrap_or_default();
        anyhow::ensure!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "bad name: {line}"
        );
        names.push(name.to_string());
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_what_happened() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    api.set_mode(&token, &id, "public").await?;
    let publisher = Publish::small(30.0).spawn(&server.publish_url(&stream))?;
    let media = format!("/hls/{id}/source/index.m3u8");
    api.playlist_with_segments(&api.url(&media), 1).await?;
    let (_, before) = api.get_text("/metrics", None).await?;
    for _ in 0..3 {
        api.get_text(&media, None).await?;
    }
    let (_, text) = api.get_text("/metrics", None).await?;
    let names = parse(&text)?;
    for family in [
        "livefront_live_streams",
        "livefront_streams",
        "livefront_viewers",
        "livefront_hls_requests_total",
        "livefront_hls_bytes_total",
        "livefront_webhook_deliveries_total",
        "livefront_webhook_failed_attempts_total",
        "livefront_pipeline_failures_total",
        "livefront_ingest_video_bitrate_kbps",
    ] {
        assert!(
            names.iter().any(|n| n == family),
            "{family} missing:\n{text}"
        );
    }
    assert!(
        text.contains("livefront_streams{state=\"live\",mode=\"public\"} 1"),
        "{text}"
    );
    let requests = |t: &str| -> u64 {
        t.lines()
            .find_map(|l| l.strip_prefix("livefront_hls_requests_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(requests(&text) >= requests(&before) + 3, "{text}");
    drop(publisher);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_body_is_refused_with_413() -> Result<()> {
    let mut server = Server::start().await?;
    let title = "x".repeat(100 * 1024);
    let (status, v) = server
        .api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&server.demo_token),
            Some(json!({ "title": title })),
        )
        .await?;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "too_large", "{v}");
    server.stop().await;
    Ok(())
}
