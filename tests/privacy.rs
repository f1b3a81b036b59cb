//! Practice mode hides a stream from everyone but its creator, everywhere. One table: every URL
//! that could reveal a stream × anonymous, a viewer, another creator. A new endpoint gets a row.
//!
//! Per-stream URLs must answer exactly what an unknown stream id answers (same status, same body);
//! listings and feeds must not mention the stream at all.
mod common;

use anyhow::Result;
use common::*;
use reqwest::Method;
use serde_json::json;

/// URLs about one stream; `{id}` is replaced.
const PER_STREAM: &[&str] = &[
    "/api/v1/streams/{id}",
    "/api/v1/streams/{id}/recording",
    "/api/v1/streams/{id}/thumbnail.jpg",
    "/api/v1/streams/{id}/products",
    "/api/v1/streams/{id}/chapters",
    "/api/v1/streams/{id}/clips",
    "/clips/{id}/1.mp4",
    "/hls/{id}/master.m3u8",
    "/hls/{id}/source/index.m3u8",
    "/hls/{id}/source/event.m3u8",
    "/hls/{id}/source/seg00000.ts",
    "/hls/{id}/source/seg00001.ts",
    "/recordings/{id}.mp4",
];

/// URLs that list or count streams: the practice ids must not appear.
const LISTINGS: &[&str] = &[
    "/api/v1/live",
    "/api/v1/home",
    "/api/v1/categories",
    "/api/v1/creators/demo/storefront",
    "/api/v1/streams",
    "/api/v1/me/notifications",
    "/metrics",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_streams_leak_nowhere() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());

    // One practice stream that has ended (segments, recording, poster on disk), one live.
    let (_, ended) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&creator),
            Some(json!({"title": "secret rehearsal", "category": "secret_category"})),
        )
        .await?;
    let (status, stderr) = finish(
        Publish::small(3.0).spawn(&server.publish_url(&ended))?,
        DEADLINE,
    )
    .await?;
    assert!(status.success(), "{stderr}");
    let ended_id = ended["id"].as_str().unwrap().to_string();
    api.recording_ready(&creator, &ended_id).await?;
    let live = server.demo_stream.clone();
    let live_id = live["id"].as_str().unwrap().to_string();
    let _publisher = Publish::small(30.0).spawn(&server.publish_url(&live))?;
    let playback = live["playback"]["hls"].as_str().unwrap().to_string();
    api.playlist_with_segments(&media_url(&playback), 2).await?;

    // The others: nobody, a viewer who follows the creator, another creator.
    let (_, v) = api
        .request(
            Method::POST,
            "/api/v1/viewers",
            None,
            Some(json!({"handle": "fan"})),
        )
        .await?;
    let fan = v["token"].as_str().unwrap().to_string();
    api.request(
        Method::PUT,
        "/api/v1/creators/demo/follow",
        Some(&fan),
        None,
    )
    .await?;
    let other = api.create_creator("other").await?;
    let others: [(&str, Option<&str>); 3] = [
        ("anonymous", None),
        ("viewer", Some(&fan)),
        ("other creator", Some(&other)),
    ];

    // The creator does see them (so the table checks something real).
    for url in PER_STREAM {
        let url = url.replace("{id}", &ended_id);
        let status = api.status(&url, Some(&creator)).await?;
        assert_eq!(status, 200, "the creator sees {url}");
    }

    let unknown = "zzzzzzzzzzzzzzzz";
    for (who, token) in others {
        for url in PER_STREAM {
            let (expected_status, expected_body) =
                api.get_text(&url.replace("{id}", unknown), token).await?;
            for id in [&ended_id, &live_id] {
                let url = url.replace("{id}", id);
                let (status, body) = api.get_text(&url, token).await?;
                assert_eq!(
                    (status, &body),
                    (expected_status, &expected_body),
                    "{who} on {url} must see what an unknown id gets"
                );
            }
        }
        for url in LISTINGS {
            let (_, body) = api.get_text(url, token).await?;
            for secret in [
                ended_id.as_str(),
                live_id.as_str(),
                "secret rehearsal",
                "secret_category",
            ] {
                assert!(
                    !body.contains(secret),
                    "{who} on {url} sees {secret}: {body}"
                );
            }
        }
    }
    server.stop().await;
    Ok(())
}
