//! Bad input gets a clear error and costs nothing: wrong keys, ended keys, a second publisher,
//! garbage and stalled clients on the RTMP port, malformed API requests.
mod common;

use std::time::Duration;

use anyhow::Result;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_is_refused_before_any_pipeline_exists() -> Result<()> {
    let mut server = Server::start().await?;
    let url = format!("rtmp://127.0.0.1:{}/live/lf_not_a_key", server.rtmp_port());
    let (status, _) = finish(Publish::small(2.0).spawn(&url)?, DEADLINE).await?;
    assert!(
        !status.success(),
        "ffmpeg must fail to publish with a wrong key"
    );
    let streams = server.data_dir().join("streams");
    assert!(
        !streams.exists() || std::fs::read_dir(&streams)?.next().is_none(),
        "no files for a refused key"
    );
    let (_, metrics) = server.api.get_text("/metrics", None).await?;
    assert!(
        metrics.contains("livefront_publishes_refused_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("livefront_live_streams 0"), "{metrics}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_of_a_stream_ended_through_the_api_is_refused() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let v = server.api.end_stream(&server.demo_token, id).await?;
    assert_eq!(v["state"], "ended", "{v}");
    let (status, _) = finish(
        Publish::small(2.0).spawn(&server.publish_url(&stream))?,
        DEADLINE,
    )
    .await?;
    assert!(!status.success(), "ended key refused");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_refused_and_the_first_is_untouched() -> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let url = server.publish_url(&stream);
    let first = Publish::small(7.0).spawn(&url)?;
    let media =
        media_url(stream["playback"]["hls"].as_str().unwrap()).replace("localhost", "127.0.0.1");
    server.api.playlist_with_segments(&media, 1).await?;
    let (status, _) = finish(Publish::small(2.0).spawn(&url)?, DEADLINE).await?;
    assert!(
        !status.success(),
        "a second simultaneous publisher is refused"
    );
    let (status, stderr) = finish(first, DEADLINE).await?;
    assert!(status.success(), "the first publisher kept going: {stderr}");
    let rec = server.api.recording_ready(&server.demo_token, id).await?;
    let duration = rec["duration_s"].as_f64().unwrap();
    assert!(
        (duration - 7.0).abs() < 0.5,
        "recording is {duration} s of 7 s"
    );
    server.stop().await;
    Ok(())
}

/// Reads until the server closes the connection; true if it did before the deadline.
async fn closed_by_server(mut socket: TcpStream, deadline: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(deadline, read_all).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalled_rtmp_clients_are_dropped_without_disturbing_a_live_stream()
-> Result<()> {
    let mut server = Server::start().await?;
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap();
    let publisher = Publish::small(14.0).spawn(&server.publish_url(&stream))?;
    let media =
        media_url(stream["playback"]["hls"].as_str().unwrap()).replace("localhost", "127.0.0.1");
    server.api.playlist_with_segments(&media, 1).await?;

    let addr = format!("127.0.0.1:{}", server.rtmp_port());
    let mut garbage = TcpStream::connect(&addr).await?;
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = garbage.write_all(&noise).await;
    let stalled = TcpStream::connect(&addr).await?;
    assert!(
        closed_by_server(garbage, Duration::from_secs(15)).await,
        "garbage client dropped"
    );
    // The default setup timeout is 10 s: a client that never completes the handshake is dropped.
    assert!(
        closed_by_server(stalled, Duration::from_secs(30)).await,
        "stalled client dropped"
    );

    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    let rec = server.api.recording_ready(&server.demo_token, id).await?;
    let duration = rec["duration_s"].as_f64().unwrap();
    assert!(
        (duration - 14.0).abs() < 0.5,
        "recording is {duration} s of 14 s"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unauthorised_api_requests_get_the_error_shape() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let token = server.demo_token.clone();
    let id = server.demo_stream["id"].as_str().unwrap().to_string();

    let resp = api
        .http
        .post(api.url("/api/v1/streams"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "invalid_json", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    let resp = api
        .http
        .post(api.url("/api/v1/streams"))
        .bearer_auth(&token)
        .body("title=x")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 415);
    assert_eq!(
        resp.json::<serde_json::Value>().await?["error"]["code"],
        "unsupported_media_type"
    );

    let cases = [
        (
            reqwest::Method::POST,
            "/api/v1/streams".to_string(),
            Some(token.as_str()),
            Some(json!({"title": ""})),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/streams".into(),
            Some(token.as_str()),
            Some(json!({"title": "x", "colour": 1})),
            400,
            "invalid_json",
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/streams/{id}/mode"),
            Some(token.as_str()),
            Some(json!({"mode": "secret"})),
            400,
            "invalid_json",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/streams".into(),
            None,
            Some(json!({"title": "x"})),
            401,
            "unauthorized",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/streams".into(),
            Some("lft_wrong"),
            Some(json!({"title": "x"})),
            401,
            "unauthorized",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/creators".into(),
            Some(token.as_str()),
            Some(json!({"handle": "eve"})),
            403,
            "forbidden",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/creators".into(),
            Some(ADMIN_TOKEN),
            Some(json!({"handle": "demo"})),
            409,
            "conflict",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/creators".into(),
            Some(ADMIN_TOKEN),
            Some(json!({"handle": "Bad Handle"})),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/streams/doesnotexist".into(),
            Some(token.as_str()),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/streams/../../etc".into(),
            Some(token.as_str()),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            format!("/api/v1/streams/{id}/recording"),
            Some(token.as_str()),
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            "/no/such/route".into(),
            None,
            None,
            404,
            "not_found",
        ),
    ];
    for (method, path, auth, body, status, code) in cases {
        let (got, v) = api.request(method.clone(), &path, auth, body).await?;
        assert_eq!(
            (got, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {v}"
        );
    }

    // Someone else's practice stream does not exist for them; a public one is visible but not theirs to control.
    let other = api.create_creator("other").await?;
    let (status, _) = api
        .get(&format!("/api/v1/streams/{id}"), Some(&other))
        .await?;
    assert_eq!(status, 404);
    let (status, v) = api
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/streams/{id}/mode"),
            Some(&other),
            Some(json!({"mode": "public"})),
        )
        .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    api.set_mode(&token, &id, "public").await?;
    let (status, v) = api.get(&format!("/api/v1/streams/{id}"), None).await?;
    assert_eq!(status, 200);
    assert!(
        v.get("stream_key").is_none() && v.get("ingest").is_none(),
        "viewers never see the key: {v}"
    );
    let (status, v) = api
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/streams/{id}/end"),
            Some(&other),
            None,
        )
        .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    server.stop().await;
    Ok(())
}
